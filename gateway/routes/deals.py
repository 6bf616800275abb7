"""Deal routes of the gateway (/api/v1/deals, funnels, the work calendar, the forecast): a mixin of
``GatewayService``.

The gateway maps HTTP to the deals service's RPCs; the caller's identity travels in the RPC context
and the service decides: who may see a deal (404 otherwise) and change it (403), whether a lead
belongs to someone else's client (409 ``client_owned`` naming the owner and the department), which
stages may be chosen by hand (422: the ones from the customer order on follow the 1C documents).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import date, datetime
from decimal import Decimal

from werkzeug.wrappers import Response

from crm_platform.errors import ValidationFailed

from ..api import ApiRpcProxy, api
from ..schemas_deals import (
    STAGE_CODE,
    DealClientSchema,
    DealCreatedSchema,
    DealCreateSchema,
    DealDocumentSchema,
    DealListQuery,
    DealNoteSchema,
    DealOwnerSchema,
    DealPageSchema,
    DealQualifySchema,
    DealSchema,
    DealStageHistoryEntrySchema,
    DealStageMoveSchema,
    DealTimelineItemSchema,
    DealTimelinePageSchema,
    DealTimelineQuery,
    DealUpdateSchema,
    ForecastDealSchema,
    ForecastDealsQuery,
    ForecastQuery,
    ForecastSchema,
    FunnelSaveSchema,
    FunnelSchema,
    WorkCalendarSchema,
    WorkCalendarSettingsSchema,
)
from .clients import expected_version

TAGS = ["deals"]
FUNNEL_TAGS = ["funnels"]
FORECAST_TAGS = ["forecast"]
_STAGE_CODE = re.compile(STAGE_CODE)


def to_rpc(value):
    """A loaded request as plain JSON for an RPC: UUIDs and money as strings, dates and times in
    ISO 8601 (times keep their zone)."""
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [to_rpc(v) for v in value]
    if isinstance(value, dict):
        return {k: to_rpc(v) for k, v in value.items()}
    return value


def _str(value) -> str | None:
    return str(value) if value is not None else None


def versioned_response(schema, data: dict, status: int = 200) -> Response:
    """A resource with its version as the ETag, for a later ``If-Match``."""
    body = schema().dump(data)
    response = Response(json.dumps(body, ensure_ascii=False, default=str), status=status,
                        mimetype="application/json")
    if data.get("version") is not None:
        response.headers["ETag"] = f'"{data["version"]}"'
    return response


def deal_response(deal: dict, status: int = 200) -> Response:
    return versioned_response(DealSchema, deal, status)


def stages_of(request) -> list[str] | None:
    """``stage`` repeated (``?stage=new&stage=qualified``) or as a comma list."""
    codes = [code.strip() for raw in request.args.getlist("stage") for code in raw.split(",")
             if code.strip()]
    bad = [code for code in codes if not _STAGE_CODE.fullmatch(code)]
    if bad:
        raise ValidationFailed("Запрос не прошёл проверку", fields={
            "stage": [f"не код этапа: {', '.join(bad)}"]})
    return codes or None


def funnel_view(funnel: dict) -> dict:
    """Stages stored before ``limit_mode`` existed use the fixed limit."""
    return {**funnel, "stages": [{"limit_mode": "fixed", **stage}
                                 for stage in funnel.get("stages") or []]}


class DealRoutes:
    deals_rpc = ApiRpcProxy("deals")

    # -- registering and reading ----------------------------------------------------------------
    @api("POST", "/api/v1/deals", body=DealCreateSchema, response=DealCreatedSchema, status=201,
         other_statuses=(200,),
         idempotent=True,
         summary="Зарегистрировать сделку (интерес) при первом обращении", tags=TAGS)
    def create_deal(self, request, body):
        """With ``client_id`` the deal is the client's; without, the lead's contacts (``lead``:
        name, company, INN, phone, e-mail) go through the clients' duplicate check first. 201
        with ``created: true`` for a new deal. A repeated contact about an open deal returns
        that deal: 200 with ``created: false``. A manager typing in a lead of another manager's
        client is refused: 409 ``client_owned`` naming the owner and the department
        (``client_in_pool`` for a pool client, ``lead_owned`` for a colleague's open lead); the
        same lead coming by itself (an integration account, ``source`` web, call, e-mail) goes to
        the client's owner (``routed_to``)."""
        data = to_rpc(body)
        owner_id = data.pop("owner_id", None)
        department_id = data.pop("department_id", None)
        result = self.deals_rpc.create_deal(data, owner_id=owner_id,
                                            department_id=department_id)
        return (201 if result["created"] else 200), result

    @api("GET", "/api/v1/deals", query=DealListQuery, response=DealPageSchema,
         summary="Сделки (свои, отдела или все — по роли), постранично", tags=TAGS)
    def list_deals(self, request, query):
        """Newest first, or by ``sort`` (created, updated, expected_close, amount; ``-`` for
        descending), with a cursor:
        pass ``next_cursor`` for the next page. ``stalled: true`` marks deals longer in their
        stage than its limit."""
        filters = to_rpc({k: v for k, v in query.items() if k not in ("limit", "cursor")})
        filters["descending"] = filters["sort"].startswith("-")
        filters["sort"] = filters["sort"].lstrip("-")
        stages = stages_of(request)
        if stages:
            filters["stage"] = stages
        return self.deals_rpc.list_deals(filters, limit=query["limit"],
                                         cursor=query.get("cursor"))

    @api("GET", "/api/v1/deals/<uuid:deal_id>", response=DealSchema, etag=True,
         summary="Карточка сделки", tags=TAGS)
    def get_deal(self, request, deal_id):
        """The deal with its stage, ERP sums and payment status, and the number of open tasks.
        ``ETag`` is the deal's version."""
        return deal_response(self.deals_rpc.get_deal(str(deal_id)))

    @api("PATCH", "/api/v1/deals/<uuid:deal_id>", body=DealUpdateSchema, response=DealSchema,
         versioned=True,
         summary="Изменить сделку (сумма, объём, сроки, вероятность, заметки)", tags=TAGS)
    def update_deal(self, request, deal_id, body, version):
        """Only the given fields change. ``If-Match`` (the deal's ``ETag``) or
        ``expected_version`` is required (428 without); an edit of a deal someone changed
        meanwhile is refused: 412 ``precondition_failed``."""
        changes = to_rpc({k: v for k, v in body.items() if k != "expected_version"})
        return deal_response(self.deals_rpc.update_deal(str(deal_id), changes,
                                                        expected_version=version))

    # -- the funnel -----------------------------------------------------------------------------
    @api("POST", "/api/v1/deals/<uuid:deal_id>/stage", body=DealStageMoveSchema,
         response=DealSchema, summary="Перевести сделку на этап (или проиграна с причиной)",
         tags=TAGS)
    def move_deal_stage(self, request, deal_id, body):
        """Between the funnel's manual stages, or to ``lost`` with ``lost_reason`` from any open
        stage. Stages from the customer order on follow the 1C documents and cannot be chosen
        (422 naming ``stage``). Entering a stage creates its template tasks; leaving one closes
        them (or keeps them, as the template says)."""
        version = expected_version(request, body)
        return deal_response(self.deals_rpc.move_stage(
            str(deal_id), body["stage"], lost_reason=body.get("lost_reason"),
            expected_version=version))

    @api("POST", "/api/v1/deals/<uuid:deal_id>/reopen", response=DealSchema,
         summary="Переоткрыть проигранную сделку (руководитель отдела)", tags=TAGS)
    def reopen_deal(self, request, deal_id):
        """Back to the stage its 1C documents imply, or to its last manual stage."""
        return deal_response(self.deals_rpc.reopen_deal(str(deal_id)))

    @api("PUT", "/api/v1/deals/<uuid:deal_id>/owner", body=DealOwnerSchema, response=DealSchema,
         summary="Передать сделку другому менеджеру (руководитель отдела)", tags=TAGS)
    def reassign_deal(self, request, deal_id, body):
        """The deal and its open tasks go to a manager of the department, who is notified."""
        return deal_response(self.deals_rpc.reassign_deal(str(deal_id), str(body["owner_id"])))

    @api("POST", "/api/v1/deals/<uuid:deal_id>/client", body=DealClientSchema,
         response=DealSchema, summary="Привязать интерес к клиенту базы", tags=TAGS)
    def attach_deal_client(self, request, deal_id, body):
        """The lead is this client's (one the caller may work with: another manager's client is
        409 ``client_owned``)."""
        return deal_response(self.deals_rpc.attach_client(str(deal_id), str(body["client_id"])))

    @api("POST", "/api/v1/deals/<uuid:deal_id>/qualify", body=DealQualifySchema,
         response=DealSchema, summary="Квалифицировать интерес: завести клиента и привязать",
         tags=TAGS)
    def qualify_deal(self, request, deal_id, body):
        """A client of the base is created from the lead (its company or name, phone, e-mail,
        INN) and the given card fields and contacts, through the clients service and its
        duplicate check: someone else's client is refused (409 ``client_owned``), one's own is
        reused. Then the deal is tied to it."""
        data = to_rpc(body)
        return deal_response(self.deals_rpc.qualify_lead(str(deal_id), data["client"],
                                                         contacts=data["contacts"]))

    # -- the deal's story -----------------------------------------------------------------------
    @api("GET", "/api/v1/deals/<uuid:deal_id>/history", response=DealStageHistoryEntrySchema,
         many=True, summary="История этапов сделки", tags=TAGS)
    def deal_history(self, request, deal_id):
        """Every transition, oldest first: from, to, when, until when, the cause (user, erp,
        timer), who or which 1C document."""
        return self.deals_rpc.stage_history(str(deal_id))

    @api("GET", "/api/v1/deals/<uuid:deal_id>/timeline", query=DealTimelineQuery,
         response=DealTimelinePageSchema, summary="Лента событий сделки, постранично", tags=TAGS)
    def deal_timeline(self, request, deal_id, query):
        """Stage moves, tasks, calls, e-mails, 1C documents and notes, newest first; pass
        ``next_cursor`` for the next page."""
        return self.deals_rpc.deal_timeline(str(deal_id), limit=query["limit"],
                                            cursor=query.get("cursor"))

    @api("POST", "/api/v1/deals/<uuid:deal_id>/notes", body=DealNoteSchema,
         response=DealTimelineItemSchema, status=201,
         idempotent=True, summary="Добавить заметку в ленту сделки",
         tags=TAGS)
    def add_deal_note(self, request, deal_id, body):
        return 201, self.deals_rpc.add_note(str(deal_id), body["text"])

    @api("GET", "/api/v1/deals/<uuid:deal_id>/documents", response=DealDocumentSchema, many=True,
         summary="Документы 1С сделки (заказы, счета, отгрузки, оплаты)", tags=TAGS)
    def deal_documents(self, request, deal_id):
        """Each document in its current state (posted, unposted, deleted), oldest first."""
        return self.deals_rpc.deal_documents(str(deal_id))

    # -- funnel settings ------------------------------------------------------------------------
    @api("GET", "/api/v1/funnels", response=FunnelSchema, many=True, summary="Воронки продаж",
         tags=FUNNEL_TAGS)
    def list_funnels(self, request):
        """The default funnel first. Each stage shows its fixed limit, the learned one (p75 of
        won deals over 12 months) and which is in use."""
        return [funnel_view(f) for f in self.deals_rpc.list_funnels()]

    @api("GET", "/api/v1/funnels/<uuid:funnel_id>", response=FunnelSchema, etag=True,
         summary="Настройки воронки", tags=FUNNEL_TAGS)
    def get_funnel(self, request, funnel_id):
        return versioned_response(FunnelSchema,
                                  funnel_view(self.deals_rpc.get_funnel(str(funnel_id))))

    @api("POST", "/api/v1/funnels", body=FunnelSaveSchema, response=FunnelSchema, status=201,
         idempotent=True, summary="Создать воронку (администратор, директор)", tags=FUNNEL_TAGS)
    def create_funnel(self, request, body):
        """Manual stages as given; the 1C ladder and ``lost`` are added (with their defaults
        unless given)."""
        data = to_rpc(body)
        return versioned_response(FunnelSchema, funnel_view(self.deals_rpc.save_funnel(
            None, data["name"], data["stages"])), 201)

    @api("PUT", "/api/v1/funnels/<uuid:funnel_id>", body=FunnelSaveSchema,
         response=FunnelSchema,
         summary="Изменить этапы, вероятности, лимиты и задачи воронки (администратор, директор)",
         versioned=True, tags=FUNNEL_TAGS)
    def save_funnel(self, request, funnel_id, body, version):
        """Open deals keep their stage (a manual stage with open deals cannot be removed: 409
        ``stage_in_use``); deadlines follow changed limits. ``If-Match`` (the funnel's ``ETag``)
        or ``expected_version`` is required (428 without); an edit of settings changed meanwhile
        is refused: 412 ``precondition_failed``."""
        data = to_rpc(body)
        return versioned_response(FunnelSchema, funnel_view(self.deals_rpc.save_funnel(
            str(funnel_id), data["name"], data["stages"], expected_version=version)))

    @api("GET", "/api/v1/settings/work-calendar", response=WorkCalendarSchema,
         summary="Рабочее время и производственный календарь", tags=FUNNEL_TAGS)
    def get_work_calendar(self, request):
        """Due times of tasks and stage limits count working time by this calendar (the Russian
        production calendar is built in for the current years)."""
        return self.deals_rpc.get_work_calendar()

    @api("PUT", "/api/v1/settings/work-calendar", body=WorkCalendarSettingsSchema,
         response=WorkCalendarSchema,
         summary="Задать рабочее время и поправки календаря (администратор)", tags=FUNNEL_TAGS)
    def set_work_calendar(self, request, body):
        """Time zone, working hours, and holidays, working weekends and short days beyond the
        built-in calendar (years it does not cover)."""
        return self.deals_rpc.set_work_calendar(to_rpc(body))

    # -- the forecast ---------------------------------------------------------------------------
    @api("GET", "/api/v1/forecast", query=ForecastQuery, response=ForecastSchema,
         summary="Прогноз продаж по месяцам против плана", tags=FORECAST_TAGS)
    def forecast(self, request, query):
        """Per month and manager, department, region (``group_by``): the plan (from payroll),
        won, committed (with a posted order), weighted by probability, best case and the whole
        pipeline. A manager sees own deals, a sales head the department."""
        return self.deals_rpc.forecast(
            query["month_from"], query.get("month_to"), group_by=query["group_by"],
            filters=self._forecast_filters(query), weights=query["weights"])

    @api("GET", "/api/v1/forecast/deals", query=ForecastDealsQuery, response=ForecastDealSchema,
         many=True, summary="Сделки за показателем прогноза", tags=FORECAST_TAGS)
    def forecast_deals(self, request, query):
        """The deals behind one figure of one month, each with its contribution, largest
        first."""
        return self.deals_rpc.forecast_deals(query["month"], query["figure"],
                                             filters=self._forecast_filters(query),
                                             weights=query["weights"])

    @staticmethod
    def _forecast_filters(query) -> dict:
        return {key: _str(query[key]) for key in ("owner_id", "department_id", "region")
                if query.get(key) is not None}
