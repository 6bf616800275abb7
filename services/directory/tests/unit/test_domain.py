"""The rules of the directory, without broker or database."""

from __future__ import annotations

import uuid

import pytest

from crm_platform.errors import ValidationFailed
from services.directory import domain


# -- passwords ------------------------------------------------------------------------------------
def test_hash_is_not_the_password_and_salted():
    first = domain.hash_password("correct horse")
    second = domain.hash_password("correct horse")

    assert "correct horse" not in first
    assert first.startswith("$argon2")
    assert first != second  # a fresh salt every time


def test_right_password_matches():
    assert domain.password_matches(domain.hash_password("s3cret-pass"), "s3cret-pass") is True


def test_wrong_password_does_not_match():
    password_hash = domain.hash_password("s3cret-pass")

    assert domain.password_matches(password_hash, "s3cret-pasS") is False
    assert domain.password_matches(password_hash, "") is False


def test_no_hash_never_matches():
    # A user without a local password (SSO only), or no user at all.
    assert domain.password_matches(None, "anything") is False
    assert domain.password_matches("", "anything") is False


def test_no_hash_does_not_match_even_the_dummy_password():
    # The dummy hash is only there to spend the same time: its password opens nothing.
    assert domain.password_matches(None, "not-a-real-password") is False


def test_garbage_hash_does_not_match():
    assert domain.password_matches("not-an-argon2-hash", "anything") is False


# -- usernames ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("raw", "expected"), [
    ("ivanov", "ivanov"),
    ("  Ivanov ", "ivanov"),
    ("PETROV.A", "petrov.a"),
    ("", ""),
    (None, ""),
])
def test_normalise_username(raw, expected):
    assert domain.normalise_username(raw) == expected


# -- role placement -------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["manager", "sales_head"])
def test_department_roles_need_a_department(role):
    with pytest.raises(ValidationFailed) as caught:
        domain.check_role_placement(role, None)

    assert set(caught.value.fields) == {"department_id"}
    assert caught.value.fields["department_id"]
    assert caught.value.code == "validation_failed"


@pytest.mark.parametrize("role", ["manager", "sales_head"])
def test_department_roles_with_a_department_pass(role):
    assert domain.check_role_placement(role, uuid.uuid4()) is None


@pytest.mark.parametrize("role", ["director", "admin", "integration"])
@pytest.mark.parametrize("department_id", [None, uuid.UUID(int=1)])
def test_other_roles_need_no_department(role, department_id):
    assert domain.check_role_placement(role, department_id) is None


# -- regions --------------------------------------------------------------------------------------
KNOWN = {"RU-MOW", "RU-SPE", "RU-TA"}


def test_known_regions_pass():
    assert domain.check_regions(["RU-MOW", "RU-TA"], KNOWN) is None
    assert domain.check_regions([], KNOWN) is None


def test_unknown_regions_are_named():
    with pytest.raises(ValidationFailed) as caught:
        domain.check_regions(["RU-MOW", "RU-XXX", "RU-AAA", "RU-XXX"], KNOWN)

    error = caught.value
    assert set(error.fields) == {"regions"}
    reasons = error.fields["regions"]
    assert len(reasons) == 2  # each unknown code once, in order
    assert "RU-AAA" in reasons[0] and "RU-XXX" in reasons[1]
    assert "RU-AAA" in error.detail and "RU-XXX" in error.detail
    assert "RU-MOW" not in error.detail


# -- identity -------------------------------------------------------------------------------------
def make_user(**overrides) -> dict:
    user = {"id": uuid.uuid4(), "username": "ivanov", "full_name": "Иван Иванов",
            "role": "manager", "department_id": uuid.uuid4(), "email": "i@example.ru",
            "password_hash": "$argon2id$secret", "active": True}
    user.update(overrides)
    return user


def test_identity_of_a_department_member_carries_its_regions():
    user = make_user()
    department = {"id": user["department_id"], "name": "Москва", "regions": ["RU-MOW", "RU-MOS"]}

    identity = domain.identity_for(user, department)

    assert identity == {
        "user_id": str(user["id"]),
        "username": "ivanov",
        "full_name": "Иван Иванов",
        "role": "manager",
        "department_id": str(user["department_id"]),
        "regions": ["RU-MOW", "RU-MOS"],
    }
    assert isinstance(identity["regions"], list)


def test_identity_without_department():
    user = make_user(role="director", department_id=None)

    identity = domain.identity_for(user, None)

    assert identity["department_id"] is None
    assert identity["regions"] == []
    assert identity["role"] == "director"


def test_identity_reveals_no_secrets():
    identity = domain.identity_for(make_user(), None)

    assert set(identity) == {"user_id", "username", "full_name", "role", "department_id",
                             "regions"}


def test_identity_is_accepted_by_the_platform():
    from crm_platform.identity import Identity

    user = make_user()
    identity = domain.identity_for(user, {"regions": ["RU-TA"]})

    parsed = Identity.from_context(identity)
    assert parsed.user_id == str(user["id"])
    assert parsed.regions == ("RU-TA",)
