"""Clients created and changed in the CRM go to 1C as EnterpriseData counterparty messages: the
real clients service and the bridge over the real RabbitMQ and PostgreSQL, the exchange folder in
``tmp_path``, and for HTTP delivery a small receiver standing in for 1C."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from datetime import timedelta

import pytest
from kombu import Connection, Exchange
from nameko.testing.services import entrypoint_hook
from stdnum.ru import inn as stdnum_inn
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from crm_platform.clock import clock, utcnow
from crm_platform.contracts import make_envelope
from crm_platform.identity import IDENTITY_CONTEXT_KEY
from crm_platform.testing import SqlReader, wait_for
from services.clients.service import ClientsService
from services.clients.tests.integration.conftest import Clients, Org
from services.erp_bridge.domain.enterprisedata import parse_message
from services.erp_bridge.domain.objects import ContactPerson, Counterparty
from services.erp_bridge.outbound import OutboundToErp, phone_key, same_requisites
from services.erp_bridge.service import ErpBridgeService

from .. import ed_samples as ed

pytestmark = pytest.mark.integration

KPP = "665801001"
ERP = {"user_id": str(uuid.uuid4()), "role": "integration", "username": "erp.1c"}
ADMIN = {"user_id": str(uuid.uuid4()), "role": "admin", "username": "admin"}


def company_inn(prefix: str) -> str:
    """A valid 10-digit INN starting with the 9 digits given."""
    return prefix + stdnum_inn.calc_company_check_digit(prefix)


def client_data(inn, **extra) -> dict:
    return {"short_name": "ООО «Кровля-Урал»",
            "full_name": "Общество с ограниченной ответственностью «Кровля-Урал»",
            "legal_form": "ООО", "inn": inn, "kpp": KPP, "region": "RU-SVE",
            "phones": ["+7 343 222-33-44"], "emails": ["zakaz@krovlya-ural.ru"],
            "addresses": [{"kind": "legal", "text": "г. Екатеринбург, ул. Ленина, 1"},
                          {"kind": "actual", "text": "г. Екатеринбург, ул. Фронтовых бригад, 18"}],
            **extra}


SMIRNOV = {"full_name": "Смирнов Олег Петрович", "position": "Снабженец",
           "phones": ["+7 912 000-11-22"], "emails": ["smirnov@krovlya-ural.ru"]}


class Receiver:
    """1C's HTTP endpoint for our messages: keeps what was POSTed; ``fail`` requests get 503."""

    def __init__(self):
        self.posts: list[dict] = []
        self.fail = 0
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self, threaded=True,
                                   request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    def __call__(self, environ, start_response):
        request = Request(environ)
        with self._lock:
            failing = self.fail > 0
            self.fail -= 1 if failing else 0
            self.posts.append({"method": request.method, "body": request.get_data(),
                               "authorization": request.headers.get("Authorization", ""),
                               "disposition": request.headers.get("Content-Disposition", ""),
                               "status": 503 if failing else 200})
        response = Response("База 1С временно недоступна", status=503) if failing \
            else Response("", status=200)
        return response(environ, start_response)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/ut/hs/crm/exchange"

    def start(self):
        self._thread.start()

    def stop(self):
        self._server.shutdown()
        self._server.server_close()


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


