"""Tables of the directory service: the organisation every other service refers to by id."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, UUID

metadata = sa.MetaData()

regions = sa.Table(
    "regions", metadata,
    sa.Column("code", sa.String(16), primary_key=True),   # ISO 3166-2:RU, e.g. RU-MOW
    sa.Column("name", sa.String(200), nullable=False),
)

departments = sa.Table(
    "departments", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("regions", ARRAY(sa.String(16)), nullable=False, server_default="{}"),
    sa.Column("head_user_id", UUID(as_uuid=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

users = sa.Table(
    "users", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("username", sa.String(100), nullable=False, unique=True),
    sa.Column("full_name", sa.String(300), nullable=False),
    sa.Column("email", sa.String(320), unique=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("department_id", UUID(as_uuid=True), sa.ForeignKey("departments.id")),
    sa.Column("extension", sa.String(10), unique=True),   # PBX extension, e.g. "101"
    sa.Column("mailbox", sa.String(320), unique=True),    # the mailbox the mail service syncs
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("password_hash", sa.String(200)),           # null: SSO only
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(
        "role in ('manager','sales_head','director','admin','integration','dispatcher','driver')",
        name="ck_users_role"),
)
