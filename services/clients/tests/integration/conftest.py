"""A running clients service on its own migrated database, with the organisation replicated into
it (as the directory's events would), and callers of every role."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from nameko.testing.services import entrypoint_hook

from crm_platform.identity import IDENTITY_CONTEXT_KEY
from crm_platform.testing import SqlReader
from services.clients.models import departments, staff
from services.clients.service import ClientsService


class Org(SqlReader):
    """Two departments (ural, volga) with a head and two managers each, a director, an admin."""

    def __init__(self, url: str):
        super().__init__(url)
        self.departments = {}
        self.people = {}
        with self.engine.begin() as conn:
            for key, name, regions in (("ural", "Уральский отдел", ["RU-SVE"]),
                                       ("volga", "Приволжский отдел", ["RU-TA"])):
                dept_id = uuid.uuid4()
                self.departments[key] = dept_id
                head = self._person(conn, f"head.{key}", f"Руководитель {key}", "sales_head",
                                    dept_id)
                conn.execute(sa.insert(departments).values(
                    department_id=dept_id, name=name, head_user_id=head, regions=regions))
                for n in (1, 2):
                    self._person(conn, f"m.{key}.{n}", f"Менеджер {key} {n}", "manager", dept_id)
            self._person(conn, "director", "Директор", "director", None)
            self._person(conn, "admin", "Админ", "admin", None)

    def _person(self, conn, username, full_name, role, dept_id):
        user_id = uuid.uuid4()
        conn.execute(sa.insert(staff).values(user_id=user_id, full_name=full_name, role=role,
                                             department_id=dept_id, active=True))
        self.people[username] = {"user_id": str(user_id), "role": role, "username": username,
                                 "full_name": full_name,
                                 **({"department_id": str(dept_id)} if dept_id else {})}
        return user_id

    def id(self, username) -> str:
        return self.people[username]["user_id"]


class Clients:
    def __init__(self, container, org):
        self.container = container
        self.org = org

    def call(self, method, *args, as_user: str | None = "m.ural.1", **kwargs):
        context = ({IDENTITY_CONTEXT_KEY: self.org.people[as_user]} if as_user else {})
        with entrypoint_hook(self.container, method, context_data=context) as hook:
            return hook(*args, **kwargs)

    def __getattr__(self, method):
        return lambda *args, **kwargs: self.call(method, *args, **kwargs)


@pytest.fixture
def clients_db(service_db):
    return service_db("clients")


@pytest.fixture
def org(clients_db):
    org = Org(clients_db)
    yield org
    org.engine.dispose()


@pytest.fixture
def clients_config(service_config, clients_db):
    return service_config(db_url=clients_db, CLIENT_RESERVATION_DAYS=30,
                          CARD_READ_ALERT_FLOOR=20, CARD_READ_ALERT_FACTOR=5)


@pytest.fixture
def svc(container_factory, clients_config, org):
    container = container_factory(ClientsService, clients_config)
    container.start()
    return Clients(container, org)
