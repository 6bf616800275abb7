"""The gateway and the directory service in two containers on one test vhost, against the real
RabbitMQ and PostgreSQL; the tests talk HTTP to the gateway like any client."""

from __future__ import annotations

import pytest
import requests

from gateway.service import GatewayService
from services.directory.admin import ensure_admin
from services.directory.service import DirectoryService

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin12345"
MANAGER_PASSWORD = "manager-password-1"


class Api:
    """A client of the running gateway."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.http = requests.Session()

    def request(self, method: str, path: str, token: str | None = None, **kwargs):
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(method, self.base_url + path, headers=headers, timeout=30,
                                 **kwargs)

    def get(self, path, token=None, **kwargs):
        return self.request("GET", path, token, **kwargs)

    def post(self, path, token=None, **kwargs):
        return self.request("POST", path, token, **kwargs)

    def login(self, username: str, password: str) -> str:
        response = self.post("/api/v1/auth/login",
                             json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        return response.json()["access_token"]


@pytest.fixture
def directory_db(service_db):
    url = service_db("directory")
    ensure_admin(url, ADMIN_USERNAME, ADMIN_PASSWORD)
    return url


@pytest.fixture
def api(container_factory, service_config, directory_db):
    # Two containers, so two web servers: each gets its own free port from service_config().
    directory = container_factory(DirectoryService, service_config(db_url=directory_db))
    directory.start()
    config = service_config()
    gateway = container_factory(GatewayService, config)
    gateway.start()
    client = Api(f"http://{config['WEB_SERVER_ADDRESS']}")
    yield client
    client.http.close()


@pytest.fixture
def admin_token(api):
    return api.login(ADMIN_USERNAME, ADMIN_PASSWORD)


@pytest.fixture
def department(api, admin_token):
    response = api.post("/api/v1/departments", admin_token,
                        json={"name": "Отдел продаж Москва", "regions": ["RU-MOW", "RU-MOS"]})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
def manager(api, admin_token, department):
    response = api.post("/api/v1/users", admin_token, json={
        "username": "ivanov", "full_name": "Иванов Иван", "email": "Ivanov@Example.com",
        "role": "manager", "department_id": department["id"], "extension": "101",
        "password": MANAGER_PASSWORD,
    })
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
def manager_token(api, manager):
    return api.login("ivanov", MANAGER_PASSWORD)
