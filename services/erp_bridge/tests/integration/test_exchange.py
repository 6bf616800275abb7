"""A realistic sale from 1C in EnterpriseData messages, through the bridge into the deals service
over the real RabbitMQ: the documents kept, the events emitted, the deal's stages and sums; then
everything replayed changes nothing; bad messages are quarantined whole; the exchange folder."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from decimal import Decimal

import pytest
from kombu import Connection, Exchange
from nameko.testing.services import entrypoint_hook

from crm_platform.contracts import make_envelope
from crm_platform.errors import ValidationFailed
from crm_platform.identity import IDENTITY_CONTEXT_KEY
from crm_platform.testing import SqlReader, wait_for
from services.deals.service import DealsService
from services.deals.tests.integration.conftest import Org as DealsOrg
from services.erp_bridge.service import ErpBridgeService

from .. import ed_samples as ed

pytestmark = pytest.mark.integration

INN, KPP = "6658123456", "665801001"
ERP = {"user_id": str(uuid.uuid4()), "role": "integration", "username": "erp.1c"}
ADMIN = {"user_id": str(uuid.uuid4()), "role": "admin", "username": "admin"}


class Bridge:
    def __init__(self, container):
        self.container = container

    def call(self, method, *args, identity=ERP, **kwargs):
        with entrypoint_hook(self.container, method,
                             context_data={IDENTITY_CONTEXT_KEY: identity}) as hook:
            return hook(*args, **kwargs)

    def send(self, data: bytes, filename=None):
        return self.call("receive_enterprise_data", base64.b64encode(data).decode(),
                         filename=filename)


def start_system(container_factory, service_config, service_db, rabbit_config, **bridge_config):
    deals_db, bridge_db = service_db("deals"), service_db("erp_bridge")
    org = DealsOrg(deals_db)
    deals = container_factory(DealsService, service_config(
        db_url=deals_db, REACTION_SCAN_SECONDS=0, EVENT_BATCH_MAX_WAIT_MS=20))
    bridge = container_factory(ErpBridgeService, service_config(db_url=bridge_db,
                                                                **bridge_config))
    deals.start()
    bridge.start()
    client_id = uuid.uuid4()
    envelope = make_envelope("clients", "client_created", {
        "client_id": client_id, "short_name": "ООО «Кровельный центр»", "inn": INN, "kpp": KPP,
        "status": "active", "owner_id": org.id("m.ural.1"),
        "department_id": org.departments["ural"], "region": "RU-SVE"})
    with Connection(rabbit_config["AMQP_URI"]) as conn:
        conn.Producer().publish(json.dumps(envelope), exchange=Exchange(
            "clients.events", "topic", durable=True), routing_key="client_created",
            content_type="application/json", declare=[], delivery_mode=2)
    bridge_sql = SqlReader(bridge_db)
    wait_for(lambda: bridge_sql.count("client_replica") == 1 and org.count("client_replica") == 1)
    return Bridge(bridge), org, bridge_sql, str(client_id)


@pytest.fixture
def system(container_factory, service_config, service_db, rabbit_config, tmp_path):
    bridge, org, bridge_sql, client_id = start_system(
        container_factory, service_config, service_db, rabbit_config,
        ERP_EXCHANGE_DIR=str(tmp_path / "exchange"))
    yield bridge, org, bridge_sql, client_id, tmp_path / "exchange"
    bridge_sql.dispose()
    org.engine.dispose()


def sale():
    """The documents of one sale, as messages 1..8 from UT."""
    cp, order, invoice, ship1, ship2, pay = (str(uuid.uuid4()) for _ in range(6))
    when = "2026-12-07T11:30:00"
    args = (cp, INN, KPP)
    lines = [ed.line_xml(1, str(uuid.uuid4()), "Профнастил С21 0,5 RAL 3005", "055", "400",
                         "550", "220000.00"),
             ed.line_xml(2, str(uuid.uuid4()), "Саморез кровельный 4,8×35", "796", "2000",
                         "10", "20000.00")]
    messages = [
        ed.ed_message(1, [ed.counterparty_xml(cp, "ООО «Кровельный центр»", INN, KPP,
                                              phones=["+7 (343) 222-33-44"],
                                              emails=["zakaz@krovcentr.ru"]),
                          ed.contact_person_xml(str(uuid.uuid4()), "Смирнов Олег Петрович", cp,
                                                "ООО «Кровельный центр»", INN, KPP,
                                                position="Снабженец", phones=["89120001122"])]),
        ed.ed_message(2, [ed.order_xml(order, "ЗК-101", when, "240000.00", *args, lines=lines)]),
        ed.ed_message(3, [ed.invoice_xml(invoice, "СЧ-55", when, "240000.00", *args, order)]),
        ed.ed_message(4, [ed.shipment_xml(ship1, "РТУ-7", when, "120000.00", *args, order)]),
        ed.ed_message(5, [ed.payment_xml(pay, "ПП-3", when, "240000.00", *args,
                                         rows=[(order, "240000.00")])]),
        # A newer version of the order: the sum grows.
        ed.ed_message(6, [ed.order_xml(order, "ЗК-101", when, "250000.00", *args, lines=lines)]),
        ed.ed_message(7, [ed.shipment_xml(ship2, "РТУ-8", when, "130000.00", *args, order)]),
        # The first shipment is un-posted, the invoice marked for deletion, and an object
        # never seen is deleted.
        ed.ed_message(8, [ed.shipment_xml(ship1, "РТУ-7", when, "120000.00", *args, order,
                                          posted=False),
                          ed.invoice_xml(invoice, "СЧ-55", when, "240000.00", *args, order,
                                         deletion_mark=True),
                          ed.deletion_xml("ДокументСсылка.РеализацияТоваровУслуг",
                                          str(uuid.uuid4()))]),
    ]
    return messages, {"order": order, "invoice": invoice, "ship1": ship1, "ship2": ship2,
                      "pay": pay, "cp": cp}


def deal_state(org, client_id):
    return org.rows("SELECT stage, payment_status, ordered_amount, invoiced_amount, paid_amount,"
                    " shipped_amount FROM deals WHERE client_id = :c", c=client_id)


def events_of(bridge_sql):
    return [(r.type, r.envelope["payload"].get("document_guid")) for r in bridge_sql.rows(
        "SELECT type, envelope FROM outbox ORDER BY id")]


def test_a_sale_moves_the_deal_and_a_replay_changes_nothing(system):
    bridge, org, bridge_sql, client_id, _ = system
    messages, ids = sale()
    # After each message, the deal it must have made (stage, payment, ordered, shipped, paid).
    expected = [
        None,                                                       # the counterparty
        ("order_confirmed", "unpaid", "240000.00", "0.00", "0.00"),
        ("invoiced", "unpaid", "240000.00", "0.00", "0.00"),
        ("partially_shipped", "unpaid", "240000.00", "120000.00", "0.00"),
        ("partially_shipped", "paid", "240000.00", "120000.00", "240000.00"),
        ("partially_shipped", "partially_paid", "250000.00", "120000.00", "240000.00"),
        ("shipped", "partially_paid", "250000.00", "250000.00", "240000.00"),
        ("partially_shipped", "partially_paid", "250000.00", "130000.00", "240000.00"),
    ]

    def state():
        rows = deal_state(org, client_id)
        return [(r.stage, r.payment_status, str(r.ordered_amount), str(r.shipped_amount),
                 str(r.paid_amount)) for r in rows]

    for n, (message, want) in enumerate(zip(messages, expected, strict=True), start=1):
        receipt = bridge.send(message)
        assert (receipt["outcome"], receipt["received_no"]) == ("applied", n)
        if want is not None:
            wait_for(lambda want=want: state() == [want], message=f"the deal after message {n}")
    assert deal_state(org, client_id)[0].invoiced_amount == Decimal("0.00")   # deleted
    history = [(r.to_stage, r.cause) for r in org.rows(
        "SELECT to_stage, cause FROM stage_history ORDER BY id")]
    assert history == [("new", "erp"), ("order_confirmed", "erp"), ("invoiced", "erp"),
                       ("partially_shipped", "erp"), ("shipped", "erp"),
                       ("partially_shipped", "erp")]
    assert [e for e in events_of(bridge_sql) if e[0] != "erp_counterparty_upserted"] == [
        ("erp_order_posted", ids["order"]), ("erp_invoice_posted", ids["invoice"]),
        ("erp_shipment_posted", ids["ship1"]), ("erp_payment_posted", ids["pay"]),
        ("erp_order_changed", ids["order"]), ("erp_shipment_posted", ids["ship2"]),
        ("erp_shipment_unposted", ids["ship1"]), ("erp_invoice_deleted", ids["invoice"])]
    counterparty = bridge_sql.rows("SELECT client_id, inn FROM counterparties")
    assert [(str(c.client_id), c.inn) for c in counterparty] == [(client_id, INN)]
    upserted = [r.envelope["payload"] for r in bridge_sql.rows(
        "SELECT envelope FROM outbox WHERE type = 'erp_counterparty_upserted'")]
    assert upserted[0]["phones"] and upserted[0]["contacts"][0]["full_name"] == \
        "Смирнов Олег Петрович"

    # Everything again, as 1C would after losing our acknowledgement: nothing changes.
    before = (bridge_sql.count("outbox"), org.count("stage_history"), state())
    replay = [bridge.send(m) for m in messages]
    assert {r["outcome"] for r in replay} == {"repeat"}
    assert all(r["received_no"] == 8 for r in replay)
    assert (bridge_sql.count("outbox"), org.count("stage_history"), state()) == before


def test_a_late_older_version_is_ignored_and_the_same_content_emits_nothing(system):
    bridge, org, bridge_sql, _client_id, _ = system
    order, cp = str(uuid.uuid4()), str(uuid.uuid4())
    args = (cp, INN, KPP)
    bridge.send(ed.ed_message(10, [ed.order_xml(order, "ЗК-1", "2026-12-01T10:00:00",
                                                "500.00", *args)]))
    bridge.send(ed.ed_message(12, [ed.order_xml(order, "ЗК-1", "2026-12-01T10:00:00",
                                                "700.00", *args)]))
    # Message 11 arrives late from another path (a new number, an older state of the order).
    late = bridge.send(ed.ed_message(11, [ed.order_xml(order, "ЗК-1", "2026-12-01T10:00:00",
                                                       "600.00", *args)]))
    assert late["outcome"] == "repeat"       # below the last applied number
    same = bridge.send(ed.ed_message(13, [ed.order_xml(order, "ЗК-1", "2026-12-01T10:00:00",
                                                       "700.00", *args)]))
    assert same["outcome"] == "applied" and same["events"] == 0
    amounts = [r.envelope["payload"]["amount"] for r in bridge_sql.rows(
        "SELECT envelope FROM outbox WHERE type LIKE 'erp_order_%' ORDER BY id")]
    assert amounts == ["500.00", "700.00"]
    assert bridge_sql.scalar("SELECT revision FROM documents WHERE guid = :g", g=order) == 2


@pytest.mark.parametrize(("data", "reason_part"), [
    (b"<Message><msg:Header", "XML"),
    (ed.ed_message(5, [])[:-40], "XML"),
    (ed.ed_message(5, [], version="0.9"), "Неизвестный формат"),
    (ed.ed_message(5, [ed.order_xml(None, "ЗК-1", "2026-12-01T10:00:00", "1.00",
                                    str(uuid.uuid4()), INN, KPP)]), "Ссылк"),
    (b"PK\x03\x04 not really a zip", "zip"),
])
def test_bad_messages_are_refused_whole_and_quarantined(system, data, reason_part):
    bridge, _org, bridge_sql, _client_id, _ = system
    order = str(uuid.uuid4())
    good_then_bad = ed.ed_message(4, [ed.order_xml(order, "ЗК-9", "2026-12-01T10:00:00",
                                                   "10.00", str(uuid.uuid4()), INN, KPP)])
    bridge.send(good_then_bad)
    with pytest.raises(ValidationFailed) as refused:
        bridge.send(data, filename="bad.xml")
    assert refused.value.code == "erp_message_rejected"
    assert reason_part.lower() in refused.value.detail.lower()
    entry = refused.value.extra["quarantine_id"]
    listed = bridge.call("list_quarantine", identity=ADMIN)
    assert [q["id"] for q in listed] == [entry] and listed[0]["filename"] == "bad.xml"
    assert bridge_sql.count("documents") == 1                      # nothing half-applied
    status = bridge.call("exchange_status", identity=ADMIN)
    assert status["senders"][0]["received_no"] == 4                # the ack did not advance
    assert status["quarantine_open"] == 1
    assert [r.type for r in bridge_sql.rows("SELECT type FROM outbox ORDER BY id")][-1] == \
        "erp_message_rejected"
    # Later messages still flow; the entry can be dismissed.
    assert bridge.send(ed.ed_message(5, []))["outcome"] == "applied"
    assert bridge.call("dismiss_quarantine", entry, identity=ADMIN)["status"] == "dismissed"


def test_a_quarantined_message_can_be_redriven(system):
    bridge, _org, bridge_sql, _client_id, _ = system
    good = ed.ed_message(1, [ed.order_xml(str(uuid.uuid4()), "ЗК-2", "2026-12-01T10:00:00",
                                          "10.00", str(uuid.uuid4()), INN, KPP)])
    with bridge_sql.engine.begin() as conn:      # kept earlier, e.g. refused by an older version
        conn.exec_driver_sql(
            "INSERT INTO quarantine (received_at, transport, reason, payload) "
            "VALUES (now(), 'http', 'старая версия формата', %(p)s)", {"p": good})
    entry = bridge_sql.scalar("SELECT id FROM quarantine")
    receipt = bridge.call("redrive_quarantine", entry, identity=ADMIN)
    assert receipt["outcome"] == "applied" and receipt["by_type"] == {"erp_order_posted": 1}
    assert bridge_sql.scalar("SELECT status FROM quarantine WHERE id = :i", i=entry) == \
        "redriven"


def test_the_exchange_folder_takes_messages_in_order(system):
    bridge, _org, bridge_sql, _client_id, folder = system
    (folder / "in").mkdir(parents=True, exist_ok=True)   # the folder timer may have made it
    order = str(uuid.uuid4())
    (folder / "in" / "Message_UT_CRM_1.xml").write_bytes(ed.ed_message(1, [ed.order_xml(
        order, "ЗК-3", "2026-12-01T10:00:00", "10.00", str(uuid.uuid4()), INN, KPP)]))
    (folder / "in" / "Message_UT_CRM_2.zip").write_bytes(ed.zipped(ed.ed_message(2, [])))
    (folder / "in" / "broken.xml").write_bytes(b"<Message")
    wait_for(lambda: sum(1 for sub in ("done", "quarantine") if (folder / sub).exists()
                         for _ in (folder / sub).iterdir()) == 3, timeout=30,
             message="the three files to be taken and filed")
    assert not any((folder / "in").iterdir()) and not any((folder / "work").iterdir())
    assert sorted(p.name.split("-", 1)[1] for p in (folder / "done").iterdir()) == [
        "Message_UT_CRM_1.xml", "Message_UT_CRM_2.zip"]
    assert [p.name.split("-", 1)[1] for p in (folder / "quarantine").iterdir()] == ["broken.xml"]
    assert bridge_sql.count("documents") == 1
    assert bridge_sql.scalar("SELECT count(*) FROM quarantine WHERE transport = 'folder'") == 1
    assert isinstance(datetime.fromisoformat(
        bridge.call("exchange_status", identity=ADMIN)["recent"][0]["received_at"]), datetime)


def test_the_same_sale_read_over_odata_moves_the_deal_and_a_second_round_changes_nothing(
        container_factory, service_config, service_db, rabbit_config):
    from crm_platform.clock import clock
    from services.erp_bridge.domain import odata

    from ..fake_odata import FakeOData

    order_type = "StandardODATA.Document_ЗаказКлиента"
    fake = FakeOData()
    with fake.serving() as url:
        bridge, org, bridge_sql, client_id = start_system(
            container_factory, service_config, service_db, rabbit_config, ODATA_URL=url,
            ODATA_USERNAME=fake.username, ODATA_PASSWORD=fake.password)
        clock.travel_to(datetime(2026, 12, 7, 12, 0, tzinfo=odata.BUSINESS_TZ))
        cp = fake.put(odata.COUNTERPARTIES, {"Description": "Кровельный центр ООО",
                                             "ИНН": INN, "КПП": KPP, "ЮрФизЛицо": "ЮрЛицо"})
        common = {"Posted": True, "Контрагент_Key": cp["Ref_Key"]}
        order = fake.put(odata.ORDERS, {**common, "Number": "УТ-1",
                                        "Date": "2026-12-01T10:00:00", "СуммаДокумента": 1000})
        fake.put(odata.INVOICES, {**common, "Number": "СЧ-1", "Date": "2026-12-01T11:00:00",
                                  "СуммаДокумента": 1000, "ДокументОснование": order["Ref_Key"],
                                  "ДокументОснование_Type": order_type})
        fake.put(odata.SHIPMENTS, {**common, "Number": "РТУ-1", "Date": "2026-12-02T11:00:00",
                                   "СуммаДокумента": 1000, "ЗаказКлиента": order["Ref_Key"],
                                   "ЗаказКлиента_Type": order_type})
        fake.put(odata.PAYMENTS, {**common, "Number": "ПП-1", "Date": "2026-12-03T11:00:00",
                                  "ХозяйственнаяОперация": "ПоступлениеОплатыОтКлиента",
                                  "СуммаДокумента": 1000, "РасшифровкаПлатежа": [
                                      {"LineNumber": "1", "Сумма": 1000,
                                       "Заказ": order["Ref_Key"], "Заказ_Type": order_type}]})
        first = bridge.call("poll_odata_now", identity=ADMIN)
        assert first["by_type"] == {"erp_counterparty_upserted": 1, "erp_order_posted": 1,
                                    "erp_invoice_posted": 1, "erp_shipment_posted": 1,
                                    "erp_payment_posted": 1}
        wait_for(lambda: [r.stage for r in deal_state(org, client_id)] == ["closed_won"],
                 message="the deal won from OData documents")
        before = (bridge_sql.count("outbox"), org.count("stage_history"),
                  deal_state(org, client_id))
        clock.travel_to(datetime(2026, 12, 7, 13, 0, tzinfo=odata.BUSINESS_TZ))
        second = bridge.call("poll_odata_now", identity=ADMIN)
        assert second["events"] == 0
        assert (bridge_sql.count("outbox"), org.count("stage_history"),
                deal_state(org, client_id)) == before
        bridge_sql.dispose()
        org.engine.dispose()


def test_a_counterparty_carries_its_1c_manager_for_the_clients_service(system):
    """The manager responsible in 1C (the latest document's Ответственный) travels with the
    counterparty, so a client created from it gets the CRM manager of that name."""
    bridge, _org, bridge_sql, _client_id, _ = system
    cp = str(uuid.uuid4())
    bridge.send(ed.ed_message(1, [
        ed.counterparty_xml(cp, "ООО «Новый клиент»", "6658000009", "665801001"),
        ed.order_xml(str(uuid.uuid4()), "ЗК-5", "2026-12-01T10:00:00", "10.00", cp,
                     "6658000009", "665801001", responsible="Петров Пётр Петрович")]))
    upserted = [r.envelope["payload"] for r in bridge_sql.rows(
        "SELECT envelope FROM outbox WHERE type = 'erp_counterparty_upserted'")]
    assert [(p["counterparty_guid"], p["manager_name"]) for p in upserted] == [
        (cp, "Петров Пётр Петрович")]
