"""A PBX simulator for the demo, the tests and the benchmark.

    python -m tools.pbx_simulator ami --port 5038 [--speed 10] [--day --calls 300 --seed 1
                                      --extensions 101,102,103,104] [--username crm --secret x]
    python -m tools.pbx_simulator mango --gateway http://127.0.0.1:8000 --key K --salt S
                                        [--calls N]
    python -m tools.pbx_simulator zadarma --gateway http://127.0.0.1:8000 --secret S [--calls N]

``ami``: a TCP Asterisk Manager Interface server. Each connection gets the banner, must log in
(``Action: Login``; with ``--username``/``--secret`` given they must match, else any is taken) and
then receives the stream: the recorded fixture calls (``services/telephony/tests/fixtures/ami``),
or with ``--day`` a generated working day (``day_stream``). Delays between events follow their
``Timestamp``s divided by ``--speed`` (0: as fast as the socket takes them), each capped by
``--max-delay``. Other actions get ``Response: Success``; ``Logoff`` ends the session.

The day generator mixes the recorded shapes (answered inbound, missed ring group, outbound,
internal) with fresh Uniqueids/Linkedids, channel names and bridge ids, external numbers from a
pool (and ``--known`` numbers now and then), the extensions given, and the timestamps (event
``Timestamp``, Cdr times in ``--timezone``, recording paths) moved to the chosen day's working
hours. It is deterministic for a seed.

``mango`` / ``zadarma``: send ``--calls`` signed webhook calls to the gateway, built from the
sample calls of ``services.telephony.tests.cloud_samples`` (which signs the way Mango and Zadarma
do) with fresh call ids and numbers.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "services" / "telephony" / "tests" / "fixtures" / "ami"
SHAPES = {                      # fixture: weight in a generated day
    "answered_inbound_unknown": 5,
    "missed_ring_group_known": 2,
    "outbound": 4,
    "internal": 1,
}
BANNER = b"Asterisk Call Manager/7.0.3\r\n"
TEMPLATE_DID = "74951234567"
# numeric fields whose values are never rewritten (counters, causes, durations, RTCP)
NUMERIC = {"Timestamp", "Privilege", "Priority", "DestPriority", "ChannelState",
           "DestChannelState", "Duration", "BillableSeconds", "Cause", "Uptime", "LastReload",
           "SSRC", "SentPackets", "SentOctets", "SentNTP", "SentRTP", "ReportCount", "PT",
           "BridgeNumChannels", "From", "To"}
NUMBER_FIELDS = {"Channel", "DestChannel", "CallerIDNum", "ConnectedLineNum", "DestCallerIDNum",
                 "DestConnectedLineNum", "Exten", "DestExten", "Extension", "AppData", "Value",
                 "Source", "Destination", "CallerID", "DestinationChannel", "LastData",
                 "DialString", "UserField", "Peer"}
CDR_TIMES = {"StartTime", "AnswerTime", "EndTime"}
TOKEN = re.compile(
    r"(?P<uid>(?<![\w.])\d{10}\.\d+(?![\w]))"
    r"|(?P<chan>-[0-9a-f]{8}(?![\w]))"
    r"|(?P<uuid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    r"|(?P<num>(?<![\w.])\d{2,12}(?![\w]))")
PEER_EXTENSION = re.compile(r"^(?:PJSIP|SIP)/(\d{2,6})-[0-9a-f]{8}$")

Block = list[tuple[str, str]]


# ---------------------------------------------------------------------------------------------
# AMI streams
# ---------------------------------------------------------------------------------------------


def parse_blocks(data: bytes) -> list[Block]:
    """AMI text (CRLF or LF, blank-line framed; the banner dropped) -> blocks of (key, value)."""
    blocks, current = [], []
    for line in data.decode("utf-8").replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if current:
                blocks.append(current)
                current = []
            continue
        if ":" not in line:
            continue
        key, _, value = line.partition(":")
        current.append((key.strip(), value[1:] if value.startswith(" ") else value))
    if current:
        blocks.append(current)
    return blocks


def render(block: Block) -> bytes:
    return ("".join(f"{k}: {v}\r\n" for k, v in block) + "\r\n").encode("utf-8")


def _ts(block: Block) -> float | None:
    for k, v in block:
        if k == "Timestamp":
            try:
                return float(v)
            except ValueError:
                return None
    return None


def _is_event(block: Block) -> bool:
    return any(k == "Event" for k, _ in block)


def recorded_stream() -> list[Block]:
    """The fixture calls in order, as recorded (events only: no banner, no login response)."""
    out: list[Block] = []
    for name in SHAPES:
        out.extend(b for b in parse_blocks((FIXTURES / f"{name}.txt").read_bytes())
                   if _is_event(b))
    return out


@dataclass
class Template:
    name: str
    blocks: list[Block]
    start: float                      # the first Timestamp
    extensions: list[str]             # in order of appearance
    externals: list[str]              # last 10 digits of external numbers
    key: str                          # the call's Linkedid


def load_templates() -> dict[str, Template]:
    templates = {}
    for name in SHAPES:
        blocks = [b for b in parse_blocks((FIXTURES / f"{name}.txt").read_bytes())
                  if _is_event(b) and any(k in ("Linkedid", "UniqueID") for k, _ in b)]
        exts: list[str] = []
        numbers: set[str] = set()
        key = ""
        for block in blocks:
            for k, v in block:
                m = PEER_EXTENSION.match(v) if k in ("Channel", "DestChannel") else None
                if m and m.group(1) not in exts:
                    exts.append(m.group(1))
                if k == "Linkedid" and not key:
                    key = v
                if k in ("CallerIDNum", "Source", "Destination", "Exten", "ConnectedLineNum"):
                    digits = re.sub(r"\D", "", v)
                    if len(digits) in (10, 11) and digits[-10:] != TEMPLATE_DID[-10:]:
                        numbers.add(digits[-10:])
        templates[name] = Template(name, blocks, _ts(blocks[0]) or 0.0, exts, sorted(numbers),
                                   key)
    return templates


@dataclass
class DayCall:
    key: str                          # the generated Linkedid
    shape: str
    external: str | None              # E.164 digits (7XXXXXXXXXX) or None for internal
    extensions: list[str]
    start: float


class DayGenerator:
    """``calls`` calls of a working day (``day``, ``hours`` local in ``tz``), deterministic for
    ``seed``. ``generate()`` -> (calls, blocks sorted by Timestamp)."""

    def __init__(self, calls: int, *, seed: int = 1, extensions=("101", "102", "103", "104"),
                 day: date | None = None, tz: str = "Europe/Moscow", hours=(9, 18),
                 known=(), known_share: float = 0.2, did: str = TEMPLATE_DID):
        self.calls = calls
        self.rng = random.Random(seed)
        self.extensions = [str(e) for e in extensions]
        if len(self.extensions) < 2:
            raise ValueError("at least two extensions are needed")
        self.tz = ZoneInfo(tz)
        self.day = day or datetime.now(self.tz).date()
        self.hours = hours
        self.known = [re.sub(r"\D", "", k)[-10:] for k in known if re.sub(r"\D", "", k)]
        self.known_share = known_share
        self.did = re.sub(r"\D", "", did)
        self.templates = load_templates()
        self._uid_seq = 100
        self._chan_seq = 0x100
        pool = max(10, calls // 3)
        self.pool = [f"9{self.rng.randrange(10**9):09d}" for _ in range(pool)]

    def generate(self) -> tuple[list[DayCall], list[Block]]:
        begin = datetime(self.day.year, self.day.month, self.day.day, self.hours[0],
                         tzinfo=self.tz).timestamp()
        span = (self.hours[1] - self.hours[0]) * 3600
        starts = sorted(begin + self.rng.random() * span for _ in range(self.calls))
        names = list(SHAPES)
        weights = [SHAPES[n] for n in names]
        calls, tagged = [], []
        for index, start in enumerate(starts):
            shape = self.rng.choices(names, weights)[0]
            if len(self.templates[shape].extensions) > len(self.extensions):
                shape = "outbound"
            call, blocks = self._call(self.templates[shape], start)
            calls.append(call)
            tagged.extend(((_ts(b) or start), index, n, b) for n, b in enumerate(blocks))
        tagged.sort(key=lambda t: (t[0], t[1], t[2]))
        return calls, [t[3] for t in tagged]

    def _external(self) -> str:
        if self.known and self.rng.random() < self.known_share:
            return self.rng.choice(self.known)
        return self.rng.choice(self.pool)

    def _call(self, tpl: Template, start: float) -> tuple[DayCall, list[Block]]:
        delta = start - tpl.start
        exts = self.rng.sample(self.extensions, len(tpl.extensions))
        ext_map = dict(zip(tpl.extensions, exts, strict=True))
        external = self._external()
        num_map = {old: external for old in tpl.externals}
        uid_map: dict[str, str] = {}
        chan_map: dict[str, str] = {}
        uuid_map: dict[str, str] = {}
        old_day = datetime.fromtimestamp(tpl.start, self.tz)
        new_day = datetime.fromtimestamp(start, self.tz)
        dates = [(old_day.strftime("%Y/%m/%d"), new_day.strftime("%Y/%m/%d")),
                 (old_day.strftime("%Y%m%d"), new_day.strftime("%Y%m%d"))]

        def number(digits: str) -> str:
            if digits in ext_map:
                return ext_map[digits]
            if len(digits) in (10, 11) and digits[-10:] in num_map:
                return digits[:-10] + num_map[digits[-10:]]
            if len(digits) in (10, 11) and digits[-10:] == TEMPLATE_DID[-10:]:
                return digits[:-10] + self.did[-10:]
            return digits

        def sub(match: re.Match, numbers: bool) -> str:
            text = match.group(0)
            if match.group("uid"):
                if text not in uid_map:
                    self._uid_seq += 1
                    uid_map[text] = f"{int(float(text.split('.')[0]) + delta)}.{self._uid_seq}"
                return uid_map[text]
            if match.group("chan"):
                if text not in chan_map:
                    self._chan_seq += 1
                    chan_map[text] = f"-{self._chan_seq:08x}"
                return chan_map[text]
            if match.group("uuid"):
                if text not in uuid_map:
                    uuid_map[text] = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
                return uuid_map[text]
            return number(text) if numbers else text

        out = []
        for block in tpl.blocks:
            new = []
            for k, v in block:
                if k == "Timestamp":
                    v = f"{float(v) + delta:.6f}"
                elif k in CDR_TIMES and v.strip():
                    t = datetime.strptime(v.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=self.tz)
                    v = datetime.fromtimestamp(t.timestamp() + delta, self.tz).strftime(
                        "%Y-%m-%d %H:%M:%S")
                elif k not in NUMERIC:
                    for old, new_date in dates:
                        v = v.replace(old, new_date)
                    v = TOKEN.sub(lambda m, n=k in NUMBER_FIELDS: sub(m, n), v)
                new.append((k, v))
            out.append(new)
        ext_e164 = None if tpl.name == "internal" else "7" + external
        return DayCall(uid_map.get(tpl.key, tpl.key), tpl.name, ext_e164, exts, start), out


def day_stream(calls: int, **options) -> tuple[list[DayCall], list[Block]]:
    return DayGenerator(calls, **options).generate()


class AmiServer:
    """A threaded AMI server replaying ``blocks`` to each connection after its login."""

    def __init__(self, blocks: list[Block], *, host: str = "127.0.0.1", port: int = 5038,
                 speed: float = 0.0, max_delay: float = 5.0, username: str | None = None,
                 secret: str | None = None, log=None):
        self.payload = [render(b) for b in blocks]
        self.stamps = [_ts(b) for b in blocks]
        self.speed, self.max_delay = speed, max_delay
        self.username, self.secret = username, secret
        self.log = log or (lambda message: None)
        self.sessions = 0
        self.finished = 0                     # sessions that sent the whole stream
        self.first_sent_at: float | None = None
        self.last_sent_at: float | None = None
        self._listener = socket.create_server((host, port), reuse_port=False)
        self.port = self._listener.getsockname()[1]
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> AmiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping = True
        try:
            self._listener.close()
        except OSError:
            pass

    def _serve(self):
        while not self._stopping:
            try:
                sock, address = self._listener.accept()
            except OSError:
                return
            self.sessions += 1
            threading.Thread(target=self._session, args=(sock, address), daemon=True).start()

    @staticmethod
    def _read_block(sock, buffer: bytearray) -> dict | None:
        while b"\r\n\r\n" not in buffer and b"\n\n" not in buffer:
            chunk = sock.recv(4096)
            if not chunk:
                return None
            buffer.extend(chunk)
        text = bytes(buffer).replace(b"\r\n", b"\n")
        head, _, rest = text.partition(b"\n\n")
        buffer[:] = rest
        return {k: v for k, v in (parse_blocks(head + b"\n") or [[]])[0]}

    def _session(self, sock, address):
        buffer = bytearray()
        try:
            sock.sendall(BANNER)
            while True:
                action = self._read_block(sock, buffer)
                if action is None:
                    return
                name = (action.get("Action") or "").lower()
                action_id = action.get("ActionID")
                echo = [("ActionID", action_id)] if action_id else []
                if name == "login":
                    ok = (self.username is None or action.get("Username") == self.username) \
                        and (self.secret is None or action.get("Secret") == self.secret)
                    if not ok:
                        sock.sendall(render([("Response", "Error"), *echo,
                                             ("Message", "Authentication failed")]))
                        return
                    sock.sendall(render([("Response", "Success"), *echo,
                                         ("Message", "Authentication accepted")]))
                    self.log(f"AMI login from {address[0]}:{address[1]}")
                    reader = threading.Thread(target=self._reader, args=(sock, buffer),
                                              daemon=True)
                    reader.start()
                    self._replay(sock)
                    while reader.is_alive() and not self._stopping:   # open, as a PBX keeps it
                        reader.join(0.5)
                    return
                sock.sendall(render([("Response", "Error"), *echo,
                                     ("Message", "Permission denied")]))
        except OSError:
            return
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def _reader(self, sock, buffer):
        """Answer actions sent during the replay (Ping, …); Logoff closes."""
        try:
            while True:
                action = self._read_block(sock, buffer)
                if action is None:
                    return
                echo = [("ActionID", action["ActionID"])] if action.get("ActionID") else []
                if (action.get("Action") or "").lower() == "logoff":
                    sock.sendall(render([("Response", "Goodbye"), *echo]))
                    sock.shutdown(socket.SHUT_RDWR)
                    return
                sock.sendall(render([("Response", "Success"), *echo]))
        except OSError:
            return

    def _replay(self, sock):
        sock.sendall(render([("Event", "FullyBooted"), ("Privilege", "system,all"),
                             ("Status", "Fully Booted")]))
        previous = None
        pending = bytearray()
        if self.first_sent_at is None:
            self.first_sent_at = time.monotonic()
        for data, stamp in zip(self.payload, self.stamps, strict=True):
            if self.speed > 0 and stamp is not None and previous is not None:
                delay = min(self.max_delay, max(0.0, (stamp - previous) / self.speed))
                if delay > 0.0005:
                    if pending:
                        sock.sendall(pending)
                        pending.clear()
                    time.sleep(delay)
            previous = stamp if stamp is not None else previous
            pending.extend(data)
            if len(pending) >= 65536:
                sock.sendall(pending)
                pending.clear()
        if pending:
            sock.sendall(pending)
        self.last_sent_at = time.monotonic()
        self.finished += 1
        self.log(f"AMI stream sent ({len(self.payload)} events)")


# ---------------------------------------------------------------------------------------------
# Cloud webhooks
# ---------------------------------------------------------------------------------------------


def _fresh(rng: random.Random, n: int = 20) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _replace_all(value, mapping: dict[str, str]):
    text = json.dumps(value, ensure_ascii=False)
    for old, new in mapping.items():
        text = text.replace(old, new)
    return json.loads(text)


def mango_calls(calls: int, key: str, salt: str, *, seed: int = 1,
                start: float | None = None) -> list[list[tuple[str, dict]]]:
    """Per call, the (``call`` | ``summary``, form) requests in order, signed."""
    from services.telephony.tests import cloud_samples as cs

    rng = random.Random(seed)
    t = int(start or time.time())
    makers = [cs.mango_answered_inbound, cs.mango_missed_queue, cs.mango_outbound]
    out = []
    for _ in range(calls):
        sample = rng.choice(makers)(t)
        t += rng.randint(5, 120)
        ids = {sample.entry_id: _fresh(rng)}
        for leg in sample.legs:
            ids.setdefault(leg["call_id"], _fresh(rng))
        ids.update({n: f"7{rng.randrange(9 * 10**9, 10**10)}" for n in (
            cs.UNKNOWN_CALLER, cs.KNOWN_CONTACT)})
        ids[cs.OUTBOUND_TO] = f"8495{rng.randrange(10**7):07d}"
        requests_ = [("call", cs.mango_form(_replace_all(leg, ids), key, salt))
                     for leg in sample.legs]
        requests_.append(("summary", cs.mango_form(_replace_all(sample.summary, ids), key,
                                                   salt)))
        out.append(requests_)
    return out


def zadarma_calls(calls: int, secret: str, *, seed: int = 1,
                  start: float | None = None) -> list[list[tuple[dict, dict]]]:
    """Per call, the (form, headers) requests in order, signed."""
    from services.telephony.tests import cloud_samples as cs

    rng = random.Random(seed)
    t = int(start or time.time())
    makers = [cs.zadarma_answered_inbound, cs.zadarma_missed_queue, cs.zadarma_outbound]
    out = []
    for _ in range(calls):
        events = rng.choice(makers)(t)
        t += rng.randint(5, 120)
        ids = {}
        for _, fields in events:
            if fields.get("pbx_call_id"):
                prefix = fields["pbx_call_id"].split("_")[0]
                ids.setdefault(fields["pbx_call_id"], f"{prefix}_{_fresh(rng)}")
            if fields.get("call_id_with_rec"):
                ids.setdefault(fields["call_id_with_rec"],
                               f"{t}.{rng.randrange(10**7):07d}")
        ids.update({n: f"7{rng.randrange(9 * 10**9, 10**10)}" for n in (
            cs.UNKNOWN_CALLER, cs.KNOWN_CONTACT)})
        ids[cs.OUTBOUND_TO] = f"8495{rng.randrange(10**7):07d}"
        out.append(cs.zadarma_requests(
            [(name, _replace_all(fields, ids)) for name, fields in events], secret))
    return out


def send_webhooks(kind: str, args) -> int:
    import requests

    session = requests.Session()
    base = args.gateway.rstrip("/")
    sent = failed = 0
    if kind == "mango":
        calls = mango_calls(args.calls, args.key, args.salt, seed=args.seed)
        for requests_ in calls:
            for event_type, form in requests_:
                r = session.post(f"{base}/api/v1/telephony/mango/events/{event_type}",
                                 data=form, timeout=30)
                sent += 1
                failed += r.status_code != 200
                if r.status_code != 200:
                    print(f"mango {event_type}: {r.status_code} {r.text[:200]}", file=sys.stderr)
    else:
        for requests_ in zadarma_calls(args.calls, args.secret, seed=args.seed):
            for form, headers in requests_:
                r = session.post(f"{base}/api/v1/telephony/zadarma", data=form,
                                 headers=headers, timeout=30)
                sent += 1
                failed += r.status_code != 200
                if r.status_code != 200:
                    print(f"zadarma {form['event']}: {r.status_code} {r.text[:200]}",
                          file=sys.stderr)
    print(f"{kind}: {args.calls} calls, {sent} requests, {failed} refused")
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.pbx_simulator",
                                     description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="kind", required=True)
    ami = sub.add_parser("ami", help="an AMI server replaying calls over TCP")
    ami.add_argument("--host", default="127.0.0.1")
    ami.add_argument("--port", type=int, default=5038)
    ami.add_argument("--speed", type=float, default=1.0,
                     help="event time / real time (0: no delays)")
    ami.add_argument("--max-delay", type=float, default=5.0,
                     help="longest pause between two events, seconds")
    ami.add_argument("--username")
    ami.add_argument("--secret")
    ami.add_argument("--day", action="store_true", help="a generated day instead of fixtures")
    ami.add_argument("--calls", type=int, default=300)
    ami.add_argument("--seed", type=int, default=1)
    ami.add_argument("--extensions", default="101,102,103,104")
    ami.add_argument("--known", default="", help="client numbers to call in now and then")
    ami.add_argument("--did", default=TEMPLATE_DID)
    ami.add_argument("--timezone", default="Europe/Moscow")
    ami.add_argument("--date", help="YYYY-MM-DD (default: today)")
    for kind in ("mango", "zadarma"):
        p = sub.add_parser(kind, help=f"signed {kind} webhooks to the gateway")
        p.add_argument("--gateway", default="http://127.0.0.1:8000")
        p.add_argument("--calls", type=int, default=3)
        p.add_argument("--seed", type=int, default=1)
        if kind == "mango":
            p.add_argument("--key", required=True)
            p.add_argument("--salt", required=True)
        else:
            p.add_argument("--secret", required=True)
    args = parser.parse_args(argv)

    if args.kind in ("mango", "zadarma"):
        return send_webhooks(args.kind, args)
    if args.day:
        calls, blocks = day_stream(
            args.calls, seed=args.seed, extensions=args.extensions.split(","),
            day=date.fromisoformat(args.date) if args.date else None, tz=args.timezone,
            known=[k for k in args.known.split(",") if k.strip()], did=args.did)
        print(f"a day of {len(calls)} calls, {len(blocks)} events", flush=True)
    else:
        blocks = recorded_stream()
        print(f"the recorded calls, {len(blocks)} events", flush=True)
    server = AmiServer(blocks, host=args.host, port=args.port, speed=args.speed,
                       max_delay=args.max_delay, username=args.username, secret=args.secret,
                       log=lambda m: print(m, flush=True)).start()
    print(f"AMI listening on {args.host}:{server.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

