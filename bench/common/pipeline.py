"""The event pipeline of the running system against the raw broker, in the same run (a child
process of bench/company.py and bench/soak.py: bench/event_pipeline.py and bench/deals_erp.py,
reused here, patch the process for eventlet when imported).

    python -m bench.common.pipeline SPEC.json     # prints the result as JSON on the last line

In: 1C postings as the erp_bridge publishes them (``bench/deals_erp.py``'s life of an order:
order, invoice, shipments, payment — for open deals of the generated funnel) and finished PBX
calls as telephony publishes them (``call_registered`` for the generated clients and their
owners), interleaved, published with batched confirms to the producers' exchanges. Out: every
consumer of the system handles them — deals moves the deals up the funnel (stage changes into its
outbox, relayed to reports, logistics, payroll ...), reports writes its facts and rollup rows,
clients, payroll and logistics their own — until the vhost's queues are empty, no outbox holds
unsent rows and nothing was handled for a few seconds. The rate is events in / (last handled
event's commit - first publish), from each service's ``processed_events.handled_at``.
"""

from __future__ import annotations

import json
import random
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import amqp  # noqa: E402
import requests  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from deals_erp import life_of_an_order  # noqa: E402
from event_pipeline import AMQP_HOST, raw_broker  # noqa: E402

from bench.common.stack import _api  # noqa: E402
from crm_platform.contracts import make_envelope  # noqa: E402


def erp_and_calls(deals_url: str, n_deals: int, n_calls: int, seed: int = 5,
                  exclude_owners=()) -> tuple:
    """([(exchange, routing key, body)], the deals, ERP postings, calls): each deal's documents
    in order, calls in between. Deals of ``exclude_owners`` get no postings."""
    rng = random.Random(seed)
    engine = sa.create_engine(deals_url)
    with engine.connect() as conn:
        plan = [{"deal_id": r.id, "client_id": r.client_id} for r in conn.execute(sa.text(
            "SELECT id, client_id FROM deals WHERE closed_at IS NULL AND client_id IS NOT NULL "
            "AND stage IN ('new', 'qualified', 'proposal') "
            "AND NOT (owner_id::text = ANY(:exclude)) ORDER BY id LIMIT :n"),
            {"n": n_deals, "exclude": list(exclude_owners)})]
        callers = conn.execute(sa.text(
            "SELECT client_id, owner_id, department_id FROM client_replica "
            "ORDER BY random() LIMIT :n"), {"n": max(1, min(n_calls, 50_000))}).all()
    engine.dispose()
    lives = [life_of_an_order(deal, 5) for deal in plan]
    erp = []
    for step in range(max((len(life) for life in lives), default=0)):
        for life in lives:
            if step < len(life):
                event_type, payload = life[step]
                erp.append(("erp_bridge.events", event_type, json.dumps(
                    make_envelope("erp_bridge", event_type, payload)).encode()))
    calls = []
    for i in range(n_calls):
        client_id, owner_id, department_id = callers[i % len(callers)]
        answered = rng.random() < 0.8
        duration = rng.randrange(30, 600) if answered else rng.randrange(5, 40)
        payload = {"call_id": uuid.uuid4(), "client_id": client_id, "user_id": owner_id,
                   "direction": rng.choice(("inbound", "outbound")), "answered": answered,
                   "started_at": datetime.now(UTC), "duration_seconds": duration,
                   "talk_seconds": duration - 5 if answered else 0,
                   "external_number": f"+7912{rng.randrange(10**7):07d}",
                   "department_id": department_id}
        calls.append(("telephony.events", "call_registered", json.dumps(
            make_envelope("telephony", "call_registered", payload)).encode()))
    # A day's mix: calls and postings interleaved, each stream in its own order.
    out, ci, ei = [], 0, 0
    while ci < len(calls) or ei < len(erp):
        if ei < len(erp) and (ci >= len(calls) or rng.random() < len(erp) / (len(erp) + len(
                calls))):
            out.append(erp[ei])
            ei += 1
        else:
            out.append(calls[ci])
            ci += 1
    return out, plan, len(erp), len(calls)


def publish(vhost: str, messages: list[tuple], batch: int = 1000) -> float:
    """Persistent messages with batched publisher confirms (what the outbox relay does)."""
    conn = amqp.Connection(host=AMQP_HOST, virtual_host=vhost)
    conn.connect()
    ch = conn.channel()
    for exchange in {m[0] for m in messages}:
        ch.exchange_declare(exchange, "topic", durable=True, auto_delete=False)
    ch.confirm_select()
    pending = set()
    ch.events["basic_ack"].add(lambda tag, multiple: pending.difference_update(
        [t for t in pending if t <= tag] if multiple else [tag]))
    started, tag = time.perf_counter(), 0
    for i, (exchange, key, body) in enumerate(messages):
        ch.basic_publish(amqp.Message(body, delivery_mode=2, content_type="application/json"),
                         exchange=exchange, routing_key=key)
        tag += 1
        pending.add(tag)
        if (i + 1) % batch == 0:
            while pending:
                conn.drain_events(timeout=30)
    while pending:
        conn.drain_events(timeout=30)
    rate = len(messages) / (time.perf_counter() - started)
    conn.close()
    return rate


