"""EnterpriseData messages in (parse_message) and out (counterparty_message)."""

import io
import struct
import uuid
import zipfile
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.erp_bridge.domain.enterprisedata import (
    CRM_NS,
    SUPPORTED_VERSIONS,
    contact_kind,
    parse_message,
)
from services.erp_bridge.domain.enterprisedata_out import (
    clean,
    counterparty_contacts,
    counterparty_message,
    legal_kind_for,
    person_contacts,
)
from services.erp_bridge.domain.objects import (
    ContactInfo,
    ContactPerson,
    Counterparty,
    CounterpartyRef,
    Deletion,
    Document,
    DocumentLine,
    MalformedMessage,
    PaymentRow,
)
from services.erp_bridge.tests.ed_samples import (
    contact_info_row,
    contact_person_xml,
    counterparty_xml,
    deletion_xml,
    document_xml,
    ed_message,
    invoice_xml,
    line_xml,
    order_xml,
    payment_xml,
    shipment_xml,
    unknown_catalog_xml,
    vat_struct,
    vat_text,
    zipped,
)

MSK = ZoneInfo("Europe/Moscow")
CP = "3f2a1c9e-5b7d-11ee-8c99-0242ac120002"
PERSON = "4a7e2d10-5b7d-11ee-8c99-0242ac120002"
ORDER = "7c1d9e44-e2b1-11ee-9a3f-0242ac120002"
INVOICE = "8d2e0f55-e2b1-11ee-9a3f-0242ac120002"
INVOICE_BP = "8d2e0f56-e2b1-11ee-9a3f-0242ac120002"
SHIPMENT = "9e3f1066-e2b1-11ee-9a3f-0242ac120002"
PAYMENT = "af402177-e2b1-11ee-9a3f-0242ac120002"
DEAL = "0b6f3c1a-92d4-4e55-9d0e-5c2f0a7d1e33"
SHEET = "c1a2b3d4-0a0b-11ee-8000-0242ac120002"        # Профнастил С8, m²
SCREW = "c1a2b3d5-0a0b-11ee-8000-0242ac120002"        # Саморез, pcs
INN, KPP = "7701234567", "770101001"
CP_NAME = "ООО «Кровельный центр»"
CP_FULL = "Общество с ограниченной ответственностью «Кровельный центр»"
ADDRESS = "125040, Москва г, Ленинградский пр-кт, дом 15, строение 2, офис 301"


def U(text):
    return uuid.UUID(text)


def msk(*args):
    return datetime(*args, tzinfo=MSK)


def order_lines():
    return [
        line_xml(1, SHEET, "Профнастил С8 0,5 RAL 3005", "055", "120.500", "480.00",
                 "57840.00", vat_text("НДС20"), "9640.00"),
        line_xml(2, SCREW, "Саморез кровельный 4,8×35 RAL 3005", "796", "2000", "3.50",
                 "7000.00", vat_struct("20", "Общая"), "1166.67"),
    ]


SHEET_LINE = DocumentLine(1, U(SHEET), "Профнастил С8 0,5 RAL 3005", "055", Decimal("120.5"),
                          Decimal("480"), Decimal("57840.00"), "20%", Decimal("9640.00"))
SCREW_LINE = DocumentLine(2, U(SCREW), "Саморез кровельный 4,8×35 RAL 3005", "796",
                          Decimal("2000"), Decimal("3.5"), Decimal("7000.00"), "20%",
                          Decimal("1166.67"))
CP_REF = CounterpartyRef(U(CP), CP_NAME, INN, KPP)


def sale_message():
    counterparty = counterparty_xml(
        CP, CP_NAME, INN, KPP, phones=["+7 (495) 123-45-67", "8 916 555-27-41"],
        full_name=CP_FULL,
        extra_contact_rows=[
            contact_info_row("АдресЭлектроннойПочты", "zakaz@krovcentr.ru", "json"),
            contact_info_row("ЮридическийАдрес", ADDRESS, "inline"),
        ])
    person = contact_person_xml(PERSON, "Смирнова Ольга Петровна", CP, CP_NAME, INN, KPP,
                                position="Главный инженер", phones=["+7 903 111-22-33"],
                                emails=["o.smirnova@krovcentr.ru"], contact_form="json")
    return ed_message(41, [
        unknown_catalog_xml(),
        counterparty,
        person,
        order_xml(ORDER, "УТ-000123", "2024-03-15T10:30:00", "64840.00", CP, INN, KPP,
                  lines=order_lines(), deal_id=DEAL, responsible="Петров Алексей Викторович",
                  counterparty_name=CP_NAME),
        invoice_xml(INVOICE, "УТ-000057", "2024-03-16T09:00:00", "64840.00", CP, INN, KPP,
                    ORDER, counterparty_name=CP_NAME),
        invoice_xml(INVOICE_BP, "0000-000058", "2024-03-16T09:05:00", "64840.00", CP, INN,
                    KPP, ORDER, name="СчетНаОплатуПокупателю", counterparty_name=CP_NAME),
        shipment_xml(SHIPMENT, "УТ-000310", "2024-03-20T14:00:00", "28920.00", CP, INN, KPP,
                     ORDER, counterparty_name=CP_NAME,
                     lines=[line_xml(1, SHEET, "Профнастил С8 0,5 RAL 3005", "055", "60.250",
                                     "480.00", "28920.00", vat_text("НДС20"), "4820.00")]),
        payment_xml(PAYMENT, "000000412", "2024-03-18T11:00:00", "40000.00", CP, INN, KPP,
                    rows=[(ORDER, "30000.00"), (None, "10000.00")], counterparty_name=CP_NAME),
    ], received_no=17)


