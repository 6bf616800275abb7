"""The client base through the public HTTP API, end to end: gateway -> RabbitMQ RPC -> clients
(and directory) -> PostgreSQL. The organisation is created through the API by the admin, reaches
the clients service as the directory's events, and every rule is proven over HTTP."""

from __future__ import annotations

import uuid

import eventlet
import pytest
import sqlalchemy as sa
from eventlet.event import Event
from openapi_spec_validator import validate

from crm_platform.testing import wait_for
from gateway.auth import TokenAuthority
from gateway.service import GatewayService
from services.clients.service import ClientsService
from services.directory.service import DirectoryService

from .conftest import ADMIN_PASSWORD, ADMIN_USERNAME, Api
from .test_api import error_fields, problem

pytestmark = pytest.mark.integration

PASSWORD = "sales-password-1"
LOGS_IN = "m.ural.1"
DEPARTMENTS = {"ural": ("Уральский отдел", ["RU-SVE"]),
               "volga": ("Приволжский отдел", ["RU-TA"])}
PEOPLE = {  # username: (full name, role, department)
    "head.ural": ("Соколова Анна", "sales_head", "ural"),
    "m.ural.1": ("Иванов Иван", "manager", "ural"),
    "m.ural.2": ("Петров Пётр", "manager", "ural"),
    "head.volga": ("Кузнецова Мария", "sales_head", "volga"),
    "m.volga.1": ("Смирнов Олег", "manager", "volga"),
    "m.volga.2": ("Васильев Дмитрий", "manager", "volga"),
    "director": ("Орлов Сергей", "director", None),
}


def inn(n: int) -> str:
    """A valid 10-digit INN (real checksum) made from ``n``."""
    body = f"5{n:08d}"
    weights = (2, 4, 10, 3, 5, 9, 4, 6, 8)
    check = sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11 % 10
    return body + str(check)


STROYMETALL = {"short_name": "ООО «Стройметалл»", "inn": "7707083893", "kpp": "770701001",
               "phones": ["8 (343) 123-45-67"], "emails": ["Sales@StroyMetall.RU"],
               "region": "RU-SVE", "segment": "металл"}


class Org:
    """The running system and its people: ``org.post("m.ural.1", "/api/v1/clients", json=...)``."""

    def __init__(self, api: Api, clients_db: str, tokens: TokenAuthority):
        self.api = api
        self.authority = tokens
        self.db = sa.create_engine(clients_db)
        self.tokens: dict[str, str] = {}
        self.users: dict[str, dict] = {}
        self.departments: dict[str, dict] = {}

    def build(self):
        self.tokens["admin"] = admin = self.api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        for key, (name, regions) in DEPARTMENTS.items():
            response = self.api.post("/api/v1/departments", admin,
                                     json={"name": name, "regions": regions})
            assert response.status_code == 201, response.text
            self.departments[key] = response.json()
        for username, (full_name, role, dept) in PEOPLE.items():
            response = self.api.post("/api/v1/users", admin, json={
                "username": username, "full_name": full_name, "role": role,
                "department_id": self.departments[dept]["id"] if dept else None,
                **({"password": PASSWORD} if username == LOGS_IN else {})})
            assert response.status_code == 201, response.text
            self.users[username] = response.json()
        for key in DEPARTMENTS:
            response = self.api.request(
                "PATCH", f"/api/v1/departments/{self.departments[key]['id']}", admin,
                json={"head_user_id": self.users[f"head.{key}"]["id"]})
            assert response.status_code == 200, response.text
        for username, user in self.users.items():
            # One signs in for real; the others get the same token the gateway would issue
            # (password hashing costs a second per test otherwise).
            self.tokens[username] = self.api.login(username, PASSWORD) if username == LOGS_IN \
                else self.authority.issue({
                    "user_id": user["id"], "username": username, "full_name": user["full_name"],
                    "role": user["role"], "department_id": user["department_id"],
                    "regions": user["regions"]})[0]
        self.users["admin"] = {"id": self.api.get("/api/v1/me", admin).json()["user_id"]}
        # The clients service learns the organisation from the directory's events.
        wait_for(self.replicated, timeout=20, message="user_changed/department_changed events")

    def replicated(self) -> bool:
        with self.db.connect() as conn:
            staff = {str(r.user_id): (r.full_name, r.role, r.department_id and str(r.department_id))
                     for r in conn.execute(sa.text(
                         "SELECT user_id, full_name, role, department_id FROM staff"))}
            depts = {str(r.department_id): r.name for r in conn.execute(sa.text(
                "SELECT department_id, name FROM departments"))}
        people_ok = all(
            staff.get(self.users[u]["id"]) == (full_name, role, dept and
                                               self.departments[dept]["id"])
            for u, (full_name, role, dept) in PEOPLE.items())
        depts_ok = all(depts.get(d["id"]) == d["name"] for d in self.departments.values())
        return people_ok and depts_ok and self.users["admin"]["id"] in staff

    # -- people -------------------------------------------------------------------------------
    def id(self, username: str) -> str:
        return self.users[username]["id"]

    def dept(self, key: str) -> str:
        return self.departments[key]["id"]

    # -- HTTP as someone ----------------------------------------------------------------------
    def request(self, who: str | None, method: str, path: str, **kwargs):
        return self.api.request(method, path, self.tokens[who] if who else None, **kwargs)

    def get(self, who, path, **kwargs):
        return self.request(who, "GET", path, **kwargs)

    def post(self, who, path, **kwargs):
        return self.request(who, "POST", path, **kwargs)

    def patch(self, who, path, **kwargs):
        return self.request(who, "PATCH", path, **kwargs)

    def put(self, who, path, **kwargs):
        return self.request(who, "PUT", path, **kwargs)

    def create(self, who: str, expect: int = 201, **body) -> dict:
        response = self.post(who, "/api/v1/clients", json=body)
        assert response.status_code == expect, response.text
        return response.json()["client"]

    def count(self, sql: str, **params) -> int:
        with self.db.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()


