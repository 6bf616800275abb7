"""Event pipeline throughput: the outbox relay and a consuming service, against the raw broker.

    .venv/bin/python bench/event_pipeline.py [--events 20000] [--runs 3]

Figures (median of the runs, same machine, same run):
- raw broker: persistent messages published with batched confirms (1,000 per batch), then consumed
  with manual acks (the baseline DESIGN.md §5 names);
- outbox relay: rows already committed in the outbox, published with confirms and marked sent;
- pipeline: rows in the outbox until a nameko service has handled every one idempotently (claim +
  insert in its own transaction per event) — the path every ERP/PBX event takes.
Writes bench/results/event_pipeline.json.
"""

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import amqp  # noqa: E402
import requests  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from nameko.containers import ServiceContainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crm_platform.config import env  # noqa: E402
from crm_platform.db import SessionFactory, make_engine  # noqa: E402
from crm_platform.outbox import ConfirmingPublisher, OutboxRelay  # noqa: E402
from crm_platform.testing import TestDatabases, empty_database  # noqa: E402
from tests.backbone.probe_services import SinkService, sink_metadata  # noqa: E402

API = env("CRM_RABBIT_API_URI", "http://guest:guest@127.0.0.1:15672")
AMQP_HOST = env("CRM_BENCH_AMQP_HOST", "127.0.0.1:5672")


