"""The event handler entrypoint every service uses: contract check, bounded retry, dead letters.

nameko's own ``event_handler`` acks a failed message and the event is gone. This one:

* loads the envelope and payload through the contract; a message that breaks it can never succeed,
  so it goes straight to the dead-letter queue with the reason;
* when the handler raises, republishes the message (publisher-confirmed) to a delay queue
  ``crm.retry.<ms>`` whose TTL dead-letters it back to the handler's own queue, with back-off
  (``EVENT_RETRY_DELAYS_MS``, default 1s, 5s, 30s, 2min, 10min); after the last delay it moves it to
  ``<service>.dead_letters`` with the error, its type, a traceback excerpt and the attempts;
* acks the original only after that publish was confirmed; if the process dies first, the broker
  redelivers it (so handlers are idempotent: see ``inbox.claim_event``).

    @event_handler("clients", "client_created")
    def handle_client_created(self, event):   # event: contracts.Event
        ...
"""

from __future__ import annotations

import logging
import traceback

from kombu import Connection, Exchange, Queue
from kombu.pools import producers
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.events import SERVICE_POOL, EventHandler
from nameko.exceptions import ContainerBeingKilled

from .clock import utcnow
from .contracts import ContractError, parse_envelope
from .observability import DEAD_LETTERS, EVENTS_CONSUMED

log = logging.getLogger(__name__)

DEFAULT_RETRY_DELAYS_MS = (1_000, 5_000, 30_000, 120_000, 600_000)
ATTEMPTS_HEADER = "x-crm-attempts"
RETRY_PREFIX = "crm.retry"


def dead_letter_queue_name(service: str) -> str:
    return f"{service}.dead_letters"


def retry_exchange(delay_ms: int) -> Exchange:
    return Exchange(f"{RETRY_PREFIX}.{delay_ms}", type="fanout", durable=True)


def retry_queue(delay_ms: int) -> Queue:
    # Fanout keeps the routing key the message was published with (the handler's queue name);
    # when the TTL expires the default exchange routes it back to exactly that queue.
    return Queue(
        f"{RETRY_PREFIX}.{delay_ms}",
        exchange=retry_exchange(delay_ms),
        durable=True,
        queue_arguments={"x-message-ttl": int(delay_ms), "x-dead-letter-exchange": ""},
    )


def dead_letter_queue(service: str) -> Queue:
    return Queue(dead_letter_queue_name(service), durable=True)


def declare_failure_queues(amqp_uri: str, service: str, delays) -> None:
    """The delay queues and the service's dead-letter queue a failing handler parks messages in."""
    with Connection(amqp_uri) as conn:
        channel = conn.channel()
        for delay in delays:
            retry_queue(delay)(channel).declare()
        dead_letter_queue(service)(channel).declare()


def parse_delays(value) -> tuple[int, ...]:
    if value is None or value == "":
        return DEFAULT_RETRY_DELAYS_MS
    if isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value)
    return tuple(int(v) for v in str(value).split(",") if v.strip())


class ReliableEventHandler(EventHandler):
    def __init__(self, source_service, event_type, **kwargs):
        kwargs.setdefault("handler_type", SERVICE_POOL)
        super().__init__(source_service, event_type, reliable_delivery=True,
                         requeue_on_error=False, **kwargs)

    def setup(self):
        super().setup()
        config = self.container.config
        self.delays = parse_delays(config.get("EVENT_RETRY_DELAYS_MS"))
        self.amqp_uri = config[AMQP_URI_CONFIG_KEY]
        self.service = self.container.service_name
        self.handler_name = f"{self.service}.{self.method_name}"
        declare_failure_queues(self.amqp_uri, self.service, self.delays)

    # -- receiving ---------------------------------------------------------------------------
    def handle_message(self, body, message):
        try:
            event = parse_envelope(body, handler=self.handler_name)
        except ContractError as exc:
            EVENTS_CONSUMED.labels(self.service, self.handler_name, "contract_violation").inc()
            self._settle_failure(message, reason="contract_violation", error=exc,
                                 error_type="ContractError", tb=str(exc.errors), final=True)
            return
        context_data = self.unpack_message_headers(message)
        try:
            self.container.spawn_worker(
                self, (event,), {}, context_data=context_data,
                handle_result=lambda worker_ctx, result=None, exc_info=None:
                    self.handle_result(message, worker_ctx, result, exc_info),
            )
        except ContainerBeingKilled:
            self.queue_consumer.requeue_message(message)

    def handle_result(self, message, worker_ctx, result=None, exc_info=None):
        if exc_info is None:
            EVENTS_CONSUMED.labels(self.service, self.handler_name, "ok").inc()
            self.queue_consumer.ack_message(message)
        else:
            self._settle_failure(
                message, reason="handler_error", error=exc_info[1],
                error_type=exc_info[0].__name__, tb=format_traceback(exc_info), final=False,
            )
        return result, exc_info

    # -- failing -----------------------------------------------------------------------------
    def _settle_failure(self, message, *, reason, error, error_type, tb, final):
        try:
            park_failed_message(
                self.amqp_uri, message, service=self.service, handler_name=self.handler_name,
                queue_name=self.queue.name, delays=self.delays, reason=reason, error=error,
                error_type=error_type, tb=tb, final=final,
            )
        except Exception:  # noqa: BLE001 - broker trouble: let the broker redeliver instead
            log.exception("could not park a failed event; returning it to the queue")
            self.queue_consumer.requeue_message(message)
            return
        self.queue_consumer.ack_message(message)


