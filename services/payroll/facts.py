"""KPI facts from other services' events (the rules: ``domain.facts``).

Each handler claims its event (idempotent), changes the facts in one transaction and, in the same
transaction, follows the change into the salary documents (a draft recomputed, a confirmed one
marked stale, a frozen month's change carried as a correction into the next open month) and
emits ``kpi_changed`` with the new desk widget of every (manager, month) it touched — the
gateway pushes it to the manager's browser.
"""

from __future__ import annotations

from crm_platform.batching import batch_event_handler
from crm_platform.config import as_int
from crm_platform.consumer import event_handler
from crm_platform.inbox import claim_event, claim_events

from . import store
from .domain.facts import call_counts, meeting_counts, new_client_counts

ERP_EVENT_TYPES = [f"erp_{kind}_{action}" for kind in ("shipment", "payment")
                   for action in ("posted", "changed", "unposted", "deleted")]


class FactHandlers:
    """Event handlers of the KPI facts (mixed into ``PayrollService``)."""

    def after_facts(self, session, touched, cause: str) -> None:
        for user_id, month in sorted(touched, key=lambda t: (str(t[0]), t[1])):
            for action, row in store.follow_facts(session, user_id, month):
                self.outbox.emit(session, "salary_document_changed",
                                 store.document_payload(row, action))
            self.emit_widget(session, user_id, month, cause=cause)

    def emit_widget(self, session, user_id, month, cause: str = "") -> None:
        self.outbox.emit(session, "kpi_changed",
                         {**store.widget(session, user_id, month), "cause": cause})

    # -- realisations (shipments) and payments ------------------------------------------------
    @batch_event_handler("erp_bridge", ERP_EVENT_TYPES)
    def handle_erp_documents(self, events):
        """Shipments and payments in batches (one transaction each): every document keeps its
        newest revision, so the order within a batch does not matter; documents are locked in
        GUID order (two replicas' batches cannot deadlock) and applied in a few statements, and
        each touched (manager, month) is followed and pushed once per batch."""
        with self.db.session() as session:
            fresh = claim_events(session, events)
            touched, causes = store.apply_erp_documents(
                session, [(e.type.split("_")[1], e.type.split("_")[2], e.payload)
                          for e in fresh])
            for key in sorted(touched, key=lambda t: (str(t[0]), t[1])):
                self.after_facts(session, {key}, causes[key])

    # -- ownership of clients, new clients -----------------------------------------------------
    @event_handler("clients", "client_created")
    def handle_client_created(self, event):
        p = event.payload
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            store.lock(session, f"payroll-client:{p['client_id']}")
            store.add_owner_period(session, p["client_id"], event.occurred_at, p["owner_id"],
                                   p["department_id"])
            touched = store.reattribute_client(session, p["client_id"])
            if new_client_counts(p):
                touched |= store.upsert_fact(
                    session, kpi="new_clients", source_key=str(p["client_id"]),
                    user_id=p["owner_id"], department_id=p["department_id"],
                    client_id=p["client_id"], at=event.occurred_at, value=1, counts=True)
            self.after_facts(session, touched, "client_created")

    @event_handler("clients", "client_owner_changed")
    def handle_client_owner_changed(self, event):
        p = event.payload
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            store.lock(session, f"payroll-client:{p['client_id']}")
            store.add_owner_period(session, p["client_id"], event.occurred_at,
                                   p["new_owner_id"], p["new_department_id"])
            self.after_facts(session, store.reattribute_client(session, p["client_id"]),
                             "client_owner_changed")

    @event_handler("clients", "clients_merged")
    def handle_clients_merged(self, event):
        p = event.payload
        with self.db.session() as session:
            if claim_event(session, event):
                store.add_alias(session, p["merged_id"], p["survivor_id"])

    # -- activity ------------------------------------------------------------------------------
    @event_handler("telephony", "call_registered")
    def handle_call_registered(self, event):
        p = event.payload
        min_talk = as_int(self.config.get("CALL_MIN_TALK_SECONDS"), 0)
        if not call_counts(p, min_talk):
            return
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            touched = store.upsert_fact(
                session, kpi="calls", source_key=str(p["call_id"]), user_id=p["user_id"],
                department_id=store.department_of(session, p["user_id"]),
                client_id=p["client_id"], at=p["started_at"], value=1, counts=True)
            self.after_facts(session, touched, "call_registered")

    @event_handler("deals", "task_completed")
    def handle_task_completed(self, event):
        p = event.payload
        if not meeting_counts(p):
            return
        user_id = p.get("assignee_id") or p.get("completed_by")
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            touched = store.upsert_fact(
                session, kpi="meetings", source_key=str(p["task_id"]), user_id=user_id,
                department_id=store.department_of(session, user_id), client_id=p["client_id"],
                at=p["completed_at"], value=1, counts=True)
            self.after_facts(session, touched, "task_completed")
