"""The API's cross-cutting conventions over real HTTP, RabbitMQ and PostgreSQL: Idempotency-Key on
creating POSTs (kept in the service's own database), If-Match / ETag on updates (428, 412), and
cursor pages with sorting on the lists."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from crm_platform.clock import utcnow
from crm_platform.idempotency import fingerprint

from . import test_clients_api as base
from .test_api import error_fields, problem
from .test_clients_api import STROYMETALL, inn

# The running system and its organisation: the fixtures of the client base tests.
clients_db = base.clients_db
org = base.org

pytestmark = pytest.mark.integration

KEY = "Idempotency-Key"


def keyed(org, who: str, key: str, body: dict, path: str = "/api/v1/clients"):
    """POST ``body`` as exact JSON bytes (the fingerprint is over the raw body)."""
    return org.post(who, path, data=json.dumps(body, ensure_ascii=False).encode(),
                    headers={KEY: key, "Content-Type": "application/json"})


# -- Idempotency-Key ----------------------------------------------------------------------------

def test_a_repeated_create_replays_the_first_response(org):
    body = {"short_name": "ООО «Повтор»", "inn": inn(101)}

    first = keyed(org, "m.ural.1", "create-povtor-1", body)
    again = keyed(org, "m.ural.1", "create-povtor-1", body)

    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert org.count("SELECT count(*) FROM clients WHERE inn = :inn", inn=inn(101)) == 1
    # The stored result is the first answer, even after the card changed.
    client_id = first.json()["client"]["id"]
    assert org.patch("m.ural.1", f"/api/v1/clients/{client_id}", json={"segment": "кровля"},
                     headers={"If-Match": '"1"'}).status_code == 200
    third = keyed(org, "m.ural.1", "create-povtor-1", body)
    assert third.json() == first.json() and third.json()["client"]["version"] == 1
    assert org.count("SELECT count(*) FROM idempotency_keys WHERE key = 'create-povtor-1' "
                     "AND status = 'done'") == 1


def test_keys_belong_to_their_caller(org):
    """Another manager's request with the same key is theirs, not a replay of someone else's."""
    first = keyed(org, "m.ural.1", "shared-key", {"short_name": "ООО «Первый»", "inn": inn(102)})
    other = keyed(org, "m.ural.2", "shared-key", {"short_name": "ООО «Второй»", "inn": inn(103)})

    assert (first.status_code, other.status_code) == (201, 201), other.text
    assert "Idempotent-Replayed" not in other.headers
    assert other.json()["client"]["owner_id"] == org.id("m.ural.2")


def test_the_same_key_for_another_request_is_422(org):
    keyed(org, "m.ural.1", "reused", {"short_name": "ООО «Ключ»", "inn": inn(104)})

    body = problem(keyed(org, "m.ural.1", "reused",
                         {"short_name": "ООО «Другой»", "inn": inn(105)}), 422,
                   "idempotency_key_reused")

    assert error_fields(body) == {KEY}
    assert org.count("SELECT count(*) FROM clients WHERE inn = :inn", inn=inn(105)) == 0
    # Another path with the same key is another request too.
    client_id = org.get("m.ural.1", "/api/v1/clients").json()["items"][0]["id"]
    problem(keyed(org, "m.ural.1", "reused", {"full_name": "Сидоров Сидор"},
                  f"/api/v1/clients/{client_id}/contacts"), 422, "idempotency_key_reused")


@pytest.mark.parametrize("key", ["", "with space", "ключ".encode(), "x" * 201, "tab\there"])
def test_a_malformed_key_is_422_naming_the_header(org, key):
    response = org.post("m.ural.1", "/api/v1/clients", headers={KEY: key},
                        json={"short_name": "ООО «Плохой ключ»", "inn": inn(106)})

    assert error_fields(problem(response, 422, "validation_failed")) == {KEY}
    assert org.count("SELECT count(*) FROM clients") == 0


def test_a_failed_create_frees_the_key_for_the_retry(org):
    bad = {"short_name": "ООО «Опечатка»", "inn": "7707083894"}          # a wrong checksum
    good = {"short_name": "ООО «Опечатка»", "inn": inn(107)}

    problem(keyed(org, "m.ural.1", "retry-me", bad), 422, "validation_failed")
    assert org.count("SELECT count(*) FROM idempotency_keys") == 0
    fixed = keyed(org, "m.ural.1", "retry-me", good)

    assert fixed.status_code == 201, fixed.text
    assert "Idempotent-Replayed" not in fixed.headers


def claim_row(org, who: str, key: str, body: dict, *, age: timedelta) -> None:
    raw = json.dumps(body, ensure_ascii=False).encode()
    with org.db.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO idempotency_keys (caller, key, fingerprint, operation, status, "
            "created_at) VALUES (:caller, :key, :print, 'clients.create_client', 'running', "
            ":at)"), {"caller": org.id(who), "key": key, "at": utcnow() - age,
                      "print": fingerprint("POST", "/api/v1/clients", raw)})


def test_a_repeat_while_the_first_still_runs_is_409_with_retry_after(org):
    body = {"short_name": "ООО «Долгий»", "inn": inn(108)}
    claim_row(org, "m.ural.1", "slow", body, age=timedelta(seconds=2))

    response = keyed(org, "m.ural.1", "slow", body)

    problem(response, 409, "idempotency_in_progress")
    assert response.headers["Retry-After"] == "1"
    assert org.count("SELECT count(*) FROM clients") == 0


def test_an_abandoned_claim_is_taken_over(org):
    """A claim left ``running`` by a process that died is taken over once it is stale."""
    body = {"short_name": "ООО «Брошенный»", "inn": inn(109)}
    claim_row(org, "m.ural.1", "abandoned", body, age=timedelta(minutes=6))

    response = keyed(org, "m.ural.1", "abandoned", body)

    assert response.status_code == 201, response.text
    assert org.count("SELECT count(*) FROM idempotency_keys WHERE key = 'abandoned' "
                     "AND status = 'done'") == 1


def test_idempotency_is_one_mechanism_across_services(org):
    """The directory keeps its own keys: an admin's repeated ``POST /users`` creates one user."""
    body = {"username": "new.user", "full_name": "Новый Сотрудник", "role": "manager",
            "department_id": org.dept("ural")}

    first = keyed(org, "admin", "user-1", body, "/api/v1/users")
    again = keyed(org, "admin", "user-1", body, "/api/v1/users")

    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == first.json()
    users = org.get("admin", "/api/v1/users", params={"q": "new.user"}).json()["items"]
    assert [u["username"] for u in users] == ["new.user"]


