"""The SQLAlchemy session dependency (one engine per container, one transaction per ``with``).

    with self.db.session() as session:   # BEGIN
        ...                              # COMMIT on leaving, ROLLBACK on an exception

The engine URL comes from the container config key ``DB_URL`` (``postgresql+psycopg2://...``:
SQLAlchemy 2.1 would pick psycopg 3 for a plain ``postgresql://``).
"""

from __future__ import annotations

from contextlib import contextmanager

import sqlalchemy as sa
from nameko.extensions import DependencyProvider
from sqlalchemy.orm import Session, sessionmaker

from .errors import Unavailable, ValidationFailed

DB_URL_KEY = "DB_URL"


def make_engine(url: str, *, pool_size: int = 10) -> sa.Engine:
    return sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No ping per checkout (a round trip per transaction, ~10 % of event throughput): after a
        # database restart the first statement on a stale connection fails, SQLAlchemy drops the
        # whole pool, and the failed handler is retried by the consumer (RPC callers see one error).
        pool_pre_ping=False,
        pool_recycle=1800,
        future=True,
    )


def _connection_lost(exc: sa.exc.DBAPIError) -> bool:
    """A dropped or refused connection (no SQLSTATE), SQLSTATE class 08 (connection exception)
    or 57 (operator intervention: the server shutting down) — not lock timeouts or deadlocks."""
    if exc.connection_invalidated:
        return True
    code = getattr(exc.orig, "pgcode", None)
    return isinstance(exc, sa.exc.OperationalError) and (code is None or code[:2] in ("08", "57"))


class SessionFactory:
    """Transactions on one engine; usable without nameko (CLI tools, tests)."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self._maker = sessionmaker(bind=engine, expire_on_commit=False, future=True)

    @contextmanager
    def session(self):
        session: Session = self._maker()
        try:
            with session.begin():
                yield session
        except sa.exc.DBAPIError as exc:
            if _connection_lost(exc):
                # The database restarted or is unreachable: the transaction rolled back, so the
                # caller gets a clear "try again" (503) instead of psycopg2's text; a consumer
                # retries the event as for any error.
                raise Unavailable("База данных временно недоступна, повторите запрос",
                                  code="database_unavailable") from exc
            raise
        except ValueError as exc:
            # psycopg2 refuses a string holding U+0000 (PostgreSQL text cannot store it) before
            # anything is sent: whatever field brought it, that is bad input (422), not a 5xx.
            if "NUL (0x00)" not in str(exc):
                raise
            raise ValidationFailed("Текст содержит недопустимый символ NUL (U+0000)",
                                   fields={"body": ["символ NUL (U+0000) недопустим"]},
                                   code="nul_character") from exc
        finally:
            session.close()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))


class Database(DependencyProvider):
    def __init__(self, pool_size: int = 10):
        self.pool_size = pool_size
        self.factory: SessionFactory | None = None

    def setup(self):
        url = self.container.config[DB_URL_KEY]
        self.factory = SessionFactory(make_engine(url, pool_size=self.pool_size))

    def stop(self):
        if self.factory is not None:
            self.factory.engine.dispose()

    def kill(self):
        self.stop()

    def get_dependency(self, worker_ctx):
        return self.factory
