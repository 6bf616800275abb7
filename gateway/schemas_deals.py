"""Schemas of the deals API (/api/v1/deals, tasks, calendar, funnels, forecast): the gateway's own,
never the service's.

Requests are strict on shape (types, nesting, enumerations; unknown fields are refused with 422
naming them) and leave the meaning to the deals service (an owner that may not be chosen, a stage
the funnel lacks, a limit that makes no sense: its 422 names the field). Money goes in as a number
or a decimal string and comes out as a string with two decimals; times come out as ISO 8601 with
the zone, and go in with one (a time without a zone is refused: guessing it would shift due
times by hours).
"""

from marshmallow import Schema, fields, validate

from .schemas import sort_field

# The deals service's vocabularies (the gateway keeps a copy: it never imports a service's code).
SOURCES = ["manual", "call", "email", "web", "campaign", "erp", "import", "other"]
SORTS = ["created", "updated", "expected_close", "amount"]
PAYMENT_STATUSES = ["unpaid", "partially_paid", "paid"]
ERP_KINDS = ["order", "invoice", "shipment", "payment"]
DOCUMENT_STATES = ["posted", "unposted", "deleted"]
STAGE_CAUSES = ["user", "erp", "timer"]
TIME_UNITS = ["minutes", "hours", "working_hours", "days", "working_days"]
ASSIGNEES = ["owner", "head"]
ON_LEAVE = ["close", "keep"]
LIMIT_MODES = ["fixed", "learned"]
TASK_KINDS = ["task", "call", "meeting", "callback"]
TASK_STATUSES = ["open", "done", "cancelled"]
CALENDAR_VIEWS = ["day", "week", "month"]
FORECAST_GROUPS = ["manager", "department", "region", "month"]
FORECAST_FIGURES = ["won", "committed", "weighted", "best_case", "pipeline"]
FORECAST_WEIGHTS = ["stage", "learned"]
MONTH = validate.Regexp(r"^\d{4}-(0[1-9]|1[0-2])$", error="месяц ГГГГ-ММ, например 2026-12")
CLOCK = validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$", error="время ЧЧ:ММ, например 09:00")
STAGE_CODE = r"^[A-Za-z_][A-Za-z0-9_]{0,39}$"


def _timestamp(description: str = "") -> fields.String:
    metadata = {"format": "date-time"}
    if description:
        metadata["description"] = description
    return fields.String(allow_none=True, metadata=metadata)


def _date(description: str = "") -> fields.String:
    metadata = {"format": "date"}
    if description:
        metadata["description"] = description
    return fields.String(allow_none=True, metadata=metadata)


def _money(description: str = "", **kwargs) -> fields.String:
    return fields.String(metadata={"description": description or "сумма, руб., строка с двумя "
                                                                 "знаками после точки",
                                   "example": "150000.00"}, **kwargs)


def _money_in(description: str = "") -> fields.Decimal:
    return fields.Decimal(allow_none=True, allow_nan=False, metadata={
        "description": description or "сумма, руб.: число или десятичная строка",
        "example": "150000.00"})


def _aware(description: str = "") -> fields.AwareDateTime:
    return fields.AwareDateTime(allow_none=True, metadata={
        "description": description or "ISO 8601 с часовым поясом",
        "example": "2026-12-07T15:00:00+03:00"})


def _limit(default: int, maximum: int) -> fields.Integer:
    return fields.Integer(load_default=default, validate=validate.Range(min=1, max=maximum))


def _cursor() -> fields.String:
    return fields.String(metadata={"description": "next_cursor предыдущей страницы"})


# -- deals: requests ----------------------------------------------------------------------------

