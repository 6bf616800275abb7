"""ROI maths: grouping, the budget split to the kopeck, the ratios."""

from __future__ import annotations

from decimal import Decimal

from services.reports.domain.roi import Lead, _split, roi_rows


def lead(kind="web_form", utm=None, campaign=None, qualified=False, won=False, amount="0"):
    return Lead(kind, None, utm, None, None, None, campaign, qualified, won, Decimal(amount))


def test_the_budget_split_adds_up_to_the_kopeck():
    assert _split(Decimal("100.00"), [1, 1, 1]) == [Decimal("33.33"), Decimal("33.33"),
                                                    Decimal("33.34")]
    assert _split(Decimal("10.00"), [0, 0]) == [Decimal("10.00"), Decimal("0.00")]
    assert sum(_split(Decimal("1000.01"), [3, 7, 11])) == Decimal("1000.01")


def test_rows_by_source_and_by_campaign():
    leads = [lead(utm="a", campaign="k", qualified=True, won=True, amount="10.50"),
             lead(utm="a", campaign="k"), lead(utm="b", campaign="k", qualified=True),
             lead(kind="call")]
    costs = {"k": {"name": "К", "budget": Decimal("100.00")}, "z": {"name": "Z",
                                                                   "budget": Decimal("5")}}
    by_source = roi_rows(leads, costs)
    assert [(r["source_kind"], r["utm_source"], r["leads"], r["cost"])
            for r in by_source["rows"]] == [("call", None, 1, None),
                                            ("web_form", "a", 2, Decimal("66.67")),
                                            ("web_form", "b", 1, Decimal("33.33"))]
    t = by_source["totals"]
    assert (t["leads"], t["deals"], t["won"], t["won_amount"], t["cost"], t["cost_per_lead"],
            t["cost_per_won"], t["lead_to_deal"]) == (4, 2, 1, Decimal("10.50"),
                                                      Decimal("100.00"), Decimal("25.00"),
                                                      Decimal("100.00"), 0.5)
    by_campaign = roi_rows(leads, costs, "campaign")["rows"]
    assert [(r["campaign"], r["leads"], r["cost"], r["cost_per_won"]) for r in by_campaign] == [
        ("К", 3, Decimal("100.00"), Decimal("100.00")), (None, 1, None, None)]


def test_nothing_to_divide_by_is_null():
    rows = roi_rows([], {})
    assert rows["rows"] == [] and rows["totals"]["cost_per_lead"] is None
    assert rows["totals"]["lead_to_deal"] is None


def test_leads_counted_by_the_database_give_the_same_rows_as_one_by_one():
    costs = {"k": {"name": "К", "budget": Decimal("90.00")}}
    one_by_one = [lead(utm="a", campaign="k", qualified=True, won=True, amount="10.50"),
                  lead(utm="a", campaign="k", qualified=True, won=True, amount="4.50"),
                  lead(utm="a", campaign="k"), lead(utm="a", campaign="k"),
                  lead(utm="b", campaign="k", qualified=True)]
    counted = [Lead("web_form", None, "a", None, None, None, "k", True, True, Decimal("15.00"),
                    count=2),
               Lead("web_form", None, "a", None, None, None, "k", False, False, Decimal("0"),
                    count=2),
               lead(utm="b", campaign="k", qualified=True)]
    for group in ("source", "campaign"):
        assert roi_rows(counted, costs, group) == roi_rows(one_by_one, costs, group)