def _counts(engines: dict, since: datetime) -> dict:
    out = {}
    for name, engine in engines.items():
        with engine.connect() as conn:
            handled, last = conn.execute(sa.text(
                "SELECT count(*), max(handled_at) FROM processed_events WHERE handled_at >= :t"),
                {"t": since}).one()
            unsent = conn.execute(sa.text(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL")).scalar()
        out[name] = {"handled": handled, "last": last, "unsent": unsent}
    return out


def queue_depth(vhost: str) -> tuple[int, int]:
    """(messages waiting in the handlers' queues, messages parked as dead letters)."""
    base, auth = _api()
    queues = requests.get(f"{base}/api/queues/{vhost}", auth=auth, timeout=10,
                          params={"columns": "name,messages"}).json()
    waiting = sum(q.get("messages") or 0 for q in queues
                  if not q["name"].startswith("crm.retry") and "dead_letters" not in q["name"])
    retrying = sum(q.get("messages") or 0 for q in queues if q["name"].startswith("crm.retry"))
    dead = sum(q.get("messages") or 0 for q in queues if "dead_letters" in q["name"])
    return waiting + retrying, dead


def run(spec: dict) -> dict:
    vhost = spec["vhost"]
    raw_publish, raw_consume = raw_broker(vhost, spec["raw_messages"])
    baseline = min(raw_publish, raw_consume)
    print(f"  raw broker: publish {raw_publish:,.0f}/s, consume {raw_consume:,.0f}/s",
          flush=True)
    messages, plan, n_erp, n_calls = erp_and_calls(spec["urls"]["deals"], spec["deals"],
                                                      spec["calls"])
    engines = {name: sa.create_engine(url, pool_size=1) for name, url in spec["urls"].items()}
    since = datetime.now(UTC)
    started = time.perf_counter()
    publish_rate = publish(vhost, messages)
    print(f"  published {len(messages):,} events ({n_erp:,} ERP postings for {len(plan):,} deals, "
          f"{n_calls:,} calls) at {publish_rate:,.0f}/s", flush=True)
    stable, last_total, counts = 0, -1, {}
    deadline = started + spec.get("timeout", 900)
    last_print = started
    while time.perf_counter() < deadline:
        time.sleep(1)
        counts = _counts(engines, since)
        total = sum(c["handled"] for c in counts.values())
        unsent = sum(c["unsent"] for c in counts.values())
        waiting, dead = queue_depth(vhost)
        stable = stable + 1 if total == last_total and not unsent and not waiting else 0
        last_total = total
        if time.perf_counter() - last_print > 10:
            last_print = time.perf_counter()
            print(f"    {time.perf_counter() - started:5.0f} s: {total:,} handled, "
                  f"{waiting:,} queued, {unsent:,} in outboxes", flush=True)
        # The management API's queue figures lag by up to 5 s: quiet for 6 polls in a row.
        if stable >= 6:
            break
    complete = stable >= 6
    last = max((c["last"] for c in counts.values() if c["last"]), default=since)
    seconds = max((last - since).total_seconds(), 1e-3)
    _, dead = queue_depth(vhost)
    with engines["deals"].connect() as conn:
        moves = conn.execute(sa.text(
            "SELECT count(*) FROM outbox WHERE type = 'deal_stage_changed' AND created_at >= :t"),
            {"t": since}).scalar()
        won = conn.execute(sa.text(
            "SELECT count(*) FROM deals WHERE id = ANY(:ids) AND stage = 'closed_won' "
            "AND payment_status = 'paid'"), {"ids": [d["deal_id"] for d in plan]}).scalar()
    for engine in engines.values():
        engine.dispose()
    rate = len(messages) / seconds
    return {"events_in": len(messages), "erp_postings": n_erp, "calls": n_calls,
            "deals": len(plan), "deals_won_and_paid": won, "publish_rate": round(publish_rate),
            "seconds": round(seconds, 2), "events_per_s": round(rate, 1),
            "raw_publish": round(raw_publish), "raw_consume": round(raw_consume),
            "baseline": round(baseline), "ratio": round(rate / baseline, 4),
            "complete": complete, "dead_letters": dead, "stage_changes_out": moves,
            "handled_by_service": {n: c["handled"] for n, c in counts.items()},
            "handled_total": sum(c["handled"] for c in counts.values())}


def feed(spec: dict) -> dict:
    """A steady background stream (bench/soak.py): ``calls_per_s`` calls and ``erp_per_s`` 1C
    postings, published one by one with confirms until ``seconds`` have passed."""
    seconds = spec["seconds"]
    rate = spec["calls_per_s"] + spec["erp_per_s"]
    messages, _, _, _ = erp_and_calls(
        spec["deals_url"], int(spec["erp_per_s"] * seconds / 5) + 1,
        int(spec["calls_per_s"] * seconds) + 1, exclude_owners=spec["exclude_owners"])
    conn = amqp.Connection(host=AMQP_HOST, virtual_host=spec["vhost"])
    conn.connect()
    ch = conn.channel()
    for exchange in {m[0] for m in messages}:
        ch.exchange_declare(exchange, "topic", durable=True, auto_delete=False)
    ch.confirm_select()
    sent: dict[str, int] = {}
    started = time.monotonic()
    next_at = started
    for exchange, key, body in messages:
        if time.monotonic() - started >= seconds:
            break
        ch.basic_publish(amqp.Message(body, delivery_mode=2, content_type="application/json"),
                         exchange=exchange, routing_key=key, confirm_timeout=30)
        sent[key] = sent.get(key, 0) + 1
        next_at += 1 / rate
        time.sleep(max(0.0, next_at - time.monotonic()))
    conn.close()
    return sent


if __name__ == "__main__":
    if sys.argv[1] == "--feed":
        print(json.dumps(feed(json.loads(Path(sys.argv[2]).read_text()))))
    else:
        print(json.dumps(run(json.loads(Path(sys.argv[1]).read_text())), default=str))
