"""Saved filters (segments) and the dormant rule: pure logic, no database and no clock (``now`` and
the business time zone are arguments).

The filter language (JSON, stored as given in ``segments.filter`` and ``campaigns.filter``)::

    null | {}                                   every client the caller may see
    [cond, ...]                                 all of them (shorthand for {"all": [...]})
    {"all": [node, ...]}                        and
    {"any": [node, ...]}                        or
    {"not": node}                               not (a client whose field is empty counts as
                                                 "not matching" the inner condition)
    {"field": "<field>", "op": "<op>", "value": ...}

Fields and their operators:

* text card fields (``short_name``, ``full_name``, ``legal_form``, ``inn``, ``kpp``, ``ogrn``,
  ``region``, ``website``, ``industry``, ``segment``, ``source``): ``eq``, ``ne``, ``in``,
  ``not_in``, ``contains`` (case-insensitive substring), ``present``, ``absent``;
* ``status``: ``eq``, ``ne``, ``in``, ``not_in`` (values: potential, active, dormant, lost);
* ids (``owner_id``, ``department_id``, ``created_by``): ``eq``, ``ne``, ``in``, ``not_in``,
  ``present``, ``absent`` (``owner_id absent``: the department pool);
* ``phones``, ``emails``: ``present``, ``absent``;
* moments (``created_at``, ``updated_at``, ``owned_since``, ``last_interaction_at``,
  ``last_owner_interaction_at``, ``last_invoice_at``; also without the ``_at``): ``before``,
  ``after`` (an ISO date, meaning that whole day in the business time zone, or an ISO date-time),
  ``present``, ``absent``, ``older_than_days`` / ``older_than_months`` (N: nothing within the
  last N days/months, *never included*: "no interaction for 30 days", "no invoice for 24
  months"), ``within_days`` / ``within_months`` (something within the last N);
* money over a period, ``revenue`` (sum of the posted shipments, i.e. realisations: what was
  actually sold, the basis of sales plans and of ABC; invoices are offers to pay that get re-issued
  and cancelled) and ``invoiced`` (sum of the posted invoices): ``gte``, ``lte``, ``gt``, ``lt``,
  ``eq`` with a decimal ``value`` and the period as ``"from"`` / ``"to"`` (ISO dates, both
  inclusive) or ``"last_months": N`` (default: the last 12 months).

Example: dormant or silent clients of the Urals who bought at least 1 mln in 2024::

    {"all": [{"field": "region", "op": "eq", "value": "RU-SVE"},
             {"any": [{"field": "status", "op": "eq", "value": "dormant"},
                      {"field": "last_interaction", "op": "older_than_days", "value": 90}]},
             {"field": "revenue", "op": "gte", "value": "1000000",
              "from": "2024-01-01", "to": "2024-12-31"}]}

A filter that breaks these rules raises ``ValidationFailed`` naming the field at fault.
"""

from __future__ import annotations

import calendar
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal, InvalidOperation

import sqlalchemy as sa

from crm_platform.errors import ValidationFailed

STATUSES = ("potential", "active", "dormant", "lost")

TEXT_FIELDS = ("short_name", "full_name", "legal_form", "inn", "kpp", "ogrn", "region", "website",
               "industry", "segment", "source")
ID_FIELDS = ("owner_id", "department_id", "created_by")
ARRAY_FIELDS = ("phones", "emails")
MOMENT_FIELDS = ("created_at", "updated_at", "owned_since", "last_interaction_at",
                 "last_owner_interaction_at", "last_invoice_at")
MONEY_FIELDS = {"revenue": "shipment", "invoiced": "invoice"}  # field -> erp_documents.kind
ALIASES = {"last_interaction": "last_interaction_at",
           "last_owner_interaction": "last_owner_interaction_at",
           "last_invoice": "last_invoice_at"}

PRESENCE_OPS = ("present", "absent")
TEXT_OPS = ("eq", "ne", "in", "not_in", "contains", *PRESENCE_OPS)
STATUS_OPS = ("eq", "ne", "in", "not_in")
ID_OPS = ("eq", "ne", "in", "not_in", *PRESENCE_OPS)
MOMENT_OPS = ("before", "after", "older_than_days", "within_days", "older_than_months",
              "within_months", *PRESENCE_OPS)