class DealLeadSchema(Schema):
    """Who got in touch, before they are a client of the base."""

    name = fields.String(allow_none=True, validate=validate.Length(max=2000),
                         metadata={"example": "Сергей"})
    company = fields.String(allow_none=True, validate=validate.Length(max=2000),
                            metadata={"example": "ООО «Кровля-Урал»"})
    inn = fields.String(allow_none=True, metadata={"description": "ИНН, 10 или 12 цифр"})
    phone = fields.String(allow_none=True, metadata={
        "description": "в любом привычном виде; хранится в E.164", "example": "+7 912 000-00-01"})
    email = fields.String(allow_none=True, metadata={"example": "zakaz@krovlya-ural.ru"})
    message = fields.String(allow_none=True, validate=validate.Length(max=2000),
                            metadata={"description": "что спрашивали"})


class DealVolumeInputSchema(Schema):
    m2 = fields.Decimal(allow_none=True, allow_nan=False, metadata={"description": "м²"})
    tonnes = fields.Decimal(allow_none=True, allow_nan=False, metadata={"description": "тонн"})
    pieces = fields.Decimal(allow_none=True, allow_nan=False, metadata={"description": "штук"})


class DealFieldsSchema(Schema):
    """The deal's own fields a person may type."""

    title = fields.String(allow_none=True, validate=validate.Length(max=300), metadata={
        "description": "по умолчанию «Интерес: <клиент>»"})
    amount = _money_in("потенциальная сумма, руб.")
    volume = fields.Nested(DealVolumeInputSchema, allow_none=True)
    product_groups = fields.List(fields.String(validate=validate.Length(min=1, max=100)),
                                 allow_none=True, metadata={"example": ["профнастил"]})
    expected_close_date = fields.Date(allow_none=True, metadata={"example": "2026-12-25"})
    probability = fields.Integer(strict=True, allow_none=True,
                                 validate=validate.Range(min=0, max=100), metadata={
                                     "description": "%, null — по умолчанию этапа"})
    notes = fields.String(allow_none=True, validate=validate.Length(max=20000))
    region = fields.String(allow_none=True, metadata={"example": "RU-SVE"})
    lead = fields.Nested(DealLeadSchema, allow_none=True)


class DealCreateSchema(DealFieldsSchema):
    client_id = fields.UUID(allow_none=True, metadata={
        "description": "клиент базы; без него — контакты интереса в lead (проверяются на дубли)"})
    source = fields.String(validate=validate.OneOf(SOURCES), metadata={
        "description": "откуда пришёл интерес; по умолчанию manual (web для интеграций)"})
    funnel_id = fields.UUID(allow_none=True, metadata={"description": "по умолчанию основная"})
    owner_id = fields.UUID(allow_none=True, metadata={
        "description": "ответственный (руководитель отдела — менеджер своего отдела; "
                       "интеграция — любой); менеджер заводит сделки на себя"})
    department_id = fields.UUID(allow_none=True, metadata={
        "description": "интеграция: отдел, чьему руководителю отдать интерес без клиента"})


class DealUpdateSchema(DealFieldsSchema):
    expected_version = fields.Integer(strict=True, allow_none=True,
                                      validate=validate.Range(min=0), metadata={
                                          "description": "версия сделки, которую правили; "
                                                         "или заголовок If-Match"})


class DealStageMoveSchema(Schema):
    stage = fields.String(required=True, validate=validate.Regexp(STAGE_CODE), metadata={
        "description": "ручной этап воронки или lost; этапы от заказа выводятся из документов 1С",
        "example": "qualified"})
    lost_reason = fields.String(allow_none=True, validate=validate.Length(max=500), metadata={
        "description": "обязательна для lost"})
    expected_version = fields.Integer(strict=True, allow_none=True,
                                      validate=validate.Range(min=0))


class DealOwnerSchema(Schema):
    owner_id = fields.UUID(required=True, metadata={"description": "менеджер своего отдела"})


class DealClientSchema(Schema):
    client_id = fields.UUID(required=True)


class DealQualifyContactSchema(Schema):
    full_name = fields.String(required=True, metadata={"example": "Петров Пётр Петрович"})
    position = fields.String(allow_none=True)
    phones = fields.List(fields.String())
    emails = fields.List(fields.String())
    messengers = fields.Dict(keys=fields.String(), values=fields.String())
    notes = fields.String(allow_none=True)


