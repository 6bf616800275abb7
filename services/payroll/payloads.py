"""What the payroll RPCs answer, dumped through marshmallow to plain JSON (decimals as strings,
ISO dates), so any caller can read it without kombu's type envelopes."""

from __future__ import annotations

from marshmallow import Schema, fields

from .schemes import SchemeSchema


def _dec(**kwargs):
    return fields.Decimal(as_string=True, allow_none=True, **kwargs)


class KpiSchema(Schema):
    kpi = fields.String()
    title = fields.String()
    plan = _dec()
    fact = _dec()
    fulfilment = _dec()


class LineSchema(Schema):
    kind = fields.String()
    title = fields.String()
    amount = _dec()
    formula = fields.String()
    kpi = fields.String(allow_none=True)
    plan = _dec()
    fact = _dec()
    fulfilment = _dec()
    source_month = fields.String(allow_none=True)


class CommentSchema(Schema):
    id = fields.Integer()
    author_id = fields.UUID()
    author_name = fields.String()
    kind = fields.String()
    text = fields.String()
    at = fields.DateTime()


class DocumentSummarySchema(Schema):
    id = fields.UUID()
    user_id = fields.UUID()
    full_name = fields.String()
    department_id = fields.UUID(allow_none=True)
    month = fields.Date()
    state = fields.String()
    stale = fields.Boolean()
    total = _dec()
    weighted_fulfilment = _dec()
    has_corrections = fields.Boolean()
    computed_at = fields.DateTime()
    revision = fields.Integer()


class DocumentSchema(DocumentSummarySchema):
    scheme_id = fields.Integer(allow_none=True)
    kpis = fields.List(fields.Nested(KpiSchema))
    lines = fields.List(fields.Nested(LineSchema))
    plans = fields.Dict(keys=fields.String(), values=fields.String(allow_none=True))
    facts = fields.Dict(keys=fields.String(), values=fields.String(allow_none=True))
    confirmed_at = fields.DateTime(allow_none=True)
    approved_at = fields.DateTime(allow_none=True)
    approved_by = fields.UUID(allow_none=True)
    exported_at = fields.DateTime(allow_none=True)
    comments = fields.List(fields.Nested(CommentSchema))


class ComputeResultSchema(Schema):
    month = fields.Date()
    computed = fields.List(fields.UUID())
    skipped = fields.List(fields.Dict())


class PlanSchema(Schema):
    user_id = fields.UUID()
    month = fields.Date()
    department_id = fields.UUID(allow_none=True)
    sales = _dec(places=2)
    shipments = _dec(places=2)
    payments = _dec(places=2)
    new_clients = fields.Integer(allow_none=True)
    calls = fields.Integer(allow_none=True)
    meetings = fields.Integer(allow_none=True)
    updated_at = fields.DateTime()
    updated_by = fields.UUID(allow_none=True)


class PlanRowSchema(Schema):
    user_id = fields.UUID()
    full_name = fields.String()
    department_id = fields.UUID(allow_none=True)
    plan = fields.Nested(PlanSchema, allow_none=True)


class DepartmentPlanSchema(Schema):
    department_id = fields.UUID(allow_none=True)
    name = fields.String()
    managers = fields.Integer()
    planned = fields.Integer()
    sales = _dec()
    shipments = _dec()
    payments = _dec()
    new_clients = fields.Integer(allow_none=True)
    calls = fields.Integer(allow_none=True)
    meetings = fields.Integer(allow_none=True)


class PlansOverviewSchema(Schema):
    month = fields.Date()
    managers = fields.List(fields.Nested(PlanRowSchema))
    departments = fields.List(fields.Nested(DepartmentPlanSchema))


class NextTierSchema(Schema):
    kpi = fields.String()
    title = fields.String()
    from_pct = _dec()
    rate = _dec()
    more_needed = _dec()
    pay_then = _dec()


class WidgetSchema(Schema):
    user_id = fields.UUID()
    department_id = fields.UUID(allow_none=True)
    month = fields.Date()
    kpis = fields.List(fields.Nested(KpiSchema))
    weighted_fulfilment = _dec()
    projected_pay = _dec()
    next_tier = fields.Nested(NextTierSchema, allow_none=True)
    scheme_id = fields.Integer(allow_none=True)


class CopyResultSchema(Schema):
    month = fields.Date()
    source_month = fields.Date()
    copied = fields.Integer()


class ImportResultSchema(Schema):
    month = fields.Date()
    imported = fields.Integer()


def dump(schema_cls: type[Schema], data, many: bool = False):
    return schema_cls(many=many).dump(data)


def dump_scheme(data: dict) -> dict:
    return SchemeSchema().dump(data)
