"""Reports over HTTP: the catalogue, a report as JSON, as CSV (``format``) and as XLSX
(``Accept``), with the service's access rules and the query's validation as problem documents."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime

import pytest
from openpyxl import load_workbook

from crm_platform.testing import publish_events, wait_for
from services.reports.service import ReportsService

from .conftest import MANAGER_PASSWORD
from .test_api import problem

pytestmark = pytest.mark.integration

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def reports(container_factory, service_config, service_db):
    container_factory(ReportsService, service_config(
        db_url=service_db("reports"), EVENT_BATCH_MAX_WAIT_MS=20,
        REPORTS_METRICS_SECONDS=0)).start()


def test_reports_as_json_csv_and_xlsx(api, reports, admin_token, manager, manager_token,
                                      rabbit_config):
    response = api.post("/api/v1/users", admin_token, json={
        "username": "boss", "full_name": "Директор", "role": "director",
        "password": MANAGER_PASSWORD})
    assert response.status_code == 201, response.text
    director = api.login("boss", MANAGER_PASSWORD)
    calls = [("telephony", "call_registered", {
        "call_id": str(uuid.uuid4()), "user_id": manager["id"], "direction": direction,
        "answered": answered, "started_at": datetime(2026, 10, day, 9, tzinfo=UTC),
        "duration_seconds": 70, "talk_seconds": 60 if answered else 0})
        for day, direction, answered in ((5, "inbound", True), (6, "outbound", False),
                                         (13, "outbound", True))]
    publish_events(rabbit_config["AMQP_URI"], calls)
    query = {"period": "month", "date": "2026-10-15", "group_by": "week,manager"}

    def report():
        answer = api.get("/api/v1/reports/calls", director, params=query)
        return answer if answer.status_code == 200 and \
            answer.json()["totals"]["calls"] == 3 else None

    body = wait_for(report, message="the calls in the report").json()
    # The manager's department arrived from the directory's events.
    assert body["totals"]["answered"] == 2 and body["totals"]["talk_seconds"] == 120
    assert [(row["period_start"], row["manager"], row["calls"]) for row in body["rows"]] == [
        ("2026-10-05", "Иванов Иван", 2), ("2026-10-12", "Иванов Иван", 1)]
    by_department = api.get("/api/v1/reports/calls", director, params={
        **query, "group_by": "department"}).json()
    assert [row["department"] for row in by_department["rows"]] == ["Отдел продаж Москва"]

    catalogue = api.get("/api/v1/reports", manager_token)
    assert catalogue.status_code == 200 and "funnel" in {r["name"] for r in catalogue.json()}

    as_csv = api.get("/api/v1/reports/calls", manager_token, params={**query, "format": "csv"})
    assert as_csv.status_code == 200 and as_csv.headers["Content-Type"].startswith("text/csv")
    assert "calls_2026-10-01_2026-10-31.csv" in as_csv.headers["Content-Disposition"]
    lines = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig")), delimiter=";"))
    assert lines[0][:3] == ["Период", "Менеджер", "Всего"]
    assert lines[-1][0] == "Итого" and lines[-1][2] == "3"

    as_xlsx = api.get("/api/v1/reports/calls", manager_token, params=query,
                      headers={"Accept": XLSX})
    assert as_xlsx.status_code == 200 and as_xlsx.headers["Content-Type"] == XLSX
    rows = list(load_workbook(io.BytesIO(as_xlsx.content)).active.iter_rows(values_only=True))
    assert rows[1][:3] == ("2026-10-05", "Иванов Иван", 2)


def test_report_problems(api, reports, admin_token, manager_token):
    other = str(uuid.uuid4())
    forbidden = api.get("/api/v1/reports/calls", manager_token, params={"manager_id": other})
    assert problem(forbidden, 403)["code"] == "report_forbidden"
    bad = api.get("/api/v1/reports/calls", manager_token, params={"group_by": "stage"})
    assert [e["field"] for e in problem(bad, 422)["errors"]] == ["group_by"]
    shape = api.get("/api/v1/reports/calls", manager_token, params={"period": "decade"})
    assert [e["field"] for e in problem(shape, 422)["errors"]] == ["period"]
    assert problem(api.get("/api/v1/reports/weather", manager_token), 404)["code"] == \
        "report_not_found"
    assert api.get("/api/v1/reports/calls").status_code == 401
    assert problem(api.get("/api/v1/reports/calls", admin_token), 403)["code"] == "role_required"
