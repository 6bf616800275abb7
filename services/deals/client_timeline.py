"""The client card's timeline: one feed per client of everything that happened with it.

Every code path that writes the per-deal ``timeline`` (or learns of a call, an e-mail or an ERP
document of a client) also writes the client's entry here, in the same transaction, through one
writer, ``record``. One row per (client, kind, ref); a newer state of the same thing replaces the
entry, so redelivered or repeated events change nothing. The kinds and their ``data``:

``call``      call_id, direction, answered, status (answered | missed | no_answer), from, to,
              external_number, our_number, duration_seconds, talk_seconds, user_id (the manager),
              contact_id, has_recording, recording (the gateway's path that plays it, or null)
``email``     message_id, direction, subject, from, to (list), thread_id, mailbox_id, contact_id,
              user_id
``erp``       document_guid, kind (order | invoice | shipment | payment), title, number, date,
              amount, state (posted | unposted | deleted), revision — the newest revision only
``stage``     from_stage, to_stage, title (of the stage entered), cause, changed_by,
              document_guid, lost_reason — ref ``<deal id>:<deal's ref>``
``task``      task_id, kind, title, status, due_at, assignee_id, completed_at, result, source
              (one entry per task at its creation time, kept current as it changes and closes)
``note``      text, by — on the client itself (``add_client_note``) or on one of its deals
              (ref ``<deal id>:<deal's ref>``)
``delivery``  the deal's delivery entry (status, title, late, times, vehicle, driver, ...)

``deal_id`` names the deal an entry belongs to when it belongs to one. A deal tied to a client
later (``attach_client``, a qualified lead) brings its earlier entries along; a merged client's
entries move to the survivor. Reading (``client_timeline``) adds people's names
(``<key>_name``) and the deal's current title (``deal_title``).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_platform.clock import utcnow
from crm_platform.errors import Forbidden, NotFound, ValidationFailed
from crm_platform.idempotency import idempotent
from crm_platform.rpc import rpc

from . import store
from .domain.deal_input import parse_uuid
from .models import (
    client_replica,
    client_timeline,
    deal_orders,
    deals,
    erp_documents,
    tasks,
    timeline,
)

KINDS = ("call", "email", "erp", "stage", "task", "note", "delivery")
# Deal-timeline refs that are unique within one deal only (a time, a random id): in the client's
# feed they are prefixed with the deal's id, so two deals moved at the same instant stay apart.
DEAL_SCOPED = ("stage", "note")
NOTE_MAX = 5000
READ_MAX = 200
# People's ids in entries, shown with their names on reading.
PEOPLE_KEYS = {"user_id": "user_name", "by": "by_name", "changed_by": "changed_by_name",
               "assignee_id": "assignee_name", "completed_by": "completed_by_name"}
_WRITE_CHUNK = 500
# ``str(datetime)`` as the deal timeline stores times; the client feed keeps ISO 8601 ("T").
_SPACED_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d)$")


def _json_default(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _iso_times(value):
    if isinstance(value, str) and _SPACED_TIME.match(value):
        return value.replace(" ", "T", 1)
    if isinstance(value, dict):
        return {k: _iso_times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_iso_times(v) for v in value]
    return value


def _plain(data: dict) -> dict:
    """JSON-ready data: UUIDs and money as strings, times in ISO 8601."""
    return _iso_times(json.loads(json.dumps(data, default=_json_default)))


def entry(client_id, at, kind: str, ref, data: dict, *, deal_id=None) -> dict:
    return {"client_id": _uuid(client_id), "at": at, "kind": kind, "ref": str(ref)[:200],
            "deal_id": _uuid(deal_id), "data": _plain(data)}


# -- the one writer --------------------------------------------------------------------------------

def record(session, entries: list[dict], *, on_conflict: str = "replace",
           newer_by: str | None = None) -> int:
    """Write client entries (those without a client are skipped; a merged client's go to its
    survivor). ``on_conflict``: ``replace`` — the entry takes the new time and data (with
    ``newer_by``, a numeric data field such as ``revision``, only when that is higher: events of
    one thing may be applied out of order); ``keep`` — an existing entry stays as it is (copies).
    A deal already known for an entry is never dropped by a newer state that lacks it."""
    entries = [e for e in entries if e["client_id"] is not None]
    if not entries:
        return 0
    survivors = _survivors(session, {e["client_id"] for e in entries})
    unique: dict = {}
    for e in entries:
        e = {**e, "client_id": survivors.get(e["client_id"], e["client_id"])}
        key = (str(e["client_id"]), e["kind"], e["ref"])
        previous = unique.get(key)
        if previous is None or on_conflict == "replace" and (
                newer_by is None or _number(e, newer_by) >= _number(previous, newer_by)):
            unique[key] = e
    # One order for every writer: concurrent batches lock the same rows in the same order.
    rows = sorted(unique.values(), key=lambda r: (str(r["client_id"]), r["kind"], r["ref"]))
    written = 0
    for start in range(0, len(rows), _WRITE_CHUNK):
        insert = pg_insert(client_timeline).values(rows[start:start + _WRITE_CHUNK])
        if on_conflict == "keep":
            statement = insert.on_conflict_do_nothing(constraint="ux_client_timeline_ref")
        else:
            where = None
            if newer_by is not None:
                where = (sa.func.coalesce(sa.cast(client_timeline.c.data[newer_by].astext,
                                                  sa.Numeric), -1)
                         < sa.cast(insert.excluded.data[newer_by].astext, sa.Numeric))
            statement = insert.on_conflict_do_update(
                constraint="ux_client_timeline_ref", where=where,
                set_={"at": insert.excluded.at, "data": insert.excluded.data,
                      "deal_id": sa.func.coalesce(insert.excluded.deal_id,
                                                  client_timeline.c.deal_id)})
        written += session.execute(statement).rowcount or 0
    return written


def _number(e: dict, field: str) -> float:
    try:
        return float(e["data"].get(field) or 0)
    except (TypeError, ValueError):
        return 0.0


def _survivors(session, client_ids: set) -> dict:
    """client -> the client it was merged into (followed to the end of a chain of merges)."""
    found: dict = {}
    pending = set(client_ids)
    for _ in range(5):          # merges of merges are rare; a cycle would be a data error
        rows = dict(session.execute(sa.select(client_replica.c.client_id,
                                              client_replica.c.merged_into).where(
            client_replica.c.client_id.in_(pending),
            client_replica.c.merged_into.isnot(None))).all())
        if not rows:
            break
        for original in client_ids:
            current = found.get(original, original)
            if current in rows:
                found[original] = rows[current]
        pending = set(rows.values())
    return found


# -- entries of each kind --------------------------------------------------------------------------

def call_data(p: dict) -> dict:
    """A call's entry from ``call_registered`` (or from a deal's call entry, which has a part)."""
    inbound = p.get("direction") == "inbound"
    external, ours = p.get("external_number"), p.get("our_number")
    answered = bool(p.get("answered"))
    has_recording = bool(p.get("recording_url"))
    return {
        "call_id": p["call_id"], "direction": p.get("direction"), "answered": answered,
        "status": "answered" if answered else ("missed" if inbound else "no_answer"),
        "from": external if inbound else ours, "to": ours if inbound else external,
        "external_number": external, "our_number": ours,
        "duration_seconds": p.get("duration_seconds"), "talk_seconds": p.get("talk_seconds"),
        "user_id": p.get("user_id"), "contact_id": p.get("contact_id"),
        "has_recording": has_recording,
        # The gateway's route asks telephony for a short-lived link (checking access) and
        # redirects to it: the player needs no PBX address.
        "recording": f"/api/v1/calls/{p['call_id']}/recording" if has_recording else None,
    }


def email_data(p: dict) -> dict:
    return {"message_id": p["message_id"], "direction": p.get("direction"),
            "subject": p.get("subject"), "from": p.get("from_address"),
            "to": list(p.get("to_addresses") or []), "thread_id": p.get("thread_id"),
            "mailbox_id": p.get("mailbox_id"), "contact_id": p.get("contact_id"),
            "user_id": p.get("user_id")}


def document_entry(doc, deal_id, title: str, now) -> dict:
    """An ERP document of the client in its current revision."""
    return entry(doc.client_id, doc.document_date or now, "erp", str(doc.guid), {
        "document_guid": doc.guid, "kind": doc.kind, "title": title, "number": doc.number,
        "date": doc.document_date, "amount": f"{doc.amount:.2f}", "state": doc.state,
        "revision": doc.revision}, deal_id=deal_id)


def task_entry(task: dict, data: dict) -> dict:
    return entry(task["client_id"], task["created_at"], "task", str(task["id"]), data,
                 deal_id=task["deal_id"])


def deal_entry(client_id, row: dict) -> dict:
    """The client's copy of a deal timeline row (``store.timeline_row`` or a stored one)."""
    kind, ref = row["kind"], str(row["ref"])
    if kind in DEAL_SCOPED:
        ref = f"{row['deal_id']}:{ref}"
    data = row["data"]
    if kind == "call":
        data = call_data(data)
    elif kind == "email":
        data = email_data(data)
    elif kind == "erp":
        data = {**data, "date": data.get("date") or row["at"]}
    return entry(client_id, row["at"], kind, ref, data, deal_id=row["deal_id"])


