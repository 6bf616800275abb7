"""Payroll facts from ERP events: how fast realisations become KPI facts (and pushed widgets),
against the raw broker measured in the same run.

    .venv/bin/python bench/payroll_facts.py [--events 2000] [--runs 3] [--paced 200]

The payroll service runs as deployed (``nameko run``, config.yaml) on a fresh vhost and a migrated
database holding the organisation, a pay scheme, plans and the ownership of 200 clients. Figures:
- facts/s: a burst of ``erp_shipment_posted`` events (each a new document of a random client,
  published with batched confirms) until payroll has handled every one — claim, newest revision,
  owner at the document date, two facts, the draft document followed, ``kpi_changed`` emitted per
  touched manager — in batches (``batch_event_handler``, one transaction each); ratio to the raw
  broker (persistent, batched confirms + manual
  ack, the min of publish and consume: ``event_pipeline.raw_broker``);
- latency p50/p99 at a steady 20 events/s: the event's publication to its fact written (the
  ``kpi_changed`` it causes is in the same transaction; the batch consumer waits up to
  ``EVENT_BATCH_MAX_WAIT_MS``, 50 ms, for company), the budget being one second.
Writes bench/results/payroll_facts.json.
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
from pathlib import Path  # noqa: E402

import amqp  # noqa: E402

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

from crm_platform.contracts import make_envelope  # noqa: E402
from crm_platform.testing import ReplicatedOrg, TestDatabases, empty_database  # noqa: E402

CLIENTS = 200
SCHEME = {"fixed": "40000.00", "percentages": [{"kpi": "payments", "rate": "1"}],
          "weights": [], "total_cap": None, "what_if_kpi": "sales",
          "bonus": {"base_kpi": "sales", "mode": "whole", "base_amount": None, "cap": None,
                    "tiers": [{"from_pct": "80", "rate": "1"}, {"from_pct": "100", "rate": "2"}]}}


def seed(url: str) -> tuple[ReplicatedOrg, list[str]]:
    """The organisation, the managers' scheme, plans for this month and 200 owned clients."""
    empty_database(url)
    org = ReplicatedOrg(url)
    managers = [name for name, p in org.people.items() if p["role"] == "manager"]
    month = datetime.now(UTC).date().replace(day=1)
    org.execute("INSERT INTO pay_schemes (position, valid_from, version, name, definition) "
                "VALUES ('manager', '2026-01-01', 1, 'bench', CAST(:d AS jsonb))",
                d=json.dumps(SCHEME))
    for name in managers:
        org.execute("INSERT INTO sales_plans (user_id, month, department_id, sales) "
                    "VALUES (:u, :m, :d, 1000000)", u=org.id(name), m=month,
                    d=org.people[name]["department_id"])
    clients = []
    rng = random.Random(3)
    for _ in range(CLIENTS):
        client_id, owner = str(uuid.uuid4()), rng.choice(managers)
        org.execute("INSERT INTO client_owners (client_id, valid_from, owner_id, department_id) "
                    "VALUES (:c, now() - interval '1 year', :o, :d)", c=client_id,
                    o=org.id(owner), d=org.people[owner]["department_id"])
        clients.append(client_id)
    return org, clients


def shipment(client_id: str) -> bytes:
    amount = f"{random.randint(10_000, 900_000)}.00"
    return json.dumps(make_envelope("erp_bridge", "erp_shipment_posted", {
        "document_guid": str(uuid.uuid4()), "document_version": "1", "revision": 1,
        "client_id": client_id, "number": "РТ-1", "document_date": datetime.now(UTC),
        "amount": amount, "lines": [{"quantity": "1", "amount": amount, "weight_kg": "1500"}]}
    )).encode()


class Publisher:
    """Persistent messages to ``erp_bridge.events`` with publisher confirms (batched)."""

    def __init__(self, vhost: str):
        self.conn = amqp.Connection(host=AMQP_HOST, virtual_host=vhost)
        self.conn.connect()
        self.ch = self.conn.channel()
        self.ch.exchange_declare("erp_bridge.events", "topic", durable=True, auto_delete=False)
        self.ch.confirm_select()
        self.pending: set[int] = set()
        self.tag = 0
        self.ch.events["basic_ack"].add(lambda tag, multiple: self.pending.difference_update(
            [t for t in self.pending if t <= tag] if multiple else [tag]))

    def publish(self, body: bytes) -> None:
        self.ch.basic_publish(amqp.Message(body, delivery_mode=2,
                                           content_type="application/json"),
                              exchange="erp_bridge.events", routing_key="erp_shipment_posted")
        self.tag += 1
        self.pending.add(self.tag)

    def confirm(self) -> None:
        while self.pending:
            self.conn.drain_events(timeout=10)

    def close(self) -> None:
        self.conn.close()


