"""Every report's numbers over a known month of events, exactly: slices, time buckets,
duplicates that double nothing, an older ERP revision arriving late, access by role, CSV/XLSX
read back, the business gauges; the same numbers from the rollups and from the raw facts."""

from __future__ import annotations

import base64
import csv
import io
import urllib.request
from datetime import date

import pytest
from openpyxl import load_workbook

from crm_platform.clock import utcnow
from crm_platform.errors import Forbidden, NotFound, ValidationFailed
from crm_platform.testing import SqlReader  # noqa: F401 - documents what the fixture hands out
from services.reports.domain.catalogue import parse_params, scope
from services.reports.domain.funnel import percentile
from services.reports.queries import ReportQueries

OCT = {"period": "month", "date": "2026-10-15"}


def by(rows, key, *figures):
    return {row[key]: tuple(row[f] for f in figures) for row in rows}


def test_calls_with_slices_buckets_and_duplicates(reports):
    r, ids = reports, reports.ids
    total = r.report("calls", **OCT)["totals"]
    # call1 came three times (again as a new event and redelivered): counted once.
    assert total == {"calls": 5, "inbound": 2, "outbound": 3, "answered": 3, "missed": 2,
                     "targeted": 4, "untargeted": 1, "talk_seconds": 210}
    assert r.sql.scalar("SELECT count(*) FROM call_facts") == 6

    weeks = r.report("calls", **OCT, group_by="week")["rows"]
    assert [(w["period_start"], w["calls"]) for w in weeks] == [
        ("2026-09-28", 0), ("2026-10-05", 3), ("2026-10-12", 1), ("2026-10-19", 1),
        ("2026-10-26", 0)]
    days = r.report("calls", **OCT)["rows"]
    assert len(days) == 31 and by(days, "period_start", "calls")["2026-10-05"] == (2,)

    ural, volga = str(r.org.departments["ural"]), str(r.org.departments["volga"])
    departments = r.report("calls", **OCT, group_by="department")["rows"]
    assert by(departments, "department_id", "calls", "answered") == {ural: (4, 3),
                                                                      volga: (1, 0)}
    assert {row["department"] for row in departments} == {"Уральский отдел",
                                                          "Приволжский отдел"}
    assert by(r.report("calls", **OCT, group_by="region")["rows"], "region", "calls") == {
        "RU-SVE": (3,), "RU-PER": (1,), "RU-TA": (1,)}
    assert by(r.report("calls", **OCT, group_by="segment")["rows"], "segment", "calls") == {
        "roofing": (2,), "facade": (1,), None: (2,)}
    managers = r.report("calls", **OCT, group_by="manager,month")["rows"]
    assert by(managers, "manager", "calls", "talk_seconds") == {
        "Менеджер ural 1": (3, 180), "Менеджер ural 2": (1, 30), "Менеджер volga 1": (1, 0)}
    assert r.report("calls", **OCT, manager_id=r.org.id("m.ural.1"))["totals"]["calls"] == 3
    assert r.report("calls", **OCT, region="RU-SVE", segment="roofing")["totals"]["calls"] == 1
    clients = r.report("calls", **OCT, group_by="client")["rows"]
    assert by(clients, "client_id", "calls") == {ids.c1: (1,), ids.c2: (1,), ids.c3: (1,),
                                                 None: (2,)}
    assert by(clients, "client_id", "client")[ids.c1] == ("ООО «Клиент C1»",)
    one = r.report("calls", **OCT, client_id=ids.c2, group_by="week")
    assert one["totals"]["calls"] == 1 and len(one["rows"]) == 5
    assert r.report("calls", period="day", date="2026-11-27")["totals"]["calls"] == 1
    year = r.report("calls", period="custom", date_from="2022-01-01", date_to="2026-12-31",
                    group_by="year")
    assert [row["calls"] for row in year["rows"]] == [0, 0, 0, 0, 6]


