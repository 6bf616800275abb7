"""Rebuild the read models from scratch by replaying every producer's history.

    python -m services.reports.rebuild                    # all producers
    python -m services.reports.rebuild --sources deals telephony

Each producer keeps its sent events in its outbox (``OUTBOX_RETENTION_DAYS`` 0) and pages them
out through the platform RPC ``export_events(after, limit, event_types)``. The rebuild empties the
read models (and the reports' handled-event ids), then reads each producer's history in order —
the organisation and plans first, then clients, deals, calls, e-mails, ERP documents — and applies
every page in one transaction with the same ``projection`` functions the live handlers use
(deals, calls, e-mails and ERP documents side by side once the clients are in),
claiming the events under the live handlers' names, so a live delivery of a replayed event is a
duplicate and changes nothing.

While it runs it holds an exclusive advisory lock; every live handler takes the same lock shared
in its transaction, so live events wait in their queues (unacked) and resume when it is done.
The admin RPC ``reports.rebuild`` runs the same code in the service. Every producer it replays
must answer first (``export_events`` of one event); otherwise nothing is emptied and the run
fails naming them.
"""

from __future__ import annotations

if __name__ == "__main__":   # the command: green threads before kombu and psycopg2 load
    import eventlet

    eventlet.monkey_patch()

import argparse  # noqa: E402
import logging
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

import eventlet
import eventlet.semaphore
import sqlalchemy as sa
from nameko.exceptions import UnknownService

from crm_platform.clock import utcnow
from crm_platform.contracts import ContractError, parse_envelope
from crm_platform.identity import IDENTITY_CONTEXT_KEY, Identity
from crm_platform.inbox import claim_events
from crm_platform.tables import processed_events

from .models import READ_MODEL_TABLES, rebuild_runs
from .projection import SOURCES, live_handler

log = logging.getLogger(__name__)

# pg_advisory_lock key of "a rebuild is running" (any constant shared by rebuild and handlers).
REBUILD_LOCK = 0x7265_706F_7274  # "report"
# Replayed first and alone: what the other streams' slices are looked up in.
FOUNDATION = ("directory", "payroll", "clients")
REBUILD_IDENTITY = Identity(user_id="00000000-0000-4000-8000-00000000e001", role="integration",
                            username="reports.rebuild", full_name="Пересборка отчётов")


class ProducersMissing(Exception):
    def __init__(self, sources: list[str]):
        super().__init__("no answer from " + ", ".join(sources) + ": start them, or rebuild "
                         "without them (--sources); nothing was emptied")
        self.sources = sources


