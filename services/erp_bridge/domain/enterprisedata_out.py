"""Writing EnterpriseData messages to 1C: a CRM client as ``Справочник.Контрагенты`` with its
contact persons (``Справочник.КонтактныеЛица``, Владелец = the counterparty).

The envelope is the one ``enterprisedata.parse_message`` reads, and the output must read back to
the same ``Counterparty`` and ``ContactPerson`` objects: values are normalised the way the parser
sees them (characters XML cannot carry removed, surrounding whitespace stripped, empty values
left out), and characters XML would otherwise normalise (CR, and TAB/LF in attributes) are
written as character references.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import datetime

from services.erp_bridge.domain.enterprisedata import (
    CONTACTINFO_NS,
    ED_NS_PREFIX,
    EXCHANGE_PLAN,
    MOSCOW,
    MSG_NS,
    SUPPORTED_VERSIONS,
    XSI_NS,
)

# ВидКонтактнойИнформации written for each CRM contact kind, and the BSP value type.
CONTACT_KIND_NAMES = {
    "phone": ("Телефон", "НомерТелефона"),
    "email": ("АдресЭлектроннойПочты", "ЭлектроннаяПочта"),
    "address": ("ФактическийАдрес", "Адрес"),
}
LEGAL_ENTITY = "ЮридическоеЛицо"
PERSON = "ФизическоеЛицо"
# ИП travels as a ФизическоеЛицо with a 12-digit ИНН (ED has no third value in this enum).
_PERSON_FORMS = {"ИП", "ИНДИВИДУАЛЬНЫЙ ПРЕДПРИНИМАТЕЛЬ", "ИНДИВИДУАЛЬНЫЙПРЕДПРИНИМАТЕЛЬ",
                 "ФИЗИЧЕСКОЕЛИЦО", "ФИЗИЧЕСКОЕ ЛИЦО", "ФЛ"}

_NOT_XML_CHARS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean(value) -> str:
    """A value as it will read back: text, no characters XML cannot carry, stripped."""
    if value is None:
        return ""
    return _NOT_XML_CHARS.sub("", str(value)).strip()


def legal_kind_for(legal_form: str | None, inn: str | None) -> str | None:
    """ЮридическоеФизическоеЛицо for a CRM legal form (``ООО``, ``ИП``…) or, without one, by the
    ИНН length (12 digits: a person or an ИП; 10: an organisation)."""
    form = clean(legal_form)
    if form in (LEGAL_ENTITY, PERSON):
        return form
    if form:
        return PERSON if form.upper() in _PERSON_FORMS else LEGAL_ENTITY
    digits = clean(inn)
    if len(digits) == 12:
        return PERSON
    if len(digits) == 10:
        return LEGAL_ENTITY
    return None


def _text(value: str) -> str:
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\r", "&#13;"))


def _attr(value: str) -> str:
    return (_text(value).replace('"', "&quot;").replace("\n", "&#10;")
            .replace("\t", "&#9;"))


def _guid(value, what: str) -> str:
    if isinstance(value, uuid.UUID):
        guid = value
    else:
        try:
            guid = uuid.UUID(clean(value))
        except ValueError:
            raise ValueError(f"{what}: «{value}» не GUID") from None
    if guid.int == 0:
        raise ValueError(f"{what}: нулевой GUID")
    return str(guid)


class _Writer:
    def __init__(self):
        self.parts: list[str] = []

    def open(self, name: str, attrs: str = "") -> None:
        self.parts.append(f"<{name}{attrs}>")

    def close(self, name: str) -> None:
        self.parts.append(f"</{name}>")

    def value(self, name: str, value) -> None:
        """An element with text; left out when the value is empty."""
        text = clean(value)
        if text:
            self.parts.append(f"<{name}>{_text(text)}</{name}>")

    def raw(self, text: str) -> None:
        self.parts.append(text)


def _contact_info_xml(kind: str, value: str) -> str:
    """The BSP contact-info XML (``ЗначенияПолей``): the presentation is what the CRM reads."""
    _kind_name, type_name = CONTACT_KIND_NAMES[kind]
    extra = f' Значение="{_attr(value)}"' if kind == "email" else ""
    return (f'<КонтактнаяИнформация xmlns="{CONTACTINFO_NS}" xmlns:xsi="{XSI_NS}" '
            f'Представление="{_attr(value)}"><Комментарий/>'
            f'<Состав xsi:type="{type_name}"{extra}/></КонтактнаяИнформация>')


def _contact_rows(w: _Writer, items: Iterable[tuple[str, object]]) -> None:
    rows = [(kind, clean(value)) for kind, value in items]
    rows = [(kind, value) for kind, value in rows if value]
    if not rows:
        return
    w.open("КонтактнаяИнформация")
    for kind, value in rows:
        w.open("Строка")
        w.value("ВидКонтактнойИнформации", CONTACT_KIND_NAMES[kind][0])
        w.value("ЗначенияПолей", _contact_info_xml(kind, value))
        w.close("Строка")
    w.close("КонтактнаяИнформация")


def counterparty_contacts(counterparty: dict) -> list[tuple[str, object]]:
    """The contact rows written for a counterparty: phones, e-mails, then the address."""
    return ([("phone", p) for p in counterparty.get("phones") or ()]
            + [("email", e) for e in counterparty.get("emails") or ()]
            + [("address", counterparty.get("address"))])


def person_contacts(person: dict) -> list[tuple[str, object]]:
    return ([("phone", p) for p in person.get("phones") or ()]
            + [("email", e) for e in person.get("emails") or ()])


def _counterparty_keys(w: _Writer, guid: str, counterparty: dict, *, element: str) -> None:
    short_name = clean(counterparty.get("short_name"))
    full_name = clean(counterparty.get("full_name"))
    w.open(element)
    w.value("Ссылка", guid)
    w.value("Наименование", short_name or full_name)
    w.value("НаименованиеПолное", full_name)
    w.value("ИНН", counterparty.get("inn"))
    w.value("КПП", counterparty.get("kpp"))
    w.value("ЮридическоеФизическоеЛицо",
            legal_kind_for(counterparty.get("legal_form"), counterparty.get("inn")))
    w.close(element)


def counterparty_message(*, sender: str, receiver: str, message_no: int, received_no: int | None,
                         counterparty: dict, contacts: list[dict], version: str = "1.8",
                         created_at: datetime | None = None) -> bytes:
    """One ED message carrying the counterparty and its contact persons.

    ``counterparty``: {guid, short_name, full_name, inn, kpp, legal_form, phones[], emails[],
    address}; ``guid`` is its 1C Ссылка (known from 1C, or one the bridge chose and stored).
    ``contacts``: [{guid, full_name, position, phones[], emails[]}]. ``created_at`` defaults to
    now (written as Moscow time without a zone, the way 1C writes it).
    """
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"Версия EnterpriseData {version} не поддерживается")
    if not isinstance(message_no, int) or message_no < 0:
        raise ValueError(f"Номер сообщения {message_no!r} не неотрицательное целое")
    if received_no is not None and (not isinstance(received_no, int) or received_no < 0):
        raise ValueError(f"Номер принятого сообщения {received_no!r} не неотрицательное целое")
    base_ns = ED_NS_PREFIX + version
    created = created_at or datetime.now(MOSCOW)
    if created.tzinfo is not None:
        created = created.astimezone(MOSCOW)
    created_text = created.replace(tzinfo=None, microsecond=0).isoformat()
    counterparty_guid = _guid(counterparty.get("guid"), "Контрагент")

    w = _Writer()
    w.raw('<?xml version="1.0" encoding="UTF-8"?>\n')
    w.open("Message", f' xmlns:msg="{MSG_NS}" xmlns:xs="http://www.w3.org/2001/XMLSchema"'
                      f' xmlns:xsi="{XSI_NS}"')
    w.open("msg:Header")
    w.value("msg:Format", base_ns)
    w.value("msg:CreationDate", created_text)
    w.open("msg:Confirmation")
    w.value("msg:ExchangePlan", EXCHANGE_PLAN)
    w.value("msg:To", receiver)
    w.value("msg:From", sender)
    w.value("msg:MessageNo", str(message_no))
    if received_no is not None:
        w.value("msg:ReceivedNo", str(received_no))
    w.close("msg:Confirmation")
    for available in SUPPORTED_VERSIONS:
        w.value("msg:AvailableVersion", available)
    w.close("msg:Header")
    w.open("Body", f' xmlns="{base_ns}"')

    w.open("Справочник.Контрагенты")
    _counterparty_keys(w, counterparty_guid, counterparty, element="КлючевыеСвойства")
    _contact_rows(w, counterparty_contacts(counterparty))
    w.close("Справочник.Контрагенты")

    for index, person in enumerate(contacts or (), start=1):
        person_guid = _guid(person.get("guid"), f"Контактное лицо {index}")
        w.open("Справочник.КонтактныеЛица")
        w.open("КлючевыеСвойства")
        w.value("Ссылка", person_guid)
        w.value("Наименование", person.get("full_name"))
        _counterparty_keys(w, counterparty_guid, counterparty, element="Владелец")
        w.close("КлючевыеСвойства")
        w.value("ФИО", person.get("full_name"))
        w.value("Должность", person.get("position"))
        _contact_rows(w, person_contacts(person))
        w.close("Справочник.КонтактныеЛица")

    w.close("Body")
    w.close("Message")
    return "".join(w.parts).encode("utf-8")
