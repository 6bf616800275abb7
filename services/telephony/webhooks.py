"""The cloud PBX webhooks, as RPCs the gateway exposes publicly.

The PBX has no caller identity: the signature is the authentication (checked in constant time
with the credentials from the configuration), so these RPCs never ask for one. A bad signature
is 401 ``bad_signature`` and stores nothing; an unreadable payload 422; a Zadarma request from
outside ``ZADARMA_ALLOWED_IPS`` 403 ``ip_not_allowed``. Re-deliveries change nothing: Mango legs
are deduplicated by ``(call_id, seq)``, Zadarma events by ``(pbx_call_id, event[, internal])``,
and a finished call is registered once by its key.

Zadarma's events of a call are kept in the database and folded again with ``ZadarmaCallBuilder``
on each new one (under a per-call advisory lock), so any replica, after any restart, sees the
whole call.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa
from nameko.timer import timer
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_platform.clock import utcnow
from crm_platform.errors import Forbidden, Unauthenticated, ValidationFailed
from crm_platform.rpc import rpc

from .domain.calls import FinishedCall, Ringing
from .domain.cloud import (
    BadPayload,
    BadSignature,
    ZadarmaCallBuilder,
    ip_allowed,
    mango_call_event,
    mango_leg_key,
    mango_ringing,
    mango_summary,
    verify_mango,
    verify_zadarma,
    zadarma_event,
    zadarma_event_key,
)
from .models import mango_legs, zadarma_events

log = logging.getLogger(__name__)

DEFAULT_ZADARMA_IPS = "185.45.152.40/30"


def _bad_signature(exc: BadSignature):
    log.warning("cloud PBX webhook refused: %s", exc)       # the reason is for the logs only
    return Unauthenticated("Неверная подпись запроса АТС", code="bad_signature")


def _bad_payload(exc: BadPayload):
    return ValidationFailed("Нечитаемое уведомление АТС", code="bad_payload",
                            fields={"payload": [str(exc)]})


def forget_old_notifications(session, older_than_days: int) -> int:
    """Drop the Mango legs and Zadarma events seen more than ``older_than_days`` ago: they only
    guard against re-deliveries and fold calls in progress, and a PBX re-sends for hours, not
    weeks. Any replica may run it at any time (plain deletes)."""
    cutoff = utcnow() - timedelta(days=older_than_days)
    removed = session.execute(sa.delete(mango_legs).where(mango_legs.c.received_at < cutoff))
    removed_z = session.execute(
        sa.delete(zadarma_events).where(zadarma_events.c.received_at < cutoff))
    return (removed.rowcount or 0) + (removed_z.rowcount or 0)


class CloudWebhooks:
    """Mixin of ``TelephonyService`` (needs ``register`` and ``announce_ringing``).

    Config ``WEBHOOK_DEDUP_DAYS`` (14): how long notifications are kept to recognise repeats."""

    @timer(interval=3600)
    def forget_old_webhook_notifications(self):
        """Hourly: the tables of seen notifications keep only the last ``WEBHOOK_DEDUP_DAYS``."""
        days = int(self.config.get("WEBHOOK_DEDUP_DAYS") or 14)
        with self.db.session() as session:
            removed = forget_old_notifications(session, days)
        if removed:
            log.info("forgot %d cloud PBX notifications older than %d days", removed, days)

    def _cloud_tz(self) -> str:
        return str(self.config.get("CLOUD_PBX_TIMEZONE") or "Europe/Moscow")

    @rpc
    def mango_webhook(self, event_type: str, form: dict) -> dict:
        """A Mango Office notification (``event_type``: ``call`` or ``summary``; ``form``: the
        POSTed ``vpbx_api_key``, ``sign``, ``json``)."""
        if event_type not in ("call", "summary"):
            raise ValidationFailed("Неизвестное уведомление Mango", code="bad_payload",
                                   fields={"event_type": ["call или summary"]})
        try:
            payload = verify_mango(form or {}, str(self.config.get("MANGO_API_KEY") or ""),
                                   str(self.config.get("MANGO_API_SALT") or ""))
            if event_type == "call":
                leg = mango_call_event(payload, self._cloud_tz())
            else:
                finished = mango_summary(payload, self._cloud_tz())
        except BadSignature as exc:
            raise _bad_signature(exc) from None
        except BadPayload as exc:
            raise _bad_payload(exc) from None
        now = utcnow()
        with self.db.session() as session:
            if event_type == "call":
                call_id, seq = mango_leg_key(leg)
                fresh = session.execute(pg_insert(mango_legs).values(
                    call_id=call_id, seq=seq, entry_id=leg.entry_id, received_at=now)
                    .on_conflict_do_nothing().returning(mango_legs.c.call_id)).first()
                if fresh is None:
                    return {"ok": True, "duplicate": True}
                ringing = mango_ringing(leg)
                if ringing is not None:
                    self.announce_ringing(session, ringing)
                return {"ok": True, "duplicate": False, "ringing": ringing is not None}
            call_id = self.register(session, finished)
        return {"ok": True, "duplicate": call_id is None,
                "call_id": str(call_id) if call_id else None}

    @rpc
    def zadarma_webhook(self, form: dict, signature: str | None,
                        remote_ip: str | None) -> dict:
        """A Zadarma notification: ``form`` as POSTed, ``signature`` the ``Signature`` header,
        ``remote_ip`` the sender's address as the gateway saw it."""
        allowed = [ip.strip() for ip in str(
            self.config.get("ZADARMA_ALLOWED_IPS", DEFAULT_ZADARMA_IPS) or "").split(",")
            if ip.strip()]
        if allowed and not ip_allowed(remote_ip, allowed):
            raise Forbidden("Адрес отправителя не из сети Zadarma", code="ip_not_allowed",
                            extra={"remote_ip": remote_ip})
        form = {str(k): ("" if v is None else str(v)) for k, v in (form or {}).items()}
        try:
            verify_zadarma(form, signature, str(self.config.get("ZADARMA_SECRET") or ""))
            event = zadarma_event(form, self._cloud_tz())
        except BadSignature as exc:
            raise _bad_signature(exc) from None
        except BadPayload as exc:
            raise _bad_payload(exc) from None
        pbx_call_id, name, internal = zadarma_event_key(event)
        with self.db.session() as session:
            session.execute(sa.select(sa.func.pg_advisory_xact_lock(
                sa.func.hashtext("zadarma:" + pbx_call_id))))
            fresh = session.execute(pg_insert(zadarma_events).values(
                pbx_call_id=pbx_call_id, event=name, internal=internal, form=form,
                received_at=utcnow()).on_conflict_do_nothing()
                .returning(zadarma_events.c.id)).first()
            if fresh is None:
                return {"ok": True, "duplicate": True}
            stored = session.execute(sa.select(zadarma_events.c.id, zadarma_events.c.form).where(
                zadarma_events.c.pbx_call_id == pbx_call_id).order_by(zadarma_events.c.id)).all()
            builder = ZadarmaCallBuilder()
            produced: list = []
            for row in stored:
                try:
                    out = builder.feed(zadarma_event(row.form, self._cloud_tz()))
                except BadPayload:
                    continue
                if row.id == fresh.id:
                    produced = out
            call_id = None
            for item in produced:
                if isinstance(item, Ringing):
                    self.announce_ringing(session, item)
                elif isinstance(item, FinishedCall):
                    call_id = self.register(session, item) or call_id
        return {"ok": True, "duplicate": False, "call_id": str(call_id) if call_id else None}
