import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql

from crm_platform.errors import ValidationFailed
from services.clients.domain.segments import (
    Condition,
    Group,
    compile_filter,
    derive_status,
    months_before,
    parse_filter,
    period_bounds,
)
from services.clients.models import clients, erp_documents

MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def sql(raw) -> str:
    condition = compile_filter(parse_filter(raw), clients, erp_documents, NOW, MSK)
    return str(condition.compile(dialect=postgresql.dialect(),
                                 compile_kwargs={"literal_binds": True}))


def refused(raw) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        parse_filter(raw)
    return caught.value


# -- parsing and validation ---------------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, {}, []])
def test_an_empty_filter_means_everyone(raw):
    assert parse_filter(raw) is None
    assert sql(raw) == "true"


def test_a_list_is_all_of_its_conditions():
    node = parse_filter([{"field": "status", "op": "eq", "value": "dormant"},
                         {"field": "region", "op": "in", "value": ["RU-SVE", "RU-TA"]}])
    assert node == Group("all", (Condition("status", "eq", "dormant"),
                                 Condition("region", "in", ("RU-SVE", "RU-TA"))))


def test_aliases_name_the_moment_fields():
    node = parse_filter({"field": "last_interaction", "op": "older_than_days", "value": 30})
    assert node == Condition("last_interaction_at", "older_than_days", 30)


def test_an_unknown_field_is_named():
    error = refused({"field": "salary", "op": "eq", "value": "1"})
    assert "salary" in error.fields and "salary" in error.detail


def test_an_unknown_operator_is_named_with_its_field():
    error = refused({"all": [{"field": "status", "op": "eq", "value": "active"},
                             {"field": "inn", "op": "like", "value": "77%"}]})
    assert list(error.fields) == ["inn"]
    assert "like" in error.fields["inn"][0]


@pytest.mark.parametrize("raw, field", [
    ({"field": "status", "op": "eq", "value": "sleeping"}, "status"),
    ({"field": "status", "op": "contains", "value": "act"}, "status"),
    ({"field": "owner_id", "op": "eq", "value": "not-a-uuid"}, "owner_id"),
    ({"field": "region", "op": "in", "value": []}, "region"),
    ({"field": "region", "op": "in", "value": "RU-SVE"}, "region"),
    ({"field": "segment", "op": "eq", "value": ""}, "segment"),
    ({"field": "segment", "op": "eq", "value": 5}, "segment"),
    ({"field": "last_invoice", "op": "older_than_months", "value": -1}, "last_invoice"),
    ({"field": "last_invoice", "op": "older_than_months", "value": "24"}, "last_invoice"),
    ({"field": "last_invoice", "op": "older_than_days", "value": True}, "last_invoice"),
    ({"field": "created_at", "op": "before", "value": "вчера"}, "created_at"),
    ({"field": "revenue", "op": "gte", "value": "много"}, "revenue"),
    ({"field": "revenue", "op": "gte", "value": "Infinity"}, "revenue"),
    ({"field": "revenue", "op": "gte", "value": "1e30"}, "revenue"),
    ({"field": "revenue", "op": "gte", "value": 1, "from": "2025-02-01", "to": "2025-01-01"},
     "revenue"),
    ({"field": "revenue", "op": "gte", "value": 1, "from": "2025-01-01"}, "revenue"),
    ({"field": "revenue", "op": "gte", "value": 1, "last_months": 0}, "revenue"),
    ({"field": "revenue", "op": "present"}, "revenue"),
    ({"field": "phones", "op": "eq", "value": "+7"}, "phones"),
    ({"field": "inn", "op": "present", "from": "2025-01-01"}, "inn"),
    ({"field": "inn", "op": "present", "extra": 1}, "inn"),
])
def test_bad_conditions_are_refused_naming_the_field(raw, field):
    assert field in refused(raw).fields


@pytest.mark.parametrize("raw", [
    "status = active",
    {"all": []},
    {"any": {"field": "inn", "op": "present"}},
    {"all": [{"field": "inn", "op": "present"}], "field": "x"},
    {"op": "eq", "value": "x"},
])
def test_malformed_structure_is_refused(raw):
    error = refused(raw)
    assert error.fields and error.code == "invalid_filter"


def test_depth_and_size_are_bounded():
    deep = {"field": "inn", "op": "present"}
    for _ in range(10):
        deep = {"not": deep}
    assert "filter" in refused(deep).fields
    assert "filter" in refused([{"field": "inn", "op": "present"}] * 101).fields


