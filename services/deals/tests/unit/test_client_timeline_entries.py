"""The client feed's entries built from events and deal timeline rows (no database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from crm_platform.errors import ValidationFailed
from crm_platform.identity import Identity
from services.deals import client_timeline as ct

CALL = uuid.uuid4()
DEAL = uuid.uuid4()
CLIENT = uuid.uuid4()
AT = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)


def test_an_inbound_call_is_from_the_client_to_our_line_with_its_recording():
    data = ct.call_data({"call_id": CALL, "direction": "inbound", "answered": False,
                         "external_number": "+73431234567", "our_number": "+73432000000",
                         "recording_url": "https://pbx/rec.wav", "duration_seconds": 5})
    assert (data["from"], data["to"], data["status"]) == ("+73431234567", "+73432000000",
                                                          "missed")
    assert data["has_recording"] is True
    assert data["recording"] == f"/api/v1/calls/{CALL}/recording"


def test_an_unanswered_outbound_call_without_recording():
    data = ct.call_data({"call_id": CALL, "direction": "outbound", "answered": False,
                         "external_number": "+73431234567", "our_number": None})
    assert (data["from"], data["to"], data["status"]) == (None, "+73431234567", "no_answer")
    assert (data["has_recording"], data["recording"]) == (False, None)


def test_entries_are_plain_json_with_iso_times():
    e = ct.entry(str(CLIENT), AT, "erp", uuid.uuid4(), {
        "amount": Decimal("10.50"), "date": AT, "guid": CALL, "old": "2026-12-07 10:00:00+03:00"})
    assert e["client_id"] == CLIENT and e["deal_id"] is None
    assert e["data"] == {"amount": "10.50", "date": "2026-12-07T07:00:00+00:00",
                         "guid": str(CALL), "old": "2026-12-07T10:00:00+03:00"}
    assert len(ct.entry(CLIENT, AT, "note", "x" * 300, {})["ref"]) == 200


def test_deal_scoped_refs_are_prefixed_with_the_deal_and_global_ones_kept():
    stage = ct.deal_entry(CLIENT, {"deal_id": DEAL, "at": AT, "kind": "stage",
                                   "ref": "2026-12-07T07:00:00+00:00:new",
                                   "data": {"to_stage": "new"}})
    assert stage["ref"] == f"{DEAL}:2026-12-07T07:00:00+00:00:new"
    assert stage["deal_id"] == DEAL
    call = ct.deal_entry(CLIENT, {"deal_id": DEAL, "at": AT, "kind": "call", "ref": str(CALL),
                                  "data": {"call_id": str(CALL), "direction": "outbound",
                                           "answered": True, "external_number": "+7343"}})
    assert call["ref"] == str(CALL) and call["data"]["to"] == "+7343"
    erp = ct.deal_entry(CLIENT, {"deal_id": DEAL, "at": AT, "kind": "erp", "ref": "g",
                                 "data": {"number": "1"}})
    assert erp["data"]["date"] == AT.isoformat()


def test_kinds_are_checked():
    assert ct.parse_kinds(None) is None
    assert ct.parse_kinds("call, email") == ["call", "email"]
    assert ct.parse_kinds(["note"]) == ["note"]
    with pytest.raises(ValidationFailed) as caught:
        ct.parse_kinds(["call", "sms"])
    assert "kinds" in caught.value.fields
    with pytest.raises(ValidationFailed):
        ct.parse_kinds(42)


def person(role, department=None, user=None):
    return Identity(user_id=str(user or uuid.uuid4()), role=role,
                    department_id=str(department) if department else None)


def test_who_may_read_a_clients_feed():
    ural, volga, owner = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    owned = {"owner_id": owner, "department_id": ural}
    pool = {"owner_id": None, "department_id": ural}
    assert ct.may_read(person("manager", ural, owner), owned)
    assert not ct.may_read(person("manager", ural), owned)
    assert ct.may_read(person("sales_head", ural), owned)
    assert not ct.may_read(person("sales_head", volga), owned)
    assert ct.may_read(person("director"), owned) and ct.may_read(person("admin"), owned)
    assert ct.may_read(person("manager", ural), pool)
    assert not ct.may_read(person("manager", volga), pool)
