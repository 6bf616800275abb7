"""The catalogue of reports, their parameters and their derived figures.

Each report answers ``{"report", "title", "period", "group_by", "columns", "rows", "totals"}``.
Parameters (the same through RPC and HTTP): ``period`` (day, week, month, quarter, year, custom)
with ``date`` (any day inside it; default today) or ``date_from`` / ``date_to``; filters
``manager_id``, ``department_id``, ``region``, ``segment``, ``client_id``; ``group_by``: any of
the time buckets (one) and the slices manager, department, region, segment, client, plus the
report's own (lead ``source``, funnel ``stage``, ERP ``kind``); ``days`` for idle clients;
``status`` (open, closed, all) for time in stage; ``limit`` for lists.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

from .funnel import ratio
from .periods import BUCKETS, PeriodError, resolve_period

SLICES = ("manager", "department", "region", "segment", "client")
ROLES = ("manager", "sales_head", "director")


class ParamsError(ValueError):
    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Measure:
    key: str
    title: str
    kind: str = "int"           # int, money, seconds, hours, ratio, date, text
    derived: bool = False       # computed from the others (not summed)


@dataclass(frozen=True)
class ReportDef:
    name: str
    title: str
    description: str
    kind: str                   # additive, funnel, stage_time, stuck, idle, forecast
    measures: tuple[Measure, ...]
    extra_slices: tuple[str, ...] = ()
    default_group: tuple[str, ...] = ()
    slices: tuple[str, ...] = SLICES
    buckets: bool = True        # may be grouped by a time bucket

    @property
    def groupable(self) -> tuple[str, ...]:
        return (BUCKETS if self.buckets else ()) + self.slices + self.extra_slices

    def summary(self) -> dict:
        return {"name": self.name, "title": self.title, "description": self.description,
                "group_by": list(self.groupable), "default_group_by": list(self.default_group),
                "columns": [{"key": m.key, "title": m.title, "kind": m.kind}
                            for m in self.measures]}


M = Measure
REPORTS: dict[str, ReportDef] = {r.name: r for r in (
    ReportDef("calls", "Звонки", "Все, входящие/исходящие, отвеченные/пропущенные, целевые "
              "(с клиентом или сделкой), время разговора", "additive",
              (M("calls", "Всего"), M("inbound", "Входящие"),
               M("outbound", "Исходящие", derived=True), M("answered", "Отвеченные"),
               M("missed", "Пропущенные", derived=True), M("targeted", "Целевые"),
               M("untargeted", "Нецелевые", derived=True),
               M("talk_seconds", "Время разговора, с", "seconds")),
              default_group=("day",)),
    ReportDef("new_leads", "Новые интересы", "Новые сделки (лиды) по источникам", "additive",
              (M("leads", "Новых интересов"),), extra_slices=("source",),
              default_group=("source",)),
    ReportDef("stage_time", "Время на этапах", "Сколько сделки пробыли на каждом этапе "
              "(медиана, 75-й перцентиль, максимум; открытые и закрытые)", "stage_time",
              (M("stays", "Пребываний"), M("median_hours", "Медиана, ч", "hours"),
               M("p75_hours", "75-й перцентиль, ч", "hours"),
               M("max_hours", "Максимум, ч", "hours")),
              extra_slices=("stage",), default_group=("stage",)),
    ReportDef("stuck_deals", "Зависшие сделки", "Открытые сделки, пересидевшие срок этапа, "
              "сейчас", "stuck",
              (M("deal_id", "Сделка", "text"), M("title", "Название", "text"),
               M("stage", "Этап", "text"), M("manager", "Менеджер", "text"),
               M("stalled_at", "Завис с", "date"), M("amount", "Сумма", "money")),
              slices=(), buckets=False),
    ReportDef("funnel", "Конверсия воронки", "Сделки, созданные в периоде: сколько дошло до "
              "каждого этапа, конверсия этап к этапу и доля выигранных", "funnel",
              (M("deals", "Сделок"), M("from_previous", "От предыдущего", "ratio"),
               M("from_first", "От первого", "ratio")), extra_slices=("stage",),
              default_group=("stage",)),
    ReportDef("new_clients", "Новые клиенты", "Созданные клиенты и прирост потенциальных",
              "additive", (M("created", "Создано"), M("potential_growth", "Прирост "
                                                                              "потенциальных")),
              default_group=("month",)),
    ReportDef("idle_clients", "Клиенты без взаимодействия", "Клиенты, с которыми N дней не было "
              "звонков, писем, выполненных задач и движения сделок", "idle",
              (M("client_id", "Клиент", "text"), M("client", "Название", "text"),
               M("manager", "Менеджер", "text"), M("last_interaction_at", "Последнее касание",
                                                    "date"), M("idle_days", "Дней без касания")),
              slices=(), buckets=False),
    ReportDef("invoices", "Выставленные счета", "Счета из 1С: количество и сумма", "additive",
              (M("invoices", "Счетов"), M("invoiced_amount", "Сумма счетов", "money")),
              default_group=("month",)),
    ReportDef("sales", "Продажи по документам 1С", "Заказано, выставлено, оплачено, отгружено",
              "additive",
              (M("orders", "Заказов"), M("ordered_amount", "Заказано", "money"),
               M("invoices", "Счетов"), M("invoiced_amount", "Выставлено", "money"),
               M("payments", "Оплат"), M("paid_amount", "Оплачено", "money"),
               M("shipments", "Отгрузок"), M("shipped_amount", "Отгружено", "money")),
              default_group=("month",)),
    ReportDef("forecast", "Прогноз и план", "Открытые сделки по месяцу ожидаемого закрытия: "
              "воронка, взвешенная по вероятности, против плана продаж", "forecast",
              (M("deals", "Сделок"), M("pipeline", "Воронка", "money"),
               M("weighted", "Взвешенно", "money"), M("plan", "План", "money"),
               M("weighted_to_plan", "Взвешенно / план", "ratio", derived=True)),
              slices=("manager", "department"), default_group=("month",)),
    ReportDef("activity", "Активность менеджеров", "Звонки, письма, выполненные и просроченные "
              "задачи по менеджерам и дням", "additive",
              (M("calls", "Звонков"), M("answered", "Отвеченных"), M("emails", "Писем"),
               M("tasks_done", "Задач выполнено"), M("tasks_overdue", "Задач просрочено")),
              default_group=("manager", "day")),
    ReportDef("roi", "Источники и окупаемость", "Лиды созданные в периоде по источникам (вид, "
              "форма, UTM, линия, кампания) или по кампаниям: сделки (квалифицированы и далее), "
              "выиграно и сумма, конверсия, стоимость лида и выигранной сделки из бюджетов "
              "кампаний", "roi",
              (M("source_kind", "Источник", "text"), M("form_key", "Форма", "text"),
               M("utm_source", "utm_source", "text"), M("utm_medium", "utm_medium", "text"),
               M("utm_campaign", "utm_campaign", "text"), M("our_number", "Линия", "text"),
               M("campaign_id", "Кампания (id)", "text"), M("campaign", "Кампания", "text"),
               M("leads", "Лидов"), M("deals", "Сделок"), M("won", "Выиграно"),
               M("won_amount", "Сумма выигранных", "money"),
               M("lead_to_deal", "Лид → сделка", "ratio", derived=True),
               M("lead_to_won", "Лид → выигрыш", "ratio", derived=True),
               M("cost", "Затраты", "money"),
               M("cost_per_lead", "Стоимость лида", "money", derived=True),
               M("cost_per_won", "Стоимость выигранной сделки", "money", derived=True)),
              extra_slices=("source", "campaign"), slices=(), buckets=False,
              default_group=("source",)),
)}


@dataclass(frozen=True)
class ReportParams:
    report: ReportDef
    period: str
    first: date
    last: date
    group_by: tuple[str, ...]
    manager_id: uuid.UUID | None = None
    department_id: uuid.UUID | None = None
    region: str | None = None
    segment: str | None = None
    client_id: uuid.UUID | None = None
    days: int = 30
    status: str = "all"
    limit: int = 1000
    # Set by ``access.scope``: what the caller may see at most.
    scope_user: uuid.UUID | None = None
    scope_department: uuid.UUID | None = None
    extra: dict = field(default_factory=dict)

    @property
    def bucket(self) -> str | None:
        return next((g for g in self.group_by if g in BUCKETS), None)

    @property
    def needs_facts(self) -> bool:
        """A client filter or grouping: the daily rollups have no client, the facts do."""
        return self.client_id is not None or "client" in self.group_by

    def echo(self) -> dict:
        return {"period": self.period, "date_from": self.first.isoformat(),
                "date_to": self.last.isoformat(), "group_by": list(self.group_by),
                **{k: str(v) for k, v in (("manager_id", self.manager_id),
                                          ("department_id", self.department_id),
                                          ("region", self.region), ("segment", self.segment),
                                          ("client_id", self.client_id)) if v is not None}}


def get_report(name: str) -> ReportDef:
    try:
        return REPORTS[name]
    except KeyError:
        raise ParamsError("name", f"нет такого отчёта; есть: {', '.join(REPORTS)}") from None


def _uuid(raw: dict, key: str) -> uuid.UUID | None:
    value = raw.get(key)
    if value in (None, ""):
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ParamsError(key, "не UUID") from None


def _date(raw: dict, key: str) -> date | None:
    value = raw.get(key)
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ParamsError(key, "дата в формате ГГГГ-ММ-ДД") from None


def _int(raw: dict, key: str, default: int, low: int, high: int) -> int:
    value = raw.get(key)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ParamsError(key, "целое число") from None
    if not low <= number <= high:
        raise ParamsError(key, f"от {low} до {high}")
    return number


def _text(raw: dict, key: str, max_length: int) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    value = str(value)
    if len(value) > max_length:
        raise ParamsError(key, f"не длиннее {max_length} символов")
    return value


def parse_params(name: str, raw: dict | None, today: date) -> ReportParams:
    """Check and resolve a report's parameters; ``ParamsError`` names the field at fault."""
    report = get_report(name)
    raw = dict(raw or {})
    known = {"period", "date", "date_from", "date_to", "group_by", "manager_id", "department_id",
             "region", "segment", "client_id", "days", "status", "limit", "format"}
    for key in raw:
        if key not in known:
            raise ParamsError(key, "неизвестный параметр")
    try:
        first, last = resolve_period(str(raw.get("period") or "month"), _date(raw, "date"),
                                     _date(raw, "date_from"), _date(raw, "date_to"), today)
    except PeriodError as exc:
        raise ParamsError(exc.field, exc.reason) from None
    group = raw.get("group_by")
    if group in (None, ""):
        group_by = report.default_group
    else:
        items = group.split(",") if isinstance(group, str) else list(group)
        group_by = tuple(dict.fromkeys(str(g).strip() for g in items if str(g).strip()))
    for item in group_by:
        if item not in report.groupable:
            raise ParamsError("group_by", f"{item!r}: для этого отчёта можно "
                                          f"{', '.join(report.groupable) or 'ничего'}")
    if sum(1 for g in group_by if g in BUCKETS) > 1:
        raise ParamsError("group_by", "не больше одной единицы времени")
    status = str(raw.get("status") or "all")
    if status not in ("open", "closed", "all"):
        raise ParamsError("status", "open, closed или all")
    return ReportParams(
        report=report, period=str(raw.get("period") or "month"), first=first, last=last,
        group_by=group_by, manager_id=_uuid(raw, "manager_id"),
        department_id=_uuid(raw, "department_id"), region=_text(raw, "region", 16),
        segment=_text(raw, "segment", 50), client_id=_uuid(raw, "client_id"),
        days=_int(raw, "days", 30, 1, 3650), status=status,
        limit=_int(raw, "limit", 1000, 1, 50_000))


