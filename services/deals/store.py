"""Reads and small writes of the deals database shared by the entrypoint mixins."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from psycopg2.extras import execute_values
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_platform.errors import Forbidden, NotFound, ValidationFailed
from crm_platform.paging import decode_cursor, encode_cursor  # noqa: F401 - store.encode_cursor is used across deals

from .domain.funnel import (
    DEFAULT_STAGES,
    STAGE_TITLES,
    ErpFacts,
    Funnel,
    funnel_from_config,
    is_open,
)
from .domain.workcalendar import WorkCalendar, calendar_from_settings
from .models import (
    client_replica,
    deals,
    departments,
    funnels,
    notifications,
    settings,
    staff,
    timeline,
)

CALENDAR_KEY = "work_calendar"
_calendar_cache: dict[str, tuple[float, WorkCalendar]] = {}


# -- funnels ---------------------------------------------------------------------------------------


def default_funnel_row(session):
    row = session.execute(sa.select(funnels).where(funnels.c.is_default)).mappings().first()
    if row is None:
        from crm_platform.clock import utcnow

        session.execute(pg_insert(funnels).values(
            id=uuid.uuid4(), name="Основная воронка", is_default=True,
            stages=list(DEFAULT_STAGES), updated_at=utcnow()).on_conflict_do_nothing())
        row = session.execute(sa.select(funnels).where(funnels.c.is_default)).mappings().one()
    return row


def funnel_row(session, funnel_id):
    if funnel_id is None:
        return default_funnel_row(session)
    row = session.execute(sa.select(funnels).where(funnels.c.id == funnel_id)).mappings().first()
    if row is None:
        raise NotFound("Воронка не найдена", fields={"funnel_id": ["нет такой воронки"]})
    return row


_funnel_cache: dict = {}


def funnel_of(row) -> Funnel:
    """The funnel of a settings row (parsed once per version: a batch of ERP events asks for it
    for every deal it moves)."""
    key = (row["id"], row["version"])
    funnel = _funnel_cache.get(key)
    if funnel is None:
        if len(_funnel_cache) > 100:
            _funnel_cache.clear()
        funnel = _funnel_cache[key] = funnel_from_config(row["id"], row["name"], row["stages"])
    return funnel


def funnels_by_id(session) -> dict:
    return {row["id"]: row for row in session.execute(sa.select(funnels)).mappings()}


# -- the working calendar --------------------------------------------------------------------------


def work_calendar(session, *, max_age: float = 60.0) -> WorkCalendar:
    """The calendar from the settings (cached for a minute: it changes a few times a year)."""
    cached = _calendar_cache.get("calendar")
    if cached and time.monotonic() - cached[0] < max_age:
        return cached[1]
    value = session.execute(sa.select(settings.c.value).where(
        settings.c.key == CALENDAR_KEY)).scalar()
    calendar = calendar_from_settings(value)
    _calendar_cache["calendar"] = (time.monotonic(), calendar)
    return calendar


def forget_calendar() -> None:
    _calendar_cache.clear()


# -- people ---------------------------------------------------------------------------------------


def person(session, user_id):
    if user_id is None:
        return None
    return session.execute(sa.select(staff).where(staff.c.user_id == user_id)).mappings().first()


def head_of(session, department_id):
    if department_id is None:
        return None
    return session.execute(sa.select(departments.c.head_user_id).where(
        departments.c.department_id == department_id)).scalar()


def names_of(session, user_ids) -> dict:
    ids = {u for u in user_ids if u}
    if not ids:
        return {}
    return dict(session.execute(sa.select(staff.c.user_id, staff.c.full_name).where(
        staff.c.user_id.in_(ids))).all())


def client_names(session, client_ids) -> dict:
    ids = {c for c in client_ids if c}
    if not ids:
        return {}
    return dict(session.execute(sa.select(client_replica.c.client_id, client_replica.c.short_name)
                                .where(client_replica.c.client_id.in_(ids))).all())


def assignable_owner(session, identity, owner_id):
    """Who may be given a deal by whom: a manager takes it himself; a sales head gives it to a
    manager of the department; a director or an integration to any active salesperson."""
    if owner_id is None or str(owner_id) == identity.user_id:
        return uuid.UUID(identity.user_id)
    if identity.role == "manager":
        raise Forbidden("Менеджер заводит сделки только на себя")
    target = person(session, owner_id)
    if target is None or not target["active"] or target["role"] not in ("manager", "sales_head"):
        raise ValidationFailed("Ответственный не найден", fields={
            "owner_id": ["нет такого активного менеджера"]})
    if identity.role == "sales_head" and str(target["department_id"]) != identity.department_id:
        raise Forbidden("Руководитель назначает только менеджеров своего отдела")
    return target["user_id"]


# -- access ----------------------------------------------------------------------------------------


def can_see(identity, deal) -> bool:
    if identity.role in ("director", "admin", "integration"):
        return True
    if identity.role == "sales_head":
        return str(deal["department_id"]) == str(identity.department_id)
    return str(deal["owner_id"]) == identity.user_id


def can_change(identity, deal) -> bool:
    if identity.role == "integration":
        return True
    if identity.role == "sales_head":
        return str(deal["department_id"]) == str(identity.department_id)
    return identity.role == "manager" and str(deal["owner_id"]) == identity.user_id


def visible(query, table, identity):
    """Restrict a query on ``table`` (with owner/assignee and department columns) to the caller."""
    owner_col = table.c.owner_id if "owner_id" in table.c else table.c.assignee_id
    if identity.role in ("director", "admin", "integration"):
        return query
    if identity.role == "sales_head":
        return query.where(table.c.department_id == identity.department_id)
    return query.where(owner_col == identity.user_id)


def deal_for_update(session, deal_id):
    row = session.execute(sa.select(deals).where(deals.c.id == deal_id)
                          .with_for_update()).mappings().first()
    if row is None:
        raise NotFound("Сделка не найдена", fields={"deal_id": ["нет такой сделки"]})
    return row


# -- shapes ---------------------------------------------------------------------------------------


def facts_of_row(row) -> ErpFacts:
    return ErpFacts(ordered=row["ordered_amount"], invoiced=row["invoiced_amount"],
                    shipped=row["shipped_amount"], paid=row["paid_amount"],
                    has_orders=row["has_orders"])


def effective_probability(row, funnel: Funnel) -> int:
    if row["stage"] == "closed_won":
        return 100
    if row["stage"] == "lost":
        return 0
    if row["probability"] is not None:
        return int(row["probability"])
    try:
        return funnel.settings(row["stage"]).probability
    except KeyError:
        return 0


def pipeline_amount(row) -> Decimal:
    """What the deal is worth: the ordered sum once there is an order, else the potential."""
    if row["ordered_amount"] and row["ordered_amount"] > 0:
        return row["ordered_amount"]
    return row["amount"] or Decimal("0.00")


def deal_dict(row, funnel: Funnel, names: dict | None = None,
              clients: dict | None = None) -> dict:
    names = names or {}
    clients = clients or {}
    return {
        "id": str(row["id"]), "funnel_id": str(row["funnel_id"]), "title": row["title"],
        "client_id": str(row["client_id"]) if row["client_id"] else None,
        "client_name": clients.get(row["client_id"]),
        "lead": row["lead"] or {},
        "owner_id": str(row["owner_id"]), "owner_name": names.get(row["owner_id"]),
        "department_id": str(row["department_id"]) if row["department_id"] else None,
        "region": row["region"], "source": row["source"],
        "source_detail": row.get("source_detail") or {},
        "assigned_at": row["assigned_at"].isoformat() if row.get("assigned_at") else None,
        "amount": _money(row["amount"]),
        "volume": {"m2": _qty(row["volume_m2"]), "tonnes": _qty(row["volume_tonnes"]),
                   "pieces": _qty(row["volume_pieces"])},
        "product_groups": list(row["product_groups"] or []),
        "expected_close_date": row["expected_close_date"].isoformat()
        if row["expected_close_date"] else None,
        "probability": effective_probability(row, funnel),
        "probability_override": row["probability"],
        "notes": row["notes"],
        "stage": row["stage"], "stage_title": _stage_title(funnel, row["stage"]),
        "manual_stage": row["manual_stage"], "open": is_open(row["stage"]),
        "lost_reason": row["lost_reason"],
        "stage_entered_at": _iso(row["stage_entered_at"]),
        "stage_deadline_at": _iso(row["stage_deadline_at"]),
        "stalled": row["stalled_at"] is not None, "stalled_at": _iso(row["stalled_at"]),
        "closed_at": _iso(row["closed_at"]),
        "payment_status": row["payment_status"],
        "erp": {"ordered": _money(row["ordered_amount"]),
                "invoiced": _money(row["invoiced_amount"]),
                "paid": _money(row["paid_amount"]), "shipped": _money(row["shipped_amount"])},
        "pipeline_amount": _money(pipeline_amount(row)),
        "created_at": _iso(row["created_at"]),
        "created_by": str(row["created_by"]) if row["created_by"] else None,
        "updated_at": _iso(row["updated_at"]), "version": row["version"],
    }


def _stage_title(funnel: Funnel, code: str) -> str:
    try:
        return funnel.settings(code).title
    except KeyError:
        return STAGE_TITLES.get(code, code)


def _money(value) -> str | None:
    return None if value is None else f"{Decimal(value):.2f}"


def _qty(value) -> str | None:
    return None if value is None else f"{Decimal(value).normalize():f}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# -- the timeline and notifications ----------------------------------------------------------------


def timeline_row(deal_id, at, kind: str, ref: str, data: dict) -> dict:
    return {"deal_id": deal_id, "at": at, "kind": kind, "ref": str(ref)[:200],
            "data": json.loads(json.dumps(data, default=str))}


def upsert_timeline(session, rows: list[dict]) -> None:
    """One entry per (deal, kind, ref): a newer state of the same thing replaces the entry."""
    unique = list({(r["deal_id"], r["kind"], r["ref"]): r for r in rows}.values())
    if not unique:
        return
    bulk_upsert(session, timeline, unique, ("deal_id", "kind", "ref"), ("at", "data"))


def _sql_value(value):
    """A Python value as psycopg2 should send it under an explicit cast."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return json.dumps(value, default=str)
    if isinstance(value, list):
        return [str(v) if isinstance(v, uuid.UUID) else v for v in value]
    return value