class System:
    def __init__(self, clients: Clients, bridge, sql: SqlReader, folder):
        self.clients = clients
        self.org = clients.org
        self.bridge = bridge
        self.sql = sql
        self.folder = folder

    def start_clients(self):
        self.clients.container.start()

    def call(self, method, *args, identity=ERP, **kwargs):
        with entrypoint_hook(self.bridge, method,
                             context_data={IDENTITY_CONTEXT_KEY: identity}) as hook:
            return hook(*args, **kwargs)

    def from_1c(self, message_no, objects, received_no=None):
        data = ed.ed_message(message_no, objects, received_no=received_no)
        return self.call("receive_enterprise_data", base64.b64encode(data).decode())

    def create(self, data, contacts=()):
        return self.clients.create_client(data, contacts=list(contacts))["client"]

    def update(self, client_id, **changes):
        return self.clients.update_client(client_id, changes)

    @property
    def out(self):
        return self.folder / "out"

    def files(self) -> list[str]:
        if not self.out.exists():
            return []
        return sorted((p.name for p in self.out.iterdir()),
                      key=lambda name: int(name.rsplit("_", 1)[1].split(".")[0])
                      if name.endswith(".xml") else -1)

    def message(self, n):
        return parse_message((self.out / f"Message_CRM_UT_{n}.xml").read_bytes())

    def outbound(self):
        return self.sql.rows("SELECT message_no, client_id, counterparty_guid, delivered_at,"
                             " acked_at, attempts, last_error FROM outbound_messages"
                             " ORDER BY message_no")

    def wait_messages(self, count):
        wait_for(lambda: len(self.outbound()) == count
                 and all(r.delivered_at for r in self.outbound())
                 and len(self.files()) >= count, message=f"{count} messages to 1C")

    def handled(self, event_id, handler="send_updated_client_to_erp"):
        wait_for(lambda: self.sql.scalar(
            "SELECT count(*) FROM processed_events WHERE consumer = :c AND event_id = :e",
            c=f"erp_bridge.{handler}", e=event_id), message=f"{handler} to take the event")

    def handled_count(self, count, handler):
        """Wait until the outbound handler took ``count`` client events (all, even those it
        had nothing to send for)."""
        wait_for(lambda: self.sql.scalar(
            "SELECT count(*) FROM processed_events WHERE consumer = :c",
            c=f"erp_bridge.{handler}") == count, message=f"{count} events for {handler}")


@pytest.fixture
def make_system(container_factory, service_config, service_db, tmp_path):
    made = []

    def make(start_clients=True, **overrides) -> System:
        clients_db, bridge_db = service_db("clients"), service_db("erp_bridge")
        org = Org(clients_db)
        clients = container_factory(ClientsService, service_config(db_url=clients_db))
        config = {"ERP_EXCHANGE_DIR": str(tmp_path / "exchange"), "ERP_OUTBOUND_ENABLED": True,
                  "ERP_OUTBOUND_RETRY_SECONDS": 1, **overrides}
        bridge = container_factory(ErpBridgeService, service_config(
            db_url=bridge_db, **{k: v for k, v in config.items() if v is not None}))
        bridge.start()
        if start_clients:
            clients.start()
        sql = SqlReader(bridge_db)
        made.append((org, sql))
        return System(Clients(clients, org), bridge, sql, tmp_path / "exchange")

    yield make
    for org, sql in made:
        sql.dispose()
        org.engine.dispose()


def publish_client_event(system: System, event_type: str, payload: dict) -> str:
    envelope = make_envelope("clients", event_type, payload)
    with Connection(system.bridge.config["AMQP_URI"]) as conn:
        conn.Producer().publish(json.dumps(envelope), exchange=Exchange(
            "clients.events", "topic", durable=True), routing_key=event_type,
            content_type="application/json", declare=[], delivery_mode=2)
    return envelope["event_id"]


