"""``@rpc`` for every service: nameko's RPC entrypoint, except that losing the broker while a
request is handled does not take the whole process down.

nameko 2.14 publishes the reply and acks the request on the connection the request came in on.
When RabbitMQ restarts while a handler runs, that ack or reply raises a connection error in the
worker, and nameko kills the container — the service process exits and stays down until the
orchestrator restarts it. Nothing is lost either way: the request was never acked, so the broker
delivers it again once the consumer reconnects, and handlers are idempotent. So such an error is
logged and swallowed here; the caller either gets the reply to the redelivered request or times
out and retries (tests/faults/test_erp_stream_faults.py)."""

from __future__ import annotations

import logging

from amqp.exceptions import ConnectionError as AmqpConnectionError
from amqp.exceptions import RecoverableConnectionError
from kombu.exceptions import OperationalError
from nameko.amqp.publish import Publisher
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    DEFAULT_SERIALIZER,
    LOGIN_METHOD_CONFIG_KEY,
    SERIALIZER_CONFIG_KEY,
)
from nameko.rpc import Responder, Rpc, get_rpc_exchange

from .idempotency import REPLAYED_ATTR, REPLAYED_REPLY_KEY

log = logging.getLogger(__name__)

LOST_CONNECTION = (OSError, AmqpConnectionError, RecoverableConnectionError, OperationalError)


class _MarkingPublisher(Publisher):
    """Adds keys to the reply body (a replayed idempotent result says so to the gateway)."""

    extra: dict = {}

    def publish(self, payload, **kwargs):
        return super().publish({**payload, **self.extra}, **kwargs)


class ResilientRpc(Rpc):
    def handle_result(self, message, worker_ctx, result, exc_info):
        try:
            if getattr(worker_ctx, REPLAYED_ATTR, False):
                return self._reply_marked(message, result, exc_info, {REPLAYED_REPLY_KEY: True})
            return super().handle_result(message, worker_ctx, result, exc_info)
        except LOST_CONNECTION as exc:
            log.warning("the reply to %s was lost with the broker connection (%s); the request "
                        "will be delivered again", worker_ctx.call_id, exc)
            return result, exc_info


    def _reply_marked(self, message, result, exc_info, extra: dict):
        """As nameko's ``RpcConsumer.handle_result``, with ``extra`` keys in the reply body."""
        config = self.container.config
        responder = Responder(
            config[AMQP_URI_CONFIG_KEY], get_rpc_exchange(config),
            config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER), message,
            ssl=config.get(AMQP_SSL_CONFIG_KEY), login_method=config.get(LOGIN_METHOD_CONFIG_KEY))
        responder.publisher_cls = type("ReplyPublisher", (_MarkingPublisher,), {"extra": extra})
        return responder.send_response(result, exc_info)


rpc = ResilientRpc.decorator
