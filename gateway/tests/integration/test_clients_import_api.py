"""Import of clients from Excel/CSV through the HTTP API and the command: gateway -> clients service
(the organisation replicated into it from the directory's events) -> PostgreSQL."""

from __future__ import annotations

import base64
import io
import json

import openpyxl
import pytest
import sqlalchemy as sa
from openapi_spec_validator import validate
from rich.console import Console

from crm_platform.testing import wait_for
from gateway.routes.clients_import import MAX_IMPORT_BODY_BYTES
from services.clients.service import ClientsService
from tools import import_clients as command

from .conftest import MANAGER_PASSWORD

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
INN_A, INN_B = "7707083893", "6600000010"
MAPPING = {"Наименование": "short_name", "ИНН": "inn", "Телефоны": "phones",
           "Контактное лицо": "contact_name", "Тел. контактного лица": "contact_phones"}
ROWS = [
    ["ООО «Стройметалл»", INN_A, "8 (343) 123-45-67; 8 343 123-45-68", "Петров Пётр",
     "+7 916 123 45 67"],
    ["Стройметалл, ООО", "", "", "Сидорова Анна", "8 916 765 43 21"],
    ["АО Кривой", "7707083894", "101", "", ""],
]


def csv_bytes(rows, headers=tuple(MAPPING), encoding="cp1251") -> bytes:
    lines = [";".join(headers)] + [";".join(f'"{cell}"' for cell in row) for row in rows]
    return "\r\n".join(lines).encode(encoding)


def xlsx_bytes(rows, headers=tuple(MAPPING)) -> bytes:
    book = openpyxl.Workbook()
    book.active.append(list(headers))
    for row in rows:
        book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def body(data: bytes, filename="клиенты.csv", mapping=None, **extra) -> dict:
    return {"file_base64": base64.b64encode(data).decode(), "filename": filename,
            "mapping": mapping or MAPPING, **extra}


def problem(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith(PROBLEM)
    data = response.json()
    if code is not None:
        assert data["code"] == code, data
    return data


# -- the clients service next to the directory and the gateway ----------------------------------

@pytest.fixture
def clients_db(service_db):
    return service_db("clients")


@pytest.fixture
def clients(container_factory, service_config, clients_db, api):
    """The clients service, started before any user exists so it hears every user_changed."""
    container = container_factory(ClientsService, service_config(db_url=clients_db))
    container.start()
    engine = sa.create_engine(clients_db)
    yield engine
    engine.dispose()


@pytest.fixture
def department(clients, department):
    """The conftest's department, created once the clients service listens."""
    return department


def replicated(engine, user: dict) -> None:
    def known():
        with engine.connect() as conn:
            return conn.execute(sa.text(
                "SELECT count(*) FROM staff s JOIN departments d "
                "ON d.department_id = s.department_id WHERE s.user_id = :u"),
                {"u": user["id"]}).scalar()

    wait_for(known, message=f"user {user['username']} in the clients service")


@pytest.fixture
def importer(clients, manager, manager_token):
    replicated(clients, manager)
    return manager_token


def new_user(api, admin_token, username, role, department_id) -> dict:
    response = api.post("/api/v1/users", admin_token, json={
        "username": username, "full_name": f"Сотрудник {username}", "role": role,
        "department_id": department_id, "password": MANAGER_PASSWORD})
    assert response.status_code == 201, response.text
    return response.json()


def count(engine, sql: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql)).scalar()


# -- the endpoint -------------------------------------------------------------------------------

def test_a_manager_imports_a_cp1251_csv_file(api, clients, importer, manager):
    response = api.post("/api/v1/clients/import", importer, json=body(csv_bytes(ROWS)))

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["dry_run"] is False and report["owner_id"] == manager["id"]
    assert report["totals"] == {"rows": 3, "created": 1, "merged": 1, "refused": 1,
                                "merged_into_existing": 0, "clients_updated": 0}
    created, merged, refused = report["rows"]
    assert created["status"] == "created" and created["row"] == 2
    assert merged["status"] == "merged" and merged["duplicate_of_row"] == 2
    assert merged["added"] == {"phones": 1, "emails": 0, "contacts": 1, "fields": []}
    assert refused["code"] == "validation_failed"
    assert {e["column"] for e in refused["errors"]} == {"ИНН", "Телефоны"}

    with clients.connect() as conn:
        client = conn.execute(sa.text("SELECT * FROM clients")).mappings().one()
        names = conn.execute(sa.text("SELECT full_name FROM contacts ORDER BY full_name"))
        assert [row[0] for row in names] == ["Петров Пётр", "Сидорова Анна"]
    assert str(client["owner_id"]) == manager["id"] and client["inn"] == INN_A
    assert client["phones"] == ["+73431234567", "+73431234568"]
    assert count(clients, "SELECT count(*) FROM audit_log WHERE action = 'import'") == 2


def test_a_dry_run_stores_nothing(api, clients, importer):
    response = api.post("/api/v1/clients/import", importer,
                        json=body(xlsx_bytes(ROWS), "клиенты.xlsx", dry_run=True))
    assert response.status_code == 200, response.text
    assert response.json()["dry_run"] is True
    assert response.json()["totals"]["created"] == 1
    assert count(clients, "SELECT count(*) FROM clients") == 0
    assert count(clients, "SELECT count(*) FROM audit_log") == 0


