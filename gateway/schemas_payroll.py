"""Schemas of the payroll API (/api/v1/payroll/..., /api/v1/kpi): the gateway's own, never the
service's.

Months are written ``ГГГГ-ММ`` (Europe/Moscow calendar months). Money and tonnes go in as a number
or a decimal string and come out as decimal strings; counts are integers. The payroll service
checks the meaning (who may plan for whom, the workflow's states and roles, a scheme's rules) and
its 4xx names the field.
"""

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from .schemas import DecimalString

KPIS = ["sales", "shipments", "payments", "new_clients", "calls", "meetings"]
MONEY_KPIS = ["sales", "payments"]
DOCUMENT_STATES = ["draft", "confirmed", "approved", "exported"]
LINE_KINDS = ["fixed", "percent", "bonus", "cap", "correction"]
EXPORT_FORMATS = ["xlsx", "csv"]
MONTH = validate.Regexp(r"^\d{4}-(0[1-9]|1[0-2])$", error="месяц ГГГГ-ММ, например 2026-11")


class DateText(fields.Date):
    """A date: loaded as usual, dumped as is when the service already sent ``YYYY-MM-DD``."""

    def _serialize(self, value, attr, obj, **kwargs):
        if isinstance(value, str):
            return value
        return super()._serialize(value, attr, obj, **kwargs)


def _between(low, high=None):
    """A decimal range check the OpenAPI generator leaves alone (it would print the bounds as
    strings, which OpenAPI refuses)."""

    def check(value):
        if value < low or (high is not None and value > high):
            raise ValidationError(f"от {low}" + (f" до {high}" if high is not None else ""))

    return check


def _dec(description: str = "", **kwargs) -> fields.String:
    metadata = {"format": "decimal", "example": "1250000.00"}
    if description:
        metadata["description"] = description
    return fields.String(allow_none=True, metadata=metadata, **kwargs)


def _amount_in(description: str, *, required: bool = False, places: int = 2):
    kwargs = {"required": True} if required else {"allow_none": True, "load_default": None}
    return DecimalString(places=places, as_string=True, allow_nan=False,
                          validate=_between(0), metadata={"description": description},
                          **kwargs)


def _count_in(description: str):
    return fields.Integer(strict=True, allow_none=True, load_default=None,
                          validate=validate.Range(min=0, max=100000),
                          metadata={"description": description})


def _month(**kwargs) -> fields.String:
    return fields.String(validate=MONTH, metadata={"example": "2026-11"}, **kwargs)


# -- plans ---------------------------------------------------------------------------------------

class PlanValuesSchema(Schema):
    sales = _amount_in("продажи (реализации), ₽", required=True)
    shipments = _amount_in("отгрузки, тонн")
    payments = _amount_in("поступления оплат, ₽")
    new_clients = _count_in("новые клиенты")
    calls = _count_in("звонки")
    meetings = _count_in("встречи")


class PlanSchema(Schema):
    user_id = fields.UUID()
    month = DateText()
    department_id = fields.UUID(allow_none=True)
    sales = _dec("₽")
    shipments = _dec("тонн")
    payments = _dec("₽")
    new_clients = fields.Integer(allow_none=True)
    calls = fields.Integer(allow_none=True)
    meetings = fields.Integer(allow_none=True)
    updated_at = fields.String(metadata={"format": "date-time"})
    updated_by = fields.UUID(allow_none=True)


class PlanRowSchema(Schema):
    user_id = fields.UUID()
    full_name = fields.String()
    department_id = fields.UUID(allow_none=True)
    plan = fields.Nested(PlanSchema, allow_none=True,
                         metadata={"description": "null: план не задан"})


class DepartmentPlanSchema(Schema):
    department_id = fields.UUID(allow_none=True)
    name = fields.String()
    managers = fields.Integer()
    planned = fields.Integer(metadata={"description": "у скольких менеджеров план задан"})
    sales = _dec()
    shipments = _dec()
    payments = _dec()
    new_clients = fields.Integer(allow_none=True)
    calls = fields.Integer(allow_none=True)
    meetings = fields.Integer(allow_none=True)


class PlansOverviewSchema(Schema):
    month = DateText()
    managers = fields.List(fields.Nested(PlanRowSchema))
    departments = fields.List(fields.Nested(DepartmentPlanSchema),
                              metadata={"description": "свод по отделам"})


class PlansQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    month = _month(required=True)
    department_id = fields.UUID(load_default=None)


class DepartmentQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    department_id = fields.UUID(load_default=None)


class CopyPlansSchema(Schema):
    department_id = fields.UUID(allow_none=True, load_default=None, metadata={
        "description": "директор: один отдел (по умолчанию все)"})


class CopyResultSchema(Schema):
    month = DateText()
    source_month = DateText()
    copied = fields.Integer()


class PlanImportSchema(Schema):
    file_base64 = fields.String(required=True, validate=validate.Length(min=1), metadata={
        "description": "XLSX по шаблону (GET .../template), base64; не больше 5 МБ"})


class PlanImportResultSchema(Schema):
    month = DateText()
    imported = fields.Integer()


# -- pay schemes ---------------------------------------------------------------------------------

class PercentRuleSchema(Schema):
    kpi = fields.String(required=True, validate=validate.OneOf(MONEY_KPIS))
    rate = DecimalString(required=True, as_string=True, allow_nan=False,
                          validate=_between(0, 100),
                          metadata={"description": "% от факта"})
    cap = DecimalString(allow_none=True, load_default=None, places=2, as_string=True,
                         allow_nan=False, validate=_between(0))


class TierSchema(Schema):
    from_pct = DecimalString(required=True, as_string=True, allow_nan=False,
                              validate=_between(0, 1000),
                              metadata={"description": "порог выполнения, %"})
    rate = DecimalString(required=True, as_string=True, allow_nan=False,
                          validate=_between(0, 100))


class WeightSchema(Schema):
    kpi = fields.String(required=True, validate=validate.OneOf(KPIS))
    weight = DecimalString(required=True, as_string=True, allow_nan=False,
                            validate=_between(0.0001, 100))
    cap_pct = DecimalString(allow_none=True, load_default=None, as_string=True,
                             allow_nan=False, validate=_between(0, 1000))


class BonusSchema(Schema):
    tiers = fields.List(fields.Nested(TierSchema), required=True,
                        validate=validate.Length(min=1, max=10))
    base_kpi = fields.String(allow_none=True, load_default="sales",
                             validate=validate.OneOf(MONEY_KPIS))
    base_amount = DecimalString(allow_none=True, load_default=None, places=2, as_string=True,
                                 allow_nan=False, validate=_between(0))
    mode = fields.String(load_default="whole", validate=validate.OneOf(["whole", "marginal"]),
                         metadata={"description": "whole: ставка ступени на всю базу; "
                                                  "marginal: по диапазонам выполнения"})
    cap = DecimalString(allow_none=True, load_default=None, places=2, as_string=True,
                         allow_nan=False, validate=_between(0))


class PaySchemeSchema(Schema):
    id = fields.Integer(dump_only=True)
    position = fields.String(required=True, validate=validate.Length(min=1, max=50),
                             metadata={"example": "manager"})
    name = fields.String(load_default="", validate=validate.Length(max=200))
    valid_from = DateText(required=True, metadata={"example": "2026-12-01"})
    version = fields.Integer(dump_only=True)
    fixed = DecimalString(required=True, places=2, as_string=True, allow_nan=False,
                           validate=_between(0))
    percentages = fields.List(fields.Nested(PercentRuleSchema), load_default=list)
    weights = fields.List(fields.Nested(WeightSchema), load_default=list)
    bonus = fields.Nested(BonusSchema, allow_none=True, load_default=None)
    total_cap = DecimalString(allow_none=True, load_default=None, places=2, as_string=True,
                               allow_nan=False, validate=_between(0))
    what_if_kpi = fields.String(load_default="sales", validate=validate.OneOf(KPIS))
    created_at = fields.String(dump_only=True, metadata={"format": "date-time"})
    created_by = fields.UUID(dump_only=True, allow_none=True)


class PositionSchema(Schema):
    user_id = fields.UUID(dump_only=True)
    position = fields.String(required=True, validate=validate.Length(min=1, max=50), metadata={
        "description": "должность для схемы оплаты (по умолчанию — роль)",
        "example": "senior_manager"})


class PayrollSchemeQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    position = fields.String(load_default=None, validate=validate.Length(max=50))


