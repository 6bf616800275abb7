"""Batched event consumption: many events per nameko worker and per database transaction.

``event_handler`` (``consumer.py``) runs one worker and one transaction per event, about 0.7k
events/s here. A handler that has to apply a bulk stream (100k ERP documents) takes them in
batches::

    @batch_event_handler("erp_bridge", ["erp_invoice_posted", "erp_invoice_changed"])
    def handle_erp_documents(self, events):        # list[contracts.Event], in delivery order
        with self.db.session() as session:
            fresh = claim_events(session, events)  # the ones not handled before (inbox.py)
            ...                                    # one transaction for the whole batch

How it works:

* one durable queue per handler, ``evt-<source>-batch--<service>.<method>``, bound to the topic
  exchange ``<source>.events`` with each event type as routing key, declared at ``setup``;
* its own connection and consumer in a container-managed thread (not nameko's shared consumer,
  whose prefetch follows ``max_workers``), ``prefetch = 2 * batch size``, manual acks. A batch is
  handed to one nameko worker (``db``, ``outbox``, ``caller`` work as in any entrypoint) when it is
  full or when its oldest message has waited ``max_wait_ms``. Batch size and wait: the decorator's
  arguments, else the config keys ``EVENT_BATCH_SIZE`` (200) and ``EVENT_BATCH_MAX_WAIT_MS`` (50);
* at most one batch is in flight per handler and replica: batches run in delivery order, and
  while one runs the next one fills up (ordering across replicas or retries is not promised);
* every message is checked against its contract first; one that breaks it goes straight to
  ``<service>.dead_letters`` (reason ``contract_violation``) and never reaches the handler;
* when the handler returns, the whole batch is acked (one ``multiple`` ack); when it raises, a
  batch of several is re-run one event at a time, so one poison event holds back nobody, and a
  failing batch of one takes ``event_handler``'s path: confirmed republish to ``crm.retry.<ms>``
  (``EVENT_RETRY_DELAYS_MS``), then to the dead-letter queue with the reason headers;
* acks happen only on the consumer thread, which owns the channel (workers hand their outcome
  over through a queue). Unacked messages come back after a lost connection or a crash, so
  handlers are idempotent (``claim_events``). The thread reconnects with back-off; on container
  stop it takes no new messages, lets the running batch finish and settle, then closes; on kill
  it closes at once.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from functools import partial

import eventlet
from eventlet.event import Event as GreenEvent
from eventlet.queue import Empty, LightQueue
from kombu import Connection, Consumer, Queue, binding
from kombu.exceptions import OperationalError
from nameko.constants import AMQP_URI_CONFIG_KEY, DEFAULT_HEARTBEAT, HEARTBEAT_CONFIG_KEY
from nameko.exceptions import ContainerBeingKilled
from nameko.extensions import Entrypoint
from nameko.messaging import HeaderDecoder
from nameko.standalone.events import get_event_exchange
from prometheus_client import Counter, Histogram

from .config import as_int
from .consumer import (
    declare_failure_queues,
    format_traceback,
    park_failed_message,
    parse_delays,
)
from .contracts import ContractError, parse_envelope
from .observability import EVENTS_CONSUMED, REGISTRY

log = logging.getLogger(__name__)

BATCH_SIZE_KEY = "EVENT_BATCH_SIZE"
MAX_WAIT_KEY = "EVENT_BATCH_MAX_WAIT_MS"
DEFAULT_BATCH_SIZE = 200
DEFAULT_MAX_WAIT_MS = 50

# How long the consumer thread waits for the broker before it looks at its outcomes again: while a
# batch runs and more messages may still come (short: a finished batch is settled at once) and
# while idle (long enough to cost nothing, short enough for a prompt stop).
IN_FLIGHT_POLL_S = 0.005
IDLE_POLL_S = 0.2

EVENT_BATCH_SIZES = Histogram(
    "crm_event_batch_size",
    "Events per batch handed to a batch event handler",
    ["service", "handler"],
    buckets=(1, 2, 5, 10, 25, 50, 100, 200, 500, 1000, 2000),
    registry=REGISTRY,
)
EVENT_BATCHES_SPLIT = Counter(
    "crm_event_batches_split_total",
    "Batches whose handler raised and that were re-run one event at a time",
    ["service", "handler"],
    registry=REGISTRY,
)


def batch_queue_name(source_service: str, service: str, method: str) -> str:
    return f"evt-{source_service}-batch--{service}.{method}"


def shared_context(headers: list[dict]) -> dict:
    """The worker context of a batch: the (nameko) headers every message of it carries alike,
    e.g. the call id chain when one import emitted them all; none of one message's own."""
    if not headers:
        return {}
    first, rest = headers[0], headers[1:]
    return {key: value for key, value in first.items()
            if all(key in other and other[key] == value for other in rest)}


