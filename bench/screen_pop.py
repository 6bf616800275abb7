"""Screen pop latency: from publishing ``telephony.call_ringing`` to the browser-side message.

    .venv/bin/python bench/screen_pop.py [--managers 20] [--rings 500] [--interval-ms 5]

The gateway runs in its own process (a nameko container on a throw-away vhost). This process
opens one Server-Sent Events stream per manager (tokens minted with the gateway's secret, as the
directory's login would), publishes the rings round-robin over the managers, and times each ring
from just before its publish to the moment its ``event: ringing`` block is read off the stream.
Every other ring is from an unknown number (no card to read); the rest carry a client id, so the
gateway reads the card as the manager over RPC — from a stub ``clients`` service in the gateway's
process (the RPC path is measured, not the clients database). Writes
bench/results/screen_pop.json.
"""

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import requests  # noqa: E402
from kombu import Connection, Exchange  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "libs"))
sys.path.insert(0, str(ROOT / "bench"))

from event_pipeline import AMQP_HOST, drop_vhost, make_vhost  # noqa: E402

from crm_platform.contracts import make_envelope  # noqa: E402
from crm_platform.testing import free_port  # noqa: E402

SECRET = "bench-secret-bench-secret-bench-secret"


def serve(config_json: str) -> None:
    """The child process: the gateway and a stub ``clients`` answering ``get_client``."""
    from nameko.containers import ServiceContainer
    from nameko.rpc import rpc

    from crm_platform.identity import Caller
    from gateway.service import GatewayService

    class StubClients:
        name = "clients"
        caller = Caller()

        @rpc
        def get_client(self, client_id):
            identity = self.caller.require()
            return {"id": client_id, "short_name": "ООО «Стройметалл»", "inn": "7707083893",
                    "owner_id": identity.user_id, "owner_name": identity.full_name}

    config = json.loads(config_json)
    containers = [ServiceContainer(cls, config) for cls in (StubClients, GatewayService)]
    for container in containers:
        container.start()
    print("ready", flush=True)
    try:
        containers[-1].wait()
    except KeyboardInterrupt:
        for container in containers:
            container.stop()


class Stream:
    def __init__(self, url: str, token: str, arrivals: dict):
        self.response = requests.get(url, params={"access_token": token}, stream=True,
                                     timeout=60)
        self.response.raise_for_status()
        self.arrivals = arrivals
        self.opened = eventlet.event.Event()
        self.thread = eventlet.spawn(self._read)

    def _read(self):
        buffer = ""
        try:
            for chunk in self.response.iter_content(chunk_size=None):
                now = time.perf_counter()
                buffer += chunk.decode()
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    if not self.opened.ready():
                        self.opened.send(True)
                    for line in block.split("\n"):
                        if line.startswith("data: "):
                            data = json.loads(line[6:])
                            self.arrivals[data["call_key"]] = (now, data["unknown"])
        except Exception:  # noqa: BLE001, S110 - closed at the end
            pass

    def close(self):
        self.thread.kill()
        self.response.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--managers", type=int, default=20)
    parser.add_argument("--rings", type=int, default=500)
    parser.add_argument("--interval-ms", type=float, default=5.0)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0

    from gateway.auth import TokenAuthority

    vhost = make_vhost()
    amqp_uri = f"amqp://guest:guest@{AMQP_HOST}/{vhost}"
    address = f"127.0.0.1:{free_port()}"
    config = {"AMQP_URI": amqp_uri, "WEB_SERVER_ADDRESS": address, "JWT_SECRET": SECRET,
              "LOCAL_LOGIN": True, "max_workers": 10}
    child = subprocess.Popen([sys.executable, __file__, "--serve", json.dumps(config)],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    streams: list[Stream] = []
    try:
        if child.stdout.readline().strip() != "ready":
            raise SystemExit("the gateway did not start")
        authority = TokenAuthority(SECRET)
        managers = [str(uuid.uuid4()) for _ in range(args.managers)]
        arrivals: dict[str, tuple[float, bool]] = {}
        for n, user_id in enumerate(managers):
            token, _ = authority.issue({"user_id": user_id, "role": "manager",
                                        "username": f"bench{n}", "full_name": f"Bench {n}"})
            streams.append(Stream(f"http://{address}/api/v1/screen-pop", token, arrivals))
        for stream in streams:
            stream.opened.wait()

        exchange = Exchange("telephony.events", "topic", durable=True)
        published: dict[str, float] = {}
        with Connection(amqp_uri) as conn:
            producer = conn.Producer()
            for i in range(args.rings):
                key = f"bench-{i}"
                body = json.dumps(make_envelope("telephony", "call_ringing", {
                    "call_key": key, "pbx": "asterisk", "extension": str(100 + i % 20),
                    "user_id": managers[i % len(managers)], "external_number": "+73431234567",
                    "client_id": str(uuid.uuid4()) if i % 2 else None, "direction": "inbound",
                    "at": datetime.now(UTC)}))
                published[key] = time.perf_counter()
                producer.publish(body, exchange=exchange, routing_key="call_ringing",
                                 content_type="application/json", declare=[])
                eventlet.sleep(args.interval_ms / 1000.0)
        deadline = time.monotonic() + 10
        while len(arrivals) < args.rings and time.monotonic() < deadline:
            eventlet.sleep(0.05)
        latencies = {True: [], False: []}  # unknown number?
        for key, sent in published.items():
            if key in arrivals:
                received, unknown = arrivals[key]
                latencies[unknown].append((received - sent) * 1000)
    finally:
        for stream in streams:
            stream.close()
        child.terminate()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
        drop_vhost(vhost)

    everything = latencies[True] + latencies[False]
    if not latencies[True] or not latencies[False]:
        raise SystemExit("rings did not reach the streams")
    common = {"unit": "ms", "streams": args.managers, "rings": args.rings,
              "received": len(everything), "interval_ms": args.interval_ms}
    figures = []
    for label, values in (("all rings", everything),
                          ("unknown number", latencies[True]),
                          ("known client, card read over RPC (stub clients)", latencies[False])):
        figures += [
            {"figure": f"screen pop latency p50, ring published -> SSE message read: {label}",
             "value": round(statistics.median(values), 2), **common, "count": len(values)},
            {"figure": f"screen pop latency p99, ring published -> SSE message read: {label}",
             "value": round(percentile(values, 99), 2), **common, "count": len(values),
             "target": 300},
        ]
    figures.append({"figure": "screen pop latency max (all rings)",
                    "value": round(max(everything), 2), **common})
    report = {
        "name": "screen_pop",
        "machine": f"{platform.node()} {platform.machine()} {platform.python_version()}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "figures": figures,
    }
    out = ROOT / "bench" / "results" / "screen_pop.json"
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0 if len(everything) == args.rings else 1


if __name__ == "__main__":
    sys.exit(main())