class DealQualifyClientSchema(Schema):
    """The client card to create from the lead (name, phone and e-mail come from the lead)."""

    short_name = fields.String(metadata={"description": "по умолчанию компания или имя из lead"})
    full_name = fields.String(allow_none=True)
    legal_form = fields.String(allow_none=True)
    inn = fields.String(allow_none=True)
    kpp = fields.String(allow_none=True)
    ogrn = fields.String(allow_none=True)
    region = fields.String(allow_none=True, metadata={"example": "RU-SVE"})
    phones = fields.List(fields.String())
    emails = fields.List(fields.String())
    website = fields.String(allow_none=True)
    industry = fields.String(allow_none=True)
    segment = fields.String(allow_none=True)


class DealQualifySchema(Schema):
    client = fields.Nested(DealQualifyClientSchema, load_default=dict)
    contacts = fields.List(fields.Nested(DealQualifyContactSchema), load_default=list)


class DealNoteSchema(Schema):
    text = fields.String(required=True, validate=validate.Length(min=1, max=20000))


class DealListQuery(Schema):
    owner_id = fields.UUID()
    department_id = fields.UUID()
    client_id = fields.UUID()
    stage = fields.String(metadata={
        "description": "этап; несколько — через запятую или повтором параметра"})
    open = fields.Boolean(metadata={"description": "true — открытые, false — закрытые"})
    stalled = fields.Boolean(metadata={"description": "true — зависшие на этапе"})
    source = fields.String(validate=validate.OneOf(SOURCES))
    q = fields.String(metadata={"description": "название сделки или контакты интереса"})
    expected_from = fields.Date(metadata={"description": "ожидаемое закрытие не раньше"})
    expected_to = fields.Date(metadata={"description": "ожидаемое закрытие не позже"})
    sort = sort_field(SORTS, "-created")
    limit = _limit(50, 500)
    cursor = _cursor()


class DealTimelineQuery(Schema):
    limit = _limit(50, 200)
    cursor = _cursor()


# -- deals: responses ---------------------------------------------------------------------------

class DealVolumeSchema(Schema):
    m2 = fields.String(allow_none=True)
    tonnes = fields.String(allow_none=True)
    pieces = fields.String(allow_none=True)


class DealErpSumsSchema(Schema):
    ordered = _money("по проведённым заказам")
    invoiced = _money("по проведённым счетам")
    paid = _money("оплачено")
    shipped = _money("отгружено")


class DealSchema(Schema):
    id = fields.UUID()
    funnel_id = fields.UUID()
    title = fields.String()
    client_id = fields.UUID(allow_none=True, metadata={"description": "null — интерес без "
                                                                      "клиента"})
    client_name = fields.String(allow_none=True)
    lead = fields.Nested(DealLeadSchema)
    owner_id = fields.UUID()
    owner_name = fields.String(allow_none=True)
    department_id = fields.UUID(allow_none=True)
    region = fields.String(allow_none=True)
    source = fields.String()
    source_detail = fields.Dict(metadata={
        "description": "откуда пришёл интерес: kind, form_key, utm_*, our_number, campaign_id"})
    assigned_at = fields.String(allow_none=True, metadata={
        "format": "date-time", "description": "когда распределение отдало интерес менеджеру"})
    amount = _money("потенциальная сумма", allow_none=True)
    volume = fields.Nested(DealVolumeSchema)
    product_groups = fields.List(fields.String())
    expected_close_date = _date()
    probability = fields.Integer(metadata={"description": "действующая вероятность, %"})
    probability_override = fields.Integer(allow_none=True, metadata={
        "description": "своя вероятность сделки; null — по этапу"})
    notes = fields.String()
    stage = fields.String(metadata={"example": "new"})
    stage_title = fields.String(metadata={"example": "Новый интерес"})
    manual_stage = fields.String(metadata={"description": "последний ручной этап"})
    open = fields.Boolean()
    lost_reason = fields.String(allow_none=True)
    stage_entered_at = _timestamp()
    stage_deadline_at = _timestamp("когда сделка станет зависшей")
    stalled = fields.Boolean(metadata={"description": "дольше лимита этапа"})
    stalled_at = _timestamp()
    closed_at = _timestamp()
    payment_status = fields.String(validate=validate.OneOf(PAYMENT_STATUSES))
    erp = fields.Nested(DealErpSumsSchema)
    pipeline_amount = _money("сумма в воронке: по заказу, если он есть, иначе потенциал")
    created_at = _timestamp()
    created_by = fields.UUID(allow_none=True)
    updated_at = _timestamp()
    version = fields.Integer(metadata={"description": "для expected_version / If-Match"})
    open_tasks = fields.Integer(metadata={"description": "открытые задачи (в карточке)"})


