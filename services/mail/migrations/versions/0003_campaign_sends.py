"""campaign e-mail queue and the per-mailbox token bucket

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "campaign_sends",
        sa.Column("recipient_id", sa.UUID(), nullable=False),
        sa.Column("campaign_id", sa.UUID(), nullable=False),
        sa.Column("mailbox_id", sa.UUID(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("unsubscribe_url", sa.Text(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True)),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("message_id", sa.String(998)),
        sa.Column("error", sa.Text()),
        sa.PrimaryKeyConstraint("recipient_id"),
    )
    op.create_index("ix_campaign_sends_due", "campaign_sends",
                    ["mailbox_id", "status", "next_attempt_at"])
    op.create_index("ix_campaign_sends_message_id", "campaign_sends", ["message_id"])
    op.create_index("ix_campaign_sends_email", "campaign_sends", ["email"])
    op.create_table(
        "send_buckets",
        sa.Column("mailbox_id", sa.UUID(), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("refilled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("mailbox_id"),
    )


def downgrade():
    op.drop_table("send_buckets")
    op.drop_index("ix_campaign_sends_email", table_name="campaign_sends")
    op.drop_index("ix_campaign_sends_message_id", table_name="campaign_sends")
    op.drop_index("ix_campaign_sends_due", table_name="campaign_sends")
    op.drop_table("campaign_sends")
