"""A web form in a real browser: the plain page ``/forms/<key>`` (errors shown next to the fields,
then the thank-you page), and ``embed.js`` on another site's page (served here from a second local
port) posting cross-site and showing its answer. The leads land in the deals service."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from crm_platform.testing import free_port
from gateway.tests.integration.deals_system import running_deals_org
from services.directory.admin import ensure_admin

pytestmark = pytest.mark.integration


@pytest.fixture
def org(container_factory, service_config, rabbit_config, service_db):
    directory_db = service_db("directory")
    ensure_admin(directory_db, "admin", "admin12345")
    with running_deals_org(container_factory, service_config, rabbit_config["AMQP_URI"],
                           service_db, directory_db,
                           deals_config={"FORM_MIN_FILL_SECONDS": 1}) as org:
        yield org


@pytest.fixture
def other_site():
    """A customer's site on another origin whose page includes the embed script."""
    pages: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]
            body = pages.get(path, b"not found")
            self.send_response(200 if path in pages else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", pages
    server.shutdown()
    server.server_close()


def make_form(org) -> str:
    text = org.post("admin", "/api/v1/consent-texts", json={
        "purpose": "processing", "version": "1", "text": "Согласен на обработку ПДн"}).json()
    response = org.post("admin", "/api/v1/lead-forms", json={
        "name": "Расчёт кровли", "department_id": org.dept("ural"),
        "consent_text_version_id": text["id"]})
    assert response.status_code == 201, response.text
    return response.json()["key"]


def test_the_form_page_shows_errors_then_takes_the_lead(org, browser):
    key = make_form(org)
    wait = WebDriverWait(browser, 30)
    browser.get(f"{org.api.base_url}/forms/{key}")
    wait.until(ec.presence_of_element_located((By.ID, "lead-form")))
    time.sleep(1.2)                                   # a person takes longer than a bot
    browser.find_element(By.ID, "f-email").send_keys("не адрес")
    browser.find_element(By.CSS_SELECTOR, "#lead-form button[type=submit]").click()
    wait.until(ec.presence_of_element_located((By.CLASS_NAME, "error")))
    errors = " ".join(e.text for e in browser.find_elements(By.CLASS_NAME, "error"))
    assert "name@example.ru" in errors and "согласие" in errors
    email = browser.find_element(By.ID, "f-email")
    email.clear()
    email.send_keys("buyer@example.ru")
    browser.find_element(By.ID, "f-name").send_keys("Анна")
    browser.find_element(By.ID, "f-consent").click()
    browser.find_element(By.CSS_SELECTOR, "#lead-form button[type=submit]").click()
    wait.until(lambda b: "Спасибо" in b.page_source)
    [deal] = org.deals.rows("SELECT lead_email, source FROM deals")
    assert (deal.lead_email, deal.source) == ("buyer@example.ru", "web")


def test_the_embed_script_works_on_another_site(org, browser, other_site):
    key = make_form(org)
    site, pages = other_site
    pages["/contacts.html"] = (
        '<!doctype html><html lang="ru"><head><meta charset="utf-8"></head><body>'
        '<h1>Кровля для дома</h1>'
        f'<script src="{org.api.base_url}/forms/{key}/embed.js"></script>'
        '</body></html>').encode()
    wait = WebDriverWait(browser, 30)
    browser.get(f"{site}/contacts.html?utm_source=vk&utm_campaign=spring")
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".roofcrm-form input[name=phone]")))
    time.sleep(1.2)
    browser.find_element(By.CSS_SELECTOR, ".roofcrm-form input[name=phone]").send_keys(
        "8 912 555-44-33")
    browser.find_element(By.CSS_SELECTOR, ".roofcrm-form input[name=consent]").click()
    browser.find_element(By.CSS_SELECTOR, ".roofcrm-form button").click()
    wait.until(lambda b: "заявка принята" in b.find_element(
        By.CSS_SELECTOR, ".roofcrm-form [role=status]").text)
    [deal] = org.deals.rows("SELECT lead_phone, source_detail FROM deals")
    assert deal.lead_phone == "+79125554433"
    assert deal.source_detail["utm_campaign"] == "spring"
    assert deal.source_detail["page_url"].startswith(site)