# ---------------------------------------------------------------------------------------------
# A realistic sale
# ---------------------------------------------------------------------------------------------

def test_a_realistic_sale_reads_into_plain_objects():
    message = parse_message(sale_message())

    header = message.header
    assert header.format.split() == [
        "http://v8.1c.ru/edi/edi_stnd/EnterpriseData/1.8", CRM_NS]
    assert header.created_at == msk(2024, 3, 15, 18, 5, 11)
    assert (header.exchange_plan, header.sender, header.receiver) == (
        "СинхронизацияДанныхЧерезУниверсальныйФормат", "UT", "CRM")
    assert (header.message_no, header.received_no) == (41, 17)
    assert header.available_versions == ("1.6", "1.7", "1.8", "1.10", "1.11")

    counterparty, person, order, invoice, invoice_bp, shipment, payment = message.objects
    assert counterparty == Counterparty(
        guid=U(CP), name=CP_NAME, full_name=CP_FULL, inn=INN, kpp=KPP,
        legal_kind="ЮридическоеЛицо",
        contacts=(ContactInfo("phone", "+7 (495) 123-45-67"),
                  ContactInfo("phone", "8 916 555-27-41"),
                  ContactInfo("email", "zakaz@krovcentr.ru"),
                  ContactInfo("address", ADDRESS)))
    assert person == ContactPerson(
        guid=U(PERSON), owner_guid=U(CP), full_name="Смирнова Ольга Петровна",
        position="Главный инженер",
        contacts=(ContactInfo("phone", "+7 903 111-22-33"),
                  ContactInfo("email", "o.smirnova@krovcentr.ru")))
    assert order == Document(
        kind="order", guid=U(ORDER), number="УТ-000123", date=msk(2024, 3, 15, 10, 30),
        amount=Decimal("64840.00"), currency="RUB", counterparty=CP_REF, posted=True,
        deletion_mark=False, order_guid=None, deal_id=U(DEAL),
        responsible="Петров Алексей Викторович", lines=(SHEET_LINE, SCREW_LINE))
    assert order.lines[0].unit_code == "055" and order.lines[1].unit_code == "796"
    assert str(order.amount) == "64840.00"
    for doc, guid, number in ((invoice, INVOICE, "УТ-000057"),
                              (invoice_bp, INVOICE_BP, "0000-000058")):
        assert (doc.kind, doc.guid, doc.number, doc.order_guid) == (
            "invoice", U(guid), number, U(ORDER))
        assert doc.amount == Decimal("64840.00") and doc.counterparty == CP_REF
    assert shipment.kind == "shipment" and shipment.order_guid == U(ORDER)
    assert shipment.amount == Decimal("28920.00")
    assert shipment.lines == (DocumentLine(1, U(SHEET), "Профнастил С8 0,5 RAL 3005", "055",
                                           Decimal("60.25"), Decimal("480"),
                                           Decimal("28920.00"), "20%", Decimal("4820.00")),)
    assert payment == Document(
        kind="payment", guid=U(PAYMENT), number="000000412", date=msk(2024, 3, 18, 11),
        amount=Decimal("40000.00"), counterparty=CP_REF,
        payment_rows=(PaymentRow(U(ORDER), Decimal("30000.00")),
                      PaymentRow(None, Decimal("10000.00"))))


def test_a_zipped_message_reads_the_same_and_a_utf8_bom_is_fine():
    data = sale_message()
    assert parse_message(zipped(data)) == parse_message(data)
    assert parse_message(b"\xef\xbb\xbf" + data) == parse_message(data)
    assert parse_message(zipped(data, name="Data/Message_UT_CRM.XML")) == parse_message(data)


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_every_supported_version_reads(version):
    data = ed_message(1, [order_xml(ORDER, "1", "2024-03-15T10:30:00", "10.00", CP, INN, KPP)],
                      version=version)
    (order,) = parse_message(data).objects
    assert order.guid == U(ORDER)


def test_header_without_optional_fields_and_body():
    data = ed_message(3, [], created=None, available_versions=(), extension=False)
    message = parse_message(data)
    assert message.header.created_at is None and message.header.received_no is None
    assert message.header.available_versions == ()
    assert message.objects == ()
    no_body = data.replace(b"<Body", b"<!--").replace(b"</Body>", b"-->")
    assert parse_message(no_body).objects == ()


# ---------------------------------------------------------------------------------------------
# Posting, deletion mark, deletion
# ---------------------------------------------------------------------------------------------

def test_unposted_and_deletion_marked_documents():
    data = ed_message(42, [
        order_xml(ORDER, "УТ-000123", "2024-03-15T10:30:00", "64840.00", CP, INN, KPP,
                  posted=False),
        invoice_xml(INVOICE, "УТ-000057", "2024-03-16T09:00:00", "64840.00", CP, INN, KPP,
                    ORDER, posted=False, deletion_mark=True),
    ])
    order, invoice = parse_message(data).objects
    assert (order.posted, order.deletion_mark) == (False, False)
    assert (invoice.posted, invoice.deletion_mark) == (False, True)


def test_without_the_crm_flags_a_document_is_posted_and_not_marked():
    data = ed_message(1, [order_xml(ORDER, "1", "2024-03-15T10:30:00", "10", CP, INN, KPP,
                                    crm_flags=False)], extension=False)
    (order,) = parse_message(data).objects
    assert (order.posted, order.deletion_mark, order.deal_id, order.responsible) == (
        True, False, None, None)
    assert order.amount == Decimal("10.00")


