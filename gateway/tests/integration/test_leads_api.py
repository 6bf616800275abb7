"""Lead intake over HTTP (issue 13 A): consent texts and consents, a web form created by the admin,
its page and embed script, the public submission endpoint (form-encoded and JSON; spam answered 202
but no lead; 413 over 16 KB; 422 naming fields; 429 with Retry-After), distribution settings and
absences. Directory, clients, deals and the gateway run for real on RabbitMQ and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from crm_platform.clock import clock

from .deals_system import running_deals_org

pytestmark = pytest.mark.integration

SITE = "https://roof.example"
NOW = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)


@pytest.fixture
def org(container_factory, service_config, rabbit_config, directory_db, service_db):
    with running_deals_org(container_factory, service_config, rabbit_config["AMQP_URI"],
                           service_db, directory_db) as org:
        yield org


def submit(org, key, data, *, origin=SITE, as_json=False):
    headers = {"Origin": origin} if origin else {}
    path = f"/api/v1/forms/{key}/submissions"
    if as_json:
        return org.api.post(path, json=data, headers=headers)
    return org.api.post(path, data=data, headers=headers)


def test_a_web_form_from_setup_to_lead_with_consent_spam_and_limits(org):
    clock.travel_to(NOW)
    text = org.post("admin", "/api/v1/consent-texts", json={
        "purpose": "processing", "version": "2026-12", "text": "Согласен на обработку ПДн"})
    assert text.status_code == 201, text.text
    response = org.post("admin", "/api/v1/lead-forms", json={
        "name": "Заявка на расчёт кровли", "department_id": org.dept("ural"),
        "allowed_origins": [SITE], "consent_text_version_id": text.json()["id"]})
    assert response.status_code == 201, response.text
    key = response.json()["key"]
    response = org.put("head.ural", f"/api/v1/departments/{org.dept('ural')}/lead-distribution",
                       json={"enabled": True, "mode": "round_robin", "daily_cap": 10})
    assert response.status_code == 200 and response.json()["enabled"] is True, response.text

    page = org.api.get(f"/forms/{key}")
    assert page.status_code == 200 and "Согласен на обработку ПДн" in page.text
    token = re.search(r'name="form_token" value="([^"]+)"', page.text).group(1)
    script = org.api.get(f"/forms/{key}/embed.js")
    assert script.status_code == 200 and f"/api/v1/forms/{key}/submissions" in script.text
    assert script.headers["Content-Type"].startswith("application/javascript")

    # Filled in within a second of the page: a bot. Answered like a lead, but none is made.
    fast = submit(org, key, {"form_token": token, "phone": "+7 912 111-22-33", "consent": "on"})
    assert fast.status_code == 202 and fast.json()["status"] == "accepted"
    assert fast.headers["Access-Control-Allow-Origin"] == SITE
    clock.travel_to(NOW + timedelta(seconds=30))
    honeypot = submit(org, key, {"form_token": token, "phone": "+7 912 111-22-33",
                                 "consent": "on", "website": "http://casino.example"})
    assert honeypot.status_code == 202
    assert org.deals.count("deals") == 0
    assert org.deals.scalar("SELECT count(*) FROM form_submissions WHERE status = 'spam'") == 2

    # A real visitor (form-encoded, as the page and embed.js post): a lead for a manager.
    lead = submit(org, key, {"form_token": token, "name": "Анна", "phone": "+7 912 111-22-33",
                             "company": "ИП Соколова", "consent": "on",
                             "utm_source": "yandex", "utm_campaign": "krovlya"})
    assert lead.status_code == 202, lead.text
    [deal] = org.deals.rows("SELECT id, owner_id FROM deals")
    assert str(deal.owner_id) in (org.id("m.ural.1"), org.id("m.ural.2"))
    shown = org.get_deal("head.ural", str(deal.id))
    assert shown["source"] == "web" and shown["source_detail"]["utm_campaign"] == "krovlya"
    assert shown["source_detail"]["form_key"] == key and shown["assigned_at"] is not None
    consents = org.get("admin", "/api/v1/consents", params={"phone": "89121112233"})
    assert consents.status_code == 200, consents.text
    [consent] = consents.json()
    assert (consent["text_version"], consent["source"], consent["ip"]) == (
        "2026-12", "web_form", "127.0.0.1")
    assert consent["given_at"] == (NOW + timedelta(seconds=30)).isoformat()

    # Bad fields are named; too big is 413; a foreign site is 403 — all problem+json.
    bad = submit(org, key, {"form_token": token, "email": "nope", "inn": "12"}, as_json=True)
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"email", "inn", "consent"}
    assert bad.headers["Content-Type"] == "application/problem+json"
    huge = submit(org, key, {"form_token": token, "message": "х" * 17000})
    assert huge.status_code == 413 and huge.json()["code"] == "payload_too_large"
    foreign = submit(org, key, {"form_token": token, "phone": "+79121112233"},
                     origin="https://evil.example")
    assert foreign.status_code == 403

    # The same address again and again: the token bucket (5 at once) says when to come back.
    statuses = [submit(org, key, {"form_token": token, "email": f"v{n}@example.ru",
                                  "consent": "on"}) for n in range(4)]
    assert [r.status_code for r in statuses][-1] == 429
    limited = statuses[-1]
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["code"] == "rate_limited"
    assert org.api.post("/api/v1/forms/unknown-key/submissions",
                        data={"phone": "1"}).status_code in (404, 429)


def test_absences_consents_and_settings_over_http(org):
    response = org.post("head.ural", f"/api/v1/users/{org.id('m.ural.1')}/absences", json={
        "kind": "vacation", "starts_on": "2026-12-14", "ends_on": "2026-12-25"})
    assert response.status_code == 201, response.text
    absence = response.json()
    forbidden = org.post("head.ural", f"/api/v1/users/{org.id('m.volga.1')}/absences", json={
        "kind": "vacation", "starts_on": "2026-12-14", "ends_on": "2026-12-25"})
    assert forbidden.status_code == 403
    listed = org.get("head.ural", "/api/v1/absences", params={"since": "2026-12-01"})
    assert [a["id"] for a in listed.json()] == [absence["id"]]
    cancelled = org.patch("admin", f"/api/v1/absences/{absence['id']}", json={"cancelled": True})
    assert cancelled.status_code == 200 and cancelled.json()["cancelled"] is True

    bad = org.put("admin", f"/api/v1/departments/{org.dept('ural')}/lead-distribution",
                  json={"enabled": True, "mode": "random", "daily_cap": 0})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"mode", "daily_cap"}
    url = f"/api/v1/departments/{org.dept('ural')}/lead-distribution"
    off = org.put("head.ural", url, json={"enabled": True, "off_duty": [org.id("m.ural.2")]})
    assert off.status_code == 200 and off.json()["off_duty"] == [org.id("m.ural.2")], off.text
    assert org.get("head.ural", url).json()["off_duty"] == [org.id("m.ural.2")]
    stranger = org.put("head.ural", url, json={"enabled": True,
                                               "off_duty": [org.id("m.volga.1")]})
    assert stranger.status_code == 422
    assert [e["field"] for e in stranger.json()["errors"]] == ["off_duty"]
    assert org.get("head.ural", url).json()["off_duty"] == [org.id("m.ural.2")]

    text = org.post("admin", "/api/v1/consent-texts", json={
        "purpose": "marketing_email", "version": "1", "text": "Согласен на рассылку"}).json()
    given = org.post("m.ural.1", "/api/v1/consents", json={
        "email": "Buyer@Example.ru", "purpose": "marketing_email",
        "text_version_id": text["id"], "source": "manual"})
    assert given.status_code == 201 and given.json()["email"] == "buyer@example.ru"
    withdrawn = org.post("m.ural.1", "/api/v1/consents/withdrawals", json={
        "email": "buyer@example.ru", "purpose": "marketing_email", "source": "email"})
    assert withdrawn.status_code == 200 and withdrawn.json()["withdrawn"] == 1
    history = org.get("m.ural.1", "/api/v1/consents", params={"email": "buyer@example.ru"})
    assert [h["granted"] for h in history.json()] == [False]
    texts = org.get("m.ural.1", "/api/v1/consent-texts", params={"purpose": "marketing_email"})
    assert [t["version"] for t in texts.json()] == ["1"]
