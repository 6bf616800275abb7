from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.logistics.domain.costs import allocate, trip_cost

D = Decimal


def test_own_vehicle_costs_km_and_hours():
    assert trip_cost(ownership="own", km=D("120"), hours=D("6.5"), weight_kg=D("5000"),
                     per_km_rate=D("45.50"), per_hour_rate=D("700")) == D("10010.00")


@pytest.mark.parametrize("kind, rate, expected", [
    ("per_trip", D("15000"), D("15000.00")),
    ("per_km", D("60"), D("7200.00")),
    ("per_tonne", D("1250.50"), D("9066.13")),     # 7.25 t × 1250.50 = 9066.125 -> half up
])
def test_carrier_rates(kind, rate, expected):
    assert trip_cost(ownership="carrier", km=D("120"), hours=D("5"), weight_kg=D("7250"),
                     rate_kind=kind, rate=rate) == expected


def test_unknown_rate_kind_is_an_error():
    with pytest.raises(ValueError):
        trip_cost(ownership="carrier", km=1, hours=1, weight_kg=1, rate_kind="per_day", rate=1)


def test_allocation_by_weight_remainder_to_heaviest():
    shares = allocate(D("100.00"), [("a", D("1000")), ("b", D("2000")), ("c", D("3000"))])
    # 10000 kop: a 1666, b 3333, c 5000 -> 9999, the kopeck left goes to c (heaviest)
    assert shares == {"a": D("16.66"), "b": D("33.33"), "c": D("50.01")}


def test_allocation_of_weightless_orders_is_even():
    shares = allocate(D("10.00"), [("a", None), ("b", D("0")), ("c", None)])
    assert shares == {"a": D("3.34"), "b": D("3.33"), "c": D("3.33")}


def test_unknown_weight_gets_nothing_when_others_are_known():
    assert allocate(D("50"), [("a", None), ("b", D("10"))]) == {"a": D("0.00"), "b": D("50.00")}


@given(cost=st.decimals(min_value=0, max_value=10_000_000, places=2),
       weights=st.lists(st.decimals(min_value=0, max_value=40_000, places=3), min_size=1,
                        max_size=12))
def test_shares_add_up_to_the_cost_and_follow_weight(cost, weights):
    items = [(f"o{i}", w) for i, w in enumerate(weights)]
    shares = allocate(cost, items)
    assert sum(shares.values()) == cost
    assert all(s >= 0 for s in shares.values())
    heaviest = max(items, key=lambda item: item[1])[0]
    for (oid, w), (other, w2) in zip(items, items[1:], strict=False):
        if w > w2 and other != heaviest:
            assert shares[oid] >= shares[other]
