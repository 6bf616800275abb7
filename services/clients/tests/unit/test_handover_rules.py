"""The pure rules of hand-over and merge: filters, receivers, round-robin spreading, and what a
survivor's card becomes."""

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_platform.errors import Conflict, ValidationFailed
from services.clients.domain.handover import (
    counts_per_receiver,
    merge_cards,
    merge_refusal,
    merged_status,
    receiver_ids,
    spread,
    transfer_filters,
    union_addresses,
    union_values,
)

GIVER = uuid.uuid4()
A, B, C = (uuid.uuid4() for _ in range(3))


# --- filters ------------------------------------------------------------------------------------

def test_filters_single_values_become_lists():
    assert transfer_filters({"status": "active", "region": ["RU-SVE", "RU-CHE"]}) == {
        "status": ["active"], "region": ["RU-SVE", "RU-CHE"]}


def test_no_filters_and_empty_values_filter_nothing():
    assert transfer_filters(None) == {}
    assert transfer_filters({}) == {}
    assert transfer_filters({"status": [], "segment": None, "region": ""}) == {}


def test_filter_values_are_deduplicated():
    assert transfer_filters({"segment": ["A", "A", " B "]}) == {"segment": ["A", "B"]}


def test_unknown_filter_and_status_are_refused():
    with pytest.raises(ValidationFailed) as caught:
        transfer_filters({"owner": "x", "status": ["active", "sleeping"]})
    assert set(caught.value.fields) == {"filters.owner", "filters.status"}
    assert "sleeping" in caught.value.fields["filters.status"][0]


def test_filters_must_be_an_object():
    with pytest.raises(ValidationFailed) as caught:
        transfer_filters(["active"])
    assert "filters" in caught.value.fields


# --- receivers ----------------------------------------------------------------------------------

def test_one_receiver_or_several_in_order_without_repeats():
    assert receiver_ids(str(A), GIVER) == [A]
    assert receiver_ids([str(B), str(A), str(B)], GIVER) == [B, A]
    assert receiver_ids((A, C), GIVER) == [A, C]


@pytest.mark.parametrize("value", [None, "", [], [None]])
def test_no_receiver_is_refused(value):
    with pytest.raises(ValidationFailed) as caught:
        receiver_ids(value, GIVER)
    assert "to_user_ids" in caught.value.fields


def test_bad_receiver_id_is_refused():
    with pytest.raises(ValidationFailed) as caught:
        receiver_ids([str(A), "not-a-uuid"], GIVER)
    assert "not-a-uuid" in caught.value.fields["to_user_ids"][0]


def test_the_giver_cannot_receive():
    with pytest.raises(ValidationFailed) as caught:
        receiver_ids([str(A), str(GIVER)], GIVER)
    assert "to_user_ids" in caught.value.fields


# --- spreading ----------------------------------------------------------------------------------

def test_spread_is_round_robin_in_the_given_order():
    assignment = spread(["c1", "c2", "c3", "c4", "c5"], [A, B])
    assert assignment == [("c1", A), ("c2", B), ("c3", A), ("c4", B), ("c5", A)]
    assert counts_per_receiver(assignment, [A, B]) == {A: 3, B: 2}


def test_one_receiver_gets_everything():
    assignment = spread(list(range(4)), [C])
    assert counts_per_receiver(assignment, [C]) == {C: 4}


def test_fewer_clients_than_receivers_leaves_some_with_none():
    assignment = spread(["c1"], [A, B, C])
    assert counts_per_receiver(assignment, [A, B, C]) == {A: 1, B: 0, C: 0}


def test_nothing_to_spread():
    assert spread([], [A]) == []
    assert counts_per_receiver([], [A, B]) == {A: 0, B: 0}


def test_spread_needs_a_receiver():
    with pytest.raises(ValueError):
        spread([1], [])


@given(n_items=st.integers(min_value=0, max_value=300), n_receivers=st.integers(1, 12))
def test_spread_is_even_and_complete(n_items, n_receivers):
    items = list(range(n_items))
    receivers = [f"r{i}" for i in range(n_receivers)]
    assignment = spread(items, receivers)
    assert [item for item, _ in assignment] == items          # every client, once, in order
    counts = counts_per_receiver(assignment, receivers)
    assert sum(counts.values()) == n_items
    assert max(counts.values()) - min(counts.values()) <= 1
    # The earlier receivers get the extra ones.
    assert list(counts.values()) == sorted(counts.values(), reverse=True)


# --- merge refusals -----------------------------------------------------------------------------

def card(**fields):
    base = {"id": uuid.uuid4(), "short_name": "ООО «Ромашка»", "full_name": None,
            "legal_form": "ООО", "inn": None, "kpp": None, "ogrn": None, "region": None,
            "addresses": [], "phones": [], "emails": [], "website": None, "industry": None,
            "segment": None, "status": "potential", "source": None, "erp_partner_guid": None,
            "erp_counterparty_guid": None, "last_interaction_at": None, "last_invoice_at": None,
            "merged_into": None}
    base.update(fields)
    return base


def test_a_client_is_not_merged_with_itself():
    one = card()
    with pytest.raises(Conflict) as caught:
        merge_refusal(one, dict(one))
    assert caught.value.code == "same_client"


@pytest.mark.parametrize("which", ["survivor", "merged"])
def test_an_already_merged_client_is_refused(which):
    survivor, merged = card(), card()
    {"survivor": survivor, "merged": merged}[which]["merged_into"] = uuid.uuid4()
    with pytest.raises(Conflict) as caught:
        merge_refusal(survivor, merged)
    assert caught.value.code == "already_merged"


