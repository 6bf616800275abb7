"""Pay formulas with worked examples: tiers (whole and marginal), caps, rounding, weights, the next
tier, corrections."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from services.payroll.domain.pay import (
    Bonus,
    FrozenMonth,
    PercentRule,
    Scheme,
    Tier,
    Weight,
    compute_pay,
    correction,
    money,
    next_tier,
    weighted_fulfilment,
)

TIERS = (Tier(D(80), D(1)), Tier(D(100), D(2)))


def tiered(mode="whole", **kwargs) -> Scheme:
    return Scheme(fixed=D("40000"), bonus=Bonus(TIERS, base_kpi="sales", mode=mode), **kwargs)


def lines(pay, kind):
    return [line for line in pay.lines if line.kind == kind]


@pytest.mark.parametrize(("fact", "bonus"), [
    ("1100000", "22000.00"),   # 110 %: 2 % of the whole 1 100 000
    ("1000000", "20000.00"),   # exactly 100 %: the higher tier
    ("999990", "9999.90"),     # 99.999 %: still 1 % — the step at the threshold
    ("800000", "8000.00"),     # exactly 80 %: 1 %
    ("790000", "0.00"),        # 79 %: nothing
])
def test_whole_mode_the_tier_reached_applies_to_the_whole_base(fact, bonus):
    pay = compute_pay(tiered(), {"sales": D("1000000")}, {"sales": D(fact)})
    assert lines(pay, "bonus")[0].amount == D(bonus)
    assert pay.total == D("40000") + D(bonus)
    assert [line.kind for line in pay.lines] == ["fixed", "bonus"]


def test_marginal_mode_pays_each_band_at_its_rate():
    # 1 100 000 over 110 points = 10 000 a point; 20 points (80–100) x 1 % + 10 points x 2 %.
    pay = compute_pay(tiered("marginal"), {"sales": D("1000000")}, {"sales": D("1100000")})
    bonus = lines(pay, "bonus")[0]
    assert bonus.amount == D("4000.00")
    assert "20 п.п. × 1 %" in bonus.formula and "10 п.п. × 2 %" in bonus.formula
    # Below the first threshold nothing, at 90 %: 10 points x 10 000 x 1 % = 1 000.
    assert compute_pay(tiered("marginal"), {"sales": D("1000000")},
                       {"sales": D("900000")}).lines[-1].amount == D("1000.00")
    assert compute_pay(tiered("marginal"), {"sales": D("1000000")},
                       {"sales": D("700000")}).lines[-1].amount == D("0")


def test_no_plan_no_fulfilment_no_bonus():
    pay = compute_pay(tiered(), {}, {"sales": D("5000000")})
    assert pay.weighted_fulfilment is None
    assert lines(pay, "bonus")[0].amount == 0
    assert "нет плана" in lines(pay, "bonus")[0].formula


def test_caps_per_line_and_on_the_variable_total():
    scheme = Scheme(
        fixed=D("30000"),
        percentages=(PercentRule("payments", D("1"), cap=D("5000")),),
        bonus=Bonus(TIERS, base_kpi="sales", cap=D("15000")),
        total_cap=D("18000"))
    pay = compute_pay(scheme, {"sales": D("1000000")},
                      {"sales": D("1200000"), "payments": D("900000")})
    percent, bonus = lines(pay, "percent")[0], lines(pay, "bonus")[0]
    assert percent.amount == D("5000.00") and "ограничено 5 000" in percent.formula  # 9 000
    assert bonus.amount == D("15000.00")                                             # 24 000
    cap = lines(pay, "cap")[0]
    assert cap.amount == D("-2000.00")        # variable 20 000 over the 18 000 cap
    assert pay.total == D("48000.00")         # 30 000 fixed + 18 000 capped variable


def test_each_line_is_rounded_half_up_and_the_total_is_the_sum_of_rounded_lines():
    scheme = Scheme(percentages=(PercentRule("sales", D("0.5")), PercentRule("payments",
                                                                             D("0.5"))))
    pay = compute_pay(scheme, {}, {"sales": D("1.00"), "payments": D("1.00")})
    # 0.005 each: half up to 0.01 each; the total 0.02, not round(0.010) = 0.01.
    assert [line.amount for line in pay.lines] == [D("0.01"), D("0.01")]
    assert pay.total == D("0.02")
    assert money(D("15.00495")) == D("15.00") and money(D("15.00525")) == D("15.01")
    one = compute_pay(Scheme(percentages=(PercentRule("sales", D("1.5")),)), {},
                      {"sales": D("1000.35")})
    assert one.total == D("15.01")            # 15.00525


def test_weights_make_a_weighted_fulfilment_and_per_kpi_caps_limit_it():
    plans = {"sales": D("1000000"), "payments": D("500000")}
    facts = {"sales": D("900000"), "payments": D("600000")}       # 90 % and 120 %
    weights = (Weight("sales", D("0.7")), Weight("payments", D("0.3")))
    assert weighted_fulfilment(Scheme(weights=weights), plans, facts) == D("99")  # 63 + 36
    capped = (Weight("sales", D("0.7")), Weight("payments", D("0.3"), cap_pct=D("110")))
    assert weighted_fulfilment(Scheme(weights=capped), plans, facts) == D("96")   # 63 + 33
    # A KPI without a plan drops out with its weight.
    assert weighted_fulfilment(Scheme(weights=weights), {"sales": D("1000000")}, facts) == 90
    pay = compute_pay(tiered(weights=weights), plans, facts)
    assert lines(pay, "bonus")[0].amount == D("9000.00")   # 99 %: 1 % of 900 000


def test_next_tier_says_how_much_more_shipment_reaches_it():
    plans = {"sales": D("1000000")}
    tier = next_tier(tiered(), plans, {"sales": D("850000")})
    assert (tier.from_pct, tier.more_needed) == (D(100), D("150000.00"))
    assert tier.pay_then == D("40000") + D("20000.00")
    # Weighted: the other half (payments) at 80 %, sales at 85 %: F = 82.5; each rouble of sales
    # adds 0.5 x 100 / 1 000 000 points, so 17.5 points need 350 000.
    weights = (Weight("sales", D("0.5")), Weight("payments", D("0.5")))
    tier = next_tier(tiered(weights=weights), {"sales": D("1000000"), "payments": D("100000")},
                     {"sales": D("850000"), "payments": D("80000")})
    assert tier.more_needed == D("350000.00")
    # Below the first tier it names the first one; above the last there is none.
    assert next_tier(tiered(), plans, {"sales": D("500000")}).from_pct == 80
    assert next_tier(tiered(), plans, {"sales": D("1200000")}) is None
    # A capped fulfilment that cannot reach the tier: none.
    stuck = (Weight("sales", D("1"), cap_pct=D("95")),)
    assert next_tier(tiered(weights=stuck), plans, {"sales": D("900000")}) is None


def test_a_late_change_becomes_a_correction_of_the_difference():
    scheme = tiered()
    plans = {"sales": D("1000000")}
    approved = compute_pay(scheme, plans, {"sales": D("990000")})        # 1 %: 9 900
    assert approved.total == D("49900.00")
    frozen = FrozenMonth(date(2026, 10, 1), approved.total, {"sales": D("990000")})
    # A shipment of 20 000 posted late for October lifts it over 100 %: 2 % of 1 010 000.
    now = {"sales": D("1010000")}
    line = correction(frozen, compute_pay(scheme, plans, now), now)
    assert line.kind == "correction" and line.source_month == date(2026, 10, 1)
    assert line.amount == D("60200.00") - D("49900.00") == D("10300.00")
    assert line.title == "Корректировка за 10.2026"
    assert "990 000 → 1 010 000" in line.formula
    # Already corrected once in an approved month: only what is still owed.
    again = FrozenMonth(frozen.month, frozen.approved_total, frozen.approved_facts,
                        corrected_since=D("10300.00"))
    assert correction(again, compute_pay(scheme, plans, now), now) is None
    # Un-posted later: the correction goes negative.
    down = {"sales": D("700000")}
    assert correction(frozen, compute_pay(scheme, plans, down), down).amount == D("-9900.00")
