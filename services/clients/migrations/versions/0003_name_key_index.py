"""btree indexes: exact normalised name (the blocking name check) and the 1C counterparty link

Revision ID: 0003
Revises: 0002
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_clients_name_key", "clients", ["name_key"])
    op.create_index("ix_clients_erp_counterparty", "clients", ["erp_counterparty_guid"])


def downgrade():
    op.drop_index("ix_clients_erp_counterparty", table_name="clients")
    op.drop_index("ix_clients_name_key", table_name="clients")
