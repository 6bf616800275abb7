"""The gateway's endpoint: one declaration gives the route, its authentication, the request and
response schemas, and its OpenAPI operation.

    @api("POST", "/api/v1/auth/login", body=LoginSchema, response=TokenSchema, public=True,
         summary="Вход по логину и паролю", tags=["auth"])
    def login(self, request, body):
        ...
        return token_dict               # or (201, data)

Before the worker runs, the bearer token is verified and its identity put into the worker's context,
so every RPC the handler makes carries it and services check access themselves. Every error is a
problem document; validation errors list the fields.
"""

from __future__ import annotations

import io
import json
import logging

import eventlet
from eventlet.event import Event
from marshmallow import Schema, ValidationError
from nameko.exceptions import BadRequest, RemoteError, UnknownService
from nameko.rpc import MethodProxy, RpcProxy, ServiceProxy
from werkzeug.wrappers import Response

from crm_platform import idempotency
from crm_platform.errors import DomainError, Unavailable, ValidationFailed
from crm_platform.identity import IDENTITY_CONTEXT_KEY, Identity
from crm_platform.web import PROBLEM_BASE, HttpEndpoint, problem_response

from .auth import Authority

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 2 * 1024 * 1024
REPLAYED_HEADER = "Idempotent-Replayed"


class PreconditionRequired(DomainError):
    status = 428
    title = "Precondition Required"
    code = "precondition_required"


class PreconditionFailed(DomainError):
    status = 412
    title = "Precondition Failed"
    code = "precondition_failed"


# -- RPC proxies that notice replayed idempotent results ------------------------------------------

class ApiMethodProxy(MethodProxy):
    def __call__(self, *args, **kwargs):
        reply = self._call(*args, **kwargs)
        result = reply.result()
        if reply.resp_body.get(idempotency.REPLAYED_REPLY_KEY):
            # The service answered with the stored result of an earlier request with the same
            # Idempotency-Key: the HTTP response says so (Idempotent-Replayed: true).
            setattr(self.worker_ctx, idempotency.REPLAYED_ATTR, True)
        return result


class ApiServiceProxy(ServiceProxy):
    def __getattr__(self, name):
        return ApiMethodProxy(self.worker_ctx, self.service_name, name, self.reply_listener,
                              **self.options)


class ApiRpcProxy(RpcProxy):
    """``RpcProxy`` for the gateway's routes: the same calls, plus the replay flag."""

    def get_dependency(self, worker_ctx):
        return ApiServiceProxy(worker_ctx, self.target_service, self.rpc_reply_listener,
                               **self.options)


# -- If-Match ------------------------------------------------------------------------------------

def parse_if_match(header: str | None) -> int | None:
    """The version in ``If-Match`` (``"3"``, ``W/"3"`` or ``3``); None when absent or ``*``."""
    if header is None or header.strip() in ("", "*"):
        return None
    tag = header.strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    tag = tag.strip('"')
    if not tag.isdigit() or len(tag) > 9:
        raise ValidationFailed("Заголовок If-Match не распознан", fields={
            "If-Match": ["версия из ETag, например \"3\""]})
    return int(tag)


def required_version(request, body: dict | None) -> int | None:
    """The version the caller edited: ``If-Match`` or the body's ``expected_version`` (both must
    agree); neither is 428 — an update without it could silently overwrite someone's edit.
    ``If-Match: *`` is an explicit "whatever the version" (None)."""
    given = (body or {}).get("expected_version")
    raw = request.headers.get("If-Match")
    if raw is not None and raw.strip() == "*" and given is None:
        return None  # "any version": the caller knowingly overwrites
    header = parse_if_match(raw)
    if header is not None and given is not None and header != given:
        raise ValidationFailed("Версия в If-Match и в теле запроса различаются", fields={
            "If-Match": [f"{header} ≠ expected_version {given}"]})
    version = header if header is not None else given
    if version is None:
        raise PreconditionRequired(
            "Укажите версию, которую вы изменяете: заголовок If-Match со значением ETag",
            fields={"If-Match": ["обязателен для изменения"]})
    return int(version)


def etag_of(data) -> str | None:
    if isinstance(data, dict) and isinstance(data.get("version"), int) \
            and not isinstance(data.get("version"), bool):
        return f'"{data["version"]}"'
    return None


DEFAULT_RPC_TIMEOUT_SECONDS = 60


class UpstreamTimeout(Exception):
    """The services behind a request did not answer within GATEWAY_RPC_TIMEOUT_SECONDS."""


