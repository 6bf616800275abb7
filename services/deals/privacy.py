"""Personal data requests (152-FZ, ``crm_platform.privacy``) for deals: the lead contact fields of
deals (name, phone, e-mail, message) and the web-form submissions with the person's e-mail or
phone. Erasure replaces the person's fields with the marker and the IP of their submissions, and
every copy of their number or address the deals service made elsewhere: timeline entries (calls
and e-mails of any deal, and the client card's feed) and call-back tasks to an unknown number
(title, description, number).
The company's name and INN of a lead stay (a legal entity's data, not the person's), and so do the
deals themselves (stages, sums, the ERP documents' requisites)."""

from __future__ import annotations

import sqlalchemy as sa

from crm_platform.privacy import MARKER, ROLES, normalise_person
from crm_platform.rpc import rpc

from .models import client_timeline, deals, form_submissions, tasks, timeline

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


def _needles(keys: dict) -> list[str]:
    return [n.lower() for n in keys["emails"] + keys["phones"] if n]


def _mentioning(column, needles: list[str]):
    """Rows whose text mentions any of ``needles`` (a scan: privacy requests are rare); the
    exact check is ``_scrub_mentions``, so LIKE's wildcards in an address only widen the scan."""
    return sa.or_(*[sa.func.lower(sa.cast(column, sa.Text)).contains(n, autoescape=True)
                    for n in needles])


def _scrub_mentions(value, needles: list[str]):
    """``value`` (JSON-like) with every string that mentions a needle replaced by the marker."""
    if isinstance(value, str):
        return MARKER if any(n in value.lower() for n in needles) else value
    if isinstance(value, dict):
        return {k: _scrub_mentions(v, needles) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_mentions(v, needles) for v in value]
    return value


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
            needles = _needles(keys)
            entries = session.execute(sa.select(timeline).where(
                _mentioning(timeline.c.data, needles)).order_by(timeline.c.at)
            ).mappings().all() if needles else []
            client_entries = session.execute(sa.select(client_timeline).where(
                _mentioning(client_timeline.c.data, needles)).order_by(client_timeline.c.at)
            ).mappings().all() if needles else []
            copies = session.execute(sa.select(tasks.c.id, tasks.c.title, tasks.c.created_at)
                                     .where(sa.or_(_mentioning(tasks.c.title, needles),
                                                   tasks.c.external_number.in_(keys["phones"])))
                                     .order_by(tasks.c.created_at)).mappings().all() \
                if needles else []
        return {"service": "deals", "sections": {
            "timeline": [{"deal_id": str(r["deal_id"]), "at": _iso(r["at"]), "kind": r["kind"],
                          "data": r["data"]} for r in entries],
            "client_timeline": [{"client_id": str(r["client_id"]), "at": _iso(r["at"]),
                                 "kind": r["kind"], "data": r["data"]} for r in client_entries],
            "tasks": [{"task_id": str(r["id"]), "title": r["title"],
                       "created_at": _iso(r["created_at"])} for r in copies],
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
            needles = _needles(keys)
            entries = session.execute(sa.select(timeline.c.id, timeline.c.data).where(
                _mentioning(timeline.c.data, needles)).with_for_update()).all() if needles else []
            for entry_id, data in entries:
                session.execute(sa.update(timeline).where(timeline.c.id == entry_id).values(
                    data=_scrub_mentions(data, needles)))
            # The client card's copies of the same calls and e-mails (and notes, tasks).
            client_entries = session.execute(sa.select(
                client_timeline.c.id, client_timeline.c.data).where(
                _mentioning(client_timeline.c.data, needles)).with_for_update()
            ).all() if needles else []
            for entry_id, data in client_entries:
                session.execute(sa.update(client_timeline).where(
                    client_timeline.c.id == entry_id).values(
                    data=_scrub_mentions(data, needles)))
            copies = session.execute(sa.select(tasks.c.id, tasks.c.title, tasks.c.description)
                                     .where(sa.or_(_mentioning(tasks.c.title, needles),
                                                   _mentioning(tasks.c.description, needles),
                                                   tasks.c.external_number.in_(keys["phones"])))
                                     .with_for_update()).all() if needles else []
            for task_id, title, description in copies:
                session.execute(sa.update(tasks).where(tasks.c.id == task_id).values(
                    title=_scrub_mentions(title, needles),
                    description=_scrub_mentions(description, needles), external_number=None))
        return {"service": "deals", "request_id": request_id,
                "erased": {"deals": len(found), "form_submissions": len(forms),
                           "timeline_entries": len(entries),
                           "client_timeline_entries": len(client_entries),
                           "tasks": len(copies)},
                "kept": {"deals": "сделки, этапы, суммы и реквизиты компании (ИНН) лида"}}
