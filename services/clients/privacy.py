"""Personal data requests (152-FZ): export and erasure of one person's data across the services,
orchestrated here, and the clients service's own part (``crm_platform.privacy``).

``privacy_request({"kind": "export"|"erase", "email"?, "phone"?, "contact_id"?, "reason"?,
"format"?})`` (admin, director): a contact is expanded into its e-mails and phones; then every
service holding personal data is asked in turn — clients (here), deals, mail, telephony — by the
platform RPCs ``personal_data_export`` / ``personal_data_erase``. The request is a row of
``privacy_requests`` (who, when, the person masked, the status of each service) and an audit
entry; the exported data is handed back (JSON, or an XLSX with a sheet per section) and not
kept. A service that fails is recorded with its error and the request is ``partial``; repeating
an erasure is harmless. Each service has ``PRIVACY_RPC_TIMEOUT_SECONDS`` (60) to answer.

Here, erasure anonymises: contact persons with the person's e-mail or phone (name → marker,
phones, e-mails, messengers, notes emptied), the person's e-mail/phone on client cards (removed;
the company's name, INN, KPP and addresses stay — a legal entity's requisites, needed for the ERP
documents), the duplicate-check keys, consents (address → marker, IP and browser dropped; the rows
stay as proof of consent and withdrawal) and campaign recipients. The audit log is append-only
and stays (it is the record of who accessed the data). Changed cards are announced as
``client_updated`` so the replicas of other services follow.
"""

from __future__ import annotations

import base64
import io
import json
import uuid

import eventlet
import sqlalchemy as sa
from nameko.rpc import RpcProxy
from openpyxl import Workbook

from crm_platform.clock import utcnow
from crm_platform.errors import NotFound, ValidationFailed
from crm_platform.idempotency import idempotent
from crm_platform.privacy import MARKER, ROLES, normalise_person
from crm_platform.rpc import rpc

from . import store
from .models import (
    audit_log,
    campaign_recipients,
    clients,
    consents,
    contacts,
    identifiers,
    privacy_requests,
)
from .payloads import snapshot

OTHER_SERVICES = ("deals", "mail", "telephony")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
AUDIT_LIMIT = 1000


def _iso(value):
    return value.isoformat() if value is not None else None


def _wait(reply, seconds: float):
    """A service that does not answer in time is a failure of that service, not a hang."""
    with eventlet.Timeout(seconds, TimeoutError(f"нет ответа за {seconds:g} с")):
        return reply.result()


def mask(keys: dict) -> str:
    def email(value):
        name, _, domain = value.partition("@")
        return f"{name[:1]}***@{domain}"

    return ", ".join([email(e) for e in keys["emails"]]
                     + [p[:-4] + "****" for p in keys["phones"]])[:500]


def _contact_match(keys: dict):
    conditions = []
    if keys["emails"]:
        conditions.append(contacts.c.emails.overlap(keys["emails"]))
    if keys["phones"]:
        conditions.append(contacts.c.phones.overlap(keys["phones"]))
    return sa.or_(*conditions)


def _client_match(keys: dict):
    conditions = []
    if keys["emails"]:
        conditions.append(clients.c.emails.overlap(keys["emails"]))
    if keys["phones"]:
        conditions.append(clients.c.phones.overlap(keys["phones"]))
    return sa.or_(*conditions)


def _consent_match(keys: dict):
    conditions = []
    if keys["emails"]:
        conditions.append(consents.c.email.in_(keys["emails"]))
    if keys["phones"]:
        conditions.append(consents.c.phone.in_(keys["phones"]))
    return sa.or_(*conditions)


def to_xlsx(data: dict) -> bytes:
    """A sheet per service and section; nested values as JSON text."""
    book = Workbook()
    book.remove(book.active)
    for service, answer in data.items():
        for section, rows in (answer.get("sections") or {}).items():
            sheet = book.create_sheet(f"{service}.{section}"[:31])
            columns = sorted({k for row in rows for k in row}) or ["—"]
            sheet.append(columns)
            for row in rows:
                sheet.append([v if isinstance(v, str | int | float | type(None))
                              else json.dumps(v, ensure_ascii=False, default=str)
                              for v in (row.get(c) for c in columns)])
    if not book.sheetnames:
        book.create_sheet("пусто")
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


