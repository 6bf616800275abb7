"""Auto-reactions: overdue tasks, stalled deals, forgotten clients, missed calls; learned limits.

The scans run on a timer in every replica; each claims its rows with ``FOR UPDATE SKIP LOCKED``
and marks them in the same transaction, so two replicas never react twice to one thing. The nightly
learning takes a lease row in ``jobs`` the same way.

Config: ``REACTION_SCAN_SECONDS`` (60; 0 turns the timer off), ``NO_INTERACTION_DAYS`` (30),
``CALLBACK_MINUTES`` (30: working minutes to call back a missed call), ``LEARN_EVERY_HOURS`` (24).
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
from crm_platform.inbox import claim_event
from crm_platform.rpc import rpc

from . import client_timeline, moves, store
from .models import client_replica, deals, funnels, jobs, stage_history, tasks

SCAN_BATCH = 500
LEARN_WINDOW_DAYS = 365
# When this process last ran the scans (the timer ticks every 10 s; REACTION_SCAN_SECONDS decides).
_last_scan: dict[str, float] = {}


class ReactionEntrypoints:
    # -- the periodic scans ------------------------------------------------------------------------
    @timer(interval=10)
    def periodic_scans(self):
        every = as_int(self.config.get("REACTION_SCAN_SECONDS"), 60)
        if every <= 0 or time.monotonic() - _last_scan.get("at", -1e9) < every:
            return
        _last_scan["at"] = time.monotonic()
        self._scan_all()
        self._learn_if_due()

    @rpc
    def run_scans(self) -> dict:
        """Run every scan now (admin; also what the timer does): how many of each reacted."""
        self.caller.require("admin", "integration")
        return self._scan_all()

    def _scan_all(self) -> dict:
        counts = {"overdue_tasks": 0, "stalled_deals": 0, "forgotten_clients": 0}
        for key, scan in (("overdue_tasks", self._scan_overdue),
                          ("stalled_deals", self._scan_stalled),
                          ("forgotten_clients", self._scan_forgotten)):
            while True:
                with self.db.session() as session:
                    found = scan(session, utcnow())
                counts[key] += found
                if found < SCAN_BATCH:
                    break
        return counts

    def _scan_overdue(self, session, now) -> int:
        rows = session.execute(sa.select(tasks).where(
            tasks.c.status == "open", tasks.c.overdue_at.is_(None), tasks.c.due_at < now)
            .order_by(tasks.c.due_at).limit(SCAN_BATCH)
            .with_for_update(skip_locked=True)).mappings().all()
        for task in rows:
            session.execute(sa.update(tasks).where(tasks.c.id == task["id"]).values(
                overdue_at=now))
            head = store.head_of(session, task["department_id"])
            self.outbox.emit(session, "task_overdue", {**moves.task_payload(task),
                                                       "head_user_id": head})
            who = store.names_of(session, [task["assignee_id"]]).get(task["assignee_id"])
            store.notify(session, task["assignee_id"], "task_overdue",
                         f"Просрочена задача: {task['title']}", now, task_id=task["id"],
                         deal_id=task["deal_id"], client_id=task["client_id"])
            if head is not None and head != task["assignee_id"]:
                store.notify(session, head, "task_overdue",
                             f"{who or 'Очередь отдела'}: просрочена задача «{task['title']}»",
                             now, task_id=task["id"], deal_id=task["deal_id"],
                             client_id=task["client_id"])
        return len(rows)

    def _scan_stalled(self, session, now) -> int:
        rows = session.execute(sa.select(deals).where(
            deals.c.stalled_at.is_(None), deals.c.closed_at.is_(None),
            deals.c.stage_deadline_at < now).order_by(deals.c.stage_deadline_at)
            .limit(SCAN_BATCH).with_for_update(skip_locked=True)).mappings().all()
        if not rows:
            return 0
        funnels_ = store.funnels_by_id(session)
        calendar = store.work_calendar(session)
        for deal in rows:
            funnel = store.funnel_of(funnels_[deal["funnel_id"]])
            stage_title = funnel.settings(deal["stage"]).title
            limit_hours = (deal["stage_deadline_at"] - deal["stage_entered_at"]).total_seconds() \
                / 3600
            session.execute(sa.update(deals).where(deals.c.id == deal["id"]).values(
                stalled_at=now))
            task = moves.create_task(
                session, self.outbox, at=now, deal_id=deal["id"], client_id=deal["client_id"],
                assignee_id=deal["owner_id"], department_id=deal["department_id"], kind="task",
                title=f"Сделка зависла на этапе «{stage_title}»: решите, как её двигать",
                source="stalled", stage=deal["stage"], on_leave="close",
                due_at=calendar.due(now, 1, "working_days"))
            head = store.head_of(session, deal["department_id"])
            self.outbox.emit(session, "deal_stalled", {
                "deal_id": deal["id"], "client_id": deal["client_id"],
                "owner_id": deal["owner_id"], "department_id": deal["department_id"],
                "head_user_id": head, "stage": deal["stage"],
                "stage_entered_at": deal["stage_entered_at"], "limit_hours": limit_hours,
                "task_id": task["id"]})
            store.add_to_timeline(session, deal["id"], now, "stalled", f"{now.isoformat()}", {
                "stage": deal["stage"], "stage_title": stage_title,
                "since": deal["stage_entered_at"], "task_id": task["id"]})
            owner = store.names_of(session, [deal["owner_id"]]).get(deal["owner_id"])
            if head is not None:
                store.notify(session, head, "deal_stalled",
                             f"{owner or 'Менеджер'}: сделка «{deal['title']}» зависла на этапе "
                             f"«{stage_title}»", now, deal_id=deal["id"],
                             client_id=deal["client_id"])
        return len(rows)

    def _scan_forgotten(self, session, now) -> int:
        days = as_int(self.config.get("NO_INTERACTION_DAYS"), 30)
        if days <= 0:
            return 0
        since = now - timedelta(days=days)
        last = sa.func.coalesce(client_replica.c.last_interaction_at, client_replica.c.created_at)
        rows = session.execute(sa.select(client_replica).where(
            client_replica.c.owner_id.isnot(None), client_replica.c.merged_into.is_(None),
            client_replica.c.reminded_at.is_(None), last < since).order_by(last)
            .limit(SCAN_BATCH).with_for_update(skip_locked=True)).mappings().all()
        if not rows:
            return 0
        calendar = store.work_calendar(session)
        for client in rows:
            session.execute(sa.update(client_replica).where(
                client_replica.c.client_id == client["client_id"]).values(reminded_at=now))
            owner = store.person(session, client["owner_id"])
            department = owner["department_id"] if owner else client["department_id"]
            task = moves.create_task(
                session, self.outbox, at=now, client_id=client["client_id"],
                assignee_id=client["owner_id"], department_id=department, kind="call",
                title=f"Нет контакта с клиентом «{client['short_name']}» больше {days} дн.: "
                      f"позвоните", source="no_interaction",
                due_at=calendar.due(now, 1, "working_days"))
            head = store.head_of(session, department)
            if head is not None and head != client["owner_id"]:
                store.notify(session, head, "client_forgotten",
                             f"{owner['full_name'] if owner else 'Менеджер'}: клиент "
                             f"«{client['short_name']}» без контакта больше {days} дн.", now,
                             task_id=task["id"], client_id=client["client_id"])
        return len(rows)

    # -- learned limits and win rates --------------------------------------------------------------
    def _learn_if_due(self) -> None:
        every = timedelta(hours=as_int(self.config.get("LEARN_EVERY_HOURS"), 24))
        now = utcnow()
        with self.db.session() as session:
            session.execute(pg_insert(jobs).values(name="learn_limits").on_conflict_do_nothing())
            job = session.execute(sa.select(jobs).where(jobs.c.name == "learn_limits")
                                  .with_for_update(skip_locked=True)).mappings().first()
            if job is None or (job["last_run_at"] and job["last_run_at"] > now - every):
                return
            self._learn(session, now)
            session.execute(sa.update(jobs).where(jobs.c.name == "learn_limits").values(
                last_run_at=now))

    @rpc
    def learn_now(self) -> dict:
        """Recompute the learned stage limits and win rates now (admin)."""
        self.caller.require("admin", "director")
        with self.db.session() as session:
            return self._learn(session, utcnow())

    def _learn(self, session, now) -> dict:
        """Per funnel and stage, over deals closed in the last 12 months: the 75th percentile of
        the hours won deals spent in the stage (the learned limit), and the share of deals that
        passed the stage and were won (the learned win rate for the forecast)."""
        since = now - timedelta(days=LEARN_WINDOW_DAYS)
        hours = sa.extract("epoch", stage_history.c.left_at - stage_history.c.at) / 3600
        limits = session.execute(sa.select(
            stage_history.c.funnel_id, stage_history.c.to_stage,
            sa.func.percentile_cont(0.75).within_group(hours).label("p75"),
            sa.func.count().label("samples"))
            .join(deals, deals.c.id == stage_history.c.deal_id)
            .where(deals.c.stage == "closed_won", deals.c.closed_at >= since,
                   stage_history.c.left_at.isnot(None))
            .group_by(stage_history.c.funnel_id, stage_history.c.to_stage)).all()
        rates = session.execute(sa.select(
            stage_history.c.funnel_id, stage_history.c.to_stage,
            sa.func.count(sa.distinct(deals.c.id)).filter(
                deals.c.stage == "closed_won").label("won"),
            sa.func.count(sa.distinct(deals.c.id)).label("closed"))
            .join(deals, deals.c.id == stage_history.c.deal_id)
            .where(deals.c.closed_at >= since)
            .group_by(stage_history.c.funnel_id, stage_history.c.to_stage)).all()
        learned: dict = {}
        for funnel_id, stage, p75, samples in limits:
            learned.setdefault(funnel_id, {}).setdefault(stage, {}).update(
                {"limit_hours": round(float(p75), 2), "samples": int(samples)})
        for funnel_id, stage, won, closed in rates:
            learned.setdefault(funnel_id, {}).setdefault(stage, {}).update(
                {"win_rate": round(won / closed, 4) if closed else None,
                 "win_samples": int(closed)})
        for row in session.execute(sa.select(funnels).with_for_update()).mappings().all():
            value = {k: v for k, v in learned.get(row["id"], {}).items()}
            session.execute(sa.update(funnels).where(funnels.c.id == row["id"]).values(
                learned=value, learned_at=now))
            self._recompute_deadlines(session, {**row, "learned": value})
        return {str(k): v for k, v in learned.items()}

    # -- calls, e-mails, campaigns -----------------------------------------------------------------
    @event_handler("telephony", "call_registered")
    def handle_call_registered(self, event):
        """A call touches the client and shows on its open deals; a missed inbound call becomes a
        call-back task (one open per caller); a call that reached them closes it."""
        p = event.payload
        now = utcnow()
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            client_id = p["client_id"]
            reached = p["answered"]
            if reached or p["direction"] == "outbound":
                self._touch_client(session, client_id, p["started_at"])
            deal_ids = [p["deal_id"]] if p["deal_id"] else self._open_deals_of_client(
                session, client_id)
            for deal_id in deal_ids:
                store.add_to_timeline(session, deal_id, p["started_at"], "call", str(p["call_id"]),
                                      {k: p[k] for k in (
                                          "call_id", "direction", "answered", "user_id",
                                          "duration_seconds", "talk_seconds", "external_number",
                                          "recording_url")})
            client_timeline.record(session, [client_timeline.entry(
                self._client_of_event(session, p), p["started_at"], "call", p["call_id"],
                client_timeline.call_data(p), deal_id=p["deal_id"])])
            if p["direction"] == "inbound" and not reached:
                self._missed_call(session, p, now)
            elif reached:
                self._called_back(session, p, now)

    def _callback_match(self, p):
        if p["client_id"] is not None:
            return tasks.c.client_id == p["client_id"]
        if p["external_number"]:
            return tasks.c.external_number == p["external_number"]
        return None

    def _missed_call(self, session, p, now):
        match = self._callback_match(p)
        if match is None:
            return
        existing = session.execute(sa.select(tasks).where(
            match, tasks.c.kind == "callback", tasks.c.status == "open").limit(1)
            .with_for_update()).mappings().first()
        if existing is not None:
            session.execute(sa.update(tasks).where(tasks.c.id == existing["id"]).values(
                description=(existing["description"] + "\n" if existing["description"] else "")
                + f"Ещё пропущенный звонок {p['started_at'].isoformat()}",
                version=existing["version"] + 1))
            return
        client = None
        if p["client_id"] is not None:
            client = session.execute(sa.select(client_replica).where(
                client_replica.c.client_id == p["client_id"])).mappings().first()
        assignee = p["user_id"] or (client["owner_id"] if client else None)
        person = store.person(session, assignee)
        department = (person["department_id"] if person else None) or p["department_id"] or (
            client["department_id"] if client else None)
        who = client["short_name"] if client else p["external_number"]
        calendar = store.work_calendar(session)
        minutes = as_int(self.config.get("CALLBACK_MINUTES"), 30)
        moves.create_task(
            session, self.outbox, at=now, client_id=p["client_id"], assignee_id=assignee,
            department_id=department, kind="callback", title=f"Перезвонить: {who}",
            description=f"Пропущенный звонок {p['started_at'].isoformat()}", source="missed_call",
            external_number=p["external_number"],
            due_at=calendar.add_working_time(p["started_at"], timedelta(minutes=minutes)))

    def _called_back(self, session, p, now):
        match = self._callback_match(p)
        if match is None:
            return
        open_ones = session.execute(sa.select(tasks).where(
            match, tasks.c.kind == "callback", tasks.c.status == "open",
            tasks.c.created_at <= p["started_at"]).with_for_update()).mappings().all()
        for task in open_ones:
            moves.close_task(session, self.outbox, task, "done", by=p["user_id"], at=now,
                             result=f"Связались: звонок {p['started_at'].isoformat()}")

    @event_handler("mail", "email_registered")
    def handle_email_registered(self, event):
        p = event.payload
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            self._touch_client(session, p["client_id"], p["sent_at"])
            deal_ids = [p["deal_id"]] if p["deal_id"] else self._open_deals_of_client(
                session, p["client_id"])
            for deal_id in deal_ids:
                store.add_to_timeline(session, deal_id, p["sent_at"], "email", p["message_id"], {
                    "message_id": p["message_id"], "direction": p["direction"],
                    "subject": p["subject"], "user_id": p["user_id"]})
            client_timeline.record(session, [client_timeline.entry(
                self._client_of_event(session, p), p["sent_at"], "email", p["message_id"],
                client_timeline.email_data(p), deal_id=p["deal_id"])])

    @staticmethod
    def _client_of_event(session, p):
        """The client of a call or an e-mail: as matched, else the client of the deal it was
        made from (a lead's deal has none)."""
        if p["client_id"] is not None or not p.get("deal_id"):
            return p["client_id"]
        return session.execute(sa.select(deals.c.client_id).where(
            deals.c.id == p["deal_id"])).scalar()

    @event_handler("clients", "reactivation_call_requested")
    def handle_reactivation_call_requested(self, event):
        """A reactivation campaign's target becomes a call for the owner (or the department's
        queue when the client waits in the pool)."""
        p = event.payload
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            client = session.execute(sa.select(client_replica.c.short_name).where(
                client_replica.c.client_id == p["client_id"])).scalar()
            moves.create_task(
                session, self.outbox, at=utcnow(), client_id=p["client_id"],
                assignee_id=p["owner_id"], department_id=p["department_id"], kind="call",
                title=f"Реактивация «{p['campaign_name']}»: позвонить {client or 'клиенту'}",
                source="reactivation", due_at=p["due_at"], created_by=p["requested_by"])
