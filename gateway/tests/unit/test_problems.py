"""Errors as RFC 9457 problem documents, and request bodies checked before any worker runs."""

from __future__ import annotations

import json

import pytest
from nameko.exceptions import BadRequest, RemoteError
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from crm_platform.errors import (
    Conflict,
    Forbidden,
    NotFound,
    Unauthenticated,
    ValidationFailed,
)
from gateway.api import MAX_BODY_BYTES, PROBLEM_BASE, ApiEndpoint, flatten_fields, problem_for
from gateway.schemas import LoginSchema, UserSchema

PROBLEM = "application/problem+json"


def body_of(response: Response) -> dict:
    assert response.mimetype == PROBLEM
    return json.loads(response.get_data())


# -- flatten_fields ---------------------------------------------------------------------------

def test_flatten_fields_dots_nested_names_and_keeps_order():
    messages = {
        "email": ["Not a valid email address."],
        "address": {"city": ["Missing data for required field."], "zip": "bad"},
        "regions": {0: ["Not a valid string."], 2: ["Not a valid string.", "too long"]},
    }

    assert list(flatten_fields(messages)) == [
        ("email", ["Not a valid email address."]),
        ("address.city", ["Missing data for required field."]),
        ("address.zip", ["bad"]),
        ("regions.0", ["Not a valid string."]),
        ("regions.2", ["Not a valid string.", "too long"]),
    ]


@pytest.mark.parametrize("messages, expected", [
    (["not an object"], [("body", ["not an object"])]),
    ("broken", [("body", ["broken"])]),
    ({}, []),
])
def test_flatten_fields_of_non_dict_messages(messages, expected):
    assert list(flatten_fields(messages)) == expected


def test_flatten_fields_with_prefix():
    assert list(flatten_fields(["x"], "query")) == [("query", ["x"])]
    assert list(flatten_fields({"a": ["x"]}, "query")) == [("query.a", ["x"])]


def test_flatten_fields_of_a_real_marshmallow_error():
    from marshmallow import ValidationError

    with pytest.raises(ValidationError) as caught:
        UserSchema().load({"username": "ivanov", "email": "not-an-email", "role": "janitor",
                           "department_id": "nope", "extra": 1})

    fields = dict(flatten_fields(caught.value.messages))
    assert set(fields) == {"full_name", "email", "role", "department_id", "extra"}
    assert all(isinstance(reasons, list) and reasons for reasons in fields.values())


# -- problem_for ------------------------------------------------------------------------------

def test_validation_failed_is_a_422_listing_the_fields():
    exc = ValidationFailed("Запрос не прошёл проверку", fields={
        "email": ["Not a valid email address."],
        "address": {"city": ["Missing data for required field."]},
        "password": "too short",
    })

    response = problem_for(exc)

    assert response.status_code == 422
    assert body_of(response) == {
        "type": PROBLEM_BASE + "validation_failed",
        "title": "Validation failed",
        "status": 422,
        "detail": "Запрос не прошёл проверку",
        "code": "validation_failed",
        "errors": [
            {"field": "email", "reasons": ["Not a valid email address."]},
            {"field": "address.city", "reasons": ["Missing data for required field."]},
            {"field": "password", "reasons": ["too short"]},
        ],
    }


def test_problem_without_fields_has_no_errors_member():
    body = body_of(problem_for(NotFound("Пользователь не найден")))

    assert body["status"] == 404
    assert body["code"] == "not_found"
    assert body["detail"] == "Пользователь не найден"
    assert "errors" not in body


def test_unauthenticated_is_a_401_with_www_authenticate():
    response = problem_for(Unauthenticated("Срок действия токена истёк", code="token_expired"))

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    body = body_of(response)
    assert body["code"] == "token_expired"
    assert body["type"] == PROBLEM_BASE + "token_expired"
    assert body["title"] == "Unauthenticated"


def test_forbidden_carries_its_extra_members():
    exc = Forbidden("Недостаточно прав", code="role_required",
                    extra={"required_roles": ["admin"], "role": "manager"})

    response = problem_for(exc)

    assert response.status_code == 403
    assert "WWW-Authenticate" not in response.headers
    body = body_of(response)
    assert body["required_roles"] == ["admin"]
    assert body["role"] == "manager"
    assert body["code"] == "role_required"


def test_conflict_with_a_field():
    body = body_of(problem_for(Conflict("Такое значение уже занято",
                                        fields={"username": ["уже используется"]})))

    assert body["status"] == 409
    assert body["errors"] == [{"field": "username", "reasons": ["уже используется"]}]


def test_domain_error_rebuilt_from_rpc_args_maps_the_same():
    """What nameko's remote_error does with a service's error: cls(*args)."""
    original = Forbidden("нет", code="role_required", extra={"required_roles": ["admin"]})

    rebuilt = type(original)(*original.args)

    assert body_of(problem_for(rebuilt)) == body_of(problem_for(original))


