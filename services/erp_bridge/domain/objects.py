"""What the bridge reads out of 1C, whatever the transport (EnterpriseData XML or OData JSON).

Both parsers produce these plain objects; the registry (``registry.py``) decides what each means
for the CRM (new, changed, un-posted, deleted, stale, the same again) and which events to emit.
Dates in 1C carry no time zone: parsers make them aware in the business zone (Moscow).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

# Document kinds the CRM follows, by 1C type name (both invoice names 1C uses).
DOCUMENT_KINDS = {
    "ЗаказКлиента": "order",
    "СчетНаОплатуКлиенту": "invoice",
    "СчетНаОплатуПокупателю": "invoice",
    "РеализацияТоваровУслуг": "shipment",
    "ПоступлениеБезналичныхДенежныхСредств": "payment",
}
COUNTERPARTY = "Контрагенты"
FIELD_MAX = 500
CONTACT_PERSON = "КонтактныеЛица"


@dataclass(frozen=True)
class CounterpartyRef:
    """A counterparty as a document names it (its key properties)."""

    guid: uuid.UUID | None
    name: str = ""
    inn: str | None = None
    kpp: str | None = None


@dataclass(frozen=True)
class ContactInfo:
    kind: str                  # phone | email | address | other
    value: str                 # the presentation (Представление) as 1C shows it


@dataclass(frozen=True)
class Counterparty:
    guid: uuid.UUID
    name: str
    full_name: str = ""
    inn: str | None = None
    kpp: str | None = None
    # ЮридическоеЛицо | ФизическоеЛицо | ИндивидуальныйПредприниматель
    legal_kind: str | None = None
    contacts: tuple[ContactInfo, ...] = ()
    deletion_mark: bool = False
    version: str = ""                    # OData DataVersion; "" for EnterpriseData
    partner_guid: uuid.UUID | None = None  # OData Партнер_Key (UT 11 contact persons hang on it)


@dataclass(frozen=True)
class ContactPerson:
    guid: uuid.UUID
    owner_guid: uuid.UUID | None          # the counterparty (Владелец)
    full_name: str
    position: str = ""
    contacts: tuple[ContactInfo, ...] = ()
    deletion_mark: bool = False
    version: str = ""                     # OData DataVersion; "" for EnterpriseData
    partner_guid: uuid.UUID | None = None  # OData Owner_Key (a Catalog_Партнеры key)


@dataclass(frozen=True)
class DocumentLine:
    line_no: int
    product_guid: uuid.UUID | None
    product_name: str
    unit_code: str | None                 # OKEI: 055 m², 796 pcs, 168 t
    quantity: Decimal
    price: Decimal | None
    amount: Decimal
    vat_rate: str | None = None
    vat_amount: Decimal | None = None


@dataclass(frozen=True)
class PaymentRow:
    order_guid: uuid.UUID | None
    amount: Decimal


@dataclass(frozen=True)
class Document:
    kind: str                              # order | invoice | shipment | payment
    guid: uuid.UUID
    number: str
    date: datetime                         # aware (business zone)
    amount: Decimal
    currency: str = "RUB"
    counterparty: CounterpartyRef | None = None
    posted: bool = True
    deletion_mark: bool = False
    order_guid: uuid.UUID | None = None    # the customer order (crm:Заказ / ЗаказКлиента_Key)
    deal_id: uuid.UUID | None = None       # crm:Сделка, when 1C knows the CRM deal
    responsible: str | None = None         # the 1C manager (name or GUID as sent)
    lines: tuple[DocumentLine, ...] = ()
    payment_rows: tuple[PaymentRow, ...] = ()
    version: str = ""                      # OData DataVersion; "" for EnterpriseData


@dataclass(frozen=True)
class Deletion:
    """``УдалениеОбъекта`` (or an OData 404 on a keyed read): the object is physically gone."""

    type_name: str                         # 1C type, e.g. "ДокументСсылка.ЗаказКлиента"
    guid: uuid.UUID


@dataclass(frozen=True)
class MessageHeader:
    format: str                            # base namespace (+ extensions after a space)
    created_at: datetime | None
    exchange_plan: str
    sender: str                            # msg:From
    receiver: str                          # msg:To
    message_no: int
    received_no: int | None
    available_versions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Message:
    header: MessageHeader
    objects: tuple[Counterparty | ContactPerson | Document | Deletion, ...] = field(
        default_factory=tuple)


class MalformedMessage(ValueError):
    """The input cannot be read as a 1C message: the reason is for people and the quarantine.
    ``field`` names where (an element path or a JSON key) when it is known."""

    def __init__(self, reason: str, field: str | None = None):
        super().__init__(reason)
        self.reason = reason
        # An element path is built from the message's own tag names, which a hostile message can
        # make arbitrarily long: keep it within what the quarantine stores (VARCHAR(500)).
        self.field = field if field is None or len(field) <= FIELD_MAX else (
            field[:FIELD_MAX - 1] + "…")
