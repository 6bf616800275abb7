"""The funnel board's column heads (``stage_totals``): counts, pipeline sums and stalled deals per
stage, over the deals the caller may see and the board's filters."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from crm_platform.clock import clock

pytestmark = pytest.mark.integration

MONDAY_10 = datetime(2026, 12, 7, 10, 0, tzinfo=ZoneInfo("Europe/Moscow"))


def test_stage_totals_count_and_sum_what_the_caller_may_see(svc, org):
    clock.travel_to(MONDAY_10)
    mine = org.add_client("ООО «Первый»")
    first = svc.create_deal({"client_id": mine, "amount": "100000.10"})["deal"]
    svc.create_deal({"client_id": org.add_client("ООО «Второй»"), "amount": "50000"})
    svc.create_deal({"client_id": org.add_client("ООО «Без суммы»")})
    moved = svc.move_stage(first["id"], "qualified", expected_version=first["version"])
    assert moved["stage"] == "qualified"
    colleague = svc.create_deal({"client_id": org.add_client("ООО «Чужой»", owner="m.ural.2"),
                                 "amount": "7000"}, as_user="m.ural.2")["deal"]
    assert colleague["owner_id"] == org.id("m.ural.2")

    totals = {t["stage"]: t for t in svc.stage_totals({"open": True})}
    # A manager counts own deals only.
    assert totals == {
        "new": {"stage": "new", "deals": 2, "amount": "50000.00", "stalled": 0},
        "qualified": {"stage": "qualified", "deals": 1, "amount": "100000.10", "stalled": 0}}
    # The head sees the department; filters narrow it like list_deals.
    head = {t["stage"]: (t["deals"], t["amount"])
            for t in svc.stage_totals({"open": True}, as_user="head.ural")}
    assert head == {"new": (3, "57000.00"), "qualified": (1, "100000.10")}
    only = svc.stage_totals({"owner_id": org.id("m.ural.2")}, as_user="head.ural")
    assert [(t["stage"], t["deals"], t["amount"]) for t in only] == [("new", 1, "7000.00")]
    # Another department's head sees none of them.
    assert svc.stage_totals({"open": True}, as_user="head.volga") == []
