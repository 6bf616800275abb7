"""Entrypoints of the mail service: campaign e-mail sent at a set pace, and bounces.

* ``clients.campaign_email_requested`` (one per recipient, already rendered by clients) becomes a
  ``campaign_sends`` row (``queued``; a repeated event is nothing new: keyed by recipient).
* Every ``CAMPAIGN_SEND_TICK_SECONDS`` (0.2) each replica, for each mailbox with due rows, takes
  whole tokens from the mailbox's bucket (a row ``FOR UPDATE``: one bucket for all replicas, so
  ``CAMPAIGN_SEND_RATE_PER_MINUTE`` (60) holds per mailbox however many replicas run) and claims as
  many due rows (``FOR UPDATE SKIP LOCKED``, a claim of ``CAMPAIGN_SEND_CLAIM_SECONDS`` (120) after
  which a row a dead replica held is due again), sends each over the mailbox's SMTP with
  ``List-Unsubscribe`` / ``List-Unsubscribe-Post`` and emits ``campaign_email_sent``. A 5xx refusal
  of the recipient is a bounce (``campaign_email_bounced``); other failures retry with back-off
  (``CAMPAIGN_SEND_MAX_ATTEMPTS``, 5, then ``failed``, reported as a bounce with the reason).
* The mailbox sync hands each INBOX batch to ``_campaign_bounces`` (in the batch's transaction):
  the bounce rule of ``domain.campaign_mail`` marks the matched row ``bounced`` and emits
  ``campaign_email_bounced`` once.
"""

from __future__ import annotations

import logging
import smtplib
import time
from datetime import timedelta

import eventlet
import sqlalchemy as sa
from nameko.timer import timer
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_platform.clock import utcnow
from crm_platform.config import as_int
from crm_platform.consumer import event_handler
from crm_platform.inbox import claim_event

from .domain.campaign_mail import bucket_capacity, build_message, detect_bounces, take_tokens
from .domain.mailboxes import resolve_secret
from .models import campaign_sends, mailboxes, send_buckets
from .sending import smtp_send

log = logging.getLogger(__name__)
_last_tick: dict[str, float] = {}
# Send moments of this process (monotonic, per recipient): the benchmark and tests read them.
SEND_TIMES: list[float] = []


def _float(value, default: float) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


