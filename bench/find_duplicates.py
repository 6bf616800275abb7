"""Duplicate check latency: ``find_duplicates`` at 100k and 1M clients (target p99 < 10 ms at 1M).

    .venv/bin/python bench/find_duplicates.py [--sizes 100000,1000000] [--queries 2000]
        [--warmup 200] [--repeat-largest 2] [--alt-queries 500] [--no-rpc] [--no-alternatives]

For each size a fresh, migrated clients database (``TestDatabases().url_for("clients")``) is filled
with generated Russian companies, sole traders, their contacts and the identifiers rows
(``bench/datagen_clients.py``: COPY, then the service's own indexes rebuilt, then ANALYZE). Then,
one request at a time:

- duplicate check: what ``ClientsService.find_duplicates`` does per request minus nameko itself —
  ``normalise_client``/``normalise_contact`` of the candidate, then in one session/transaction
  ``ClientsService._matches`` (``store.exact_hits`` + ``store.fuzzy_hits`` + ``matching.rank`` +
  owner and department names). Candidates: 30 % known INN (+KPP), 30 % known phone or e-mail (of
  the client or a contact, typed the way people type them), 30 % a known name rewritten (legal
  form moved, quotes, case, word order; a third with a typo), 10 % new clients (misses);
- baseline (the floor): one ``SELECT … FROM clients WHERE inn = …`` (btree) in its own
  transaction through the same session factory;
- where the time goes: normalisation, ``exact_hits`` and ``fuzzy_hits`` each on its own;
- at the largest size: alternatives of the fuzzy query (pg_trgm threshold, GiST KNN, exact key)
  and EXPLAIN (ANALYZE, BUFFERS) of a typical and of the slowest name;
- at the smallest size: the same check through nameko for reference (in a child process with
  eventlet): in-process worker (``entrypoint_hook``) and a real RPC over RabbitMQ.
Writes bench/results/find_duplicates.json. The databases are dropped at the end.
"""

import sys

if __name__ == "__main__" and "--rpc-child" in sys.argv:
    import eventlet

    eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from decimal import Decimal  # noqa: E402
from pathlib import Path  # noqa: E402

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.dialects import postgresql  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import datagen_clients as datagen  # noqa: E402
from crm_platform.db import SessionFactory, make_engine  # noqa: E402
from crm_platform.testing import TestDatabases  # noqa: E402
from services.clients import store  # noqa: E402
from services.clients.domain.card import normalise_client, normalise_contact  # noqa: E402
from services.clients.domain.matching import SIMILAR_NAME  # noqa: E402
from services.clients.models import clients  # noqa: E402
from services.clients.service import ClientsService  # noqa: E402

TARGET_P99_MS = 10.0
SEED = 20261127
KINDS = ("inn", "contact", "name", "miss")
KIND_SHARES = (0.3, 0.3, 0.3, 0.1)


# -- statistics ------------------------------------------------------------------------------------

def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary(values_ms: list[float]) -> dict:
    return {"n": len(values_ms), "p50": round(pct(values_ms, 50), 3),
            "p95": round(pct(values_ms, 95), 3), "p99": round(pct(values_ms, 99), 3),
            "max": round(max(values_ms), 3), "mean": round(sum(values_ms) / len(values_ms), 3)}


def timed(func, items) -> tuple[list[float], list]:
    times, results = [], []
    for item in items:
        t0 = time.perf_counter()
        results.append(func(item))
        times.append((time.perf_counter() - t0) * 1000)
    return times, results


# -- candidates ------------------------------------------------------------------------------------

def typed_phone(rng: random.Random, e164: str) -> str:
    """+79161234567 the way people type it."""
    national = e164[2:]
    code_len = 3 if national[:1] == "9" or national[:3] in ("495", "499", "812") else (
        4 if len(national) == 10 and national[:1] == "3" and national[:4] in
        ("3452", "3812", "3952", "3842", "3462", "3522", "3532") else 3)
    code, rest = national[:code_len], national[code_len:]
    parts = f"{rest[:-4]}-{rest[-4:-2]}-{rest[-2:]}"
    return rng.choice((f"+7 ({code}) {parts}", f"8 {code} {rest}", f"8({code}){parts}",
                       f"+7{national}", f"8{national}", national, f"+7 {code} {rest}"))


def typo(rng: random.Random, text: str) -> str:
    words = text.split(" ")
    long_words = [i for i, w in enumerate(words) if len(w) >= 5]
    if not long_words:
        return text
    i = rng.choice(long_words)
    w = words[i]
    pos = rng.randrange(1, len(w) - 1)
    op = rng.choice(("neighbour", "delete", "double", "swap"))
    if op == "neighbour":
        lower = w[pos].lower()
        near = datagen.NEIGHBOURS.get(lower)
        if near:
            ch = rng.choice(near)
            w = w[:pos] + (ch.upper() if w[pos].isupper() else ch) + w[pos + 1:]
        else:
            op = "delete"
    if op == "delete":
        w = w[:pos] + w[pos + 1:]
    elif op == "double":
        w = w[:pos] + w[pos] + w[pos:]
    elif op == "swap":
        w = w[:pos - 1] + w[pos] + w[pos - 1] + w[pos + 1:]
    words[i] = w
    return " ".join(words)