class DealRoutedToSchema(Schema):
    owner_id = fields.UUID()
    owner_name = fields.String(allow_none=True)


class DealCreatedSchema(Schema):
    created = fields.Boolean(required=True, metadata={
        "description": "false — повторное обращение: возвращена открытая сделка"})
    deal = fields.Nested(DealSchema, required=True)
    routed_to = fields.Nested(DealRoutedToSchema, allow_none=True, metadata={
        "description": "кому передан интерес, если не вызывающему"})


class DealPageSchema(Schema):
    items = fields.List(fields.Nested(DealSchema), required=True)
    next_cursor = fields.String(allow_none=True, metadata={"description": "null — последняя"})


class DealStageHistoryEntrySchema(Schema):
    from_stage = fields.String(allow_none=True)
    to_stage = fields.String()
    at = _timestamp()
    left_at = _timestamp("null — сделка на этом этапе сейчас")
    cause = fields.String(validate=validate.OneOf(STAGE_CAUSES), metadata={
        "description": "user — человек, erp — документ 1С, timer — по времени"})
    changed_by = fields.UUID(allow_none=True)
    document_guid = fields.UUID(allow_none=True)
    lost_reason = fields.String(allow_none=True)


class DealTimelineItemSchema(Schema):
    id = fields.Integer()
    at = _timestamp()
    kind = fields.String(metadata={
        "description": "created, stage, task, note, erp, call, email, owner, stalled"})
    data = fields.Dict(metadata={"description": "подробности записи (зависят от kind)"})


class DealTimelinePageSchema(Schema):
    items = fields.List(fields.Nested(DealTimelineItemSchema), required=True)
    next_cursor = fields.String(allow_none=True)


class DealDocumentSchema(Schema):
    document_guid = fields.UUID()
    kind = fields.String(validate=validate.OneOf(ERP_KINDS))
    number = fields.String()
    document_date = _timestamp()
    state = fields.String(validate=validate.OneOf(DOCUMENT_STATES))
    revision = fields.Integer()
    amount = _money()
    amount_for_deal = _money("сколько из суммы документа относится к сделке")
    order_guid = fields.UUID(allow_none=True)


# -- funnels ------------------------------------------------------------------------------------

class FunnelDurationSchema(Schema):
    amount = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    unit = fields.String(required=True, validate=validate.OneOf(TIME_UNITS))


class FunnelTaskTemplateSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=500))
    due = fields.Nested(FunnelDurationSchema, required=True, metadata={
        "description": "срок от входа на этап"})
    assignee = fields.String(load_default="owner", validate=validate.OneOf(ASSIGNEES))
    on_leave = fields.String(load_default="close", validate=validate.OneOf(ON_LEAVE), metadata={
        "description": "при уходе с этапа: закрыть или оставить"})
    kind = fields.String(load_default="task", validate=validate.OneOf(TASK_KINDS))


