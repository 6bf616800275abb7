"""Tables of the deals service (its own database; no other service reads them)."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from crm_platform.organisation import departments_table, staff_table

metadata = sa.MetaData()

MONEY = sa.Numeric(15, 2)
QUANTITY = sa.Numeric(14, 3)

# -- replicas of other services' facts (kept from their events) -----------------------------------

staff = staff_table(metadata)
departments = departments_table(metadata)

client_replica = sa.Table(
    "client_replica", metadata,
    sa.Column("client_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("short_name", sa.String(300), nullable=False),
    sa.Column("owner_id", UUID(as_uuid=True)),
    sa.Column("department_id", UUID(as_uuid=True)),
    sa.Column("region", sa.String(16)),
    sa.Column("status", sa.String(20)),
    sa.Column("erp_counterparty_guid", UUID(as_uuid=True)),
    sa.Column("merged_into", UUID(as_uuid=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # Calls, e-mails, notes, tasks done, deals moved: the last time anyone touched the client.
    sa.Column("last_interaction_at", sa.DateTime(timezone=True)),
    # When the "no interaction for N days" task was last raised (not again until it is touched).
    sa.Column("reminded_at", sa.DateTime(timezone=True)),
)
sa.Index("ix_client_replica_counterparty", client_replica.c.erp_counterparty_guid)
sa.Index("ix_client_replica_owner_interaction", client_replica.c.owner_id,
         client_replica.c.last_interaction_at)

sales_plans = sa.Table(
    "sales_plans", metadata,
    sa.Column("user_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("month", sa.Date, primary_key=True),
    sa.Column("department_id", UUID(as_uuid=True)),
    sa.Column("sales_amount", MONEY, nullable=False),
)

# -- the funnel -----------------------------------------------------------------------------------

funnels = sa.Table(
    "funnels", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("is_default", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("stages", JSONB, nullable=False),
    # Nightly: per stage {"limit_hours", "samples", "win_rate", "win_samples"} from 12 months.
    sa.Column("learned", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("learned_at", sa.DateTime(timezone=True)),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", UUID(as_uuid=True)),
)
sa.Index("ux_funnels_default", funnels.c.is_default, unique=True,
         postgresql_where=funnels.c.is_default)

deals = sa.Table(
    "deals", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("funnel_id", UUID(as_uuid=True), sa.ForeignKey("funnels.id"), nullable=False),
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("client_id", UUID(as_uuid=True)),     # null: a lead not qualified yet
    # A lead without a client: what we know of who asked (name, company, inn, phone, email).
    sa.Column("lead", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("lead_phone", sa.String(20)),
    sa.Column("lead_email", sa.String(320)),
    sa.Column("owner_id", UUID(as_uuid=True), nullable=False),
    sa.Column("department_id", UUID(as_uuid=True)),
    sa.Column("region", sa.String(16)),
    sa.Column("source", sa.String(30), nullable=False),
    sa.Column("amount", MONEY),                       # potential sum, RUB
    sa.Column("volume_m2", QUANTITY),
    sa.Column("volume_tonnes", QUANTITY),
    sa.Column("volume_pieces", QUANTITY),
    sa.Column("product_groups", ARRAY(sa.String(100)), nullable=False, server_default="{}"),
    sa.Column("expected_close_date", sa.Date),
    sa.Column("probability", sa.Integer),             # null: the stage's default
    sa.Column("notes", sa.Text, nullable=False, server_default=""),
    sa.Column("manual_stage", sa.String(40), nullable=False),
    sa.Column("stage", sa.String(40), nullable=False),
    sa.Column("lost_reason", sa.String(500)),
    sa.Column("stage_entered_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("stage_deadline_at", sa.DateTime(timezone=True)),
    sa.Column("stalled_at", sa.DateTime(timezone=True)),
    sa.Column("closed_at", sa.DateTime(timezone=True)),
    sa.Column("payment_status", sa.String(20), nullable=False, server_default="unpaid"),
    sa.Column("ordered_amount", MONEY, nullable=False, server_default="0"),
    sa.Column("invoiced_amount", MONEY, nullable=False, server_default="0"),
    sa.Column("paid_amount", MONEY, nullable=False, server_default="0"),
    sa.Column("shipped_amount", MONEY, nullable=False, server_default="0"),
    sa.Column("has_orders", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", UUID(as_uuid=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    # Lead intake (migration 0003): where the lead came from (form key, UTM, line, campaign),
    # when distribution gave it to a manager, and when it escalated for not being taken.
    sa.Column("source_detail", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("assigned_at", sa.DateTime(timezone=True)),
    sa.Column("escalated_at", sa.DateTime(timezone=True)),
    # Migration 0005: put in the head's queue because nobody could take it (distribution on, no
    # manager available); escalates beyond the head when it waits there too long.
    sa.Column("queued_at", sa.DateTime(timezone=True)),
)
sa.Index("ix_deals_escalation_scan", deals.c.assigned_at,
         postgresql_where=sa.and_(deals.c.escalated_at.is_(None), deals.c.assigned_at.isnot(None)))
sa.Index("ix_deals_queue_escalation_scan", deals.c.queued_at,
         postgresql_where=sa.and_(deals.c.escalated_at.is_(None), deals.c.queued_at.isnot(None)))
sa.Index("ix_deals_owner_stage", deals.c.owner_id, deals.c.stage)
sa.Index("ix_deals_department_stage", deals.c.department_id, deals.c.stage)
sa.Index("ix_deals_client", deals.c.client_id)
sa.Index("ix_deals_created", deals.c.created_at, deals.c.id)
sa.Index("ix_deals_lead_phone", deals.c.lead_phone, postgresql_where=deals.c.lead_phone.isnot(None))
sa.Index("ix_deals_lead_email", deals.c.lead_email, postgresql_where=deals.c.lead_email.isnot(None))
sa.Index("ix_deals_deadline", deals.c.stage_deadline_at,
         postgresql_where=sa.and_(deals.c.stalled_at.is_(None), deals.c.closed_at.is_(None)))

stage_history = sa.Table(
    "stage_history", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("deal_id", UUID(as_uuid=True), sa.ForeignKey("deals.id"), nullable=False),
    sa.Column("funnel_id", UUID(as_uuid=True), nullable=False),
    sa.Column("from_stage", sa.String(40)),
    sa.Column("to_stage", sa.String(40), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("left_at", sa.DateTime(timezone=True)),   # when the deal moved on
    sa.Column("cause", sa.String(10), nullable=False),  # user | erp | timer
    sa.Column("changed_by", UUID(as_uuid=True)),
    sa.Column("document_guid", UUID(as_uuid=True)),
    sa.Column("lost_reason", sa.String(500)),
)
sa.Index("ix_stage_history_deal", stage_history.c.deal_id, stage_history.c.id)
sa.Index("ix_stage_history_stage_at", stage_history.c.funnel_id, stage_history.c.to_stage,
         stage_history.c.at)

# -- ERP documents --------------------------------------------------------------------------------

erp_documents = sa.Table(
    "erp_documents", metadata,
    sa.Column("guid", UUID(as_uuid=True), primary_key=True),
    sa.Column("kind", sa.String(10), nullable=False),       # order | invoice | shipment | payment
    sa.Column("revision", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(10), nullable=False),      # posted | unposted | deleted
    sa.Column("amount", MONEY, nullable=False),
    sa.Column("order_guid", UUID(as_uuid=True)),
    sa.Column("allocations", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("anchors", ARRAY(UUID(as_uuid=True)), nullable=False, server_default="{}"),
    sa.Column("client_id", UUID(as_uuid=True)),
    sa.Column("counterparty_guid", UUID(as_uuid=True)),
    sa.Column("number", sa.String(100), nullable=False, server_default=""),
    sa.Column("document_date", sa.DateTime(timezone=True)),
    sa.Column("deal_id", UUID(as_uuid=True)),             # orders: the deal named in 1C
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("ix_erp_documents_anchors", erp_documents.c.anchors, postgresql_using="gin")
sa.Index("ix_erp_documents_counterparty", erp_documents.c.counterparty_guid,
         postgresql_where=erp_documents.c.client_id.is_(None))

deal_orders = sa.Table(
    "deal_orders", metadata,
    # An anchor: a customer order (or an order-less invoice/shipment) and the deal it belongs to.
    sa.Column("order_guid", UUID(as_uuid=True), primary_key=True),
    sa.Column("deal_id", UUID(as_uuid=True), sa.ForeignKey("deals.id"), nullable=False),
    sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("ix_deal_orders_deal", deal_orders.c.deal_id)

# -- tasks, the timeline, notifications ------------------------------------------------------------

tasks = sa.Table(
    "tasks", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("deal_id", UUID(as_uuid=True)),
    sa.Column("client_id", UUID(as_uuid=True)),
    sa.Column("assignee_id", UUID(as_uuid=True)),        # null: the department's queue
    sa.Column("department_id", UUID(as_uuid=True)),
    sa.Column("kind", sa.String(20), nullable=False),    # task | call | meeting | callback
    sa.Column("title", sa.String(500), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("due_at", sa.DateTime(timezone=True)),
    sa.Column("starts_at", sa.DateTime(timezone=True)),  # meetings
    sa.Column("ends_at", sa.DateTime(timezone=True)),
    sa.Column("location", sa.String(500)),
    sa.Column("status", sa.String(20), nullable=False, server_default="open"),
    sa.Column("source", sa.String(30), nullable=False),  # manual | stage | stalled | ...
    sa.Column("stage", sa.String(40)),                   # the stage whose template made it
    sa.Column("on_leave", sa.String(10)),                # close | keep (stage tasks)
    sa.Column("external_number", sa.String(32)),         # call-backs to unknown numbers
    sa.Column("result", sa.Text),
    sa.Column("overdue_at", sa.DateTime(timezone=True)),  # when task_overdue was raised
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", UUID(as_uuid=True)),
    sa.Column("completed_at", sa.DateTime(timezone=True)),
    sa.Column("completed_by", UUID(as_uuid=True)),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
)
sa.Index("ix_tasks_assignee", tasks.c.assignee_id, tasks.c.status, tasks.c.due_at)
sa.Index("ix_tasks_department", tasks.c.department_id, tasks.c.due_at)
sa.Index("ix_tasks_deal", tasks.c.deal_id)
sa.Index("ix_tasks_client", tasks.c.client_id, tasks.c.status)
sa.Index("ix_tasks_overdue_scan", tasks.c.due_at,
         postgresql_where=sa.and_(tasks.c.status == "open", tasks.c.overdue_at.is_(None)))

timeline = sa.Table(
    "timeline", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("deal_id", UUID(as_uuid=True), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # stage | task | call | email | erp | note
    sa.Column("ref", sa.String(200), nullable=False),  # what it is about: its id (+ revision)
    sa.Column("data", JSONB, nullable=False),
    sa.UniqueConstraint("deal_id", "kind", "ref", name="ux_timeline_ref"),
)
sa.Index("ix_timeline_deal_at", timeline.c.deal_id, timeline.c.at, timeline.c.id)

# The client card's timeline (issue 14, migration 0004): everything that happened with a client —
# calls, e-mails, ERP documents, stage moves and tasks of its deals, deliveries, notes on the client
# itself — one row per (client, kind, ref), newest first by (at, id). ``deal_id`` names the deal an
# entry belongs to, when it belongs to one.
client_timeline = sa.Table(
    "client_timeline", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("client_id", UUID(as_uuid=True), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # call|email|erp|stage|task|note|delivery
    sa.Column("ref", sa.String(200), nullable=False),
    sa.Column("deal_id", UUID(as_uuid=True)),
    sa.Column("data", JSONB, nullable=False),
    sa.UniqueConstraint("client_id", "kind", "ref", name="ux_client_timeline_ref"),
)
sa.Index("ix_client_timeline_client_at", client_timeline.c.client_id, client_timeline.c.at.desc(),
         client_timeline.c.id.desc())

notifications = sa.Table(
    "notifications", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("user_id", UUID(as_uuid=True), nullable=False),
    sa.Column("kind", sa.String(30), nullable=False),
    sa.Column("text", sa.String(1000), nullable=False),
    sa.Column("deal_id", UUID(as_uuid=True)),
    sa.Column("task_id", UUID(as_uuid=True)),
    sa.Column("client_id", UUID(as_uuid=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("read_at", sa.DateTime(timezone=True)),
)
sa.Index("ix_notifications_user", notifications.c.user_id, notifications.c.id)

# -- settings and periodic jobs --------------------------------------------------------------------

settings = sa.Table(
    "settings", metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", JSONB, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", UUID(as_uuid=True)),
)

jobs = sa.Table(
    "jobs", metadata,
    # One row per periodic job: replicas lock it (SKIP LOCKED) so one of them runs it.
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("last_run_at", sa.DateTime(timezone=True)),
)

# -- lead intake (issue 13 A, migration 0003): forms, distribution, absences, rate limits -----

lead_forms = sa.Table(
    "lead_forms", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("key", sa.String(40), nullable=False),                  # random, public
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("department_id", UUID(as_uuid=True)),
    sa.Column("region", sa.String(16)),
    sa.Column("allowed_origins", ARRAY(sa.String(300)), nullable=False, server_default="{}"),
    sa.Column("consent_text_version_id", UUID(as_uuid=True)),
    sa.Column("confirmation_email", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("mailbox_id", UUID(as_uuid=True)),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", UUID(as_uuid=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("key", name="uq_lead_forms_key"),
)

form_submissions = sa.Table(
    "form_submissions", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("form_id", UUID(as_uuid=True), sa.ForeignKey("lead_forms.id"), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ip", sa.String(45)),
    sa.Column("status", sa.String(10), nullable=False),         # lead | spam
    sa.Column("spam_reason", sa.String(30)),                     # honeypot | too_fast | ...
    sa.Column("deal_id", UUID(as_uuid=True)),
    sa.Column("data", JSONB, nullable=False),
    sa.Column("confirmation", sa.String(10), nullable=False, server_default="none"),
    sa.Column("confirmation_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("confirmation_error", sa.String(500)),
)
sa.Index("ix_form_submissions_form", form_submissions.c.form_id, form_submissions.c.at)
sa.Index("ix_form_submissions_confirmation", form_submissions.c.at,
         postgresql_where=form_submissions.c.confirmation == "pending")

distribution_settings = sa.Table(
    "distribution_settings", metadata,
    sa.Column("department_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("mode", sa.String(20), nullable=False, server_default="round_robin"),
    sa.Column("daily_cap", sa.Integer),
    sa.Column("last_user_id", UUID(as_uuid=True)),              # the round-robin cursor
    # Managers the head took off lead distribution (not absent, just not given leads; 0005).
    sa.Column("off_duty", ARRAY(UUID(as_uuid=True)), nullable=False, server_default="{}"),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", UUID(as_uuid=True)),
)
distribution_counts = sa.Table(
    "distribution_counts", metadata,
    sa.Column("user_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("count", sa.Integer, nullable=False, server_default="0"),
)
# Replica of the directory's absences (``absence_changed``).
staff_absences = sa.Table(
    "staff_absences", metadata,
    sa.Column("absence_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("user_id", UUID(as_uuid=True), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("starts_on", sa.Date, nullable=False),
    sa.Column("ends_on", sa.Date, nullable=False),
    sa.Column("cancelled", sa.Boolean, nullable=False, server_default=sa.false()),
)
sa.Index("ix_staff_absences_user", staff_absences.c.user_id, staff_absences.c.ends_on)
rate_buckets = sa.Table(
    "rate_buckets", metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("tokens", sa.Float, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