# -- If-Match / ETag ----------------------------------------------------------------------------

def test_updates_need_the_current_version(org):
    client = org.create("m.ural.1", **STROYMETALL)
    path = f"/api/v1/clients/{client['id']}"
    etag = org.get("m.ural.1", path).headers["ETag"]
    assert etag == '"1"'

    missing = problem(org.patch("m.ural.1", path, json={"segment": "кровля"}), 428,
                      "precondition_required")
    assert error_fields(missing) == {"If-Match"}
    changed = org.patch("m.ural.1", path, json={"segment": "кровля"}, headers={"If-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] == '"2"'
    stale = problem(org.patch("head.ural", path, json={"segment": "фасады"},
                              headers={"If-Match": etag}), 412, "precondition_failed")
    assert stale["version"] == 2
    assert org.get("m.ural.1", path).json()["segment"] == "кровля"
    assert org.count("SELECT version FROM clients WHERE id = :id", id=client["id"]) == 2


# -- cursor pages and sorting -------------------------------------------------------------------

def page_through(org, who: str, path: str, **params) -> tuple[list[str], int]:
    ids, pages, cursor = [], 0, None
    while True:
        response = org.get(who, path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        page = response.json()
        ids += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return ids, pages


def test_paging_through_clients_with_cursors_and_sorting(org):
    names = ["Вега", "Альфа", "Гамма", "Бета", "Дельта"]
    made = [org.create("m.ural.1", short_name=f"ООО «{name}»", inn=inn(110 + n))
            for n, name in enumerate(names)]
    by_id = {c["id"]: c["short_name"] for c in made}

    newest_first, pages = page_through(org, "m.ural.1", "/api/v1/clients", limit=2)
    assert pages == 3
    assert newest_first == [c["id"] for c in reversed(made)]

    by_name, _ = page_through(org, "m.ural.1", "/api/v1/clients", limit=2, sort="name")
    assert [by_id[i] for i in by_name] == [f"ООО «{n}»" for n in sorted(names)]
    by_name_desc, _ = page_through(org, "m.ural.1", "/api/v1/clients", limit=3, sort="-name")
    assert by_name_desc == list(reversed(by_name))
    oldest_first, _ = page_through(org, "m.ural.1", "/api/v1/clients", limit=4, sort="created")
    assert oldest_first == [c["id"] for c in made]

    # A client created between two pages neither shifts nor repeats the rest.
    first = org.get("m.ural.1", "/api/v1/clients", params={"limit": 2, "sort": "created"}).json()
    org.create("m.ural.1", short_name="ООО «Новенький»", inn=inn(120))
    rest, _ = page_through(org, "m.ural.1", "/api/v1/clients", limit=2, sort="created",
                           cursor=first["next_cursor"])
    assert [i["id"] for i in first["items"]] + rest[:3] == [c["id"] for c in made]


def test_bad_sorts_and_cursors_are_422(org):
    org.create("m.ural.1", short_name="ООО «Один»", inn=inn(121))
    org.create("m.ural.1", short_name="ООО «Два»", inn=inn(122))
    cursor = org.get("m.ural.1", "/api/v1/clients", params={"limit": 1}).json()["next_cursor"]
    assert cursor

    for params, field in (({"sort": "inn"}, "sort"), ({"sort": "--name"}, "sort"),
                          ({"cursor": "not-a-cursor"}, "cursor"),
                          ({"cursor": cursor, "sort": "name"}, "cursor"),
                          ({"limit": 501}, "limit")):
        response = org.get("m.ural.1", "/api/v1/clients", params=params)
        assert error_fields(problem(response, 422)) == {field}, params


def test_users_page_and_sort(org):
    by_login, pages = page_through(org, "director", "/api/v1/users", limit=3, sort="username")
    users = {u["id"]: username for username, u in org.users.items()}
    logins = [users[i] for i in by_login]

    assert logins == sorted(logins) and len(logins) == len(users) and pages == 3
    backwards, _ = page_through(org, "director", "/api/v1/users", limit=4, sort="-username")
    assert backwards == list(reversed(by_login))
    heads = org.get("director", "/api/v1/users", params={"role": "sales_head"}).json()
    assert {u["username"] for u in heads["items"]} == {"head.ural", "head.volga"}


def test_transport_orders_and_trips_page_and_sort(api, admin_token, department, container_factory,
                                                  service_config, service_db, tmp_path):
    """Lists of another service, the same conventions: keyset pages, sort both ways, and a
    creating POST with an Idempotency-Key made once."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from services.logistics.service import LogisticsService

    container_factory(LogisticsService, service_config(
        db_url=service_db("logistics"), LATENESS_SCAN_SECONDS=0,
        LOGISTICS_FILES_DIR=str(tmp_path))).start()
    assert api.post("/api/v1/users", admin_token, json={
        "username": "disp", "full_name": "Диспетчер", "role": "dispatcher",
        "password": "secret-password-1"}).status_code == 201
    disp = api.login("disp", "secret-password-1")
    start = datetime(2026, 12, 7, 9, 0, tzinfo=ZoneInfo("Europe/Moscow"))
    ends = [7, 3, 5, 1, 9]   # hours after the start: the windows end in another order
    numbers = []
    for n, hours in enumerate(ends):
        body = {"consignee": f"ООО Получатель {n}", "address": "Пермь", "region": "RU-PER",
                "window_start": (start + timedelta(minutes=n)).isoformat(),
                "window_end": (start + timedelta(hours=hours)).isoformat(), "weight_kg": 100}
        made = api.post("/api/v1/logistics/orders", disp, json=body,
                        headers={KEY: f"order-{n}"})
        again = api.post("/api/v1/logistics/orders", disp, json=body,
                         headers={KEY: f"order-{n}"})
        assert made.status_code == again.status_code == 201, again.text
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["id"] == made.json()["id"]
        numbers.append(made.json()["number"])

    def walk(**params):
        ids, cursor = [], None
        while True:
            page = api.get("/api/v1/logistics/orders", disp, params={
                **params, **({"cursor": cursor} if cursor else {})}).json()
            ids += [o["number"] for o in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return ids

    by_end = [numbers[i] for i in sorted(range(5), key=lambda i: ends[i])]
    assert walk(limit=2) == by_end                      # the default: soonest window end first
    assert walk(limit=2, sort="-window_end") == list(reversed(by_end))
    assert walk(limit=3, sort="window_start") == numbers
    bad = api.get("/api/v1/logistics/orders", disp, params={"sort": "weight_kg"})
    assert error_fields(problem(bad, 422)) == {"sort"}
    trips = api.get("/api/v1/logistics/trips", disp, params={"limit": 1}).json()
    assert trips == {"items": [], "next_cursor": None}
