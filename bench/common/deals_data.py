"""Five years of deals and the client cards' timeline in a scratch deals database, with COPY.

    stats = fill_deals(clients_url, deals_url, n_deals=500_000, n_calls=6_000_000,
                       n_emails=1_000_000)

The clients come from the clients database ``bench/datagen_clients.py`` filled (their ids, owners,
departments, regions), copied into the deals service's ``client_replica`` as its
``client_created`` handler would leave them. Deals are spread over the clients and five years;
most of the old ones are closed (won or lost), the recent ones open in the funnel's stages. The
``client_timeline`` (what the client card shows) gets every call and e-mail of the client and the
stage moves of its deals, shaped as the deals service writes them from ``call_registered``,
``email_registered`` and its own moves. Indexes are dropped during the COPY and built again from
their own definitions, then ANALYZE. Deterministic for a seed.
"""

from __future__ import annotations

import io
import json
import queue
import random
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg2
from psycopg2 import sql

from bench.datagen_clients import libpq_dsn
from services.deals.domain.funnel import DEFAULT_STAGES

NULL = "\\N"
NOW = datetime.now(UTC).replace(microsecond=0)
SPAN_SECONDS = 5 * 365 * 86400
LADDER = ("new", "qualified", "proposal", "order_confirmed", "invoiced", "partially_shipped",
          "shipped", "closed_won")
MANUAL = ("new", "qualified", "proposal")
SOURCES = ("call", "email", "web", "manual", "campaign")
# How far a deal gets up the ladder (else lost there): the chances of going on from each stage.
ADVANCE = (0.6, 0.6, 0.5, 0.92, 0.9, 0.95, 0.97)
OPEN_DAYS = 120      # deals created within this many days may still be open


def _uid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"   # shaped as version 4, RFC 4122 variant
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def _ts(at: datetime) -> str:
    return at.isoformat()


class _Loader:
    """COPY chunks on a thread while the caller generates the next one."""

    def __init__(self, cur):
        self.cur = cur
        self.chunks: queue.Queue = queue.Queue(maxsize=2)
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name="deals-copy", daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while (item := self.chunks.get()) is not None:
                table, columns, text = item
                self.cur.copy_expert(sql.SQL("COPY {} ({}) FROM STDIN").format(
                    sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))),
                    io.StringIO(text))
        except BaseException as exc:  # noqa: BLE001 - re-raised by put/close
            self.errors.append(exc)
            while self.chunks.get() is not None:
                pass

    def put(self, table, columns, lines: list[str]) -> None:
        if self.errors:
            raise self.errors[0]
        if lines:
            self.chunks.put((table, columns, "".join(lines)))

    def close(self) -> None:
        self.chunks.put(None)
        self.thread.join()
        if self.errors:
            raise self.errors[0]


def _drop_indexes(cur, table: str) -> list[str]:
    """Drop the secondary indexes and unique constraints of ``table``; their DDL to rebuild."""
    cur.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = %s::regclass AND contype = 'u'", (table,))
    constraints = cur.fetchall()
    cur.execute("SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) "
                "FROM pg_index i WHERE i.indrelid = %s::regclass AND NOT i.indisprimary "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
                (table,))
    indexes = cur.fetchall()
    rebuild = []
    for name, definition in constraints:
        cur.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
            sql.Identifier(table), sql.Identifier(name)))
        rebuild.append(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} " + definition).format(
            sql.Identifier(table), sql.Identifier(name)))
    for name, definition in indexes:
        cur.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(name)))
        rebuild.append(sql.SQL(definition))
    return rebuild


DEAL_COLUMNS = ("id", "funnel_id", "title", "client_id", "owner_id", "department_id", "region",
                "source", "amount", "manual_stage", "stage", "lost_reason", "stage_entered_at",
                "stage_deadline_at", "closed_at", "payment_status", "ordered_amount",
                "invoiced_amount", "paid_amount", "shipped_amount", "has_orders", "created_at",
                "updated_at")
TIMELINE_COLUMNS = ("client_id", "at", "kind", "ref", "deal_id", "data")
REPLICA_COLUMNS = ("client_id", "short_name", "owner_id", "department_id", "region", "status",
                   "created_at", "last_interaction_at")


