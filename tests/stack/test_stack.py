"""The whole system as `./crm up` runs it: every service and the gateway as its own `nameko run`
process, on its own migrated database, in a fresh vhost; each answers /healthz, /readyz and
/metrics, and a user signs in through the gateway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from crm_platform.migrate import SERVICES_WITH_DB
from crm_platform.testing import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def class_name(service: str) -> str:
    return "".join(part.capitalize() for part in service.split("_")) + "Service"


@pytest.fixture(scope="module")
def stack(test_databases, vhost_pipeline, request, tmp_path_factory):
    amqp_base = request.config.getoption("RABBIT_AMQP_URI").rstrip("/")
    logs = tmp_path_factory.mktemp("stack-logs")
    with vhost_pipeline.get() as vhost:
        amqp = f"{amqp_base}/{vhost}"
        from services.directory.admin import ensure_admin

        ensure_admin(test_databases.url_for("directory"), "admin", "admin12345")
        processes, ports = {}, {}
        targets = [(s, f"services.{s}.service:{class_name(s)}") for s in SERVICES_WITH_DB]
        targets.append(("gateway", "gateway.service:GatewayService"))
        try:
            for name, target in targets:
                ports[name] = free_port()
                env = {**os.environ, "PYTHONPATH": str(ROOT), "CRM_AMQP_URI": amqp,
                       "CRM_HTTP_ADDRESS": f"127.0.0.1:{ports[name]}",
                       "CRM_JWT_SECRET": "stack-test-secret-0123456789"}
                if name != "gateway":
                    env["CRM_DB_URL"] = test_databases.url_for(name)
                log = open(logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
                processes[name] = subprocess.Popen(
                    [sys.executable, "-m", "nameko", "run", "--config", str(ROOT / "config.yaml"),
                     target], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True)
            yield ports, processes, logs
        finally:
            for process in processes.values():
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
            for process in processes.values():
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)


def answers(port: int, path: str) -> int | None:
    try:
        return requests.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code
    except requests.RequestException:
        return None


def test_every_service_is_alive_and_ready(stack):
    ports, processes, logs = stack
    for name, port in ports.items():
        try:
            wait_for(lambda port=port: answers(port, "/readyz") == 200, timeout=60,
                     interval=0.2, message=f"{name} /readyz")
        except AssertionError as exc:
            tail = (logs / f"{name}.log").read_text()[-3000:]
            raise AssertionError(f"{name} not ready:\n{tail}") from exc
        assert answers(port, "/healthz") == 200
        body = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).json()
        assert body == {"status": "ready", "service": name}
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        assert "crm_entrypoint_calls_total" in metrics
        assert processes[name].poll() is None


def test_a_user_signs_in_through_the_gateway(stack):
    ports, _processes, _logs = stack
    base = f"http://127.0.0.1:{ports['gateway']}"
    wait_for(lambda: answers(ports["gateway"], "/readyz") == 200, timeout=60)
    wait_for(lambda: answers(ports["directory"], "/readyz") == 200, timeout=60)
    response = requests.post(f"{base}/api/v1/auth/login",
                             json={"username": "admin", "password": "admin12345"}, timeout=10)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    me = requests.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {token}"},
                      timeout=10)
    assert me.status_code == 200
    assert me.json()["role"] == "admin"
    # Entrypoint metrics count what happened, with the outcome.
    metrics = requests.get(f"http://127.0.0.1:{ports['directory']}/metrics", timeout=2).text
    assert ('crm_entrypoint_calls_total{entrypoint="authenticate",kind="rpc",outcome="ok",'
            'service="directory"} 1.0') in metrics


def test_readiness_fails_when_the_database_is_gone(container_factory, service_config):
    from services.clients.service import ClientsService

    config = service_config(
        db_url="postgresql+psycopg2://nobody:wrong@127.0.0.1:5432/crm_no_such_database")
    container = container_factory(ClientsService, config)
    container.start()
    port = int(config["WEB_SERVER_ADDRESS"].rsplit(":", 1)[1])
    assert answers(port, "/healthz") == 200
    response = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
    assert response.status_code == 503
    assert "postgresql" in response.json()["problems"]
