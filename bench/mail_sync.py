"""Mail sync throughput: a 10k-message mailbox synced from a private Dovecot into the mail service,
against the raw IMAP fetch of the same mailbox.

    .venv/bin/python bench/mail_sync.py [--messages 10000] [--runs 3]

The mailbox is generated (seeded): threads of up to six messages from 300 client addresses (a
tenth unknown), bodies in utf-8 quoted-printable, windows-1251 base64 and koi8-r, a tenth with a
20 KB attachment, four fifths in INBOX and the rest in Sent. It is loaded fast: maildir files
written directly, then ``doveadm force-resync``. The clients' addresses reach the mail service as
``client_created`` events (its local replica: no RPC per message; ``MAIL_CLIENT_LOOKUP=replica``).

Figures (median of the runs, same machine, same run):
- sync: ``sync_now`` on an empty mail database until every message is registered (parse, thread,
  match, store attachments, emit ``email_registered`` into the outbox), messages/s;
- baseline: the same folders fetched with imapclient only (``UID FETCH BODY.PEEK[] INTERNALDATE
  RFC822.SIZE`` in the same chunks of 200), no processing, messages/s.
Also the per-batch (200 messages) commit-to-commit time, median and p99, from the run's log of
batch times. Writes bench/results/mail_sync.json.
"""

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import base64  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import quopri  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from email.header import Header  # noqa: E402
from email.utils import format_datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import sqlalchemy as sa  # noqa: E402
from nameko.containers import ServiceContainer  # noqa: E402
from nameko.testing.services import entrypoint_hook  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from event_pipeline import drop_vhost, make_vhost  # noqa: E402

from crm_platform.identity import IDENTITY_CONTEXT_KEY  # noqa: E402
from crm_platform.testing import (  # noqa: E402
    TestDatabases,
    empty_database,
    free_port,
    publish_events,
    wait_for,
)
from services.mail import sync as mail_sync  # noqa: E402
from services.mail.imap import ImapFolderReader  # noqa: E402
from services.mail.service import MailService  # noqa: E402
from tools.dovecot import Dovecot  # noqa: E402

AMQP_HOST = os.environ.get("CRM_BENCH_AMQP_HOST", "127.0.0.1:5672")
USER, PASSWORD = "bench", "bench-password"
OWNER = uuid.uuid4()
WORDS = ("профлист металлочерепица сэндвич-панели кровля доставка счёт оплата заказ объём цвет "
         "RAL оцинковка монтаж склад ангар фасад сроки скидка прайс договор отгрузка").split()