MONEY_OPS = ("gte", "lte", "gt", "lt", "eq")

MAX_DEPTH = 6
MAX_CONDITIONS = 100
MAX_LIST = 1000
DEFAULT_REVENUE_MONTHS = 12


def ops_of(field: str) -> tuple[str, ...]:
    if field in TEXT_FIELDS:
        return TEXT_OPS
    if field == "status":
        return STATUS_OPS
    if field in ID_FIELDS:
        return ID_OPS
    if field in ARRAY_FIELDS:
        return PRESENCE_OPS
    if field in MOMENT_FIELDS:
        return MOMENT_OPS
    if field in MONEY_FIELDS:
        return MONEY_OPS
    return ()


ALL_FIELDS = (*TEXT_FIELDS, "status", *ID_FIELDS, *ARRAY_FIELDS, *MOMENT_FIELDS, *MONEY_FIELDS)


# -- the parsed form ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: object = None          # parsed: str, tuple, UUID, int, Decimal, date or datetime
    period: tuple | None = None   # money fields: (from date, to date) or ("last_months", N)


@dataclass(frozen=True)
class Group:
    kind: str                     # all, any, not
    items: tuple


Node = Condition | Group


def _fail(field: str, reason: str, detail: str | None = None):
    raise ValidationFailed(detail or f"Неверный фильтр: поле «{field}»: {reason}",
                           fields={field: [reason]}, code="invalid_filter")


def parse_filter(raw) -> Node | None:
    """Validate a filter and return its parsed form (None: no condition at all)."""
    if raw is None or raw == {} or raw == []:
        return None
    counter = [0]
    return _parse(raw, 0, counter)


def _parse(raw, depth: int, counter: list[int]) -> Node:
    if depth > MAX_DEPTH:
        _fail("filter", f"вложенность больше {MAX_DEPTH}")
    if isinstance(raw, list):
        raw = {"all": raw}
    if not isinstance(raw, dict):
        _fail("filter", "ожидается объект или список условий")
    groups = [k for k in ("all", "any", "not") if k in raw]
    if groups:
        if len(raw) != 1:
            extra = sorted(set(raw) - {groups[0]})
            _fail(extra[0] if extra else "filter",
                  "группа all/any/not не может содержать другие ключи")
        kind = groups[0]
        inner = raw[kind]
        if kind == "not":
            return Group("not", (_parse(inner, depth + 1, counter),))
        if not isinstance(inner, list) or not inner:
            _fail("filter", f"«{kind}» ждёт непустой список условий")
        return Group(kind, tuple(_parse(item, depth + 1, counter) for item in inner))
    counter[0] += 1
    if counter[0] > MAX_CONDITIONS:
        _fail("filter", f"больше {MAX_CONDITIONS} условий")
    return _parse_condition(raw)


def _parse_condition(raw: dict) -> Condition:
    name = raw.get("field")
    if not isinstance(name, str) or not name:
        _fail("filter", "в условии нет «field»")
    field = ALIASES.get(name, name)
    allowed = ops_of(field)
    if not allowed:
        _fail(name, "неизвестное поле", f"Неверный фильтр: неизвестное поле «{name}»")
    unknown_keys = sorted(set(raw) - {"field", "op", "value", "from", "to", "last_months"})
    if unknown_keys:
        _fail(name, f"неизвестный ключ «{unknown_keys[0]}»")
    op = raw.get("op")
    if op not in allowed:
        _fail(name, f"недопустимая операция «{op}»; возможны: {', '.join(allowed)}")
    value = raw.get("value")
    if field in MONEY_FIELDS:
        return Condition(field, op, _money(name, value), _period(name, raw))
    if any(k in raw for k in ("from", "to", "last_months")):
        _fail(name, "период задаётся только для revenue и invoiced")
    if op in PRESENCE_OPS:
        return Condition(field, op)
    if field == "status":
        values = _strings(name, value, op)
        bad = [v for v in values if v not in STATUSES]
        if bad:
            _fail(name, f"неизвестный статус «{bad[0]}»; возможны: {', '.join(STATUSES)}")
        return Condition(field, op, values if op in ("in", "not_in") else values[0])
    if field in TEXT_FIELDS:
        values = _strings(name, value, op)
        return Condition(field, op, values if op in ("in", "not_in") else values[0])
    if field in ID_FIELDS:
        values = tuple(_uuid(name, v) for v in _strings(name, value, op))
        return Condition(field, op, values if op in ("in", "not_in") else values[0])
    # moments
    if op in ("before", "after"):
        return Condition(field, op, _moment(name, value))
    limit = 36_500 if op.endswith("_days") else 1_200
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        _fail(name, f"ожидается целое число от 0 до {limit}")
    return Condition(field, op, value)


