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
