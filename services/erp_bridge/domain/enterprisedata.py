"""Reading 1C EnterpriseData (ED) exchange messages into the plain objects of ``objects.py``.

A message is the BSP envelope ``Message`` (``msg:Header`` + ``Body``), as raw XML or zipped (one
``.xml`` in the archive). The Body holds one element per changed object; the CRM reads the
counterparties, contact persons, its five document kinds and ``УдалениеОбъекта``, and skips the
rest (1C sends many catalogs the CRM does not follow).

Safety first: the input is bounded (``max_bytes`` before and after unzipping, ``max_objects``),
parsed by ``defusedxml`` with DTDs forbidden (no entity expansion, no external entities), and
whatever cannot be read raises ``MalformedMessage`` (a reason for people, in Russian, and the
element path). The parser is strict on identity and on values that are present but unreadable
(a bad GUID, decimal, date or flag) and lenient on values that are merely absent: a message is
applied whole or not at all, so a missing optional field must not block the exchange.
"""

from __future__ import annotations

import io
import json
import re
import uuid
import zipfile
from collections.abc import Iterator
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from xml.etree.ElementTree import Element
from xml.parsers import expat
from zoneinfo import ZoneInfo

import defusedxml.ElementTree as DefusedET
from defusedxml import DefusedXmlException

from services.erp_bridge.domain.objects import (
    CONTACT_PERSON,
    COUNTERPARTY,
    DOCUMENT_KINDS,
    ContactInfo,
    ContactPerson,
    Counterparty,
    CounterpartyRef,
    Deletion,
    Document,
    DocumentLine,
    MalformedMessage,
    Message,
    MessageHeader,
    PaymentRow,
)

MSG_NS = "http://www.1c.ru/SSL/Exchange/Message"
ED_NS_PREFIX = "http://v8.1c.ru/edi/edi_stnd/EnterpriseData/"
CRM_NS = "http://crm.krovlya-profil.example/EnterpriseData/ext/1.0"
CONTACTINFO_NS = "http://www.v8.1c.ru/ssl/contactinfo"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
EXCHANGE_PLAN = "СинхронизацияДанныхЧерезУниверсальныйФормат"

# ED format versions the bridge reads (the base namespace is ED_NS_PREFIX + version). The fields
# the CRM uses have kept their shape across these, apart from СтавкаНДС (text, later a structure),
# which the parser reads in both forms.
SUPPORTED_VERSIONS = (
    "1.6", "1.7", "1.8", "1.10", "1.11", "1.12", "1.13", "1.14", "1.15", "1.16", "1.17",
    "1.18", "1.19", "1.20",
)
SUPPORTED_NAMESPACES = {ED_NS_PREFIX + version: version for version in SUPPORTED_VERSIONS}

MOSCOW = ZoneInfo("Europe/Moscow")
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_OBJECTS = 20000

COUNTERPARTY_ELEMENT = "Справочник." + COUNTERPARTY
# The contact person catalog's ED name is not confirmed against the XSD: accept the likely names.
CONTACT_PERSON_ELEMENTS = (
    "Справочник." + CONTACT_PERSON,
    "Справочник.КонтактныеЛицаПартнеров",
    "Справочник.КонтактныеЛицаКонтрагентов",
)
DELETION_ELEMENT = "УдалениеОбъекта"
PAYMENT_DOCUMENT = "ПоступлениеБезналичныхДенежныхСредств"
# ВидОперации values of ПоступлениеБезналичныхДенежныхСредств that mean "a customer pays us".
CUSTOMER_PAYMENT_OPERATIONS = frozenset({
    "ПоступлениеОплатыОтКлиента",
    "ОплатаПокупателя",
    "ОплатаОтПокупателя",
    "ПоступлениеОтКлиента",
})

CURRENCY_CODES = {
    "643": "RUB", "810": "RUB", "978": "EUR", "840": "USD", "156": "CNY", "933": "BYN",
    "398": "KZT", "826": "GBP",
}

CENT = Decimal("0.01")
NIL_GUID = uuid.UUID(int=0)

_GUID_RE = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_INT_RE = re.compile(r"[+-]?[0-9]{1,18}")
_XML_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>")
_DECLARED_ENCODING = re.compile(
    rb"\A(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?encoding\s*=\s*[\"']([^\"'>]{0,80})[\"']")