def _strings(name, value, op) -> tuple[str, ...]:
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            _fail(name, "ожидается непустой список значений")
        if len(value) > MAX_LIST:
            _fail(name, f"больше {MAX_LIST} значений")
        values = value
    else:
        values = [value]
    for v in values:
        if not isinstance(v, str) or not v.strip() or len(v) > 500:
            _fail(name, "ожидается непустая строка до 500 символов")
    return tuple(v.strip() for v in values)


def _uuid(name, value) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        _fail(name, f"«{value}» не UUID")


def _moment(name, value) -> date | datetime:
    if not isinstance(value, str):
        _fail(name, "ожидается дата ГГГГ-ММ-ДД или дата-время ISO 8601")
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        return datetime.fromisoformat(value)
    except ValueError:
        _fail(name, f"«{value}» не дата ГГГГ-ММ-ДД и не дата-время ISO 8601")


def _money(name, value) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        _fail(name, "ожидается сумма, например \"150000.00\"")
    try:
        amount = Decimal(str(value).replace(",", ".").replace(" ", ""))
    except InvalidOperation:
        _fail(name, f"«{value}» не сумма")
    if not amount.is_finite() or abs(amount) >= Decimal("1e16"):
        _fail(name, f"«{value}» не сумма")
    return amount.quantize(Decimal("0.01"))


def _period(name, raw: dict) -> tuple:
    if "last_months" in raw:
        if "from" in raw or "to" in raw:
            _fail(name, "укажите либо from/to, либо last_months")
        months = raw["last_months"]
        if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= 240:
            _fail(name, "last_months: целое число от 1 до 240")
        return ("last_months", months)
    if "from" not in raw and "to" not in raw:
        return ("last_months", DEFAULT_REVENUE_MONTHS)
    try:
        start = date.fromisoformat(raw["from"]) if raw.get("from") else None
        end = date.fromisoformat(raw["to"]) if raw.get("to") else None
    except (TypeError, ValueError):
        _fail(name, "from/to: даты ГГГГ-ММ-ДД")
    if start is None or end is None:
        _fail(name, "укажите обе даты периода: from и to")
    if start > end:
        _fail(name, "начало периода позже конца")
    return (start, end)


# -- time ---------------------------------------------------------------------------------------


def months_before(moment: datetime, months: int) -> datetime:
    """The same wall-clock moment ``months`` calendar months earlier (day clamped: 31 March - 1
    month = 28/29 February)."""
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def day_start(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=tz)


