"""Transactional outbox.

A service writes its state change and the event announcing it in one database transaction::

    with self.db.session() as session:
        session.add(client)
        self.outbox.emit(session, "client_created", {...})

The relay (a background green thread in every replica) claims unsent rows with
``FOR UPDATE SKIP LOCKED``, publishes them to ``<service>.events`` with publisher confirms — the
whole batch in flight, then one wait for the confirms — and marks them sent in the same transaction
that locked them. A crash between publish and commit re-sends the batch: delivery is at least once
and consumers are idempotent (see ``inbox``). Several replicas never send one row concurrently.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass

import eventlet
import sqlalchemy as sa
from eventlet.queue import Empty, Full, LightQueue
from kombu import Connection
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.extensions import DependencyProvider
from nameko.standalone.events import get_event_exchange

from .clock import utcnow
from .config import as_float, as_int
from .contracts import make_envelope
from .db import DB_URL_KEY, SessionFactory, make_engine
from .idempotency import purge_idempotency_keys
from .inbox import purge_processed
from .observability import (
    EVENTS_UNROUTABLE,
    OUTBOX_ERRORS,
    OUTBOX_LAG,
    OUTBOX_PENDING,
    OUTBOX_PUBLISHED,
)
from .tables import outbox

log = logging.getLogger(__name__)

CALL_ID_STACK_HEADER = "nameko.call_id_stack"


def emit(session, source: str, event_type: str, payload: dict, *, headers: dict | None = None,
         event_id=None) -> dict:
    """Add an event to the outbox inside the caller's transaction; returns the envelope."""
    envelope = make_envelope(source, event_type, payload, event_id=event_id)
    session.execute(
        sa.insert(outbox).values(
            event_id=uuid.UUID(envelope["event_id"]),
            source=source,
            type=event_type,
            envelope=envelope,
            headers=headers or {},
        )
    )
    return envelope


def emit_many(session, source: str, events: list[tuple[str, dict]], *,
              headers: dict | None = None) -> int:
    """Add many events in one multi-row insert (bulk work such as an import: one statement, not
    one per event). ``events``: (type, payload) pairs, each checked against its contract."""
    rows = []
    for event_type, payload in events:
        envelope = make_envelope(source, event_type, payload)
        rows.append({"event_id": uuid.UUID(envelope["event_id"]), "source": source,
                     "type": event_type, "envelope": envelope, "headers": headers or {}})
    for start in range(0, len(rows), 1000):
        session.execute(sa.insert(outbox), rows[start:start + 1000])
    return len(rows)


class PublishError(Exception):
    pass


@dataclass
class OutgoingMessage:
    exchange: str
    routing_key: str
    body: bytes
    message_id: str
    headers: dict


class ConfirmingPublisher:
    """Publishes batches with publisher confirms on one channel (py-amqp underneath kombu).

    Messages go out with ``mandatory``: a message no queue is bound for comes back as
    ``basic.return`` and is counted, instead of vanishing without a trace.
    """

    def __init__(self, amqp_uri: str, service: str, confirm_timeout: float = 15.0):
        self.amqp_uri = amqp_uri
        self.service = service
        self.confirm_timeout = confirm_timeout
        self._conn: Connection | None = None
        self._channel = None
        self._declared: set[str] = set()
        self._next_tag = 1
        self._unconfirmed: set[int] = set()
        self._nacked: set[int] = set()
        self._warned_unroutable: set[str] = set()

    # -- connection --------------------------------------------------------------------------
    def _connect(self):
        conn = Connection(self.amqp_uri, connect_timeout=5)
        conn.connect()
        raw = conn.connection  # py-amqp Connection
        channel = raw.channel()
        channel.confirm_select()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel.events["basic_return"].add(self._on_return)
        self._conn, self._channel = conn, channel
        self._declared.clear()
        self._next_tag = 1
        self._unconfirmed.clear()
        self._nacked.clear()

    def close(self):
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None:
            try:
                conn.release()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail any way
                pass

    # -- confirms ----------------------------------------------------------------------------
    def _settle(self, delivery_tag, multiple, into=None):
        tags = [t for t in self._unconfirmed if t <= delivery_tag] if multiple else [delivery_tag]
        for tag in tags:
            self._unconfirmed.discard(tag)
            if into is not None:
                into.add(tag)

    def _on_ack(self, delivery_tag, multiple):
        self._settle(delivery_tag, multiple)

    def _on_nack(self, delivery_tag, multiple):
        self._settle(delivery_tag, multiple, into=self._nacked)

    def _on_return(self, exc, exchange, routing_key, message):
        EVENTS_UNROUTABLE.labels(self.service, routing_key).inc()
        if routing_key not in self._warned_unroutable:  # once per type: the counter tells the rest
            self._warned_unroutable.add(routing_key)
            log.warning("event %s on %s was unroutable (%s): no consumer queue is bound to it",
                        routing_key, exchange, exc)

    # -- publishing --------------------------------------------------------------------------
    def _declare_exchange(self, name: str):
        if name in self._declared:
            return
        exchange = get_event_exchange(name.rsplit(".events", 1)[0], {})
        exchange(self._channel).declare()
        self._declared.add(name)

    def publish_batch(self, messages: list[OutgoingMessage]) -> None:
        """Publish all, then wait until the broker has confirmed every one of them."""
        from amqp import Message

        if self._channel is None:
            self._connect()
        try:
            for msg in messages:
                self._declare_exchange(msg.exchange)
                self._channel.basic_publish(
                    Message(
                        msg.body,
                        content_type="application/json",
                        content_encoding="utf-8",
                        delivery_mode=2,
                        message_id=msg.message_id,
                        application_headers=msg.headers,
                    ),
                    exchange=msg.exchange,
                    routing_key=msg.routing_key,
                    mandatory=True,
                )
                self._unconfirmed.add(self._next_tag)
                self._next_tag += 1
            deadline = time.monotonic() + self.confirm_timeout
            while self._unconfirmed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PublishError(f"{len(self._unconfirmed)} confirms timed out")
                self._conn.connection.drain_events(timeout=remaining)
            if self._nacked:
                nacked, self._nacked = len(self._nacked), set()
                raise PublishError(f"broker refused {nacked} messages")
        except Exception:
            self.close()
            raise


