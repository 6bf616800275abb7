"""Return on lead sources and campaigns, without the framework.

A *lead* is a deal created in the period (``deal_created``), with its source: kind (web_form,
call, email, manual, campaign, import), form key, UTM source/medium/campaign, the line called
(``our_number``) and the campaign — named by the deal (``campaign_id``) or, for a web form, found
by its ``utm_campaign`` among the campaigns (``clients.campaign_changed``). A lead became a
*deal* when it reached ``qualified`` or beyond (a lost deal that was qualified counts); it is
*won* at ``closed_won`` with its amount as the won sum.

Costs are the campaigns' budgets only (forms, UTM sources and lines cost nothing unless a campaign
names them). Grouped by source, a campaign's budget is split over its source rows in proportion to
their leads (to the kopeck, the remainder on the last row, so the rows add up to the budget);
grouped by campaign, each campaign row carries its whole budget. Conversion = deals / leads and
won / leads; cost per lead = cost / leads; cost per won deal = cost / won (null when nothing to
divide by).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
SOURCE_KEYS = ("source_kind", "form_key", "utm_source", "utm_medium", "utm_campaign",
               "our_number", "campaign_id")


@dataclass(frozen=True)
class Lead:
    source_kind: str
    form_key: str | None
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    our_number: str | None
    campaign_id: str | None          # resolved (named, or by utm_campaign)
    qualified: bool
    won: bool
    won_amount: Decimal              # with ``count`` > 1: the sum over them
    count: int = 1                   # leads alike in source and outcome (the database sums them)


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _ratio(part, whole, places: int = 4) -> float | None:
    return round(float(part) / float(whole), places) if whole else None


def _per(cost: Decimal | None, count: int) -> Decimal | None:
    if cost is None or not count:
        return None
    return _money(cost / count)


def _split(budget: Decimal, weights: list[int]) -> list[Decimal]:
    """``budget`` over rows in proportion to ``weights``, to the kopeck, summing exactly."""
    total = sum(weights)
    if not weights:
        return []
    if not total:
        return [budget] + [Decimal("0.00")] * (len(weights) - 1)
    shares = [_money(budget * w / total) for w in weights[:-1]]
    return shares + [_money(budget - sum(shares, Decimal("0")))]


def roi_rows(leads: list[Lead], campaigns: dict[str, dict], group: str = "source") -> dict:
    """``{"rows", "totals"}``. ``campaigns``: id -> {"name", "budget"}; ``group``: ``source``
    (one row per distinct source) or ``campaign`` (one row per campaign; leads of none are one
    row with a null campaign)."""
    keyed: dict[tuple, dict] = {}
    for lead in leads:
        if group == "campaign":
            key = (lead.campaign_id,)
        else:
            key = tuple(getattr(lead, k) for k in SOURCE_KEYS)
        row = keyed.get(key)
        if row is None:
            row = keyed[key] = {"leads": 0, "deals": 0, "won": 0,
                                "won_amount": Decimal("0.00")}
            if group == "campaign":
                row["campaign_id"] = lead.campaign_id
            else:
                row.update(zip(SOURCE_KEYS, key, strict=True))
        row["leads"] += lead.count
        row["deals"] += lead.count if lead.qualified or lead.won else 0
        row["won"] += lead.count if lead.won else 0
        if lead.won:
            row["won_amount"] += lead.won_amount
    rows = sorted(keyed.values(), key=lambda r: tuple(
        (r.get(k) is None, str(r.get(k) or "")) for k in (
            ("campaign_id",) if group == "campaign" else SOURCE_KEYS)))
    for row in rows:
        row["cost"] = None
    by_campaign: dict[str, list[dict]] = {}
    for row in rows:
        if row.get("campaign_id") in campaigns:
            by_campaign.setdefault(row["campaign_id"], []).append(row)
    for campaign_id, members in by_campaign.items():
        budget = campaigns[campaign_id].get("budget")
        if budget is None:
            continue
        for row, share in zip(members, _split(Decimal(budget), [r["leads"] for r in members]),
                              strict=True):
            row["cost"] = share
    for row in rows:
        cid = row.get("campaign_id")
        row["campaign"] = campaigns.get(cid, {}).get("name") if cid else None
        _derive(row)
    total = {"leads": sum(r["leads"] for r in rows), "deals": sum(r["deals"] for r in rows),
             "won": sum(r["won"] for r in rows),
             "won_amount": _money(sum((r["won_amount"] for r in rows), Decimal("0"))),
             "cost": _money(sum((r["cost"] for r in rows if r["cost"] is not None),
                                Decimal("0")))}
    return {"rows": rows, "totals": _derive(total)}


def _derive(row: dict) -> dict:
    row["won_amount"] = _money(row["won_amount"])
    row["lead_to_deal"] = _ratio(row["deals"], row["leads"])
    row["lead_to_won"] = _ratio(row["won"], row["leads"])
    row["cost_per_lead"] = _per(row["cost"], row["leads"])
    row["cost_per_won"] = _per(row["cost"], row["won"])
    return row
