"""The whole system as ``nameko run`` processes against scratch databases and a scratch RabbitMQ
vhost — never the demo's ``crm_<service>`` databases or the default vhost.

    stack = Stack(secret="...")                  # a vhost; migrated scratch databases on demand
    url = stack.db("clients")                    # TestDatabases().url_for: created and migrated
    stack.start_all()                            # every service + the gateway, waits for /readyz
    stack.rss()                                  # {"clients": bytes, ...} from /proc
    stack.close(keep=False)                      # stop the processes, drop databases and vhost

Processes are started the way ``./crm up`` starts them (``nameko run --config config.yaml
module:Class``, ``CRM_DB_URL``/``CRM_AMQP_URI``/``CRM_HTTP_ADDRESS`` from the environment), each in
its own session so a stop takes its whole group, with its output in ``logs/<name>.log``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from crm_platform.config import env  # noqa: E402
from crm_platform.testing import TestDatabases, free_port, start_process  # noqa: E402

API = env("CRM_RABBIT_API_URI", "http://guest:guest@127.0.0.1:15672")
AMQP_HOST = env("CRM_BENCH_AMQP_HOST", "127.0.0.1:5672")

# Every process `./crm up` starts (scripts/common.sh SERVICES), the gateway last.
SERVICES = ("directory", "clients", "deals", "telephony", "mail", "erp_bridge", "reports",
            "payroll", "logistics")


def _api() -> tuple[str, tuple[str, str]]:
    parts = urlsplit(API)
    return f"{parts.scheme}://{parts.hostname}:{parts.port}", (parts.username, parts.password)


class Process:
    def __init__(self, name: str, environ: dict, log_path: Path, port: int):
        self.name, self.environ, self.log_path, self.port = name, environ, log_path, port
        self.popen: subprocess.Popen | None = None

    def start(self) -> None:
        self.popen = start_process(self.name, self.environ, self.log_path,
                                   ROOT / "config.yaml")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        if self.popen is None or self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited at start:\n"
                               + self.log_path.read_text(errors="replace")[-3000:])
        path = "/healthz" if self.name == "gateway" else "/readyz"
        try:
            return requests.get(self.base + path, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def rss(self) -> int | None:
        """Resident set size in bytes (VmRSS of /proc/<pid>/status), None when gone."""
        if self.popen is None:
            return None
        try:
            for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the process so far (/proc/<pid>/stat)."""
        if self.popen is None:
            return None
        try:
            fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass


