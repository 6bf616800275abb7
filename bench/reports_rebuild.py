"""How long a rebuild of the reports' read models by replay takes.

    python bench/reports_rebuild.py                # 1 % of the five-year history
    python bench/reports_rebuild.py --fraction 0.05

Builds each producer's history as contract-checked envelopes in a scratch "producer" database's
outbox (published rows, as ``OUTBOX_RETENTION_DAYS`` 0 keeps them): the organisation, clients,
deals with stage moves and tasks, calls, e-mails, ERP documents (some re-sent in a newer revision)
and plans, in the proportions of ``bench/datagen_history.py`` at ``--fraction`` of its size. Then
``services.reports.rebuild.Rebuilder`` replays them into a scratch reports database, paging each
producer with the same ``crm_platform.outbox.export_events`` the ``export_events`` RPC runs (so
the RPC's transport — one round trip per page of 2,000 — is not in the figure; see below), and the
wall time is extrapolated linearly to the full size (deals, calls, e-mails and ERP documents
replay side by side once the organisation, plans and clients are in). Results:
``bench/results/reports_rebuild.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "libs")]

from crm_platform.contracts import make_envelope  # noqa: E402
from crm_platform.outbox import export_events  # noqa: E402
from crm_platform.tables import outbox  # noqa: E402
from crm_platform.testing import TestDatabases  # noqa: E402
from services.reports.rebuild import Rebuilder  # noqa: E402

START = datetime(2021, 12, 1, 6, tzinfo=UTC)
SPAN_DAYS = 1826
# Events per source in the full five-year history (datagen_history's proportions).
FULL = {"directory": 106, "payroll": 6000, "clients": 150_000, "deals": 3_400_000,
        "telephony": 6_000_000, "mail": 1_000_000, "erp_bridge": 450_000}
LADDER = ("new", "qualified", "proposal", "order_confirmed", "invoiced", "shipped", "closed_won")


def history(fraction: float, seed: int = 1) -> dict[str, list[dict]]:
    rng = random.Random(seed)

    def when():
        return START + timedelta(days=rng.randrange(SPAN_DAYS), seconds=rng.randrange(36000))

    out: dict[str, list[dict]] = {s: [] for s in FULL}

    def emit(source, event_type, payload, at=None):
        out[source].append(make_envelope(source, event_type, payload, occurred_at=at or when()))

    departments = [uuid.uuid4() for _ in range(6)]
    managers = [(uuid.uuid4(), departments[i % 6]) for i in range(100)]
    for n, d in enumerate(departments):
        emit("directory", "department_changed", {"department_id": d, "name": f"Отдел {n}",
                                                 "regions": [f"RU-R{n}"]}, START)
    for n, (user, dept) in enumerate(managers):
        emit("directory", "user_changed", {"user_id": user, "username": f"m{n}",
                                           "full_name": f"Менеджер {n}", "role": "manager",
                                           "department_id": dept, "active": True}, START)
        for month in range(int(60 * fraction) or 1):
            emit("payroll", "sales_plan_changed", {
                "user_id": user, "department_id": dept,
                "month": (START + timedelta(days=31 * month)).date().replace(day=1),
                "sales_amount": Decimal("1000000.00")})
    clients = []
    for n in range(int(100_000 * fraction)):
        user, dept = rng.choice(managers)
        client = uuid.uuid4()
        clients.append((client, user, dept))
        emit("clients", "client_created", {
            "client_id": client, "short_name": f"ООО «{n}»", "region": "RU-R1",
            "status": "potential", "segment": rng.choice(("roofing", "facade", None)),
            "owner_id": user, "department_id": dept})
        if rng.random() < 0.5:
            emit("clients", "client_updated", {
                "client_id": client, "short_name": f"ООО «{n}»", "region": "RU-R1",
                "status": "active", "owner_id": user, "department_id": dept,
                "changed_fields": ["status"]})
    for _ in range(int(500_000 * fraction)):
        client, user, dept = rng.choice(clients)
        deal, at = uuid.uuid4(), when()
        emit("deals", "deal_created", {"deal_id": deal, "client_id": client, "owner_id": user,
                                       "created_at": at, "source": "call",
                                       "department_id": dept}, at)
        stage = "new"
        for nxt in LADDER[1:]:
            task = uuid.uuid4()
            base = {"task_id": task, "deal_id": deal, "client_id": client, "assignee_id": user,
                    "department_id": dept, "kind": "call", "title": "Задача", "source": "stage"}
            emit("deals", "task_created", base, at)
            at += timedelta(hours=rng.randrange(5, 200))
            emit("deals", "task_completed", {**base, "status": "done", "completed_at": at}, at)
            target = nxt if rng.random() < 0.6 else "lost"
            emit("deals", "deal_stage_changed", {
                "deal_id": deal, "client_id": client, "owner_id": user, "department_id": dept,
                "from_stage": stage, "to_stage": target, "at": at, "cause": "user"}, at)
            if target == "lost":
                break
            stage = target
            if stage in ("order_confirmed", "invoiced", "shipped"):
                kind = {"order_confirmed": "order", "invoiced": "invoice",
                        "shipped": "shipment"}[stage]
                doc = {"document_guid": uuid.uuid4(), "document_version": "1",
                       "client_id": client, "number": "N", "document_date": at,
                       "amount": Decimal("1000.00"), "revision": 1}
                emit("erp_bridge", f"erp_{kind}_posted", doc, at)
                if rng.random() < 0.2:
                    emit("erp_bridge", f"erp_{kind}_changed", {**doc, "revision": 2,
                                                                "amount": Decimal("1100.00")}, at)
    for _ in range(int(6_000_000 * fraction)):
        client, user, _dept = rng.choice(clients)
        emit("telephony", "call_registered", {
            "call_id": uuid.uuid4(), "client_id": client if rng.random() < 0.7 else None,
            "user_id": user, "direction": "inbound", "answered": rng.random() < 0.75,
            "started_at": when(), "duration_seconds": 100, "talk_seconds": 90})
    for n in range(int(1_000_000 * fraction)):
        client, user, _dept = rng.choice(clients)
        emit("mail", "email_registered", {"message_id": f"<{n}@bench>", "client_id": client,
                                          "user_id": user, "direction": "outbound",
                                          "sent_at": when()})
    for source in out:   # a producer's history is in the order it happened
        out[source].sort(key=lambda e: e["occurred_at"])
    return out


def main() -> int:
    import eventlet

    eventlet.monkey_patch()   # as in the service: a psycopg2 wait lets the other streams run
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fraction", type=float, default=0.01)
    parser.add_argument("--page-size", type=int, default=2000)
    args = parser.parse_args()
    databases = TestDatabases()
    try:
        started = time.monotonic()
        events = history(args.fraction)
        print(f"built {sum(map(len, events.values()))} envelopes in "
              f"{time.monotonic() - started:.1f} s", flush=True)
        producers = {}
        for source, envelopes in events.items():
            url = databases.blank(f"producer_{source}")
            engine = sa.create_engine(url)
            now = datetime.now(UTC)
            with engine.begin() as conn:
                for start in range(0, len(envelopes), 5000):
                    conn.execute(sa.insert(outbox), [
                        {"event_id": uuid.UUID(e["event_id"]), "source": source,
                         "type": e["type"], "envelope": e, "published_at": now}
                        for e in envelopes[start:start + 5000]])
            producers[source] = engine

        def fetch(source, after, limit, event_types):
            with producers[source].connect() as conn:
                from sqlalchemy.orm import Session

                with Session(bind=conn) as session:
                    return export_events(session, after, limit, event_types)

        reports = sa.create_engine(databases.url_for("reports"))
        summary = Rebuilder(reports, fetch, ZoneInfo("Europe/Moscow"), args.page_size).run()
        per_source = {}
        for source, figures in summary["sources"].items():
            rate = figures["events"] / figures["seconds"] if figures["seconds"] else 0
            per_source[source] = {**figures, "events_per_s": round(rate),
                                  "full_events": FULL[source]}
            print(f"{source:11} {figures['events']:8} events {figures['seconds']:7.1f} s "
                  f"{rate:8.0f}/s", flush=True)
        # Deals, calls, e-mails and ERP replay side by side: the run's wall time, scaled.
        total_full = round(summary["seconds"] / args.fraction)
        result = {
            "name": "reports_rebuild", "fraction": args.fraction,
            "measured": "Rebuilder.run over export_events pages read in process (no RPC "
                        "transport), one transaction per page, claims + projection",
            "machine": f"{platform.node()} {platform.machine()} {platform.python_version()}",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "figures": [
                {"figure": f"rebuild of {args.fraction:.0%} of five years",
                 "value": summary["seconds"], "unit": "s", "events": summary["events"],
                 "events_per_s": round(summary["events"] / summary["seconds"])},
                {"figure": "rebuild of the full five years (wall time / fraction)",
                 "value": total_full, "unit": "s",
                 "events": sum(FULL.values())}],
            "per_source": per_source}
        (ROOT / "bench" / "results" / "reports_rebuild.json").write_text(
            json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        print(f"replayed {summary['events']} events in {summary['seconds']} s; the full history "
              f"(~{sum(FULL.values()):,} events) extrapolates to ~{total_full / 60:.0f} min")
        for engine in [*producers.values(), reports]:
            engine.dispose()
    finally:
        databases.drop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
