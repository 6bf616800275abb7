"""Five years of sales history for 100 managers, straight into a scratch reports database.

    python bench/datagen_history.py                 # a new scratch database, kept; prints its URL
    python bench/datagen_history.py --scale 0.1     # a tenth of it (quick checks)

What the reports service would hold after five years of events (≈ 6M calls, 1M e-mails, 500k deals
with their stage history, 100k clients; tasks done and overdue, ERP documents of the deals that got
an order, monthly plans), written with COPY: first the facts (the raw rows, keyed by natural ids),
then the daily/by-user/monthly rollups computed from them with ``INSERT .. SELECT .. GROUP BY`` —
the same figures the live handlers maintain incrementally (the benchmark checks that rollups and
facts agree), finally the clients' last interaction, ANALYZE. Deterministic for a seed.

The organisation: 6 departments (each with 2–3 regions), 100 managers; a client belongs to one
manager, its region is one of the department's, its segment one of five (or none).
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "libs")]

from services.reports.domain.funnel import GAMMA, LADDER, RANK  # noqa: E402
from services.reports.models import ROLLUPS  # noqa: E402

FIRST_DAY = date(2021, 12, 1)
LAST_DAY = date(2026, 11, 30)
DAYS = (LAST_DAY - FIRST_DAY).days + 1
MSK = timedelta(hours=3)
NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
DEPARTMENTS = (("Центральный отдел", ["RU-MOW", "RU-MOS", "RU-TUL"]),
               ("Северо-Западный отдел", ["RU-SPE", "RU-LEN"]),
               ("Приволжский отдел", ["RU-TA", "RU-NIZ", "RU-SAM"]),
               ("Южный отдел", ["RU-KDA", "RU-ROS"]),
               ("Уральский отдел", ["RU-SVE", "RU-CHE", "RU-PER"]),
               ("Сибирский отдел", ["RU-NVS", "RU-KYA"]))
SEGMENTS = ("roofing", "facade", "dealer", "builder", "private", "")
SOURCES = ("call", "email", "web", "manual", "campaign")
NULL = "\\N"
# Chance to go on from each ladder stage to the next (else lost, or still open if recent), and
# the median hours spent there.
ADVANCE = {"new": 0.6, "qualified": 0.6, "proposal": 0.5, "order_confirmed": 0.92,
           "invoiced": 0.9, "partially_shipped": 0.95, "shipped": 0.97}
MEDIAN_HOURS = {"new": 20, "qualified": 70, "proposal": 120, "order_confirmed": 48,
                "invoiced": 100, "partially_shipped": 150, "shipped": 200}


def uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class Copier:
    """COPY text rows into a table, a chunk at a time."""

    def __init__(self, raw, table: str, columns: list[str]):
        self.raw, self.table, self.columns = raw, table, columns
        self.buffer = io.StringIO()
        self.rows = 0
        self.pending = 0

    def add(self, *values) -> None:
        self.buffer.write("\t".join(NULL if v is None else str(v) for v in values))
        self.buffer.write("\n")
        self.pending += 1
        if self.pending >= 200_000:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        self.buffer.seek(0)
        with self.raw.cursor() as cur:
            cur.copy_expert(f"COPY {self.table} ({', '.join(self.columns)}) FROM STDIN",
                            self.buffer)
        self.rows += self.pending
        self.pending = 0
        self.buffer = io.StringIO()


def moment(day_index: int, rng: random.Random) -> datetime:
    """A working-hours moment (09:00–19:00 Moscow) of the day, in UTC."""
    local = datetime.combine(FIRST_DAY + timedelta(days=day_index), datetime.min.time())
    return (local + timedelta(seconds=rng.randint(9 * 3600, 19 * 3600)) - MSK).replace(
        tzinfo=UTC)


def local_day(at: datetime) -> date:
    return (at + MSK).date()


def generate(url: str, scale: float = 1.0, seed: int = 1, log=print) -> dict:
    rng = random.Random(seed)
    engine = sa.create_engine(url)
    started = time.monotonic()
    timings = {}
    n_clients, n_calls = int(100_000 * scale), int(6_000_000 * scale)
    n_emails, n_deals = int(1_000_000 * scale), int(500_000 * scale)
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            cur.execute("SET synchronous_commit = off")
        counts = _generate(raw, rng, n_clients, n_calls, n_emails, n_deals, timings, log)
        raw.commit()
    finally:
        raw.close()
    t = time.monotonic()
    with engine.begin() as conn:
        for rollup in ROLLUPS:
            for table in rollup.tables:
                conn.execute(sa.text(ROLLUP_SQL[rollup.name](table)))
        conn.execute(sa.text(STAY_HISTOGRAM_SQL), {"gamma": GAMMA})
    timings["rollups_s"] = round(time.monotonic() - t, 1)
    log(f"rollups in {timings['rollups_s']} s")
    t = time.monotonic()
    with engine.begin() as conn:
        conn.execute(sa.text(LAST_INTERACTION_SQL))
    timings["last_interaction_s"] = round(time.monotonic() - t, 1)
    t = time.monotonic()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
    timings["analyze_s"] = round(time.monotonic() - t, 1)
    with engine.connect() as conn:
        counts["rollup_rows"] = {table.name: conn.execute(sa.text(
            f"SELECT count(*) FROM {table.name}")).scalar()  # noqa: S608 - our own names
            for rollup in ROLLUPS
            for table in rollup.tables}
        counts["fact_rows"] = {name: conn.execute(sa.text(
            f"SELECT count(*) FROM {name}")).scalar()  # noqa: S608 - our own names
            for name in ("call_facts", "email_facts", "deal_facts", "stage_stays", "task_marks",
                         "erp_documents", "client_facts", "stay_histogram")}
        counts["database_size"] = conn.execute(sa.text(
            "SELECT pg_size_pretty(pg_database_size(current_database()))")).scalar()
    engine.dispose()
    timings["total_s"] = round(time.monotonic() - started, 1)
    return {"scale": scale, "seed": seed, "counts": counts, "timings": timings}


def _generate(raw, rng, n_clients, n_calls, n_emails, n_deals, timings, log) -> dict:
    t = time.monotonic()
    departments = []
    for name, regions in DEPARTMENTS:
        departments.append({"id": uid(rng), "name": name, "regions": regions})
    managers = [{"id": uid(rng), "dept": departments[i % 6]} for i in range(100)]
    copy = Copier(raw, "departments", ["department_id", "name", "regions"])
    for d in departments:
        copy.add(d["id"], d["name"], "{" + ",".join(d["regions"]) + "}")
    copy.flush()
    copy = Copier(raw, "staff", ["user_id", "full_name", "role", "department_id", "active"])
    for n, m in enumerate(managers):
        copy.add(m["id"], f"Менеджер {n + 1}", "manager", m["dept"]["id"], "t")
    copy.flush()

    # -- clients ----------------------------------------------------------------------------
    clients_of: dict[str, list[tuple]] = {m["id"]: [] for m in managers}
    copy = Copier(raw, "client_facts", ["client_id", "short_name", "owner_id", "department_id",
                                        "region", "segment", "status", "known", "created_at",
                                        "snapshot_at"])
    changes = Copier(raw, "client_changes", ["client_id", "day", "user_id", "department_id",
                                             "region", "segment", "created", "potential_delta"])
    for n in range(n_clients):
        m = managers[rng.randrange(100)]
        region = rng.choice(m["dept"]["regions"])
        segment = rng.choice(SEGMENTS)
        status = rng.choices(("potential", "active", "dormant", "lost"), (40, 40, 15, 5))[0]
        created = moment(rng.randrange(DAYS), rng)
        client = (uid(rng), region, segment)
        clients_of[m["id"]].append(client)
        copy.add(client[0], f"ООО «Клиент {n}»", m["id"], m["dept"]["id"], region, segment,
                 status, "t", created.isoformat(), created.isoformat())
        day = local_day(created)
        was_potential = status == "potential" or rng.random() < 0.5
        changes.add(client[0], day, m["id"], m["dept"]["id"], region, segment, 1,
                    int(was_potential))
        if was_potential and status != "potential":   # became active / dormant / lost later
            later = min(DAYS - 1, (day - FIRST_DAY).days + rng.randint(10, 400))
            changes.add(client[0], FIRST_DAY + timedelta(days=later), m["id"], m["dept"]["id"],
                        region, segment, 0, -1)
    copy.flush()
    changes.flush()
    timings["clients_s"] = round(time.monotonic() - t, 1)
    log(f"{n_clients} clients in {timings['clients_s']} s")

    def pick_client(m):
        pool = clients_of[m["id"]]
        return pool[rng.randrange(len(pool))] if pool else (None, m["dept"]["regions"][0], "")

    # -- calls ------------------------------------------------------------------------------
    t = time.monotonic()
    copy = Copier(raw, "call_facts", ["call_id", "day", "started_at", "user_id",
                                      "department_id", "region", "segment", "client_id",
                                      "deal_id", "inbound", "answered", "targeted",
                                      "talk_seconds"])
    for _ in range(n_calls):
        m = managers[rng.randrange(100)]
        at = moment(rng.randrange(DAYS), rng)
        if rng.random() < 0.7:
            client_id, region, segment = pick_client(m)
        else:
            client_id, region, segment = None, m["dept"]["regions"][0], ""
        answered = rng.random() < 0.75
        copy.add(uid(rng), local_day(at), at.isoformat(), m["id"], m["dept"]["id"], region,
                 segment, client_id, None, int(rng.random() < 0.45), int(answered),
                 int(client_id is not None), int(rng.expovariate(1 / 150)) if answered else 0)
    copy.flush()
    timings["calls_s"] = round(time.monotonic() - t, 1)
    log(f"{n_calls} calls in {timings['calls_s']} s")

    # -- e-mails ----------------------------------------------------------------------------
    t = time.monotonic()
    copy = Copier(raw, "email_facts", ["message_id", "mailbox_user", "day", "user_id",
                                       "department_id", "region", "segment", "client_id",
                                       "inbound"])
    for n in range(n_emails):
        m = managers[rng.randrange(100)]
        at = moment(rng.randrange(DAYS), rng)
        client_id, region, segment = pick_client(m)
        copy.add(f"<{n}.{seed_tag(rng)}@bench>", m["id"], local_day(at), m["id"],
                 m["dept"]["id"], region, segment, client_id, int(rng.random() < 0.5))
    copy.flush()
    timings["emails_s"] = round(time.monotonic() - t, 1)
    log(f"{n_emails} e-mails in {timings['emails_s']} s")

    # -- deals, their stays, tasks and ERP documents -------------------------------------------
    t = time.monotonic()
    deals = Copier(raw, "deal_facts", [
        "deal_id", "day", "user_id", "department_id", "region", "segment", "client_id", "title",
        "source", "created_at", "owner_id", "owner_department_id", "stage", "stage_entered_at",
        "max_rank", "lost", "open", "amount", "expected_close_date", "probability",
        "stalled_at"])
    stays = Copier(raw, "stage_stays", ["deal_id", "entered_at", "stage", "left_at", "seconds",
                                        "day", "user_id", "department_id", "region", "segment",
                                        "client_id"])
    marks = Copier(raw, "task_marks", ["task_id", "mark", "day", "user_id", "department_id",
                                       "region", "segment", "client_id"])
    docs = Copier(raw, "erp_documents", ["document_guid", "kind", "revision", "active",
                                         "number", "day", "user_id", "department_id", "region",
                                         "segment", "client_id", "amount"])
    open_tasks = Copier(raw, "task_facts", ["task_id", "user_id", "department_id", "client_id",
                                            "kind", "due_at", "open", "overdue"])
    for n in range(n_deals):
        m = managers[rng.randrange(100)]
        client_id, region, segment = pick_client(m)
        created = moment(rng.randrange(DAYS), rng)
        amount = rng.randrange(50, 5000) * 1000
        dims = (m["id"], m["dept"]["id"], region, segment)
        deal_id = uid(rng)
        stage, entered, lost, max_rank = "new", created, False, 1
        while True:
            hours = rng.lognormvariate(0, 0.8) * MEDIAN_HOURS[stage]
            left = entered + timedelta(hours=hours)
            if left > NOW:   # still there
                stays.add(deal_id, entered.isoformat(), stage, None, None, local_day(entered),
                          *dims, client_id)
                break
            stays.add(deal_id, entered.isoformat(), stage, left.isoformat(),
                      round(hours * 3600, 3), local_day(entered), *dims, client_id)
            _task(marks, rng, left, dims, client_id)
            if stage in ("order_confirmed", "invoiced", "shipped") or (
                    stage == "partially_shipped"):
                kind = {"order_confirmed": "order", "invoiced": "invoice",
                        "partially_shipped": "payment", "shipped": "shipment"}[stage]
                docs.add(uid(rng), kind, 1, "t", f"{kind[:3].upper()}-{n}", local_day(entered),
                         *dims, client_id, f"{amount}.00")
            if rng.random() < ADVANCE[stage]:
                index = RANK[stage]   # the next stage's index in LADDER
                nxt = LADDER[index]
                if nxt == "partially_shipped" and rng.random() < 0.6:
                    nxt = "shipped"
                stage, entered = nxt, left
                max_rank = RANK[stage]
                if stage == "closed_won":
                    entered = left
                    break
            else:
                stage, entered, lost = "lost", left, True
                break
        is_open = stage not in ("closed_won", "lost")
        stalled = entered + timedelta(hours=3 * MEDIAN_HOURS.get(stage, 1)) if is_open else None
        if stalled is not None and stalled > NOW:
            stalled = None
        close = (entered + timedelta(days=rng.randint(10, 120))).date() if is_open else None
        deals.add(deal_id, local_day(created), *dims, client_id, f"Сделка {n}",
                  rng.choice(SOURCES), created.isoformat(), m["id"], m["dept"]["id"], stage,
                  entered.isoformat(), max_rank, "t" if lost else "f", "t" if is_open else "f",
                  f"{amount}.00", close, rng.choice((10, 25, 40, 60, 80)) if is_open else None,
                  stalled.isoformat() if stalled else None)
        if is_open:
            due = entered + timedelta(days=2)
            open_tasks.add(uid(rng), m["id"], m["dept"]["id"], client_id, "call",
                           due.isoformat(), "t", "t" if due < NOW else "f")
    for copier in (deals, stays, marks, docs, open_tasks):
        copier.flush()
    timings["deals_s"] = round(time.monotonic() - t, 1)
    log(f"{n_deals} deals, {stays.rows} stays, {marks.rows} task marks, {docs.rows} ERP "
        f"documents in {timings['deals_s']} s")

    copy = Copier(raw, "sales_plans", ["user_id", "month", "department_id", "sales_amount",
                                       "snapshot_at"])
    for m in managers:
        month = FIRST_DAY
        while month <= LAST_DAY:
            copy.add(m["id"], month, m["dept"]["id"], f"{rng.randrange(2, 20) * 1_000_000}.00",
                     NOW.isoformat())
            month = (month + timedelta(days=32)).replace(day=1)
    copy.flush()
    return {"clients": n_clients, "calls": n_calls, "emails": n_emails, "deals": n_deals,
            "stage_stays": stays.rows, "task_marks": marks.rows, "erp_documents": docs.rows,
            "open_tasks": open_tasks.rows, "plans": copy.rows}


def seed_tag(rng) -> str:
    return format(rng.getrandbits(32), "x")


def _task(marks, rng, at, dims, client_id) -> None:
    """The stage's task: done when the deal leaves the stage (one in ten was overdue first)."""
    task_id = uid(rng)
    marks.add(task_id, "done", local_day(at), *dims, client_id)
    if rng.random() < 0.1:
        marks.add(task_id, "overdue", local_day(at - timedelta(days=1)), *dims, client_id)


