"""Entrypoints of the clients service for counterparties arriving from 1C.

A mixin of ``ClientsService`` (nameko finds inherited entrypoints): it uses the service's ``db``,
``outbox`` and ``config`` and its ``_matches``.

``erp_bridge.erp_counterparty_upserted`` links or creates a client by the service's duplicate
rules, so 1C never makes a second client of one INN/KPP:

1. the client the bridge names (``client_id``), followed to the survivor when it was merged;
2. else the client already linked to this counterparty (``erp_counterparty_guid``);
3. else the identifier index on the requisites (``domain.erp_merge.pick_by_inn``): INN+KPP,
   or the INN alone where it designates one client.

A client found is linked and gets what 1C has and it lacks (``erp_merge.plan_update``): empty card
fields, phones, e-mails and contact persons — none that belongs to another client; its owner and
everything filled stay as they are; ``client_updated`` only when something changed. A counterparty
marked for deletion in 1C changes nothing: it is noted in the client's audit log.

Not found, the client is created (``source`` "erp", linked, checked like any card; bad values from
1C are left out and named in the audit, the event never fails on them) for the CRM manager whose
name is the 1C manager's, else in the pool of ``ERP_CLIENTS_DEPARTMENT_ID``, else of the department
covering its region, else with no owner and no department (directors see such clients and give
them to someone with ``reassign_client``). ``client_created`` carries the 1C link, from which the
bridge and deals link their documents.

Every change is written as a system change (no user in the audit, ``updated_by`` null). Two
upserts of one counterparty at once are serialised by an advisory lock on its GUID; a creation
also takes the identifier locks ``create_client`` takes, so a manager entering the same client at
that moment and the event cannot both create it.
"""

from __future__ import annotations

import logging
import uuid

import sqlalchemy as sa

from crm_platform.clock import utcnow
from crm_platform.consumer import event_handler
from crm_platform.inbox import claim_event

from . import store
from .domain.card import identifiers_of
from .domain.erp_merge import (
    OWNER_ROLES,
    Counterparty,
    choose_department,
    match_manager,
    pick_by_inn,
    plan_update,
    read_counterparty,
    without_foreign,
)
from .models import audit_log, clients, departments, staff
from .models import contacts as contact_table
from .payloads import CARD_FIELDS, snapshot
from .segmentation import MAX_MERGE_HOPS

log = logging.getLogger(__name__)

# Audit actions of this module (the last one per client and counterparty tells whether 1C's
# deletion mark was already noted).
CREATE, UPDATE, MARKED, UNMARKED, UNMATCHED = (
    "erp_create", "erp_update", "erp_deletion_mark", "erp_deletion_unmark", "erp_unmatched")


def _json(value):
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    return value


