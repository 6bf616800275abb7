"""Changing deals' stages and the tasks that come with them, in the caller's transaction.

Every move is written the same way whoever makes it (a person, an ERP document, a timer): the
stage history gets a row, the leaving stage's tasks are closed or kept as its template says, the
entering stage's templates create tasks, the deadline for "stalled" is set, the timeline gets an
entry and ``deal_stage_changed`` goes to the outbox — all in one transaction.

The work is done for many deals at once (``enter_stages``): a batch of ERP events moves hundreds of
deals, and doing it in a few multi-row statements instead of a dozen statements per deal is what
lets the funnel keep up with the broker. A single move by hand is a batch of one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from . import client_timeline, store
from .domain.funnel import CLOSED_STAGES, Funnel, payment_status
from .domain.workcalendar import WorkCalendar
from .models import deals, departments, stage_history, tasks

# A learned limit is used only when it stands on this many won deals (else the fixed one).
MIN_LEARNED_SAMPLES = 10


def stage_limit_hours(funnel: Funnel, learned: dict, stage: str) -> tuple[float | None, str]:
    """The stage's limit for the stalled check, in hours, and where it comes from. Fixed limits
    may be in working time; a learned one is the p75 of the calendar hours won deals spent."""
    try:
        settings = funnel.settings(stage)
    except KeyError:
        return None, "none"
    if settings.limit_mode == "learned":
        item = (learned or {}).get(stage) or {}
        if item.get("limit_hours") and item.get("samples", 0) >= MIN_LEARNED_SAMPLES:
            return float(item["limit_hours"]), "learned"
    if settings.limit is None:
        return None, "none"
    return None, "fixed"


def stage_deadline(funnel: Funnel, learned: dict, stage: str, entered_at: datetime,
                   calendar: WorkCalendar) -> datetime | None:
    if stage in CLOSED_STAGES:
        return None
    hours, origin = stage_limit_hours(funnel, learned, stage)
    if origin == "learned":
        return entered_at + timedelta(hours=hours)
    if origin == "fixed":
        limit = funnel.settings(stage).limit
        return calendar.due(entered_at, int(limit["amount"]), limit["unit"])
    return None


def stage_payload(deal, **extra) -> dict:
    return {
        "deal_id": deal["id"], "client_id": deal["client_id"], "owner_id": deal["owner_id"],
        "department_id": deal["department_id"], "region": deal["region"],
        "funnel_id": deal["funnel_id"], "payment_status": deal["payment_status"],
        "amount": deal["amount"], "ordered_amount": deal["ordered_amount"],
        "invoiced_amount": deal["invoiced_amount"], "paid_amount": deal["paid_amount"],
        "shipped_amount": deal["shipped_amount"], **extra,
    }


@dataclass
class Move:
    """One deal to move: its current row (locked by the caller, with any new sums already in
    it), its funnel's row, where to, and why."""

    deal: dict
    funnel_row: dict
    target: str
    document_guid: uuid.UUID | None = None
    lost_reason: str | None = None


# The deal columns a move writes (the same set for every deal, so one executemany does all).
_MOVE_COLUMNS = ("stage", "manual_stage", "stage_entered_at", "stage_deadline_at", "stalled_at",
                 "closed_at", "lost_reason", "payment_status", "updated_at", "version",
                 "ordered_amount", "invoiced_amount", "paid_amount", "shipped_amount",
                 "has_orders")


def enter_stage(session, outbox, deal, funnel_row, target: str, *, cause: str, at: datetime,
                calendar: WorkCalendar, by=None, document_guid=None, lost_reason=None) -> dict:
    """Move one deal; returns its new row."""
    return enter_stages(session, outbox, [Move(dict(deal), funnel_row, target, document_guid,
                                               lost_reason)],
                        cause=cause, at=at, calendar=calendar, by=by)[0]


def enter_stages(session, outbox, items: list[Move], *, cause: str, at: datetime,
                 calendar: WorkCalendar, by=None) -> list[dict]:
    if not items:
        return []
    rows, history, stage_events, stage_entries = [], [], [], []
    for item in items:
        deal, funnel = item.deal, store.funnel_of(item.funnel_row)
        values = {
            "stage": item.target, "stage_entered_at": at,
            "stage_deadline_at": stage_deadline(funnel, item.funnel_row["learned"], item.target,
                                                at, calendar),
            "stalled_at": None, "updated_at": at, "version": deal["version"] + 1,
            "closed_at": at if item.target in CLOSED_STAGES else None,
            "lost_reason": item.lost_reason if item.target == "lost" else None,
            "payment_status": payment_status(store.facts_of_row(deal)),
            "manual_stage": item.target if item.target in funnel.manual_codes
            else deal["manual_stage"],
        }
        row = {**deal, **values}
        rows.append(row)
        history.append({"deal_id": deal["id"], "funnel_id": deal["funnel_id"],
                        "from_stage": deal["stage"], "to_stage": item.target, "at": at,
                        "cause": cause, "changed_by": by, "document_guid": item.document_guid,
                        "lost_reason": values["lost_reason"]})
        stage_events.append(("deal_stage_changed", stage_payload(
            row, from_stage=deal["stage"], to_stage=item.target, at=at, cause=cause,
            changed_by=by, document_guid=item.document_guid,
            lost_reason=values["lost_reason"])))
        stage_entries.append(store.timeline_row(deal["id"], at, "stage",
                                          f"{at.isoformat()}:{item.target}", {
            "from_stage": deal["stage"], "to_stage": item.target, "cause": cause,
            "changed_by": by, "document_guid": item.document_guid,
            "lost_reason": values["lost_reason"], "title": _title(funnel, item.target)}))
    store.bulk_update(session, deals, rows, _MOVE_COLUMNS)
    ids = [r["id"] for r in rows]
    session.execute(sa.update(stage_history).where(
        stage_history.c.deal_id.in_(ids), stage_history.c.left_at.is_(None)).values(left_at=at))
    session.execute(sa.insert(stage_history), history)
    outbox.emit_many(session, stage_events)
    store.upsert_timeline(session, stage_entries)
    client_timeline.record(session, [client_timeline.deal_entry(row["client_id"], entry)
                                     for row, entry in zip(rows, stage_entries, strict=True)])
    previous = {item.deal["id"]: item.deal["stage"] for item in items}
    _leave_stage_tasks(session, outbox, previous, at, by)
    _stage_tasks(session, outbox, [(row, item.funnel_row) for row, item in zip(rows, items,
                                                                              strict=True)],
                 at, calendar, by)
    return rows