def wait_handled(org: ReplicatedOrg, n: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while org.scalar("SELECT count(*) FROM processed_events") < n:
        if time.monotonic() > deadline:
            raise SystemExit("payroll did not handle the events in time")
        time.sleep(0.05)


def warm_up(org: ReplicatedOrg, publisher: Publisher, client: str) -> None:
    """Until payroll's queue exists an event is dropped (no binding yet): publish until one is
    handled."""
    deadline = time.monotonic() + 60
    while org.scalar("SELECT count(*) FROM processed_events") == 0:
        if time.monotonic() > deadline:
            raise SystemExit("payroll did not start")
        publisher.publish(shipment(client))
        publisher.confirm()
        time.sleep(0.5)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--paced", type=int, default=200, help="events of the latency run")
    args = parser.parse_args()

    databases = TestDatabases()
    vhost = make_vhost()
    rates, raw, latencies = [], [], []
    process = None
    try:
        url = databases.url_for("payroll")
        for run in range(args.runs):
            publish, consume = raw_broker(vhost, args.events)
            raw.append(min(publish, consume))
            org, clients = seed(url)
            process = start_service("payroll", "PayrollService", url, vhost)
            publisher = Publisher(vhost)
            warm_up(org, publisher, clients[0])
            time.sleep(1.0)                     # the rest of the warm-up events handled
            base = org.scalar("SELECT count(*) FROM processed_events")
            bodies = [shipment(random.choice(clients)) for _ in range(args.events)]
            started = time.perf_counter()
            for i, body in enumerate(bodies):
                publisher.publish(body)
                if (i + 1) % 1000 == 0:
                    publisher.confirm()
            publisher.confirm()
            wait_handled(org, base + args.events)
            rates.append(args.events / (time.perf_counter() - started))
            if run == args.runs - 1:
                since = datetime.now(UTC) - timedelta(seconds=1)
                for _ in range(args.paced):
                    publisher.publish(shipment(random.choice(clients)))
                    publisher.confirm()
                    time.sleep(0.05)
                wait_handled(org, base + args.events + args.paced)
                latencies = paced_latencies(org, since)
            publisher.close()
            stop_processes([process])
            process = None
            org.dispose()
            print(f"run {run + 1}: {rates[-1]:,.0f} facts/s, raw broker {raw[-1]:,.0f} msg/s",
                  flush=True)
    finally:
        if process is not None:
            stop_processes([process])
        databases.drop_all()
        drop_vhost(vhost)

    rate, baseline = statistics.median(rates), statistics.median(raw)
    p50, p99 = statistics.median(latencies), percentile(latencies, 99)
    machine = f"{platform.node()} {platform.machine()} {platform.python_version()}"
    figures = [
        {"figure": "ERP shipment events to KPI facts (burst, batches of up to 200)",
         "value": round(rate), "unit": "events/s", "runs": [round(r) for r in rates],
         "baseline": "raw broker, persistent, batched confirms + manual ack "
                     "(min of publish and consume)",
         "baseline_value": round(baseline), "ratio": round(rate / baseline, 3)},
        {"figure": "ERP event published to fact written, p50 (20 events/s)", "value": round(p50, 1),
         "unit": "ms", "budget": 1000},
        {"figure": "ERP event published to fact written, p99 (20 events/s)", "value": round(p99, 1),
         "unit": "ms", "budget": 1000},
    ]
    report = {"name": "payroll_facts", "events_per_run": args.events, "runs": args.runs,
              "paced_events": args.paced, "machine": machine,
              "date": datetime.now(UTC).isoformat(timespec="seconds"), "figures": figures}
    out = ROOT / "bench" / "results" / "payroll_facts.json"
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    for fig in figures:
        ratio = f"  ratio {fig['ratio']:.3f} of baseline" if "ratio" in fig else ""
        print(f"{fig['figure']:70s} {fig['value']:>10,} {fig['unit']}{ratio}")
    return 0


def paced_latencies(org: ReplicatedOrg, since: datetime) -> list[float]:
    """ms from each paced event's publication (its document date: the bench dates each shipment
    the moment it publishes it) to its fact's ``updated_at`` (the same clock, one machine)."""
    return [float(r["ms"]) for r in org.rows(
        "SELECT EXTRACT(EPOCH FROM (f.updated_at - f.at)) * 1000 AS ms FROM kpi_facts f "
        "WHERE f.kpi = 'sales' AND f.at >= :since", since=since)]


if __name__ == "__main__":
    sys.exit(main())
