"""Matching a message's addresses to clients and contacts, and its subject to a deal (pure).

Addresses are compared lower-cased. The counterparties of a message are the sender of an inbound
one, the recipients (To, Cc) of an outbound one, never an address of our own domains
(``MAIL_OWN_DOMAINS``). A contact person's address gives the contact and its client, a company
address the client only; a contact beats a company address, then the order of the headers
decides. Counterparty addresses that match nothing are "create contact" suggestions — nothing is
created by itself.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from .parsing import ParsedMessage, domain_of

# The tag the CRM puts into the subject of mail sent from a deal: "[CRM-1a2b3c4d]" (the first 8
# hex digits of the deal id; deals have no human number). A full deal UUID in the subject counts
# too.
DEAL_TAG = re.compile(r"\[CRM-([0-9a-f]{8})\]", re.IGNORECASE)
UUID_IN_TEXT = re.compile(
    r"\b([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b", re.IGNORECASE)


def deal_tag(deal_id) -> str:
    return f"[CRM-{str(deal_id)[:8]}]"


def deal_refs_in_subject(subject: str) -> tuple[list[str], list[uuid.UUID]]:
    """(short refs, full ids) of deals named in ``subject``."""
    shorts = [m.lower() for m in DEAL_TAG.findall(subject or "")]
    fulls = []
    for m in UUID_IN_TEXT.findall(subject or ""):
        try:
            fulls.append(uuid.UUID(m))
        except ValueError:
            continue
    return shorts, fulls


def parse_own_domains(value) -> frozenset[str]:
    """``MAIL_OWN_DOMAINS``: a comma- or space-separated list (or a list)."""
    items = value if isinstance(value, list | tuple | set | frozenset) else \
        re.split(r"[,\s]+", str(value or ""))
    return frozenset(d.strip().lower().lstrip("@") for d in items if d and d.strip())


def is_own(address: str, own_domains: frozenset[str]) -> bool:
    domain = domain_of(address)
    return any(domain == d or domain.endswith("." + d) for d in own_domains)


def direction_of(parsed: ParsedMessage, mailbox_address: str,
                 own_domains: frozenset[str], folder_is_sent: bool = False) -> str:
    """Outbound when sent from the mailbox itself or from our domains (or found in Sent)."""
    sender = parsed.from_address
    if folder_is_sent:
        return "outbound"
    if sender and (sender == mailbox_address.lower() or is_own(sender, own_domains)):
        return "outbound"
    return "inbound"


def counterparties(parsed: ParsedMessage, direction: str, mailbox_address: str,
                   own_domains: frozenset[str]) -> list[str]:
    """The other side's addresses, in header order, never ours."""
    if direction == "inbound":
        candidates = [parsed.from_address] if parsed.from_address else []
    else:
        candidates = list(parsed.to) + list(parsed.cc)
    mine = mailbox_address.lower()
    out = []
    for address in candidates:
        if address and address != mine and not is_own(address, own_domains) \
                and address not in out:
            out.append(address)
    return out


@dataclass(frozen=True)
class KnownAddress:
    client_id: uuid.UUID | None        # None: looked up, belongs to no client
    contact_id: uuid.UUID | None = None


@dataclass(frozen=True)
class MatchResult:
    client_id: uuid.UUID | None
    contact_id: uuid.UUID | None
    matched_address: str | None
    unknown: tuple[str, ...]


def match(addresses: list[str], book: dict[str, KnownAddress]) -> MatchResult:
    """The client (and contact) of the first address of a contact, else of the first company
    address; addresses the book does not know as anyone's are returned as ``unknown``."""
    best = None
    unknown = []
    for address in addresses:
        known = book.get(address)
        if known is None or known.client_id is None:
            unknown.append(address)
            continue
        if best is None or (known.contact_id and not best[1].contact_id):
            best = (address, known)
    if best is None:
        return MatchResult(None, None, None, tuple(unknown))
    address, known = best
    return MatchResult(known.client_id, known.contact_id, address, tuple(unknown))