def batch_settings(config: dict, batch_size: int | None, max_wait_ms: int | None
                   ) -> tuple[int, float]:
    """(batch size, max wait in seconds): the decorator's arguments, else the config, else the
    defaults."""
    size = batch_size if batch_size is not None else as_int(config.get(BATCH_SIZE_KEY),
                                                          DEFAULT_BATCH_SIZE)
    wait = max_wait_ms if max_wait_ms is not None else as_int(config.get(MAX_WAIT_KEY),
                                                            DEFAULT_MAX_WAIT_MS)
    return max(1, int(size)), max(0, int(wait)) / 1000.0


class BatchPlan:
    """Which deliveries go to the handler next, in delivery order. No I/O (unit-tested).

    ``buffered``: received, not yet handed out; ``singles``: the events of a failed batch, re-run
    one at a time before anything newer; ``in_flight``: the batch a worker is running (one at most).
    """

    def __init__(self, batch_size: int, max_wait_s: float):
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self.buffered: deque = deque()  # (item, arrived_at)
        self.singles: deque = deque()
        self.in_flight: list | None = None

    def add(self, item, now: float) -> None:
        self.buffered.append((item, now))

    @property
    def full(self) -> bool:
        """Enough buffered for the next batch: reading more from the broker would not help."""
        return len(self.buffered) >= self.batch_size

    def due_in(self, now: float) -> float | None:
        """Seconds until the buffered messages are due as a partial batch (None: nothing
        buffered)."""
        if not self.buffered:
            return None
        return max(0.0, self.buffered[0][1] + self.max_wait_s - now)

    def next_batch(self, now: float) -> list | None:
        """The batch to run now, marked in flight; None while one runs or none is due."""
        if self.in_flight is not None:
            return None
        if self.singles:
            batch = [self.singles.popleft()]
        elif self.full or (self.buffered and self.due_in(now) == 0.0):
            count = min(self.batch_size, len(self.buffered))
            batch = [self.buffered.popleft()[0] for _ in range(count)]
        else:
            return None
        self.in_flight = batch
        return batch

    def finished(self, *, split: bool = False) -> list | None:
        """The running batch is over; ``split``: it failed, re-run its items one by one first (a
        single is never split again: it has taken the retry path)."""
        batch, self.in_flight = self.in_flight, None
        if split and batch and len(batch) > 1:
            self.singles.extendleft(reversed(batch))
        return batch

    def forget_waiting(self) -> None:
        """The connection they came on is gone: the broker delivers them again."""
        self.buffered.clear()
        self.singles.clear()


@dataclass(eq=False)
class _Delivery:
    message: object  # kombu Message
    event: object    # contracts.Event
    generation: int  # the connection it came on: its delivery tag means nothing on another


@dataclass(eq=False)
class _Outcome:
    batch: list
    generation: int
    # "ok"; "split" (several failed); for a failed single "parked" (moved to retry or dead
    # letters), "requeue" (the broker would not take the copy) or "stale" (connection gone)
    action: str


