"""lead intake: web forms and submissions, distribution rules, absences replica, lead sources,
the form rate-limit buckets (issue 13, part A)

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSONB = postgresql.JSONB(astext_type=sa.Text())


def upgrade():
    op.add_column("deals", sa.Column("source_detail", JSONB, nullable=False,
                                     server_default=sa.text("'{}'::jsonb")))
    op.add_column("deals", sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("deals", sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_deals_escalation_scan", "deals", ["assigned_at"],
                    postgresql_where=sa.text("escalated_at IS NULL AND assigned_at IS NOT NULL"))
    op.create_table(
        "lead_forms",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("department_id", sa.UUID(), nullable=True),
        sa.Column("region", sa.String(length=16), nullable=True),
        sa.Column("allowed_origins", postgresql.ARRAY(sa.String(length=300)),
                  server_default="{}", nullable=False),
        sa.Column("consent_text_version_id", sa.UUID(), nullable=True),
        sa.Column("confirmation_email", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("mailbox_id", sa.UUID(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.UUID(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key", name="uq_lead_forms_key"),
    )
    op.create_table(
        "form_submissions",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("form_id", sa.UUID(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("spam_reason", sa.String(length=30), nullable=True),
        sa.Column("deal_id", sa.UUID(), nullable=True),
        sa.Column("data", JSONB, nullable=False),
        sa.Column("confirmation", sa.String(length=10), server_default="none", nullable=False),
        sa.Column("confirmation_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("confirmation_error", sa.String(length=500), nullable=True),
        sa.CheckConstraint("status in ('lead','spam')", name="ck_form_submissions_status"),
        sa.CheckConstraint("confirmation in ('none','pending','sent','failed')",
                           name="ck_form_submissions_confirmation"),
        sa.ForeignKeyConstraint(["form_id"], ["lead_forms.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_form_submissions_form", "form_submissions", ["form_id", "at"])
    op.create_index("ix_form_submissions_confirmation", "form_submissions", ["at"],
                    postgresql_where=sa.text("confirmation = 'pending'"))
    op.create_table(
        "distribution_settings",
        sa.Column("department_id", sa.UUID(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("mode", sa.String(length=20), server_default="round_robin", nullable=False),
        sa.Column("daily_cap", sa.Integer(), nullable=True),
        sa.Column("last_user_id", sa.UUID(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.UUID(), nullable=True),
        sa.CheckConstraint("mode in ('round_robin','least_loaded')",
                           name="ck_distribution_settings_mode"),
        sa.PrimaryKeyConstraint("department_id"),
    )
    op.create_table(
        "distribution_counts",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("count", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("user_id", "day"),
    )
    op.create_table(
        "staff_absences",
        sa.Column("absence_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("cancelled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("absence_id"),
    )
    op.create_index("ix_staff_absences_user", "staff_absences", ["user_id", "ends_on"])
    op.create_table(
        "rate_buckets",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade():
    op.drop_table("rate_buckets")
    op.drop_index("ix_staff_absences_user", table_name="staff_absences")
    op.drop_table("staff_absences")
    op.drop_table("distribution_counts")
    op.drop_table("distribution_settings")
    op.drop_index("ix_form_submissions_confirmation", table_name="form_submissions")
    op.drop_index("ix_form_submissions_form", table_name="form_submissions")
    op.drop_table("form_submissions")
    op.drop_table("lead_forms")
    op.drop_index("ix_deals_escalation_scan", table_name="deals")
    op.drop_column("deals", "escalated_at")
    op.drop_column("deals", "assigned_at")
    op.drop_column("deals", "source_detail")
