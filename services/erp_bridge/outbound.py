"""Outbound to 1C: a client created or changed in the CRM goes to 1C as an EnterpriseData
counterparty message (``Справочник.Контрагенты`` with its contact persons).

Trigger: ``clients.client_created``, and ``clients.client_updated`` when a field 1C keeps changed
(name, full name, legal form, INN, KPP, addresses, phones, e-mails, contacts). The card is read
with ``clients.get_client`` as the bridge's own integration identity (``ERP_SERVICE_USER_ID``).
Nothing is sent back to 1C that 1C already holds: the requisites (name, INN, KPP, phones,
e-mails) equal to the linked counterparty as 1C last sent it, or the same content as the last
message sent for the client.

One counterparty per client in 1C: the GUID sent is the linked counterparty's (one 1C sent with
this client, or the card's ERP link), else an unlinked 1C counterparty with the same INN+KPP
(linked then), else one the bridge chose once; ``client_links`` keeps it, so re-sends reuse it and
an incoming counterparty with that GUID finds its client (``applying._client_for``).

Numbering and acknowledgement: messages to a node (``ERP_1C_NODE``, msg:To; we are
``ERP_NODE_CODE``, msg:From) are numbered 1, 2, … and carry in msg:ReceivedNo the last message we
applied from that node. A message from the node with ``ReceivedNo = k`` acknowledges every message
up to k (``acknowledge``, called by ``applying.apply_message``).

Delivery, in number order: ``<ERP_EXCHANGE_DIR>/out/Message_<from>_<to>_<n>.xml`` (written to a
temporary name, then renamed) and, with ``ERP_OUTBOUND_URL``, an HTTP POST of the same XML (Basic
auth ``ERP_OUTBOUND_USERNAME``/``ERP_OUTBOUND_PASSWORD``, ``ERP_OUTBOUND_TIMEOUT`` seconds). A
failure is recorded on the message (attempts, last error) and retried by the timer after
``ERP_OUTBOUND_RETRY_SECONDS``; nothing after an undelivered message goes out before it. An
unacknowledged message is delivered again, with all after it, ``ERP_RESEND_MINUTES`` after its
last delivery (1C applies in order and ignores numbers it has).

``ERP_OUTBOUND_ENABLED`` switches the whole direction on (off when not configured).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import uuid
from datetime import timedelta
from pathlib import Path

import phonenumbers
import requests
import sqlalchemy as sa
from nameko.exceptions import RemoteError
from nameko.rpc import RpcProxy
from nameko.timer import timer
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_platform.clock import utcnow
from crm_platform.config import as_float, as_int
from crm_platform.consumer import event_handler
from crm_platform.errors import NotFound
from crm_platform.identity import Identity
from crm_platform.inbox import claim_event
from crm_platform.rpc import rpc

from .domain.enterprisedata_out import clean, counterparty_message
from .models import (
    client_links,
    contact_persons,
    counterparties,
    outbound_messages,
    outbound_nodes,
    senders,
)

log = logging.getLogger(__name__)

# The bridge's own user when it reads client cards (audited by the clients service as such).
DEFAULT_SERVICE_USER_ID = "00000000-0000-4000-8000-0000000001c1"
DEFAULT_NODE_CODE = "CRM"
DEFAULT_1C_NODE = "UT"
DEFAULT_RESEND_MINUTES = 30
DEFAULT_RETRY_SECONDS = 60
DEFAULT_TIMEOUT_SECONDS = 15.0

# Card fields 1C keeps: a change of anything else (owner, status, segment, the ERP link…) is not
# sent.
ERP_FIELDS = frozenset({"short_name", "full_name", "legal_form", "inn", "kpp", "addresses",
                        "phones", "emails", "contacts"})
# The address written to 1C (ФактическийАдрес), by preference.
ADDRESS_PREFERENCE = ("actual", "legal", "delivery", "postal")
ERROR_CHARS = 2000


# -- what is sent ---------------------------------------------------------------------------------


def _address(card: dict) -> str:
    addresses = [a for a in card.get("addresses") or () if clean(a.get("text"))]
    for kind in ADDRESS_PREFERENCE:
        for address in addresses:
            if address.get("kind") == kind:
                return clean(address["text"])
    return clean(addresses[0]["text"]) if addresses else ""


def _name_key(value) -> str:
    return " ".join(clean(value).lower().split())


def outbound_content(card: dict, guid: uuid.UUID, person_guids: dict) -> tuple[dict, list[dict]]:
    """The counterparty and contact persons to send for a client card (``get_client``):
    ``person_guids`` maps a CRM contact id to the 1C contact person GUID to send it under."""
    counterparty = {
        "guid": str(guid), "short_name": clean(card.get("short_name")),
        "full_name": clean(card.get("full_name")), "inn": clean(card.get("inn")),
        "kpp": clean(card.get("kpp")), "legal_form": clean(card.get("legal_form")),
        "phones": [clean(p) for p in card.get("phones") or () if clean(p)],
        "emails": [clean(e) for e in card.get("emails") or () if clean(e)],
        "address": _address(card),
    }
    contacts = [{"guid": str(person_guids[str(c["id"])]), "full_name": clean(c.get("full_name")),
                 "position": clean(c.get("position")),
                 "phones": [clean(p) for p in c.get("phones") or () if clean(p)],
                 "emails": [clean(e) for e in c.get("emails") or () if clean(e)]}
                for c in card.get("contacts") or ()]
    contacts.sort(key=lambda c: (c["full_name"], c["guid"]))
    return counterparty, contacts


def content_digest(counterparty: dict, contacts: list[dict]) -> str:
    data = {"counterparty": counterparty, "contacts": contacts}
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False)
                          .encode()).hexdigest()


def phone_key(value) -> str:
    """A phone as comparable text: E.164 when it reads as a number (1C keeps presentations such
    as ``+7 (343) 222-33-44``, the CRM E.164), else its digits."""
    text = clean(value)
    try:
        number = phonenumbers.parse(text, "RU")
        if phonenumbers.is_possible_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        pass
    return re.sub(r"\D", "", text)


def same_requisites(card: dict, counterparty: dict) -> bool:
    """Whether 1C's counterparty (as kept from 1C) already holds the card's requisites: name,
    INN, KPP, phones, e-mails (and the full name, when the card has one)."""
    name = clean(card.get("short_name")) or clean(card.get("full_name"))
    if _name_key(name) != _name_key(counterparty["name"]):
        return False
    if clean(card.get("full_name")) and \
            _name_key(card["full_name"]) != _name_key(counterparty["full_name"]):
        return False
    for key in ("inn", "kpp"):
        if clean(card.get(key)) != clean(counterparty[key]):
            return False
    kept = counterparty["contacts"] or []
    phones = {phone_key(p) for p in card.get("phones") or () if clean(p)}
    if phones != {phone_key(c["value"]) for c in kept if c["kind"] == "phone"}:
        return False
    emails = {clean(e).lower() for e in card.get("emails") or () if clean(e)}
    return emails == {clean(c["value"]).lower() for c in kept if c["kind"] == "email"}


# -- acknowledgements (called while applying a message from 1C) -----------------------------------


def acknowledge(session, node: str, received_no: int | None, now) -> int:
    """``node`` says it has our messages up to ``received_no``: they are acknowledged (no more
    re-sends). Returns how many were newly acknowledged."""
    if received_no is None or received_no <= 0:
        return 0
    done = session.execute(sa.update(outbound_messages).where(
        outbound_messages.c.receiver == node, outbound_messages.c.message_no <= received_no,
        outbound_messages.c.acked_at.is_(None)).values(acked_at=now))
    session.execute(sa.update(outbound_nodes).where(
        outbound_nodes.c.receiver == node, outbound_nodes.c.acked_no < received_no).values(
        acked_no=sa.func.least(received_no, outbound_nodes.c.last_message_no), updated_at=now))
    return done.rowcount or 0


# -- delivery -------------------------------------------------------------------------------------


def write_atomically(folder: Path, name: str, data: bytes) -> Path:
    """``folder/name`` appears whole or not at all (1C may pick it up any moment)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    temporary = folder / f".{name}.{uuid.uuid4().hex}.tmp"
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    finally:
        if temporary.exists():
            temporary.unlink()
    return target


