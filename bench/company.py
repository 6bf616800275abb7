"""The whole system at the company's scale: one command, figures as JSON and a table.

    .venv/bin/python bench/company.py [--scale 1.0] [--duration 60] [--connections 50] [--keep]

1. Data (scratch databases, never the demo's): 100 users (7 departments of a head and 13
   managers, a director), 100k clients (``bench/datagen_clients.py``), 500k deals over five years
   with the client cards' timeline (every call, e-mail and stage move: ≈ 6M + 1M + 1.7M rows,
   ``bench/common/deals_data.py``), five years of report facts and rollups (≈ 6M calls, 1M
   e-mails, 500k deals: ``bench/datagen_history.py``); ``--scale`` multiplies every count.
2. The duplicate check at lead entry over 1M clients (× scale) in a database of its own, before
   the services start: ``bench/find_duplicates.py``'s measured code path (``measure``).
3. Every service and the gateway as ``nameko run`` processes on those databases and a scratch
   RabbitMQ vhost (``bench/common/stack.py``). Through the gateway, with wrk (OS package;
   installed by ``scripts/common.sh ensure_wrk`` when missing) at ``--connections`` for
   ``--duration`` s each, every request as its own user (a client's owner reads its card,
   timeline and searches for it; managers, heads and the director list deals): the client card,
   its timeline (skipped with a note while the route is missing), client search (name, INN,
   phone) and the deal list — p50/p99, requests/s and each process's CPU per request. Every
   report of the catalogue through the gateway as the director (month by day, year by week,
   five years by month; sequential) — p50/p95.
4. The event pipeline (``bench/common/pipeline.py``): 1C postings and PBX calls in, stage changes
   and report rows out, through every consumer, against the raw broker measured in the same run.
5. Resident memory (VmRSS) of every process, sampled every 2 s in each phase.
Writes bench/results/company.json; drops the databases and the vhost unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "libs"), str(ROOT / "bench")]

from bench import datagen_clients as datagen  # noqa: E402
from bench import find_duplicates  # noqa: E402
from bench.common import wrk  # noqa: E402
from bench.common.deals_data import fill_deals  # noqa: E402
from bench.common.stack import SERVICES, Stack, machine, pct, write_org  # noqa: E402
from crm_platform.db import SessionFactory, make_engine  # noqa: E402
from gateway.auth import TokenAuthority  # noqa: E402

SEED = 20261127
SECRET = "bench-company-secret-" + uuid.uuid4().hex
REPORT_PERIODS = ("month", "year", "five_years")
ONE_RPC = "one-RPC baseline: report catalogue"
# Bytes per unit of scale, measured: report history 4.4 GB, deals + timeline ≈ 3 GB, 1M clients
# for the duplicate check ≈ 1.6 GB, 100k company clients ≈ 0.2 GB.
DISK_PER_SCALE = 9.5e9


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


class RssSampler(threading.Thread):
    """VmRSS of every process every ``interval`` s, per phase."""

    def __init__(self, stack: Stack, interval: float = 2.0):
        super().__init__(daemon=True, name="rss")
        self.stack, self.interval = stack, interval
        self.phase = "idle"
        self.samples: dict[str, dict[str, list[int]]] = {}
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(self.interval):
            phase = self.samples.setdefault(self.phase, {})
            for name, rss in self.stack.rss().items():
                if rss is not None:
                    phase.setdefault(name, []).append(rss)

    def summary(self) -> dict:
        return {phase: {name: {"max_mb": round(max(v) / 2**20, 1),
                               "last_mb": round(v[-1] / 2**20, 1), "samples": len(v)}
                        for name, v in per.items()}
                for phase, per in self.samples.items()}


def check_disk(scale: float, dup_clients: int) -> dict:
    need = DISK_PER_SCALE * scale + 1.6e9 * dup_clients / 1_000_000
    free = {}
    # The private PostgreSQL keeps its data in the temporary folder; the shared one in its own.
    for path in ("/work", "/var/lib/postgresql", tempfile.gettempdir()):
        if os.path.exists(path):
            free[path] = shutil.disk_usage(path).free
    low = {p: f for p, f in free.items() if f < need * 1.5}
    if low:
        free_text = ", ".join(f"{p} {f / 1e9:.1f} GB" for p, f in low.items())
        raise SystemExit(f"not enough free disk for scale {scale}: need ≈ {need / 1e9:.1f} GB "
                         f"(×1.5), free {free_text}")
    return {"need_gb": round(need / 1e9, 1), **{p: round(f / 1e9, 1) for p, f in free.items()}}


# -- 2. duplicate check ----------------------------------------------------------------------------

def duplicate_check(stack: Stack, n_clients: int, queries: int, warmup: int) -> dict:
    url, extra = stack.scratch_db("clients")
    try:
        org = datagen.Org.generate(find_duplicates.SEED)
        gen = datagen.ClientGenerator(find_duplicates.SEED, org)
        datagen.load_org(url, org)
        log(f"duplicate check: loading {n_clients:,} clients")
        stats, sample = datagen.load(url, n_clients, gen, sample_size=warmup + queries,
                                     progress=lambda m: log(m.strip()))
        cands = find_duplicates.build_candidates(sample, gen, find_duplicates.SEED + n_clients)
        sessions = SessionFactory(make_engine(url))
        try:
            result = find_duplicates.measure(sessions, cands[:warmup + queries], warmup)
        finally:
            sessions.engine.dispose()
        result.pop("_results")
        return {"clients": n_clients, "queries": len(cands[warmup:warmup + queries]),
                "load_s": round(stats.total_s, 1), **result}
    finally:
        stack.drop_scratch(extra)


# -- 1. data ---------------------------------------------------------------------------------------

def load_company(stack: Stack, scale: float) -> tuple[dict, datagen.Org, list]:
    from bench.datagen_history import generate as generate_history

    info = {}
    org = datagen.Org.generate(SEED, managers_per_department=13)
    gen = datagen.ClientGenerator(SEED, org)
    clients_url = stack.db("clients")
    n_clients = max(1000, int(100_000 * scale))
    datagen.load_org(clients_url, org)
    log(f"company: {n_clients:,} clients")
    stats, sample = datagen.load(clients_url, n_clients, gen, sample_size=3000,
                                 progress=lambda m: log(m.strip()))
    info["clients"] = {"count": n_clients, "seconds": round(stats.total_s, 1)}
    # Every service keeping a replica of the organisation gets it as the directory's events
    # would leave it; reports gets the history generator's own organisation.
    for service in SERVICES:
        if service not in ("clients", "reports", "directory"):
            write_org(stack.db(service), [dict(d) for d in org.departments],
                      [dict(s) for s in org.staff])
    n_deals = max(1000, int(500_000 * scale))
    log(f"company: {n_deals:,} deals with the cards' timeline "
        f"({int(6_000_000 * scale):,} calls, {int(1_000_000 * scale):,} e-mails)")
    info["deals"] = fill_deals(clients_url, stack.db("deals"), n_deals=n_deals,
                               n_calls=int(6_000_000 * scale), n_emails=int(1_000_000 * scale),
                               log=log)
    log("company: five years of report history")
    info["reports_history"] = generate_history(stack.db("reports"), scale,
                                               log=lambda m: log(str(m).strip()))
    return info, org, sample


# -- 3. gateway ------------------------------------------------------------------------------------

def identities(org: datagen.Org) -> dict:
    """A token for every person of the organisation, by user id (as the gateway issues them)."""
    authority = TokenAuthority(SECRET)
    tokens = {}
    for person in org.staff:
        identity = {"user_id": str(person["user_id"]), "role": person["role"],
                    "username": f"u{len(tokens)}", "full_name": person["full_name"]}
        if person["department_id"]:
            identity["department_id"] = str(person["department_id"])
        tokens[str(person["user_id"])] = authority.issue(identity)[0]
    return tokens


def endpoint_requests(sample: list, org: datagen.Org, tokens: dict,
                      rng: random.Random) -> dict[str, list[tuple[str, str]]]:
    """(token, path) per request: each client's card, timeline and search as its owner (a pool
    client as its department's head), deal lists as the managers, heads and the director — the
    office at work, not one user (whose every card read would queue on one counter row)."""
    heads = {str(d["department_id"]): str(d["head_user_id"]) for d in org.departments}
    director = next(str(s["user_id"]) for s in org.staff if s["role"] == "director")

    def reader(client) -> str:
        if client.owner_id:
            return tokens[str(client.owner_id)]
        return tokens[heads.get(str(client.department_id), director)]

    cards, timelines, searches = [], [], []
    for c in sample:
        cards.append((reader(c), f"/api/v1/clients/{c.id}"))
        timelines.append((reader(c), f"/api/v1/clients/{c.id}/timeline"))
        words = [w for w in c.bare.split() if len(w) >= 4]
        kind = rng.random()
        if kind < 0.5 and words:
            q = rng.choice(words)[:rng.randint(4, 8)]
        elif kind < 0.75:
            q = c.inn
        else:
            q = (c.phones or [c.inn])[0][-7:]
        searches.append((reader(c), f"/api/v1/clients?q={quote(q)}&limit=20"))
    managers = [s for s in org.staff if s["role"] == "manager"]
    deals = []
    for _ in range(len(sample)):
        r = rng.random()
        manager = rng.choice(managers)
        if r < 0.35:
            deals.append((tokens[str(manager["user_id"])], "/api/v1/deals?limit=50"))
        elif r < 0.7:
            deals.append((tokens[str(manager["user_id"])], "/api/v1/deals?open=true&limit=50"))
        elif r < 0.9:
            department = str(manager["department_id"])
            deals.append((tokens[heads[department]],
                          f"/api/v1/deals?department_id={department}&limit=50"))
        else:
            deals.append((tokens[director], "/api/v1/deals?stage=proposal&sort=amount&limit=50"))
    # Baselines under the same wrk, in the same run: the gateway's own /healthz (no token, no
    # RPC: the HTTP layer alone) and DESIGN.md §5's "trivial one-RPC endpoint" (the report
    # catalogue: token checked, one RPC, no database), which the card's capacity is held to
    # (≥ 80 %).
    managers_tokens = [tokens[str(m["user_id"])] for m in managers]
    return {"no-RPC floor: /healthz": [(tokens[director], "/healthz")],
            ONE_RPC: [(t, "/api/v1/reports") for t in managers_tokens],
            "client card": cards, "client timeline": timelines, "client search": searches,
            "deal list": deals}


def gateway_figures(stack: Stack, requests_by_name: dict, duration: int, connections: int,
                    sampler: RssSampler) -> tuple[dict, list[str]]:
    base = stack.gateway
    results, notes = {}, []
    for name, listing in requests_by_name.items():
        probe = [requests.get(base + path, headers={"Authorization": f"Bearer {token}"},
                              timeout=30) for token, path in listing[:5]]
        statuses = sorted({r.status_code for r in probe})
        if name == "client timeline" and statuses == [404] and probe[0].headers.get(
                "Content-Type", "").startswith("application/problem+json") and probe[0].json().get(
                "code") == "no_such_route":
            notes.append("client timeline: GET /api/v1/clients/<id>/timeline answers 404 (route "
                         "not there yet) — skipped")
            log(notes[-1])
            continue
        if statuses != [200]:
            notes.append(f"{name}: probe answered {statuses}: {probe[0].text[:300]}")
            log(notes[-1])
            if name == "client timeline":
                continue
        sampler.phase = f"wrk {name}"
        # The baselines are steady after a few seconds: 20 s of them leave time for the rest.
        seconds = min(duration, 20) if name.startswith(("no-RPC", "one-RPC")) else duration
        log(f"wrk {name}: {connections} connections, {seconds} s")
        cpu_before, load_before = stack.cpu(), os.getloadavg()[0]
        result = wrk.run(base, listing, duration=seconds, connections=connections)
        cpu_after = stack.cpu()
        result.pop("wrk_output")
        # Where the time goes: CPU of each process per request (the processes that did work).
        # Net of what each burns idle (idle_cpu_percent, measured before).
        idle = getattr(stack, "idle_cpu_percent", {})
        result["cpu_ms_per_request"] = {}
        for n in cpu_after:
            if cpu_after[n] is None or cpu_before.get(n) is None:
                continue
            spent = cpu_after[n] - cpu_before[n] - idle.get(n, 0) / 100 * result["seconds"]
            if spent > 0.05 * seconds:
                result["cpu_ms_per_request"][n] = round(
                    spent * 1000 / max(result["requests"], 1), 2)
        result["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        results[name] = result
        log(f"  p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, {result['rps']} req/s, "
            f"statuses {result['statuses']} {result.get('first_failure', '')[:200]}; "
            f"CPU ms per request {result['cpu_ms_per_request']}, "
            f"load {result['load_average_1min']}")
    return results, notes


def report_figures(base: str, token: str, runs: int, sampler: RssSampler) -> dict:
    from bench.reports import params_for

    sampler.phase = "reports"
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    catalogue = session.get(base + "/api/v1/reports", timeout=30)
    catalogue.raise_for_status()
    out = {}
    for entry in catalogue.json():
        name = entry["name"]
        times, cases, errors = [], {}, []
        for period in REPORT_PERIODS:
            params = dict(params_for(name, period))
            # Reports newer than bench/reports.py: group as the catalogue allows.
            group = params.get("group_by")
            if group and not set(group.split(",")) <= set(entry["group_by"]):
                if entry.get("default_group_by"):
                    params["group_by"] = ",".join(entry["default_group_by"])
                else:
                    params.pop("group_by")
            if cases and params == next(iter(cases.values()))["params"]:
                continue   # a report without periods (stuck deals, idle clients): once
            url = base + f"/api/v1/reports/{name}"
            first = session.get(url, params=params, timeout=120)    # warm the cache once
            if first.status_code != 200:
                errors.append(f"{period}: {first.status_code} {first.text[:200]}")
                continue
            case = []
            for _ in range(runs):
                started = time.perf_counter()
                response = session.get(url, params=params, timeout=120)
                case.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    errors.append(f"{period}: {response.status_code}")
            times += case
            cases[period] = {"params": params, "p50_ms": round(pct(case, 50), 1),
                             "p95_ms": round(pct(case, 95), 1),
                             "rows": len(first.json().get("rows") or [])}
        out[name] = {"p50_ms": round(pct(times, 50), 1) if times else None,
                     "p95_ms": round(pct(times, 95), 1) if times else None,
                     "samples": len(times), "cases": cases, "errors": errors}
        log(f"report {name:14s} p50 {out[name]['p50_ms']} ms, p95 {out[name]['p95_ms']} ms"
            + (f"  errors: {errors[:2]}" if errors else ""))
    return out


# -- 4. event pipeline -----------------------------------------------------------------------------

def pipeline_figures(stack: Stack, deals: int, calls: int, raw_messages: int,
                     sampler: RssSampler) -> dict:
    sampler.phase = "event pipeline"
    spec = {"vhost": stack.vhost, "deals": deals, "calls": calls, "raw_messages": raw_messages,
            "urls": {s: stack.db(s) for s in SERVICES}}
    cpu_before = stack.cpu()
    result = run_pipeline(spec)
    cpu_after = stack.cpu()
    # Where the time goes: CPU seconds of each process while the events went through.
    result["cpu_seconds"] = {n: round(cpu_after[n] - cpu_before[n], 1) for n in cpu_after
                             if cpu_after[n] is not None and cpu_before.get(n) is not None}
    result["handled_per_s"] = round(result["handled_total"] / result["seconds"], 1)
    log(f"  {result['events_in']:,} events in {result['seconds']} s: "
        f"{result['events_per_s']}/s (ratio {result['ratio']} of the raw broker), "
        f"{result['handled_total']:,} handled by consumers ({result['handled_per_s']}/s); "
        f"CPU s {result['cpu_seconds']}")
    return result


def run_pipeline(spec: dict) -> dict:
    """``bench/common/pipeline.py`` in a child process (it patches its process for eventlet),
    its progress lines logged as they come; the result is its last line."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    lines = []
    try:
        child = subprocess.Popen([sys.executable, "-m", "bench.common.pipeline", f.name],
                                 cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        for line in child.stdout:
            lines.append(line)
            if not line.startswith("{"):
                log(line.strip())
        stderr = child.stderr.read()
        child.wait()
    finally:
        os.unlink(f.name)
    if child.returncode != 0:
        raise RuntimeError(f"pipeline failed:\n{''.join(lines)[-2000:]}\n{stderr[-3000:]}")
    return json.loads(lines[-1])


# -- output ----------------------------------------------------------------------------------------

def figures_of(result: dict) -> list[dict]:
    figs = []
    floor = result["gateway"].get(ONE_RPC)
    for name, r in result["gateway"].items():
        for p in ("p50", "p99"):
            figs.append({"figure": f"gateway {name} {p} at {result['connections']} connections",
                         "value": r[f"{p}_ms"], "unit": "ms"})
        figure = {"figure": f"gateway {name} throughput", "value": r["rps"],
                  "unit": "requests/s", "non_2xx": r["non_2xx"],
                  "cpu_ms_per_request": r.get("cpu_ms_per_request")}
        if floor and name.startswith(("client", "deal")):
            figure.update({"baseline": "one-RPC endpoint (GET /api/v1/reports), same run",
                           "baseline_value": floor["rps"],
                           "ratio": round(r["rps"] / floor["rps"], 3),
                           **({"target_ratio": 0.8} if name == "client card" else {})})
        figs.append(figure)
    dup = result.get("duplicate_check")
    if dup:
        base = dup["baseline_inn_lookup"]
        for p in ("p50", "p99"):
            figs.append({"figure": f"duplicate check at lead entry {p} at {dup['clients']:,} "
                                   "clients", "value": dup["check"][p], "unit": "ms",
                         "baseline": f"exact INN btree lookup {p}", "baseline_value": base[p],
                         "ratio": round(dup["check"][p] / base[p], 2),
                         **({"target": 10.0} if p == "p99" else {})})
    for name, r in result["reports"].items():
        if r["p95_ms"] is not None:
            figs.append({"figure": f"report {name} p50 / p95 through the gateway",
                         "value": r["p95_ms"], "p50_ms": r["p50_ms"], "unit": "ms",
                         "target": 300.0})
    pipe = result.get("event_pipeline")
    if pipe:
        figs.append({"figure": "event pipeline: ERP postings + calls in, handled by every "
                               "consumer (stage changes, report rows out)",
                     "value": pipe["events_per_s"], "unit": "events/s",
                     "baseline": "raw broker, persistent, batched confirms + manual ack "
                                 "(min of publish and consume), same run",
                     "baseline_value": pipe["baseline"], "ratio": pipe["ratio"],
                     "target_ratio": 0.333})
        figs.append({"figure": "event pipeline: deals closed won + paid by their postings",
                     "value": pipe["deals_won_and_paid"], "unit": f"of {pipe['deals']} deals",
                     "dead_letters": pipe["dead_letters"]})
        figs.append({"figure": "event pipeline: handler deliveries (each event × its "
                               "consumers, incl. the stage changes deals emits)",
                     "value": pipe["handled_per_s"], "unit": "handled/s"})
    for name, mem in result["memory_max_mb"].items():
        figs.append({"figure": f"RSS {name} (max under load)", "value": mem, "unit": "MB"})
    return figs


def print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"RoofCRM at scale {result['scale']} — {result['machine']}")
    for column in ("figure", "value", "unit", "baseline", "ratio"):
        table.add_column(column, justify="right" if column in ("value", "ratio") else "left")
    for fig in result["figures"]:
        value = f"{fig['value']:,}" if isinstance(fig["value"], int | float) else str(
            fig["value"])
        if "p50_ms" in fig:
            value = f"{fig['p50_ms']:,} / {value}"
        table.add_row(fig["figure"], value, fig["unit"],
                      f"{fig.get('baseline_value', '')} {fig.get('baseline', '')}".strip(),
                      str(fig.get("ratio", "")))
    Console(width=160).print(table)
    for note in result["notes"]:
        print("note:", note)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--duration", type=int, default=60, help="seconds of wrk per endpoint")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--dup-clients", type=int, help="clients for the duplicate check "
                                                        "(default 1,000,000 × scale)")
    parser.add_argument("--dup-queries", type=int, default=1000)
    parser.add_argument("--report-runs", type=int, default=10)
    parser.add_argument("--pipeline-deals", type=int,
                        help="deals given a whole 1C order life (default 600 × √scale)")
    parser.add_argument("--pipeline-calls", type=int, help="calls (default 5 × deals)")
    parser.add_argument("--raw-messages", type=int, default=20000)
    parser.add_argument("--skip", default="", help="phases left out (quick checks), comma "
                                                  "separated: duplicates, gateway, reports, "
                                                  "pipeline")
    parser.add_argument("--keep", action="store_true", help="keep databases and vhost")
    parser.add_argument("--shared-pg", action="store_true",
                        help="scratch databases on the shared PostgreSQL (CRM_PG_ADMIN_URL) "
                             "instead of a private server of the benchmark's own")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "company.json"))
    args = parser.parse_args()
    dup_clients = args.dup_clients or max(10_000, int(1_000_000 * args.scale))
    p_deals = args.pipeline_deals or max(100, int(600 * args.scale ** 0.5))
    p_calls = args.pipeline_calls if args.pipeline_calls is not None else 5 * p_deals
    started = time.monotonic()
    result = {"name": "company", "scale": args.scale, "duration_s": args.duration,
              "connections": args.connections, "machine": machine(),
              "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "disk": check_disk(args.scale, dup_clients), "notes": [], "timings_s": {}}
    wrk.ensure_wrk()
    stack = Stack(SECRET, log=log, private_pg=not args.shared_pg)
    sampler = RssSampler(stack)
    log(f"scratch vhost {stack.vhost}, logs in {stack.logs}")
    try:
        t = time.monotonic()
        for service in SERVICES:
            stack.db(service)
        result["timings_s"]["migrate"] = round(time.monotonic() - t, 1)
        skip = set(filter(None, args.skip.split(",")))
        result["skipped"] = sorted(skip)
        t = time.monotonic()
        if "duplicates" not in skip:
            result["duplicate_check"] = duplicate_check(stack, dup_clients, args.dup_queries, 200)
            log(f"duplicate check at {dup_clients:,}: p50 "
                f"{result['duplicate_check']['check']['p50']} ms, p99 "
                f"{result['duplicate_check']['check']['p99']} ms")
        result["timings_s"]["duplicate_check"] = round(time.monotonic() - t, 1)
        t = time.monotonic()
        result["data"], org, sample = load_company(stack, args.scale)
        result["timings_s"]["data"] = round(time.monotonic() - t, 1)
        t = time.monotonic()
        log("starting every service and the gateway")
        stack.start_all()
        sampler.start()
        result["timings_s"]["start"] = round(time.monotonic() - t, 1)
        tokens = identities(org)
        token = tokens[next(str(s["user_id"]) for s in org.staff if s["role"] == "director")]
        time.sleep(5)   # let the start-up scans (pool returns, dormant clients ...) settle
        # What the processes burn with no requests at all (timers, scans, relays): the floor
        # under the per-request CPU figures below.
        cpu_before = stack.cpu()
        time.sleep(10)
        cpu_after = stack.cpu()
        result["idle_cpu_percent"] = {n: round((cpu_after[n] - cpu_before[n]) * 10, 1)
                                      for n in cpu_after if cpu_after[n] is not None}
        stack.idle_cpu_percent = result["idle_cpu_percent"]
        log(f"idle CPU % over 10 s: {result['idle_cpu_percent']}")
        t = time.monotonic()
        by_name = endpoint_requests(sample, org, tokens, random.Random(SEED))
        result["gateway"], result["reports"] = {}, {}
        if "gateway" not in skip:
            result["gateway"], notes = gateway_figures(stack, by_name, args.duration,
                                                       args.connections, sampler)
            result["notes"] += notes
        result["timings_s"]["gateway"] = round(time.monotonic() - t, 1)
        t = time.monotonic()
        if "reports" not in skip:
            result["reports"] = report_figures(stack.gateway, token, args.report_runs, sampler)
        result["timings_s"]["reports"] = round(time.monotonic() - t, 1)
        t = time.monotonic()
        if "pipeline" not in skip:
            result["event_pipeline"] = pipeline_figures(stack, p_deals, p_calls,
                                                        args.raw_messages, sampler)
        result["timings_s"]["event_pipeline"] = round(time.monotonic() - t, 1)
        sampler.phase = "after"
        time.sleep(4)
        dead = {n: p.popen.returncode for n, p in stack.processes.items() if not p.alive()}
        if dead:
            result["notes"].append(f"processes that exited during the run: {dead}")
    finally:
        sampler.stopped.set()
        stack.close(keep=args.keep)
    result["memory_by_phase"] = sampler.summary()
    result["memory_max_mb"] = {}
    for per in result["memory_by_phase"].values():
        for name, m in per.items():
            result["memory_max_mb"][name] = max(result["memory_max_mb"].get(name, 0),
                                                m["max_mb"])
    loads = [x for r in result.get("gateway", {}).values() for x in r["load_average_1min"]]
    if loads:
        result["notes"].append(
            f"1-minute load average during the wrk runs: {min(loads):.1f}–{max(loads):.1f} on "
            f"{os.cpu_count()} cores (whatever else the machine runs shares them)")
    result["timings_s"]["total"] = round(time.monotonic() - started, 1)
    result["figures"] = figures_of(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n")
    print_table(result)
    log(f"wrote {out} ({result['timings_s']['total']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