# -- deals changing clients ------------------------------------------------------------------------

def copy_deal(session, deal_id, client_id, *, previous_client_id=None) -> int:
    """A deal tied to a client: its timeline so far joins the client's feed (entries already
    there stay). Tied to another client before, the deal's own entries leave that one's feed."""
    if previous_client_id is not None and str(previous_client_id) != str(client_id):
        session.execute(sa.delete(client_timeline).where(
            client_timeline.c.client_id == previous_client_id,
            client_timeline.c.deal_id == deal_id,
            client_timeline.c.kind.in_(("stage", "note", "task", "delivery"))))
    rows = session.execute(sa.select(timeline).where(
        timeline.c.deal_id == deal_id, timeline.c.kind.in_(KINDS))).mappings().all()
    return record(session, [deal_entry(client_id, r) for r in rows], on_conflict="keep")


def merge_clients(session, merged_id, survivor_id) -> None:
    """The merged client's entries move to the survivor; of two entries about one thing the
    survivor's stays."""
    survivor = client_timeline.alias("survivor")
    session.execute(sa.update(client_timeline).where(
        client_timeline.c.client_id == merged_id,
        ~sa.exists().where(survivor.c.client_id == survivor_id,
                           survivor.c.kind == client_timeline.c.kind,
                           survivor.c.ref == client_timeline.c.ref)).values(
        client_id=survivor_id))
    session.execute(sa.delete(client_timeline).where(client_timeline.c.client_id == merged_id))


