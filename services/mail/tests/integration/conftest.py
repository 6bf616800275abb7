"""The mail service against real servers: a private Dovecot (IMAP, ``tools.dovecot``), a real
SMTP server (aiosmtpd in its own process), the real clients service (its events fill mail's
replica; its duplicate check answers for contacts' addresses), RabbitMQ and PostgreSQL.

``crm = start_crm()`` starts clients and mail, gives both the same organisation, creates the
client «Стройметалл» of m.ural.1 (company address ``info@stroymetall.ru``, contact Иванов with
``ivanov@stroymetall.ru``) and connects m.ural.1's mailbox to its own fresh IMAP user."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Queue

from crm_platform.testing import ReplicatedOrg, ServiceCaller, SqlReader, free_port, wait_for
from services.clients.service import ClientsService
from services.mail.service import MailService
from tools.dovecot import Dovecot

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ROOT = Path(__file__).resolve().parents[4]


def eml(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture(scope="session")
def dovecot():
    server = Dovecot.start(users={})
    yield server
    server.stop()


@pytest.fixture
def imap_user(dovecot, monkeypatch):
    """A fresh IMAP user; its password in the environment as ``MAIL_SECRET_<NAME>``."""
    created = []

    def make() -> tuple[str, str]:
        name = f"u{uuid.uuid4().hex[:10]}"
        password = uuid.uuid4().hex
        dovecot.add_user(name, password)
        ref = f"MAIL_SECRET_{name.upper()}"
        monkeypatch.setenv(ref, password)
        created.append(name)
        return name, f"env:{ref}"

    return make


class SmtpSink:
    def __init__(self, login: str = "m.ural.1"):
        self.folder = Path(tempfile.mkdtemp(prefix="roofcrm-smtp-"))
        self.port = free_port()
        self.login, self.password = login, uuid.uuid4().hex
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.mail.tests.smtp_sink", "--port", str(self.port),
             "--dir", str(self.folder), "--login", self.login, "--password", self.password],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.process.stdout.readline()
        if b"ready" not in line:
            raise RuntimeError(f"SMTP sink failed: {self.process.stderr.read()[-2000:]}")

    def received(self) -> list[tuple[dict, bytes]]:
        out = []
        for meta in sorted(self.folder.glob("*.json"), key=lambda p: int(p.stem)):
            out.append((json.loads(meta.read_text()), meta.with_suffix(".eml").read_bytes()))
        return out

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)
        for stream in (self.process.stdout, self.process.stderr):
            stream.close()
        for item in self.folder.iterdir():
            item.unlink()
        self.folder.rmdir()


@pytest.fixture
def smtp_sink():
    sink = SmtpSink()
    yield sink
    sink.stop()


class EventTap:
    """A queue bound to ``mail.events`` before anything is published: what reached the broker."""

    def __init__(self, amqp_uri: str, routing_key: str = "email_registered"):
        self.conn = Connection(amqp_uri)
        exchange = Exchange("mail.events", "topic", durable=True)
        self.queue = Queue(f"test-tap-{uuid.uuid4().hex[:8]}", exchange=exchange,
                           routing_key=routing_key, auto_delete=True)
        self.queue(self.conn.channel()).declare()
        self.seen: list[dict] = []

    def drain(self) -> list[dict]:
        bound = self.queue(self.conn.channel())
        while True:
            message = bound.get(no_ack=True)
            if message is None:
                break
            body = message.body
            self.seen.append(json.loads(body) if isinstance(body, bytes | str) else body)
        return self.seen

    def close(self):
        self.conn.release()


@dataclass
class Crm:
    org: ReplicatedOrg
    clients: ServiceCaller
    mail: ServiceCaller
    sql: SqlReader
    dovecot: Dovecot
    imap_login: str
    mailbox: dict
    client: dict
    contact_id: str
    container: object

    def sync(self, as_user="m.ural.1"):
        return self.mail.sync_now(self.mailbox["id"], as_user=as_user)

    def append(self, folder: str, *raw: bytes):
        self.dovecot.append(self.imap_login, folder, *raw)

    def registered_events(self) -> list[dict]:
        return [r["envelope"]["payload"] for r in self.sql.rows(
            "SELECT envelope FROM outbox WHERE type = 'email_registered' ORDER BY id")]


@pytest.fixture
def start_crm(service_db, service_config, container_factory, rabbit_config, dovecot, imap_user,
              tmp_path):
    readers: list = []

    def start(clients_overrides: dict | None = None, **mail_overrides) -> Crm:
        clients_db, mail_db = service_db("clients"), service_db("mail")
        org = ReplicatedOrg(clients_db)
        org.copy_to(mail_db)
        sql = SqlReader(mail_db)
        readers.extend([org, sql])
        clients = container_factory(ClientsService, service_config(
            db_url=clients_db, **(clients_overrides or {})))
        mail_config = {"MAIL_OWN_DOMAINS": "roofcrm.ru", "MAIL_SYNC_TICK_SECONDS": 0,
                       "MAIL_ATTACHMENTS_DIR": str(tmp_path / "attachments"),
                       "MAIL_RETRY_BASE_SECONDS": 60, **mail_overrides}
        mail = container_factory(MailService, service_config(db_url=mail_db, **mail_config))
        clients.start()
        mail.start()
        svc = ServiceCaller(clients, org)
        created = svc.create_client(
            {"short_name": "ООО «Стройметалл»", "emails": ["info@stroymetall.ru"]},
            contacts=[{"full_name": "Иванов Иван", "emails": ["ivanov@stroymetall.ru"]}],
        )["client"]
        wait_for(lambda: sql.scalar("SELECT count(*) FROM address_book WHERE client_id = :c",
                                    c=created["id"]), message="the client in mail's replica")
        login, ref = imap_user()
        mail_svc = ServiceCaller(mail, org)
        mailbox = mail_svc.create_mailbox({
            "address": "m.ural.1@roofcrm.ru", "kind": "personal",
            "owner_id": org.id("m.ural.1"), "imap_host": "127.0.0.1",
            "imap_port": dovecot.port, "imap_tls": False, "login": login, "secret_ref": ref,
            "smtp_host": "127.0.0.1", "smtp_security": "none"}, as_user="admin")
        return Crm(org, svc, mail_svc, sql, dovecot, login, mailbox, created,
                   created["contacts"][0]["id"], mail)

    yield start
    for reader in readers:
        reader.dispose()


@pytest.fixture
def event_tap(rabbit_config):
    tap = EventTap(rabbit_config["AMQP_URI"])
    yield tap
    tap.close()