@pytest.fixture
def clients_db(service_db):
    return service_db("clients")


@pytest.fixture
def org(container_factory, service_config, directory_db, clients_db):
    # The clients service first: its event queues exist before the directory publishes.
    container_factory(ClientsService, service_config(db_url=clients_db)).start()
    container_factory(DirectoryService, service_config(db_url=directory_db)).start()
    config = service_config()
    container_factory(GatewayService, config).start()
    api = Api(f"http://{config['WEB_SERVER_ADDRESS']}")
    org = Org(api, clients_db, TokenAuthority(secret=config["JWT_SECRET"]))
    org.build()
    yield org
    api.http.close()
    org.db.dispose()


# -- creating: validation ---------------------------------------------------------------------

def test_manager_creates_a_client_normalised(org):
    response = org.post("m.ural.1", "/api/v1/clients", json={
        **STROYMETALL,
        "contacts": [{"full_name": "  Петров   Пётр ", "position": "снабженец",
                      "phones": ["+7 (916) 123-45-67"], "emails": ["Petrov@StroyMetall.ru"],
                      "messengers": {"telegram": "@petrov"}}]})

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["created"] is True
    card = body["client"]
    assert uuid.UUID(card["id"])
    assert card["phones"] == ["+73431234567"]
    assert card["emails"] == ["sales@stroymetall.ru"]
    assert card["legal_form"] == "ООО"
    assert (card["owner_id"], card["owner_name"]) == (org.id("m.ural.1"), "Иванов Иван")
    assert (card["department_id"], card["department_name"]) == (org.dept("ural"),
                                                                 "Уральский отдел")
    assert card["status"] == "potential" and card["version"] == 1
    assert card["read_only"] is False and card["created_by"] == org.id("m.ural.1")
    [contact] = card["contacts"]
    assert contact["full_name"] == "Петров Пётр"
    assert contact["phones"] == ["+79161234567"]
    assert contact["emails"] == ["petrov@stroymetall.ru"]
    assert contact["messengers"] == {"telegram": "@petrov"}
    assert "name_key" not in card and "merged_into" not in card

    fetched = org.get("m.ural.1", f"/api/v1/clients/{card['id']}")
    assert fetched.status_code == 200, fetched.text
    assert fetched.headers["ETag"] == '"1"'
    assert fetched.json() == card


BAD_VALUES = [  # field, value, a word of the reason
    ("inn", "7707083894", "контрольная сумма"),
    ("inn", "12345", "10"),
    ("kpp", "77070100", "КПП"),
    ("kpp", "7707-01-001X", "КПП"),
    ("phones", ["101"], "внутренний номер АТС"),
    ("phones", ["+7 (000) 000-00-00"], "не существует"),
    ("emails", ["not-an-email"], "не адрес электронной почты"),
    ("ogrn", "1027700132194", "контрольная сумма"),
    ("region", "Свердловская", "RU-SVE"),
]


def test_bad_values_are_a_422_naming_the_field_and_nothing_is_stored(org):
    for field, value, reason in BAD_VALUES:
        body = {"short_name": "ООО «Ромашка»", "inn": inn(1), field: value}

        response = org.post("m.ural.1", "/api/v1/clients", json=body)

        problem_body = problem(response, 422, "validation_failed")
        name = f"{field}.0" if isinstance(value, list) else field
        assert error_fields(problem_body) == {name}, (field, value)
        [error] = problem_body["errors"]
        assert any(reason in r for r in error["reasons"]), (field, value, error)
    assert org.count("SELECT count(*) FROM clients") == 0
    assert org.count("SELECT count(*) FROM identifiers") == 0
    assert org.count("SELECT count(*) FROM audit_log") == 0


def test_every_bad_field_is_named_at_once(org):
    response = org.post("m.ural.1", "/api/v1/clients", json={
        "short_name": "ООО «Ромашка»", "inn": "7707083894", "kpp": "12345",
        "phones": ["+7 916 123-45-67", "101"], "emails": ["ok@example.ru", "not-an-email"]})

    body = problem(response, 422, "validation_failed")
    assert error_fields(body) == {"inn", "kpp", "phones.1", "emails.1"}
    assert org.count("SELECT count(*) FROM clients") == 0
    assert org.count("SELECT count(*) FROM identifiers") == 0
    director = org.get("director", "/api/v1/clients").json()
    assert director["total"] == 0 and director["items"] == []


def test_a_bad_contact_stores_nothing(org):
    response = org.post("m.ural.1", "/api/v1/clients", json={
        "short_name": "ООО «Ромашка»", "contacts": [{"full_name": "Петров", "phones": ["101"]}]})

    body = problem(response, 422, "validation_failed")
    assert "101" in str(body["errors"])
    assert org.count("SELECT count(*) FROM clients") == 0
    assert org.count("SELECT count(*) FROM contacts") == 0


def test_a_bad_contact_is_named_by_its_place_with_the_cards_errors(org):
    response = org.post("m.ural.1", "/api/v1/clients", json={
        "short_name": "ООО «Ромашка»", "inn": "7707083894",
        "contacts": [{"full_name": "Петров", "phones": ["101"]}]})

    body = problem(response, 422, "validation_failed")
    assert error_fields(body) == {"inn", "contacts.0.phones.0"}