class OutboxRelay:
    """Moves unsent outbox rows to the broker. Framework-free: tests drive ``relay_once``."""

    def __init__(self, sessions: SessionFactory, publisher: ConfirmingPublisher, service: str,
                 batch_size: int = 500, retention_days: int = 7, inbox_retention_days: int = 30):
        self.sessions = sessions
        self.publisher = publisher
        self.service = service
        self.batch_size = batch_size
        self.retention_days = retention_days
        self.inbox_retention_days = inbox_retention_days

    def relay_once(self) -> int:
        """Send one batch; returns how many events were confirmed by the broker."""
        with self.sessions.session() as session:
            rows = session.execute(
                sa.select(outbox.c.id, outbox.c.source, outbox.c.type, outbox.c.envelope,
                          outbox.c.headers)
                .where(outbox.c.published_at.is_(None))
                .order_by(outbox.c.id)
                .limit(self.batch_size)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return 0
            self.publisher.publish_batch([
                OutgoingMessage(
                    exchange=f"{row.source}.events",
                    routing_key=row.type,
                    body=json.dumps(row.envelope, ensure_ascii=False).encode("utf-8"),
                    message_id=row.envelope["event_id"],
                    headers=row.headers or {},
                )
                for row in rows
            ])
            session.execute(
                sa.update(outbox)
                .where(outbox.c.id.in_([row.id for row in rows]))
                .values(published_at=utcnow(), attempts=outbox.c.attempts + 1, last_error=None)
            )
        OUTBOX_PUBLISHED.labels(self.service).inc(len(rows))
        return len(rows)

    def record_failure(self, error: Exception) -> None:
        """Note the error on the oldest unsent rows, so an operator sees why they wait."""
        OUTBOX_ERRORS.labels(self.service).inc()
        try:
            with self.sessions.session() as session:
                oldest = (
                    sa.select(outbox.c.id).where(outbox.c.published_at.is_(None))
                    .order_by(outbox.c.id).limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
                session.execute(
                    sa.update(outbox).where(outbox.c.id.in_(oldest))
                    .values(attempts=outbox.c.attempts + 1, last_error=str(error)[:2000])
                )
        except Exception:  # noqa: BLE001 - the database may be the thing that is down
            log.debug("could not record relay failure", exc_info=True)

    def measure_lag(self) -> tuple[int, float]:
        with self.sessions.session() as session:
            count, oldest = session.execute(
                sa.select(sa.func.count(), sa.func.min(outbox.c.created_at))
                .where(outbox.c.published_at.is_(None))
            ).one()
        lag = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
        OUTBOX_PENDING.labels(self.service).set(count)
        OUTBOX_LAG.labels(self.service).set(max(lag, 0.0))
        return count, lag

    def purge_published(self) -> int:
        """Delete sent events older than ``retention_days``; 0 (or less) keeps them all: the
        outbox is then the producer's event log, which ``export_events`` pages for replay."""
        if self.retention_days <= 0:
            return 0
        with self.sessions.session() as session:
            result = session.execute(
                sa.delete(outbox).where(
                    outbox.c.published_at < sa.func.now() - sa.text(
                        f"interval '{int(self.retention_days)} days'")
                )
            )
        return result.rowcount or 0


    def purge_handled(self) -> int:
        """Forget the ids of events this service's consumers handled more than
        ``inbox_retention_days`` ago: a redelivery comes within minutes or hours of the first
        delivery, so older ids only grow the table (0 keeps them all)."""
        with self.sessions.session() as session:
            # Idempotency-Key results only matter for a day of client retries.
            purge_idempotency_keys(session)
        if self.inbox_retention_days <= 0:
            return 0
        with self.sessions.session() as session:
            return purge_processed(session, self.inbox_retention_days)


EXPORT_MAX_LIMIT = 5000


def export_events(session, after: int = 0, limit: int = 1000,
                  event_types: list[str] | None = None) -> dict:
    """One page of this service's event history: published outbox rows with ``id > after`` in id
    order (the order the relay sent them), at most ``limit`` (capped at ``EXPORT_MAX_LIMIT``),
    only ``event_types`` when given. ``{"events": [envelope, ...], "next_after": id, "done":
    bool}``; pass ``next_after`` back for the next page. Unsent rows are not history yet: they
    reach consumers live."""
    limit = max(1, min(int(limit), EXPORT_MAX_LIMIT))
    query = (sa.select(outbox.c.id, outbox.c.envelope)
             .where(outbox.c.published_at.is_not(None), outbox.c.id > int(after))
             .order_by(outbox.c.id).limit(limit))
    if event_types:
        query = query.where(outbox.c.type.in_(list(event_types)))
    rows = session.execute(query).all()
    return {"events": [row.envelope for row in rows],
            "next_after": rows[-1].id if rows else int(after),
            "done": len(rows) < limit}


class EventEmitter:
    """What ``self.outbox`` is inside an entrypoint."""

    def __init__(self, source: str, headers: dict, wake):
        self.source = source
        self._headers = headers
        self._wake = wake

    def emit(self, session, event_type: str, payload: dict, *, event_id=None) -> dict:
        envelope = emit(session, self.source, event_type, payload, headers=self._headers,
                        event_id=event_id)
        self._wake_after_commit(session)
        return envelope

    def emit_many(self, session, events: list[tuple[str, dict]]) -> int:
        count = emit_many(session, self.source, events, headers=self._headers)
        self._wake_after_commit(session)
        return count

    def _wake_after_commit(self, session):
        if not session.info.get("crm_outbox_wake"):
            session.info["crm_outbox_wake"] = True
            sa.event.listen(session, "after_commit", lambda _s: self._wake(), once=True)


class Outbox(DependencyProvider):
    """``self.outbox.emit(session, type, payload)`` plus the relay running in the background.

    Config: ``OUTBOX_POLL_INTERVAL`` (s, default 0.5; a commit that emitted wakes it at once),
    ``OUTBOX_BATCH_SIZE`` (default 500), ``OUTBOX_RETENTION_DAYS`` (default 7 here; 0 keeps every
    sent event for replay through ``export_events``, and config.yaml makes 0 the default),
    ``INBOX_RETENTION_DAYS`` (default 30: how long handled event ids are kept against
    redelivery). Both purges run hourly in the relay's housekeeping.
    """

    def __init__(self):
        self.relay: OutboxRelay | None = None
        self._wakeups = LightQueue(maxsize=1)
        self._running = False
        self._thread = None

    def setup(self):
        config = self.container.config
        self.poll_interval = as_float(config.get("OUTBOX_POLL_INTERVAL"), 0.5)
        sessions = SessionFactory(make_engine(config[DB_URL_KEY], pool_size=2))
        publisher = ConfirmingPublisher(config[AMQP_URI_CONFIG_KEY], self.container.service_name)
        self.relay = OutboxRelay(
            sessions, publisher, self.container.service_name,
            batch_size=as_int(config.get("OUTBOX_BATCH_SIZE"), 500),
            retention_days=as_int(config.get("OUTBOX_RETENTION_DAYS"), 7),
            inbox_retention_days=as_int(config.get("INBOX_RETENTION_DAYS"), 30),
        )

    def start(self):
        self._running = True
        self._thread = self.container.spawn_managed_thread(self._run, identifier="outbox_relay")

    def stop(self):
        self._running = False
        self.wake()
        if self._thread is not None:
            self._thread.wait()
        self._dispose()

    def kill(self):
        self._running = False
        if self._thread is not None:
            self._thread.kill()
        self._dispose()

    def _dispose(self):
        if self.relay is not None:
            self.relay.publisher.close()
            self.relay.sessions.engine.dispose()

    def wake(self):
        try:
            self._wakeups.put_nowait(True)
        except Full:
            pass

    def _run(self):
        backoff = 0.0
        last_housekeeping = last_purge = 0.0
        while self._running:
            try:
                sent = self.relay.relay_once()
                backoff = 0.0
            except Exception as exc:  # noqa: BLE001 - broker or DB down: wait and retry
                sent = 0
                backoff = min(max(backoff * 2, 0.5), 15.0)
                log.warning("outbox relay failed, retrying in %.1fs: %s", backoff, exc)
                self.relay.record_failure(exc)
            now = time.monotonic()
            if now - last_housekeeping > 5:
                last_housekeeping = now
                try:
                    self.relay.measure_lag()
                    if now - last_purge > 3600:
                        last_purge = now
                        self.relay.purge_published()
                        self.relay.purge_handled()
                except Exception:  # noqa: BLE001
                    log.debug("outbox housekeeping failed", exc_info=True)
            if sent >= self.relay.batch_size:
                eventlet.sleep(0)  # more waiting: go on at once, but let others run
                continue
            try:
                self._wakeups.get(timeout=backoff or self.poll_interval)
            except Empty:
                pass

    def get_dependency(self, worker_ctx):
        headers = {CALL_ID_STACK_HEADER: worker_ctx.call_id_stack}
        return EventEmitter(self.container.service_name, headers, self.wake)
