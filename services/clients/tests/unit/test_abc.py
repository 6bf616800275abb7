from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.clients.domain.abc import classify


def classes(result):
    return {item.key: item.abc_class for item in result.items}


def test_the_textbook_split_80_15_5():
    result = classify([("a", Decimal("50")), ("b", Decimal("30")), ("c", Decimal("10")),
                       ("d", Decimal("5")), ("e", Decimal("5"))])
    # c starts at 80 %: B; the two fives are a tie group starting at 90 %: both B.
    assert classes(result) == {"a": "A", "b": "A", "c": "B", "d": "B", "e": "B"}
    assert result.total == Decimal("100")
    assert result.classes["A"].revenue == Decimal("80") and result.classes["A"].share == \
        Decimal("0.8000")
    assert result.classes["C"].clients == 0


def test_the_client_crossing_80_percent_is_still_a():
    result = classify([("big", Decimal("70")), ("mid", Decimal("20")), ("small", Decimal("6")),
                       ("tiny", Decimal("4"))])
    assert classes(result) == {"big": "A", "mid": "A", "small": "B", "tiny": "C"}


def test_one_client_with_everything_is_a_and_the_rest_c():
    result = classify([("one", Decimal("1000")), ("two", Decimal("0")), ("three", Decimal("0"))])
    assert classes(result) == {"one": "A", "two": "C", "three": "C"}
    assert [i.key for i in result.items][0] == "one"


def test_ties_across_a_boundary_share_the_better_class():
    # 40 + 40 = 80 %: the group of four fives starts at 80 %, so all four are B, none C,
    # although a strict ranking would put the last of them past 95 %.
    result = classify([("x", Decimal("40")), ("y", Decimal("40"))]
                      + [(f"t{n}", Decimal("5")) for n in range(4)])
    assert classes(result) == {"x": "A", "y": "A", "t0": "B", "t1": "B", "t2": "B", "t3": "B"}


def test_equal_revenues_are_all_a_whatever_their_order():
    result = classify([(n, Decimal("10")) for n in range(10)])
    assert set(classes(result).values()) == {"A"}


def test_zero_and_negative_revenue_is_c_and_not_in_the_total():
    result = classify([("a", Decimal("10")), ("z", Decimal("0")), ("neg", Decimal("-3"))])
    assert classes(result) == {"a": "A", "z": "C", "neg": "C"}
    assert result.total == Decimal("10")
    assert result.classes["C"].revenue == Decimal("0") and result.classes["C"].clients == 2


def test_no_revenue_at_all_is_all_c_with_zero_shares():
    result = classify([("a", Decimal("0")), ("b", Decimal("0"))])
    assert set(classes(result).values()) == {"C"}
    assert result.total == Decimal("0")
    assert all(i.share == Decimal("0") for i in result.items)


def test_empty_input():
    result = classify([])
    assert result.items == [] and result.total == 0
    assert {k: v.clients for k, v in result.classes.items()} == {"A": 0, "B": 0, "C": 0}


def test_sums_are_exact_decimals():
    result = classify([("a", Decimal("0.10")), ("b", Decimal("0.20")), ("c", Decimal("0.01"))])
    assert result.total == Decimal("0.31")
    assert isinstance(result.total, Decimal)
    assert sum((c.revenue for c in result.classes.values()), Decimal(0)) == Decimal("0.31")
    assert result.items[-1].cumulative_share == Decimal("1.0000")


def test_order_among_equals_is_stable():
    pairs = [("b", Decimal("5")), ("a", Decimal("5")), ("c", Decimal("9"))]
    assert [i.key for i in classify(pairs).items] == ["c", "a", "b"]
    assert [i.key for i in classify(list(reversed(pairs))).items] == ["c", "a", "b"]


def test_thresholds_are_checked():
    with pytest.raises(ValueError):
        classify([], a_share=Decimal("0.9"), b_share=Decimal("0.8"))


money = st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False,
                    allow_infinity=False)


@given(st.lists(money, max_size=60))
def test_properties(revenues):
    result = classify(list(enumerate(revenues)))
    assert result.total == sum(revenues, Decimal(0))
    assert sum(c.clients for c in result.classes.values()) == len(revenues)
    assert sum((c.revenue for c in result.classes.values()), Decimal(0)) == result.total
    rank = {"A": 0, "B": 1, "C": 2}
    ordered = [rank[i.abc_class] for i in result.items]
    assert ordered == sorted(ordered)          # a larger revenue never gets a worse class
    by_revenue = {}
    for item in result.items:                  # equal revenues, equal class
        by_revenue.setdefault(item.revenue, set()).add(item.abc_class)
    assert all(len(v) == 1 for v in by_revenue.values())
    if result.total > 0:                       # A covers at least 80 % of the revenue
        assert result.classes["A"].revenue >= result.total * Decimal("0.8")
        assert result.classes["A"].revenue + result.classes["B"].revenue >= \
            result.total * Decimal("0.95")
    assert all(i.abc_class == "C" for i in result.items if i.revenue == 0)
