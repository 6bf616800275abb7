"""Plans: entered by the department's head (a director: any), rolled up per department, copied
from the previous month, imported from XLSX whole or not at all (row errors named), each change
emitted as ``sales_plan_changed`` in the form the deals forecast reads."""

from __future__ import annotations

import base64
import io

import pytest
from openpyxl import Workbook, load_workbook

from crm_platform.contracts import parse_envelope
from crm_platform.errors import Forbidden, NotFound, ValidationFailed

pytestmark = pytest.mark.integration

OCT, NOV = "2026-10-01", "2026-11-01"


def xlsx(rows) -> str:
    book = Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return base64.b64encode(out.getvalue()).decode()


def test_heads_plan_their_department_and_the_rollup_sums_it(payroll):
    org, svc = payroll.org, payroll.svc
    plan = svc.set_plan(org.id("m.ural.1"), NOV, {"sales": "1000000", "shipments": "12.5",
                                                  "calls": 300}, as_user="head.ural")
    assert plan["sales"] == "1000000.00" and plan["shipments"] == "12.50"
    svc.set_plan(org.id("m.ural.2"), NOV, {"sales": "500000.50", "calls": 200},
                 as_user="head.ural")
    svc.set_plan(org.id("m.volga.1"), NOV, {"sales": "700000"}, as_user="director")
    with pytest.raises(Forbidden):
        svc.set_plan(org.id("m.volga.1"), NOV, {"sales": "1"}, as_user="head.ural")
    with pytest.raises(Forbidden):
        svc.set_plan(org.id("m.ural.1"), NOV, {"sales": "1"}, as_user="m.ural.1")
    with pytest.raises(NotFound):
        svc.set_plan(org.id("head.ural"), NOV, {"sales": "1"}, as_user="director")
    with pytest.raises(ValidationFailed) as bad:
        svc.set_plan(org.id("m.ural.1"), NOV, {"sales": "-5", "calls": 1.5},
                     as_user="head.ural")
    assert set(bad.value.fields) == {"sales", "calls"}

    ural = svc.get_plans(NOV, as_user="head.ural")
    assert [m["full_name"] for m in ural["managers"]] == ["Менеджер ural 1", "Менеджер ural 2"]
    (dept,) = ural["departments"]
    assert (dept["sales"], dept["calls"], dept["managers"], dept["planned"]) == (
        "1500000.50", 500, 2, 2)
    everyone = svc.get_plans(NOV, as_user="director")
    assert len(everyone["departments"]) == 2
    own = svc.get_plans(NOV, as_user="m.ural.2")
    assert [m["plan"]["sales"] for m in own["managers"]] == ["500000.50"]

    # Each change went out as sales_plan_changed, readable by its contract (the deals side).
    emitted = payroll.outbox("sales_plan_changed")
    assert len(emitted) == 3
    event = parse_envelope(payroll.sql.rows(
        "SELECT envelope FROM outbox WHERE type = 'sales_plan_changed' ORDER BY id")[0][
        "envelope"])
    assert str(event.payload["user_id"]) == org.id("m.ural.1")
    assert str(event.payload["sales_amount"]) == "1000000.00"
    assert event.payload["calls"] == 300


def test_copy_from_the_previous_month_keeps_plans_already_set(payroll):
    org, svc = payroll.org, payroll.svc
    svc.set_plan(org.id("m.ural.1"), OCT, {"sales": "800000", "meetings": 10},
                 as_user="head.ural")
    svc.set_plan(org.id("m.ural.2"), OCT, {"sales": "600000"}, as_user="head.ural")
    svc.set_plan(org.id("m.volga.1"), OCT, {"sales": "100"}, as_user="head.volga")
    svc.set_plan(org.id("m.ural.2"), NOV, {"sales": "650000"}, as_user="head.ural")
    result = svc.copy_plans(NOV, as_user="head.ural")
    assert result["copied"] == 1 and result["source_month"] == OCT
    plans = {m["user_id"]: m["plan"] for m in svc.get_plans(NOV, as_user="director")[
        "managers"]}
    assert plans[org.id("m.ural.1")]["sales"] == "800000.00"
    assert plans[org.id("m.ural.1")]["meetings"] == 10
    assert plans[org.id("m.ural.2")]["sales"] == "650000.00"     # kept
    assert plans[org.id("m.volga.1")] is None                     # not the head's department


def test_xlsx_import_is_all_or_nothing_with_errors_per_row(payroll):
    org, svc = payroll.org, payroll.svc
    template = svc.plan_template(NOV, as_user="head.ural")
    book = load_workbook(io.BytesIO(base64.b64decode(template["content_base64"])))
    rows = list(book.active.iter_rows(values_only=True))
    assert rows[0][:3] == ("user_id", "Менеджер", "Продажи (реализации), ₽")
    assert {r[0] for r in rows[1:]} == {org.id("m.ural.1"), org.id("m.ural.2")}

    header = list(rows[0])
    bad = xlsx([header,
                [org.id("m.ural.1"), "", "1 200 000,50", 10, None, None, 250, 8],
                [org.id("m.volga.1"), "", 500000, None, None, None, None, None],
                [org.id("m.ural.2"), "", "много", None, None, None, "2.5", None],
                ["not-a-user", "", 1, None, None, None, None, None]])
    with pytest.raises(ValidationFailed) as refused:
        svc.import_plans(NOV, bad, as_user="head.ural")
    errors = {row["row"]: row["errors"] for row in refused.value.extra["rows"]}
    assert set(errors) == {3, 4, 5}
    assert errors[3][0]["field"] == "user_id"
    assert "не из вашего отдела" in errors[3][0]["reasons"][0]
    assert {e["field"] for e in errors[4]} == {"sales", "calls"}
    assert errors[4][0]["column"] == "Продажи (реализации), ₽"
    assert payroll.sql.count("sales_plans") == 0            # nothing half-applied
    assert payroll.outbox("sales_plan_changed") == []

    good = xlsx([header,
                 [org.id("m.ural.1"), "", "1 200 000,50", 10, None, None, 250, 8],
                 [org.id("m.ural.2"), "", 900000, None, 850000, 3, None, None]])
    assert svc.import_plans(NOV, good, as_user="head.ural")["imported"] == 2
    plans = {m["user_id"]: m["plan"] for m in svc.get_plans(NOV, as_user="head.ural")[
        "managers"]}
    assert plans[org.id("m.ural.1")]["sales"] == "1200000.50"
    assert plans[org.id("m.ural.1")]["calls"] == 250
    assert plans[org.id("m.ural.2")]["payments"] == "850000.00"
    assert len(payroll.outbox("sales_plan_changed")) == 2
    with pytest.raises(ValidationFailed):
        svc.import_plans(NOV, base64.b64encode(b"not a workbook").decode(),
                         as_user="head.ural")
