"""Alembic, one migration history per service database.

    python -m crm_platform.migrate clients            # upgrade the clients database to head
    python -m crm_platform.migrate all                # every service
    python -m crm_platform.migrate clients --url URL  # another database (tests)

Each service keeps its scripts in ``services/<name>/migrations``; its ``env.py`` is two lines that
call ``run_migrations`` with the service's metadata.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from alembic import command
from alembic.config import Config

from .config import service_db_url

ROOT = Path(__file__).resolve().parents[2]

# Services with a database, in the order their migrations run.
SERVICES_WITH_DB = ("directory", "clients", "deals", "telephony", "mail", "erp_bridge",
                    "reports", "payroll", "logistics")


def migrations_dir(service: str) -> Path:
    module = importlib.import_module(f"services.{service}")
    return Path(module.__file__).resolve().parent / "migrations"


def alembic_config(service: str, url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir(service)))
    cfg.set_main_option("sqlalchemy.url", (url or service_db_url(service)).replace("%", "%%"))
    return cfg


def upgrade(service: str, url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(service, url), revision)
    ensure_platform_tables(url or service_db_url(service))


def ensure_platform_tables(url: str) -> None:
    """Platform tables added after a service's first migration (``idempotency_keys``) appear in
    every database without a migration per service: ``create_all`` only creates what is missing,
    under the same advisory lock as the migrations so replicas starting together do not race."""
    import sqlalchemy as sa

    from .tables import platform_metadata

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "SELECT pg_advisory_xact_lock(hashtext('crm_platform.migrate'))")
            platform_metadata.create_all(connection)
    finally:
        engine.dispose()


def run_migrations(context, target_metadata) -> None:
    """Body of every service's ``env.py`` (online mode only: migrations run against a live DB)."""
    from sqlalchemy import engine_from_config, pool

    config = context.config
    connectable = engine_from_config(
        {"sqlalchemy.url": config.get_main_option("sqlalchemy.url")},
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        # Every pod of a service may migrate at start (an init container per replica): a session
        # lock lets one of them apply the revisions while the others wait, then find none to do.
        connection.exec_driver_sql("SELECT pg_advisory_lock(hashtext('crm_platform.migrate'))")
        connection.commit()
        # The platform tables (outbox, processed_events) live in every service's database.
        from .tables import platform_metadata

        context.configure(connection=connection,
                          target_metadata=[target_metadata, platform_metadata],
                          compare_type=True)
        with context.begin_transaction():
            context.run_migrations()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", help="service name, or 'all'")
    parser.add_argument("--url", help="database URL (default: the service's configured URL)")
    args = parser.parse_args(argv)
    services = SERVICES_WITH_DB if args.service == "all" else (args.service,)
    for service in services:
        upgrade(service, None if args.service == "all" else args.url)
        print(f"migrated {service}")


if __name__ == "__main__":
    main()
