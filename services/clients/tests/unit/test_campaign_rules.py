"""Campaign rules: validation, states, the sandboxed template, recipients and consent, the signed
unsubscribe token."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from crm_platform.errors import Conflict, ValidationFailed
from services.clients.domain.campaigns import (
    Recipient,
    check_campaign,
    check_ready_to_send,
    check_transition,
    recipients_from,
    render_email,
    sign_unsubscribe,
    split_by_consent,
    verify_unsubscribe,
)

SECRET = "0123456789abcdef-secret"


def test_a_valid_campaign_is_normalised():
    got = check_campaign({"name": " Весна ", "goal": "event", "channels": ["email", "calls",
                                                                          "email"],
                          "budget": "1500.50", "starts_at": "2026-12-01T09:00:00+03:00",
                          "ends_at": "2026-12-10T09:00:00+03:00"})
    assert got["name"] == "Весна" and got["channels"] == ["calls", "email"]
    assert got["budget"] == Decimal("1500.50")


def test_every_bad_field_is_named_at_once():
    with pytest.raises(ValidationFailed) as caught:
        check_campaign({"name": "", "goal": "spam", "channels": ["fax"], "budget": "-1",
                        "starts_at": "2026-12-01T09:00:00", "email_subject": "{{ x",
                        "mailbox_id": "nope"})
    assert set(caught.value.fields) == {"name", "goal", "channels", "budget", "starts_at",
                                        "email_subject", "mailbox_id"}
    with pytest.raises(ValidationFailed) as caught:
        check_campaign({"name": "x", "goal": "event", "budget": "1.001",
                        "starts_at": "2026-12-02T00:00:00+00:00",
                        "ends_at": "2026-12-01T00:00:00+00:00"})
    assert set(caught.value.fields) == {"budget", "ends_at"}


def test_states_move_only_forward():
    check_transition("draft", "scheduled")
    check_transition("scheduled", "running")
    check_transition("running", "finished")
    for current, target in [("finished", "running"), ("cancelled", "draft"),
                            ("running", "draft"), ("draft", "finished")]:
        with pytest.raises(Conflict):
            check_transition(current, target)


def test_an_email_campaign_needs_its_template_and_mailbox():
    with pytest.raises(ValidationFailed) as caught:
        check_ready_to_send({"channels": ["email"], "email_subject": "x", "email_body": None,
                             "mailbox_id": None})
    assert set(caught.value.fields) == {"email_body", "mailbox_id"}
    check_ready_to_send({"channels": ["calls"], "email_subject": None, "email_body": None,
                         "mailbox_id": None})


def test_the_template_is_sandboxed_and_the_body_ends_with_the_link():
    recipient = Recipient("a@b.ru", uuid.uuid4(), None, "ООО «Альфа»", None)
    subject, body = render_email({"name": "Осень", "email_subject": "Для {{ client_name }}\n!",
                                  "email_body": "{{ contact_name or 'Коллеги' }}, {{ campaign }}"},
                                 recipient, "https://crm/u/t")
    assert subject == "Для ООО «Альфа» !"
    assert body.startswith("Коллеги, Осень") and body.rstrip().endswith("https://crm/u/t")
    with pytest.raises(ValidationFailed):      # no reaching into Python from a template
        check_campaign({"name": "x", "goal": "event",
                        "email_body": "{{ ''.__class__.__mro__[1].__subclasses__() }}"})


def test_recipients_are_unique_by_lower_cased_address_and_need_consent():
    c1, c2, p1 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    got = recipients_from([
        {"client_id": c1, "short_name": "А", "emails": ["Info@A.ru", "bad"]},
        {"client_id": c2, "short_name": "Б", "emails": ["info@a.ru", "sale@b.ru"]},
        {"client_id": c2, "contact_id": p1, "full_name": "Пётр", "short_name": "Б",
         "emails": ["SALE@b.ru", "petr@b.ru"]}])
    assert [(r.email, r.client_id) for r in got] == [("info@a.ru", c1), ("sale@b.ru", c2),
                                                     ("petr@b.ru", c2)]
    assert got[2].contact_id == p1 and got[2].contact_name == "Пётр"
    send, skip = split_by_consent(got, {"info@a.ru": True, "sale@b.ru": False})
    assert [r.email for r in send] == ["info@a.ru"]
    assert [r.email for r in skip] == ["sale@b.ru", "petr@b.ru"]     # unknown is no consent


def test_the_unsubscribe_token_is_signed():
    rid = uuid.uuid4()
    token = sign_unsubscribe(SECRET, rid)
    assert verify_unsubscribe(SECRET, token) == rid
    assert verify_unsubscribe("another-secret-0123456", token) is None
    other = uuid.uuid4()
    assert verify_unsubscribe(SECRET, other.hex + token[32:]) is None
    for junk in ("", "x", "." * 200, None, token + "x"):
        assert verify_unsubscribe(SECRET, junk) is None
