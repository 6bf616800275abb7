"""Personal data requests (152-FZ) through the gateway: a mixin of ``GatewayService``.

``POST /api/v1/privacy/requests`` (admin, director) exports (JSON, or an XLSX file with
``format=xlsx``) or erases one person's data in every service; the clients service orchestrates,
records and audits it. ``GET /api/v1/privacy/requests`` lists the requests (person masked).
"""

from __future__ import annotations

from ..api import ApiRpcProxy, api
from ..schemas_campaigns import PrivacyListQuery, PrivacyRequestSchema, PrivacyRequestSummarySchema
from .clients_ops import file_response

TAGS = ["privacy"]


class PrivacyRoutes:
    privacy_rpc = ApiRpcProxy("clients")

    @api("POST", "/api/v1/privacy/requests", body=PrivacyRequestSchema,
         idempotent=True,
         summary="Выгрузить или удалить персональные данные человека (152-ФЗ)", tags=TAGS)
    def create_privacy_request(self, request, body):
        """``kind`` export or erase; the person by ``email``, ``phone`` or ``contact_id``.
        Export answers the data of every service (``format=xlsx``: a file); erase anonymises it,
        keeping the legal holds (company requisites, ERP documents, the audit)."""
        data = {k: str(v) for k, v in body.items() if v is not None}
        answer = self.privacy_rpc.privacy_request(data)
        if body["kind"] == "export" and body["format"] == "xlsx":
            return file_response(answer["file"])
        answer.pop("file", None)
        return 201, answer

    @api("GET", "/api/v1/privacy/requests", query=PrivacyListQuery,
         response=PrivacyRequestSummarySchema, many=True,
         summary="Запросы по персональным данным", tags=TAGS)
    def list_privacy_requests(self, request, query):
        return self.privacy_rpc.list_privacy_requests(limit=query["limit"])
