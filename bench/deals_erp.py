"""ERP events into the funnel: 100k erp_bridge events applied to 20k deals through RabbitMQ.

    .venv/bin/python bench/deals_erp.py [--deals 20000] [--events-per-deal 5] [--runs 1]

Each deal gets the whole life of one customer order as the bridge emits it — order posted,
invoice posted, a part shipment, the rest shipped, the payment — so almost every event moves a
deal one stage (with its history row, tasks closed and opened, timeline entry and outbox events):
the full work of the funnel, not a counter. Events of different deals are interleaved.

Figures (same machine, same run):
- raw broker: persistent messages published with batched confirms, consumed with manual acks
  (the baseline of DESIGN.md §5; min of publish and consume);
- deals: from the first publish until the deals service has handled every event (its batch
  consumer), events/s, and the ratio to the raw broker;
- how the publish itself went (batched confirms from this process), and a check that every deal
  ended where its documents say (closed_won, paid).
Writes bench/results/deals_erp.json.
"""

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from decimal import Decimal  # noqa: E402
from pathlib import Path  # noqa: E402

import amqp  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from nameko.containers import ServiceContainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from event_pipeline import AMQP_HOST, drop_vhost, make_vhost, raw_broker  # noqa: E402

from crm_platform.contracts import make_envelope  # noqa: E402
from crm_platform.migrate import upgrade  # noqa: E402
from crm_platform.testing import TestDatabases  # noqa: E402
from services.deals.domain.funnel import DEFAULT_STAGES  # noqa: E402
from services.deals.models import (  # noqa: E402
    client_replica,
    deals,
    departments,
    funnels,
    staff,
)
from services.deals.service import DealsService  # noqa: E402


def seed(url: str, n_deals: int) -> list[dict]:
    """6 departments × 16 managers, one client and one open deal ("proposal") per deal."""
    engine = sa.create_engine(url)
    now = datetime.now(UTC)
    rng = random.Random(11)
    managers = []
    with engine.begin() as conn:
        funnel_id = uuid.uuid4()
        conn.execute(sa.insert(funnels).values(id=funnel_id, name="Основная", is_default=True,
                                               stages=list(DEFAULT_STAGES), updated_at=now))
        for d in range(6):
            dept, head = uuid.uuid4(), uuid.uuid4()
            conn.execute(sa.insert(staff).values(user_id=head, full_name=f"Head {d}",
                                                 role="sales_head", department_id=dept,
                                                 active=True))
            conn.execute(sa.insert(departments).values(department_id=dept, name=f"Dept {d}",
                                                       head_user_id=head, regions=[]))
            for m in range(16):
                user = uuid.uuid4()
                conn.execute(sa.insert(staff).values(user_id=user, full_name=f"M {d}.{m}",
                                                     role="manager", department_id=dept,
                                                     active=True))
                managers.append((user, dept))
        plan = []
        clients, deal_rows = [], []
        for i in range(n_deals):
            owner, dept = rng.choice(managers)
            client_id, deal_id = uuid.uuid4(), uuid.uuid4()
            clients.append({"client_id": client_id, "short_name": f"Клиент {i}",
                            "owner_id": owner, "department_id": dept, "region": "RU-SVE",
                            "status": "active", "created_at": now, "last_interaction_at": now})
            deal_rows.append({
                "id": deal_id, "funnel_id": funnel_id, "title": f"Интерес {i}",
                "client_id": client_id, "owner_id": owner, "department_id": dept,
                "source": "manual", "amount": Decimal("100000.00"), "manual_stage": "proposal",
                "stage": "proposal", "stage_entered_at": now,
                "stage_deadline_at": now + timedelta(days=14), "created_at": now,
                "updated_at": now})
            plan.append({"deal_id": deal_id, "client_id": client_id})
        for start in range(0, n_deals, 5000):
            conn.execute(sa.insert(client_replica), clients[start:start + 5000])
            conn.execute(sa.insert(deals), deal_rows[start:start + 5000])
    engine.dispose()
    return plan