def body_text(rng: random.Random, n_words: int) -> str:
    lines = []
    for _ in range(max(1, n_words // 12)):
        lines.append(" ".join(rng.choice(WORDS) for _ in range(12)).capitalize() + ".")
    return "Добрый день!\n" + "\n".join(lines) + "\nС уважением.\n"


def make_message(rng, n, thread, clients, start) -> tuple[str, str, bytes]:
    """(folder, Message-ID, raw) of message ``n``; ``thread``: earlier ids of its thread."""
    outbound = rng.random() < 0.2
    client_addr = rng.choice(clients) if rng.random() < 0.9 else f"new{n % 97}@unknown{n % 13}.ru"
    ours = "manager@roofcrm.ru"
    sender, rcpt = (ours, client_addr) if outbound else (client_addr, ours)
    when = start + timedelta(minutes=7 * n)
    mid = f"<bench.{n}@{sender.split('@')[1]}>"
    subject = f"Заказ {thread[0].split('.')[1].split('@')[0] if thread else n}: кровля"
    if thread:
        subject = "Re: " + subject
    charset = ("utf-8", "windows-1251", "koi8-r")[n % 3]
    headers = [f"From: {Header('Отправитель ' + str(n % 50), 'utf-8').encode()} <{sender}>",
               f"To: <{rcpt}>", f"Subject: {Header(subject, charset).encode()}",
               f"Date: {format_datetime(when)}", f"Message-ID: {mid}", "MIME-Version: 1.0"]
    if thread:
        headers.append(f"In-Reply-To: {thread[-1]}")
        headers.append("References: " + " ".join(thread[-5:]))
    text = body_text(rng, rng.randint(30, 300))
    if charset == "windows-1251":
        part = (f"Content-Type: text/plain; charset={charset}\r\n"
                f"Content-Transfer-Encoding: base64\r\n\r\n"
                + base64.encodebytes(text.encode(charset)).decode())
    else:
        part = (f"Content-Type: text/plain; charset={charset}\r\n"
                f"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                + quopri.encodestring(text.encode(charset)).decode())
    if rng.random() < 0.1:
        attachment = rng.randbytes(20_000)
        name = Header(f"Счёт {n}.pdf", "utf-8").encode()
        boundary = f"b{n}"
        headers.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
        body = (f"--{boundary}\r\n{part}\r\n--{boundary}\r\n"
                f'Content-Type: application/pdf; name="{name}"\r\n'
                f'Content-Disposition: attachment; filename="{name}"\r\n'
                f"Content-Transfer-Encoding: base64\r\n\r\n"
                + base64.encodebytes(attachment).decode() + f"\r\n--{boundary}--\r\n")
    else:
        head, _, rest = part.partition("\r\n\r\n")
        headers.extend(head.split("\r\n"))
        body = rest
    raw = ("\r\n".join(headers) + "\r\n\r\n" + body).replace("\r\n", "\n").replace("\n", "\r\n")
    return ("Sent" if outbound else "INBOX"), mid, raw.encode("utf-8")


def generate(n_messages: int, seed: int = 7):
    rng = random.Random(seed)
    clients = [f"buyer{i}@client{i}.ru" for i in range(300)]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    open_threads: list[list[str]] = []
    out = []
    for n in range(n_messages):
        if open_threads and rng.random() < 0.6:
            thread = rng.choice(open_threads)
        else:
            thread = []
            open_threads.append(thread)
        folder, mid, raw = make_message(rng, n, thread, clients, start)
        thread.append(mid)
        if len(thread) >= 6:
            open_threads.remove(thread)
        if len(open_threads) > 200:
            open_threads.pop(0)
        out.append((folder, raw))
    return clients, out


def load_maildir(dovecot: Dovecot, messages) -> None:
    """Write the maildir files directly and let Dovecot index them."""
    import pwd

    from tools.dovecot import _run_user

    run_as = _run_user()
    base = dovecot.maildir(USER)
    for folder in ("", ".Sent"):
        for sub in ("cur", "new", "tmp"):
            (base / folder / sub).mkdir(parents=True, exist_ok=True)
    stamp = int(time.time())
    for n, (folder, raw) in enumerate(messages):
        target = base / ("" if folder == "INBOX" else ".Sent") / "cur"
        (target / f"{stamp}.M{n}P1.bench,S={len(raw)}:2,S").write_bytes(raw)
    for path in [dovecot.root / "mail" / USER, *(dovecot.root / "mail" / USER).rglob("*")]:
        os.chown(path, run_as.pw_uid, run_as.pw_gid)
    assert pwd.getpwuid(run_as.pw_uid)
    dovecot.doveadm("force-resync", "-u", USER, "*")


def raw_fetch(dovecot: Dovecot) -> float:
    started = time.perf_counter()
    count = 0
    with ImapFolderReader.open("127.0.0.1", dovecot.port, False, USER, PASSWORD) as reader:
        for folder in ("INBOX", "Sent"):
            reader.select(folder)
            uids = reader.new_uids(0)
            for batch in reader.fetch(uids, chunk=200):
                count += len(batch)
    return count / (time.perf_counter() - started), count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    clients, messages = generate(args.messages)
    size_mb = sum(len(raw) for _, raw in messages) / 1e6
    print(f"generated {len(messages):,} messages, {size_mb:.1f} MB", flush=True)
    databases = TestDatabases()
    vhost = make_vhost()
    attachments_dir = tempfile.mkdtemp(prefix="roofcrm-bench-attachments-")
    os.environ["MAIL_SECRET_BENCH"] = PASSWORD
    dovecot = Dovecot.start(users={USER: PASSWORD})
    figures = {"sync": [], "raw": []}
    batch_seconds: list[float] = []
    container = None
    try:
        started = time.perf_counter()
        load_maildir(dovecot, messages)
        print(f"loaded into Dovecot in {time.perf_counter() - started:.1f} s", flush=True)
        db_url = databases.url_for("mail")
        amqp_uri = f"amqp://guest:guest@{AMQP_HOST}/{vhost}"
        config = {"AMQP_URI": amqp_uri, "DB_URL": db_url,
                  "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}",
                  "OUTBOX_POLL_INTERVAL": 0.5, "MAIL_OWN_DOMAINS": "roofcrm.ru",
                  "MAIL_ATTACHMENTS_DIR": attachments_dir, "MAIL_CLIENT_LOOKUP": "replica",
                  "MAIL_SYNC_TICK_SECONDS": 0, "max_workers": 10}
        container = ServiceContainer(MailService, config)
        container.start()
        engine = sa.create_engine(db_url)
        identity = {IDENTITY_CONTEXT_KEY: {"user_id": str(uuid.uuid4()), "role": "admin"}}

        for run in range(args.runs):
            raw_rate, raw_count = raw_fetch(dovecot)
            figures["raw"].append(raw_rate)
            empty_database(db_url)
            shutil.rmtree(attachments_dir, ignore_errors=True)
            with engine.begin() as conn:
                conn.execute(sa.text(
                    "INSERT INTO staff (user_id, full_name, role, active) "
                    "VALUES (:u, 'Менеджер', 'manager', true)"), {"u": OWNER})
            events = [("clients", "client_created", {
                "client_id": uuid.uuid4(), "short_name": f"Клиент {i}", "status": "active",
                "owner_id": OWNER, "emails": [address]}) for i, address in enumerate(clients)]
            publish_events(amqp_uri, events)
            wait_for(lambda: engine.connect().execute(sa.text(
                "SELECT count(*) FROM address_book")).scalar() == len(clients), timeout=60,
                message="the clients' addresses in mail's replica")
            with entrypoint_hook(container, "create_mailbox", context_data=identity) as hook:
                mailbox = hook({"address": "manager@roofcrm.ru", "owner_id": str(OWNER),
                                "imap_host": "127.0.0.1", "imap_port": dovecot.port,
                                "imap_tls": False, "login": USER,
                                "secret_ref": "env:MAIL_SECRET_BENCH"})
            mail_sync.BATCH_TIMES.clear()
            started = time.perf_counter()
            with entrypoint_hook(container, "sync_now", context_data=identity,
                                 timeout=1800) as hook:
                result = hook(mailbox["id"])
            elapsed = time.perf_counter() - started
            assert result["status"] == "ok", result
            assert result["registered"] == len(messages) == raw_count, result
            figures["sync"].append(result["registered"] / elapsed)
            batch_seconds.extend(mail_sync.BATCH_TIMES)
            with engine.connect() as conn:
                threads = conn.execute(sa.text("SELECT count(*) FROM threads")).scalar()
                matched = conn.execute(sa.text(
                    "SELECT count(*) FROM messages WHERE client_id IS NOT NULL")).scalar()
            print(f"run {run + 1}: sync {figures['sync'][-1]:,.0f} msg/s ({elapsed:.1f} s), "
                  f"raw fetch {raw_rate:,.0f} msg/s; {threads:,} threads, {matched:,} matched",
                  flush=True)
        engine.dispose()
    finally:
        if container is not None:
            container.stop()
        dovecot.stop()
        databases.drop_all()
        drop_vhost(vhost)
        shutil.rmtree(attachments_dir, ignore_errors=True)

    sync_rate, raw_rate = statistics.median(figures["sync"]), statistics.median(figures["raw"])
    ordered = sorted(batch_seconds)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0.0
    results = [
        {"figure": "mailbox sync (parse, thread, match, store, emit)", "value": round(sync_rate),
         "unit": "messages/s", "runs": [round(v) for v in figures["sync"]],
         "baseline": "raw imapclient fetch of the same mailbox, no processing",
         "baseline_value": round(raw_rate), "ratio": round(sync_rate / raw_rate, 3)},
        {"figure": "raw IMAP fetch (imapclient, chunks of 200)", "value": round(raw_rate),
         "unit": "messages/s", "runs": [round(v) for v in figures["raw"]]},
        {"figure": "one batch of 200 messages, fetch to commit", "unit": "s",
         "median": round(statistics.median(ordered), 3) if ordered else None,
         "p99": round(p99, 3), "value": round(statistics.median(ordered), 3) if ordered else None},
    ]
    report = {"name": "mail_sync", "messages": len(messages), "mailbox_mb": round(size_mb, 1),
              "runs": args.runs,
              "machine": f"{platform.node()} {platform.machine()} {platform.python_version()}",
              "date": datetime.now(UTC).isoformat(timespec="seconds"), "figures": results}
    out = ROOT / "bench" / "results" / "mail_sync.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"sync      median {sync_rate:8,.0f} messages/s  ratio {sync_rate / raw_rate:.3f} of "
          f"raw fetch")
    print(f"raw fetch median {raw_rate:8,.0f} messages/s")
    print(f"batch of 200: median {results[2]['median']} s, p99 {results[2]['p99']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
