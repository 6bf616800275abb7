"""UT 11 OData entities (``standard.odata``, JSON) → the bridge's plain objects. Pure: no I/O.

What 1C's standard OData interface sends (INTEGRATION-FORMATS.md 1.6):

* standard properties ``Ref_Key`` (GUID), ``DataVersion`` (opaque base64, changes on every
  write), ``DeletionMark``, and for documents ``Posted``, ``Number`` and ``Date`` (no time zone:
  Moscow business time);
* references end in ``_Key``; an empty reference is the zero GUID;
* composite references come as a pair ``X`` + ``X_Type`` (``"StandardODATA.Document_…"``);
* tabular sections are arrays of rows with ``LineNumber`` as a string.

References are bare GUIDs: no names, no OKEI unit codes, no currency codes (unless the caller
``$expand``-ed them). Two links need a look-up the caller resolves with its own reads:

* a payment row names the order through ``ОбъектРасчетов_Key`` (``Catalog_ОбъектыРасчетов``,
  whose ``Объект``/``Объект_Type`` is the order): ``settlement_objects`` maps those keys to order
  GUIDs (see :func:`settlement_object_order`);
* a contact person's ``Owner_Key`` is a *partner* (``Catalog_Партнеры``), not a counterparty:
  ``partner_counterparties`` maps a partner to its one counterparty (``Партнер_Key``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from .objects import (
    ContactInfo,
    ContactPerson,
    Counterparty,
    CounterpartyRef,
    Document,
    DocumentLine,
    MalformedMessage,
    PaymentRow,
)

BUSINESS_TZ = ZoneInfo("Europe/Moscow")
EMPTY_GUID = uuid.UUID(int=0)

COUNTERPARTIES = "Catalog_Контрагенты"
CONTACT_PERSONS = "Catalog_КонтактныеЛицаПартнеров"
ORDERS = "Document_ЗаказКлиента"
INVOICES = "Document_СчетНаОплатуКлиенту"
SHIPMENTS = "Document_РеализацияТоваровУслуг"
PAYMENTS = "Document_ПоступлениеБезналичныхДенежныхСредств"
SETTLEMENT_OBJECTS = "Catalog_ОбъектыРасчетов"   # read by key only, to resolve payment rows

# The sets the bridge polls, in the order it applies them: catalogs before the documents that
# name them, orders before what is based on them.
ENTITY_SETS: tuple[str, ...] = (COUNTERPARTIES, CONTACT_PERSONS, ORDERS, INVOICES, SHIPMENTS,
                                PAYMENTS)
DOCUMENT_SETS: dict[str, str] = {ORDERS: "order", INVOICES: "invoice", SHIPMENTS: "shipment",
                                 PAYMENTS: "payment"}
SET_OF_KIND: dict[str, str] = {kind: name for name, kind in DOCUMENT_SETS.items()}

ORDER_TYPE = "StandardODATA." + ORDERS
CUSTOMER_PAYMENT_OPERATIONS = frozenset({"ПоступлениеОплатыОтКлиента"})

CONTACT_KINDS = {"Телефон": "phone", "АдресЭлектроннойПочты": "email", "Адрес": "address"}
LEGAL_KINDS = {                     # Перечисление.ЮрФизЛицо (UT) → the ED names the CRM keeps
    "ЮрЛицо": "ЮридическоеЛицо",
    "ЮрЛицоНеРезидент": "ЮридическоеЛицо",
    "ФизЛицо": "ФизическоеЛицо",
    "ИндивидуальныйПредприниматель": "ИндивидуальныйПредприниматель",
}
CURRENCY_CODES = {"643": "RUB", "810": "RUB", "840": "USD", "978": "EUR", "156": "CNY",
                  "398": "KZT", "933": "BYN", "051": "AMD", "860": "UZS", "417": "KGS"}


# -- helpers over entity sets ------------------------------------------------------------------


def is_document_set(entity_set: str) -> bool:
    return entity_set.startswith("Document_")


def type_name(entity_set: str) -> str:
    """The 1C reference type of an entity set, as ``Deletion.type_name`` carries it:
    ``Document_ЗаказКлиента`` → ``ДокументСсылка.ЗаказКлиента``."""
    prefix, _, name = entity_set.partition("_")
    kind = {"Document": "ДокументСсылка", "Catalog": "СправочникСсылка"}.get(prefix)
    if kind is None or not name:
        raise ValueError(f"not a catalog or document entity set: {entity_set}")
    return f"{kind}.{name}"


def entity_set_of(obj: Counterparty | ContactPerson | Document) -> str:
    """The entity set an object was read from (the first part of the idempotency key)."""
    if isinstance(obj, Counterparty):
        return COUNTERPARTIES
    if isinstance(obj, ContactPerson):
        return CONTACT_PERSONS
    if isinstance(obj, Document):
        return SET_OF_KIND[obj.kind]
    raise TypeError(f"no entity set for {type(obj).__name__}")


def settlement_object_order(entity: Mapping) -> uuid.UUID | None:
    """The order a ``Catalog_ОбъектыРасчетов`` entity stands for (``Объект`` when its
    ``Объект_Type`` is ``Document_ЗаказКлиента``), else None."""
    return _composite(entity, "Объект", "Объект", accept=ORDER_TYPE)


def ref_key_of(entity: Mapping) -> uuid.UUID | None:
    """An entity's ``Ref_Key``, or None when it has none that can be read."""
    try:
        return _ref_key(entity) if isinstance(entity, Mapping) else None
    except MalformedMessage:
        return None


