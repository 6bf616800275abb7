"""Builders of realistic 1C EnterpriseData messages for tests (unit and integration).

Every ``*_xml`` builder returns the XML of one Body object as text; ``ed_message`` wraps a list
of them in the BSP envelope and returns bytes; ``zipped`` packs a message the way 1C does.
Amounts, quantities and prices may be given as ``Decimal``, ``int`` or ``str``; dates as text
(``2024-03-15T10:30:00``, Moscow time without a zone, as 1C writes them) or ``datetime``.

    data = ed_message(7, [
        counterparty_xml(CP, "ООО «Кровля»", "7701234567", "770101001", phones=["+7 495 1"]),
        order_xml(ORDER, "УТ-000123", "2024-03-15T10:30:00", "1500.00", CP, "7701234567",
                  "770101001", lines=[line_xml(1, PRODUCT, "Профнастил С8", "055", 10,
                                               "150.00", "1500.00")]),
    ])
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Iterable, Sequence
from datetime import datetime
from xml.sax.saxutils import escape, quoteattr

MSG_NS = "http://www.1c.ru/SSL/Exchange/Message"
ED_NS = "http://v8.1c.ru/edi/edi_stnd/EnterpriseData/{version}"
CRM_NS = "http://crm.krovlya-profil.example/EnterpriseData/ext/1.0"
CONTACTINFO_NS = "http://www.v8.1c.ru/ssl/contactinfo"
EXCHANGE_PLAN = "СинхронизацияДанныхЧерезУниверсальныйФормат"
ORGANIZATION = ("5f0c6b1e-8d2a-11ee-b9d1-0242ac120002", "ООО «Кровля-Профиль»", "5003123456",
                "500301001")


def new_guid() -> str:
    return str(uuid.uuid4())


def _t(value) -> str:
    if isinstance(value, datetime):
        value = value.replace(microsecond=0).isoformat()
    return escape(str(value))


def _el(name: str, value) -> str:
    """``<name>value</name>``, or nothing when the value is None."""
    return "" if value is None else f"<{name}>{_t(value)}</{name}>"


def _bool(value: bool) -> str:
    return "true" if value else "false"


# ---------------------------------------------------------------------------------------------
# Envelope
# ---------------------------------------------------------------------------------------------

def ed_message(message_no, objects_xml: Sequence[str], sender: str = "UT", receiver: str = "CRM",
               version: str = "1.8", received_no=None, *, extension: bool = True,
               created: str | None = "2024-03-15T18:05:11",
               available_versions: Iterable[str] = ("1.6", "1.7", "1.8", "1.10", "1.11"),
               exchange_plan: str | None = EXCHANGE_PLAN, format_ns: str | None = None,
               body_ns: str | None = None) -> bytes:
    """A whole message. ``extension`` adds the CRM extension namespace to ``msg:Format``;
    ``format_ns``/``body_ns`` override the namespaces (for malformed cases); any of the header
    values may be None to leave its element out."""
    base = ED_NS.format(version=version)
    fmt = format_ns if format_ns is not None else base + (f" {CRM_NS}" if extension else "")
    header = [
        _el("msg:Format", fmt),
        _el("msg:CreationDate", created),
        "<msg:Confirmation>",
        _el("msg:ExchangePlan", exchange_plan),
        _el("msg:To", receiver),
        _el("msg:From", sender),
        _el("msg:MessageNo", message_no),
        _el("msg:ReceivedNo", received_no),
        "</msg:Confirmation>",
        *(_el("msg:AvailableVersion", v) for v in available_versions),
    ]
    body = "\n".join(objects_xml)
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Message xmlns:msg="{MSG_NS}" xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
        f'<msg:Header>{"".join(header)}</msg:Header>\n'
        f'<Body xmlns="{body_ns if body_ns is not None else base}" xmlns:crm="{CRM_NS}">\n'
        f"{body}\n</Body>\n</Message>\n"
    )
    return text.encode("utf-8")


def zipped(data: bytes, name: str = "Message_UT_CRM.xml") -> bytes:
    """The message zipped the way 1C sends it: one .xml inside."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# Catalogs
# ---------------------------------------------------------------------------------------------

