"""client timeline: one feed per client for the client card (issue 14)

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSONB = postgresql.JSONB(astext_type=sa.Text())


def upgrade():
    op.create_table(
        "client_timeline",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("client_id", sa.UUID(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=False),
        sa.Column("deal_id", sa.UUID(), nullable=True),
        sa.Column("data", JSONB, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_id", "kind", "ref", name="ux_client_timeline_ref"),
    )
    op.create_index("ix_client_timeline_client_at", "client_timeline",
                    ["client_id", sa.text("at DESC"), sa.text("id DESC")])


def downgrade():
    op.drop_index("ix_client_timeline_client_at", table_name="client_timeline")
    op.drop_table("client_timeline")
