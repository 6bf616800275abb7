"""Web-form submissions end to end in the deals service with the real clients service: a known
company's lead goes to its owner, an unknown one is distributed, the consent is stored in clients
with its text version, time and IP, spam (honeypot, too fast, no token) is recorded but makes no
lead, bad fields are named, the per-IP token bucket answers 429 with a wait, and the confirmation
e-mail goes through the mail service's send RPC to a real SMTP server (aiosmtpd, with AUTH)."""

import json
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from crm_platform.clock import clock
from crm_platform.errors import Forbidden, NotFound, QuotaExceeded, ValidationFailed
from crm_platform.testing import ServiceCaller, SqlReader, free_port
from services.clients.service import ClientsService
from services.deals.domain.forms import sign
from services.deals.lead_forms import DEV_FORM_SECRET
from services.mail.service import MailService

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def crm(service_db, service_config, container_factory, svc, org):
    clients_db = service_db("clients")
    org.copy_to(clients_db)
    clients = container_factory(ClientsService, service_config(db_url=clients_db))
    clients.start()
    reader = SqlReader(clients_db)
    yield ServiceCaller(clients, org), reader
    reader.dispose()


@pytest.fixture
def form(svc, org, crm):
    clients, _ = crm
    text = clients.add_consent_text("processing", "2026-11", "Я согласен на обработку ПДн",
                                    as_user="admin")
    svc.set_distribution(str(org.departments["ural"]), {"enabled": True}, as_user="admin")
    return svc.create_form({"name": "Заявка с сайта", "department_id":
                            str(org.departments["ural"]),
                            "allowed_origins": ["https://roof.example"],
                            "consent_text_version_id": text["id"]}, as_user="admin")


def token(key, seconds_ago=20):
    return sign(DEV_FORM_SECRET, key, int(clock.now().timestamp()) - seconds_ago)


def submit(svc, form, data, ip="203.0.113.7", **meta):
    return svc.submit_form(form["key"], {"form_token": token(form["key"]), "consent": "on",
                                         **data},
                           {"ip": ip, "user_agent": "Mozilla/5.0 (test)",
                            "origin": "https://roof.example", **meta}, as_user=None)


def test_a_known_company_goes_to_its_owner_and_an_unknown_one_is_distributed(svc, org, crm,
                                                                              form):
    clients, clients_sql = crm
    clock.travel_to(NOW)
    clients.create_client({"short_name": "ООО «Кровля-Известная»", "inn": "7707083893",
                           "emails": ["zakupki@izvestnaya.ru"]}, as_user="m.ural.2")
    known = submit(svc, form, {"name": "Пётр", "company": "Кровля-Известная",
                               "email": "zakupki@izvestnaya.ru", "utm_source": "yandex",
                               "utm_campaign": "roof-2026"})
    deal = svc.get_deal(known["deal_id"], as_user="head.ural")
    assert deal["owner_id"] == org.id("m.ural.2") and deal["client_id"] is not None
    assert deal["source"] == "web" and deal["source_detail"]["utm_campaign"] == "roof-2026"
    assert deal["source_detail"]["form_key"] == form["key"]

    unknown = submit(svc, form, {"name": "Анна", "phone": "+7 912 000-11-22",
                                 "message": "Нужна металлочерепица на 300 м²"}, ip="198.51.100.2")
    lead = svc.get_deal(unknown["deal_id"], as_user="head.ural")
    assert lead["client_id"] is None
    assert lead["owner_id"] in (org.id("m.ural.1"), org.id("m.ural.2"))
    assert lead["assigned_at"] is not None

    history = clients.list_consents({"phone": "89120001122"}, as_user="admin")
    assert [(h["purpose"], h["text_version"], h["ip"], h["source"], h["given_at"])
            for h in history] == [("processing", "2026-11", "198.51.100.2", "web_form",
                                   NOW.isoformat())]
    assert history[0]["user_agent"] == "Mozilla/5.0 (test)"
    assert org.scalar("SELECT count(*) FROM form_submissions WHERE status = 'lead'") == 2


