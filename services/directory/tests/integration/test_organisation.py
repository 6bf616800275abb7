"""Departments and users through the directory's RPCs, against the real RabbitMQ and PostgreSQL:
what is stored, what the outbox announces, and who may do it."""

from __future__ import annotations

import json
import uuid

import pytest
from kombu import Connection, Queue
from nameko.standalone.events import get_event_exchange

from crm_platform.errors import Conflict, Forbidden, NotFound, Unauthenticated, ValidationFailed
from crm_platform.testing import wait_for

from .support import ADMIN, contract_payload, identity

pytestmark = pytest.mark.integration


# -- creating ------------------------------------------------------------------------------------
def test_admin_creates_a_department_and_it_is_announced(directory, sql):
    dept = directory.department("Продажи Москва", regions=["RU-MOW", "RU-MOS"])

    assert dept == {"id": dept["id"], "name": "Продажи Москва", "regions": ["RU-MOW", "RU-MOS"],
                    "head_user_id": None}
    stored = sql.rows("SELECT id, name, regions, head_user_id FROM departments")
    assert [dict(row) for row in stored] == [{
        "id": uuid.UUID(dept["id"]), "name": "Продажи Москва", "regions": ["RU-MOW", "RU-MOS"],
        "head_user_id": None}]

    [row] = sql.outbox()
    assert (row["source"], row["type"]) == ("directory", "department_changed")
    assert row["envelope"]["payload"] == {
        "department_id": dept["id"], "name": "Продажи Москва", "regions": ["RU-MOW", "RU-MOS"],
        "head_user_id": None}
    assert row["envelope"]["event_id"]
    assert "directory.create_department" in json.dumps(row["headers"])  # the call that caused it
    contract_payload(row)  # a consumer accepts it


def test_admin_creates_a_user_and_it_is_announced(directory, sql):
    dept = directory.department(regions=["RU-MOW", "RU-TVE"])

    user = directory.user("ivanov", role="manager", department_id=dept["id"],
                          full_name="Иван Иванов", email="Ivanov@Example.RU", extension="101",
                          mailbox="Ivanov@Mail.Example.RU", password="ivanov-password")

    assert user == {
        "id": user["id"], "username": "ivanov", "full_name": "Иван Иванов",
        "email": "ivanov@example.ru", "role": "manager", "department_id": dept["id"],
        "regions": ["RU-MOW", "RU-TVE"], "extension": "101",
        "mailbox": "ivanov@mail.example.ru", "active": True,
    }
    assert "password" not in user and "password_hash" not in user
    stored = sql.rows("SELECT username, email, role, department_id, password_hash FROM users")
    assert len(stored) == 1
    assert stored[0]["email"] == "ivanov@example.ru"
    assert stored[0]["department_id"] == uuid.UUID(dept["id"])
    assert stored[0]["password_hash"].startswith("$argon2")  # never the password itself

    assert [row["type"] for row in sql.outbox()] == ["department_changed", "user_changed"]
    [row] = sql.outbox("user_changed")
    assert row["envelope"]["payload"] == {
        "user_id": user["id"], "username": "ivanov", "full_name": "Иван Иванов",
        "email": "ivanov@example.ru", "role": "manager", "department_id": dept["id"],
        "regions": ["RU-MOW", "RU-TVE"], "extension": "101",
        "mailbox": "ivanov@mail.example.ru", "active": True,
    }
    assert "directory.create_user" in json.dumps(row["headers"])
    assert contract_payload(row)["user_id"] == uuid.UUID(user["id"])


def test_a_login_typed_in_capitals_is_stored_in_lower_case(directory, sql):
    user = directory.user("Petrov.A", role="director")

    assert user["username"] == "petrov.a"
    assert sql.scalar("SELECT username FROM users") == "petrov.a"


def test_user_without_department_or_password(directory, sql):
    user = directory.user("director", role="director")

    assert user["department_id"] is None
    assert user["regions"] == []
    assert sql.scalar("SELECT password_hash FROM users") is None
    [payload] = sql.payloads("user_changed")
    assert payload["department_id"] is None and payload["regions"] == []


