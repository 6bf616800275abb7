"""The running system of the deals API tests: directory, clients, deals and the gateway in one test,
the organisation of ``test_clients_api`` built through the API (plus an integration account, as a
web form or the telephony would use), replicated to the deals service by the directory's events;
and the events of services that do not exist yet (the ERP bridge, telephony, mail, payroll),
published to the broker as their outbox relays would."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal

from crm_platform.testing import SqlReader, publish_events, wait_for
from gateway.auth import TokenAuthority
from gateway.service import GatewayService
from services.clients.service import ClientsService
from services.deals.service import DealsService
from services.directory.service import DirectoryService

from . import test_clients_api as base
from .conftest import Api

INTEGRATION = "site"          # the integration account (web forms, telephony)


class DealsOrg(base.Org):
    """``base.Org`` with the deals service: ``org.post("m.ural.1", "/api/v1/deals", json=...)``."""

    def __init__(self, api, clients_db: str, deals_db: str, tokens, amqp_uri: str):
        super().__init__(api, clients_db, tokens)
        self.deals = SqlReader(deals_db)
        self.amqp_uri = amqp_uri

    def build(self):
        super().build()
        response = self.api.post("/api/v1/users", self.tokens["admin"], json={
            "username": INTEGRATION, "full_name": "Сайт и телефония", "role": "integration"})
        assert response.status_code == 201, response.text
        user = self.users[INTEGRATION] = response.json()
        self.tokens[INTEGRATION] = self.authority.issue({
            "user_id": user["id"], "username": INTEGRATION, "full_name": user["full_name"],
            "role": "integration", "department_id": None, "regions": []})[0]
        wait_for(self.deals_replicated, timeout=20,
                 message="the organisation in the deals service")

    def deals_replicated(self) -> bool:
        staff = {str(r.user_id): (r.role, r.department_id and str(r.department_id))
                 for r in self.deals.rows("SELECT user_id, role, department_id FROM staff")}
        heads = {str(r.department_id): r.head_user_id and str(r.head_user_id)
                 for r in self.deals.rows("SELECT department_id, head_user_id FROM departments")}
        people_ok = all(staff.get(self.id(u)) == (role, dept and self.dept(dept))
                        for u, (_, role, dept) in base.PEOPLE.items())
        heads_ok = all(heads.get(self.dept(key)) == self.id(f"head.{key}")
                       for key in base.DEPARTMENTS)
        return people_ok and heads_ok and self.id(INTEGRATION) in staff

    def dispose(self):
        self.db.dispose()
        self.deals.dispose()

    # -- deals over HTTP ------------------------------------------------------------------------
    def client(self, who: str, short_name: str, **fields) -> dict:
        """A client of the base (through the clients API), owned by ``who``."""
        return self.create(who, short_name=short_name, **{"region": "RU-SVE", **fields})

    def deal(self, who: str, expect: int = 201, **body) -> dict:
        response = self.post(who, "/api/v1/deals", json=body)
        assert response.status_code == expect, response.text
        return response.json()["deal"]

    def get_deal(self, who: str, deal_id: str) -> dict:
        response = self.get(who, f"/api/v1/deals/{deal_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_deal(self, deal_id: str, who: str = "director", **expected) -> dict:
        """Poll the deal until its fields have the expected values (events are asynchronous)."""
        def matches():
            deal = self.get_deal(who, deal_id)
            return deal if all(deal.get(k) == v for k, v in expected.items()) else None

        return wait_for(matches, timeout=20, message=f"deal {deal_id} with {expected}")

    def tasks(self, who: str, **params) -> list[dict]:
        response = self.get(who, "/api/v1/tasks", params=params)
        assert response.status_code == 200, response.text
        return response.json()["items"]

    def notifications(self, who: str, **params) -> list[dict]:
        response = self.get(who, "/api/v1/notifications", params=params)
        assert response.status_code == 200, response.text
        return response.json()["items"]

    def scan(self) -> dict:
        response = self.post("admin", "/api/v1/admin/deals/scans")
        assert response.status_code == 200, response.text
        return response.json()

    # -- other services' events -----------------------------------------------------------------
    def publish(self, source: str, event_type: str, payload: dict) -> dict:
        """Publish an event of ``source`` as its outbox relay would (envelope, exchange, key)."""
        return publish_events(self.amqp_uri, [(source, event_type, payload)])[0]

    def handled(self, envelope: dict) -> bool:
        return bool(self.deals.scalar(
            "SELECT count(*) FROM processed_events WHERE event_id::text = :id",
            id=envelope["event_id"]))

    def deliver(self, source: str, event_type: str, payload: dict) -> dict:
        envelope = self.publish(source, event_type, payload)
        wait_for(lambda: self.handled(envelope), timeout=20,
                 message=f"{source}.{event_type} handled by the deals service")
        return envelope


@contextmanager
def running_deals_org(container_factory, service_config, amqp_uri: str, service_db,
                      directory_db: str, deals_config: dict | None = None, more=()):
    """Clients, deals (``deals_config`` on top of quick scan/batch settings), the services in
    ``more`` (``[(ServiceClass, config)]``), then the directory and the gateway — the consumers
    first, so their event queues exist before the directory publishes — and the organisation
    built through the API: ``with running_deals_org(...) as org: ...``."""
    clients_db, deals_db = service_db("clients"), service_db("deals")
    container_factory(ClientsService, service_config(db_url=clients_db)).start()
    container_factory(DealsService, service_config(db_url=deals_db, **{
        "REACTION_SCAN_SECONDS": 0, "EVENT_BATCH_MAX_WAIT_MS": 20, **(deals_config or {})})).start()
    for service_cls, config in more:
        container_factory(service_cls, config).start()
    container_factory(DirectoryService, service_config(db_url=directory_db)).start()
    config = service_config()
    container_factory(GatewayService, config).start()
    api = Api(f"http://{config['WEB_SERVER_ADDRESS']}")
    org = DealsOrg(api, clients_db, deals_db, TokenAuthority(secret=config["JWT_SECRET"]),
                   amqp_uri)
    try:
        org.build()
        yield org
    finally:
        api.http.close()
        org.dispose()


class ErpDocument:
    """One 1C document as the ERP bridge reports it: each new state gets the next revision."""

    def __init__(self, org: DealsOrg, kind: str, client_id: str, amount: str, at: datetime, *,
                 number: str, order_guid: str | None = None, deal_id: str | None = None):
        self.org = org
        self.kind = kind
        self.guid = str(uuid.uuid4())
        self.revision = 0
        self.payload = {
            "document_guid": self.guid, "client_id": client_id, "number": number,
            "document_date": at, "amount": Decimal(amount), "currency": "RUB",
            "order_guid": order_guid, "lines": []}
        if kind == "order":
            self.payload["deal_id"] = deal_id

    def send(self, action: str = "posted", **changes) -> dict:
        """``erp_<kind>_<action>`` with the next revision; returns the envelope."""
        self.revision += 1
        self.payload.update(changes, revision=self.revision,
                            document_version=f"v{self.revision}")
        return self.org.publish("erp_bridge", f"erp_{self.kind}_{action}", dict(self.payload))