def test_flags_accept_xs_boolean_forms():
    xml = order_xml(ORDER, "1", "2024-03-15T10:30:00", "10", CP, INN, KPP, posted=False)
    xml = xml.replace("<crm:Проведен>false<", "<crm:Проведен>0<")
    (order,) = parse_message(ed_message(1, [xml])).objects
    assert order.posted is False


def test_deletion_marked_counterparty_and_contact_person():
    person = contact_person_xml(PERSON, "Смирнова О. П.", CP).replace(
        "</Справочник.КонтактныеЛица>",
        "<crm:ПометкаУдаления>true</crm:ПометкаУдаления></Справочник.КонтактныеЛица>")
    data = ed_message(5, [counterparty_xml(CP, CP_NAME, INN, KPP, deletion_mark=True), person])
    counterparty, contact = parse_message(data).objects
    assert counterparty.deletion_mark is True
    assert contact.deletion_mark is True


def test_object_deletion():
    data = ed_message(43, [
        deletion_xml("ДокументСсылка.ЗаказКлиента", ORDER),
        deletion_xml("СправочникСсылка.Контрагенты", CP),
        deletion_xml("ДокументСсылка.ПоступлениеБезналичныхДенежныхСредств", PAYMENT),
    ])
    assert parse_message(data).objects == (
        Deletion("ДокументСсылка.ЗаказКлиента", U(ORDER)),
        Deletion("СправочникСсылка.Контрагенты", U(CP)),
        Deletion("ДокументСсылка.ПоступлениеБезналичныхДенежныхСредств", U(PAYMENT)),
    )


# ---------------------------------------------------------------------------------------------
# What is skipped, and tolerated shapes
# ---------------------------------------------------------------------------------------------

def test_unknown_catalogs_and_documents_are_skipped():
    data = ed_message(2, [
        unknown_catalog_xml(),
        "<Справочник.Склады><КлючевыеСвойства><Ссылка>не GUID вовсе</Ссылка>"
        "</КлючевыеСвойства></Справочник.Склады>",
        document_xml("ПеремещениеТоваров", str(uuid.uuid4()), "1", "2024-03-15T00:00:00",
                     "1.00", None, None, None),
        "<crm:ЧтоТоСвоё>1</crm:ЧтоТоСвоё>",
        order_xml(ORDER, "1", "2024-03-15T10:30:00", "10", CP, INN, KPP),
    ])
    (order,) = parse_message(data).objects
    assert order.guid == U(ORDER)


@pytest.mark.parametrize("operation", ["ПоступлениеОплатыОтКлиента", "ОплатаПокупателя"])
def test_customer_payments_are_read(operation):
    data = ed_message(1, [payment_xml(PAYMENT, "1", "2024-03-18T00:00:00", "500", CP, INN, KPP,
                                      rows=[(ORDER, "500")], operation=operation)])
    (payment,) = parse_message(data).objects
    assert payment.payment_rows == (PaymentRow(U(ORDER), Decimal("500.00")),)


@pytest.mark.parametrize("operation", ["ВозвратОтПоставщика", "ПрочееПоступление",
                                       "ПолучениеКредитаЗайма", None])
def test_other_bank_receipts_are_skipped_not_errors(operation):
    data = ed_message(1, [payment_xml(PAYMENT, "1", "2024-03-18T00:00:00", "500", CP, INN, KPP,
                                      operation=operation)])
    assert parse_message(data).objects == ()


def test_payment_rows_name_the_order_in_the_standard_forms_too():
    data = ed_message(1, [
        payment_xml(PAYMENT, "1", "2024-03-18T00:00:00", "300", CP, INN, KPP,
                    rows=[(ORDER, "100"), (INVOICE, "200")], row_order_element="Заказ"),
    ])
    (payment,) = parse_message(data).objects
    assert [row.order_guid for row in payment.payment_rows] == [U(ORDER), U(INVOICE)]
    typed = payment_xml(PAYMENT, "1", "2024-03-18T00:00:00", "100", CP, INN, KPP,
                        rows=[(None, "100")]).replace(
        "<Сумма>100</Сумма></Строка>",
        "<Сумма>100</Сумма><ДокументОснование><ЗаказКлиента><Ссылка>"
        f"{ORDER}</Ссылка></ЗаказКлиента></ДокументОснование></Строка>")
    (payment,) = parse_message(ed_message(1, [typed])).objects
    assert payment.payment_rows == (PaymentRow(U(ORDER), Decimal("100.00")),)


def test_counterparty_with_persons_embedded_as_contact_info_gives_nothing_extra():
    embedded = (
        "<КонтактныеЛица><Строка><ФИО>Кузнецов Пётр</ФИО><Должность>Прораб</Должность>"
        + "<КонтактнаяИнформация>"
        + contact_info_row("Телефон", "+7 999 000-00-00")
        + "</КонтактнаяИнформация></Строка></КонтактныеЛица>")
    person_row = contact_info_row("КонтактноеЛицо", "Кузнецов Пётр, прораб, +7 999 000-00-00")
    data = ed_message(1, [counterparty_xml(CP, CP_NAME, INN, KPP, phones=["+7 495 1"],
                                           extra_contact_rows=[person_row],
                                           extra_xml=embedded)])
    (counterparty,) = parse_message(data).objects
    assert counterparty.contacts == (
        ContactInfo("phone", "+7 495 1"),
        ContactInfo("other", "Кузнецов Пётр, прораб, +7 999 000-00-00"))


@pytest.mark.parametrize("element", ["Справочник.КонтактныеЛица",
                                     "Справочник.КонтактныеЛицаПартнеров"])