def test_another_managers_client_is_refused_naming_the_owner(api, admin_token, clients,
                                                            importer, department):
    other = new_user(api, admin_token, "petrova", "manager", department["id"])
    replicated(clients, other)
    token = api.login("petrova", MANAGER_PASSWORD)
    first = api.post("/api/v1/clients/import", token, json=body(csv_bytes(ROWS[:1])))
    assert first.json()["totals"]["created"] == 1

    response = api.post("/api/v1/clients/import", importer,
                        json=body(csv_bytes([["Стройметалл", "", "+7 343 123-45-68", "", ""]])))

    (row,) = response.json()["rows"]
    assert row["status"] == "refused" and row["code"] == "client_owned"
    assert row["owner"] == "Сотрудник petrova" and row["department"] == "Отдел продаж Москва"
    assert "Сотрудник petrova" in row["reason"] and "Отдел продаж Москва" in row["reason"]


def test_a_sales_head_imports_into_the_department_pool(api, admin_token, clients, department):
    head = new_user(api, admin_token, "head.msk", "sales_head", department["id"])
    replicated(clients, head)
    token = api.login("head.msk", MANAGER_PASSWORD)
    response = api.post("/api/v1/clients/import", token, json=body(csv_bytes(ROWS[:1])))
    assert response.status_code == 200, response.text
    assert response.json()["owner_id"] is None
    assert response.json()["department_id"] == department["id"]
    assert count(clients, "SELECT count(*) FROM clients WHERE owner_id IS NULL") == 1


@pytest.mark.parametrize("payload, field", [
    (body(b"PK\x03\x04 broken", "x.xlsx"), "file"),
    (body(csv_bytes(ROWS), mapping={**MAPPING, "Нет такого столбца": "inn"}),
     "mapping.Нет такого столбца"),
    (body(csv_bytes([])), "file"),
    ({"filename": "x.csv", "mapping": MAPPING}, "file_base64"),
])
def test_an_unusable_file_is_422_and_nothing_is_stored(api, clients, importer, payload, field):
    data = problem(api.post("/api/v1/clients/import", importer, json=payload), 422)
    assert field in {e["field"] for e in data["errors"]}
    assert count(clients, "SELECT count(*) FROM clients") == 0


def test_an_unknown_field_is_refused_by_the_gateway(api, importer):
    data = problem(api.post("/api/v1/clients/import", importer,
                            json=body(csv_bytes(ROWS), mapping={"ИНН": "passport"})), 422)
    assert any(e["field"].startswith("mapping") for e in data["errors"])


def test_who_may_import(api, admin_token, clients):
    problem(api.post("/api/v1/clients/import", json=body(csv_bytes(ROWS))), 401)
    problem(api.post("/api/v1/clients/import", admin_token, json=body(csv_bytes(ROWS))), 403,
            "role_required")


def test_a_file_bigger_than_the_usual_body_limit_is_accepted(api, clients, importer):
    filler = "x" * 1000  # an unmapped column of notes
    rows = [[f"Клиент номер {n}", "", "", "", "", filler] for n in range(2500)]
    data = csv_bytes(rows, headers=(*MAPPING, "Заметки"), encoding="utf-8")
    assert len(base64.b64encode(data)) > 2 * 1024 * 1024

    response = api.post("/api/v1/clients/import", importer, json=body(data, dry_run=True))

    assert response.status_code == 200, response.text
    assert response.json()["totals"]["rows"] == 2500

    too_big = {"file_base64": "A" * (MAX_IMPORT_BODY_BYTES + 10), "filename": "x.csv",
               "mapping": MAPPING}
    data = problem(api.post("/api/v1/clients/import", importer, json=too_big), 422)
    assert data["errors"][0]["field"] == "body"


def test_the_endpoint_is_in_the_openapi_document(api):
    spec = api.get("/openapi.json").json()
    validate(spec)
    operation = spec["paths"]["/api/v1/clients/import"]["post"]
    assert operation["operationId"] == "import_clients"
    assert "422" in operation["responses"] and "200" in operation["responses"]


# -- the command --------------------------------------------------------------------------------

def run_command(*args) -> tuple[int, str]:
    output = io.StringIO()
    code = command.main(list(args), console=Console(file=output, width=200))
    return code, output.getvalue()


def test_the_command_imports_and_prints_the_report(api, clients, importer, tmp_path):
    sheet = tmp_path / "клиенты.xlsx"
    sheet.write_bytes(xlsx_bytes(ROWS))
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps(MAPPING, ensure_ascii=False), encoding="utf-8")
    saved = tmp_path / "report.json"
    common = (str(sheet), "--mapping", str(mapping), "--gateway", api.base_url,
              "--username", "ivanov", "--password", MANAGER_PASSWORD)

    code, out = run_command(*common, "--dry-run")
    assert code == 0, out
    assert "Пробный запуск" in out and count(clients, "SELECT count(*) FROM clients") == 0

    code, out = run_command(*common, "--report", str(saved))
    assert code == 0, out
    assert "Итоги импорта" in out and "Отклонённые строки" in out
    assert "неверная контрольная сумма ИНН" in out and "7707083894" in out
    report = json.loads(saved.read_text(encoding="utf-8"))
    assert report["totals"]["created"] == 1 and len(report["rows"]) == 3
    assert count(clients, "SELECT count(*) FROM clients") == 1


def test_the_command_reports_what_the_gateway_refused(api, importer, tmp_path):
    sheet = tmp_path / "clients.csv"
    sheet.write_bytes(csv_bytes(ROWS))
    common = (str(sheet), "--gateway", api.base_url, "--username", "ivanov")

    code, out = run_command(*common, "--mapping", '{"Название": "short_name"}',
                            "--password", MANAGER_PASSWORD)
    assert code == 1
    assert "mapping.Название" in out and "Наименование" in out  # the file's columns are listed

    code, out = run_command(*common, "--mapping", json.dumps(MAPPING), "--password", "wrong")
    assert code == 1 and "401" in out

    code, out = run_command(str(tmp_path / "missing.csv"), "--mapping", json.dumps(MAPPING))
    assert code == 2
