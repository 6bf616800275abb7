"""general campaigns (goal, state, channels, budget, dates, e-mail template), their recipients,
and personal data requests

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    add = lambda column: op.add_column("campaigns", column)  # noqa: E731
    add(sa.Column("goal", sa.String(20), nullable=False, server_default="reactivation"))
    add(sa.Column("state", sa.String(20), nullable=False, server_default="running"))
    add(sa.Column("channels", postgresql.ARRAY(sa.String(10)), nullable=False,
                  server_default="{calls}"))
    add(sa.Column("budget", sa.Numeric(18, 2)))
    add(sa.Column("starts_at", sa.DateTime(timezone=True)))
    add(sa.Column("ends_at", sa.DateTime(timezone=True)))
    add(sa.Column("segment_id", sa.UUID()))
    add(sa.Column("mailbox_id", sa.UUID()))
    add(sa.Column("email_subject", sa.Text()))
    add(sa.Column("email_body", sa.Text()))
    add(sa.Column("utm_campaign", sa.String(200)))
    add(sa.Column("updated_at", sa.DateTime(timezone=True)))
    op.create_table(
        "campaign_recipients",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("campaign_id", sa.UUID(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("client_id", sa.UUID()),
        sa.Column("contact_id", sa.UUID()),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("message_id", sa.String(998)),
        sa.Column("reason", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status in ('queued','sent','bounced','unsubscribed',"
                           "'skipped_no_consent')", name="ck_campaign_recipients_status"),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("campaign_id", "email", name="uq_campaign_recipients_email"),
    )
    op.create_index("ix_campaign_recipients_email", "campaign_recipients", ["email"])
    op.create_table(
        "privacy_requests",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("person_masked", sa.String(500), nullable=False),
        sa.Column("requested_by", sa.UUID(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("services", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"),
                  nullable=False),
        sa.Column("reason", sa.Text()),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade():
    op.drop_table("privacy_requests")
    op.drop_index("ix_campaign_recipients_email", table_name="campaign_recipients")
    op.drop_table("campaign_recipients")
    for name in ("updated_at", "utm_campaign", "email_body", "email_subject", "mailbox_id",
                 "segment_id", "ends_at", "starts_at", "budget", "channels", "state", "goal"):
        op.drop_column("campaigns", name)