def test_contact_person_element_names(element):
    data = ed_message(1, [contact_person_xml(PERSON, "Смирнова О. П.", CP, element=element)])
    (person,) = parse_message(data).objects
    assert (person.guid, person.owner_guid, person.full_name) == (U(PERSON), U(CP),
                                                                  "Смирнова О. П.")


def test_contact_person_fio_as_a_structure_and_owner_as_bare_guid():
    xml = (f"<Справочник.КонтактныеЛица><КлючевыеСвойства><Ссылка>{PERSON}</Ссылка>"
           f"<Владелец>{CP}</Владелец></КлючевыеСвойства><ФИО><Фамилия>Смирнова</Фамилия>"
           "<Имя>Ольга</Имя><Отчество>Петровна</Отчество></ФИО></Справочник.КонтактныеЛица>")
    (person,) = parse_message(ed_message(1, [xml])).objects
    assert person == ContactPerson(U(PERSON), U(CP), "Смирнова Ольга Петровна")


def test_contact_info_kinds_and_forms():
    rows = [
        contact_info_row("ТелефонОрганизации", "+7 495 111-11-11"),
        contact_info_row("Факс", "+7 495 111-11-12"),
        contact_info_row("ЭлектроннаяПочта", "info@example.ru", "json"),
        contact_info_row("ПочтовыйАдрес", "Москва, а/я 15", "json"),
        contact_info_row("ВебСайт", "krovcentr.ru"),
        # No kind name: the BSP value's type decides.
        contact_info_row("Телефон", "+7 495 222-22-22").replace(
            "<ВидКонтактнойИнформации>Телефон</ВидКонтактнойИнформации>", ""),
        # Unreadable values are skipped, not errors.
        "<Строка><ВидКонтактнойИнформации>Телефон</ВидКонтактнойИнформации>"
        "<ЗначенияПолей>&lt;КонтактнаяИнформация Представление=</ЗначенияПолей></Строка>",
        "<Строка><ВидКонтактнойИнформации>Телефон</ВидКонтактнойИнформации>"
        "<ЗначенияПолей>{\"value\": </ЗначенияПолей></Строка>",
        "<Строка><ВидКонтактнойИнформации>Телефон</ВидКонтактнойИнформации>"
        "<ЗначенияПолей>[1, 2]</ЗначенияПолей></Строка>",
        "<Строка><ВидКонтактнойИнформации>Телефон</ВидКонтактнойИнформации></Строка>",
        # The oldest "key=value" form.
        "<Строка><ВидКонтактнойИнформации>Телефон</ВидКонтактнойИнформации>"
        "<ЗначенияПолей>Представление=+7 495 333-33-33\nКодСтраны=7</ЗначенияПолей></Строка>",
    ]
    data = ed_message(1, [counterparty_xml(CP, CP_NAME, INN, KPP, extra_contact_rows=rows)])
    (counterparty,) = parse_message(data).objects
    assert counterparty.contacts == (
        ContactInfo("phone", "+7 495 111-11-11"),
        ContactInfo("other", "+7 495 111-11-12"),
        ContactInfo("email", "info@example.ru"),
        ContactInfo("address", "Москва, а/я 15"),
        ContactInfo("other", "krovcentr.ru"),
        ContactInfo("phone", "+7 495 222-22-22"),
        ContactInfo("phone", "+7 495 333-33-33"),
    )


@pytest.mark.parametrize("name, kind", [
    ("Телефон", "phone"), ("МобильныйТелефон", "phone"), ("НомерТелефона", "phone"),
    ("АдресЭлектроннойПочты", "email"), ("ЭлектроннаяПочта", "email"),
    ("ЮридическийАдрес", "address"), ("ФактическийАдрес", "address"),
    ("ПочтовыйАдрес", "address"), ("Адрес", "address"), ("Факс", "other"),
    ("ВебСайт", "other"), ("", "other"), (None, "other"),
])
def test_contact_kind(name, kind):
    assert contact_kind(name) == kind


@pytest.mark.parametrize("vat, expected", [
    (vat_text("НДС20"), "20%"), (vat_text("НДС10"), "10%"), (vat_text("НДС0"), "0%"),
    (vat_text("БезНДС"), "без НДС"), (vat_text("НДС20_120"), "20/120"),
    (vat_text("НДС10_110"), "10/110"), (vat_text("20%"), "20%"), (vat_text("НДС5"), "5%"),
    (vat_text("Особая"), "Особая"),
    (vat_struct("20", "Общая"), "20%"), (vat_struct("10.00", "Пониженная"), "10%"),
    (vat_struct("20", "Расчетная"), "20/120"), (vat_struct(None, "БезНДС"), "без НДС"),
    (vat_struct("0", "Нулевая"), "0%"),
])
def test_vat_rate_in_both_forms(vat, expected):
    line = line_xml(1, SHEET, "Профнастил", "055", "1", "100", "100.00", vat, "16.67")
    data = ed_message(1, [order_xml(ORDER, "1", "2024-03-15T10:30:00", "100", CP, INN, KPP,
                                    lines=[line])], version="1.12")
    (order,) = parse_message(data).objects
    assert order.lines[0].vat_rate == expected


@pytest.mark.parametrize("code, currency", [("643", "RUB"), ("978", "EUR"), ("840", "USD"),
                                            ("156", "CNY"), ("999", "999"), (None, "RUB")])
def test_currency_by_okv_code(code, currency):
    data = ed_message(1, [order_xml(ORDER, "1", "2024-03-15T10:30:00", "1", CP, INN, KPP,
                                    currency=code)])
    (order,) = parse_message(data).objects
    assert order.currency == currency


