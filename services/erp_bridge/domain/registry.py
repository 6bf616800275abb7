"""What a document's new state from 1C means for the CRM, and which event announces it.

The bridge keeps each document's last known state. A new state is compared with it:

* a state no newer than the kept one (an EnterpriseData message with a lower number, the same
  OData ``DataVersion`` again) is stale or a repeat: nothing happens;
* otherwise the document is *alive* when posted and not marked for deletion, and the event is
  the change of that::

      kept \\ new      alive            not alive (un-posted)   marked / deleted
      none            posted           —                       —
      alive           changed*         unposted                deleted
      not alive       posted           —                       —

  (* only when the content changed: a re-send of the same content emits nothing.)

Every emitted event gets the document's next ``revision``, so consumers can keep the newest state
and ignore late or repeated events without knowing anything of 1C's numbering.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from .objects import Document


@dataclass(frozen=True)
class KeptState:
    alive: bool
    content_hash: str
    revision: int
    ed_message_no: int | None = None
    odata_version: str | None = None


@dataclass(frozen=True)
class Decision:
    newer: bool                 # keep the new state (False: stale or the same again)
    action: str | None          # posted | changed | unposted | deleted | None (no event)


def content_hash(doc: Document) -> str:
    """What matters of a document to the CRM, hashed: a re-send with the same content is no
    change even if 1C wrote the object again."""
    data = {
        "kind": doc.kind, "number": doc.number, "date": doc.date.isoformat(),
        "amount": str(doc.amount), "currency": doc.currency,
        "counterparty": str(doc.counterparty.guid) if doc.counterparty else None,
        "order": str(doc.order_guid) if doc.order_guid else None,
        "deal": str(doc.deal_id) if doc.deal_id else None,
        "lines": [[line.line_no, str(line.product_guid), line.product_name, line.unit_code,
                   str(line.quantity), str(line.amount)] for line in doc.lines],
        "payment_rows": [[str(r.order_guid), str(r.amount)] for r in doc.payment_rows],
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def is_alive(doc: Document) -> bool:
    return doc.posted and not doc.deletion_mark


def is_newer(kept: KeptState | None, *, ed_message_no: int | None = None,
             odata_version: str | None = None) -> bool:
    """EnterpriseData states are ordered by the sender's message number; OData has only an
    opaque ``DataVersion`` (equal or not), and the poller reads the current state, so a
    different version is the newer one."""
    if kept is None:
        return True
    if ed_message_no is not None:
        return kept.ed_message_no is None or ed_message_no > kept.ed_message_no
    if odata_version is not None:
        return odata_version != kept.odata_version
    return True


def decide(kept: KeptState | None, doc: Document, *, ed_message_no: int | None = None,
           odata_version: str | None = None) -> Decision:
    if not is_newer(kept, ed_message_no=ed_message_no, odata_version=odata_version):
        return Decision(newer=False, action=None)
    alive = is_alive(doc)
    if kept is None or not kept.alive:
        return Decision(newer=True, action="posted" if alive else None)
    if not alive:
        return Decision(newer=True, action="deleted" if doc.deletion_mark else "unposted")
    if kept.content_hash == content_hash(doc):
        return Decision(newer=True, action=None)
    return Decision(newer=True, action="changed")


def decide_deletion(kept: KeptState | None) -> str | None:
    """A physical deletion (``УдалениеОбъекта``, an OData 404): reverses an alive document;
    of something never seen, or already not alive, it is nothing."""
    if kept is None or not kept.alive:
        return None
    return "deleted"
