"""A campaign end to end with the real clients and mail services, RabbitMQ, PostgreSQL, a real SMTP
server (aiosmtpd) and Dovecot: only consenting addresses are mailed, at the set rate (the send
moments are measured), an unsubscribe through the signed link is recorded and the next campaign
leaves that person out, and a bounce (DSN) arriving in the campaign mailbox marks the recipient."""

from __future__ import annotations

import re
import uuid
from email import policy
from email.parser import BytesParser

import pytest

from crm_platform.errors import NotFound
from crm_platform.testing import publish_events, wait_for
from services.mail import campaign_mail
from services.mail.service import MailService

from .conftest import SmtpSink

pytestmark = pytest.mark.integration

RATE = 120                           # per minute: one message every 0.5 s
SECRET = "test-unsubscribe-secret-0123456789"
CONSENTING = ["info@stroymetall.ru", "petrov@krovlya.ru", "sidorova@krovlya.ru",
              "zakaz@krovlya.ru"]


def parse(raw: bytes):
    return BytesParser(policy=policy.default).parsebytes(raw)


def dsn_for(message_id: str, address: str) -> bytes:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.krovlya.ru>\r\n"
        "To: m.ural.1@roofcrm.ru\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Date: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <dsn-1@mx.krovlya.ru>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nThe mail system: user unknown\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.krovlya.ru\r\n\r\n"
        f"Final-Recipient: rfc822; {address}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {message_id}\r\nSubject: x\r\n\r\n--B--\r\n").encode()


@pytest.fixture
def smtp_sink():
    """A sink with a login of its own: Dovecot keeps a user's first password for the session."""
    sink = SmtpSink(login=f"campaigns-{uuid.uuid4().hex[:8]}")
    yield sink
    sink.stop()


@pytest.fixture
def crm(start_crm, smtp_sink, monkeypatch):
    crm = start_crm(clients_overrides={"CAMPAIGN_UNSUBSCRIBE_SECRET": SECRET,
                                       "CAMPAIGN_UNSUBSCRIBE_BASE_URL": "https://crm.test/u/"},
                    CAMPAIGN_SEND_RATE_PER_MINUTE=RATE, CAMPAIGN_SEND_TICK_SECONDS=0.05)
    monkeypatch.setenv("MAIL_SECRET_SMTP", smtp_sink.password)
    crm.mail.update_mailbox(crm.mailbox["id"], {
        "smtp_port": smtp_sink.port, "secret_ref": "env:MAIL_SECRET_SMTP",
        "login": smtp_sink.login}, as_user="admin")
    crm.dovecot.add_user(smtp_sink.login, smtp_sink.password)
    crm.imap_login = crm.mailbox["login"] = smtp_sink.login
    # a second client with three contacts
    crm.clients.create_client(
        {"short_name": "ООО «Кровля-Урал»", "inn": "7707083893",
         "emails": ["zakaz@krovlya.ru"]},
        contacts=[{"full_name": "Петров Пётр", "emails": ["petrov@krovlya.ru"]},
                  {"full_name": "Сидорова Анна", "emails": ["Sidorova@Krovlya.ru"]},
                  {"full_name": "Козлов Олег", "emails": ["kozlov@krovlya.ru"]}])
    crm.clients.add_consent_text("marketing_email", "1", "Согласен получать рассылку",
                                 as_user="admin")
    for email in CONSENTING + ["kozlov@krovlya.ru"]:
        crm.clients.record_consent({"email": email, "purpose": "marketing_email",
                                    "version": "1", "source": "web_form"})
    crm.clients.withdraw_consent({"email": "kozlov@krovlya.ru", "purpose": "marketing_email",
                                  "source": "email"})          # withdrawn: never mailed
    return crm


def new_campaign(crm, name: str) -> dict:
    return crm.clients.create_campaign({
        "name": name, "goal": "new_product", "channels": ["email"], "budget": "15000.00",
        "filter": {"field": "status", "op": "eq", "value": "potential"},
        "mailbox_id": crm.mailbox["id"],
        "email_subject": "Новинка для {{ client_name }}",
        "email_body": "Здравствуйте, {{ contact_name or 'коллеги' }}!\nНовый профлист."},
        as_user="head.ural")


def recipients(crm, campaign_id) -> dict[str, str]:
    items = crm.clients.list_campaign_recipients(campaign_id, as_user="head.ural")["items"]
    return {i["email"]: i["status"] for i in items}