BAD_SHAPES = [  # body, fields named in the 422
    ({"short_name": "Ромашка", "is_vip": True}, {"is_vip"}),
    ({"short_name": "Ромашка", "inn": 7707083893}, {"inn"}),
    ({"short_name": "Ромашка", "phones": "+7 916 123-45-67"}, {"phones"}),
    ({"short_name": "Ромашка", "phones": [79161234567]}, {"phones.0"}),
    ({"short_name": "Ромашка", "status": "vip"}, {"status"}),
    ({"short_name": "Ромашка", "addresses": [{"kind": "legal"}]}, {"addresses.0.text"}),
    ({"short_name": "Ромашка", "contacts": [{"position": "директор"}]},
     {"contacts.0.full_name"}),
    ({"short_name": "Ромашка", "contacts": [{"full_name": "Петров", "age": 40}]},
     {"contacts.0.age"}),
    ({"short_name": "Ромашка", "owner_id": "someone"}, {"owner_id"}),
    ({"inn": "7707083893"}, {"short_name"}),
    ({"short_name": "Ромашка", "override": "please"}, {"override"}),
]


def test_gateway_checks_the_shape_of_the_body(org):
    for body, fields in BAD_SHAPES:
        response = org.post("m.ural.1", "/api/v1/clients", json=body)

        assert error_fields(problem(response, 422, "validation_failed")) == fields, body
    problem(org.post("m.ural.1", "/api/v1/clients", data="short_name=x",
                     headers={"Content-Type": "application/x-www-form-urlencoded"}), 422)
    problem(org.post("m.ural.1", "/api/v1/clients", json=[{"short_name": "x"}]), 422)
    assert org.count("SELECT count(*) FROM clients") == 0


def test_admin_may_not_create_clients(org):
    problem(org.post("admin", "/api/v1/clients", json={"short_name": "Ромашка"}), 403,
            "role_required")


def test_a_manager_creates_only_for_themself(org):
    response = org.post("m.ural.1", "/api/v1/clients",
                        json={"short_name": "Ромашка", "owner_id": org.id("m.ural.2")})

    problem(response, 403, "owner_not_allowed")


def test_clients_need_a_token(org):
    problem(org.get(None, "/api/v1/clients"), 401, "missing_token")
    problem(org.post(None, "/api/v1/clients", json={"short_name": "Ромашка"}), 401,
            "missing_token")
    problem(org.get(None, f"/api/v1/clients/{uuid.uuid4()}"), 401, "missing_token")


# -- creating: duplicates ---------------------------------------------------------------------

def test_another_managers_client_is_refused_naming_the_owner_and_department(org):
    card = org.create("m.ural.1", **STROYMETALL)

    response = org.post("m.volga.1", "/api/v1/clients", json={"short_name": "СТРОЙМЕТАЛЛ"})

    body = problem(response, 409, "client_owned")
    assert "Иванов Иван" in body["detail"] and "Уральский отдел" in body["detail"]
    assert "руководителя" in body["detail"]  # how to ask for it
    assert body["client_id"] == card["id"]
    assert (body["owner_id"], body["owner"], body["department"]) == (
        org.id("m.ural.1"), "Иванов Иван", "Уральский отдел")
    assert "name" in body["matched_by"]
    assert org.count("SELECT count(*) FROM clients") == 1


EXACT_KEYS = [  # a candidate with another name but a key of STROYMETALL, and the reason
    ({"short_name": "Металлоторг", "inn": "7707083893", "kpp": "770701001"}, "inn"),
    ({"short_name": "Металлоторг", "phones": ["+7 343 123 45 67"]}, "phone"),
    ({"short_name": "Металлоторг", "emails": ["SALES@stroymetall.ru"]}, "email"),
    ({"short_name": "Металлоторг",
      "contacts": [{"full_name": "Сидоров", "phones": ["8 916 123-45-67"]}]}, "phone"),
    ({"short_name": "Металлоторг",
      "contacts": [{"full_name": "Сидоров", "emails": ["PETROV@stroymetall.ru"]}]}, "email"),
]


def test_refusal_by_exact_keys_of_the_client_and_its_contacts(org):
    org.create("m.ural.1", **STROYMETALL,
               contacts=[{"full_name": "Петров Пётр", "phones": ["+7 916 123 45 67"],
                          "emails": ["petrov@stroymetall.ru"]}])

    for candidate, reason in EXACT_KEYS:
        body = problem(org.post("m.ural.2", "/api/v1/clients", json=candidate), 409,
                       "client_owned")

        assert reason in body["matched_by"], candidate
        assert body["owner"] == "Иванов Иван"
    assert org.count("SELECT count(*) FROM clients") == 1


