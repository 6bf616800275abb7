"""Tables of the erp_bridge service (its own database; no other service reads them)."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = sa.MetaData()

MONEY = sa.Numeric(15, 2)

senders = sa.Table(
    "senders", metadata,
    # One row per 1C node sending to us (msg:From): the last message applied is what we
    # acknowledge back (ReceivedNo); a number at or below it is a repeat.
    sa.Column("sender", sa.String(100), primary_key=True),
    sa.Column("last_message_no", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

exchange_log = sa.Table(
    "exchange_log", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("transport", sa.String(10), nullable=False),       # http | folder | odata
    sa.Column("sender", sa.String(100)),
    sa.Column("message_no", sa.BigInteger),
    sa.Column("outcome", sa.String(20), nullable=False),         # applied | repeat | quarantined
    sa.Column("objects", sa.Integer, nullable=False, server_default="0"),
    sa.Column("events", sa.Integer, nullable=False, server_default="0"),
    sa.Column("filename", sa.String(300)),
)
sa.Index("ix_exchange_log_received", exchange_log.c.received_at)

documents = sa.Table(
    "documents", metadata,
    sa.Column("guid", UUID(as_uuid=True), primary_key=True),
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("type_name", sa.String(100), nullable=False),      # the 1C type as it came
    sa.Column("number", sa.String(100), nullable=False),
    sa.Column("document_date", sa.DateTime(timezone=True), nullable=False),
    sa.Column("amount", MONEY, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("counterparty_guid", UUID(as_uuid=True)),
    sa.Column("client_id", UUID(as_uuid=True)),
    sa.Column("order_guid", UUID(as_uuid=True)),
    sa.Column("deal_id", UUID(as_uuid=True)),
    sa.Column("responsible", sa.String(300)),
    sa.Column("posted", sa.Boolean, nullable=False),
    sa.Column("deletion_mark", sa.Boolean, nullable=False),
    sa.Column("physically_deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("alive", sa.Boolean, nullable=False),
    sa.Column("lines", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("payment_rows", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False, server_default="0"),
    sa.Column("ed_message_no", sa.BigInteger),
    sa.Column("odata_version", sa.String(200)),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("ix_documents_counterparty", documents.c.counterparty_guid)
sa.Index("ix_documents_date", documents.c.document_date)
sa.Index("ix_documents_open", documents.c.kind, documents.c.alive)

counterparties = sa.Table(
    "counterparties", metadata,
    sa.Column("guid", UUID(as_uuid=True), primary_key=True),
    sa.Column("name", sa.String(500), nullable=False),
    sa.Column("full_name", sa.String(1000), nullable=False, server_default=""),
    sa.Column("inn", sa.String(12)),
    sa.Column("kpp", sa.String(9)),
    sa.Column("legal_kind", sa.String(60)),
    sa.Column("contacts", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("deletion_mark", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("client_id", UUID(as_uuid=True)),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("ed_message_no", sa.BigInteger),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("ix_counterparties_inn", counterparties.c.inn, counterparties.c.kpp)

contact_persons = sa.Table(
    "contact_persons", metadata,
    sa.Column("guid", UUID(as_uuid=True), primary_key=True),
    sa.Column("owner_guid", UUID(as_uuid=True)),
    sa.Column("full_name", sa.String(500), nullable=False),
    sa.Column("position", sa.String(300), nullable=False, server_default=""),
    sa.Column("contacts", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("ix_contact_persons_owner", contact_persons.c.owner_guid)

client_replica = sa.Table(
    "client_replica", metadata,
    # From the clients service's events: how a 1C counterparty finds its CRM client.
    sa.Column("client_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("short_name", sa.String(300), nullable=False),
    sa.Column("inn", sa.String(12)),
    sa.Column("kpp", sa.String(9)),
    sa.Column("erp_counterparty_guid", UUID(as_uuid=True)),
)
sa.Index("ix_client_replica_inn", client_replica.c.inn, client_replica.c.kpp)
sa.Index("ix_client_replica_counterparty", client_replica.c.erp_counterparty_guid)

quarantine = sa.Table(
    "quarantine", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("transport", sa.String(10), nullable=False),
    sa.Column("filename", sa.String(300)),
    sa.Column("sender", sa.String(100)),
    sa.Column("message_no", sa.BigInteger),
    sa.Column("reason", sa.String(2000), nullable=False),
    sa.Column("field", sa.String(500)),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("status", sa.String(20), nullable=False, server_default="open"),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Column("resolved_by", UUID(as_uuid=True)),
)
sa.Index("ix_quarantine_status", quarantine.c.status, quarantine.c.id)

poll_state = sa.Table(
    "poll_state", metadata,
    # The OData poller's lease and progress: replicas lock the row (SKIP LOCKED), one polls.
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("polled_at", sa.DateTime(timezone=True)),
    sa.Column("last_error", sa.String(2000)),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)

# -- outbound to 1C (outbound.py) ----------------------------------------------------------------

outbound_nodes = sa.Table(
    "outbound_nodes", metadata,
    # One row per 1C node we send to (msg:To): the last number given (numbers grow per receiver;
    # the row lock serialises numbering) and the highest number it acknowledged (ReceivedNo).
    sa.Column("receiver", sa.String(100), primary_key=True),
    sa.Column("last_message_no", sa.BigInteger, nullable=False),
    sa.Column("acked_no", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

outbound_messages = sa.Table(
    "outbound_messages", metadata,
    # A CRM client sent as an EnterpriseData counterparty message, kept whole until 1C
    # acknowledges it (re-sent as it is, same number, while unacknowledged).
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("receiver", sa.String(100), nullable=False),
    sa.Column("message_no", sa.BigInteger, nullable=False),
    sa.Column("client_id", UUID(as_uuid=True), nullable=False),
    sa.Column("counterparty_guid", UUID(as_uuid=True), nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    sa.Column("acked_at", sa.DateTime(timezone=True)),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("last_error", sa.String(2000)),
    sa.UniqueConstraint("receiver", "message_no", name="uq_outbound_messages_number"),
)
sa.Index("ix_outbound_messages_client", outbound_messages.c.client_id, outbound_messages.c.id)
sa.Index("ix_outbound_messages_unacked", outbound_messages.c.receiver,
         outbound_messages.c.message_no, postgresql_where=outbound_messages.c.acked_at.is_(None))

client_links = sa.Table(
    "client_links", metadata,
    # The 1C GUID the bridge sends a CRM client under (a linked counterparty's, one matched by
    # INN+KPP, or one chosen once): re-sends reuse it, and when 1C sends that counterparty back
    # it finds its client here.
    sa.Column("client_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("counterparty_guid", UUID(as_uuid=True), nullable=False),
    sa.Column("source", sa.String(20), nullable=False),    # linked | card | inn_kpp | chosen
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("ix_client_links_counterparty", client_links.c.counterparty_guid)
