"""The public unsubscribe page in a real browser: the link from a campaign e-mail opens a page
with one button (opening it changes nothing), the button unsubscribes without a login, and a
forged link says it is invalid. The clients service runs beside the gateway."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from crm_platform.clock import utcnow
from crm_platform.testing import ReplicatedOrg, ServiceCaller
from gateway.service import GatewayService
from services.clients.service import ClientsService

pytestmark = pytest.mark.integration

SECRET = "browser-test-secret-0123456789"


@pytest.fixture
def unsubscribe_link(container_factory, service_config, service_db):
    url = service_db("clients")
    org = ReplicatedOrg(url)
    clients = container_factory(ClientsService, service_config(
        db_url=url, CAMPAIGN_UNSUBSCRIBE_SECRET=SECRET))
    config = service_config()
    gateway = container_factory(GatewayService, config)
    clients.start()
    gateway.start()
    base = f"http://{config['WEB_SERVER_ADDRESS']}"
    svc = ServiceCaller(clients, org)
    svc.create_client({"short_name": "ООО «Альфа»", "emails": ["zakaz@alfa.ru"]})
    with org.engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO consents (email, purpose, given_at, source, recorded_at) "
            "VALUES ('zakaz@alfa.ru', 'marketing_email', :at, 'web_form', :at)"), {"at": utcnow()})
    campaign = svc.call("create_campaign", {
        "name": "Акция", "goal": "event", "filter": {"field": "status", "op": "eq",
                                                     "value": "potential"},
        "mailbox_id": "6f1c1f4e-4b1d-4c59-9a57-7c0f1d1a2b3c", "email_subject": "Акция",
        "email_body": "Скидки"}, as_user="head.ural")
    svc.call("change_campaign_state", campaign["campaign_id"], "running", as_user="head.ural")
    token = org.scalar("SELECT envelope->'payload'->>'unsubscribe_url' FROM outbox "
                       "WHERE type = 'campaign_email_requested'").rsplit("/", 1)[1]
    yield base, token, org
    org.dispose()


def test_unsubscribe_in_the_browser(browser, unsubscribe_link):
    base, token, org = unsubscribe_link

    def status():
        return org.scalar("SELECT status FROM campaign_recipients")

    browser.get(f"{base}/u/{token[:-4]}abcd")
    browser.find_element(By.ID, "unsubscribe").click()          # a forged link's button
    WebDriverWait(browser, 10).until(ec.text_to_be_present_in_element(
        (By.TAG_NAME, "h1"), "Ссылка недействительна"))
    assert status() == "queued"

    browser.get(f"{base}/u/{token}")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Отписаться от рассылки?"
    assert status() == "queued"                                  # opening changes nothing
    browser.find_element(By.ID, "unsubscribe").click()
    WebDriverWait(browser, 10).until(ec.text_to_be_present_in_element(
        (By.TAG_NAME, "h1"), "Вы отписаны"))
    assert "zakaz@alfa.ru" in browser.find_element(By.TAG_NAME, "body").text
    assert status() == "unsubscribed"
