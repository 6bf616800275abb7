"""Pure rules of the consent store: person keys, purposes, times, the current state."""

from datetime import UTC, datetime, timedelta

import pytest

from crm_platform.errors import ValidationFailed
from services.clients.domain import consents as rules

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def test_person_keys_are_normalised():
    person = rules.person_of({"email": "  Ivan@Example.RU ", "phone": "8 (916) 123-45-67"})
    assert person == rules.Person("ivan@example.ru", "+79161234567")


def test_a_person_needs_an_email_or_a_phone():
    with pytest.raises(ValidationFailed) as exc:
        rules.person_of({})
    assert "email" in exc.value.fields


def test_bad_keys_are_named():
    with pytest.raises(ValidationFailed) as exc:
        rules.person_of({"email": "not-an-address", "phone": "12"})
    assert set(exc.value.fields) == {"email", "phone"}


@pytest.mark.parametrize("purpose", ["marketing", "", None])
def test_unknown_purposes_are_refused(purpose):
    with pytest.raises(ValidationFailed) as exc:
        rules.check_purpose(purpose)
    assert "purpose" in exc.value.fields


def test_given_at_defaults_to_now_and_refuses_naive_or_future_times():
    assert rules.check_given_at(None, NOW) == NOW
    assert rules.check_given_at("2026-11-27T08:00:00+00:00", NOW) == NOW - timedelta(hours=1)
    for bad in ("2026-11-27T08:00:00", "2026-11-28T08:00:00+00:00", "вчера"):
        with pytest.raises(ValidationFailed):
            rules.check_given_at(bad, NOW)


def test_state_is_granted_while_a_grant_is_open():
    grant = {"given_at": NOW, "withdrawn_at": None}
    withdrawn = {"given_at": NOW, "withdrawn_at": NOW}
    opt_out = {"given_at": None, "withdrawn_at": NOW}
    assert rules.status_of([grant]) is True
    assert rules.status_of([withdrawn]) is False
    assert rules.status_of([opt_out]) is False
    assert rules.status_of([withdrawn, grant]) is True
    assert rules.status_of([]) is False


def test_bulk_check_keeps_what_is_no_address_as_none():
    assert rules.normalise_emails(["A@B.ru", "nope"]) == {"A@B.ru": "a@b.ru", "nope": None}
