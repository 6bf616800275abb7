"""A service that is down behind the gateway: the caller gets a clear, retryable problem — 503
when no process of the service exists at all, 504 when its queue is there but nobody answers
(killed or stuck) — never a hanging connection or a 500."""

from __future__ import annotations

import time

import pytest
from kombu import Connection, Exchange, Queue

from gateway.service import GatewayService

from .conftest import Api

pytestmark = pytest.mark.integration


@pytest.fixture
def lone_gateway(container_factory, service_config, directory_db):
    from services.directory.service import DirectoryService

    container_factory(DirectoryService, service_config(db_url=directory_db)).start()
    config = service_config(GATEWAY_RPC_TIMEOUT_SECONDS=1)
    container_factory(GatewayService, config).start()
    api = Api(f"http://{config['WEB_SERVER_ADDRESS']}")
    yield api, config
    api.http.close()


def test_a_service_with_no_process_is_a_503_with_retry_after(lone_gateway, admin_token):
    api, _ = lone_gateway
    response = api.get("/api/v1/clients", admin_token)
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "service_unavailable"
    assert int(response.headers["Retry-After"]) > 0


def test_a_service_that_does_not_answer_is_a_504_after_the_timeout(lone_gateway, admin_token):
    api, config = lone_gateway
    # The clients service's RPC queue exists (as after a SIGKILL) but nothing consumes it.
    with Connection(config["AMQP_URI"]) as conn:
        exchange = Exchange("nameko-rpc", type="topic", durable=True)
        Queue("rpc-clients", exchange=exchange, routing_key="clients.*",
              durable=True)(conn.channel()).declare()
        started = time.monotonic()
        response = api.get("/api/v1/clients", admin_token)
        elapsed = time.monotonic() - started
        Queue("rpc-clients")(conn.channel()).delete()
    assert response.status_code == 504, response.text
    assert response.json()["code"] == "upstream_timeout"
    assert response.headers["Retry-After"] == "5"
    assert 1 <= elapsed < 10
