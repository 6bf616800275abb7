"""The forecast per manager, department, region and month against the plans from payroll."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from crm_platform.clock import clock
from crm_platform.errors import ValidationFailed

from .test_erp_funnel import Documents

pytestmark = pytest.mark.integration

MSK = ZoneInfo("Europe/Moscow")


def row(result, month, group=None):
    group = str(group) if group is not None else None
    return next(r for r in result["rows"] if r["month"] == month and r["group"] == group)


def test_forecast_for_a_month_with_plans_and_the_deals_behind_each_figure(svc, org, bus):
    clock.travel_to(datetime(2026, 12, 7, 10, 0, tzinfo=MSK))
    m1, m2 = org.id("m.ural.1"), org.id("m.ural.2")
    # m.ural.1: a new lead (10 %), a proposal (50 %, own 40 % override), an order (committed).
    lead = svc.create_deal({"client_id": org.add_client("А"), "amount": "100000",
                            "expected_close_date": "2026-12-20"})["deal"]
    proposal = svc.create_deal({"client_id": org.add_client("Б"), "amount": "200000",
                                "expected_close_date": "2026-12-25"})["deal"]
    svc.move_stage(proposal["id"], "proposal")
    overridden = svc.create_deal({"client_id": org.add_client("В"), "amount": "50000",
                                  "probability": 40, "expected_close_date": "2026-12-28"})
    client = org.add_client("Г")
    ordered = svc.create_deal({"client_id": client, "amount": "300000",
                               "expected_close_date": "2026-12-15"})["deal"]
    order, _ = Documents(client).event("order", "posted", "320000.00",
                                       deal_id=uuid.UUID(ordered["id"]))
    bus.deliver_many([order])
    # Next month's deal stays out of December; m.ural.2 has a deal won in December.
    svc.create_deal({"client_id": org.add_client("Д"), "amount": "999",
                     "expected_close_date": "2027-01-10"})
    won_client = org.add_client("Е", owner="m.ural.2")
    won = svc.create_deal({"client_id": won_client, "amount": "1"}, as_user="m.ural.2")["deal"]
    docs = Documents(won_client)
    order2, order2_guid = docs.event("order", "posted", "75000.00",
                                     deal_id=uuid.UUID(won["id"]))
    ship, _ = docs.event("shipment", "posted", "75000.00", order=order2_guid)
    pay, _ = docs.event("payment", "posted", "75000.00", order=order2_guid)
    bus.deliver_many([order2, ship, pay])
    assert svc.get_deal(won["id"], as_user="m.ural.2")["stage"] == "closed_won"
    for user, amount in ((m1, "400000.00"), (m2, "100000.00")):
        bus.deliver("payroll", "sales_plan_changed", {
            "user_id": user, "department_id": org.departments["ural"],
            "month": date(2026, 12, 1), "sales_amount": Decimal(amount)})

    by_manager = svc.forecast("2026-12", group_by="manager", as_user="head.ural")
    mine = row(by_manager, "2026-12", m1)
    assert mine["group_name"] == "Менеджер ural 1" and mine["plan"] == "400000.00"
    assert mine["pipeline"] == "670000.00"              # 100k + 200k + 50k + 320k ordered
    assert mine["committed"] == "320000.00"
    # 100k×10 % + 200k×50 % + 50k×40 % + 320k×70 %
    assert mine["weighted"] == "354000.00"
    assert mine["best_case"] == "670000.00" and mine["won"] == "0.00" and mine["deals"] == 4
    theirs = row(by_manager, "2026-12", m2)
    assert (theirs["won"], theirs["plan"], theirs["fulfilment_percent"]) == (
        "75000.00", "100000.00", 75.0)

    department = row(svc.forecast("2026-12", group_by="department", as_user="director"),
                     "2026-12", org.departments["ural"])
    assert (department["plan"], department["won"], department["pipeline"]) == (
        "500000.00", "75000.00", "670000.00")
    months = svc.forecast("2026-12", "2027-01", group_by="month", as_user="director")
    assert [r["month"] for r in months["rows"]] == ["2026-12", "2027-01"]
    assert row(months, "2027-01")["pipeline"] == "999.00"

    # A manager sees only own figures.
    own = svc.forecast("2026-12", group_by="manager")
    assert {r["group"] for r in own["rows"]} == {m1}

    behind = svc.forecast_deals("2026-12", "committed", as_user="head.ural")
    assert [(d["id"], d["contribution"]) for d in behind] == [(ordered["id"], "320000.00")]
    weighted = svc.forecast_deals("2026-12", "weighted", {"owner_id": m1}, as_user="head.ural")
    assert [d["id"] for d in weighted] == [ordered["id"], proposal["id"],
                                           overridden["deal"]["id"], lead["id"]]
    with pytest.raises(ValidationFailed):
        svc.forecast("2026-13")
    with pytest.raises(ValidationFailed):
        svc.forecast("2026-12", group_by="planet")