def period_bounds(start: date, end: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """[start of ``start``, start of the day after ``end``) in the business time zone."""
    return day_start(start, tz), day_start(end + timedelta(days=1), tz)


def resolve_period(period: tuple, now: datetime, tz: tzinfo) -> tuple[datetime, datetime]:
    if period[0] == "last_months":
        return months_before(now, period[1]), now
    return period_bounds(period[0], period[1], tz)


# -- SQL ----------------------------------------------------------------------------------------


def compile_filter(node: Node | None, clients, erp_documents, now: datetime, tz: tzinfo):
    """The SQL condition on ``clients`` for a parsed filter (``sa.true()`` for None)."""
    if node is None:
        return sa.true()
    return _compile(node, clients, erp_documents, now, tz)


def money_sum(clients, erp_documents, kind: str, start: datetime, end: datetime):
    """Correlated sum of a client's active documents of ``kind`` dated in [start, end)."""
    d = erp_documents.c
    return (sa.select(sa.func.coalesce(sa.func.sum(d.amount), 0))
            .where(d.client_id == clients.c.id, d.kind == kind, d.active.is_(True),
                   d.doc_date >= start, d.doc_date < end)
            .scalar_subquery())


def _compile(node: Node, clients, docs, now, tz):
    if isinstance(node, Group):
        parts = [_compile(item, clients, docs, now, tz) for item in node.items]
        if node.kind == "all":
            return sa.and_(*parts)
        if node.kind == "any":
            return sa.or_(*parts)
        return sa.not_(sa.func.coalesce(parts[0], sa.false()))
    field, op, value = node.field, node.op, node.value
    if field in MONEY_FIELDS:
        start, end = resolve_period(node.period, now, tz)
        column = money_sum(clients, docs, MONEY_FIELDS[field], start, end)
        return {"gte": column >= value, "lte": column <= value, "gt": column > value,
                "lt": column < value, "eq": column == value}[op]
    column = clients.c[field]
    if op == "present":
        if field in ARRAY_FIELDS:
            return sa.func.cardinality(column) > 0
        if field in TEXT_FIELDS:
            return sa.and_(column.is_not(None), column != "")
        return column.is_not(None)
    if op == "absent":
        if field in ARRAY_FIELDS:
            return sa.func.cardinality(column) == 0
        if field in TEXT_FIELDS:
            return sa.or_(column.is_(None), column == "")
        return column.is_(None)
    if op == "eq":
        return column == value
    if op == "ne":
        return sa.or_(column != value, column.is_(None))
    if op == "in":
        return column.in_(list(value))
    if op == "not_in":
        return sa.or_(column.not_in(list(value)), column.is_(None))
    if op == "contains":
        escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return column.ilike(f"%{escaped}%", escape="\\")
    if op in ("before", "after"):
        return _moment_condition(column, op, value, tz)
    if op == "older_than_days":
        return sa.or_(column.is_(None), column < now - timedelta(days=value))
    if op == "within_days":
        return column >= now - timedelta(days=value)
    if op == "older_than_months":
        return sa.or_(column.is_(None), column < months_before(now, value))
    if op == "within_months":
        return column >= months_before(now, value)
    raise AssertionError(f"unhandled operator {op}")  # parse_filter lets no other through


def _moment_condition(column, op, value, tz):
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=tz)
        return column < moment if op == "before" else column > moment
    if op == "before":
        return column < day_start(value, tz)
    return column >= day_start(value + timedelta(days=1), tz)


# -- dormant clients ----------------------------------------------------------------------------


def derive_status(status: str, last_invoice_at: datetime | None, created_at: datetime,
                  now: datetime, months: int) -> str:
    """The status the invoices imply (the ``dormant`` rule, default 24 months):

    * ``lost`` is a person's judgement and is never changed automatically;
    * an invoice within the period makes the client ``active`` (a potential or dormant client
      that is invoiced again is buying);
    * ``active`` with no invoice for the period becomes ``dormant``; with no invoice at all the
      period counts from when the client entered the base (a freshly imported active client is
      not dormant before its history has arrived);
    * ``potential`` with no invoice ever stays potential; one whose only invoices are older than
      the period becomes dormant (it bought once, long ago);
    * anything else stays as it is.
    """
    if status == "lost":
        return status
    cutoff = months_before(now, months)
    if last_invoice_at is not None and last_invoice_at >= cutoff:
        return "active"
    if status == "potential":
        return "dormant" if last_invoice_at is not None else "potential"
    if status == "active" and (last_invoice_at or created_at) < cutoff:
        return "dormant"
    return status


def status_change_candidates(clients, cutoff: datetime):
    """SQL mirror of ``derive_status``: the clients whose status it would change."""
    c = clients.c
    return sa.or_(
        sa.and_(c.status.in_(("potential", "dormant")), c.last_invoice_at >= cutoff),
        sa.and_(c.status == "potential", c.last_invoice_at < cutoff),
        sa.and_(c.status == "active",
                sa.func.coalesce(c.last_invoice_at, c.created_at) < cutoff),
    )