class BenchPostgres:
    """A PostgreSQL server of the benchmark's own (``tools.private_infra.PrivatePostgres``:
    initdb into a temporary folder, a free port), so the measured system has the connections it
    needs whatever other work holds on the shared server (100 connections, often most of them
    taken by test suites). Configured as the shared server is (the OS package's defaults:
    fsync on, 128 MB shared buffers) except max_connections."""

    def __init__(self, max_connections: int = 300):
        from tools.private_infra import PrivatePostgres

        self.server = PrivatePostgres()
        self.server.start = self._start
        self.max_connections = max_connections

    def _start(self) -> None:
        server = self.server
        options = (f"-p {server.port} -k {server.base} -c listen_addresses=127.0.0.1 "
                   f"-c max_connections={self.max_connections}")
        server._run("pg_ctl", "-D", str(server.data), "-l", str(server.base / "server.log"),
                    "-w", "-t", "60", "-o", options, "start")

    def start(self) -> None:
        self._start()

    @property
    def admin_url(self) -> str:
        return self.server.admin_url

    def cpu_seconds(self) -> float | None:
        try:
            postmaster = int((self.server.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid, ppid = int(entry.name), int(fields[1])
            if pid == postmaster:       # its own time and that of the backends it reaped
                total += sum(int(f) for f in fields[11:15])
            elif ppid == postmaster:
                total += int(fields[11]) + int(fields[12])
        return total / tick

    def close(self) -> None:
        self.server.close()


class Stack:
    def __init__(self, secret: str, logs: Path | None = None, log=print,
                 private_pg: bool = True):
        self.secret = secret
        self.log = log
        self.logs = Path(logs or tempfile.mkdtemp(prefix="crm-bench-"))
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pg = None
        if private_pg:
            self.pg = BenchPostgres()
            self.pg.start()
            # TestDatabases, tools.infra.enable_extensions and the services read it.
            os.environ["CRM_PG_ADMIN_URL"] = self.pg.admin_url
        self.databases = TestDatabases()
        self.extra_databases: list[TestDatabases] = []
        self.vhost = f"bench_{uuid.uuid4().hex[:8]}"
        base, auth = _api()
        requests.put(f"{base}/api/vhosts/{self.vhost}", auth=auth, timeout=10).raise_for_status()
        requests.put(f"{base}/api/permissions/{self.vhost}/{auth[0]}", auth=auth, timeout=10,
                     json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
        self.processes: dict[str, Process] = {}

    @property
    def amqp_uri(self) -> str:
        return f"amqp://guest:guest@{AMQP_HOST}/{self.vhost}"

    def db(self, service: str) -> str:
        return self.databases.url_for(service)

    def scratch_db(self, service: str) -> tuple[str, TestDatabases]:
        """Another migrated database of ``service`` (dropped with the stack, or earlier with
        ``drop_scratch``)."""
        extra = TestDatabases()
        self.extra_databases.append(extra)
        return extra.url_for(service), extra

    def drop_scratch(self, extra: TestDatabases) -> None:
        extra.drop_all()
        self.extra_databases.remove(extra)

    def environ(self, name: str, **overrides) -> dict:
        port = free_port()
        environ = {**os.environ, "PYTHONPATH": str(ROOT), "CRM_AMQP_URI": self.amqp_uri,
                   "CRM_HTTP_ADDRESS": f"127.0.0.1:{port}", "CRM_JWT_SECRET": self.secret,
                   "CRM_LOG_LEVEL": "WARNING",
                   "PYTHONWARNINGS": "ignore::DeprecationWarning,ignore::UserWarning"}
        if name == "gateway":
            # As ./crm up: the gateway's workers wait on RPC replies, not on the CPU.
            environ["CRM_MAX_WORKERS"] = os.environ.get("CRM_GATEWAY_MAX_WORKERS", "100")
        else:
            environ["CRM_DB_URL"] = self.db(name)
        environ.update({k: str(v) for k, v in overrides.items()})
        return environ

    def start_all(self, names=(*SERVICES, "gateway"), timeout: float = 120, **overrides) -> None:
        for name in names:
            environ = self.environ(name, **overrides.get(name, {}))
            port = int(environ["CRM_HTTP_ADDRESS"].rsplit(":", 1)[1])
            process = Process(name, environ, self.logs / f"{name}.log", port)
            process.start()
            self.processes[name] = process
        deadline = time.monotonic() + timeout
        pending = set(self.processes)
        while pending:
            pending = {n for n in pending if not self.processes[n].ready()}
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {timeout:.0f} s: {sorted(pending)} "
                                   f"(logs in {self.logs})")
            time.sleep(0.5)

    @property
    def gateway(self) -> str:
        return self.processes["gateway"].base

    def rss(self) -> dict[str, int | None]:
        return {name: process.rss() for name, process in self.processes.items()}

    def cpu(self) -> dict[str, float | None]:
        """CPU seconds so far of every process, and of the private PostgreSQL server (its
        postmaster with the backends it reaped, plus the live ones)."""
        out = {name: process.cpu_seconds() for name, process in self.processes.items()}
        if self.pg is not None:
            out["postgres"] = self.pg.cpu_seconds()
        return out

    def stop(self) -> None:
        for process in self.processes.values():
            process.signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in self.processes.values():
            while process.alive() and time.monotonic() < deadline:
                time.sleep(0.2)
            if process.alive():
                process.signal(signal.SIGKILL)
                process.popen.wait()
        self.processes.clear()

    def queues(self) -> list[dict]:
        """The vhost's queues with their depth (the management API's view, refreshed every few
        seconds by the broker)."""
        base, auth = _api()
        return requests.get(f"{base}/api/queues/{self.vhost}", auth=auth, timeout=10,
                            params={"columns": "name,messages,messages_ready,"
                                               "messages_unacknowledged"}).json()

    def close(self, keep: bool = False) -> None:
        self.stop()
        if keep:
            self.log(f"kept databases: {self.databases.created} (vhost {self.vhost})"
                     + (f"; the private PostgreSQL keeps running in {self.pg.server.base}"
                        if self.pg else ""))
            return
        for extra in list(self.extra_databases):
            extra.drop_all()
        self.databases.drop_all()
        if self.pg is not None:
            self.pg.close()
        base, auth = _api()
        requests.delete(f"{base}/api/vhosts/{self.vhost}", auth=auth, timeout=10)


def write_org(url: str, departments: list[dict], staff: list[dict]) -> None:
    """The organisation as the directory's events would leave it in a service's replica (its
    ``staff`` and ``departments`` tables, when it keeps them)."""
    engine = sa.create_engine(url)
    try:
        names = set(sa.inspect(engine).get_table_names())
        if not {"staff", "departments"} <= names:
            return
        metadata = sa.MetaData()
        from crm_platform.organisation import departments_table, staff_table

        staff_t, departments_t = staff_table(metadata), departments_table(metadata)
        with engine.begin() as conn:
            conn.execute(sa.delete(staff_t))
            conn.execute(sa.delete(departments_t))
            conn.execute(sa.insert(departments_t), departments)
            conn.execute(sa.insert(staff_t), staff)
    finally:
        engine.dispose()


# -- statistics ------------------------------------------------------------------------------------

def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    import math

    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def machine() -> str:
    import platform

    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024 // 1024
    except OSError:
        pass
    return (f"{platform.node()} {platform.machine()} {os.cpu_count()} cores {mem} GiB, "
            f"Python {platform.python_version()}")
