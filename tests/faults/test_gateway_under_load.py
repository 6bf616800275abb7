"""The gateway under load while the service behind it restarts: a few hundred requests from
concurrent clients to the deals API while the deals process is stopped (SIGTERM) and then
SIGKILLed and started again. Every response is a success or a clear, retryable problem+json
(502/503/504, no traceback, no bare 500), none hangs past the client's timeout, and once the
service is back every request succeeds again."""

from __future__ import annotations

import signal
import time

import eventlet
import pytest
import requests

from crm_platform.testing import ReplicatedOrg, SqlReader
from gateway.auth import TokenAuthority

pytestmark = pytest.mark.integration

SECRET = "fault-tests-secret-fault-tests-secret"
CLIENT_TIMEOUT = 20
RETRYABLE = {502, 503, 504}


@pytest.fixture
def gateway_stack(vhost, databases, services):
    deals_url = databases("deals")
    org = ReplicatedOrg(deals_url)
    deals = services.start("deals", vhost, deals_url, CRM_JWT_SECRET=SECRET)
    gateway = services.start("gateway", vhost, ready_path="/healthz", CRM_JWT_SECRET=SECRET,
                             CRM_MAX_WORKERS="60")
    token, _ = TokenAuthority(SECRET).issue(org.people["director"])
    base = f"http://127.0.0.1:{gateway.port}"
    yield {"deals": deals, "gateway": gateway, "base": base, "org": org,
           "headers": {"Authorization": f"Bearer {token}"}, "sql": SqlReader(deals_url)}
    org.dispose()


def call(stack, session: requests.Session, path: str) -> tuple[int | str, float, float, str]:
    """(status, started, seconds, content type + body)."""
    started = time.monotonic()
    try:
        response = session.get(stack["base"] + path, headers=stack["headers"],
                               timeout=CLIENT_TIMEOUT)
    except requests.Timeout:
        return "timeout", started, time.monotonic() - started, ""
    except requests.RequestException as exc:
        return f"error:{type(exc).__name__}", started, time.monotonic() - started, ""
    return response.status_code, started, time.monotonic() - started, (
        response.headers.get("Content-Type", "") + "\n" + response.text[:2000])


def test_gateway_answers_clearly_while_the_service_behind_it_restarts(gateway_stack, pg):
    stack = gateway_stack
    deals = stack["deals"]
    paths = ["/api/v1/deals?limit=20", "/api/v1/funnels", "/api/v1/deals?limit=5"]
    session = requests.Session()
    assert call(stack, session, paths[0])[0] == 200

    results: list[tuple[int | str, float, float, str]] = []
    down: list[tuple[float, float]] = []     # when the service (or its database) was away

    finished: list[float] = []

    def client(n: int) -> None:
        """Requests one after another until the outages are over (and at least 15)."""
        own = requests.Session()
        i = 0
        while i < 15 or not finished or time.monotonic() < finished[0] + 1:
            results.append(call(stack, own, paths[(n + i) % len(paths)]))
            i += 1
            eventlet.sleep(0.05)

    def restarts() -> None:
        eventlet.sleep(0.5)
        since = time.monotonic()
        deals.stop()             # a rolling update: SIGTERM, in-flight work finishes
        deals.start()
        down.append((since, time.monotonic()))
        eventlet.sleep(0.5)
        since = time.monotonic()
        deals.kill(signal.SIGKILL)   # a crash mid-request: the request is redelivered
        deals.start()
        down.append((since, time.monotonic()))
        eventlet.sleep(0.5)
        since = time.monotonic()
        pg.restart()             # its database restarts: stale connections fail once (503)
        down.append((since, time.monotonic()))
        finished.append(time.monotonic())

    pool = eventlet.GreenPool(40)
    fault = eventlet.spawn(restarts)
    started = time.monotonic()
    for n in range(20):
        pool.spawn(client, n)
    pool.waitall()
    fault.wait()
    assert len(results) >= 300 and time.monotonic() - started < 90

    statuses: dict = {}
    for status, _, seconds, body in results:
        statuses[status] = statuses.get(status, 0) + 1
        assert status not in ("timeout",) and not str(status).startswith("error"), (
            status, seconds)
        assert seconds < CLIENT_TIMEOUT
        if status != 200:
            assert status in RETRYABLE, (status, body)
            assert body.startswith("application/problem+json"), body
            assert "Traceback" not in body
    print("statuses:", statuses)
    # The load did overlap each outage.
    for since, until in down:
        assert any(since <= started <= until for _, started, _, _ in results), (since, until)

    # Back to normal: every request succeeds.
    after = [call(stack, session, p)[0] for p in paths * 10]
    assert after == [200] * len(after)
