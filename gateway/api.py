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

import json
import logging

from eventlet.event import Event
from marshmallow import Schema, ValidationError
from nameko.exceptions import BadRequest, RemoteError
from werkzeug.wrappers import Response

from crm_platform.errors import DomainError, ValidationFailed
from crm_platform.identity import IDENTITY_CONTEXT_KEY, Identity
from crm_platform.web import PROBLEM_BASE, HttpEndpoint, problem_response

from .auth import Authority

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 2 * 1024 * 1024


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
                 max_body_bytes: int = MAX_BODY_BYTES, **kwargs):
        super().__init__(method, url, **kwargs)
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
            if self.body_schema is not None:
                kwargs["body"] = self.load_body(request)
            if self.query_schema is not None:
                kwargs["query"] = self.load(self.query_schema(), request.args.to_dict(), "query")
            self.check_signature(args, kwargs)
            done = Event()
            self.container.spawn_worker(
                self, args, kwargs, context_data=context_data,
                handle_result=lambda worker_ctx, result, exc_info: (
                    done.send(result, exc_info), (result, exc_info))[1])
            return self.response_from_result(done.wait())
        except Exception as exc:  # noqa: BLE001 - every error becomes a problem document
            return self.response_from_exception(exc)

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
        if self.response_schema is not None:
            data = self.response_schema(many=self.many).dump(data)
        return Response(json.dumps(data, ensure_ascii=False, default=str), status=status,
                        mimetype="application/json")

    def response_from_exception(self, exc):
        if isinstance(exc, BadRequest):  # signature mismatch: a bug in the route, not the caller
            log.error("route signature mismatch: %s", exc)
        return problem_for(exc)


api = ApiEndpoint.decorator
