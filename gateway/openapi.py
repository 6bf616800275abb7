"""The OpenAPI 3 document, generated from the same endpoint declarations and marshmallow schemas
that validate requests (apispec + its marshmallow plugin)."""

from __future__ import annotations

import inspect
import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from .api import ApiEndpoint
from .schemas import ProblemSchema

_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")


def openapi_path(rule: str) -> tuple[str, list[dict]]:
    params = []

    def repl(match):
        converter, name = match.group(1), match.group(2)
        schema = {"type": "string"}
        if converter == "uuid":
            schema["format"] = "uuid"
        elif converter == "int":
            schema = {"type": "integer"}
        params.append({"in": "path", "name": name, "required": True, "schema": schema})
        return "{" + name + "}"

    return _PARAM.sub(repl, rule), params


def endpoints_of(service_cls) -> list[tuple[str, ApiEndpoint]]:
    found = []
    for name, member in inspect.getmembers(service_cls, inspect.isfunction):
        for ep in getattr(member, "nameko_entrypoints", ()):
            if isinstance(ep, ApiEndpoint):
                found.append((name, ep))
    return sorted(found, key=lambda item: (item[1].url, item[1].method))


def problem_ref(description: str, headers: dict | None = None) -> dict:
    response = {"description": description,
                "content": {"application/problem+json": {"schema": "Problem"}}}
    if headers:
        response["headers"] = headers
    return response


DESCRIPTION = """HTTP API of the sales CRM. Errors are RFC 9457 problem documents
(`application/problem+json`; 422 lists the fields with reasons).

Conventions:

* **Lists** that grow are cursor pages: `?limit=&cursor=` → `{"items": [...], "next_cursor":
  "..." | null}`; pass `next_cursor` back as `cursor` for the next page (users, clients, deals,
  tasks, notifications, mail messages, reactivation campaigns, campaign recipients, transport
  orders, trips, the 1C quarantine, timelines). The main lists (clients, deals, tasks, users,
  transport orders, trips) filter by their query parameters and sort with `sort=field` or
  `sort=-field` (descending; unknown fields are 422; a cursor only continues its own sort).
  Plain arrays stay where the list is a small dictionary or bounded by its parameters: regions,
  departments, funnels, the report catalogue, lead forms, mailboxes, the fleet (carriers,
  vehicles, drivers, products), pay schemes, consent texts, saved segments, a deal's stage
  history and documents, a client's ownership history and deliveries, absences, a person's
  consents, a month's salary documents, a driver's trips of a day, the forecast's deals of one
  figure, the audit (`limit`, newest first) and the dead letters (a browse of the broker's
  queue, `limit`).
* **Creating POSTs** accept an optional `Idempotency-Key` header (1–200 visible ASCII
  characters): a repeat of the same request by the same user returns the first response with
  `Idempotent-Replayed: true`; the same key with a different request is 422
  `idempotency_key_reused`; a repeat while the first still runs is 409 `idempotency_in_progress`
  with `Retry-After`. Keys are kept for 24 hours.
* **Updates** of versioned resources (clients, deals, tasks, funnels) need `If-Match` with the
  `ETag` of the GET (or `expected_version` in the body): without it 428
  `precondition_required`, with a stale one 412 `precondition_failed`.
"""

IDEMPOTENCY_KEY_PARAM = {
    "in": "header", "name": "Idempotency-Key", "required": False,
    "description": "повтор того же запроса вернёт первый ответ (24 ч)",
    "schema": {"type": "string", "minLength": 1, "maxLength": 200,
               "pattern": "^[\\x21-\\x7E]+$"}}
IF_MATCH_PARAM = {
    "in": "header", "name": "If-Match", "required": False,
    "description": "ETag изменяемой записи, например \"3\" (или expected_version в теле); "
                   "без версии — 428",
    "schema": {"type": "string", "maxLength": 20}}
ETAG_HEADER = {"ETag": {"description": "версия записи для If-Match",
                        "schema": {"type": "string"}}}
REPLAYED_HEADER = {"Idempotent-Replayed": {
    "description": "true — ответ повторён по Idempotency-Key", "schema": {"type": "string",
                                                                       "enum": ["true"]}}}
RETRY_AFTER_HEADER = {"Retry-After": {"description": "секунды до повтора",
                                      "schema": {"type": "integer"}}}


