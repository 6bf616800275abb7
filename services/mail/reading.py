"""Reading mail: lists with filters and cursor pagination, one message with its attachments'
metadata, attachment content, a thread, and "create contact" suggestions — every query filtered
by the access rules of ``domain/access`` in SQL."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

import sqlalchemy as sa

from crm_platform.errors import NotFound, ValidationFailed
from crm_platform.identity import Identity
from crm_platform.rpc import rpc

from .domain.access import require_reader
from .models import (
    address_book,
    attachments,
    client_replica,
    mailboxes,
    message_locations,
    messages,
    unknown_addresses,
)

MAX_LIMIT = 200
FILTERS = ("client_id", "deal_id", "thread_id", "mailbox_id", "contact_id")
LIST_COLUMNS = (messages.c.id, messages.c.message_id, messages.c.subject,
                messages.c.from_address, messages.c.from_name, messages.c.to_addresses,
                messages.c.cc_addresses, messages.c.direction, messages.c.sent_at,
                messages.c.snippet, messages.c.attachment_count, messages.c.client_id,
                messages.c.contact_id, messages.c.deal_id, messages.c.thread_id,
                messages.c.mailbox_id, messages.c.user_id, messages.c.origin)


def as_uuid(value, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        raise ValidationFailed("Некорректный идентификатор",
                               fields={name: ["ожидается UUID"]}) from None


def held_mailboxes(identity: Identity):
    """Ids of the mailboxes the caller holds (own personal; the department's shared)."""
    cond = sa.and_(mailboxes.c.kind == "personal", mailboxes.c.owner_id == identity.user_id)
    if identity.department_id:
        cond = sa.or_(cond, sa.and_(mailboxes.c.kind == "shared",
                                    mailboxes.c.department_id == identity.department_id))
    return sa.select(mailboxes.c.id).where(cond)


def visible(identity: Identity):
    """The WHERE clause of the messages ``identity`` may read."""
    require_reader(identity)
    held = held_mailboxes(identity)
    via_mailbox = sa.or_(
        messages.c.mailbox_id.in_(held),
        sa.exists().where(message_locations.c.message_pk == messages.c.id,
                          message_locations.c.mailbox_id.in_(held)))
    if identity.role in ("director", "integration"):
        via_client = messages.c.client_id.is_not(None)
    elif identity.role == "sales_head":
        via_client = messages.c.client_id.in_(sa.select(client_replica.c.client_id).where(
            client_replica.c.department_id == identity.department_id)) \
            if identity.department_id else sa.false()
    else:
        via_client = messages.c.client_id.in_(sa.select(client_replica.c.client_id).where(
            client_replica.c.owner_id == identity.user_id))
    return sa.or_(via_mailbox, via_client)


def encode_cursor(sent_at: datetime, pk) -> str:
    return base64.urlsafe_b64encode(f"{sent_at.isoformat()}|{pk}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        at, pk = text.split("|")
        return datetime.fromisoformat(at), uuid.UUID(pk)
    except (ValueError, binascii.Error, UnicodeError):
        raise ValidationFailed("Некорректный курсор", fields={"cursor": [
            "ожидается next_cursor из предыдущего ответа"]}) from None


def dump_row(row) -> dict:
    out = {}
    for key, value in dict(row).items():
        if isinstance(value, uuid.UUID):
            value = str(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out


class ReadingEntrypoints:
    @rpc
    def list_messages(self, filters: dict | None = None, limit: int = 50,
                      cursor: str | None = None) -> dict:
        """Messages the caller may read, newest first: ``filters`` by ``client_id``,
        ``deal_id``, ``thread_id``, ``mailbox_id``, ``contact_id``, ``direction``
        (inbound/outbound); ``{"items", "next_cursor"}`` (pass it back for the next page)."""
        identity = self.caller.require()
        filters = dict(filters or {})
        unknown = sorted(set(filters) - set(FILTERS) - {"direction"})
        if unknown:
            raise ValidationFailed("Неизвестный фильтр", fields={k: ["неизвестный фильтр"]
                                                                 for k in unknown})
        try:
            limit = int(limit)
        except (TypeError, ValueError):
            limit = 0
        if not 1 <= limit <= MAX_LIMIT:
            raise ValidationFailed("Неверный размер страницы",
                                   fields={"limit": [f"от 1 до {MAX_LIMIT}"]})
        query = sa.select(*LIST_COLUMNS).where(visible(identity))
        for name in FILTERS:
            if filters.get(name):
                query = query.where(getattr(messages.c, name) == as_uuid(filters[name], name))
        if filters.get("direction"):
            if filters["direction"] not in ("inbound", "outbound"):
                raise ValidationFailed("Неверное направление",
                                       fields={"direction": ["inbound или outbound"]})
            query = query.where(messages.c.direction == filters["direction"])
        if cursor:
            at, pk = decode_cursor(cursor)
            query = query.where(sa.tuple_(messages.c.sent_at, messages.c.id) < sa.tuple_(at, pk))
        query = query.order_by(messages.c.sent_at.desc(), messages.c.id.desc()).limit(limit + 1)
        with self.db.session() as session:
            rows = session.execute(query).mappings().all()
        items = [dump_row(r) for r in rows[:limit]]
        next_cursor = encode_cursor(rows[limit - 1]["sent_at"], rows[limit - 1]["id"]) \
            if len(rows) > limit else None
        return {"items": items, "next_cursor": next_cursor}

    def _visible_message(self, session, identity, message_pk):
        row = session.execute(sa.select(messages).where(
            messages.c.id == as_uuid(message_pk, "message_id"), visible(identity))) \
            .mappings().first()
        if row is None:
            raise NotFound("Письмо не найдено", code="message_not_found")
        return row

    @rpc
    def get_message(self, message_id: str) -> dict:
        """One message with its text, addresses, thread, client/contact/deal and attachments'
        metadata (name, type, size, sha256)."""
        identity = self.caller.require()
        with self.db.session() as session:
            row = self._visible_message(session, identity, message_id)
            files = session.execute(sa.select(
                attachments.c.id, attachments.c.filename, attachments.c.content_type,
                attachments.c.size, attachments.c.sha256).where(
                attachments.c.message_pk == row["id"]).order_by(attachments.c.position)) \
                .mappings().all()
        out = dump_row({k: v for k, v in row.items() if k not in ("key", "refs")})
        out["references"] = list(row["refs"])
        out["attachments"] = [dump_row(f) for f in files]
        return out

    @rpc
    def get_attachment(self, message_id: str, attachment_id: int) -> dict:
        """An attachment's content (base64) with its name and type, for the download."""
        identity = self.caller.require()
        with self.db.session() as session:
            row = self._visible_message(session, identity, message_id)
            try:
                attachment_id = int(attachment_id)
            except (TypeError, ValueError):
                raise NotFound("Вложение не найдено", code="attachment_not_found") from None
            item = session.execute(sa.select(attachments).where(
                attachments.c.message_pk == row["id"], attachments.c.id == attachment_id)) \
                .mappings().first()
        if item is None or not self.attachment_store().has(item["sha256"]):
            raise NotFound("Вложение не найдено", code="attachment_not_found")
        content = self.attachment_store().get(item["sha256"])
        return {"filename": item["filename"], "content_type": item["content_type"],
                "size": item["size"], "sha256": item["sha256"],
                "content_b64": base64.b64encode(content).decode()}

    @rpc
    def get_thread(self, thread_id: str) -> dict:
        """The thread's messages the caller may read, oldest first, each with ``parent_ref``
        (the Message-ID it answers)."""
        identity = self.caller.require()
        tid = as_uuid(thread_id, "thread_id")
        with self.db.session() as session:
            rows = session.execute(sa.select(*LIST_COLUMNS, messages.c.parent_ref).where(
                messages.c.thread_id == tid, visible(identity))
                .order_by(messages.c.sent_at, messages.c.id)).mappings().all()
        if not rows:
            raise NotFound("Переписка не найдена", code="thread_not_found")
        return {"thread_id": str(tid), "subject": rows[0]["subject"],
                "messages": [dump_row(r) for r in rows]}

    @rpc
    def address_suggestions(self, limit: int = 100) -> list[dict]:
        """Addresses from the caller's mailboxes that match no client or contact: offered as
        "create contact" (nothing is created by itself)."""
        identity = self.caller.require()
        require_reader(identity)
        query = sa.select(unknown_addresses.c.address, unknown_addresses.c.name,
                          unknown_addresses.c.mailbox_id, unknown_addresses.c.message_count,
                          unknown_addresses.c.first_seen_at, unknown_addresses.c.last_seen_at,
                          unknown_addresses.c.last_subject).where(
            unknown_addresses.c.mailbox_id.in_(held_mailboxes(identity)),
            ~sa.exists().where(address_book.c.address == unknown_addresses.c.address,
                               address_book.c.client_id.is_not(None))) \
            .order_by(unknown_addresses.c.last_seen_at.desc()).limit(max(1, min(int(limit),
                                                                                500)))
        with self.db.session() as session:
            return [dump_row(r) for r in session.execute(query).mappings()]
