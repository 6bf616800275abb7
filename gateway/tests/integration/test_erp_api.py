"""The 1C exchange over HTTP: an integration account posts EnterpriseData messages (XML or zip) to
the gateway; repeats are acknowledged without effect; unreadable messages get a problem document
and land in the quarantine that admins see, re-drive and dismiss."""

from __future__ import annotations

import uuid

import pytest

from services.erp_bridge.service import ErpBridgeService
from services.erp_bridge.tests import ed_samples as ed

from .conftest import MANAGER_PASSWORD
from .test_api import problem

pytestmark = pytest.mark.integration

INTEGRATION_PASSWORD = "integration-password-1"


@pytest.fixture
def erp(api, admin_token, container_factory, service_config, service_db):
    container_factory(ErpBridgeService, service_config(db_url=service_db("erp_bridge"))).start()
    response = api.post("/api/v1/users", admin_token, json={
        "username": "erp.1c", "full_name": "Обмен с 1С", "role": "integration",
        "password": INTEGRATION_PASSWORD})
    assert response.status_code == 201, response.text
    return api.login("erp.1c", INTEGRATION_PASSWORD)


def post_message(api, token, data: bytes, content_type="application/xml", filename=None):
    headers = {"Content-Type": content_type, **({"X-Filename": filename} if filename else {})}
    return api.post("/api/v1/erp/enterprise-data", token, data=data, headers=headers)


def order(number="ЗК-1", amount="100.00"):
    return ed.order_xml(str(uuid.uuid4()), number, "2026-12-01T10:00:00", amount,
                        str(uuid.uuid4()), "7701234567", "770101001")


def test_messages_are_applied_acknowledged_and_repeats_change_nothing(api, erp, admin_token):
    first = post_message(api, erp, ed.ed_message(1, [order()]))
    assert first.status_code == 200, first.text
    assert first.json()["outcome"] == "applied"
    assert first.json()["by_type"] == {"erp_order_posted": 1}
    assert first.headers["X-Received-No"] == "1"
    zipped = post_message(api, erp, ed.zipped(ed.ed_message(2, [order("ЗК-2")])),
                          content_type="application/zip")
    assert zipped.status_code == 200 and zipped.json()["received_no"] == 2
    again = post_message(api, erp, ed.ed_message(1, [order()]))
    assert again.status_code == 200
    assert (again.json()["outcome"], again.json()["events"], again.json()["received_no"]) == (
        "repeat", 0, 2)
    status = api.get("/api/v1/erp/status", admin_token).json()
    assert status["senders"][0]["received_no"] == 2 and status["documents"] == {"order": 2}


def test_unreadable_messages_are_refused_and_quarantined(api, erp, admin_token, manager):
    bad = post_message(api, erp, b"<Message><msg:Header>", filename="Message_UT_CRM_7.xml")
    body = problem(bad, 422, "erp_message_rejected")
    entry = body["quarantine_id"]
    assert body["errors"] and "XML" in body["detail"]
    wrong_type = post_message(api, erp, b"{}", content_type="application/json")
    assert problem(wrong_type, 422, "validation_failed")["errors"][0]["field"] == "Content-Type"
    empty = post_message(api, erp, b"")
    problem(empty, 422, "validation_failed")
    manager_token = api.login("ivanov", MANAGER_PASSWORD)
    problem(post_message(api, manager_token, ed.ed_message(1, [])), 403, "role_required")
    problem(api.get("/api/v1/erp/quarantine", erp), 403, "role_required")

    listed = api.get("/api/v1/erp/quarantine", admin_token).json()
    assert [(q["id"], q["filename"], q["transport"]) for q in listed["items"]] == [
        (entry, "Message_UT_CRM_7.xml", "http")]
    assert listed["next_cursor"] is None
    still_bad = api.post(f"/api/v1/erp/quarantine/{entry}/redrive", admin_token)
    problem(still_bad, 422, "erp_message_rejected")
    dismissed = api.post(f"/api/v1/erp/quarantine/{entry}/dismiss", admin_token)
    assert dismissed.status_code == 200 and dismissed.json()["status"] == "dismissed"
    assert api.get("/api/v1/erp/quarantine", admin_token).json() == {"items": [],
                                                                     "next_cursor": None}
    problem(api.post(f"/api/v1/erp/quarantine/{entry}/dismiss", admin_token), 404, "not_found")
    # The next good message still flows.
    assert post_message(api, erp, ed.ed_message(1, [order()])).json()["outcome"] == "applied"
    # Reconciliation needs 1C's OData, which this system has not been given.
    problem(api.get("/api/v1/erp/reconciliation?date_from=2026-12-01&date_to=2026-12-31",
                    admin_token), 422, "odata_not_configured")
