"""Look at and re-drive dead-lettered events (``./crm dead-letters`` and the admin API use this).

Listing reads messages and puts them back (``basic_get`` then reject with requeue); re-driving
publishes each one back to the queue it failed on with its attempt counter reset, confirmed, and
only then removes it from the dead-letter queue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from kombu import Connection

from .consumer import ATTEMPTS_HEADER, dead_letter_queue


@dataclass
class DeadLetter:
    handler: str
    original_queue: str
    reason: str
    error_type: str
    error: str
    attempts: int
    dead_lettered_at: str
    event: dict | None
    body: bytes
    headers: dict

    def summary(self) -> dict:
        return {
            "handler": self.handler,
            "original_queue": self.original_queue,
            "reason": self.reason,
            "error_type": self.error_type,
            "error": self.error,
            "attempts": self.attempts,
            "dead_lettered_at": self.dead_lettered_at,
            "event_id": (self.event or {}).get("event_id"),
            "event_type": (self.event or {}).get("type"),
        }


def _decode(message) -> DeadLetter:
    headers = dict(message.headers or {})
    try:
        event = json.loads(message.body)
    except (ValueError, TypeError):
        event = None
    return DeadLetter(
        handler=str(headers.get("x-crm-handler", "")),
        original_queue=str(headers.get("x-crm-original-queue", "")),
        reason=str(headers.get("x-crm-reason", "")),
        error_type=str(headers.get("x-crm-error-type", "")),
        error=str(headers.get("x-crm-error", "")),
        attempts=int(headers.get(ATTEMPTS_HEADER, 0)),
        dead_lettered_at=str(headers.get("x-crm-dead-lettered-at", "")),
        event=event if isinstance(event, dict) else None,
        body=message.body if isinstance(message.body, bytes) else str(message.body).encode(),
        headers=headers,
    )


def list_dead_letters(amqp_uri: str, service: str, limit: int = 100) -> list[DeadLetter]:
    with Connection(amqp_uri) as conn:
        queue = dead_letter_queue(service)(conn.channel())
        queue.declare()
        taken, letters = [], []
        try:
            for _ in range(limit):
                message = queue.get(no_ack=False, accept=["application/json"])
                if message is None:
                    break
                taken.append(message)
                letters.append(_decode(message))
        finally:
            for message in taken:
                message.requeue()
        return letters


def redrive_dead_letters(amqp_uri: str, service: str, *, handler: str | None = None,
                         limit: int = 1000) -> int:
    """Send dead letters (of one handler, or all) back to their queues; returns how many."""
    moved = 0
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as conn:
        channel = conn.channel()
        queue = dead_letter_queue(service)(channel)
        queue.declare()
        producer = conn.Producer()
        skipped = []
        try:
            for _ in range(limit):
                message = queue.get(no_ack=False, accept=["application/json"])
                if message is None:
                    break
                letter = _decode(message)
                if (handler and letter.handler != handler) or not letter.original_queue:
                    skipped.append(message)
                    continue
                headers = {k: v for k, v in letter.headers.items()
                           if not k.startswith("x-crm-") and k != "x-death"}
                producer.publish(
                    letter.body, exchange="", routing_key=letter.original_queue,
                    headers=headers, content_type=message.content_type or "application/json",
                    content_encoding=message.content_encoding or "utf-8", delivery_mode=2,
                    message_id=message.properties.get("message_id"),
                )
                message.ack()
                moved += 1
        finally:
            for message in skipped:
                message.requeue()
    return moved
