"""Personal data requests (152-FZ, ``crm_platform.privacy``) for deals: the lead contact fields of
deals (name, phone, e-mail, message) and the web-form submissions with the person's e-mail or
phone. Erasure replaces the person's fields with the marker and the IP of their submissions; the
company's name and INN of a lead stay (a legal entity's data, not the person's), and so do the
deals themselves (stages, sums, the ERP documents' requisites)."""

from __future__ import annotations

import sqlalchemy as sa

from crm_platform.privacy import MARKER, ROLES, normalise_person
from crm_platform.rpc import rpc

from .models import deals, form_submissions

PERSON_FIELDS = ("name", "phone", "email", "message")


def _iso(value):
    return value.isoformat() if value is not None else None


def _deal_match(keys: dict):
    conditions = []
    if keys["emails"]:
        conditions.append(deals.c.lead_email.in_(keys["emails"]))
    if keys["phones"]:
        conditions.append(deals.c.lead_phone.in_(keys["phones"]))
    return sa.or_(*conditions)


def _submission_match(keys: dict):
    data = form_submissions.c.data
    conditions = []
    if keys["emails"]:
        conditions.append(data["email"].astext.in_(keys["emails"]))
    if keys["phones"]:
        conditions.append(data["phone"].astext.in_(keys["phones"]))
    return sa.or_(*conditions)


def _scrub(values: dict) -> dict:
    return {k: (MARKER if k in PERSON_FIELDS and v else v) for k, v in (values or {}).items()}


class PrivacyEntrypoints:
    @rpc
    def personal_data_export(self, person: dict) -> dict:
        """Deals whose lead is the person, and their web-form submissions."""
        self.caller.require(*ROLES)
        keys = normalise_person(person)
        with self.db.session() as session:
            found = session.execute(sa.select(deals).where(_deal_match(keys))
                                    .order_by(deals.c.created_at)).mappings().all()
            forms = session.execute(sa.select(form_submissions).where(_submission_match(keys))
                                    .order_by(form_submissions.c.at)).mappings().all()
        return {"service": "deals", "sections": {
            "deals": [{"deal_id": str(r["id"]), "title": r["title"], "lead": r["lead"],
                       "source": r["source"], "created_at": _iso(r["created_at"])}
                      for r in found],
            "form_submissions": [{"id": str(r["id"]), "at": _iso(r["at"]), "ip": r["ip"],
                                  "data": r["data"]} for r in forms]}}

    @rpc
    def personal_data_erase(self, person: dict, request_id: str) -> dict:
        """Anonymise the person's lead fields and form submissions (see the module doc)."""
        self.caller.require(*ROLES)
        keys = normalise_person(person)
        with self.db.session() as session:
            found = session.execute(sa.select(deals.c.id, deals.c.lead).where(
                _deal_match(keys)).with_for_update()).all()
            for deal_id, lead in found:
                session.execute(sa.update(deals).where(deals.c.id == deal_id).values(
                    lead=_scrub(lead), lead_phone=None, lead_email=None))
            forms = session.execute(sa.select(form_submissions.c.id, form_submissions.c.data)
                                    .where(_submission_match(keys)).with_for_update()).all()
            for submission_id, data in forms:
                session.execute(sa.update(form_submissions).where(
                    form_submissions.c.id == submission_id).values(data=_scrub(data), ip=None))
        return {"service": "deals", "request_id": request_id,
                "erased": {"deals": len(found), "form_submissions": len(forms)},
                "kept": {"deals": "сделки, этапы, суммы и реквизиты компании (ИНН) лида"}}
