"""Exports of client lists: roles, the daily quota, CSV for Excel in Russia, XLSX, the audit."""

from __future__ import annotations

import base64
import csv
import io
from datetime import datetime, timedelta

import pytest
from openpyxl import load_workbook

from crm_platform.clock import clock, utcnow
from crm_platform.errors import Forbidden, QuotaExceeded, ValidationFailed

from .test_facts import add_client

pytestmark = pytest.mark.integration

QUOTA = 3


@pytest.fixture
def clients_config(service_config, clients_db):
    return service_config(db_url=clients_db, EXPORT_DAILY_QUOTA=QUOTA, EXPORT_MAX_ROWS=5)


def decode(result) -> bytes:
    return base64.b64decode(result["content_base64"])


def read_csv(result) -> list[list[str]]:
    raw = decode(result)
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM that makes Excel read UTF-8
    return list(csv.reader(io.StringIO(raw[3:].decode("utf-8"), newline=""), delimiter=";"))


def test_a_csv_export_for_excel(svc, org):
    add_client(org, "ООО «Кровля; и Ко»", inn="7707083893", phones=["+73431234567"],
               segment="опт", last_invoice_at=datetime.fromisoformat("2026-01-31T21:30:00+00:00"))
    add_client(org, "Розница", owner="m.ural.2", status="dormant")
    add_client(org, "Волжанин", owner="m.volga.1")

    result = svc.call("export_clients", None, "csv", as_user="head.ural")

    assert result["rows"] == 2 and result["content_type"] == "text/csv; charset=utf-8"
    assert result["filename"].startswith("clients-") and result["filename"].endswith(".csv")
    assert b"\r\n" in decode(result)
    header, *rows = read_csv(result)
    assert header[:4] == ["Наименование", "Полное наименование", "Форма", "ИНН"]
    by_name = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert set(by_name) == {"ООО «Кровля; и Ко»", "Розница"}  # the ';' is quoted, not split
    first = by_name["ООО «Кровля; и Ко»"]
    assert first["ИНН"] == "7707083893" and first["Статус"] == "активный"
    assert first["Телефоны"] == "'+73431234567"  # no formula for Excel
    assert first["Последний счёт"] == "01.02.2026 00:30"  # Moscow time
    assert first["Ответственный"] == "Менеджер ural 1" and first["Отдел"] == "Уральский отдел"
    assert by_name["Розница"]["Статус"] == "спящий"

    [audit] = org.rows("SELECT * FROM audit_log WHERE action = 'export'")
    assert str(audit["user_id"]) == org.id("head.ural") and audit["role"] == "sales_head"
    assert audit["details"]["rows"] == 2 and audit["details"]["format"] == "csv"
    assert audit["details"]["filter"] is None and "inn" in audit["fields"]


def test_an_xlsx_export_of_a_filter(svc, org):
    add_client(org, "=HYPERLINK(\"http://evil\")", segment="опт")
    add_client(org, "Спящий", status="dormant", segment="опт",
               last_interaction_at=datetime.fromisoformat("2026-03-01T09:00:00+00:00"))
    add_client(org, "Чужой оптовик", owner="m.volga.1", segment="опт")
    wholesale = {"field": "segment", "op": "eq", "value": "опт"}

    result = svc.call("export_clients", wholesale, "xlsx", as_user="director")

    assert result["rows"] == 3 and result["filename"].endswith(".xlsx")
    assert result["content_type"].startswith("application/vnd.openxmlformats")
    sheet = load_workbook(io.BytesIO(decode(result))).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "Наименование" and len(rows) == 4
    names = [r[0] for r in rows[1:]]
    assert names == sorted(names)
    evil = sheet.cell(row=2 + names.index("=HYPERLINK(\"http://evil\")"), column=1)
    assert evil.data_type == "s"  # text, not a formula
    sleeper = rows[1 + names.index("Спящий")]
    assert sleeper[16] == datetime(2026, 3, 1, 12, 0)  # a real date cell, Moscow time
    assert org.rows("SELECT details FROM audit_log WHERE action = 'export'")[0]["details"] \
        ["filter"] == wholesale


def test_only_heads_and_directors_export(svc, org):
    for user in ("m.ural.1", "admin"):
        with pytest.raises(Forbidden):
            svc.call("export_clients", None, "csv", as_user=user)
    with pytest.raises(ValidationFailed) as caught:
        svc.call("export_clients", None, "pdf", as_user="director")
    assert "format" in caught.value.fields
    with pytest.raises(ValidationFailed) as caught:
        svc.call("export_clients", {"field": "nope", "op": "eq", "value": 1}, "csv",
                 as_user="director")
    assert "nope" in caught.value.fields
    assert org.scalar("SELECT count(*) FROM usage_counters") == 0


def test_the_daily_quota_per_user(svc, org):
    add_client(org, "Клиент")
    clock.travel_to(utcnow().replace(hour=10))
    for _ in range(QUOTA):
        svc.call("export_clients", None, "csv", as_user="head.ural")
    with pytest.raises(QuotaExceeded) as caught:
        svc.call("export_clients", None, "xlsx", as_user="head.ural")
    assert caught.value.code == "export_quota_exceeded" and str(QUOTA) in caught.value.detail
    assert svc.call("export_clients", None, "csv", as_user="director")["rows"] == 1  # own quota
    assert org.scalar("SELECT count FROM usage_counters WHERE kind = 'export' AND user_id = :u",
                      u=org.id("head.ural")) == QUOTA
    assert org.scalar("SELECT count(*) FROM audit_log WHERE action = 'export_denied'") == 1

    clock.advance(timedelta(days=1))
    assert svc.call("export_clients", None, "csv", as_user="head.ural")["rows"] == 1


def test_a_too_large_export_is_refused_without_using_the_quota(svc, org):
    for n in range(6):
        add_client(org, f"Клиент номер {n}")
    with pytest.raises(ValidationFailed) as caught:
        svc.call("export_clients", None, "csv", as_user="director")
    assert caught.value.code == "export_too_large"
    assert org.scalar("SELECT count(*) FROM usage_counters") == 0
    assert org.scalar("SELECT count(*) FROM audit_log WHERE action = 'export'") == 0
    narrow = {"field": "short_name", "op": "contains", "value": "номер 1"}
    assert svc.call("export_clients", narrow, "csv", as_user="director")["rows"] == 1


def test_exporting_a_saved_segment(svc, org):
    add_client(org, "Оптовик", segment="опт")
    add_client(org, "Розничный", segment="розница")
    segment = svc.call("save_segment", "Опт", {"field": "segment", "op": "eq", "value": "опт"},
                       as_user="head.ural")
    result = svc.call("export_clients", segment_id=segment["id"], as_user="head.ural")
    assert [row[0] for row in read_csv(result)[1:]] == ["Оптовик"]