def test_leads_funnel_and_time_in_stage(reports):
    r = reports
    leads = r.report("new_leads", **OCT)
    assert by(leads["rows"], "source", "leads") == {"call": (2,), "web": (1,), "manual": (1,)}
    assert leads["totals"]["leads"] == 4
    assert by(r.report("new_leads", as_user="m.ural.1", **OCT)["rows"], "source", "leads") == {
        "call": (1,), "web": (1,)}

    funnel = r.report("funnel", **OCT)
    stages = by(funnel["rows"], "stage", "deals")
    assert stages == {"new": (4,), "qualified": (2,), "proposal": (1,), "order_confirmed": (1,),
                      "invoiced": (1,), "partially_shipped": (1,), "shipped": (1,),
                      "closed_won": (1,), "lost": (1,)}   # the repeated move counted once
    assert by(funnel["rows"], "stage", "from_previous")["qualified"] == (0.5,)
    assert funnel["totals"]["win_rate"] == 0.5 and funnel["totals"]["deals"] == 4
    ural = str(r.org.departments["ural"])
    per_dept = [row for row in r.report("funnel", **OCT, group_by="department,stage")["rows"]
                if row["department_id"] == ural]
    assert by(per_dept, "stage", "deals")["new"] == (3,)
    assert by(per_dept, "stage", "deals")["qualified"] == (1,)
    assert r.report("funnel", as_user="head.volga", **OCT)["totals"] == {
        **r.report("funnel", as_user="head.volga", **OCT)["totals"],
        "deals": 1, "won": 0, "lost": 0, "win_rate": None}

    hours = {"new": [25, 72, 24], "qualified": [48], "proposal": [48], "invoiced": [240]}
    closed = by(r.report("stage_time", **OCT, status="closed")["rows"], "stage", "stays",
                "median_hours", "p75_hours", "max_hours")
    assert closed == {stage: (len(v), percentile(v, 0.5), percentile(v, 0.75), max(v))
                      for stage, v in hours.items()}
    # Open stays count until now: D5 in "new" since 10 Oct, D3 in "qualified" since 8 Oct.
    everything = by(r.report("stage_time", **OCT)["rows"], "stage", "stays", "median_hours",
                    "p75_hours", "max_hours")
    assert everything["new"] == (4, 48.5, 342.0, 1152.0)
    assert everything["qualified"] == (2, 624.0, 912.0, 1200.0)
    totals = r.report("stage_time", **OCT, status="closed")["totals"]
    flat = [h for v in hours.values() for h in v]
    assert totals["stays"] == 6 and totals["median_hours"] == percentile(flat, 0.5)

    stuck = r.report("stuck_deals")
    assert [row["deal_id"] for row in stuck["rows"]] == [r.ids.d3]
    assert stuck["rows"][0]["manager"] == "Менеджер volga 1"
    assert r.report("stuck_deals", as_user="head.ural")["totals"]["deals"] == 0
    assert r.report("stuck_deals", as_user="head.volga")["totals"]["deals"] == 1


