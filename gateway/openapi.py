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


def problem_ref(description: str) -> dict:
    return {"description": description,
            "content": {"application/problem+json": {"schema": "Problem"}}}


def build_spec(service_cls, *, title: str, version: str) -> dict:
    spec = APISpec(
        title=title, version=version, openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "HTTP API of the sales CRM. Errors are RFC 9457 problem documents."},
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
            if ep.body_schema is not None:
                op["requestBody"] = {"required": True, "content": {
                    "application/json": {"schema": ep.body_schema}}}
                op["responses"]["422"] = problem_ref("validation failed; lists the fields")
            if ep.response_schema is not None:
                schema = ({"type": "array", "items": ep.response_schema} if ep.many
                          else ep.response_schema)
                op["responses"][str(ep.status)] = {
                    "description": "OK", "content": {"application/json": {"schema": schema}}}
            else:
                op["responses"][str(ep.status)] = {"description": "OK"}
            if not ep.public:
                op["security"] = [{"bearer": []}]
                op["responses"]["401"] = problem_ref("no, expired or invalid bearer token")
                op["responses"]["403"] = problem_ref("the role may not do this")
            paths.setdefault(path, {})[method.lower()] = op
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()
