"""pytest fixtures for every suite (registered from the root ``conftest.py``).

Integration tests use the real RabbitMQ (a fresh vhost per test: nameko's ``rabbit_config``) and
the real PostgreSQL (one database per service per test session, migrated by alembic, emptied
before each test, dropped at the end). Unit tests use none of them.
"""

from __future__ import annotations

import os
import socket
import uuid

import pytest
import sqlalchemy as sa

from crm_platform.clock import clock

ADMIN_URL_DEFAULT = "postgresql+psycopg2://crm_admin:crm_admin@127.0.0.1:5432/postgres"
# Reference data loaded by migrations: kept when a test empties its database.
KEEP_TABLES = {"alembic_version", "regions"}


def admin_url() -> str:
    return os.environ.get("CRM_PG_ADMIN_URL") or ADMIN_URL_DEFAULT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TestDatabases:
    """Creates throw-away databases, each migrated to head for one service."""

    def __init__(self):
        self.admin = sa.create_engine(admin_url(), isolation_level="AUTOCOMMIT")
        self.created: dict[str, str] = {}

    def url_for(self, service: str) -> str:
        if service not in self.created:
            from tools.infra import enable_extensions

            from .migrate import upgrade

            name = f"crm_test_{service}_{uuid.uuid4().hex[:8]}"
            with self.admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            enable_extensions(name)
            url = sa.engine.make_url(admin_url()).set(database=name)
            url_text = url.render_as_string(hide_password=False)
            upgrade(service, url_text)
            self.created[service] = url_text
        return self.created[service]

    def blank(self, name: str, *metadatas: sa.MetaData) -> str:
        """A database with the platform tables and the given tables (tests' own services)."""
        if name not in self.created:
            from .tables import platform_metadata

            db_name = f"crm_test_{name}_{uuid.uuid4().hex[:8]}"
            with self.admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{db_name}"'))
            url = sa.engine.make_url(admin_url()).set(database=db_name)
            url_text = url.render_as_string(hide_password=False)
            engine = sa.create_engine(url_text)
            for metadata in (platform_metadata, *metadatas):
                metadata.create_all(engine)
            engine.dispose()
            self.created[name] = url_text
        return self.created[name]

    def drop_all(self):
        with self.admin.connect() as conn:
            for url in self.created.values():
                name = sa.engine.make_url(url).database
                conn.execute(sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :d AND pid <> pg_backend_pid()"), {"d": name})
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        self.admin.dispose()


def empty_database(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        tables = [t for t in sa.inspect(conn).get_table_names() if t not in KEEP_TABLES]
        if tables:
            # Replica mode skips triggers, such as the one keeping an audit log append-only.
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
            conn.execute(sa.text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE"))
    engine.dispose()


class SqlReader:
    """Reads (and, for set-ups, writes) a service's database behind its back in tests."""

    def __init__(self, url: str):
        self.engine = sa.create_engine(url)

    def scalar(self, sql: str, **params):
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    def rows(self, sql: str, **params):
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).mappings().all()

    def execute(self, sql: str, **params) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text(sql), params)

    def count(self, table: str) -> int:
        return self.scalar(f'SELECT count(*) FROM "{table}"')  # noqa: S608 - tests' own names

    def dispose(self) -> None:
        self.engine.dispose()


@pytest.fixture(scope="session")
def test_databases():
    databases = TestDatabases()
    yield databases
    databases.drop_all()


@pytest.fixture
def service_db(test_databases):
    """``service_db("directory")`` -> URL of an empty, migrated database of that service."""

    def get(service: str) -> str:
        url = test_databases.url_for(service)
        empty_database(url)
        return url

    return get


@pytest.fixture
def service_config(rabbit_config):
    """A nameko config for one service under test: the test vhost, a free web port, short retry
    delays. ``service_config(db_url=...)``."""

    def make(db_url: str | None = None, **overrides) -> dict:
        config = {
            "AMQP_URI": rabbit_config["AMQP_URI"],
            "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}",
            "OUTBOX_POLL_INTERVAL": 0.05,
            "EVENT_RETRY_DELAYS_MS": "100,200",
            "JWT_SECRET": "test-secret-test-secret-test-secret",
            "LOCAL_LOGIN": True,
            "max_workers": 20,
        }
        if db_url:
            config["DB_URL"] = db_url
        config.update(overrides)
        return config

    return make


@pytest.fixture(autouse=True)
def _reset_clock():
    yield
    clock.reset()


class ReplicatedOrg(SqlReader):
    """The organisation written straight into a service's replica of it (the tables of
    ``crm_platform.organisation``), as the directory's events would: two departments (ural,
    volga) with a head and two managers each, a director, an admin, and ``extra_people``
    ((username, full name, role), no department). ``people[username]`` is the identity to call
    with; ``id(username)`` the user id."""

    def __init__(self, url: str, extra_people=()):
        from .organisation import departments_table, staff_table

        super().__init__(url)
        metadata = sa.MetaData()
        self._staff, departments = staff_table(metadata), departments_table(metadata)
        self.departments: dict = {}
        self.people: dict = {}
        with self.engine.begin() as conn:
            for key, name, regions in (("ural", "Уральский отдел", ["RU-SVE"]),
                                       ("volga", "Приволжский отдел", ["RU-TA"])):
                dept_id = uuid.uuid4()
                self.departments[key] = dept_id
                head = self._person(conn, f"head.{key}", f"Руководитель {key}", "sales_head",
                                    dept_id)
                conn.execute(sa.insert(departments).values(
                    department_id=dept_id, name=name, head_user_id=head, regions=regions))
                for n in (1, 2):
                    self._person(conn, f"m.{key}.{n}", f"Менеджер {key} {n}", "manager", dept_id)
            self._person(conn, "director", "Директор", "director", None)
            self._person(conn, "admin", "Админ", "admin", None)
            for username, full_name, role in extra_people:
                self._person(conn, username, full_name, role, None)

    def _person(self, conn, username, full_name, role, dept_id):
        user_id = uuid.uuid4()
        conn.execute(sa.insert(self._staff).values(user_id=user_id, full_name=full_name,
                                                   role=role, department_id=dept_id,
                                                   active=True))
        self.people[username] = {"user_id": str(user_id), "role": role, "username": username,
                                 "full_name": full_name,
                                 **({"department_id": str(dept_id)} if dept_id else {})}
        return user_id

    def id(self, username) -> str:
        return self.people[username]["user_id"]

    def copy_to(self, url: str) -> None:
        """The same people and departments (same ids) into another service's replica."""
        from .organisation import departments_table, staff_table

        metadata = sa.MetaData()
        staff, departments = staff_table(metadata), departments_table(metadata)
        with self.engine.connect() as src:
            people = [dict(r) for r in src.execute(sa.select(staff)).mappings()]
            depts = [dict(r) for r in src.execute(sa.select(departments)).mappings()]
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.insert(departments), depts)
                conn.execute(sa.insert(staff), people)
        finally:
            engine.dispose()