def test_dates_without_a_zone_are_moscow_and_with_a_zone_are_converted():
    data = ed_message(1, [
        order_xml(ORDER, "1", "2024-03-15T23:30:00", "1", CP, INN, KPP),
        order_xml(INVOICE, "2", "2024-03-15T20:30:00Z", "1", CP, INN, KPP),
    ])
    first, second = parse_message(data).objects
    assert first.date == msk(2024, 3, 15, 23, 30) and first.date.utcoffset().seconds == 3 * 3600
    assert second.date == msk(2024, 3, 15, 23, 30)


def test_amounts_are_rounded_to_kopecks_and_missing_ones_are_summed():
    lines = [line_xml(1, SHEET, "Лист", "055", "2.5", "99.99", None),
             line_xml(2, SCREW, "Саморез", "796", "3", "1.005", "3.015")]
    data = ed_message(1, [order_xml(ORDER, "1", "2024-03-15T10:30:00", None, CP, INN, KPP,
                                    lines=lines)])
    (order,) = parse_message(data).objects
    assert [line.amount for line in order.lines] == [Decimal("249.98"), Decimal("3.02")]
    assert order.amount == Decimal("253.00")


def test_counterparty_ref_without_ref_and_responsible_as_text():
    xml = order_xml(ORDER, "1", "2024-03-15T10:30:00", "1", None, None, None).replace(
        "<СуммаВключаетНДС>",
        "<Контрагент><Наименование>Розничный покупатель</Наименование></Контрагент>"
        "<ОбщиеСвойстваОбъектовФормата><Ответственный>Иванов</Ответственный>"
        "</ОбщиеСвойстваОбъектовФормата><СуммаВключаетНДС>")
    (order,) = parse_message(ed_message(1, [xml])).objects
    assert order.counterparty == CounterpartyRef(None, "Розничный покупатель")
    assert order.responsible == "Иванов"


def test_individual_entrepreneur():
    xml = counterparty_xml(CP, "ИП Соколов А. А.", "500100732259", None,
                           legal_kind="ФизическоеЛицо").replace(
        "</КлючевыеСвойства>",
        "</КлючевыеСвойства><ИндивидуальныйПредприниматель>true</ИндивидуальныйПредприниматель>")
    (counterparty,) = parse_message(ed_message(1, [xml])).objects
    assert counterparty.legal_kind == "ИндивидуальныйПредприниматель"
    assert counterparty.kpp is None and counterparty.inn == "500100732259"


# ---------------------------------------------------------------------------------------------
# Malformed input
# ---------------------------------------------------------------------------------------------

def rejected(data, **limits) -> MalformedMessage:
    with pytest.raises(MalformedMessage) as caught:
        parse_message(data, **limits)
    assert caught.value.reason and str(caught.value) == caught.value.reason
    return caught.value


def one_order(**kw):
    return order_xml(ORDER, "1", "2024-03-15T10:30:00", "10", CP, INN, KPP, **kw)


@pytest.mark.parametrize("data, reason", [
    (b"", "Пустое сообщение"),
    (b"   \n", "Пустое сообщение"),
    (b"hello, 1C", "Не XML"),
    ("Сообщение 1С".encode("cp1251"), "Не XML"),
    (b"<Message><msg:Header></Message>", "Не XML"),
    (b"\x00\x01\x02PK", "Не XML"),
])
def test_not_xml(data, reason):
    assert reason in rejected(data).reason


