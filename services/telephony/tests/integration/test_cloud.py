"""Mango Office and Zadarma webhooks through the telephony RPCs (as the gateway will call them):
the three sample calls each, a duplicate re-delivery, a forged signature, a wrong sender IP."""

from __future__ import annotations

from datetime import timedelta

import pytest

from crm_platform.clock import clock, utcnow
from crm_platform.db import SessionFactory
from crm_platform.errors import Forbidden, Unauthenticated
from crm_platform.testing import wait_for
from services.telephony.tests import cloud_samples as cs
from services.telephony.webhooks import forget_old_notifications

from .conftest import MANGO_KEY, MANGO_SALT, ZADARMA_SECRET

pytestmark = pytest.mark.integration

KNOWN = "+" + cs.KNOWN_CONTACT
UNKNOWN = "+" + cs.UNKNOWN_CALLER
OUTBOUND = "+74951112233"


def check_effects(crm, pbx: str, keys: dict) -> None:
    org = crm.org
    answered, missed, outbound = (crm.call(keys[k]) for k in ("answered", "missed", "outbound"))
    assert {answered["pbx"], missed["pbx"], outbound["pbx"]} == {pbx}
    assert answered["external_number"] == UNKNOWN and answered["client_id"] is None
    assert answered["answered_by"] == "101" and str(answered["user_id"]) == org.id("m.ural.1")
    assert answered["talk_seconds"] == 95
    assert bool(answered["recording"]) is (pbx == "zadarma")     # Mango's sample has none
    assert answered["lead_deal_id"] is not None
    assert missed["external_number"] == KNOWN and missed["answered_by"] is None
    assert str(missed["client_id"]) == crm.known_client_id
    assert outbound["direction"] == "outbound" and outbound["external_number"] == OUTBOUND
    assert str(outbound["user_id"]) == org.id("m.ural.2") and outbound["talk_seconds"] == 42
    events = crm.registered_events()
    assert len(events) == 3
    assert {(e["direction"], e["answered"], e["external_number"]) for e in events} == {
        ("inbound", True, UNKNOWN), ("inbound", False, KNOWN), ("outbound", True, OUTBOUND)}
    leads = wait_for(crm.call_leads, message="the lead of the unknown caller")
    assert len(leads) == 1 and str(leads[0]["owner_id"]) == org.id("m.ural.1")
    tasks = wait_for(crm.callback_tasks, message="the call-back task")
    assert len(tasks) == 1 and str(tasks[0]["client_id"]) == crm.known_client_id
    wait_for(lambda: crm.deals_sql.scalar(
        "SELECT count(*) FROM processed_events WHERE consumer LIKE '%call_registered'") == 3,
        message="deals to handle the three calls")


def mango_send(crm, samples) -> list[dict]:
    answers = []
    for sample in samples:
        for leg in sample.legs:
            answers.append(crm.telephony.mango_webhook(
                "call", cs.mango_form(leg, MANGO_KEY, MANGO_SALT)))
        answers.append(crm.telephony.mango_webhook(
            "summary", cs.mango_form(sample.summary, MANGO_KEY, MANGO_SALT)))
    return answers


def test_mango_calls_duplicates_and_a_forged_signature(start_crm):
    crm = start_crm(KNOWN)
    samples = [cs.mango_answered_inbound(), cs.mango_missed_queue(), cs.mango_outbound()]
    answers = mango_send(crm, samples)
    assert not any(a["duplicate"] for a in answers)
    keys = dict(zip(("answered", "missed", "outbound"), (s.entry_id for s in samples), strict=True))
    check_effects(crm, "mango", keys)
    ringing = crm.ringing_events()
    assert [(r["extension"], r["direction"]) for r in ringing] == [
        ("101", "inbound"), ("101", "inbound"), ("102", "inbound"), ("102", "outbound")]
    assert ringing[0]["user_id"] == crm.org.id("m.ural.1")
    assert ringing[1]["client_id"] is None       # not matched yet when it rang: no call before
    before = crm.snapshot()

    again = mango_send(crm, samples)             # Mango re-delivers everything
    assert all(a["duplicate"] for a in again)
    assert crm.snapshot() == before

    forged = cs.mango_answered_inbound(cs.T0 + 86400)._replace(entry_id="forged")
    summary = {**forged.summary, "entry_id": "forged"}
    for form in (cs.mango_form(summary, MANGO_KEY, "wrong-salt"),
                 cs.mango_form(summary, "wrong-key", MANGO_SALT),
                 {**cs.mango_form(summary, MANGO_KEY, MANGO_SALT), "sign": ""}):
        with pytest.raises(Unauthenticated) as error:
            crm.telephony.mango_webhook("summary", form)
        assert error.value.code == "bad_signature"
    with pytest.raises(Unauthenticated):
        crm.telephony.mango_webhook("call", cs.mango_form(forged.legs[0], MANGO_KEY, "x"))
    assert crm.snapshot() == before