class ServiceCaller:
    """Calls a running container's RPC methods as one of ``org.people``:
    ``svc.create_client(data, as_user="head.ural")`` (default ``m.ural.1``; ``None``: no
    identity). One call at a time per method (nameko's ``entrypoint_hook``)."""

    def __init__(self, container, org, default_user: str = "m.ural.1"):
        self.container = container
        self.org = org
        self.default_user = default_user

    def call(self, method, *args, as_user: str | None = "", **kwargs):
        from nameko.testing.services import entrypoint_hook

        from .identity import IDENTITY_CONTEXT_KEY

        user = self.default_user if as_user == "" else as_user
        context = {IDENTITY_CONTEXT_KEY: self.org.people[user]} if user else {}
        with entrypoint_hook(self.container, method, context_data=context) as hook:
            return hook(*args, **kwargs)

    def __getattr__(self, method):
        return lambda *args, **kwargs: self.call(method, *args, **kwargs)


def publish_events(amqp_uri: str, items: list[tuple[str, str, dict]]) -> list[dict]:
    """Publish other services' events as their outbox relays would: each (source, type,
    payload) checked against its contract, as an envelope on ``<source>.events`` with the type as
    routing key. Returns the envelopes (for ``event_id``)."""
    import json

    from kombu import Connection, Exchange

    from .contracts import make_envelope

    envelopes = []
    with Connection(amqp_uri) as conn:
        producer = conn.Producer()
        for source, event_type, payload in items:
            envelope = make_envelope(source, event_type, payload)
            producer.publish(
                json.dumps(envelope), exchange=Exchange(f"{source}.events", "topic",
                                                        durable=True),
                routing_key=event_type, content_type="application/json", declare=[],
                delivery_mode=2)
            envelopes.append(envelope)
    return envelopes


def wait_for(predicate, *, timeout: float = 15.0, interval: float = 0.05, message: str = ""):
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    import time

    import eventlet

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")
        eventlet.sleep(interval)


def start_process(name: str, env: dict, log_path, config_path):
    """``nameko run`` of one service (or the gateway) as its own process — as a Deployment runs
    it — writing to ``log_path``, in its own session (so a test can kill its whole group).
    ``name`` is ``gateway`` or a package under ``services/`` (class ``<Name>Service``)."""
    import subprocess
    import sys
    from pathlib import Path

    module = "gateway.service" if name == "gateway" else f"services.{name}.service"
    cls = "".join(part.capitalize() for part in name.split("_")) + "Service"
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "nameko", "run", "--config", str(config_path),
             f"{module}:{cls}"],
            cwd=Path(config_path).resolve().parent, env=env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
