"""Fault tests run against a private RabbitMQ and a private PostgreSQL (``tools.private_infra``)
that they stop, kill and restart at will, never the shared servers other suites use; the services
are real ``nameko run`` processes configured to them."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import eventlet
import pytest
import requests
import sqlalchemy as sa

from crm_platform.testing import start_process, wait_for
from tools.private_infra import PrivatePostgres, PrivateRabbit, free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def rabbit():
    with PrivateRabbit() as broker:
        yield broker


@pytest.fixture(scope="session")
def pg():
    with PrivatePostgres() as server:
        yield server


class ServiceProcess:
    """One service as ``nameko run`` against the private broker and database; ``kill()`` is a
    SIGKILL (no clean-up, unacked messages go back to the queue), ``start()`` a new process."""

    def __init__(self, name: str, amqp_uri: str, db_url: str | None, logs: Path,
                 ready_path: str = "/readyz", **env):
        self.name, self.logs, self.ready_path = name, logs, ready_path
        self.port = free_port()
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "CRM_AMQP_URI": amqp_uri,
                    "CRM_HTTP_ADDRESS": f"127.0.0.1:{self.port}",
                    "CRM_EVENT_RETRY_DELAYS_MS": "200,500,1000,2000,4000",
                    "CRM_OUTBOX_POLL_INTERVAL": "0.1",
                    "PYTHONWARNINGS": "ignore::DeprecationWarning", **env}
        if db_url:
            self.env["CRM_DB_URL"] = db_url
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self.crashes: list[str] = []     # exits nobody asked for (the watchdog restarted them)

    @property
    def log_path(self) -> Path:
        return self.logs / f"{self.name}.log"

    def start(self) -> None:
        self.starts += 1
        self.process = start_process(self.name, self.env, self.log_path,
                                     ROOT / "config.yaml")
        try:
            wait_for(lambda: self.status(self.ready_path) == 200, timeout=60, interval=0.2,
                     message=f"{self.name} {self.ready_path}")
        except AssertionError as exc:
            raise AssertionError(self.log_path.read_text()[-3000:]) from exc

    def status(self, path: str) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None
        try:
            return requests.get(f"http://127.0.0.1:{self.port}{path}", timeout=2).status_code
        except requests.RequestException:
            return None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        # Forget the process first: while we wait for it to die, the watchdog must not take the
        # exit for a crash and start a replacement (which this would then orphan).
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, sig)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def revive(self) -> None:
        """What the orchestrator does (a Deployment's restart policy): start a process that
        exited by itself again, noting why it went."""
        if self.process is not None and self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-4000:]
            reason = next((line for line in reversed(tail.splitlines())
                           if "killing" in line or "Error" in line), "exited")
            self.crashes.append(reason[:300])
            self.process = None
            self.start()


@pytest.fixture
def databases(pg):
    """``databases("deals")`` -> URL of a new migrated database of that service on the private
    server; all are dropped after the test."""
    from crm_platform.migrate import upgrade

    admin = sa.create_engine(pg.admin_url, isolation_level="AUTOCOMMIT")
    created = []

    def make(service: str) -> str:
        name = f"fault_{service}_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = pg.url(name)
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        engine.dispose()
        upgrade(service, url)
        created.append(name)
        return url

    yield make
    admin.dispose()     # its connections may be from before a restart
    if not pg.running():
        pg.start()
    with admin.connect() as conn:
        for name in created:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def vhost(rabbit):
    """A fresh vhost on the private broker for one test (its queues go with it)."""
    name = f"fault-{uuid.uuid4().hex[:8]}"
    rabbit.ctl("add_vhost", name).check_returncode()
    rabbit.ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*").check_returncode()
    yield f"{rabbit.amqp_uri.rstrip('/')}/{name}"
    if rabbit.process is None:
        rabbit.start()
    rabbit.ctl("delete_vhost", name)


@pytest.fixture
def services(tmp_path, rabbit):
    """``services.start("deals", amqp, db_url)``; every process is stopped after the test."""
    started: list[ServiceProcess] = []

    class Services:
        def start(self, name, amqp_uri, db_url=None, ready_path="/readyz",
                  **env) -> ServiceProcess:
            process = ServiceProcess(name, amqp_uri, db_url, tmp_path, ready_path, **env)
            started.append(process)
            process.start()
            return process

    def watchdog():
        while True:
            eventlet.sleep(0.5)
            for process in list(started):
                process.revive()

    guard = eventlet.spawn(watchdog)
    yield Services()
    guard.kill()
    for process in started:     # all at once: each takes a few seconds to stop
        if process.process is not None and process.process.poll() is None:
            os.killpg(process.process.pid, signal.SIGTERM)
    for process in started:
        process.stop()


def elapsed(since: float) -> float:
    return time.monotonic() - since
