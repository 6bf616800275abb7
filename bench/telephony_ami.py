"""Calls registered end to end from a replayed Asterisk AMI stream.

    .venv/bin/python bench/telephony_ami.py [--calls 2000] [--raw-messages 20000]

The telephony service and the clients and deals services it calls run as their own processes
(``nameko run``, as deployed) on a fresh vhost and fresh databases, with the organisation seeded as
the telephony integration tests do (two departments, four managers with extensions 101-104, one
known client). The PBX is ``tools/pbx_simulator.py ami --day`` (a process too): a generated day of
``--calls`` calls replayed at full speed (``--speed 0``) to the service's AMI client. Figures:
- calls/s registered end to end: from the simulator's login response until the ``calls`` table
  holds every call (each matched to clients through the clients service, unknown answered callers
  made into leads through the deals service), with the count over time;
- the raw broker rate (bench/event_pipeline.raw_broker) measured in the same run, and the ratio.
Writes bench/results/telephony_ami.json.
"""

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
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
from crm_platform.organisation import departments_table, staff_table  # noqa: E402
from crm_platform.testing import ReplicatedOrg, TestDatabases, free_port  # noqa: E402
from services.telephony import models as tel  # noqa: E402

EXTENSIONS = {"m.ural.1": "101", "m.ural.2": "102", "m.volga.1": "103", "m.volga.2": "104"}
KNOWN_PHONE = "+7 916 555-27-41"
STALL_SECONDS = 60


def seed_org(clients_url: str, deals_url: str, tel_url: str) -> ReplicatedOrg:
    """The organisation in the clients' and deals' replicas, and in telephony's with the
    extensions (as the directory's events would bring them)."""
    org = ReplicatedOrg(clients_url)
    metadata = sa.MetaData()
    staff, departments = staff_table(metadata), departments_table(metadata)
    with org.engine.connect() as src:
        people = [dict(r) for r in src.execute(sa.select(staff)).mappings()]
        depts = [dict(r) for r in src.execute(sa.select(departments)).mappings()]
    engine = sa.create_engine(deals_url)
    with engine.begin() as conn:
        conn.execute(sa.insert(departments), depts)
        conn.execute(sa.insert(staff), people)
    engine.dispose()
    usernames = {p["user_id"]: name for name, p in org.people.items()}
    engine = sa.create_engine(tel_url)
    with engine.begin() as conn:
        conn.execute(sa.insert(tel.departments), [
            {"department_id": d["department_id"], "name": d["name"],
             "head_user_id": d["head_user_id"], "regions": list(d["regions"])} for d in depts])
        conn.execute(sa.insert(tel.staff), [
            {"user_id": p["user_id"], "full_name": p["full_name"], "role": p["role"],
             "department_id": p["department_id"], "active": p["active"],
             "extension": EXTENSIONS.get(usernames[str(p["user_id"])])} for p in people])
    engine.dispose()
    return org