def _bsp_types(kind: str) -> tuple[str, str]:
    """The BSP value type of a kind: (XML xsi:type, JSON "type")."""
    if "Электронн" in kind:
        return "ЭлектроннаяПочта", "АдресЭлектроннойПочты"
    if "Телефон" in kind or "Факс" in kind:
        return "НомерТелефона", "Телефон"
    if "Адрес" in kind:
        return "Адрес", "Адрес"
    return "Другое", "Другое"


def contact_info_row(kind: str, value: str, form: str = "xml") -> str:
    """One ``КонтактнаяИнформация/Строка``. ``kind`` is the ED kind (``Телефон``,
    ``АдресЭлектроннойПочты``, ``ФактическийАдрес``…); ``form`` is how ЗначенияПолей holds the
    value: ``xml`` (BSP contact-info XML, escaped), ``json`` (newer BSP) or ``inline`` (the XML
    as child elements)."""
    type_name, json_type = _bsp_types(kind)
    if form == "json":
        fields = _t(json.dumps({"value": value, "type": json_type, "comment": ""},
                               ensure_ascii=False))
    else:
        inner = (f'<КонтактнаяИнформация xmlns="{CONTACTINFO_NS}" '
                 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                 f'Представление={quoteattr(value)}><Комментарий/>'
                 f'<Состав xsi:type="{type_name}"/></КонтактнаяИнформация>')
        fields = inner if form == "inline" else _t(inner)
    return (f"<Строка><ВидКонтактнойИнформации>{_t(kind)}</ВидКонтактнойИнформации>"
            f"<ЗначенияПолей>{fields}</ЗначенияПолей></Строка>")


def _contacts(phones, emails, address=None, form: str = "xml", extra=()) -> str:
    rows = [contact_info_row("Телефон", p, form) for p in phones]
    rows += [contact_info_row("АдресЭлектроннойПочты", e, form) for e in emails]
    if address:
        rows.append(contact_info_row("ФактическийАдрес", address, form))
    rows += list(extra)
    return f"<КонтактнаяИнформация>{''.join(rows)}</КонтактнаяИнформация>" if rows else ""


def counterparty_keys(guid, name, inn=None, kpp=None, *, full_name=None,
                      legal_kind="ЮридическоеЛицо", element="КлючевыеСвойства") -> str:
    return (f"<{element}>{_el('Ссылка', guid)}{_el('Наименование', name)}"
            f"{_el('НаименованиеПолное', full_name)}{_el('ИНН', inn)}{_el('КПП', kpp)}"
            f"{_el('ЮридическоеФизическоеЛицо', legal_kind)}</{element}>")


def counterparty_xml(guid, name, inn, kpp, phones=(), emails=(), *, full_name=None,
                     legal_kind="ЮридическоеЛицо", address=None, contact_form="xml",
                     extra_contact_rows=(), deletion_mark=None, extra_xml="") -> str:
    """``Справочник.Контрагенты``. ``extra_contact_rows`` are more ``contact_info_row`` texts
    (e.g. in another form); ``extra_xml`` is appended inside the object (e.g. an embedded
    table the CRM must ignore)."""
    mark = "" if deletion_mark is None else \
        f"<crm:ПометкаУдаления>{_bool(deletion_mark)}</crm:ПометкаУдаления>"
    return (
        "<Справочник.Контрагенты>"
        + counterparty_keys(guid, name, inn, kpp, full_name=full_name or name,
                            legal_kind=legal_kind)
        + "<СтранаРегистрации><Ссылка>e1f2ad1b-0a5c-11e4-80d1-000c29a3f8ab</Ссылка>"
          "<ДанныеКлассификатора><Код>643</Код><Наименование>РОССИЯ</Наименование>"
          "</ДанныеКлассификатора></СтранаРегистрации>"
        + _contacts(phones, emails, address, contact_form, extra_contact_rows)
        + mark + extra_xml
        + "</Справочник.Контрагенты>"
    )


def contact_person_xml(guid, full_name, owner_guid, owner_name="", owner_inn=None,
                       owner_kpp=None, *, position="", phones=(), emails=(),
                       contact_form="xml", element="Справочник.КонтактныеЛица") -> str:
    """A contact person of a counterparty (``Владелец`` = the counterparty's key properties)."""
    return (
        f"<{element}><КлючевыеСвойства>{_el('Ссылка', guid)}{_el('Наименование', full_name)}"
        + counterparty_keys(owner_guid, owner_name, owner_inn, owner_kpp, element="Владелец")
        + f"</КлючевыеСвойства>{_el('ФИО', full_name)}{_el('Должность', position or None)}"
        + _contacts(phones, emails, form=contact_form)
        + f"</{element}>"
    )


