"""The whole system in this test process, once per session: every service and the gateway as
nameko containers on one fresh vhost of the real RabbitMQ, each on its own migrated database of
the real PostgreSQL. A small organisation is built through the API as the admin (two regional
departments with a sales head and managers, a director, a dispatcher, a driver, an integration
account), every person signs in through ``/api/v1/auth/login``, and each manager enters a client
and a deal. The hostile tests only read this state or are refused, so they share it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
import requests
import sqlalchemy as sa
from nameko.containers import ServiceContainer

from crm_platform.testing import free_port, wait_for
from gateway.service import GatewayService
from services.clients.service import ClientsService
from services.deals.service import DealsService
from services.directory.admin import ensure_admin
from services.directory.service import DirectoryService
from services.erp_bridge.service import ErpBridgeService
from services.logistics.service import LogisticsService
from services.mail.service import MailService
from services.payroll.service import PayrollService
from services.reports.service import ReportsService
from services.telephony.service import TelephonyService

ADMIN_PASSWORD = "admin12345"
PASSWORD = "hostile-password-1"
SERVICES = {  # the consumers first: their queues exist before the directory publishes
    "clients": ClientsService, "deals": DealsService, "telephony": TelephonyService,
    "mail": MailService, "erp_bridge": ErpBridgeService, "reports": ReportsService,
    "payroll": PayrollService, "logistics": LogisticsService, "directory": DirectoryService,
}
DEPARTMENTS = {"ural": ("Уральский отдел", ["RU-SVE"]), "volga": ("Приволжский отдел", ["RU-TA"])}
PEOPLE = {  # username: (full name, role, department)
    "director": ("Орлов Сергей", "director", None),
    "head.ural": ("Соколова Анна", "sales_head", "ural"),
    "m.ural.1": ("Иванов Иван", "manager", "ural"),
    "m.ural.2": ("Петров Пётр", "manager", "ural"),
    "head.volga": ("Кузнецова Мария", "sales_head", "volga"),
    "m.volga.1": ("Смирнов Олег", "manager", "volga"),
    "dispatcher": ("Диспетчер Олег", "dispatcher", None),
    "driver.1": ("Водитель Семён", "driver", None),
    "erp.1c": ("1С:УТ", "integration", None),
}
# One person per role (the acting user of the role-level checks).
ROLE_USERS = {"admin": "admin", "director": "director", "sales_head": "head.ural",
              "manager": "m.ural.1", "dispatcher": "dispatcher", "driver": "driver.1",
              "integration": "erp.1c"}
REPLICA_DATABASES = ("clients", "deals", "telephony", "mail", "payroll", "reports")


def inn(n: int) -> str:
    """A valid 10-digit INN (real checksum) made from ``n``."""
    body = f"6{n:08d}"
    weights = (2, 4, 10, 3, 5, 9, 4, 6, 8)
    check = sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11 % 10
    return body + str(check)


@dataclass
class Stack:
    base_url: str
    databases: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)
    users: dict[str, dict] = field(default_factory=dict)
    departments: dict[str, dict] = field(default_factory=dict)
    clients: dict[str, dict] = field(default_factory=dict)     # by owner username
    deals: dict[str, dict] = field(default_factory=dict)       # by owner username
    http: requests.Session = field(default_factory=requests.Session)
    engines: dict[str, sa.Engine] = field(default_factory=dict)

    def request(self, who: str | None, method: str, path: str, **kwargs) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if who:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        return self.http.request(method, self.base_url + path, headers=headers, timeout=60,
                                 **kwargs)

    def engine(self, service: str) -> sa.Engine:
        if service not in self.engines:
            self.engines[service] = sa.create_engine(self.databases[service])
        return self.engines[service]

    def scalar(self, service: str, sql: str, **params):
        with self.engine(service).connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    def row_counts(self, service: str) -> dict[str, int]:
        """Rows of every table of a service's database (for "nothing was stored")."""
        with self.engine(service).connect() as conn:
            tables = sa.inspect(conn).get_table_names()
            return {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar()  # noqa: S608
                    for t in tables if t not in ("access_denials", "alembic_version")}

    def denials(self, service: str) -> int:
        return self.scalar(service, "SELECT count(*) FROM access_denials")


def _config(amqp_uri: str, **extra) -> dict:
    return {"AMQP_URI": amqp_uri, "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}",
            "OUTBOX_POLL_INTERVAL": 0.05, "EVENT_RETRY_DELAYS_MS": "100,200",
            "JWT_SECRET": "hostile-secret-hostile-secret-0123", "LOCAL_LOGIN": True,
            "max_workers": 5, "EVENT_BATCH_MAX_WAIT_MS": 20, **extra}