def test_unexpected_error_is_a_500_that_leaks_nothing():
    response = problem_for(RuntimeError("password=hunter2 at db.internal:5432"))

    assert response.status_code == 500
    text = response.get_data(as_text=True)
    assert "hunter2" not in text and "db.internal" not in text and "RuntimeError" not in text
    body = body_of(response)
    assert body["status"] == 500
    assert body["type"] == PROBLEM_BASE + "internal"
    assert "WWW-Authenticate" not in response.headers


def test_unknown_remote_error_is_a_502_that_leaks_nothing():
    response = problem_for(RemoteError("KeyError", "'password_hash' secret detail"))

    assert response.status_code == 502
    text = response.get_data(as_text=True)
    assert "password_hash" not in text and "KeyError" not in text
    assert body_of(response)["type"] == PROBLEM_BASE + "upstream_error"


def test_signature_mismatch_is_a_500():
    response = ApiEndpoint("GET", "/x").response_from_exception(BadRequest("unexpected kwarg"))

    assert response.status_code == 500
    assert "unexpected kwarg" not in response.get_data(as_text=True)


# -- request bodies ---------------------------------------------------------------------------

def request_with(data=None, content_type="application/json") -> Request:
    environ = EnvironBuilder(method="POST", path="/x", data=data,
                             content_type=content_type).get_environ()
    return Request(environ)


def body_error(endpoint, request) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        endpoint.load_body(request)
    return caught.value


@pytest.fixture
def login_endpoint():
    return ApiEndpoint("POST", "/api/v1/auth/login", body=LoginSchema, public=True)


def test_valid_body_is_loaded(login_endpoint):
    body = login_endpoint.load_body(request_with(json.dumps({"username": "a", "password": "b"})))

    assert body == {"username": "a", "password": "b"}


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8",
                                          "application/merge-patch+json"])
def test_json_flavoured_content_types_are_accepted(login_endpoint, content_type):
    request = request_with(json.dumps({"username": "a", "password": "b"}), content_type)

    assert login_endpoint.load_body(request)["username"] == "a"


@pytest.mark.parametrize("data, content_type", [
    ('{"username": "a", "password": "b"}', "text/plain"),
    ("username=a&password=b", "application/x-www-form-urlencoded"),
    ('{"username": "a", "password": "b"}', None),
])
def test_body_that_is_not_declared_json(login_endpoint, data, content_type):
    error = body_error(login_endpoint, request_with(data, content_type))

    assert list(error.fields) == ["body"]


@pytest.mark.parametrize("data", ['{"username": ', "[1, 2", "\xff"])
def test_body_that_does_not_parse(login_endpoint, data):
    error = body_error(login_endpoint, request_with(data))

    assert list(error.fields) == ["body"]
    assert error.status == 422


@pytest.mark.parametrize("data", ["", "  \n"])
def test_an_empty_body_names_the_required_fields(login_endpoint, data):
    error = body_error(login_endpoint, request_with(data))

    assert sorted(error.fields) == ["password", "username"]


@pytest.mark.parametrize("data", ["[]", '[{"username": "a"}]', '"text"', "42", "null"])
def test_body_that_is_not_an_object(login_endpoint, data):
    assert body_error(login_endpoint, request_with(data)).fields == {"body": ["не объект"]}


def test_body_fields_are_validated(login_endpoint):
    error = body_error(login_endpoint, request_with(json.dumps({"username": "", "extra": 1})))

    assert set(error.fields) == {"username", "password", "extra"}


def test_oversized_body_is_refused_without_reading_it(login_endpoint):
    environ = EnvironBuilder(method="POST", path="/x", data="{}",
                             content_type="application/json").get_environ()
    environ["CONTENT_LENGTH"] = str(MAX_BODY_BYTES + 1)

    error = body_error(login_endpoint, Request(environ))

    assert "слишком велико" in error.detail
    assert list(error.fields) == ["body"]


def test_oversized_body_without_content_length_is_refused(login_endpoint):
    big = json.dumps({"username": "a", "password": "x" * (MAX_BODY_BYTES + 10)})
    environ = EnvironBuilder(method="POST", path="/x", data=big,
                             content_type="application/json").get_environ()
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True  # chunked: the server knows where it ends

    error = body_error(login_endpoint, Request(environ))

    assert "слишком велико" in error.detail


# -- results ----------------------------------------------------------------------------------

def test_result_shaped_by_the_response_schema():
    endpoint = ApiEndpoint("POST", "/x", response=LoginSchema, status=201)

    response = endpoint.response_from_result({"username": "a", "password": "secret"})

    assert response.status_code == 201
    assert response.mimetype == "application/json"
    assert json.loads(response.get_data()) == {"username": "a"}  # load_only stays out


def test_status_tuple_and_no_content():
    endpoint = ApiEndpoint("PUT", "/x")

    assert endpoint.response_from_result((202, {"a": 1})).status_code == 202
    no_content = endpoint.response_from_result((204, None))
    assert no_content.status_code == 204 and no_content.get_data() == b""
