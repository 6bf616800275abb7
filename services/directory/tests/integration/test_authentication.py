"""Local login and passwords through the directory's RPCs, against the real RabbitMQ and
PostgreSQL."""

from __future__ import annotations

import pytest

from crm_platform.errors import Forbidden, NotFound, Unauthenticated, ValidationFailed
from crm_platform.identity import Identity

from .support import identity

pytestmark = pytest.mark.integration

PASSWORD = "right-password-1"


@pytest.fixture
def department(directory):
    return directory.department("Поволжье", regions=["RU-NIZ", "RU-TA"])


@pytest.fixture
def manager(directory, department):
    return directory.user("manager.one", role="manager", department_id=department["id"],
                          full_name="Мария Менеджер", password=PASSWORD)


def authenticate(directory, username, password):
    # No identity: authenticate is how one gets one.
    return directory.call("authenticate", username, password, caller=None)


def test_right_password_returns_the_identity_with_the_department_regions(
        directory, department, manager):
    result = authenticate(directory, "manager.one", PASSWORD)

    assert result == {
        "user_id": manager["id"], "username": "manager.one", "full_name": "Мария Менеджер",
        "role": "manager", "department_id": department["id"], "regions": ["RU-NIZ", "RU-TA"],
    }
    # The gateway signs exactly this into the token and services read it back.
    assert Identity.from_context(result).regions == ("RU-NIZ", "RU-TA")


def test_username_is_matched_case_and_space_insensitively(directory, manager):
    assert authenticate(directory, "  Manager.One ", PASSWORD)["user_id"] == manager["id"]


def test_user_without_department_gets_no_regions(directory):
    directory.user("boss", role="director", password=PASSWORD)

    result = authenticate(directory, "boss", PASSWORD)

    assert result["department_id"] is None and result["regions"] == []


@pytest.mark.parametrize(("username", "password"), [
    ("manager.one", "wrong-password"),
    ("manager.one", ""),
    ("manager.one", None),
    ("nobody", PASSWORD),
    ("", PASSWORD),
])
def test_bad_credentials_are_unauthenticated(directory, manager, username, password):
    with pytest.raises(Unauthenticated) as caught:
        authenticate(directory, username, password)

    assert caught.value.code == "bad_credentials"


def test_user_without_local_password_cannot_log_in(directory):
    directory.user("sso.only", role="director")

    with pytest.raises(Unauthenticated):
        authenticate(directory, "sso.only", "")
    with pytest.raises(Unauthenticated):
        authenticate(directory, "sso.only", "not-a-real-password")


def test_inactive_user_cannot_log_in(directory, department):
    directory.user("dormant", department_id=department["id"], active=False, password=PASSWORD)

    with pytest.raises(Unauthenticated) as caught:
        authenticate(directory, "dormant", PASSWORD)

    assert caught.value.code == "bad_credentials"  # the same answer as a wrong password


def test_deactivated_user_cannot_log_in_any_more(directory, sql, manager):
    authenticate(directory, "manager.one", PASSWORD)

    directory.call("update_user", manager["id"], {"active": False})

    with pytest.raises(Unauthenticated):
        authenticate(directory, "manager.one", PASSWORD)
    assert sql.payloads("user_changed")[-1]["active"] is False


# -- identity for SSO -----------------------------------------------------------------------------
def test_identity_of_for_integration_accounts(directory, manager):
    result = directory.call("identity_of", "Manager.One", caller=identity("integration"))

    assert result["user_id"] == manager["id"]
    assert result["regions"] == ["RU-NIZ", "RU-TA"]
    with pytest.raises(Forbidden):
        directory.call("identity_of", "manager.one", caller=identity("manager"))
    with pytest.raises(Unauthenticated):
        directory.call("identity_of", "nobody", caller=identity("integration"))


# -- set_password ---------------------------------------------------------------------------------
def as_self(user: dict) -> dict:
    return identity(user["role"], user_id=user["id"], username=user["username"])


def test_a_user_sets_their_own_password(directory, manager):
    directory.call("set_password", manager["id"], "brand-new-password", caller=as_self(manager))

    assert authenticate(directory, "manager.one", "brand-new-password")["user_id"] == manager["id"]
    with pytest.raises(Unauthenticated):
        authenticate(directory, "manager.one", PASSWORD)


def test_an_admin_sets_anyones_password(directory, manager):
    directory.call("set_password", manager["id"], "set-by-the-admin")

    assert authenticate(directory, "manager.one", "set-by-the-admin")["user_id"] == manager["id"]


@pytest.mark.parametrize("role", ["manager", "sales_head", "director", "integration"])
def test_only_an_admin_sets_another_users_password(directory, department, manager, role):
    colleague = directory.user("colleague", role="sales_head", department_id=department["id"],
                               password="colleague-pass")
    caller = identity(role, user_id=colleague["id"]) if role == "sales_head" else identity(role)

    with pytest.raises(Forbidden):
        directory.call("set_password", manager["id"], "hijacked-password", caller=caller)

    assert authenticate(directory, "manager.one", PASSWORD)["user_id"] == manager["id"]
    with pytest.raises(Unauthenticated):
        authenticate(directory, "manager.one", "hijacked-password")


def test_set_password_needs_an_identity(directory, manager):
    with pytest.raises(Unauthenticated):
        directory.call("set_password", manager["id"], "anonymous-pass", caller=None)

    assert authenticate(directory, "manager.one", PASSWORD)


def test_short_password_is_refused(directory, manager):
    with pytest.raises(ValidationFailed) as caught:
        directory.call("set_password", manager["id"], "short", caller=as_self(manager))

    assert set(caught.value.fields) == {"password"}
    assert authenticate(directory, "manager.one", PASSWORD)


def test_password_of_an_unknown_user(directory):
    with pytest.raises(NotFound):
        directory.call("set_password", "00000000-0000-0000-0000-000000000000",
                       "long-enough-password")


def test_setting_a_password_announces_nothing(directory, sql, manager):
    before = len(sql.outbox())

    directory.call("set_password", manager["id"], "quiet-password", caller=as_self(manager))

    assert len(sql.outbox()) == before
