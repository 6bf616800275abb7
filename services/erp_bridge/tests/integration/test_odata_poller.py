"""The OData client and poller against a fake 1C standard OData interface over real HTTP.
No broker, no database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from crm_platform.clock import Clock
from crm_platform.testing import free_port
from services.erp_bridge.domain import odata
from services.erp_bridge.domain.objects import (
    ContactInfo,
    ContactPerson,
    Counterparty,
    Deletion,
    Document,
)
from services.erp_bridge.odata_client import ODataClient, ODataError, Poller
from services.erp_bridge.tests.fake_odata import FakeOData

pytestmark = pytest.mark.integration

MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2024, 3, 22, 12, 0, tzinfo=MSK)
ORDER_TYPE = "StandardODATA.Document_ЗаказКлиента"
EMPTY = "00000000-0000-0000-0000-000000000000"


def key() -> str:
    return str(uuid.uuid4())


def ut_date(moment: datetime) -> str:
    return moment.astimezone(MSK).strftime("%Y-%m-%dT%H:%M:%S")


@pytest.fixture
def fake():
    server = FakeOData()
    with server.serving():
        yield server


@pytest.fixture
def client(fake):
    with ODataClient(fake.url, fake.username, fake.password, timeout=5) as c:
        yield c


@pytest.fixture
def clock():
    c = Clock()
    c.travel_to(NOW)
    return c


@pytest.fixture
def poller(client, clock):
    return Poller(client, window_days=7, clock=clock)


def put_order(fake, when: datetime, **fields) -> dict:
    return fake.put(odata.ORDERS, {
        "Number": f"УТ-{len(fake.sets[odata.ORDERS]) + 1:06d}", "Date": ut_date(when),
        "Posted": True, "Контрагент_Key": key(), "Валюта_Key": key(), "Менеджер_Key": key(),
        "СуммаДокумента": 1000, "Статус": "КОтгрузке",
        "Товары": [{"LineNumber": "1", "Номенклатура_Key": key(), "Количество": 1,
                    "Цена": 1000, "Сумма": 1000, "СтавкаНДС": "НДС20", "СуммаНДС": 166.67}],
        **fields})


def by_guid(result) -> dict:
    return {obj.guid: obj for obj in result.objects}


# -- a whole sale ------------------------------------------------------------------------------


def test_a_realistic_sale(fake, poller):
    partner, other_partner = key(), key()
    cp = fake.put(odata.COUNTERPARTIES, {
        "Description": "Кровля-Профиль ООО", "НаименованиеПолное": "ООО «Кровля-Профиль»",
        "ИНН": "7701234567", "КПП": "770101001", "ЮрФизЛицо": "ЮрЛицо", "Партнер_Key": partner,
        "КонтактнаяИнформация": [
            {"LineNumber": "1", "Тип": "Телефон", "Вид_Key": key(),
             "Представление": "+7 (495) 123-45-67", "НомерТелефона": "+74951234567"},
            {"LineNumber": "2", "Тип": "АдресЭлектроннойПочты", "Вид_Key": key(),
             "Представление": "zakaz@krovlya.example", "АдресЭП": "zakaz@krovlya.example"}]})
    fake.put(odata.COUNTERPARTIES, {"Description": "Другой клиент", "ИНН": "5001234567",
                                    "ЮрФизЛицо": "ЮрЛицо", "Партнер_Key": other_partner})
    person = fake.put(odata.CONTACT_PERSONS, {
        "Owner_Key": partner, "Description": "Смирнова Анна Петровна",
        "ДолжностьПоВизитке": "Начальник снабжения",
        "КонтактнаяИнформация": [{"LineNumber": "1", "Тип": "Телефон",
                                  "Представление": "+7 916 555-44-33"}]})
    roof, gutter = key(), key()
    order = fake.put(odata.ORDERS, {
        "Number": "УТ-000045", "Date": "2024-03-18T10:00:00", "Posted": True,
        "Партнер_Key": partner, "Контрагент_Key": cp["Ref_Key"], "Валюта_Key": key(),
        "СуммаДокумента": 151200.5, "Статус": "КОтгрузке", "Менеджер_Key": key(),
        "Товары": [
            {"LineNumber": "1", "Номенклатура_Key": roof, "Упаковка_Key": EMPTY,
             "Количество": 250.5, "Цена": 558.84, "Сумма": 139990.5, "СтавкаНДС": "НДС20",
             "СуммаНДС": 23331.75},
            {"LineNumber": "2", "Номенклатура_Key": gutter, "Количество": 20, "Цена": 560.5,
             "Сумма": 11210, "СтавкаНДС": "НДС20", "СуммаНДС": 1868.33}]})
    invoice = fake.put(odata.INVOICES, {
        "Number": "СЧ-000012", "Date": "2024-03-18T15:30:00", "Posted": True,
        "Контрагент_Key": cp["Ref_Key"], "СуммаДокумента": 151200.5,
        "ДокументОснование": order["Ref_Key"], "ДокументОснование_Type": ORDER_TYPE,
        "Товары": order["Товары"]})
    shipment = fake.put(odata.SHIPMENTS, {
        "Number": "РТУ-000031", "Date": "2024-03-20T09:15:00", "Posted": True,
        "ХозяйственнаяОперация": "РеализацияКлиенту", "Контрагент_Key": cp["Ref_Key"],
        "СуммаДокумента": 55884, "ЗаказКлиента": order["Ref_Key"],
        "ЗаказКлиента_Type": ORDER_TYPE,
        "Товары": [{"LineNumber": "1", "Номенклатура_Key": roof, "Количество": 100,
                    "Цена": 558.84, "Сумма": 55884, "СтавкаНДС": "НДС20",
                    "СуммаНДС": 9314}]})
    settlement = fake.put(odata.SETTLEMENT_OBJECTS, {
        "Description": "Заказ клиента УТ-000045 от 18.03.2024", "Объект": order["Ref_Key"],
        "Объект_Type": ORDER_TYPE})
    pay = fake.put(odata.PAYMENTS, {
        "Number": "00ОТ-000007", "Date": "2024-03-21T00:00:00", "Posted": True,
        "ХозяйственнаяОперация": "ПоступлениеОплатыОтКлиента",
        "Контрагент_Key": cp["Ref_Key"], "СуммаДокумента": 100000,
        "РасшифровкаПлатежа": [{"LineNumber": "1", "ОбъектРасчетов_Key": settlement["Ref_Key"],
                                "Сумма": 100000, "СуммаВзаиморасчетов": 100000}]})
    refund = fake.put(odata.PAYMENTS, {
        "Number": "00ОТ-000008", "Date": "2024-03-21T11:00:00", "Posted": True,
        "ХозяйственнаяОперация": "ВозвратОтПоставщика", "Контрагент_Key": key(),
        "СуммаДокумента": 500, "РасшифровкаПлатежа": []})

    result = poller.poll({}, since=NOW - timedelta(minutes=10))

    assert result.rejected == [] and result.deleted == []
    objects = by_guid(result)
    counterparty = objects[uuid.UUID(cp["Ref_Key"])]
    assert isinstance(counterparty, Counterparty)
    assert counterparty.contacts == (ContactInfo("phone", "+7 (495) 123-45-67"),
                                     ContactInfo("email", "zakaz@krovlya.example"))
    assert (counterparty.inn, counterparty.legal_kind, counterparty.version) == (
        "7701234567", "ЮридическоеЛицо", cp["DataVersion"])
    contact = objects[uuid.UUID(person["Ref_Key"])]
    assert isinstance(contact, ContactPerson)
    assert (contact.owner_guid, contact.partner_guid, contact.position) == (
        uuid.UUID(cp["Ref_Key"]), uuid.UUID(partner), "Начальник снабжения")

    the_order = objects[uuid.UUID(order["Ref_Key"])]
    assert isinstance(the_order, Document) and the_order.kind == "order"
    assert the_order.amount == Decimal("151200.5")             # exact: parsed as Decimal
    assert the_order.date == datetime(2024, 3, 18, 10, 0, tzinfo=MSK)
    assert [(line.line_no, line.quantity, line.amount) for line in the_order.lines] == [
        (1, Decimal("250.5"), Decimal("139990.5")), (2, Decimal("20"), Decimal("11210"))]
    assert objects[uuid.UUID(invoice["Ref_Key"])].order_guid == the_order.guid
    the_shipment = objects[uuid.UUID(shipment["Ref_Key"])]
    assert (the_shipment.kind, the_shipment.order_guid, the_shipment.amount) == (
        "shipment", the_order.guid, Decimal("55884"))
    the_payment = objects[uuid.UUID(pay["Ref_Key"])]
    assert [(r.order_guid, r.amount) for r in the_payment.payment_rows] == [
        (the_order.guid, Decimal("100000"))]
    assert the_payment.counterparty.guid == counterparty.guid
    assert uuid.UUID(refund["Ref_Key"]) not in objects            # not a customer payment

    # Everything read is reported with its DataVersion, the ignored refund too.
    stored = {(name, uuid.UUID(ref)): entity["DataVersion"]
              for name in odata.ENTITY_SETS for ref, entity in fake.sets[name].items()}
    assert result.seen_versions == stored
    assert (result.polled_at, result.window_from) == (
        NOW, NOW - timedelta(days=7, minutes=10))
    # Catalogs first, then orders, invoices, shipments, payments.
    kinds = [getattr(obj, "kind", type(obj).__name__) for obj in result.objects]
    assert kinds == ["Counterparty", "Counterparty", "ContactPerson", "order", "invoice",
                     "shipment", "payment"]

    # Every request is JSON; documents are read over the window, catalogs whole.
    for request in fake.requests:
        assert request.args["$format"] == "json" and request.status == 200
    window = "Date ge datetime'2024-03-15T11:50:00'"
    for name in odata.DOCUMENT_SETS:
        (listing,) = [r for r in fake.requests if r.entity_set == name]
        assert listing.args["$filter"] == window
        assert listing.args["$orderby"] == "Date,Ref_Key"
    assert "$filter" not in [r for r in fake.requests
                             if r.entity_set == odata.COUNTERPARTIES][0].args
    assert fake.count(odata.SETTLEMENT_OBJECTS, keyed=True) == 1

    # The next round reads the same versions again; the settlement object comes from the cache.
    fake.clear_requests()
    again = poller.poll({}, since=NOW)
    assert again.seen_versions == result.seen_versions
    assert again.objects == result.objects
    assert fake.count(odata.SETTLEMENT_OBJECTS) == 0


def test_an_orders_own_settlement_object_needs_no_catalog_read(fake, poller):
    settlement = key()
    order = put_order(fake, NOW - timedelta(days=1), ОбъектРасчетов_Key=settlement)
    fake.put(odata.PAYMENTS, {
        "Number": "1", "Date": ut_date(NOW), "Posted": True, "СуммаДокумента": 10,
        "ХозяйственнаяОперация": "ПоступлениеОплатыОтКлиента", "Контрагент_Key": key(),
        "РасшифровкаПлатежа": [{"LineNumber": "1", "ОбъектРасчетов_Key": settlement,
                                "Сумма": 10}]})

    result = poller.poll({}, since=NOW)

    (paid,) = [o for o in result.objects if o.kind == "payment"]
    assert paid.payment_rows[0].order_guid == uuid.UUID(order["Ref_Key"])
    assert fake.count(odata.SETTLEMENT_OBJECTS) == 0


def test_an_unknown_settlement_object_leaves_the_row_without_order(fake, poller):
    fake.put(odata.PAYMENTS, {
        "Number": "1", "Date": ut_date(NOW), "Posted": True, "СуммаДокумента": 10,
        "ХозяйственнаяОперация": "ПоступлениеОплатыОтКлиента", "Контрагент_Key": key(),
        "РасшифровкаПлатежа": [{"LineNumber": "1", "ОбъектРасчетов_Key": key(), "Сумма": 10}]})

    for _ in range(2):
        (paid,) = poller.poll({}, since=NOW).objects
        assert paid.payment_rows[0].order_guid is None
    assert fake.count(odata.SETTLEMENT_OBJECTS, keyed=True) == 2     # a miss is asked again


# -- the window and the keyed re-reads ---------------------------------------------------------


def test_the_moving_window(fake, poller):
    since = NOW - timedelta(hours=1)
    start = since - timedelta(days=7)
    inside = put_order(fake, NOW - timedelta(days=3))
    at_start = put_order(fake, start)
    just_before = put_order(fake, start - timedelta(seconds=1))
    old = put_order(fake, NOW - timedelta(days=30))
    future = put_order(fake, NOW + timedelta(days=2))          # 1C allows future-dated documents

    result = poller.poll({}, since=since.astimezone(UTC))      # any zone: the filter is MSK

    got = {obj.guid for obj in result.objects}
    assert got == {uuid.UUID(e["Ref_Key"]) for e in (inside, at_start, future)}
    assert not got & {uuid.UUID(e["Ref_Key"]) for e in (just_before, old)}
    (listing,) = [r for r in fake.requests if r.entity_set == odata.ORDERS]
    assert listing.args["$filter"] == f"Date ge datetime'{ut_date(start)}'"

    # The window moves with ``since``.
    later = poller.poll({}, since=since + timedelta(days=3, hours=1))
    assert {obj.guid for obj in later.objects} == {uuid.UUID(inside["Ref_Key"]),
                                                   uuid.UUID(future["Ref_Key"])}


def test_a_tracked_document_changed_outside_the_window_is_found_by_key(fake, poller):
    old = put_order(fake, NOW - timedelta(days=40))
    recent = put_order(fake, NOW - timedelta(days=1))
    first = poller.poll({odata.ORDERS: {uuid.UUID(old["Ref_Key"]),
                                        uuid.UUID(recent["Ref_Key"])}}, since=NOW)
    assert {o.guid for o in first.objects} == {uuid.UUID(old["Ref_Key"]),
                                               uuid.UUID(recent["Ref_Key"])}
    # Only the document the window missed is read by key.
    assert [r.key for r in fake.requests if r.key] == [old["Ref_Key"]]

    changed = fake.change(odata.ORDERS, old["Ref_Key"], Posted=False, СуммаДокумента=900)
    assert changed["DataVersion"] != old["DataVersion"]
    fake.clear_requests()

    result = poller.poll({odata.ORDERS: {uuid.UUID(old["Ref_Key"])}}, since=NOW)

    doc = by_guid(result)[uuid.UUID(old["Ref_Key"])]
    assert (doc.posted, doc.amount, doc.version) == (False, Decimal("900"),
                                                     changed["DataVersion"])
    assert result.seen_versions[(odata.ORDERS, doc.guid)] == changed["DataVersion"]
    assert fake.count(odata.ORDERS, keyed=True) == 1
    # Not tracked any more (closed): not re-read, and outside the window it is not seen.
    fake.clear_requests()
    untracked = poller.poll({}, since=NOW)
    assert uuid.UUID(old["Ref_Key"]) not in by_guid(untracked)
    assert fake.count(keyed=True) == 0


def test_a_physically_deleted_tracked_document_is_a_deletion(fake, poller):
    gone_order = put_order(fake, NOW - timedelta(days=20))
    gone_payment = fake.put(odata.PAYMENTS, {
        "Number": "5", "Date": ut_date(NOW - timedelta(days=1)), "Posted": True,
        "ХозяйственнаяОперация": "ПоступлениеОплатыОтКлиента", "СуммаДокумента": 5})
    kept = put_order(fake, NOW - timedelta(days=25))
    fake.delete(odata.ORDERS, gone_order["Ref_Key"])
    fake.delete(odata.PAYMENTS, gone_payment["Ref_Key"])

    result = poller.poll({odata.ORDERS: {uuid.UUID(gone_order["Ref_Key"]),
                                         uuid.UUID(kept["Ref_Key"])},
                          odata.PAYMENTS: {uuid.UUID(gone_payment["Ref_Key"])}}, since=NOW)

    assert sorted(result.deleted, key=lambda d: d.type_name) == [
        Deletion("ДокументСсылка.ЗаказКлиента", uuid.UUID(gone_order["Ref_Key"])),
        Deletion("ДокументСсылка.ПоступлениеБезналичныхДенежныхСредств",
                 uuid.UUID(gone_payment["Ref_Key"])),
    ]
    assert [o.guid for o in result.objects] == [uuid.UUID(kept["Ref_Key"])]
    assert (odata.ORDERS, uuid.UUID(gone_order["Ref_Key"])) not in result.seen_versions


def test_a_marked_document_is_still_read(fake, poller):
    marked = put_order(fake, NOW - timedelta(days=1))
    fake.change(odata.ORDERS, marked["Ref_Key"], DeletionMark=True, Posted=False)
    (doc,) = poller.poll({}, since=NOW).objects
    assert (doc.deletion_mark, doc.posted) == (True, False)


def test_tracked_documents_of_sets_not_polled_are_refused(client, clock):
    poller = Poller(client, clock=clock, entity_sets=(odata.ORDERS,))
    with pytest.raises(ValueError, match="not polled"):
        poller.poll({odata.INVOICES: {uuid.uuid4()}}, since=NOW)
    with pytest.raises(ValueError):
        poller.poll({}, since=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError):
        Poller(client, clock=clock, entity_sets=("Catalog_Номенклатура",))


def test_a_malformed_entity_is_rejected_and_the_rest_still_read(fake, poller):
    good = put_order(fake, NOW - timedelta(days=1))
    bad = put_order(fake, NOW - timedelta(days=2), СуммаДокумента="сто рублей")

    result = poller.poll({}, since=NOW)

    assert [o.guid for o in result.objects] == [uuid.UUID(good["Ref_Key"])]
    (rejected,) = result.rejected
    assert (rejected.entity_set, rejected.ref_key, rejected.data_version, rejected.field) == (
        odata.ORDERS, bad["Ref_Key"], bad["DataVersion"], "СуммаДокумента")
    assert rejected.entity["Number"] == bad["Number"]
    assert (odata.ORDERS, uuid.UUID(bad["Ref_Key"])) not in result.seen_versions


# -- errors --------------------------------------------------------------------------------------


def test_a_wrong_password_is_an_error_not_a_deletion(fake):
    with ODataClient(fake.url, fake.username, "wrong", timeout=5) as client:
        with pytest.raises(ODataError) as listing:
            list(client.list(odata.COUNTERPARTIES))
        with pytest.raises(ODataError) as keyed:
            client.get(odata.ORDERS, uuid.uuid4())
        with pytest.raises(ODataError):
            Poller(client, clock=lambda: NOW).poll({odata.ORDERS: {uuid.uuid4()}}, since=NOW)
    assert listing.value.status == 401 and keyed.value.status == 401
    assert {r.status for r in fake.requests} == {401}


def test_server_errors_carry_the_status_and_1c_message(fake, client):
    fake.fail_next(500, "Ошибка СУБД: превышено время ожидания блокировки")
    with pytest.raises(ODataError) as err:
        list(client.list(odata.ORDERS, date_from=NOW))
    assert err.value.status == 500
    assert "превышено время ожидания" in err.value.excerpt
    assert "HTTP 500" in str(err.value)
    # An unpublished set: a 404 on a collection is an error, only a keyed 404 means deleted.
    with pytest.raises(ODataError) as unpublished:
        list(client.list("Document_ЗаказПоставщику"))
    assert unpublished.value.status == 404


def test_no_server_is_an_error():
    with ODataClient(f"http://127.0.0.1:{free_port()}/ut", "u", "p", timeout=2) as client:
        with pytest.raises(ODataError) as err:
            client.get(odata.ORDERS, uuid.uuid4())
    assert err.value.status is None


def test_keyed_get(fake, client):
    order = put_order(fake, NOW)
    entity = client.get(odata.ORDERS, order["Ref_Key"])
    assert entity["Ref_Key"] == order["Ref_Key"]
    assert entity["odata.metadata"].endswith("$metadata#Document_ЗаказКлиента/@Element")
    assert entity["Товары"][0]["СуммаНДС"] == Decimal("166.67")
    assert client.get(odata.ORDERS, uuid.uuid4()) is None
    with pytest.raises(ValueError):
        list(client.list(odata.COUNTERPARTIES, date_from=NOW))


# -- paging --------------------------------------------------------------------------------------


def test_paging_across_pages(fake, client):
    refs = sorted(fake.put(odata.COUNTERPARTIES, {"Description": f"Клиент {i}",
                                                  "Партнер_Key": key()})["Ref_Key"]
                  for i in range(7))

    got = [e["Ref_Key"] for e in client.list(odata.COUNTERPARTIES, page_size=3)]

    assert got == refs
    pages = [(r.args["$top"], r.args["$skip"]) for r in fake.requests]
    assert pages == [("3", "0"), ("3", "3"), ("3", "6")]

    fake.clear_requests()
    days = [NOW - timedelta(days=d) for d in (1, 5, 2, 4, 3, 6)]
    for day in days:
        put_order(fake, day)
    dates = [e["Date"] for e in client.list(odata.ORDERS, date_from=NOW - timedelta(days=7),
                                            page_size=2)]
    assert dates == sorted(ut_date(d) for d in days)
    # Six rows in pages of two: the fourth, empty page says the end.
    assert [r.args["$skip"] for r in fake.requests] == ["0", "2", "4", "6"]


def test_the_poller_pages_every_set(fake, client, clock):
    for i in range(5):
        fake.put(odata.COUNTERPARTIES, {"Description": f"Клиент {i}"})
        put_order(fake, NOW - timedelta(hours=i))
    poller = Poller(client, clock=clock, page_size=2)

    result = poller.poll({}, since=NOW)

    assert len(result.objects) == 10 and result.rejected == []
    assert fake.count(odata.COUNTERPARTIES) == 3 and fake.count(odata.ORDERS) == 3
