"""A running deals service on its own migrated database with the organisation and some clients
replicated into it (as the directory's and clients' events would), callers of every role, and a
way to send it other services' events through the real RabbitMQ."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from crm_platform.clock import utcnow
from crm_platform.testing import ReplicatedOrg, ServiceCaller, publish_events, wait_for
from services.deals.models import client_replica
from services.deals.service import DealsService


class Org(ReplicatedOrg):
    """The replicated organisation (see crm_platform.testing) plus an integration account
    (``erp``); clients are added with ``add_client``."""

    def __init__(self, url: str):
        super().__init__(url, extra_people=[("erp", "1С", "integration")])

    def add_client(self, short_name, owner="m.ural.1", *, pool_of=None, region="RU-SVE",
                   counterparty_guid=None, **fields) -> str:
        if owner is not None:
            owner_id = self.people[owner]["user_id"]
            department_id = self.people[owner].get("department_id")
        else:
            owner_id, department_id = None, self.departments[pool_of]
        client_id = uuid.uuid4()
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(sa.insert(client_replica).values(
                client_id=client_id, short_name=short_name, owner_id=owner_id,
                department_id=department_id, region=region, status="active",
                erp_counterparty_guid=counterparty_guid, created_at=now,
                last_interaction_at=now, **fields))
        return str(client_id)


Deals = ServiceCaller


class Bus:
    """Other services' events, published to their exchanges as their outbox relays would."""

    def __init__(self, rabbit_config, org):
        self.uri = rabbit_config["AMQP_URI"]
        self.org = org

    def publish(self, source, event_type, payload) -> dict:
        return publish_events(self.uri, [(source, event_type, payload)])[0]

    def publish_many(self, items: list[tuple[str, str, dict]]) -> list[dict]:
        return publish_events(self.uri, items)

    def handled(self, *envelopes) -> bool:
        ids = [e["event_id"] for e in envelopes]
        count = self.org.scalar(
            "SELECT count(DISTINCT event_id) FROM processed_events "
            "WHERE event_id::text = ANY(:ids)",
            ids=ids)
        return count == len(set(ids))

    def deliver(self, source, event_type, payload) -> dict:
        envelope = self.publish(source, event_type, payload)
        wait_for(lambda: self.handled(envelope), message=f"{event_type} to be handled")
        return envelope

    def deliver_many(self, items) -> list[dict]:
        envelopes = self.publish_many(items)
        wait_for(lambda: self.handled(*envelopes), timeout=60,
                 message=f"{len(envelopes)} events to be handled")
        return envelopes


@pytest.fixture
def deals_db(service_db):
    return service_db("deals")


@pytest.fixture
def org(deals_db):
    org = Org(deals_db)
    yield org
    org.engine.dispose()


@pytest.fixture
def deals_config(service_config, deals_db):
    # The timer scans are driven by the tests (run_scans), not by time.
    return service_config(db_url=deals_db, REACTION_SCAN_SECONDS=0, NO_INTERACTION_DAYS=30,
                          CALLBACK_MINUTES=30, EVENT_BATCH_MAX_WAIT_MS=20)


@pytest.fixture
def svc(container_factory, deals_config, org):
    container = container_factory(DealsService, deals_config)
    container.start()
    return Deals(container, org)


@pytest.fixture
def bus(rabbit_config, org):
    return Bus(rabbit_config, org)