# -- filling the feed from what the service kept before it existed ---------------------------------

BACKFILL_CHUNK = 2000


def backfill(session, client_id=None) -> dict:
    """Fill clients' feeds from the deals' timelines, the tasks and the ERP document registry
    (data from before the feed existed; calls and e-mails of clients without deals were never
    kept, so they cannot come back). Entries already there stay: safe to run again."""
    # Both import this module.
    from .erp import KIND_TITLES
    from .moves import task_timeline_data

    counts = {"deal_entries": 0, "tasks": 0, "documents": 0}
    after = 0
    while True:     # the deals' timelines, in chunks by id
        query = sa.select(timeline, deals.c.client_id).join(
            deals, deals.c.id == timeline.c.deal_id).where(
            deals.c.client_id.isnot(None), timeline.c.kind.in_(KINDS), timeline.c.id > after)
        if client_id is not None:
            query = query.where(deals.c.client_id == client_id)
        rows = session.execute(query.order_by(timeline.c.id).limit(BACKFILL_CHUNK)
                               ).mappings().all()
        if not rows:
            break
        after = rows[-1]["id"]
        counts["deal_entries"] += record(session, [deal_entry(r["client_id"], r) for r in rows],
                                         on_conflict="keep")
    query = sa.select(tasks).where(tasks.c.client_id.isnot(None), tasks.c.deal_id.is_(None))
    if client_id is not None:
        query = query.where(tasks.c.client_id == client_id)
    for chunk in _chunks(session.execute(query.order_by(tasks.c.id)).mappings()):
        counts["tasks"] += record(session, [task_entry(t, task_timeline_data(t)) for t in chunk],
                                  on_conflict="keep")
    query = sa.select(erp_documents).where(erp_documents.c.client_id.isnot(None))
    if client_id is not None:
        query = query.where(erp_documents.c.client_id == client_id)
    for chunk in _chunks(session.execute(query.order_by(erp_documents.c.guid)).mappings()):
        anchors = {a for d in chunk for a in d["anchors"]}
        deal_of = dict(session.execute(sa.select(deal_orders.c.order_guid, deal_orders.c.deal_id)
                                       .where(deal_orders.c.order_guid.in_(anchors))).all()) \
            if anchors else {}
        counts["documents"] += record(session, [entry(
            d["client_id"], d["document_date"] or d["updated_at"], "erp", str(d["guid"]), {
                "document_guid": d["guid"], "kind": d["kind"],
                "title": KIND_TITLES.get(d["kind"], d["kind"]), "number": d["number"],
                "date": d["document_date"], "amount": f"{d['amount']:.2f}", "state": d["state"],
                "revision": d["revision"]},
            deal_id=next((deal_of[a] for a in d["anchors"] if a in deal_of), None))
            for d in chunk], on_conflict="keep")
    return counts


