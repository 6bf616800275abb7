"""The sales head's and the admin's pages in a real browser through the real stack: a report with
its chart, data table and CSV download; a salary document approved (a return without a comment
refused on the page); the hand-over wizard for one client and a pool client assigned; the admin
creating a user (a refused extension shown next to the field), the mail page without the mail
service, and the ERP bridge's quarantine re-driven and dismissed. Screenshots: head_report,
salary, handover, admin_users, quarantine.

The stack runs in this process as for every UI test; the browser is driven from a child process
(``head_admin_browser.py`` through ``run_browser``, see browser_side.py). This process seeds
through the API and the broker before, and checks what the pages did through the API after."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from crm_platform.testing import publish_events, wait_for

from ..integration.conftest import ADMIN_PASSWORD
from .conftest import SCREENSHOTS, run_browser

pytestmark = pytest.mark.integration

SCHEME = {"position": "manager", "valid_from": "2026-01-01", "name": "Менеджер", "fixed": "40000",
          "percentages": [{"kpi": "payments", "rate": "1"}],
          "bonus": {"base_kpi": "sales",
                    "tiers": [{"from_pct": "80", "rate": "1"}, {"from_pct": "100", "rate": "2"}]}}


def ok(response, status=200):
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def browse(ui, scenario: str, **config) -> list[str]:
    """One scenario of head_admin_browser.py; its STEP lines."""
    return run_browser(ui, "head_admin_browser.py", scenario, config)


def test_sales_head_reads_a_report_with_its_chart(ui):
    org = ui.org
    manager = org.id("m.ural.1")
    # Calls of October 2026: 5 Oct three (two answered), 6 Oct one missed.
    calls = [("telephony", "call_registered", {
        "call_id": str(uuid.uuid4()), "user_id": manager, "direction": direction,
        "answered": answered, "started_at": datetime(2026, 10, day, 9, minute, tzinfo=UTC),
        "duration_seconds": 70, "talk_seconds": 60 if answered else 0})
        for day, minute, direction, answered in ((5, 1, "inbound", True),
                                                  (5, 2, "outbound", True),
                                                  (5, 3, "outbound", False),
                                                  (6, 4, "inbound", False))]
    publish_events(ui.amqp_uri, calls)
    query = {"period": "month", "date": "2026-10-15"}
    wait_for(lambda: org.get("head.ural", "/api/v1/reports/calls", params=query)
             .json().get("totals", {}).get("calls") == 4, timeout=30,
             message="the calls in the reports service")

    assert browse(ui, "report") == ["STEP table", "STEP chart", "STEP csv", "STEP bad filter",
                                    "STEP other reports"]
    assert (SCREENSHOTS / "head_report.png").stat().st_size > 10_000


def test_sales_head_approves_a_salary_document(ui):
    org = ui.org
    manager = org.id("m.ural.1")
    ok(org.post("admin", "/api/v1/payroll/schemes", json=SCHEME), 201)
    ok(org.put("admin", f"/api/v1/payroll/positions/{manager}", json={"position": "manager"}))
    wait_for(lambda: org.put("head.ural", f"/api/v1/payroll/plans/2026-10/{manager}",
                             json={"sales": "500000"}).status_code == 200, timeout=30,
             message="payroll knows the people")
    computed = ok(org.post("head.ural", "/api/v1/payroll/documents/compute",
                           json={"month": "2026-10", "user_id": manager}))
    (doc_id,) = computed["computed"]
    # Only the manager confirms their own document (the payroll service's rule); the head then
    # approves it on the page.
    assert ok(org.post("m.ural.1", f"/api/v1/payroll/documents/{doc_id}/confirm"))[
        "state"] == "confirmed"

    assert browse(ui, "salary", document_id=doc_id) == [
        "STEP document", "STEP return refused", "STEP approved"]
    document = ok(org.get("head.ural", f"/api/v1/payroll/documents/{doc_id}"))
    assert document["state"] == "approved" and document["approved_by"] == org.id("head.ural")
    assert document["comments"] == []          # the refused return left nothing behind


def test_sales_head_hands_a_client_over_and_assigns_one_from_the_pool(ui):
    org = ui.org
    leaving = org.client("m.ural.1", "ООО «Уходящий клиент»")
    pool_client = org.client("head.ural", "ООО «Ничей»")
    # The head's own client back to the pool: the department's pool has one client.
    ok(org.put("head.ural", f"/api/v1/clients/{pool_client['id']}/owner",
               json={"owner_id": None}))

    assert browse(ui, "handover") == [
        "STEP preview", "STEP handed over", "STEP assigned"]
    assert ok(org.get("head.ural", f"/api/v1/clients/{leaving['id']}"))[
        "owner_id"] == org.id("m.ural.2")
    assert ok(org.get("head.ural", f"/api/v1/clients/{pool_client['id']}"))[
        "owner_id"] == org.id("m.ural.1")


def test_admin_creates_a_user_and_clears_the_erp_quarantine(ui):
    org = ui.org
    bad = org.post("site", "/api/v1/erp/enterprise-data", data=b"<Message><msg:Header>",
                   headers={"Content-Type": "application/xml",
                            "X-Filename": "Message_UT_CRM_9.xml"})
    assert bad.status_code == 422, bad.text
    entry = bad.json()["quarantine_id"]

    assert browse(ui, "admin", admin_password=ADMIN_PASSWORD, entry=entry) == [
        "STEP refused", "STEP created", "STEP mail unavailable", "STEP dismissed",
        "STEP funnel", "STEP scheme"]
    listed = ok(org.get("admin", "/api/v1/users", params={"role": "manager", "limit": 100}))
    users = listed["items"]
    created = [u for u in users if u["username"] == "new.manager"]
    assert [(u["full_name"], u["extension"], u["department_id"]) for u in created] == [
        ("Новиков Николай", "777", org.dept("ural"))]
    assert ok(org.get("admin", "/api/v1/erp/quarantine"))["items"] == []
    (funnel,) = ok(org.get("admin", "/api/v1/funnels"))
    assert funnel["stages"][0]["probability"] == 15
    schemes = ok(org.get("admin", "/api/v1/payroll/schemes", params={"position": "manager"}))
    schemes = schemes["items"] if isinstance(schemes, dict) else schemes   # a list, or a page
    assert [(s["version"], s["valid_from"], s["fixed"], s["bonus"]["tiers"]) for s in schemes] == [
        (1, "2027-01-01", "45000.00", [{"from_pct": "80", "rate": "1.5"}])]
    for name in ("admin_users", "quarantine"):
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000
