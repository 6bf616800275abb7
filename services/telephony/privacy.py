"""Personal data requests (152-FZ, ``crm_platform.privacy``) for telephony: the calls with the
person's numbers. Erasure replaces the number (and its raw form) with the marker, drops the
recording link and the PBX's extra fields, and deletes the raw Zadarma webhook forms of those
calls; the call itself (time, direction, duration, manager) stays for the reports."""

from __future__ import annotations

import sqlalchemy as sa

from crm_platform.privacy import MARKER, ROLES, normalise_person
from crm_platform.rpc import rpc

from .models import calls, zadarma_events


def _iso(value):
    return value.isoformat() if value is not None else None


class PrivacyEntrypoints:
    @rpc
    def personal_data_export(self, person: dict) -> dict:
        """The calls with the person's phone numbers (admin, director, integration)."""
        self.caller.require(*ROLES)
        keys = normalise_person(person)
        rows = []
        if keys["phones"]:
            with self.db.session() as session:
                rows = session.execute(sa.select(calls).where(
                    calls.c.external_number.in_(keys["phones"]))
                    .order_by(calls.c.started_at)).mappings().all()
        return {"service": "telephony", "sections": {"calls": [{
            "call_id": str(r["call_id"]), "direction": r["direction"],
            "our_number": r["our_number"], "number": r["external_number"],
            "started_at": _iso(r["started_at"]), "talk_seconds": r["talk_seconds"],
            "disposition": r["disposition"], "recording": r["recording"],
            "client_id": str(r["client_id"]) if r["client_id"] else None} for r in rows]}}

    @rpc
    def personal_data_erase(self, person: dict, request_id: str) -> dict:
        """Anonymise the calls with the person's numbers (see the module doc)."""
        self.caller.require(*ROLES)
        keys = normalise_person(person)
        erased = 0
        if keys["phones"]:
            with self.db.session() as session:
                matched = session.execute(
                    sa.update(calls).where(calls.c.external_number.in_(keys["phones"]))
                    .values(external_number=MARKER, external_raw=MARKER, recording=None,
                            extra={}).returning(calls.c.pbx, calls.c.key)).all()
                erased = len(matched)
                zadarma = [key for pbx, key in matched if pbx == "zadarma"]
                if zadarma:
                    session.execute(sa.delete(zadarma_events).where(
                        zadarma_events.c.pbx_call_id.in_(zadarma)))
        return {"service": "telephony", "request_id": request_id, "erased": {"calls": erased},
                "kept": {"calls": "время, направление и длительность звонков (без номера) — "
                                  "для отчётов"}}
