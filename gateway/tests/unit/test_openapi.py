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
            # No token needed, but a wrong password is a 401 (schemathesis checks declared codes).
            assert op["responses"]["401"]["description"] == "wrong credentials or signature"
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


def test_lists_are_pages_or_arrays_and_creates_answer_201(spec):
    users = spec["paths"]["/api/v1/users"]
    listed = users["get"]["responses"]["200"]["content"]["application/json"]["schema"]

    # A list that grows is a cursor page; a small fixed dictionary stays an array.
    assert listed == {"$ref": "#/components/schemas/UserPage"}
    page = spec["components"]["schemas"]["UserPage"]
    assert page["properties"]["items"] == {"type": "array",
                                           "items": {"$ref": "#/components/schemas/User"}}
    assert page["properties"]["next_cursor"]["nullable"] is True
    assert set(page["required"]) == {"items", "next_cursor"}
    regions = spec["paths"]["/api/v1/regions"]["get"]["responses"]["200"]
    assert regions["content"]["application/json"]["schema"]["type"] == "array"
    assert "201" in users["post"]["responses"]
    assert "204" in spec["paths"]["/api/v1/users/{user_id}/password"]["put"]["responses"]


def test_path_and_query_parameters(spec):
    get_user = spec["paths"]["/api/v1/users/{user_id}"]["get"]
    assert get_user["parameters"] == [{"in": "path", "name": "user_id", "required": True,
                                       "schema": {"type": "string", "format": "uuid"}}]

    query = {p["name"]: p for p in spec["paths"]["/api/v1/users"]["get"]["parameters"]}
    assert set(query) == {"department_id", "role", "include_inactive", "q", "sort", "limit",
                          "cursor"}
    assert all(p["in"] == "query" for p in query.values())
    assert query["sort"]["schema"]["enum"] == ["name", "username", "created", "-name",
                                               "-username", "-created"]


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


GROWING_LISTS = ["/api/v1/users", "/api/v1/clients", "/api/v1/deals", "/api/v1/tasks",
                 "/api/v1/mail/messages", "/api/v1/logistics/orders", "/api/v1/logistics/trips",
                 "/api/v1/erp/quarantine", "/api/v1/campaigns"]


@pytest.mark.parametrize("path", GROWING_LISTS)
def test_growing_lists_are_cursor_pages(spec, path):
    op = spec["paths"][path]["get"]
    names = {p["name"] for p in op["parameters"] if p["in"] == "query"}
    assert {"limit", "cursor"} <= names, path
    ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    page = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"items", "next_cursor"} <= set(page["properties"]), path
    assert page["properties"]["items"]["type"] == "array"


@pytest.mark.parametrize("path", ["/api/v1/clients", "/api/v1/deals", "/api/v1/tasks",
                                  "/api/v1/users", "/api/v1/logistics/orders"])
def test_main_lists_sort_by_whitelisted_fields(spec, path):
    params = {p["name"]: p for p in spec["paths"][path]["get"]["parameters"]}
    allowed = params["sort"]["schema"]["enum"]
    assert allowed and all(f"-{name}" in allowed for name in allowed if not name.startswith("-"))


def test_every_creating_post_takes_an_idempotency_key(spec):
    creating = [(path, op) for path, method, op in operations(spec)
                if method == "post" and "201" in op["responses"]]
    assert len(creating) >= 25
    for path, op in creating:
        if path in PUBLIC_FORMS:
            continue  # no caller to scope a key to; the form's own spam and rate limits apply
        header = [p for p in op["parameters"] if p["in"] == "header"
                  and p["name"] == "Idempotency-Key"]
        assert header and header[0]["required"] is False, path
        assert header[0]["schema"]["maxLength"] == 200
        assert "Idempotent-Replayed" in op["responses"]["201"]["headers"], path
        assert "Retry-After" in op["responses"]["409"]["headers"], path
        assert "422" in op["responses"], path


VERSIONED_UPDATES = [("/api/v1/clients/{client_id}", "patch"), ("/api/v1/deals/{deal_id}", "patch"),
                     ("/api/v1/tasks/{task_id}", "patch"), ("/api/v1/funnels/{funnel_id}", "put")]


@pytest.mark.parametrize("path, method", VERSIONED_UPDATES)
def test_versioned_updates_document_if_match_412_428_and_etag(spec, path, method):
    op = spec["paths"][path][method]
    assert [p["name"] for p in op["parameters"] if p["in"] == "header"] == ["If-Match"]
    assert {"412", "428", "409", "422"} <= set(op["responses"])
    assert op["responses"]["412"]["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"}
    assert "ETag" in op["responses"]["200"]["headers"]


@pytest.mark.parametrize("path", ["/api/v1/clients/{client_id}", "/api/v1/deals/{deal_id}",
                                  "/api/v1/tasks/{task_id}"])
def test_versioned_reads_document_the_etag(spec, path):
    assert "ETag" in spec["paths"][path]["get"]["responses"]["200"]["headers"]


def test_an_optional_version_is_documented_where_the_body_takes_one(spec):
    move = spec["paths"]["/api/v1/deals/{deal_id}/stage"]["post"]
    [if_match] = [p for p in move["parameters"] if p["name"] == "If-Match"]
    assert if_match["required"] is False and "412" in move["responses"]
    create = spec["paths"]["/api/v1/funnels"]["post"]   # a create has no version to match
    assert "If-Match" not in {p["name"] for p in create["parameters"]}