def test_the_outbox_relay_publishes_the_events(directory, sql, rabbit_config):
    with Connection(rabbit_config["AMQP_URI"]) as conn:
        queue = Queue("directory-test-listener", exchange=get_event_exchange("directory", {}),
                      routing_key="#")(conn.channel())
        queue.declare()

        dept = directory.department()
        directory.user("petrov", department_id=dept["id"])

        received = []

        def two_events():
            message = queue.get(no_ack=True)
            if message is not None:
                received.append(json.loads(message.body))
            return len(received) == 2

        wait_for(two_events, message="both events on directory.events")
    assert [envelope["type"] for envelope in received] == ["department_changed", "user_changed"]
    assert received[1]["payload"]["username"] == "petrov"
    wait_for(lambda: all(row["published_at"] for row in sql.outbox()),
             message="outbox rows marked published")


# -- who may --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "args"), [
    ("create_department", ({"name": "Отдел", "regions": []},)),
    ("create_user", ({"username": "x1", "full_name": "X X", "role": "director"},)),
    ("list_users", ()),
    ("list_departments", ()),
    ("list_regions", ()),
])
def test_a_call_without_identity_is_refused(directory, sql, method, args):
    with pytest.raises(Unauthenticated):
        directory.call(method, *args, caller=None)

    assert sql.count("users") == sql.count("departments") == sql.count("outbox") == 0


@pytest.mark.parametrize("role", ["manager", "sales_head", "director", "integration"])
def test_only_an_admin_creates_users(directory, sql, role):
    with pytest.raises(Forbidden) as caught:
        directory.call("create_user", {"username": "intruder", "full_name": "In Truder",
                                       "role": "admin"}, caller=identity(role))

    assert caught.value.code == "role_required"
    assert caught.value.extra["required_roles"] == ["admin"]
    assert sql.count("users") == 0
    assert sql.count("outbox") == 0


def test_a_manager_cannot_create_or_change_departments(directory, sql):
    dept = directory.department(regions=["RU-MOW"])
    manager = identity("manager")

    with pytest.raises(Forbidden):
        directory.call("create_department", {"name": "Свой отдел", "regions": []}, caller=manager)
    with pytest.raises(Forbidden):
        directory.call("update_department", dept["id"], {"regions": ["RU-SPE"]}, caller=manager)

    assert sql.scalar("SELECT regions FROM departments") == ["RU-MOW"]
    assert sql.count("outbox") == 1


def test_any_signed_in_user_reads_the_directory(directory):
    dept = directory.department(regions=["RU-SPE"])
    directory.user("sidorov", department_id=dept["id"])
    manager = identity("manager")

    [listed] = directory.call("list_users", caller=manager)
    assert listed["username"] == "sidorov"
    assert listed["regions"] == ["RU-SPE"]
    assert directory.call("get_user", listed["id"], caller=manager) == listed
    assert [d["id"] for d in directory.call("list_departments", caller=manager)] == [dept["id"]]
    regions = {r["code"] for r in directory.call("list_regions", caller=manager)}
    assert {"RU-MOW", "RU-SPE", "RU-TA"} <= regions


def test_unknown_user_is_not_found(directory):
    with pytest.raises(NotFound):
        directory.call("get_user", str(uuid.uuid4()))
    with pytest.raises(ValidationFailed) as caught:
        directory.call("get_user", "not-a-uuid")
    assert set(caught.value.fields) == {"user_id"}


# -- conflicts ------------------------------------------------------------------------------------
def test_duplicate_username_is_a_conflict_naming_the_field(directory, sql):
    directory.user("kozlov", role="director", email="kozlov@example.ru")

    with pytest.raises(Conflict) as caught:
        directory.user("kozlov", role="director", email="other@example.ru")

    assert set(caught.value.fields) == {"username"}
    assert sql.count("users") == 1
    assert len(sql.outbox("user_changed")) == 1