def scalar(engine, sql: str):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql)).scalar()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--raw-messages", type=int, default=20000)
    args = parser.parse_args()

    databases = TestDatabases()
    vhost = make_vhost()
    processes: list[subprocess.Popen] = []
    marks: dict[str, float] = {}
    series: list[tuple[float, int]] = []
    engine = None
    try:
        raw_publish, raw_consume = raw_broker(vhost, args.raw_messages)
        clients_url, deals_url, tel_url = (databases.url_for(s)
                                           for s in ("clients", "deals", "telephony"))
        org = seed_org(clients_url, deals_url, tel_url)
        org.dispose()
        config = {"AMQP_URI": f"amqp://guest:guest@{AMQP_HOST}/{vhost}"}
        processes += [start_service("clients", "ClientsService", clients_url, vhost),
                      start_service("deals", "DealsService", deals_url, vhost)]
        manager = {IDENTITY_CONTEXT_KEY: org.people["m.ural.1"]}
        with ClusterRpcProxy(config, context_data=manager) as rpc:
            for _ in range(120):             # both services up and consuming
                try:
                    rpc.clients.find_duplicates({"phones": ["+74950000000"]}, similar=False)
                    rpc.deals.list_funnels()
                    break
                except Exception:  # noqa: BLE001 - not up yet
                    time.sleep(0.5)
            rpc.clients.create_client(
                {"short_name": "ООО «Кровля-Известная»", "phones": ["+7 343 222-33-44"]},
                contacts=[{"full_name": "Петров Пётр Петрович", "phones": [KNOWN_PHONE]}])

        port = free_port()
        simulator = subprocess.Popen(
            [sys.executable, "-u", "-m", "tools.pbx_simulator", "ami", "--port", str(port),
             "--day", "--calls", str(args.calls), "--seed", str(args.seed), "--speed", "0",
             "--extensions", ",".join(EXTENSIONS.values()), "--known", KNOWN_PHONE,
             "--username", "crm", "--secret", "bench"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        processes.append(simulator)
        listening = threading.Event()

        def watch():
            for line in simulator.stdout:
                now = time.monotonic()
                if line.startswith("AMI listening"):
                    listening.set()
                elif line.startswith("AMI login") and "login" not in marks:
                    marks["login"] = now
                elif line.startswith("AMI stream sent") and "sent" not in marks:
                    marks["sent"] = now

        threading.Thread(target=watch, daemon=True).start()
        if not listening.wait(120):
            raise RuntimeError("the simulator did not start")
        processes.append(start_service("telephony", "TelephonyService", tel_url, vhost,
                               CRM_AMI_HOST="127.0.0.1", CRM_AMI_PORT=str(port),
                               CRM_AMI_USERNAME="crm", CRM_AMI_SECRET="bench",
                               CRM_AMI_GRACE_SECONDS="1"))
        engine = sa.create_engine(tel_url)
        last_change, stored = time.monotonic(), 0
        while stored < args.calls and time.monotonic() - last_change < STALL_SECONDS:
            time.sleep(0.2)
            now, count = time.monotonic(), scalar(engine, "SELECT count(*) FROM calls")
            if count != stored:
                last_change, stored = now, count
            if "login" in marks and (not series or now - marks["login"] - series[-1][0] >= 1):
                series.append((round(now - marks["login"], 1), count))
        done = last_change
        series.append((round(done - marks.get("login", done), 1), stored))
        steady = scalar(engine, "SELECT EXTRACT(EPOCH FROM max(created_at) - min(created_at)) "
                                "FROM calls")
        leads = scalar(engine, "SELECT count(*) FROM calls WHERE lead_deal_id IS NOT NULL")
        matched = scalar(engine, "SELECT count(*) FROM calls WHERE client_id IS NOT NULL")
    finally:
        if engine is not None:
            engine.dispose()
        stop_processes(processes)
        databases.drop_all()
        drop_vhost(vhost)

    if "login" not in marks:
        print("the telephony service never logged in to the simulator", file=sys.stderr)
        return 1
    baseline = min(raw_publish, raw_consume)
    elapsed = done - marks["login"]
    rate = stored / elapsed if elapsed > 0 else 0.0
    steady_rate = (stored - 1) / float(steady) if steady else 0.0
    figures = [
        {"figure": "calls registered end to end (AMI stream → calls table)",
         "value": round(rate, 1), "unit": "calls/s", "calls": args.calls, "stored": stored,
         "seconds": round(elapsed, 2),
         "baseline": "raw broker, persistent, batched confirms + manual ack (min of publish "
                     "and consume)", "baseline_value": round(baseline),
         "ratio": round(rate / baseline, 4)},
        {"figure": "calls registered, first to last stored", "value": round(steady_rate, 1),
         "unit": "calls/s"},
        {"figure": "AMI stream sent by the simulator",
         "value": round(marks["sent"] - marks["login"], 2) if "sent" in marks else None,
         "unit": "s"},
        {"figure": "raw broker publish (batched confirms)", "value": round(raw_publish),
         "unit": "msg/s"},
        {"figure": "raw broker consume (manual ack)", "value": round(raw_consume),
         "unit": "msg/s"},
        {"figure": "calls matched to the known client", "value": matched, "unit": "calls"},
        {"figure": "calls that made a lead (unknown answered callers)", "value": leads,
         "unit": "calls"},
    ]
    report = {"name": "telephony_ami", "calls": args.calls, "seed": args.seed,
              "machine": f"{platform.node()} {platform.machine()} {platform.python_version()}",
              "date": datetime.now(UTC).isoformat(timespec="seconds"), "figures": figures,
              "count_over_time": series}
    (ROOT / "bench" / "results" / "telephony_ami.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    for fig in figures:
        ratio = f"  ratio {fig['ratio']:.4f} of baseline" if "ratio" in fig else ""
        print(f"{fig['figure']:58s} {fig['value']!s:>10} {fig['unit']}{ratio}")
    return 0 if stored == args.calls else 1


if __name__ == "__main__":
    sys.exit(main())
