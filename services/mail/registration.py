"""Registering parsed messages once: threads, matching, attachments, ``email_registered``.

``Registrar.register(session, mailbox, items)`` stores a batch (one transaction, the caller's)
of (locator, parsed message) pairs. A message whose idempotency key is known only gains a locator
(a second sync, a UIDVALIDITY resync, the Sent copy of a message sent from the CRM, the same
message in two mailboxes); a new one is threaded, matched, stored with its attachment metadata
(content in the attachment store) and announced with ``email_registered`` in the same
transaction.

Addresses are resolved from the local ``address_book``; those it does not know (or whose
"nobody" answer is older than ``lookup_ttl``) are asked of the clients service in one batched
``find_duplicates`` call per batch (as the mail service's integration identity), and the answer is
kept — syncing 10k messages costs a handful of RPCs, not 10k.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_platform.errors import DomainError

from .attachment_store import AttachmentStore
from .domain.matching import (
    KnownAddress,
    counterparties,
    deal_refs_in_subject,
    direction_of,
    match,
)
from .domain.parsing import ParsedMessage
from .domain.threading import ThreadIndex, normalise_subject, thread_refs
from .models import (
    address_book,
    attachments,
    client_replica,
    deal_replica,
    message_locations,
    messages,
    threads,
    unknown_addresses,
)

log = logging.getLogger(__name__)

# What the clients service accepts as an e-mail (a wider one would fail the whole batch).
LOOKUP_EMAIL = re.compile(r"^[a-z0-9._%+\-']+@[a-z0-9.\-]+\.[a-z]{2,}$")
LOOKUP_BATCH = 50


@dataclass(frozen=True)
class Locator:
    folder: str | None          # None: sent from the CRM, not on the server (yet)
    uidvalidity: int | None
    uid: int | None
    internal_date: datetime | None = None


@dataclass
class BatchResult:
    registered: list[uuid.UUID] = field(default_factory=list)
    directions: list[str] = field(default_factory=list)
    duplicates: int = 0
    lookups: int = 0


class AddressResolver:
    """Address -> KnownAddress for one batch: the local book first, then one RPC."""

    def __init__(self, find_by_emails, lookup_ttl: timedelta):
        # find_by_emails(list[str]) -> clients.find_duplicates answer, or None: no RPC lookups.
        self.find_by_emails = find_by_emails
        self.lookup_ttl = lookup_ttl

    def resolve(self, session, addresses: set[str], now: datetime) -> tuple[dict, int]:
        book: dict[str, KnownAddress] = {}
        if not addresses:
            return book, 0
        rows = session.execute(sa.select(
            address_book.c.address, address_book.c.client_id, address_book.c.contact_id,
            address_book.c.checked_at).where(address_book.c.address.in_(sorted(addresses)))
        ).all()
        stale = set(addresses)
        for row in rows:
            if row.client_id is not None or row.checked_at > now - self.lookup_ttl:
                book[row.address] = KnownAddress(row.client_id, row.contact_id)
                stale.discard(row.address)
        ask = sorted(a for a in stale if LOOKUP_EMAIL.match(a))
        if not ask or self.find_by_emails is None:
            return book, 0
        calls = 0
        for start in range(0, len(ask), LOOKUP_BATCH):
            part = ask[start:start + LOOKUP_BATCH]
            try:
                answer = self.find_by_emails(part)
            except DomainError as exc:
                log.warning("address lookup refused by clients: %s", exc)
                continue
            calls += 1
            found = self._learn(session, part, answer or [], now)
            book.update(found)
        return book, calls

    @staticmethod
    def _learn(session, asked: list[str], answer: list[dict], now) -> dict:
        found: dict[str, KnownAddress] = {}
        for item in answer:
            if not item.get("blocking"):
                continue
            client_id = uuid.UUID(item["client_id"])
            for reason in item.get("reasons") or []:
                value = str(reason.get("value") or "").lower()
                if reason.get("reason") != "email" or value not in asked:
                    continue
                contact = reason.get("contact_id")
                known = KnownAddress(client_id, uuid.UUID(contact) if contact else None)
                if value not in found or (known.contact_id and not found[value].contact_id):
                    found[value] = known
            session.execute(pg_insert(client_replica).values(
                client_id=client_id, short_name=item.get("short_name") or "",
                owner_id=item.get("owner_id"), department_id=item.get("department_id"),
                updated_at=now).on_conflict_do_nothing(index_elements=["client_id"]))
        rows = [{"address": a, "client_id": found[a].client_id if a in found else None,
                 "contact_id": found[a].contact_id if a in found else None,
                 "source": "rpc" if a in found else "none", "checked_at": now} for a in asked]
        stmt = pg_insert(address_book).values(rows)
        # An address the clients' events named stays theirs; a lookup refreshes the rest.
        session.execute(stmt.on_conflict_do_update(
            index_elements=["address"],
            set_={"client_id": stmt.excluded.client_id, "contact_id": stmt.excluded.contact_id,
                  "source": stmt.excluded.source, "checked_at": stmt.excluded.checked_at},
            where=address_book.c.source != "event"))
        for address in asked:
            found.setdefault(address, KnownAddress(None, None))
        return found


class Registrar:
    def __init__(self, outbox, attachment_store: AttachmentStore, resolver: AddressResolver,
                 own_domains: frozenset[str]):
        self.outbox = outbox
        self.store = attachment_store
        self.resolver = resolver
        self.own_domains = own_domains

    def register(self, session, mailbox: dict, items: list[tuple[Locator, ParsedMessage]],
                 now: datetime, *, sent_by=None, forced: dict | None = None) -> BatchResult:
        """Store a batch with a fixed number of statements (not a handful per message);
        ``forced`` (client_id, deal_id) overrides matching for a message sent from the CRM."""
        result = BatchResult()
        if not items:
            return result
        keys = list({p.key for _, p in items})
        known = dict(session.execute(sa.select(messages.c.key, messages.c.id).where(
            messages.c.key.in_(keys))).all())
        fresh, seen = [], set()
        locate = []
        for locator, parsed in items:
            if parsed.key in known:
                locate.append((locator, known[parsed.key]))
                result.duplicates += 1
            elif parsed.key in seen:            # the same message twice in one batch
                result.duplicates += 1
            else:
                seen.add(parsed.key)
                fresh.append((locator, parsed))
        self._locate_many(session, mailbox, locate)
        if not fresh:
            return result
        plans, addresses = [], set()
        for locator, parsed in fresh:
            direction = "outbound" if locator.folder is None else direction_of(
                parsed, mailbox["address"], self.own_domains,
                folder_is_sent=locator.folder == mailbox.get("sent_folder"))
            others = counterparties(parsed, direction, mailbox["address"], self.own_domains)
            addresses.update(others)
            plans.append((locator, parsed, direction, others))
        book, result.lookups = self.resolver.resolve(session, addresses, now)
        merged = self._merged_clients(session, {k.client_id for k in book.values()
                                                if k.client_id})
        deals = self._deals_of(session, [p.subject for _, p, _, _ in plans])

        rows = []
        for locator, parsed, direction, others in plans:
            found = match(others, book)
            client_id, contact_id = found.client_id, found.contact_id
            if client_id in merged:
                client_id, contact_id = merged[client_id], None
            deal = deals.get(parsed.subject)
            deal_id = None
            if deal is not None and (client_id is None or deal["client_id"] in (None, client_id)):
                deal_id = deal["deal_id"]
                client_id = client_id or deal["client_id"]
            if forced:
                client_id = forced.get("client_id") or client_id
                deal_id = forced.get("deal_id") or deal_id
            refs = thread_refs(parsed.message_id, parsed.references, parsed.in_reply_to)
            rows.append({
                "locator": locator, "parsed": parsed, "direction": direction, "refs": refs,
                "client_id": client_id, "contact_id": contact_id, "deal_id": deal_id,
                "matched_address": found.matched_address, "unknown": [
                    a for a in found.unknown if a != found.matched_address],
                "sent_at": parsed.sent_at or locator.internal_date or now})

        index = self._thread_index(session, rows)
        for row in rows:
            row["thread"] = index.assign(row["parsed"].message_id, row["refs"], row["client_id"],
                                         row["parsed"].subject, row["sent_at"], uuid.uuid4)
        self._save_threads(session, index, rows)

        values = []
        for row in rows:
            parsed = row["parsed"]
            row["id"] = uuid.uuid4()
            values.append({
                "id": row["id"], "key": parsed.key, "message_id": parsed.message_id,
                "subject": parsed.subject, "from_address": parsed.from_address,
                "from_name": parsed.from_name[:300], "to_addresses": list(parsed.to),
                "cc_addresses": list(parsed.cc), "direction": row["direction"],
                "sent_at": row["sent_at"], "text": parsed.text, "snippet": parsed.snippet,
                "size": parsed.size, "attachment_count": len(parsed.attachments),
                "client_id": row["client_id"], "contact_id": row["contact_id"],
                "deal_id": row["deal_id"], "matched_address": row["matched_address"],
                "thread_id": row["thread"], "parent_ref": row["refs"].parent,
                "root_ref": row["refs"].root, "refs": list(row["refs"].refs),
                "mailbox_id": mailbox["id"], "user_id": mailbox.get("owner_id"),
                "origin": "imap" if row["locator"].folder else "crm", "sent_by": sent_by,
                "created_at": now})
        inserted = set(session.execute(
            pg_insert(messages).on_conflict_do_nothing(index_elements=["key"])
            .returning(messages.c.id), values).scalars())
        late = [r for r in rows if r["id"] not in inserted]
        if late:                             # registered meanwhile from another mailbox
            ids = dict(session.execute(sa.select(messages.c.key, messages.c.id).where(
                messages.c.key.in_([r["parsed"].key for r in late]))).all())
            self._locate_many(session, mailbox, [(r["locator"], ids[r["parsed"].key])
                                                 for r in late])
            result.duplicates += len(late)
        rows = [r for r in rows if r["id"] in inserted]
        self._locate_many(session, mailbox, [(r["locator"], r["id"]) for r in rows])
        files = []
        for row in rows:
            for position, attachment in enumerate(row["parsed"].attachments):
                self.store.put(attachment.sha256, attachment.content)
                files.append({"message_pk": row["id"], "position": position,
                              "filename": attachment.filename,
                              "content_type": attachment.content_type[:200],
                              "size": attachment.size, "sha256": attachment.sha256})
        if files:
            session.execute(sa.insert(attachments), files)
        self._suggest(session, mailbox, rows)
        if rows:
            self.outbox.emit_many(session, [("email_registered", {
                "message_id": r["parsed"].message_id or r["parsed"].key,
                "client_id": r["client_id"], "user_id": mailbox.get("owner_id") or sent_by,
                "direction": r["direction"], "sent_at": r["sent_at"],
                "subject": r["parsed"].subject or None, "deal_id": r["deal_id"],
                "contact_id": r["contact_id"], "thread_id": r["thread"],
                "mailbox_id": mailbox["id"], "from_address": r["parsed"].from_address,
                "to_addresses": list(r["parsed"].to)}) for r in rows])
        result.registered = [r["id"] for r in rows]
        result.directions = [r["direction"] for r in rows]
        return result

    # -- pieces -----------------------------------------------------------------------------------
    @staticmethod
    def _merged_clients(session, client_ids: set) -> dict:
        if not client_ids:
            return {}
        return dict(session.execute(sa.select(
            client_replica.c.client_id, client_replica.c.merged_into).where(
            client_replica.c.client_id.in_(client_ids),
            client_replica.c.merged_into.is_not(None))).all())

    @staticmethod
    def _locate_many(session, mailbox, pairs) -> None:
        rows = [{"mailbox_id": mailbox["id"], "folder": loc.folder,
                 "uidvalidity": loc.uidvalidity, "uid": loc.uid, "message_pk": pk}
                for loc, pk in pairs if loc.folder is not None]
        if rows:
            session.execute(pg_insert(message_locations).on_conflict_do_nothing(), rows)

    @staticmethod
    def _deals_of(session, subjects: list[str]) -> dict:
        """subject -> the one deal it names (an ambiguous short reference links nothing)."""
        wanted = {s: deal_refs_in_subject(s) for s in set(subjects)}
        shorts = {x for sh, _ in wanted.values() for x in sh}
        fulls = {x for _, fu in wanted.values() for x in fu}
        if not shorts and not fulls:
            return {}
        rows = session.execute(sa.select(deal_replica).where(sa.or_(
            deal_replica.c.deal_id.in_(fulls), deal_replica.c.short_ref.in_(shorts)))) \
            .mappings().all()
        out = {}
        for subject, (sh, fu) in wanted.items():
            hits = {r["deal_id"]: r for r in rows
                    if r["deal_id"] in fu or r["short_ref"] in sh}
            if len(hits) == 1:
                out[subject] = next(iter(hits.values()))
        return out

    @staticmethod
    def _thread_index(session, rows) -> ThreadIndex:
        """The stored messages the batch refers to or is referred to by, and the subject
        threads of its clients, loaded into a ``ThreadIndex``."""
        index = ThreadIndex()
        refs_all = sorted({r for row in rows for r in row["refs"].refs})
        own = sorted({row["parsed"].message_id for row in rows if row["parsed"].message_id})
        related = []
        if refs_all:
            related.append(sa.select(messages.c.message_id, messages.c.refs,
                                     messages.c.thread_id).where(
                messages.c.message_id.in_(refs_all)))
        if refs_all or own:
            related.append(sa.select(messages.c.message_id, messages.c.refs,
                                     messages.c.thread_id).where(
                messages.c.refs.overlap(sa.cast(refs_all + own, ARRAY(sa.String)))))
        stored = session.execute(sa.union(*related)).all() if related else []
        thread_ids = {s.thread_id for s in stored}
        started = dict(session.execute(sa.select(threads.c.id, threads.c.started_at).where(
            threads.c.id.in_(thread_ids))).all()) if thread_ids else {}
        for s in stored:
            index.add_stored(s.message_id, tuple(s.refs), s.thread_id, started[s.thread_id])
        pairs = {(row["client_id"], normalise_subject(row["parsed"].subject)) for row in rows
                 if not row["refs"].has_refs and row["client_id"] is not None}
        pairs = {p for p in pairs if p[1]}
        if pairs:
            for t in session.execute(sa.select(
                    threads.c.id, threads.c.client_id, threads.c.subject_key,
                    threads.c.started_at).where(
                    sa.tuple_(threads.c.client_id, threads.c.subject_key).in_(list(pairs)))
                    .order_by(threads.c.started_at)):
                index.add_subject_thread(t.client_id, t.subject_key, t.id, t.started_at)
        return index

    @staticmethod
    def _save_threads(session, index: ThreadIndex, rows) -> None:
        for row in rows:
            row["thread"] = index.final(row["thread"])
        first_client = {}
        for row in rows:
            if row["client_id"] is not None:
                first_client.setdefault(row["thread"], row["client_id"])
        new = [{"id": t, "started_at": index.started[t], "subject": subject[:998],
                "subject_key": key[:998], "client_id": client or first_client.get(t)}
               for t, (subject, key, client) in index.created.items() if index.final(t) == t]
        if new:
            session.execute(sa.insert(threads), new)
        moved = index.merged()
        if moved:                            # a late parent joined threads that were apart
            session.execute(
                sa.update(messages).where(messages.c.thread_id == sa.bindparam("old"))
                .values(thread_id=sa.bindparam("survivor")),
                [{"old": old, "survivor": survivor} for old, survivor in moved.items()])
            session.execute(sa.delete(threads).where(threads.c.id.in_(list(moved))))
        touched = sorted({row["thread"] for row in rows} & index.stored, key=str)
        if touched:
            session.execute(
                sa.update(threads).where(threads.c.id == sa.bindparam("tid")).values(
                    started_at=sa.func.least(threads.c.started_at, sa.bindparam("started")),
                    client_id=sa.func.coalesce(threads.c.client_id,
                                               sa.bindparam("client", type_=UUID))),
                [{"tid": t, "started": index.started[t], "client": first_client.get(t)}
                 for t in touched])

    @staticmethod
    def _suggest(session, mailbox, rows) -> None:
        seen: dict[str, dict] = {}
        for row in rows:
            parsed = row["parsed"]
            for address in row["unknown"]:
                item = seen.setdefault(address, {
                    "mailbox_id": mailbox["id"], "address": address, "name": "",
                    "message_count": 0, "first_seen_at": row["sent_at"],
                    "last_seen_at": row["sent_at"], "last_subject": ""})
                item["message_count"] += 1
                item["name"] = item["name"] or (parsed.names.get(address) or "")[:300]
                item["first_seen_at"] = min(item["first_seen_at"], row["sent_at"])
                if row["sent_at"] >= item["last_seen_at"] or not item["last_subject"]:
                    item["last_subject"] = parsed.subject[:998]
                item["last_seen_at"] = max(item["last_seen_at"], row["sent_at"])
        if not seen:
            return
        stmt = pg_insert(unknown_addresses).values(list(seen.values()))
        session.execute(stmt.on_conflict_do_update(
            index_elements=["mailbox_id", "address"],
            set_={"message_count": unknown_addresses.c.message_count
                  + stmt.excluded.message_count,
                  "first_seen_at": sa.func.least(unknown_addresses.c.first_seen_at,
                                                 stmt.excluded.first_seen_at),
                  "last_seen_at": sa.func.greatest(unknown_addresses.c.last_seen_at,
                                                   stmt.excluded.last_seen_at),
                  "name": sa.func.coalesce(sa.func.nullif(stmt.excluded.name, ""),
                                           unknown_addresses.c.name),
                  "last_subject": stmt.excluded.last_subject}))