def _lock(session, key: str) -> None:
    session.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(key, 0))))


def _flag(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _iso(value):
    return value.isoformat() if value is not None else None


class OutboundToErp:
    clients_rpc = RpcProxy("clients")

    # -- configuration ----------------------------------------------------------------------------
    def _outbound_enabled(self) -> bool:
        return _flag(self.config.get("ERP_OUTBOUND_ENABLED"))

    def _node_code(self) -> str:
        return self.config.get("ERP_NODE_CODE") or DEFAULT_NODE_CODE

    def _erp_node(self) -> str:
        return self.config.get("ERP_1C_NODE") or DEFAULT_1C_NODE

    def _service_identity(self) -> Identity:
        return Identity(user_id=str(self.config.get("ERP_SERVICE_USER_ID")
                                    or DEFAULT_SERVICE_USER_ID),
                        role="integration", username="erp_bridge", full_name="Обмен с 1С")

    # -- the trigger ------------------------------------------------------------------------------
    @event_handler("clients", "client_created")
    def send_created_client_to_erp(self, event):
        self._client_changed(event, changed=None)

    @event_handler("clients", "client_updated")
    def send_updated_client_to_erp(self, event):
        self._client_changed(event, changed=event.payload["changed_fields"])

    def _client_changed(self, event, changed) -> None:
        if not self._outbound_enabled():
            return
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            if changed is not None and not set(changed) & ERP_FIELDS:
                return                      # the ERP link, owner, status, segment…: not 1C's
            queued = self.queue_client(session, event.payload["client_id"])
        if queued is not None:
            self.deliver_outbound_round()

    def queue_client(self, session, client_id) -> int | None:
        """Build and keep the message for a client when 1C does not hold its current state yet;
        its number, or None when there is nothing to send. The card is read under a per-client
        lock, so of two concurrent changes the later message carries the later card."""
        now = utcnow()
        _lock(session, f"erp_outbound:client:{client_id}")
        card = self._client_card(client_id)
        if card is None:
            return None
        receiver = self._erp_node()
        guid, linked = self._counterparty_guid_for(session, card, now)
        counterparty, contacts = outbound_content(
            card, guid, self._person_guids(session, guid, card))
        digest = content_digest(counterparty, contacts)
        last = session.execute(sa.select(
            outbound_messages.c.content_hash, outbound_messages.c.created_at).where(
            outbound_messages.c.receiver == receiver,
            outbound_messages.c.client_id == uuid.UUID(str(card["id"])))
            .order_by(outbound_messages.c.id.desc()).limit(1)).first()
        if last is not None and last.content_hash == digest:
            return None                     # sent already, as it is
        # What 1C holds is the newer of its counterparty as it last sent it and our last message.
        if linked is not None and (last is None or linked["updated_at"] >= last.created_at) \
                and same_requisites(card, linked):
            return None                     # 1C's own data (or 1C has it already)
        session.execute(pg_insert(outbound_nodes).values(
            receiver=receiver, last_message_no=0, acked_no=0, updated_at=now)
            .on_conflict_do_nothing())
        message_no = session.execute(sa.update(outbound_nodes).where(
            outbound_nodes.c.receiver == receiver).values(
            last_message_no=outbound_nodes.c.last_message_no + 1, updated_at=now)
            .returning(outbound_nodes.c.last_message_no)).scalar()
        received_no = session.execute(sa.select(senders.c.last_message_no).where(
            senders.c.sender == receiver)).scalar() or 0
        payload = counterparty_message(sender=self._node_code(), receiver=receiver,
                                       message_no=message_no, received_no=received_no,
                                       counterparty=counterparty, contacts=contacts,
                                       created_at=now)
        session.execute(sa.insert(outbound_messages).values(
            receiver=receiver, message_no=message_no, client_id=uuid.UUID(str(card["id"])),
            counterparty_guid=guid, payload=payload, content_hash=digest, created_at=now))
        log.info("client %s queued for 1C as message %s (counterparty %s)", card["id"],
                 message_no, guid)
        return message_no

    def _client_card(self, client_id) -> dict | None:
        self.caller.act_as(self._service_identity())
        try:
            return self.clients_rpc.get_client(str(client_id))
        except NotFound:
            return None
        except RemoteError as exc:
            if exc.exc_type == "NotFound":
                return None
            raise

    def _counterparty_guid_for(self, session, card: dict, now):
        """The 1C GUID to send the client under, and the 1C counterparty behind it (as 1C last
        sent it) when the bridge has one. Remembered in ``client_links``."""
        client_id = uuid.UUID(str(card["id"]))
        card_guid = uuid.UUID(str(card["erp_counterparty_guid"])) \
            if card.get("erp_counterparty_guid") else None
        linked = session.execute(sa.select(counterparties).where(
            counterparties.c.client_id == client_id).order_by(
            counterparties.c.deletion_mark, counterparties.c.updated_at.desc())).mappings().all()
        chosen = next((cp for cp in linked if cp["guid"] == card_guid), None) \
            or (linked[0] if linked else None)
        source = "linked"
        if chosen is None and card_guid is not None:
            source = "card"
            chosen = session.execute(sa.select(counterparties).where(
                counterparties.c.guid == card_guid)).mappings().first()
            guid = card_guid
        elif chosen is None and clean(card.get("inn")):
            source = "inn_kpp"
            kpp = clean(card.get("kpp")) or None
            chosen = session.execute(sa.select(counterparties).where(
                counterparties.c.inn == clean(card["inn"]),
                counterparties.c.kpp.is_(None) if kpp is None else counterparties.c.kpp == kpp,
                counterparties.c.client_id.is_(None)).order_by(
                counterparties.c.deletion_mark, counterparties.c.updated_at.desc())
                .limit(1).with_for_update()).mappings().first()
        if chosen is not None:
            guid = chosen["guid"]
            if chosen["client_id"] is None:
                session.execute(sa.update(counterparties).where(
                    counterparties.c.guid == guid, counterparties.c.client_id.is_(None))
                    .values(client_id=client_id))
        elif source != "card":
            kept = session.execute(sa.select(client_links.c.counterparty_guid).where(
                client_links.c.client_id == client_id)).scalar()
            guid, source = kept or uuid.uuid4(), "chosen"       # chosen once, then kept
        values = {"counterparty_guid": guid, "source": source, "updated_at": now}
        session.execute(pg_insert(client_links).values(client_id=client_id, created_at=now,
                                                       **values)
                        .on_conflict_do_update(index_elements=["client_id"], set_=values))
        return guid, chosen

    @staticmethod
    def _person_guids(session, guid, card: dict) -> dict:
        """CRM contact id -> 1C contact person GUID: the counterparty's person of the same name
        when 1C sent one, else the CRM contact's own id (stable, so re-sends reuse it)."""
        known: dict[str, list] = {}
        for person_guid, full_name in session.execute(sa.select(
                contact_persons.c.guid, contact_persons.c.full_name).where(
                contact_persons.c.owner_guid == guid).order_by(contact_persons.c.guid)):
            known.setdefault(_name_key(full_name), []).append(person_guid)
        result = {}
        for contact in card.get("contacts") or ():
            same = known.get(_name_key(contact.get("full_name")))
            result[str(contact["id"])] = same.pop(0) if same else uuid.UUID(str(contact["id"]))
        return result

    # -- delivery ---------------------------------------------------------------------------------
    @timer(interval=5)
    def deliver_outbound(self):
        if self._outbound_enabled():
            try:
                self.deliver_outbound_round()
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("delivering messages to 1C failed")

    def _transport_configured(self) -> bool:
        return bool(self.config.get("ERP_EXCHANGE_DIR") or self.config.get("ERP_OUTBOUND_URL"))

    def deliver_outbound_round(self, force: bool = False) -> dict:
        """Deliver what is due, in number order; stop at the first failure (1C must not get a
        later number before an earlier one). ``force``: every unacknowledged message now."""
        receiver = self._erp_node()
        if not self._transport_configured():
            return {"outcome": "not_configured", "delivered": [], "failed": None}
        now = utcnow()
        delivered, failed = [], None
        with self.db.session() as session:
            _lock(session, f"erp_outbound:deliver:{receiver}")
            rows = session.execute(sa.select(
                outbound_messages.c.id, outbound_messages.c.message_no,
                outbound_messages.c.payload, outbound_messages.c.delivered_at,
                outbound_messages.c.last_attempt_at).where(
                outbound_messages.c.receiver == receiver,
                outbound_messages.c.acked_at.is_(None))
                .order_by(outbound_messages.c.message_no)).mappings().all()
            for row in self._due(rows, now, force):
                error = self._deliver_one(receiver, row["message_no"], bytes(row["payload"]))
                values = {"attempts": outbound_messages.c.attempts + 1, "last_attempt_at": now,
                          "last_error": error}
                if error is None:
                    values["delivered_at"] = now
                session.execute(sa.update(outbound_messages).where(
                    outbound_messages.c.id == row["id"]).values(**values))
                if error is not None:
                    failed = {"message_no": row["message_no"], "error": error}
                    log.warning("message %s to 1C not delivered: %s", row["message_no"], error)
                    break
                delivered.append(row["message_no"])
        return {"outcome": "failed" if failed else "delivered", "delivered": delivered,
                "failed": failed}

    def _due(self, rows, now, force: bool) -> list:
        """From the first message due on: never delivered (or its retry is due), or delivered
        ``ERP_RESEND_MINUTES`` ago and still unacknowledged. An undelivered message waiting for
        its retry holds back everything after it."""
        if force:
            return list(rows)
        retry = timedelta(seconds=as_int(self.config.get("ERP_OUTBOUND_RETRY_SECONDS"),
                                         DEFAULT_RETRY_SECONDS))
        resend = timedelta(minutes=as_int(self.config.get("ERP_RESEND_MINUTES"),
                                          DEFAULT_RESEND_MINUTES))
        for index, row in enumerate(rows):
            if row["delivered_at"] is None:
                if row["last_attempt_at"] is None or now - row["last_attempt_at"] >= retry:
                    return list(rows[index:])
                return []
            if now - row["delivered_at"] >= resend:
                return list(rows[index:])
        return []

    def _deliver_one(self, receiver: str, message_no: int, payload: bytes) -> str | None:
        """Put one message where 1C takes it; the error text, or None when delivered."""
        name = f"Message_{self._node_code()}_{receiver}_{message_no}.xml"
        folder = self.config.get("ERP_EXCHANGE_DIR")
        if folder:
            try:
                write_atomically(Path(folder) / "out", name, payload)
            except OSError as exc:
                return f"Каталог обмена: {exc}"[:ERROR_CHARS]
        url = self.config.get("ERP_OUTBOUND_URL")
        if url:
            return self._post(url, name, payload)
        return None

    def _post(self, url: str, name: str, payload: bytes) -> str | None:
        headers = {"Content-Type": "application/xml; charset=utf-8",
                   "Content-Disposition": f'attachment; filename="{name}"'}
        username = self.config.get("ERP_OUTBOUND_USERNAME")
        if username:
            # 1C user names are usually Cyrillic and 1C expects UTF-8 Basic credentials.
            password = self.config.get("ERP_OUTBOUND_PASSWORD") or ""
            token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        timeout = as_float(self.config.get("ERP_OUTBOUND_TIMEOUT"), DEFAULT_TIMEOUT_SECONDS)
        try:
            response = requests.post(url, data=payload, headers=headers, timeout=timeout)
        except requests.RequestException as exc:
            return f"HTTP: {type(exc).__name__}: {exc}"[:ERROR_CHARS]
        if not 200 <= response.status_code < 300:
            excerpt = " ".join(response.text.split())[:300]
            return f"HTTP {response.status_code}: {excerpt}"[:ERROR_CHARS]
        return None

    # -- admin ------------------------------------------------------------------------------------
    @rpc
    def outbound_status(self, limit: int = 100) -> dict:
        """Messages to 1C not yet acknowledged: ``pending`` (never delivered; with the last error)
        and ``unacked`` (delivered, waiting for 1C's ReceivedNo); the numbering per receiver."""
        self.caller.require("admin")
        receiver = self._erp_node()
        limit = max(1, min(int(limit), 500))
        with self.db.session() as session:
            node = session.execute(sa.select(outbound_nodes).where(
                outbound_nodes.c.receiver == receiver)).mappings().first()
            rows = session.execute(sa.select(
                outbound_messages.c.message_no, outbound_messages.c.client_id,
                outbound_messages.c.counterparty_guid, outbound_messages.c.created_at,
                outbound_messages.c.delivered_at, outbound_messages.c.attempts,
                outbound_messages.c.last_attempt_at, outbound_messages.c.last_error).where(
                outbound_messages.c.receiver == receiver,
                outbound_messages.c.acked_at.is_(None))
                .order_by(outbound_messages.c.message_no).limit(limit)).mappings().all()
        items = [{"message_no": r["message_no"], "client_id": str(r["client_id"]),
                  "counterparty_guid": str(r["counterparty_guid"]),
                  "created_at": _iso(r["created_at"]), "delivered_at": _iso(r["delivered_at"]),
                  "attempts": r["attempts"], "last_attempt_at": _iso(r["last_attempt_at"]),
                  "last_error": r["last_error"]} for r in rows]
        return {
            "sender": self._node_code(), "receiver": receiver,
            "enabled": self._outbound_enabled(), "transport": {
                "folder": bool(self.config.get("ERP_EXCHANGE_DIR")),
                "http": bool(self.config.get("ERP_OUTBOUND_URL"))},
            "last_message_no": node["last_message_no"] if node else 0,
            "acked_no": node["acked_no"] if node else 0,
            "pending": [i for i in items if i["delivered_at"] is None],
            "unacked": [i for i in items if i["delivered_at"] is not None],
        }

    @rpc
    def resend_outbound(self) -> dict:
        """Deliver every unacknowledged message again now, in number order (admin)."""
        self.caller.require("admin")
        return self.deliver_outbound_round(force=True)