def test_truncated_xml():
    data = sale_message()
    error = rejected(data[: len(data) // 2])
    assert "оборван" in error.reason


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE Message [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Message>&lol9;</Message>
"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE Message [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Message>&xxe;</Message>
"""


@pytest.mark.parametrize("data", [
    BILLION_LAUGHS,
    XXE,
    b'<?xml version="1.0"?><!DOCTYPE Message><Message/>',
    zipped(BILLION_LAUGHS),
])
def test_dtd_and_entities_are_refused(data):
    assert "DTD" in rejected(data).reason


def test_entities_inside_contact_info_are_refused_too():
    bomb = BILLION_LAUGHS.decode().replace("<Message>&lol9;</Message>",
                                           '<КонтактнаяИнформация Представление="&lol9;"/>')
    row = ("<Строка><ВидКонтактнойИнформации>Телефон</ВидКонтактнойИнформации>"
           f"<ЗначенияПолей>{bomb.replace('&', '&amp;').replace('<', '&lt;')}"
           "</ЗначенияПолей></Строка>")
    data = ed_message(1, [counterparty_xml(CP, CP_NAME, INN, KPP, extra_contact_rows=[row])])
    error = rejected(data)
    assert "DTD" in error.reason
    assert error.field == ("Body/Справочник.Контрагенты[1]/КонтактнаяИнформация/Строка[1]"
                           "/ЗначенияПолей")


def test_size_limit_raw_and_default_20_mb():
    data = sale_message()
    assert "больше допустимого" in rejected(data, max_bytes=len(data) - 1).reason
    assert parse_message(data, max_bytes=len(data)).header.message_no == 41
    huge = b"<Message>" + b" " * (20 * 1024 * 1024) + b"</Message>"
    assert "больше допустимого" in rejected(huge).reason


def _patch_declared_size(archive: bytes, size: int) -> bytes:
    """Rewrite the uncompressed size the central directory declares for the first member."""
    at = archive.index(b"PK\x01\x02")
    return archive[:at + 24] + struct.pack("<I", size) + archive[at + 28:]


def test_zip_bombs_are_refused_before_extracting():
    declared = _patch_declared_size(zipped(sale_message()), 0xFFFFFFF0)
    error = rejected(declared)
    assert "распаковывается" in error.reason and error.field == "zip"
    # A real one: 30 MB of blanks compress to a few kilobytes.
    real = zipped(b"<Message>" + b" " * (30 * 1024 * 1024) + b"</Message>")
    assert len(real) < 100_000
    assert "распаковывается" in rejected(real).reason


def test_a_zip_that_understates_its_size_is_not_read_past_the_declared_size():
    data = sale_message()
    lying = _patch_declared_size(zipped(data), 100)
    assert "zip" in rejected(lying).reason


def test_zip_with_no_or_several_xml_or_broken():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "не сообщение")
    assert "нет файла .xml" in rejected(buffer.getvalue()).reason
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Message_UT_CRM.xml", sale_message())
        archive.writestr("Message_UT_CRM_2.xml", sale_message())
    assert "несколько файлов .xml" in rejected(buffer.getvalue()).reason
    assert "повреждён" in rejected(zipped(sale_message())[:200]).reason
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Message_UT_CRM.xml", sale_message())
        archive.writestr("notes.txt", "лишний файл не мешает")
    assert parse_message(buffer.getvalue()).header.message_no == 41


def test_wrong_root():
    error = rejected(b"<Root><Header/></Root>")
    assert "Корневой элемент" in error.reason and error.field == "Message"
    error = rejected(b'<Message xmlns="urn:other"/>')
    assert "Корневой элемент" in error.reason


@pytest.mark.parametrize("change, reason, field", [
    ({"exchange_plan": None}, "msg:ExchangePlan", "Header/Confirmation/ExchangePlan"),
    ({"sender": None}, "msg:From", "Header/Confirmation/From"),
    ({"receiver": None}, "msg:To", "Header/Confirmation/To"),
    ({"message_no": None}, "msg:MessageNo", "Header/Confirmation/MessageNo"),
    ({"format_ns": ""}, "msg:Format", "Header/Format"),
    ({"message_no": "двадцать"}, "не целое число", "Header/Confirmation/MessageNo"),
    ({"message_no": "1.5"}, "не целое число", "Header/Confirmation/MessageNo"),
    ({"message_no": "-3"}, "не целое число", "Header/Confirmation/MessageNo"),
    ({"received_no": "x"}, "не целое число", "Header/Confirmation/ReceivedNo"),
    ({"created": "вчера"}, "не дата", "Header/CreationDate"),
    ({"version": "1.99"}, "Неизвестный формат", "Header/Format"),
    ({"format_ns": "http://v8.1c.ru/8.1/data/enterprise/current-config"},
     "Неизвестный формат", "Header/Format"),
    ({"format_ns": CRM_NS}, "Неизвестный формат", "Header/Format"),
    ({"body_ns": "http://v8.1c.ru/edi/edi_stnd/EnterpriseData/1.7"}, "Body", "Body"),
])
def test_bad_header(change, reason, field):
    kwargs = {"message_no": 5, **change}
    message_no = kwargs.pop("message_no")
    error = rejected(ed_message(message_no, [one_order()], **kwargs))
    assert reason in error.reason
    assert error.field == field


def test_missing_header_or_confirmation():
    data = ed_message(5, [])
    no_header = data.replace(b"<msg:Header>", b"<msg:Skip>").replace(b"</msg:Header>",
                                                                     b"</msg:Skip>")
    assert rejected(no_header).field == "Header"
    no_confirmation = data.replace(b"msg:Confirmation>", b"msg:Other>")
    assert rejected(no_confirmation).field == "Header/Confirmation"


def test_document_without_ref_names_the_object_and_the_field():
    data = ed_message(5, [
        counterparty_xml(CP, CP_NAME, INN, KPP),
        one_order(),
        order_xml(INVOICE, "2", "2024-03-15T10:30:00", "10", CP, INN, KPP),
        order_xml(None, "3", "2024-03-15T10:30:00", "10", CP, INN, KPP),
    ])
    error = rejected(data)
    assert error.reason == "Документ.ЗаказКлиента без Ссылки"
    assert error.field == "Body/Документ.ЗаказКлиента[3]/КлючевыеСвойства/Ссылка"


@pytest.mark.parametrize("xml, reason, field", [
    (counterparty_xml(None, CP_NAME, INN, KPP), "Справочник.Контрагенты без Ссылки",
     "Body/Справочник.Контрагенты[1]/КлючевыеСвойства/Ссылка"),
    (counterparty_xml("12345", CP_NAME, INN, KPP), "не GUID",
     "Body/Справочник.Контрагенты[1]/КлючевыеСвойства/Ссылка"),
    (contact_person_xml(None, "Смирнова", CP), "Справочник.КонтактныеЛица без Ссылки",
     "Body/Справочник.КонтактныеЛица[1]/КлючевыеСвойства/Ссылка"),
    (contact_person_xml(PERSON, "Смирнова", "не-guid"), "Владелец",
     "Body/Справочник.КонтактныеЛица[1]/КлючевыеСвойства/Владелец/Ссылка"),
    (order_xml("7c1d9e44-e2b1-11ee-9a3f-0242ac12000Z", "1", "2024-03-15T10:30:00", "1", CP,
               INN, KPP), "не GUID", "Body/Документ.ЗаказКлиента[1]/КлючевыеСвойства/Ссылка"),
    (order_xml("00000000-0000-0000-0000-000000000000", "1", "2024-03-15T10:30:00", "1", CP,
               INN, KPP), "нулевой GUID",
     "Body/Документ.ЗаказКлиента[1]/КлючевыеСвойства/Ссылка"),
    (order_xml(ORDER, "1", "2024-03-15T10:30:00", "1 000,50", CP, INN, KPP), "не число",
     "Body/Документ.ЗаказКлиента[1]/Сумма"),
    (order_xml(ORDER, "1", "2024-03-15T10:30:00", "NaN", CP, INN, KPP), "не число",
     "Body/Документ.ЗаказКлиента[1]/Сумма"),
    (order_xml(ORDER, "1", "2024-03-15T10:30:00", "1e6", CP, INN, KPP), "не число",
     "Body/Документ.ЗаказКлиента[1]/Сумма"),
    (order_xml(ORDER, "1", "2024-03-15T10:30:00", "1", CP, INN, KPP,
               lines=[line_xml(1, SHEET, "Лист", "055", "десять", "1", "1")]), "не число",
     "Body/Документ.ЗаказКлиента[1]/Товары/Строка[1]/Количество"),
    (order_xml(ORDER, "1", "2024-03-15T10:30:00", "1", CP, INN, KPP,
               lines=[line_xml(1, SHEET, "Лист", "055", "1", "1", "1"),
                      line_xml(2, SHEET, "Лист", "055", "1", "1", "1", None, "abc")]),
     "не число", "Body/Документ.ЗаказКлиента[1]/Товары/Строка[2]/СуммаНДС"),
    (order_xml(ORDER, "1", "15.03.2024 10:30:00", "1", CP, INN, KPP), "не дата",
     "Body/Документ.ЗаказКлиента[1]/КлючевыеСвойства/Дата"),
    (order_xml(ORDER, "1", None, "1", CP, INN, KPP), "Документ.ЗаказКлиента без Даты",
     "Body/Документ.ЗаказКлиента[1]/КлючевыеСвойства/Дата"),
    (order_xml(ORDER, "1", "0001-01-01T00:00:00", "1", CP, INN, KPP),
     "Документ.ЗаказКлиента без Даты", "Body/Документ.ЗаказКлиента[1]/КлючевыеСвойства/Дата"),
    (order_xml(ORDER, "1", "2024-03-15T10:30:00", "1", "не-guid", INN, KPP), "Контрагент",
     "Body/Документ.ЗаказКлиента[1]/Контрагент/Ссылка"),
    (order_xml(ORDER, "1", "2024-03-15T10:30:00", "1", CP, INN, KPP, deal_id="сделка-7"),
     "Сделка", "Body/Документ.ЗаказКлиента[1]/crm:Сделка"),
    (order_xml(ORDER, "1", "2024-03-15T10:30:00", "1", CP, INN, KPP).replace(
        "<crm:Проведен>true", "<crm:Проведен>да"), "не true/false",
     "Body/Документ.ЗаказКлиента[1]/crm:Проведен"),
    (invoice_xml(INVOICE, "1", "2024-03-15T10:30:00", "1", CP, INN, KPP, "123"), "crm:Заказ",
     "Body/Документ.СчетНаОплатуКлиенту[1]/crm:Заказ/Ссылка"),
    (payment_xml(PAYMENT, "1", "2024-03-18T00:00:00", "5", CP, INN, KPP,
                 rows=[(ORDER, "5,00")]), "не число",
     "Body/Документ.ПоступлениеБезналичныхДенежныхСредств[1]/РасшифровкаПлатежа/Строка[1]"
     "/Сумма"),
    (deletion_xml("ДокументСсылка.ЗаказКлиента", "нет"), "не GUID",
     "Body/УдалениеОбъекта[1]/СсылкаНаОбъект/СсылкаНаОбъект/ДокументСсылка.ЗаказКлиента[1]"),
    ("<УдалениеОбъекта><СсылкаНаОбъект><СсылкаНаОбъект/></СсылкаНаОбъект></УдалениеОбъекта>",
     "без ссылки", "Body/УдалениеОбъекта[1]/СсылкаНаОбъект/СсылкаНаОбъект"),
])
def test_unreadable_objects(xml, reason, field):
    error = rejected(ed_message(9, [xml]))
    assert reason in error.reason
    assert error.field == field


def test_object_limit():
    objects = [deletion_xml("ДокументСсылка.ЗаказКлиента", str(uuid.uuid4()))
               for _ in range(11)]
    error = rejected(ed_message(1, objects), max_objects=10)
    assert "11 объектов" in error.reason and error.field == "Body"
    assert len(parse_message(ed_message(1, objects[:10]), max_objects=10).objects) == 10


# ---------------------------------------------------------------------------------------------
# Out: a CRM client to 1C, and back
# ---------------------------------------------------------------------------------------------

CLIENT = {
    "guid": CP, "short_name": 'ООО "Кровля & Фасад" <Север>',
    "full_name": "Общество с ограниченной ответственностью «Кровля & Фасад»",
    "inn": "7701234567", "kpp": "770101001", "legal_form": "ООО",
    "phones": ["+7 (495) 123-45-67", ""], "emails": ["zakaz@krovlya.ru"],
    "address": "Москва, ул. «Новая», д. 1 <корп. 2>\nофис 3",
}
CONTACTS = [{"guid": PERSON, "full_name": "Смирнова Ольга Петровна", "position": "Главный инженер",
             "phones": ["+7 903 111-22-33"], "emails": ["o.smirnova@krovlya.ru"]}]


def test_counterparty_message_reads_back():
    data = counterparty_message(sender="CRM", receiver="UT", message_no=12, received_no=41,
                                counterparty=CLIENT, contacts=CONTACTS,
                                created_at=msk(2024, 3, 15, 12, 0))
    message = parse_message(data)
    header = message.header
    assert (header.sender, header.receiver, header.message_no, header.received_no) == (
        "CRM", "UT", 12, 41)
    assert header.format == "http://v8.1c.ru/edi/edi_stnd/EnterpriseData/1.8"
    assert header.created_at == msk(2024, 3, 15, 12, 0)
    assert header.available_versions == SUPPORTED_VERSIONS
    assert message.objects == (
        Counterparty(
            guid=U(CP), name='ООО "Кровля & Фасад" <Север>', full_name=CLIENT["full_name"],
            inn="7701234567", kpp="770101001", legal_kind="ЮридическоеЛицо",
            contacts=(ContactInfo("phone", "+7 (495) 123-45-67"),
                      ContactInfo("email", "zakaz@krovlya.ru"),
                      ContactInfo("address", CLIENT["address"]))),
        ContactPerson(
            guid=U(PERSON), owner_guid=U(CP), full_name="Смирнова Ольга Петровна",
            position="Главный инженер",
            contacts=(ContactInfo("phone", "+7 903 111-22-33"),
                      ContactInfo("email", "o.smirnova@krovlya.ru"))),
    )
    text = data.decode("utf-8")
    assert "<msg:ReceivedNo>41</msg:ReceivedNo>" in text
    assert "<ВидКонтактнойИнформации>Телефон</ВидКонтактнойИнформации>" in text
    assert "Представление=" in text     # BSP contact-info XML, escaped inside ЗначенияПолей


def test_counterparty_message_options_and_refusals():
    data = counterparty_message(sender="CRM", receiver="UT", message_no=0, received_no=None,
                                counterparty={"guid": uuid.UUID(CP), "full_name": "ИП Соколов",
                                              "inn": "500100732259", "legal_form": "ИП"},
                                contacts=[], version="1.11")
    message = parse_message(data)
    assert message.header.received_no is None
    assert message.header.format.endswith("/1.11")
    assert message.objects == (Counterparty(U(CP), "ИП Соколов", "ИП Соколов", "500100732259",
                                            None, "ФизическоеЛицо"),)
    common = dict(sender="CRM", receiver="UT", message_no=1, received_no=None, contacts=[])
    with pytest.raises(ValueError, match="1.99"):
        counterparty_message(counterparty=CLIENT, version="1.99", **common)
    with pytest.raises(ValueError, match="GUID"):
        counterparty_message(counterparty={**CLIENT, "guid": None}, **common)
    with pytest.raises(ValueError, match="GUID"):
        counterparty_message(counterparty=CLIENT, **{**common, "contacts": [{"guid": "x"}]})
    with pytest.raises(ValueError):
        counterparty_message(counterparty=CLIENT, **{**common, "message_no": -1})


@pytest.mark.parametrize("legal_form, inn, kind", [
    ("ООО", "7701234567", "ЮридическоеЛицо"), ("АО", None, "ЮридическоеЛицо"),
    ("ИП", "500100732259", "ФизическоеЛицо"), (None, "500100732259", "ФизическоеЛицо"),
    (None, "7701234567", "ЮридическоеЛицо"), (None, None, None),
    ("ЮридическоеЛицо", None, "ЮридическоеЛицо"),
])
def test_legal_kind_for(legal_form, inn, kind):
    assert legal_kind_for(legal_form, inn) == kind


SPECIALS = list('«»"\'&<>;—№ \n\t\r') + list("АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯабвгдеёжзийклмно")
TEXT = st.text(alphabet=st.one_of(st.sampled_from(SPECIALS),
                                  st.characters(exclude_categories=("Cs",))), max_size=40)
DIGITS = st.sampled_from("0123456789")
INNS = st.one_of(st.text(DIGITS, min_size=10, max_size=10),
                 st.text(DIGITS, min_size=12, max_size=12))


@st.composite
def clients(draw):
    counterparty = {
        "guid": draw(st.uuids()), "short_name": draw(TEXT), "full_name": draw(TEXT),
        "inn": draw(INNS), "kpp": draw(st.one_of(st.none(), st.text(DIGITS, min_size=9,
                                                                    max_size=9))),
        "legal_form": draw(st.sampled_from([None, "ООО", "ИП", "АО", "ПАО"])),
        "phones": draw(st.lists(TEXT, max_size=3)), "emails": draw(st.lists(TEXT, max_size=2)),
        "address": draw(st.one_of(st.none(), TEXT)),
    }
    persons = draw(st.lists(st.fixed_dictionaries({
        "guid": st.uuids(), "full_name": TEXT, "position": TEXT,
        "phones": st.lists(TEXT, max_size=2), "emails": st.lists(TEXT, max_size=2),
    }), max_size=3))
    return counterparty, persons


def expected_contacts(items):
    return tuple(ContactInfo(kind, clean(value)) for kind, value in items if clean(value))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clients(), st.integers(min_value=0, max_value=10**9),
       st.sampled_from(SUPPORTED_VERSIONS))
def test_out_then_in_round_trips(client, message_no, version):
    counterparty, persons = client
    data = counterparty_message(sender="CRM", receiver="UT", message_no=message_no,
                                received_no=None, counterparty=counterparty, contacts=persons,
                                version=version)
    message = parse_message(data)
    assert message.header.message_no == message_no
    full_name = clean(counterparty["full_name"])
    expected = [Counterparty(
        guid=counterparty["guid"], name=clean(counterparty["short_name"]) or full_name,
        full_name=full_name, inn=counterparty["inn"], kpp=counterparty["kpp"],
        legal_kind=legal_kind_for(counterparty["legal_form"], counterparty["inn"]),
        contacts=expected_contacts(counterparty_contacts(counterparty)))]
    expected += [ContactPerson(
        guid=person["guid"], owner_guid=counterparty["guid"],
        full_name=clean(person["full_name"]), position=clean(person["position"]),
        contacts=expected_contacts(person_contacts(person))) for person in persons]
    assert list(message.objects) == expected
