"""1C exchange routes of the gateway (/api/v1/erp/...): a mixin of ``GatewayService``.

1C (or its exchange agent) posts an EnterpriseData message as the raw body — XML, or the zip 1C
makes of it — with an integration account's token; the answer is the receipt with the number we
acknowledge (``received_no``, also in the ``X-Received-No`` header). A message that cannot be read
is refused with 422 and kept in the quarantine, which admins list, re-drive and dismiss here.
"""

from __future__ import annotations

import base64
import json

from marshmallow import Schema, fields, validate
from werkzeug.wrappers import Response

from crm_platform.errors import ValidationFailed

from ..api import ApiRpcProxy, api
from ..schemas import cursor_field, limit_field, page_of

TAGS = ["erp"]
MAX_MESSAGE_BYTES = 20 * 1024 * 1024
MESSAGE_TYPES = ("application/xml", "text/xml", "application/zip", "application/octet-stream",
                 "application/x-zip-compressed")


class ReceiptSchema(Schema):
    outcome = fields.String(metadata={"description": "applied | repeat"})
    sender = fields.String(allow_none=True)
    message_no = fields.Integer(allow_none=True)
    received_no = fields.Integer(allow_none=True,
                                 metadata={"description": "the last message applied"})
    objects = fields.Integer()
    events = fields.Integer()
    by_type = fields.Dict(keys=fields.String(), values=fields.Integer())


class QuarantineEntrySchema(Schema):
    id = fields.Integer()
    received_at = fields.String()
    transport = fields.String()
    filename = fields.String(allow_none=True)
    sender = fields.String(allow_none=True)
    message_no = fields.Integer(allow_none=True)
    reason = fields.String()
    field = fields.String(allow_none=True)
    status = fields.String()
    size = fields.Integer()


class QuarantineQuery(Schema):
    status = fields.String(load_default="open",
                           validate=validate.OneOf(["open", "redriven", "dismissed"]))
    limit = limit_field(100, 500)
    cursor = cursor_field()


class ReconciliationQuery(Schema):
    date_from = fields.Date(required=True)
    date_to = fields.Date(required=True)


class ErpRoutes:
    erp_rpc = ApiRpcProxy("erp_bridge")

    @api("POST", "/api/v1/erp/enterprise-data", response=ReceiptSchema,
         max_body_bytes=MAX_MESSAGE_BYTES,
         summary="Принять сообщение EnterpriseData из 1С (XML или zip)", tags=TAGS)
    def receive_enterprise_data(self, request):
        """The raw message as the body (``application/xml`` or ``application/zip``). 200 with the
        receipt: ``applied``, or ``repeat`` for a number already applied; 422 when it cannot be
        read (it is quarantined; ``quarantine_id`` in the problem)."""
        if (request.mimetype or "") not in MESSAGE_TYPES:
            raise ValidationFailed("Ожидается XML или zip", fields={
                "Content-Type": [", ".join(MESSAGE_TYPES)]})
        if request.content_length and request.content_length > MAX_MESSAGE_BYTES:
            raise ValidationFailed("Сообщение слишком велико", fields={
                "body": [f"не больше {MAX_MESSAGE_BYTES} байт"]})
        raw = request.stream.read(MAX_MESSAGE_BYTES + 1)
        if len(raw) > MAX_MESSAGE_BYTES:
            raise ValidationFailed("Сообщение слишком велико", fields={
                "body": [f"не больше {MAX_MESSAGE_BYTES} байт"]})
        if not raw:
            raise ValidationFailed("Пустое сообщение", fields={"body": ["нет данных"]})
        receipt = self.erp_rpc.receive_enterprise_data(
            base64.b64encode(raw).decode(), filename=request.headers.get("X-Filename"))
        response = Response(json.dumps(ReceiptSchema().dump(receipt), ensure_ascii=False),
                            mimetype="application/json")
        if receipt.get("received_no") is not None:
            response.headers["X-Received-No"] = str(receipt["received_no"])
        return response

    @api("GET", "/api/v1/erp/quarantine", query=QuarantineQuery,
         response=page_of(QuarantineEntrySchema),
         summary="Карантин сообщений 1С (администратор), постранично", tags=TAGS)
    def list_erp_quarantine(self, request, query):
        """Newest first; pass ``next_cursor`` as ``cursor`` for the next page."""
        return self.erp_rpc.page_quarantine(query["status"], limit=query["limit"],
                                            cursor=query.get("cursor"))

    @api("POST", "/api/v1/erp/quarantine/<int:entry_id>/redrive", response=ReceiptSchema,
         summary="Повторить приём сообщения из карантина", tags=TAGS)
    def redrive_erp_quarantine(self, request, entry_id):
        return self.erp_rpc.redrive_quarantine(entry_id)

    @api("POST", "/api/v1/erp/quarantine/<int:entry_id>/dismiss",
         summary="Отклонить сообщение из карантина окончательно", tags=TAGS)
    def dismiss_erp_quarantine(self, request, entry_id):
        return self.erp_rpc.dismiss_quarantine(entry_id)

    @api("GET", "/api/v1/erp/status", summary="Состояние обмена с 1С", tags=TAGS)
    def erp_status(self, request):
        """Per 1C node the last applied message number, document counts, open quarantine."""
        return self.erp_rpc.exchange_status()

    @api("GET", "/api/v1/erp/reconciliation", query=ReconciliationQuery,
         summary="Сверка документов CRM с 1С за период", tags=TAGS)
    def erp_reconciliation(self, request, query):
        """Documents of the period the CRM lacks or holds in another state, those 1C does not
        list, and those with another sum (reads 1C over OData)."""
        return self.erp_rpc.reconcile(query["date_from"].isoformat(),
                                      query["date_to"].isoformat())