def name_variant(rng: random.Random, client: datagen.Client, typo_share: float = 0.0) -> str:
    """The client's name as another person would type it: legal form moved or spelled out,
    other quotes, other case, other word order; sometimes with a typo."""
    bare, form = client.bare, client.legal_form
    if rng.random() < typo_share:
        bare = typo(rng, bare)
    words = bare.split(" ")
    if len(words) > 1 and rng.random() < 0.3:
        rng.shuffle(words)
        bare = " ".join(words)
    r = rng.random()
    if r < 0.15:
        bare = bare.upper()
    elif r < 0.3:
        bare = bare.lower()
    styles = (f"{form} «{bare}»", f"{bare}, {form}", f'{form} "{bare}"', bare,
              f"{datagen.SPELLED[form]} «{bare}»", f"{bare} {form}")
    if form == "ИП":
        styles = (f"ИП {bare}", f"{bare} ИП", bare, f"Индивидуальный предприниматель {bare}")
    return rng.choice(styles)


def fresh_name(rng: random.Random) -> str:
    form = rng.choices(datagen.LEGAL_FORMS, cum_weights=datagen.FORM_CUM)[0]
    bare = datagen.person_name(rng, True) if form[3] else datagen.company_name(rng)
    return datagen.short_name_for(rng, form[0], bare)


def build_candidates(sample: list[datagen.Client], gen: datagen.ClientGenerator,
                     seed: int) -> list[dict]:
    """One candidate per sampled client: {"kind", "candidate" (raw input), "expect" (client id
    that must be found, or None)}."""
    rng = random.Random(seed)
    out = []
    for client in sample:
        kind = rng.choices(KINDS, KIND_SHARES)[0]
        expect = str(client.id)
        if kind == "inn":
            cand = {"short_name": name_variant(rng, client, 0.1), "inn": client.inn}
            if client.kpp and rng.random() < 0.7:
                cand["kpp"] = client.kpp
            if rng.random() < 0.3:
                cand["phones"] = [typed_phone(rng, gen.mobile())]
        elif kind == "contact":
            own = [("phone", p, None) for p in client.phones] + \
                  [("email", e, None) for e in client.emails]
            for contact in client.contacts:
                own += [("phone", p, contact) for p in contact["phones"]]
                own += [("email", e, contact) for e in contact["emails"]]
            what, value, contact = rng.choice(own)
            typed = typed_phone(rng, value) if what == "phone" else (
                value.upper() if rng.random() < 0.3 else value)
            cand = {"short_name": name_variant(rng, client) if rng.random() < 0.5
                    else fresh_name(rng)}
            if contact is not None and rng.random() < 0.6:
                cand["contacts"] = [{"full_name": contact["full_name"],
                                     ("phones" if what == "phone" else "emails"): [typed]}]
            else:
                cand["phones" if what == "phone" else "emails"] = [typed]
        elif kind == "name":
            cand = {"short_name": name_variant(rng, client, typo_share=0.35)}
            if rng.random() < 0.3:
                cand["phones"] = [typed_phone(rng, gen.mobile())]
        else:
            personal = rng.random() < 0.2
            region = rng.choices(datagen.REGIONS, cum_weights=datagen.REGION_CUM)[0]
            cand = {"short_name": fresh_name(rng),
                    "inn": gen.new_inn(region[0], personal, fresh=True),
                    "phones": [typed_phone(rng, gen.mobile())]}
            expect = None
        out.append({"kind": kind, "candidate": cand, "expect": expect})
    return out


# -- the measured code paths -----------------------------------------------------------------------

def duplicate_check(sessions: SessionFactory, candidate: dict, similar: bool = False) -> list:
    """``ClientsService.find_duplicates`` without nameko (``self.caller.require()`` is a dict
    lookup): ``_matches`` uses nothing of ``self``. ``similar=False`` is the check at lead entry
    (what blocks: exact keys and the exact normalised name); ``True`` adds look-alike names."""
    card = normalise_client(candidate, partial=True)
    contacts_in = [normalise_contact(c, partial=True) for c in candidate.get("contacts", [])]
    with sessions.session() as session:
        return ClientsService._matches(None, session, card, contacts_in, similar=similar)


def inn_lookup(sessions: SessionFactory, inn: str) -> list:
    with sessions.session() as session:
        return session.execute(sa.select(clients).where(clients.c.inn == inn)).mappings().all()


def fuzzy_query(key: str, *, order: str = "similarity", op: str = "%"):
    if op == "<%":   # word similarity: the key as a whole within a longer name
        score = sa.func.word_similarity(key, clients.c.name_key)
        match = sa.literal(key).op("<%")(clients.c.name_key)
    else:
        score = sa.func.similarity(clients.c.name_key, key)
        match = clients.c.name_key.op("%")(key)
    query = sa.select(clients, score.label("similarity")).where(match) \
        .where(clients.c.merged_into.is_(None))
    if order == "distance":   # GiST KNN: name_key <-> key is 1 - similarity
        query = query.order_by(clients.c.name_key.op("<->")(key))
    else:
        query = query.order_by(score.desc())
    return query.limit(10)


