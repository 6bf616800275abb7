"""Report parameters, access scopes, derived figures and the CSV/XLSX files (pure)."""

import csv
import io
import uuid
from datetime import date
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from services.reports.domain import export
from services.reports.domain.catalogue import (
    REPORTS,
    AccessDenied,
    ParamsError,
    parse_params,
    scope,
    totals,
)

TODAY = date(2026, 11, 27)
DEPT, OTHER = str(uuid.uuid4()), str(uuid.uuid4())
ME, SOMEONE = str(uuid.uuid4()), str(uuid.uuid4())


def test_defaults_and_grouping():
    params = parse_params("calls", {}, TODAY)
    assert (params.first, params.last, params.group_by) == (date(2026, 11, 1),
                                                           date(2026, 11, 30), ("day",))
    params = parse_params("calls", {"group_by": "week,department", "period": "year"}, TODAY)
    assert params.group_by == ("week", "department") and params.bucket == "week"
    assert not params.needs_facts
    assert parse_params("calls", {"client_id": SOMEONE}, TODAY).needs_facts
    assert parse_params("new_leads", {"group_by": ["source", "manager"]}, TODAY).group_by == (
        "source", "manager")


@pytest.mark.parametrize("name, raw, field", [
    ("nope", {}, "name"),
    ("calls", {"group_by": "stage"}, "group_by"),
    ("calls", {"group_by": "day,week"}, "group_by"),
    ("calls", {"manager_id": "not-a-uuid"}, "manager_id"),
    ("calls", {"date": "27.11.2026"}, "date"),
    ("calls", {"period": "custom", "date_from": "2026-01-01"}, "date_to"),
    ("calls", {"colour": "red"}, "colour"),
    ("idle_clients", {"days": "0"}, "days"),
    ("stage_time", {"status": "maybe"}, "status"),
    ("forecast", {"group_by": "client"}, "group_by"),
])
def test_bad_parameters_name_the_field(name, raw, field):
    with pytest.raises(ParamsError) as error:
        parse_params(name, raw, TODAY)
    assert error.value.field == field


def test_scope_manager_head_director():
    params = parse_params("calls", {}, TODAY)
    mine = scope(params, "manager", ME, DEPT)
    assert mine.scope_user == uuid.UUID(ME) and mine.scope_department is None
    with pytest.raises(AccessDenied):
        scope(parse_params("calls", {"manager_id": SOMEONE}, TODAY), "manager", ME, DEPT)
    head = scope(params, "sales_head", ME, DEPT)
    assert head.scope_department == uuid.UUID(DEPT) and head.scope_user is None
    with pytest.raises(AccessDenied):
        scope(parse_params("calls", {"department_id": OTHER}, TODAY), "sales_head", ME, DEPT)
    with pytest.raises(AccessDenied):
        scope(params, "sales_head", ME, None)
    everything = scope(params, "director", ME, None)
    assert everything.scope_user is None and everything.scope_department is None
    for role in ("admin", "integration"):
        with pytest.raises(AccessDenied):
            scope(params, role, ME, None)


def test_totals_and_derived_figures():
    rows = [{"calls": 5, "inbound": 2, "answered": 4, "targeted": 3, "talk_seconds": 100},
            {"calls": 1, "inbound": 1, "answered": 0, "targeted": 0, "talk_seconds": 0}]
    total = totals(REPORTS["calls"], rows)
    assert total == {"calls": 6, "inbound": 3, "answered": 4, "targeted": 3,
                     "talk_seconds": 100, "outbound": 3, "missed": 2, "untargeted": 3}
    forecast = totals(REPORTS["forecast"], [
        {"deals": 1, "pipeline": Decimal("100.00"), "weighted": Decimal("50.00"),
         "plan": Decimal("200.00")}])
    assert forecast["weighted_to_plan"] == 0.25


COLUMNS = [{"key": "period_start", "title": "Период"}, {"key": "calls", "title": "Всего"},
           {"key": "amount", "title": "Сумма"}]
ROWS = [{"period_start": "2026-11-01", "calls": 3, "amount": Decimal("10.50")},
        {"period_start": "2026-12-01", "calls": 0, "amount": Decimal("0.00")}]
TOTALS = {"calls": 3, "amount": Decimal("10.50")}


def test_csv_reads_back_in_excel_dialect():
    content = export.render("csv", COLUMNS, ROWS, TOTALS, "Звонки")
    assert content.startswith("\ufeff".encode())
    lines = list(csv.reader(io.StringIO(content.decode("utf-8-sig")), delimiter=";"))
    assert lines == [["Период", "Всего", "Сумма"], ["2026-11-01", "3", "10.50"],
                     ["2026-12-01", "0", "0.00"], ["Итого", "3", "10.50"]]


def test_xlsx_reads_back_with_numbers():
    content = export.render("xlsx", COLUMNS, ROWS, TOTALS, "Звонки")
    sheet = load_workbook(io.BytesIO(content)).active
    assert sheet.title == "Звонки"
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert values == [["Период", "Всего", "Сумма"], ["2026-11-01", 3, 10.5],
                      ["2026-12-01", 0, 0], ["Итого", 3, 10.5]]
    with pytest.raises(ValueError):
        export.render("pdf", COLUMNS, ROWS, TOTALS, "x")