class PrivacyEntrypoints:
    privacy_deals = RpcProxy("deals")
    privacy_mail = RpcProxy("mail")
    privacy_telephony = RpcProxy("telephony")

    # -- the orchestration ---------------------------------------------------------------------
    @rpc
    @idempotent
    def privacy_request(self, data: dict) -> dict:
        """Export or erase one person's data in every service (see the module doc). Returns
        ``{"request_id", "kind", "status", "services", "data"?}`` or, with ``format`` xlsx for an
        export, the file as ``{"filename", "content_type", "content_base64"}`` beside it."""
        identity = self.caller.require("admin", "director")
        if not isinstance(data, dict) or data.get("kind") not in ("export", "erase"):
            raise ValidationFailed("Укажите вид запроса", fields={"kind": ["export или erase"]})
        fmt = data.get("format") or "json"
        if fmt not in ("json", "xlsx"):
            raise ValidationFailed("Формат: json или xlsx", fields={"format": ["json или xlsx"]})
        person = {k: data[k] for k in ("email", "phone") if data.get(k)}
        with self.db.session() as session:
            if data.get("contact_id"):
                contact = session.execute(sa.select(contacts).where(
                    contacts.c.id == store.as_uuid(data["contact_id"], "contact_id"))
                ).mappings().first()
                if contact is None:
                    raise NotFound("Контактное лицо не найдено", code="contact_not_found")
                person["emails"], person["phones"] = list(contact["emails"]), \
                    list(contact["phones"])
        keys = normalise_person(person)
        request_id, now = uuid.uuid4(), utcnow()
        with self.db.session() as session:
            session.execute(sa.insert(privacy_requests).values(
                id=request_id, kind=data["kind"], person_masked=mask(keys),
                requested_by=identity.user_id, requested_at=now, status="running",
                reason=(str(data.get("reason") or "")[:1000] or None)))
        results, statuses = {}, {}
        calls = {"clients": lambda: self._privacy_local(data["kind"], keys, str(request_id))}
        timeout = float(self.config.get("PRIVACY_RPC_TIMEOUT_SECONDS") or 60)
        for name in OTHER_SERVICES:
            proxy = getattr(self, f"privacy_{name}")
            calls[name] = (lambda p=proxy: _wait(p.personal_data_export.call_async(keys),
                                                 timeout)) \
                if data["kind"] == "export" else \
                (lambda p=proxy: _wait(p.personal_data_erase.call_async(keys, str(request_id)),
                                       timeout))
        for name, call in calls.items():
            try:
                results[name] = call()
                statuses[name] = {"status": "ok", **({"erased": results[name].get("erased"),
                                                      "kept": results[name].get("kept")}
                                                     if data["kind"] == "erase" else {})}
            except Exception as exc:  # noqa: BLE001 - recorded per service, the others go on
                statuses[name] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[
                    :500]}
        status = "done" if all(s["status"] == "ok" for s in statuses.values()) else "partial"
        finished = utcnow()
        with self.db.session() as session:
            session.execute(sa.update(privacy_requests).where(
                privacy_requests.c.id == request_id).values(
                status=status, services=statuses, finished_at=finished))
            store.audit(session, identity, f"privacy_{data['kind']}", finished, details={
                "request_id": str(request_id), "person": mask(keys), "status": status,
                "services": {k: v["status"] for k, v in statuses.items()}})
        answer = {"request_id": str(request_id), "kind": data["kind"], "status": status,
                  "services": statuses, "requested_at": now.isoformat(),
                  "finished_at": finished.isoformat()}
        if data["kind"] == "export":
            answer["data"] = results
            if fmt == "xlsx":
                answer["file"] = {
                    "filename": f"personal_data_{str(request_id)[:8]}.xlsx",
                    "content_type": XLSX,
                    "content_base64": base64.b64encode(to_xlsx(results)).decode("ascii")}
        return answer

    @rpc
    def list_privacy_requests(self, limit: int = 100) -> list[dict]:
        """Personal data requests, newest first (admin, director)."""
        self.caller.require("admin", "director")
        with self.db.session() as session:
            rows = session.execute(sa.select(privacy_requests).order_by(
                privacy_requests.c.requested_at.desc()).limit(max(1, min(int(limit), 500)))
            ).mappings().all()
        return [{"request_id": str(r["id"]), "kind": r["kind"], "person": r["person_masked"],
                 "requested_by": str(r["requested_by"]), "requested_at": _iso(r["requested_at"]),
                 "finished_at": _iso(r["finished_at"]), "status": r["status"],
                 "services": r["services"], "reason": r["reason"]} for r in rows]

    def _privacy_local(self, kind: str, keys: dict, request_id: str) -> dict:
        return self._personal_export(keys) if kind == "export" \
            else self._personal_erase(keys, request_id)

    # -- the clients service's own part ------------------------------------------------------
    @rpc
    def personal_data_export(self, person: dict) -> dict:
        """Contacts, client cards' e-mails/phones, consents, campaign mail and the audit of
        access to the person's clients (admin, director, integration)."""
        self.caller.require(*ROLES)
        return self._personal_export(normalise_person(person))

    @rpc
    def personal_data_erase(self, person: dict, request_id: str) -> dict:
        """Anonymise the person here (see the module doc)."""
        self.caller.require(*ROLES)
        return self._personal_erase(normalise_person(person), request_id)

    def _personal_export(self, keys: dict) -> dict:
        wanted = set(keys["emails"]) | set(keys["phones"])
        with self.db.session() as session:
            people = session.execute(sa.select(contacts).where(_contact_match(keys))
                                     .order_by(contacts.c.created_at)).mappings().all()
            cards = session.execute(sa.select(clients).where(_client_match(keys))) \
                .mappings().all()
            agreed = session.execute(sa.select(consents).where(_consent_match(keys))
                                     .order_by(consents.c.id)).mappings().all()
            mailed = session.execute(sa.select(campaign_recipients).where(
                campaign_recipients.c.email.in_(keys["emails"] or [""]))).mappings().all()
            client_ids = {p["client_id"] for p in people} | {c["id"] for c in cards}
            audit = session.execute(sa.select(audit_log).where(
                audit_log.c.client_id.in_(client_ids)).order_by(audit_log.c.at)
                .limit(AUDIT_LIMIT)).mappings().all() if client_ids else []
        return {"service": "clients", "sections": {
            "contacts": [{"contact_id": str(p["id"]), "client_id": str(p["client_id"]),
                          "full_name": p["full_name"], "position": p["position"],
                          "phones": list(p["phones"]), "emails": list(p["emails"]),
                          "messengers": p["messengers"], "notes": p["notes"],
                          "created_at": _iso(p["created_at"])} for p in people],
            "client_cards": [{"client_id": str(c["id"]), "short_name": c["short_name"],
                              "inn": c["inn"], "values": sorted(
                                  wanted & (set(c["emails"]) | set(c["phones"])))}
                             for c in cards],
            "consents": [{"purpose": r["purpose"], "email": r["email"], "phone": r["phone"],
                          "given_at": _iso(r["given_at"]), "source": r["source"],
                          "ip": r["ip"], "withdrawn_at": _iso(r["withdrawn_at"]),
                          "withdrawal_source": r["withdrawal_source"]} for r in agreed],
            "campaign_mail": [{"campaign_id": str(r["campaign_id"]), "email": r["email"],
                               "status": r["status"], "updated_at": _iso(r["updated_at"])}
                              for r in mailed],
            "access_audit": [{"at": _iso(a["at"]), "user_id": str(a["user_id"])
                              if a["user_id"] else None, "role": a["role"],
                              "action": a["action"], "client_id": str(a["client_id"]),
                              "fields": list(a["fields"])} for a in audit],
        }}

    def _personal_erase(self, keys: dict, request_id: str) -> dict:
        now = utcnow()
        values = keys["emails"] + keys["phones"]
        with self.db.session() as session:
            people = session.execute(sa.update(contacts).where(_contact_match(keys)).values(
                full_name=MARKER, position=None, phones=[], emails=[], messengers={},
                notes=None, updated_at=now).returning(contacts.c.id, contacts.c.client_id)
            ).all()
            touched = {client_id for _, client_id in people}
            cards = session.execute(sa.select(clients.c.id).where(_client_match(keys))) \
                .scalars().all()
            for value in values:
                session.execute(sa.update(clients).where(clients.c.id.in_(cards)).values(
                    emails=sa.func.array_remove(clients.c.emails, value),
                    phones=sa.func.array_remove(clients.c.phones, value)))
            touched |= set(cards)
            session.execute(sa.delete(identifiers).where(
                identifiers.c.kind.in_(("email", "phone")), identifiers.c.value.in_(values)))
            contact_ids = [contact_id for contact_id, _ in people]
            if contact_ids:
                session.execute(sa.delete(identifiers).where(
                    identifiers.c.contact_id.in_(contact_ids)))
            agreed = session.execute(sa.update(consents).where(_consent_match(keys)).values(
                email=sa.case((consents.c.email.is_(None), None), else_=MARKER),
                phone=sa.case((consents.c.phone.is_(None), None), else_=MARKER),
                ip=None, user_agent=None)).rowcount
            mailed = session.execute(sa.update(campaign_recipients).where(
                campaign_recipients.c.email.in_(keys["emails"] or [""])).values(
                email=sa.literal(MARKER + " ") + sa.cast(campaign_recipients.c.id, sa.String),
                updated_at=now)).rowcount
            for client_id in touched:
                row = session.execute(sa.update(clients).where(clients.c.id == client_id)
                                      .values(updated_at=now, version=clients.c.version + 1)
                                      .returning(clients)).mappings().one()
                self.outbox.emit(session, "client_updated", {
                    **snapshot(dict(row)), "changed_fields": ["emails", "phones", "contacts"]})
            store.audit(session, self.caller.identity, "personal_data_erase", now, details={
                "request_id": request_id, "person": mask(keys),
                "contacts": len(people), "clients": len(touched)})
        return {"service": "clients", "request_id": request_id,
                "erased": {"contacts": len(people), "client_cards": len(cards),
                           "consents": agreed, "campaign_recipients": mailed},
                "kept": {"client_cards": "наименование, ИНН, КПП и адреса компании",
                         "audit_log": "журнал доступа (только добавление)",
                         "consents": "записи о согласии и отзыве (без адреса)"}}
