"""The HTTP gateway: maps the public JSON API to service RPCs. It owns no data; it verifies tokens,
validates requests, and puts the caller's identity into the RPC context for services to enforce.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from nameko.rpc import RpcProxy
from werkzeug.wrappers import Response

from crm_platform.audit import note_denial
from crm_platform.errors import Forbidden, NotFound, register_remote_errors
from crm_platform.identity import Caller
from crm_platform.secrets import RequiredSecrets
from crm_platform.service import ObservableService, json_response
from crm_platform.web import http

from .api import ApiRpcProxy, ApiServiceProxy, api
from .auth import Tokens
from .openapi import build_spec
from .pages import PageSessionRoutes
from .routes.campaigns import CampaignRoutes
from .routes.clients import ClientRoutes
from .routes.clients_import import ClientImportRoutes
from .routes.clients_ops import ClientOperationsRoutes
from .routes.deals import DealRoutes
from .routes.deals_tasks import DealTaskRoutes
from .routes.erp import ErpRoutes
from .routes.leads import LeadRoutes
from .routes.logistics import LogisticsRoutes
from .routes.mail import MailRoutes
from .routes.payroll import PayrollRoutes
from .routes.privacy import PrivacyRoutes
from .routes.recordings import RecordingRoutes
from .routes.reports import ReportRoutes
from .routes.screenpop import ScreenPopRoutes
from .routes.telephony import TelephonyWebhookRoutes
from .routes.timeline import ClientTimelineRoutes
from .schemas import (
    AccessDenialQuery,
    AccessDenialSchema,
    DeadLetterSchema,
    DepartmentSchema,
    DepartmentUpdateSchema,
    IdentitySchema,
    LoginSchema,
    PasswordSchema,
    RedriveResultSchema,
    RedriveSchema,
    RegionSchema,
    TokenSchema,
    UserListQuery,
    UserSchema,
    UserUpdateSchema,
    page_of,
)
from .ui.admin import AdminPages
from .ui.base import UiBaseRoutes
from .ui.head import HeadPages
from .ui.manager import ManagerPages

TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                        autoescape=select_autoescape())


@cache
def api_spec(service_cls) -> dict:
    """The OpenAPI document (built once: it only depends on the code)."""
    return build_spec(service_cls, title="RoofCRM API", version=API_VERSION)


def operation_groups(spec: dict) -> list[tuple[str, list[dict]]]:
    """The spec's operations grouped by tag, for the index page."""
    groups: dict[str, list[dict]] = {}
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            for tag in op.get("tags") or ["other"]:
                groups.setdefault(tag, []).append(
                    {"method": method.upper(), "path": path, "summary": op.get("summary", "")})
    return sorted(groups.items())


class AnyService(RpcProxy):
    """``self.services("clients").method(...)``: a proxy to a service chosen at run time."""

    def __init__(self, **options):
        super().__init__(target_service=None, **options)

    def get_dependency(self, worker_ctx):
        return lambda name: ApiServiceProxy(worker_ctx, name, self.rpc_reply_listener,
                                            **self.options)


# Services' DomainErrors arrive as the same classes (this process only: the registry is global).
register_remote_errors()

API_VERSION = "0.1.0"
SERVICES_WITH_DEAD_LETTERS = ("directory", "clients", "deals", "telephony", "mail", "erp_bridge",
                              "reports", "payroll", "logistics")


