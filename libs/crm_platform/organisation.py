"""The organisation as other services keep it: a replica of the directory's users and departments.

Services that decide who owns or sees what (clients, deals, ...) keep the people and departments
in their own database, from the directory's ``user_changed`` / ``department_changed`` events (each
carries the whole current state, so an upsert is all it takes)::

    from crm_platform.organisation import OrganisationReplica, departments_table, staff_table

    staff = staff_table(metadata)                 # in the service's models.py
    departments = departments_table(metadata)

    class ClientsService(OrganisationReplica, PersistentService):
        staff_table = staff
        departments_table = departments
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert

from .consumer import event_handler
from .inbox import claim_event


def staff_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "staff", metadata,
        sa.Column("user_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("full_name", sa.String(300), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("department_id", UUID(as_uuid=True)),
        sa.Column("active", sa.Boolean, nullable=False),
    )


def departments_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "departments", metadata,
        sa.Column("department_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("head_user_id", UUID(as_uuid=True)),
        sa.Column("regions", ARRAY(sa.String(16)), nullable=False, server_default="{}"),
    )


class OrganisationReplica:
    """Entrypoints keeping ``staff_table`` and ``departments_table`` (class attributes of the
    service) up to date from the directory's events, idempotently."""

    staff_table: sa.Table
    departments_table: sa.Table

    def staff_values(self, payload: dict) -> dict:
        """The columns of a ``user_changed`` kept in the staff replica; a service keeping more
        (telephony: the PBX extension) extends it."""
        return {"full_name": payload["full_name"], "role": payload["role"],
                "department_id": payload["department_id"], "active": payload["active"]}

    @event_handler("directory", "user_changed")
    def handle_user_changed(self, event):
        p = event.payload
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            values = self.staff_values(p)
            session.execute(pg_insert(self.staff_table).values(user_id=p["user_id"], **values)
                            .on_conflict_do_update(index_elements=["user_id"], set_=values))

    @event_handler("directory", "department_changed")
    def handle_department_changed(self, event):
        p = event.payload
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            values = {"name": p["name"], "head_user_id": p["head_user_id"],
                      "regions": p["regions"]}
            session.execute(pg_insert(self.departments_table).values(
                department_id=p["department_id"], **values).on_conflict_do_update(
                index_elements=["department_id"], set_=values))
