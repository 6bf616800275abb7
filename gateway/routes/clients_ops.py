"""Routes of the gateway for the sales head's work on the client base (hand-over, merge, segments,
ABC, dormant clients, reactivation campaigns, exports): a mixin of ``GatewayService``.

As everywhere in the gateway, the clients service decides: who may do what (403), whether a filter
makes sense (422 naming the field at fault), the export quota (429). Filters are free JSON here
(the filter language is the service's, see its ``domain.segments``); the shapes around them are
checked by the schemas below, the gateway's own.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

from marshmallow import Schema, fields, validate
from werkzeug.wrappers import Response

from ..api import ApiRpcProxy, api
from ..schemas import cursor_field, limit_field, page_of
from ..schemas_clients import CLIENT_STATUSES, ClientCardSchema, ClientSummarySchema
from .clients import card_response

TAGS = ["clients"]
EXPORT_FORMATS = ["csv", "xlsx"]
ABC_BASES = ["shipment", "invoice"]
ABC_CLASSES = ["A", "B", "C"]

FILTER_DESCRIPTION = (
    "фильтр сегмента (JSON): условие {field, op, value}, список условий (все сразу) или группы "
    "{all: [...]}, {any: [...]}, {not: ...}; null или {} — все доступные клиенты. Неверное поле "
    "или операция — 422 с названием поля")
FILTER_EXAMPLE = {"all": [{"field": "region", "op": "eq", "value": "RU-SVE"},
                          {"field": "last_interaction", "op": "older_than_days", "value": 90}]}


def _filter_field(**kwargs) -> fields.Raw:
    return fields.Raw(allow_none=True, metadata={"description": FILTER_DESCRIPTION,
                                                 "example": FILTER_EXAMPLE}, **kwargs)


def _segment_id_field() -> fields.UUID:
    return fields.UUID(allow_none=True, metadata={
        "description": "сохранённый сегмент вместо filter (только свой)"})


def _str(value) -> str | None:
    return str(value) if value is not None else None


def _timestamp(description: str = "") -> fields.String:
    metadata = {"format": "date-time"}
    if description:
        metadata["description"] = description
    return fields.String(allow_none=True, metadata=metadata)


def _money(description: str = "") -> fields.String:
    return fields.String(metadata={"description": description or "сумма, десятичная строка",
                                   "example": "1250000.00"})


# -- requests ---------------------------------------------------------------------------------

class HandoverRequestSchema(Schema):
    from_user_id = fields.UUID(required=True, metadata={"description": "чьих клиентов передать"})
    to_user_ids = fields.List(fields.UUID(), required=True, validate=validate.Length(min=1),
                              metadata={"description": "получатели; нескольким — поровну, "
                                                       "по очереди, начиная со старых клиентов"})
    filters = fields.Dict(keys=fields.String(), allow_none=True, metadata={
        "description": "только часть клиентов: status, segment, region (значение или список)",
        "example": {"status": ["active", "dormant"], "region": "RU-SVE"}})
    include_open_deals = fields.Boolean(load_default=True, metadata={
        "description": "открытые сделки переходят вместе с клиентами"})
    include_open_tasks = fields.Boolean(load_default=True, metadata={
        "description": "открытые задачи переходят вместе с клиентами"})


class MergeRequestSchema(Schema):
    survivor_id = fields.UUID(required=True, metadata={"description": "клиент, который остаётся"})
    merged_id = fields.UUID(required=True, metadata={
        "description": "дубль: его контакты, телефоны, почта и документы переходят к survivor_id"})


class SegmentSaveSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200),
                         metadata={"example": "Спящие Урала"})
    filter = _filter_field(required=True)
    segment_id = fields.UUID(allow_none=True, metadata={
        "description": "заменить название и фильтр своего сегмента вместо нового"})


class SegmentClientsRequestSchema(Schema):
    filter = _filter_field()
    segment_id = _segment_id_field()
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))


class AbcRequestSchema(Schema):
    period_from = fields.Date(required=True, metadata={"example": "2024-01-01"})
    period_to = fields.Date(required=True, metadata={"example": "2024-12-31",
                                                     "description": "включительно"})
    filter = _filter_field()
    segment_id = _segment_id_field()
    basis = fields.String(load_default="shipment", validate=validate.OneOf(ABC_BASES), metadata={
        "description": "shipment — по отгрузкам (реализациям), invoice — по счетам"})
    limit = fields.Integer(load_default=500, validate=validate.Range(min=1, max=10_000))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))


class CampaignStartSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200),
                         metadata={"example": "Возврат спящих, весна"})
    filter = _filter_field()
    segment_id = _segment_id_field()
    due_in_days = fields.Integer(strict=True, load_default=5,
                                 validate=validate.Range(min=1, max=90), metadata={
                                     "description": "срок звонка ответственного, дней"})


class CampaignListQuery(Schema):
    limit = limit_field(50, 500)
    cursor = cursor_field()


class ExportRequestSchema(Schema):
    filter = _filter_field()
    segment_id = _segment_id_field()
    format = fields.String(load_default="csv", validate=validate.OneOf(EXPORT_FORMATS), metadata={
        "description": "csv (UTF-8 с BOM, «;» — открывается в Excel) или xlsx"})


# -- responses --------------------------------------------------------------------------------

class HandoverResultSchema(Schema):
    batch_id = fields.UUID(metadata={"description": "одна передача — один batch_id"})
    moved = fields.Integer(metadata={"description": "сколько клиентов передано"})
    per_receiver = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "получатель -> сколько клиентов ему досталось"})


class SegmentSchema(Schema):
    id = fields.UUID()
    name = fields.String()
    filter = fields.Raw(allow_none=True)
    owner_user_id = fields.UUID()
    created_at = _timestamp()


class SegmentClientsPageSchema(Schema):
    items = fields.List(fields.Nested(ClientSummarySchema), required=True)
    total = fields.Integer(required=True)
    limit = fields.Integer()
    offset = fields.Integer()


class AbcClassTotalSchema(Schema):
    clients = fields.Integer()
    revenue = _money()
    share = fields.String(metadata={"description": "доля выручки, 0..1"})


class AbcItemSchema(Schema):
    client_id = fields.UUID()
    short_name = fields.String()
    inn = fields.String(allow_none=True)
    status = fields.String(validate=validate.OneOf(CLIENT_STATUSES))
    owner_id = fields.UUID(allow_none=True)
    owner_name = fields.String(allow_none=True)
    department_id = fields.UUID(allow_none=True)
    revenue = _money()
    share = fields.String()
    cumulative_share = fields.String()
    abc_class = fields.String(validate=validate.OneOf(ABC_CLASSES))


class AbcResultSchema(Schema):
    period_from = fields.String(metadata={"format": "date"})
    period_to = fields.String(metadata={"format": "date"})
    basis = fields.String(validate=validate.OneOf(ABC_BASES))
    total_revenue = _money()
    clients = fields.Integer()
    classes = fields.Dict(keys=fields.String(), values=fields.Nested(AbcClassTotalSchema),
                          metadata={"description": "A — 80 % выручки, B — следующие 15 %, "
                                                   "C — остальные и клиенты без выручки"})
    items = fields.List(fields.Nested(AbcItemSchema))


class DormantRecomputeResultSchema(Schema):
    changed = fields.Integer()
    to_dormant = fields.Integer()
    to_active = fields.Integer()


class CampaignStartedSchema(Schema):
    campaign_id = fields.UUID()
    name = fields.String()
    targets = fields.Integer()
    created_at = _timestamp()
    due_at = _timestamp()


class CampaignSummarySchema(Schema):
    campaign_id = fields.UUID()
    name = fields.String()
    created_by = fields.UUID()
    created_at = _timestamp()
    due_at = _timestamp()
    targets = fields.Integer()
    reached = fields.Integer(metadata={"description": "дозвонились или написали после старта"})
    with_new_deal = fields.Integer(metadata={"description": "появилась новая сделка"})


class CampaignOwnerStatsSchema(Schema):
    owner_id = fields.UUID(allow_none=True)
    owner_name = fields.String(allow_none=True)
    targets = fields.Integer()
    reached = fields.Integer()
    with_new_deal = fields.Integer()


class CampaignReportSchema(CampaignSummarySchema):
    filter = fields.Raw(allow_none=True)
    per_owner = fields.List(fields.Nested(CampaignOwnerStatsSchema))


def file_response(result: dict) -> Response:
    """The exported file itself, as a download (the name in RFC 5987 form too)."""
    filename = result["filename"]
    ascii_name = filename.encode("ascii", "replace").decode("ascii").replace('"', "")
    response = Response(base64.b64decode(result["content_base64"]), status=200,
                        content_type=result["content_type"])
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}")
    response.headers["X-Export-Rows"] = str(result.get("rows", ""))
    response.headers["Cache-Control"] = "no-store"
    return response


class ClientOperationsRoutes:
    clients_ops_rpc = ApiRpcProxy("clients")

    # -- hand-over and merge --------------------------------------------------------------------
    @api("POST", "/api/v1/clients/handover", body=HandoverRequestSchema,
         response=HandoverResultSchema,
         summary="Передать клиентов менеджера другим (руководитель отдела, директор)", tags=TAGS)
    def handover_clients(self, request, body):
        """All or a filtered part of one manager's clients go to one or, evenly, to several
        receivers, in one transaction: all move or none. Open deals and tasks follow unless
        switched off. A sales head hands over within the own department."""
        return self.clients_ops_rpc.transfer_clients(
            str(body["from_user_id"]), [str(u) for u in body["to_user_ids"]],
            filters=body.get("filters"), include_open_deals=body["include_open_deals"],
            include_open_tasks=body["include_open_tasks"])

    @api("POST", "/api/v1/clients/merge", body=MergeRequestSchema, response=ClientCardSchema,
         summary="Объединить дубли клиента (руководитель отдела, директор)", tags=TAGS)
    def merge_clients(self, request, body):
        """The duplicate's contacts, phones, e-mails, addresses, documents and campaign targets
        move to the survivor; the duplicate then reads as 404 ``client_merged``. Different INNs,
        KPPs or OGRNs are refused (409)."""
        return card_response(self.clients_ops_rpc.merge_clients(
            str(body["survivor_id"]), str(body["merged_id"])))

    # -- segments -------------------------------------------------------------------------------
    @api("GET", "/api/v1/segments", response=SegmentSchema, many=True,
         summary="Мои сохранённые сегменты", tags=TAGS)
    def list_segments(self, request):
        return self.clients_ops_rpc.list_segments()

    @api("POST", "/api/v1/segments", body=SegmentSaveSchema, response=SegmentSchema,
         status=201,
         idempotent=True, summary="Сохранить сегмент (фильтр клиентов под именем)", tags=TAGS)
    def save_segment(self, request, body):
        """A new segment (201), or with ``segment_id`` the new name and filter of one's segment
        (200). The filter is checked first: 422 names the field at fault."""
        segment_id = _str(body.get("segment_id"))
        saved = self.clients_ops_rpc.save_segment(body["name"], body["filter"],
                                                  segment_id=segment_id)
        return (200 if segment_id else 201), saved

    @api("DELETE", "/api/v1/segments/<uuid:segment_id>", status=204,
         summary="Удалить сохранённый сегмент", tags=TAGS)
    def delete_segment(self, request, segment_id):
        """Campaigns started from the segment keep their copy of the filter."""
        self.clients_ops_rpc.delete_segment(str(segment_id))
        return 204, None

    @api("POST", "/api/v1/segments/clients", body=SegmentClientsRequestSchema,
         response=SegmentClientsPageSchema,
         summary="Клиенты по фильтру или сохранённому сегменту", tags=TAGS)
    def segment_clients(self, request, body):
        """The clients of the filter (or segment) the caller may see, by name, paged."""
        page = self.clients_ops_rpc.segment_clients(
            body.get("filter"), segment_id=_str(body.get("segment_id")), limit=body["limit"],
            offset=body["offset"])
        return {**page, "limit": body["limit"], "offset": body["offset"]}

    # -- analysis -------------------------------------------------------------------------------
    @api("POST", "/api/v1/clients/abc", body=AbcRequestSchema, response=AbcResultSchema,
         summary="ABC-анализ клиентов по выручке за период", tags=TAGS)
    def abc_analysis(self, request, body):
        """Classes of the visible clients (of a filter or segment) by posted shipments (or
        invoices) over the period, both ends inclusive: A the top 80 % of revenue, B the next
        15 %, C the rest and clients without revenue. Sums are decimal strings."""
        return self.clients_ops_rpc.abc_analysis(
            body["period_from"].isoformat(), body["period_to"].isoformat(),
            filter=body.get("filter"), segment_id=_str(body.get("segment_id")),
            basis=body["basis"], limit=body["limit"], offset=body["offset"])

    @api("POST", "/api/v1/clients/dormant/recompute", response=DormantRecomputeResultSchema,
         summary="Пересчитать спящих клиентов сейчас (руководитель отдела, директор)",
         tags=TAGS)
    def recompute_dormant(self, request):
        """Statuses from the last invoice, now instead of at the next scheduled scan (a sales
        head: the own department)."""
        return self.clients_ops_rpc.recompute_dormant()

    # -- reactivation campaigns -----------------------------------------------------------------
    @api("GET", "/api/v1/campaigns", query=CampaignListQuery,
         response=page_of(CampaignSummarySchema),
         summary="Кампании реактивации (руководитель отдела, директор)", tags=TAGS)
    def list_campaigns(self, request, query):
        """Newest first, with counts; a sales head sees the own campaigns. Pass
        ``next_cursor`` as ``cursor`` for the next page."""
        return self.clients_ops_rpc.page_campaigns(limit=query["limit"],
                                                   cursor=query.get("cursor"))

    @api("POST", "/api/v1/campaigns", body=CampaignStartSchema, response=CampaignStartedSchema,
         status=201,
         idempotent=True, summary="Запустить кампанию реактивации по сегменту", tags=TAGS)
    def start_campaign(self, request, body):
        """Every visible client of the filter (or segment) becomes a target and its owner gets a
        task to call back within ``due_in_days``. No clients: 422 ``empty_campaign``."""
        return 201, self.clients_ops_rpc.start_campaign(
            body["name"], filter=body.get("filter"), segment_id=_str(body.get("segment_id")),
            due_in_days=body["due_in_days"])

    @api("GET", "/api/v1/campaigns/<uuid:campaign_id>/report", response=CampaignReportSchema,
         summary="Отчёт по кампании реактивации", tags=TAGS)
    def campaign_report(self, request, campaign_id):
        """Targets, reached and with a new deal, overall and per owner."""
        return self.clients_ops_rpc.campaign_report(str(campaign_id))

    # -- export ---------------------------------------------------------------------------------
    @api("POST", "/api/v1/clients/export", body=ExportRequestSchema,
         summary="Выгрузить клиентов в CSV или XLSX (руководитель отдела, директор)", tags=TAGS)
    def export_clients(self, request, body):
        """The file itself (``Content-Disposition: attachment``). At most
        ``EXPORT_DAILY_QUOTA`` exports a day per person: over it 429 ``export_quota_exceeded``.
        Every export is audited."""
        return file_response(self.clients_ops_rpc.export_clients(
            body.get("filter"), format=body["format"], segment_id=_str(body.get("segment_id"))))

