"""Idempotent consumption.

At-least-once delivery means a handler may see the same event twice (redelivery after a crash, a
relay re-sending a batch). The handler records the event id in its own transaction before changing
anything; a second delivery finds the id and changes nothing::

    with self.db.session() as session:
        if not claim_event(session, event):
            return                      # handled before
        ...                             # the change, committed together with the claim

Two replicas racing on the same event: the second INSERT waits on the first's unique key and then
finds the conflict, so exactly one applies it.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from .contracts import Event
from .observability import EVENTS_CONSUMED
from .tables import processed_events


def claim_event(session, event: Event, consumer: str | None = None) -> bool:
    """True the first time ``consumer`` (default: the handler) sees ``event``; False after."""
    consumer = consumer or event.handler
    if not consumer:
        raise ValueError("claim_event needs the consumer name")
    inserted = session.execute(
        insert(processed_events)
        .values(consumer=consumer, event_id=event.event_id)
        .on_conflict_do_nothing()
        .returning(processed_events.c.event_id)
    ).first()
    if inserted is None:
        service = consumer.split(".", 1)[0]
        EVENTS_CONSUMED.labels(service, consumer, "duplicate").inc()
        return False
    return True


def purge_processed(session, older_than_days: int = 30) -> int:
    """Forget handled ids older than any plausible redelivery."""
    result = session.execute(
        sa.delete(processed_events).where(
            processed_events.c.handled_at
            < sa.func.now() - sa.text(f"interval '{int(older_than_days)} days'")
        )
    )
    return result.rowcount or 0