class GatewayService(ClientRoutes, ClientImportRoutes, ClientOperationsRoutes, DealRoutes,
                     DealTaskRoutes, ErpRoutes, TelephonyWebhookRoutes, RecordingRoutes,
                     ScreenPopRoutes, MailRoutes, ReportRoutes, PayrollRoutes,
                     LogisticsRoutes, PageSessionRoutes, CampaignRoutes, LeadRoutes,
                     PrivacyRoutes, UiBaseRoutes, HeadPages, AdminPages,
                     ClientTimelineRoutes,
                     ManagerPages, ObservableService):
    name = "gateway"

    tokens = Tokens()
    token_secrets = RequiredSecrets("JWT_SECRET")
    caller = Caller()
    directory = ApiRpcProxy("directory")
    services = AnyService()

    # -- documents ------------------------------------------------------------------------------
    @http("GET", "/openapi.json")
    def openapi(self, request):
        return json_response(self.spec())

    @http("GET", "/")
    def index(self, request):
        """A page for people who open the gateway's address: what is here and where to start."""
        html = TEMPLATES.get_template("index.html").render(groups=operation_groups(self.spec()))
        return Response(html, mimetype="text/html")

    def spec(self) -> dict:
        return api_spec(type(self))

    # -- auth -----------------------------------------------------------------------------------
    @api("POST", "/api/v1/auth/login", body=LoginSchema, response=TokenSchema, public=True,
         summary="Вход по логину и паролю (локальные пользователи)", tags=["auth"])
    def login(self, request, body):
        """Check a local user's password and return a bearer token with the user's identity."""
        identity = self.directory.authenticate(body["username"], body["password"])
        token, ttl = self.tokens.issue(identity)
        return {"access_token": token, "token_type": "Bearer", "expires_in": ttl,
                "user": identity}

    @api("GET", "/api/v1/me", response=IdentitySchema, summary="Кто я", tags=["auth"])
    def me(self, request):
        """The identity the token carries."""
        return self.caller.identity.to_context()

    # -- organisation directory -----------------------------------------------------------------
    @api("GET", "/api/v1/regions", response=RegionSchema, many=True, summary="Регионы",
         tags=["directory"])
    def list_regions(self, request):
        return self.directory.list_regions()

    @api("GET", "/api/v1/departments", response=DepartmentSchema, many=True,
         summary="Отделы продаж", tags=["directory"])
    def list_departments(self, request):
        return self.directory.list_departments()

    @api("POST", "/api/v1/departments", body=DepartmentSchema, response=DepartmentSchema,
         status=201, idempotent=True, summary="Создать отдел (admin)", tags=["directory"])
    def create_department(self, request, body):
        return 201, self.directory.create_department(DepartmentSchema().dump(body))

    @api("PATCH", "/api/v1/departments/<uuid:department_id>", body=DepartmentUpdateSchema,
         response=DepartmentSchema, summary="Изменить отдел (admin)", tags=["directory"])
    def update_department(self, request, department_id, body):
        return self.directory.update_department(
            str(department_id), DepartmentUpdateSchema().dump(body))

    @api("GET", "/api/v1/users", query=UserListQuery, response=page_of(UserSchema),
         summary="Сотрудники (постранично)", tags=["directory"])
    def list_users(self, request, query):
        """By name unless ``sort``; pass ``next_cursor`` as ``cursor`` for the next page."""
        filters = {k: (str(v) if k == "department_id" else v) for k, v in query.items()
                   if k not in ("limit", "cursor", "sort")}
        return self.directory.page_users(filters, limit=query["limit"],
                                         cursor=query.get("cursor"), sort=query["sort"])

    @api("GET", "/api/v1/users/<uuid:user_id>", response=UserSchema, summary="Сотрудник",
         tags=["directory"])
    def get_user(self, request, user_id):
        return self.directory.get_user(str(user_id))

    @api("POST", "/api/v1/users", body=UserSchema, response=UserSchema, status=201,
         idempotent=True, summary="Создать сотрудника (admin)", tags=["directory"])
    def create_user(self, request, body):
        data = UserSchema().dump(body)
        if body.get("password"):
            data["password"] = body["password"]
        return 201, self.directory.create_user(data)

    @api("PATCH", "/api/v1/users/<uuid:user_id>", body=UserUpdateSchema, response=UserSchema,
         summary="Изменить сотрудника (admin)", tags=["directory"])
    def update_user(self, request, user_id, body):
        return self.directory.update_user(str(user_id), UserUpdateSchema().dump(body))

    @api("PUT", "/api/v1/users/<uuid:user_id>/password", body=PasswordSchema, status=204,
         summary="Сменить пароль (свой или, для admin, любой)", tags=["directory"])
    def set_password(self, request, user_id, body):
        self.directory.set_password(str(user_id), body["password"])
        return 204, None

    # -- operations -----------------------------------------------------------------------------
    @api("GET", "/api/v1/admin/dead-letters/<service>", response=DeadLetterSchema, many=True,
         summary="Необработанные события сервиса (admin)", tags=["operations"])
    def list_dead_letters(self, request, service):
        """Events a service's handler gave up on, with the reason (admin)."""
        return self._service_proxy(service).list_dead_letters()

    @api("POST", "/api/v1/admin/dead-letters/<service>/redrive", body=RedriveSchema,
         response=RedriveResultSchema, summary="Повторить необработанные события (admin)",
         tags=["operations"])
    def redrive_dead_letters(self, request, service, body):
        """Send a service's dead letters (all, or one handler's) back for another attempt."""
        return {"moved": self._service_proxy(service).redrive_dead_letters(body.get("handler"))}

    @api("GET", "/api/v1/admin/access-denials/<service>", query=AccessDenialQuery,
         response=AccessDenialSchema, many=True,
         summary="Отказы в доступе, записанные сервисом (admin)", tags=["operations"])
    def list_access_denials(self, request, service, query):
        """Who was refused what by a service, and why (oldest first after ``after``)."""
        return self._service_proxy(service, "access_denials").access_denials(
            query["after"], query["limit"])

    def _service_proxy(self, service: str, operation: str = "dead_letters"):
        try:
            self.caller.require("admin")
        except Forbidden as exc:        # the gateway's own check: audited like the services'
            note_denial("gateway", self.caller.identity.to_context(), operation, service, exc)
            raise
        if service not in SERVICES_WITH_DEAD_LETTERS:
            raise NotFound(f"Нет сервиса {service}")
        return self.services(service)