def _title(funnel: Funnel, code: str) -> str:
    try:
        return funnel.settings(code).title
    except KeyError:
        return code


def _leave_stage_tasks(session, outbox, previous: dict, at, by):
    """Close the open tasks that the left stage's templates made and said to close."""
    candidates = session.execute(sa.select(tasks).where(
        tasks.c.deal_id.in_(list(previous)), tasks.c.status == "open",
        tasks.c.on_leave == "close")).mappings().all()
    leaving = [t for t in candidates if t["stage"] == previous.get(t["deal_id"])]
    close_tasks(session, outbox, leaving, "cancelled", by=by, at=at,
                result="Закрыта автоматически: сделка перешла на другой этап")


def _stage_tasks(session, outbox, moved: list[tuple[dict, dict]], at, calendar, by):
    heads: dict | None = None
    new_tasks = []
    for deal, funnel_row in moved:
        try:
            templates = store.funnel_of(funnel_row).settings(deal["stage"]).tasks
        except KeyError:
            continue
        for template in templates:
            assignee = deal["owner_id"]
            if template.get("assignee") == "head":
                if heads is None:
                    heads = dict(session.execute(sa.select(
                        departments.c.department_id, departments.c.head_user_id)).all())
                assignee = heads.get(deal["department_id"]) or deal["owner_id"]
            due = template.get("due") or {"amount": 1, "unit": "working_days"}
            new_tasks.append(task_row(
                at=at, created_by=by, deal_id=deal["id"], client_id=deal["client_id"],
                assignee_id=assignee, department_id=deal["department_id"],
                kind=template.get("kind", "task"), title=template["title"], source="stage",
                stage=deal["stage"], on_leave=template.get("on_leave", "close"),
                due_at=calendar.due(at, int(due["amount"]), due["unit"])))
    insert_tasks(session, outbox, new_tasks)


# -- tasks -----------------------------------------------------------------------------------------


def task_payload(task) -> dict:
    return {"task_id": task["id"], "deal_id": task["deal_id"], "client_id": task["client_id"],
            "assignee_id": task["assignee_id"], "department_id": task["department_id"],
            "kind": task["kind"], "title": task["title"], "due_at": task["due_at"],
            "source": task["source"]}


def task_row(*, at, created_by=None, **fields) -> dict:
    task = {"id": uuid.uuid4(), "status": "open", "created_at": at, "created_by": created_by,
            "description": "", "version": 1, **fields}
    for key in ("deal_id", "client_id", "assignee_id", "department_id", "due_at", "starts_at",
                "ends_at", "location", "stage", "on_leave", "external_number", "result",
                "completed_at", "completed_by", "overdue_at"):
        task.setdefault(key, None)
    return task


def insert_tasks(session, outbox, rows: list[dict]) -> None:
    if not rows:
        return
    session.execute(sa.insert(tasks), rows)
    outbox.emit_many(session, [("task_created", task_payload(t)) for t in rows])
    store.upsert_timeline(session, [store.timeline_row(t["deal_id"], t["created_at"], "task",
                                                       str(t["id"]),
                                           task_timeline_data(t)) for t in rows if t["deal_id"]])
    client_timeline.record(session, [client_timeline.task_entry(t, task_timeline_data(t))
                                     for t in rows])


def create_task(session, outbox, *, at, created_by=None, **fields) -> dict:
    task = task_row(at=at, created_by=created_by, **fields)
    insert_tasks(session, outbox, [task])
    return task


def close_tasks(session, outbox, rows, status: str, *, by, at, result=None) -> list[dict]:
    if not rows:
        return []
    closed = [{**t, "status": status, "completed_at": at, "completed_by": by,
               "result": result if result is not None else t["result"],
               "version": t["version"] + 1} for t in rows]
    store.bulk_update(session, tasks, closed,
                      ("status", "completed_at", "completed_by", "result", "version"))
    outbox.emit_many(session, [("task_completed", {
        **task_payload(t), "status": status, "completed_at": at, "completed_by": by})
        for t in closed])
    store.upsert_timeline(session, [store.timeline_row(t["deal_id"], t["created_at"], "task",
                                                       str(t["id"]),
                                           task_timeline_data(t))
                              for t in closed if t["deal_id"]])
    client_timeline.record(session, [client_timeline.task_entry(t, task_timeline_data(t))
                                     for t in closed])
    return closed


def close_task(session, outbox, task, status: str, *, by, at, result=None) -> dict:
    return close_tasks(session, outbox, [dict(task)], status, by=by, at=at, result=result)[0]


def task_timeline_data(task) -> dict:
    return {"task_id": task["id"], "kind": task["kind"], "title": task["title"],
            "status": task["status"], "due_at": task["due_at"],
            "assignee_id": task["assignee_id"], "completed_at": task.get("completed_at"),
            "result": task.get("result"), "source": task["source"]}
