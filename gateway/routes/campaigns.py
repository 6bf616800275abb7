"""Campaign routes of the gateway (``/api/v1/marketing/campaigns``) and the public unsubscribe page
(``/u/<token>``): a mixin of ``GatewayService``.

The reactivation call lists keep their routes (``/api/v1/campaigns``); the general campaigns of
issue 13 (goal, channels, budget, dates, e-mail template, states) live here. The clients service
checks roles and fields again.

``/u/<token>`` needs no login: the token is signed by the clients service (HMAC) and names one
recipient. ``GET`` shows a page with one button (mail scanners that follow links unsubscribe
nobody); ``POST`` unsubscribes — the button, or a mail client's RFC 8058 one-click
(``List-Unsubscribe=One-Click``). A bad token is 404 with the page saying so.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from werkzeug.wrappers import Response

from crm_platform.errors import NotFound

from ..api import ApiRpcProxy, api
from ..schemas_campaigns import (
    CampaignCreateSchema,
    CampaignSchema,
    CampaignStateSchema,
    CampaignWriteSchema,
    RecipientListSchema,
    RecipientQuery,
)

TAGS = ["campaigns"]
PAGES = Environment(loader=FileSystemLoader(Path(__file__).resolve().parents[1] / "templates"),
                    autoescape=select_autoescape(["html"]))
MAX_TOKEN = 100


def _plain(body: dict) -> dict:
    """The loaded body as JSON for the RPC (decimals and ids as text, times ISO)."""
    out = {}
    for key, value in body.items():
        if value is None or isinstance(value, str | int | list | dict | bool):
            out[key] = value
        elif hasattr(value, "isoformat"):
            out[key] = value.isoformat()
        else:
            out[key] = str(value)
    return out


def _page(status: int, **values) -> Response:
    html = PAGES.get_template("unsubscribe/page.html").render(**values)
    return Response(html, status=status, mimetype="text/html",
                    headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


class CampaignRoutes:
    campaigns_rpc = ApiRpcProxy("clients")

    @api("POST", "/api/v1/marketing/campaigns", body=CampaignCreateSchema,
         response=CampaignSchema, status=201,
         idempotent=True, summary="Создать кампанию (черновик)", tags=TAGS)
    def create_marketing_campaign(self, request, body):
        """A draft campaign over a saved segment or a filter; sales heads and directors."""
        return 201, self.campaigns_rpc.create_campaign(_plain(body))

    @api("GET", "/api/v1/marketing/campaigns/<uuid:campaign_id>", response=CampaignSchema,
         summary="Кампания и её получатели по статусам", tags=TAGS)
    def get_marketing_campaign(self, request, campaign_id):
        return self.campaigns_rpc.get_campaign(str(campaign_id))

    @api("PATCH", "/api/v1/marketing/campaigns/<uuid:campaign_id>", body=CampaignWriteSchema,
         response=CampaignSchema, summary="Изменить черновик или запланированную кампанию",
         tags=TAGS)
    def update_marketing_campaign(self, request, campaign_id, body):
        return self.campaigns_rpc.update_campaign(str(campaign_id), _plain(body))

    @api("POST", "/api/v1/marketing/campaigns/<uuid:campaign_id>/state",
         body=CampaignStateSchema, response=CampaignSchema,
         summary="Запланировать, запустить, завершить или отменить кампанию", tags=TAGS)
    def change_marketing_campaign_state(self, request, campaign_id, body):
        """``running`` resolves the recipients (only those with a marketing consent are
        queued), queues the e-mails and makes the call tasks; wrong moves are 409."""
        return self.campaigns_rpc.change_campaign_state(str(campaign_id), body["state"])

    @api("GET", "/api/v1/marketing/campaigns/<uuid:campaign_id>/recipients",
         query=RecipientQuery, response=RecipientListSchema,
         summary="Получатели кампании со статусами", tags=TAGS)
    def marketing_campaign_recipients(self, request, campaign_id, query):
        """By address; pass ``next_cursor`` as ``cursor`` for the next page."""
        return self.campaigns_rpc.list_campaign_recipients(
            str(campaign_id), status=query.get("status"), limit=query["limit"],
            cursor=query.get("cursor"))

    # -- unsubscribe (public) ------------------------------------------------------------------
    @api("GET", "/u/<token>", public=True, summary="Страница отписки от рассылки",
         tags=TAGS)
    def unsubscribe_page(self, request, token):
        if len(token) > MAX_TOKEN or "." not in token:
            return _page(404, invalid=True)
        return _page(200)

    @api("POST", "/u/<token>", public=True,
         summary="Отписаться (кнопка или RFC 8058 One-Click)", tags=TAGS,
         max_body_bytes=1024)
    def unsubscribe(self, request, token):
        """Withdraws the address's marketing e-mail consent and marks the recipient."""
        if len(token) > MAX_TOKEN:
            return _page(404, invalid=True)
        try:
            result = self.campaigns_rpc.campaign_unsubscribe(token)
        except NotFound:
            return _page(404, invalid=True)
        return _page(200, done=True, email=result["email"])
