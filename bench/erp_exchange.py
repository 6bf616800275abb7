"""1C exchange end to end: 10k EnterpriseData document messages into the bridge, out as events,
into the deals service's funnel.

    .venv/bin/python bench/erp_exchange.py [--clients 2000] [--senders 10]

Both services run as their own processes (``nameko run``, as deployed); this process is 1C: one
message per document (order, invoice, two shipments, payment per client), sent by RPC from
``--senders`` 1C nodes at once, each sending its own numbered stream in order and waiting for
each receipt (as 1C does). Figures:
- messages/s applied by the bridge (receipts back), and end to end until the deals service has
  handled every resulting event (``processed_events`` = N);
- the raw broker's rate (persistent, batched confirms, manual acks) measured in the same run, and
  the ratios; a check that every deal ended ``closed_won`` and paid.
Writes bench/results/erp_exchange.json.
"""

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import base64  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import sqlalchemy as sa  # noqa: E402
from eventlet.greenpool import GreenPool  # noqa: E402
from nameko.standalone.rpc import ClusterRpcProxy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from deals_erp import seed  # noqa: E402
from event_pipeline import (  # noqa: E402
    AMQP_HOST,
    drop_vhost,
    make_vhost,
    raw_broker,
    start_service,
    stop_processes,
)

from crm_platform.identity import IDENTITY_CONTEXT_KEY  # noqa: E402
from crm_platform.migrate import upgrade  # noqa: E402
from crm_platform.testing import TestDatabases  # noqa: E402
from services.erp_bridge.models import client_replica  # noqa: E402
from services.erp_bridge.tests import ed_samples as ed  # noqa: E402

INTEGRATION = {"user_id": str(uuid.uuid4()), "role": "integration", "username": "erp.1c"}


def inn_of(n: int) -> str:
    body = f"5{n:08d}"
    weights = (2, 4, 10, 3, 5, 9, 4, 6, 8)
    return body + str(sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11 % 10)


def messages_for(plan: list[dict], senders: int, per_message: int = 1) -> list[list[bytes]]:
    """``per_message`` documents per message, per sender node its own numbering from 1: clients
    are split over the senders, and each sender sends step k of its clients before step k+1."""
    lives = []
    for n, deal in enumerate(plan):
        cp, order = str(uuid.uuid4()), str(uuid.uuid4())
        inn, kpp, when = inn_of(n), "665801001", "2026-12-01T10:00:00"
        args = (cp, inn, kpp)
        lives.append([
            ed.order_xml(order, f"ЗК-{n}", when, "120000.00", *args, deal_id=str(deal["deal_id"])),
            ed.invoice_xml(str(uuid.uuid4()), f"СЧ-{n}", when, "120000.00", *args, order),
            ed.shipment_xml(str(uuid.uuid4()), f"РТУ-{n}-1", when, "60000.00", *args, order),
            ed.shipment_xml(str(uuid.uuid4()), f"РТУ-{n}-2", when, "60000.00", *args, order),
            ed.payment_xml(str(uuid.uuid4()), f"ПП-{n}", when, "120000.00", *args,
                           rows=[(order, "120000.00")]),
        ])
    streams = []
    for node in range(senders):
        mine = lives[node::senders]
        documents = [life[step] for step in range(5) for life in mine]
        streams.append([ed.ed_message(number, documents[start:start + per_message],
                                      sender=f"UT{node + 1}")
                        for number, start in enumerate(range(0, len(documents), per_message),
                                                       start=1)])
    return streams


