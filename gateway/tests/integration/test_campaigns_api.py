"""Campaigns through the public HTTP API and the public unsubscribe page (gateway -> RabbitMQ RPC
-> clients -> PostgreSQL): create, validate, launch (consent decides who is queued), list the
recipients, and unsubscribe by the signed link without a login (page, then RFC 8058 one-click).
The running system is that of ``test_clients_api``."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from crm_platform.clock import utcnow

from . import test_clients_api as base
from .test_api import error_fields
from .test_clients_api import STROYMETALL

clients_db = base.clients_db
org = base.org

pytestmark = pytest.mark.integration

SECRET = "gateway-test-secret-0123456789"


@pytest.fixture
def service_config(service_config):
    def make(db_url: str | None = None, **overrides) -> dict:
        return service_config(db_url=db_url, **{
            "CAMPAIGN_UNSUBSCRIBE_SECRET": SECRET,
            "CAMPAIGN_UNSUBSCRIBE_BASE_URL": "https://crm.test/u/", **overrides})

    return make


def test_campaign_launch_and_unsubscribe_over_http(org):
    org.create("m.ural.1", **STROYMETALL, contacts=[
        {"full_name": "Иванов Иван", "emails": ["ivanov@stroymetall.ru"]}])
    with org.db.begin() as conn:          # a consent given earlier (the consent store's table)
        conn.execute(sa.text(
            "INSERT INTO consents (email, purpose, given_at, source, recorded_at) "
            "VALUES ('ivanov@stroymetall.ru', 'marketing_email', :at, 'web_form', :at)"),
            {"at": utcnow()})

    bad = org.post("head.ural", "/api/v1/marketing/campaigns", json={
        "name": "", "goal": "spam", "budget": "abc"})
    assert bad.status_code == 422
    assert {"name", "goal", "budget"} <= error_fields(bad.json())
    body = {"name": "Металлочерепица 2027", "goal": "new_product", "channels": ["email"],
            "filter": {"field": "region", "op": "eq", "value": "RU-SVE"},
            "budget": "25000.00", "mailbox_id": "6f1c1f4e-4b1d-4c59-9a57-7c0f1d1a2b3c",
            "email_subject": "{{ client_name }}: новинка", "email_body": "Здравствуйте!"}
    assert org.post("m.ural.1", "/api/v1/marketing/campaigns", json=body).status_code == 403
    created = org.post("head.ural", "/api/v1/marketing/campaigns", json=body)
    assert created.status_code == 201, created.text
    campaign = created.json()
    assert campaign["state"] == "draft" and campaign["budget"] == "25000.00"
    base_path = f"/api/v1/marketing/campaigns/{campaign['campaign_id']}"

    wrong = org.post("head.ural", base_path + "/state", json={"state": "finished"})
    assert wrong.status_code == 409
    launched = org.post("head.ural", base_path + "/state", json={"state": "running"})
    assert launched.status_code == 200, launched.text
    assert launched.json()["recipients"] == {"queued": 1, "skipped_no_consent": 1}
    listed = org.get("head.ural", base_path + "/recipients").json()["items"]
    assert {i["email"]: i["status"] for i in listed} == {
        "ivanov@stroymetall.ru": "queued", "sales@stroymetall.ru": "skipped_no_consent"}
    assert org.get("head.volga", base_path).status_code == 404

    with org.db.connect() as conn:
        url = conn.execute(sa.text(
            "SELECT envelope->'payload'->>'unsubscribe_url' FROM outbox "
            "WHERE type = 'campaign_email_requested'")).scalar_one()
    token = url.rsplit("/", 1)[1]
    page = org.get(None, f"/u/{token}")
    assert page.status_code == 200 and 'id="unsubscribe"' in page.text
    forged = org.post(None, f"/u/{token[:-3]}abc", data={"List-Unsubscribe": "One-Click"})
    assert forged.status_code == 404 and "недействительна" in forged.text
    done = org.post(None, f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and "ivanov@stroymetall.ru" in done.text
    listed = org.get("head.ural", base_path + "/recipients?status=unsubscribed").json()["items"]
    assert [i["email"] for i in listed] == ["ivanov@stroymetall.ru"]
    with org.db.connect() as conn:
        assert conn.execute(sa.text(
            "SELECT count(*) FROM consents WHERE email = 'ivanov@stroymetall.ru' "
            "AND withdrawn_at IS NOT NULL")).scalar() == 1


def test_personal_data_requests_over_http(org):
    """Export and erasure through the gateway, admin and director only. Only the clients service
    runs here, so the others are recorded as failed and the request is ``partial`` (the full
    run across services is services/clients/tests/integration/test_privacy.py)."""
    org.create("m.ural.1", **STROYMETALL, contacts=[
        {"full_name": "Иванов Иван", "emails": ["ivanov@stroymetall.ru"]}])
    body = {"kind": "export", "email": "ivanov@stroymetall.ru"}
    assert org.post("m.ural.1", "/api/v1/privacy/requests", json=body).status_code == 403
    bad = org.post("director", "/api/v1/privacy/requests", json={"kind": "export",
                                                                 "email": "нет"})
    assert bad.status_code == 422 and "email" in error_fields(bad.json())
    exported = org.post("director", "/api/v1/privacy/requests",
                        json={**body, "format": "xlsx"})
    assert exported.status_code == 200, exported.text
    assert exported.headers["Content-Type"].startswith(
        "application/vnd.openxmlformats-officedocument")
    listed = org.get("admin", "/api/v1/privacy/requests")
    assert listed.status_code == 200
    (item,) = listed.json()
    assert item["kind"] == "export" and item["person"] == "i***@stroymetall.ru"
    assert item["services"]["clients"]["status"] == "ok"