def _chunks(rows, size: int = BACKFILL_CHUNK):
    chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- reading ---------------------------------------------------------------------------------------

def parse_kinds(kinds) -> list[str] | None:
    if kinds in (None, "", []):
        return None
    if isinstance(kinds, str):
        kinds = kinds.split(",")
    if not isinstance(kinds, list | tuple):
        raise ValidationFailed("Неверный фильтр", fields={"kinds": ["список видов записей"]})
    chosen = [str(k).strip() for k in kinds if str(k).strip()]
    bad = [k for k in chosen if k not in KINDS]
    if bad:
        raise ValidationFailed("Неизвестный вид записи", fields={
            "kinds": [f"одно из: {', '.join(KINDS)} (не {', '.join(bad)})"]})
    return chosen or None


def may_read(identity, client) -> bool:
    """As for the client's deals (``store.can_see``: the owner, the department's head, the
    director and the admin), and a manager's own department's pool, as the clients service
    shows those cards to them."""
    if store.can_see(identity, client):
        return True
    return (identity.role == "manager" and client["owner_id"] is None
            and client["department_id"] is not None
            and str(client["department_id"]) == str(identity.department_id))


def item_dict(row, names: dict, titles: dict) -> dict:
    data = dict(row["data"])
    for key, name_key in PEOPLE_KEYS.items():
        if data.get(key):
            data[name_key] = names.get(_uuid(data[key]))
    return {"id": row["id"], "at": row["at"].isoformat(), "kind": row["kind"],
            "ref": row["ref"], "deal_id": str(row["deal_id"]) if row["deal_id"] else None,
            "deal_title": titles.get(row["deal_id"]), "data": data}


def _uuid(value):
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


