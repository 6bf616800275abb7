"""The platform's own tables, present in every service's database.

``outbox``           events written in the same transaction as the state change they announce
``processed_events`` event ids a consumer has handled (idempotent consumption)
``idempotency_keys`` Idempotency-Key claims and results of creating HTTP requests
``access_denials``   callers refused access (``crm_platform.audit``)

Each service's first alembic migration calls ``create_platform_tables(op)``; the table definitions
live only here.
"""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

platform_metadata = sa.MetaData()

outbox = sa.Table(
    "outbox",
    platform_metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
    sa.Column("source", sa.String(100), nullable=False),
    sa.Column("type", sa.String(100), nullable=False),
    sa.Column("envelope", JSONB, nullable=False),
    sa.Column("headers", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
              server_default=sa.func.now()),
    sa.Column("published_at", sa.DateTime(timezone=True)),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
)
# The relay only ever looks at unsent rows: keep that index small.
sa.Index("ix_outbox_unsent", outbox.c.id, postgresql_where=outbox.c.published_at.is_(None))
sa.Index("ix_outbox_published_at", outbox.c.published_at)

processed_events = sa.Table(
    "processed_events",
    platform_metadata,
    sa.Column("consumer", sa.String(200), primary_key=True),
    sa.Column("event_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False,
              server_default=sa.func.now()),
)


# Idempotency-Key of creating requests (crm_platform.idempotency): one row per caller and key,
# ``running`` while the first request runs, then ``done`` with its result for replays; purged
# after a day by the outbox housekeeping.
idempotency_keys = sa.Table(
    "idempotency_keys",
    platform_metadata,
    sa.Column("caller", sa.String(100), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("operation", sa.String(200), nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("response", JSONB),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
              server_default=sa.func.now()),
    sa.Column("completed_at", sa.DateTime(timezone=True)),
)
sa.Index("ix_idempotency_keys_created_at", idempotency_keys.c.created_at)


# Callers refused access (crm_platform.audit): who, what, why and when. Append-only; kept like
# the services' other audit records.
access_denials = sa.Table(
    "access_denials",
    platform_metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("user_id", sa.String(64)),
    sa.Column("username", sa.String(100), nullable=False, server_default=""),
    sa.Column("role", sa.String(20), nullable=False, server_default=""),
    sa.Column("department_id", sa.String(64)),
    sa.Column("service", sa.String(50), nullable=False),
    sa.Column("operation", sa.String(200), nullable=False),
    sa.Column("resource", sa.String(500), nullable=False, server_default=""),
    sa.Column("code", sa.String(100), nullable=False),
    sa.Column("reason", sa.String(1000), nullable=False, server_default=""),
)
sa.Index("ix_access_denials_at", access_denials.c.at)


def create_platform_tables(op) -> None:
    """Create the platform tables from an alembic migration."""
    bind = op.get_bind()
    platform_metadata.create_all(bind)


def drop_platform_tables(op) -> None:
    platform_metadata.drop_all(op.get_bind())