class FunnelStageInputSchema(Schema):
    code = fields.String(required=True, validate=validate.Regexp(STAGE_CODE),
                         metadata={"example": "qualified"})
    title = fields.String(validate=validate.Length(min=1, max=200))
    probability = fields.Integer(strict=True, load_default=0,
                                 validate=validate.Range(min=0, max=100))
    limit = fields.Nested(FunnelDurationSchema, allow_none=True, metadata={
        "description": "лимит времени на этапе; null — без лимита"})
    limit_mode = fields.String(load_default="fixed", validate=validate.OneOf(LIMIT_MODES),
                               metadata={"description": "fixed — заданный; learned — p75 "
                                                        "выигранных сделок за 12 месяцев"})
    tasks = fields.List(fields.Nested(FunnelTaskTemplateSchema), load_default=list)


class FunnelSaveSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    stages = fields.List(fields.Nested(FunnelStageInputSchema), required=True,
                         validate=validate.Length(min=1), metadata={
                             "description": "ручные этапы по порядку; этапы 1С и lost "
                                            "добавляются сами (их можно настроить)"})
    expected_version = fields.Integer(strict=True, allow_none=True,
                                      validate=validate.Range(min=1))


class FunnelLearnedSchema(Schema):
    limit_hours = fields.Float(allow_none=True, metadata={
        "description": "p75 часов, проведённых на этапе выигранными сделками"})
    samples = fields.Integer(allow_none=True)
    win_rate = fields.Float(allow_none=True, metadata={
        "description": "доля выигранных среди закрытых, прошедших этап"})
    win_samples = fields.Integer(allow_none=True)


class FunnelStageSchema(Schema):
    code = fields.String()
    title = fields.String()
    probability = fields.Integer()
    manual = fields.Boolean(metadata={"description": "двигается руками (до заказа)"})
    limit = fields.Nested(FunnelDurationSchema, allow_none=True, metadata={
        "description": "заданный лимит"})
    limit_mode = fields.String(validate=validate.OneOf(LIMIT_MODES))
    learned = fields.Nested(FunnelLearnedSchema, allow_none=True, metadata={
        "description": "вычисленный лимит и доля побед (null — ещё не считали)"})
    limit_in_use = fields.String(validate=validate.OneOf(["fixed", "learned", "none"]),
                                 metadata={"description": "какой лимит действует сейчас"})
    tasks = fields.List(fields.Nested(FunnelTaskTemplateSchema))


class FunnelSchema(Schema):
    id = fields.UUID()
    name = fields.String()
    is_default = fields.Boolean()
    stages = fields.List(fields.Nested(FunnelStageSchema))
    learned_at = _timestamp("когда последний раз вычислялись лимиты")
    version = fields.Integer()


class WorkCalendarSettingsSchema(Schema):
    timezone = fields.String(metadata={"example": "Europe/Moscow"})
    day_start = fields.String(validate=CLOCK, metadata={"example": "09:00"})
    day_end = fields.String(validate=CLOCK, metadata={"example": "18:00"})
    holidays = fields.List(fields.Date(), metadata={
        "description": "нерабочие будни сверх встроенного производственного календаря"})
    workdays = fields.List(fields.Date(), metadata={"description": "рабочие выходные"})
    short_days = fields.List(fields.Date(), metadata={"description": "сокращённые на час дни"})


class WorkCalendarStoredSchema(Schema):
    timezone = fields.String()
    day_start = fields.String()
    day_end = fields.String()
    holidays = fields.List(fields.String())
    workdays = fields.List(fields.String())
    short_days = fields.List(fields.String())


class WorkCalendarSchema(Schema):
    settings = fields.Nested(WorkCalendarStoredSchema, metadata={
        "description": "что задано администратором"})
    timezone = fields.String(metadata={"description": "действующий часовой пояс"})
    day_start = fields.String()
    day_end = fields.String()


# -- forecast -----------------------------------------------------------------------------------