@pytest.mark.parametrize(("field", "first", "second"), [
    ("email", {"email": "same@example.ru"}, {"email": "SAME@example.ru"}),
    ("extension", {"extension": "205"}, {"extension": "205"}),
    ("mailbox", {"mailbox": "box@example.ru"}, {"mailbox": "Box@Example.ru"}),
])
def test_other_unique_fields_are_conflicts_naming_the_field(directory, sql, field, first, second):
    directory.user("first", role="director", **first)

    with pytest.raises(Conflict) as caught:
        directory.user("second", role="director", **second)

    assert set(caught.value.fields) == {field}
    assert sql.count("users") == 1
    assert len(sql.outbox("user_changed")) == 1


def test_duplicate_department_name_is_a_conflict(directory, sql):
    directory.department("Казань", regions=["RU-TA"])

    with pytest.raises(Conflict) as caught:
        directory.department("Казань", regions=[])

    assert set(caught.value.fields) == {"name"}
    assert sql.count("departments") == 1
    assert sql.count("outbox") == 1


# -- invalid data ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("data", "fields"), [
    ({"role": "superuser"}, {"role"}),
    ({"email": "not-an-email"}, {"email"}),
    ({"role": "boss", "email": "@"}, {"role", "email"}),
    ({"role": "manager", "department_id": None}, {"department_id"}),
    ({"role": "sales_head", "department_id": None}, {"department_id"}),
    ({"role": "manager", "department_id": str(uuid.uuid4())}, {"department_id"}),
    ({"department_id": "not-a-uuid"}, {"department_id"}),
    ({"username": "Has Spaces"}, {"username"}),
    ({"extension": "12a"}, {"extension"}),
    ({"password": "short"}, {"password"}),
    ({"full_name": None}, {"full_name"}),
    ({"regions": ["RU-MOW"]}, {"regions"}),  # dump-only: a user's regions are its department's
])
def test_invalid_user_is_refused_with_the_field_names(directory, sql, data, fields):
    user = {"username": "valid.name", "full_name": "Valid Name", "role": "director", **data}

    with pytest.raises(ValidationFailed) as caught:
        directory.call("create_user", user)

    assert set(caught.value.fields) == fields
    assert sql.count("users") == 0
    assert sql.count("outbox") == 0


@pytest.mark.parametrize(("data", "fields"), [
    ({"name": "Юг", "regions": ["RU-KDA", "RU-XXX"]}, {"regions"}),
    ({"name": "Ю", "regions": []}, {"name"}),
    ({"name": "Юг"}, {"regions"}),
    ({"name": "Юг", "regions": [], "head_user_id": "nobody"}, {"head_user_id"}),
])
def test_invalid_department_is_refused_with_the_field_names(directory, sql, data, fields):
    with pytest.raises(ValidationFailed) as caught:
        directory.call("create_department", data)

    assert set(caught.value.fields) == fields
    assert sql.count("departments") == 0
    assert sql.count("outbox") == 0


def test_unknown_region_names_the_code(directory):
    with pytest.raises(ValidationFailed) as caught:
        directory.department(regions=["RU-MOW", "RU-ZZZ"])

    assert any("RU-ZZZ" in reason for reason in caught.value.fields["regions"])


def test_a_new_region_can_be_used_once_created(directory):
    region = directory.call("create_region", {"code": "RU-KGD", "name": "Калининградская область"})
    assert region == {"code": "RU-KGD", "name": "Калининградская область"}

    dept = directory.department("Калининград", regions=["RU-KGD"])
    assert dept["regions"] == ["RU-KGD"]
    with pytest.raises(Conflict):
        directory.call("create_region", {"code": "RU-KGD", "name": "Ещё раз"})