def format_traceback(exc_info) -> str:
    """The excerpt of a handler's traceback that travels in the dead letter's headers."""
    exc_type, exc, tb = exc_info
    return "".join(traceback.format_exception(exc_type, exc, tb))[-4000:]


def park_failed_message(amqp_uri: str, message, *, service: str, handler_name: str,
                        queue_name: str, delays, reason: str, error, error_type: str, tb: str,
                        final: bool) -> str:
    """Move a failed message out of the way: to its next delay queue ``crm.retry.<ms>`` (which
    returns it to ``queue_name``), or, after the last delay or when ``final``, to
    ``<service>.dead_letters`` with the reason headers. Publisher-confirmed; returns
    ``"retried"`` or ``"dead_lettered"``. Raises when the broker did not take it: the caller then
    returns the original to its queue instead of acking it."""
    headers = dict(message.headers or {})
    attempts = int(headers.get(ATTEMPTS_HEADER, 0)) + 1
    headers[ATTEMPTS_HEADER] = attempts
    headers["x-crm-last-error"] = f"{error_type}: {error}"[:1000]
    if not final and attempts <= len(delays):
        delay = delays[attempts - 1]
        publish_copy(amqp_uri, message, headers, exchange=retry_exchange(delay).name,
                     routing_key=queue_name)
        EVENTS_CONSUMED.labels(service, handler_name, "retried").inc()
        log.warning("%s failed (attempt %s), retrying in %s ms: %s: %s",
                    handler_name, attempts, delay, error_type, error)
        return "retried"
    headers.update({
        "x-crm-reason": reason,
        "x-crm-error": str(error)[:2000],
        "x-crm-error-type": error_type,
        "x-crm-traceback": tb,
        "x-crm-handler": handler_name,
        "x-crm-original-queue": queue_name,
        "x-crm-original-exchange": message.delivery_info.get("exchange", ""),
        "x-crm-original-routing-key": message.delivery_info.get("routing_key", ""),
        "x-crm-dead-lettered-at": utcnow().isoformat(),
    })
    publish_copy(amqp_uri, message, headers, exchange="",
                 routing_key=dead_letter_queue_name(service))
    EVENTS_CONSUMED.labels(service, handler_name, "dead_lettered").inc()
    DEAD_LETTERS.labels(service, handler_name, reason).inc()
    log.error("%s dead-lettered an event after %s attempt(s): %s: %s",
              handler_name, attempts, error_type, error)
    return "dead_lettered"


def publish_copy(amqp_uri: str, message, headers: dict, *, exchange: str, routing_key: str):
    """Publish ``message``'s body again with new headers, persistent and publisher-confirmed."""
    conn = Connection(amqp_uri, transport_options={"confirm_publish": True})
    with producers[conn].acquire(block=True, timeout=10) as producer:
        producer.publish(
            message.body,
            exchange=exchange,
            routing_key=routing_key,
            headers=headers,
            content_type=message.content_type or "application/json",
            content_encoding=message.content_encoding or "utf-8",
            delivery_mode=2,
            message_id=message.properties.get("message_id"),
            retry=True,
            retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
        )


event_handler = ReliableEventHandler.decorator
