"""Request and response shapes of the reports API (``/api/v1/reports``)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

PERIODS = ["day", "week", "month", "quarter", "year", "custom"]
FORMATS = ["json", "csv", "xlsx"]


class ReportQuery(Schema):
    period = fields.String(load_default="month", validate=validate.OneOf(PERIODS), metadata={
        "description": "день, неделя, месяц, квартал, год (содержащие date) или custom "
                       "(date_from..date_to)"})
    date = fields.Date(metadata={"description": "любой день периода (по умолчанию сегодня)"})
    date_from = fields.Date(metadata={"description": "начало периода custom (включительно)"})
    date_to = fields.Date(metadata={"description": "конец периода custom (включительно)"})
    manager_id = fields.UUID()
    department_id = fields.UUID()
    region = fields.String(validate=validate.Length(max=16), metadata={"example": "RU-SVE"})
    segment = fields.String(validate=validate.Length(max=50))
    client_id = fields.UUID()
    group_by = fields.String(validate=validate.Length(max=200), metadata={
        "description": "через запятую: одна единица времени (day, week, month, quarter, year) "
                       "и разрезы manager, department, region, segment, client, а также "
                       "source (интересы), stage (воронка, время на этапах)",
        "example": "week,department"})
    days = fields.Integer(validate=validate.Range(min=1, max=3650), metadata={
        "description": "клиенты без взаимодействия: сколько дней (по умолчанию 30)"})
    status = fields.String(validate=validate.OneOf(["open", "closed", "all"]), metadata={
        "description": "время на этапах: открытые, закрытые или все пребывания"})
    limit = fields.Integer(validate=validate.Range(min=1, max=50_000))
    format = fields.String(validate=validate.OneOf(FORMATS), metadata={
        "description": "json (по умолчанию), csv (UTF-8 с BOM, «;») или xlsx; иначе по Accept"})


class ReportColumnSchema(Schema):
    key = fields.String()
    title = fields.String()
    kind = fields.String()


class ReportCatalogueItemSchema(Schema):
    name = fields.String(metadata={"example": "calls"})
    title = fields.String()
    description = fields.String()
    group_by = fields.List(fields.String())
    default_group_by = fields.List(fields.String())
    columns = fields.List(fields.Nested(ReportColumnSchema))


class ReportSchema(Schema):
    report = fields.String()
    title = fields.String()
    params = fields.Dict(metadata={"description": "разрешённые параметры: период, фильтры"})
    columns = fields.List(fields.Nested(ReportColumnSchema))
    rows = fields.List(fields.Dict(), metadata={
        "description": "строки: ключи группировки (period_start, manager_id + manager, ...) и "
                       "показатели; деньги — десятичные строки"})
    totals = fields.Dict(metadata={"description": "итоги по всем строкам"})
    generated_at = fields.String(metadata={"format": "date-time"})