# -- changing -------------------------------------------------------------------------------------
def test_changing_department_regions_re_announces_its_members(directory, sql):
    north = directory.department("Север", regions=["RU-SPE"])
    south = directory.department("Юг", regions=["RU-KDA"])
    seller = directory.user("seller", role="manager", department_id=north["id"])
    head = directory.user("head", role="sales_head", department_id=north["id"], active=False)
    other = directory.user("other", role="manager", department_id=south["id"])
    before = len(sql.outbox())

    changed = directory.call("update_department", north["id"],
                             {"regions": ["RU-SPE", "RU-LEN"]})

    assert changed["regions"] == ["RU-SPE", "RU-LEN"]
    assert sql.scalar("SELECT regions FROM departments WHERE id = :id",
                      id=north["id"]) == ["RU-SPE", "RU-LEN"]
    new = sql.outbox()[before:]
    assert [row["type"] for row in new] == ["department_changed", "user_changed", "user_changed"]
    assert new[0]["envelope"]["payload"]["regions"] == ["RU-SPE", "RU-LEN"]
    announced = {row["envelope"]["payload"]["user_id"]: row["envelope"]["payload"]
                 for row in new[1:]}
    assert set(announced) == {seller["id"], head["id"]}
    assert other["id"] not in announced
    for payload in announced.values():
        assert payload["regions"] == ["RU-SPE", "RU-LEN"]
        assert payload["department_id"] == north["id"]
    assert announced[head["id"]]["active"] is False
    for row in new:
        contract_payload(row)
    # ...and the members' identities now carry the new regions.
    assert directory.call("get_user", seller["id"])["regions"] == ["RU-SPE", "RU-LEN"]


def test_renaming_a_department_does_not_re_announce_members(directory, sql):
    dept = directory.department("Центр", regions=["RU-MOW"])
    directory.user("member", department_id=dept["id"])
    before = len(sql.outbox())

    changed = directory.call("update_department", dept["id"], {"name": "Центр-2"})

    assert changed["name"] == "Центр-2" and changed["regions"] == ["RU-MOW"]
    assert [row["type"] for row in sql.outbox()[before:]] == ["department_changed"]


def test_update_department_validates(directory, sql):
    dept = directory.department("Центр", regions=["RU-MOW"])
    directory.department("Запад", regions=[])

    with pytest.raises(ValidationFailed) as caught:
        directory.call("update_department", dept["id"], {"regions": ["RU-NOPE"]})
    assert set(caught.value.fields) == {"regions"}
    with pytest.raises(Conflict) as caught:
        directory.call("update_department", dept["id"], {"name": "Запад"})
    assert set(caught.value.fields) == {"name"}
    with pytest.raises(NotFound):
        directory.call("update_department", str(uuid.uuid4()), {"name": "Нигде"})

    assert sql.scalar("SELECT name FROM departments WHERE id = :id", id=dept["id"]) == "Центр"
    assert sql.count("outbox") == 2


def test_moving_a_user_announces_the_new_regions(directory, sql):
    north = directory.department("Север", regions=["RU-SPE"])
    south = directory.department("Юг", regions=["RU-KDA", "RU-ROS"])
    user = directory.user("mover", department_id=north["id"])

    moved = directory.call("update_user", user["id"], {"department_id": south["id"],
                                                        "extension": "300"})

    assert moved["department_id"] == south["id"]
    assert moved["regions"] == ["RU-KDA", "RU-ROS"]
    payload = sql.payloads("user_changed")[-1]
    assert payload["department_id"] == south["id"]
    assert payload["regions"] == ["RU-KDA", "RU-ROS"]
    assert payload["extension"] == "300"


def test_update_user_keeps_role_placement(directory, sql):
    dept = directory.department(regions=["RU-MOW"])
    user = directory.user("placed", department_id=dept["id"])
    before = len(sql.outbox())

    with pytest.raises(ValidationFailed) as caught:
        directory.call("update_user", user["id"], {"department_id": None})

    assert set(caught.value.fields) == {"department_id"}
    assert sql.scalar("SELECT department_id FROM users") == uuid.UUID(dept["id"])
    assert len(sql.outbox()) == before
    # A director needs no department.
    promoted = directory.call("update_user", user["id"], {"role": "director",
                                                          "department_id": None})
    assert promoted["role"] == "director" and promoted["regions"] == []


def test_admin_identity_shape_is_enough_to_call(directory):
    # The least the gateway puts into the context: id, role, username.
    assert set(ADMIN) == {"user_id", "role", "username"}
    assert directory.call("list_users") == []
