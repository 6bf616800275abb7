"""Entrypoints of the clients service: the consent store (issue 13, part A). A mixin of
``ClientsService`` using its ``db``, ``outbox`` and ``caller``.

A consent is kept per person (normalised e-mail and/or E.164 phone, optionally the client and
contact) and purpose (``processing`` — 152-FZ personal-data processing, ``marketing_email``,
``marketing_calls``), with the version of the text agreed to, when, how, IP and user agent. Rows
are never deleted: a withdrawal stamps ``withdrawn_at`` and its channel on the open grants (or
adds an opt-out row when nothing was granted). Every change is audited (``consent_given`` /
``consent_withdrawn``) and emitted as ``consent_changed``; ``consent_status`` answers a bulk
campaign check in one query.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from crm_platform.clock import utcnow
from crm_platform.errors import ValidationFailed
from crm_platform.idempotency import idempotent
from crm_platform.rpc import rpc

from . import store
from .domain import consents as rules
from .models import consent_texts, consents

WRITERS = ("manager", "sales_head", "director", "admin", "integration")
READERS = ("manager", "sales_head", "director", "admin", "integration")


def _text_view(row) -> dict:
    return {"id": str(row["id"]), "purpose": row["purpose"], "version": row["version"],
            "text": row["text"], "valid_from": row["valid_from"].isoformat()}


def _row_view(row, versions: dict) -> dict:
    return {
        "id": row["id"], "email": row["email"], "phone": row["phone"],
        "client_id": str(row["client_id"]) if row["client_id"] else None,
        "contact_id": str(row["contact_id"]) if row["contact_id"] else None,
        "purpose": row["purpose"],
        "text_version_id": str(row["text_version_id"]) if row["text_version_id"] else None,
        "text_version": versions.get(row["text_version_id"]),
        "given_at": row["given_at"].isoformat() if row["given_at"] else None,
        "source": row["source"], "ip": row["ip"], "user_agent": row["user_agent"],
        "withdrawn_at": row["withdrawn_at"].isoformat() if row["withdrawn_at"] else None,
        "withdrawal_source": row["withdrawal_source"],
        "withdrawal_reason": row["withdrawal_reason"],
        "granted": row["given_at"] is not None and row["withdrawn_at"] is None,
    }


def _person_filter(person: rules.Person):
    conditions = []
    if person.email:
        conditions.append(consents.c.email == person.email)
    if person.phone:
        conditions.append(consents.c.phone == person.phone)
    return sa.or_(*conditions)


def _uuid_or_none(value, field):
    if value in (None, ""):
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationFailed("Неверный идентификатор", fields={field: ["не UUID"]}) from None


class ConsentEntrypoints:
    @rpc
    def consent_texts(self, purpose: str | None = None) -> list[dict]:
        """The consent texts (every version, newest first), of one ``purpose`` when given."""
        self.caller.require()
        query = sa.select(consent_texts).order_by(consent_texts.c.purpose,
                                                  consent_texts.c.valid_from.desc())
        if purpose:
            query = query.where(consent_texts.c.purpose == rules.check_purpose(purpose))
        with self.db.session() as session:
            return [_text_view(r) for r in session.execute(query).mappings()]

    @rpc
    @idempotent
    def add_consent_text(self, purpose: str, version: str, text: str,
                         valid_from: str | None = None) -> dict:
        """Add a version of a consent text (admin). A version is never edited: a changed text
        is a new version, so that every consent keeps pointing at what the person read."""
        identity = self.caller.require("admin")
        rules.check_purpose(purpose)
        version = (version or "").strip()
        text = (text or "").strip()
        errors = {}
        if not version or len(version) > 30:
            errors["version"] = ["от 1 до 30 знаков"]
        if not text:
            errors["text"] = ["текст согласия пуст"]
        if errors:
            raise ValidationFailed("Проверьте текст согласия", fields=errors)
        now = utcnow()
        start = rules.check_given_at(valid_from, now) if valid_from else now
        with self.db.session() as session:
            taken = session.execute(sa.select(consent_texts.c.id).where(
                consent_texts.c.purpose == purpose, consent_texts.c.version == version)).first()
            if taken:
                raise ValidationFailed("Такая версия уже есть", fields={
                    "version": [f"версия {version} для {purpose} уже существует"]})
            row = {"id": uuid.uuid4(), "purpose": purpose, "version": version, "text": text,
                   "valid_from": start, "created_at": now,
                   "created_by": identity.user_id}
            session.execute(sa.insert(consent_texts).values(**row))
            store.audit(session, identity, "consent_text_added", now,
                        details={"purpose": purpose, "version": version})
            return _text_view(row)

    def _text_version(self, session, data: dict, purpose: str):
        if data.get("text_version_id"):
            text_id = _uuid_or_none(data["text_version_id"], "text_version_id")
            row = session.execute(sa.select(consent_texts).where(
                consent_texts.c.id == text_id)).mappings().first()
            if row is None or row["purpose"] != purpose:
                raise ValidationFailed("Текст согласия не найден", fields={
                    "text_version_id": [f"нет такой версии текста для {purpose}"]})
            return row
        if data.get("version"):
            row = session.execute(sa.select(consent_texts).where(
                consent_texts.c.purpose == purpose,
                consent_texts.c.version == str(data["version"]))).mappings().first()
            if row is None:
                raise ValidationFailed("Текст согласия не найден", fields={
                    "version": [f"нет версии {data['version']} для {purpose}"]})
            return row
        raise ValidationFailed("Укажите текст согласия", fields={
            "text_version_id": ["версия текста, с которым согласился человек"]})

    @rpc
    @idempotent
    def record_consent(self, data: dict) -> dict:
        """Record a consent given: ``email``/``phone`` (at least one), ``client_id``?,
        ``contact_id``?, ``purpose``, ``text_version_id`` (or ``version`` of the purpose's text),
        ``source``, ``ip``?, ``user_agent``?, ``given_at``? (default now). Returns the row."""
        identity = self.caller.require(*WRITERS)
        person = rules.person_of(data)
        purpose = rules.check_purpose(data.get("purpose"))
        source = rules.check_source(data.get("source"))
        now = utcnow()
        given_at = rules.check_given_at(data.get("given_at"), now)
        client_id = _uuid_or_none(data.get("client_id"), "client_id")
        contact_id = _uuid_or_none(data.get("contact_id"), "contact_id")
        with self.db.session() as session:
            text = self._text_version(session, data, purpose)
            row = {"email": person.email, "phone": person.phone, "client_id": client_id,
                   "contact_id": contact_id, "purpose": purpose, "text_version_id": text["id"],
                   "given_at": given_at, "source": source,
                   "ip": (str(data.get("ip") or "")[:45] or None),
                   "user_agent": (str(data.get("user_agent") or "")[:rules.MAX_USER_AGENT]
                                  or None),
                   "recorded_at": now, "recorded_by": identity.user_id}
            row["id"] = session.execute(sa.insert(consents).values(**row)
                                        .returning(consents.c.id)).scalar_one()
            row.update(withdrawn_at=None, withdrawal_source=None, withdrawal_reason=None)
            store.audit(session, identity, "consent_given", now, client_id=client_id,
                        details={**person.as_dict(), "purpose": purpose, "source": source,
                                 "version": text["version"]})
            self.outbox.emit(session, "consent_changed", {
                **person.as_dict(), "client_id": client_id, "contact_id": contact_id,
                "purpose": purpose, "granted": True, "at": given_at, "source": source,
                "text_version_id": text["id"]})
            return _row_view(row, {text["id"]: text["version"]})

    @rpc
    def withdraw_consent(self, data: dict) -> dict:
        """Withdraw a consent: ``email``/``phone``, ``purpose``, ``source`` (how the person said
        so), ``reason``?. Every open grant of the person for the purpose is stamped withdrawn;
        with none, an opt-out row is kept. Returns ``{"withdrawn": n, "granted": false}``."""
        identity = self.caller.require(*WRITERS)
        person = rules.person_of(data)
        purpose = rules.check_purpose(data.get("purpose"))
        source = rules.check_source(data.get("source"))
        reason = (str(data.get("reason") or "")[:rules.MAX_REASON]) or None
        now = utcnow()
        with self.db.session() as session:
            stamp = {"withdrawn_at": now, "withdrawal_source": source,
                     "withdrawal_reason": reason}
            closed = session.execute(sa.update(consents).where(
                _person_filter(person), consents.c.purpose == purpose,
                consents.c.given_at.is_not(None), consents.c.withdrawn_at.is_(None))
                .values(**stamp).returning(consents.c.id)).scalars().all()
            if not closed:
                session.execute(sa.insert(consents).values(
                    **person.as_dict(), purpose=purpose, recorded_at=now,
                    recorded_by=identity.user_id, **stamp))
            store.audit(session, identity, "consent_withdrawn", now, details={
                **person.as_dict(), "purpose": purpose, "source": source, "reason": reason})
            self.outbox.emit(session, "consent_changed", {
                **person.as_dict(), "purpose": purpose, "granted": False, "at": now,
                "source": source})
            return {"withdrawn": len(closed), "granted": False, **person.as_dict(),
                    "purpose": purpose, "at": now.isoformat()}

    @rpc
    def consent_status(self, emails: list[str], purpose: str) -> dict[str, bool]:
        """The current state per address for one purpose, for bulk campaign checks: ``{e-mail as
        normalised: granted}`` (an address that is no address, or never seen, is false)."""
        self.caller.require(*READERS)
        rules.check_purpose(purpose)
        normalised = rules.normalise_emails(list(emails or []))
        wanted = sorted({e for e in normalised.values() if e})
        result = {e: False for e in normalised.values() if e}
        if not wanted:
            return result
        with self.db.session() as session:
            granted = session.execute(sa.select(consents.c.email).distinct().where(
                consents.c.email.in_(wanted), consents.c.purpose == purpose,
                consents.c.given_at.is_not(None),
                consents.c.withdrawn_at.is_(None))).scalars().all()
        result.update({e: True for e in granted})
        return result

    @rpc
    def list_consents(self, person: dict) -> list[dict]:
        """The consent history of one person (``email`` and/or ``phone``), oldest first (empty when
        nothing was ever recorded). The read is audited (``consents_read``)."""
        identity = self.caller.require(*READERS)
        keys = rules.person_of(person or {})
        with self.db.session() as session:
            rows = session.execute(sa.select(consents).where(_person_filter(keys))
                                   .order_by(consents.c.id)).mappings().all()
            ids = {r["text_version_id"] for r in rows if r["text_version_id"]}
            versions = dict(session.execute(sa.select(consent_texts.c.id, consent_texts.c.version)
                                            .where(consent_texts.c.id.in_(ids))).all()) \
                if ids else {}
            store.audit(session, identity, "consents_read", utcnow(), details=keys.as_dict())
            return [_row_view(r, versions) for r in rows]