_ENCODINGS = {"utf-8", "utf8", "utf-16", "utf16"}
_TRUNCATED = {
    expat.errors.codes[expat.errors.XML_ERROR_NO_ELEMENTS],
    expat.errors.codes[expat.errors.XML_ERROR_UNCLOSED_TOKEN],
    expat.errors.codes[expat.errors.XML_ERROR_PARTIAL_CHAR],
    expat.errors.codes[expat.errors.XML_ERROR_UNCLOSED_CDATA_SECTION],
}


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------

def parse_message(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES,
                  max_objects: int = DEFAULT_MAX_OBJECTS) -> Message:
    """Read one ED message (raw XML or a zip holding one ``.xml``) into a ``Message``."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > max_bytes:
        raise MalformedMessage(
            f"Сообщение больше допустимого: {len(data)} байт при пределе {max_bytes}")
    data = bytes(data)
    if not data.strip():
        raise MalformedMessage("Пустое сообщение")
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        data = _unzip(data, max_bytes)
    root = _parse_xml(data)
    message = _read_message(root, max_objects)
    check_storable(message)
    return message


# What the bridge's tables hold (models.py). A value past these is not something 1C sends: the
# message is refused whole, naming the object and the field, instead of failing in the database
# after parsing (a 500 and no quarantine entry).
_TEXT_LIMITS = {
    "msg:From": 100, "msg:To": 100, "Номер": 100, "Валюта": 3, "Ответственный": 300,
    "Наименование": 500, "НаименованиеПолное": 1000, "ИНН": 12, "КПП": 9,
    "ЮридическоеФизическоеЛицо": 60, "ФИО": 500, "Должность": 300,
}
_MAX_MONEY = Decimal("1e13")            # NUMERIC(15, 2)


def check_storable(message: Message) -> None:
    """Raise ``MalformedMessage`` for the first value the bridge could not store."""
    def text(value: str | None, name: str, where: str) -> None:
        limit = _TEXT_LIMITS[name]
        if value is not None and len(value) > limit:
            raise MalformedMessage(f"{name}: длиннее {limit} символов ({len(value)})", where)

    def money(value: Decimal, where: str) -> None:
        if not value.is_finite() or abs(value) >= _MAX_MONEY:
            raise MalformedMessage(f"Сумма {value:.2E} вне допустимого диапазона", where)

    header = message.header
    text(header.sender, "msg:From", "Header/Confirmation/From")
    text(header.receiver, "msg:To", "Header/Confirmation/To")
    for obj in message.objects:
        where = f"Body/{type(obj).__name__} {getattr(obj, 'guid', '')}"
        if isinstance(obj, Counterparty):
            text(obj.name, "Наименование", where)
            text(obj.full_name, "НаименованиеПолное", where)
            text(obj.inn, "ИНН", where)
            text(obj.kpp, "КПП", where)
            text(obj.legal_kind, "ЮридическоеФизическоеЛицо", where)
        elif isinstance(obj, ContactPerson):
            text(obj.full_name, "ФИО", where)
            text(obj.position, "Должность", where)
        elif isinstance(obj, Document):
            text(obj.number, "Номер", where)
            text(obj.currency, "Валюта", where)
            text(obj.responsible, "Ответственный", where)
            money(obj.amount, where)
            for line in obj.lines:
                money(line.amount, f"{where}/Товары[{line.line_no}]")
            for row in obj.payment_rows:
                money(row.amount, f"{where}/РасшифровкаПлатежа")


# --------------------------------------------------------------------------------------------
# Bytes -> XML tree
# --------------------------------------------------------------------------------------------

def _unzip(data: bytes, max_bytes: int) -> bytes:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        with archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
            declared = sum(info.file_size for info in members)
            if declared > max_bytes:
                raise MalformedMessage(
                    f"Архив распаковывается в {declared} байт при пределе {max_bytes}",
                    "zip")
            xml_members = [info for info in members if info.filename.lower().endswith(".xml")]
            if not xml_members:
                raise MalformedMessage("В архиве нет файла .xml", "zip")
            if len(xml_members) > 1:
                names = ", ".join(info.filename for info in xml_members)
                raise MalformedMessage(
                    f"В архиве несколько файлов .xml ({names}), ожидался один", "zip")
            info = xml_members[0]
            with archive.open(info) as member:
                # The declared size may lie: never read past the limit.
                content = member.read(max_bytes + 1)
            if len(content) > max_bytes:
                raise MalformedMessage(
                    f"Файл {info.filename} в архиве больше {max_bytes} байт", "zip")
            return content
    except MalformedMessage:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError,
            EOFError, OSError, ValueError) as error:
        raise MalformedMessage(f"Архив zip повреждён или не читается: {error}", "zip") from None


def _parse_xml(data: bytes) -> Element:
    declared = _DECLARED_ENCODING.match(data)
    name = declared.group(1).decode("latin-1") if declared else None
    if name is not None and name.strip().lower() not in _ENCODINGS:
        # 1C writes EnterpriseData in UTF-8. A message declaring a single-byte Cyrillic code page
        # is not one of its messages, and read as declared when it is really in another one, the
        # element names turn to mojibake and every object would be skipped as unknown: the
        # message would be "applied" with nothing in it. Refuse it instead.
        raise MalformedMessage(
            f"Кодировка «{name[:40]}» не принимается: "
            "сообщения EnterpriseData передаются в UTF-8", "encoding")
    try:
        return DefusedET.fromstring(data, forbid_dtd=True)
    except LookupError as error:
        raise MalformedMessage(f"Неизвестная кодировка XML: {error}", "encoding") from None
    except DefusedXmlException as error:
        raise MalformedMessage(
            "XML содержит DTD или сущности (ENTITY): такие сообщения не принимаются "
            f"({type(error).__name__})") from None
    except DefusedET.ParseError as error:
        line, column = getattr(error, "position", (0, 0))
        if getattr(error, "code", None) in _TRUNCATED:
            raise MalformedMessage(
                f"XML оборван: документ не закончен (строка {line}, позиция {column})"
            ) from None
        raise MalformedMessage(
            f"Не XML или XML повреждён: {error}") from None


def _parse_embedded_xml(text: str, where: str) -> Element | None:
    """Contact-info XML nested as text: None when unreadable; DTDs are still refused."""
    try:
        # The text is already decoded: an encoding declaration would only mislead the parser.
        text = _XML_DECLARATION.sub("", text, count=1)
        return DefusedET.fromstring(text.encode("utf-8"), forbid_dtd=True)
    except DefusedXmlException:
        raise MalformedMessage("Вложенный XML содержит DTD или сущности (ENTITY)", where) from None
    except DefusedET.ParseError:
        return None


# --------------------------------------------------------------------------------------------
# Element navigation with paths for error messages
# --------------------------------------------------------------------------------------------

class _Node:
    """An element plus its path from the message root (for ``MalformedMessage.field``)."""

    __slots__ = ("el", "path", "ns")

    def __init__(self, el: Element, path: str, ns: str):
        self.el = el
        self.path = path
        self.ns = ns

    def child(self, name: str, *, ns: str | None = None) -> _Node | None:
        tag = f"{{{ns or self.ns}}}{name}"
        for el in self.el:
            if el.tag == tag:
                return _Node(el, f"{self.path}/{name}", self.ns)
        return None

    def children(self, name: str) -> Iterator[_Node]:
        tag = f"{{{self.ns}}}{name}"
        index = 0
        for el in self.el:
            if el.tag == tag:
                index += 1
                yield _Node(el, f"{self.path}/{name}[{index}]", self.ns)

    def elements(self) -> Iterator[_Node]:
        counts: dict[str, int] = {}
        for el in self.el:
            if not isinstance(el.tag, str):
                continue
            name = _local(el.tag)
            counts[name] = counts.get(name, 0) + 1
            yield _Node(el, f"{self.path}/{name}[{counts[name]}]", self.ns)

    def descend(self, *names: str) -> _Node | None:
        node: _Node | None = self
        for name in names:
            node = node.child(name) if node is not None else None
        return node

    @property
    def name(self) -> str:
        return _local(self.el.tag)

    @property
    def text(self) -> str:
        return (self.el.text or "").strip()

    def has_children(self) -> bool:
        return any(isinstance(el.tag, str) for el in self.el)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _ns(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def _text(node: _Node | None) -> str | None:
    if node is None:
        return None
    return node.text or None


def _prop(obj: _Node, name: str) -> _Node | None:
    """A property of an object: in КлючевыеСвойства first, then on the object itself."""
    keys = obj.child("КлючевыеСвойства")
    found = keys.child(name) if keys is not None else None
    return found if found is not None else obj.child(name)


def _ext(obj: _Node, name: str) -> _Node | None:
    """A CRM format-extension property (crm namespace); tolerated in the base namespace too."""
    found = obj.child(name, ns=CRM_NS)
    if found is None:
        keys = obj.child("КлючевыеСвойства")
        if keys is not None:
            found = keys.child(name, ns=CRM_NS)
    if found is not None:
        found.path = found.path.rsplit("/", 1)[0] + "/crm:" + name
        return found
    return obj.child(name)


def _expected_path(obj: _Node, name: str) -> str:
    return f"{obj.path}/КлючевыеСвойства/{name}"


# --------------------------------------------------------------------------------------------
# Scalar readers
# --------------------------------------------------------------------------------------------

def _guid(node: _Node | None, what: str, *, required: bool, where: str = "") -> uuid.UUID | None:
    text = _text(node)
    if text is None:
        if required:
            raise MalformedMessage(f"{what} без Ссылки", where or (node.path if node else None))
        return None
    if not _GUID_RE.fullmatch(text):
        raise MalformedMessage(f"{what}: Ссылка «{text[:60]}» не GUID", node.path)
    value = uuid.UUID(text)
    if value == NIL_GUID:
        if required:
            raise MalformedMessage(f"{what}: пустая Ссылка (нулевой GUID)", node.path)
        return None
    return value


def _decimal(node: _Node | None, what: str, *, cents: bool = False) -> Decimal | None:
    text = _text(node)
    if text is None:
        return None
    if len(text) > 40 or not _DECIMAL_RE.fullmatch(text):
        raise MalformedMessage(f"{what}: «{text[:40]}» не число", node.path)
    try:
        value = Decimal(text)
        return value.quantize(CENT, rounding=ROUND_HALF_UP) if cents else value
    except InvalidOperation:
        raise MalformedMessage(f"{what}: «{text[:40]}» не число", node.path) from None


def _int(node: _Node | None, what: str, *, minimum: int = 0) -> int | None:
    text = _text(node)
    if text is None:
        return None
    if not _INT_RE.fullmatch(text) or int(text) < minimum:
        raise MalformedMessage(f"{what}: «{text[:40]}» не целое число", node.path)
    return int(text)


def _bool(node: _Node | None, what: str, default: bool) -> bool:
    text = _text(node)
    if text is None:
        return default
    lowered = text.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise MalformedMessage(f"{what}: «{text[:40]}» не true/false", node.path)


def _datetime(node: _Node | None, what: str) -> datetime | None:
    """xs:dateTime; 1C writes local Moscow time without a zone. The blank 1C date is None."""
    text = _text(node)
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedMessage(f"{what}: «{text[:40]}» не дата", node.path) from None
    if value.year <= 1:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=MOSCOW)
    try:
        return value.astimezone(MOSCOW)
    except OverflowError:
        raise MalformedMessage(f"{what}: «{text[:40]}» вне допустимых дат", node.path) from None


# --------------------------------------------------------------------------------------------
# Envelope
# --------------------------------------------------------------------------------------------

def _read_message(root: Element, max_objects: int) -> Message:
    if not isinstance(root.tag, str) or _local(root.tag) != "Message" \
            or _ns(root.tag) not in ("", MSG_NS):
        raise MalformedMessage(
            f"Корневой элемент «{_local(str(root.tag))}», ожидался Message", "Message")
    header_el = root.find(f"{{{MSG_NS}}}Header")
    if header_el is None:
        raise MalformedMessage("Нет заголовка msg:Header", "Header")
    header = _read_header(_Node(header_el, "Header", MSG_NS))
    base_ns = header.format.split()[0]

    body_el = next((el for el in root if isinstance(el.tag, str) and _local(el.tag) == "Body"),
                   None)
    if body_el is None:
        # A pure acknowledgement: the header alone.
        return Message(header=header, objects=())
    if _ns(body_el.tag) != base_ns:
        raise MalformedMessage(
            f"Body в пространстве имён «{_ns(body_el.tag)}», а msg:Format объявляет «{base_ns}»",
            "Body")
    count = sum(1 for el in body_el if isinstance(el.tag, str))
    if count > max_objects:
        raise MalformedMessage(
            f"В сообщении {count} объектов при пределе {max_objects}", "Body")
    body = _Node(body_el, "Body", base_ns)
    objects = []
    for node in body.elements():
        obj = _read_object(node)
        if obj is not None:
            objects.append(obj)
    return Message(header=header, objects=tuple(objects))


def _read_header(header: _Node) -> MessageHeader:
    fmt_node = header.child("Format")
    fmt = " ".join((_text(fmt_node) or "").split())
    if not fmt:
        raise MalformedMessage("В заголовке нет msg:Format", "Header/Format")
    base_ns = fmt.split()[0]
    if base_ns not in SUPPORTED_NAMESPACES:
        raise MalformedMessage(
            f"Неизвестный формат «{base_ns[:120]}»: поддерживаются EnterpriseData "
            f"{', '.join(SUPPORTED_VERSIONS)}", "Header/Format")
    created_at = _datetime(header.child("CreationDate"), "msg:CreationDate")
    confirmation = header.child("Confirmation")
    if confirmation is None:
        raise MalformedMessage("В заголовке нет msg:Confirmation", "Header/Confirmation")

    def required(name: str) -> _Node:
        node = confirmation.child(name)
        if _text(node) is None:
            raise MalformedMessage(f"В заголовке нет msg:{name}", f"Header/Confirmation/{name}")
        return node

    exchange_plan = required("ExchangePlan").text
    sender = required("From").text
    receiver = required("To").text
    message_no = _int(required("MessageNo"), "msg:MessageNo")
    received_no = _int(confirmation.child("ReceivedNo"), "msg:ReceivedNo")
    versions = tuple(
        (el.text or "").strip() for el in header.el.findall(f"{{{MSG_NS}}}AvailableVersion")
        if (el.text or "").strip())
    return MessageHeader(format=fmt, created_at=created_at, exchange_plan=exchange_plan,
                         sender=sender, receiver=receiver, message_no=message_no,
                         received_no=received_no, available_versions=versions)


# --------------------------------------------------------------------------------------------
# Objects
# --------------------------------------------------------------------------------------------

def _read_object(node: _Node):
    if _ns(node.el.tag) != node.ns:
        return None                      # an object of some other namespace: not ours
    name = node.name
    if name == COUNTERPARTY_ELEMENT:
        return _read_counterparty(node)
    if name in CONTACT_PERSON_ELEMENTS:
        return _read_contact_person(node)
    if name == DELETION_ELEMENT:
        return _read_deletion(node)
    if name.startswith("Документ."):
        type_name = name.removeprefix("Документ.")
        kind = DOCUMENT_KINDS.get(type_name)
        if kind is not None:
            return _read_document(node, type_name, kind)
    return None


def _read_counterparty(obj: _Node) -> Counterparty:
    what = obj.name
    guid = _guid(_prop(obj, "Ссылка"), what, required=True,
                 where=_expected_path(obj, "Ссылка"))
    name = _text(_prop(obj, "Наименование")) or ""
    full_name = _text(_prop(obj, "НаименованиеПолное")) or ""
    legal_kind = _text(_prop(obj, "ЮридическоеФизическоеЛицо"))
    if legal_kind == "ФизическоеЛицо" and _bool(
            _prop(obj, "ИндивидуальныйПредприниматель"), "ИндивидуальныйПредприниматель",
            False):
        legal_kind = "ИндивидуальныйПредприниматель"
    return Counterparty(
        guid=guid,
        name=name or full_name,
        full_name=full_name,
        inn=_text(_prop(obj, "ИНН")),
        kpp=_text(_prop(obj, "КПП")),
        legal_kind=legal_kind,
        contacts=_read_contact_info(obj),
        deletion_mark=_bool(_ext(obj, "ПометкаУдаления"), "ПометкаУдаления", False),
    )


def _full_name(node: _Node | None) -> str:
    """ФИО as text, or as the structure {Фамилия, Имя, Отчество}."""
    if node is None:
        return ""
    if node.has_children():
        parts = (_text(node.child(part)) for part in ("Фамилия", "Имя", "Отчество"))
        return " ".join(part for part in parts if part)
    return node.text


def _read_contact_person(obj: _Node) -> ContactPerson:
    what = obj.name
    guid = _guid(_prop(obj, "Ссылка"), what, required=True,
                 where=_expected_path(obj, "Ссылка"))
    owner = _prop(obj, "Владелец")
    owner_guid = None
    if owner is not None:
        owner_guid = _guid(_ref_node(owner), f"{what}: Владелец", required=False)
    full_name = _text(_prop(obj, "Наименование")) or _full_name(_prop(obj, "ФИО"))
    return ContactPerson(
        guid=guid,
        owner_guid=owner_guid,
        full_name=full_name,
        position=_text(_prop(obj, "Должность")) or "",
        contacts=_read_contact_info(obj),
        deletion_mark=_bool(_ext(obj, "ПометкаУдаления"), "ПометкаУдаления", False),
    )


def _ref_node(node: _Node) -> _Node | None:
    """The ``Ссылка`` of a reference: its own key properties, or one typed wrapper below
    (``<Владелец><Контрагенты><Ссылка>``); a reference written as bare GUID text is itself."""
    ref = node.child("Ссылка")
    if ref is not None:
        return ref
    keys = node.child("КлючевыеСвойства")
    if keys is not None and keys.child("Ссылка") is not None:
        return keys.child("Ссылка")
    for inner in node.elements():
        ref = inner.child("Ссылка")
        if ref is not None:
            return ref
    return None if node.has_children() else node


def _read_deletion(obj: _Node) -> Deletion | None:
    outer = obj.child("СсылкаНаОбъект")
    inner = outer.child("СсылкаНаОбъект") if outer is not None else None
    holder = inner if inner is not None else outer
    typed = next(iter(holder.elements()), None) if holder is not None else None
    if typed is None:
        raise MalformedMessage("УдалениеОбъекта без ссылки на объект",
                               f"{obj.path}/СсылкаНаОбъект/СсылкаНаОбъект")
    ref = typed.child("Ссылка") if typed.has_children() else typed
    guid = _guid(ref, f"УдалениеОбъекта {typed.name}", required=True, where=typed.path)
    return Deletion(type_name=typed.name, guid=guid)


# Contact information ------------------------------------------------------------------------

def contact_kind(name: str | None) -> str:
    """ED/BSP contact-info kind or type name -> phone | email | address | other."""
    lowered = (name or "").lower()
    if not lowered:
        return "other"
    if "почт" in lowered and "почтовый" not in lowered or "email" in lowered \
            or "e-mail" in lowered:
        return "email"
    if "телефон" in lowered or lowered in ("phone", "mobile"):
        return "phone"
    if "адрес" in lowered or lowered == "address":
        return "address"
    return "other"


def _read_contact_info(obj: _Node) -> tuple[ContactInfo, ...]:
    table = obj.child("КонтактнаяИнформация")
    if table is None:
        return ()
    result = []
    for row in table.children("Строка"):
        info = _read_contact_row(row)
        if info is not None:
            result.append(info)
    return tuple(result)


def _read_contact_row(row: _Node) -> ContactInfo | None:
    kind_name = _text(row.child("ВидКонтактнойИнформации"))
    value, type_name = None, None
    presentation = _text(row.child("Представление"))
    fields = row.child("ЗначенияПолей")
    if fields is not None:
        value, type_name = _read_field_values(fields)
    value = presentation or value
    if not value:
        return None
    kind = contact_kind(kind_name)
    # An unnamed or unknown kind: the BSP value's own type says what it is (a fax stays "other").
    if kind == "other" and type_name and "факс" not in (kind_name or "").lower():
        kind = contact_kind(type_name)
    return ContactInfo(kind=kind, value=value)


def _read_field_values(fields: _Node) -> tuple[str | None, str | None]:
    """(presentation, BSP type) out of ЗначенияПолей: BSP XML, JSON, or XML inline."""
    if fields.has_children():
        inner = next(el for el in fields.el if isinstance(el.tag, str))
        return _from_contactinfo_xml(inner)
    text = fields.text
    if not text:
        return None, None
    if text.startswith("<"):
        inner = _parse_embedded_xml(text, fields.path)
        return _from_contactinfo_xml(inner) if inner is not None else (None, None)
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            return None, None
        if not isinstance(data, dict):
            return None, None
        value = data.get("value") or data.get("Представление") or data.get("presentation")
        kind = data.get("type") or data.get("Тип")
        return (value.strip() if isinstance(value, str) else None,
                kind if isinstance(kind, str) else None)
    # The oldest BSP form, "key=value" lines: only Представление is of use.
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "Представление" and value.strip():
            return value.strip(), None
    return None, None


def _from_contactinfo_xml(el: Element) -> tuple[str | None, str | None]:
    value = el.get("Представление")
    type_name = None
    for child in el:
        if isinstance(child.tag, str) and _local(child.tag) == "Состав":
            type_name = child.get(f"{{{XSI_NS}}}type")
            if type_name:
                type_name = type_name.rsplit(":", 1)[-1]
            break
    return (value.strip() if value else None), type_name


# Documents ----------------------------------------------------------------------------------

def _read_document(obj: _Node, type_name: str, kind: str) -> Document | None:
    what = obj.name
    if type_name == PAYMENT_DOCUMENT:
        operation = _text(_prop(obj, "ВидОперации"))
        if operation not in CUSTOMER_PAYMENT_OPERATIONS:
            return None                  # a bank receipt that is not a customer payment
    guid = _guid(_prop(obj, "Ссылка"), what, required=True,
                 where=_expected_path(obj, "Ссылка"))
    date_node = _prop(obj, "Дата")
    date = _datetime(date_node, f"{what}: Дата")
    if date is None:
        raise MalformedMessage(f"{what} без Даты",
                               date_node.path if date_node else _expected_path(obj, "Дата"))
    lines = _read_lines(obj, what)
    rows = _read_payment_rows(obj, what) if kind == "payment" else ()
    amount = _decimal(_prop(obj, "Сумма"), f"{what}: Сумма", cents=True)
    if amount is None:
        parts = [row.amount for row in rows] if rows else [line.amount for line in lines]
        amount = sum(parts, Decimal("0.00")).quantize(CENT)
    deal_node = _ext(obj, "Сделка")
    return Document(
        kind=kind,
        guid=guid,
        number=_text(_prop(obj, "Номер")) or "",
        date=date,
        amount=amount,
        currency=_currency(_prop(obj, "Валюта")),
        counterparty=_counterparty_ref(_prop(obj, "Контрагент"), what),
        posted=_bool(_ext(obj, "Проведен"), "Проведен", True),
        deletion_mark=_bool(_ext(obj, "ПометкаУдаления"), "ПометкаУдаления", False),
        order_guid=_order_ref(obj, what) if kind != "order" else None,
        deal_id=_guid(deal_node, f"{what}: Сделка", required=False),
        responsible=_responsible(obj),
        lines=lines,
        payment_rows=rows,
    )


def _currency(node: _Node | None) -> str:
    if node is None:
        return "RUB"
    code = _text(node.descend("ДанныеКлассификатора", "Код")) or _text(node.child("Код")) \
        or (None if node.has_children() else node.text) or ""
    if not code:
        return "RUB"
    if code.isdigit():
        return CURRENCY_CODES.get(code.zfill(3), code.zfill(3))
    return code.upper()


def _counterparty_ref(node: _Node | None, what: str) -> CounterpartyRef | None:
    if node is None:
        return None
    keys = node.child("КлючевыеСвойства") or node
    guid = _guid(_ref_node(keys), f"{what}: Контрагент", required=False)
    name = _text(keys.child("Наименование")) or _text(keys.child("НаименованиеПолное")) or ""
    return CounterpartyRef(guid=guid, name=name, inn=_text(keys.child("ИНН")),
                           kpp=_text(keys.child("КПП")))


def _responsible(obj: _Node) -> str | None:
    node = obj.descend("ОбщиеСвойстваОбъектовФормата", "Ответственный")
    if node is None:
        node = obj.child("Ответственный")
    if node is None:
        return None
    if not node.has_children():
        return node.text or None
    keys = node.child("КлючевыеСвойства") or node
    return _text(keys.child("Наименование")) or _text(keys.child("Ссылка"))


def _order_ref(holder: _Node, what: str) -> uuid.UUID | None:
    """The customer order a document or a payment row belongs to: ``crm:Заказ`` (our extension),
    else a standard ``Заказ``/``ЗаказКлиента`` reference, else a ``ДокументОснование`` (or
    ``ОбъектРасчетов``) typed as a customer order."""
    ext = holder.child("Заказ", ns=CRM_NS)
    if ext is not None:
        ext.path = ext.path.rsplit("/", 1)[0] + "/crm:Заказ"
        return _guid(_ref_node(ext), f"{what}: crm:Заказ", required=False)
    for name in ("Заказ", "ЗаказКлиента"):
        node = holder.child(name)
        if node is not None:
            return _guid(_ref_node(node), f"{what}: {name}", required=False)
    for name in ("ДокументОснование", "ОбъектРасчетов"):
        node = holder.child(name)
        if node is None:
            continue
        for typed in node.elements():
            if "ЗаказКлиента" in typed.name:
                ref = typed.child("Ссылка") if typed.has_children() else typed
                if ref is None:
                    keys = typed.child("КлючевыеСвойства")
                    ref = keys.child("Ссылка") if keys is not None else None
                return _guid(ref, f"{what}: {name}", required=False)
    return None


def _vat_rate(node: _Node | None) -> str | None:
    """СтавкаНДС as text (``НДС20``, ``20%``) or as {Ставка, ВидСтавки} -> ``20%``,
    ``20/120``, ``без НДС``."""
    if node is None:
        return None
    if node.has_children():
        rate = _text(node.child("Ставка"))
        rate_kind = (_text(node.child("ВидСтавки")) or "").lower()
        if "безндс" in rate_kind.replace(" ", "") or (rate is None and "без" in rate_kind):
            return "без НДС"
        if rate is None:
            return None
        number = _plain_number(rate)
        if "расчет" in rate_kind or "расчёт" in rate_kind:
            return f"{number}/{100 + int(Decimal(number))}" if _is_number(number) else number
        return f"{number}%" if _is_number(number) else rate
    text = node.text
    if not text:
        return None
    compact = text.replace(" ", "")
    if compact.lower() in ("безндс", "без_ндс"):
        return "без НДС"
    match = re.fullmatch(r"(?i)НДС([0-9]+)(?:_([0-9]+))?", compact)
    if match:
        rate, base = match.groups()
        return f"{int(rate)}/{base}" if base else f"{int(rate)}%"
    if _is_number(compact):
        return f"{_plain_number(compact)}%"
    return text


def _is_number(text: str) -> bool:
    return bool(_DECIMAL_RE.fullmatch(text))


def _plain_number(text: str) -> str:
    if not _is_number(text):
        return text
    value = Decimal(text).normalize()
    return format(value, "f")


def _read_lines(obj: _Node, what: str) -> tuple[DocumentLine, ...]:
    lines = []
    position = 0
    for table_name in ("Товары", "Услуги"):
        table = obj.child(table_name)
        if table is None:
            continue
        for row in table.children("Строка"):
            position += 1
            lines.append(_read_line(row, what, position))
    return tuple(lines)


def _read_line(row: _Node, what: str, position: int) -> DocumentLine:
    line_no = _int(row.child("НомерСтрокиДокумента"), f"{what}: НомерСтрокиДокумента",
                   minimum=0)
    product = row.descend("ДанныеНоменклатуры", "Номенклатура") or row.child("Номенклатура")
    product_guid, product_name = None, ""
    if product is not None:
        keys = product.child("КлючевыеСвойства") or product
        product_guid = _guid(keys.child("Ссылка"), f"{what}: Номенклатура", required=False)
        product_name = _text(keys.child("Наименование")) \
            or _text(keys.child("НаименованиеПолное")) or ""
    unit = row.child("ЕдиницаИзмерения")
    unit_code = None
    if unit is not None:
        unit_code = _text(unit.descend("ДанныеКлассификатора", "Код")) \
            or _text(unit.child("Код")) or (None if unit.has_children() else unit.text or None)
    quantity = _decimal(row.child("Количество"), f"{what}: Количество")
    price = _decimal(row.child("Цена"), f"{what}: Цена")
    amount = _decimal(row.child("Сумма"), f"{what}: Сумма", cents=True)
    if amount is None:
        amount = (quantity * price).quantize(CENT, rounding=ROUND_HALF_UP) \
            if quantity is not None and price is not None else Decimal("0.00")
    return DocumentLine(
        line_no=line_no if line_no is not None else position,
        product_guid=product_guid,
        product_name=product_name,
        unit_code=unit_code,
        quantity=quantity if quantity is not None else Decimal("0"),
        price=price,
        amount=amount,
        vat_rate=_vat_rate(row.child("СтавкаНДС")),
        vat_amount=_decimal(row.child("СуммаНДС"), f"{what}: СуммаНДС", cents=True),
    )


def _read_payment_rows(obj: _Node, what: str) -> tuple[PaymentRow, ...]:
    table = obj.child("РасшифровкаПлатежа")
    if table is None:
        return ()
    rows = []
    for row in table.children("Строка"):
        amount = _decimal(row.child("Сумма"), f"{what}: Сумма", cents=True)
        order = _order_ref(row, what)
        if order is None:
            settlement = row.child("ДанныеВзаиморасчетов")
            if settlement is not None:
                order = _order_ref(settlement, what)
        rows.append(PaymentRow(order_guid=order,
                               amount=amount if amount is not None else Decimal("0.00")))
    return tuple(rows)
