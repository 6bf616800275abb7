"""Real-browser tests of the gateway's pages: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, installed by ``ensure_chromium`` in scripts/common.sh) driven by selenium
through /usr/bin/chromedriver — nothing downloads a browser. The gateway, the directory and the
logistics service run as containers in this process against the real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import os
import shutil

import pytest
import requests

from gateway.service import GatewayService
from services.directory.admin import ensure_admin
from services.directory.service import DirectoryService
from services.logistics.service import LogisticsService

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ADMIN = ("admin", "admin12345")
PASSWORD = "secret-password-1"


class Gateway:
    def __init__(self, base_url: str):
        self.base_url = base_url
        self.http = requests.Session()

    def call(self, method: str, path: str, token: str | None = None, **kwargs):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.http.request(method, self.base_url + path, headers=headers,
                                     timeout=30, **kwargs)
        return response

    def ok(self, method: str, path: str, token: str | None = None, **kwargs):
        response = self.call(method, path, token, **kwargs)
        assert response.status_code < 300, (method, path, response.status_code, response.text)
        return response.json() if response.content else None

    def login(self, username: str, password: str) -> str:
        return self.ok("POST", "/api/v1/auth/login",
                       json={"username": username, "password": password})["access_token"]


@pytest.fixture
def stack(container_factory, service_config, service_db, tmp_path):
    directory_db = service_db("directory")
    ensure_admin(directory_db, *ADMIN)
    directory = container_factory(DirectoryService, service_config(db_url=directory_db))
    logistics = container_factory(LogisticsService, service_config(
        db_url=service_db("logistics"), LATENESS_SCAN_SECONDS=0,
        LOGISTICS_FILES_DIR=str(tmp_path / "files")))
    config = service_config()
    gateway = container_factory(GatewayService, config)
    for container in (directory, logistics, gateway):
        container.start()
    client = Gateway(f"http://{config['WEB_SERVER_ADDRESS']}")
    yield client
    client.http.close()


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        assert shutil.which(path), f"{path} is missing: run ensure_chromium (scripts/common.sh)"
    os.environ["SE_OFFLINE"] = "true"          # selenium never fetches a driver or a browser
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=412,915", "--lang=ru-RU",
                     f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
