"""A running clients service on its own migrated database, with the organisation replicated into
it (as the directory's events would), and callers of every role."""

from __future__ import annotations

import pytest

from crm_platform.testing import ReplicatedOrg, ServiceCaller
from services.clients.service import ClientsService

Org = ReplicatedOrg          # two departments with heads and managers, a director, an admin
Clients = ServiceCaller

@pytest.fixture
def clients_db(service_db):
    return service_db("clients")


@pytest.fixture
def org(clients_db):
    org = Org(clients_db)
    yield org
    org.engine.dispose()


@pytest.fixture
def clients_config(service_config, clients_db):
    return service_config(db_url=clients_db, CLIENT_RESERVATION_DAYS=30,
                          CARD_READ_ALERT_FLOOR=20, CARD_READ_ALERT_FACTOR=5)


@pytest.fixture
def svc(container_factory, clients_config, org):
    container = container_factory(ClientsService, clients_config)
    container.start()
    return Clients(container, org)
