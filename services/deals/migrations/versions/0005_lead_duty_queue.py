"""lead distribution: managers off duty per department, leads waiting in the head's queue

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
    op.add_column("distribution_settings", sa.Column(
        "off_duty", postgresql.ARRAY(sa.UUID()), server_default="{}",
        nullable=False))
    op.add_column("deals", sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_deals_queue_escalation_scan", "deals", ["queued_at"],
                    postgresql_where=sa.text("escalated_at IS NULL AND queued_at IS NOT NULL"))


def downgrade():
    op.drop_index("ix_deals_queue_escalation_scan", table_name="deals")
    op.drop_column("deals", "queued_at")
    op.drop_column("distribution_settings", "off_duty")
