"""Applying events to the read models: the same functions serve the live batch handlers and the
rebuild's replay, so both end in the same figures.

Every ``apply_*`` takes a session (the caller's transaction, in which the events were claimed) and
a list of ``contracts.Event`` of one producer in delivery order. Facts are keyed by natural ids,
so content seen before changes nothing: a call is counted once per ``call_id``, an ERP document
only in its newest ``revision`` (an older one arriving late is ignored), a stage move once per
(deal, moment, stage), a task done or overdue once. Daily rollups get the sum of a batch's changes
in one multi-row upsert per table.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from .domain.funnel import LOST, WON, newly_reached, rank, stay_bucket
from .domain.periods import local_day
from .models import (
    NONE_ID,
    ROLLUPS,
    Rollup,
    call_facts,
    calls_rollup,
    client_changes,
    client_facts,
    clients_rollup,
    deal_facts,
    departments,
    email_facts,
    emails_rollup,
    erp_documents,
    erp_rollup,
    funnel_rollup,
    leads_rollup,
    sales_plans,
    staff,
    stage_moves,
    stage_stays,
    stay_histogram,
    task_facts,
    task_marks,
    tasks_rollup,
)
from .roi import apply_campaign_changed, record_lead_source

DIM_KEYS = ("user_id", "department_id", "region", "segment")
TERMINAL = (WON, LOST)


def _id(value) -> uuid.UUID | None:
    if value is None:
        return None
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


class Rollups:
    """Increments of the rollups collected over a batch, written in one multi-row upsert per
    table (``n = n + excluded.n``), in key order so concurrent writers lock alike."""

    def __init__(self):
        self._rows: dict[tuple, dict] = {}

    def add(self, rollup: Rollup, day, dims: dict, measures: dict, **extra) -> None:
        extra_values = tuple(extra[name] for name in rollup.extra)
        dim_values = tuple(dims[k] for k in DIM_KEYS)
        for table, key in ((rollup.daily, (day, *dim_values)),
                           (rollup.by_user, (day, *dim_values[:2])),
                           (rollup.monthly, (day.replace(day=1), *dim_values)),
                           (rollup.monthly_by_user, (day.replace(day=1), *dim_values[:2]))):
            row = self._rows.setdefault((table.name, *key, *extra_values), defaultdict(int))
            for name, value in measures.items():
                row[name] += value

    def flush(self, session) -> None:
        by_table: dict[str, list[dict]] = defaultdict(list)
        for key in sorted(self._rows, key=str):
            name, *values = key
            columns = list(TABLES[name].primary_key.columns.keys())
            by_table[name].append({**dict(zip(columns, values, strict=True)), **self._rows[key]})
        for name, rows in by_table.items():
            table = TABLES[name]
            key_columns = set(table.primary_key.columns.keys())
            measures = sorted({k for row in rows for k in row} - key_columns)
            for row in rows:
                for measure in measures:
                    row.setdefault(measure, 0)
            stmt = pg_insert(table)
            stmt = stmt.on_conflict_do_update(
                index_elements=list(key_columns),
                set_={m: table.c[m] + stmt.excluded[m] for m in measures})
            for start in range(0, len(rows), 1000):
                session.execute(stmt, rows[start:start + 1000])
        self._rows.clear()


TABLES = {table.name: table for rollup in ROLLUPS for table in rollup.tables}


class Dimensions:
    """Who, which department, region and segment a figure belongs to, as the read models know
    them now: the manager's department (else the one the event names), the client's region
    (else the department's first region) and segment. Loaded once per batch."""

    def __init__(self, session, user_ids=(), client_ids=()):
        users = {u for u in map(_id, user_ids) if u}
        clients = {c for c in map(_id, client_ids) if c}
        self.staff = {}
        if users:
            self.staff = dict(session.execute(
                sa.select(staff.c.user_id, staff.c.department_id)
                .where(staff.c.user_id.in_(users))).all())
        self.clients = {}
        if clients:
            self.clients = {r.client_id: r for r in session.execute(
                sa.select(client_facts.c.client_id, client_facts.c.owner_id,
                          client_facts.c.department_id, client_facts.c.region,
                          client_facts.c.segment, client_facts.c.known)
                .where(client_facts.c.client_id.in_(clients)))}
        self.regions = {row.department_id: (row.regions or [""])[0] for row in session.execute(
            sa.select(departments.c.department_id, departments.c.regions))}

    def of(self, user_id=None, client_id=None, department_id=None, region=None) -> dict:
        user = _id(user_id)
        client = self.clients.get(_id(client_id)) if client_id else None
        department = self.staff.get(user) if user else None
        department = department or _id(department_id)
        return {
            "user_id": user or NONE_ID,
            "department_id": department or NONE_ID,
            "region": (client.region if client is not None and client.region else None)
            or region or self.regions.get(department, "") or "",
            "segment": (client.segment if client is not None else "") or "",
        }

    def owner_of(self, client_id) -> dict:
        """The dimensions of a client's figures: its owner's (ERP documents)."""
        client = self.clients.get(_id(client_id)) if client_id else None
        if client is None:
            return {"user_id": NONE_ID, "department_id": NONE_ID, "region": "", "segment": ""}
        department = client.department_id if client.department_id != NONE_ID else None
        return {"user_id": client.owner_id, "department_id": client.department_id,
                "region": client.region or self.regions.get(department, "") or "",
                "segment": client.segment or ""}


def touch_clients(session, touched: dict) -> None:
    """Move the clients' last interaction forward (never back); a client not known yet gets a
    row its card fills in later."""
    if not touched:
        return
    rows = [{"client_id": cid, "owner_id": NONE_ID, "department_id": NONE_ID,
             "last_interaction_at": at} for cid, at in sorted(touched.items())]
    stmt = pg_insert(client_facts)
    touched_at = stmt.excluded.last_interaction_at
    session.execute(stmt.on_conflict_do_update(
        index_elements=["client_id"],
        set_={"last_interaction_at": sa.func.greatest(
            sa.func.coalesce(client_facts.c.last_interaction_at, touched_at), touched_at)}),
        rows)


def _touch(touched: dict, client_id, at: datetime) -> None:
    cid = _id(client_id)
    if cid is not None and (touched.get(cid) is None or touched[cid] < at):
        touched[cid] = at


# -- telephony ------------------------------------------------------------------------------------

def apply_calls(session, events, tz: ZoneInfo) -> int:
    """``call_registered``: a call counted once per call id."""
    payloads = {}
    for event in events:
        payloads.setdefault(_id(event.payload["call_id"]), event.payload)
    if not payloads:
        return 0
    dims = Dimensions(session, [p["user_id"] for p in payloads.values()],
                      [p["client_id"] for p in payloads.values()])
    rows = []
    for call_id, p in payloads.items():
        d = dims.of(p["user_id"], p["client_id"], p["department_id"])
        rows.append({"call_id": call_id, "day": local_day(p["started_at"], tz),
                     "started_at": p["started_at"], **d, "client_id": p["client_id"],
                     "deal_id": p["deal_id"], "inbound": int(p["direction"] == "inbound"),
                     "answered": int(p["answered"]),
                     "targeted": int(bool(p["client_id"] or p["deal_id"])),
                     "talk_seconds": int(p.get("talk_seconds") or 0)})
    inserted = set()
    stmt = pg_insert(call_facts).on_conflict_do_nothing().returning(call_facts.c.call_id)
    for start in range(0, len(rows), 1000):
        inserted.update(r.call_id for r in session.execute(stmt, rows[start:start + 1000]))
    rollups, touched = Rollups(), {}
    for row in rows:
        if row["call_id"] not in inserted:
            continue
        rollups.add(calls_rollup, row["day"], row, {
            "calls": 1, "inbound": row["inbound"], "answered": row["answered"],
            "targeted": row["targeted"], "talk_seconds": row["talk_seconds"]})
        if row["answered"]:
            _touch(touched, row["client_id"], row["started_at"])
    rollups.flush(session)
    touch_clients(session, touched)
    return len(inserted)


# -- mail -----------------------------------------------------------------------------------------

def apply_emails(session, events, tz: ZoneInfo) -> int:
    """``email_registered``: one per message and mailbox."""
    payloads = {}
    for event in events:
        p = event.payload
        payloads.setdefault((p["message_id"], _id(p["user_id"]) or NONE_ID), p)
    if not payloads:
        return 0
    dims = Dimensions(session, [p["user_id"] for p in payloads.values()],
                      [p["client_id"] for p in payloads.values()])
    rows = [{"message_id": key[0], "mailbox_user": key[1], "day": local_day(p["sent_at"], tz),
             **dims.of(p["user_id"], p["client_id"]), "client_id": p["client_id"],
             "inbound": int(p["direction"] == "inbound"), "_at": p["sent_at"]}
            for key, p in payloads.items()]
    stmt = pg_insert(email_facts).on_conflict_do_nothing().returning(
        email_facts.c.message_id, email_facts.c.mailbox_user)
    inserted = set()
    for start in range(0, len(rows), 1000):
        chunk = [{k: v for k, v in r.items() if k != "_at"} for r in rows[start:start + 1000]]
        inserted.update((r.message_id, r.mailbox_user) for r in session.execute(stmt, chunk))
    rollups, touched = Rollups(), {}
    for row in rows:
        if (row["message_id"], row["mailbox_user"]) in inserted:
            rollups.add(emails_rollup, row["day"], row, {"emails": 1, "inbound": row["inbound"]})
            _touch(touched, row["client_id"], row["_at"])
    rollups.flush(session)
    touch_clients(session, touched)
    return len(inserted)


# -- clients --------------------------------------------------------------------------------------

def _potential(status) -> int:
    return int(status == "potential")


def apply_clients(session, events, tz: ZoneInfo) -> int:
    """``client_created`` / ``client_updated`` (the card, newest snapshot wins),
    ``client_owner_changed``, ``clients_merged``, ``campaign_changed`` (budgets, for ``roi``).
    Counted: a client created (once), and every move into or out of "potential" (the growth of
    potential clients)."""
    rollups = Rollups()
    applied = 0
    for event in events:
        p = event.payload
        if event.type in ("client_created", "client_updated"):
            applied += _apply_client_card(session, event, tz, rollups)
        elif event.type == "client_owner_changed":
            new_owner = _id(p["new_owner_id"]) or NONE_ID
            dims = Dimensions(session, [new_owner])
            department = _id(p["new_department_id"]) or dims.staff.get(new_owner) or NONE_ID
            session.execute(sa.update(client_facts)
                            .where(client_facts.c.client_id == p["client_id"])
                            .values(owner_id=new_owner, department_id=department))
            applied += 1
        elif event.type == "clients_merged":
            applied += _merge_clients(session, event, tz, rollups)
        elif event.type == "campaign_changed":       # budgets for the ROI report (roi.py)
            apply_campaign_changed(session, p)
            applied += 1
    rollups.flush(session)
    return applied


def _apply_client_card(session, event, tz, rollups) -> int:
    p = event.payload
    client_id = _id(p["client_id"])
    current = session.execute(sa.select(client_facts).where(
        client_facts.c.client_id == client_id).with_for_update()).mappings().first()
    owner = _id(p["owner_id"]) or NONE_ID
    dims = Dimensions(session, [owner])
    department = _id(p["department_id"]) or dims.staff.get(owner) or NONE_ID
    card = {"short_name": p["short_name"][:300], "owner_id": owner, "department_id": department,
            "region": p["region"] or "", "segment": (p["segment"] or "")[:50],
            "status": p["status"], "known": True, "snapshot_at": event.occurred_at}
    newer = current is None or current["snapshot_at"] is None \
        or current["snapshot_at"] < event.occurred_at
    created = event.type == "client_created" and (current is None or current["created_at"] is None)
    if not newer and not created:
        return 0
    values = dict(card) if newer else {}
    if created:
        values["created_at"] = event.occurred_at
    if current is None:
        session.execute(sa.insert(client_facts).values(client_id=client_id, **card,
                                                       created_at=values.get("created_at")))
    else:
        session.execute(sa.update(client_facts).where(client_facts.c.client_id == client_id)
                        .values(**values))
    old_status = current["status"] if current is not None else None
    delta = (_potential(p["status"]) - _potential(old_status)) if newer else 0
    if created or delta:
        day = local_day(event.occurred_at, tz)
        d = {"user_id": owner, "department_id": department,
             "region": card["region"] or dims.regions.get(department, "") or "",
             "segment": card["segment"]}
        session.execute(sa.insert(client_changes).values(
            client_id=client_id, day=day, **d, created=int(created), potential_delta=delta))
        rollups.add(clients_rollup, day, d, {"created": int(created), "potential_delta": delta})
    return 1


def _merge_clients(session, event, tz, rollups) -> int:
    p = event.payload
    merged, survivor = _id(p["merged_id"]), _id(p["survivor_id"])
    gone = session.execute(sa.delete(client_facts).where(client_facts.c.client_id == merged)
                           .returning(client_facts)).mappings().first()
    if gone is None:
        return 0
    if gone["status"] == "potential":   # the duplicate leaves the potential clients
        day = local_day(event.occurred_at, tz)
        d = {"user_id": gone["owner_id"], "department_id": gone["department_id"],
             "region": gone["region"], "segment": gone["segment"]}
        session.execute(sa.insert(client_changes).values(
            client_id=survivor, day=day, **d, created=0, potential_delta=-1))
        rollups.add(clients_rollup, day, d, {"created": 0, "potential_delta": -1})
    if gone["last_interaction_at"] is not None:
        touch_clients(session, {survivor: gone["last_interaction_at"]})
    for table in (call_facts, email_facts, deal_facts, erp_documents, task_facts, task_marks,
                  stage_stays, client_changes):
        session.execute(sa.update(table).where(table.c.client_id == merged)
                        .values(client_id=survivor))
    return 1


# -- deals and tasks ------------------------------------------------------------------------------

def apply_deals(session, events, tz: ZoneInfo) -> int:
    """The deals service's events, in order: deals created (new leads; the funnel's first
    stage), changed, moved (stays in stages, stages reached, lost), stalled; tasks created, done
    and overdue."""
    rollups, touched = Rollups(), {}
    users = [e.payload.get("owner_id") or e.payload.get("assignee_id")
             or e.payload.get("completed_by") for e in events]
    clients = [e.payload.get("client_id") for e in events]
    dims = Dimensions(session, users, clients)
    applied = 0
    tasks = []
    for event in events:
        if event.type in TASK_EVENTS:
            tasks.append(event)   # in bulk below: they touch nothing the deal events read
            continue
        handler = _DEAL_HANDLERS[event.type]
        applied += handler(session, event, tz, dims, rollups, touched)
    applied += _apply_tasks(session, tasks, tz, dims, rollups, touched)
    rollups.flush(session)
    touch_clients(session, touched)
    return applied


TASK_EVENTS = ("task_created", "task_completed", "task_overdue")


def _apply_tasks(session, events, tz, dims, rollups, touched) -> int:
    """Task events of a batch in a few multi-row statements: created (a task row once), then
    completed (closed; "done" marked once), then overdue (flagged; marked once)."""
    created, completed, overdue = {}, {}, {}
    marks = []   # (row, mark, at)
    for event in events:
        p = event.payload
        row = {"task_id": _id(p["task_id"]), **_task_values(p, dims)}
        if event.type == "task_created":
            created.setdefault(row["task_id"], {**row, "open": True, "overdue": False})
        elif event.type == "task_completed":
            completed[row["task_id"]] = {**row, "open": False, "overdue": False}
            if p["status"] == "done":
                marks.append((p, "done", p["completed_at"], p["completed_by"] or p["assignee_id"]))
        else:
            overdue[row["task_id"]] = {**row, "open": True, "overdue": True}
            marks.append((p, "overdue", event.occurred_at, p["assignee_id"]))
    if created:
        session.execute(pg_insert(task_facts).on_conflict_do_nothing(), list(created.values()))
    for rows, column, value in ((completed, "open", False), (overdue, "overdue", True)):
        if rows:
            session.execute(pg_insert(task_facts).on_conflict_do_update(
                index_elements=["task_id"], set_={column: value}), list(rows.values()))
    if marks:
        rows = {}
        for p, mark, at, user in marks:
            d = dims.of(user, p["client_id"], p["department_id"])
            rows.setdefault((_id(p["task_id"]), mark), {
                "task_id": _id(p["task_id"]), "mark": mark, "day": local_day(at, tz), **d,
                "client_id": p["client_id"], "_at": at})
        values = list(rows.values())
        fresh = set()
        stmt = pg_insert(task_marks).on_conflict_do_nothing().returning(
            task_marks.c.task_id, task_marks.c.mark)
        for start in range(0, len(values), 1000):
            chunk = [{k: v for k, v in r.items() if k != "_at"}
                     for r in values[start:start + 1000]]
            fresh.update((r.task_id, r.mark) for r in session.execute(stmt, chunk))
        for row in values:
            if (row["task_id"], row["mark"]) in fresh:
                rollups.add(tasks_rollup, row["day"], row, {f"tasks_{row['mark']}": 1})
                if row["mark"] == "done":
                    _touch(touched, row["client_id"], row["_at"])
    return len(events)


def _deal_created(session, event, tz, dims, rollups, touched) -> int:
    p = event.payload
    created_at = p["created_at"]
    d = dims.of(p["owner_id"], p["client_id"], p["department_id"], p["region"])
    day = local_day(created_at, tz)
    stage = p["stage"] or "new"
    inserted = session.execute(pg_insert(deal_facts).values(
        deal_id=p["deal_id"], day=day, **d, client_id=p["client_id"],
        title=(p["title"] or "")[:300], source=(p["source"] or "")[:30], created_at=created_at,
        owner_id=d["user_id"], owner_department_id=d["department_id"], stage=stage,
        stage_entered_at=created_at, max_rank=rank(stage), lost=stage == LOST,
        open=stage not in TERMINAL, amount=p["amount"],
    ).on_conflict_do_nothing().returning(deal_facts.c.deal_id)).first()
    if inserted is None:
        return 0
    record_lead_source(session, p)          # the ROI report's source (roi.py)
    rollups.add(leads_rollup, day, d, {"leads": 1}, source=(p["source"] or "")[:30])
    for reached in newly_reached(0, stage) + ([LOST] if stage == LOST else []):
        rollups.add(funnel_rollup, day, d, {"deals": 1}, stage=reached)
    session.execute(pg_insert(stage_moves).values(deal_id=p["deal_id"], at=created_at,
                                                  to_stage=stage).on_conflict_do_nothing())
    if stage not in TERMINAL:
        session.execute(pg_insert(stage_stays).values(
            deal_id=p["deal_id"], entered_at=created_at, stage=stage, day=day, **d,
            client_id=p["client_id"]).on_conflict_do_nothing())
    _touch(touched, p["client_id"], created_at)
    return 1


def _deal_updated(session, event, tz, dims, rollups, touched) -> int:
    p = event.payload
    d = dims.of(p["owner_id"], None, p["department_id"])
    session.execute(sa.update(deal_facts).where(deal_facts.c.deal_id == p["deal_id"]).values(
        owner_id=d["user_id"], owner_department_id=d["department_id"], client_id=p["client_id"],
        amount=p["amount"], expected_close_date=p["expected_close_date"],
        probability=p["probability"]))
    return 1


def _deal_stage_changed(session, event, tz, dims, rollups, touched) -> int:
    p = event.payload
    at, to_stage = p["at"], p["to_stage"]
    fresh = session.execute(pg_insert(stage_moves).values(
        deal_id=p["deal_id"], at=at, to_stage=to_stage).on_conflict_do_nothing()
        .returning(stage_moves.c.deal_id)).first()
    if fresh is None:
        return 0
    deal = session.execute(sa.select(deal_facts).where(deal_facts.c.deal_id == p["deal_id"])
                           .with_for_update()).mappings().first()
    d_now = dims.of(p["owner_id"], p["client_id"], p["department_id"], p["region"])
    if deal is None:   # its creation is not known (history cut off): it starts here
        session.execute(sa.insert(deal_facts).values(
            deal_id=p["deal_id"], day=local_day(at, tz), **d_now, client_id=p["client_id"],
            created_at=at, owner_id=d_now["user_id"], owner_department_id=d_now["department_id"],
            stage=to_stage, stage_entered_at=at, max_rank=0))
        deal = session.execute(sa.select(deal_facts).where(
            deal_facts.c.deal_id == p["deal_id"])).mappings().first()
    cohort = {k: deal[k] for k in DIM_KEYS}
    closed = session.execute(sa.update(stage_stays).where(
        stage_stays.c.deal_id == p["deal_id"], stage_stays.c.left_at.is_(None),
        stage_stays.c.entered_at <= at).values(
        left_at=at, seconds=sa.extract(
            "epoch", sa.literal(at, sa.DateTime(timezone=True)) - stage_stays.c.entered_at))
        .returning(stage_stays.c.day, stage_stays.c.department_id, stage_stays.c.stage,
                   stage_stays.c.seconds)).all()
    for stay in closed:
        _count_stay(session, stay)
    if to_stage not in TERMINAL:
        session.execute(pg_insert(stage_stays).values(
            deal_id=p["deal_id"], entered_at=at, stage=to_stage, day=local_day(at, tz), **d_now,
            client_id=p["client_id"]).on_conflict_do_nothing())
    reached = newly_reached(deal["max_rank"], to_stage)
    lost_now = to_stage == LOST and not deal["lost"]
    for stage in reached + ([LOST] if lost_now else []):
        rollups.add(funnel_rollup, deal["day"], cohort, {"deals": 1}, stage=stage)
    values = {"stage": to_stage, "stage_entered_at": at, "open": to_stage not in TERMINAL,
              "max_rank": max(deal["max_rank"], rank(to_stage)), "lost": deal["lost"] or lost_now,
              "stalled_at": None, "owner_id": d_now["user_id"],
              "owner_department_id": d_now["department_id"], "client_id": p["client_id"]}
    if p["amount"] is not None:
        values["amount"] = p["amount"]
    if deal["stage_entered_at"] > at:   # a late, older move: history only, not the state
        values = {"max_rank": values["max_rank"], "lost": values["lost"]}
    session.execute(sa.update(deal_facts).where(deal_facts.c.deal_id == p["deal_id"])
                    .values(**values))
    _touch(touched, p["client_id"], at)
    return 1


def _count_stay(session, stay) -> None:
    """A closed stay into the histogram of its month, department and stage."""
    seconds = float(stay.seconds)
    stmt = pg_insert(stay_histogram).values(
        day=stay.day.replace(day=1), department_id=stay.department_id, stage=stay.stage,
        bucket=stay_bucket(seconds), stays=1, max_seconds=seconds)
    session.execute(stmt.on_conflict_do_update(
        index_elements=["day", "department_id", "stage", "bucket"],
        set_={"stays": stay_histogram.c.stays + 1,
              "max_seconds": sa.func.greatest(stay_histogram.c.max_seconds,
                                              stmt.excluded.max_seconds)}))


def _deal_stalled(session, event, tz, dims, rollups, touched) -> int:
    p = event.payload
    session.execute(sa.update(deal_facts).where(
        deal_facts.c.deal_id == p["deal_id"], deal_facts.c.stage == p["stage"],
        deal_facts.c.open).values(stalled_at=event.occurred_at))
    return 1


def _task_values(p, dims) -> dict:
    d = dims.of(p["assignee_id"], None, p["department_id"])
    return {"user_id": d["user_id"], "department_id": d["department_id"],
            "client_id": p["client_id"], "kind": p["kind"][:30], "due_at": p["due_at"]}


_DEAL_HANDLERS = {
    "deal_created": _deal_created, "deal_updated": _deal_updated,
    "deal_stage_changed": _deal_stage_changed, "deal_stalled": _deal_stalled,
}
DEAL_EVENTS = [*_DEAL_HANDLERS, *TASK_EVENTS]

# -- ERP documents --------------------------------------------------------------------------------

ERP_KINDS = ("order", "invoice", "shipment", "payment")
ERP_STATES = ("posted", "changed", "unposted", "deleted")
ERP_EVENTS = [f"erp_{kind}_{state}" for kind in ERP_KINDS for state in ERP_STATES]


def apply_erp(session, events, tz: ZoneInfo) -> int:
    """``erp_{order,invoice,shipment,payment}_{posted,changed,unposted,deleted}``: each document
    in its newest revision only. A newer revision takes the old one's figures out (at the day and
    manager they were counted for) and puts its own in while it is posted; an older revision
    changes nothing."""
    guids = sorted({_id(e.payload["document_guid"]) for e in events})
    if not guids:
        return 0
    current = {r["document_guid"]: dict(r) for r in session.execute(
        sa.select(erp_documents).where(erp_documents.c.document_guid.in_(guids))
        .order_by(erp_documents.c.document_guid).with_for_update()).mappings()}
    known = set(current)
    dims = Dimensions(session, client_ids=[e.payload["client_id"] for e in events])
    rollups = Rollups()
    changed: dict[uuid.UUID, dict] = {}
    for event in events:
        p = event.payload
        guid = _id(p["document_guid"])
        _, kind, state = event.type.split("_")
        old = current.get(guid)
        if old is not None and old["revision"] >= p["revision"]:
            continue
        if old is not None and old["active"]:
            rollups.add(erp_rollup, old["day"], old, {"documents": -1, "amount": -old["amount"]},
                        kind=old["kind"])
        doc = {"document_guid": guid, "kind": kind, "revision": p["revision"],
               "active": state in ("posted", "changed"), "number": p["number"][:100],
               "day": local_day(p["document_date"], tz), **dims.owner_of(p["client_id"]),
               "client_id": p["client_id"], "amount": Decimal(p["amount"])}
        if doc["active"]:
            rollups.add(erp_rollup, doc["day"], doc, {"documents": 1, "amount": doc["amount"]},
                        kind=kind)
        current[guid] = changed[guid] = doc
    fresh = [doc for guid, doc in changed.items() if guid not in known]
    if fresh:
        session.execute(pg_insert(erp_documents).on_conflict_do_nothing(), fresh)
    for guid, doc in changed.items():
        if guid in known:
            session.execute(sa.update(erp_documents).where(
                erp_documents.c.document_guid == guid).values(
                **{k: v for k, v in doc.items() if k != "document_guid"}))
    rollups.flush(session)
    return len(changed)


# -- plans and the organisation -------------------------------------------------------------------

def apply_plans(session, events, tz: ZoneInfo) -> int:
    """``sales_plan_changed``: the newest plan of a manager's month."""
    for event in events:
        p = event.payload
        values = {"department_id": _id(p["department_id"]) or NONE_ID,
                  "sales_amount": p["sales_amount"], "snapshot_at": event.occurred_at}
        stmt = pg_insert(sales_plans).values(user_id=p["user_id"], month=p["month"], **values)
        session.execute(stmt.on_conflict_do_update(
            index_elements=["user_id", "month"], set_=values,
            where=sales_plans.c.snapshot_at <= stmt.excluded.snapshot_at))
    return len(events)


def apply_directory(session, events, tz: ZoneInfo) -> int:
    """``user_changed`` / ``department_changed`` as ``OrganisationReplica`` applies them live
    (replay of the directory's history)."""
    for event in events:
        p = event.payload
        if event.type == "user_changed":
            values = {"full_name": p["full_name"], "role": p["role"],
                      "department_id": p["department_id"], "active": p["active"]}
            session.execute(pg_insert(staff).values(user_id=p["user_id"], **values)
                            .on_conflict_do_update(index_elements=["user_id"], set_=values))
        else:
            values = {"name": p["name"], "head_user_id": p["head_user_id"],
                      "regions": p["regions"]}
            session.execute(pg_insert(departments).values(
                department_id=p["department_id"], **values).on_conflict_do_update(
                index_elements=["department_id"], set_=values))
    return len(events)


# source -> (event types, apply function, live handler method). Replay order: the organisation
# and plans first, then clients (their owners, regions and segments are the figures' slices),
# then what happens to them.
SOURCES = {
    "directory": (["department_changed", "user_changed"], apply_directory, None),
    "payroll": (["sales_plan_changed"], apply_plans, "handle_plans"),
    "clients": (["client_created", "client_updated", "client_owner_changed",
                 "clients_merged", "campaign_changed"], apply_clients, "handle_clients"),
    "deals": (DEAL_EVENTS, apply_deals, "handle_deals"),
    "telephony": (["call_registered"], apply_calls, "handle_calls"),
    "mail": (["email_registered"], apply_emails, "handle_emails"),
    "erp_bridge": (ERP_EVENTS, apply_erp, "handle_erp"),
}


def live_handler(source: str, event_type: str) -> str:
    """The consumer name a live handler claims events with (replay claims with the same, so a
    live delivery of a replayed event is a duplicate)."""
    method = SOURCES[source][2] or f"handle_{event_type}"
    return f"reports.{method}"