def unknown_catalog_xml(guid=None) -> str:
    """A catalog the CRM does not follow (1C sends plenty of these)."""
    return (f"<Справочник.Номенклатура><КлючевыеСвойства>{_el('Ссылка', guid or new_guid())}"
            "<Наименование>Саморез кровельный 4,8×35</Наименование>"
            "<НаименованиеПолное>Саморез кровельный 4,8×35 RAL 3005</НаименованиеПолное>"
            "</КлючевыеСвойства><ЕдиницаИзмерения><Ссылка>"
            f"{new_guid()}</Ссылка><ДанныеКлассификатора><Код>796</Код>"
            "<Наименование>шт</Наименование></ДанныеКлассификатора></ЕдиницаИзмерения>"
            "</Справочник.Номенклатура>")


# ---------------------------------------------------------------------------------------------
# Documents
# ---------------------------------------------------------------------------------------------

def vat_text(rate: str = "НДС20") -> str:
    """СтавкаНДС as plain text (older ED versions)."""
    return f"<СтавкаНДС>{_t(rate)}</СтавкаНДС>"


def vat_struct(rate="20", kind: str = "Общая") -> str:
    """СтавкаНДС as the structure of newer ED versions."""
    return f"<СтавкаНДС>{_el('Ставка', rate)}<ВидСтавки>{_t(kind)}</ВидСтавки></СтавкаНДС>"


def line_xml(no, product_guid, product_name, unit_code, quantity, price, amount,
             vat=None, vat_amount=None, *, unit_name=None) -> str:
    """One ``Товары/Строка``; ``vat`` is ``vat_text(...)`` or ``vat_struct(...)`` (default text
    НДС20)."""
    unit_name = unit_name or {"055": "м2", "796": "шт", "168": "т"}.get(unit_code, "")
    return (
        f"<Строка>{_el('НомерСтрокиДокумента', no)}"
        f"<ДанныеНоменклатуры><Номенклатура>{_el('Ссылка', product_guid)}"
        f"{_el('Наименование', product_name)}</Номенклатура></ДанныеНоменклатуры>"
        f"<ЕдиницаИзмерения><ДанныеКлассификатора>{_el('Код', unit_code)}"
        f"{_el('Наименование', unit_name)}</ДанныеКлассификатора></ЕдиницаИзмерения>"
        f"{_el('Количество', quantity)}{_el('Цена', price)}{_el('Сумма', amount)}"
        f"{vat if vat is not None else vat_text()}{_el('СуммаНДС', vat_amount)}</Строка>"
    )


def _order_ref(order_guid, number=None, date=None, *, element="crm:Заказ") -> str:
    if order_guid is None:
        return ""
    return (f"<{element}>{_el('Ссылка', order_guid)}{_el('Номер', number)}{_el('Дата', date)}"
            f"</{element}>")


def document_xml(type_name, guid, number, date, amount, counterparty_guid, inn, kpp, *,
                 lines=(), posted=True, deletion_mark=False, deal_id=None, responsible=None,
                 counterparty_name="ООО «Кровельный центр»", currency="643", order_guid=None,
                 extra_xml="", crm_flags=True) -> str:
    """Any ``Документ.<type_name>`` with the common header. ``crm_flags=False`` leaves out
    crm:Проведен/crm:ПометкаУдаления (their defaults apply)."""
    org_guid, org_name, org_inn, org_kpp = ORGANIZATION
    responsible_xml = ""
    if responsible is not None:
        responsible_xml = ("<ОбщиеСвойстваОбъектовФормата><Ответственный>"
                           f"<Ссылка>{new_guid()}</Ссылка>{_el('Наименование', responsible)}"
                           "</Ответственный></ОбщиеСвойстваОбъектовФормата>")
    currency_xml = "" if currency is None else (
        f"<Валюта><Ссылка>{new_guid()}</Ссылка><ДанныеКлассификатора>{_el('Код', currency)}"
        "</ДанныеКлассификатора></Валюта>")
    counterparty = "" if counterparty_guid is None else counterparty_keys(
        counterparty_guid, counterparty_name, inn, kpp, element="Контрагент")
    table = f"<Товары>{''.join(lines)}</Товары>" if lines else ""
    flags = ""
    if crm_flags:
        flags = (f"<crm:Проведен>{_bool(posted)}</crm:Проведен>"
                 f"<crm:ПометкаУдаления>{_bool(deletion_mark)}</crm:ПометкаУдаления>")
    return (
        f"<Документ.{type_name}><КлючевыеСвойства>{_el('Ссылка', guid)}{_el('Дата', date)}"
        f"{_el('Номер', number)}<Организация>{_el('Ссылка', org_guid)}"
        f"{_el('Наименование', org_name)}{_el('ИНН', org_inn)}{_el('КПП', org_kpp)}"
        "</Организация></КлючевыеСвойства>"
        f"{responsible_xml}{currency_xml}{_el('Сумма', amount)}{counterparty}"
        "<СуммаВключаетНДС>true</СуммаВключаетНДС>"
        f"{table}{extra_xml}{flags}{_order_ref(order_guid)}"
        f"{_el('crm:Сделка', deal_id)}</Документ.{type_name}>"
    )


