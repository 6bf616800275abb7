"""A person's data exported and erased across the services (clients, deals, mail, telephony: real
containers on the real RabbitMQ and PostgreSQL, mail sent through a real SMTP server), with the
legal holds kept: the company's requisites, the deal, the call's facts, the audit."""

from __future__ import annotations

import base64
import io
import uuid

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from crm_platform.clock import utcnow
from crm_platform.errors import Forbidden, ValidationFailed
from crm_platform.privacy import MARKER
from crm_platform.testing import (
    ReplicatedOrg,
    ServiceCaller,
    SqlReader,
    publish_events,
    wait_for,
)
from services.clients.service import ClientsService
from services.deals.service import DealsService
from services.mail.service import MailService
from services.mail.tests.integration.conftest import SmtpSink
from services.telephony.service import TelephonyService

pytestmark = pytest.mark.integration

EMAIL, PHONE = "petrov@krovlya.ru", "+79120000001"


@pytest.fixture
def smtp_sink():
    sink = SmtpSink()
    yield sink
    sink.stop()


@pytest.fixture
def crm(service_db, service_config, container_factory, rabbit_config, smtp_sink, monkeypatch):
    urls = {name: service_db(name) for name in ("clients", "deals", "mail", "telephony")}
    org = ReplicatedOrg(urls["clients"])
    for name in ("deals", "mail", "telephony"):
        org.copy_to(urls[name])
    services = {"clients": ClientsService, "deals": DealsService, "mail": MailService,
                "telephony": TelephonyService}
    extra = {"mail": {"MAIL_SYNC_TICK_SECONDS": 0, "MAIL_OWN_DOMAINS": "roofcrm.ru"}}
    callers = {}
    for name, cls in services.items():
        container = container_factory(cls, service_config(db_url=urls[name],
                                                          **extra.get(name, {})))
        container.start()
        callers[name] = ServiceCaller(container, org)
    sql = {name: SqlReader(url) for name, url in urls.items()}
    # the person came as a web lead first (deals), then became a contact of a client
    lead = callers["deals"].create_deal({"title": "Кровля дачи", "source": "manual", "lead": {
        "name": "Петров Пётр", "company": "ООО «Кровля»", "inn": "7707083893",
        "phone": "8 912 000-00-01", "email": "Petrov@Krovlya.ru"}})
    client = callers["clients"].create_client(
        {"short_name": "ООО «Кровля»", "inn": "7707083893", "kpp": "770701001",
         "emails": ["info@krovlya.ru", EMAIL], "phones": ["+73432000000"]},
        contacts=[{"full_name": "Петров Пётр", "position": "снабженец",
                   "phones": [PHONE], "emails": [EMAIL]}])["client"]
    callers["clients"].call("add_consent_text", "marketing_email", "1", "Согласен",
                            as_user="admin")
    callers["clients"].record_consent({"email": EMAIL, "purpose": "marketing_email",
                                       "version": "1", "source": "web_form", "ip": "10.0.0.9"})
    # a call with the person's number (as the PBX adapters store them)
    now = utcnow()
    with sa.create_engine(urls["telephony"]).begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO calls (call_id, pbx, key, direction, our_number, external_number, "
            "external_raw, started_at, ended_at, duration_seconds, talk_seconds, disposition, "
            "recording, created_at) VALUES (:id, 'asterisk', 'k1', 'inbound', '+73432000000', "
            ":phone, '89120000001', :now, :now, 60, 50, 'answered', 'rec/k1.wav', :now)"),
            {"id": uuid.uuid4(), "phone": PHONE, "now": now})
    # deals copied the number when the call was registered: a timeline entry on the lead's deal
    # and a call-back task to the unknown number
    publish_events(callers["deals"].container.config["AMQP_URI"], [(
        "telephony", "call_registered", {
            "call_id": uuid.uuid4(), "user_id": org.id("m.ural.1"), "direction": "inbound",
            "answered": False, "started_at": now, "duration_seconds": 20,
            "external_number": PHONE, "deal_id": lead["deal"]["id"]})])
    wait_for(lambda: sql["deals"].scalar(
        "SELECT count(*) FROM tasks WHERE external_number = :p", p=PHONE), message="call-back")
    # an e-mail to the person, sent from the CRM through a real SMTP server
    monkeypatch.setenv("MAIL_SECRET_PRIV", smtp_sink.password)
    callers["mail"].create_mailbox({
        "address": "m.ural.1@roofcrm.ru", "kind": "personal", "owner_id": org.id("m.ural.1"),
        "imap_host": "127.0.0.1", "imap_port": 1, "imap_tls": False, "login": smtp_sink.login,
        "secret_ref": "env:MAIL_SECRET_PRIV", "smtp_host": "127.0.0.1",
        "smtp_port": smtp_sink.port, "smtp_security": "none"}, as_user="admin")
    wait_for(lambda: sql["mail"].scalar("SELECT count(*) FROM address_book") >= 1,
             message="the client in mail's replica")
    callers["mail"].send_message({"to": [EMAIL], "subject": "КП по кровле",
                                  "body": "Пётр, добрый день! Цена 1000 ₽/м²."})
    yield callers, sql, lead, client
    for reader in sql.values():
        reader.dispose()
    org.dispose()