def reference_of(entity: Mapping, key: str) -> uuid.UUID | None:
    """A ``…_Key`` reference of an entity, or None when empty, absent or unreadable."""
    try:
        return _guid(entity.get(key), key) if isinstance(entity, Mapping) else None
    except MalformedMessage:
        return None


def settlement_keys(entity: Mapping) -> set[str]:
    """The ``ОбъектРасчетов_Key`` values (lower-case GUID strings) a payment's rows name."""
    keys: set[str] = set()
    if not isinstance(entity, Mapping):
        return keys
    rows = entity.get("РасшифровкаПлатежа")
    if not isinstance(rows, list):
        return keys
    for row in rows:
        key = reference_of(row, "ОбъектРасчетов_Key")
        if key is not None:
            keys.add(str(key))
    return keys


# -- the mapping -------------------------------------------------------------------------------


def to_object(entity_set: str, entity: Mapping, *,
              settlement_objects: Mapping[str, uuid.UUID | None] | None = None,
              partner_counterparties: Mapping[uuid.UUID, uuid.UUID] | None = None,
              ) -> Counterparty | ContactPerson | Document | None:
    """One OData entity of ``entity_set`` as the CRM sees it; None for what the CRM ignores
    (a bank receipt that is not a customer payment). Raises :class:`MalformedMessage` for data
    it cannot read (missing or invalid ``Ref_Key``, a bad number or date…)."""
    if entity_set not in ENTITY_SETS:
        raise ValueError(f"the bridge does not read {entity_set}")
    if not isinstance(entity, Mapping):
        raise MalformedMessage(f"{entity_set}: an entity must be a JSON object", None)
    if entity_set == COUNTERPARTIES:
        return _counterparty(entity)
    if entity_set == CONTACT_PERSONS:
        return _contact_person(entity, partner_counterparties)
    return _document(entity_set, entity, settlement_objects or {})


def _counterparty(e: Mapping) -> Counterparty:
    guid = _ref_key(e)
    name = _text(e, "Description") or _text(e, "Наименование")
    full_name = _text(e, "НаименованиеПолное")
    legal = _text(e, "ЮрФизЛицо")
    return Counterparty(
        guid=guid,
        name=name or full_name,
        full_name=full_name,
        inn=_text(e, "ИНН") or None,
        kpp=_text(e, "КПП") or None,
        legal_kind=LEGAL_KINDS.get(legal, legal) or None,
        contacts=_contacts(e),
        deletion_mark=_bool(e, "DeletionMark", False),
        version=_version(e),
        partner_guid=_guid(e.get("Партнер_Key"), "Партнер_Key"),
    )


def _contact_person(e: Mapping, partner_counterparties) -> ContactPerson:
    guid = _ref_key(e)
    partner = _guid(e.get("Owner_Key"), "Owner_Key")
    owner = (partner_counterparties or {}).get(partner) if partner is not None else None
    return ContactPerson(
        guid=guid,
        owner_guid=owner,
        full_name=_text(e, "Description") or _text(e, "Наименование"),
        position=_text(e, "ДолжностьПоВизитке") or _text(e, "Должность"),
        contacts=_contacts(e),
        deletion_mark=_bool(e, "DeletionMark", False),
        version=_version(e),
        partner_guid=partner,
    )


