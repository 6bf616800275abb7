import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_platform.contracts import (
    ContractError,
    all_contracts,
    contract_for,
    make_envelope,
    parse_envelope,
)


def user_payload(**overrides):
    payload = {"user_id": uuid.uuid4(), "username": "m.ural.1", "full_name": "Иванов Иван",
               "email": None, "role": "manager", "department_id": uuid.uuid4(),
               "regions": ["RU-SVE"], "extension": "101", "mailbox": None, "active": True}
    payload.update(overrides)
    return payload


def test_an_envelope_round_trips_through_its_contract():
    payload = user_payload()
    envelope = make_envelope("directory", "user_changed", payload)

    assert envelope["type"] == "user_changed" and envelope["source"] == "directory"
    assert envelope["version"] == 1
    assert envelope["payload"]["user_id"] == str(payload["user_id"])  # plain JSON on the wire
    event = parse_envelope(envelope, handler="telephony.handle_user_changed")
    assert event.event_id == uuid.UUID(envelope["event_id"])
    assert event.payload["user_id"] == payload["user_id"]
    assert event.payload["department_id"] == payload["department_id"]
    assert event.occurred_at.tzinfo is not None
    assert event.handler == "telephony.handle_user_changed"


def test_the_producer_cannot_emit_a_payload_that_breaks_the_contract():
    with pytest.raises(ContractError) as caught:
        make_envelope("directory", "user_changed", user_payload(role="boss"))
    assert "role" in caught.value.errors


def test_an_unknown_event_type_has_no_contract():
    with pytest.raises(ContractError):
        make_envelope("directory", "user_exploded", {})


@pytest.mark.parametrize("body, expected", [
    ("not a dict", "not a JSON object"),
    ({"type": "user_changed"}, "malformed event envelope"),
])
def test_the_consumer_refuses_a_malformed_envelope(body, expected):
    with pytest.raises(ContractError, match=expected):
        parse_envelope(body)


def test_the_consumer_refuses_a_payload_that_breaks_the_contract():
    envelope = make_envelope("directory", "user_changed", user_payload())
    envelope["payload"]["active"] = "perhaps"
    with pytest.raises(ContractError) as caught:
        parse_envelope(envelope)
    assert "active" in caught.value.errors


def test_consumers_ignore_fields_added_by_a_newer_producer():
    envelope = make_envelope("directory", "user_changed", user_payload())
    envelope["payload"]["nickname"] = "Ваня"
    envelope["trace"] = {"anything": 1}
    assert "nickname" not in parse_envelope(envelope).payload


def test_every_contract_has_a_version_and_a_schema():
    for (source, event_type), (schema, version) in all_contracts().items():
        assert version >= 1
        assert contract_for(source, event_type) == (schema, version)


@given(st.text(min_size=1, max_size=300), st.lists(st.text(max_size=10), max_size=5))
def test_department_payloads_survive_the_wire(name, regions):
    payload = {"department_id": uuid.uuid4(), "name": name, "regions": regions,
               "head_user_id": None}
    event = parse_envelope(make_envelope(
        "directory", "department_changed", payload,
        occurred_at=datetime(2026, 11, 27, tzinfo=UTC)))
    assert event.payload == payload
