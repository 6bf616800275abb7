"""Cloud PBX webhook routes of the gateway: a mixin of ``GatewayService``.

Mango Office and Zadarma call these with form-encoded events. They carry no bearer token: the
signature in the request is the authentication, checked by the telephony service (which holds the
PBX credentials) — a bad or missing one is 401 and nothing is stored. The gateway only bounds the
size, hands the form over, and answers Zadarma's URL check (``zd_echo``).

Zadarma requests are also checked against Zadarma's address range; behind a proxy or ingress set
``TRUST_FORWARDED_FOR`` so the client address is taken from ``X-Forwarded-For``.
"""

from __future__ import annotations

import re

from nameko.dependency_providers import Config
from werkzeug.wrappers import Response

from crm_platform.errors import ValidationFailed

from ..api import ApiRpcProxy, api

TAGS = ["telephony"]
MAX_FORM_BYTES = 64 * 1024
MANGO_EVENTS = ("call", "summary")
ECHO = re.compile(r"^[A-Za-z0-9_.:\-]{1,256}$")


def _form(request) -> dict[str, str]:
    if request.content_length and request.content_length > MAX_FORM_BYTES:
        raise ValidationFailed("Запрос слишком велик", fields={
            "body": [f"не больше {MAX_FORM_BYTES} байт"]})
    request.max_content_length = MAX_FORM_BYTES
    if request.mimetype != "application/x-www-form-urlencoded":
        raise ValidationFailed("Ожидается форма", fields={
            "Content-Type": ["application/x-www-form-urlencoded"]})
    return {key: value for key, value in request.form.items()}


class TelephonyWebhookRoutes:
    telephony_rpc = ApiRpcProxy("telephony")
    gateway_config = Config()

    @api("POST", "/api/v1/telephony/mango/events/<event_type>", public=True,
         summary="Событие Mango Office (звонок, итог звонка)", tags=TAGS)
    def mango_event(self, request, event_type):
        """Mango's ``/events/call`` and ``/events/summary``: fields ``vpbx_api_key``, ``sign``,
        ``json``. 200 with an empty body, as Mango expects; 401 for a bad signature."""
        if event_type not in MANGO_EVENTS:
            raise ValidationFailed("Неизвестное событие Mango", fields={
                "event_type": list(MANGO_EVENTS)})
        self.telephony_rpc.mango_webhook(event_type, _form(request))
        return Response(b"", status=200)

    @api("GET", "/api/v1/telephony/zadarma", public=True,
         summary="Проверка адреса Zadarma (zd_echo)", tags=TAGS)
    def zadarma_echo(self, request):
        echo = request.args.get("zd_echo", "")
        if not ECHO.match(echo):
            raise ValidationFailed("Нет zd_echo", fields={"zd_echo": ["ожидается значение"]})
        return Response(echo, mimetype="text/plain")

    @api("POST", "/api/v1/telephony/zadarma", public=True,
         summary="Событие Zadarma (NOTIFY_*)", tags=TAGS)
    def zadarma_event(self, request):
        """``NOTIFY_START`` … ``NOTIFY_RECORD`` with the ``Signature`` header. 200 when taken;
        401 for a bad signature, 403 from outside Zadarma's addresses."""
        trust = str(self.gateway_config.get("TRUST_FORWARDED_FOR", "")).lower() in (
            "1", "true", "yes")
        remote = request.access_route[0] if trust and request.access_route \
            else request.remote_addr
        self.telephony_rpc.zadarma_webhook(_form(request), request.headers.get("Signature"),
                                           remote)
        return Response(b"", status=200)