NAMES = sa.table("bench_names", sa.column("id"), sa.column("name_key"),
                 sa.column("ntrgm", sa.Integer))


def run_fuzzy_variant(session, key: str, variant: dict) -> list[float]:
    if variant.get("exact"):
        rows = session.execute(sa.select(clients.c.id).where(clients.c.name_key == key)
                               .where(clients.c.merged_into.is_(None)).limit(10)).all()
        return [1.0] * len(rows)
    if variant.get("narrow"):   # a side table of (id, name_key) only: the recheck reads less
        threshold = variant["threshold"]
        session.execute(sa.select(sa.func.set_limit(threshold)))
        score = sa.func.similarity(NAMES.c.name_key, key)
        inner = sa.select(NAMES.c.id, score.label("similarity")) \
            .where(NAMES.c.name_key.op("%")(key))
        if variant.get("bounded"):
            # similarity = shared / (n_key + n_row - shared) >= t needs t <= n_row / n_key <= 1/t
            # (n = distinct trigrams): an exact bound, so no row that passes % is lost.
            t = sa.literal(Decimal(str(threshold)), sa.Numeric)
            n = sa.func.array_length(sa.func.show_trgm(sa.literal(key, sa.Text)), 1)
            inner = inner.where(NAMES.c.ntrgm.between(sa.cast(sa.func.ceil(t * n), sa.Integer),
                                                      sa.cast(sa.func.floor(n / t), sa.Integer)))
        top = inner.order_by(score.desc()).limit(10).subquery()
        rows = session.execute(sa.select(clients, top.c.similarity)
                               .join(top, top.c.id == clients.c.id)
                               .where(clients.c.merged_into.is_(None))
                               .order_by(top.c.similarity.desc())).mappings().all()
        return [round(float(r["similarity"]), 4) for r in rows]
    if variant.get("op") == "<%":
        session.execute(sa.text("SET LOCAL pg_trgm.word_similarity_threshold = "
                                f"{float(variant['threshold'])}"))
    else:
        session.execute(sa.select(sa.func.set_limit(variant["threshold"])))
    rows = session.execute(fuzzy_query(key, order=variant.get("order", "similarity"),
                                       op=variant.get("op", "%"))).mappings().all()
    return [round(float(r["similarity"]), 4) for r in rows]


def explain(sessions: SessionFactory, key: str, variant: dict | None = None) -> str:
    variant = variant or {"threshold": 0.5}
    query = fuzzy_query(key, order=variant.get("order", "similarity"))
    # Literal SQL for EXPLAIN; the pyformat dialect doubles the % of the trigram operator.
    compiled = str(query.compile(dialect=postgresql.dialect(),
                                 compile_kwargs={"literal_binds": True})).replace("%%", "%")
    with sessions.session() as session:
        session.execute(sa.select(sa.func.set_limit(variant["threshold"])))
        plan = session.execute(sa.text("EXPLAIN (ANALYZE, BUFFERS) " + compiled)).scalars().all()
    return "\n".join(plan)


def explain_narrow(sessions: SessionFactory, key: str, variant: dict) -> str:
    """EXPLAIN of a narrow-table variant (the statement run_fuzzy_variant sends)."""
    statements = []

    class Recorder:
        def execute(self, statement):
            statements.append(statement)
            return self

        def mappings(self):
            return self

        def all(self):
            return []

    run_fuzzy_variant(Recorder(), key, variant)
    compiled = str(statements[-1].compile(dialect=postgresql.dialect(),
                                          compile_kwargs={"literal_binds": True}))
    with sessions.session() as session:
        session.execute(statements[0])
        plan = session.execute(sa.text("EXPLAIN (ANALYZE, BUFFERS) " +
                                       compiled.replace("%%", "%"))).scalars().all()
    return "\n".join(plan)


def blocking_check(sessions: SessionFactory, candidate: dict) -> list[tuple]:
    """A possible split of the check: what blocks creation (exact identifiers, and the exact
    normalised name through a btree on name_key instead of the trigram search), ranked and with
    owner and department names as ``_matches`` does. Similar (non-blocking) names would be a
    separate call."""
    from services.clients.domain.card import identifiers_of
    from services.clients.domain.matching import rank

    card = normalise_client(candidate, partial=True)
    contacts_in = [normalise_contact(c, partial=True) for c in candidate.get("contacts", [])]
    with sessions.session() as session:
        exact = store.exact_hits(session, identifiers_of(card, contacts_in))
        same = []
        if card.get("name_key"):
            same = session.execute(sa.select(clients).where(clients.c.name_key == card["name_key"])
                                   .where(clients.c.merged_into.is_(None)).limit(10)
                                   ).mappings().all()
        ranked = rank(card, exact, [(dict(r), 1.0) for r in same])
        rows = [row for _, row in ranked]
        names = store.staff_names(session, [r["owner_id"] for r in rows])
        depts = store.department_names(session, [r["department_id"] for r in rows])
    return [(m.client_id, m.blocking, names.get(r["owner_id"]), depts.get(r["department_id"]))
            for m, r in ranked]


