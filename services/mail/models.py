"""Tables of the mail service (its own database; no other service reads them)."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from crm_platform.organisation import departments_table, staff_table

metadata = sa.MetaData()

staff = staff_table(metadata)
departments = departments_table(metadata)

# A mailbox: where to read (IMAP) and send (SMTP) and a *reference* to its password; the sync
# state (lease, back-off, last error) beside it.
mailboxes = sa.Table(
    "mailboxes", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("address", sa.String(320), nullable=False),
    sa.Column("display_name", sa.String(200), nullable=False, server_default=""),
    sa.Column("kind", sa.String(10), nullable=False),            # personal, shared
    sa.Column("owner_id", UUID(as_uuid=True)),
    sa.Column("department_id", UUID(as_uuid=True)),
    sa.Column("imap_host", sa.String(253), nullable=False),
    sa.Column("imap_port", sa.Integer, nullable=False),
    sa.Column("imap_tls", sa.Boolean, nullable=False),
    sa.Column("login", sa.String(320), nullable=False),
    sa.Column("secret_ref", sa.String(140), nullable=False),
    sa.Column("sent_folder", sa.String(200), nullable=False, server_default="Sent"),
    sa.Column("smtp_host", sa.String(253)),
    sa.Column("smtp_port", sa.Integer, nullable=False, server_default="587"),
    sa.Column("smtp_security", sa.String(10), nullable=False, server_default="starttls"),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("sync_interval_seconds", sa.Integer, nullable=False, server_default="300"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", UUID(as_uuid=True)),
    sa.Column("deleted_at", sa.DateTime(timezone=True)),
    sa.Column("next_sync_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("leased_until", sa.DateTime(timezone=True)),
    sa.Column("lease_owner", sa.String(100)),
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("last_error_at", sa.DateTime(timezone=True)),
    sa.Column("last_synced_at", sa.DateTime(timezone=True)),
    sa.Column("last_sync", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Index("ix_mailboxes_due", "next_sync_at", postgresql_where=sa.text(
        "enabled AND deleted_at IS NULL")),
    sa.Index("uq_mailboxes_address", "address", unique=True,
             postgresql_where=sa.text("deleted_at IS NULL")),
)

# Where the incremental sync of each folder stands: (UIDVALIDITY, last UID).
mailbox_folders = sa.Table(
    "mailbox_folders", metadata,
    sa.Column("mailbox_id", UUID(as_uuid=True), sa.ForeignKey("mailboxes.id"),
              primary_key=True),
    sa.Column("folder", sa.String(200), primary_key=True),
    sa.Column("uidvalidity", sa.BigInteger),
    sa.Column("last_uid", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("resyncs", sa.Integer, nullable=False, server_default="0"),
    sa.Column("synced_at", sa.DateTime(timezone=True)),
)

threads = sa.Table(
    "threads", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("subject", sa.String(998), nullable=False, server_default=""),
    sa.Column("subject_key", sa.String(998), nullable=False, server_default=""),
    sa.Column("client_id", UUID(as_uuid=True)),
    sa.Index("ix_threads_subject", "client_id", "subject_key"),
)

# One row per message, whatever mailboxes it was found in: ``key`` is the idempotency key
# (Message-ID, else sha256 of Date+From+Subject+body start).
messages = sa.Table(
    "messages", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("key", sa.String(1000), nullable=False, unique=True),
    sa.Column("message_id", sa.String(998)),
    sa.Column("subject", sa.String(998), nullable=False, server_default=""),
    sa.Column("from_address", sa.String(320)),
    sa.Column("from_name", sa.String(300), nullable=False, server_default=""),
    sa.Column("to_addresses", ARRAY(sa.String(320)), nullable=False, server_default="{}"),
    sa.Column("cc_addresses", ARRAY(sa.String(320)), nullable=False, server_default="{}"),
    sa.Column("direction", sa.String(10), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("text", sa.Text, nullable=False, server_default=""),
    sa.Column("snippet", sa.String(300), nullable=False, server_default=""),
    sa.Column("size", sa.Integer, nullable=False, server_default="0"),
    sa.Column("attachment_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("client_id", UUID(as_uuid=True)),
    sa.Column("contact_id", UUID(as_uuid=True)),
    sa.Column("deal_id", UUID(as_uuid=True)),
    sa.Column("matched_address", sa.String(320)),
    sa.Column("thread_id", UUID(as_uuid=True), nullable=False),
    sa.Column("parent_ref", sa.String(998)),
    sa.Column("root_ref", sa.String(998)),
    sa.Column("refs", ARRAY(sa.String(998)), nullable=False, server_default="{}"),
    sa.Column("mailbox_id", UUID(as_uuid=True), nullable=False),   # where it was first seen
    sa.Column("user_id", UUID(as_uuid=True)),                       # that mailbox's owner
    sa.Column("origin", sa.String(10), nullable=False),             # imap, crm
    sa.Column("sent_by", UUID(as_uuid=True)),                       # origin crm: who sent it
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_messages_client", "client_id", "sent_at"),
    sa.Index("ix_messages_thread", "thread_id", "sent_at"),
    sa.Index("ix_messages_deal", "deal_id", "sent_at"),
    sa.Index("ix_messages_sent", "sent_at", "id"),
    sa.Index("ix_messages_message_id", "message_id"),
    sa.Index("ix_messages_refs", "refs", postgresql_using="gin"),
)

# Where a message sits on the IMAP server: a locator only (UIDs change with UIDVALIDITY).
message_locations = sa.Table(
    "message_locations", metadata,
    sa.Column("mailbox_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("folder", sa.String(200), primary_key=True),
    sa.Column("uidvalidity", sa.BigInteger, primary_key=True),
    sa.Column("uid", sa.BigInteger, primary_key=True),
    sa.Column("message_pk", UUID(as_uuid=True), sa.ForeignKey("messages.id"), nullable=False),
    sa.Index("ix_locations_message", "message_pk", "mailbox_id"),
)

attachments = sa.Table(
    "attachments", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
    sa.Column("message_pk", UUID(as_uuid=True), sa.ForeignKey("messages.id"), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("filename", sa.String(500), nullable=False),
    sa.Column("content_type", sa.String(200), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.UniqueConstraint("message_pk", "position"),
)

# The clients as mail needs them (owner and department for access), from the clients' events.
client_replica = sa.Table(
    "client_replica", metadata,
    sa.Column("client_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("short_name", sa.String(300), nullable=False, server_default=""),
    sa.Column("owner_id", UUID(as_uuid=True)),
    sa.Column("department_id", UUID(as_uuid=True)),
    sa.Column("merged_into", UUID(as_uuid=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Address -> client (and contact): company e-mails from the clients' events (source "event"),
# contacts' e-mails learned by the clients' duplicate check (source "rpc"), and addresses that
# check found no one for (client_id null; looked up again after MAIL_LOOKUP_TTL_SECONDS or when a
# client changes).
address_book = sa.Table(
    "address_book", metadata,
    sa.Column("address", sa.String(320), primary_key=True),
    sa.Column("client_id", UUID(as_uuid=True)),
    sa.Column("contact_id", UUID(as_uuid=True)),
    sa.Column("source", sa.String(10), nullable=False),
    sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_address_book_client", "client_id"),
)

# Counterparty addresses that matched no one: "create contact" suggestions per mailbox.
unknown_addresses = sa.Table(
    "unknown_addresses", metadata,
    sa.Column("mailbox_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("address", sa.String(320), primary_key=True),
    sa.Column("name", sa.String(300), nullable=False, server_default=""),
    sa.Column("message_count", sa.Integer, nullable=False, server_default="1"),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_subject", sa.String(998), nullable=False, server_default=""),
)

# Deals, to resolve "[CRM-1a2b3c4d]" in a subject (deal_created / deal_updated events).
deal_replica = sa.Table(
    "deal_replica", metadata,
    sa.Column("deal_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("short_ref", sa.String(8), nullable=False, index=True),
    sa.Column("client_id", UUID(as_uuid=True)),
    sa.Column("owner_id", UUID(as_uuid=True)),
)

# Campaign e-mail (issue 13; migration 0003): one row per recipient, queued from
# ``campaign_email_requested`` and sent at the pace of the mailbox's bucket.
campaign_sends = sa.Table(
    "campaign_sends", metadata,
    sa.Column("recipient_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("campaign_id", UUID(as_uuid=True), nullable=False),
    sa.Column("mailbox_id", UUID(as_uuid=True), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("unsubscribe_url", sa.Text, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),     # queued, sending, sent, bounced, failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("claimed_until", sa.DateTime(timezone=True)),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    sa.Column("message_id", sa.String(998)),
    sa.Column("error", sa.Text),
    sa.Index("ix_campaign_sends_due", "mailbox_id", "status", "next_attempt_at"),
    sa.Index("ix_campaign_sends_message_id", "message_id"),
    sa.Index("ix_campaign_sends_email", "email"),
)

# The token bucket of each sending mailbox (CAMPAIGN_SEND_RATE_PER_MINUTE across replicas).
send_buckets = sa.Table(
    "send_buckets", metadata,
    sa.Column("mailbox_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("tokens", sa.Float, nullable=False),
    sa.Column("refilled_at", sa.DateTime(timezone=True), nullable=False),
)
