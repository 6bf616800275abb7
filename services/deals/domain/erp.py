"""ERP documents as the deals service keeps them, and the sums they give a deal.

Each 1C document (customer order, invoice, shipment, incoming payment) is known in its newest
state only: the bridge numbers every state it emits (``revision``), and a state with a revision no
higher than the one kept is stale or a repeat and changes nothing. A deal's sums are then computed
from the current states of its documents — never accumulated — so any order or repetition of the
events leaves the same deal.

Documents reach a deal through *anchors*: the customer orders of the deal. An invoice or shipment
hangs on its order (``order_guid``; without one it is its own anchor: an invoice issued with no
order stands in for it); a payment on the orders of its breakdown.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from .funnel import ZERO, ErpFacts

KINDS = ("order", "invoice", "shipment", "payment")
STATES = ("posted", "unposted", "deleted")
EVENT_STATES = {"posted": "posted", "changed": "posted", "unposted": "unposted",
                "deleted": "deleted"}


@dataclass(frozen=True)
class Document:
    guid: uuid.UUID
    kind: str
    revision: int
    state: str
    amount: Decimal
    order_guid: uuid.UUID | None = None
    allocations: tuple[tuple[uuid.UUID | None, Decimal], ...] = ()
    client_id: uuid.UUID | None = None
    counterparty_guid: uuid.UUID | None = None
    number: str = ""
    document_date: datetime | None = None
    deal_id: uuid.UUID | None = None        # orders only: the deal named in 1C (crm:Сделка)

    @property
    def posted(self) -> bool:
        return self.state == "posted"

    def anchors(self) -> tuple[uuid.UUID, ...]:
        """The customer orders this document belongs to."""
        if self.kind == "order":
            return (self.guid,)
        if self.kind == "payment":
            orders = tuple(dict.fromkeys(o for o, _ in self.allocations if o is not None))
            if orders:
                return orders
            return (self.order_guid,) if self.order_guid else ()
        return (self.order_guid or self.guid,)

    def paid_to(self, anchors: set[uuid.UUID]) -> Decimal:
        """How much of this payment went to the given orders."""
        if self.kind != "payment":
            return ZERO
        if self.allocations and any(o is not None for o, _ in self.allocations):
            return sum((amount for order, amount in self.allocations if order in anchors), ZERO)
        return self.amount if self.order_guid in anchors else ZERO


def document_from_event(event_type: str, payload: dict) -> Document:
    """``erp_<kind>_<action>`` and its payload (loaded by the contract) -> the document state."""
    _, kind, action = event_type.split("_", 2)
    if kind not in KINDS or action not in EVENT_STATES:
        raise ValueError(f"not an ERP document event: {event_type}")
    return Document(
        guid=payload["document_guid"], kind=kind, revision=int(payload["revision"]),
        state=EVENT_STATES[action], amount=Decimal(payload["amount"]),
        order_guid=payload.get("order_guid"),
        allocations=tuple((a.get("order_guid"), Decimal(a["amount"]))
                          for a in payload.get("allocations") or ()),
        client_id=payload.get("client_id"), counterparty_guid=payload.get("counterparty_guid"),
        number=payload.get("number") or "", document_date=payload.get("document_date"),
        deal_id=payload.get("deal_id"),
    )


def supersedes(incoming: Document, existing: Document | None) -> bool:
    """True when ``incoming`` is newer than what is kept (a repeat or a stale state is not)."""
    return existing is None or incoming.revision > existing.revision


def fold(registry: dict[uuid.UUID, Document], incoming: Document) -> bool:
    """Keep ``incoming`` if it is newer; True when the registry changed."""
    if not supersedes(incoming, registry.get(incoming.guid)):
        return False
    registry[incoming.guid] = incoming
    return True


def facts_of(documents: Iterable[Document], anchors: Iterable[uuid.UUID]) -> ErpFacts:
    """The deal's sums from the current states of the documents on its anchors."""
    anchors = set(anchors)
    ordered = invoiced = shipped = paid = ZERO
    has_orders = False
    for doc in documents:
        if not doc.posted:
            continue
        if doc.kind == "payment":
            paid += doc.paid_to(anchors)
            continue
        if not anchors.intersection(doc.anchors()):
            continue
        if doc.kind == "order":
            ordered += doc.amount
            has_orders = True
        elif doc.kind == "invoice":
            invoiced += doc.amount
        elif doc.kind == "shipment":
            shipped += doc.amount
    return ErpFacts(ordered=ordered, invoiced=invoiced, shipped=shipped, paid=paid,
                    has_orders=has_orders)
