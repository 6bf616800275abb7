"""Applying what 1C sent: the document registry, counterparties, and the events, in the caller's
transaction (a message applies whole or not at all).

EnterpriseData messages are numbered per sender: a number at or below the last applied is a
repeat and changes nothing; objects keep the number of the message that brought them, so a late
object from an older message is ignored. OData states carry ``DataVersion`` instead.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from .domain.objects import (
    ContactPerson,
    Counterparty,
    CounterpartyRef,
    Deletion,
    Document,
    Message,
)
from .domain.registry import (
    KeptState,
    content_hash,
    decide,
    decide_deletion,
    is_alive,
)
from .models import (
    client_links,
    client_replica,
    contact_persons,
    counterparties,
    documents,
    exchange_log,
    senders,
)
from .outbound import acknowledge


@dataclass
class Receipt:
    outcome: str                       # applied | repeat
    sender: str | None = None
    message_no: int | None = None
    received_no: int | None = None     # what we acknowledge to the sender
    objects: int = 0
    events: list[tuple[str, dict]] = field(default_factory=list)

    def summary(self) -> dict:
        counts: dict[str, int] = {}
        for event_type, _ in self.events:
            counts[event_type] = counts.get(event_type, 0) + 1
        return {"outcome": self.outcome, "sender": self.sender, "message_no": self.message_no,
                "received_no": self.received_no, "objects": self.objects,
                "events": len(self.events), "by_type": counts}


def apply_message(session, outbox, message: Message, *, transport: str, now,
                  filename: str | None = None) -> Receipt:
    header = message.header
    # One statement: the sender's row, created at 0 if new, locked (messages of one sender apply
    # one at a time, in number order) and its last applied number read.
    statement = pg_insert(senders).values(sender=header.sender, last_message_no=0,
                                          updated_at=now)
    last = session.execute(statement.on_conflict_do_update(
        index_elements=["sender"], set_={"sender": statement.excluded.sender})
        .returning(senders.c.last_message_no)).scalar()
    acknowledge(session, header.sender, header.received_no, now)   # our messages it has
    if header.message_no <= last:
        _log(session, now, transport, header.sender, header.message_no, "repeat", 0, 0, filename)
        return Receipt("repeat", header.sender, header.message_no, received_no=last)
    receipt = Receipt("applied", header.sender, header.message_no,
                      received_no=header.message_no, objects=len(message.objects))
    apply_objects(session, message.objects, now=now, receipt=receipt,
                  ed_message_no=header.message_no,
                  version=f"ed:{header.sender}:{header.message_no}")
    session.execute(sa.update(senders).where(senders.c.sender == header.sender).values(
        last_message_no=header.message_no, updated_at=now))
    outbox.emit_many(session, receipt.events)
    _log(session, now, transport, header.sender, header.message_no, "applied",
         len(message.objects), len(receipt.events), filename)
    return receipt


def apply_objects(session, objects, *, now, receipt: Receipt, ed_message_no: int | None = None,
                  version: str | None = None, odata_versions: dict | None = None) -> None:
    """Counterparties and contact persons first (documents find their clients through them),
    then documents and deletions in the order sent."""
    odata_versions = odata_versions or {}
    changed_owners: set[uuid.UUID] = set()
    for obj in objects:
        if isinstance(obj, Counterparty):
            if _apply_counterparty(session, obj, now, ed_message_no):
                changed_owners.add(obj.guid)
        elif isinstance(obj, ContactPerson):
            _apply_contact(session, obj, now)
            if obj.owner_guid:
                changed_owners.add(obj.owner_guid)
    for guid in sorted(changed_owners):
        event = _counterparty_event(session, guid)
        if event is not None:
            event["manager_name"] = _manager_name(session, guid, objects)
            receipt.events.append(("erp_counterparty_upserted", event))
    for obj in objects:
        if isinstance(obj, Document):
            _apply_document(session, obj, now, receipt, ed_message_no=ed_message_no,
                            version=odata_versions.get(obj.guid) or obj.version or version or "")
        elif isinstance(obj, Deletion):
            _apply_deletion(session, obj, now, receipt, version=version or "deleted")


# -- counterparties --------------------------------------------------------------------------------


def _contacts_json(contacts) -> list[dict]:
    return [{"kind": c.kind, "value": c.value} for c in contacts]


def _apply_counterparty(session, cp: Counterparty, now, ed_message_no) -> bool:
    """Keep the newest state; True when something the CRM cares about changed."""
    data = {"name": cp.name, "full_name": cp.full_name or "", "inn": cp.inn, "kpp": cp.kpp,
            "legal_kind": cp.legal_kind, "contacts": _contacts_json(cp.contacts),
            "deletion_mark": cp.deletion_mark}
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    kept = session.execute(sa.select(counterparties).where(counterparties.c.guid == cp.guid)
                           .with_for_update()).mappings().first()
    if kept is not None and ed_message_no is not None and kept["ed_message_no"] is not None \
            and ed_message_no <= kept["ed_message_no"]:
        return False
    client_id = (kept["client_id"] if kept else None) or _client_for(
        session, CounterpartyRef(cp.guid, cp.name, cp.inn, cp.kpp))
    values = {**data, "client_id": client_id, "content_hash": digest,
              "ed_message_no": ed_message_no, "updated_at": now}
    session.execute(pg_insert(counterparties).values(guid=cp.guid, **values)
                    .on_conflict_do_update(index_elements=["guid"], set_=values))
    return kept is None or kept["content_hash"] != digest or kept["client_id"] != client_id


def _apply_contact(session, person: ContactPerson, now) -> None:
    values = {"owner_guid": person.owner_guid, "full_name": person.full_name,
              "position": person.position or "", "contacts": _contacts_json(person.contacts),
              "updated_at": now}
    session.execute(pg_insert(contact_persons).values(guid=person.guid, **values)
                    .on_conflict_do_update(index_elements=["guid"], set_=values))


def _manager_name(session, counterparty_guid, objects) -> str | None:
    """The 1C manager responsible for the counterparty, as a name the clients service can map to
    a CRM owner: the ``Ответственный`` of its latest document (in this message, else kept).
    A GUID is no name (OData sends ``Менеджер_Key``): then None."""
    def name_of(value):
        if not value:
            return None
        try:
            uuid.UUID(str(value))
            return None
        except ValueError:
            return str(value)[:300]

    for obj in reversed(objects):
        if isinstance(obj, Document) and obj.counterparty and \
                obj.counterparty.guid == counterparty_guid and name_of(obj.responsible):
            return name_of(obj.responsible)
    for (responsible,) in session.execute(sa.select(documents.c.responsible).where(
            documents.c.counterparty_guid == counterparty_guid,
            documents.c.responsible.isnot(None)).order_by(
            documents.c.document_date.desc()).limit(5)):
        if name_of(responsible):
            return name_of(responsible)
    return None


def _counterparty_event(session, guid) -> dict | None:
    cp = session.execute(sa.select(counterparties).where(
        counterparties.c.guid == guid)).mappings().first()
    if cp is None:
        return None
    people = session.execute(sa.select(contact_persons).where(
        contact_persons.c.owner_guid == guid).order_by(contact_persons.c.full_name)).mappings()

    def of(contacts, kind):
        return [c["value"] for c in contacts if c["kind"] == kind]

    return {"counterparty_guid": guid, "client_id": cp["client_id"], "name": cp["name"],
            "full_name": cp["full_name"], "inn": cp["inn"], "kpp": cp["kpp"],
            "legal_kind": cp["legal_kind"], "phones": of(cp["contacts"], "phone"),
            "emails": of(cp["contacts"], "email"), "addresses": of(cp["contacts"], "address"),
            "deletion_mark": cp["deletion_mark"],
            "contacts": [{"guid": p["guid"], "full_name": p["full_name"],
                          "position": p["position"], "phones": of(p["contacts"], "phone"),
                          "emails": of(p["contacts"], "email")} for p in people]}


def _client_for(session, ref: CounterpartyRef | None):
    """The CRM client of a 1C counterparty, in this order: linked before; the client the bridge
    sent to 1C under this GUID; the client carrying this GUID; by INN+KPP; by INN alone when only
    one client has it. One round trip for all of them (it runs for every document)."""
    if ref is None or (ref.guid is None and not ref.inn):
        return None
    parts = []
    if ref.guid is not None:
        parts += [
            sa.select(sa.literal(1).label("rank"), counterparties.c.client_id.label("client_id"))
            .where(counterparties.c.guid == ref.guid, counterparties.c.client_id.isnot(None)),
            sa.select(sa.literal(2), client_links.c.client_id)
            .where(client_links.c.counterparty_guid == ref.guid).limit(1),
            sa.select(sa.literal(3), client_replica.c.client_id)
            .where(client_replica.c.erp_counterparty_guid == ref.guid).limit(1),
        ]
    if ref.inn:
        if ref.kpp:
            parts.append(sa.select(sa.literal(4), client_replica.c.client_id).where(
                client_replica.c.inn == ref.inn, client_replica.c.kpp == ref.kpp).limit(2))
        parts.append(sa.select(sa.literal(5), client_replica.c.client_id).where(
            client_replica.c.inn == ref.inn).limit(2))
    found: dict[int, list] = {}
    for rank, client_id in session.execute(sa.union_all(*parts)).all():
        found.setdefault(rank, []).append(client_id)
    for rank in (1, 2, 3):
        if found.get(rank):
            return found[rank][0]
    for rank in (4, 5):                      # by requisites: only when they name one client
        if len(found.get(rank, ())) == 1:
            return found[rank][0]
    return None


# -- documents -------------------------------------------------------------------------------------


def _kept_state(row) -> KeptState | None:
    if row is None:
        return None
    return KeptState(alive=row["alive"], content_hash=row["content_hash"],
                     revision=row["revision"], ed_message_no=row["ed_message_no"],
                     odata_version=row["odata_version"])


def _apply_document(session, doc: Document, now, receipt: Receipt, *, ed_message_no,
                    version: str) -> None:
    row = session.execute(sa.select(documents).where(documents.c.guid == doc.guid)
                          .with_for_update()).mappings().first()
    odata_version = (doc.version or None) if ed_message_no is None else None
    decision = decide(_kept_state(row), doc, ed_message_no=ed_message_no,
                      odata_version=odata_version)
    if not decision.newer:
        return
    client_id = _client_for(session, doc.counterparty) or (row["client_id"] if row else None)
    revision = (row["revision"] if row else 0) + (1 if decision.action else 0)
    values = {
        "kind": doc.kind, "type_name": doc.kind, "number": doc.number,
        "document_date": doc.date, "amount": doc.amount, "currency": doc.currency,
        "counterparty_guid": doc.counterparty.guid if doc.counterparty else None,
        "client_id": client_id, "order_guid": doc.order_guid, "deal_id": doc.deal_id,
        "responsible": doc.responsible, "posted": doc.posted,
        "deletion_mark": doc.deletion_mark, "physically_deleted": False,
        "alive": is_alive(doc),
        "lines": [{"line_no": line.line_no,
                   "product_guid": str(line.product_guid) if line.product_guid else None,
                   "product_name": line.product_name, "unit_code": line.unit_code,
                   "quantity": str(line.quantity),
                   "price": str(line.price) if line.price is not None else None,
                   "amount": str(line.amount)} for line in doc.lines],
        "payment_rows": [{"order_guid": str(r.order_guid) if r.order_guid else None,
                          "amount": str(r.amount)} for r in doc.payment_rows],
        "content_hash": content_hash(doc), "revision": revision,
        "ed_message_no": ed_message_no, "odata_version": odata_version, "updated_at": now,
    }
    session.execute(pg_insert(documents).values(guid=doc.guid, first_seen_at=now, **values)
                    .on_conflict_do_update(index_elements=["guid"], set_=values))
    if decision.action:
        receipt.events.append((f"erp_{doc.kind}_{decision.action}",
                               document_payload({"guid": doc.guid, **values}, version)))


def _apply_deletion(session, deletion: Deletion, now, receipt: Receipt, *, version: str) -> None:
    row = session.execute(sa.select(documents).where(documents.c.guid == deletion.guid)
                          .with_for_update()).mappings().first()
    if row is None:
        cp = session.execute(sa.select(counterparties.c.guid).where(
            counterparties.c.guid == deletion.guid)).scalar()
        if cp is not None:
            session.execute(sa.update(counterparties).where(
                counterparties.c.guid == deletion.guid).values(deletion_mark=True,
                                                                updated_at=now))
        return                                   # never seen: nothing to reverse
    action = decide_deletion(_kept_state(row))
    values = {"physically_deleted": True, "alive": False, "updated_at": now,
              "revision": row["revision"] + (1 if action else 0)}
    session.execute(sa.update(documents).where(documents.c.guid == deletion.guid)
                    .values(**values))
    if action:
        receipt.events.append((f"erp_{row['kind']}_{action}",
                               document_payload({**row, **values}, version)))


def document_payload(row, version: str) -> dict:
    """The event payload of a document from its stored state (the contract in contracts.py)."""
    payload = {
        "document_guid": row["guid"], "document_version": version or "-",
        "revision": row["revision"], "client_id": row["client_id"],
        "counterparty_guid": row["counterparty_guid"], "number": row["number"] or "",
        "document_date": row["document_date"], "amount": row["amount"],
        "currency": row["currency"], "order_guid": row["order_guid"],
        "lines": [{"product_guid": line["product_guid"], "product_name": line["product_name"],
                   "unit_code": line["unit_code"], "quantity": line["quantity"],
                   "amount": line["amount"]} for line in row["lines"]],
    }
    if row["kind"] == "order":
        payload["deal_id"] = row["deal_id"]
    if row["kind"] == "payment":
        payload["allocations"] = [{"order_guid": r["order_guid"], "amount": r["amount"]}
                                  for r in row["payment_rows"]]
    return payload


def _log(session, now, transport, sender, message_no, outcome, objects, events, filename):
    session.execute(sa.insert(exchange_log).values(
        received_at=now, transport=transport, sender=sender, message_no=message_no,
        outcome=outcome, objects=objects, events=events, filename=filename))