def _document(entity_set: str, e: Mapping, settlement_objects) -> Document | None:
    kind = DOCUMENT_SETS[entity_set]
    guid = _ref_key(e)
    version = _version(e)
    if kind == "payment":
        operation = e.get("ХозяйственнаяОперация")
        if not isinstance(operation, str) or not operation:
            raise MalformedMessage("a bank receipt without ХозяйственнаяОперация",
                                   "ХозяйственнаяОперация")
        if operation not in CUSTOMER_PAYMENT_OPERATIONS:
            return None
    number = e.get("Number")
    if not isinstance(number, str):
        raise MalformedMessage("a document without a Number", "Number")
    counterparty = _guid(e.get("Контрагент_Key"), "Контрагент_Key")
    manager = _guid(e.get("Менеджер_Key"), "Менеджер_Key")
    order_guid = None
    lines: tuple[DocumentLine, ...] = ()
    payment_rows: tuple[PaymentRow, ...] = ()
    if kind == "invoice":
        order_guid = _composite(e, "ДокументОснование", "ДокументОснование", accept=ORDER_TYPE)
    elif kind == "shipment":
        order_guid = _composite(e, "ЗаказКлиента", "ЗаказКлиента", accept=ORDER_TYPE)
        if order_guid is None:
            order_guid = _guid(e.get("ЗаказКлиента_Key"), "ЗаказКлиента_Key")
        if order_guid is None:
            order_guid = _single_row_order(e)
    if kind == "payment":
        payment_rows = _payment_rows(e, settlement_objects)
    else:
        lines = _lines(e)
    return Document(
        kind=kind,
        guid=guid,
        number=number.strip(),
        date=_date(e, "Date"),
        amount=_decimal(e.get("СуммаДокумента"), "СуммаДокумента", required=True),
        currency=_currency(e),
        counterparty=CounterpartyRef(guid=counterparty) if counterparty is not None else None,
        posted=_bool(e, "Posted", True),
        deletion_mark=_bool(e, "DeletionMark", False),
        order_guid=order_guid,
        responsible=str(manager) if manager is not None else None,
        lines=lines,
        payment_rows=payment_rows,
        version=version,
    )


def _lines(e: Mapping) -> tuple[DocumentLine, ...]:
    lines = []
    for path, row in _rows(e, "Товары"):
        product = _guid(row.get("Номенклатура_Key"), f"{path}.Номенклатура_Key")
        nested = row.get("Номенклатура")                 # only when $expand-ed
        vat_rate = row.get("СтавкаНДС")                  # enum name (НДС20…) in UT 11.4
        lines.append(DocumentLine(
            line_no=_line_no(row, path),
            product_guid=product,
            product_name=(nested.get("Description") or "") if isinstance(nested, Mapping) else "",
            unit_code=None,                              # Упаковка_Key: no OKEI code in OData
            quantity=_decimal(row.get("Количество"), f"{path}.Количество", required=True),
            price=_decimal(row.get("Цена"), f"{path}.Цена"),
            amount=_decimal(row.get("Сумма"), f"{path}.Сумма", required=True),
            vat_rate=vat_rate if isinstance(vat_rate, str) and vat_rate else None,
            vat_amount=_decimal(row.get("СуммаНДС"), f"{path}.СуммаНДС"),
        ))
    return tuple(sorted(lines, key=lambda line: line.line_no))


def _payment_rows(e: Mapping, settlement_objects) -> tuple[PaymentRow, ...]:
    rows = []
    for path, row in _rows(e, "РасшифровкаПлатежа"):
        order = None
        key = _guid(row.get("ОбъектРасчетов_Key"), f"{path}.ОбъектРасчетов_Key")
        if key is not None:
            order = settlement_objects.get(str(key))
        if order is None:
            order = _composite(row, "Заказ", f"{path}.Заказ", accept=ORDER_TYPE)
        if order is None:
            order = _guid(row.get("Заказ_Key"), f"{path}.Заказ_Key")
        rows.append((_line_no(row, path), PaymentRow(
            order_guid=order,
            amount=_decimal(row.get("Сумма"), f"{path}.Сумма", required=True))))
    return tuple(row for _, row in sorted(rows, key=lambda item: item[0]))


def _single_row_order(e: Mapping) -> uuid.UUID | None:
    """A shipment with an empty header order whose rows all name the same order."""
    orders = set()
    for path, row in _rows(e, "Товары"):
        orders.add(_composite(row, "ЗаказКлиента", f"{path}.ЗаказКлиента", accept=ORDER_TYPE))
    return orders.pop() if len(orders) == 1 else None