class ErpCounterpartyEntrypoints:
    @event_handler("erp_bridge", "erp_counterparty_upserted")
    def handle_erp_counterparty_upserted(self, event):
        """Link or create the client of a 1C counterparty (see the module's docstring)."""
        incoming = read_counterparty(event.payload)
        now = utcnow()
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            store.lock_keys(session, [f"erp_counterparty:{incoming.guid}"])
            found, how, ambiguous = self._erp_lookup(session, incoming)
            if found is None and not ambiguous and not incoming.deletion_mark:
                # As create_client: hold the identifier keys, then look again under them.
                store.lock_keys(session, self._erp_create_keys(incoming))
                found, how, ambiguous = self._erp_lookup(session, incoming)
            if found is None:
                if incoming.deletion_mark:
                    log.info("1C counterparty %s is marked for deletion and has no client: "
                             "none created", incoming.guid)
                elif ambiguous:
                    self._erp_unmatched(session, incoming, ambiguous, event, now)
                else:
                    self._erp_create(session, incoming, event, now)
                return
            row = self._erp_lock(session, found["id"])
            if row is None:
                log.warning("client %s of 1C counterparty %s vanished", found["id"],
                            incoming.guid)
                return
            if incoming.deletion_mark:
                self._erp_note_deletion(session, row, incoming, how, event, now)
            else:
                self._erp_update(session, row, incoming, how, event, now)

    # -- finding ----------------------------------------------------------------------------------
    def _erp_lookup(self, session, incoming: Counterparty):
        """(client row, how it was found, ambiguous candidates) — the row is not locked."""
        if incoming.client_id is not None:
            row = self._erp_live(session, incoming.client_id)
            if row is not None:
                how = "client_id" if row["id"] == incoming.client_id else "merged_into"
                return row, how, []
        row = session.execute(
            sa.select(clients).where(clients.c.erp_counterparty_guid == incoming.guid,
                                     clients.c.merged_into.is_(None))
            .order_by(clients.c.created_at, clients.c.id).limit(1)).mappings().first()
        if row is not None:
            return dict(row), "erp_counterparty_guid", []
        pick = pick_by_inn(incoming.inn, incoming.kpp, self._erp_inn_rows(session, incoming.inn))
        return pick.client, pick.by, pick.ambiguous

    @staticmethod
    def _erp_inn_rows(session, inn: str | None) -> list[dict]:
        if not inn:
            return []
        return [row for _, _, row in store.exact_hits(session, [("inn", inn, None)])]

    @staticmethod
    def _erp_live(session, client_id) -> dict | None:
        """The client, or the survivor it was merged into; None when there is none."""
        for _ in range(MAX_MERGE_HOPS + 1):
            row = session.execute(sa.select(clients).where(
                clients.c.id == client_id)).mappings().first()
            if row is None:
                return None
            if row["merged_into"] is None:
                return dict(row)
            client_id = row["merged_into"]
        return None

    @staticmethod
    def _erp_lock(session, client_id) -> dict | None:
        """Lock the client's row (following a merge done meanwhile)."""
        for _ in range(MAX_MERGE_HOPS + 1):
            row = session.execute(sa.select(clients).where(clients.c.id == client_id)
                                  .with_for_update()).mappings().first()
            if row is None:
                return None
            if row["merged_into"] is None:
                return dict(row)
            client_id = row["merged_into"]
        return None

    @staticmethod
    def _erp_create_keys(incoming: Counterparty) -> list[str]:
        keys = [f"{k}:{v}" for k, v, _ in identifiers_of(incoming.card, incoming.contacts)]
        return keys + [f"name:{incoming.card['name_key']}"]

    @staticmethod
    def _erp_last_action(session, client_id, guid) -> str | None:
        return session.execute(
            sa.select(audit_log.c.action).where(
                audit_log.c.client_id == client_id,
                audit_log.c.action.in_((CREATE, UPDATE, MARKED, UNMARKED)),
                audit_log.c.details["counterparty_guid"].astext == str(guid))
            .order_by(audit_log.c.id.desc()).limit(1)).scalar()

    # -- a client found ---------------------------------------------------------------------------
    def _erp_update(self, session, row: dict, incoming: Counterparty, how, event, now) -> None:
        client_id = row["id"]
        details = {"counterparty_guid": str(incoming.guid), "event_id": str(event.event_id),
                   "found_by": how}
        if self._erp_last_action(session, client_id, incoming.guid) == MARKED:
            store.audit(session, None, UNMARKED, now, client_id, details=details)

        contacts = store.contacts_of(session, [client_id]).get(client_id, [])
        keys = identifiers_of(incoming.card, incoming.contacts)
        store.lock_keys(session, [f"{k}:{v}" for k, v, _ in keys])
        hits = [(kind, value, hit) for kind, value, hit in store.exact_hits(session, keys)
                if hit["id"] != client_id]
        foreign = {(kind, value): str(hit["id"]) for kind, value, hit in hits}
        requisites_owner = pick_by_inn(incoming.inn, incoming.kpp,
                                       [hit for kind, _, hit in hits if kind == "inn"]).client
        plan = plan_update(row, contacts, incoming, foreign, requisites_owner)
        if plan.empty:
            if plan.skipped or plan.not_taken or incoming.problems:
                log.info("1C counterparty %s: nothing new for client %s (skipped %s, not taken "
                         "%s, problems %s)", incoming.guid, client_id, plan.skipped,
                         plan.not_taken, incoming.problems)
            return

        updated = {**row, **plan.changes, "updated_at": now, "updated_by": None,
                   "version": row["version"] + 1}
        session.execute(sa.update(clients).where(clients.c.id == client_id).values(
            **plan.changes, updated_at=now, updated_by=None, version=row["version"] + 1))
        for contact in plan.new_contacts:
            contact["id"] = uuid.uuid4()
            session.execute(sa.insert(contact_table).values(
                **contact, client_id=client_id, created_at=now, created_by=None,
                updated_at=now, updated_by=None))
        for contact, changes in plan.contact_changes:
            session.execute(sa.update(contact_table).where(contact_table.c.id == contact["id"])
                            .values(**changes, updated_at=now, updated_by=None))
            contact.update(changes)
        store.replace_identifiers(session, client_id,
                                  identifiers_of(updated, contacts + plan.new_contacts))

        changed = plan.changed_fields
        store.audit(session, None, UPDATE, now, client_id, fields=changed, details={
            **details,
            "filled": {k: _json(v) for k, v in plan.changes.items()
                       if k not in ("phones", "emails")},
            "added": {"phones": [p for p in plan.changes.get("phones", [])
                                 if p not in (row["phones"] or [])],
                      "emails": [e for e in plan.changes.get("emails", [])
                                 if e not in (row["emails"] or [])],
                      "contacts": [c["full_name"] for c in plan.new_contacts],
                      "contacts_changed": [str(c["id"]) for c, _ in plan.contact_changes]},
            "skipped": plan.skipped, "not_taken": plan.not_taken,
            "problems": incoming.problems})
        self.outbox.emit(session, "client_updated",
                         {**snapshot(updated, None), "changed_fields": changed})

    def _erp_note_deletion(self, session, row, incoming: Counterparty, how, event, now) -> None:
        """1C marked the counterparty for deletion: the client stays as it is; the mark is noted
        once (until 1C takes it back)."""
        if self._erp_last_action(session, row["id"], incoming.guid) == MARKED:
            return
        store.audit(session, None, MARKED, now, row["id"], details={
            "counterparty_guid": str(incoming.guid), "event_id": str(event.event_id),
            "found_by": how})
        log.info("1C counterparty %s (client %s) is marked for deletion: client kept",
                 incoming.guid, row["id"])

    # -- no client yet ----------------------------------------------------------------------------
    def _erp_create(self, session, incoming: Counterparty, event, now) -> None:
        keys = identifiers_of(incoming.card, incoming.contacts)
        foreign = {(kind, value): str(hit["id"]) for kind, value, hit in store.exact_hits(
            session, [k for k in keys if k[0] in ("phone", "email")])}
        card, contacts, skipped = without_foreign(incoming, foreign)
        possible = [{"client_id": m["client_id"], "short_name": m["short_name"],
                     "reasons": m["reasons"]}
                    for m in self._matches(session, incoming.card, incoming.contacts,
                                           similar=False) if m["blocking"]]
        owner_id, department_id, owner_note = self._erp_owner(session, incoming, card)

        client = {**{f: card.get(f) for f in CARD_FIELDS}, "id": uuid.uuid4(),
                  "name_key": card["name_key"], "owner_id": owner_id,
                  "department_id": department_id, "owned_since": now if owner_id else None,
                  "created_at": now, "created_by": None, "updated_at": now, "updated_by": None,
                  "version": 1}
        session.execute(sa.insert(clients).values(**client))
        for contact in contacts:
            contact["id"] = uuid.uuid4()
            session.execute(sa.insert(contact_table).values(
                **contact, client_id=client["id"], created_at=now, created_by=None,
                updated_at=now, updated_by=None))
        store.replace_identifiers(session, client["id"], identifiers_of(client, contacts))
        store.start_ownership(session, client["id"], owner_id, department_id, "erp", None, now)
        store.audit(session, None, CREATE, now, client["id"],
                    fields=[f for f in CARD_FIELDS if client.get(f)], details={
                        "counterparty_guid": str(incoming.guid),
                        "event_id": str(event.event_id), **owner_note,
                        "contacts": [c["full_name"] for c in contacts], "skipped": skipped,
                        "problems": incoming.problems, "possible_duplicates": possible})
        self.outbox.emit(session, "client_created",
                         {**snapshot(client, None), "source": client["source"]})
        if incoming.problems or skipped:
            log.info("client %s created from 1C counterparty %s without %s %s", client["id"],
                     incoming.guid, incoming.problems, skipped)

    def _erp_owner(self, session, incoming: Counterparty, card: dict):
        """(owner, department, what the audit says about them) of a client made from 1C."""
        people = session.execute(sa.select(staff).where(
            staff.c.active.is_(True), staff.c.role.in_(OWNER_ROLES))).mappings().all()
        match = match_manager(incoming.manager_name, [dict(p) for p in people])
        note = {"manager_name": incoming.manager_name, "owner_match": match.reason}
        if match.candidates:
            note["owner_candidates"] = match.candidates
        if match.member is not None:
            member = match.member
            return member["user_id"], member["department_id"], note
        rows = session.execute(sa.select(departments)).mappings().all()
        department_id, why = choose_department(self._erp_department(), card.get("region"),
                                               [dict(r) for r in rows])
        note["department_by"] = why
        return None, department_id, note

    def _erp_department(self) -> uuid.UUID | None:
        value = self.config.get("ERP_CLIENTS_DEPARTMENT_ID")
        if value in (None, ""):
            return None
        try:
            return uuid.UUID(str(value))
        except ValueError:
            log.error("ERP_CLIENTS_DEPARTMENT_ID %r is not a UUID: ignored", value)
            return None

    def _erp_unmatched(self, session, incoming: Counterparty, candidates, event, now) -> None:
        """Several clients could be this counterparty (branches of one INN and 1C sent no KPP):
        none is linked and none created — a person decides (the audit names the candidates)."""
        ids = [str(c["id"]) for c in candidates]
        store.audit(session, None, UNMATCHED, now, None, details={
            "counterparty_guid": str(incoming.guid), "event_id": str(event.event_id),
            "inn": incoming.inn, "kpp": incoming.kpp, "name": incoming.card["short_name"],
            "candidates": ids})
        log.warning("1C counterparty %s (INN %s, KPP %s) fits several clients %s: not linked",
                    incoming.guid, incoming.inn, incoming.kpp, ids)
