"""Entrypoints of the clients service: general campaigns (issue 13) over segments.

A campaign grows out of the reactivation campaigns (same ``campaigns`` table; ``start_campaign``
still makes a running reactivation call list at once): it has a goal (reactivation, new_product,
event), a segment (a saved filter or a filter, copied into the campaign), channels (``email``: a
Jinja2 template sent through the mail service; ``calls``: call tasks for the owners through the
existing ``reactivation_call_requested`` → deals path), a budget and dates, and a state
``draft → scheduled → running → finished`` (or ``cancelled``). Every change is emitted as
``campaign_changed`` (the reports service takes budgets from it for ROI).

Launching resolves the recipients once: the e-mails of the segment's clients and of their contacts
(lower-cased, duplicates removed), each checked with the consent store (``consent_status``,
purpose ``marketing_email``) — an address without a given consent, or withdrawn, is a
``skipped_no_consent`` row and is never mailed. Every other address is ``queued`` and one
``campaign_email_requested`` is emitted for it (in the same transaction); the mail service sends
them at its rate and reports back ``campaign_email_sent`` / ``campaign_email_bounced``.

Unsubscribing: every message carries ``CAMPAIGN_UNSUBSCRIBE_BASE_URL``/<token>, the token the
recipient id and an HMAC-SHA256 of it under ``CAMPAIGN_UNSUBSCRIBE_SECRET``; the gateway's public
``/u/<token>`` (page and RFC 8058 one-click POST) calls ``campaign_unsubscribe``, which withdraws
the ``marketing_email`` consent (so no later campaign mails the address) and marks the recipient.

A mixin of ``ClientsService``: uses its ``db``, ``outbox``, ``caller``, ``config``.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import sqlalchemy as sa
from nameko.timer import timer

from crm_platform.clock import utcnow
from crm_platform.config import as_int
from crm_platform.consumer import event_handler
from crm_platform.errors import NotFound, ValidationFailed
from crm_platform.idempotency import idempotent
from crm_platform.identity import Identity
from crm_platform.inbox import claim_event
from crm_platform.paging import keyset_page
from crm_platform.rpc import rpc
from crm_platform.secrets import RequiredSecrets

from . import store
from .domain.campaigns import (
    Recipient,
    check_campaign,
    check_ready_to_send,
    check_transition,
    recipients_from,
    render_email,
    sign_unsubscribe,
    split_by_consent,
    verify_unsubscribe,
)
from .models import campaign_recipients, campaign_targets, campaigns, clients, contacts
from .segmentation import business_tz, load_filter, visible_clients

log = logging.getLogger(__name__)

CONSENT_PURPOSE = "marketing_email"
CONSENT_CHUNK = 1000
SERVICE_USER_ID = "00000000-0000-4000-8000-0000000000c1"
DEFAULT_DUE_DAYS = 14


def _dump(row: dict, counts: dict | None = None) -> dict:
    def iso(v):
        return v.isoformat() if v is not None else None

    return {
        "campaign_id": str(row["id"]), "name": row["name"], "goal": row["goal"],
        "state": row["state"], "channels": list(row["channels"]),
        "budget": str(row["budget"]) if row["budget"] is not None else None,
        "starts_at": iso(row["starts_at"]), "ends_at": iso(row["ends_at"]),
        "segment_id": str(row["segment_id"]) if row["segment_id"] else None,
        "filter": row["filter"],
        "mailbox_id": str(row["mailbox_id"]) if row["mailbox_id"] else None,
        "email_subject": row["email_subject"], "email_body": row["email_body"],
        "utm_campaign": row["utm_campaign"], "created_by": str(row["created_by"]),
        "created_at": iso(row["created_at"]), "updated_at": iso(row["updated_at"]),
        "recipients": counts or {},
    }


class CampaignEntrypoints:
    campaign_secrets = RequiredSecrets("CAMPAIGN_UNSUBSCRIBE_SECRET")

    def _service_identity(self) -> Identity:
        return Identity(user_id=SERVICE_USER_ID, role="integration", username="campaigns",
                        full_name="Кампании")

    def _campaign_row(self, session, identity, campaign_id, lock=False) -> dict:
        query = sa.select(campaigns).where(
            campaigns.c.id == store.as_uuid(campaign_id, "campaign_id"))
        if lock:
            query = query.with_for_update()
        row = session.execute(query).mappings().first()
        if row is None or (identity.role == "sales_head"
                           and str(row["created_by"]) != identity.user_id):
            raise NotFound("Кампания не найдена", code="campaign_not_found")
        return dict(row)

    def _emit_changed(self, session, row: dict, now) -> None:
        self.outbox.emit(session, "campaign_changed", {
            "campaign_id": row["id"], "name": row["name"], "goal": row["goal"],
            "state": row["state"], "budget": row["budget"], "starts_at": row["starts_at"],
            "ends_at": row["ends_at"], "utm_campaign": row["utm_campaign"], "changed_at": now})

    def _counts(self, session, campaign_id) -> dict:
        r = campaign_recipients.c
        return {status: n for status, n in session.execute(
            sa.select(r.status, sa.func.count()).where(r.campaign_id == campaign_id)
            .group_by(r.status))}

    # -- CRUD --------------------------------------------------------------------------------------
    @rpc
    @idempotent
    def create_campaign(self, data: dict) -> dict:
        """A draft campaign: ``name``, ``goal`` (reactivation, new_product, event), ``channels``
        (email, calls), ``segment_id`` (one's saved segment) or ``filter``, ``budget``,
        ``starts_at``/``ends_at``, ``mailbox_id``, ``email_subject``/``email_body`` (Jinja2:
        ``{{ client_name }}``, ``{{ contact_name }}``, ``{{ email }}``, ``{{ campaign }}``),
        ``utm_campaign``. Sales heads and directors."""
        identity = self.caller.require("sales_head", "director")
        if not isinstance(data, dict):
            raise ValidationFailed("Ожидается объект", fields={"body": ["объект"]})
        fields_ = check_campaign(data)
        now = utcnow()
        with self.db.session() as session:
            raw, _ = load_filter(session, identity, fields_.pop("filter", None),
                                 fields_.get("segment_id"))
            if raw is None:
                raise ValidationFailed("Укажите сегмент или фильтр",
                                       fields={"segment_id": ["нужен сегмент или filter"]})
            row = {**fields_, "id": uuid.uuid4(), "filter": raw, "state": "draft",
                   "created_by": identity.user_id, "created_at": now, "updated_at": now,
                   "due_at": fields_.get("ends_at") or now + timedelta(days=DEFAULT_DUE_DAYS)}
            session.execute(sa.insert(campaigns).values(**row))
            row = self._campaign_row(session, identity, row["id"])
            self._emit_changed(session, row, now)
            store.audit(session, identity, "campaign_create", now,
                        details={"campaign_id": str(row["id"]), "name": row["name"]})
        return _dump(row)

    @rpc
    def update_campaign(self, campaign_id: str, data: dict) -> dict:
        """Change a draft or scheduled campaign (the fields of ``create_campaign``)."""
        identity = self.caller.require("sales_head", "director")
        if not isinstance(data, dict):
            raise ValidationFailed("Ожидается объект", fields={"body": ["объект"]})
        fields_ = check_campaign(data, partial=True)
        now = utcnow()
        with self.db.session() as session:
            row = self._campaign_row(session, identity, campaign_id, lock=True)
            if row["state"] not in ("draft", "scheduled"):
                check_transition(row["state"], "draft")   # raises: not editable
            if "filter" in fields_ or "segment_id" in fields_:
                raw, _ = load_filter(session, identity, fields_.pop("filter", None),
                                     fields_.get("segment_id"))
                if raw is not None:
                    fields_["filter"] = raw
            merged = {**row, **fields_}
            start, end = merged["starts_at"], merged["ends_at"]
            if start and end and end < start:
                raise ValidationFailed("Кампания не прошла проверку",
                                       fields={"ends_at": ["не раньше starts_at"]})
            session.execute(sa.update(campaigns).where(campaigns.c.id == row["id"])
                            .values(**fields_, updated_at=now))
            row = self._campaign_row(session, identity, row["id"])
            self._emit_changed(session, row, now)
            store.audit(session, identity, "campaign_update", now, details={
                "campaign_id": str(row["id"]), "fields": sorted(fields_)})
        return _dump(row)

    @rpc
    def get_campaign(self, campaign_id: str) -> dict:
        """A campaign with its recipients counted by status."""
        identity = self.caller.require("sales_head", "director")
        with self.db.session() as session:
            row = self._campaign_row(session, identity, campaign_id)
            return _dump(row, self._counts(session, row["id"]))

    @rpc
    def list_campaign_recipients(self, campaign_id: str, status: str | None = None,
                                 limit: int = 100, offset: int = 0,
                                 cursor: str | None = None) -> dict:
        """A campaign's recipients (address, client, contact, status, reason), by address:
        ``{"items", "next_cursor"}`` (pass it as ``cursor``; ``offset`` for old callers)."""
        identity = self.caller.require("sales_head", "director")
        limit = max(1, min(as_int(limit, 100), 1000))
        offset = max(0, as_int(offset, 0))
        r = campaign_recipients.c
        next_cursor = None
        with self.db.session() as session:
            row = self._campaign_row(session, identity, campaign_id)
            query = sa.select(campaign_recipients).where(r.campaign_id == row["id"])
            if status:
                query = query.where(r.status == status)
            if offset:
                items = session.execute(query.order_by(r.email).limit(limit).offset(offset)) \
                    .mappings().all()
            else:
                items, next_cursor = keyset_page(
                    session, query, sort="email", default="email", sorts={"email": r.email},
                    id_column=r.id, cursor=cursor, limit=limit)
            store.audit(session, identity, "campaign_recipients_read", utcnow(),
                        details={"campaign_id": str(row["id"]), "count": len(items)})
        return {"items": [{
            "recipient_id": str(i["id"]), "email": i["email"],
            "client_id": str(i["client_id"]) if i["client_id"] else None,
            "contact_id": str(i["contact_id"]) if i["contact_id"] else None,
            "status": i["status"], "reason": i["reason"], "message_id": i["message_id"],
            "updated_at": i["updated_at"].isoformat()} for i in items],
            "next_cursor": next_cursor}

    # -- states ------------------------------------------------------------------------------------
    @rpc
    def change_campaign_state(self, campaign_id: str, state: str) -> dict:
        """``scheduled`` (starts by itself at ``starts_at``), ``running`` (launch now: resolve the
        recipients, queue the e-mails, make the call tasks), ``finished``, ``cancelled``, or back
        to ``draft`` from scheduled."""
        identity = self.caller.require("sales_head", "director")
        now = utcnow()
        with self.db.session() as session:
            row = self._campaign_row(session, identity, campaign_id, lock=True)
            check_transition(row["state"], state)
            if state == "scheduled" and row["starts_at"] is None:
                raise ValidationFailed("Для планирования нужна дата начала",
                                       fields={"starts_at": ["обязательно"]})
            if state == "running":
                self._launch(session, identity, row, now)
            session.execute(sa.update(campaigns).where(campaigns.c.id == row["id"])
                            .values(state=state, updated_at=now))
            row = self._campaign_row(session, identity, row["id"])
            self._emit_changed(session, row, now)
            store.audit(session, identity, f"campaign_{state}", now,
                        details={"campaign_id": str(row["id"])})
            return _dump(row, self._counts(session, row["id"]))

    @timer(interval=30)
    def start_scheduled_campaigns(self):
        """Scheduled campaigns whose ``starts_at`` has come are launched (one replica takes each:
        ``FOR UPDATE SKIP LOCKED``)."""
        now = utcnow()
        with self.db.session() as session:
            rows = session.execute(
                sa.select(campaigns).where(campaigns.c.state == "scheduled",
                                           campaigns.c.starts_at <= now)
                .with_for_update(skip_locked=True).limit(5)).mappings().all()
            for row in rows:
                creator = session.execute(sa.select(self.staff_table).where(
                    self.staff_table.c.user_id == row["created_by"])).mappings().first()
                identity = Identity(
                    user_id=str(row["created_by"]),
                    role=creator["role"] if creator and creator["role"] in (
                        "sales_head", "director") else "director",
                    department_id=str(creator["department_id"])
                    if creator and creator["department_id"] else None)
                self._launch(session, identity, dict(row), now)
                session.execute(sa.update(campaigns).where(campaigns.c.id == row["id"])
                                .values(state="running", updated_at=now))
                self._emit_changed(session, {**row, "state": "running"}, now)
                store.audit(session, None, "campaign_running", now,
                            details={"campaign_id": str(row["id"]), "by": "schedule"})

    def _launch(self, session, identity, row: dict, now) -> None:
        check_ready_to_send(row)
        max_targets = as_int(self.config.get("CAMPAIGN_MAX_TARGETS"), 5000)
        _, node = load_filter(session, identity, row["filter"], None)
        targets = session.execute(
            sa.select(clients.c.id, clients.c.short_name, clients.c.emails, clients.c.owner_id,
                      clients.c.department_id)
            .where(visible_clients(identity, node, now, business_tz(self.config)))
            .order_by(clients.c.id).limit(max_targets + 1)).mappings().all()
        if not targets:
            raise ValidationFailed("В сегменте нет клиентов", fields={"filter": [
                "ни одного клиента"]}, code="empty_campaign")
        if len(targets) > max_targets:
            raise ValidationFailed(f"В кампании больше {max_targets} клиентов: сузьте фильтр",
                                   fields={"filter": [f"больше {max_targets} клиентов"]},
                                   code="campaign_too_large")
        if "calls" in row["channels"]:
            session.execute(sa.insert(campaign_targets), [
                {"campaign_id": row["id"], "client_id": t["id"], "owner_id": t["owner_id"]}
                for t in targets])
            for t in targets:
                self.outbox.emit(session, "reactivation_call_requested", {
                    "campaign_id": row["id"], "campaign_name": row["name"], "client_id": t["id"],
                    "owner_id": t["owner_id"], "department_id": t["department_id"],
                    "due_at": row["ends_at"] or row["due_at"], "requested_by": identity.user_id})
        if "email" not in row["channels"]:
            return
        ids = [t["id"] for t in targets]
        people = session.execute(
            sa.select(contacts.c.id, contacts.c.client_id, contacts.c.full_name, contacts.c.emails)
            .where(contacts.c.client_id.in_(ids)).order_by(contacts.c.client_id, contacts.c.id)
        ).mappings().all()
        names = {t["id"]: t["short_name"] for t in targets}
        rows = [{"client_id": t["id"], "short_name": t["short_name"], "emails": t["emails"]}
                for t in targets]
        rows += [{"client_id": p["client_id"], "contact_id": p["id"], "full_name": p["full_name"],
                  "short_name": names[p["client_id"]], "emails": p["emails"]} for p in people]
        recipients = recipients_from(rows)
        consent = self._consents([r.email for r in recipients])
        send, skip = split_by_consent(recipients, consent)
        secret = self._unsubscribe_secret()
        base = str(self.config.get("CAMPAIGN_UNSUBSCRIBE_BASE_URL")
                   or "http://127.0.0.1:8000/u/").rstrip("/") + "/"
        values = []
        for recipient, status in [(r, "queued") for r in send] + \
                [(r, "skipped_no_consent") for r in skip]:
            rid = uuid.uuid4()
            values.append({"id": rid, "campaign_id": row["id"], "email": recipient.email,
                           "client_id": recipient.client_id, "contact_id": recipient.contact_id,
                           "status": status, "created_at": now, "updated_at": now,
                           "reason": None if status == "queued" else "нет согласия на рассылку"})
            if status == "queued":
                self._request_email(session, row, recipient, rid, base + sign_unsubscribe(
                    secret, rid))
        if values:
            session.execute(sa.insert(campaign_recipients), values)
        store.audit(session, identity, "campaign_launch", now, details={
            "campaign_id": str(row["id"]), "clients": len(targets), "queued": len(send),
            "skipped_no_consent": len(skip)})

    def _request_email(self, session, row, recipient: Recipient, rid, unsubscribe_url) -> None:
        subject, body = render_email(row, recipient, unsubscribe_url)
        self.outbox.emit(session, "campaign_email_requested", {
            "campaign_id": row["id"], "recipient_id": rid, "mailbox_id": row["mailbox_id"],
            "email": recipient.email, "subject": subject, "body": body,
            "unsubscribe_url": unsubscribe_url})

    def _unsubscribe_secret(self) -> str:
        secret = str(self.config.get("CAMPAIGN_UNSUBSCRIBE_SECRET") or "")
        if len(secret) < 16:
            raise ValidationFailed("Не задан CAMPAIGN_UNSUBSCRIBE_SECRET (не короче 16 символов)",
                                   fields={"CAMPAIGN_UNSUBSCRIBE_SECRET": ["не задан"]},
                                   code="unsubscribe_secret_missing")
        return secret

    def _consents(self, emails: list[str]) -> dict[str, bool]:
        """Ask the consent store (``consent_status``, in this service) as the service itself."""
        out: dict[str, bool] = {}
        saved = self.caller.identity if self.caller.present else None
        self.caller.act_as(self._service_identity())
        try:
            for i in range(0, len(emails), CONSENT_CHUNK):
                out.update(self.consent_status(emails[i:i + CONSENT_CHUNK], CONSENT_PURPOSE))
        finally:
            if saved is not None:
                self.caller.act_as(saved)
        return {str(k).lower(): v for k, v in out.items()}

    # -- unsubscribe (public, by the signed token) -------------------------------------------------
    @rpc
    def campaign_unsubscribe(self, token: str) -> dict:
        """The recipient of a signed unsubscribe token stops receiving campaign mail: the
        ``marketing_email`` consent of the address is withdrawn and the recipient marked
        ``unsubscribed``. Called by the gateway's public ``/u/<token>`` without a login (the
        token is the authentication); repeating it is harmless. Bad token: 404."""
        recipient_id = verify_unsubscribe(self._unsubscribe_secret(), token)
        if recipient_id is None:
            raise NotFound("Ссылка для отписки недействительна", code="unsubscribe_invalid")
        now = utcnow()
        with self.db.session() as session:
            recipient = session.execute(sa.select(campaign_recipients).where(
                campaign_recipients.c.id == recipient_id).with_for_update()).mappings().first()
            if recipient is None:
                raise NotFound("Ссылка для отписки недействительна", code="unsubscribe_invalid")
            already = recipient["status"] == "unsubscribed"
            if not already:
                session.execute(sa.update(campaign_recipients)
                                .where(campaign_recipients.c.id == recipient_id)
                                .values(status="unsubscribed", updated_at=now,
                                        reason="отписка по ссылке"))
                store.audit(session, self._service_identity(), "campaign_unsubscribe", now,
                            recipient["client_id"], fields=["emails"], details={
                                "campaign_id": str(recipient["campaign_id"]),
                                "email": recipient["email"]})
        if not already:
            self.caller.act_as(self._service_identity())
            self.withdraw_consent({"email": recipient["email"], "purpose": CONSENT_PURPOSE,
                                   "source": "unsubscribe",
                                   "reason": f"отписка от кампании {recipient['campaign_id']}"})
        return {"email": recipient["email"], "unsubscribed": True}

    # -- what the mail service reports -------------------------------------------------------------
    @event_handler("mail", "campaign_email_sent")
    def handle_campaign_email_sent(self, event):
        p = event.payload
        self._recipient_status(event, p["recipient_id"], "sent", ("queued",),
                               message_id=p["message_id"])

    @event_handler("mail", "campaign_email_bounced")
    def handle_campaign_email_bounced(self, event):
        p = event.payload
        reason = " ".join(x for x in (p.get("status"), p.get("reason")) if x)[:1000]
        self._recipient_status(event, p["recipient_id"], "bounced", ("queued", "sent"),
                               reason=reason or "недоставлено")

    def _recipient_status(self, event, recipient_id, status, from_states, **values) -> None:
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            session.execute(sa.update(campaign_recipients).where(
                campaign_recipients.c.id == recipient_id,
                campaign_recipients.c.status.in_(from_states))
                .values(status=status, updated_at=utcnow(), **values))

