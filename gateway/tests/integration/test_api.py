"""The public HTTP API end to end: gateway -> RabbitMQ RPC -> directory -> PostgreSQL."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
from openapi_spec_validator import validate

from .conftest import ADMIN_PASSWORD, ADMIN_USERNAME, MANAGER_PASSWORD

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


def problem(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith(PROBLEM), response.headers
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    if code is not None:
        assert body["code"] == code, body
    return body


def error_fields(body: dict) -> set[str]:
    assert all(isinstance(e["reasons"], list) and e["reasons"] for e in body["errors"])
    return {e["field"] for e in body["errors"]}


# -- signing in -------------------------------------------------------------------------------

def test_login_returns_a_bearer_token_and_the_user(api):
    response = api.post("/api/v1/auth/login",
                        json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})

    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 43200
    assert body["user"]["username"] == ADMIN_USERNAME
    assert body["user"]["role"] == "admin"
    assert "password" not in body and "password" not in body["user"]
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == body["user"]["user_id"]
    assert claims["crm_role"] == "admin"

    me = api.get("/api/v1/me", body["access_token"])
    assert me.status_code == 200, me.text
    assert me.json()["user_id"] == body["user"]["user_id"]
    assert me.json()["role"] == "admin"


@pytest.mark.parametrize("username, password", [(ADMIN_USERNAME, "wrong-password"),
                                                ("nobody", ADMIN_PASSWORD)])
def test_wrong_credentials_are_a_401_problem(api, username, password):
    response = api.post("/api/v1/auth/login", json={"username": username, "password": password})

    body = problem(response, 401, "bad_credentials")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "access_token" not in body


def test_login_is_case_insensitive_on_the_username(api):
    assert api.login("  ADMIN ", ADMIN_PASSWORD)


def test_me_without_a_token(api):
    response = api.get("/api/v1/me")

    problem(response, 401, "missing_token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("authorization", ["Bearer garbage", "Basic YWRtaW46YWRtaW4=",
                                           "Bearer " + jwt.encode(
                                               {"sub": "u1", "crm_role": "admin",
                                                "exp": int(time.time()) + 600,
                                                "iss": "roofcrm", "aud": "roofcrm-api"},
                                               "not-the-gateway-secret!", algorithm="HS256")])
def test_me_with_a_bad_token(api, authorization):
    response = api.get("/api/v1/me", headers={"Authorization": authorization})

    problem(response, 401, "invalid_token")


def test_expired_token(api, service_config):
    secret = service_config()["JWT_SECRET"]
    past = int(time.time()) - 60
    token = jwt.encode({"sub": "u1", "crm_role": "admin", "exp": past, "iss": "roofcrm",
                        "aud": "roofcrm-api"}, secret, algorithm="HS256")

    problem(api.get("/api/v1/me", token), 401, "token_expired")


# -- the directory through the API ------------------------------------------------------------

def test_admin_creates_a_department_and_a_user(api, admin_token):
    created = api.post("/api/v1/departments", admin_token,
                       json={"name": "Отдел продаж Петербург", "regions": ["RU-SPE", "RU-LEN"]})
    assert created.status_code == 201, created.text
    department = created.json()
    assert uuid.UUID(department["id"])
    assert department["regions"] == ["RU-SPE", "RU-LEN"]

    response = api.post("/api/v1/users", admin_token, json={
        "username": "petrov", "full_name": "Петров Пётр", "email": "petrov@example.com",
        "role": "sales_head", "department_id": department["id"], "password": "petrov-password",
    })

    assert response.status_code == 201, response.text
    user = response.json()
    assert user["username"] == "petrov"
    assert user["department_id"] == department["id"]
    assert user["regions"] == ["RU-SPE", "RU-LEN"]
    assert user["active"] is True
    assert "password" not in user and "password_hash" not in user

    fetched = api.get(f"/api/v1/users/{user['id']}", admin_token)
    assert fetched.status_code == 200 and fetched.json() == user
    departments = api.get("/api/v1/departments", admin_token).json()
    assert [d["id"] for d in departments] == [department["id"]]
    listed = api.get("/api/v1/users", admin_token, params={"department_id": department["id"]})
    assert [u["username"] for u in listed.json()["items"]] == ["petrov"]
    assert listed.json()["next_cursor"] is None

    # The new user can sign in, and the token carries the department's regions.
    me = api.get("/api/v1/me", api.login("petrov", "petrov-password")).json()
    assert me["role"] == "sales_head"
    assert me["department_id"] == department["id"]
    assert me["regions"] == ["RU-SPE", "RU-LEN"]


def test_manager_identity_reaches_the_service(api, manager, manager_token, department):
    me = api.get("/api/v1/me", manager_token).json()
    assert (me["username"], me["role"], me["department_id"]) == (
        "ivanov", "manager", department["id"])

    # The directory refuses calls without an identity, so this answer proves it arrived.
    response = api.get("/api/v1/users", manager_token)
    assert response.status_code == 200, response.text
    assert {u["username"] for u in response.json()["items"]} == {"admin", "ivanov"}
    assert api.get("/api/v1/regions", manager_token).status_code == 200


def test_manager_may_not_create_users_the_service_says_so(api, manager_token, department):
    # The gateway checks no role on this route: the 403 is the directory's own Forbidden.
    response = api.post("/api/v1/users", manager_token, json={
        "username": "sidorov", "full_name": "Сидоров", "role": "manager",
        "department_id": department["id"]})

    body = problem(response, 403, "role_required")
    assert body["required_roles"] == ["admin"]
    assert body["role"] == "manager"
    assert "WWW-Authenticate" not in response.headers
    admin = api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
    assert "sidorov" not in {u["username"]
                             for u in api.get("/api/v1/users", admin).json()["items"]}


def test_manager_may_not_create_departments(api, manager_token):
    response = api.post("/api/v1/departments", manager_token,
                        json={"name": "Чужой отдел", "regions": ["RU-MOW"]})

    problem(response, 403, "role_required")


def test_service_errors_become_problems(api, admin_token, manager):
    problem(api.get(f"/api/v1/users/{uuid.uuid4()}", admin_token), 404, "not_found")

    duplicate = api.post("/api/v1/users", admin_token, json={
        "username": "ivanov", "full_name": "Другой Иванов", "role": "admin"})
    body = problem(duplicate, 409, "conflict")
    assert error_fields(body) == {"username"}

    unknown_region = api.post("/api/v1/departments", admin_token,
                              json={"name": "Отдел Марс", "regions": ["RU-MARS"]})
    assert error_fields(problem(unknown_region, 422, "validation_failed")) == {"regions"}

    homeless = api.post("/api/v1/users", admin_token, json={
        "username": "nodept", "full_name": "Без отдела", "role": "manager"})
    assert error_fields(problem(homeless, 422, "validation_failed")) == {"department_id"}


def test_password_change_answers_204(api, manager, manager_token):
    response = api.request("PUT", f"/api/v1/users/{manager['id']}/password", manager_token,
                           json={"password": "a-brand-new-password"})

    assert response.status_code == 204, response.text
    assert response.content == b""
    assert api.login("ivanov", "a-brand-new-password")
    problem(api.post("/api/v1/auth/login",
                     json={"username": "ivanov", "password": MANAGER_PASSWORD}),
            401, "bad_credentials")


def test_manager_may_not_change_someone_elses_password(api, manager_token, admin_token):
    admin_id = api.get("/api/v1/me", admin_token).json()["user_id"]

    response = api.request("PUT", f"/api/v1/users/{admin_id}/password", manager_token,
                           json={"password": "hijacked-password"})

    problem(response, 403, "role_required")
    assert api.login(ADMIN_USERNAME, ADMIN_PASSWORD)


# -- request validation -----------------------------------------------------------------------

@pytest.mark.parametrize("payload, fields", [
    ({"username": "petrov", "full_name": "Петров Пётр", "role": "admin", "email": "not-mail"},
     {"email"}),
    ({"full_name": "Петров Пётр"}, {"username", "role"}),
    ({"username": "petrov", "full_name": "П", "role": "janitor", "department_id": "42",
      "password": "short"}, {"full_name", "role", "department_id", "password"}),
    ({"username": "petrov", "full_name": "Петров", "role": "admin", "is_root": True},
     {"is_root"}),
])
def test_invalid_user_body_lists_the_fields(api, admin_token, payload, fields):
    response = api.post("/api/v1/users", admin_token, json=payload)

    body = problem(response, 422, "validation_failed")
    assert error_fields(body) == fields


def test_nested_field_errors_are_dotted(api, admin_token):
    response = api.post("/api/v1/departments", admin_token,
                        json={"name": "Отдел", "regions": ["RU-MOW", 7]})

    assert error_fields(problem(response, 422)) == {"regions.1"}


@pytest.mark.parametrize("kwargs", [
    {"data": "username=admin&password=admin12345",
     "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
    {"data": '{"username": "admin", ', "headers": {"Content-Type": "application/json"}},
    {"json": [{"username": "admin", "password": "admin12345"}]},
    {"json": "admin"},
])
def test_body_that_is_not_a_json_object(api, kwargs):
    response = api.post("/api/v1/auth/login", **kwargs)

    assert error_fields(problem(response, 422, "validation_failed")) == {"body"}


def test_an_empty_body_is_an_empty_object_so_the_required_fields_are_named(api):
    response = api.post("/api/v1/auth/login", data="", headers={"Content-Type": "application/json"})

    assert error_fields(problem(response, 422, "validation_failed")) == {"username", "password"}


def test_redrive_needs_no_body(api, admin_token):
    response = api.post("/api/v1/admin/dead-letters/directory/redrive", admin_token)

    assert response.status_code == 200, response.text
    assert response.json() == {"moved": 0}


def test_body_is_checked_after_the_token(api):
    response = api.post("/api/v1/users", data="not json")

    problem(response, 401, "missing_token")


def test_invalid_query_lists_the_fields(api, admin_token):
    response = api.get("/api/v1/users", admin_token,
                       params={"role": "janitor", "department_id": "x", "sort": "password"})

    assert error_fields(problem(response, 422)) == {"role", "department_id", "sort"}


# -- routing ----------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_unknown_api_route_is_a_404_problem(api, method):
    body = problem(api.request(method, "/api/v1/nothing"), 404, "no_such_route")

    assert "/api/v1/nothing" in body["detail"]


def test_unknown_route_outside_the_api_is_a_404_problem(api):
    problem(api.get("/nothing/here"), 404)


def test_malformed_id_in_the_path_is_a_404_problem(api, admin_token):
    problem(api.get("/api/v1/users/not-a-uuid", admin_token), 404)


@pytest.mark.parametrize("method, path, allowed", [
    ("DELETE", "/api/v1/me", {"GET", "HEAD"}),
    ("GET", "/api/v1/auth/login", {"POST"}),
    ("PUT", "/api/v1/users", {"GET", "HEAD", "POST"}),
    ("POST", "/healthz", {"GET", "HEAD"}),
    ("DELETE", "/openapi.json", {"GET", "HEAD"}),
])
def test_wrong_method_is_a_405_problem(api, method, path, allowed):
    response = api.request(method, path)

    problem(response, 405)
    assert set(response.headers["Allow"].split(", ")) == allowed


# -- documents and probes ---------------------------------------------------------------------

def test_openapi_document(api):
    response = api.get("/openapi.json")

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    spec = response.json()
    validate(spec)
    assert "/api/v1/auth/login" in spec["paths"]
    assert spec["paths"]["/api/v1/me"]["get"]["security"] == [{"bearer": []}]


def test_health_and_readiness(api):
    health = api.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "service": "gateway"}

    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.headers["Content-Type"].startswith("application/json")
    assert ready.json() == {"status": "ready", "service": "gateway"}

    assert api.get("/metrics").status_code == 200


# -- operations -------------------------------------------------------------------------------

def test_admin_lists_dead_letters_of_a_service(api, admin_token):
    response = api.get("/api/v1/admin/dead-letters/directory", admin_token)

    assert response.status_code == 200, response.text
    assert response.json() == []


def test_admin_redrives_nothing(api, admin_token):
    response = api.post("/api/v1/admin/dead-letters/directory/redrive", admin_token, json={})

    assert response.status_code == 200, response.text
    assert response.json() == {"moved": 0}


def test_manager_may_not_see_dead_letters(api, manager_token):
    problem(api.get("/api/v1/admin/dead-letters/directory", manager_token), 403,
            "role_required")
    problem(api.get("/api/v1/admin/dead-letters/nosuch", manager_token), 403)


def test_dead_letters_of_an_unknown_service(api, admin_token):
    problem(api.get("/api/v1/admin/dead-letters/nosuch", admin_token), 404, "not_found")


def test_dead_letters_need_a_token(api):
    problem(api.get("/api/v1/admin/dead-letters/directory"), 401, "missing_token")


def test_the_index_page_lists_the_api_in_russian(api):
    response = api.get("/")

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Сервер CRM работает" in response.text
    assert "/api/v1/auth/login" in response.text and "/openapi.json" in response.text