DIMS = "user_id, department_id, region, segment"


def _insert(table, measures: str, source: str, extra: str = "", where: str = "") -> str:
    """INSERT .. SELECT .. GROUP BY of one rollup table from the facts (our own SQL text)."""
    day = "date_trunc('month', day)::date" if table.name.startswith("monthly_") else "day"
    dims = "user_id, department_id" if table.name.endswith("_by_user") else DIMS
    extra_cols = f", {extra}" if extra else ""
    columns = [c for c in table.columns.keys()]
    group = ", ".join(str(i + 1) for i in range(1 + len(dims.split(",")) +
                                                (len(extra.split(",")) if extra else 0)))
    return (f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608
            f"SELECT {day}, {dims}{extra_cols}, {measures} FROM {source} {where} "
            f"GROUP BY {group}")


ROLLUP_SQL = {
    "calls": lambda t: _insert(t, "count(*), sum(inbound), sum(answered), sum(targeted), "
                                        "sum(talk_seconds)", "call_facts"),
    "emails": lambda t: _insert(t, "count(*), sum(inbound)", "email_facts"),
    "tasks": lambda t: _insert(t, "count(*) FILTER (WHERE mark = 'done'), "
                                        "count(*) FILTER (WHERE mark = 'overdue')",
                               "task_marks"),
    "leads": lambda t: _insert(t, "count(*)", "deal_facts", extra="source"),
    "clients": lambda t: _insert(t, "sum(created), sum(potential_delta)",
                                 "client_changes"),
    "erp": lambda t: _insert(t, "count(*), sum(amount)", "erp_documents", extra="kind",
                             where="WHERE active"),
    "funnel": lambda t: _insert(
        t, "count(*)",
        "(SELECT d.day, d.user_id, d.department_id, d.region, d.segment, l.stage "  # noqa: S608
        "FROM deal_facts d "
        "JOIN (VALUES " + ", ".join(f"('{s}', {RANK[s]})" for s in LADDER) +
        ") AS l(stage, rank) ON d.max_rank >= l.rank UNION ALL SELECT day, user_id, "
        "department_id, region, segment, 'lost' FROM deal_facts WHERE lost) AS reached",
        extra="stage"),
}

STAY_HISTOGRAM_SQL = """
INSERT INTO stay_histogram (day, department_id, stage, bucket, stays, max_seconds)
SELECT date_trunc('month', day)::date, department_id, stage,
       floor(ln(greatest(seconds, 1)) / ln(:gamma))::smallint, count(*), max(seconds)
FROM stage_stays WHERE seconds IS NOT NULL GROUP BY 1, 2, 3, 4
"""

LAST_INTERACTION_SQL = """
UPDATE client_facts c SET last_interaction_at = t.at FROM (
    SELECT client_id, max(at) AS at FROM (
        SELECT client_id, max(started_at) AS at FROM call_facts
        WHERE answered = 1 AND client_id IS NOT NULL GROUP BY client_id
        UNION ALL
        SELECT client_id, max(stage_entered_at) FROM deal_facts
        WHERE client_id IS NOT NULL GROUP BY client_id) AS x GROUP BY client_id) AS t
WHERE c.client_id = t.client_id
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    from crm_platform.testing import TestDatabases

    url = TestDatabases().url_for("reports")
    print(f"scratch database: {url}")
    stats = generate(url, args.scale, args.seed)
    print(stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
