"""calls.contact_id: the contact person whose number the call was

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("calls", sa.Column("contact_id", UUID(as_uuid=True), nullable=True))


def downgrade():
    op.drop_column("calls", "contact_id")