def zadarma_send(crm, events, ip=cs.ZADARMA_IP) -> list[dict]:
    answers = []
    for form, headers in cs.zadarma_requests(events, ZADARMA_SECRET):
        answers.append(crm.telephony.zadarma_webhook(form, headers["Signature"], ip))
    return answers


def test_zadarma_calls_duplicates_forgery_and_wrong_ip(start_crm):
    crm = start_crm(KNOWN)
    calls = [cs.zadarma_answered_inbound(), cs.zadarma_missed_queue(), cs.zadarma_outbound()]
    for events in calls:
        answers = zadarma_send(crm, events)
        assert not any(a["duplicate"] for a in answers)
    keys = dict(zip(("answered", "missed", "outbound"),
                    (events[0][1]["pbx_call_id"] for events in calls), strict=True))
    check_effects(crm, "zadarma", keys)
    missed = crm.call(keys["missed"])
    assert missed["rang"] == ["101", "102"] and missed["user_id"] is None
    assert str(missed["department_id"]) == str(crm.org.departments["ural"])
    assert crm.tel_sql.count("zadarma_events") == sum(len(events) for events in calls)
    before = crm.snapshot()

    for events in calls:                          # re-delivered
        assert all(a["duplicate"] for a in zadarma_send(crm, events))
    assert crm.snapshot() == before

    late = cs.zadarma_answered_inbound(cs.T0 + 86400)
    late = [(name, {**fields, "pbx_call_id": "in_forged"}) for name, fields in late]
    form, headers = cs.zadarma_request(*late[0], secret="not-the-secret")
    with pytest.raises(Unauthenticated) as error:
        crm.telephony.zadarma_webhook(form, headers["Signature"], cs.ZADARMA_IP)
    assert error.value.code == "bad_signature"
    with pytest.raises(Unauthenticated):
        crm.telephony.zadarma_webhook(form, None, cs.ZADARMA_IP)
    form, headers = cs.zadarma_request(*late[0], secret=ZADARMA_SECRET,
                                       order=("caller_id", "call_start"))
    with pytest.raises(Unauthenticated):
        crm.telephony.zadarma_webhook(form, headers["Signature"], cs.ZADARMA_IP)
    form, headers = cs.zadarma_request(*late[0], secret=ZADARMA_SECRET)
    for ip in ("203.0.113.7", None, "185.45.152.44"):
        with pytest.raises(Forbidden) as error:
            crm.telephony.zadarma_webhook(form, headers["Signature"], ip)
        assert error.value.code == "ip_not_allowed"
    assert crm.snapshot() == before
    # the right request from the right address is taken
    assert crm.telephony.zadarma_webhook(form, headers["Signature"], "185.45.152.41")["ok"]


    # a missed call from an unknown number: one lead for the department of the first extension
    missed_unknown = [(name, {**fields, "pbx_call_id": "in_unknown_missed",
                              "caller_id": "89260001122"})
                      for name, fields in cs.zadarma_missed_queue(cs.T0 + 7 * 3600)]
    zadarma_send(crm, missed_unknown)
    row = crm.call("in_unknown_missed")
    assert row["client_id"] is None and row["lead_deal_id"] is not None
    lead = crm.deals_sql.rows("SELECT * FROM deals WHERE id = :d", d=row["lead_deal_id"])[0]
    assert lead["source"] == "call" and lead["lead"]["phone"] == "+79260001122"
    assert str(lead["owner_id"]) == crm.org.id("head.ural")


def test_seen_notifications_are_forgotten_after_the_dedup_window(start_crm):
    crm = start_crm(KNOWN)
    mango_send(crm, [cs.mango_answered_inbound()])
    zadarma_send(crm, cs.zadarma_answered_inbound())
    legs, zadarma = crm.tel_sql.count("mango_legs"), crm.tel_sql.count("zadarma_events")
    assert legs > 0 and zadarma > 0
    sessions = SessionFactory(crm.tel_sql.engine)
    with sessions.session() as session:               # within the window: kept
        assert forget_old_notifications(session, 14) == 0
    clock.travel_to(utcnow() + timedelta(days=15))     # (the clock is reset after each test)
    with sessions.session() as session:
        assert forget_old_notifications(session, 14) == legs + zadarma
    assert crm.tel_sql.count("mango_legs") == crm.tel_sql.count("zadarma_events") == 0
    assert crm.tel_sql.count("calls") == 2            # the calls themselves stay
