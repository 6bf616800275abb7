"""logistics roles: dispatcher and driver

Revision ID: 0003
Revises: 0002
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

OLD = "role in ('manager','sales_head','director','admin','integration')"
NEW = "role in ('manager','sales_head','director','admin','integration','dispatcher','driver')"


def upgrade():
    op.drop_constraint("ck_users_role", "users", type_="check")
    op.create_check_constraint("ck_users_role", "users", NEW)


def downgrade():
    # The old schema knows no such roles: those accounts become inactive machine accounts.
    op.execute("UPDATE users SET active = false, role = 'integration' "
               "WHERE role IN ('dispatcher', 'driver')")
    op.drop_constraint("ck_users_role", "users", type_="check")
    op.create_check_constraint("ck_users_role", "users", OLD)
