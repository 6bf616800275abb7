"""UT 11 OData entities → the bridge's plain objects (pure mapping, no HTTP)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from services.erp_bridge.domain import odata
from services.erp_bridge.domain.objects import (
    ContactInfo,
    ContactPerson,
    Counterparty,
    CounterpartyRef,
    Document,
    MalformedMessage,
)

MSK = ZoneInfo("Europe/Moscow")
EMPTY = "00000000-0000-0000-0000-000000000000"
CP = "6f1c2b9e-3a41-11ee-9c7b-005056a1b2c3"
PARTNER = "6f1c2b9f-3a41-11ee-9c7b-005056a1b2c3"
PERSON = "7a2d3c10-3a41-11ee-9c7b-005056a1b2c3"
ORDER = "8b3e4d21-3a41-11ee-9c7b-005056a1b2c3"
INVOICE = "9c4f5e32-3a41-11ee-9c7b-005056a1b2c3"
SHIPMENT = "ad506f43-3a41-11ee-9c7b-005056a1b2c3"
PAYMENT = "be617054-3a41-11ee-9c7b-005056a1b2c3"
SETTLEMENT = "cf728165-3a41-11ee-9c7b-005056a1b2c3"
MANAGER = "d0839276-3a41-11ee-9c7b-005056a1b2c3"
PRODUCT = "e194a387-3a41-11ee-9c7b-005056a1b2c3"
RUB = "f2a5b498-3a41-11ee-9c7b-005056a1b2c3"


def counterparty(**fields) -> dict:
    return {
        "Ref_Key": CP, "DataVersion": "AAAAAQAAAAA=", "DeletionMark": False,
        "Parent_Key": EMPTY, "IsFolder": False, "Code": "УТ-000123",
        "Description": "Кровля-Профиль ООО", "НаименованиеПолное": "ООО «Кровля-Профиль»",
        "ИНН": "7701234567", "КПП": "770101001", "ЮрФизЛицо": "ЮрЛицо",
        "Партнер_Key": PARTNER,
        "КонтактнаяИнформация": [
            {"LineNumber": "1", "Тип": "Телефон", "Вид_Key": str(uuid.uuid4()),
             "Представление": "+7 (495) 123-45-67", "НомерТелефона": "+74951234567",
             "АдресЭП": ""},
            {"LineNumber": "2", "Тип": "АдресЭлектроннойПочты", "Вид_Key": str(uuid.uuid4()),
             "Представление": "", "АдресЭП": "zakaz@krovlya.example", "НомерТелефона": ""},
            {"LineNumber": "3", "Тип": "Адрес", "Представление": "Москва, ул. Лесная, д. 5"},
            {"LineNumber": "4", "Тип": "ВебСтраница", "Представление": "krovlya.example"},
            {"LineNumber": "5", "Тип": "Факс", "Представление": ""},
        ],
        **fields,
    }


def order(**fields) -> dict:
    return {
        "Ref_Key": ORDER, "DataVersion": "AAAAAgAAAAA=", "DeletionMark": False,
        "Number": "УТ-000045 ", "Date": "2024-03-15T10:20:30", "Posted": True,
        "Организация_Key": str(uuid.uuid4()), "Партнер_Key": PARTNER, "Контрагент_Key": CP,
        "Валюта_Key": RUB, "СуммаДокумента": Decimal("151200.50"), "Статус": "КОтгрузке",
        "Менеджер_Key": MANAGER, "ЦенаВключаетНДС": True,
        "Товары": [
            {"LineNumber": "2", "Номенклатура_Key": PRODUCT, "Упаковка_Key": EMPTY,
             "Количество": 20, "Цена": 560.5, "Сумма": 11210, "СтавкаНДС": "НДС20",
             "СуммаНДС": Decimal("1868.33")},
            {"LineNumber": "1", "Номенклатура_Key": PRODUCT, "Количество": Decimal("250.5"),
             "Цена": Decimal("558.84"), "Сумма": Decimal("139990.50"), "СтавкаНДС": "НДС20",
             "СуммаНДС": Decimal("23331.75")},
        ],
        **fields,
    }


def payment(**fields) -> dict:
    return {
        "Ref_Key": PAYMENT, "DataVersion": "AAAABQAAAAA=", "DeletionMark": False,
        "Number": "00ОТ-000007", "Date": "2024-03-20T00:00:00", "Posted": True,
        "ХозяйственнаяОперация": "ПоступлениеОплатыОтКлиента", "Контрагент_Key": CP,
        "СуммаДокумента": 100000, "Валюта_Key": RUB,
        "РасшифровкаПлатежа": [
            {"LineNumber": "1", "ОбъектРасчетов_Key": SETTLEMENT, "Сумма": 70000},
            {"LineNumber": "2", "ОбъектРасчетов_Key": EMPTY, "Сумма": 30000},
        ],
        **fields,
    }


# -- catalogs ----------------------------------------------------------------------------------


def test_counterparty_with_contact_information():
    cp = odata.to_object(odata.COUNTERPARTIES, counterparty())

    assert cp == Counterparty(
        guid=uuid.UUID(CP), name="Кровля-Профиль ООО", full_name="ООО «Кровля-Профиль»",
        inn="7701234567", kpp="770101001", legal_kind="ЮридическоеЛицо",
        contacts=(ContactInfo("phone", "+7 (495) 123-45-67"),
                  ContactInfo("email", "zakaz@krovlya.example"),      # АдресЭП: no Представление
                  ContactInfo("address", "Москва, ул. Лесная, д. 5"),
                  ContactInfo("other", "krovlya.example")),           # the empty fax is dropped
        deletion_mark=False, version="AAAAAQAAAAA=", partner_guid=uuid.UUID(PARTNER))


@pytest.mark.parametrize(("ut", "crm"), [
    ("ФизЛицо", "ФизическоеЛицо"), ("ИндивидуальныйПредприниматель",
                                    "ИндивидуальныйПредприниматель"),
    ("ЮрЛицоНеРезидент", "ЮридическоеЛицо"), ("", None), ("НовоеЗначение", "НовоеЗначение"),
])
def test_counterparty_legal_kinds(ut, crm):
    assert odata.to_object(odata.COUNTERPARTIES, counterparty(ЮрФизЛицо=ut)).legal_kind == crm


def test_counterparty_name_fallbacks_and_empty_keys():
    entity = counterparty(Description="", НаименованиеПолное="ИП Сидоров А. А.", ИНН="",
                          КПП="", Партнер_Key=EMPTY, DeletionMark=True, КонтактнаяИнформация=[])
    cp = odata.to_object(odata.COUNTERPARTIES, entity)
    assert (cp.name, cp.inn, cp.kpp, cp.partner_guid, cp.contacts, cp.deletion_mark) == (
        "ИП Сидоров А. А.", None, None, None, (), True)
    entity = counterparty(Наименование="Старое имя")
    del entity["Description"]
    assert odata.to_object(odata.COUNTERPARTIES, entity).name == "Старое имя"


def test_contact_person_hangs_on_the_partners_counterparty():
    entity = {"Ref_Key": PERSON, "DataVersion": "AAAAAwAAAAA=", "DeletionMark": False,
              "Owner_Key": PARTNER, "Description": "Смирнова Анна Петровна",
              "ДолжностьПоВизитке": "Снабженец",
              "КонтактнаяИнформация": [{"LineNumber": "1", "Тип": "Телефон",
                                        "Представление": "+7 916 555-44-33"}]}

    person = odata.to_object(odata.CONTACT_PERSONS, entity,
                             partner_counterparties={uuid.UUID(PARTNER): uuid.UUID(CP)})

    assert person == ContactPerson(
        guid=uuid.UUID(PERSON), owner_guid=uuid.UUID(CP), full_name="Смирнова Анна Петровна",
        position="Снабженец", contacts=(ContactInfo("phone", "+7 916 555-44-33"),),
        version="AAAAAwAAAAA=", partner_guid=uuid.UUID(PARTNER))
    # Without the look-up (or a partner with several counterparties) the owner is unknown.
    alone = odata.to_object(odata.CONTACT_PERSONS, {**entity, "ДолжностьПоВизитке": None,
                                                    "Должность": "Директор"})
    assert (alone.owner_guid, alone.partner_guid, alone.position) == (
        None, uuid.UUID(PARTNER), "Директор")


# -- documents ---------------------------------------------------------------------------------


def test_order_with_lines():
    doc = odata.to_object(odata.ORDERS, order())

    assert isinstance(doc, Document)
    assert (doc.kind, doc.guid, doc.number, doc.version) == (
        "order", uuid.UUID(ORDER), "УТ-000045", "AAAAAgAAAAA=")
    assert doc.date == datetime(2024, 3, 15, 10, 20, 30, tzinfo=MSK)
    assert doc.date.utcoffset().total_seconds() == 3 * 3600
    assert (doc.amount, doc.currency, doc.posted, doc.deletion_mark) == (
        Decimal("151200.50"), "RUB", True, False)
    assert doc.counterparty == CounterpartyRef(guid=uuid.UUID(CP))
    assert doc.responsible == MANAGER
    assert doc.order_guid is None and doc.payment_rows == ()
    first, second = doc.lines                                   # ordered by LineNumber
    assert (first.line_no, first.product_guid, first.unit_code, first.quantity, first.price,
            first.amount, first.vat_rate, first.vat_amount) == (
        1, uuid.UUID(PRODUCT), None, Decimal("250.5"), Decimal("558.84"), Decimal("139990.50"),
        "НДС20", Decimal("23331.75"))
    assert (second.line_no, second.quantity, second.price, second.amount) == (
        2, Decimal("20"), Decimal("560.5"), Decimal("11210"))


def test_unposted_marked_order_with_empty_references():
    doc = odata.to_object(odata.ORDERS, order(Posted=False, DeletionMark=True,
                                              Контрагент_Key=EMPTY, Менеджер_Key=EMPTY,
                                              Товары=[]))
    assert (doc.posted, doc.deletion_mark, doc.counterparty, doc.responsible, doc.lines) == (
        False, True, None, None, ())


@pytest.mark.parametrize(("value", "currency"), [
    (None, "RUB"), ("643", "RUB"), ("840", "USD"), ({"Code": "978", "Description": "EUR"}, "EUR"),
    ("руб.", "RUB"), ("cny", "CNY"), (398, "KZT"),
])
def test_currency_is_rub_unless_a_code_is_given(value, currency):
    entity = order(Валюта=value) if value is not None else order()
    assert odata.to_object(odata.ORDERS, entity).currency == currency


def test_aware_dates_are_moved_to_moscow():
    doc = odata.to_object(odata.ORDERS, order(Date="2024-03-15T07:20:30+00:00"))
    assert doc.date == datetime(2024, 3, 15, 10, 20, 30, tzinfo=MSK)
    assert str(doc.date.tzinfo) == "Europe/Moscow"


def test_invoice_based_on_the_order():
    entity = order(Ref_Key=INVOICE, Number="СЧ-000012",
                   ДокументОснование=ORDER,
                   ДокументОснование_Type="StandardODATA.Document_ЗаказКлиента")
    doc = odata.to_object(odata.INVOICES, entity)
    assert (doc.kind, doc.guid, doc.order_guid, len(doc.lines)) == (
        "invoice", uuid.UUID(INVOICE), uuid.UUID(ORDER), 2)

    offer = "StandardODATA.Document_КоммерческоеПредложениеКлиенту"
    other = odata.to_object(odata.INVOICES, {**entity, "ДокументОснование_Type": offer})
    assert other.order_guid is None
    unbased = odata.to_object(odata.INVOICES, {**entity, "ДокументОснование": EMPTY})
    assert unbased.order_guid is None


def test_shipment_names_its_order_in_the_header_or_in_every_row():
    rows = [{"LineNumber": "1", "Номенклатура_Key": PRODUCT, "Количество": 100, "Цена": 558.84,
             "Сумма": 55884, "ЗаказКлиента": ORDER,
             "ЗаказКлиента_Type": "StandardODATA.Document_ЗаказКлиента"}]
    header = odata.to_object(odata.SHIPMENTS, order(
        Ref_Key=SHIPMENT, СуммаДокумента=55884, Товары=rows, ЗаказКлиента=ORDER,
        ЗаказКлиента_Type="StandardODATA.Document_ЗаказКлиента"))
    assert (header.kind, header.order_guid, header.amount) == (
        "shipment", uuid.UUID(ORDER), Decimal("55884"))

    by_rows = odata.to_object(odata.SHIPMENTS, order(
        Ref_Key=SHIPMENT, Товары=rows, ЗаказКлиента=EMPTY,
        ЗаказКлиента_Type="StandardODATA.Document_ЗаказКлиента"))
    assert by_rows.order_guid == uuid.UUID(ORDER)

    mixed = odata.to_object(odata.SHIPMENTS, order(
        Ref_Key=SHIPMENT, Товары=rows + [{**rows[0], "LineNumber": "2",
                                          "ЗаказКлиента": str(uuid.uuid4())}]))
    assert mixed.order_guid is None


def test_customer_payment_rows_resolve_settlement_objects():
    doc = odata.to_object(odata.PAYMENTS, payment(),
                          settlement_objects={SETTLEMENT: uuid.UUID(ORDER)})

    assert (doc.kind, doc.amount, doc.counterparty, doc.lines) == (
        "payment", Decimal("100000"), CounterpartyRef(guid=uuid.UUID(CP)), ())
    assert [(r.order_guid, r.amount) for r in doc.payment_rows] == [
        (uuid.UUID(ORDER), Decimal("70000")), (None, Decimal("30000"))]
    # Unresolved settlement object: the row is kept without its order.
    unresolved = odata.to_object(odata.PAYMENTS, payment())
    assert [r.order_guid for r in unresolved.payment_rows] == [None, None]


def test_payment_rows_may_name_the_order_directly():
    doc = odata.to_object(odata.PAYMENTS, payment(РасшифровкаПлатежа=[
        {"LineNumber": "1", "Заказ": ORDER, "Заказ_Type": "StandardODATA.Document_ЗаказКлиента",
         "Сумма": 10},
        {"LineNumber": "2", "Заказ_Key": ORDER, "Сумма": 20},
        {"LineNumber": "3", "Заказ": INVOICE,
         "Заказ_Type": "StandardODATA.Document_СчетНаОплатуКлиенту", "Сумма": 30},
    ]))
    assert [r.order_guid for r in doc.payment_rows] == [uuid.UUID(ORDER), uuid.UUID(ORDER), None]


def test_bank_receipts_other_than_customer_payments_are_ignored():
    entity = payment(ХозяйственнаяОперация="ВозвратОтПоставщика")
    assert odata.to_object(odata.PAYMENTS, entity) is None
    with pytest.raises(MalformedMessage) as err:
        odata.to_object(odata.PAYMENTS, payment(ХозяйственнаяОперация=None))
    assert err.value.field == "ХозяйственнаяОперация"


# -- bad data ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("entity_set", "entity", "field"), [
    (odata.ORDERS, {k: v for k, v in order().items() if k != "Ref_Key"}, "Ref_Key"),
    (odata.ORDERS, order(Ref_Key="not-a-guid"), "Ref_Key"),
    (odata.ORDERS, order(Ref_Key=EMPTY), "Ref_Key"),
    (odata.ORDERS, order(Ref_Key=12), "Ref_Key"),
    (odata.ORDERS, order(DataVersion=None), "DataVersion"),
    (odata.ORDERS, order(Number=None), "Number"),
    (odata.ORDERS, order(Date="15.03.2024"), "Date"),
    (odata.ORDERS, order(Date="0001-01-01T00:00:00"), "Date"),
    (odata.ORDERS, order(Date=None), "Date"),
    (odata.ORDERS, order(СуммаДокумента="сто"), "СуммаДокумента"),
    (odata.ORDERS, order(СуммаДокумента=True), "СуммаДокумента"),
    (odata.ORDERS, order(СуммаДокумента="NaN"), "СуммаДокумента"),
    (odata.ORDERS, order(СуммаДокумента=None), "СуммаДокумента"),
    (odata.ORDERS, order(Posted="true"), "Posted"),
    (odata.ORDERS, order(Контрагент_Key="ООО Ромашка"), "Контрагент_Key"),
    (odata.ORDERS, order(Товары={"LineNumber": "1"}), "Товары"),
    (odata.ORDERS, order(Товары=["строка"]), "Товары[0]"),
    (odata.ORDERS, order(Товары=[{**order()["Товары"][0], "LineNumber": "первая"}]),
     "Товары[0].LineNumber"),
    (odata.ORDERS, order(Товары=[{**order()["Товары"][0], "Количество": "много"}]),
     "Товары[0].Количество"),
    (odata.PAYMENTS, payment(РасшифровкаПлатежа=[{"LineNumber": "1", "Сумма": None}]),
     "РасшифровкаПлатежа[0].Сумма"),
    (odata.COUNTERPARTIES, counterparty(ИНН=7701234567), "ИНН"),
    (odata.COUNTERPARTIES, counterparty(DeletionMark=None, DataVersion=""), "DataVersion"),
])
def test_malformed_entities(entity_set, entity, field):
    with pytest.raises(MalformedMessage) as err:
        odata.to_object(entity_set, entity)
    assert err.value.field == field
    assert err.value.reason


def test_an_entity_must_be_an_object_and_the_set_known():
    with pytest.raises(MalformedMessage):
        odata.to_object(odata.ORDERS, ["not", "an", "object"])
    with pytest.raises(ValueError, match="does not read"):
        odata.to_object("Catalog_Номенклатура", {"Ref_Key": PRODUCT})


# -- helpers -----------------------------------------------------------------------------------


def test_settlement_object_order():
    assert odata.settlement_object_order({
        "Ref_Key": SETTLEMENT, "Объект": ORDER,
        "Объект_Type": "StandardODATA.Document_ЗаказКлиента"}) == uuid.UUID(ORDER)
    assert odata.settlement_object_order({
        "Ref_Key": SETTLEMENT, "Объект": str(uuid.uuid4()),
        "Объект_Type": "StandardODATA.Catalog_ДоговорыКонтрагентов"}) is None
    assert odata.settlement_keys(payment()) == {SETTLEMENT}


def test_type_names_and_entity_sets():
    assert odata.type_name(odata.ORDERS) == "ДокументСсылка.ЗаказКлиента"
    assert odata.type_name(odata.COUNTERPARTIES) == "СправочникСсылка.Контрагенты"
    with pytest.raises(ValueError):
        odata.type_name("InformationRegister_Цены")
    doc = odata.to_object(odata.PAYMENTS, payment())
    assert odata.entity_set_of(doc) == odata.PAYMENTS
    assert odata.entity_set_of(odata.to_object(odata.COUNTERPARTIES, counterparty())) == \
        odata.COUNTERPARTIES
    assert set(odata.ENTITY_SETS) == {
        "Catalog_Контрагенты", "Catalog_КонтактныеЛицаПартнеров", "Document_ЗаказКлиента",
        "Document_СчетНаОплатуКлиенту", "Document_РеализацияТоваровУслуг",
        "Document_ПоступлениеБезналичныхДенежныхСредств"}
