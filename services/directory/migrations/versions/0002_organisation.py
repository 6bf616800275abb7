"""organisation: regions, departments, users

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, UUID

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The regions a sales department usually covers; admins add the rest with create_region.
REGIONS = [
    ("RU-MOW", "Москва"), ("RU-MOS", "Московская область"), ("RU-SPE", "Санкт-Петербург"),
    ("RU-LEN", "Ленинградская область"), ("RU-NIZ", "Нижегородская область"),
    ("RU-VLA", "Владимирская область"), ("RU-YAR", "Ярославская область"),
    ("RU-TVE", "Тверская область"), ("RU-KLU", "Калужская область"), ("RU-TUL", "Тульская область"),
    ("RU-RYA", "Рязанская область"), ("RU-VOR", "Воронежская область"),
    ("RU-BEL", "Белгородская область"), ("RU-LIP", "Липецкая область"),
    ("RU-KDA", "Краснодарский край"), ("RU-ROS", "Ростовская область"),
    ("RU-STA", "Ставропольский край"), ("RU-VGG", "Волгоградская область"),
    ("RU-TA", "Республика Татарстан"), ("RU-BA", "Республика Башкортостан"),
    ("RU-SAM", "Самарская область"), ("RU-PER", "Пермский край"),
    ("RU-UD", "Удмуртская Республика"), ("RU-SVE", "Свердловская область"),
    ("RU-CHE", "Челябинская область"), ("RU-TYU", "Тюменская область"),
    ("RU-NVS", "Новосибирская область"), ("RU-OMS", "Омская область"),
    ("RU-KEM", "Кемеровская область"), ("RU-KYA", "Красноярский край"),
    ("RU-IRK", "Иркутская область"), ("RU-PRI", "Приморский край"),
]


def upgrade():
    regions = op.create_table(
        "regions",
        sa.Column("code", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
    )
    op.bulk_insert(regions, [{"code": c, "name": n} for c, n in REGIONS])
    op.create_table(
        "departments",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("regions", ARRAY(sa.String(16)), nullable=False, server_default="{}"),
        sa.Column("head_user_id", UUID(as_uuid=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "users",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("username", sa.String(100), nullable=False, unique=True),
        sa.Column("full_name", sa.String(300), nullable=False),
        sa.Column("email", sa.String(320), unique=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("department_id", UUID(as_uuid=True), sa.ForeignKey("departments.id")),
        sa.Column("extension", sa.String(10), unique=True),
        sa.Column("mailbox", sa.String(320), unique=True),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("password_hash", sa.String(200)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "role in ('manager','sales_head','director','admin','integration')",
            name="ck_users_role"),
    )
    op.create_index("ix_users_department", "users", ["department_id"])


def downgrade():
    op.drop_table("users")
    op.drop_table("departments")
    op.drop_table("regions")
