"""consent store: consent text versions and consents (152-FZ processing, marketing e-mail/calls)

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "consent_texts",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("purpose", sa.String(length=30), nullable=False),
        sa.Column("version", sa.String(length=30), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.UUID(), nullable=True),
        sa.CheckConstraint("purpose in ('processing','marketing_email','marketing_calls')",
                           name="ck_consent_texts_purpose"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("purpose", "version", name="uq_consent_texts_purpose_version"),
    )
    op.create_table(
        "consents",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("client_id", sa.UUID(), nullable=True),
        sa.Column("contact_id", sa.UUID(), nullable=True),
        sa.Column("purpose", sa.String(length=30), nullable=False),
        sa.Column("text_version_id", sa.UUID(), nullable=True),
        sa.Column("given_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source", sa.String(length=30), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=500), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.UUID(), nullable=True),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawal_source", sa.String(length=30), nullable=True),
        sa.Column("withdrawal_reason", sa.String(length=500), nullable=True),
        sa.CheckConstraint("email is not null or phone is not null", name="ck_consents_person"),
        sa.CheckConstraint("given_at is not null or withdrawn_at is not null",
                           name="ck_consents_state"),
        sa.CheckConstraint("purpose in ('processing','marketing_email','marketing_calls')",
                           name="ck_consents_purpose"),
        sa.ForeignKeyConstraint(["text_version_id"], ["consent_texts.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_consents_email", "consents", ["email", "purpose", "id"])
    op.create_index("ix_consents_phone", "consents", ["phone", "purpose", "id"])
    op.create_index("ix_consents_client", "consents", ["client_id"])


def downgrade():
    op.drop_index("ix_consents_client", table_name="consents")
    op.drop_index("ix_consents_phone", table_name="consents")
    op.drop_index("ix_consents_email", table_name="consents")
    op.drop_table("consents")
    op.drop_table("consent_texts")