def proposed_blocking(url: str, sessions: SessionFactory, cands: list[dict], warmup: int,
                      current: list[list[dict]]) -> dict:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("CREATE INDEX bench_name_key ON clients (name_key)"))
        conn.execute(sa.text("ANALYZE clients"))
    try:
        for cand in cands[:warmup]:
            blocking_check(sessions, cand["candidate"])
        timed_cands = cands[warmup:]
        times, results = timed(lambda c: blocking_check(sessions, c["candidate"]), timed_cands)
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text("DROP INDEX IF EXISTS bench_name_key"))
        engine.dispose()
    same_decision = missed = extra = 0
    for now, proposed in zip(current, results, strict=True):
        blocks_now = any(m["blocking"] for m in now)
        blocks_then = any(blocking for _, blocking, _, _ in proposed)
        same_decision += blocks_now == blocks_then
        missed += blocks_now and not blocks_then
        extra += blocks_then and not blocks_now
    entry = summary(times)
    entry.update({"same_blocking_decision": round(same_decision / len(results), 4),
                  "blocked_now_but_not_by_proposal": missed,
                  "blocked_by_proposal_not_now": extra,
                  "by_kind": {k: summary([t for t, c in zip(times, timed_cands, strict=True)
                                          if c["kind"] == k]) for k in KINDS}})
    print("  " + row("proposed blocking check", entry) +
          f"   same decision {entry['same_blocking_decision']:.4f} (missed {missed}, "
          f"extra {extra})", flush=True)
    return entry


def explain_exact(sessions: SessionFactory, candidate: dict) -> str:
    """The statement of ``store.exact_hits`` for one candidate, explained."""
    from services.clients.domain.card import identifiers_of
    from services.clients.models import identifiers

    card = normalise_client(candidate, partial=True)
    contacts_in = [normalise_contact(c, partial=True) for c in candidate.get("contacts", [])]
    pairs = sorted({(kind, value) for kind, value, _ in identifiers_of(card, contacts_in)})
    query = (sa.select(identifiers.c.kind, identifiers.c.value, clients)
             .join(clients, clients.c.id == identifiers.c.client_id)
             .where(sa.tuple_(identifiers.c.kind, identifiers.c.value).in_(pairs))
             .where(clients.c.merged_into.is_(None)))
    compiled = str(query.compile(dialect=postgresql.dialect(),
                                 compile_kwargs={"literal_binds": True})).replace("%%", "%")
    with sessions.session() as session:
        plan = session.execute(sa.text("EXPLAIN (ANALYZE, BUFFERS) " + compiled)).scalars().all()
    return "\n".join(plan)


# -- nameko reference (child process with eventlet) ------------------------------------------------

def rabbit_api():
    from urllib.parse import urlsplit

    from crm_platform.config import env

    parts = urlsplit(env("CRM_RABBIT_API_URI", "http://guest:guest@127.0.0.1:15672"))
    return f"{parts.scheme}://{parts.hostname}:{parts.port}", (parts.username, parts.password)


def rpc_child(spec_path: str) -> int:
    import requests
    from nameko.containers import ServiceContainer
    from nameko.standalone.rpc import ClusterRpcProxy
    from nameko.testing.services import entrypoint_hook

    from crm_platform.config import env
    from crm_platform.identity import IDENTITY_CONTEXT_KEY
    from crm_platform.testing import free_port

    spec = json.loads(Path(spec_path).read_text())
    base, auth = rabbit_api()
    vhost = f"bench_{uuid.uuid4().hex[:8]}"
    requests.put(f"{base}/api/vhosts/{vhost}", auth=auth, timeout=10).raise_for_status()
    requests.put(f"{base}/api/permissions/{vhost}/{auth[0]}", auth=auth, timeout=10,
                 json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
    amqp_uri = f"amqp://guest:guest@{env('CRM_BENCH_AMQP_HOST', '127.0.0.1:5672')}/{vhost}"
    config = {"AMQP_URI": amqp_uri, "DB_URL": spec["db_url"],
              "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}", "OUTBOX_POLL_INTERVAL": 0.5,
              "EVENT_RETRY_DELAYS_MS": "1000", "JWT_SECRET": "bench-secret-bench-secret-bench",
              "LOCAL_LOGIN": True, "max_workers": 10}
    context = {IDENTITY_CONTEXT_KEY: spec["identity"]}
    candidates, warmup = spec["candidates"], spec["warmup"]
    container = ServiceContainer(ClientsService, config)
    container.start()
    result = {}
    try:
        with entrypoint_hook(container, "find_duplicates", context_data=context) as hook:
            for cand in candidates[:warmup]:
                hook(cand)
            times, _ = timed(hook, candidates[warmup:])
        result["entrypoint_hook"] = summary(times)
        with ClusterRpcProxy({"AMQP_URI": amqp_uri}, context_data=context) as proxy:
            call = proxy.clients.find_duplicates
            for cand in candidates[:warmup]:
                call(cand)
            times, _ = timed(call, candidates[warmup:])
        result["rpc_over_rabbitmq"] = summary(times)
    finally:
        container.stop()
        requests.delete(f"{base}/api/vhosts/{vhost}", auth=auth, timeout=10)
    Path(spec["out"]).write_text(json.dumps(result))
    return 0


def nameko_reference(url: str, org: datagen.Org, candidates: list[dict], warmup: int) -> dict:
    manager = next(p for p in org.staff if p["role"] == "manager")
    identity = {"user_id": str(manager["user_id"]), "role": "manager", "username": "bench",
                "full_name": manager["full_name"], "department_id": str(manager["department_id"])}
    with tempfile.TemporaryDirectory() as tmp:
        spec, out = Path(tmp, "spec.json"), Path(tmp, "out.json")
        spec.write_text(json.dumps({"db_url": url, "identity": identity, "warmup": warmup,
                                    "candidates": [c["candidate"] for c in candidates],
                                    "out": str(out)}, ensure_ascii=False))
        done = subprocess.run([sys.executable, __file__, "--rpc-child", str(spec)],
                              cwd=ROOT, timeout=1800, capture_output=True, text=True)
        if done.returncode != 0 or not out.exists():
            return {"error": (done.stderr or done.stdout)[-2000:]}
        return json.loads(out.read_text())


# -- one size --------------------------------------------------------------------------------------

def db_facts(url: str) -> dict:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        facts = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar()  # noqa: S608
                 for t in ("clients", "contacts", "identifiers")}
        for rel in ("clients", "identifiers", "ix_clients_name_trgm", "ix_clients_inn",
                    "identifiers_pkey"):
            facts[f"size_{rel}"] = conn.execute(sa.text(
                "SELECT pg_size_pretty(pg_total_relation_size(:r))"), {"r": rel}).scalar()
        facts["distinct_name_keys"] = conn.execute(sa.text(
            "SELECT count(DISTINCT name_key) FROM clients")).scalar()
    engine.dispose()
    return facts