def test_clients_erp_forecast_activity(reports):
    r, ids = reports, reports.ids
    ural, volga = str(r.org.departments["ural"]), str(r.org.departments["volga"])
    clients = r.report("new_clients", **OCT, group_by="department")
    assert by(clients["rows"], "department_id", "created", "potential_growth") == {
        ural: (2, 2), volga: (1, 0)}
    assert clients["totals"] == {"created": 3, "potential_growth": 2}

    idle = r.report("idle_clients", days=30)
    assert [(row["client_id"], row["idle_days"]) for row in idle["rows"]] == [
        (ids.c3, 50), (ids.c1, 37)]
    assert idle["totals"]["clients"] == 2
    assert {m["manager_id"]: m["clients"] for m in idle["totals"]["by_manager"]} == {
        r.org.id("m.ural.1"): 1, r.org.id("m.volga.1"): 1}
    assert [row["client_id"] for row in r.report("idle_clients", days=40)["rows"]] == [ids.c3]
    assert r.report("idle_clients", as_user="m.ural.1", days=30)["totals"]["clients"] == 1

    # INV-1: revision 3 (1500) then a late revision 2 (1200) that changes nothing; INV-2 unposted.
    assert r.report("invoices", **OCT)["totals"] == {"invoices": 1,
                                                     "invoiced_amount": "1500.00"}
    assert r.report("sales", **OCT)["totals"] == {
        "orders": 1, "ordered_amount": "2000.00", "invoices": 1, "invoiced_amount": "1500.00",
        "payments": 1, "paid_amount": "1500.00", "shipments": 1, "shipped_amount": "1500.00"}
    assert r.sql.scalar("SELECT revision FROM erp_documents WHERE document_guid = :g",
                        g=ids.inv1) == 3
    assert r.report("invoices", as_user="head.volga", **OCT)["totals"]["invoices"] == 0

    dec = {"period": "month", "date": "2026-12-01"}
    forecast = r.report("forecast", **dec)
    assert forecast["totals"] == {"deals": 2, "pipeline": "250000.00", "weighted": "120000.00",
                                  "plan": "400000.00", "weighted_to_plan": 0.3}
    per_manager = by(r.report("forecast", **dec, group_by="month,manager")["rows"], "manager_id",
                     "deals", "weighted", "plan")
    assert per_manager == {r.org.id("m.ural.1"): (0, "0.00", "300000.00"),
                           r.org.id("m.ural.2"): (1, "100000.00", "0.00"),
                           r.org.id("m.volga.1"): (1, "20000.00", "100000.00")}
    assert r.report("forecast", as_user="head.ural", **dec)["totals"]["plan"] == "300000.00"

    activity = r.report("activity", **OCT, group_by="manager")
    assert by(activity["rows"], "manager_id", "calls", "answered", "emails", "tasks_done",
              "tasks_overdue") == {r.org.id("m.ural.1"): (3, 2, 2, 1, 0),
                                   r.org.id("m.ural.2"): (1, 1, 0, 0, 1),
                                   r.org.id("m.volga.1"): (1, 0, 1, 0, 0)}
    daily = r.report("activity", **OCT)["rows"]
    assert {(row["manager_id"], row["period_start"]): row["emails"] for row in daily
            if row["emails"]} == {(r.org.id("m.ural.1"), "2026-10-05"): 1,
                                  (r.org.id("m.ural.1"), "2026-10-06"): 1,
                                  (r.org.id("m.volga.1"), "2026-10-07"): 1}


def test_rollups_and_raw_facts_agree(reports):
    engine = reports.sql.engine
    from sqlalchemy.orm import Session

    cases = [("calls", "week,department"), ("calls", "manager,region,segment"),
             ("calls", "day,region"), ("new_leads", "week,segment"),
             ("new_leads", "source,month"), ("new_clients", "department,segment"),
             ("invoices", "manager"), ("sales", "week"), ("activity", "manager,day"),
             ("funnel", "department,stage"), ("funnel", "stage")]
    with Session(engine) as session:
        for name, group in cases:
            params = scope(parse_params(name, {**OCT, "group_by": group}, date(2026, 11, 27)),
                           "director", reports.org.id("director"), None)
            queries = ReportQueries(session, utcnow())
            fast, naive = queries.run(params), queries.run(params, naive=True)
            assert fast == naive, name