def test_campaign_sends_to_consenting_at_the_rate_unsubscribes_and_bounces(crm, smtp_sink):
    campaign_mail.SEND_TIMES.clear()
    first = new_campaign(crm, "Новый профлист")
    assert first["state"] == "draft"
    started = crm.clients.change_campaign_state(first["campaign_id"], "running",
                                                as_user="head.ural")
    assert started["state"] == "running"
    assert started["recipients"] == {"queued": 4, "skipped_no_consent": 2}
    assert recipients(crm, first["campaign_id"]) == {
        "info@stroymetall.ru": "queued", "ivanov@stroymetall.ru": "skipped_no_consent",
        "kozlov@krovlya.ru": "skipped_no_consent", "petrov@krovlya.ru": "queued",
        "sidorova@krovlya.ru": "queued", "zakaz@krovlya.ru": "queued"}

    wait_for(lambda: len(smtp_sink.received()) == 4, timeout=20, message="4 messages sent")
    received = smtp_sink.received()
    assert sorted(env["rcpt_tos"][0] for env, _ in received) == sorted(CONSENTING)
    # the pace: one per 60/RATE seconds, measured at the sending side
    times = campaign_mail.SEND_TIMES[-4:]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(gap >= 60 / RATE * 0.9 for gap in gaps), gaps
    assert times[-1] - times[0] < 3 * 60 / RATE + 1.0, gaps     # and not much slower

    by_rcpt = {env["rcpt_tos"][0]: parse(raw) for env, raw in received}
    petrov = by_rcpt["petrov@krovlya.ru"]
    assert petrov["Subject"] == "Новинка для ООО «Кровля-Урал»"
    assert petrov["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = re.fullmatch(r"<(https://crm\.test/u/([0-9a-f]{32}\.[\w-]+))>",
                        petrov["List-Unsubscribe"].strip())
    assert link, petrov["List-Unsubscribe"]
    body = petrov.get_body().get_content()
    assert "Здравствуйте, Петров Пётр!" in body and link.group(1) in body
    wait_for(lambda: set(recipients(crm, first["campaign_id"]).values())
             == {"sent", "skipped_no_consent"}, message="sent statuses back in clients")

    # unsubscribe through the signed link (no login), a forged one refused
    token = link.group(2)
    with pytest.raises(NotFound):
        crm.clients.call("campaign_unsubscribe", token[:-2] + "xx", as_user=None)
    assert crm.clients.call("campaign_unsubscribe", token, as_user=None) == {
        "email": "petrov@krovlya.ru", "unsubscribed": True}
    assert crm.clients.consent_status(["petrov@krovlya.ru"], "marketing_email") == {
        "petrov@krovlya.ru": False}
    assert recipients(crm, first["campaign_id"])["petrov@krovlya.ru"] == "unsubscribed"

    # a bounce of the message to sidorova arrives in the campaign mailbox
    sidorova_id = by_rcpt["sidorova@krovlya.ru"]["Message-ID"]
    crm.append("INBOX", dsn_for(sidorova_id, "sidorova@krovlya.ru"))
    assert crm.sync()["status"] == "ok"
    wait_for(lambda: recipients(crm, first["campaign_id"])["sidorova@krovlya.ru"] == "bounced",
             message="the bounce recorded in clients")
    assert crm.sql.scalar("SELECT status FROM campaign_sends WHERE email = :e",
                          e="sidorova@krovlya.ru") == "bounced"

    # the next campaign leaves the unsubscribed person out
    second = new_campaign(crm, "Новый профлист, волна 2")
    started = crm.clients.change_campaign_state(second["campaign_id"], "running",
                                                as_user="head.ural")
    assert started["recipients"] == {"queued": 3, "skipped_no_consent": 3}
    assert recipients(crm, second["campaign_id"])["petrov@krovlya.ru"] == "skipped_no_consent"
    wait_for(lambda: len(smtp_sink.received()) == 7, timeout=20, message="3 more sent")
    assert "petrov@krovlya.ru" not in [env["rcpt_tos"][0]
                                       for env, _ in smtp_sink.received()[4:]]


def test_two_replicas_keep_one_rate_and_send_each_message_once(start_crm, smtp_sink, monkeypatch,
                                                                container_factory,
                                                                service_config):
    """Two mail containers on one database draw from the same bucket: together they hold the
    rate, and every queued message goes out exactly once."""
    crm = start_crm(CAMPAIGN_SEND_RATE_PER_MINUTE=RATE, CAMPAIGN_SEND_TICK_SECONDS=0.05)
    monkeypatch.setenv("MAIL_SECRET_SMTP", smtp_sink.password)
    crm.mail.update_mailbox(crm.mailbox["id"], {
        "smtp_port": smtp_sink.port, "secret_ref": "env:MAIL_SECRET_SMTP",
        "login": smtp_sink.login}, as_user="admin")
    second = container_factory(MailService, crm.container.config)
    second.start()
    campaign_mail.SEND_TIMES.clear()
    campaign_id = uuid.uuid4()
    publish_events(crm.container.config["AMQP_URI"], [
        ("clients", "campaign_email_requested", {
            "campaign_id": campaign_id, "recipient_id": uuid.uuid4(),
            "mailbox_id": crm.mailbox["id"], "email": f"r{n}@example.org", "subject": "Тест",
            "body": "Текст", "unsubscribe_url": f"https://crm.test/u/{n}"}) for n in range(6)])
    wait_for(lambda: len(smtp_sink.received()) == 6, timeout=20, message="6 messages sent")
    wait_for(lambda: crm.sql.scalar(
        "SELECT count(*) FROM campaign_sends WHERE status = 'sent'") == 6, message="all sent")
    assert sorted(env["rcpt_tos"][0] for env, _ in smtp_sink.received()) == [
        f"r{n}@example.org" for n in range(6)]
    times = sorted(campaign_mail.SEND_TIMES)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(times) == 6 and all(gap >= 60 / RATE * 0.9 for gap in gaps), gaps
    sent_events = crm.sql.scalar("SELECT count(*) FROM outbox WHERE type = 'campaign_email_sent'")
    assert sent_events == 6