def wait_for_rebuild(session) -> None:
    """Live handlers: hold the rebuild lock shared for this transaction (waits while a rebuild
    runs; costs nothing otherwise)."""
    session.execute(sa.text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": REBUILD_LOCK})


def identity_context() -> dict:
    return {IDENTITY_CONTEXT_KEY: REBUILD_IDENTITY.to_context()}


class Rebuilder:
    """``fetch(source, after, limit, event_types) -> page`` reads a producer's history (an RPC
    to its ``export_events`` in life; anything in tests)."""

    def __init__(self, engine: sa.Engine, fetch: Callable, tz: ZoneInfo, page_size: int = 2000):
        self.engine = engine
        self.fetch = fetch
        self.tz = tz
        self.page_size = page_size
        self._fetching = eventlet.semaphore.Semaphore(1)

    def run(self, sources: list[str] | None = None, run_id: int | None = None) -> dict:
        chosen = [s for s in SOURCES if not sources or s in sources]
        started = time.monotonic()
        summary: dict = {"sources": {}, "events": 0}
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as lock:
            lock.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": REBUILD_LOCK})
            try:
                if run_id is None:
                    run_id = self.start_run()
                self.check_producers(chosen)
                self.empty(keep_organisation="directory" not in chosen)
                # The organisation, plans and clients first (the others' slices come from
                # them), then the independent streams side by side (green threads: one waits for
                # PostgreSQL while another parses).
                first = [s for s in chosen if s in FOUNDATION]
                rest = [s for s in chosen if s not in FOUNDATION]
                for source in first:
                    summary["sources"][source] = self.replay(source)
                pool = eventlet.GreenPool(max(1, len(rest)))
                for source, figures in zip(rest, pool.imap(self.replay, rest), strict=True):
                    summary["sources"][source] = figures
                summary["events"] = sum(f.get("events", 0) for f in summary["sources"].values())
                summary["seconds"] = round(time.monotonic() - started, 2)
                self.finish(run_id, "done", summary)
            except Exception as exc:
                self.finish(run_id, "failed", summary, error=f"{type(exc).__name__}: {exc}")
                raise
            finally:
                lock.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": REBUILD_LOCK})
        summary["run_id"] = run_id
        return summary

    def start_run(self) -> int:
        with self.engine.begin() as conn:
            return conn.execute(sa.insert(rebuild_runs).values(
                started_at=utcnow(), status="running", per_source={})
                .returning(rebuild_runs.c.id)).scalar_one()

    def finish(self, run_id, status, summary, error=None) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.update(rebuild_runs).where(rebuild_runs.c.id == run_id).values(
                finished_at=utcnow(), status=status, events=summary.get("events", 0),
                per_source=summary.get("sources", {}), error=error))

    def check_producers(self, chosen: list[str]) -> None:
        """Every producer to replay must answer before anything is emptied: a rebuild without
        one producer's history would lose its figures."""
        silent = []
        for source in chosen:
            try:
                self.fetch(source, 0, 1, SOURCES[source][0])
            except UnknownService:
                silent.append(source)
        if silent:
            raise ProducersMissing(silent)

    def empty(self, keep_organisation: bool = False) -> None:
        kept = ("staff", "departments") if keep_organisation else ()
        names = ", ".join(f'"{t.name}"' for t in READ_MODEL_TABLES if t.name not in kept)
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"TRUNCATE {names}"))
            conn.execute(sa.delete(processed_events).where(
                processed_events.c.consumer.like("reports.%")))

    def replay(self, source: str) -> dict:
        event_types, apply, _method = SOURCES[source]
        after, events, broken, pages = 0, 0, 0, 0
        started = time.monotonic()
        while True:
            with self._fetching:   # one RPC proxy: one page request at a time
                page = self.fetch(source, after, self.page_size, event_types)
            parsed = []
            for envelope in page["events"]:
                try:
                    parsed.append(parse_envelope(
                        envelope, handler=live_handler(source, envelope.get("type", ""))))
                except ContractError as exc:
                    broken += 1
                    log.warning("rebuild: %s event breaks its contract, skipped: %s", source, exc)
            if parsed:
                self._apply_page(apply, parsed)
            events += len(parsed)
            pages += 1
            after = page["next_after"]
            if page["done"]:
                break
        return {"events": events, "broken": broken, "pages": pages,
                "seconds": round(time.monotonic() - started, 2)}


    def _apply_page(self, apply, parsed, attempts: int = 5) -> None:
        """One page in one transaction; a deadlock with a stream replayed beside it (both
        touch the clients' last interaction) rolls back and runs the page again."""
        for attempt in range(attempts):
            try:
                with self.engine.connect() as conn:
                    session = _session(conn)
                    with session.begin():
                        apply(session, claim_events(session, parsed), self.tz)
                    session.close()
                return
            except sa.exc.OperationalError as exc:
                if getattr(exc.orig, "pgcode", None) != "40P01" or attempt == attempts - 1:
                    raise
                log.info("rebuild: a page met a deadlock; running it again")


def _session(conn):
    from sqlalchemy.orm import Session

    return Session(bind=conn)


def rpc_fetch(proxy) -> Callable:
    """A ``fetch`` over a nameko ``ClusterRpcProxy`` (carrying the rebuild's identity)."""

    def fetch(source, after, limit, event_types):
        return getattr(proxy, source).export_events(after=after, limit=limit,
                                                    event_types=event_types)

    return fetch


def main(argv=None) -> None:
    from nameko.standalone.rpc import ClusterRpcProxy

    from crm_platform.config import amqp_uri, env, service_db_url
    from crm_platform.db import make_engine

    parser = argparse.ArgumentParser(description="Rebuild the reports' read models by replay")
    parser.add_argument("--sources", nargs="*", choices=list(SOURCES))
    parser.add_argument("--page-size", type=int, default=2000)
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO")
    engine = make_engine(service_db_url("reports"), pool_size=2)
    tz = ZoneInfo(env("CRM_BUSINESS_TIMEZONE", "Europe/Moscow"))
    try:
        with ClusterRpcProxy({"AMQP_URI": amqp_uri()}, context_data=identity_context(),
                             timeout=120) as proxy:
            summary = Rebuilder(engine, rpc_fetch(proxy), tz, args.page_size).run(args.sources)
    except ProducersMissing as exc:
        engine.dispose()
        raise SystemExit(f"rebuild refused: {exc}") from None
    for source, figures in summary["sources"].items():
        print(f"{source:12} {figures}")
    print(f"replayed {summary['events']} events in {summary['seconds']} s")
    engine.dispose()


if __name__ == "__main__":
    main()