def test_a_crm_client_goes_to_1c_once_per_change_under_one_guid(make_system):
    system = make_system()
    inn = company_inn("665812345")
    card = system.create(client_data(inn), contacts=[SMIRNOV])
    system.wait_messages(1)
    assert system.files() == ["Message_CRM_UT_1.xml"]
    message = system.message(1)
    header = message.header
    assert (header.sender, header.receiver, header.message_no, header.received_no) == \
        ("CRM", "UT", 1, 0)
    cp, person = message.objects
    assert isinstance(cp, Counterparty) and isinstance(person, ContactPerson)
    assert (cp.name, cp.full_name, cp.inn, cp.kpp, cp.legal_kind) == (
        "ООО «Кровля-Урал»", "Общество с ограниченной ответственностью «Кровля-Урал»", inn, KPP,
        "ЮридическоеЛицо")
    assert [(c.kind, c.value) for c in cp.contacts] == [
        ("phone", "+73432223344"), ("email", "zakaz@krovlya-ural.ru"),
        ("address", "г. Екатеринбург, ул. Фронтовых бригад, 18")]
    assert (person.owner_guid, person.full_name, person.position) == (
        cp.guid, "Смирнов Олег Петрович", "Снабженец")
    assert [(c.kind, c.value) for c in person.contacts] == [
        ("phone", "+79120001122"), ("email", "smirnov@krovlya-ural.ru")]
    assert str(person.guid) == card["contacts"][0]["id"]          # the CRM contact's own id
    link = system.sql.rows("SELECT client_id, counterparty_guid, source FROM client_links")
    assert [(str(r.client_id), r.counterparty_guid, r.source) for r in link] == [
        (card["id"], cp.guid, "chosen")]
    first = system.outbound()[0]
    assert (str(first.client_id), first.counterparty_guid, first.attempts, first.acked_at) == (
        card["id"], cp.guid, 1, None)

    # A new phone: message 2, the same counterparty.
    system.update(card["id"], phones=["+7 343 222-33-44", "+7 343 222-33-55"])
    system.wait_messages(2)
    second = system.message(2)
    assert second.objects[0].guid == cp.guid
    assert [c.value for c in second.objects[0].contacts if c.kind == "phone"] == [
        "+73432223344", "+73432223355"]
    assert second.objects[1].guid == person.guid

    # Nothing 1C keeps changed: nothing is sent. The same card announced again (a redelivered
    # or repeated event) is the content already sent: nothing either.
    system.update(card["id"], industry="Кровельные материалы")
    again = publish_client_event(system, "client_updated", {
        "client_id": card["id"], "short_name": card["short_name"], "inn": inn, "kpp": KPP,
        "status": card["status"], "changed_fields": ["phones"]})
    system.handled(again)
    # The ERP link alone is not a change for 1C either.
    system.update(card["id"], erp_counterparty_guid=str(cp.guid))
    # A real change after them all is message 3: nothing came in between.
    system.update(card["id"], emails=["office@krovlya-ural.ru"])
    system.wait_messages(3)
    assert system.files() == [f"Message_CRM_UT_{n}.xml" for n in (1, 2, 3)]
    third = system.message(3)
    assert third.objects[0].guid == cp.guid
    assert [c.value for c in third.objects[0].contacts if c.kind == "email"] == [
        "office@krovlya-ural.ru"]
    assert system.sql.count("client_links") == 1