def test_export_then_erase_a_person_across_services(crm):
    callers, sql, lead, client = crm
    clients = callers["clients"]
    with pytest.raises(Forbidden):
        clients.call("privacy_request", {"kind": "export", "email": EMAIL}, as_user="m.ural.1")
    with pytest.raises(ValidationFailed) as caught:
        clients.call("privacy_request", {"kind": "export", "phone": "12"}, as_user="director")
    assert "phone" in caught.value.fields

    exported = clients.call("privacy_request", {"kind": "export", "email": EMAIL.upper(),
                                                "phone": "8 (912) 000-00-01",
                                                "format": "xlsx"}, as_user="director")
    assert exported["status"] == "done", exported["services"]
    data = exported["data"]
    assert [c["full_name"] for c in data["clients"]["sections"]["contacts"]] == ["Петров Пётр"]
    assert data["clients"]["sections"]["client_cards"][0]["values"] == [EMAIL]
    assert data["clients"]["sections"]["consents"][0]["ip"] == "10.0.0.9"
    assert data["clients"]["sections"]["access_audit"]            # the card's creation at least
    assert data["deals"]["sections"]["deals"][0]["lead"]["name"] == "Петров Пётр"
    assert data["deals"]["sections"]["timeline"][0]["data"]["external_number"] == PHONE
    assert data["deals"]["sections"]["tasks"][0]["title"] == f"Перезвонить: {PHONE}"
    assert [m["subject"] for m in data["mail"]["sections"]["messages"]] == ["КП по кровле"]
    assert data["telephony"]["sections"]["calls"][0]["number"] == PHONE
    book = load_workbook(io.BytesIO(base64.b64decode(exported["file"]["content_base64"])))
    assert {"clients.contacts", "deals.deals", "mail.messages", "telephony.calls"} <= set(
        book.sheetnames)

    erased = clients.call("privacy_request", {"kind": "erase", "contact_id": client[
        "contacts"][0]["id"], "reason": "заявление от 27.11"}, as_user="admin")
    assert erased["status"] == "done", erased["services"]
    assert erased["services"]["mail"]["erased"]["messages"] == 1
    assert erased["services"]["telephony"]["erased"]["calls"] == 1
    assert erased["services"]["deals"]["erased"]["deals"] == 1
    assert erased["services"]["deals"]["erased"]["timeline_entries"] == 1
    assert erased["services"]["deals"]["erased"]["tasks"] == 1

    # nothing of the person is left anywhere ...
    again = clients.call("privacy_request", {"kind": "export", "email": EMAIL, "phone": PHONE},
                         as_user="director")["data"]
    for service, answer in again.items():
        if service == "clients":
            assert not answer["sections"]["contacts"] and not answer["sections"]["consents"]
            assert not answer["sections"]["client_cards"]
        else:
            assert all(not rows for rows in answer["sections"].values()), (service, answer)
    c = sql["clients"]
    assert c.scalar("SELECT full_name FROM contacts") == MARKER
    assert c.scalar("SELECT count(*) FROM identifiers WHERE value IN (:e, :p)",
                    e=EMAIL, p=PHONE) == 0
    assert sql["mail"].scalar("SELECT text FROM messages") == MARKER
    assert sql["deals"].scalar("SELECT lead->>'name' FROM deals") == MARKER
    for table in ("timeline", "tasks"):          # no copy of the number is left in deals
        assert not sql["deals"].scalar(
            f"SELECT count(*) FROM {table} WHERE {table}::text LIKE '%79120000001%'")  # noqa: S608
    assert sql["deals"].scalar("SELECT title FROM tasks WHERE kind = 'callback'") == MARKER
    assert sql["telephony"].scalar("SELECT recording FROM calls") is None
    # ... and the legal holds stay: requisites, the company's other address, the deal, the call
    card = c.rows("SELECT inn, kpp, emails FROM clients")[0]
    assert (card["inn"], card["kpp"], list(card["emails"])) == (
        "7707083893", "770701001", ["info@krovlya.ru"])
    assert sql["deals"].scalar("SELECT lead->>'inn' FROM deals") == "7707083893"
    assert sql["telephony"].scalar("SELECT talk_seconds FROM calls") == 50
    assert c.scalar("SELECT count(*) FROM consents WHERE email = :m", m=MARKER) == 1
    # all of it audited and listed
    actions = [r["action"] for r in c.rows("SELECT action FROM audit_log ORDER BY id")]
    assert actions.count("privacy_export") == 2 and "privacy_erase" in actions
    listed = clients.call("list_privacy_requests", as_user="admin")
    assert [r["kind"] for r in listed] == ["export", "erase", "export"]
    assert listed[1]["person"].startswith("p***@krovlya.ru")
    assert listed[1]["reason"] == "заявление от 27.11"