# -- documents -----------------------------------------------------------------------------------

class KpiFigureSchema(Schema):
    kpi = fields.String(validate=validate.OneOf(KPIS))
    title = fields.String()
    plan = _dec()
    fact = _dec()
    fulfilment = _dec("%")


class LineSchema(Schema):
    kind = fields.String(validate=validate.OneOf(LINE_KINDS))
    title = fields.String()
    amount = _dec("₽")
    formula = fields.String(metadata={"description": "как посчитано"})
    kpi = fields.String(allow_none=True)
    plan = _dec()
    fact = _dec()
    fulfilment = _dec("%")
    source_month = fields.String(allow_none=True, metadata={
        "description": "корректировка: за какой месяц"})


class CommentSchema(Schema):
    id = fields.Integer()
    author_id = fields.UUID()
    author_name = fields.String()
    kind = fields.String(validate=validate.OneOf(["comment", "returned"]))
    text = fields.String()
    at = fields.String(metadata={"format": "date-time"})


class DocumentSummarySchema(Schema):
    id = fields.UUID()
    user_id = fields.UUID()
    full_name = fields.String()
    department_id = fields.UUID(allow_none=True)
    month = DateText()
    state = fields.String(validate=validate.OneOf(DOCUMENT_STATES))
    stale = fields.Boolean(metadata={"description": "факты изменились после подтверждения"})
    total = _dec("₽")
    weighted_fulfilment = _dec("%")
    has_corrections = fields.Boolean()
    computed_at = fields.String(metadata={"format": "date-time"})
    revision = fields.Integer()


class DocumentSchema(DocumentSummarySchema):
    scheme_id = fields.Integer(allow_none=True)
    kpis = fields.List(fields.Nested(KpiFigureSchema))
    lines = fields.List(fields.Nested(LineSchema))
    plans = fields.Dict(keys=fields.String(), values=fields.String(allow_none=True))
    facts = fields.Dict(keys=fields.String(), values=fields.String(allow_none=True))
    confirmed_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    approved_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    approved_by = fields.UUID(allow_none=True)
    exported_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    comments = fields.List(fields.Nested(CommentSchema))


class DocumentsQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    month = _month(required=True)
    department_id = fields.UUID(load_default=None)
    user_id = fields.UUID(load_default=None)


class ComputeDocumentsSchema(Schema):
    month = _month(required=True)
    department_id = fields.UUID(allow_none=True, load_default=None)
    user_id = fields.UUID(allow_none=True, load_default=None)


class SkippedSchema(Schema):
    user_id = fields.String()
    reason = fields.String(metadata={"description": "confirmed, approved, exported, no_scheme"})


class ComputeResultSchema(Schema):
    month = DateText()
    computed = fields.List(fields.UUID())
    skipped = fields.List(fields.Nested(SkippedSchema))


class ReturnDocumentSchema(Schema):
    comment = fields.String(required=True, validate=validate.Length(min=1, max=4000))


class CommentCreateSchema(Schema):
    text = fields.String(required=True, validate=validate.Length(min=1, max=4000))


class ExportDocumentsSchema(Schema):
    month = _month(required=True)
    format = fields.String(load_default="xlsx", validate=validate.OneOf(EXPORT_FORMATS))
    department_id = fields.UUID(allow_none=True, load_default=None)


# -- KPI widget ----------------------------------------------------------------------------------

class NextTierSchema(Schema):
    kpi = fields.String()
    title = fields.String()
    from_pct = _dec("%")
    rate = _dec("%")
    more_needed = _dec("сколько ещё отгрузить (реализаций, ₽) до следующей ступени")
    pay_then = _dec("₽")


class KpiWidgetSchema(Schema):
    user_id = fields.UUID()
    department_id = fields.UUID(allow_none=True)
    month = DateText()
    kpis = fields.List(fields.Nested(KpiFigureSchema))
    weighted_fulfilment = _dec("%")
    projected_pay = _dec("₽, начислено на сегодня; null — нет схемы оплаты")
    next_tier = fields.Nested(NextTierSchema, allow_none=True)
    scheme_id = fields.Integer(allow_none=True)


class KpiQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    user_id = fields.UUID(load_default=None)
    month = _month(load_default=None)