def life_of_an_order(deal: dict, per_deal: int) -> list[tuple[str, dict]]:
    """The bridge's events for one order: posted, invoiced, shipped in parts, paid."""
    order, amount = uuid.uuid4(), Decimal("120000.00")
    when = datetime.now(UTC)

    def fact(guid, kind_amount, **extra):
        return {"document_guid": guid, "document_version": "1", "revision": 1,
                "client_id": deal["client_id"], "number": "УТ-1", "document_date": when,
                "amount": kind_amount, **extra}

    events = [("erp_order_posted", fact(order, amount, deal_id=deal["deal_id"])),
              ("erp_invoice_posted", fact(uuid.uuid4(), amount, order_guid=order))]
    shipments = max(1, per_deal - 3)
    part = (amount / shipments).quantize(Decimal("0.01"))
    for n in range(shipments):
        value = part if n < shipments - 1 else amount - part * (shipments - 1)
        events.append(("erp_shipment_posted", fact(uuid.uuid4(), value, order_guid=order)))
    events.append(("erp_payment_posted", fact(uuid.uuid4(), amount, allocations=[
        {"order_guid": order, "amount": amount}])))
    return events


def interleave(plan: list[dict], per_deal: int) -> list[bytes]:
    """Every deal's events in its own order, deals interleaved: step k of every deal is sent
    before step k+1 of any (as a day of 1C postings would mix them)."""
    lives = [life_of_an_order(deal, per_deal) for deal in plan]
    bodies = []
    for step in range(max(len(life) for life in lives)):
        for life in lives:
            if step < len(life):
                event_type, payload = life[step]
                bodies.append((event_type, json.dumps(make_envelope(
                    "erp_bridge", event_type, payload)).encode()))
    return bodies


def publish(vhost: str, bodies: list) -> float:
    conn = amqp.Connection(host=AMQP_HOST, virtual_host=vhost)
    conn.connect()
    ch = conn.channel()
    ch.exchange_declare("erp_bridge.events", "topic", durable=True, auto_delete=False)
    ch.confirm_select()
    pending = set()
    ch.events["basic_ack"].add(lambda tag, multiple: pending.difference_update(
        [t for t in pending if t <= tag] if multiple else [tag]))
    started, tag = time.perf_counter(), 0
    for i, (event_type, body) in enumerate(bodies):
        ch.basic_publish(amqp.Message(body, delivery_mode=2, content_type="application/json"),
                         exchange="erp_bridge.events", routing_key=event_type)
        tag += 1
        pending.add(tag)
        if (i + 1) % 1000 == 0:
            while pending:
                conn.drain_events(timeout=30)
    while pending:
        conn.drain_events(timeout=30)
    rate = len(bodies) / (time.perf_counter() - started)
    conn.close()
    return rate


