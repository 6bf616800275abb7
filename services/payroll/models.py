"""Tables of the payroll service (its own database; no other service reads them)."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from crm_platform.organisation import departments_table, staff_table

metadata = sa.MetaData()

staff = staff_table(metadata)
departments = departments_table(metadata)
_now = sa.text("now()")

# The pay scheme position of a person (no row: their role, e.g. "manager").
positions = sa.Table(
    "positions", metadata,
    sa.Column("user_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("position", sa.String(50), nullable=False),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
)

# Who owned a client from when: ERP facts go to the owner at the document date.
client_owners = sa.Table(
    "client_owners", metadata,
    sa.Column("client_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("valid_from", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("owner_id", UUID(as_uuid=True)),
    sa.Column("department_id", UUID(as_uuid=True)),
)

client_aliases = sa.Table(
    "client_aliases", metadata,
    sa.Column("merged_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("survivor_id", UUID(as_uuid=True), nullable=False),
)

# ERP documents in their newest revision (shipments = realisations, payments).
erp_documents = sa.Table(
    "erp_documents", metadata,
    sa.Column("document_guid", UUID(as_uuid=True), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("counts", sa.Boolean, nullable=False),
    sa.Column("number", sa.String(100), nullable=False),
    sa.Column("client_id", UUID(as_uuid=True)),
    sa.Column("document_date", sa.DateTime(timezone=True), nullable=False),
    sa.Column("amount", sa.Numeric(18, 2), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
)

# One KPI fact per (kpi, source): a document's sum, a call, a meeting, a new client.
kpi_facts = sa.Table(
    "kpi_facts", metadata,
    sa.Column("kpi", sa.String(20), primary_key=True),
    sa.Column("source_key", sa.String(100), primary_key=True),
    sa.Column("user_id", UUID(as_uuid=True)),
    sa.Column("department_id", UUID(as_uuid=True)),
    sa.Column("client_id", UUID(as_uuid=True)),
    sa.Column("month", sa.Date, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("value", sa.Numeric(18, 3), nullable=False),
    sa.Column("counts", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
    sa.Index("ix_kpi_facts_user_month", "user_id", "month"),
    sa.Index("ix_kpi_facts_client", "client_id"),
)

sales_plans = sa.Table(
    "sales_plans", metadata,
    sa.Column("user_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("month", sa.Date, primary_key=True),
    sa.Column("department_id", UUID(as_uuid=True)),
    sa.Column("sales", sa.Numeric(18, 2), nullable=False),
    sa.Column("shipments", sa.Numeric(18, 3)),
    sa.Column("payments", sa.Numeric(18, 2)),
    sa.Column("new_clients", sa.Integer),
    sa.Column("calls", sa.Integer),
    sa.Column("meetings", sa.Integer),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
    sa.Column("updated_by", UUID(as_uuid=True)),
)

pay_schemes = sa.Table(
    "pay_schemes", metadata,
    sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("position", sa.String(50), nullable=False),
    sa.Column("valid_from", sa.Date, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("name", sa.String(200), nullable=False, server_default=""),
    sa.Column("definition", JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
    sa.Column("created_by", UUID(as_uuid=True)),
    sa.UniqueConstraint("position", "version", name="uq_pay_schemes_position_version"),
)

salary_documents = sa.Table(
    "salary_documents", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("user_id", UUID(as_uuid=True), nullable=False),
    sa.Column("month", sa.Date, nullable=False),
    sa.Column("department_id", UUID(as_uuid=True)),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("stale", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("scheme_id", sa.Integer, sa.ForeignKey("pay_schemes.id")),
    sa.Column("plans", JSONB, nullable=False),
    sa.Column("facts", JSONB, nullable=False),
    sa.Column("kpis", JSONB, nullable=False),
    sa.Column("lines", JSONB, nullable=False),
    sa.Column("total", sa.Numeric(18, 2), nullable=False),
    sa.Column("weighted_fulfilment", sa.Numeric(10, 2)),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("confirmed_at", sa.DateTime(timezone=True)),
    sa.Column("approved_at", sa.DateTime(timezone=True)),
    sa.Column("approved_by", UUID(as_uuid=True)),
    sa.Column("exported_at", sa.DateTime(timezone=True)),
    sa.Column("exported_by", UUID(as_uuid=True)),
    sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
    sa.UniqueConstraint("user_id", "month", name="uq_salary_documents_user_month"),
    sa.Index("ix_salary_documents_month_department", "month", "department_id"),
)

document_comments = sa.Table(
    "document_comments", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("document_id", UUID(as_uuid=True), sa.ForeignKey("salary_documents.id"),
              nullable=False, index=True),
    sa.Column("author_id", UUID(as_uuid=True), nullable=False),
    sa.Column("author_name", sa.String(300), nullable=False, server_default=""),
    sa.Column("kind", sa.String(16), nullable=False),     # comment | returned
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)