class ClientTimelineEntrypoints:
    """A mixin of ``DealsService``: the client card's feed and notes on the client."""

    def _timeline_client(self, session, identity, client_id):
        """The client's replica row (a merged client: its survivor), checked for the caller."""
        wanted = parse_uuid(client_id, "client_id")
        if wanted is None:
            raise ValidationFailed("Укажите клиента", fields={"client_id": ["UUID"]})
        row = session.execute(sa.select(client_replica).where(
            client_replica.c.client_id == wanted)).mappings().first()
        for _ in range(5):
            if row is None or row["merged_into"] is None:
                break
            row = session.execute(sa.select(client_replica).where(
                client_replica.c.client_id == row["merged_into"])).mappings().first()
        if row is None:
            # Seconds old (its event not here yet): the clients service knows it, and checks
            # the caller itself.
            try:
                card = self.clients_rpc.get_client(str(wanted))
            except NotFound:
                raise NotFound("Клиент не найден", fields={
                    "client_id": ["нет такого клиента"]}) from None
            row = self._upsert_client(session, card, now=utcnow())
        if not may_read(identity, row):
            raise Forbidden("Нет доступа к этому клиенту", code="client_access_denied")
        return row

    @rpc
    def client_timeline(self, client_id: str, limit: int = 50, cursor: str | None = None,
                        kinds: list[str] | None = None) -> dict:
        """Everything that happened with the client, newest first: calls (with the recording's
        path), e-mails, ERP documents, stage moves and tasks of its deals, deliveries, notes.
        ``kinds`` keeps only those kinds; ``next_cursor`` gives the next page."""
        identity = self.caller.require()
        try:
            limit = max(1, min(int(limit), READ_MAX))
        except (TypeError, ValueError):
            raise ValidationFailed("Неверный размер страницы", fields={
                "limit": [f"число от 1 до {READ_MAX}"]}) from None
        chosen = parse_kinds(kinds)
        after = store.decode_cursor(cursor, 2)
        position = None
        if after is not None:
            try:
                position = (datetime.fromisoformat(after[0]), int(after[1]))
                if position[0].tzinfo is None:
                    raise ValueError
            except ValueError:
                raise ValidationFailed("Курсор не распознан", fields={
                    "cursor": ["передайте next_cursor из предыдущей страницы"]}) from None
        with self.db.session() as session:
            client = self._timeline_client(session, identity, client_id)
            query = sa.select(client_timeline).where(
                client_timeline.c.client_id == client["client_id"])
            if chosen:
                query = query.where(client_timeline.c.kind.in_(chosen))
            if position is not None:
                query = query.where(sa.tuple_(client_timeline.c.at, client_timeline.c.id)
                                    < sa.tuple_(sa.literal(position[0], client_timeline.c.at.type),
                                                sa.literal(position[1], client_timeline.c.id.type)))
            rows = session.execute(query.order_by(
                client_timeline.c.at.desc(), client_timeline.c.id.desc()).limit(limit + 1)
            ).mappings().all()
            page = rows[:limit]
            names, titles = self._timeline_names(session, page)
            return {"items": [item_dict(r, names, titles) for r in page],
                    "next_cursor": store.encode_cursor(page[-1]["at"], page[-1]["id"])
                    if len(rows) > limit else None}

    @staticmethod
    def _timeline_names(session, rows) -> tuple[dict, dict]:
        people = {_uuid(r["data"][k]) for r in rows for k in PEOPLE_KEYS if r["data"].get(k)}
        deal_ids = {r["deal_id"] for r in rows if r["deal_id"]}
        titles = dict(session.execute(sa.select(deals.c.id, deals.c.title).where(
            deals.c.id.in_(deal_ids))).all()) if deal_ids else {}
        return store.names_of(session, people - {None}), titles

    @rpc
    def rebuild_client_timeline(self, client_id: str | None = None) -> dict:
        """Fill the clients' feeds (one client's, or everyone's) from what the service kept
        before the feed existed (admin; safe to repeat): how many entries were added."""
        self.caller.require("admin")
        wanted = parse_uuid(client_id, "client_id")
        with self.db.session() as session:
            return backfill(session, wanted)

    @rpc
    @idempotent
    def add_client_note(self, client_id: str, text: str) -> dict:
        """A note on the client itself (not on one of its deals), by the caller: the client's
        owner or the department's head (a pool client is read-only until claimed)."""
        identity = self.caller.require("manager", "sales_head")
        text = text.strip() if isinstance(text, str) else ""
        if not 1 <= len(text) <= NOTE_MAX:
            raise ValidationFailed("Заметка не принята", fields={
                "text": [f"от 1 до {NOTE_MAX} символов"]})
        now = utcnow()
        with self.db.session() as session:
            client = self._timeline_client(session, identity, client_id)
            if not store.can_change(identity, client):
                raise Forbidden("Клиент в общем пуле: сначала возьмите его в работу",
                                code="client_read_only")
            ref = str(uuid.uuid4())
            record(session, [entry(client["client_id"], now, "note", ref,
                                   {"text": text, "by": identity.user_id})])
            self._touch_client(session, client["client_id"], now)
            row = session.execute(sa.select(client_timeline).where(
                client_timeline.c.client_id == client["client_id"],
                client_timeline.c.kind == "note", client_timeline.c.ref == ref)
            ).mappings().one()
            names, titles = self._timeline_names(session, [row])
            return item_dict(row, names, titles)
