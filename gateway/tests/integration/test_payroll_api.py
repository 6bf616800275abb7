"""Payroll over HTTP, with the real directory, payroll and gateway on the real broker: end to end
from an ERP shipment event to the manager's live KPI stream; plans, the salary document's
workflow and its export through the public API."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from eventlet.queue import Empty

from crm_platform.testing import publish_events, wait_for
from services.payroll.service import PayrollService

from .test_api import problem
from .test_screenpop import SseReader

pytestmark = pytest.mark.integration

SCHEME = {"position": "manager", "valid_from": "2026-01-01", "name": "Менеджер", "fixed": "40000",
          "percentages": [{"kpi": "payments", "rate": "1"}],
          "bonus": {"base_kpi": "sales",
                    "tiers": [{"from_pct": "80", "rate": "1"}, {"from_pct": "100", "rate": "2"}]}}
HEAD_PASSWORD = "head-password-1"


@pytest.fixture
def payroll_service(api, container_factory, service_config, service_db):
    """Payroll, started before the people are created so it replicates them."""
    url = service_db("payroll")
    container = container_factory(PayrollService, service_config(db_url=url))
    container.start()
    return url


@pytest.fixture
def head_token(api, admin_token, department, payroll_service):
    response = api.post("/api/v1/users", admin_token, json={
        "username": "petrov", "full_name": "Петров Пётр", "role": "sales_head",
        "department_id": department["id"], "password": HEAD_PASSWORD})
    assert response.status_code == 201, response.text
    return api.login("petrov", HEAD_PASSWORD)


def put(api, path, token, **kwargs):
    return api.request("PUT", path, token, **kwargs)


def this_month() -> str:
    now = datetime.now(UTC) + timedelta(hours=3)          # Moscow
    return f"{now.year}-{now.month:02d}"


def wait_for_people(api, token, manager):
    return wait_for(lambda: api.get(f"/api/v1/kpi?user_id={manager['id']}", token)
                    .status_code == 200, message="payroll knows the people")


def test_an_erp_shipment_reaches_the_managers_kpi_stream(payroll_service, api, admin_token,
                                                         manager, manager_token, head_token,
                                                         rabbit_config):
    assert api.post("/api/v1/payroll/schemes", admin_token, json=SCHEME).status_code == 201
    wait_for_people(api, head_token, manager)
    month = this_month()
    response = put(api, f"/api/v1/payroll/plans/{month}/{manager['id']}", head_token,
                   json={"sales": "1000000"})
    assert response.status_code == 200, response.text
    client_id = str(uuid.uuid4())
    publish_events(rabbit_config["AMQP_URI"], [("clients", "client_created", {
        "client_id": client_id, "short_name": "ООО «Кровля»", "status": "active",
        "owner_id": manager["id"], "department_id": manager["department_id"]})])

    stream = SseReader(f"{api.base_url}/api/v1/kpi/stream?access_token={manager_token}")
    try:
        assert stream.response.status_code == 200
        assert stream.response.headers["Content-Type"].startswith("text/event-stream")
        hello, _ = stream.next_block()
        assert "connected" in hello["comments"]
        fields, _ = stream.next_event()           # the current widget first
        snapshot = json.loads(fields["data"])
        assert fields["event"] == "kpi" and snapshot["cause"] == "snapshot"
        assert snapshot["user_id"] == manager["id"]
        # The client's own events moved the widget before the stream opened; wait until the
        # service has them, then drain whatever came in between.
        wait_for(lambda: api.get("/api/v1/kpi", manager_token).json()["kpis"][2]["fact"]
                 is not None)
        while True:
            try:
                stream.next_event(timeout=0.5)
            except Empty:
                break

        # Another manager's figures never reach this stream.
        publish_events(rabbit_config["AMQP_URI"], [("payroll", "kpi_changed", {
            "user_id": str(uuid.uuid4()), "month": datetime.now(UTC).date().replace(day=1),
            "kpis": []})])
        published = time.monotonic()
        publish_events(rabbit_config["AMQP_URI"], [("erp_bridge", "erp_shipment_posted", {
            "document_guid": str(uuid.uuid4()), "document_version": "1", "revision": 1,
            "client_id": client_id, "number": "РТ-0001", "document_date": datetime.now(UTC),
            "amount": "850000.00", "lines": [{"quantity": "10", "amount": "850000.00",
                                              "weight_kg": "12000"}]})])
        fields, received = stream.next_event(timeout=5)
        data = json.loads(fields["data"])
        assert fields["event"] == "kpi" and data["cause"] == "erp_shipment_posted"
        assert data["user_id"] == manager["id"]
        figures = {k["kpi"]: k for k in data["kpis"]}
        assert figures["sales"] == {"kpi": "sales", "title": "Продажи (реализации), ₽",
                                    "plan": "1000000.00", "fact": "850000.00",
                                    "fulfilment": "85.00"}
        assert figures["shipments"]["fact"] == "12.000"
        assert data["projected_pay"] == "48500.00"      # 40 000 + 1 % of 850 000
        assert data["next_tier"]["from_pct"] == "100"
        assert data["next_tier"]["more_needed"] == "150000.00"
        assert received - published < 1.0, f"{(received - published) * 1000:.0f} ms"
        with pytest.raises(Empty):
            stream.next_event(timeout=0.5)
    finally:
        stream.close()

    widget = api.get("/api/v1/kpi", manager_token).json()
    assert widget["projected_pay"] == "48500.00"
    assert api.get(f"/api/v1/kpi?user_id={uuid.uuid4()}", manager_token).status_code == 403


def test_plans_documents_and_export_over_http(payroll_service, api, admin_token, manager,
                                              manager_token, head_token):
    assert api.post("/api/v1/payroll/schemes", manager_token, json=SCHEME).status_code == 403
    bad = api.post("/api/v1/payroll/schemes", admin_token, json={**SCHEME, "bonus": {
        "tiers": [{"from_pct": "80", "rate": "500"}]}})
    assert {e["field"] for e in problem(bad, 422)["errors"]} == {"bonus.tiers.0.rate"}
    created = api.post("/api/v1/payroll/schemes", admin_token, json=SCHEME)
    assert created.status_code == 201 and created.json()["version"] == 1
    wait_for_people(api, head_token, manager)

    path = f"/api/v1/payroll/plans/2026-10/{manager['id']}"
    assert put(api, path, manager_token, json={"sales": "1"}).status_code == 403
    assert problem(put(api, f"/api/v1/payroll/plans/2026-13/{manager['id']}", head_token,
                       json={"sales": "1"}), 422)["errors"][0]["field"] == "month"
    assert problem(put(api, path, head_token, json={"sales": "-1"}), 422)["errors"][0][
        "field"] == "sales"
    assert put(api, path, head_token, json={"sales": "500000", "calls": 100}).status_code == 200
    plans = api.get("/api/v1/payroll/plans?month=2026-10", head_token).json()
    assert plans["departments"][0]["sales"] == "500000.00"
    template = api.get("/api/v1/payroll/plans/2026-10/template", head_token)
    assert template.status_code == 200
    assert "attachment" in template.headers["Content-Disposition"]

    computed = api.post("/api/v1/payroll/documents/compute", head_token,
                        json={"month": "2026-10"}).json()
    (doc_id,) = computed["computed"]
    doc = api.get(f"/api/v1/payroll/documents/{doc_id}", manager_token).json()
    assert doc["state"] == "draft" and doc["total"] == "40000.00"
    assert api.post(f"/api/v1/payroll/documents/{doc_id}/approve",
                    head_token).status_code == 409           # not confirmed yet
    assert api.post(f"/api/v1/payroll/documents/{doc_id}/confirm",
                    head_token).status_code == 403           # not the head's own
    assert api.post(f"/api/v1/payroll/documents/{doc_id}/confirm",
                    manager_token).json()["state"] == "confirmed"
    returned = api.post(f"/api/v1/payroll/documents/{doc_id}/return", head_token,
                        json={"comment": "Нет оплат"})
    assert returned.json()["state"] == "draft"
    assert returned.json()["comments"][0]["text"] == "Нет оплат"
    api.post(f"/api/v1/payroll/documents/{doc_id}/confirm", manager_token)
    approved = api.post(f"/api/v1/payroll/documents/{doc_id}/approve", head_token)
    assert approved.json()["state"] == "approved"
    assert problem(api.post(f"/api/v1/payroll/documents/{doc_id}/recompute", head_token),
                   409)["code"] == "frozen"

    export = api.post("/api/v1/payroll/documents/export", head_token,
                      json={"month": "2026-10", "format": "csv"})
    assert export.status_code == 200
    assert "salary-2026-10.csv" in export.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(export.content.decode("utf-8-sig")), delimiter=";"))
    assert rows[1][0] == manager["id"] and rows[1][7] == "40000,00"
    listed = api.get("/api/v1/payroll/documents?month=2026-10", head_token).json()
    assert [d["state"] for d in listed] == ["exported"]
    assert api.post("/api/v1/payroll/documents/export", head_token,
                    json={"month": "2026-09"}).status_code == 409
