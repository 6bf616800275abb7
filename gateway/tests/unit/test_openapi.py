"""The OpenAPI document generated from the gateway's endpoint declarations."""

from __future__ import annotations

from collections import Counter

import pytest
from openapi_spec_validator import validate

from gateway.openapi import openapi_path
from gateway.service import API_VERSION, GatewayService

METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def spec():
    from gateway.openapi import build_spec

    return build_spec(GatewayService, title="RoofCRM API", version=API_VERSION)


def operations(spec):
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


def test_spec_is_valid_openapi_3(spec):
    validate(spec)
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["version"] == API_VERSION


def test_operation_ids_are_unique(spec):
    counts = Counter(op["operationId"] for _, _, op in operations(spec))

    assert [name for name, n in counts.items() if n > 1] == []


PBX_WEBHOOKS = {"/api/v1/telephony/mango/events/{event_type}", "/api/v1/telephony/zadarma"}
# A web form's visitors carry no token: the form's public key is the credential (issue 13 A).
PUBLIC_FORMS = {"/api/v1/forms/{key}/submissions"}


def test_every_api_route_but_login_and_pbx_webhooks_needs_a_bearer_token(spec):
    api_operations = [(path, method, op) for path, method, op in operations(spec)
                      if path.startswith("/api/v1/")]
    assert len(api_operations) >= 12

    for path, method, op in api_operations:
        if path == "/api/v1/auth/login":
            assert "security" not in op
            assert "401" not in op["responses"]
        elif path in PBX_WEBHOOKS | PUBLIC_FORMS:
            # A PBX sends no token: its request signature is the authentication, checked by
            # the telephony service.
            assert "security" not in op, (method, path)
        else:
            assert op["security"] == [{"bearer": []}], (method, path)
            assert "401" in op["responses"] and "403" in op["responses"], (method, path)
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


def test_login_request_body_references_the_login_schema(spec):
    login = spec["paths"]["/api/v1/auth/login"]["post"]

    body_schema = login["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/Login"}
    assert login["requestBody"]["required"] is True
    assert login["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Token"}
    assert "422" in login["responses"]
    # The password is write-only: it appears in the request schema, never in a response.
    assert spec["components"]["schemas"]["Login"]["properties"]["password"]["writeOnly"] is True


def test_problem_responses_reference_the_problem_schema(spec):
    me = spec["paths"]["/api/v1/me"]["get"]

    assert me["responses"]["401"]["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"}
    assert "errors" in spec["components"]["schemas"]["Problem"]["properties"]


def test_lists_are_arrays_and_creates_answer_201(spec):
    users = spec["paths"]["/api/v1/users"]
    listed = users["get"]["responses"]["200"]["content"]["application/json"]["schema"]

    assert listed == {"type": "array", "items": {"$ref": "#/components/schemas/User"}}
    assert "201" in users["post"]["responses"]
    assert "204" in spec["paths"]["/api/v1/users/{user_id}/password"]["put"]["responses"]


def test_path_and_query_parameters(spec):
    get_user = spec["paths"]["/api/v1/users/{user_id}"]["get"]
    assert get_user["parameters"] == [{"in": "path", "name": "user_id", "required": True,
                                       "schema": {"type": "string", "format": "uuid"}}]

    query = {p["name"]: p for p in spec["paths"]["/api/v1/users"]["get"]["parameters"]}
    assert set(query) == {"department_id", "role", "include_inactive"}
    assert all(p["in"] == "query" for p in query.values())


@pytest.mark.parametrize("rule, path, params", [
    ("/a/<uuid:id>", "/a/{id}", [{"type": "string", "format": "uuid"}]),
    ("/a/<int:n>/b/<name>", "/a/{n}/b/{name}", [{"type": "integer"}, {"type": "string"}]),
    ("/plain", "/plain", []),
])
def test_openapi_path(rule, path, params):
    converted, found = openapi_path(rule)

    assert converted == path
    assert [p["schema"] for p in found] == params
    assert all(p["in"] == "path" and p["required"] for p in found)