class ForecastQuery(Schema):
    month_from = fields.String(required=True, validate=MONTH, metadata={"example": "2026-12"})
    month_to = fields.String(validate=MONTH, metadata={"description": "по умолчанию month_from"})
    group_by = fields.String(load_default="manager", validate=validate.OneOf(FORECAST_GROUPS))
    owner_id = fields.UUID()
    department_id = fields.UUID()
    region = fields.String()
    weights = fields.String(load_default="stage", validate=validate.OneOf(FORECAST_WEIGHTS),
                            metadata={"description": "stage — вероятности этапов; learned — "
                                                     "вычисленные доли побед"})


class ForecastDealsQuery(Schema):
    month = fields.String(required=True, validate=MONTH, metadata={"example": "2026-12"})
    figure = fields.String(required=True, validate=validate.OneOf(FORECAST_FIGURES))
    owner_id = fields.UUID()
    department_id = fields.UUID()
    region = fields.String()
    weights = fields.String(load_default="stage", validate=validate.OneOf(FORECAST_WEIGHTS))


class ForecastRowSchema(Schema):
    month = fields.String(metadata={"example": "2026-12"})
    group = fields.String(allow_none=True, metadata={
        "description": "менеджер, отдел или регион (по group_by)"})
    group_name = fields.String(allow_none=True)
    plan = _money("план продаж из payroll; null — плана нет", allow_none=True)
    won = _money("выиграно в месяце")
    committed = _money("открытые сделки с проведённым заказом")
    weighted = _money("Σ сумма × вероятность")
    best_case = _money("выиграно + все открытые сделки месяца")
    pipeline = _money("открытые сделки месяца")
    deals = fields.Integer()
    fulfilment_percent = fields.Float(allow_none=True, metadata={
        "description": "выиграно от плана, %"})


class ForecastSchema(Schema):
    group_by = fields.String()
    weights = fields.String()
    rows = fields.List(fields.Nested(ForecastRowSchema))


class ForecastDealSchema(DealSchema):
    contribution = _money("вклад сделки в показатель")


# -- tasks, the calendar, notifications ---------------------------------------------------------

class TaskCreateSchema(Schema):
    kind = fields.String(load_default="task", validate=validate.OneOf(TASK_KINDS))
    title = fields.String(required=True, validate=validate.Length(min=1, max=500))
    description = fields.String(allow_none=True, validate=validate.Length(max=20000))
    due_at = _aware("срок; у встречи — её начало")
    starts_at = _aware("начало встречи")
    ends_at = _aware("конец встречи (по умолчанию через час)")
    location = fields.String(allow_none=True, validate=validate.Length(max=500))
    deal_id = fields.UUID(allow_none=True)
    client_id = fields.UUID(allow_none=True)
    assignee_id = fields.UUID(allow_none=True, metadata={
        "description": "исполнитель (руководитель — менеджер своего отдела); по умолчанию сам"})
    department_id = fields.UUID(allow_none=True, metadata={
        "description": "интеграция без исполнителя: очередь отдела"})


class TaskUpdateSchema(Schema):
    title = fields.String(validate=validate.Length(min=1, max=500))
    description = fields.String(allow_none=True, validate=validate.Length(max=20000))
    due_at = _aware()
    starts_at = _aware()
    ends_at = _aware()
    location = fields.String(allow_none=True, validate=validate.Length(max=500))
    assignee_id = fields.UUID(metadata={"description": "передать задачу (руководитель отдела)"})
    expected_version = fields.Integer(strict=True, allow_none=True,
                                      validate=validate.Range(min=1))


class TaskCompleteSchema(Schema):
    status = fields.String(load_default="done", validate=validate.OneOf(["done", "cancelled"]))
    result = fields.String(allow_none=True, validate=validate.Length(max=20000), metadata={
        "description": "чем закончилось"})


class TaskListQuery(Schema):
    assignee_id = fields.UUID()
    department_id = fields.UUID()
    status = fields.String(validate=validate.OneOf(TASK_STATUSES))
    overdue = fields.Boolean()
    deal_id = fields.UUID()
    client_id = fields.UUID()
    kind = fields.String(validate=validate.OneOf(TASK_KINDS))
    due_from = fields.AwareDateTime(metadata={"description": "срок не раньше (с поясом)"})
    due_to = fields.AwareDateTime(metadata={"description": "срок раньше (с поясом)"})
    queue = fields.Boolean(metadata={"description": "true — неразобранные задачи отдела"})
    sort = sort_field(["due", "created"], "due")
    limit = _limit(100, 500)
    cursor = _cursor()


