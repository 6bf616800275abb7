"""ROI: lead sources and campaign costs

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
        "lead_sources",
        sa.Column("deal_id", sa.UUID(), nullable=False),
        sa.Column("source_kind", sa.String(30), server_default="", nullable=False),
        sa.Column("form_key", sa.String(100)),
        sa.Column("utm_source", sa.String(200)),
        sa.Column("utm_medium", sa.String(200)),
        sa.Column("utm_campaign", sa.String(200)),
        sa.Column("our_number", sa.String(20)),
        sa.Column("campaign_id", sa.UUID()),
        sa.PrimaryKeyConstraint("deal_id"),
    )
    op.create_table(
        "campaign_costs",
        sa.Column("campaign_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("budget", sa.Numeric(18, 2)),
        sa.Column("utm_campaign", sa.String(200)),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id"),
    )
    op.create_index("ix_campaign_costs_utm", "campaign_costs", ["utm_campaign"])


def downgrade():
    op.drop_index("ix_campaign_costs_utm", table_name="campaign_costs")
    op.drop_table("campaign_costs")
    op.drop_table("lead_sources")
