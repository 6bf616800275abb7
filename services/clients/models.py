"""Tables of the clients service (its own database; no other service reads them)."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from crm_platform.organisation import departments_table, staff_table

metadata = sa.MetaData()

STATUSES = ("potential", "active", "dormant", "lost")

clients = sa.Table(
    "clients", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("short_name", sa.String(300), nullable=False),
    sa.Column("full_name", sa.String(500)),
    sa.Column("legal_form", sa.String(20)),          # ООО, АО, ПАО, ИП, ...
    sa.Column("inn", sa.String(12)),
    sa.Column("kpp", sa.String(9)),
    sa.Column("ogrn", sa.String(15)),
    sa.Column("region", sa.String(16)),              # ISO 3166-2:RU
    sa.Column("addresses", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("phones", ARRAY(sa.String(20)), nullable=False, server_default="{}"),
    sa.Column("emails", ARRAY(sa.String(320)), nullable=False, server_default="{}"),
    sa.Column("website", sa.String(300)),
    sa.Column("industry", sa.String(200)),
    sa.Column("segment", sa.String(100)),
    sa.Column("status", sa.String(20), nullable=False, server_default="potential"),
    sa.Column("source", sa.String(100)),
    sa.Column("owner_id", UUID(as_uuid=True)),       # null: in the department pool
    sa.Column("department_id", UUID(as_uuid=True)),
    sa.Column("owned_since", sa.DateTime(timezone=True)),
    sa.Column("last_interaction_at", sa.DateTime(timezone=True)),
    sa.Column("last_owner_interaction_at", sa.DateTime(timezone=True)),
    sa.Column("last_invoice_at", sa.DateTime(timezone=True)),
    sa.Column("erp_partner_guid", UUID(as_uuid=True)),
    sa.Column("erp_counterparty_guid", UUID(as_uuid=True)),
    sa.Column("name_key", sa.String(300), nullable=False),   # normalised name for fuzzy search
    sa.Column("merged_into", UUID(as_uuid=True)),            # set on the duplicate that was merged
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", UUID(as_uuid=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", UUID(as_uuid=True)),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.CheckConstraint("status in ('potential','active','dormant','lost')",
                       name="ck_clients_status"),
)
sa.Index("ix_clients_owner", clients.c.owner_id)
sa.Index("ix_clients_department", clients.c.department_id, clients.c.status)
sa.Index("ix_clients_inn", clients.c.inn)
sa.Index("ix_clients_name_key", clients.c.name_key)
sa.Index("ix_clients_erp_counterparty", clients.c.erp_counterparty_guid)
sa.Index("ix_clients_name_trgm", clients.c.name_key, postgresql_using="gin",
         postgresql_ops={"name_key": "gin_trgm_ops"})

contacts = sa.Table(
    "contacts", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("client_id", UUID(as_uuid=True), sa.ForeignKey("clients.id"), nullable=False),
    sa.Column("full_name", sa.String(300), nullable=False),
    sa.Column("position", sa.String(200)),
    sa.Column("phones", ARRAY(sa.String(20)), nullable=False, server_default="{}"),
    sa.Column("emails", ARRAY(sa.String(320)), nullable=False, server_default="{}"),
    sa.Column("messengers", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("notes", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", UUID(as_uuid=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", UUID(as_uuid=True)),
)
sa.Index("ix_contacts_client", contacts.c.client_id)

# Exact keys of the duplicate check: inn, inn_kpp, phone, email -> the client (and contact).
identifiers = sa.Table(
    "identifiers", metadata,
    sa.Column("kind", sa.String(10), primary_key=True),
    sa.Column("value", sa.String(320), primary_key=True),
    sa.Column("client_id", UUID(as_uuid=True), sa.ForeignKey("clients.id"), primary_key=True),
    sa.Column("contact_id", UUID(as_uuid=True)),
)
sa.Index("ix_identifiers_client", identifiers.c.client_id)

ownership_history = sa.Table(
    "ownership_history", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("client_id", UUID(as_uuid=True), nullable=False),
    sa.Column("owner_id", UUID(as_uuid=True)),
    sa.Column("department_id", UUID(as_uuid=True)),
    sa.Column("since", sa.DateTime(timezone=True), nullable=False),
    sa.Column("until", sa.DateTime(timezone=True)),
    sa.Column("reason", sa.String(30), nullable=False),  # created, transfer, release, claim, ...
    sa.Column("changed_by", UUID(as_uuid=True)),
)
sa.Index("ix_ownership_history_client", ownership_history.c.client_id, ownership_history.c.since)

# Append-only (a trigger refuses UPDATE and DELETE): who read or changed what, when.
audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("user_id", UUID(as_uuid=True)),
    sa.Column("role", sa.String(20)),
    sa.Column("action", sa.String(30), nullable=False),
    sa.Column("client_id", UUID(as_uuid=True)),
    sa.Column("fields", ARRAY(sa.String(100)), nullable=False, server_default="{}"),
    sa.Column("details", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
)
sa.Index("ix_audit_client", audit_log.c.client_id, audit_log.c.at)
sa.Index("ix_audit_user_action", audit_log.c.user_id, audit_log.c.action, audit_log.c.at)

# Replicas of the organisation, from the directory's events.
staff = staff_table(metadata)
departments = departments_table(metadata)

# ERP documents that bear on a client (invoices, shipments): last invoice, revenue, ABC.
erp_documents = sa.Table(
    "erp_documents", metadata,
    sa.Column("guid", UUID(as_uuid=True), primary_key=True),
    sa.Column("client_id", UUID(as_uuid=True), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),     # invoice, shipment
    sa.Column("doc_date", sa.DateTime(timezone=True), nullable=False),
    sa.Column("amount", sa.Numeric(18, 2), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),       # false once un-posted or deleted
)
sa.Index("ix_erp_documents_client", erp_documents.c.client_id, erp_documents.c.kind,
         erp_documents.c.doc_date)

segments = sa.Table(
    "segments", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("owner_user_id", UUID(as_uuid=True), nullable=False),
    sa.Column("filter", JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

campaigns = sa.Table(
    "campaigns", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("filter", JSONB, nullable=False),
    sa.Column("created_by", UUID(as_uuid=True), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
    # general campaigns (issue 13; migration 0005): reactivation call lists are goal
    # "reactivation", channel "calls", started running by ``start_campaign``.
    sa.Column("goal", sa.String(20), nullable=False, server_default="reactivation"),
    sa.Column("state", sa.String(20), nullable=False, server_default="running"),
    sa.Column("channels", ARRAY(sa.String(10)), nullable=False, server_default="{calls}"),
    sa.Column("budget", sa.Numeric(18, 2)),
    sa.Column("starts_at", sa.DateTime(timezone=True)),
    sa.Column("ends_at", sa.DateTime(timezone=True)),
    sa.Column("segment_id", UUID(as_uuid=True)),
    sa.Column("mailbox_id", UUID(as_uuid=True)),
    sa.Column("email_subject", sa.Text),
    sa.Column("email_body", sa.Text),
    sa.Column("utm_campaign", sa.String(200)),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)
# One row per e-mail address of a campaign (issue 13; migration 0005).
campaign_recipients = sa.Table(
    "campaign_recipients", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("campaign_id", UUID(as_uuid=True), sa.ForeignKey("campaigns.id"), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("client_id", UUID(as_uuid=True)),
    sa.Column("contact_id", UUID(as_uuid=True)),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("message_id", sa.String(998)),
    sa.Column("reason", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("campaign_id", "email", name="uq_campaign_recipients_email"),
    sa.CheckConstraint("status in ('queued','sent','bounced','unsubscribed',"
                       "'skipped_no_consent')", name="ck_campaign_recipients_status"),
)
sa.Index("ix_campaign_recipients_email", campaign_recipients.c.email)

# Personal data requests (152-FZ; issue 13, migration 0005): who asked for what about whom (the
# person masked), and how each service answered. The exported data itself is not kept.
privacy_requests = sa.Table(
    "privacy_requests", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("kind", sa.String(10), nullable=False),                 # export, erase
    sa.Column("person_masked", sa.String(500), nullable=False),
    sa.Column("requested_by", UUID(as_uuid=True), nullable=False),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("status", sa.String(10), nullable=False),               # running, done, partial
    sa.Column("services", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("reason", sa.Text),
)
campaign_targets = sa.Table(
    "campaign_targets", metadata,
    sa.Column("campaign_id", UUID(as_uuid=True), sa.ForeignKey("campaigns.id"), primary_key=True),
    sa.Column("client_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("owner_id", UUID(as_uuid=True)),
    sa.Column("reached_at", sa.DateTime(timezone=True)),
    sa.Column("deal_created_at", sa.DateTime(timezone=True)),
)

# Card reads and exports per user and day: quotas and the unusual-reading alert.
usage_counters = sa.Table(
    "usage_counters", metadata,
    sa.Column("user_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("kind", sa.String(20), primary_key=True),   # card_read, export
    sa.Column("count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("alerted", sa.Boolean, nullable=False, server_default=sa.false()),
)

# -- consents (issue 13 A; migration 0004): append-only, a withdrawal sets withdrawn_at ----------
consent_texts = sa.Table(
    "consent_texts", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("purpose", sa.String(30), nullable=False),
    sa.Column("version", sa.String(30), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", UUID(as_uuid=True)),
    sa.CheckConstraint("purpose in ('processing','marketing_email','marketing_calls')",
                       name="ck_consent_texts_purpose"),
    sa.UniqueConstraint("purpose", "version", name="uq_consent_texts_purpose_version"),
)
consents = sa.Table(
    "consents", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("email", sa.String(320)),
    sa.Column("phone", sa.String(20)),
    sa.Column("client_id", UUID(as_uuid=True)),
    sa.Column("contact_id", UUID(as_uuid=True)),
    sa.Column("purpose", sa.String(30), nullable=False),
    sa.Column("text_version_id", UUID(as_uuid=True), sa.ForeignKey("consent_texts.id")),
    sa.Column("given_at", sa.DateTime(timezone=True)),      # null: an opt-out with no grant
    sa.Column("source", sa.String(30)),
    sa.Column("ip", sa.String(45)),
    sa.Column("user_agent", sa.String(500)),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("recorded_by", UUID(as_uuid=True)),
    sa.Column("withdrawn_at", sa.DateTime(timezone=True)),
    sa.Column("withdrawal_source", sa.String(30)),
    sa.Column("withdrawal_reason", sa.String(500)),
    sa.CheckConstraint("email is not null or phone is not null", name="ck_consents_person"),
    sa.CheckConstraint("given_at is not null or withdrawn_at is not null",
                       name="ck_consents_state"),
    sa.CheckConstraint("purpose in ('processing','marketing_email','marketing_calls')",
                       name="ck_consents_purpose"),
)
sa.Index("ix_consents_email", consents.c.email, consents.c.purpose, consents.c.id)
sa.Index("ix_consents_phone", consents.c.phone, consents.c.purpose, consents.c.id)
sa.Index("ix_consents_client", consents.c.client_id)