def make_vhost() -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(API)
    base, auth = f"{parts.scheme}://{parts.hostname}:{parts.port}", (parts.username,
                                                                       parts.password)
    vhost = f"bench_{uuid.uuid4().hex[:8]}"
    requests.put(f"{base}/api/vhosts/{vhost}", auth=auth, timeout=10).raise_for_status()
    requests.put(f"{base}/api/permissions/{vhost}/{parts.username}", auth=auth, timeout=10,
                 json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
    return vhost


def drop_vhost(vhost: str) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(API)
    requests.delete(f"{parts.scheme}://{parts.hostname}:{parts.port}/api/vhosts/{vhost}",
                    auth=(parts.username, parts.password), timeout=10)


def start_service(service: str, cls: str, db_url: str, vhost: str, **env) -> subprocess.Popen:
    """One service as deployed (``nameko run`` with config.yaml) on ``vhost`` and ``db_url``;
    ``env`` adds or overrides CRM_* settings."""
    from crm_platform.testing import free_port

    environ = {**os.environ, "CRM_DB_URL": db_url,
               "CRM_AMQP_URI": f"amqp://guest:guest@{AMQP_HOST}/{vhost}",
               "CRM_HTTP_ADDRESS": f"127.0.0.1:{free_port()}", "CRM_REACTION_SCAN_SECONDS": "0",
               "CRM_LOG_LEVEL": "WARNING", **env}
    return subprocess.Popen([sys.executable, "-m", "nameko", "run", "--config",
                             str(ROOT / "config.yaml"), f"services.{service}.service:{cls}"],
                            env=environ, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def stop_processes(processes) -> None:
    """Terminate, wait up to 20 s each, kill what is left."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def raw_broker(vhost: str, n: int) -> tuple[float, float]:
    """(publish msg/s with batched confirms, consume msg/s with manual ack)."""
    conn = amqp.Connection(host=AMQP_HOST, virtual_host=vhost)
    conn.connect()
    ch = conn.channel()
    ch.queue_declare("raw-bench", durable=True, auto_delete=False)
    ch.queue_purge("raw-bench")
    ch.confirm_select()
    pending = set()
    ch.events["basic_ack"].add(lambda tag, multiple: pending.difference_update(
        [t for t in pending if t <= tag] if multiple else [tag]))
    body = json.dumps({"event_id": str(uuid.uuid4()), "payload": {"n": 1, "x": "y" * 200}})
    started, tag = time.perf_counter(), 0
    for i in range(n):
        ch.basic_publish(amqp.Message(body, delivery_mode=2), exchange="", routing_key="raw-bench")
        tag += 1
        pending.add(tag)
        if (i + 1) % 1000 == 0:
            while pending:
                conn.drain_events(timeout=10)
    while pending:
        conn.drain_events(timeout=10)
    publish_rate = n / (time.perf_counter() - started)

    got = 0
    ch.basic_qos(0, 500, False)

    def on_message(message):
        nonlocal got
        got += 1
        if got % 100 == 0 or got == n:
            ch.basic_ack(message.delivery_tag, multiple=True)

    ch.basic_consume("raw-bench", callback=on_message)
    started = time.perf_counter()
    while got < n:
        conn.drain_events(timeout=10)
    consume_rate = n / (time.perf_counter() - started)
    conn.close()
    return publish_rate, consume_rate


def fill_outbox(url: str, n: int) -> None:
    envelope_rows = []
    now = datetime.now(UTC).isoformat()
    for i in range(n):
        event_id = str(uuid.uuid4())
        envelope_rows.append({
            "event_id": event_id, "source": "probe", "type": "thing_happened",
            "envelope": {"event_id": event_id, "type": "thing_happened", "version": 1,
                         "source": "probe", "occurred_at": now,
                         "payload": {"thing_id": str(uuid.uuid4()), "n": i}},
        })
    from crm_platform.tables import outbox

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.insert(outbox), envelope_rows)
    engine.dispose()


def relay_only(url: str, vhost: str, n: int) -> float:
    fill_outbox(url, n)
    sessions = SessionFactory(make_engine(url, pool_size=2))
    relay = OutboxRelay(sessions, ConfirmingPublisher(f"amqp://guest:guest@{AMQP_HOST}/{vhost}",
                                                      "probe"), "probe", batch_size=500)
    started = time.perf_counter()
    sent = 0
    while (batch := relay.relay_once()):
        sent += batch
    rate = sent / (time.perf_counter() - started)
    relay.publisher.close()
    sessions.engine.dispose()
    return rate


def pipeline(probe_url: str, sink_url: str, vhost: str, n: int) -> float:
    amqp_uri = f"amqp://guest:guest@{AMQP_HOST}/{vhost}"
    container = ServiceContainer(SinkService, {
        "AMQP_URI": amqp_uri, "DB_URL": sink_url, "WEB_SERVER_ADDRESS": "127.0.0.1:0",
        "max_workers": 10, "EVENT_RETRY_DELAYS_MS": "1000"})
    container.start()  # declares and binds the sink's queue before anything is published
    fill_outbox(probe_url, n)
    sessions = SessionFactory(make_engine(probe_url, pool_size=2))
    relay = OutboxRelay(sessions, ConfirmingPublisher(amqp_uri, "probe"), "probe", batch_size=500)
    sink = sa.create_engine(sink_url)
    started = time.perf_counter()
    relayer = eventlet.spawn(lambda: [None for _ in iter(relay.relay_once, 0)])
    while True:
        with sink.connect() as conn:
            done = conn.execute(sa.text("SELECT count(*) FROM received")).scalar()
        if done >= n:
            break
        eventlet.sleep(0.05)
    rate = n / (time.perf_counter() - started)
    relayer.wait()
    container.stop()
    relay.publisher.close()
    sessions.engine.dispose()
    sink.dispose()
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    databases = TestDatabases()
    vhost = make_vhost()
    figures = {"raw_publish": [], "raw_consume": [], "relay": [], "pipeline": []}
    try:
        from tests.backbone.probe_services import probe_metadata

        probe_url = databases.blank("bench_probe", probe_metadata)
        sink_url = databases.blank("bench_sink", sink_metadata)
        for run in range(args.runs):
            publish, consume = raw_broker(vhost, args.events)
            figures["raw_publish"].append(publish)
            figures["raw_consume"].append(consume)
            empty_database(probe_url)
            figures["relay"].append(relay_only(probe_url, vhost, args.events))
            empty_database(probe_url)
            empty_database(sink_url)
            figures["pipeline"].append(pipeline(probe_url, sink_url, vhost, args.events))
            print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in figures.items()),
                  flush=True)
    finally:
        databases.drop_all()
        drop_vhost(vhost)

    median = {k: statistics.median(v) for k, v in figures.items()}
    baseline = min(median["raw_publish"], median["raw_consume"])
    results = []
    for name, unit_desc in (("relay", "outbox relay publish rate"),
                            ("pipeline", "outbox to handled event rate")):
        results.append({
            "figure": unit_desc, "value": round(median[name]), "unit": "events/s",
            "runs": [round(v) for v in figures[name]],
            "baseline": "raw broker, persistent, batched confirms + manual ack "
                        "(min of publish and consume)",
            "baseline_value": round(baseline), "ratio": round(median[name] / baseline, 3),
            "target_ratio": 0.333,
        })
    results.append({"figure": "raw broker publish (batched confirms)",
                    "value": round(median["raw_publish"]), "unit": "msg/s"})
    results.append({"figure": "raw broker consume (manual ack)",
                    "value": round(median["raw_consume"]), "unit": "msg/s"})
    report = {"name": "event_pipeline", "events_per_run": args.events, "runs": args.runs,
              "machine": f"{platform.node()} {platform.machine()} {platform.python_version()}",
              "date": datetime.now(UTC).isoformat(timespec="seconds"), "figures": results}
    out = ROOT / "bench" / "results" / "event_pipeline.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    for fig in results:
        ratio = f"  ratio {fig['ratio']:.2f} of baseline" if "ratio" in fig else ""
        print(f"{fig['figure']:45s} {fig['value']:>8,} {fig['unit']}{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