def order_xml(guid, number, date, amount, counterparty_guid, inn, kpp, lines=(), posted=True,
              deletion_mark=False, deal_id=None, responsible=None, **kw) -> str:
    return document_xml("ЗаказКлиента", guid, number, date, amount, counterparty_guid, inn, kpp,
                        lines=lines, posted=posted, deletion_mark=deletion_mark,
                        deal_id=deal_id, responsible=responsible, **kw)


def invoice_xml(guid, number, date, amount, counterparty_guid, inn, kpp, order_guid,
                name="СчетНаОплатуКлиенту", lines=(), **kw) -> str:
    """An invoice under either 1C name (``СчетНаОплатуКлиенту``/``СчетНаОплатуПокупателю``)."""
    return document_xml(name, guid, number, date, amount, counterparty_guid, inn, kpp,
                        lines=lines, order_guid=order_guid,
                        extra_xml=kw.pop("extra_xml", "<СрокОплаты>2024-03-25T00:00:00"
                                                      "</СрокОплаты>"), **kw)


def shipment_xml(guid, number, date, amount, counterparty_guid, inn, kpp, order_guid, lines=(),
                 **kw) -> str:
    return document_xml("РеализацияТоваровУслуг", guid, number, date, amount, counterparty_guid,
                        inn, kpp, lines=lines, order_guid=order_guid,
                        extra_xml=kw.pop("extra_xml", "<ВидОперации>РеализацияТоваров"
                                                      "</ВидОперации>"), **kw)


def payment_xml(guid, number, date, amount, counterparty_guid, inn, kpp, rows=(),
                operation="ПоступлениеОплатыОтКлиента", *, row_order_element="crm:Заказ",
                **kw) -> str:
    """``ПоступлениеБезналичныхДенежныхСредств``; ``rows`` = [(order_guid | None, amount)];
    ``row_order_element`` is where each row names its order (``crm:Заказ`` or ``Заказ``)."""
    row_xml = "".join(
        f"<Строка>{_el('Сумма', row_amount)}"
        f"{_order_ref(order_guid, element=row_order_element)}</Строка>"
        for order_guid, row_amount in rows)
    extra = (f"{_el('ВидОперации', operation)}"
             "<НомерВходящегоДокумента>412</НомерВходящегоДокумента>"
             "<ДатаВходящегоДокумента>2024-03-18T00:00:00</ДатаВходящегоДокумента>"
             "<НазначениеПлатежа>Оплата по счету № 57 от 16.03.2024, в т.ч. НДС</НазначениеПлатежа>"
             + (f"<РасшифровкаПлатежа>{row_xml}</РасшифровкаПлатежа>" if rows else ""))
    return document_xml("ПоступлениеБезналичныхДенежныхСредств", guid, number, date, amount,
                        counterparty_guid, inn, kpp, extra_xml=extra, **kw)


def deletion_xml(type_name, guid) -> str:
    """``УдалениеОбъекта`` of a physically deleted object; ``type_name`` like
    ``ДокументСсылка.ЗаказКлиента``."""
    return (f"<УдалениеОбъекта><СсылкаНаОбъект><СсылкаНаОбъект>"
            f"<{type_name}>{_t(guid)}</{type_name}>"
            "</СсылкаНаОбъект></СсылкаНаОбъект></УдалениеОбъекта>")