def wait_for_worker(done: Event, config: dict, request):
    """The worker's result, but never longer than ``GATEWAY_RPC_TIMEOUT_SECONDS`` (60): a
    service that is down with its queue still in place (killed, restarting, stuck) would
    otherwise hold the caller's connection open forever. The caller gets a retryable 504; the
    worker may still finish later (creating requests are safe to repeat with an
    Idempotency-Key)."""
    seconds = float(config.get("GATEWAY_RPC_TIMEOUT_SECONDS") or DEFAULT_RPC_TIMEOUT_SECONDS)
    try:
        with eventlet.Timeout(seconds):
            return done.wait()
    except eventlet.Timeout:
        log.error("%s %s: no answer from the services within %s s", request.method,
                  request.path, seconds)
        raise UpstreamTimeout() from None


def problem_for(exc: Exception) -> Response:
    if isinstance(exc, DomainError):
        extra = dict(exc.extra)
        if exc.fields:
            extra["errors"] = [{"field": f, "reasons": r if isinstance(r, list) else [r]}
                               for f, r in flatten_fields(exc.fields)]
        response = problem_response(exc.status, exc.title, exc.detail,
                                    type_=PROBLEM_BASE + exc.code, code=exc.code, **extra)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="roofcrm"'
        retry_after = exc.extra.get("retry_after") if isinstance(exc.extra, dict) else None
        if isinstance(retry_after, (int, float)) and retry_after >= 0:
            response.headers["Retry-After"] = str(int(retry_after))
        return response
    if isinstance(exc, UnknownService):  # no process of that service is listening at all
        log.error("no service behind the gateway: %s", exc)
        return problem_for(Unavailable("Сервис временно недоступен; повторите запрос позже",
                                       extra={"retry_after": 5}))
    if isinstance(exc, UpstreamTimeout):
        response = problem_response(
            504, "Gateway Timeout", "Сервис не ответил вовремя; повторите запрос (с тем же "
            "Idempotency-Key, если это создание)", type_=PROBLEM_BASE + "upstream_timeout",
            code="upstream_timeout")
        response.headers["Retry-After"] = "5"
        return response
    if isinstance(exc, RemoteError):
        log.error("service error behind the gateway: %s: %s", exc.exc_type, exc.value)
        return problem_response(502, "Bad Gateway", "Сервис вернул непредвиденную ошибку",
                                type_=PROBLEM_BASE + "upstream_error")
    log.exception("unexpected gateway error", exc_info=exc)
    return problem_response(500, "Internal Server Error",
                            "Внутренняя ошибка; подробности в журнале шлюза",
                            type_=PROBLEM_BASE + "internal")


