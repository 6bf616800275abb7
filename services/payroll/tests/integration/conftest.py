"""The payroll service running in a container on its own migrated database and a test vhost of
the real RabbitMQ; the organisation (two departments, heads, managers, a director, an admin) is
written into its replica; other services' events are published as their relays would."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from crm_platform.testing import ReplicatedOrg, ServiceCaller, SqlReader, publish_events, wait_for
from services.payroll.service import PayrollService

SCHEME = {"position": "manager", "valid_from": "2026-01-01", "name": "Менеджер",
          "fixed": "40000.00",
          "percentages": [{"kpi": "payments", "rate": "1"}],
          "bonus": {"base_kpi": "sales", "mode": "whole",
                    "tiers": [{"from_pct": "80", "rate": "1"}, {"from_pct": "100", "rate": "2"}]}}


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class Payroll:
    org: ReplicatedOrg
    sql: SqlReader
    svc: ServiceCaller
    amqp_uri: str

    def publish(self, *items) -> list[dict]:
        """Publish events and wait until payroll has handled (or knowingly skipped) them."""
        before = self.sql.count("processed_events")
        envelopes = publish_events(self.amqp_uri, list(items))
        wait_for(lambda: self.sql.count("processed_events") >= before + len(items),
                 message=f"payroll handled {[i[1] for i in items]}")
        return envelopes

    def client(self, owner: str, client_id=None, source="manual") -> str:
        client_id = client_id or str(uuid.uuid4())
        owner_id = self.org.id(owner)
        self.publish(("clients", "client_created", {
            "client_id": client_id, "short_name": "ООО «Кровля»", "status": "active",
            "owner_id": owner_id, "department_id": self.org.people[owner].get("department_id"),
            "source": source}))
        return client_id

    def erp(self, kind: str, action: str, client_id, *, guid, revision: int, amount: str,
            date: str, weight_kg: str | None = None):
        payload = {"document_guid": guid, "document_version": f"v{revision}",
                   "client_id": client_id, "number": f"РТ-{guid[:6]}",
                   "document_date": moment(date), "amount": Decimal(amount),
                   "revision": revision,
                   "lines": [{"quantity": "1", "amount": Decimal(amount),
                              "weight_kg": weight_kg}]}
        return self.publish(("erp_bridge", f"erp_{kind}_{action}", payload))

    def widget(self, user: str, month: str, as_user: str | None = None) -> dict:
        return self.svc.kpi_widget(self.org.id(user), month, as_user=as_user or user)

    def fact(self, user: str, month: str, kpi: str) -> Decimal:
        figures = {k["kpi"]: k for k in self.widget(user, month)["kpis"]}
        return Decimal(figures[kpi]["fact"])

    def outbox(self, event_type: str) -> list[dict]:
        return [r["envelope"]["payload"] for r in self.sql.rows(
            "SELECT envelope FROM outbox WHERE type = :t ORDER BY id", t=event_type)]


@pytest.fixture
def payroll(service_db, service_config, container_factory, rabbit_config):
    url = service_db("payroll")
    org = ReplicatedOrg(url)
    sql = SqlReader(url)
    container = container_factory(PayrollService, service_config(db_url=url))
    container.start()
    svc = ServiceCaller(container, org)
    svc.create_scheme_version(SCHEME, as_user="admin")
    yield Payroll(org, sql, svc, rabbit_config["AMQP_URI"])
    sql.dispose()
    org.dispose()
