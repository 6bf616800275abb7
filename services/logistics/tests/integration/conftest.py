"""The logistics service and the real deals service beside it (each on its own database), over the
real RabbitMQ. The organisation (with a dispatcher and a driver login) is replicated into the
deals service; a client reaches both services as the clients service would send it
(``client_created``), and 1C documents as the bridge would (``erp_*`` events)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from crm_platform.clock import utcnow
from crm_platform.testing import ReplicatedOrg, ServiceCaller, SqlReader, publish_events, wait_for
from services.deals.service import DealsService
from services.logistics.service import LogisticsService

PEOPLE = [("dispatcher", "Диспетчер Петрова", "dispatcher"),
          ("driver.1", "Водитель Сидоров", "driver"), ("driver.2", "Водитель Орлов", "driver"),
          ("erp", "1С", "integration")]


@dataclass
class Documents:
    """ERP document events as the bridge emits them: each new state gets the next revision."""

    client_id: str
    revisions: dict = field(default_factory=dict)

    def event(self, kind, action, amount="100000.00", *, guid=None, order=None, lines=(),
              number="УТ-1", date=None):
        guid = guid or uuid.uuid4()
        self.revisions[guid] = self.revisions.get(guid, 0) + 1
        payload = {"document_guid": guid, "document_version": f"v{self.revisions[guid]}",
                   "revision": self.revisions[guid], "client_id": self.client_id,
                   "number": number, "document_date": date or utcnow(),
                   "amount": Decimal(amount), "order_guid": order, "lines": list(lines)}
        return ("erp_bridge", f"erp_{kind}_{action}", payload), guid


@dataclass
class Tms:
    org: ReplicatedOrg
    logistics: ServiceCaller       # as the dispatcher by default
    deals: ServiceCaller
    sql: SqlReader                 # logistics' database
    deals_sql: SqlReader
    amqp_uri: str
    client_id: str

    def publish(self, *items) -> list[dict]:
        return publish_events(self.amqp_uri, list(items))

    def handled(self, reader: SqlReader, envelopes) -> bool:
        ids = [e["event_id"] for e in envelopes]
        return reader.scalar("SELECT count(DISTINCT event_id) FROM processed_events "
                             "WHERE event_id::text = ANY(:ids)", ids=ids) == len(ids)

    def deliver(self, *items, to=("logistics", "deals")) -> list[dict]:
        envelopes = self.publish(*items)
        for name in to:
            reader = self.sql if name == "logistics" else self.deals_sql
            wait_for(lambda reader=reader: self.handled(reader, envelopes), timeout=30,
                     message=f"{len(envelopes)} events in {name}")
        return envelopes

    def events(self, event_type: str) -> list[dict]:
        return [r["envelope"]["payload"] for r in self.sql.rows(
            "SELECT envelope FROM outbox WHERE type = :t ORDER BY id", t=event_type)]

    def order_of(self, shipment_guid):
        rows = self.sql.rows("SELECT * FROM transport_orders WHERE shipment_guid = :g",
                             g=shipment_guid)
        return rows[0] if rows else None

    def relayed(self) -> None:
        """Every event logistics emitted has been published and handled by deals."""
        wait_for(lambda: self.sql.scalar(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0,
            message="the outbox relay")
        ids = [str(r["event_id"]) for r in self.sql.rows(
            "SELECT event_id FROM outbox WHERE type IN "
            "('delivery_status_changed', 'delivery_late')")]
        wait_for(lambda: self.deals_sql.scalar(
            "SELECT count(DISTINCT event_id) FROM processed_events "
            "WHERE event_id::text = ANY(:ids)", ids=ids) == len(ids), timeout=30,
            message="delivery events in deals")


@pytest.fixture
def tms(service_db, service_config, container_factory, rabbit_config, tmp_path):
    deals_db, logistics_db = service_db("deals"), service_db("logistics")
    org = ReplicatedOrg(deals_db, extra_people=PEOPLE)
    sql, deals_sql = SqlReader(logistics_db), SqlReader(deals_db)
    deals = container_factory(DealsService, service_config(
        db_url=deals_db, REACTION_SCAN_SECONDS=0, EVENT_BATCH_MAX_WAIT_MS=20))
    logistics = container_factory(LogisticsService, service_config(
        db_url=logistics_db, LATENESS_SCAN_SECONDS=0, LOGISTICS_FILES_DIR=str(tmp_path / "files"),
        DELIVERY_WINDOW_HOURS=48, BUSINESS_TIMEZONE="Europe/Moscow"))
    deals.start()
    logistics.start()
    client_id = str(uuid.uuid4())
    tms = Tms(org, ServiceCaller(logistics, org, "dispatcher"), ServiceCaller(deals, org),
              sql, deals_sql, rabbit_config["AMQP_URI"], client_id)
    tms.deliver(("clients", "client_created", {
        "client_id": client_id, "short_name": "ООО «Кровля-Урал»", "region": "RU-SVE",
        "status": "active", "owner_id": org.id("m.ural.1"),
        "department_id": org.people["m.ural.1"]["department_id"]}))
    yield tms
    for reader in (org, sql, deals_sql):
        reader.dispose()