def _values_sql(session, table: sa.Table, names) -> str:
    dialect = session.get_bind().dialect
    return "(" + ", ".join(f"%s::{table.c[c].type.compile(dialect=dialect)}"
                           for c in names) + ")"


def _execute_values(session, sql: str, template: str, names, rows) -> None:
    cursor = session.connection().connection.dbapi_connection.cursor()
    try:
        execute_values(cursor, sql, [tuple(_sql_value(r[c]) for c in names) for r in rows],
                       template=template, page_size=1000)
    finally:
        cursor.close()


def bulk_update(session, table: sa.Table, rows: list[dict], columns, key: str = "id") -> None:
    """``UPDATE table SET col = v.col ... FROM (VALUES ...) v WHERE table.key = v.key``: many rows
    with their own values in one statement. psycopg2's executemany sends one statement per row,
    which was most of the cost of moving a batch of deals. Every value is cast to its column's
    type, so NULLs and UUIDs need no guessing by the server."""
    if not rows:
        return
    names = (key, *columns)
    # Table and column names come from the code, never from input.
    sql = (f"UPDATE {table.name} AS t SET "  # noqa: S608
           + ", ".join(f"{c} = v.{c}" for c in columns)
           + f" FROM (VALUES %s) AS v({', '.join(names)}) WHERE t.{key} = v.{key}")
    _execute_values(session, sql, _values_sql(session, table, names), names, rows)


