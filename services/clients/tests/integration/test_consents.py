"""The consent store: text versions, grants with version/time/IP, withdrawal, bulk status."""

import json

import pytest

from crm_platform.errors import Forbidden, ValidationFailed

pytestmark = pytest.mark.integration


@pytest.fixture
def text(svc):
    return svc.call("add_consent_text", "marketing_email", "2026-1",
                    "Согласен получать рассылки", as_user="admin")


def test_consent_is_stored_with_text_version_time_and_ip(svc, org, text):
    row = svc.call("record_consent", {
        "email": "Buyer@Krovlya.ru", "purpose": "marketing_email", "text_version_id": text["id"],
        "source": "web_form", "ip": "203.0.113.7", "user_agent": "Mozilla/5.0",
        "given_at": "2026-11-20T10:00:00+00:00"}, as_user="admin")
    assert row["email"] == "buyer@krovlya.ru" and row["granted"] is True
    assert row["text_version"] == "2026-1" and row["ip"] == "203.0.113.7"
    assert row["given_at"] == "2026-11-20T10:00:00+00:00"
    event = org.rows("SELECT envelope FROM outbox WHERE type = 'consent_changed'")[0]["envelope"]
    event = json.loads(event) if isinstance(event, str) else event
    assert event["payload"]["granted"] is True
    assert event["payload"]["email"] == "buyer@krovlya.ru"
    assert org.scalar("SELECT count(*) FROM audit_log WHERE action = 'consent_given'") == 1


def test_withdrawal_keeps_history_and_turns_the_status_off(svc, text):
    for _ in range(2):
        svc.call("record_consent", {"email": "a@b.ru", "purpose": "marketing_email",
                                    "version": "2026-1", "source": "manual"})
    assert svc.call("consent_status", ["A@B.ru", "c@d.ru", "junk"], "marketing_email") == {
        "a@b.ru": True, "c@d.ru": False}
    result = svc.call("withdraw_consent", {"email": "a@b.ru", "purpose": "marketing_email",
                                           "source": "unsubscribe", "reason": "надоело"})
    assert result["withdrawn"] == 2
    assert svc.call("consent_status", ["a@b.ru"], "marketing_email") == {"a@b.ru": False}
    history = svc.call("list_consents", {"email": "a@b.ru"})
    assert len(history) == 2
    assert all(h["withdrawal_source"] == "unsubscribe" and not h["granted"] for h in history)


def test_withdrawal_without_a_grant_is_kept_as_an_opt_out(svc):
    result = svc.call("withdraw_consent", {"phone": "+7 916 123-45-67",
                                           "purpose": "marketing_calls", "source": "call"})
    assert result["withdrawn"] == 0
    history = svc.call("list_consents", {"phone": "89161234567"})
    assert [(h["given_at"], h["withdrawal_source"]) for h in history] == [(None, "call")]


def test_bad_input_is_named_and_texts_are_for_admins(svc, text):
    with pytest.raises(ValidationFailed) as exc:
        svc.call("record_consent", {"email": "a@b.ru", "purpose": "processing",
                                    "text_version_id": text["id"], "source": "manual"})
    assert "text_version_id" in exc.value.fields      # a marketing text for a processing consent
    with pytest.raises(Forbidden):
        svc.call("add_consent_text", "processing", "1", "Текст")
    with pytest.raises(ValidationFailed) as exc:
        svc.call("add_consent_text", "marketing_email", "2026-1", "Другой", as_user="admin")
    assert "version" in exc.value.fields
