"""The telephony service with the real clients and deals services beside it (each on its own
database, the same organisation replicated into all three), over the real RabbitMQ.

The organisation is seeded into the clients' and deals' replicas directly and reaches telephony
the way the directory would send it: ``user_changed`` (with the extensions) and
``department_changed`` events. A known client (a company phone and a contact's mobile) is created
through the clients service's ``create_client`` RPC, so its events flow to deals as in life."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from crm_platform.organisation import departments_table, staff_table
from crm_platform.testing import ReplicatedOrg, ServiceCaller, SqlReader, publish_events, wait_for
from services.clients.service import ClientsService
from services.deals.service import DealsService
from services.telephony.service import TelephonyService

EXTENSIONS = {"m.ural.1": "101", "m.ural.2": "102", "m.volga.1": "103"}
MANGO_KEY, MANGO_SALT = "mango-api-key-123", "mango-api-salt-456"
ZADARMA_SECRET = "zadarma-secret-789"


def directory_events(org: ReplicatedOrg) -> list[tuple[str, str, dict]]:
    metadata = sa.MetaData()
    staff, departments = staff_table(metadata), departments_table(metadata)
    items = []
    with org.engine.connect() as conn:
        for d in conn.execute(sa.select(departments)).mappings():
            items.append(("directory", "department_changed", {
                "department_id": d["department_id"], "name": d["name"],
                "head_user_id": d["head_user_id"], "regions": list(d["regions"])}))
        usernames = {p["user_id"]: name for name, p in org.people.items()}
        for p in conn.execute(sa.select(staff)).mappings():
            username = usernames[str(p["user_id"])]
            items.append(("directory", "user_changed", {
                "user_id": p["user_id"], "username": username, "full_name": p["full_name"],
                "role": p["role"], "department_id": p["department_id"], "active": p["active"],
                "extension": EXTENSIONS.get(username)}))
    return items


@dataclass
class Crm:
    org: ReplicatedOrg
    clients: ServiceCaller
    deals_sql: SqlReader
    tel_sql: SqlReader
    telephony: ServiceCaller
    known_client_id: str
    known_contact_id: str           # Петров, whose mobile is ``known_phone``

    def registered_events(self) -> list[dict]:
        return [r["envelope"]["payload"] for r in self.tel_sql.rows(
            "SELECT envelope FROM outbox WHERE type = 'call_registered' ORDER BY id")]

    def ringing_events(self) -> list[dict]:
        return [r["envelope"]["payload"] for r in self.tel_sql.rows(
            "SELECT envelope FROM outbox WHERE type = 'call_ringing' ORDER BY id")]

    def call(self, key: str):
        return self.tel_sql.rows("SELECT * FROM calls WHERE key = :k", k=key)[0]

    def call_leads(self) -> list:
        return self.deals_sql.rows(
            "SELECT * FROM deals WHERE source = 'call' AND closed_at IS NULL ORDER BY created_at")

    def callback_tasks(self) -> list:
        return self.deals_sql.rows(
            "SELECT * FROM tasks WHERE kind = 'callback' AND status = 'open' ORDER BY id")

    def snapshot(self) -> dict:
        return {"calls": self.tel_sql.count("calls"),
                "registered": len(self.registered_events()),
                "ringing": len(self.ringing_events()),
                "legs": self.tel_sql.count("mango_legs"),
                "zadarma": self.tel_sql.count("zadarma_events"),
                "deals": self.deals_sql.count("deals"),
                "tasks": self.deals_sql.count("tasks")}


@pytest.fixture
def start_crm(service_db, service_config, container_factory, rabbit_config):
    """``start_crm(known_phone, **telephony_config)``: the three services running, the
    organisation everywhere, a client of m.ural.1 whose contact has ``known_phone``."""
    readers: list[SqlReader] = []

    def start(known_phone: str, **telephony_overrides) -> Crm:
        clients_db, deals_db, tel_db = (service_db("clients"), service_db("deals"),
                                        service_db("telephony"))
        org = ReplicatedOrg(clients_db)
        org.copy_to(deals_db)
        deals_sql, tel_sql = SqlReader(deals_db), SqlReader(tel_db)
        readers.extend([org, deals_sql, tel_sql])

        clients = container_factory(ClientsService, service_config(db_url=clients_db))
        deals = container_factory(DealsService, service_config(
            db_url=deals_db, REACTION_SCAN_SECONDS=0, NO_INTERACTION_DAYS=30,
            CALLBACK_MINUTES=30, EVENT_BATCH_MAX_WAIT_MS=20))
        tel_config = {"MANGO_API_KEY": MANGO_KEY, "MANGO_API_SALT": MANGO_SALT,
                      "ZADARMA_SECRET": ZADARMA_SECRET, "AMI_HOST": "",
                      "AMI_GRACE_SECONDS": 1, **telephony_overrides}
        telephony = container_factory(TelephonyService, service_config(db_url=tel_db,
                                                                       **tel_config))
        for container in (clients, deals, telephony):
            container.start()

        events = directory_events(org)
        publish_events(rabbit_config["AMQP_URI"], events)
        wait_for(lambda: tel_sql.count("processed_events") == len(events),
                 message="the directory's events in telephony")

        svc = ServiceCaller(clients, org)
        created = svc.create_client(
            {"short_name": "ООО «Кровля-Известная»", "phones": ["+7 343 222-33-44"]},
            contacts=[{"full_name": "Петров Пётр Петрович", "phones": [known_phone]}])["client"]
        wait_for(lambda: deals_sql.scalar(
            "SELECT count(*) FROM client_replica WHERE client_id = :c", c=created["id"]),
            message="the client in the deals service")
        return Crm(org, svc, deals_sql, tel_sql, ServiceCaller(telephony, org, None),
                   created["id"], created["contacts"][0]["id"])

    yield start
    for reader in readers:
        reader.dispose()
