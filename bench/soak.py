"""Load soak: 50 simulated users through the gateway's HTTP API plus a background stream of calls
and 1C postings, for ``--minutes``; errors, latency per action and memory growth per process.

    .venv/bin/python bench/soak.py [--minutes 10] [--users 50] [--scale 0.01] [--think 1-3]

The system runs as in bench/company.py (every service and the gateway as ``nameko run`` processes
on scratch databases and a scratch vhost, the company's data at ``--scale``). Each simulated user
is one of the managers, with a token of their own, and works on their own clients and deals,
pausing ``--think`` seconds (uniform) between actions:

- open a client card (and its timeline when the gateway has the route), list/search clients,
  list deals, open a deal;
- add a note to a deal (and to a client, with the timeline route), add a task;
- move a deal between the funnel's manual stages (new → qualified → proposal → qualified ...).

Meanwhile ``--calls-per-s`` finished calls and ``--erp-per-s`` 1C postings (whole order lives of
deals of the other managers, so they never race the users' own moves) are published as telephony
and the erp_bridge publish them. An error is any answer other than the action's success status,
or a failed request. Resident memory (VmRSS) of every process is sampled every 30 s; its growth is
the least-squares slope over the run after the first minute (MB/min). Writes
bench/results/soak.json; the databases and vhost are dropped unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "libs"), str(ROOT / "bench")]

from bench.common.stack import SERVICES, Stack, machine, pct  # noqa: E402
from bench.company import SECRET, load_company, log  # noqa: E402
from gateway.auth import TokenAuthority  # noqa: E402

MANUAL_NEXT = {"new": "qualified", "qualified": "proposal", "proposal": "qualified"}
# Action weights: mostly reading, as a working day is.
MIX = {"open_client": 25, "list_clients": 10, "search_clients": 10, "list_deals": 12,
       "open_deal": 10, "deal_note": 10, "add_task": 8, "move_deal": 10, "client_note": 5}


class Results:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter = Counter()
        self.error_samples: list[str] = []
        self.count: Counter = Counter()

    def record(self, action: str, seconds: float, error: str | None) -> None:
        with self.lock:
            self.count[action] += 1
            self.latency[action].append(seconds * 1000)
            if error:
                self.errors[action] += 1
                if len(self.error_samples) < 30:
                    self.error_samples.append(f"{action}: {error}")


class User(threading.Thread):
    def __init__(self, n: int, base: str, identity: dict, clients: list[str], deals: list[dict],
                 results: Results, until: float, think: tuple[float, float], timeline: bool):
        super().__init__(daemon=True, name=f"user-{n}")
        token, _ = TokenAuthority(SECRET).issue(identity)
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}",
                                     "Accept": "application/json"})
        self.base, self.identity, self.results = base, identity, results
        self.clients, self.deals = clients, deals
        self.until, self.think, self.timeline = until, think, timeline
        self.rng = random.Random(n)

    def call(self, action: str, method: str, path: str, ok=(200,), **kwargs) -> dict | None:
        started = time.perf_counter()
        error, body = None, None
        try:
            response = self.session.request(method, self.base + path, timeout=30, **kwargs)
            if response.status_code not in ok:
                error = f"{method} {path} -> {response.status_code} {response.text[:300]}"
            elif response.content:
                body = response.json()
        except requests.RequestException as exc:
            error = f"{method} {path} -> {type(exc).__name__}: {exc}"
        self.results.record(action, time.perf_counter() - started, error)
        return body

    def run(self) -> None:
        actions = [a for a in MIX if a != "client_note" or self.timeline]
        weights = [MIX[a] for a in actions]
        time.sleep(self.rng.uniform(0, self.think[1]))   # users do not start in step
        while time.monotonic() < self.until:
            getattr(self, self.rng.choices(actions, weights)[0])()
            time.sleep(self.rng.uniform(*self.think))

    # -- actions ---------------------------------------------------------------------------------
    def open_client(self):
        client = self.rng.choice(self.clients)
        self.call("open_client", "GET", f"/api/v1/clients/{client}")
        if self.timeline:
            self.call("client_timeline", "GET", f"/api/v1/clients/{client}/timeline")

    def list_clients(self):
        self.call("list_clients", "GET", "/api/v1/clients?limit=50")

    def search_clients(self):
        q = self.rng.choice(("строй", "металл", "урал", "кров", "торг", "сервис", "77", "+7"))
        self.call("search_clients", "GET", f"/api/v1/clients?q={quote(q)}&limit=20")

    def list_deals(self):
        which = self.rng.choice(("?limit=50", "?open=true&limit=50",
                                 f"?owner_id={self.identity['user_id']}&limit=50"))
        self.call("list_deals", "GET", f"/api/v1/deals{which}")

    def open_deal(self):
        if self.deals:
            self.call("open_deal", "GET", f"/api/v1/deals/{self.rng.choice(self.deals)['id']}")

    def deal_note(self):
        if self.deals:
            deal = self.rng.choice(self.deals)
            self.call("deal_note", "POST", f"/api/v1/deals/{deal['id']}/notes", ok=(200, 201),
                      json={"text": f"Созвонились, клиент думает ({uuid.uuid4().hex[:6]})"})

    def client_note(self):
        client = self.rng.choice(self.clients)
        self.call("client_note", "POST", f"/api/v1/clients/{client}/notes", ok=(200, 201),
                  json={"text": f"Заметка по клиенту ({uuid.uuid4().hex[:6]})"})

    def add_task(self):
        due = (datetime.now(UTC) + timedelta(days=self.rng.randint(1, 10))).isoformat()
        body = {"title": "Перезвонить клиенту", "kind": "call", "due_at": due}
        if self.deals and self.rng.random() < 0.6:
            body["deal_id"] = self.rng.choice(self.deals)["id"]
        else:
            body["client_id"] = self.rng.choice(self.clients)
        self.call("add_task", "POST", "/api/v1/tasks", ok=(201,), json=body)

    def move_deal(self):
        movable = [d for d in self.deals if d["stage"] in MANUAL_NEXT]
        if not movable:
            return
        deal = self.rng.choice(movable)
        target = MANUAL_NEXT[deal["stage"]]
        body = self.call("move_deal", "POST", f"/api/v1/deals/{deal['id']}/stage",
                         json={"stage": target})
        if body is not None:
            deal["stage"] = body.get("stage", target)


def slope_mb_per_min(samples: list[tuple[float, int]]) -> float | None:
    """Least-squares slope of RSS over time, MB per minute."""
    if len(samples) < 3:
        return None
    xs = [t / 60 for t, _ in samples]
    ys = [rss / 2**20 for _, rss in samples]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return round(sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den, 3) \
        if den else None


def background(stack: Stack, exclude: list[str], calls_per_s: float, erp_per_s: float,
               seconds: float, published: Counter) -> None:
    """Calls and 1C postings at a steady rate, as their producers publish them
    (``bench/common/pipeline.py --feed`` in a child process: it patches its process for
    eventlet)."""
    spec = {"vhost": stack.vhost, "deals_url": stack.db("deals"), "exclude_owners": exclude,
            "calls_per_s": calls_per_s, "erp_per_s": erp_per_s, "seconds": seconds}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    try:
        completed = subprocess.run([sys.executable, "-m", "bench.common.pipeline", "--feed",
                                    f.name], cwd=ROOT, capture_output=True, text=True,
                                   timeout=seconds + 300)
    finally:
        os.unlink(f.name)
    if completed.returncode != 0:
        published["feeder failed"] = 1
        log(f"background stream failed: {completed.stderr[-2000:]}")
        return
    published.update(json.loads(completed.stdout.splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--scale", type=float, default=0.01, help="company data scale")
    parser.add_argument("--think", default="1-3", help="seconds between a user's actions")
    parser.add_argument("--calls-per-s", type=float, default=2.0)
    parser.add_argument("--erp-per-s", type=float, default=1.0)
    parser.add_argument("--sample-seconds", type=float, default=30)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--shared-pg", action="store_true",
                        help="scratch databases on the shared PostgreSQL (CRM_PG_ADMIN_URL) "
                             "instead of a private server of the benchmark's own")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "soak.json"))
    args = parser.parse_args()
    think = tuple(float(x) for x in args.think.split("-"))
    stack = Stack(SECRET, log=log, private_pg=not args.shared_pg)
    result = {"name": "soak", "minutes": args.minutes, "users": args.users, "scale": args.scale,
              "think_s": list(think), "calls_per_s": args.calls_per_s,
              "erp_postings_per_s": args.erp_per_s, "machine": machine(),
              "date": datetime.now(UTC).isoformat(timespec="seconds"), "notes": []}
    rss: dict[str, list[tuple[float, int]]] = defaultdict(list)
    results = Results()
    published: Counter = Counter()
    try:
        for service in SERVICES:
            stack.db(service)
        result["data"], org, _ = load_company(stack, args.scale)
        log("starting every service and the gateway")
        stack.start_all()
        managers = [s for s in org.staff if s["role"] == "manager"]
        rng = random.Random(3)
        rng.shuffle(managers)
        users, others = managers[:args.users], managers[args.users:]
        clients_engine = sa.create_engine(stack.db("clients"))
        deals_engine = sa.create_engine(stack.db("deals"))
        with clients_engine.connect() as c, deals_engine.connect() as d:
            own_clients = defaultdict(list)
            for client_id, owner in c.execute(sa.text(
                    "SELECT id, owner_id FROM clients WHERE owner_id IS NOT NULL")):
                own_clients[str(owner)].append(str(client_id))
            own_deals = defaultdict(list)
            for deal_id, owner, stage in d.execute(sa.text(
                    "SELECT id, owner_id, stage FROM deals WHERE closed_at IS NULL")):
                own_deals[str(owner)].append({"id": str(deal_id), "stage": stage})
        clients_engine.dispose()
        deals_engine.dispose()
        probe_user = users[0]
        token, _ = TokenAuthority(SECRET).issue({"user_id": str(probe_user["user_id"]),
                                                 "role": "manager"})
        some_client = own_clients[str(probe_user["user_id"])][0]
        probe = requests.get(f"{stack.gateway}/api/v1/clients/{some_client}/timeline",
                             headers={"Authorization": f"Bearer {token}"}, timeout=30)
        timeline = probe.status_code == 200
        if not timeline:
            result["notes"].append(f"client timeline/notes not measured: GET .../timeline "
                                   f"answered {probe.status_code}")
            log(result["notes"][-1])
        started = time.monotonic()
        until = started + args.minutes * 60
        threads = []
        for n, person in enumerate(users):
            identity = {"user_id": str(person["user_id"]), "role": "manager",
                        "username": f"m{n}", "full_name": person["full_name"],
                        "department_id": str(person["department_id"])}
            clients = own_clients.get(identity["user_id"]) or [some_client]
            threads.append(User(n, stack.gateway, identity, clients,
                                own_deals.get(identity["user_id"], []), results, until, think,
                                timeline))
        feeder = threading.Thread(target=background, daemon=True, args=(
            stack, [str(p["user_id"]) for p in users], args.calls_per_s, args.erp_per_s,
            args.minutes * 60, published))
        log(f"soak: {len(threads)} users, {args.minutes:g} min, think {args.think} s, "
            f"{args.calls_per_s:g} calls/s + {args.erp_per_s:g} ERP postings/s "
            f"({len(others)} other managers' deals)")
        for thread in threads:
            thread.start()
        feeder.start()
        next_sample = started
        while time.monotonic() < until or any(t.is_alive() for t in threads):
            now = time.monotonic()
            if now >= next_sample and now < until + 1:
                for name, value in stack.rss().items():
                    if value is not None:
                        rss[name].append((now - started, value))
                done = sum(results.count.values())
                log(f"  {now - started:5.0f} s: {done:,} actions, "
                    f"{sum(results.errors.values())} errors")
                next_sample += args.sample_seconds
            time.sleep(0.5)
        feeder.join(timeout=300)
        for name, value in stack.rss().items():
            if value is not None:
                rss[name].append((time.monotonic() - started, value))
        elapsed = time.monotonic() - started
        dead = {n: p.popen.returncode for n, p in stack.processes.items() if not p.alive()}
        if dead:
            result["notes"].append(f"processes that exited during the soak: {dead}")
    finally:
        stack.close(keep=args.keep)

    actions = {}
    for action, values in sorted(results.latency.items()):
        actions[action] = {"count": results.count[action], "errors": results.errors[action],
                           "p50_ms": round(pct(values, 50), 1),
                           "p95_ms": round(pct(values, 95), 1),
                           "p99_ms": round(pct(values, 99), 1), "max_ms": round(max(values), 1)}
    memory = {}
    for name, samples in rss.items():
        settled = [s for s in samples if s[0] >= 60] or samples
        memory[name] = {"first_mb": round(samples[0][1] / 2**20, 1),
                        "last_mb": round(samples[-1][1] / 2**20, 1),
                        "max_mb": round(max(v for _, v in samples) / 2**20, 1),
                        "slope_mb_per_min": slope_mb_per_min(settled),
                        "samples": [(round(t), round(v / 2**20, 1)) for t, v in samples]}
    total = sum(results.count.values())
    result.update({
        "seconds": round(elapsed, 1), "actions": total,
        "actions_per_s": round(total / elapsed, 1), "errors": sum(results.errors.values()),
        "error_samples": results.error_samples, "published": dict(published),
        "by_action": actions, "memory": memory})
    result["figures"] = [
        {"figure": "errors", "value": result["errors"], "unit": "requests", "target": 0,
         "of": total},
        {"figure": "actions", "value": round(total / elapsed, 1), "unit": "actions/s"},
        *({"figure": f"{a} p50 / p95 / p99", "value": v["p95_ms"], "p50_ms": v["p50_ms"],
           "p99_ms": v["p99_ms"], "unit": "ms"} for a, v in actions.items()),
        *({"figure": f"RSS growth {n}", "value": m["slope_mb_per_min"], "unit": "MB/min",
           "first_mb": m["first_mb"], "last_mb": m["last_mb"], "target": "flat"}
          for n, m in memory.items())]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n")

    print(f"\n{total:,} actions in {elapsed:.0f} s ({total / elapsed:.1f}/s), "
          f"{result['errors']} errors; published {dict(published)}")
    print(f"{'action':18s} {'count':>7s} {'errors':>6s} {'p50':>8s} {'p95':>8s} {'p99':>8s} "
          f"{'max':>8s}  ms")
    for action, v in actions.items():
        print(f"{action:18s} {v['count']:7,} {v['errors']:6} {v['p50_ms']:8.1f} "
              f"{v['p95_ms']:8.1f} {v['p99_ms']:8.1f} {v['max_ms']:8.1f}")
    print(f"\n{'process':12s} {'first':>8s} {'last':>8s} {'max':>8s} {'slope':>10s}")
    for name, m in memory.items():
        print(f"{name:12s} {m['first_mb']:7.1f}M {m['last_mb']:7.1f}M {m['max_mb']:7.1f}M "
              f"{m['slope_mb_per_min']!s:>7s} MB/min")
    for sample in results.error_samples[:10]:
        print("error:", sample)
    for note in result["notes"]:
        print("note:", note)
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
