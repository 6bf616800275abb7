"""Periodic IMAP sync, safe with several replicas: a lease per mailbox.

Every ``MAIL_SYNC_TICK_SECONDS`` (5) each replica claims at most ``MAIL_SYNC_PER_TICK`` (4) due
mailboxes, one at a time: ``UPDATE mailboxes SET leased_until = now + lease ... WHERE id = (SELECT
... WHERE next_sync_at <= now AND (leased_until IS NULL OR leased_until < now) FOR UPDATE SKIP
LOCKED LIMIT 1)``, so two replicas never sync one mailbox at once, and a replica that dies
mid-sync frees its mailboxes when the lease runs out (``MAIL_LEASE_SECONDS``, 300). The lease is
renewed after every committed batch.

Each folder (INBOX and the mailbox's Sent folder) is read from ``last UID + 1``; every batch of
``MAIL_FETCH_BATCH`` (200) messages is parsed, registered and its UID position saved in one
transaction, so a sync cut short resumes where it stopped and registers nothing twice. A changed
UIDVALIDITY restarts the folder from UID 1; the messages already known only gain new locators.

A failure (connection, login, missing secret) sets ``last_error``, counts ``failures`` and puts
``next_sync_at`` off exponentially (``MAIL_RETRY_BASE_SECONDS`` 60, at most
``MAIL_RETRY_MAX_SECONDS`` 3600); ``mail_sync_runs_total{result}`` and
``mail_sync_failures_total`` count them in Prometheus.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from datetime import timedelta

import eventlet
import sqlalchemy as sa
from imapclient import exceptions as imap_errors
from nameko.timer import timer
from prometheus_client import Counter, Histogram

from crm_platform.clock import utcnow
from crm_platform.config import as_int
from crm_platform.errors import Conflict
from crm_platform.observability import REGISTRY

from .domain.backoff import next_attempt
from .domain.mailboxes import resolve_secret
from .domain.parsing import parse_message
from .imap import ImapFolderReader
from .models import mailbox_folders, mailboxes
from .registration import Locator

log = logging.getLogger(__name__)

SYNC_RUNS = Counter("mail_sync_runs_total", "Mailbox sync runs by result (ok, error)",
                    ["result"], registry=REGISTRY)
SYNC_FAILURES = Counter("mail_sync_failures_total",
                        "Failed mailbox syncs by kind of error", ["error"], registry=REGISTRY)
MESSAGES_REGISTERED = Counter("mail_messages_registered_total",
                              "E-mails registered, by direction", ["direction"],
                              registry=REGISTRY)
SYNC_SECONDS = Histogram("mail_sync_seconds", "Duration of one mailbox sync",
                         registry=REGISTRY, buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 1800))

_last_tick: dict[str, float] = {}
# Seconds per batch, fetch to commit, of this process's latest syncs (the benchmark reads them).
BATCH_TIMES: list[float] = []
_REPLICA = f"{socket.gethostname()}:{os.getpid()}"


class SyncEntrypoints:
    """Mixin of ``MailService``: needs ``db``, ``config`` and ``registrar()``."""

    def _cfg(self, name: str, default: int) -> int:
        return as_int(self.config.get(name), default)

    @timer(interval=1)
    def periodic_sync(self):
        every = self._cfg("MAIL_SYNC_TICK_SECONDS", 5)
        if every <= 0 or time.monotonic() - _last_tick.get("at", -1e9) < every:
            return
        _last_tick["at"] = time.monotonic()
        for _ in range(self._cfg("MAIL_SYNC_PER_TICK", 4)):
            mailbox = self.claim_due_mailbox()
            if mailbox is None:
                break
            self.sync_claimed(mailbox)

    # -- the lease --------------------------------------------------------------------------------
    def _lease_seconds(self) -> int:
        return self._cfg("MAIL_LEASE_SECONDS", 300)

    def claim_due_mailbox(self, mailbox_id=None, *, force: bool = False) -> dict | None:
        """Lease one due mailbox (or ``mailbox_id``, due or not when ``force``); None when
        there is none free."""
        now = utcnow()
        free = sa.or_(mailboxes.c.leased_until.is_(None), mailboxes.c.leased_until < now)
        pick = sa.select(mailboxes.c.id).where(
            free, mailboxes.c.enabled, mailboxes.c.deleted_at.is_(None))
        if mailbox_id is not None:
            pick = pick.where(mailboxes.c.id == mailbox_id)
        if not force:
            pick = pick.where(mailboxes.c.next_sync_at <= now)
        pick = pick.order_by(mailboxes.c.next_sync_at).limit(1).with_for_update(skip_locked=True)
        with self.db.session() as session:
            row = session.execute(sa.update(mailboxes).where(
                mailboxes.c.id == pick.scalar_subquery()).values(
                leased_until=now + timedelta(seconds=self._lease_seconds()),
                lease_owner=_REPLICA).returning(*mailboxes.c)).mappings().first()
        return dict(row) if row else None

    def _renew(self, session, mailbox_id) -> None:
        session.execute(sa.update(mailboxes).where(mailboxes.c.id == mailbox_id).values(
            leased_until=utcnow() + timedelta(seconds=self._lease_seconds())))

    # -- one sync ---------------------------------------------------------------------------------
    def sync_claimed(self, mailbox: dict) -> dict:
        """Sync a leased mailbox and release it; returns the counts (or the error)."""
        started = time.monotonic()
        stats = {"registered": 0, "duplicates": 0, "fetched": 0, "lookups": 0, "resynced": []}
        try:
            password = resolve_secret(mailbox["secret_ref"])
            reader = ImapFolderReader.open(
                mailbox["imap_host"], mailbox["imap_port"], mailbox["imap_tls"],
                mailbox["login"], password,
                timeout=self._cfg("MAIL_IMAP_TIMEOUT_SECONDS", 30))
            with reader:
                for folder in self._folders(mailbox):
                    self._sync_folder(reader, mailbox, folder, stats)
        except Exception as exc:  # noqa: BLE001 - every failure is shown and retried
            return self._failed(mailbox, exc, stats)
        finally:
            SYNC_SECONDS.observe(time.monotonic() - started)
        now = utcnow()
        stats["seconds"] = round(time.monotonic() - started, 3)
        with self.db.session() as session:
            session.execute(sa.update(mailboxes).where(mailboxes.c.id == mailbox["id"]).values(
                leased_until=None, lease_owner=None, failures=0, last_error=None,
                last_synced_at=now, last_sync=stats,
                next_sync_at=now + timedelta(seconds=mailbox["sync_interval_seconds"])))
        SYNC_RUNS.labels("ok").inc()
        return {"status": "ok", **stats}

    @staticmethod
    def _folders(mailbox) -> list[str]:
        sent = mailbox["sent_folder"]
        return ["INBOX"] + ([sent] if sent and sent != "INBOX" else [])

    def _failed(self, mailbox, exc, stats) -> dict:
        now = utcnow()
        kind = type(exc).__name__
        if isinstance(exc, LookupError):
            text = f"Нет пароля ящика: {exc}"
        elif isinstance(exc, imap_errors.LoginError):
            text = f"Сервер IMAP не принял логин или пароль: {exc}"
        elif isinstance(exc, OSError | TimeoutError):
            text = f"Сервер IMAP недоступен: {kind}: {exc}"
        else:
            text = f"Ошибка синхронизации: {kind}: {exc}"
        log.warning("mailbox %s sync failed: %s", mailbox["address"], text)
        with self.db.session() as session:
            failures = session.execute(sa.update(mailboxes).where(
                mailboxes.c.id == mailbox["id"]).values(
                failures=mailboxes.c.failures + 1).returning(mailboxes.c.failures)).scalar()
            retry_at = next_attempt(now, failures, self._cfg("MAIL_RETRY_BASE_SECONDS", 60),
                                    self._cfg("MAIL_RETRY_MAX_SECONDS", 3600))
            session.execute(sa.update(mailboxes).where(mailboxes.c.id == mailbox["id"]).values(
                leased_until=None, lease_owner=None, last_error=text[:2000],
                last_error_at=now, next_sync_at=retry_at, last_sync=stats))
        SYNC_RUNS.labels("error").inc()
        SYNC_FAILURES.labels(kind).inc()
        return {"status": "error", "error": text, "failures": failures,
                "next_attempt_at": retry_at.isoformat(), **stats}

    def _sync_folder(self, reader: ImapFolderReader, mailbox: dict, folder: str,
                     stats: dict) -> None:
        try:
            uidvalidity = reader.select(folder)
        except Exception as exc:  # noqa: BLE001
            text = str(exc).lower()
            if folder != "INBOX" and any(w in text for w in ("nonexistent", "not exist",
                                                             "doesn't exist", "no such")):
                return          # a mailbox without a Sent folder yet
            raise
        with self.db.session() as session:
            state = session.execute(sa.select(mailbox_folders).where(
                mailbox_folders.c.mailbox_id == mailbox["id"],
                mailbox_folders.c.folder == folder)).mappings().first()
            if state is None:
                session.execute(sa.insert(mailbox_folders).values(
                    mailbox_id=mailbox["id"], folder=folder, uidvalidity=uidvalidity,
                    last_uid=0))
                last_uid = 0
            elif state["uidvalidity"] != uidvalidity:
                # The old UIDs mean nothing now: read the folder again; known messages are
                # recognised by their key and only gain a locator.
                session.execute(sa.update(mailbox_folders).where(
                    mailbox_folders.c.mailbox_id == mailbox["id"],
                    mailbox_folders.c.folder == folder).values(
                    uidvalidity=uidvalidity, last_uid=0,
                    resyncs=mailbox_folders.c.resyncs + 1))
                stats["resynced"].append(folder)
                last_uid = 0
            else:
                last_uid = state["last_uid"]
        uids = reader.new_uids(last_uid)
        registrar = self.registrar()
        batch_started = time.perf_counter()
        for batch in reader.fetch(uids, chunk=self._cfg("MAIL_FETCH_BATCH", 200)):
            if not batch:
                continue
            items = []
            for fetched in batch:
                items.append((Locator(folder, uidvalidity, fetched.uid, fetched.internal_date),
                              parse_message(fetched.raw)))
                eventlet.sleep(0)        # parsing is CPU: let heartbeats and requests through
            stats["fetched"] += len(items)
            with self.db.session() as session:
                result = registrar.register(session, mailbox, items, utcnow())
                if folder == "INBOX":           # bounces of campaign mail (campaign_mail)
                    self._campaign_bounces(session, mailbox, [f.raw for f in batch])
                session.execute(sa.update(mailbox_folders).where(
                    mailbox_folders.c.mailbox_id == mailbox["id"],
                    mailbox_folders.c.folder == folder).values(
                    last_uid=max(f.uid for f in batch), synced_at=utcnow()))
                self._renew(session, mailbox["id"])
            for direction in result.directions:
                MESSAGES_REGISTERED.labels(direction).inc()
            BATCH_TIMES.append(time.perf_counter() - batch_started)
            del BATCH_TIMES[:-1000]
            batch_started = time.perf_counter()
            stats["registered"] += len(result.registered)
            stats["duplicates"] += result.duplicates
            stats["lookups"] += result.lookups

    def sync_mailbox_now(self, mailbox_id) -> dict:
        """Lease and sync ``mailbox_id`` now (409 while another sync holds it)."""
        mailbox = self.claim_due_mailbox(uuid.UUID(str(mailbox_id)), force=True)
        if mailbox is None:
            raise Conflict("Ящик уже синхронизируется, попробуйте позже",
                              code="mailbox_busy")
        return self.sync_claimed(mailbox)
