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

# Absences (issue 13 A, migration 0004): lead distribution skips people absent on a day.
ABSENCE_KINDS = ("vacation", "sick_leave", "business_trip", "day_off", "other")
absences = sa.Table(
    "absences", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("starts_on", sa.Date, nullable=False),
    sa.Column("ends_on", sa.Date, nullable=False),
    sa.Column("note", sa.String(500)),
    sa.Column("cancelled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", UUID(as_uuid=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind in ('vacation','sick_leave','business_trip','day_off','other')",
                       name="ck_absences_kind"),
    sa.CheckConstraint("ends_on >= starts_on", name="ck_absences_dates"),
)
sa.Index("ix_absences_user", absences.c.user_id, absences.c.ends_on)