def test_time_in_stage_from_the_histogram_is_within_its_error(reports):
    from sqlalchemy.orm import Session

    assert reports.sql.scalar("SELECT sum(stays) FROM stay_histogram") == 6   # closed stays
    with Session(reports.sql.engine) as session:
        for status in ("all", "closed"):
            params = scope(parse_params("stage_time", {**OCT, "status": status,
                                                       "group_by": "department,stage"},
                                        date(2026, 11, 27)),
                           "director", reports.org.id("director"), None)
            exact = ReportQueries(session, utcnow()).run(params)
            approx = ReportQueries(session, utcnow(), exact_limit=0).run(params)
            assert approx["totals"]["approximate"] is True
            assert [(r["department_id"], r["stage"], r["stays"], r["max_hours"])
                    for r in approx["rows"]] == [
                (r["department_id"], r["stage"], r["stays"], r["max_hours"])
                for r in exact["rows"]]
            for a, e in zip(approx["rows"] + [approx["totals"]],
                            exact["rows"] + [exact["totals"]], strict=True):
                for figure in ("median_hours", "p75_hours"):
                    assert abs(a[figure] - e[figure]) <= e[figure] * 0.026 + 0.01, (a, e)


def test_access_and_validation(reports):
    r = reports
    assert r.report("calls", as_user="head.ural", **OCT)["totals"]["calls"] == 4
    assert r.report("calls", as_user="m.ural.1", **OCT)["totals"]["calls"] == 3
    assert r.report("calls", as_user="m.volga.1", **OCT)["totals"]["calls"] == 1
    with pytest.raises(Forbidden):
        r.report("calls", as_user="m.ural.1", manager_id=r.org.id("m.ural.2"), **OCT)
    with pytest.raises(Forbidden):
        r.report("calls", as_user="head.ural", department_id=str(r.org.departments["volga"]))
    with pytest.raises(Forbidden):
        r.report("calls", as_user="admin")
    with pytest.raises(ValidationFailed) as bad:
        r.report("calls", group_by="stage")
    assert "group_by" in bad.value.fields
    with pytest.raises(NotFound):
        r.report("weather")
    catalogue = r.svc.call("list_reports", as_user="m.ural.1")
    assert {item["name"] for item in catalogue} >= {"calls", "funnel", "forecast", "activity"}


def test_exports_read_back(reports):
    r = reports
    params = {**OCT, "group_by": "week"}
    shown = r.report("calls", as_user="head.ural", **params)
    csv_file = r.svc.call("export_report", "calls", params, "csv", as_user="head.ural")
    assert csv_file["filename"] == "calls_2026-10-01_2026-10-31.csv"
    lines = list(csv.reader(io.StringIO(base64.b64decode(csv_file["content_base64"])
                                        .decode("utf-8-sig")), delimiter=";"))
    assert lines[0][:3] == ["Период", "Всего", "Входящие"]
    assert [line[:2] for line in lines[1:]] == [
        [row["period_start"], str(row["calls"])] for row in shown["rows"]] + [
        ["Итого", str(shown["totals"]["calls"])]]
    xlsx_file = r.svc.call("export_report", "sales", OCT, "xlsx", as_user="director")
    sheet = load_workbook(io.BytesIO(base64.b64decode(xlsx_file["content_base64"]))).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][1:3] == ("Заказов", "Заказано")
    assert values[-1][0] == "Итого" and values[-1][1:5] == (1, 2000.0, 1, 1500.0)
    with pytest.raises(ValidationFailed):
        r.svc.call("export_report", "calls", OCT, "pdf")


def test_business_gauges(reports):
    r = reports
    ural, volga = str(r.org.departments["ural"]), str(r.org.departments["volga"])
    figures = r.svc.call("business_metrics", as_user="director")
    assert figures == {"crm_calls_today": {ural: 1}, "crm_new_leads_today": {},
                       "crm_stuck_deals": {volga: 1}, "crm_overdue_tasks": {ural: 1}}
    address = r.container.config["WEB_SERVER_ADDRESS"]
    text = urllib.request.urlopen(f"http://{address}/metrics", timeout=5).read().decode()
    assert f'crm_stuck_deals{{department="{volga}"}} 1.0' in text
    assert f'crm_overdue_tasks{{department="{ural}"}} 1.0' in text
    assert f'crm_calls_today{{department="{ural}"}} 1.0' in text
    with pytest.raises(Forbidden):
        r.svc.call("business_metrics", as_user="m.ural.1")
