"""Live pushes: events pushed to the open browsers of the person they concern, over SSE.

One ``LiveHub`` per gateway process carries several kinds of live event (``LiveKind``), each a
stream of its own:

* ``screen_pop`` — ``telephony.call_ringing`` to the ringing manager, with the client card
  (``GET /api/v1/screen-pop``);
* ``kpi`` — ``payroll.kpi_changed`` to the manager whose KPI figures moved (``GET
  /api/v1/kpi/stream``): the whole desk widget, as payroll dumped it.

The hub:

* has its own consumer in a container-managed thread, on its own connection, reading one
  exclusive, auto-delete queue bound to every kind's ``<source>.events`` exchange with its event
  type as routing key: every gateway replica gets every event (live pushes are only useful live:
  no acks, no retries, no dead letters; an event that arrives while the consumer reconnects is
  lost). The first queue is declared in ``start``, so an event published once the gateway has
  started reaches it. The consumer reconnects with back-off, on a new queue (the old one went
  with its connection);
* checks every event against its contract (``parse_envelope``) and fans it out to the
  subscriptions of its kind and ``user_id`` (an open stream each). A subscription is a bounded
  queue of finished SSE frames: when a browser is slow the oldest frame is dropped;
* a ring of a known client needs the client card, read as the subscriber (``clients.get_client``
  with the subscriber's identity in the RPC context, so the clients service decides what the
  manager may see). The hub does it in its own green threads (the HTTP request's worker is over
  once the stream starts), through the container's RPC reply listener, once per identity for all
  of that user's open streams, with a timeout. Refused or missing: "unknown number";
  the clients service down or slow: the ring still goes out, with the client's id and link only.
  A KPI event needs nothing more: the frame is its payload.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import eventlet
from eventlet.event import Event as GreenEvent
from eventlet.greenpool import GreenPool
from eventlet.queue import Empty, Full, LightQueue
from kombu import Connection, Consumer, Queue, binding
from kombu.exceptions import OperationalError
from nameko.constants import AMQP_URI_CONFIG_KEY, DEFAULT_HEARTBEAT, HEARTBEAT_CONFIG_KEY
from nameko.containers import WorkerContext
from nameko.extensions import DependencyProvider
from nameko.rpc import ReplyListener, ServiceProxy
from nameko.standalone.events import get_event_exchange

from crm_platform.contracts import ContractError, parse_envelope
from crm_platform.errors import Forbidden, NotFound, Unauthenticated
from crm_platform.identity import IDENTITY_CONTEXT_KEY, Identity

log = logging.getLogger(__name__)

UNKNOWN_HINT = "Неизвестный номер — создать лид"
CLOSED = object()  # put into a subscription when the gateway stops: the stream ends

DEFAULT_QUEUE_SIZE = 32
DEFAULT_CARD_TIMEOUT_S = 2.0
DEFAULT_ENRICHERS = 200
DRAIN_TIMEOUT_S = 1.0
MAX_BACKOFF_S = 15.0


def sse_frame(event: str, data: dict, event_id: str | None = None) -> bytes:
    """One Server-Sent Events block (the JSON has no raw newlines: one ``data:`` line)."""
    lines = []
    if event_id:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, ensure_ascii=False, default=str))
    return ("\n".join(lines) + "\n\n").encode()


def unknown_number(external_number: str | None) -> dict:
    summary: dict = {"unknown": True, "hint": UNKNOWN_HINT}
    if external_number:
        summary["create_lead"] = {"method": "POST", "path": "/api/v1/deals", "body": {
            "source": "call", "lead": {"phone": external_number}}}
    return summary


def client_summary(card: dict) -> dict:
    client_id = str(card["id"])
    return {"unknown": False, "client": {
        "id": client_id, "short_name": card.get("short_name"), "inn": card.get("inn"),
        "owner_name": card.get("owner_name"), "link": f"/api/v1/clients/{client_id}"}}


def ringing_data(payload: dict, summary: dict) -> dict:
    return {"call_key": payload["call_key"], "pbx": payload["pbx"],
            "direction": payload["direction"], "external_number": payload["external_number"],
            "at": payload["at"].isoformat() if payload.get("at") else None, **summary}


@dataclass(eq=False)
class Subscription:
    """One open stream: the caller, its kind, and the frames waiting for it (bounded, oldest
    dropped)."""

    identity: Identity
    maxsize: int = DEFAULT_QUEUE_SIZE
    kind: str = "screen_pop"
    dropped: int = 0
    queue: LightQueue = field(init=False)

    def __post_init__(self):
        self.queue = LightQueue(self.maxsize)

    @property
    def user_id(self) -> str:
        return self.identity.user_id

    def offer(self, item) -> None:
        """Never blocks (the hub's threads call it): a full queue loses its oldest frame."""
        while True:
            try:
                self.queue.put_nowait(item)
                return
            except Full:
                try:
                    self.queue.get_nowait()
                    self.dropped += 1
                except Empty:  # pragma: no cover - emptied in between
                    pass

    def get(self, timeout: float):
        """The next frame (or ``CLOSED``); raises ``eventlet.queue.Empty`` after ``timeout``."""
        return self.queue.get(timeout=timeout)


class _HubEntrypoint:
    """What a ``WorkerContext`` needs of an entrypoint, for the call ids of the hub's RPCs."""

    method_name = "live_push"


@dataclass(frozen=True)
class LiveKind:
    """One kind of live push: the event it carries (``source``.``event_type``) and how an event
    becomes frames for the subscriptions of its ``user_id``:
    ``deliver(hub, payload, raw_payload, event_id, subscriptions)``."""

    name: str
    source: str
    event_type: str
    deliver: Callable


def deliver_ringing(hub, payload: dict, raw_payload: dict, event_id, subscriptions) -> None:
    """A ring: at once for an unknown number, else with the client card read per identity."""
    client_id = payload.get("client_id")
    if client_id is None:
        frame = sse_frame("ringing", ringing_data(
            payload, unknown_number(payload.get("external_number"))), event_id)
        for subscription in subscriptions:
            subscription.offer(frame)
        hub.delivered += len(subscriptions)
        return
    # The card is read as the subscriber: once per distinct identity of the user's streams.
    groups: dict[str, list[Subscription]] = {}
    for subscription in subscriptions:
        key = json.dumps(subscription.identity.to_context(), sort_keys=True)
        groups.setdefault(key, []).append(subscription)
    for group in groups.values():
        hub._pool.spawn_n(hub._deliver_with_card, payload, event_id, group)


def deliver_as_is(frame_event: str):
    """A push whose frame is the event's payload as its producer dumped it."""

    def deliver(hub, payload: dict, raw_payload: dict, event_id, subscriptions) -> None:
        frame = sse_frame(frame_event, raw_payload, event_id)
        for subscription in subscriptions:
            subscription.offer(frame)
        hub.delivered += len(subscriptions)

    return deliver


SCREEN_POP = LiveKind("screen_pop", "telephony", "call_ringing", deliver_ringing)
KPI = LiveKind("kpi", "payroll", "kpi_changed", deliver_as_is("kpi"))
LIVE_KINDS = (SCREEN_POP, KPI)


class LiveHub(DependencyProvider):
    """See the module docstring. In a route: ``self.live.subscribe(identity, "kpi")``."""

    rpc_reply_listener = ReplyListener()

    def __init__(self, kinds: tuple[LiveKind, ...] = LIVE_KINDS, *,
                 queue_size: int = DEFAULT_QUEUE_SIZE,
                 card_timeout_s: float = DEFAULT_CARD_TIMEOUT_S,
                 enrichers: int = DEFAULT_ENRICHERS, **kwargs):
        self.kinds = {kind.name: kind for kind in kinds}
        self._by_event = {(kind.source, kind.event_type): kind for kind in kinds}
        self.queue_size = queue_size
        self.card_timeout_s = card_timeout_s
        self.enrichers = enrichers
        # (kind, user id) -> that user's open streams of that kind
        self._subscribers: dict[tuple[str, str], set[Subscription]] = {}
        self._conn: Connection | None = None
        self._consumer: Consumer | None = None
        self._stopping = False
        self._stop_requested = GreenEvent()
        self._thread = None
        self._pool: GreenPool | None = None
        self.delivered = 0
        super().__init__(**kwargs)

    # -- lifecycle ---------------------------------------------------------------------------
    def setup(self):
        config = self.container.config
        self.amqp_uri = config[AMQP_URI_CONFIG_KEY]
        self.heartbeat = config.get(HEARTBEAT_CONFIG_KEY, DEFAULT_HEARTBEAT)
        self.exchanges = {source: get_event_exchange(source, config)
                          for source in {kind.source for kind in self.kinds.values()}}
        self._pool = GreenPool(self.enrichers)
        conn = Connection(self.amqp_uri)  # not connected: only for the transport's error types
        self._connection_errors = (conn.connection_errors + conn.channel_errors
                                   + (OSError, OperationalError))

    def start(self):
        try:
            self._connect()  # the first queue exists once the gateway has started
        except Exception as exc:  # noqa: BLE001 - never keeps the gateway down: the thread retries
            self._close()
            log.warning("live push: no broker connection at start, retrying: %s", exc)
        self._thread = self.container.spawn_managed_thread(
            self._run, identifier="live push consumer")

    def stop(self):
        self._stopping = True
        if not self._stop_requested.ready():
            self._stop_requested.send(True)
        for subscriptions in list(self._subscribers.values()):
            for subscription in list(subscriptions):
                subscription.offer(CLOSED)
        if self._thread is not None:
            try:
                self._thread.wait()
            except Exception:  # noqa: BLE001 - the container has logged it
                pass
        self._close()

    def kill(self):
        self._stopping = True
        if self._thread is not None and self._thread is not eventlet.getcurrent():
            self._thread.kill()
        if self._pool is not None:
            for thread in list(self._pool.coroutines_running):
                thread.kill()
        self._close()

    def get_dependency(self, worker_ctx):
        return self

    # -- subscriptions -----------------------------------------------------------------------
    def subscribe(self, identity: Identity, kind: str = SCREEN_POP.name) -> Subscription:
        if kind not in self.kinds:
            raise ValueError(f"no live push of kind {kind}")
        subscription = Subscription(identity, self.queue_size, kind)
        self._subscribers.setdefault((kind, identity.user_id), set()).add(subscription)
        if self._stopping:
            subscription.offer(CLOSED)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        key = (subscription.kind, subscription.user_id)
        subscriptions = self._subscribers.get(key)
        if subscriptions is None:
            return
        subscriptions.discard(subscription)
        if not subscriptions:
            self._subscribers.pop(key, None)

    def subscriber_count(self, user_id: str | None = None, kind: str | None = None) -> int:
        return sum(len(subs) for (k, uid), subs in self._subscribers.items()
                   if (kind is None or k == kind) and (user_id is None or uid == str(user_id)))

    # -- the consumer thread -----------------------------------------------------------------
    def _run(self):
        backoff = 0.0
        while not self._stopping:
            try:
                if self._conn is None:
                    self._connect()
                backoff = 0.0
                self._serve()
            except self._connection_errors as exc:
                self._close()
                if self._stopping:
                    break
                backoff = min(max(backoff * 2, 0.5), MAX_BACKOFF_S)
                log.warning("live push consumer lost the broker, reconnecting in %.1fs: %s",
                            backoff, exc)
                with eventlet.Timeout(backoff, False):
                    self._stop_requested.wait()
        self._close()

    def _connect(self):
        conn = Connection(self.amqp_uri, heartbeat=self.heartbeat, connect_timeout=5,
                          transport_options={"client_properties": {
                              "connection_name": "gateway live push"}})
        try:
            conn.ensure_connection(max_retries=1)
            channel = conn.channel()
            # A new name on every connection: the previous queue died with its connection.
            queue = Queue(
                f"gateway-live-{socket.gethostname()}-{uuid.uuid4().hex[:12]}",
                bindings=[binding(self.exchanges[kind.source], routing_key=kind.event_type)
                          for kind in self.kinds.values()],
                durable=False, exclusive=True, auto_delete=True,
                queue_arguments={"x-message-ttl": 60_000},
            )
            self.queue = queue(channel)
            for exchange in self.exchanges.values():
                exchange(channel).declare()
            self.queue.declare()
            self._consumer = Consumer(channel, queues=[self.queue], on_message=self._on_message,
                                      no_ack=True, accept=["application/json"],
                                      auto_declare=False)
            self._consumer.consume()
        except BaseException:
            try:
                conn.collect()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail any way
                pass
            raise
        self._conn = conn

    def _serve(self):
        last_heartbeat = time.monotonic()
        while not self._stopping:
            now = time.monotonic()
            if now - last_heartbeat >= 1.0:
                self._conn.heartbeat_check()
                last_heartbeat = now
            try:
                self._conn.drain_events(timeout=DRAIN_TIMEOUT_S)
            except TimeoutError:  # socket.timeout
                pass

    def _close(self):
        conn, self._conn, self._consumer = self._conn, None, None
        if conn is None:
            return
        try:
            conn.release()
        except Exception:  # noqa: BLE001 - closing a broken connection may fail any way
            pass

    # -- fan-out -----------------------------------------------------------------------------
    def _on_message(self, message):
        try:
            event = parse_envelope(message.decode())
        except ContractError as exc:
            log.warning("live push: an event breaks its contract, dropped: %s %s",
                        exc, exc.errors)
            return
        except Exception as exc:  # noqa: BLE001 - not JSON: nothing to show anybody
            log.warning("live push: undecodable event dropped: %s", exc)
            return
        kind = self._by_event.get((event.source, event.type))
        if kind is None:
            return
        self.dispatch(event.payload, str(event.event_id), kind=kind.name,
                      raw_payload=event.raw_payload)

    def dispatch(self, payload: dict, event_id: str | None = None, *,
                 kind: str = SCREEN_POP.name, raw_payload: dict | None = None) -> int:
        """Hand one event of ``kind`` to the open streams of its ``user_id``; returns how many
        streams got it (or will, once what it needs is read)."""
        user_id = payload.get("user_id")
        subscriptions = list(self._subscribers.get((kind, str(user_id)), ())) if user_id else []
        if not subscriptions:
            return 0
        self.kinds[kind].deliver(self, payload, raw_payload if raw_payload is not None
                                 else payload, event_id, subscriptions)
        return len(subscriptions)

    def _deliver_with_card(self, payload: dict, event_id: str | None, group: list) -> None:
        summary = self.summary_for(group[0].identity, payload)
        frame = sse_frame("ringing", ringing_data(payload, summary), event_id)
        for subscription in group:
            subscription.offer(frame)
        self.delivered += len(group)

    def summary_for(self, identity: Identity, payload: dict) -> dict:
        client_id = str(payload["client_id"])
        try:
            with eventlet.Timeout(self.card_timeout_s):
                card = self.rpc_as(identity, "clients").get_client(client_id)
        except (NotFound, Forbidden, Unauthenticated):
            return unknown_number(payload.get("external_number"))
        except (eventlet.Timeout, Exception) as exc:  # noqa: BLE001 - degrade, still ring
            log.warning("live push: client card %s unavailable: %r", client_id, exc)
            return {"unknown": False, "card_unavailable": True, "client": {
                "id": client_id, "link": f"/api/v1/clients/{client_id}"}}
        return client_summary(card)

    def rpc_as(self, identity: Identity, service: str) -> ServiceProxy:
        """A proxy to ``service`` whose calls carry ``identity``, through the container's reply
        queue (no connection of its own)."""
        worker_ctx = WorkerContext(self.container, None, _HubEntrypoint(),
                                   data={IDENTITY_CONTEXT_KEY: identity.to_context()})
        return ServiceProxy(worker_ctx, service, self.rpc_reply_listener)