def test_spam_is_recorded_and_makes_no_lead(svc, org, crm, form):
    clients, clients_sql = crm
    honeypot = submit(svc, form, {"name": "Bot", "email": "bot@spam.example",
                                  "website": "http://casino.example"})
    fast = svc.submit_form(form["key"], {"form_token": token(form["key"], seconds_ago=0),
                                         "email": "fast@spam.example", "consent": "on"},
                           {"ip": "192.0.2.9"}, as_user=None)
    forged = svc.submit_form(form["key"], {"form_token": "1.abc", "email": "x@spam.example"},
                             {"ip": "192.0.2.10"}, as_user=None)
    assert {honeypot["status"], fast["status"], forged["status"]} == {"accepted"}
    assert "deal_id" not in honeypot
    reasons = [r["spam_reason"] for r in org.rows(
        "SELECT spam_reason FROM form_submissions WHERE status = 'spam' ORDER BY at, spam_reason")]
    assert sorted(reasons) == ["honeypot", "token", "too_fast"]
    assert org.count("deals") == 0 and clients_sql.count("consents") == 0


def test_bad_fields_origin_and_unknown_forms_are_refused(svc, org, crm, form):
    with pytest.raises(ValidationFailed) as exc:
        submit(svc, form, {"email": "not-an-address", "inn": "123", "consent": ""})
    assert set(exc.value.fields) == {"email", "inn", "consent"}
    with pytest.raises(Forbidden):
        submit(svc, form, {"email": "a@b.ru"}, origin="https://evil.example")
    with pytest.raises(NotFound):
        svc.submit_form("no-such-key", {}, {}, as_user=None)
    svc.update_form(form["id"], {"active": False}, as_user="admin")
    with pytest.raises(NotFound):
        submit(svc, form, {"email": "a@b.ru"})
    assert org.count("deals") == 0


def test_the_rate_limit_per_ip_answers_with_a_wait(svc, org, crm, form):
    clock.travel_to(NOW)
    for n in range(5):                       # FORM_IP_BURST 5 by default
        submit(svc, form, {"email": f"visitor{n}@example.ru"}, ip="203.0.113.50")
    with pytest.raises(QuotaExceeded) as exc:
        submit(svc, form, {"email": "visitor6@example.ru"}, ip="203.0.113.50")
    assert exc.value.code == "rate_limited" and exc.value.extra["retry_after"] == 12
    submit(svc, form, {"email": "other@example.ru"}, ip="203.0.113.51")    # another address
    clock.travel_to(NOW + timedelta(seconds=12))
    submit(svc, form, {"email": "visitor6@example.ru"}, ip="203.0.113.50")


def test_forms_are_managed_by_admins_and_the_heads_of_their_department(svc, org, form):
    with pytest.raises(Forbidden):
        svc.create_form({"name": "Чужая", "department_id": str(org.departments["volga"])},
                        as_user="head.ural")
    mine = svc.create_form({"name": "Своя"}, as_user="head.ural")
    assert mine["department_id"] == str(org.departments["ural"]) and len(mine["key"]) >= 20
    with pytest.raises(ValidationFailed) as exc:
        svc.create_form({"name": "", "confirmation_email": True,
                         "allowed_origins": ["roof.example"]}, as_user="admin")
    assert set(exc.value.fields) == {"name", "mailbox_id", "allowed_origins", "department_id"}
    assert [f["name"] for f in svc.list_forms(as_user="head.ural")] == ["Заявка с сайта", "Своя"]
    public = svc.public_form(form["key"], as_user=None)
    assert public["consent_required"] and public["consent_text"] == "Я согласен на обработку ПДн"


def test_the_lead_lands_when_mail_is_down_and_the_confirmation_is_retried(svc, org, crm):
    # No mail service runs here: every attempt fails, the lead is there all the same.
    form = svc.create_form({"name": "С подтверждением", "department_id":
                            str(org.departments["ural"]), "confirmation_email": True,
                            "mailbox_id": "6f1c3b7e-4a56-4c1e-9a47-3f0e2d1c9b11"},
                           as_user="admin")
    result = submit(svc, form, {"email": "buyer@example.ru"})
    assert result["deal_id"]
    assert org.scalar("SELECT confirmation FROM form_submissions") == "pending"
    for _attempt in range(4):
        assert svc.send_form_confirmations(as_user="admin") == {"sent": 0, "failed": 0,
                                                                "retry": 1}
    assert svc.send_form_confirmations(as_user="admin") == {"sent": 0, "failed": 1, "retry": 0}
    row = org.rows("SELECT confirmation, confirmation_attempts, confirmation_error "
                   "FROM form_submissions")[0]
    assert (row["confirmation"], row["confirmation_attempts"]) == ("failed", 5)
    assert row["confirmation_error"]
    assert svc.send_form_confirmations(as_user="admin") == {"sent": 0, "failed": 0, "retry": 0}