@pytest.fixture(scope="session")
def stack(request, test_databases, vhost_pipeline, tmp_path_factory):
    amqp_base = request.config.getoption("RABBIT_AMQP_URI").rstrip("/")
    files = tmp_path_factory.mktemp("hostile-files")
    databases = {name: test_databases.url_for(name) for name in SERVICES}
    ensure_admin(databases["directory"], "admin", ADMIN_PASSWORD)
    containers = []
    with vhost_pipeline.get() as vhost:
        amqp = f"{amqp_base}/{vhost}"
        try:
            for name, cls in SERVICES.items():
                container = ServiceContainer(cls, _config(
                    amqp, DB_URL=databases[name], REACTION_SCAN_SECONDS=0,
                    LATENESS_SCAN_SECONDS=0, REPORTS_METRICS_SECONDS=0, MAIL_SYNC_TICK_SECONDS=0,
                    MAIL_CLIENT_LOOKUP="replica", MAIL_ATTACHMENTS_DIR=str(files / "mail"),
                    LOGISTICS_FILES_DIR=str(files / "logistics"), ODATA_POLL_SECONDS=0))
                container.start()
                containers.append(container)
            gateway_config = _config(amqp)
            gateway = ServiceContainer(GatewayService, gateway_config)
            gateway.start()
            containers.append(gateway)
            stack = Stack(f"http://{gateway_config['WEB_SERVER_ADDRESS']}", databases)
            build_organisation(stack)
            yield stack
        finally:
            for container in reversed(containers):
                try:
                    container.stop()
                except Exception:  # noqa: BLE001 - a failed stop must not hide the test's error
                    container.kill()
            for engine in stack.engines.values() if "stack" in locals() else ():
                engine.dispose()


def login(stack: Stack, username: str, password: str) -> str:
    response = stack.request(None, "POST", "/api/v1/auth/login",
                             json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def build_organisation(stack: Stack) -> None:
    stack.tokens["admin"] = login(stack, "admin", ADMIN_PASSWORD)
    stack.users["admin"] = {"id": stack.request("admin", "GET", "/api/v1/me").json()["user_id"],
                            "role": "admin", "department_id": None}
    for key, (name, regions) in DEPARTMENTS.items():
        response = stack.request("admin", "POST", "/api/v1/departments",
                                 json={"name": name, "regions": regions})
        assert response.status_code == 201, response.text
        stack.departments[key] = response.json()
    for username, (full_name, role, dept) in PEOPLE.items():
        response = stack.request("admin", "POST", "/api/v1/users", json={
            "username": username, "full_name": full_name, "role": role, "password": PASSWORD,
            "department_id": stack.departments[dept]["id"] if dept else None})
        assert response.status_code == 201, response.text
        stack.users[username] = response.json()
    for key in DEPARTMENTS:
        response = stack.request("admin", "PATCH",
                                 f"/api/v1/departments/{stack.departments[key]['id']}",
                                 json={"head_user_id": stack.users[f"head.{key}"]["id"]})
        assert response.status_code == 200, response.text
    for username in PEOPLE:
        stack.tokens[username] = login(stack, username, PASSWORD)

    ids = {user["id"] for user in stack.users.values()}

    def replicated(service: str) -> bool:
        rows = {str(r) for r in _column(stack, service, "SELECT user_id FROM staff")}
        return ids <= rows

    for service in REPLICA_DATABASES:
        wait_for(lambda service=service: replicated(service), timeout=40,
                 message=f"the organisation in {service}")

    for n, (owner, region) in enumerate((("m.ural.1", "RU-SVE"), ("m.ural.2", "RU-SVE"),
                                         ("m.volga.1", "RU-TA")), start=1):
        response = stack.request(owner, "POST", "/api/v1/clients", json={
            "short_name": f"ООО «Кровля-{n}-{uuid.uuid4().hex[:4]}»", "inn": inn(n),
            "region": region, "phones": [f"+7343200000{n}"],
            "emails": [f"buyer{n}@roof{n}.example.ru"]})
        assert response.status_code == 201, response.text
        stack.clients[owner] = response.json()["client"]
    for owner, client in stack.clients.items():
        wait_for(lambda client=client: _column(
            stack, "deals", "SELECT client_id FROM client_replica WHERE client_id = :id",
            id=client["id"]), timeout=20, message="clients replicated to deals")
        response = stack.request(owner, "POST", "/api/v1/deals", json={
            "client_id": client["id"], "title": f"Поставка профнастила {owner}",
            "amount": "150000.00"})
        assert response.status_code == 201, response.text
        stack.deals[owner] = response.json()["deal"]


def _column(stack: Stack, service: str, sql: str, **params) -> list:
    with stack.engine(service).connect() as conn:
        return [row[0] for row in conn.execute(sa.text(sql), params)]