def test_money_values_are_decimals_and_periods_default_to_a_year():
    node = parse_filter({"field": "revenue", "op": "gte", "value": "1 500 000,5"})
    assert node.value == Decimal("1500000.50") and node.period == ("last_months", 12)
    node = parse_filter({"field": "invoiced", "op": "lt", "value": 10,
                         "from": "2025-01-01", "to": "2025-12-31"})
    assert node.period == (date(2025, 1, 1), date(2025, 12, 31))


# -- SQL ------------------------------------------------------------------------------------------


def test_card_fields_compile_to_plain_conditions():
    text = sql({"all": [{"field": "status", "op": "in", "value": ["active", "dormant"]},
                        {"field": "inn", "op": "present"},
                        {"field": "phones", "op": "absent"},
                        {"field": "owner_id", "op": "absent"}]})
    assert "clients.status IN ('active', 'dormant')" in text
    assert "clients.inn IS NOT NULL AND clients.inn != ''" in text
    assert "cardinality(clients.phones) = 0" in text
    assert "clients.owner_id IS NULL" in text


def test_negations_keep_clients_with_an_empty_field():
    assert sql({"field": "segment", "op": "ne", "value": "опт"}) == \
        "clients.segment != 'опт' OR clients.segment IS NULL"
    text = sql({"not": {"field": "segment", "op": "eq", "value": "опт"}})
    assert text == "NOT coalesce(clients.segment = 'опт', false)"


def test_contains_escapes_like_wildcards():
    condition = compile_filter(parse_filter(
        {"field": "short_name", "op": "contains", "value": "100%_металл"}),
        clients, erp_documents, NOW, MSK)
    assert condition.right.value == "%100\\%\\_металл%"
    assert "ESCAPE" in sql({"field": "short_name", "op": "contains", "value": "x"})


def test_no_interaction_for_n_days_includes_never():
    text = sql({"field": "last_interaction", "op": "older_than_days", "value": 30})
    assert text.startswith("clients.last_interaction_at IS NULL OR clients.last_interaction_at <")
    assert "2026-10-28 10:00:00+00:00" in text


def test_no_invoice_for_n_months_uses_calendar_months():
    text = sql({"field": "last_invoice", "op": "older_than_months", "value": 24})
    assert "clients.last_invoice_at IS NULL" in text and "2024-11-27 10:00:00+00:00" in text


def test_dates_are_whole_days_of_the_business_time_zone():
    before = sql({"field": "created_at", "op": "before", "value": "2025-03-01"})
    assert before == "clients.created_at < '2025-03-01 00:00:00+03:00'"
    after = sql({"field": "created_at", "op": "after", "value": "2025-03-01"})
    assert after == "clients.created_at >= '2025-03-02 00:00:00+03:00'"
    exact = sql({"field": "created_at", "op": "after", "value": "2025-03-01T12:00:00+00:00"})
    assert exact == "clients.created_at > '2025-03-01 12:00:00+00:00'"


def test_revenue_is_the_sum_of_active_shipments_in_the_period():
    text = sql({"field": "revenue", "op": "gte", "value": "1000",
                "from": "2025-01-01", "to": "2025-12-31"})
    assert "sum(erp_documents.amount)" in text and "erp_documents.kind = 'shipment'" in text
    assert "erp_documents.active IS true" in text
    assert "erp_documents.client_id = clients.id" in text
    assert "'2025-01-01 00:00:00+03:00'" in text and "'2026-01-01 00:00:00+03:00'" in text
    assert text.endswith(">= 1000.00")
    assert "erp_documents.kind = 'invoice'" in sql(
        {"field": "invoiced", "op": "lte", "value": 5, "last_months": 3})


# -- time -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("moment, months, expected", [
    (datetime(2026, 11, 27, 10, tzinfo=UTC), 24, datetime(2024, 11, 27, 10, tzinfo=UTC)),
    (datetime(2026, 3, 31, tzinfo=UTC), 1, datetime(2026, 2, 28, tzinfo=UTC)),
    (datetime(2024, 3, 31, tzinfo=UTC), 1, datetime(2024, 2, 29, tzinfo=UTC)),
    (datetime(2026, 1, 15, tzinfo=UTC), 13, datetime(2024, 12, 15, tzinfo=UTC)),
    (datetime(2026, 1, 15, tzinfo=UTC), 0, datetime(2026, 1, 15, tzinfo=UTC)),
])
def test_months_before(moment, months, expected):
    assert months_before(moment, months) == expected


