"""Logistics: 1C shipments into transport orders, a stop's status change, the planner.

    .venv/bin/python bench/logistics.py [--shipments 2000] [--changes 300] [--runs 3]

The logistics service runs as its own process (``nameko run`` with config.yaml) on a fresh vhost
and database. Figures (medians of the runs, same machine, same run):
- shipments: ``erp_shipment_posted`` events (3 lines each, weights derived from the units)
  published as the bridge would, until every one is a transport order — against the raw broker
  (persistent, batched confirms, manual acks; ``event_pipeline.raw_broker``);
- status change: ``set_stop_status`` over RPC (stop, order and trip rows locked, the cost split
  recomputed, ``delivery_status_changed`` in the outbox) — median and p99 against a trivial RPC of
  the same service (``list_carriers`` on an empty table) measured in the same run;
- planner: ``propose`` over 2,000 waiting orders in 12 regions and 100 vehicles (pure Python).
Writes bench/results/logistics.json.
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

import sqlalchemy as sa  # noqa: E402
from nameko.standalone.rpc import ClusterRpcProxy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from event_pipeline import (  # noqa: E402
    AMQP_HOST,
    drop_vhost,
    make_vhost,
    raw_broker,
    start_service,
    stop_processes,
)

from crm_platform.identity import IDENTITY_CONTEXT_KEY  # noqa: E402
from crm_platform.testing import TestDatabases, empty_database, publish_events  # noqa: E402
from services.logistics.domain import planner  # noqa: E402

DISPATCHER = {"user_id": "00000000-0000-4000-8000-00000000d150", "role": "dispatcher",
              "username": "bench.dispatcher"}
REGIONS = ["RU-SVE", "RU-CHE", "RU-TYU", "RU-PER", "RU-BA", "RU-TA", "RU-SAM", "RU-NIZ",
           "RU-MOW", "RU-SPE", "RU-NVS", "RU-KDA"]


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def wait_ready(rpc, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        try:
            rpc.logistics.list_carriers()
            return
        except Exception:  # noqa: BLE001 - not up yet
            if time.monotonic() > deadline:
                raise
            eventlet.sleep(0.5)


def shipments(n: int, client_id: str) -> list:
    now = datetime.now(UTC)
    items = []
    for i in range(n):
        items.append(("erp_bridge", "erp_shipment_posted", {
            "document_guid": uuid.uuid4(), "document_version": "v1", "revision": 1,
            "client_id": client_id, "number": f"РТУ-{i:06d}", "document_date": now,
            "amount": Decimal("150000.00"), "order_guid": uuid.uuid4(), "lines": [
                {"product_name": "Профнастил С8", "quantity": "1.2", "unit_code": "168",
                 "amount": "90000.00"},
                {"product_name": "Саморезы", "quantity": "40", "unit_code": "166",
                 "amount": "10000.00"},
                {"product_name": "Панели", "quantity": "20", "unit_code": "796",
                 "amount": "50000.00", "weight_kg": "640"}]}))
    return items


def shipments_to_orders(db_url: str, amqp_uri: str, n: int) -> float:
    items = shipments(n, str(uuid.uuid4()))
    engine = sa.create_engine(db_url)
    started = time.perf_counter()
    for start in range(0, n, 500):
        publish_events(amqp_uri, items[start:start + 500])
    while True:
        with engine.connect() as conn:
            done = conn.execute(sa.text("SELECT count(*) FROM transport_orders")).scalar()
        if done >= n:
            break
        eventlet.sleep(0.05)
    rate = n / (time.perf_counter() - started)
    engine.dispose()
    return rate


def status_changes(rpc, changes: int) -> tuple[list, list]:
    """Latencies (ms) of set_stop_status and of a trivial RPC, interleaved."""
    vehicle = rpc.logistics.save_vehicle({
        "plate": f"А{random.randint(100, 999)}ВС96", "kind": "flatbed", "payload_t": "20",
        "body_length_m": "13.6", "per_km_rate": "45", "per_hour_rate": "600"})
    driver = rpc.logistics.save_driver({"full_name": "Водитель", "phone": "+79120001122",
                                        "licence": "6600111222"})
    start = datetime.now(UTC) + timedelta(days=30)
    stops = []
    per_trip = 3
    for t in range(changes // (3 * per_trip) + 1):
        orders = [rpc.logistics.create_transport_order({
            "consignee": f"Клиент {t}-{k}", "address": "Екатеринбург", "region": "RU-SVE",
            "window_start": start.isoformat(), "window_end": (start + timedelta(hours=9))
            .isoformat(), "weight_kg": "1500"})["id"] for k in range(per_trip)]
        trip = rpc.logistics.create_trip({
            "vehicle_id": vehicle["id"], "driver_id": driver["id"],
            "planned_start": (start + timedelta(days=t)).isoformat(), "distance_km": "120",
            "duration_h": "6", "order_ids": orders})
        stops += [s["id"] for s in trip["stops"]]
    moves, trivial = [], []
    done = 0
    for status in ("loading", "in_transit", "delivered"):
        for stop in stops:
            if done >= changes:
                break
            began = time.perf_counter()
            rpc.logistics.set_stop_status(stop, status)
            moves.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            rpc.logistics.list_carriers()
            trivial.append((time.perf_counter() - began) * 1000)
            done += 1
    return moves, trivial


def planner_runs(runs: int = 20) -> list:
    rng = random.Random(5)
    day = datetime(2026, 12, 7, 6, tzinfo=UTC)
    orders = []
    for i in range(2000):
        start = day + timedelta(hours=rng.choice([0, 2, 4, 24]))
        orders.append(planner.OrderToPlan(
            f"o{i}", f"ТЗ-{i:06d}", rng.choice(REGIONS), start,
            start + timedelta(hours=rng.choice([4, 8, 10, 30])),
            Decimal(rng.randint(300, 9000)), Decimal(rng.choice(["3", "6", "8", "12"])),
            rng.random() < 0.05))
    vehicles = [planner.Vehicle(f"v{i}", f"V{i}", rng.choice(["curtain_sider", "flatbed",
                                                              "crane"]),
                                Decimal(rng.choice([5000, 10000, 20000])),
                                Decimal(rng.choice(["6.5", "8", "13.6"]))) for i in range(100)]
    timings = []
    for _ in range(runs):
        began = time.perf_counter()
        proposal = planner.propose(orders, vehicles)
        timings.append((time.perf_counter() - began) * 1000)
    assert sum(len(t.orders) for t in proposal.trips) + len(proposal.unplaced) == 2000
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shipments", type=int, default=2000)
    parser.add_argument("--changes", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    databases = TestDatabases()
    vhost = make_vhost()
    amqp_uri = f"amqp://guest:guest@{AMQP_HOST}/{vhost}"
    figures = {"raw_publish": [], "raw_consume": [], "shipments": []}
    moves, trivial = [], []
    process = None
    try:
        db_url = databases.url_for("logistics")
        process = start_service("logistics", "LogisticsService", db_url, vhost,
                                CRM_LATENESS_SCAN_SECONDS="0",
                                CRM_LOGISTICS_FILES_DIR="/tmp/bench-logistics-files")
        with ClusterRpcProxy({"AMQP_URI": amqp_uri},
                             context_data={IDENTITY_CONTEXT_KEY: DISPATCHER}) as rpc:
            wait_ready(rpc)
            for run in range(args.runs):
                publish, consume = raw_broker(vhost, 20000)
                figures["raw_publish"].append(publish)
                figures["raw_consume"].append(consume)
                empty_database(db_url)
                figures["shipments"].append(shipments_to_orders(db_url, amqp_uri,
                                                                args.shipments))
                empty_database(db_url)
                m, t = status_changes(rpc, args.changes)
                moves += m
                trivial += t
                print(f"run {run + 1}: shipments {figures['shipments'][-1]:,.0f}/s, status "
                      f"change p50 {statistics.median(m):.1f} ms, trivial RPC p50 "
                      f"{statistics.median(t):.1f} ms", flush=True)
    finally:
        if process is not None:
            stop_processes([process])
        databases.drop_all()
        drop_vhost(vhost)
    plans = planner_runs()

    median = {k: statistics.median(v) for k, v in figures.items()}
    baseline = min(median["raw_publish"], median["raw_consume"])
    results = [
        {"figure": "1C shipments to transport orders (events in, orders stored)",
         "value": round(median["shipments"]), "unit": "events/s",
         "runs": [round(v) for v in figures["shipments"]],
         "baseline": "raw broker, persistent, batched confirms + manual ack "
                     "(min of publish and consume)",
         "baseline_value": round(baseline), "ratio": round(median["shipments"] / baseline, 4)},
        {"figure": "stop status change over RPC (set_stop_status), median",
         "value": round(statistics.median(moves), 2), "unit": "ms",
         "p99": round(percentile(moves, 0.99), 2), "samples": len(moves),
         "baseline": "trivial RPC of the same service (list_carriers), median",
         "baseline_value": round(statistics.median(trivial), 2),
         "baseline_p99": round(percentile(trivial, 0.99), 2),
         "ratio": round(statistics.median(moves) / statistics.median(trivial), 2)},
        {"figure": "planner proposal, 2,000 orders / 100 vehicles, median",
         "value": round(statistics.median(plans), 1), "unit": "ms",
         "p99": round(percentile(plans, 0.99), 1), "samples": len(plans)},
        {"figure": "raw broker publish (batched confirms)", "value": round(median["raw_publish"]),
         "unit": "msg/s"},
        {"figure": "raw broker consume (manual ack)", "value": round(median["raw_consume"]),
         "unit": "msg/s"},
    ]
    report = {"name": "logistics", "shipments_per_run": args.shipments,
              "status_changes_per_run": args.changes, "runs": args.runs,
              "machine": f"{platform.node()} {platform.machine()} {platform.python_version()}",
              "date": datetime.now(UTC).isoformat(timespec="seconds"), "figures": results}
    out = ROOT / "bench" / "results" / "logistics.json"
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    for fig in results:
        extra = f"  p99 {fig['p99']}" if "p99" in fig else ""
        ratio = f"  ratio {fig['ratio']} of baseline" if "ratio" in fig else ""
        print(f"{fig['figure']:62s} {fig['value']:>10,} {fig['unit']}{extra}{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