def bulk_upsert(session, table: sa.Table, rows: list[dict], conflict: tuple[str, ...],
                update: tuple[str, ...]) -> None:
    """``INSERT ... VALUES (...), (...) ON CONFLICT (conflict) DO UPDATE SET update = EXCLUDED``
    in one statement (the same reason as ``bulk_update``). Rows must not repeat a key."""
    if not rows:
        return
    names = tuple(rows[0])
    sql = (f"INSERT INTO {table.name} ({', '.join(names)}) VALUES %s "  # noqa: S608
           f"ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET "
           + ", ".join(f"{c} = EXCLUDED.{c}" for c in update))
    _execute_values(session, sql, _values_sql(session, table, names), names, rows)


def add_to_timeline(session, deal_id, at, kind: str, ref: str, data: dict) -> None:
    upsert_timeline(session, [timeline_row(deal_id, at, kind, ref, data)])


def notify(session, user_id, kind: str, text: str, at, *, deal_id=None, task_id=None,
           client_id=None) -> None:
    if user_id is None:
        return
    session.execute(sa.insert(notifications).values(
        user_id=user_id, kind=kind, text=text[:1000], deal_id=deal_id, task_id=task_id,
        client_id=client_id, created_at=at))


# -- cursors: the platform's keyset cursors (crm_platform.paging), imported above -------------