def count(url: str, sql: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        value = conn.execute(sa.text(sql)).scalar()
    engine.dispose()
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--senders", type=int, default=10,
                        help="1C nodes sending at once, each its own numbered stream")
    parser.add_argument("--raw-messages", type=int, default=50000)
    parser.add_argument("--per-message", type=int, default=1,
                        help="documents per message (1C packs an exchange session into one)")
    args = parser.parse_args()

    databases = TestDatabases()
    vhost = make_vhost()
    processes = []
    try:
        raw_publish, raw_consume = raw_broker(vhost, args.raw_messages)
        deals_url = databases.blank(f"bench_xdeals_{uuid.uuid4().hex[:6]}")
        bridge_url = databases.blank(f"bench_xbridge_{uuid.uuid4().hex[:6]}")
        upgrade("deals", deals_url)
        upgrade("erp_bridge", bridge_url)
        plan = seed(deals_url, args.clients)
        engine = sa.create_engine(bridge_url)
        with engine.begin() as conn:
            conn.execute(sa.insert(client_replica), [
                {"client_id": deal["client_id"], "short_name": f"Клиент {n}", "inn": inn_of(n),
                 "kpp": "665801001"} for n, deal in enumerate(plan)])
        engine.dispose()
        streams = [[base64.b64encode(b).decode() for b in stream]
                   for stream in messages_for(plan, args.senders, args.per_message)]
        total = sum(len(stream) for stream in streams)
        documents = len(plan) * 5
        processes = [start_service("deals", "DealsService", deals_url, vhost),
                     start_service("erp_bridge", "ErpBridgeService", bridge_url, vhost)]
        config = {"AMQP_URI": f"amqp://guest:guest@{AMQP_HOST}/{vhost}"}
        with ClusterRpcProxy(config, context_data={IDENTITY_CONTEXT_KEY: INTEGRATION}) as rpc:
            for _ in range(120):             # both services up and consuming
                try:
                    rpc.erp_bridge.exchange_status()
                    break
                except Exception:  # noqa: BLE001 - not up yet
                    time.sleep(0.5)
            time.sleep(2)

        def send(stream):                    # one 1C node: its messages one after another
            with ClusterRpcProxy(config, context_data={IDENTITY_CONTEXT_KEY: INTEGRATION}) as node:
                return [node.erp_bridge.receive_enterprise_data(body)["outcome"]
                        for body in stream]

        started = time.perf_counter()
        outcomes = [o for result in GreenPool(args.senders).imap(send, streams) for o in result]
        bridge_done = time.perf_counter()
        assert outcomes.count("applied") == total, "every message must apply once"
        while count(deals_url, "SELECT count(*) FROM processed_events") < documents:
            time.sleep(0.2)
        end_to_end = time.perf_counter()
        won = count(deals_url, "SELECT count(*) FROM deals WHERE stage = 'closed_won' "
                               "AND payment_status = 'paid'")
    finally:
        stop_processes(processes)
        databases.drop_all()
        drop_vhost(vhost)

    baseline = min(raw_publish, raw_consume)
    bridge_rate = total / (bridge_done - started)
    e2e_rate = total / (end_to_end - started)
    documents_rate = documents / (end_to_end - started)
    figures = [
        {"figure": "messages applied by the bridge (RPC receipts)", "value": round(bridge_rate),
         "unit": "messages/s", "senders": args.senders},
        {"figure": "messages end to end (bridge → events → deals handled)",
         "value": round(e2e_rate), "unit": "messages/s",
         "baseline": "raw broker, persistent, batched confirms + manual ack (min of publish "
                     "and consume)", "baseline_value": round(baseline),
         "ratio": round(e2e_rate / baseline, 3), "target_ratio": 0.333},
        {"figure": "documents end to end", "value": round(documents_rate),
         "unit": "documents/s", "per_message": args.per_message,
         "ratio": round(documents_rate / baseline, 3)},
        {"figure": "raw broker publish (batched confirms)", "value": round(raw_publish),
         "unit": "msg/s"},
        {"figure": "raw broker consume (manual ack)", "value": round(raw_consume),
         "unit": "msg/s"},
        {"figure": "deals ending closed_won and paid", "value": won, "unit": "deals",
         "of": len(plan)},
    ]
    name = "erp_exchange" if args.per_message == 1 else "erp_exchange_batched"
    report = {"name": name, "messages": total, "documents": documents,
              "per_message": args.per_message, "clients": args.clients,
              "machine": f"{platform.node()} {platform.machine()} {platform.python_version()}",
              "date": datetime.now(UTC).isoformat(timespec="seconds"), "figures": figures}
    (ROOT / "bench" / "results" / f"{name}.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    for fig in figures:
        ratio = f"  ratio {fig['ratio']:.3f} of baseline" if "ratio" in fig else ""
        print(f"{fig['figure']:58s} {fig['value']:>10,} {fig['unit']}{ratio}")
    return 0 if won == len(plan) else 1


if __name__ == "__main__":
    sys.exit(main())