def fill_deals(clients_url: str, deals_url: str, *, n_deals: int, n_calls: int, n_emails: int,
               seed: int = 7, chunk: int = 50_000, log=print) -> dict:
    rng = random.Random(seed)
    started = time.perf_counter()
    src = psycopg2.connect(libpq_dsn(clients_url))
    conn = psycopg2.connect(libpq_dsn(deals_url))
    cur = conn.cursor()
    cur.execute("SET synchronous_commit = off")
    cur.execute("SET maintenance_work_mem = '512MB'")

    # The clients as the deals service's replica keeps them (COPY out of one, into the other).
    buffer = io.StringIO()
    with src.cursor() as scur:
        scur.copy_expert(
            "COPY (SELECT id, short_name, owner_id, department_id, region, status, created_at, "
            "last_interaction_at FROM clients) TO STDOUT", buffer)
    src.close()
    buffer.seek(0)
    cur.execute("TRUNCATE client_replica")
    cur.copy_expert(sql.SQL("COPY client_replica ({}) FROM STDIN").format(
        sql.SQL(", ").join(map(sql.Identifier, REPLICA_COLUMNS))), buffer)
    cur.execute("SELECT client_id::text, owner_id::text, department_id::text, region "
                "FROM client_replica ORDER BY client_id")
    clients = cur.fetchall()
    if not clients:
        raise RuntimeError("no clients to give deals to")

    funnel_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    cur.execute("DELETE FROM funnels")
    cur.execute("INSERT INTO funnels (id, name, is_default, stages, updated_at) "
                "VALUES (%s, 'Основная', true, %s::jsonb, now())",
                (funnel_id, json.dumps(list(DEFAULT_STAGES), ensure_ascii=False)))
    rebuild = _drop_indexes(cur, "deals") + _drop_indexes(cur, "client_timeline")
    loader = _Loader(cur)

    # -- deals, and their stage moves on the clients' timelines ------------------------------------
    counts = {"deals": 0, "open": 0, "timeline_stage": 0, "timeline_call": 0,
              "timeline_email": 0}
    deal_lines, timeline_lines = [], []
    n_clients = len(clients)

    def flush(force=False):
        nonlocal deal_lines, timeline_lines
        if force or len(deal_lines) >= chunk:
            loader.put("deals", DEAL_COLUMNS, deal_lines)
            deal_lines = []
        if force or len(timeline_lines) >= chunk * 4:
            loader.put("client_timeline", TIMELINE_COLUMNS, timeline_lines)
            timeline_lines = []

    # A deal has an owner: deals go to clients that have one (pool clients get calls only).
    owned = [c for c in clients if c[1]] or clients
    for i in range(n_deals):
        client_id, owner, dept, region = owned[rng.randrange(len(owned))]
        created = NOW - timedelta(seconds=rng.randrange(SPAN_SECONDS))
        deal_id = _uid(rng)
        amount = rng.randrange(20_000, 3_000_000)
        recent = (NOW - created).days < OPEN_DAYS
        # How far it went: each step taken with its chance; it stops open (recent) or lost.
        reached = 0
        while reached < len(ADVANCE) and rng.random() < ADVANCE[reached]:
            reached += 1
        stage = LADDER[reached]
        at = created
        moves = []
        for step in range(reached + 1):
            moves.append((LADDER[step], at))
            if step < reached:
                at = at + timedelta(hours=rng.expovariate(1 / 72))
        lost_reason = NULL
        closed = NULL
        if stage != "closed_won" and not (recent and rng.random() < 0.7):
            stage_from = stage
            stage = "lost"
            at = at + timedelta(hours=rng.expovariate(1 / 96))
            moves.append(("lost", at))
            lost_reason = rng.choice(("Дорого", "Выбрал конкурента", "Нет бюджета",
                                      "Не отвечает"))
            closed = _ts(at)
            manual = stage_from if stage_from in MANUAL else "proposal"
        else:
            manual = stage if stage in MANUAL else "proposal"
            if stage == "closed_won":
                closed = _ts(at)
            else:
                counts["open"] += 1
        at = min(at, NOW)
        erp = reached >= 3
        won = stage == "closed_won"
        ordered = amount if erp else 0
        deadline = NULL if closed != NULL else _ts(at + timedelta(days=14))
        deal_lines.append("\t".join((
            deal_id, funnel_id, f"Интерес {i + 1}", client_id, owner, dept or NULL,
            region or NULL, rng.choice(SOURCES), f"{amount}.00", manual, stage, lost_reason,
            _ts(at), deadline, closed, "paid" if won else "unpaid", f"{ordered}.00",
            f"{ordered}.00", f"{amount if won else 0}.00", f"{amount if won else 0}.00",
            "t" if erp else "f", _ts(created), _ts(at))) + "\n")
        previous = None
        for to_stage, moved_at in moves:
            came_from = "null" if previous is None else f'"{previous}"'
            cause = "erp" if to_stage in LADDER[3:] else "user"
            timeline_lines.append(
                f"{client_id}\t{_ts(min(moved_at, NOW))}\tstage\t{_ts(moved_at)}:{to_stage}\t"
                f'{deal_id}\t{{"from_stage": {came_from}, "to_stage": "{to_stage}", '
                f'"cause": "{cause}", "changed_by": "{owner}"}}\n')
            previous = to_stage
        counts["timeline_stage"] += len(moves)
        counts["deals"] += 1
        flush()
    flush(force=True)

    # -- calls and e-mails: each client's share (exponential: a few busy clients, a long tail) --
    def spread(total: int) -> list[int]:
        weights = [rng.expovariate(1.0) for _ in range(n_clients)]
        scale = total / sum(weights)
        return [int(w * scale + rng.random()) for w in weights]

    calls, emails = spread(n_calls), spread(n_emails)
    for (client_id, owner, _, _), n_c, n_e in zip(clients, calls, emails, strict=True):
        user = f'"{owner}"' if owner else "null"
        for _ in range(n_c):
            at = NOW - timedelta(seconds=rng.randrange(SPAN_SECONDS))
            call_id = _uid(rng)
            answered = rng.random() < 0.8
            duration = rng.randrange(20, 900) if answered else rng.randrange(5, 40)
            talk = duration - 5 if answered else 0
            direction = "outbound" if rng.random() < 0.55 else "inbound"
            timeline_lines.append(
                f"{client_id}\t{_ts(at)}\tcall\t{call_id}\t{NULL}\t"
                f'{{"call_id": "{call_id}", "direction": "{direction}", '
                f'"answered": {"true" if answered else "false"}, "user_id": {user}, '
                f'"duration_seconds": {duration}, "talk_seconds": {talk}, '
                f'"external_number": "+7912{rng.randrange(10**7):07d}", '
                f'"recording_url": null}}\n')
        for _ in range(n_e):
            at = NOW - timedelta(seconds=rng.randrange(SPAN_SECONDS))
            message_id = f"<{rng.getrandbits(64):016x}@mail.bench>"
            timeline_lines.append(
                f"{client_id}\t{_ts(at)}\temail\t{message_id}\t{NULL}\t"
                f'{{"message_id": "{message_id}", '
                f'"direction": "{"outbound" if rng.random() < 0.5 else "inbound"}", '
                f'"subject": "Re: коммерческое предложение № {rng.randrange(1, 9999)}", '
                f'"user_id": {user}}}\n')
        counts["timeline_call"] += n_c
        counts["timeline_email"] += n_e
        flush()
    flush(force=True)
    loader.close()
    generated = time.perf_counter() - started
    log(f"  deals and timeline copied ({generated:.0f} s); rebuilding indexes")
    for statement in rebuild:
        cur.execute(statement)
    # A system that has run for five years has already reacted to its past: stalled deals are
    # marked, forgotten clients were reminded of. Without this the first minutes measured would
    # be the periodic scans' one-off burst over the whole history.
    cur.execute("UPDATE deals SET stalled_at = stage_deadline_at "
                "WHERE closed_at IS NULL AND stage_deadline_at < now()")
    cur.execute("UPDATE client_replica SET reminded_at = now() WHERE owner_id IS NOT NULL "
                "AND coalesce(last_interaction_at, created_at) < now() - interval '30 days'")
    conn.commit()
    conn.autocommit = True
    cur.execute("VACUUM (ANALYZE) deals, client_timeline, client_replica")
    conn.close()
    counts["seconds"] = round(time.perf_counter() - started, 1)
    counts["funnel_id"] = funnel_id
    return counts
