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

A batch handler (``batching.batch_event_handler``) claims its whole batch in one statement and
applies only what comes back::

    with self.db.session() as session:
        for event in claim_events(session, events):   # the ones not seen before, in order
            ...
"""

from __future__ import annotations

import uuid

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


# executemany with RETURNING: SQLAlchemy sends one multi-row INSERT per 1,000 rows
# ("insertmanyvalues"), compiled once and cached, unlike .values([...]) which compiles per call.
_CLAIM = (
    insert(processed_events)
    .on_conflict_do_nothing()
    .returning(processed_events.c.consumer, processed_events.c.event_id)
)


def claim_events(session, events: list[Event], consumer: str | None = None) -> list[Event]:
    """The events of ``events`` that ``consumer`` (default: each event's handler) has not seen
    before, in input order, now recorded as seen in the caller's transaction. One multi-row
    ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` (per 1,000 events); an event twice in the list
    counts once. Rows go in sorted by key, so two batches sharing events lock in the same order
    and cannot deadlock each other."""
    keyed: dict[tuple[str, uuid.UUID], Event] = {}
    repeats: list[str] = []
    for event in events:
        name = consumer or event.handler
        if not name:
            raise ValueError("claim_events needs the consumer name")
        event_id = event.event_id
        key = (name, event_id if isinstance(event_id, uuid.UUID) else uuid.UUID(str(event_id)))
        if key in keyed:
            repeats.append(name)
        else:
            keyed[key] = event
    if not keyed:
        return []
    inserted = session.execute(
        _CLAIM, [{"consumer": name, "event_id": event_id} for name, event_id in sorted(keyed)]
    ).all()
    fresh = {(row.consumer, row.event_id) for row in inserted}
    duplicates: dict[str, int] = {}
    for name in repeats + [name for name, _ in keyed.keys() - fresh]:
        duplicates[name] = duplicates.get(name, 0) + 1
    for name, count in duplicates.items():
        EVENTS_CONSUMED.labels(name.split(".", 1)[0], name, "duplicate").inc(count)
    return [event for key, event in keyed.items() if key in fresh]


def purge_processed(session, older_than_days: int = 30) -> int:
    """Forget handled ids older than any plausible redelivery."""
    result = session.execute(
        sa.delete(processed_events).where(
            processed_events.c.handled_at
            < sa.func.now() - sa.text(f"interval '{int(older_than_days)} days'")
        )
    )
    return result.rowcount or 0