def flatten_fields(messages, prefix=""):
    """marshmallow's nested error dict -> [(dotted.field, [reasons])]."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict):
                yield from flatten_fields(value, name)
            else:
                yield name, value if isinstance(value, list) else [value]
    else:
        yield prefix or "body", messages if isinstance(messages, list) else [messages]


class ApiEndpoint(HttpEndpoint):
    authority = Authority()

    def __init__(self, method, url, *, body: type[Schema] | None = None,
                 query: type[Schema] | None = None, response: type[Schema] | None = None,
                 many: bool = False, status: int = 200, public: bool = False,
                 summary: str = "", tags: tuple[str, ...] | list[str] = (),
                 max_body_bytes: int = MAX_BODY_BYTES, idempotent: bool = False,
                 versioned: bool = False, etag: bool = False,
                 other_statuses: tuple[int, ...] = (), **kwargs):
        super().__init__(method, url, **kwargs)
        self.other_statuses = tuple(other_statuses)  # e.g. 200 for "exists already" of a create
        # idempotent: a creating POST honours Idempotency-Key (the service stores it);
        # versioned: an update needs If-Match / expected_version (428 without, 412 stale), the
        #   route gets it as ``version``; versioned and etag responses carry ``ETag``.
        self.idempotent = idempotent
        self.versioned = versioned
        self.etag = etag or versioned
        self.body_schema = body
        self.query_schema = query
        self.response_schema = response
        self.many = many
        self.status = status
        self.public = public
        self.summary = summary
        self.tags = list(tags)
        self.max_body_bytes = max_body_bytes  # larger for file uploads (the client import)

    def handle_request(self, request):
        request.shallow = False
        try:
            context_data = {}
            if not self.public:
                identity: Identity = self.authority.authority.verify(
                    request.headers.get("Authorization"))
                context_data[IDENTITY_CONTEXT_KEY] = identity.to_context()
            args, kwargs = self.get_entrypoint_parameters(request)
            if self.idempotent:
                self.read_idempotency_key(request, context_data)
            if self.body_schema is not None:
                kwargs["body"] = self.load_body(request)
            if self.query_schema is not None:
                kwargs["query"] = self.load(self.query_schema(), request.args.to_dict(), "query")
            if self.versioned:
                kwargs["version"] = required_version(request, kwargs.get("body"))
            self.check_signature(args, kwargs)
            done = Event()
            replayed = []

            def handle_result(worker_ctx, result, exc_info):
                if getattr(worker_ctx, idempotency.REPLAYED_ATTR, False):
                    replayed.append(True)
                done.send(result, exc_info)
                return result, exc_info

            self.container.spawn_worker(self, args, kwargs, context_data=context_data,
                                        handle_result=handle_result)
            response = self.response_from_result(wait_for_worker(done, self.container.config,
                                                                 request))
            if replayed:
                response.headers[REPLAYED_HEADER] = "true"
            return response
        except Exception as exc:  # noqa: BLE001 - every error becomes a problem document
            return self.response_from_exception(exc)

    def read_idempotency_key(self, request, context_data: dict) -> None:
        """An optional ``Idempotency-Key``: into the RPC context with the request's fingerprint
        (the body is read here, bounded, and put back for the route)."""
        key = request.headers.get(idempotency.HEADER)
        if key is None:
            return
        if not idempotency.valid_key(key):
            raise ValidationFailed("Заголовок Idempotency-Key не подходит", fields={
                idempotency.HEADER: [f"от 1 до {idempotency.KEY_MAX_LENGTH} видимых символов "
                                     "ASCII без пробелов"]})
        if IDENTITY_CONTEXT_KEY not in context_data:
            return  # public endpoints: no caller to scope the key to
        body = request.stream.read(self.max_body_bytes + 1)
        request.stream = io.BytesIO(body)  # the route reads the same bytes again
        context_data[idempotency.IDEMPOTENCY_CONTEXT_KEY] = {
            "key": key, "fingerprint": idempotency.fingerprint(
                request.method, request.full_path.rstrip("?"), body)}

    @staticmethod
    def load(schema: Schema, data, where: str):
        try:
            return schema.load(data)
        except ValidationError as exc:
            raise ValidationFailed("Запрос не прошёл проверку",
                                   fields=exc.messages if isinstance(exc.messages, dict)
                                   else {where: exc.messages}) from None

    def load_body(self, request):
        limit = self.max_body_bytes
        too_big = ValidationFailed("Тело запроса слишком велико",
                                   fields={"body": [f"не больше {limit} байт"]})
        if request.content_length and request.content_length > limit:
            raise too_big
        raw = request.stream.read(limit + 1)  # bounded even without Content-Length
        if len(raw) > limit:
            raise too_big
        if not raw.strip():  # no body at all: an empty object, so the required fields are named
            return self.load(self.body_schema(), {}, "body")
        if not (request.mimetype or "").endswith("json"):
            raise ValidationFailed("Ожидается JSON",
                                   fields={"body": ["Content-Type: application/json"]})
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ValidationFailed("Тело запроса — не JSON",
                                   fields={"body": [f"ошибка разбора JSON: {exc}"]}) from None
        if not isinstance(data, dict):
            raise ValidationFailed("Ожидается JSON-объект", fields={"body": ["не объект"]})
        return self.load(self.body_schema(), data, "body")

    def response_from_result(self, result):
        if isinstance(result, Response):
            return result
        status, data = result if isinstance(result, tuple) else (self.status, result)
        if status == 204:
            return Response(status=204)
        tag = etag_of(data) if self.etag and not self.many else None
        if self.response_schema is not None:
            data = self.response_schema(many=self.many).dump(data)
        response = Response(json.dumps(data, ensure_ascii=False, default=str), status=status,
                            mimetype="application/json")
        if tag:
            response.headers["ETag"] = tag
        return response

    def response_from_exception(self, exc):
        if isinstance(exc, BadRequest):  # signature mismatch: a bug in the route, not the caller
            log.error("route signature mismatch: %s", exc)
        if isinstance(exc, DomainError) and exc.code == "stale_version":
            # The services say 409 stale_version (only ever for a version the caller gave); over
            # HTTP a stale If-Match / expected_version is 412.
            exc = PreconditionFailed(exc.detail or "Запись изменили: перечитайте её",
                                     fields=exc.fields, extra=exc.extra)
        return problem_for(exc)


api = ApiEndpoint.decorator