def check_results(cands: list[dict], results: list[list[dict]]) -> dict:
    """How often the client a candidate was made from came back (exact kinds must be 100 %), and
    how often something blocking was found."""
    found, blocking = {k: [0, 0] for k in KINDS}, {k: [0, 0] for k in KINDS}
    for cand, matches in zip(cands, results, strict=True):
        ids = {m["client_id"] for m in matches}
        if cand["expect"]:
            found[cand["kind"]][0] += cand["expect"] in ids
            found[cand["kind"]][1] += 1
        blocking[cand["kind"]][0] += any(m["blocking"] for m in matches)
        blocking[cand["kind"]][1] += 1
    return {"expected_client_returned": {k: round(a / b, 3) for k, (a, b) in found.items() if b},
            "blocking_match_returned": {k: round(a / b, 3) for k, (a, b) in blocking.items()
                                        if b}}


def measure(sessions: SessionFactory, cands: list[dict], warmup: int) -> dict:
    for cand in cands[:warmup]:
        duplicate_check(sessions, cand["candidate"])
    timed_cands = cands[warmup:]
    times, results = timed(lambda c: duplicate_check(sessions, c["candidate"]), timed_cands)
    by_kind = {k: summary([t for t, c in zip(times, timed_cands, strict=True) if c["kind"] == k])
               for k in KINDS}
    inns = [c["candidate"]["inn"] for c in timed_cands if c["kind"] == "inn"]
    inns = (inns * (len(timed_cands) // max(1, len(inns)) + 1))[:len(timed_cands)]
    for inn in inns[:warmup]:
        inn_lookup(sessions, inn)
    base_times, _ = timed(lambda inn: inn_lookup(sessions, inn), inns)
    similar_times, _ = timed(lambda c: duplicate_check(sessions, c["candidate"], similar=True),
                             timed_cands)
    return {"check": summary(times), "check_with_similar": summary(similar_times),
            "by_kind": by_kind, "baseline_inn_lookup": summary(base_times),
            "quality": check_results(timed_cands, results), "_results": results}


def components(sessions: SessionFactory, cands: list[dict]) -> dict:
    """Each step of the check on its own (same candidates): where the time goes."""
    from services.clients.domain.card import identifiers_of

    cards = []
    norm_times = []
    for cand in cands:
        t0 = time.perf_counter()
        card = normalise_client(cand["candidate"], partial=True)
        contacts_in = [normalise_contact(c, partial=True)
                       for c in cand["candidate"].get("contacts", [])]
        norm_times.append((time.perf_counter() - t0) * 1000)
        cards.append((card, contacts_in))

    def exact(item):
        with sessions.session() as session:
            return store.exact_hits(session, identifiers_of(*item))

    def fuzzy(item):
        with sessions.session() as session:
            return store.fuzzy_hits(session, item[0].get("name_key", ""))

    exact_times, _ = timed(exact, cards)
    fuzzy_times, fuzzy_rows = timed(fuzzy, cards)
    slowest = sorted(zip(fuzzy_times, cards, fuzzy_rows, strict=True), key=lambda x: -x[0])[:5]
    return {"normalise": summary(norm_times), "exact_hits": summary(exact_times),
            "fuzzy_hits": summary(fuzzy_times),
            "fuzzy_rows_returned": summary([float(len(r)) for r in fuzzy_rows]),
            "slowest_fuzzy": [{"ms": round(t, 2), "name_key": card["name_key"],
                               "rows": len(rows)} for t, (card, _), rows, in slowest],
            "_keys": [(t, card.get("name_key", "")) for t, (card, _) in zip(fuzzy_times, cards,
                                                                           strict=True)]}


VARIANTS = {
    "current: % (GIN), set_limit 0.5, order by similarity": {"threshold": 0.5},
    "set_limit 0.6 (= SIMILAR_NAME; same ranked output)": {"threshold": SIMILAR_NAME},
    "set_limit 0.7": {"threshold": 0.7},
    "set_limit 0.8": {"threshold": 0.8},
    "word_similarity <% 0.6 (GIN)": {"threshold": 0.6, "op": "<%"},
}
GIST_VARIANTS = {
    "GiST KNN: % + order by <->, set_limit 0.5": {"threshold": 0.5, "order": "distance"},
    "GiST KNN: % + order by <->, set_limit 0.6": {"threshold": SIMILAR_NAME, "order": "distance"},
}
EXACT_VARIANT = {"exact name_key = key (btree)": {"exact": True}}
NARROW_VARIANTS = {
    "narrow (id, name_key) table + GIN, set_limit 0.5": {"threshold": 0.5, "narrow": True},
    "narrow (id, name_key) table + GIN, set_limit 0.6": {"threshold": SIMILAR_NAME,
                                                          "narrow": True},
}
BOUNDED_VARIANTS = {
    "narrow + GIN (ntrgm, name_key) + trigram-count bound, 0.5": {
        "threshold": 0.5, "narrow": True, "bounded": True},
    "narrow + GIN (ntrgm, name_key) + trigram-count bound, 0.6": {
        "threshold": SIMILAR_NAME, "narrow": True, "bounded": True},
}


def alternatives(url: str, sessions: SessionFactory, keys: list[str]) -> dict:
    """Fuzzy-query variants on the same names: latency, and whether the rows that matter
    (similarity >= SIMILAR_NAME, what rank() keeps) are the same as the current query's."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    out: dict = {}

    def run(name, variant, reference=None, limit=None):
        def one(key):
            with sessions.session() as session:
                return run_fuzzy_variant(session, key, variant)
        subset = keys[:limit]
        for key in subset[:20]:
            one(key)
        times, results = timed(one, subset)
        entry = summary(times)
        if reference is not None:
            kept = [[s for s in r if s >= SIMILAR_NAME] for r in results]
            ref = [[s for s in r if s >= SIMILAR_NAME] for r in reference[:len(subset)]]
            entry["same_rows_for_rank"] = round(sum(a == b for a, b in zip(kept, ref, strict=True))
                                                / len(subset), 3)
            entry["queries_losing_a_blocking_name"] = sum(
                (max(b, default=0) >= 0.9) and (max(a, default=0) < 0.9)
                for a, b in zip(kept, ref, strict=True))
        out[name] = entry
        print(f"    {name:52s} n {len(subset):4d} p50 {entry['p50']:7.2f} p99 {entry['p99']:7.2f}"
              + (f" ms  same rows {entry['same_rows_for_rank']:.3f}, lost blocking names "
                 f"{entry['queries_losing_a_blocking_name']}" if reference else " ms"),
              flush=True)
        return results

    reference = None
    for name, variant in VARIANTS.items():
        results = run(name, variant, reference)
        reference = reference or results
    with engine.connect() as conn:
        t0 = time.perf_counter()
        conn.execute(sa.text("SET maintenance_work_mem = '512MB'"))
        conn.execute(sa.text("CREATE INDEX bench_name_gist ON clients "
                             "USING gist (name_key gist_trgm_ops)"))
        conn.execute(sa.text("ANALYZE clients"))
        out["gist_build_s"] = round(time.perf_counter() - t0, 1)
        out["gist_size"] = conn.execute(sa.text(
            "SELECT pg_size_pretty(pg_relation_size('bench_name_gist'))")).scalar()
    try:
        for name, variant in GIST_VARIANTS.items():
            run(name, variant, reference, limit=max(50, len(keys) // 5))
        out["gist_plan"] = explain(sessions, keys[0], next(iter(GIST_VARIANTS.values())))
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text("DROP INDEX IF EXISTS bench_name_gist"))
    with engine.connect() as conn:
        t0 = time.perf_counter()
        conn.execute(sa.text("CREATE INDEX bench_name_key ON clients (name_key)"))
        conn.execute(sa.text("ANALYZE clients"))
        out["btree_build_s"] = round(time.perf_counter() - t0, 1)
    try:
        for name, variant in EXACT_VARIANT.items():
            run(name, variant, reference)
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text("DROP INDEX IF EXISTS bench_name_key"))
    with engine.connect() as conn:
        t0 = time.perf_counter()
        conn.execute(sa.text("SET maintenance_work_mem = '512MB'"))
        conn.execute(sa.text(
            "CREATE TABLE bench_names AS SELECT id, name_key, "
            "coalesce(array_length(show_trgm(name_key), 1), 0) AS ntrgm FROM clients"))
        conn.execute(sa.text("ALTER TABLE bench_names ADD PRIMARY KEY (id)"))
        conn.execute(sa.text("CREATE INDEX bench_names_trgm ON bench_names "
                             "USING gin (name_key gin_trgm_ops)"))
        conn.execute(sa.text("VACUUM (ANALYZE) bench_names"))
        out["narrow_build_s"] = round(time.perf_counter() - t0, 1)
    try:
        for name, variant in NARROW_VARIANTS.items():
            run(name, variant, reference)
        with engine.connect() as conn:
            t0 = time.perf_counter()
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS btree_gin"))
            conn.execute(sa.text("SET maintenance_work_mem = '512MB'"))
            conn.execute(sa.text("DROP INDEX bench_names_trgm"))
            conn.execute(sa.text("CREATE INDEX bench_names_len_trgm ON bench_names "
                                 "USING gin (ntrgm, name_key gin_trgm_ops)"))
            conn.execute(sa.text("ANALYZE bench_names"))
            out["bounded_build_s"] = round(time.perf_counter() - t0, 1)
        for name, variant in BOUNDED_VARIANTS.items():
            run(name, variant, reference)
        out["bounded_plan"] = explain_narrow(sessions, keys[0],
                                             BOUNDED_VARIANTS[next(iter(BOUNDED_VARIANTS))])
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS bench_names"))
    engine.dispose()
    return out


def trgm_facts(url: str, keys: list[str]) -> dict:
    """How many clients hold each trigram of the given names (the GIN posting list lengths the
    `%` search has to read)."""
    engine = sa.create_engine(url)
    out = {}
    with engine.connect() as conn:
        for key in keys:
            trigrams = conn.execute(sa.text("SELECT show_trgm(:k)"), {"k": key}).scalar()
            counts = dict(conn.execute(sa.text(
                "SELECT t, count(*) FROM clients, unnest(show_trgm(name_key)) AS t "
                "WHERE t = ANY(:t) GROUP BY t ORDER BY 2 DESC"), {"t": trigrams}).all())
            out[key] = {"trigrams": len(trigrams), "rows_per_trigram": counts,
                        "total_postings": sum(counts.values())}
    engine.dispose()
    return out


# -- main ------------------------------------------------------------------------------------------

def row(label: str, s: dict, extra: str = "") -> str:
    return (f"{label:44s} {s['p50']:8.2f} {s['p95']:8.2f} {s['p99']:8.2f} {s['max']:8.2f}"
            f"{extra}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--repeat-largest", type=int, default=2)
    parser.add_argument("--alt-queries", type=int, default=500)
    parser.add_argument("--rpc-queries", type=int, default=1000)
    parser.add_argument("--no-rpc", action="store_true")
    parser.add_argument("--no-alternatives", action="store_true")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "find_duplicates.json"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    datagen.selfcheck()
    org = datagen.Org.generate(SEED)
    gen = datagen.ClientGenerator(SEED, org)
    databases = TestDatabases()
    report_sizes = []
    sessions = None
    try:
        url = databases.url_for("clients")
        signature = datagen.index_signature(url)
        datagen.load_org(url, org)
        sessions = SessionFactory(make_engine(url))
        for size in sizes:
            print(f"== {size:,} clients: generating and loading", flush=True)
            sample_size = args.warmup + max(args.queries, args.rpc_queries)
            stats, sample = datagen.load(url, size, gen, sample_size=sample_size)
            assert datagen.index_signature(url) == signature, "index rebuild changed the schema"
            facts = db_facts(url)
            print(f"  loaded in {stats.total_s:.0f} s (generate {stats.generate_s:.0f} s, "
                  f"waiting for COPY {stats.copy_wait_s:.0f} s, indexes {stats.index_s:.0f} s, "
                  f"vacuum/analyze {stats.analyze_s:.0f} s): {facts}", flush=True)
            cands = build_candidates(sample, gen, SEED + size)
            cands = cands[:args.warmup + args.queries]
            entry = {"clients": size, "load": {k: round(v, 1) if isinstance(v, float) else v
                                               for k, v in vars(stats).items()},
                     "database": facts, "runs": []}
            repeats = args.repeat_largest if size == max(sizes) else 1
            for run in range(repeats):
                result = measure(sessions, cands, args.warmup)
                current_results = result.pop("_results")
                entry["runs"].append(result)
                print(f"  run {run + 1}: " + row("duplicate check", result["check"]) +
                      f"   | INN lookup p50 {result['baseline_inn_lookup']['p50']:.2f} "
                      f"p99 {result['baseline_inn_lookup']['p99']:.2f}", flush=True)
            comp = components(sessions, cands[args.warmup:])
            keys_by_time = comp.pop("_keys")
            entry["components"] = comp
            print("  components: " + ", ".join(
                f"{k} p50 {comp[k]['p50']:.2f} p99 {comp[k]['p99']:.2f}"
                for k in ("normalise", "exact_hits", "fuzzy_hits")), flush=True)
            ordered = sorted(keys_by_time)
            median_key, slow_key = ordered[len(ordered) // 2][1], ordered[-1][1]
            entry["explain"] = {"median_name": {"name_key": median_key,
                                                "plan": explain(sessions, median_key)},
                                "slowest_name": {"name_key": slow_key,
                                                 "plan": explain(sessions, slow_key)}}
            entry["trigram_list_lengths"] = trgm_facts(url, [median_key, slow_key])
            rich = next((c for c in cands if c["kind"] == "inn" and "kpp" in c["candidate"]
                         and "phones" in c["candidate"]), cands[0])
            entry["explain"]["exact_hits"] = {"candidate": rich["candidate"],
                                              "plan": explain_exact(sessions, rich["candidate"])}
            if size == min(sizes) and not args.no_rpc:
                print("  nameko reference (child process)...", flush=True)
                rpc_warmup = min(args.warmup, 100)
                rpc_cands = build_candidates(sample, gen, SEED + size + 1)[
                    :rpc_warmup + args.rpc_queries]
                entry["nameko_reference"] = nameko_reference(url, org, rpc_cands, rpc_warmup)
                print(f"  nameko: {entry['nameko_reference']}", flush=True)
            if size == max(sizes) and not args.no_alternatives:
                print("  fuzzy query alternatives:", flush=True)
                keys = [key for _, key in keys_by_time][:args.alt_queries]
                entry["fuzzy_alternatives"] = alternatives(url, sessions, keys)
                print("  proposed blocking check (exact keys + exact name key):", flush=True)
                entry["blocking_check"] = proposed_blocking(url, sessions, cands, args.warmup,
                                                            current_results)
            report_sizes.append(entry)
    finally:
        if sessions is not None:
            sessions.engine.dispose()
        if args.keep_db:
            print(f"kept {databases.created}")
        else:
            databases.drop_all()

    figures = []
    for entry in report_sizes:
        for i, run in enumerate(entry["runs"]):
            label = f"{entry['clients']:,} clients" + (
                f", run {i + 1}" if len(entry["runs"]) > 1 else "")
            base = run["baseline_inn_lookup"]
            for p in ("p50", "p99"):
                figures.append({
                    "figure": f"find_duplicates {p} at {label}", "value": run["check"][p],
                    "unit": "ms", "baseline": f"exact INN btree lookup (one SELECT) {p}",
                    "baseline_value": base[p], "ratio": round(run["check"][p] / base[p], 2),
                    **({"target": TARGET_P99_MS,
                        "ratio_to_target": round(run["check"]["p99"] / TARGET_P99_MS, 3)}
                       if p == "p99" else {})})
                if "check_with_similar" in run:
                    figures.append({
                        "figure": f"find_duplicates with similar names {p} at {label}",
                        "value": run["check_with_similar"][p], "unit": "ms",
                        "baseline": f"exact INN btree lookup (one SELECT) {p}",
                        "baseline_value": base[p],
                        "ratio": round(run["check_with_similar"][p] / base[p], 2)})
    report = {"name": "find_duplicates", "queries": args.queries, "warmup": args.warmup,
              "target": f"p99 < {TARGET_P99_MS:g} ms at 1,000,000 clients (DESIGN.md §5)",
              "measured": "normalise_client + one transaction of ClientsService._matches: "
                          "the lead-entry check (exact keys + exact name key, what blocks) and, "
                          "separately, with similar names (trigram), sequential, no nameko",
              "machine": f"{platform.node()} {platform.machine()} {platform.python_version()} "
                         f"{os.cpu_count()} cpu",
              "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "figures": figures, "sizes": report_sizes}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")

    print(f"\n{'':44s} {'p50':>8s} {'p95':>8s} {'p99':>8s} {'max':>8s}  ms")
    for entry in report_sizes:
        for i, run in enumerate(entry["runs"]):
            head = f"{entry['clients']:>9,} clients" + (f" run {i + 1}"
                                                        if len(entry["runs"]) > 1 else "")
            print(row(f"{head}: duplicate check", run["check"],
                      f"  p99/target {run['check']['p99'] / TARGET_P99_MS:.2f}"))
            if "check_with_similar" in run:
                print(row("    with similar names (trigram)", run["check_with_similar"]))
            for kind in KINDS:
                print(row(f"    {kind}", run["by_kind"][kind]))
            print(row("    baseline: INN btree SELECT", run["baseline_inn_lookup"]))
        comp = entry["components"]
        for k in ("normalise", "exact_hits", "fuzzy_hits"):
            print(row(f"    component {k}", comp[k]))
        if "blocking_check" in entry:
            print(row("    proposed blocking check (exact name key)", entry["blocking_check"]))
        if "nameko_reference" in entry and "error" not in entry["nameko_reference"]:
            for k, s in entry["nameko_reference"].items():
                print(row(f"    nameko {k}", s))
    return 0


if __name__ == "__main__":
    if "--rpc-child" in sys.argv:
        sys.exit(rpc_child(sys.argv[sys.argv.index("--rpc-child") + 1]))
    sys.exit(main())