class AccessDenied(Exception):
    def __init__(self, message: str, code: str = "report_forbidden"):
        super().__init__(message)
        self.code = code


def scope(params: ReportParams, role: str, user_id: str,
          department_id: str | None) -> ReportParams:
    """Narrow the report to what the caller may see: a manager their own figures, a sales head
    their department, a director everything. Asking for more is refused, not silently cut."""
    if role not in ROLES:
        raise AccessDenied("Отчёты доступны менеджерам, руководителям отделов и директору",
                           code="role_required")
    if role == "director":
        return params
    own_department = uuid.UUID(department_id) if department_id else None
    if role == "sales_head":
        if own_department is None:
            raise AccessDenied("Руководитель без отдела не видит отчётов")
        if params.department_id is not None and params.department_id != own_department:
            raise AccessDenied("Руководитель видит только свой отдел")
        return replace(params, scope_department=own_department)
    me = uuid.UUID(user_id)
    if params.manager_id is not None and params.manager_id != me:
        raise AccessDenied("Менеджер видит только свои показатели")
    if params.department_id is not None and params.department_id != own_department:
        raise AccessDenied("Менеджер видит только свои показатели")
    return replace(params, scope_user=me)


def _zero(kind: str):
    return Decimal("0.00") if kind == "money" else 0


def derive(report: ReportDef, row: dict) -> dict:
    """Fill the derived figures of one row (or of the totals) from its additive ones."""
    if report.name == "calls":
        row["outbound"] = row["calls"] - row["inbound"]
        row["missed"] = row["calls"] - row["answered"]
        row["untargeted"] = row["calls"] - row["targeted"]
    elif report.name == "forecast":
        row["weighted_to_plan"] = ratio(row["weighted"], row["plan"])
    return row


def totals(report: ReportDef, rows: list[dict]) -> dict:
    """Sums of the additive figures over ``rows``, then the derived ones."""
    result = {m.key: _zero(m.kind) for m in report.measures if not m.derived}
    for row in rows:
        for key in result:
            result[key] += row.get(key) or _zero("money" if isinstance(result[key], Decimal)
                                                 else "int")
    return derive(report, result)


def zero_row(report: ReportDef) -> dict:
    return derive(report, {m.key: _zero(m.kind) for m in report.measures if not m.derived})
