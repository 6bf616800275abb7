"""nameko entrypoints of the erp_bridge service: 1C:Trade Management 11 into the CRM.

EnterpriseData messages come by HTTP (through the gateway, integration role) and from an exchange
folder; the OData interface is polled (``polling.py``). A message applies whole in one transaction
(registry + outbox) or not at all: what cannot be read goes to the quarantine with the reason and
the raw payload, the acknowledged number does not advance, and later messages still flow. Admins
list, re-drive and dismiss quarantined messages. Clients created or changed in the CRM go the
other way, to 1C (``outbound.py``).

Config: ``ERP_EXCHANGE_DIR`` (a folder with ``in/``; files move to ``done/`` or ``quarantine/``;
empty: no folder, checked every 5 s), ``ERP_MAX_MESSAGE_BYTES`` (20 MB).
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from nameko.dependency_providers import Config
from nameko.timer import timer
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_platform.clock import utcnow
from crm_platform.config import as_int
from crm_platform.consumer import event_handler
from crm_platform.errors import Conflict, NotFound, ValidationFailed
from crm_platform.inbox import claim_event
from crm_platform.paging import keyset_page
from crm_platform.rpc import rpc
from crm_platform.service import PersistentService

from .applying import apply_message
from .domain.enterprisedata import parse_message
from .domain.objects import MalformedMessage
from .models import client_replica, counterparties, documents, exchange_log, quarantine, senders
from .outbound import OutboundToErp
from .polling import ODataPolling
from .reconcile import Reconciliation

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
SETTLE_SECONDS = 2.0


class ErpBridgeService(ODataPolling, Reconciliation, OutboundToErp, PersistentService):
    name = "erp_bridge"

    config = Config()

    # -- EnterpriseData in ------------------------------------------------------------------------
    @rpc
    def receive_enterprise_data(self, payload_base64: str, filename: str | None = None) -> dict:
        """One EnterpriseData message (XML, or a zip with one XML) as 1C sends it. Returns the
        receipt (``applied`` or ``repeat``, the acknowledged number, the events). A message that
        cannot be read is quarantined whole and refused (422 naming the reason and the
        quarantine entry)."""
        self.caller.require("integration", "admin")
        try:
            raw = base64.b64decode(payload_base64, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationFailed("Сообщение не в base64",
                                   fields={"payload": ["ожидается base64"]}) from None
        return self.receive(raw, transport="http", filename=filename)

    def receive(self, raw: bytes, *, transport: str, filename: str | None) -> dict:
        try:
            message = parse_message(raw, max_bytes=self._max_bytes())
        except MalformedMessage as exc:
            entry = self._quarantine(raw, transport, filename, exc.reason, exc.field)
            raise ValidationFailed(
                f"Сообщение 1С отклонено и помещено в карантин: {exc.reason}",
                fields={exc.field or "message": [exc.reason]}, code="erp_message_rejected",
                extra={"quarantine_id": entry}) from None
        with self.db.session() as session:
            receipt = apply_message(session, self.outbox, message, transport=transport,
                                    now=utcnow(), filename=filename)
        return receipt.summary()

    def _max_bytes(self) -> int:
        return as_int(self.config.get("ERP_MAX_MESSAGE_BYTES"), DEFAULT_MAX_BYTES)

    def _quarantine(self, raw: bytes, transport: str, filename, reason: str, field,
                    sender=None, message_no=None) -> int:
        """Keep the refused payload and why (its own transaction: the refusal must stay)."""
        with self.db.session() as session:
            entry = session.execute(sa.insert(quarantine).values(
                received_at=utcnow(), transport=transport, filename=filename, sender=sender,
                message_no=message_no, reason=reason[:2000], field=(field or None),
                payload=raw[:self._max_bytes() + 1]).returning(quarantine.c.id)).scalar()
            session.execute(sa.insert(exchange_log).values(
                received_at=utcnow(), transport=transport, sender=sender,
                message_no=message_no, outcome="quarantined", filename=filename))
            self.outbox.emit(session, "erp_message_rejected", {
                "quarantine_id": entry, "transport": transport, "sender": sender,
                "message_no": message_no, "reason": reason[:2000], "field": field})
        log.warning("1C message quarantined (#%s, %s): %s", entry, filename or transport, reason)
        return entry

    # -- the exchange folder ----------------------------------------------------------------------
    @timer(interval=5)
    def watch_exchange_folder(self):
        folder = self.config.get("ERP_EXCHANGE_DIR")
        if folder:
            self.process_folder(Path(folder))

    def process_folder(self, folder: Path, limit: int = 100) -> list[dict]:
        """Take the messages waiting in ``in/`` (oldest first): each is claimed by renaming it
        into ``work/`` (atomic, so two replicas never take one file), applied, and moved to
        ``done/`` or ``quarantine/``."""
        incoming = folder / "in"
        for sub in ("in", "work", "done", "quarantine"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        results = []
        # A file still being written (changed in the last couple of seconds) waits for the next
        # round: 1C and copy tools write in place, and half a message is not a message.
        settled = time.time() - SETTLE_SECONDS
        waiting = sorted((p for p in incoming.iterdir() if p.is_file()
                          and p.suffix.lower() in (".xml", ".zip")
                          and p.stat().st_mtime <= settled),
                         key=lambda p: (p.stat().st_mtime, p.name))
        for path in waiting[:limit]:
            claimed = folder / "work" / f"{uuid.uuid4().hex}-{path.name}"
            try:
                os.rename(path, claimed)
            except FileNotFoundError:
                continue                          # another replica took it
            raw = claimed.read_bytes()
            try:
                result = self.receive(raw, transport="folder", filename=path.name)
                target = folder / "done" / claimed.name
            except ValidationFailed as exc:
                result = {"outcome": "quarantined", "reason": exc.detail,
                          "quarantine_id": exc.extra.get("quarantine_id")}
                target = folder / "quarantine" / claimed.name
            os.rename(claimed, target)
            results.append({"file": path.name, **result})
        return results

    # -- the quarantine ---------------------------------------------------------------------------
    @rpc
    def list_quarantine(self, status: str = "open", limit: int = 100) -> list[dict]:
        self.caller.require("admin")
        with self.db.session() as session:
            rows = session.execute(sa.select(
                quarantine.c.id, quarantine.c.received_at, quarantine.c.transport,
                quarantine.c.filename, quarantine.c.sender, quarantine.c.message_no,
                quarantine.c.reason, quarantine.c.field, quarantine.c.status,
                sa.func.length(quarantine.c.payload).label("size"))
                .where(quarantine.c.status == status).order_by(quarantine.c.id.desc())
                .limit(max(1, min(int(limit), 500)))).mappings()
            return [{**dict(r), "received_at": r["received_at"].isoformat()} for r in rows]

    @rpc
    def page_quarantine(self, status: str = "open", limit: int = 100,
                        cursor: str | None = None) -> dict:
        """``list_quarantine`` in cursor pages, newest first: ``{"items", "next_cursor"}``."""
        self.caller.require("admin")
        query = sa.select(
            quarantine.c.id, quarantine.c.received_at, quarantine.c.transport,
            quarantine.c.filename, quarantine.c.sender, quarantine.c.message_no,
            quarantine.c.reason, quarantine.c.field, quarantine.c.status,
            sa.func.length(quarantine.c.payload).label("size")).where(quarantine.c.status == status)
        with self.db.session() as session:
            rows, next_cursor = keyset_page(
                session, query, sort="-id", default="-id", sorts={"id": quarantine.c.id},
                id_column=quarantine.c.id, cursor=cursor, limit=max(1, min(int(limit), 500)))
        return {"items": [{**r, "received_at": r["received_at"].isoformat()} for r in rows],
                "next_cursor": next_cursor}

    @rpc
    def redrive_quarantine(self, entry_id: int) -> dict:
        """Try a quarantined message again (after 1C or the format was fixed): applied, it leaves
        the quarantine; refused again, it stays with the new reason."""
        identity = self.caller.require("admin")
        with self.db.session() as session:
            row = session.execute(sa.select(quarantine).where(
                quarantine.c.id == int(entry_id)).with_for_update()).mappings().first()
            if row is None:
                raise NotFound("Нет такой записи карантина")
            if row["status"] != "open":
                raise Conflict("Запись карантина уже разобрана", code="already_resolved")
            raw = bytes(row["payload"])
        try:
            message = parse_message(raw, max_bytes=self._max_bytes())
        except MalformedMessage as exc:
            with self.db.session() as session:
                session.execute(sa.update(quarantine).where(quarantine.c.id == row["id"])
                                .values(reason=exc.reason[:2000], field=exc.field))
            raise ValidationFailed(f"Сообщение по-прежнему не читается: {exc.reason}",
                                   fields={exc.field or "message": [exc.reason]},
                                   code="erp_message_rejected",
                                   extra={"quarantine_id": row["id"]}) from None
        with self.db.session() as session:
            receipt = apply_message(session, self.outbox, message, transport=row["transport"],
                                    now=utcnow(), filename=row["filename"])
            session.execute(sa.update(quarantine).where(quarantine.c.id == row["id"]).values(
                status="redriven", resolved_at=utcnow(), resolved_by=identity.user_id))
        return receipt.summary()

    @rpc
    def dismiss_quarantine(self, entry_id: int) -> dict:
        identity = self.caller.require("admin")
        with self.db.session() as session:
            done = session.execute(sa.update(quarantine).where(
                quarantine.c.id == int(entry_id), quarantine.c.status == "open").values(
                status="dismissed", resolved_at=utcnow(), resolved_by=identity.user_id))
            if not done.rowcount:
                raise NotFound("Нет открытой записи карантина с таким номером")
        return {"id": int(entry_id), "status": "dismissed"}

    # -- reading ----------------------------------------------------------------------------------
    @rpc
    def exchange_status(self) -> dict:
        """Per sender the last applied (acknowledged) message; counts of documents and open
        quarantine entries; the latest exchanges."""
        self.caller.require("admin", "integration", "director")
        with self.db.session() as session:
            nodes = [{"sender": s, "received_no": n, "updated_at": at.isoformat()}
                     for s, n, at in session.execute(sa.select(
                         senders.c.sender, senders.c.last_message_no, senders.c.updated_at))]
            recent = session.execute(sa.select(exchange_log).order_by(
                exchange_log.c.id.desc()).limit(20)).mappings()
            return {
                "senders": nodes,
                "documents": dict(session.execute(sa.select(
                    documents.c.kind, sa.func.count()).group_by(documents.c.kind)).all()),
                "quarantine_open": session.execute(sa.select(sa.func.count()).where(
                    quarantine.c.status == "open")).scalar(),
                "recent": [{**dict(r), "received_at": r["received_at"].isoformat()}
                           for r in recent],
            }

    @rpc
    def get_document(self, document_guid: str) -> dict:
        self.caller.require("admin", "integration", "director", "sales_head", "manager")
        with self.db.session() as session:
            row = session.execute(sa.select(documents).where(
                documents.c.guid == uuid.UUID(str(document_guid)))).mappings().first()
            if row is None:
                raise NotFound("Документ 1С не найден")
            return {k: (str(v) if isinstance(v, uuid.UUID) else v.isoformat()
                        if hasattr(v, "isoformat") else str(v) if k == "amount" else v)
                    for k, v in row.items()}

    # -- the clients replica ----------------------------------------------------------------------
    def _upsert_client(self, session, p: dict) -> None:
        values = {"short_name": p["short_name"], "inn": p["inn"], "kpp": p["kpp"],
                  "erp_counterparty_guid": p["erp_counterparty_guid"]}
        session.execute(pg_insert(client_replica).values(client_id=p["client_id"], **values)
                        .on_conflict_do_update(index_elements=["client_id"], set_=values))
        if p["erp_counterparty_guid"]:
            session.execute(sa.update(counterparties).where(
                counterparties.c.guid == p["erp_counterparty_guid"],
                counterparties.c.client_id.is_(None)).values(client_id=p["client_id"]))

    @event_handler("clients", "client_created")
    def handle_client_created(self, event):
        with self.db.session() as session:
            if claim_event(session, event):
                self._upsert_client(session, event.payload)

    @event_handler("clients", "client_updated")
    def handle_client_updated(self, event):
        with self.db.session() as session:
            if claim_event(session, event):
                self._upsert_client(session, event.payload)

    @event_handler("clients", "clients_merged")
    def handle_clients_merged(self, event):
        p = event.payload
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            for table in (counterparties, documents):
                session.execute(sa.update(table).where(
                    table.c.client_id == p["merged_id"]).values(client_id=p["survivor_id"]))
            session.execute(sa.delete(client_replica).where(
                client_replica.c.client_id == p["merged_id"]))