@pytest.fixture
def smtp_server():
    """The mail tests' SMTP sink (services/mail/tests/smtp_sink.py) in its own process: AUTH with
    one login, each accepted message written to a folder with its envelope."""
    folder = Path(tempfile.mkdtemp(prefix="roofcrm-smtp-"))
    port, login, password = free_port(), "forms@roofcrm.ru", uuid.uuid4().hex
    process = subprocess.Popen(
        [sys.executable, "-m", "services.mail.tests.smtp_sink", "--port", str(port),
         "--dir", str(folder), "--login", login, "--password", password],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert b"ready" in process.stdout.readline(), process.stderr.read()[-2000:]
        yield {"port": port, "login": login, "password": password, "folder": folder}
    finally:
        process.terminate()
        process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            stream.close()
        for item in folder.iterdir():
            item.unlink()
        folder.rmdir()


def test_the_confirmation_goes_through_the_mail_service_to_a_real_smtp_server(
        svc, org, crm, service_db, service_config, container_factory, smtp_server, tmp_path,
        monkeypatch):
    mail_db = service_db("mail")
    org.copy_to(mail_db)
    mail = container_factory(MailService, service_config(
        db_url=mail_db, MAIL_OWN_DOMAINS="roofcrm.ru", MAIL_SYNC_TICK_SECONDS=0,
        MAIL_ATTACHMENTS_DIR=str(tmp_path / "attachments")))
    mail.start()
    mail_sql = SqlReader(mail_db)
    monkeypatch.setenv("MAIL_SECRET_FORMS", smtp_server["password"])
    # The department's shared mailbox: the deals service sends as the form's department.
    mailbox = ServiceCaller(mail, org).create_mailbox({
        "address": "forms@roofcrm.ru", "kind": "shared",
        "department_id": str(org.departments["ural"]), "imap_host": "127.0.0.1",
        "imap_port": free_port(), "imap_tls": False, "login": smtp_server["login"],
        "secret_ref": "env:MAIL_SECRET_FORMS", "smtp_host": "127.0.0.1",
        "smtp_port": smtp_server["port"], "smtp_security": "none"}, as_user="admin")
    form = svc.create_form({"name": "Расчёт кровли", "department_id":
                            str(org.departments["ural"]), "confirmation_email": True,
                            "mailbox_id": mailbox["id"]}, as_user="admin")
    clock.travel_to(NOW)
    result = submit(svc, form, {"name": "Анна", "email": "Anna.Buyer@Example.ru"})
    assert result["deal_id"]

    assert svc.send_form_confirmations(as_user="admin") == {"sent": 1, "failed": 0, "retry": 0}, \
        org.scalar("SELECT confirmation_error FROM form_submissions")
    assert svc.send_form_confirmations(as_user="admin") == {"sent": 0, "failed": 0, "retry": 0}
    # Exactly one on the wire: the mail service's answer reached deals, so no retry resends it
    # (mail once could not read back what it had sent to an unknown address, and deals retried).
    [meta] = sorted(smtp_server["folder"].glob("*.json"))
    envelope = json.loads(meta.read_text())
    assert envelope["login"] == "forms@roofcrm.ru"
    assert envelope["mail_from"] == "forms@roofcrm.ru"
    assert [a.lower() for a in envelope["rcpt_tos"]] == ["anna.buyer@example.ru"]
    sent = message_from_bytes(meta.with_suffix(".eml").read_bytes(), policy=policy.default)
    assert sent["Subject"] == "Мы получили вашу заявку: Расчёт кровли"
    assert "менеджер свяжется с вами" in sent.get_body().get_content()
    assert org.scalar("SELECT confirmation FROM form_submissions") == "sent"
    # The mail service recorded it as an outbound message of that mailbox.
    row = mail_sql.rows("SELECT direction, subject, mailbox_id::text AS box FROM messages")
    assert row == [{"direction": "outbound", "subject": "Мы получили вашу заявку: Расчёт кровли",
                    "box": mailbox["id"]}]
    mail_sql.dispose()