class TaskSchema(Schema):
    id = fields.UUID()
    deal_id = fields.UUID(allow_none=True)
    client_id = fields.UUID(allow_none=True)
    assignee_id = fields.UUID(allow_none=True, metadata={"description": "null — очередь отдела"})
    assignee_name = fields.String(allow_none=True)
    department_id = fields.UUID(allow_none=True)
    kind = fields.String(validate=validate.OneOf(TASK_KINDS))
    title = fields.String()
    description = fields.String(allow_none=True)
    due_at = _timestamp()
    starts_at = _timestamp()
    ends_at = _timestamp()
    location = fields.String(allow_none=True)
    status = fields.String(validate=validate.OneOf(TASK_STATUSES))
    source = fields.String(allow_none=True, metadata={
        "description": "manual, stage, stalled, missed_call, no_interaction, reactivation"})
    stage = fields.String(allow_none=True, metadata={"description": "этап, создавший задачу"})
    external_number = fields.String(allow_none=True)
    result = fields.String(allow_none=True)
    overdue = fields.Boolean()
    created_at = _timestamp()
    completed_at = _timestamp()
    version = fields.Integer()


class TaskPageSchema(Schema):
    items = fields.List(fields.Nested(TaskSchema), required=True)
    next_cursor = fields.String(allow_none=True)


class CalendarQuery(Schema):
    view = fields.String(load_default="week", validate=validate.OneOf(CALENDAR_VIEWS))
    day = fields.Date(metadata={"description": "день внутри периода; по умолчанию сегодня"})
    user_id = fields.UUID(metadata={"description": "чей календарь (руководитель — своего "
                                                   "отдела); по умолчанию свой"})
    department_id = fields.UUID(metadata={"description": "календарь отдела (руководитель)"})


class CalendarDaySchema(Schema):
    date = fields.String(metadata={"format": "date"})
    working = fields.Boolean(metadata={"description": "рабочий по производственному календарю"})
    items = fields.List(fields.Nested(TaskSchema))


class CalendarSchema(Schema):
    view = fields.String(validate=validate.OneOf(CALENDAR_VIEWS))
    from_ = fields.String(data_key="from", attribute="from", metadata={"format": "date"})
    to = fields.String(metadata={"format": "date"})
    timezone = fields.String()
    days = fields.List(fields.Nested(CalendarDaySchema))


class NotificationListQuery(Schema):
    unread_only = fields.Boolean(load_default=False)
    limit = _limit(50, 500)
    cursor = _cursor()


class NotificationSchema(Schema):
    id = fields.Integer()
    kind = fields.String(metadata={
        "description": "deal_routed, repeat_contact, deal_assigned, task_assigned, "
                       "task_overdue, deal_stalled, client_forgotten"})
    text = fields.String()
    deal_id = fields.UUID(allow_none=True)
    task_id = fields.UUID(allow_none=True)
    client_id = fields.UUID(allow_none=True)
    created_at = _timestamp()
    read = fields.Boolean()


class NotificationsReadSchema(Schema):
    ids = fields.List(fields.Integer(strict=True), allow_none=True, load_default=None, metadata={
        "description": "какие отметить; без ids — все свои"})


class NotificationsReadResultSchema(Schema):
    marked = fields.Integer()


class DealScanResultSchema(Schema):
    overdue_tasks = fields.Integer()
    stalled_deals = fields.Integer()
    forgotten_clients = fields.Integer()


class DealLearnResultSchema(Schema):
    funnels = fields.Dict(keys=fields.String(), values=fields.Dict(), metadata={
        "description": "воронка -> этап -> {limit_hours, samples, win_rate, win_samples}"})