class BatchEventHandler(Entrypoint, HeaderDecoder):
    """See the module docstring. ``batch_event_handler`` is its decorator."""

    def __init__(self, source_service: str, event_types: str | list[str], *,
                 batch_size: int | None = None, max_wait_ms: int | None = None, **kwargs):
        self.source_service = source_service
        self.event_types = [event_types] if isinstance(event_types, str) else list(event_types)
        if not self.event_types:
            raise ValueError("batch_event_handler needs at least one event type")
        self.requested_batch_size = batch_size
        self.requested_max_wait_ms = max_wait_ms
        self._conn: Connection | None = None
        self._channel = None
        self._consumer: Consumer | None = None
        self._generation = 0
        self._outcomes: LightQueue = LightQueue()
        self._stop_requested = GreenEvent()
        self._stopping = False
        self._thread = None
        super().__init__(**kwargs)

    # -- lifecycle ---------------------------------------------------------------------------
    def setup(self):
        config = self.container.config
        self.service = self.container.service_name
        self.handler_name = f"{self.service}.{self.method_name}"
        self.amqp_uri = config[AMQP_URI_CONFIG_KEY]
        self.heartbeat = config.get(HEARTBEAT_CONFIG_KEY, DEFAULT_HEARTBEAT)
        self.delays = parse_delays(config.get("EVENT_RETRY_DELAYS_MS"))
        self.batch_size, self.max_wait_s = batch_settings(
            config, self.requested_batch_size, self.requested_max_wait_ms)
        self.prefetch_count = 2 * self.batch_size
        exchange = get_event_exchange(self.source_service, config)
        self.queue = Queue(
            batch_queue_name(self.source_service, self.service, self.method_name),
            bindings=[binding(exchange, routing_key=event_type) for event_type in self.event_types],
            durable=True, auto_delete=False,
        )
        self.plan = BatchPlan(self.batch_size, self.max_wait_s)
        # Declared now, so that an event published once the service has started is never
        # unroutable.
        with Connection(self.amqp_uri) as conn:
            self.queue(conn.channel()).declare()
            self._connection_errors = (conn.connection_errors + conn.channel_errors
                                       + (OSError, OperationalError))
        declare_failure_queues(self.amqp_uri, self.service, self.delays)

    def start(self):
        self._thread = self.container.spawn_managed_thread(
            self._run, identifier=f"batch_event_handler {self.handler_name}")

    def stop(self):
        self._stopping = True
        if not self._stop_requested.ready():
            self._stop_requested.send(True)  # cuts a reconnect back-off short
        self._outcomes.put(None)  # wakes a thread waiting for a batch's outcome
        if self._thread is not None:
            try:
                self._thread.wait()
            except Exception:  # noqa: BLE001 - the container has logged it and is being killed
                pass

    def kill(self):
        self._stopping = True
        if self._thread is not None and self._thread is not eventlet.getcurrent():
            self._thread.kill()
        self._close(graceful=False)

    # -- the consumer thread -----------------------------------------------------------------
    def _run(self):
        backoff = 0.0
        while not self._stopping:
            try:
                self._connect()
                backoff = 0.0
                self._serve()
            except self._connection_errors as exc:
                self._close(graceful=False)
                self.plan.forget_waiting()
                if self._stopping:
                    break
                backoff = min(max(backoff * 2, 0.5), 15.0)
                log.warning("%s lost its broker connection, reconnecting in %.1fs: %s",
                            self.handler_name, backoff, exc)
                with eventlet.Timeout(backoff, False):
                    self._stop_requested.wait()
        # Stopped while disconnected: the running batch still finishes (its messages are back
        # in the queue already, so its outcome is only awaited, not settled).
        while self.plan.in_flight is not None:
            self._take_outcome(timeout=1.0)
        self._close(graceful=True)

    def _connect(self):
        conn = Connection(self.amqp_uri, heartbeat=self.heartbeat, connect_timeout=5,
                          transport_options={"client_properties": {
                              "connection_name": f"{self.handler_name} (batch consumer)"}})
        conn.ensure_connection(max_retries=1)
        self._conn = conn
        self._generation += 1
        channel = conn.channel()
        self.queue(channel).declare()
        channel.basic_qos(prefetch_size=0, prefetch_count=self.prefetch_count, a_global=False)
        self._channel = channel
        self._consumer = Consumer(
            channel, queues=[self.queue], on_message=self._on_message, no_ack=False,
            accept=["application/json"], on_decode_error=self._on_decode_error,
            auto_declare=False,
        )
        self._consumer.consume()
        self._last_heartbeat = time.monotonic()

    def _serve(self):
        cancelled = False
        while True:
            self._settle_ready()
            if self._stopping:
                if not cancelled:
                    self._consumer.cancel()  # no new messages; the waiting ones go back
                    cancelled = True
                if self.plan.in_flight is None:
                    return
                self._take_outcome(timeout=1.0)
                continue
            self._dispatch()
            self._wait()

    def _wait(self):
        now = time.monotonic()
        if now - self._last_heartbeat >= 1.0:
            self._conn.heartbeat_check()
            self._last_heartbeat = now
        if self.plan.in_flight is not None:
            if self.plan.full:
                # Nothing more can be handed out until the running batch ends: wait for it.
                if not self._take_outcome(timeout=1.0):
                    self._drain(0.01)  # keep reading heartbeats
                return
            self._drain(IN_FLIGHT_POLL_S)
            return
        due_in = self.plan.due_in(now)
        self._drain(IDLE_POLL_S if due_in is None else max(0.001, min(due_in, IDLE_POLL_S)))

    def _drain(self, timeout: float):
        try:
            self._conn.drain_events(timeout=timeout)
        except TimeoutError:  # socket.timeout
            pass

    # -- receiving ---------------------------------------------------------------------------
    def _on_message(self, message):
        try:
            body = message.decode()
            event = parse_envelope(body, handler=self.handler_name)
        except ContractError as exc:
            self._reject_broken(message, exc, tb=str(exc.errors))
            return
        except Exception as exc:  # noqa: BLE001 - not JSON or not allowed: can never succeed
            self._reject_broken(message, ContractError(f"undecodable event body: {exc}"),
                                tb=f"{type(exc).__name__}: {exc}")
            return
        self.plan.add(_Delivery(message, event, self._generation), time.monotonic())

    def _on_decode_error(self, message, exc):
        self._reject_broken(message, ContractError(f"undecodable event body: {exc}"),
                            tb=f"{type(exc).__name__}: {exc}")

    def _reject_broken(self, message, exc: ContractError, *, tb: str):
        EVENTS_CONSUMED.labels(self.service, self.handler_name, "contract_violation").inc()
        self._park(message, reason="contract_violation", error=exc, error_type="ContractError",
                   tb=tb, final=True)
        # Settled on arrival (this is the consumer thread): it never joins a batch.

    def _park(self, message, *, reason, error, error_type, tb, final) -> bool:
        """Move a failed message to retry or dead letters and ack it; requeue it if the broker
        would not take the copy. Consumer thread only."""
        try:
            park_failed_message(
                self.amqp_uri, message, service=self.service, handler_name=self.handler_name,
                queue_name=self.queue.name, delays=self.delays, reason=reason, error=error,
                error_type=error_type, tb=tb, final=final,
            )
        except Exception:  # noqa: BLE001 - broker trouble: let the broker redeliver instead
            log.exception("could not park a failed event; returning it to the queue")
            message.requeue()
            return False
        message.ack()
        return True

    # -- running batches ---------------------------------------------------------------------
    def _dispatch(self):
        batch = self.plan.next_batch(time.monotonic())
        if batch is None:
            return
        events = [delivery.event for delivery in batch]
        context = shared_context([self.unpack_message_headers(d.message) for d in batch])
        EVENT_BATCH_SIZES.labels(self.service, self.handler_name).observe(len(batch))
        try:
            self.container.spawn_worker(
                self, (events,), {}, context_data=context,
                handle_result=partial(self._handle_result, batch, self._generation),
            )
        except ContainerBeingKilled:
            self.plan.finished()  # unacked: the broker gives it to the next consumer
            self._stopping = True

    def _handle_result(self, batch, generation, worker_ctx, result=None, exc_info=None):
        """In the worker's thread: decide, publish a failed single's copy, hand the ack over."""
        if exc_info is None:
            action = "ok"
        elif len(batch) > 1:
            action = "split"
        elif generation != self._generation:
            action = "stale"  # its connection is gone; the broker redelivers it
        else:
            action = "parked"
            message = batch[0].message
            try:
                park_failed_message(
                    self.amqp_uri, message, service=self.service,
                    handler_name=self.handler_name, queue_name=self.queue.name,
                    delays=self.delays, reason="handler_error", error=exc_info[1],
                    error_type=exc_info[0].__name__, tb=format_traceback(exc_info), final=False,
                )
            except Exception:  # noqa: BLE001 - broker trouble: let the broker redeliver instead
                log.exception("could not park a failed event; returning it to the queue")
                action = "requeue"
        self._outcomes.put(_Outcome(batch, generation, action))
        return result, exc_info

    def _take_outcome(self, timeout: float) -> bool:
        try:
            outcome = self._outcomes.get(timeout=timeout)
        except Empty:
            return False
        if outcome is not None:
            self._settle(outcome)
        return True

    def _settle_ready(self):
        while True:
            try:
                outcome = self._outcomes.get_nowait()
            except Empty:
                return
            if outcome is not None:
                self._settle(outcome)

    def _settle(self, outcome: _Outcome):
        """On the consumer thread: ack, requeue or split the batch a worker finished."""
        batch = outcome.batch
        self.plan.finished(split=outcome.action == "split"
                           and outcome.generation == self._generation)
        if outcome.generation != self._generation or self._channel is None:
            log.info("%s: a batch of %s finished after its connection was lost; the broker "
                     "delivers it again", self.handler_name, len(batch))
            return
        if outcome.action == "split":
            EVENT_BATCHES_SPLIT.labels(self.service, self.handler_name).inc()
            log.warning("%s: a batch of %s failed; running its events one by one",
                        self.handler_name, len(batch))
        elif outcome.action == "requeue":
            batch[0].message.requeue()
        elif outcome.action in ("ok", "parked"):
            # Batches are handed out in delivery order and one at a time, and everything
            # delivered before this batch is settled already: one ack covers the batch.
            batch[-1].message.ack(multiple=len(batch) > 1)
            if outcome.action == "ok":
                EVENTS_CONSUMED.labels(self.service, self.handler_name, "ok").inc(len(batch))

    def _close(self, *, graceful: bool):
        conn, self._conn, self._channel, self._consumer = self._conn, None, None, None
        if conn is None:
            return
        try:
            if graceful:
                conn.release()  # unacked messages go back to the queue
            else:
                conn.collect()
        except Exception:  # noqa: BLE001 - closing a broken connection may fail any way
            pass


batch_event_handler = BatchEventHandler.decorator
