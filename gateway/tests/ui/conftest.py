"""The web UI in a real browser: Playwright driving Debian's Chromium (``/usr/bin/chromium``,
installed by ``ensure_chromium`` in scripts/common.sh — Playwright never downloads a browser here,
it is launched with ``executable_path``) from a child process (``run_browser``, see
browser_side.py), through the real stack: the gateway, the directory,
clients, deals, reports, payroll and the ERP bridge as containers in this process, on the real
RabbitMQ and PostgreSQL.

The organisation is the one of the gateway API tests (``gateway/tests/integration``: two
departments, ``head.ural``, ``m.ural.1`` … ``director``), built through the API; the people who
sign in through the login page get a password (``PASSWORD``). Screenshots of the main pages are
written to ``.test-results/screenshots/`` — the test artifacts.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import eventlet
import pytest
from eventlet.green import subprocess

from gateway.tests.integration.conftest import directory_db  # noqa: F401 - the fixture
from gateway.tests.integration.deals_system import running_deals_org
from services.erp_bridge.service import ErpBridgeService
from services.payroll.service import PayrollService
from services.reports.service import ReportsService

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "ui-password-1"
SIGNS_IN = ("m.ural.1", "m.ural.2", "head.ural", "director")
HERE = Path(__file__).resolve().parent
SCREENSHOTS = HERE.parents[2] / ".test-results" / "screenshots"
RUN_SECONDS = 300


@pytest.fixture
def ui(container_factory, service_config, rabbit_config, service_db, directory_db):  # noqa: F811
    """The running system with its organisation: ``ui.base_url``, ``ui.org`` (a ``DealsOrg``:
    ``ui.org.post("m.ural.1", "/api/v1/...", json=...)``), ``ui.password``."""
    more = [
        (ReportsService, service_config(db_url=service_db("reports"), EVENT_BATCH_MAX_WAIT_MS=20,
                                        REPORTS_METRICS_SECONDS=0)),
        (PayrollService, service_config(db_url=service_db("payroll"))),
        (ErpBridgeService, service_config(db_url=service_db("erp_bridge")))]
    with running_deals_org(container_factory, service_config, rabbit_config["AMQP_URI"],
                           service_db, directory_db, more=more, deals_config={
                               "NO_INTERACTION_DAYS": 30, "CALLBACK_MINUTES": 30}) as org:
        yield make_ui(org, rabbit_config["AMQP_URI"])


def make_ui(org, amqp_uri: str):
    """The UI tests' view of the running system; the people who sign in get ``PASSWORD``."""
    for username in SIGNS_IN:
        response = org.request("admin", "PUT", f"/api/v1/users/{org.id(username)}/password",
                               json={"password": PASSWORD})
        assert response.status_code == 204, response.text

    class Ui:
        pass

    Ui.base_url, Ui.password, Ui.org, Ui.amqp_uri = org.api.base_url, PASSWORD, org, amqp_uri
    return Ui


def run_browser(ui, script: str, scenario: str, config: dict | None = None,
                on_line=None, seconds: int = RUN_SECONDS) -> list[str]:
    """Run one scenario of ``gateway/tests/ui/<script>`` in a child process (see
    browser_side.py) while the stack keeps serving here (the pipe is read by a green thread).
    ``on_line(line)`` sees each line as it comes (e.g. ``RING known``: publish a call). Returns
    the ``STEP`` lines; fails the test with the child's whole output when it fails or overruns."""
    assert shutil.which(CHROMIUM), f"{CHROMIUM} is missing: run ensure_chromium (scripts/common.sh)"
    config = {"base_url": ui.base_url, "password": PASSWORD, "chromium": CHROMIUM,
              "screenshots": str(SCREENSHOTS), **(config or {})}
    child = subprocess.Popen([sys.executable, str(HERE / script), scenario, json.dumps(config)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             cwd=str(HERE))
    lines: list[str] = []
    try:
        with eventlet.Timeout(seconds):
            for line in child.stdout:
                lines.append(line.rstrip("\n"))
                if on_line is not None:
                    on_line(lines[-1])
            status = child.wait()
    except eventlet.Timeout:
        child.kill()
        child.wait()
        pytest.fail(f"the browser scenario {scenario} ran over {seconds} s:\n" + "\n".join(lines))
    assert status == 0 and lines[-1:] == ["DONE"], "\n".join(lines)
    return [line for line in lines if line.startswith("STEP ")]