def _contacts(e: Mapping) -> tuple[ContactInfo, ...]:
    contacts = []
    for _path, row in _rows(e, "КонтактнаяИнформация"):
        kind_name = row.get("Тип")
        kind = CONTACT_KINDS.get(kind_name, "other") if isinstance(kind_name, str) else "other"
        value = _text(row, "Представление")
        if not value and kind == "phone":
            value = _text(row, "НомерТелефона")
        if not value and kind == "email":
            value = _text(row, "АдресЭП")
        if value:
            contacts.append(ContactInfo(kind=kind, value=value))
    return tuple(contacts)


# -- field readers -----------------------------------------------------------------------------


def _ref_key(e: Mapping) -> uuid.UUID:
    value = e.get("Ref_Key")
    if value is None or value == "":
        raise MalformedMessage("an entity without Ref_Key", "Ref_Key")
    guid = _guid(value, "Ref_Key")
    if guid is None:
        raise MalformedMessage("an entity with the empty Ref_Key", "Ref_Key")
    return guid


def _version(e: Mapping) -> str:
    value = e.get("DataVersion")
    if not isinstance(value, str) or not value:
        raise MalformedMessage("an entity without DataVersion", "DataVersion")
    return value


def _guid(value, field: str) -> uuid.UUID | None:
    """A reference: None when absent or the empty (zero) GUID."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedMessage(f"{field} is not a GUID: {value!r}", field)
    try:
        guid = uuid.UUID(value)
    except ValueError:
        raise MalformedMessage(f"{field} is not a GUID: {value[:60]!r}", field) from None
    return None if guid == EMPTY_GUID else guid


def _composite(e: Mapping, name: str, field: str, *, accept: str) -> uuid.UUID | None:
    """A composite reference ``name`` + ``name_Type``: the GUID when its type is ``accept``."""
    if e.get(f"{name}_Type") != accept:
        return None
    return _guid(e.get(name), field)


def _text(e: Mapping, key: str) -> str:
    value = e.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedMessage(f"{key} is not a string: {value!r}"[:120], key)
    return value.strip()


def _bool(e: Mapping, key: str, default: bool) -> bool:
    value = e.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise MalformedMessage(f"{key} is not a boolean: {value!r}"[:120], key)
    return value


def _decimal(value, field: str, *, required: bool = False) -> Decimal | None:
    if value is None or value == "":
        if required:
            raise MalformedMessage(f"{field} is missing", field)
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise MalformedMessage(f"{field} is not a number: {value!r}"[:120], field)
    try:
        number = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise MalformedMessage(f"{field} is not a number: {value!r}"[:120], field) from None
    if not number.is_finite():
        raise MalformedMessage(f"{field} is not a finite number: {value!r}", field)
    return number


def _date(e: Mapping, key: str) -> datetime:
    value = e.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedMessage(f"{key} is missing", key)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedMessage(f"{key} is not a date: {value[:40]!r}", key) from None
    if moment.year <= 1:
        raise MalformedMessage(f"{key} is the empty date", key)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=BUSINESS_TZ)
    return moment.astimezone(BUSINESS_TZ)


def _line_no(row: Mapping, path: str) -> int:
    value = row.get("LineNumber")
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(value)
    except (TypeError, ValueError):
        raise MalformedMessage(f"{path}.LineNumber is not a number: {value!r}"[:120],
                               f"{path}.LineNumber") from None
    if number < 1:
        raise MalformedMessage(f"{path}.LineNumber is not positive: {value!r}",
                               f"{path}.LineNumber")
    return number


def _rows(e: Mapping, section: str):
    rows = e.get(section)
    if rows is None:
        return
    if not isinstance(rows, list):
        raise MalformedMessage(f"the tabular section {section} is not an array", section)
    for index, row in enumerate(rows):
        path = f"{section}[{index}]"
        if not isinstance(row, Mapping):
            raise MalformedMessage(f"{path} is not an object", path)
        yield path, row


def _currency(e: Mapping) -> str:
    """``Валюта_Key`` is a bare reference: RUB unless a code came along (``Валюта`` as a code
    string, or ``$expand``-ed as ``{"Code": "643", …}``)."""
    value = e.get("Валюта")
    if isinstance(value, Mapping):
        value = value.get("Code")
    if not isinstance(value, str | int) or isinstance(value, bool) or str(value).strip() == "":
        return "RUB"
    code = str(value).strip()
    if code.isdigit():
        return CURRENCY_CODES.get(code.zfill(3), code.zfill(3))
    if code.casefold() in {"руб", "руб.", "rur"}:
        return "RUB"
    return code.upper()