def test_different_inns_are_different_legal_entities():
    with pytest.raises(Conflict) as caught:
        merge_refusal(card(inn="7707083893"), card(inn="6658021579"))
    assert caught.value.code == "different_inn"
    assert "7707083893" in caught.value.detail and "6658021579" in caught.value.detail


def test_same_inn_different_kpp_are_different_branches():
    with pytest.raises(Conflict) as caught:
        merge_refusal(card(inn="7707083893", kpp="770701001"),
                      card(inn="7707083893", kpp="667101001"))
    assert caught.value.code == "different_kpp"


def test_different_ogrns_are_refused():
    with pytest.raises(Conflict) as caught:
        merge_refusal(card(ogrn="1027700132195"), card(ogrn="1026605606620"))
    assert caught.value.code == "different_ogrn"


@pytest.mark.parametrize("survivor,merged", [
    ({"inn": "7707083893"}, {"inn": None}),
    ({"inn": None}, {"inn": "7707083893", "kpp": "770701001"}),
    ({"inn": "7707083893", "kpp": "770701001"}, {"inn": "7707083893", "kpp": None}),
    ({"inn": "7707083893", "kpp": "770701001"}, {"inn": "7707083893", "kpp": "770701001"}),
    ({}, {}),
])
def test_mergeable_pairs(survivor, merged):
    merge_refusal(card(**survivor), card(**merged))


# --- what the survivor becomes ------------------------------------------------------------------

def test_union_keeps_order_and_drops_duplicates():
    assert union_values(["+73431234567", "+79161234567"], ["+79161234567", "+74951234567"]) == [
        "+73431234567", "+79161234567", "+74951234567"]
    assert union_values(None, ["a@x.ru"]) == ["a@x.ru"]
    assert union_values([], None) == []


def test_addresses_of_the_same_kind_and_text_are_kept_once():
    mine = [{"kind": "legal", "text": "Екатеринбург, ул. Ленина, 1"}]
    theirs = [{"kind": "legal", "text": "екатеринбург,  ул. ленина, 1"},
              {"kind": "delivery", "text": "Екатеринбург, ул. Ленина, 1"},
              {"kind": "actual", "text": "Березовский, ул. Мира, 5"}]
    assert union_addresses(mine, theirs) == [mine[0], theirs[1], theirs[2]]


def test_empty_survivor_fields_are_filled_and_filled_ones_kept():
    guid = uuid.uuid4()
    survivor = card(industry="Кровля", phones=["+73431234567"], emails=["a@x.ru"])
    merged = card(inn="7707083893", kpp="770701001", ogrn="1027700132195", industry="Металл",
                  website="x.ru", segment="B", erp_counterparty_guid=guid,
                  phones=["+79161234567", "+73431234567"], emails=["b@x.ru"],
                  addresses=[{"kind": "legal", "text": "Москва, ул. Тверская, 1"}])
    plan = merge_cards(survivor, merged)
    assert plan.changes == {
        "inn": "7707083893", "kpp": "770701001", "ogrn": "1027700132195", "website": "x.ru",
        "segment": "B", "erp_counterparty_guid": guid,
        "phones": ["+73431234567", "+79161234567"], "emails": ["a@x.ru", "b@x.ru"],
        "addresses": [{"kind": "legal", "text": "Москва, ул. Тверская, 1"}]}
    assert set(plan.changed_fields) == set(plan.changes)
    assert plan.filled["inn"] == "7707083893" and "industry" not in plan.filled
    assert plan.not_taken == {"industry": "Металл"}


def test_nothing_new_changes_nothing():
    survivor = card(phones=["+73431234567"], inn="7707083893")
    plan = merge_cards(survivor, card(phones=["+73431234567"], inn="7707083893"))
    assert plan.changes == {} and plan.changed_fields == []


def test_kpp_is_taken_only_with_its_inn():
    # The survivor has an INN, the merged card has a KPP but no INN: whose KPP would it be?
    plan = merge_cards(card(inn="7707083893"), card(kpp="667101001"))
    assert "kpp" not in plan.changes and plan.not_taken == {"kpp": "667101001"}
    plan = merge_cards(card(inn="7707083893"), card(inn="7707083893", kpp="770701001"))
    assert plan.changes == {"kpp": "770701001"}


@pytest.mark.parametrize("mine,theirs,expected", [
    ("potential", "potential", "potential"),
    ("potential", "active", "active"),
    ("dormant", "active", "active"),
    ("active", "lost", "active"),
    ("potential", "dormant", "dormant"),
    ("potential", "lost", "lost"),
    ("lost", "dormant", "lost"),
    ("dormant", "potential", "dormant"),
])
def test_status_of_the_survivor(mine, theirs, expected):
    assert merged_status(mine, theirs) == expected
    plan = merge_cards(card(status=mine), card(status=theirs))
    assert plan.changes.get("status", mine) == expected


def test_the_later_life_dates_win():
    early, late = datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 6, 1, tzinfo=UTC)
    plan = merge_cards(card(last_invoice_at=early, last_interaction_at=late),
                       card(last_invoice_at=late, last_interaction_at=early))
    assert plan.changes == {"last_invoice_at": late}
    plan = merge_cards(card(), card(last_interaction_at=early))
    assert plan.changes == {"last_interaction_at": early}
