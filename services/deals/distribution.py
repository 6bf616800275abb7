"""Entrypoints of the deals service: lead distribution (issue 13, part A). A mixin of
``DealsService`` using its ``db``, ``outbox``, ``caller`` and ``config``.

A lead that comes by itself with no owner — a web form, an unanswered call from an unknown number
(telephony creates those for the department's queue), the released pool — goes to a manager of
the department by the department's settings (``round_robin`` or ``least_loaded`` by open
distributed leads, a per-manager ``daily_cap``, on/off; off by default: the head's queue as
before). Absent people (the directory's ``absence_changed``, replicated here), dismissed ones and
those the head took off duty (``off_duty`` in the settings: present, just not given leads) are
skipped; with nobody available the lead stays with the head, who is told, and is marked
``queued_at``. The settings row is locked while a lead is given out, so two replicas never hand
out the same turn.

*The released pool.* Ownership of clients is the clients service's, and the distribution state
(settings, cursor, caps, absences, open leads) is ours; neither reads the other's tables. So when
clients releases a forgotten client to its department's pool (``client_owner_changed`` with
reason ``release``), this service picks the manager by the same rules — the manager who let the
client go is not given it back — and asks clients to give the client to them
(``assign_pool_client``, as the deals integration identity). Clients emits the owner change, and
the client's open deals and tasks follow it through the usual ``client_owner_changed`` handling.
If the client was claimed meanwhile, nothing happens and the day's count is given back. A head
sending a client to the pool by hand (``arbitration``) is a decision, not a release: not
distributed.

*Escalation.* A distributed lead nobody acts on (stage move, task, call, e-mail, note in its
timeline) within ``LEAD_ESCALATION_MINUTES`` (30) escalates once: a notification and a task for
the sales head. The head reassigning a lead restarts the clock (``assigned_at`` now,
``escalated_at`` cleared): the new manager gets the full N minutes. A lead waiting in the head's
queue because nobody could take it (``queued_at``) that the head has not acted on or given out
within the same N minutes escalates once too, one level up: a notification to every active
director and a repeated one to the head (no task: the head already holds the lead). The scans run
with the other periodic scans' timer pattern and claim rows ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import time
from datetime import timedelta

import sqlalchemy as sa
from nameko.timer import timer
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_platform.clock import utcnow
from crm_platform.config import as_int
from crm_platform.consumer import event_handler
from crm_platform.errors import DomainError, Forbidden, ValidationFailed
from crm_platform.inbox import claim_event
from crm_platform.rpc import rpc

from . import moves, store
from .domain.deal_input import parse_uuid
from .domain.distribution import Candidate, check_settings, escalation_due, pick
from .models import (
    deals,
    departments,
    distribution_counts,
    distribution_settings,
    staff,
    staff_absences,
    tasks,
    timeline,
)

ESCALATION_BATCH = 200
ACTIVITY_KINDS = ("stage", "task", "call", "email", "note")
_last_escalation_scan: dict[str, float] = {}


def _settings_view(department_id, row) -> dict:
    return {"department_id": str(department_id),
            "enabled": bool(row["enabled"]) if row else False,
            "mode": row["mode"] if row else "round_robin",
            "daily_cap": row["daily_cap"] if row else None,
            "off_duty": sorted(str(u) for u in (row["off_duty"] or [])) if row else []}


class DistributionEntrypoints:
    # -- settings ---------------------------------------------------------------------------------
    def _department_for_settings(self, identity, department_id: str):
        dept = parse_uuid(department_id, "department_id")
        if identity.role == "sales_head" and str(dept) != identity.department_id:
            raise Forbidden("Настройки другого отдела", code="department_forbidden")
        return dept

    @rpc
    def get_distribution(self, department_id: str) -> dict:
        """The lead distribution settings of a department (``enabled``, ``mode``,
        ``daily_cap``); off when never set."""
        identity = self.caller.require("sales_head", "director", "admin")
        dept = self._department_for_settings(identity, department_id)
        with self.db.session() as session:
            row = session.execute(sa.select(distribution_settings).where(
                distribution_settings.c.department_id == dept)).mappings().first()
            return _settings_view(dept, row)

    @rpc
    def set_distribution(self, department_id: str, data: dict) -> dict:
        """Set a department's lead distribution: ``enabled`` (bool), ``mode`` (``round_robin`` |
        ``least_loaded``), ``daily_cap`` (leads a manager gets a day at most, null: no cap),
        ``off_duty`` (ids of the department's managers not given leads for now; empty: all on
        duty). The admin, or the department's sales head."""
        identity = self.caller.require("sales_head", "admin")
        dept = self._department_for_settings(identity, department_id)
        clean, errors = check_settings(data or {})
        if errors:
            raise ValidationFailed("Проверьте настройки распределения", fields=errors)
        now = utcnow()
        with self.db.session() as session:
            if session.execute(sa.select(departments.c.department_id).where(
                    departments.c.department_id == dept)).first() is None:
                raise ValidationFailed("Отдел не найден", fields={
                    "department_id": ["нет такого отдела"]})
            if clean["off_duty"]:
                managers = set(session.execute(sa.select(staff.c.user_id).where(
                    staff.c.department_id == dept, staff.c.role == "manager",
                    staff.c.user_id.in_(clean["off_duty"]))).scalars())
                strangers = [str(u) for u in clean["off_duty"] if u not in managers]
                if strangers:
                    raise ValidationFailed("Проверьте настройки распределения", fields={
                        "off_duty": [f"не менеджер этого отдела: {', '.join(strangers)}"]})
            values = {**clean, "updated_at": now, "updated_by": identity.user_id}
            session.execute(pg_insert(distribution_settings).values(
                department_id=dept, **values).on_conflict_do_update(
                index_elements=["department_id"], set_=values))
            return _settings_view(dept, clean)

    # -- giving out a lead ------------------------------------------------------------------------
    def _distribute(self, session, department_id, now, *, exclude=None, what="Новый интерес"):
        """``(manager, queued)``: the manager to give a new ownerless lead of ``department_id``
        to, or None for the department's queue — distribution off (``queued`` False), or nobody
        available (``queued`` True, and the head is told). ``exclude``: a user not to pick."""
        if department_id is None:
            return None, False
        settings = session.execute(sa.select(distribution_settings).where(
            distribution_settings.c.department_id == department_id)
            .with_for_update()).mappings().first()
        if settings is None or not settings["enabled"]:
            return None, False
        day = now.date()
        off_duty = set(settings["off_duty"] or ())
        people = session.execute(sa.select(staff.c.user_id, staff.c.role, staff.c.active).where(
            staff.c.department_id == department_id, staff.c.role == "manager")).all()
        if exclude is not None:
            people = [p for p in people if str(p.user_id) != str(exclude)]
        ids = [p.user_id for p in people]
        absences: dict = {}
        for row in session.execute(sa.select(staff_absences).where(
                staff_absences.c.user_id.in_(ids), staff_absences.c.cancelled.is_(False),
                staff_absences.c.ends_on >= day)).mappings():
            absences.setdefault(row["user_id"], []).append((row["starts_on"], row["ends_on"]))
        today = dict(session.execute(sa.select(distribution_counts.c.user_id,
                                               distribution_counts.c.count).where(
            distribution_counts.c.user_id.in_(ids), distribution_counts.c.day == day)).all())
        open_leads = dict(session.execute(sa.select(deals.c.owner_id, sa.func.count()).where(
            deals.c.owner_id.in_(ids), deals.c.closed_at.is_(None),
            deals.c.assigned_at.isnot(None)).group_by(deals.c.owner_id)).all())
        candidates = [Candidate(str(p.user_id), p.active, p.role,
                                tuple(absences.get(p.user_id, ())), today.get(p.user_id, 0),
                                open_leads.get(p.user_id, 0), p.user_id not in off_duty)
                      for p in people]
        last = str(settings["last_user_id"]) if settings["last_user_id"] else None
        chosen = pick(settings["mode"], candidates, day, settings["daily_cap"], last)
        if chosen is None:
            head = store.head_of(session, department_id)
            store.notify(session, head, "lead_unassigned",
                         f"{what} в очереди отдела: нет доступных менеджеров "
                         "(отпуск, больничный, не на распределении или дневной лимит)", now)
            return None, True
        chosen = parse_uuid(chosen, "owner_id")
        session.execute(sa.update(distribution_settings).where(
            distribution_settings.c.department_id == department_id).values(last_user_id=chosen))
        session.execute(pg_insert(distribution_counts).values(user_id=chosen, day=day, count=1)
                        .on_conflict_do_update(
                            index_elements=["user_id", "day"],
                            set_={"count": distribution_counts.c.count + 1}))
        return chosen, False

    def _restart_escalation(self, session, row, now) -> dict:
        """The head gave a lead (distributed, or waiting in the queue) to someone: the new owner
        gets the full ``LEAD_ESCALATION_MINUTES`` from now. Other deals are left alone."""
        if row.get("assigned_at") is None and row.get("queued_at") is None:
            return row
        values = {"assigned_at": now, "queued_at": None, "escalated_at": None}
        session.execute(sa.update(deals).where(deals.c.id == row["id"]).values(**values))
        return {**row, **values}

    # -- the released pool ------------------------------------------------------------------------
    @event_handler("clients", "client_owner_changed")
    def handle_client_released(self, event):
        """A forgotten client released to its department's pool is an ownerless lead too: with
        distribution on, ask clients to give it to the manager the rules pick (see the module
        docstring)."""
        p = event.payload
        if p.get("reason") != "release" or p.get("new_owner_id") is not None:
            return
        now = utcnow()
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            department_id = parse_uuid(p.get("new_department_id"), "department_id")
            chosen, _queued = self._distribute(session, department_id, now,
                                               exclude=p.get("previous_owner_id"),
                                               what="Клиент из пула")
            if chosen is None:
                return
            self.caller.act_as(self._deals_identity(department_id))
            try:
                result = self.clients_rpc.assign_pool_client(str(p["client_id"]), str(chosen))
            except DomainError:
                # Gone or merged, or the manager no longer fits: not a lead to give out.
                result = {"assigned": False}
            if not result.get("assigned"):
                session.execute(sa.update(distribution_counts).where(
                    distribution_counts.c.user_id == chosen,
                    distribution_counts.c.day == now.date()).values(
                    count=distribution_counts.c.count - 1))
                return
            store.notify(session, chosen, "client_distributed",
                         "Вам передан клиент из пула отдела (распределение интересов)", now,
                         client_id=parse_uuid(p["client_id"], "client_id"))

    # -- absences (replica of the directory's) ----------------------------------------------------
    @event_handler("directory", "absence_changed")
    def handle_absence_changed(self, event):
        p = event.payload
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            values = {"user_id": p["user_id"], "kind": p["kind"], "starts_on": p["starts_on"],
                      "ends_on": p["ends_on"], "cancelled": p["cancelled"]}
            session.execute(pg_insert(staff_absences).values(
                absence_id=p["absence_id"], **values).on_conflict_do_update(
                index_elements=["absence_id"], set_=values))

    # -- escalation -------------------------------------------------------------------------------
    @timer(interval=10)
    def periodic_lead_escalation(self):
        every = as_int(self.config.get("REACTION_SCAN_SECONDS"), 60)
        if every <= 0 or time.monotonic() - _last_escalation_scan.get("at", -1e9) < every:
            return
        _last_escalation_scan["at"] = time.monotonic()
        self._escalate_all()

    @rpc
    def escalate_leads(self) -> dict:
        """Run the escalation scan now (admin; also what the timer does): ``{"escalated": n}``."""
        self.caller.require("admin", "integration")
        return {"escalated": self._escalate_all()}

    def _escalate_all(self) -> int:
        total = 0
        for scan in (self._escalate, self._escalate_queued):
            while True:
                with self.db.session() as session:
                    looked, escalated = scan(session, utcnow())
                total += escalated
                if looked < ESCALATION_BATCH:
                    break
        return total

    @staticmethod
    def _last_activity(session, deal, since):
        seen = session.execute(sa.select(sa.func.max(timeline.c.at)).where(
            timeline.c.deal_id == deal["id"], timeline.c.kind.in_(ACTIVITY_KINDS),
            timeline.c.at > since)).scalar()
        done = session.execute(sa.select(sa.func.max(tasks.c.completed_at)).where(
            tasks.c.deal_id == deal["id"], tasks.c.completed_at > since)).scalar()
        return max((t for t in (seen, done) if t is not None), default=None)

    def _escalate_queued(self, session, now) -> tuple[int, int]:
        """Leads nobody could take, waiting in the head's queue N minutes untouched: once, a
        notification to the directors and again to the head."""
        minutes = as_int(self.config.get("LEAD_ESCALATION_MINUTES"), 30)
        rows = session.execute(sa.select(deals).where(
            deals.c.queued_at.isnot(None), deals.c.escalated_at.is_(None),
            deals.c.closed_at.is_(None), deals.c.queued_at <= now - timedelta(minutes=minutes))
            .order_by(deals.c.queued_at).limit(ESCALATION_BATCH)
            .with_for_update(skip_locked=True)).mappings().all()
        escalated = 0
        for deal in rows:
            session.execute(sa.update(deals).where(deals.c.id == deal["id"]).values(
                escalated_at=now))
            head = store.head_of(session, deal["department_id"])
            last = self._last_activity(session, deal, deal["queued_at"])
            if deal["owner_id"] != head or not escalation_due(deal["queued_at"], last, now,
                                                              minutes):
                continue            # given out meanwhile (by a client's owner change), or acted on
            directors = list(session.execute(sa.select(staff.c.user_id).where(
                staff.c.role == "director", staff.c.active.is_(True))).scalars())
            dept = session.execute(sa.select(departments.c.name).where(
                departments.c.department_id == deal["department_id"])).scalar()
            text = (f"Интерес «{deal['title']}» ждёт в очереди отдела"
                    f"{f' «{dept}»' if dept else ''} больше {minutes} мин: "
                    "нет менеджеров на распределении")
            for user_id in {*directors, deal["owner_id"]}:
                store.notify(session, user_id, "lead_queue_escalated", text, now,
                             deal_id=deal["id"], client_id=deal["client_id"])
            store.add_to_timeline(session, deal["id"], now, "escalated", now.isoformat(), {
                "queue": True, "director_ids": [str(d) for d in directors],
                "head_user_id": str(deal["owner_id"]), "minutes": minutes})
            escalated += 1
        return len(rows), escalated

    def _escalate(self, session, now) -> tuple[int, int]:
        minutes = as_int(self.config.get("LEAD_ESCALATION_MINUTES"), 30)
        rows = session.execute(sa.select(deals).where(
            deals.c.assigned_at.isnot(None), deals.c.escalated_at.is_(None),
            deals.c.closed_at.is_(None), deals.c.assigned_at <= now - timedelta(minutes=minutes))
            .order_by(deals.c.assigned_at).limit(ESCALATION_BATCH)
            .with_for_update(skip_locked=True)).mappings().all()
        escalated = 0
        for deal in rows:
            last = self._last_activity(session, deal, deal["assigned_at"])
            # Acted on or not, the lead is looked at once: stamped so the scan never returns.
            session.execute(sa.update(deals).where(deals.c.id == deal["id"]).values(
                escalated_at=now))
            if not escalation_due(deal["assigned_at"], last, now, minutes):
                continue
            head = store.head_of(session, deal["department_id"])
            if head is None:
                continue
            owner = store.names_of(session, [deal["owner_id"]]).get(deal["owner_id"])
            text = (f"{owner or 'Менеджер'} не взял в работу интерес «{deal['title']}» "
                    f"за {minutes} мин")
            store.notify(session, head, "lead_escalated", text, now, deal_id=deal["id"],
                         client_id=deal["client_id"])
            moves.create_task(
                session, self.outbox, at=now, deal_id=deal["id"], client_id=deal["client_id"],
                assignee_id=head, department_id=deal["department_id"], kind="task",
                title=f"Интерес не взят в работу: {deal['title']}"[:500],
                source="escalation", due_at=now + timedelta(hours=1))
            store.add_to_timeline(session, deal["id"], now, "escalated", now.isoformat(), {
                "head_user_id": str(head), "minutes": minutes})
            escalated += 1
        return len(rows), escalated