def test_period_bounds_cover_the_last_day():
    start, end = period_bounds(date(2025, 1, 1), date(2025, 1, 31), MSK)
    assert start == datetime(2025, 1, 1, tzinfo=MSK) and end == datetime(2025, 2, 1, tzinfo=MSK)


# -- the dormant rule -----------------------------------------------------------------------------

OLD = NOW - timedelta(days=800)      # beyond 24 months
RECENT = NOW - timedelta(days=100)


@pytest.mark.parametrize("status, last_invoice, created, expected", [
    ("active", OLD, OLD, "dormant"),
    ("active", RECENT, OLD, "active"),
    ("active", None, OLD, "dormant"),          # active, never invoiced, known for long
    ("active", None, RECENT, "active"),        # freshly entered: its history may come later
    ("dormant", RECENT, OLD, "active"),        # invoiced again
    ("dormant", OLD, OLD, "dormant"),
    ("dormant", None, RECENT, "dormant"),
    ("potential", None, OLD, "potential"),     # never bought: stays a prospect
    ("potential", OLD, OLD, "dormant"),        # bought once, long ago
    ("potential", RECENT, RECENT, "active"),
    ("lost", RECENT, OLD, "lost"),             # a person's judgement, never automatic
    ("lost", OLD, OLD, "lost"),
])
def test_derive_status(status, last_invoice, created, expected):
    assert derive_status(status, last_invoice, created, NOW, 24) == expected


def test_the_period_boundary_is_inclusive():
    edge = months_before(NOW, 24)
    assert derive_status("active", edge, OLD, NOW, 24) == "active"
    assert derive_status("active", edge - timedelta(seconds=1), OLD, NOW, 24) == "dormant"


@given(st.sampled_from(["potential", "active", "dormant", "lost"]),
       st.one_of(st.none(), st.integers(0, 2000)), st.integers(0, 2000))
def test_derive_status_is_stable(status, invoice_days, created_days):
    last_invoice = NOW - timedelta(days=invoice_days) if invoice_days is not None else None
    created = NOW - timedelta(days=created_days)
    once = derive_status(status, last_invoice, created, NOW, 24)
    assert derive_status(once, last_invoice, created, NOW, 24) == once


def test_ids_parse_to_uuids():
    owner = uuid.uuid4()
    node = parse_filter({"field": "owner_id", "op": "in", "value": [str(owner)]})
    assert node.value == (owner,)


# -- the contracts of the facts consumed here ------------------------------------------------


def test_erp_document_contract_money_and_defaults():
    from crm_platform.contracts import make_envelope, parse_envelope

    envelope = make_envelope("erp_bridge", "erp_shipment_changed", {
        "document_guid": uuid.uuid4(), "document_version": "AAAAAAAAAAE=", "revision": 2,
        "client_id": None,
        "number": "РТУ-1", "document_date": NOW, "amount": Decimal("1234.5")})
    assert envelope["payload"]["amount"] == "1234.50"   # a string on the wire, never a float
    assert envelope["payload"]["currency"] == "RUB"
    payload = parse_envelope(envelope).payload
    assert payload["amount"] == Decimal("1234.50") and payload["counterparty_guid"] is None


@pytest.mark.parametrize("event_type", [
    f"erp_{kind}_{state}" for kind in ("order", "invoice", "shipment", "payment")
    for state in ("posted", "changed", "unposted", "deleted")])
def test_every_erp_document_event_has_a_contract(event_type):
    from crm_platform.contracts import contract_for

    schema, version = contract_for("erp_bridge", event_type)
    assert version == 1 and "document_guid" in schema().fields


def test_facts_contracts_refuse_bad_payloads():
    from crm_platform.contracts import ContractError, make_envelope

    with pytest.raises(ContractError) as caught:
        make_envelope("telephony", "call_registered", {
            "call_id": uuid.uuid4(), "direction": "sideways", "answered": True,
            "started_at": NOW, "duration_seconds": 5})
    assert "direction" in caught.value.errors
    with pytest.raises(ContractError) as caught:
        make_envelope("erp_bridge", "erp_invoice_posted", {
            "document_guid": uuid.uuid4(), "document_version": "1", "number": "1",
            "document_date": NOW, "amount": Decimal("NaN")})
    assert "amount" in caught.value.errors
    envelope = make_envelope("clients", "reactivation_call_requested", {
        "campaign_id": uuid.uuid4(), "campaign_name": "Осень", "client_id": uuid.uuid4(),
        "owner_id": None, "due_at": NOW})
    assert envelope["payload"]["owner_id"] is None
