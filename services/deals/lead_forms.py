"""Entrypoints of the deals service: web forms that capture leads (issue 13, part A). A mixin of
``DealsService`` using its ``db``, ``outbox``, ``caller``, ``config`` and ``clients_rpc``.

Admins (and a department's sales head) configure forms: a random public ``key``, a name, the
default department and region, allowed origins (CORS / ``Origin`` check), the consent text
version the visitor agrees to, and an optional confirmation e-mail sent from a mailbox. The
gateway serves the form page and ``embed.js`` and posts submissions here (``submit_form``, no
signed-in caller: the form key is the credential).

A submission is rate-limited by two token buckets kept in this database (per form and per client
IP: ``FORM_RATE_PER_MINUTE``/``FORM_BURST``, ``FORM_IP_RATE_PER_MINUTE``/``FORM_IP_BURST``) — in
the database rather than in each gateway process so that the limit holds however many gateway and
deals replicas run (a row lock per bucket, one short transaction). Spam (honeypot, a missing or
forged fill-start token, filled in under ``FORM_MIN_FILL_SECONDS``) is recorded as spam and
answered like a lead. A real one records the consent in clients (text version, time, IP, user
agent), registers the lead through ``create_deal`` (source ``web``: an existing client's lead goes
to its owner, a new one is distributed in the department serving its region, else the form's),
and marks a confirmation e-mail pending; a timer sends it through the mail service and retries.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta

import sqlalchemy as sa
from nameko.rpc import RpcProxy
from nameko.timer import timer

from crm_platform.clock import utcnow
from crm_platform.config import as_float, as_int
from crm_platform.errors import (
    Forbidden,
    NotFound,
    QuotaExceeded,
    ValidationFailed,
)
from crm_platform.idempotency import idempotent
from crm_platform.identity import Identity
from crm_platform.rpc import rpc
from crm_platform.secrets import RequiredSecrets

from .domain import forms as rules
from .domain.deal_input import parse_uuid
from .domain.distribution import department_for
from .models import departments, form_submissions, lead_forms, rate_buckets

log = logging.getLogger(__name__)

DEFAULT_SERVICE_USER_ID = "00000000-0000-4000-8000-0000000de415"
DEV_FORM_SECRET = "roofcrm-dev-form-secret"
CONFIRMATION_MAX_ATTEMPTS = 5
CONFIRMATION_BATCH = 50
_last_confirmation_scan: dict[str, float] = {}
FORM_FIELDS = ("name", "department_id", "region", "allowed_origins", "consent_text_version_id",
               "confirmation_email", "mailbox_id", "active")


def _form_view(row) -> dict:
    return {
        "id": str(row["id"]), "key": row["key"], "name": row["name"],
        "department_id": str(row["department_id"]) if row["department_id"] else None,
        "region": row["region"], "allowed_origins": list(row["allowed_origins"] or []),
        "consent_text_version_id": str(row["consent_text_version_id"])
        if row["consent_text_version_id"] else None,
        "confirmation_email": row["confirmation_email"],
        "mailbox_id": str(row["mailbox_id"]) if row["mailbox_id"] else None,
        "active": row["active"],
    }


def _check_form(data: dict, *, partial: bool) -> tuple[dict, dict]:
    errors: dict[str, list[str]] = {}
    clean: dict = {}
    if "name" in data or not partial:
        name = str(data.get("name") or "").strip()
        if not name or len(name) > 200:
            errors["name"] = ["название формы, до 200 символов"]
        clean["name"] = name
    for key in ("department_id", "consent_text_version_id", "mailbox_id"):
        if key in data:
            try:
                clean[key] = parse_uuid(data[key], key)
            except ValidationFailed:
                errors[key] = ["UUID"]
    if "region" in data:
        region = data.get("region") or None
        if region is not None and (not isinstance(region, str) or len(region) > 16):
            errors["region"] = ["код региона ISO 3166-2, например RU-SVE"]
        clean["region"] = region
    if "allowed_origins" in data:
        origins = data.get("allowed_origins") or []
        if not isinstance(origins, list) or not all(
                isinstance(o, str) and o.startswith(("http://", "https://")) and len(o) <= 300
                for o in origins):
            errors["allowed_origins"] = ["список адресов сайтов вида https://example.ru"]
        else:
            clean["allowed_origins"] = [o.rstrip("/") for o in origins]
    for key in ("confirmation_email", "active"):
        if key in data:
            if not isinstance(data[key], bool):
                errors[key] = ["true или false"]
            clean[key] = data[key]
    return clean, errors


class LeadFormEntrypoints:
    mail_rpc = RpcProxy("mail")
    form_secrets = RequiredSecrets("FORM_TOKEN_SECRET")

    def _form_secret(self) -> str:
        return str(self.config.get("FORM_TOKEN_SECRET") or DEV_FORM_SECRET)

    def _deals_identity(self, department_id=None) -> Identity:
        return Identity(user_id=str(self.config.get("DEALS_SERVICE_USER_ID")
                                    or DEFAULT_SERVICE_USER_ID),
                        role="integration", username="deals", full_name="Веб-формы",
                        department_id=str(department_id) if department_id else None)

    # -- admin ------------------------------------------------------------------------------------
    def _form_admin(self, department_id=None):
        identity = self.caller.require("admin", "sales_head")
        if identity.role == "sales_head" and department_id is not None and \
                str(department_id) != identity.department_id:
            raise Forbidden("Форма другого отдела", code="department_forbidden")
        return identity

    @rpc
    @idempotent
    def create_form(self, data: dict) -> dict:
        """Create a web form (admin, or a sales head for their department): ``name``,
        ``department_id``, ``region``?, ``allowed_origins`` (list of https://site),
        ``consent_text_version_id`` (the processing consent the visitor agrees to; none: no
        checkbox), ``confirmation_email`` (bool), ``mailbox_id``. A random public ``key`` is
        generated."""
        clean, errors = _check_form(data or {}, partial=False)
        if clean.get("confirmation_email") and not clean.get("mailbox_id"):
            errors["mailbox_id"] = ["ящик, из которого отправлять подтверждение"]
        identity = self._form_admin(clean.get("department_id"))
        if identity.role == "sales_head" and not clean.get("department_id"):
            clean["department_id"] = parse_uuid(identity.department_id, "department_id")
        if not clean.get("department_id") and "department_id" not in errors:
            # Leads of unknown visitors need a department (its queue, its distribution).
            errors["department_id"] = ["отдел, куда идут заявки новых клиентов"]
        if errors:
            raise ValidationFailed("Проверьте настройки формы", fields=errors)
        now = utcnow()
        with self.db.session() as session:
            self._check_department(session, clean.get("department_id"))
            row = {"id": uuid.uuid4(), "key": rules.new_form_key(), "allowed_origins": [],
                   "confirmation_email": False, "active": True, **clean, "created_at": now,
                   "created_by": identity.user_id, "updated_at": now}
            session.execute(sa.insert(lead_forms).values(**row))
            row.setdefault("department_id", None)
            row.setdefault("region", None)
            row.setdefault("consent_text_version_id", None)
            row.setdefault("mailbox_id", None)
            return _form_view(row)

    @staticmethod
    def _check_department(session, department_id):
        if department_id is not None and session.execute(sa.select(
                departments.c.department_id).where(
                departments.c.department_id == department_id)).first() is None:
            raise ValidationFailed("Отдел не найден", fields={
                "department_id": ["нет такого отдела"]})

    @rpc
    def update_form(self, form_id: str, changes: dict) -> dict:
        """Change a form's settings (any of the create fields; ``active`` false switches it off:
        its page and submissions answer 404). The key never changes."""
        clean, errors = _check_form(changes or {}, partial=True)
        if errors:
            raise ValidationFailed("Проверьте настройки формы", fields=errors)
        with self.db.session() as session:
            row = session.execute(sa.select(lead_forms).where(
                lead_forms.c.id == parse_uuid(form_id, "form_id")).with_for_update()) \
                .mappings().first()
            if row is None:
                raise NotFound("Форма не найдена")
            self._form_admin(row["department_id"])
            self._form_admin(clean.get("department_id", row["department_id"]))
            if "department_id" in clean and clean["department_id"] is None:
                raise ValidationFailed("Проверьте настройки формы", fields={
                    "department_id": ["отдел, куда идут заявки новых клиентов"]})
            self._check_department(session, clean.get("department_id"))
            merged = {**row, **clean}
            if merged["confirmation_email"] and not merged["mailbox_id"]:
                raise ValidationFailed("Проверьте настройки формы", fields={
                    "mailbox_id": ["ящик, из которого отправлять подтверждение"]})
            if clean:
                session.execute(sa.update(lead_forms).where(lead_forms.c.id == row["id"])
                                .values(**clean, updated_at=utcnow()))
            return _form_view(merged)

    @rpc
    def list_forms(self) -> list[dict]:
        """The web forms (a sales head: their department's), with today's counts of leads and
        spam."""
        identity = self.caller.require("admin", "sales_head", "director")
        query = sa.select(lead_forms).order_by(lead_forms.c.created_at)
        if identity.role == "sales_head":
            query = query.where(lead_forms.c.department_id == parse_uuid(
                identity.department_id, "department_id"))
        with self.db.session() as session:
            rows = session.execute(query).mappings().all()
            counts: dict = {}
            if rows:
                since = utcnow() - timedelta(days=1)
                for form_id, status, count in session.execute(sa.select(
                        form_submissions.c.form_id, form_submissions.c.status, sa.func.count())
                        .where(form_submissions.c.form_id.in_([r["id"] for r in rows]),
                               form_submissions.c.at >= since)
                        .group_by(form_submissions.c.form_id, form_submissions.c.status)):
                    counts.setdefault(form_id, {})[status] = count
            return [{**_form_view(r), "last_24h": {"lead": counts.get(r["id"], {}).get("lead", 0),
                                                   "spam": counts.get(r["id"], {}).get("spam", 0)}}
                    for r in rows]

    # -- public -----------------------------------------------------------------------------------
    def _active_form(self, session, key: str):
        row = session.execute(sa.select(lead_forms).where(
            lead_forms.c.key == str(key or "")[:40])).mappings().first()
        if row is None or not row["active"]:
            raise NotFound("Форма не найдена", code="form_not_found")
        return row

    @rpc
    def public_form(self, key: str) -> dict:
        """What the form page and ``embed.js`` need (public, by key): name, whether the consent
        checkbox is required and its text, and a fresh signed fill-start token."""
        with self.db.session() as session:
            row = self._active_form(session, key)
        consent_text = None
        if row["consent_text_version_id"]:
            self.caller.act_as(self._deals_identity())
            texts = self.clients_rpc.consent_texts("processing")
            consent_text = next((t for t in texts
                                 if t["id"] == str(row["consent_text_version_id"])), None)
        return {"key": row["key"], "name": row["name"],
                "consent_required": row["consent_text_version_id"] is not None,
                "consent_text": consent_text["text"] if consent_text else None,
                "consent_version": consent_text["version"] if consent_text else None,
                "honeypot_field": rules.HONEYPOT_FIELD,
                "token": rules.sign(self._form_secret(), row["key"],
                                    int(utcnow().timestamp())),
                "allowed_origins": list(row["allowed_origins"] or [])}

    def _take(self, session, key: str, now, rate: float, burst: int) -> int:
        """0 when the bucket ``key`` gave a token, else the seconds to wait."""
        row = session.execute(sa.select(rate_buckets).where(rate_buckets.c.key == key)
                              .with_for_update()).mappings().first()
        allowed, tokens, wait = rules.take_token(
            row["tokens"] if row else None, row["updated_at"] if row else None, now,
            rate_per_minute=rate, burst=burst)
        if row is None:
            session.execute(sa.insert(rate_buckets).values(key=key, tokens=tokens,
                                                           updated_at=now))
        else:
            session.execute(sa.update(rate_buckets).where(rate_buckets.c.key == key).values(
                tokens=tokens, updated_at=now))
        return 0 if allowed else wait

    def _rate_limit(self, form, ip: str | None, now) -> None:
        with self.db.session() as session:
            waits = [self._take(session, f"form:{form['id']}", now,
                                as_float(self.config.get("FORM_RATE_PER_MINUTE"), 30.0),
                                as_int(self.config.get("FORM_BURST"), 30))]
            if ip:
                waits.append(self._take(session, f"ip:{ip}", now,
                                        as_float(self.config.get("FORM_IP_RATE_PER_MINUTE"), 5.0),
                                        as_int(self.config.get("FORM_IP_BURST"), 5)))
        wait = max(waits)
        if wait:
            raise QuotaExceeded("Слишком много заявок: попробуйте позже",
                                code="rate_limited", extra={"retry_after": wait})

    @rpc
    def submit_form(self, key: str, data: dict, meta: dict | None = None) -> dict:
        """A visitor's submission (public, by form key): ``data`` as posted (name, company, inn,
        phone, email, region, message, utm_*, page_url, referrer, consent, form_token, the
        honeypot), ``meta`` (ip, user_agent, origin) from the gateway. 404 unknown form, 403 an
        origin not allowed, 429 over the rate (``retry_after``), 422 bad fields; spam is answered
        like a lead (``accepted``) and recorded as spam. Returns ``{"status": "accepted",
        "submission_id"}``."""
        meta = meta or {}
        data = data if isinstance(data, dict) else {}
        ip = str(meta.get("ip") or "")[:45] or None
        now = utcnow()
        with self.db.session() as session:
            form = dict(self._active_form(session, key))
        if not rules.origin_allowed(meta.get("origin"), form["allowed_origins"]):
            raise Forbidden("Форма не принимает заявки с этого сайта", code="origin_forbidden")
        self._rate_limit(form, ip, now)
        submission_id = uuid.uuid4()
        spam = rules.spam_reason(data, secret=self._form_secret(), form_key=form["key"], now=now,
                                 min_fill_seconds=as_int(self.config.get("FORM_MIN_FILL_SECONDS"),
                                                         3))
        if spam is not None:
            with self.db.session() as session:
                session.execute(sa.insert(form_submissions).values(
                    id=submission_id, form_id=form["id"], at=now, ip=ip, status="spam",
                    spam_reason=spam, data={k: str(v)[:500] for k, v in data.items()
                                            if isinstance(v, str | int | float | bool)}))
            log.info("form %s: spam (%s) from %s", form["key"], spam, ip)
            return {"status": "accepted", "submission_id": str(submission_id)}
        clean, errors = rules.clean_submission(
            data, consent_required=form["consent_text_version_id"] is not None)
        if errors:
            raise ValidationFailed("Проверьте поля формы", fields=errors)
        with self.db.session() as session:
            known = [(str(d), list(r or [])) for d, r in session.execute(sa.select(
                departments.c.department_id, departments.c.regions))]
        region = clean.get("region") or form["region"]
        department_id = department_for(region, known, str(form["department_id"])
                                       if form["department_id"] else None)
        self.caller.act_as(self._deals_identity(department_id))
        if form["consent_text_version_id"] is not None:
            self.clients_rpc.record_consent({
                "email": clean.get("email"), "phone": clean.get("phone"),
                "purpose": "processing",
                "text_version_id": str(form["consent_text_version_id"]),
                "source": "web_form", "ip": ip,
                "user_agent": str(meta.get("user_agent") or "")[:500] or None,
                "given_at": now.isoformat()})
        lead = {k: clean[k] for k in ("name", "company", "inn", "phone", "email", "message")
                if clean.get(k)}
        detail = {"kind": "web_form", "form_key": form["key"],
                  **{k: clean[k] for k in (*rules.UTM_FIELDS, "page_url", "referrer")
                     if clean.get(k)}}
        result = self.create_deal({"source": "web", "lead": lead, "region": region,
                                   "source_detail": detail},
                                  department_id=department_id)
        deal = result["deal"]
        confirm = "pending" if form["confirmation_email"] and clean.get("email") else "none"
        with self.db.session() as session:
            session.execute(sa.insert(form_submissions).values(
                id=submission_id, form_id=form["id"], at=now, ip=ip, status="lead",
                deal_id=parse_uuid(deal["id"], "deal_id"), data=clean, confirmation=confirm))
        return {"status": "accepted", "submission_id": str(submission_id),
                "deal_id": deal["id"], "created": result["created"]}

    # -- confirmation e-mails ---------------------------------------------------------------------
    @timer(interval=10)
    def periodic_form_confirmations(self):
        every = as_int(self.config.get("FORM_CONFIRMATION_SECONDS"), 30)
        if every <= 0 or time.monotonic() - _last_confirmation_scan.get("at", -1e9) < every:
            return
        _last_confirmation_scan["at"] = time.monotonic()
        self._send_confirmations()

    @rpc
    def send_form_confirmations(self) -> dict:
        """Send pending confirmation e-mails now (admin; also what the timer does)."""
        self.caller.require("admin", "integration")
        return self._send_confirmations()

    def _send_confirmations(self) -> dict:
        counts = {"sent": 0, "failed": 0, "retry": 0}
        with self.db.session() as session:
            rows = session.execute(sa.select(form_submissions, lead_forms.c.name,
                                             lead_forms.c.mailbox_id, lead_forms.c.department_id)
                                   .join(lead_forms, lead_forms.c.id == form_submissions.c.form_id)
                                   .where(form_submissions.c.confirmation == "pending")
                                   .order_by(form_submissions.c.at).limit(CONFIRMATION_BATCH)
                                   .with_for_update(of=form_submissions, skip_locked=True)
                                   ).mappings().all()
            for row in rows:
                self.caller.act_as(self._deals_identity(row["department_id"]))
                values: dict = {"confirmation_attempts": row["confirmation_attempts"] + 1}
                try:
                    self.mail_rpc.send_message({
                        "mailbox_id": str(row["mailbox_id"]), "to": [row["data"]["email"]],
                        "subject": f"Мы получили вашу заявку: {row['name']}",
                        "body": "Здравствуйте!\n\nСпасибо за обращение: менеджер свяжется с вами "
                                "в ближайшее рабочее время.\n"})
                    values["confirmation"] = "sent"
                    counts["sent"] += 1
                except Exception as exc:  # noqa: BLE001 - mail down or refusing: kept for a retry
                    values["confirmation_error"] = f"{type(exc).__name__}: {exc}"[:500]
                    if values["confirmation_attempts"] >= CONFIRMATION_MAX_ATTEMPTS:
                        values["confirmation"] = "failed"
                        counts["failed"] += 1
                    else:
                        counts["retry"] += 1
                session.execute(sa.update(form_submissions).where(
                    form_submissions.c.id == row["id"]).values(**values))
        return counts
