"""Registering finished calls once, matching their numbers to clients, and their effects.

``register(session, call)`` is keyed by ``(pbx, key)``: a call already registered changes nothing
(re-deliveries, replays, reconnects), except that a recording reported after the end fills an
empty one. The external number is matched to a client once per call by the clients' duplicate
check (exact keys), asked as the service's own integration identity; the extension that answered
(or the one that rang) maps to a manager. An unknown inbound number becomes one lead through the
deals service (answered: the manager's; missed: the department's). Missed calls from known
clients become call-back tasks in the deals service from ``call_registered``, not here.
"""

from __future__ import annotations

import logging
import uuid

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_platform.clock import utcnow
from crm_platform.errors import DomainError
from crm_platform.identity import Identity

from .domain.calls import FinishedCall, Ringing
from .models import calls, staff

log = logging.getLogger(__name__)

DEFAULT_SERVICE_USER_ID = "00000000-0000-4000-8000-0000000007e1"


class Registration:
    """Mixin of ``TelephonyService``: needs ``db``, ``outbox``, ``caller``, ``config``,
    ``clients_rpc`` and ``deals_rpc``."""

    def _service_identity(self) -> Identity:
        return Identity(user_id=str(self.config.get("TELEPHONY_SERVICE_USER_ID")
                                    or DEFAULT_SERVICE_USER_ID),
                        role="integration", username="telephony", full_name="Телефония")

    # -- people -----------------------------------------------------------------------------------
    @staticmethod
    def _person_at(session, extension: str | None):
        if not extension:
            return None
        return session.execute(sa.select(staff).where(
            staff.c.extension == extension, staff.c.active).order_by(staff.c.user_id)
            .limit(1)).mappings().first()

    def _manager_of(self, session, call: FinishedCall):
        """(user_id, department_id): the manager who talked (outbound: who dialled), else the
        only extension that rang; the department of the first extension with a manager."""
        person = None
        if call.answered_by:
            person = self._person_at(session, call.answered_by)
        elif len(call.rang) == 1:
            person = self._person_at(session, call.rang[0])
        department = person["department_id"] if person else None
        if department is None:
            for ext in call.rang:
                other = self._person_at(session, ext)
                if other is not None and other["department_id"] is not None:
                    department = other["department_id"]
                    break
        return (person["user_id"] if person else None), department

    # -- matching ---------------------------------------------------------------------------------
    def _match_number(self, e164: str | None) -> dict | None:
        """The client a number belongs to (a blocking match of the duplicate check), or None."""
        if not e164:
            return None
        self.caller.act_as(self._service_identity())
        matches = [m for m in self.clients_rpc.find_duplicates({"phones": [e164]}, similar=False)
                   if m.get("blocking")]
        return matches[0] if matches else None

    def _known_client(self, session, e164: str | None):
        """The client a number was last matched to by a registered call (cheap: for ringing)."""
        if not e164:
            return None
        return session.execute(sa.select(calls.c.client_id).where(
            calls.c.external_number == e164, calls.c.client_id.is_not(None))
            .order_by(calls.c.started_at.desc()).limit(1)).scalar()

    # -- registering ------------------------------------------------------------------------------
    def register(self, session, call: FinishedCall) -> uuid.UUID | None:
        """Store ``call`` and announce it; returns its id, or None when it was registered
        before (then nothing changes but a recording that was missing)."""
        existing = session.execute(sa.select(calls.c.call_id, calls.c.recording).where(
            calls.c.pbx == call.pbx, calls.c.key == call.key)).first()
        if existing is not None:
            if call.recording and not existing.recording:
                session.execute(sa.update(calls).where(calls.c.call_id == existing.call_id)
                                .values(recording=call.recording))
            return None
        user_id, department_id = self._manager_of(session, call)
        match = None
        if call.direction != "internal":
            match = self._match_number(call.external_number)
        client_id = uuid.UUID(match["client_id"]) if match else None
        client_owner = uuid.UUID(match["owner_id"]) if match and match.get("owner_id") else None
        contact_id = _contact_of(match)
        lead_deal_id = None
        if call.direction == "inbound" and client_id is None and call.external_number:
            lead_deal_id = self._lead_for_unknown(call, user_id, department_id)
        call_id = uuid.uuid4()
        inserted = session.execute(pg_insert(calls).values(
            call_id=call_id, pbx=call.pbx, key=call.key, direction=call.direction,
            our_number=call.our_number, external_number=call.external_number,
            external_raw=(call.external_raw or None) and call.external_raw[:100],
            rang=list(call.rang), answered_by=call.answered_by, user_id=user_id,
            department_id=department_id, client_id=client_id, client_owner_id=client_owner,
            contact_id=contact_id,
            lead_deal_id=lead_deal_id, started_at=call.started_at,
            answered_at=call.answered_at, ended_at=call.ended_at,
            duration_seconds=max(0, call.duration_seconds),
            talk_seconds=max(0, call.talk_seconds), disposition=call.disposition,
            recording=call.recording, extra=_jsonable(call.extra), created_at=utcnow(),
        ).on_conflict_do_nothing(index_elements=["pbx", "key"]).returning(calls.c.call_id)
        ).first()
        if inserted is None:                 # another replica registered it meanwhile
            return None
        if call.direction != "internal":
            self.outbox.emit(session, "call_registered", {
                "call_id": call_id, "client_id": client_id, "contact_id": contact_id,
                "user_id": user_id, "direction": call.direction, "answered": call.answered,
                "started_at": call.started_at,
                "duration_seconds": max(0, call.duration_seconds),
                "talk_seconds": max(0, call.talk_seconds),
                "external_number": call.external_number, "department_id": department_id,
                "deal_id": lead_deal_id, "recording_url": call.recording,
                "our_number": call.our_number,
            })
        return call_id

    def _lead_for_unknown(self, call: FinishedCall, user_id, department_id) -> uuid.UUID | None:
        """One lead for an unknown inbound number: the answering manager's, else the
        department's (the deals service finds a repeat contact's open lead itself)."""
        if call.answered and user_id is None:
            return None
        if not call.answered and department_id is None:
            return None
        self.caller.act_as(self._service_identity())
        data = {"source": "call", "lead": {"phone": call.external_number},
                "source_detail": {"kind": "call", "our_number": call.our_number}}
        try:
            if call.answered:
                result = self.deals_rpc.create_deal(data, owner_id=str(user_id))
            else:
                result = self.deals_rpc.create_deal(data, department_id=str(department_id))
        except DomainError as exc:
            # A deliberate refusal (no such owner, a department without a head): the call is
            # registered all the same; anything else fails the registration, to be retried.
            log.warning("no lead for call %s/%s: %s %s", call.pbx, call.key,
                        type(exc).__name__, exc)
            return None
        deal = (result or {}).get("deal") or {}
        deal_id = deal.get("deal_id") or deal.get("id")
        return uuid.UUID(str(deal_id)) if deal_id else None

    # -- ringing ----------------------------------------------------------------------------------
    def announce_ringing(self, session, ringing: Ringing) -> None:
        person = self._person_at(session, ringing.extension)
        self.outbox.emit(session, "call_ringing", {
            "call_key": ringing.key, "pbx": ringing.pbx, "extension": ringing.extension,
            "user_id": person["user_id"] if person else None,
            "external_number": ringing.external_number,
            "client_id": self._known_client(session, ringing.external_number),
            "direction": ringing.direction, "at": ringing.at or utcnow(),
        })


def _contact_of(match: dict | None) -> uuid.UUID | None:
    """The contact person the matched phone belongs to (None: the client's own number)."""
    for reason in (match or {}).get("reasons", ()):
        if reason.get("reason") == "phone" and reason.get("contact_id"):
            return uuid.UUID(reason["contact_id"])
    return None


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
