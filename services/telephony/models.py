"""Tables of the telephony service (its own database; no other service reads them)."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from crm_platform.organisation import departments_table

metadata = sa.MetaData()

# The directory's people as telephony needs them: the extension maps a call to its manager.
staff = sa.Table(
    "staff", metadata,
    sa.Column("user_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("full_name", sa.String(300), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("department_id", UUID(as_uuid=True)),
    sa.Column("extension", sa.String(16)),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Index("ix_staff_extension", "extension"),
)

departments = departments_table(metadata)

# Every finished call, once: (pbx, key) is the call's identity at its PBX (Linkedid, entry_id,
# pbx_call_id). Internal calls are stored too, but not announced as client calls.
calls = sa.Table(
    "calls", metadata,
    sa.Column("call_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("pbx", sa.String(16), nullable=False),
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("direction", sa.String(10), nullable=False),
    sa.Column("our_number", sa.String(32)),
    sa.Column("external_number", sa.String(32)),
    sa.Column("external_raw", sa.String(100)),
    sa.Column("rang", ARRAY(sa.String(16)), nullable=False, server_default="{}"),
    sa.Column("answered_by", sa.String(16)),
    sa.Column("user_id", UUID(as_uuid=True)),
    sa.Column("department_id", UUID(as_uuid=True)),
    sa.Column("client_id", UUID(as_uuid=True)),
    sa.Column("client_owner_id", UUID(as_uuid=True)),
    sa.Column("contact_id", UUID(as_uuid=True)),   # the contact person whose number it was
    sa.Column("lead_deal_id", UUID(as_uuid=True)),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("answered_at", sa.DateTime(timezone=True)),
    sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("duration_seconds", sa.Integer, nullable=False),
    sa.Column("talk_seconds", sa.Integer, nullable=False),
    sa.Column("disposition", sa.String(16), nullable=False),
    sa.Column("recording", sa.String(500)),
    sa.Column("extra", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("pbx", "key", name="uq_calls_pbx_key"),
    sa.Index("ix_calls_external_number", "external_number", "started_at"),
    sa.Index("ix_calls_client", "client_id", "started_at"),
)

# Mango /events/call notifications seen: a re-delivered leg state changes nothing.
mango_legs = sa.Table(
    "mango_legs", metadata,
    sa.Column("call_id", sa.String(200), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("entry_id", sa.String(200), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
)

# Zadarma webhook events, kept per call so that any replica folds the whole call from them.
zadarma_events = sa.Table(
    "zadarma_events", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("pbx_call_id", sa.String(200), nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("internal", sa.String(16), nullable=False, server_default=""),
    sa.Column("form", JSONB, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("pbx_call_id", "event", "internal", name="uq_zadarma_events_key"),
)
