"""Two small services that exercise the backbone exactly as real services use it: ``probe``
changes state and emits in one transaction; ``sink`` consumes idempotently and can be told to
fail or to hang mid-handler (for the kill test, when run as its own process)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import sqlalchemy as sa
from marshmallow import Schema, fields
from sqlalchemy.dialects.postgresql import UUID

from crm_platform.consumer import event_handler
from crm_platform.contracts import contract
from crm_platform.inbox import claim_event
from crm_platform.rpc import rpc
from crm_platform.service import PersistentService


@contract("probe", "thing_happened")
class ThingHappened(Schema):
    thing_id = fields.UUID(required=True)
    n = fields.Integer(required=True)


probe_metadata = sa.MetaData()
things = sa.Table(
    "things", probe_metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
)

sink_metadata = sa.MetaData()
received = sa.Table(
    "received", sink_metadata,
    sa.Column("event_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("thing_id", UUID(as_uuid=True), nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
)

# Values of n the sink refuses (tests add and clear them; in-process containers only).
FAILING: set[int] = set()


class ProbeService(PersistentService):
    name = "probe"

    @rpc
    def make_thing(self, thing_id: str, n: int, fail_after_emit: bool = False) -> None:
        with self.db.session() as session:
            session.execute(sa.insert(things).values(id=thing_id, n=n))
            self.outbox.emit(session, "thing_happened", {"thing_id": thing_id, "n": n})
            if fail_after_emit:
                raise RuntimeError("the change fails after the event was written")


class SinkService(PersistentService):
    name = "sink"

    @event_handler("probe", "thing_happened")
    def handle_thing_happened(self, event):
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            session.execute(sa.insert(received).values(
                event_id=event.event_id, thing_id=event.payload["thing_id"],
                n=event.payload["n"]))
            if event.payload["n"] in FAILING:
                raise ValueError(f"sink refuses n={event.payload['n']}")
            hang_marker = os.environ.get("SINK_HANG_MARKER")
            if hang_marker:  # tell the test we are inside the handler, then never finish
                Path(hang_marker).write_text(str(event.event_id))
                time.sleep(3600)
