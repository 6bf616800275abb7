"""nameko entrypoints of the payroll service: plans, KPI facts, pay schemes, salary documents and
the live KPI widgets.

* the directory's people and departments, replicated (``staff``, ``departments``);
* plans (``plans``), facts from events (``facts``), documents and their export (``documents``);
* pay schemes: versions per position, data checked by ``schemes.SchemeSchema``;
* the desk widget (``kpi_widget``), also pushed as ``kpi_changed`` whenever facts or plans move.

Config: ``CALL_MIN_TALK_SECONDS`` (0: every answered call with a client counts).
"""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from marshmallow import ValidationError
from nameko.dependency_providers import Config
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_platform.clock import utcnow
from crm_platform.errors import Forbidden, NotFound, ValidationFailed
from crm_platform.idempotency import idempotent
from crm_platform.organisation import OrganisationReplica
from crm_platform.rpc import rpc
from crm_platform.service import PersistentService

from . import store
from .documents import DocumentRpc
from .domain.months import month_of
from .facts import FactHandlers
from .models import departments, pay_schemes, positions, staff
from .payloads import WidgetSchema, dump, dump_scheme
from .plans import PlanRpc, parse_month
from .schemes import SchemeSchema, definition_of


def scheme_dict(row) -> dict:
    return {"id": row["id"], "position": row["position"], "name": row["name"],
            "valid_from": row["valid_from"], "version": row["version"],
            "created_at": row["created_at"], "created_by": row["created_by"],
            **row["definition"]}


class PayrollService(OrganisationReplica, FactHandlers, PlanRpc, DocumentRpc,
                     PersistentService):
    name = "payroll"
    staff_table = staff
    departments_table = departments

    config = Config()

    # -- pay schemes --------------------------------------------------------------------------
    @rpc
    def list_schemes(self, position: str | None = None) -> list[dict]:
        """Every version of the pay schemes (or one position's), newest first (admin, director,
        sales heads)."""
        self.caller.require("admin", "director", "sales_head")
        query = sa.select(pay_schemes).order_by(pay_schemes.c.position,
                                                pay_schemes.c.valid_from.desc(),
                                                pay_schemes.c.version.desc())
        if position:
            query = query.where(pay_schemes.c.position == position)
        with self.db.session() as session:
            return [dump_scheme(scheme_dict(r)) for r in session.execute(query).mappings()]

    @rpc
    @idempotent
    def create_scheme_version(self, data: dict) -> dict:
        """A new version of a position's scheme (admin, director), valid from the month it names.
        Documents already computed keep the version they were computed with (approved ones for
        good; drafts until they are recomputed)."""
        identity = self.caller.require("admin", "director")
        try:
            loaded = SchemeSchema().load(data)
        except ValidationError as exc:
            raise ValidationFailed("Схема оплаты не прошла проверку",
                                   fields=exc.messages) from None
        with self.db.session() as session:
            store.lock(session, f"payroll-scheme:{loaded['position']}")
            version = (session.execute(sa.select(sa.func.max(pay_schemes.c.version)).where(
                pay_schemes.c.position == loaded["position"])).scalar() or 0) + 1
            row = session.execute(sa.insert(pay_schemes).values(
                position=loaded["position"], valid_from=loaded["valid_from"], version=version,
                name=loaded["name"], definition=definition_of(loaded),
                created_by=store.as_uuid(identity.user_id)).returning(pay_schemes)
            ).mappings().one()
            return dump_scheme(scheme_dict(row))

    @rpc
    def set_position(self, user_id, position: str) -> dict:
        """Which pay scheme position a person is paid by (admin, director); by default their
        role (``manager``)."""
        self.caller.require("admin", "director")
        position = (position or "").strip()
        if not position or len(position) > 50:
            raise ValidationFailed("Укажите должность", fields={"position": ["1–50 знаков"]})
        with self.db.session() as session:
            if session.execute(sa.select(staff.c.user_id).where(
                    staff.c.user_id == store.as_uuid(user_id))).first() is None:
                raise NotFound("Нет такого сотрудника")
            values = {"position": position, "changed_at": utcnow()}
            session.execute(pg_insert(positions).values(user_id=store.as_uuid(user_id),
                                                        **values)
                            .on_conflict_do_update(index_elements=["user_id"], set_=values))
        return {"user_id": str(user_id), "position": position}

    # -- the desk widget ----------------------------------------------------------------------
    @rpc
    def kpi_widget(self, user_id=None, month=None) -> dict:
        """The manager's KPI widget for a month (default: the caller, the current Moscow month):
        plan, fact and fulfilment per KPI, the weighted fulfilment, the pay so far, and what
        more shipment (realisations, ₽) reaches the next bonus tier. Own for a manager, the
        department's for a sales head, anyone's for a director or admin."""
        identity = self.caller.require()
        user_id = user_id or identity.user_id
        month: date = parse_month(month) if month else month_of(utcnow())
        with self.db.session() as session:
            if str(user_id) != str(identity.user_id):
                dept = store.department_of(session, user_id)
                allowed = identity.role in ("director", "admin") or (
                    identity.role == "sales_head" and dept is not None
                    and str(dept) == str(identity.department_id))
                if not allowed:
                    raise Forbidden("Нет доступа к показателям сотрудника", code="not_allowed")
            return dump(WidgetSchema, store.widget(session, user_id, month))
