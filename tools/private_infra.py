"""Private RabbitMQ and PostgreSQL instances for tests that stop, kill and restart them (the fault
tests): started from the installed OS packages on free ports with their data in a temporary
folder, never touching the shared servers on 5672/5432 or the system configuration.

    with PrivateRabbit() as rabbit, PrivatePostgres() as pg:
        rabbit.amqp_uri, rabbit.api_uri      # amqp://guest:guest@127.0.0.1:<port>/, management
        pg.admin_url                         # postgresql+psycopg2://crm_admin@127.0.0.1:<port>/postgres
        rabbit.restart(); pg.restart()       # data kept: durable queues, persistent messages, rows
        pg.kill()                            # SIGKILL of the postmaster, then pg.start()

RabbitMQ runs as the current user (Erlang does not refuse root) with its own node name, Erlang
cookie (``HOME`` is the temporary folder, so the CLI and the node share the cookie it creates),
``rabbitmq.conf``, enabled plugins (management) and mnesia/log folders. PostgreSQL refuses root:
it runs as ``postgres`` (``runuser``) in a folder that user owns, trust authentication for the
superuser ``crm_admin`` on 127.0.0.1 only.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
# The shared node's CLI tools take their distribution ports from 35672 (its dist port + 10000).
AVOID_PORTS = set(range(35662, 35700)) | {4369, 5672, 15672, 15692, 25672, 5432}


def free_port() -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in AVOID_PORTS:
            return port


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class PrivateRabbit:
    """A RabbitMQ node of its own (``crmfault-<pid>-<n>@localhost``) with the management plugin."""

    _count = 0

    def __init__(self, base: str | Path | None = None):
        PrivateRabbit._count += 1
        self.base = Path(base or tempfile.mkdtemp(prefix="crm-rabbit-"))
        self.node = f"crmfault-{os.getpid()}-{PrivateRabbit._count}@localhost"
        self.port, self.api_port, self.dist_port = free_port(), free_port(), free_port()
        self.process: subprocess.Popen | None = None
        (self.base / "rabbitmq.conf").write_text(
            f"management.tcp.port = {self.api_port}\nmanagement.tcp.ip = 127.0.0.1\n"
            "loopback_users = none\n")
        (self.base / "enabled_plugins").write_text("[rabbitmq_management].\n")
        (self.base / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's NODENAME

    @property
    def amqp_uri(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def api_uri(self) -> str:
        return f"http://guest:guest@127.0.0.1:{self.api_port}"

    def _env(self) -> dict:
        return {**os.environ, "HOME": str(self.base), "RABBITMQ_NODENAME": self.node,
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
                "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
                "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
                "RABBITMQ_LOG_BASE": str(self.base / "log"),
                "ERL_EPMD_ADDRESS": "127.0.0.1"}

    def ctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, *args],
                              env=self._env(), capture_output=True, text=True, timeout=timeout)

    def start(self, timeout: float = 30) -> None:
        log = open(self.base / "server.out", "ab")  # noqa: SIM115 - the server's own output
        self.process = subprocess.Popen([str(RABBIT_BIN / "rabbitmq-server")], env=self._env(),
                                        cwd=self.base, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if (_port_open(self.port)
                    and self.ctl("await_startup", "--timeout", "10").returncode == 0):
                return
            time.sleep(0.3)
        raise RuntimeError(f"private RabbitMQ {self.node} did not start:\n"
                           + (self.base / "server.out").read_text()[-3000:])

    def stop(self, timeout: float = 30) -> None:
        """A clean shutdown (what a rolling restart does); durable data stays."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin")
    return Path(found[-1]).parent


def _server_user() -> str | None:
    """PostgreSQL refuses to run as root: run it as ``postgres`` (or ``nobody``)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("no unprivileged user to run PostgreSQL as")


class PrivatePostgres:
    """A PostgreSQL cluster of its own: ``initdb`` into a temporary folder, a free port, the
    socket in that folder, superuser ``crm_admin`` with trust authentication."""

    def __init__(self, base: str | Path | None = None):
        self.base = Path(base or tempfile.mkdtemp(prefix="crm-pg-"))
        self.data = self.base / "data"
        self.port = free_port()
        self.user = _server_user()
        self.bin = _pg_bin()
        if self.user:
            record = pwd.getpwnam(self.user)
            os.chown(self.base, record.pw_uid, record.pw_gid)
        self.base.chmod(0o755)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "crm_admin", "-E",
                  "UTF8", "--no-sync", "--locale=C.UTF-8")

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg2://crm_admin@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://crm_admin@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin / tool), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60,
                                cwd=self.base)
        if check and result.returncode != 0:
            raise RuntimeError(f"{tool} failed: {result.stdout}\n{result.stderr}")
        return result

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=on -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.base / "server.log"), "-w",
                  "-t", "30", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast``: clients are disconnected, open transactions roll back (a restart)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def kill(self) -> None:
        """SIGKILL of the postmaster and its backends (a crash); recovery runs on start."""
        pid_file = self.data / "postmaster.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text().split()[0])
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                  text=True).stdout.split()
        for target in [pid, *map(int, children)]:
            try:
                os.kill(target, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while _port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)
        # The killed postmaster may linger as a zombie (no init reaping it in a container): its
        # pid still "exists", so the lock files would keep a new postmaster from starting.
        pid_file.unlink(missing_ok=True)
        (self.base / f".s.PGSQL.{self.port}.lock").unlink(missing_ok=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def close(self) -> None:
        if self.running():
            self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()