def run(databases: TestDatabases, vhost: str, n_deals: int, per_deal: int) -> dict:
    url = databases.blank(f"bench_deals_{uuid.uuid4().hex[:6]}")
    upgrade("deals", url)
    plan = seed(url, n_deals)
    bodies = interleave(plan, per_deal)
    container = ServiceContainer(DealsService, {
        "AMQP_URI": f"amqp://guest:guest@{AMQP_HOST}/{vhost}", "DB_URL": url,
        "WEB_SERVER_ADDRESS": "127.0.0.1:0", "max_workers": 10, "REACTION_SCAN_SECONDS": 0,
        "EVENT_RETRY_DELAYS_MS": "1000", "OUTBOX_POLL_INTERVAL": 0.5})
    container.start()      # declares and binds the batch queue before anything is published
    engine = sa.create_engine(url)
    started = time.perf_counter()
    publisher = eventlet.spawn(publish, vhost, bodies)
    last_print = started
    while True:
        with engine.connect() as conn:
            done = conn.execute(sa.text("SELECT count(*) FROM processed_events")).scalar()
        if done >= len(bodies):
            break
        if time.perf_counter() - last_print > 10:
            last_print = time.perf_counter()
            print(f"  {done:,}/{len(bodies):,} handled, "
                  f"{done / (last_print - started):,.0f}/s", flush=True)
        eventlet.sleep(0.2)
    elapsed = time.perf_counter() - started
    publish_rate = publisher.wait()
    with engine.connect() as conn:
        won = conn.execute(sa.text(
            "SELECT count(*) FROM deals WHERE stage = 'closed_won' AND payment_status = 'paid'"
        )).scalar()
        moves = conn.execute(sa.text("SELECT count(*) FROM stage_history")).scalar()
        outbox_rows = conn.execute(sa.text("SELECT count(*) FROM outbox")).scalar()
    container.stop()
    engine.dispose()
    return {"events": len(bodies), "seconds": elapsed, "rate": len(bodies) / elapsed,
            "publish_rate": publish_rate, "deals_won": won, "deals": n_deals,
            "stage_moves": moves, "outbox_events": outbox_rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=20000)
    parser.add_argument("--events-per-deal", type=int, default=5)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--raw-messages", type=int, default=50000)
    args = parser.parse_args()

    databases = TestDatabases()
    vhost = make_vhost()
    raw_publish, raw_consume, runs = [], [], []
    try:
        for n in range(args.runs):
            publish_rate, consume_rate = raw_broker(vhost, args.raw_messages)
            raw_publish.append(publish_rate)
            raw_consume.append(consume_rate)
            result = run(databases, vhost, args.deals, args.events_per_deal)
            runs.append(result)
            print(f"run {n + 1}: raw publish {publish_rate:,.0f}/s, raw consume "
                  f"{consume_rate:,.0f}/s; deals {result['rate']:,.0f} events/s "
                  f"({result['events']:,} in {result['seconds']:.1f} s), won "
                  f"{result['deals_won']:,}/{result['deals']:,}", flush=True)
    finally:
        databases.drop_all()
        drop_vhost(vhost)

    baseline = min(statistics.median(raw_publish), statistics.median(raw_consume))
    rate = statistics.median(r["rate"] for r in runs)
    figures = [
        {"figure": "ERP events applied to deals (batch consumer, end to end)",
         "value": round(rate), "unit": "events/s", "runs": [round(r["rate"]) for r in runs],
         "baseline": "raw broker, persistent, batched confirms + manual ack "
                     "(min of publish and consume)",
         "baseline_value": round(baseline), "ratio": round(rate / baseline, 3),
         "target_ratio": 0.333},
        {"figure": "raw broker publish (batched confirms)",
         "value": round(statistics.median(raw_publish)), "unit": "msg/s"},
        {"figure": "raw broker consume (manual ack)",
         "value": round(statistics.median(raw_consume)), "unit": "msg/s"},
        {"figure": "deals ending closed_won and paid", "value": runs[-1]["deals_won"],
         "unit": "deals", "of": runs[-1]["deals"]},
        {"figure": "stage moves written", "value": runs[-1]["stage_moves"], "unit": "rows"},
        {"figure": "events emitted by deals (outbox)", "value": runs[-1]["outbox_events"],
         "unit": "events"},
    ]
    report = {"name": "deals_erp", "deals": args.deals,
              "events_per_run": runs[-1]["events"], "runs": args.runs,
              "machine": f"{platform.node()} {platform.machine()} {platform.python_version()}",
              "date": datetime.now(UTC).isoformat(timespec="seconds"), "figures": figures}
    out = ROOT / "bench" / "results" / "deals_erp.json"
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    for fig in figures:
        ratio = f"  ratio {fig['ratio']:.3f} of baseline" if "ratio" in fig else ""
        print(f"{fig['figure']:58s} {fig['value']:>10,} {fig['unit']}{ratio}")
    return 0 if runs[-1]["deals_won"] == runs[-1]["deals"] else 1


if __name__ == "__main__":
    sys.exit(main())