def test_own_duplicate_returns_the_existing_client(org):
    card = org.create("m.ural.1", **STROYMETALL)

    response = org.post("m.ural.1", "/api/v1/clients", json={"short_name": "Стройметалл, ООО"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["created"] is False
    assert body["client"]["id"] == card["id"]
    assert body["client"]["phones"] == ["+73431234567"]
    assert org.count("SELECT count(*) FROM clients") == 1


def test_sales_head_overrides_the_duplicate_refusal(org):
    card = org.create("m.ural.1", **STROYMETALL)
    problem(org.post("head.volga", "/api/v1/clients", json={"short_name": "СТРОЙМЕТАЛЛ"}),
            409, "client_owned")
    problem(org.post("m.volga.1", "/api/v1/clients",
                     json={"short_name": "СТРОЙМЕТАЛЛ", "override": True}), 409, "client_owned")

    response = org.post("head.volga", "/api/v1/clients",
                        json={"short_name": "СТРОЙМЕТАЛЛ", "override": True})

    assert response.status_code == 201, response.text
    created = response.json()["client"]
    assert created["id"] != card["id"]
    assert (created["owner_id"], created["department_id"]) == (None, org.dept("volga"))
    audit = org.get("head.volga", f"/api/v1/clients/{created['id']}/audit").json()
    [create] = [e for e in audit if e["action"] == "create"]
    assert create["details"] == {"override": True, "overridden": [card["id"]]}
    assert create["user_id"] == org.id("head.volga") and create["role"] == "sales_head"


def test_a_duplicate_of_a_pool_client_says_claim_it(org):
    pool = org.create("head.ural", short_name="ООО «Кровля-Сервис»", inn=inn(7))

    body = problem(org.post("m.ural.1", "/api/v1/clients",
                            json={"short_name": "Кровля Сервис", "inn": inn(7)}),
                   409, "client_in_pool")

    assert body["client_id"] == pool["id"] and "Уральский отдел" in body["detail"]


def test_find_duplicates_ranks_matches_with_reasons_and_owners(org):
    same = org.create("m.ural.1", **STROYMETALL)
    branch = org.create("head.ural", short_name="Стройметалл филиал Казань", inn="7707083893",
                        kpp="165501001", owner_id=org.id("m.ural.2"))
    other = org.create("m.volga.1", short_name="ООО «Стройметалл-Урал»", inn=inn(3))
    org.create("m.volga.2", short_name="ООО «Ромашка»", inn=inn(4))

    response = org.post("m.volga.2", "/api/v1/clients/duplicates", json={
        "short_name": "Стройметалл", "inn": "7707083893", "kpp": "770701001"})

    assert response.status_code == 200, response.text
    matches = response.json()
    assert [m["client_id"] for m in matches][:1] == [same["id"]]
    assert {m["client_id"] for m in matches} == {same["id"], branch["id"], other["id"]}
    first = matches[0]
    assert first["blocking"] is True and first["score"] == 1.0
    assert {r["reason"] for r in first["reasons"]} >= {"inn", "inn_kpp", "name"}
    assert (first["owner_name"], first["department_name"]) == ("Иванов Иван", "Уральский отдел")
    assert "phones" not in first and "emails" not in first
    rest = {m["client_id"]: m for m in matches[1:]}
    assert rest[branch["id"]]["blocking"] is False
    assert "inn_other_branch" in {r["reason"] for r in rest[branch["id"]]["reasons"]}
    assert rest[other["id"]]["blocking"] is False
    assert {r["reason"] for r in rest[other["id"]]["reasons"]} == {"similar_name_other_inn"}
    scores = [m["score"] for m in matches]
    assert scores[1:] == sorted(scores[1:], reverse=True)

    by_phone = org.post("m.volga.2", "/api/v1/clients/duplicates",
                        json={"phones": ["+7 343 123-45-67"]}).json()
    assert [(m["client_id"], m["blocking"]) for m in by_phone] == [(same["id"], True)]
    assert org.post("m.volga.2", "/api/v1/clients/duplicates",
                    json={"short_name": "Совсем другое"}).json() == []
    problem(org.post("m.volga.2", "/api/v1/clients/duplicates", json={"inn": "7707083894"}),
            422, "validation_failed")
    problem(org.post("m.volga.2", "/api/v1/clients/duplicates", json={"name": "x"}), 422)


# -- ownership: the concurrent claim, arbitration, history ------------------------------------

def test_two_managers_claim_one_pool_client_at_once_exactly_one_wins(org):
    pool = [org.create("head.ural", short_name=f"ООО «Пул {n}»", inn=inn(100 + n))
            for n in range(5)]
    base = org.api.base_url

    for client in pool:
        start = Event()

        def claim(who, client_id=client["id"], start=start):
            api = Api(base)  # a session of its own: two real concurrent connections
            try:
                start.wait()
                return who, api.post(f"/api/v1/clients/{client_id}/claim", org.tokens[who])
            finally:
                api.http.close()

        green = eventlet.GreenPool()
        threads = [green.spawn(claim, who) for who in ("m.ural.1", "m.ural.2")]
        eventlet.sleep(0)
        start.send()
        results = dict(thread.wait() for thread in threads)

        statuses = sorted(r.status_code for r in results.values())
        assert statuses == [200, 409], {w: r.text for w, r in results.items()}
        [winner] = [w for w, r in results.items() if r.status_code == 200]
        [loser] = [w for w, r in results.items() if r.status_code == 409]
        body = problem(results[loser], 409, "already_claimed")
        assert body["owner_id"] == org.id(winner)
        assert results[winner].json()["owner_id"] == org.id(winner)
        card = org.get("head.ural", f"/api/v1/clients/{client['id']}").json()
        assert card["owner_id"] == org.id(winner)
        assert org.count("SELECT count(*) FROM ownership_history WHERE client_id = :c "
                         "AND reason = 'claim'", c=client["id"]) == 1


def test_claim_rules(org):
    ural_pool = org.create("head.ural", short_name="ООО «Пул Урал»", inn=inn(11))
    owned = org.create("m.ural.1", short_name="ООО «Своё»", inn=inn(12))

    problem(org.post("m.volga.1", f"/api/v1/clients/{ural_pool['id']}/claim"), 403,
            "client_access_denied")
    problem(org.post("director", f"/api/v1/clients/{ural_pool['id']}/claim"), 403,
            "role_required")
    problem(org.post("m.ural.2", f"/api/v1/clients/{owned['id']}/claim"), 409,
            "already_claimed")
    problem(org.post("m.ural.2", f"/api/v1/clients/{uuid.uuid4()}/claim"), 404,
            "client_not_found")

    claimed = org.post("m.ural.2", f"/api/v1/clients/{ural_pool['id']}/claim")
    assert claimed.status_code == 200, claimed.text
    card = claimed.json()
    assert (card["owner_id"], card["owner_name"], card["read_only"]) == (
        org.id("m.ural.2"), "Петров Пётр", False)
    assert card["version"] == 2 and claimed.headers["ETag"] == '"2"'


def test_ownership_history_after_claim_and_arbitration(org):
    client = org.create("head.ural", short_name="ООО «Кровля»", inn=inn(21))
    assert client["owner_id"] is None and client["department_id"] == org.dept("ural")
    assert org.post("m.ural.1", f"/api/v1/clients/{client['id']}/claim").status_code == 200

    moved = org.put("head.ural", f"/api/v1/clients/{client['id']}/owner",
                    json={"owner_id": org.id("m.ural.2")})
    assert moved.status_code == 200, moved.text
    assert moved.json()["owner_name"] == "Петров Пётр"
    back = org.put("director", f"/api/v1/clients/{client['id']}/owner", json={"owner_id": None})
    assert back.status_code == 200, back.text
    assert back.json()["owner_id"] is None and back.json()["department_id"] == org.dept("ural")

    response = org.get("head.ural", f"/api/v1/clients/{client['id']}/ownership")

    assert response.status_code == 200, response.text
    history = response.json()
    assert [(h["reason"], h["owner_name"]) for h in history] == [
        ("created", None), ("claim", "Иванов Иван"), ("arbitration", "Петров Пётр"),
        ("arbitration", None)]
    assert all(h["department_id"] == org.dept("ural") for h in history)
    assert [h["until"] for h in history[:-1]] == [h["since"] for h in history[1:]]
    assert history[-1]["until"] is None
    # Back in the pool: any manager of the department reads it (and its history), another
    # department does not.
    assert org.get("m.ural.1", f"/api/v1/clients/{client['id']}/ownership").status_code == 200
    problem(org.get("m.volga.1", f"/api/v1/clients/{client['id']}/ownership"), 403,
            "client_access_denied")


def test_arbitration_rules(org):
    client = org.create("m.ural.1", short_name="ООО «Спор»", inn=inn(31))
    path = f"/api/v1/clients/{client['id']}/owner"

    problem(org.put("m.ural.1", path, json={"owner_id": org.id("m.ural.2")}), 403,
            "role_required")
    problem(org.put("head.volga", path, json={"owner_id": org.id("m.volga.1")}), 403,
            "client_access_denied")
    problem(org.put("head.ural", path, json={"owner_id": org.id("m.volga.1")}), 403,
            "owner_not_allowed")
    assert error_fields(problem(org.put("head.ural", path, json={"owner_id": str(uuid.uuid4())}),
                                422, "validation_failed")) == {"owner_id"}
    assert error_fields(problem(org.put("head.ural", path, json={}), 422)) == {"owner_id"}
    assert org.get("head.ural", f"/api/v1/clients/{client['id']}").json()["owner_id"] == \
        org.id("m.ural.1")

    # The director moves a client between departments.
    moved = org.put("director", path, json={"owner_id": org.id("m.volga.1")})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["owner_id"], moved.json()["department_name"]) == (
        org.id("m.volga.1"), "Приволжский отдел")
    problem(org.get("m.ural.1", f"/api/v1/clients/{client['id']}"), 403, "client_access_denied")
    assert org.get("m.volga.1", f"/api/v1/clients/{client['id']}").status_code == 200


# -- access per role --------------------------------------------------------------------------

READERS = [
    ("m.ural.1", 200),      # the owner
    ("m.ural.2", 403),      # another manager of the department
    ("m.volga.1", 403),     # a manager of another department
    ("head.ural", 200),     # the department's head
    ("head.volga", 403),    # another department's head
    ("director", 200),
    ("admin", 403),         # manages the system, does not browse personal data
]


def test_who_reads_a_managers_client(org):
    client = org.create("m.ural.1", **STROYMETALL)

    for who, status in READERS:
        response = org.get(who, f"/api/v1/clients/{client['id']}")

        if status == 200:
            assert response.status_code == 200, (who, response.text)
            assert response.json()["phones"] == ["+73431234567"]
        else:
            problem(response, 403, "client_access_denied")
            assert "phones" not in response.json()
        listed = org.get(who, "/api/v1/clients").json()
        assert ([i["id"] for i in listed["items"]] == [client["id"]]) is (status == 200), who
    readers = {e["user_id"] for e in org.get("director", f"/api/v1/clients/{client['id']}/audit")
               .json() if e["action"] == "read"}
    assert readers == {org.id(who) for who, status in READERS if status == 200}


def test_who_edits_a_managers_client(org):
    client = org.create("m.ural.1", short_name="ООО «Правка»", inn=inn(41))
    path = f"/api/v1/clients/{client['id']}"

    for who in ("m.ural.2", "m.volga.1", "head.volga", "admin"):
        problem(org.patch(who, path, json={"segment": who}, headers={"If-Match": '"1"'}), 403,
                "client_access_denied")
    assert org.count("SELECT version FROM clients") == 1

    for version, who in enumerate(("m.ural.1", "head.ural", "director"), start=2):
        response = org.patch(who, path, json={"segment": who},
                             headers={"If-Match": f'"{version - 1}"'})
        assert response.status_code == 200, (who, response.text)
        assert (response.json()["segment"], response.json()["version"]) == (who, version)
        assert response.json()["updated_by"] == org.id(who)


def test_a_pool_client_is_read_only_for_a_manager_until_claimed(org):
    client = org.create("head.ural", short_name="ООО «Пул»", inn=inn(51),
                        contacts=[{"full_name": "Сидоров Сидор"}])

    card = org.get("m.ural.1", f"/api/v1/clients/{client['id']}")
    assert card.status_code == 200, card.text
    assert card.json()["read_only"] is True and card.json()["owner_id"] is None
    problem(org.patch("m.ural.1", f"/api/v1/clients/{client['id']}",
                      json={"segment": "кровля"}, headers={"If-Match": '"1"'}), 403,
            "client_read_only")
    problem(org.post("m.ural.1", f"/api/v1/clients/{client['id']}/contacts",
                     json={"full_name": "Новый Контакт"}), 403, "client_read_only")
    contact_id = client["contacts"][0]["id"]
    problem(org.patch("m.ural.1", f"/api/v1/contacts/{contact_id}", json={"position": "x"}),
            403, "client_read_only")
    problem(org.get("m.volga.1", f"/api/v1/clients/{client['id']}"), 403,
            "client_access_denied")
    assert org.get("head.ural", f"/api/v1/clients/{client['id']}").json()["read_only"] is False

    assert org.post("m.ural.1", f"/api/v1/clients/{client['id']}/claim").status_code == 200
    edited = org.patch("m.ural.1", f"/api/v1/clients/{client['id']}",
                       json={"segment": "кровля"}, headers={"If-Match": "*"})
    assert edited.status_code == 200, edited.text
    assert edited.json()["read_only"] is False and edited.json()["segment"] == "кровля"
    problem(org.get("m.ural.2", f"/api/v1/clients/{client['id']}"), 403, "client_access_denied")


def test_unknown_and_malformed_clients(org):
    problem(org.get("director", f"/api/v1/clients/{uuid.uuid4()}"), 404, "client_not_found")
    problem(org.get("director", "/api/v1/clients/not-a-uuid"), 404)
    problem(org.patch("director", f"/api/v1/contacts/{uuid.uuid4()}", json={"position": "x"}),
            404, "contact_not_found")


# -- audit ------------------------------------------------------------------------------------

def test_reads_and_changes_are_audited_for_the_head(org):
    client = org.create("m.ural.1", **STROYMETALL)
    assert org.get("m.ural.1", f"/api/v1/clients/{client['id']}").status_code == 200
    assert org.patch("m.ural.1", f"/api/v1/clients/{client['id']}",
                     json={"status": "active", "website": "https://StroyMetall.ru/"},
                     headers={"If-Match": '"1"'}).status_code == 200
    assert org.post("m.ural.1", f"/api/v1/clients/{client['id']}/contacts",
                    json={"full_name": "Сидоров"}).status_code == 201
    problem(org.get("m.ural.2", f"/api/v1/clients/{client['id']}"), 403)

    response = org.get("head.ural", f"/api/v1/clients/{client['id']}/audit")

    assert response.status_code == 200, response.text
    entries = response.json()
    actions = [(e["action"], e["user_id"]) for e in entries]
    assert actions == [("read_denied", org.id("m.ural.2"))] + [  # newest first
        (a, org.id("m.ural.1")) for a in ("add_contact", "update", "read", "create")]
    by_action = {e["action"]: e for e in entries}
    assert set(by_action["update"]["fields"]) == {"status", "website"}
    assert set(by_action["read"]["fields"]) >= {"phones", "emails"}
    assert {"inn", "kpp", "short_name", "phones"} <= set(by_action["create"]["fields"])
    assert all(e["role"] == "manager" and e["at"] for e in entries)
    assert org.get("head.ural", f"/api/v1/clients/{client['id']}/audit",
                   params={"limit": 1}).json()[0]["action"] == "read_denied"

    # Reading the audit is not a read of the card; the denied read above is on record.
    director = org.get("director", f"/api/v1/clients/{client['id']}/audit")
    assert director.status_code == 200 and director.json() == entries
    problem(org.get("m.ural.1", f"/api/v1/clients/{client['id']}/audit"), 403, "role_required")
    problem(org.get("head.volga", f"/api/v1/clients/{client['id']}/audit"), 403,
            "client_access_denied")
    problem(org.get("admin", f"/api/v1/clients/{client['id']}/audit"), 403, "role_required")
    problem(org.get("head.ural", f"/api/v1/clients/{client['id']}/audit",
                    params={"limit": 0}), 422)


# -- listing ----------------------------------------------------------------------------------

def test_list_filters_and_the_pool(org):
    a = org.create("m.ural.1", short_name="ООО «Альфа Кровля»", inn=inn(61), region="RU-SVE",
                   segment="кровля", phones=["+7 916 555 11 11"])
    b = org.create("m.ural.1", short_name="АО «Бета»", inn=inn(62), region="RU-SVE",
                   status="active", segment="фасады")
    c = org.create("m.ural.2", short_name="ООО «Гамма»", inn=inn(63), region="RU-TA")
    pool = org.create("head.ural", short_name="ООО «Дельта»", inn=inn(64), segment="кровля")
    volga = org.create("m.volga.1", short_name="ООО «Волга Кровля»", inn=inn(65),
                       segment="кровля")

    def ids(who, **params):
        response = org.get(who, "/api/v1/clients", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["total"] >= len(page["items"])
        return [i["id"] for i in page["items"]]

    # Newest first; each sees what the role allows.
    assert ids("m.ural.1") == [pool["id"], b["id"], a["id"]]
    assert ids("head.ural") == [pool["id"], c["id"], b["id"], a["id"]]
    assert ids("director") == [volga["id"], pool["id"], c["id"], b["id"], a["id"]]
    assert ids("head.volga") == [volga["id"]]
    assert ids("admin") == []
    # Filters.
    assert ids("m.ural.1", pool="true") == [pool["id"]]
    assert ids("head.ural", pool="true") == [pool["id"]]
    assert ids("director", segment="кровля") == [volga["id"], pool["id"], a["id"]]
    assert ids("director", status="active") == [b["id"]]
    assert ids("director", region="RU-TA") == [c["id"]]
    assert ids("director", owner_id=org.id("m.ural.1")) == [b["id"], a["id"]]
    assert ids("director", department_id=org.dept("volga")) == [volga["id"]]
    assert ids("director", q="кровля альфа") == [a["id"]]
    assert ids("director", q=inn(62)) == [b["id"]]
    assert ids("director", q="8 916 555-11-11") == [a["id"]]
    assert ids("m.volga.1", q="Альфа") == []
    # Cursor pages (newest first), each with the total of the filter.
    page = org.get("director", "/api/v1/clients", params={"limit": 2}).json()
    assert [i["id"] for i in page["items"]] == [volga["id"], pool["id"]]
    assert page["total"] == 5 and page["next_cursor"]
    page = org.get("director", "/api/v1/clients",
                   params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [i["id"] for i in page["items"]] == [c["id"], b["id"]]
    item = page["items"][0]
    assert "contacts" not in item and item["department_name"] == "Уральский отдел"
    page = org.get("director", "/api/v1/clients",
                   params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert ([i["id"] for i in page["items"]], page["next_cursor"]) == ([a["id"]], None)
    assert org.get("m.ural.1", "/api/v1/clients").json()["items"][0]["read_only"] is True
    # Bad queries.
    assert error_fields(problem(org.get("director", "/api/v1/clients", params={
        "status": "vip", "owner_id": "x", "limit": 0, "sort": "inn", "colour": "red"}), 422)) \
        == {"status", "owner_id", "limit", "sort", "colour"}


# -- changing ---------------------------------------------------------------------------------

def test_update_normalises_and_validates(org):
    client = org.create("m.ural.1", **STROYMETALL)
    path = f"/api/v1/clients/{client['id']}"

    response = org.patch("m.ural.1", path, json={
        "phones": ["8 343 123-45-67", "+7 916 700-00-01"], "emails": ["NEW@StroyMetall.ru"],
        "full_name": "Общество с ограниченной ответственностью «Стройметалл»",
        "addresses": [{"kind": "legal", "text": "г. Екатеринбург, ул. Ленина, 1"}]},
        headers={"If-Match": '"1"'})

    assert response.status_code == 200, response.text
    card = response.json()
    assert card["phones"] == ["+73431234567", "+79167000001"]
    assert card["emails"] == ["new@stroymetall.ru"]
    assert card["addresses"] == [{"kind": "legal", "text": "г. Екатеринбург, ул. Ленина, 1"}]
    assert card["version"] == 2 and response.headers["ETag"] == '"2"'
    assert card["updated_by"] == org.id("m.ural.1")

    bad = org.patch("m.ural.1", path, json={"inn": "7707083894", "phones": ["101"]},
                    headers={"If-Match": '"2"'})
    assert error_fields(problem(bad, 422, "validation_failed")) == {"inn", "phones.0"}
    assert error_fields(problem(org.patch("m.ural.1", path, json={"owner_id": None},
                                          headers={"If-Match": '"2"'}), 422)) == {"owner_id"}
    assert org.get("m.ural.1", path).json()["version"] == 2

    same = org.patch("m.ural.1", path, json={}, headers={"If-Match": '"2"'})
    assert same.status_code == 200 and same.json()["version"] == 2


def test_update_may_not_take_another_clients_identifiers(org):
    org.create("m.volga.1", short_name="ООО «Чужой»", inn=inn(71), phones=["+7 916 700-00-02"])
    mine = org.create("m.ural.1", short_name="ООО «Свой»", inn=inn(72))

    response = org.patch("m.ural.1", f"/api/v1/clients/{mine['id']}",
                         json={"phones": ["8 916 700 00 02"]}, headers={"If-Match": '"1"'})

    body = problem(response, 409, "duplicate_identifier")
    assert "Чужой" in body["detail"] and "Смирнов Олег" in body["detail"]


def test_a_stale_version_is_refused(org):
    client = org.create("m.ural.1", **STROYMETALL)
    path = f"/api/v1/clients/{client['id']}"
    etag = org.get("m.ural.1", path).headers["ETag"]

    first = org.patch("head.ural", path, json={"segment": "кровля", "expected_version": 1})
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 2

    # A stale version over HTTP is 412 (the service's 409 stale_version, mapped by the gateway).
    body = problem(org.patch("m.ural.1", path, json={"segment": "фасады"},
                             headers={"If-Match": etag}), 412, "precondition_failed")
    assert str(body["version"]) == "2"  # nameko stringifies error arguments on the wire
    problem(org.patch("m.ural.1", path, json={"segment": "фасады", "expected_version": 1}),
            412, "precondition_failed")
    # No version at all: 428, nothing changes.
    missing = problem(org.patch("m.ural.1", path, json={"segment": "фасады"}), 428,
                      "precondition_required")
    assert error_fields(missing) == {"If-Match"}
    assert org.get("m.ural.1", path).json()["segment"] == "кровля"

    current = org.get("m.ural.1", path)
    ok = org.patch("m.ural.1", path, json={"segment": "фасады"},
                   headers={"If-Match": current.headers["ETag"]})
    assert ok.status_code == 200, ok.text
    assert ok.headers["ETag"] == f'"{current.json()["version"] + 1}"'
    assert org.patch("m.ural.1", path, json={"segment": "кровля"},
                     headers={"If-Match": "*"}).status_code == 200

    assert error_fields(problem(org.patch("m.ural.1", path, json={"segment": "x"},
                                          headers={"If-Match": "abc"}), 422)) == {"If-Match"}
    assert error_fields(problem(org.patch("m.ural.1", path, json={
        "segment": "x", "expected_version": 1}, headers={"If-Match": '"2"'}), 422)) == {
        "If-Match"}
    assert error_fields(problem(org.patch("m.ural.1", path, json={"expected_version": "2"}),
                                422)) == {"expected_version"}


def test_problem_extras_keep_their_json_types(org):
    client = org.create("m.ural.1", **STROYMETALL)
    path = f"/api/v1/clients/{client['id']}"
    assert org.patch("m.ural.1", path, json={"segment": "a"},
                     headers={"If-Match": "*"}).status_code == 200

    body = problem(org.patch("m.ural.1", path, json={"segment": "b", "expected_version": 1}),
                   412, "precondition_failed")

    assert body["version"] == 2


def test_weak_and_bare_if_match_are_versions_too(org):
    client = org.create("m.ural.1", **STROYMETALL)
    path = f"/api/v1/clients/{client['id']}"

    assert org.patch("m.ural.1", path, json={"segment": "a"},
                     headers={"If-Match": 'W/"1"'}).status_code == 200
    assert org.patch("m.ural.1", path, json={"segment": "b"},
                     headers={"If-Match": "2"}).status_code == 200
    problem(org.patch("m.ural.1", path, json={"segment": "c"}, headers={"If-Match": "2"}), 412,
            "precondition_failed")


# -- contacts ---------------------------------------------------------------------------------

def test_contacts_are_added_and_changed(org):
    client = org.create("m.ural.1", **STROYMETALL)

    added = org.post("m.ural.1", f"/api/v1/clients/{client['id']}/contacts", json={
        "full_name": "Сидорова Ольга", "position": "бухгалтер",
        "phones": ["8 (916) 800-00-01"], "emails": ["Buh@StroyMetall.ru"]})

    assert added.status_code == 201, added.text
    contact = added.json()
    assert contact["client_id"] == client["id"] and uuid.UUID(contact["id"])
    assert contact["phones"] == ["+79168000001"] and contact["emails"] == ["buh@stroymetall.ru"]

    changed = org.patch("m.ural.1", f"/api/v1/contacts/{contact['id']}",
                        json={"position": "главный бухгалтер", "phones": ["+7 916 800 00 02"]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["position"] == "главный бухгалтер"
    assert changed.json()["phones"] == ["+79168000002"]
    assert changed.json()["full_name"] == "Сидорова Ольга"
    card = org.get("m.ural.1", f"/api/v1/clients/{client['id']}").json()
    assert [c["position"] for c in card["contacts"]] == ["главный бухгалтер"]
    # The contact's new phone finds the client, the old one no longer does.
    found = org.post("m.volga.1", "/api/v1/clients/duplicates",
                     json={"phones": ["+79168000002"]}).json()
    assert [m["client_id"] for m in found] == [client["id"]]
    assert org.post("m.volga.1", "/api/v1/clients/duplicates",
                    json={"phones": ["+79168000001"]}).json() == []

    problem(org.patch("m.ural.2", f"/api/v1/contacts/{contact['id']}", json={"notes": "x"}),
            403, "client_access_denied")
    problem(org.post("m.ural.1", f"/api/v1/clients/{client['id']}/contacts",
                     json={"full_name": "Без телефона", "phones": ["101"]}), 422,
            "validation_failed")
    assert error_fields(problem(org.post("m.ural.1", f"/api/v1/clients/{client['id']}/contacts",
                                         json={"phones": []}), 422)) == {"full_name"}
    assert error_fields(problem(org.patch("m.ural.1", f"/api/v1/contacts/{contact['id']}",
                                          json={"client_id": str(uuid.uuid4())}), 422)) == {
        "client_id"}


def test_a_contact_may_not_take_another_clients_phone(org):
    org.create("m.volga.1", short_name="ООО «Чужой»", inn=inn(81), phones=["+7 916 900-00-01"])
    mine = org.create("m.ural.1", short_name="ООО «Свой»", inn=inn(82))

    response = org.post("m.ural.1", f"/api/v1/clients/{mine['id']}/contacts",
                        json={"full_name": "Петров", "phones": ["8 916 900 00 01"]})

    body = problem(response, 409, "duplicate_identifier")
    assert "Чужой" in body["detail"]
    assert org.count("SELECT count(*) FROM contacts") == 0


# -- the document -----------------------------------------------------------------------------

def test_openapi_documents_the_client_routes(org):
    spec = org.api.get("/openapi.json").json()
    validate(spec)

    operations = {(path, method): op for path, item in spec["paths"].items()
                  for method, op in item.items() if "clients" in op.get("tags", [])}
    assert {(p, m) for p, m in operations} >= {
        ("/api/v1/clients/duplicates", "post"), ("/api/v1/clients", "post"),
        ("/api/v1/clients", "get"), ("/api/v1/clients/{client_id}", "get"),
        ("/api/v1/clients/{client_id}", "patch"), ("/api/v1/clients/{client_id}/contacts", "post"),
        ("/api/v1/contacts/{contact_id}", "patch"), ("/api/v1/clients/{client_id}/claim", "post"),
        ("/api/v1/clients/{client_id}/owner", "put"),
        ("/api/v1/clients/{client_id}/ownership", "get"),
        ("/api/v1/clients/{client_id}/audit", "get")}
    for op in operations.values():
        assert op["security"] == [{"bearer": []}]
        assert any("а" <= ch <= "я" for ch in op["summary"].lower()), op["summary"]
    create = operations[("/api/v1/clients", "post")]
    assert "201" in create["responses"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ClientCreate"}