def test_a_client_matching_a_1c_counterparty_by_inn_kpp_gets_its_guid(make_system):
    # The counterparty came from 1C while the clients service did not take it (not started):
    # the bridge knows it, unlinked.
    system = make_system(start_clients=False)
    inn = company_inn("665898765")
    cp_guid, person_guid = ed.new_guid(), ed.new_guid()
    system.from_1c(1, [
        ed.counterparty_xml(cp_guid, "ООО «Кровля-Урал»", inn, KPP,
                            phones=["+7 (343) 222-33-44"], emails=["zakaz@krovlya-ural.ru"]),
        ed.contact_person_xml(person_guid, "Смирнов Олег Петрович", cp_guid,
                              "ООО «Кровля-Урал»", inn, KPP, phones=["89120001122"])])
    wait_for(lambda: system.sql.scalar(
        "SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0,
        message="the bridge's events to be published")
    system.start_clients()
    assert system.sql.scalar("SELECT client_id FROM counterparties") is None
    # The CRM has the client with another phone and the same person: 1C gets it under the GUID
    # it already has, the person too.
    card = system.create(client_data(inn, phones=["+7 343 222-99-00"]), contacts=[SMIRNOV])
    system.wait_messages(1)
    cp, person = system.message(1).objects
    assert str(cp.guid) == cp_guid and str(person.guid) == person_guid
    assert system.message(1).header.received_no == 1            # what we applied from UT
    assert str(system.sql.scalar("SELECT client_id FROM counterparties")) == card["id"]
    link = system.sql.rows("SELECT counterparty_guid, source FROM client_links")
    assert [(str(r.counterparty_guid), r.source) for r in link] == [(cp_guid, "inn_kpp")]


def test_1c_own_data_is_not_echoed_back(make_system):
    system = make_system()
    inn = company_inn("665811111")
    cp_guid = ed.new_guid()
    # A counterparty from 1C: the clients service makes a client of it (client_created).
    system.from_1c(1, [
        ed.counterparty_xml(cp_guid, "ООО «Кровля-Урал»", inn, KPP,
                            phones=["+7 (343) 222-33-44"], emails=["Zakaz@Krovlya-Ural.ru"],
                            full_name="Общество с ограниченной ответственностью «Кровля-Урал»"),
        ed.contact_person_xml(ed.new_guid(), "Смирнов Олег Петрович", cp_guid,
                              "ООО «Кровля-Урал»", inn, KPP, phones=["89120001122"])])
    client_id = wait_for(lambda: system.org.scalar("SELECT id FROM clients WHERE inn = :i",
                                                   i=inn), message="the client made from 1C")
    system.handled_count(1, "send_created_client_to_erp")
    # 1C already holds all its requisites: nothing goes back; the counterparty is linked.
    assert str(system.sql.scalar("SELECT client_id FROM counterparties")) == str(client_id)
    assert system.outbound() == [] and system.files() == []
    # A change made in the CRM does go, under 1C's GUID.
    system.clients.call("update_client", str(client_id), {"phones": ["+7 343 222-33-45"]},
                        as_user="director")
    system.wait_messages(1)
    assert str(system.message(1).objects[0].guid) == cp_guid


def test_acknowledgements_links_and_resending(make_system):
    system = make_system()
    start = utcnow()
    clock.travel_to(start)
    # A sole trader without INN: 1C can only find it by the GUID we chose.
    card = system.create({"short_name": "Кровельщик Иван Петрович",
                          "phones": ["+7 912 333-44-55"]})
    system.wait_messages(1)
    guid = system.message(1).objects[0].guid
    system.update(card["id"], phones=["+7 912 333-44-66"])
    system.wait_messages(2)
    system.update(card["id"], emails=["ivan@krovelshik.ru"])
    system.wait_messages(3)
    assert {m.counterparty_guid for m in system.outbound()} == {guid}

    # 1C applied our messages and sends the counterparty back (its message 1), acknowledging
    # 1 and 2. The clients service links the card to it (client_updated): nothing to send.
    receipt = system.from_1c(1, [ed.counterparty_xml(
        str(guid), "Кровельщик Иван Петрович", None, None, phones=["+7 912 333-44-66"],
        emails=["ivan@krovelshik.ru"], legal_kind="ФизическоеЛицо")], received_no=2)
    assert receipt["outcome"] == "applied"
    wait_for(lambda: system.org.scalar("SELECT erp_counterparty_guid FROM clients"),
             message="the card to be linked to 1C")
    system.handled_count(3, "send_updated_client_to_erp")
    assert len(system.outbound()) == 3
    assert [m.acked_at is not None for m in system.outbound()] == [True, True, False]
    assert str(system.sql.scalar("SELECT client_id FROM counterparties")) == card["id"]
    upserted = system.sql.rows("SELECT envelope FROM outbox"
                               " WHERE type = 'erp_counterparty_upserted'")
    assert [r.envelope["payload"]["client_id"] for r in upserted] == [card["id"]]
    status = system.call("outbound_status", identity=ADMIN)
    assert (status["last_message_no"], status["acked_no"]) == (3, 2)
    assert [m["message_no"] for m in status["unacked"]] == [3] and status["pending"] == []

    # The next message acknowledges 1C's message 1.
    system.update(card["id"], phones=["+7 912 333-44-77"])
    system.wait_messages(4)
    assert system.message(4).header.received_no == 1

    # Nothing is acknowledged for half an hour: 3 and 4 go again, in order; 1 and 2 do not.
    for name in system.files():
        (system.out / name).unlink()
    clock.travel_to(start + timedelta(minutes=31))
    wait_for(lambda: system.files() == ["Message_CRM_UT_3.xml", "Message_CRM_UT_4.xml"],
             timeout=20, message="the unacknowledged messages to be re-sent")
    assert [m.attempts for m in system.outbound()] == [1, 1, 2, 2]
    assert system.message(3).header.message_no == 3                # the same message again

    # An acknowledgement in a repeated message from 1C counts as well; the admin resend sends
    # nothing then.
    system.from_1c(1, [], received_no=4)
    assert all(m.acked_at for m in system.outbound())
    assert system.call("resend_outbound", identity=ADMIN)["delivered"] == []


def test_http_delivery_records_a_failure_and_succeeds_on_retry(make_system):
    receiver = Receiver()
    receiver.start()
    try:
        receiver.fail = 1
        system = make_system(ERP_EXCHANGE_DIR=None, ERP_OUTBOUND_URL=receiver.url,
                             ERP_OUTBOUND_USERNAME="Обмен", ERP_OUTBOUND_PASSWORD="secret",
                             ERP_OUTBOUND_TIMEOUT=5, ERP_OUTBOUND_RETRY_SECONDS=3)
        card = system.create(client_data(company_inn("665822222")), contacts=[SMIRNOV])
        wait_for(lambda: system.outbound() and system.outbound()[0].attempts >= 1,
                 message="the first attempt")
        failed = system.call("outbound_status", identity=ADMIN)
        assert [m["message_no"] for m in failed["pending"]] == [1]
        assert failed["pending"][0]["last_error"].startswith("HTTP 503")
        wait_for(lambda: system.outbound()[0].delivered_at is not None, timeout=20,
                 message="the retry to deliver")
        row = system.outbound()[0]
        assert (row.attempts, row.last_error) == (2, None)
        assert [p["status"] for p in receiver.posts] == [503, 200]
        post = receiver.posts[1]
        assert base64.b64decode(post["authorization"].split()[1]).decode() == "Обмен:secret"
        assert 'filename="Message_CRM_UT_1.xml"' in post["disposition"]
        message = parse_message(post["body"])
        assert str(message.objects[0].guid) == str(row.counterparty_guid)
        assert message.objects[0].inn == card["inn"]
        assert system.files() == []                                # no folder configured
    finally:
        receiver.stop()


# -- the rules, without services --------------------------------------------------------------


class _Rules(OutboundToErp):
    def __init__(self, **config):
        self.config = config


def _row(no, delivered=None, attempted=None):
    return {"message_no": no, "delivered_at": delivered, "last_attempt_at": attempted}


def test_what_is_due_for_delivery():
    now = utcnow()
    rules = _Rules(ERP_OUTBOUND_RETRY_SECONDS=60, ERP_RESEND_MINUTES=30)
    fresh, old = now - timedelta(minutes=1), now - timedelta(minutes=31)

    def due(*rows, force=False):
        return [r["message_no"] for r in rules._due(list(rows), now, force)]

    assert due(_row(1, fresh), _row(2)) == [2]                     # the new one only
    assert due(_row(1, fresh), _row(2, fresh)) == []
    assert due(_row(1, old), _row(2, fresh), _row(3)) == [1, 2, 3]  # re-sent from the oldest
    # A failed message waiting for its retry holds back the later ones.
    assert due(_row(1, None, now - timedelta(seconds=10)), _row(2)) == []
    assert due(_row(1, None, now - timedelta(seconds=61)), _row(2)) == [1, 2]
    assert due(_row(1, fresh), _row(2, fresh), force=True) == [1, 2]


def test_requisites_compare_the_way_1c_and_the_crm_write_them():
    assert phone_key("+7 (343) 222-33-44") == phone_key("83432223344") == "+73432223344"
    card = {"short_name": "ООО  «Кровля»", "full_name": None, "inn": "6658123456",
            "kpp": KPP, "phones": ["+73432223344"], "emails": ["zakaz@krovlya.ru"]}
    kept = {"name": "ООО «Кровля»", "full_name": "Общество «Кровля»", "inn": "6658123456",
            "kpp": KPP, "contacts": [{"kind": "phone", "value": "+7 (343) 222-33-44"},
                                     {"kind": "email", "value": "Zakaz@Krovlya.ru"},
                                     {"kind": "address", "value": "Екатеринбург"}]}
    assert same_requisites(card, kept)
    assert not same_requisites({**card, "kpp": "665802001"}, kept)
    assert not same_requisites({**card, "phones": []}, kept)
    assert not same_requisites({**card, "full_name": "ООО «Кровля и фасад»"}, kept)