def build_spec(service_cls, *, title: str, version: str) -> dict:
    spec = APISpec(
        title=title, version=version, openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": DESCRIPTION},
    )
    spec.components.schema("Problem", schema=ProblemSchema)
    spec.components.security_scheme(
        "bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    paths: dict[str, dict] = {}
    for name, ep in endpoints_of(service_cls):
        path, params = openapi_path(ep.url)
        for method in ep.method.split(","):
            op = {
                "operationId": name,
                "summary": ep.summary or name,
                "description": inspect.getdoc(getattr(service_cls, name)) or "",
                "tags": ep.tags,
                "parameters": list(params),
                "responses": {},
            }
            if ep.query_schema is not None:
                op["parameters"].append({"in": "query", "schema": ep.query_schema})
                op["responses"]["422"] = problem_ref("validation failed; lists the fields")
            if ep.body_schema is not None:
                op["requestBody"] = {"required": True, "content": {
                    "application/json": {"schema": ep.body_schema}}}
                op["responses"]["422"] = problem_ref("validation failed; lists the fields")
            if ep.response_schema is not None:
                schema = ({"type": "array", "items": ep.response_schema} if ep.many
                          else ep.response_schema)
                success = {"description": "OK",
                           "content": {"application/json": {"schema": schema}}}
            else:
                success = {"description": "OK"}
            headers = {}
            if ep.etag:
                headers.update(ETAG_HEADER)
            if ep.idempotent:
                headers.update(REPLAYED_HEADER)
                op["parameters"].append(dict(IDEMPOTENCY_KEY_PARAM))
                op["responses"]["409"] = problem_ref(
                    "conflict; idempotency_in_progress: the first request with this "
                    "Idempotency-Key still runs (retry after Retry-After)", RETRY_AFTER_HEADER)
                op["responses"]["422"] = problem_ref(
                    "validation failed (lists the fields); idempotency_key_reused: the key was "
                    "used for another request")
            optional_version = (not ep.versioned and not ep.idempotent
                                and ep.body_schema is not None
                                and "expected_version" in ep.body_schema().fields)
            if optional_version:  # e.g. a stage move: a version may be given, then it is checked
                op["parameters"].append(dict(IF_MATCH_PARAM, description=(
                    "необязательно: ETag записи (или expected_version в теле); устаревшая — 412")))
                op["responses"]["412"] = problem_ref(
                    "precondition_failed: the record changed since the ETag / expected_version")
            if ep.versioned:
                op["parameters"].append(dict(IF_MATCH_PARAM))
                op["responses"]["412"] = problem_ref(
                    "precondition_failed: the record changed since the ETag / expected_version")
                op["responses"]["428"] = problem_ref(
                    "precondition_required: If-Match (or expected_version) is missing")
                op["responses"].setdefault("409", problem_ref("conflict with the record's state"))
            if headers and ep.status != 204:
                success["headers"] = headers
            op["responses"][str(ep.status)] = success
            for status in ep.other_statuses:
                op["responses"][str(status)] = dict(success)
            if not ep.public:
                op["security"] = [{"bearer": []}]
                op["responses"]["401"] = problem_ref("no, expired or invalid bearer token")
                op["responses"]["403"] = problem_ref("the role may not do this")
            else:  # logins, webhooks, 1C, web forms: their own credentials, limits and formats
                op["responses"].setdefault("401", problem_ref("wrong credentials or signature"))
                op["responses"].setdefault("403", problem_ref("refused (origin, signature)"))
                op["responses"].setdefault("413", problem_ref("the request body is too large"))
                op["responses"].setdefault("422", problem_ref("the payload is not acceptable"))
                op["responses"].setdefault("429", problem_ref(
                    "too many requests; retry after Retry-After", RETRY_AFTER_HEADER))
            # Every operation checks its input and the records it names (in the path, the query
            # or the body), and every change meets the records' current state.
            op["responses"].setdefault("404", problem_ref(
                "a record the request names does not exist (or is not visible to the caller)"))
            op["responses"].setdefault("422", problem_ref("validation failed; lists the fields"))
            if method.upper() != "GET":
                op["responses"].setdefault("409", problem_ref(
                    "conflict with the records' current state (the code says which)"))
            op["responses"]["503"] = problem_ref(
                "service_unavailable: a service behind the gateway is down; retry after "
                "Retry-After", RETRY_AFTER_HEADER)
            op["responses"]["504"] = problem_ref(
                "upstream_timeout: no answer in GATEWAY_RPC_TIMEOUT_SECONDS; retry (with the same "
                "Idempotency-Key for a create)", RETRY_AFTER_HEADER)
            paths.setdefault(path, {})[method.lower()] = op
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()
