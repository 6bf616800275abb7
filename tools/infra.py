"""Infrastructure checks and provisioning used by ./crm and the tests.

    python -m tools.infra amqp-ping | rabbit-api-ping | pg-ping | tcp-ping HOST PORT
    python -m tools.infra provision            # one role and database per service (idempotent)
"""

from __future__ import annotations

import socket
import sys
from urllib.parse import urlsplit

import requests
import sqlalchemy as sa
from kombu import Connection

from crm_platform.config import amqp_uri, env
from crm_platform.migrate import SERVICES_WITH_DB

DEFAULT_ADMIN_URL = "postgresql+psycopg2://crm_admin:crm_admin@127.0.0.1:5432/postgres"


def admin_url() -> str:
    return env("CRM_PG_ADMIN_URL", DEFAULT_ADMIN_URL)


def rabbit_api_uri() -> str:
    return env("CRM_RABBIT_API_URI", "http://guest:guest@127.0.0.1:15672")


def amqp_ping() -> None:
    with Connection(amqp_uri(), connect_timeout=3) as conn:
        conn.ensure_connection(max_retries=1, timeout=3)


def rabbit_api_ping() -> None:
    parts = urlsplit(rabbit_api_uri())
    url = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}/api/overview"
    response = requests.get(url, auth=(parts.username or "guest", parts.password or "guest"),
                            timeout=3)
    response.raise_for_status()


def pg_ping() -> None:
    engine = sa.create_engine(admin_url(), connect_args={"connect_timeout": 3})
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    engine.dispose()


def tcp_ping(host: str, port: str) -> None:
    with socket.create_connection((host, int(port)), timeout=3):
        pass


def ensure_database(conn, name: str, owner: str, password: str) -> bool:
    """Create role ``owner`` and database ``name`` if missing; True when something was created."""
    created = False
    if not conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": owner}).first():
        quoted = password.replace("'", "''")  # DDL takes no bind parameters
        conn.execute(sa.text(f"CREATE ROLE \"{owner}\" LOGIN PASSWORD '{quoted}'"))
        created = True
    if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"),
                        {"d": name}).first():
        conn.execute(sa.text(f'CREATE DATABASE "{name}" OWNER "{owner}"'))
        created = True
    return created


def enable_extensions(database: str, extensions=("pg_trgm",)) -> None:
    """Extensions need a superuser; the service roles only own their schema."""
    url = sa.engine.make_url(admin_url()).set(database=database)
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for extension in extensions:
            conn.execute(sa.text(f'CREATE EXTENSION IF NOT EXISTS "{extension}"'))
    engine.dispose()


def provision() -> None:
    engine = sa.create_engine(admin_url(), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for service in SERVICES_WITH_DB:
            name = f"crm_{service}"
            if ensure_database(conn, name, name, name):
                print(f"created database {name}")
    engine.dispose()
    for service in SERVICES_WITH_DB:
        enable_extensions(f"crm_{service}")


def main(argv: list[str]) -> int:
    command, *args = argv or ["help"]
    actions = {
        "amqp-ping": amqp_ping,
        "rabbit-api-ping": rabbit_api_ping,
        "pg-ping": pg_ping,
        "tcp-ping": lambda: tcp_ping(*args),
        "provision": provision,
    }
    if command not in actions:
        print(__doc__)
        return 2
    try:
        actions[command]()
    except Exception as exc:  # noqa: BLE001 - a check reports, it does not crash
        print(f"{command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
