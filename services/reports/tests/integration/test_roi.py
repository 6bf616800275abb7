"""The ROI report from a known set of events (campaign budgets from ``campaign_changed``, lead
sources from ``deal_created``, outcomes from ``deal_stage_changed``), checked to the kopeck, with
its access rules and export."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from crm_platform.clock import utcnow
from crm_platform.errors import Forbidden
from crm_platform.testing import ReplicatedOrg, ServiceCaller, SqlReader, publish_events, wait_for
from services.reports.service import ReportsService

pytestmark = pytest.mark.integration

K1, K2 = uuid.uuid4(), uuid.uuid4()
PHONE = "+73432000000"


@pytest.fixture
def roi(service_db, service_config, container_factory, rabbit_config):
    url = service_db("reports")
    org = ReplicatedOrg(url)
    sql = SqlReader(url)
    container = container_factory(ReportsService, service_config(
        db_url=url, EVENT_BATCH_MAX_WAIT_MS=20, REPORTS_METRICS_SECONDS=0))
    container.start()
    now = utcnow()
    owner = org.id("m.ural.1")
    dept = str(org.departments["ural"])

    def campaign(cid, name, budget, utm, at):
        return ("clients", "campaign_changed", {
            "campaign_id": cid, "name": name, "goal": "new_product", "state": "running",
            "budget": Decimal(budget), "utm_campaign": utm, "changed_at": at})

    events = [campaign(K1, "Весна", "30000.00", "spring", now),
              campaign(K2, "Выставка", "10000.00", None, now),
              campaign(K1, "Весна (старое)", "99999.00", "spring", now - timedelta(days=1))]
    deals = {}

    def deal(name, kind, stages=(), amount=None, **detail):
        deal_id = deals[name] = uuid.uuid4()
        events.append(("deals", "deal_created", {
            "deal_id": deal_id, "owner_id": owner, "department_id": dept,
            "created_at": now - timedelta(minutes=30), "source": kind, "title": name,
            "source_detail": {"kind": kind, **detail}}))
        for i, stage in enumerate(stages):
            events.append(("deals", "deal_stage_changed", {
                "deal_id": deal_id, "owner_id": owner, "department_id": dept,
                "to_stage": stage, "at": now - timedelta(minutes=20 - i), "cause": "user",
                "amount": Decimal(amount) if amount and stage == "closed_won" else None}))

    form = {"form_key": "roof", "utm_medium": "cpc", "utm_campaign": "spring"}
    deal("g-won", "web_form", ("qualified", "closed_won"), "100000.00", utm_source="google",
         **form)
    deal("g-lost", "web_form", ("lost",), utm_source="google", **form)
    deal("y-qual", "web_form", ("qualified", "lost"), utm_source="yandex", **form)
    deal("call-won", "call", ("closed_won",), "50000.50", our_number=PHONE)
    deal("k2-new", "campaign", (), campaign_id=str(K2))
    deal("k2-prop", "campaign", ("qualified", "proposal"), campaign_id=str(K2))
    deal("manual", "manual")
    publish_events(rabbit_config["AMQP_URI"], events)
    wait_for(lambda: sql.scalar("SELECT count(*) FROM processed_events") >= len(events),
             timeout=20, message="every event handled")
    yield ServiceCaller(container, org, "director")
    sql.dispose()
    org.dispose()


def money(value):
    return None if value is None else str(Decimal(value))


def test_roi_by_source_exactly(roi):
    report = roi.get_report("roi", {"period": "day"})
    got = [(r["source_kind"], r["utm_source"], r["our_number"], r["campaign"], r["leads"],
            r["deals"], r["won"], money(r["won_amount"]), money(r["cost"]),
            money(r["cost_per_lead"]), money(r["cost_per_won"]), r["lead_to_deal"])
           for r in report["rows"]]
    assert got == [
        ("call", None, PHONE, None, 1, 1, 1, "50000.50", None, None, None, 1.0),
        ("campaign", None, None, "Выставка", 2, 1, 0, "0.00", "10000.00", "5000.00", None, 0.5),
        ("manual", None, None, None, 1, 0, 0, "0.00", None, None, None, 0.0),
        ("web_form", "google", None, "Весна", 2, 1, 1, "100000.00", "20000.00", "10000.00",
         "20000.00", 0.5),
        ("web_form", "yandex", None, "Весна", 1, 1, 0, "0.00", "10000.00", "10000.00", None,
         1.0),
    ]
    assert report["rows"][3]["form_key"] == "roof"
    assert report["rows"][3]["campaign_id"] == str(K1)       # found by utm_campaign
    t = report["totals"]
    assert (t["leads"], t["deals"], t["won"], money(t["won_amount"]), money(t["cost"]),
            money(t["cost_per_lead"]), money(t["cost_per_won"]), t["lead_to_won"]) == (
        7, 4, 2, "150000.50", "40000.00", "5714.29", "20000.00", 0.2857)


def test_roi_by_campaign_and_access(roi):
    report = roi.get_report("roi", {"period": "day", "group_by": "campaign"})
    rows = {r["campaign"]: (r["leads"], r["deals"], r["won"], money(r["won_amount"]),
                            money(r["cost"]), money(r["cost_per_lead"]),
                            money(r["cost_per_won"])) for r in report["rows"]}
    assert rows == {
        "Весна": (3, 2, 1, "100000.00", "30000.00", "10000.00", "30000.00"),
        "Выставка": (2, 1, 0, "0.00", "10000.00", "5000.00", None),
        None: (2, 1, 1, "50000.50", None, None, None),
    }
    assert roi.call("get_report", "roi", {"period": "day"}, as_user="head.volga")["rows"] == []
    mine = roi.call("get_report", "roi", {"period": "day"}, as_user="m.ural.1")
    assert mine["totals"]["leads"] == 7
    with pytest.raises(Forbidden):
        roi.call("get_report", "roi", {"period": "day", "department_id": str(
            roi.org.departments["ural"])}, as_user="head.volga")
    exported = roi.export_report("roi", {"period": "day"}, "csv")
    text = base64.b64decode(exported["content_base64"]).decode("utf-8-sig")
    assert "Стоимость лида" in text and "5714.29" in text and exported["rows"] == 5