class CampaignMailEntrypoints:
    """Mixin of ``MailService``: needs ``db``, ``outbox`` and ``config``."""

    @event_handler("clients", "campaign_email_requested")
    def handle_campaign_email_requested(self, event):
        p = event.payload
        now = utcnow()
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            session.execute(pg_insert(campaign_sends).values(
                recipient_id=p["recipient_id"], campaign_id=p["campaign_id"],
                mailbox_id=p["mailbox_id"], email=p["email"].lower(), subject=p["subject"],
                body=p["body"], unsubscribe_url=p["unsubscribe_url"], status="queued",
                queued_at=now, next_attempt_at=now).on_conflict_do_nothing())

    # -- the pace ----------------------------------------------------------------------------------
    def _rate(self) -> float:
        return max(0.01, _float(self.config.get("CAMPAIGN_SEND_RATE_PER_MINUTE"), 60.0))

    def _tick(self) -> float:
        return max(0.05, _float(self.config.get("CAMPAIGN_SEND_TICK_SECONDS"), 0.2))

    @timer(interval=0.05)
    def send_campaign_mail(self):
        """Send what the buckets allow (see the module doc); safe with several replicas."""
        tick = self._tick()
        if time.monotonic() - _last_tick.get(self.name, -1e9) < tick:
            return
        _last_tick[self.name] = time.monotonic()
        now = utcnow()
        with self.db.session() as session:
            boxes = session.execute(sa.select(campaign_sends.c.mailbox_id).distinct().where(
                self._due(now))).scalars().all()
        for mailbox_id in boxes:
            for send in self._claim(mailbox_id):
                self._send_one(send)

    @staticmethod
    def _due(now):
        s = campaign_sends.c
        return sa.or_(sa.and_(s.status == "queued", s.next_attempt_at <= now),
                      sa.and_(s.status == "sending", s.claimed_until < now))

    def _claim(self, mailbox_id) -> list[dict]:
        rate, now = self._rate(), utcnow()
        capacity = bucket_capacity(rate, self._tick())
        claim = timedelta(seconds=as_int(self.config.get("CAMPAIGN_SEND_CLAIM_SECONDS"), 120))
        with self.db.session() as session:
            session.execute(pg_insert(send_buckets).values(
                mailbox_id=mailbox_id, tokens=1.0, refilled_at=now).on_conflict_do_nothing())
            bucket = session.execute(sa.select(send_buckets).where(
                send_buckets.c.mailbox_id == mailbox_id).with_for_update()).mappings().one()
            granted, left = take_tokens(bucket["tokens"], bucket["refilled_at"], now, rate,
                                        capacity, wanted=int(capacity))
            if granted == 0:
                session.execute(sa.update(send_buckets).where(
                    send_buckets.c.mailbox_id == mailbox_id).values(tokens=left,
                                                                    refilled_at=now))
                return []
            s = campaign_sends.c
            ids = session.execute(
                sa.select(s.recipient_id).where(s.mailbox_id == mailbox_id, self._due(now))
                .order_by(s.queued_at, s.recipient_id).limit(granted)
                .with_for_update(skip_locked=True)).scalars().all()
            # tokens not used (nothing due) go back to the bucket
            session.execute(sa.update(send_buckets).where(
                send_buckets.c.mailbox_id == mailbox_id).values(
                tokens=left + (granted - len(ids)), refilled_at=now))
            if not ids:
                return []
            rows = session.execute(
                sa.update(campaign_sends).where(s.recipient_id.in_(ids))
                .values(status="sending", claimed_until=now + claim,
                        attempts=s.attempts + 1)
                .returning(campaign_sends)).mappings().all()
            return [dict(r) for r in rows]

    def _send_one(self, send: dict) -> None:
        now = utcnow()
        with self.db.session() as session:
            mailbox = session.execute(sa.select(mailboxes).where(
                mailboxes.c.id == send["mailbox_id"])).mappings().first()
        if mailbox is None or mailbox["deleted_at"] is not None or not mailbox["smtp_host"]:
            self._give_up(send, "ящик рассылки не найден или без SMTP", permanent=True)
            return
        message = build_message(dict(mailbox), send, now)
        try:
            password = resolve_secret(mailbox["secret_ref"])
            smtp_send(dict(mailbox), password, message,
                      timeout=_float(self.config.get("MAIL_SMTP_TIMEOUT_SECONDS"), 30))
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()), (550, b""))
            self._give_up(send, f"{code} {text.decode('utf-8', 'replace')}",
                          permanent=code >= 500, status=f"{str(code)[0]}.0.0")
            return
        except (smtplib.SMTPException, OSError, LookupError) as exc:
            self._give_up(send, f"{type(exc).__name__}: {exc}", permanent=False)
            return
        SEND_TIMES.append(time.monotonic())
        del SEND_TIMES[:-10000]
        with self.db.session() as session:
            session.execute(sa.update(campaign_sends).where(
                campaign_sends.c.recipient_id == send["recipient_id"]).values(
                status="sent", sent_at=now, message_id=message["Message-ID"],
                claimed_until=None, error=None))
            self.outbox.emit(session, "campaign_email_sent", {
                "campaign_id": send["campaign_id"], "recipient_id": send["recipient_id"],
                "email": send["email"], "message_id": message["Message-ID"], "sent_at": now})
        eventlet.sleep(0)

    def _give_up(self, send: dict, reason: str, permanent: bool, status=None) -> None:
        now = utcnow()
        attempts = send["attempts"]
        final = permanent or attempts >= as_int(
            self.config.get("CAMPAIGN_SEND_MAX_ATTEMPTS"), 5)
        with self.db.session() as session:
            if not final:
                delay = timedelta(seconds=min(3600, 30 * 2 ** (attempts - 1)))
                session.execute(sa.update(campaign_sends).where(
                    campaign_sends.c.recipient_id == send["recipient_id"]).values(
                    status="queued", next_attempt_at=now + delay, claimed_until=None,
                    error=reason[:1000]))
                return
            session.execute(sa.update(campaign_sends).where(
                campaign_sends.c.recipient_id == send["recipient_id"]).values(
                status="bounced" if permanent else "failed", claimed_until=None,
                error=reason[:1000]))
            self.outbox.emit(session, "campaign_email_bounced", {
                "campaign_id": send["campaign_id"], "recipient_id": send["recipient_id"],
                "email": send["email"], "status": status, "reason": reason[:1000],
                "bounced_at": now})

    # -- bounces found by the sync -----------------------------------------------------------------
    def _campaign_bounces(self, session, mailbox: dict, raws: list[bytes]) -> int:
        """Mark the campaign messages that ``raws`` (an INBOX batch) report as permanently
        failed; returns how many were marked."""
        s = campaign_sends.c
        marked = 0
        for raw in raws:
            for bounce in detect_bounces(raw):
                query = sa.select(campaign_sends).where(s.mailbox_id == mailbox["id"],
                                                        s.status.in_(("sent", "sending")))
                if bounce.original_message_id:
                    query = query.where(s.message_id == bounce.original_message_id)
                elif bounce.email:
                    query = query.where(s.email == bounce.email).order_by(s.sent_at.desc())
                else:
                    continue
                row = session.execute(query.limit(1).with_for_update()).mappings().first()
                if row is None:
                    continue
                now = utcnow()
                session.execute(sa.update(campaign_sends).where(
                    s.recipient_id == row["recipient_id"]).values(
                    status="bounced", error=(bounce.status or "") + " " + bounce.reason))
                self.outbox.emit(session, "campaign_email_bounced", {
                    "campaign_id": row["campaign_id"], "recipient_id": row["recipient_id"],
                    "email": row["email"], "status": bounce.status, "reason": bounce.reason,
                    "bounced_at": now})
                marked += 1
        return marked
