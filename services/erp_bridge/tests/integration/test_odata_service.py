"""The bridge polling a (fake) 1C OData interface: the same registry and events as
EnterpriseData — new, changed (a new DataVersion), unchanged (the same DataVersion: nothing),
deleted (404 on the keyed re-read), and an unreadable entity quarantined alone."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from nameko.testing.services import entrypoint_hook

from crm_platform.clock import clock
from crm_platform.identity import IDENTITY_CONTEXT_KEY
from crm_platform.testing import SqlReader
from services.erp_bridge.domain import odata
from services.erp_bridge.service import ErpBridgeService

from ..fake_odata import FakeOData

pytestmark = pytest.mark.integration

MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=MSK)
ADMIN = {"user_id": str(uuid.uuid4()), "role": "admin", "username": "admin"}
ORDER_TYPE = "StandardODATA.Document_ЗаказКлиента"


@pytest.fixture
def fake():
    server = FakeOData()
    with server.serving():
        yield server


@pytest.fixture
def bridge(container_factory, service_config, service_db, fake):
    url = service_db("erp_bridge")
    container = container_factory(ErpBridgeService, service_config(
        db_url=url, ODATA_URL=fake.url, ODATA_USERNAME=fake.username,
        ODATA_PASSWORD=fake.password, ODATA_POLL_SECONDS=3600))
    container.start()
    sql = SqlReader(url)
    yield container, sql
    sql.dispose()


def poll(container):
    with entrypoint_hook(container, "poll_odata_now",
                         context_data={IDENTITY_CONTEXT_KEY: ADMIN}) as hook:
        return hook()


def events(sql):
    return [(r.type, r.envelope["payload"].get("document_guid")) for r in sql.rows(
        "SELECT type, envelope FROM outbox WHERE type LIKE 'erp_%' ORDER BY id")]


def test_polling_applies_changes_once_and_sees_deletions(bridge, fake):
    container, sql = bridge
    clock.travel_to(NOW)
    cp = fake.put(odata.COUNTERPARTIES, {"Description": "Кровля-Профиль ООО", "ИНН": "7701234567",
                                         "КПП": "770101001", "ЮрФизЛицо": "ЮрЛицо"})
    order = fake.put(odata.ORDERS, {
        "Number": "УТ-000045", "Date": "2026-11-10T10:00:00", "Posted": True,
        "Контрагент_Key": cp["Ref_Key"], "СуммаДокумента": 1000})
    shipment = fake.put(odata.SHIPMENTS, {
        "Number": "РТУ-000031", "Date": "2026-11-11T09:15:00", "Posted": True,
        "Контрагент_Key": cp["Ref_Key"], "СуммаДокумента": 400,
        "ЗаказКлиента": order["Ref_Key"], "ЗаказКлиента_Type": ORDER_TYPE})
    fake.put(odata.ORDERS, {"Number": "УТ-000046", "Date": "2026-12-06T10:00:00",
                            "Posted": True, "СуммаДокумента": "не число"})
    first = poll(container)
    assert first["rejected"] == 1
    assert events(sql) == [("erp_counterparty_upserted", None),
                           ("erp_order_posted", order["Ref_Key"]),
                           ("erp_shipment_posted", shipment["Ref_Key"]),
                           ("erp_message_rejected", None)]
    assert sql.scalar("SELECT count(*) FROM quarantine WHERE transport = 'odata'") == 1

    # Nothing changed in 1C: a second round emits nothing. The documents are older than the
    # moving window now (it starts 7 days before the last round): they are re-read by key.
    clock.travel_to(NOW + timedelta(minutes=5))
    poll(container)
    assert len(events(sql)) == 4
    # The order is changed (a new DataVersion), the shipment deleted outright (404).
    fake.change(odata.ORDERS, order["Ref_Key"], СуммаДокумента=1200)
    fake.delete(odata.SHIPMENTS, shipment["Ref_Key"])
    clock.travel_to(NOW + timedelta(hours=1))
    third = poll(container)
    assert third["deleted"] == 1
    assert events(sql)[4:] == [("erp_order_changed", order["Ref_Key"]),
                               ("erp_shipment_deleted", shipment["Ref_Key"])]
    amounts = [r.envelope["payload"]["amount"] for r in sql.rows(
        "SELECT envelope FROM outbox WHERE type LIKE 'erp_order_%' ORDER BY id")]
    assert amounts == ["1000.00", "1200.00"]
    assert fake.count(odata.ORDERS, keyed=True) == 2        # found by the keyed re-reads


def test_a_failing_1c_leaves_everything_as_it_was(bridge, fake):
    container, sql = bridge
    clock.travel_to(NOW)
    fake.put(odata.ORDERS, {"Number": "УТ-1", "Date": "2026-12-05T10:00:00", "Posted": True,
                            "СуммаДокумента": 10})
    fake.fail_next(500, "Внутренняя ошибка 1С", times=10)
    failed = poll(container)
    assert (failed["outcome"], failed["status"]) == ("failed", 500)
    assert sql.count("documents") == 0
    assert "Внутренняя ошибка" in sql.scalar("SELECT last_error FROM poll_state")
    assert sql.scalar("SELECT polled_at FROM poll_state") is None


def test_reconciliation_shows_what_is_missing_or_different_on_either_side(bridge, fake):
    """The CRM learnt of three documents by EnterpriseData; 1C lists three for the period:
    one the same, one with another sum, one the CRM never got; and one CRM document 1C lacks."""
    import base64

    from .. import ed_samples as ed

    container, _sql = bridge
    clock.travel_to(NOW)
    same, changed, only_crm, only_1c = (str(uuid.uuid4()) for _ in range(4))
    cp = str(uuid.uuid4())
    message = ed.ed_message(1, [
        ed.order_xml(same, "ЗК-1", "2026-12-01T10:00:00", "100.00", cp, "7701234567",
                     "770101001"),
        ed.order_xml(changed, "ЗК-2", "2026-12-02T10:00:00", "200.00", cp, "7701234567",
                     "770101001"),
        ed.order_xml(only_crm, "ЗК-3", "2026-12-03T10:00:00", "300.00", cp, "7701234567",
                     "770101001")])
    with entrypoint_hook(container, "receive_enterprise_data",
                         context_data={IDENTITY_CONTEXT_KEY: ADMIN}) as hook:
        hook(base64.b64encode(message).decode())
    for guid, number, day, amount in ((same, "ЗК-1", "01", 100), (changed, "ЗК-2", "02", 250),
                                      (only_1c, "ЗК-4", "04", 400)):
        fake.put(odata.ORDERS, {"Ref_Key": guid, "Number": number,
                                "Date": f"2026-12-{day}T10:00:00", "Posted": True,
                                "Контрагент_Key": cp, "СуммаДокумента": amount})
    # Outside the period on both sides: not compared.
    fake.put(odata.ORDERS, {"Number": "ЗК-0", "Date": "2026-11-01T10:00:00", "Posted": True,
                            "СуммаДокумента": 1})
    with entrypoint_hook(container, "reconcile",
                         context_data={IDENTITY_CONTEXT_KEY: ADMIN}) as hook:
        report = hook("2026-12-01", "2026-12-31")
    assert [d["guid"] for d in report["missing_in_crm"]] == [only_1c]
    assert [d["guid"] for d in report["missing_in_1c"]] == [only_crm]
    assert [(d["guid"], d["reason"], d["amount"], d["crm_amount"])
            for d in report["different"]] == [(changed, "amount", "250.00", "200.00")]
    assert report["counts"] == {"order": {"crm": 3, "erp": 3}} and report["in_sync"] is False
