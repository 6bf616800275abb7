"""The sales head's work on the client base through the public HTTP API, end to end: hand-over,
merge, segments, ABC, dormant recompute, reactivation campaigns and exports (gateway -> RabbitMQ
RPC -> clients -> PostgreSQL). The running system and its organisation are those of
``test_clients_api`` (its fixtures are imported, not copied)."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from openapi_spec_validator import validate

from crm_platform.clock import utcnow
from crm_platform.testing import wait_for

from . import test_clients_api as base
from .test_api import error_fields, problem
from .test_clients_api import STROYMETALL, inn

# The running system and its organisation: the fixtures of the client base tests.
clients_db = base.clients_db
org = base.org

pytestmark = pytest.mark.integration

EXPORT_QUOTA = 3


@pytest.fixture
def service_config(service_config):
    """Every container of the module with a small export quota (the clients service reads it)."""

    def make(db_url: str | None = None, **overrides) -> dict:
        return service_config(db_url=db_url, **{"EXPORT_DAILY_QUOTA": EXPORT_QUOTA, **overrides})

    return make


def add_manager(system, username: str, full_name: str, dept: str) -> str:
    """One more manager of a department, known to the clients service; returns the user id."""
    response = system.api.post("/api/v1/users", system.tokens["admin"], json={
        "username": username, "full_name": full_name, "role": "manager",
        "department_id": system.dept(dept)})
    assert response.status_code == 201, response.text
    user = system.users[username] = response.json()
    system.tokens[username] = system.authority.issue({
        "user_id": user["id"], "username": username, "full_name": full_name,
        "role": "manager", "department_id": user["department_id"],
        "regions": user["regions"]})[0]
    wait_for(lambda: system.count("SELECT count(*) FROM staff WHERE user_id = :id",
                                  id=user["id"]) == 1, timeout=20, message="user_changed event")
    return user["id"]


def add_shipment(system, client_id: str, amount: str, days_ago: int = 1) -> None:
    """A posted shipment of 1C, as the erp_bridge's events would have recorded it."""
    with system.db.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO erp_documents (guid, client_id, kind, doc_date, amount, active) "
            "VALUES (:guid, :client_id, 'shipment', :at, :amount, true)"),
            {"guid": uuid.uuid4(), "client_id": client_id,
             "at": utcnow() - timedelta(days=days_ago), "amount": Decimal(amount)})


def owners(system, who: str = "director") -> dict[str, str]:
    page = system.get(who, "/api/v1/clients", params={"limit": 500}).json()
    return {item["id"]: item["owner_id"] for item in page["items"]}


# -- hand-over --------------------------------------------------------------------------------

def test_head_hands_a_managers_clients_over_to_two_managers_evenly(org):
    receiver = add_manager(org, "m.ural.3", "Сидоров Семён", "ural")
    given = [org.create("m.ural.1", short_name=f"ООО «Клиент {n}»", inn=inn(100 + n))["id"]
             for n in range(5)]
    kept = org.create("m.ural.2", short_name="ООО «Своё»", inn=inn(110))["id"]

    response = org.post("head.ural", "/api/v1/clients/handover", json={
        "from_user_id": org.id("m.ural.1"), "to_user_ids": [org.id("m.ural.2"), receiver]})

    assert response.status_code == 200, response.text
    summary = response.json()
    assert uuid.UUID(summary["batch_id"]) and summary["moved"] == 5
    assert summary["per_receiver"] == {org.id("m.ural.2"): 3, receiver: 2}
    now = owners(org)
    assert [now[c] for c in given] == [org.id("m.ural.2"), receiver] * 2 + [org.id("m.ural.2")]
    assert now[kept] == org.id("m.ural.2")
    assert org.get("m.ural.1", "/api/v1/clients").json()["total"] == 0
    history = org.get("head.ural", f"/api/v1/clients/{given[0]}/ownership").json()
    assert history[-1]["reason"] == "transfer"


def test_handover_is_for_heads_within_their_department(org):
    client = org.create("m.ural.1", **STROYMETALL)
    body = {"from_user_id": org.id("m.ural.1"), "to_user_ids": [org.id("m.ural.2")]}

    problem(org.post("m.ural.2", "/api/v1/clients/handover", json=body), 403, "role_required")
    problem(org.post("head.volga", "/api/v1/clients/handover", json=body), 403)
    problem(org.post("head.ural", "/api/v1/clients/handover", json={
        **body, "to_user_ids": [org.id("m.volga.1")]}), 403, "owner_not_allowed")
    assert owners(org)[client["id"]] == org.id("m.ural.1")


def test_handover_requests_are_checked(org):
    giver = org.id("m.ural.1")
    assert error_fields(problem(org.post("head.ural", "/api/v1/clients/handover", json={
        "from_user_id": "x", "to_user_ids": []}), 422)) == {"from_user_id", "to_user_ids"}
    assert error_fields(problem(org.post("head.ural", "/api/v1/clients/handover", json={
        "from_user_id": giver, "to_user_ids": [giver]}), 422)) == {"to_user_ids"}
    assert error_fields(problem(org.post("head.ural", "/api/v1/clients/handover", json={
        "from_user_id": giver, "to_user_ids": [org.id("m.ural.2")],
        "filters": {"colour": "red"}}), 422)) == {"filters.colour"}


# -- merge ------------------------------------------------------------------------------------

def test_head_merges_a_duplicate_and_its_contacts_are_kept(org):
    survivor = org.create("m.ural.1", **STROYMETALL)
    duplicate = org.create("m.ural.2", short_name="Металлобаза Екатеринбург",
                           phones=["+7 916 444-00-01"], industry="металлопрокат",
                           contacts=[{"full_name": "Петров Пётр", "phones": ["+7 916 444-00-02"]}])

    problem(org.post("m.ural.1", "/api/v1/clients/merge", json={
        "survivor_id": survivor["id"], "merged_id": duplicate["id"]}), 403, "role_required")
    response = org.post("head.ural", "/api/v1/clients/merge", json={
        "survivor_id": survivor["id"], "merged_id": duplicate["id"]})

    assert response.status_code == 200, response.text
    card = response.json()
    assert card["id"] == survivor["id"] and card["owner_id"] == org.id("m.ural.1")
    assert [c["full_name"] for c in card["contacts"]] == ["Петров Пётр"]
    assert set(card["phones"]) == {"+73431234567", "+79164440001"}
    assert card["industry"] == "металлопрокат"
    assert response.headers["ETag"] == f'"{card["version"]}"'
    problem(org.get("head.ural", f"/api/v1/clients/{duplicate['id']}"), 404, "client_merged")
    problem(org.post("head.ural", "/api/v1/clients/merge", json={
        "survivor_id": survivor["id"], "merged_id": survivor["id"]}), 409, "same_client")
    assert error_fields(problem(org.post("head.ural", "/api/v1/clients/merge", json={
        "survivor_id": survivor["id"]}), 422)) == {"merged_id"}


# -- segments ---------------------------------------------------------------------------------

def test_a_bad_segment_filter_is_a_422_naming_the_field(org):
    bad = {"field": "colour", "op": "eq", "value": "red"}

    for path, body in (("/api/v1/segments", {"name": "Красные", "filter": bad}),
                       ("/api/v1/segments/clients", {"filter": bad}),
                       ("/api/v1/clients/export", {"filter": bad}),
                       ("/api/v1/campaigns", {"name": "Красные", "filter": bad})):
        body_problem = problem(org.post("head.ural", path, json=body), 422)
        assert error_fields(body_problem) == {"colour"}, path
    wrong_status = problem(org.post("m.ural.1", "/api/v1/segments/clients", json={
        "filter": [{"field": "status", "op": "eq", "value": "vip"}]}), 422, "invalid_filter")
    assert error_fields(wrong_status) == {"status"}
    assert org.get("head.ural", "/api/v1/segments").json() == []


def test_segments_are_saved_listed_used_and_deleted(org):
    roof = org.create("m.ural.1", short_name="ООО «Альфа Кровля»", inn=inn(201), segment="кровля")
    org.create("m.ural.1", short_name="ООО «Бета»", inn=inn(202), segment="фасады")
    org.create("m.volga.1", short_name="ООО «Волга Кровля»", inn=inn(203), segment="кровля")
    roofing = {"field": "segment", "op": "eq", "value": "кровля"}

    saved = org.post("m.ural.1", "/api/v1/segments", json={"name": "Кровля", "filter": roofing})

    assert saved.status_code == 201, saved.text
    segment = saved.json()
    assert segment["name"] == "Кровля" and segment["filter"] == roofing
    assert segment["owner_user_id"] == org.id("m.ural.1") and uuid.UUID(segment["id"])
    assert org.get("m.ural.1", "/api/v1/segments").json() == [segment]
    assert org.get("m.ural.2", "/api/v1/segments").json() == []
    problem(org.post("m.ural.1", "/api/v1/segments", json={"name": "кровля", "filter": None}),
            409, "segment_exists")

    page = org.post("m.ural.1", "/api/v1/segments/clients", json={"segment_id": segment["id"]})
    assert page.status_code == 200, page.text
    body = page.json()
    assert [i["id"] for i in body["items"]] == [roof["id"]]  # the Volga one is not visible
    assert (body["total"], body["limit"], body["offset"]) == (1, 50, 0)
    by_filter = org.post("director", "/api/v1/segments/clients",
                         json={"filter": roofing, "limit": 1}).json()
    assert by_filter["total"] == 2 and len(by_filter["items"]) == 1
    problem(org.post("m.ural.2", "/api/v1/segments/clients", json={"segment_id": segment["id"]}),
            404, "segment_not_found")
    assert error_fields(problem(org.post("m.ural.1", "/api/v1/segments/clients", json={
        "segment_id": "x", "limit": 0}), 422)) == {"segment_id", "limit"}

    renamed = org.post("m.ural.1", "/api/v1/segments", json={
        "segment_id": segment["id"], "name": "Кровельщики", "filter": [roofing]})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Кровельщики"

    deleted = org.request("m.ural.1", "DELETE", f"/api/v1/segments/{segment['id']}")
    assert deleted.status_code == 204, deleted.text
    assert org.get("m.ural.1", "/api/v1/segments").json() == []
    problem(org.request("m.ural.1", "DELETE", f"/api/v1/segments/{segment['id']}"), 404,
            "segment_not_found")


# -- ABC and dormant clients ------------------------------------------------------------------

def test_abc_answers_classes(org):
    big = org.create("m.ural.1", short_name="ООО «Крупный»", inn=inn(301))
    middle = org.create("m.ural.1", short_name="ООО «Средний»", inn=inn(302))
    small = org.create("m.ural.2", short_name="ООО «Малый»", inn=inn(303))
    idle = org.create("m.ural.2", short_name="ООО «Молчун»", inn=inn(304))
    add_shipment(org, big["id"], "800000")
    add_shipment(org, middle["id"], "150000")
    add_shipment(org, small["id"], "50000")
    today = utcnow().date()

    response = org.post("head.ural", "/api/v1/clients/abc", json={
        "period_from": (today - timedelta(days=30)).isoformat(),
        "period_to": (today + timedelta(days=1)).isoformat()})

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["basis"] == "shipment" and result["clients"] == 4
    assert Decimal(result["total_revenue"]) == Decimal("1000000")
    assert {k: v["clients"] for k, v in result["classes"].items()} == {"A": 1, "B": 1, "C": 2}
    assert [(i["client_id"], i["abc_class"]) for i in result["items"]] == [
        (big["id"], "A"), (middle["id"], "B"), (small["id"], "C"), (idle["id"], "C")]
    assert Decimal(result["items"][0]["share"]) == Decimal("0.8")

    mine = org.post("m.ural.2", "/api/v1/clients/abc", json={
        "period_from": "2000-01-01", "period_to": (today + timedelta(days=1)).isoformat(),
        "filter": {"field": "short_name", "op": "contains", "value": "малый"}}).json()
    assert [i["client_id"] for i in mine["items"]] == [small["id"]]
    assert error_fields(problem(org.post("head.ural", "/api/v1/clients/abc", json={
        "period_from": "вчера", "period_to": "2024-01-01", "basis": "profit"}), 422)) == {
        "period_from", "basis"}
    assert error_fields(problem(org.post("head.ural", "/api/v1/clients/abc", json={
        "period_from": "2024-02-01", "period_to": "2024-01-01"}), 422)) == {"period_from"}


def test_dormant_recompute_is_for_heads(org):
    org.create("m.ural.1", **STROYMETALL)

    response = org.post("head.ural", "/api/v1/clients/dormant/recompute")

    assert response.status_code == 200, response.text
    assert set(response.json()) == {"changed", "to_dormant", "to_active"}
    problem(org.post("m.ural.1", "/api/v1/clients/dormant/recompute"), 403, "role_required")


# -- reactivation campaigns -------------------------------------------------------------------

def test_head_starts_a_campaign_and_reads_its_report(org):
    a = org.create("m.ural.1", short_name="ООО «Альфа»", inn=inn(401), segment="кровля")
    b = org.create("m.ural.2", short_name="ООО «Бета»", inn=inn(402), segment="кровля")
    org.create("m.ural.2", short_name="ООО «Гамма»", inn=inn(403), segment="фасады")
    roofing = {"field": "segment", "op": "eq", "value": "кровля"}

    started = org.post("head.ural", "/api/v1/campaigns",
                       json={"name": "Возврат кровельщиков", "filter": roofing, "due_in_days": 3})

    assert started.status_code == 201, started.text
    campaign = started.json()
    assert campaign["name"] == "Возврат кровельщиков" and campaign["targets"] == 2
    assert uuid.UUID(campaign["campaign_id"]) and campaign["due_at"] > campaign["created_at"]

    listed = org.get("head.ural", "/api/v1/campaigns")
    assert listed.status_code == 200, listed.text
    assert [(c["campaign_id"], c["targets"], c["reached"]) for c in listed.json()["items"]] == [
        (campaign["campaign_id"], 2, 0)]
    assert org.get("head.volga", "/api/v1/campaigns").json() == {"items": [],
                                                                 "next_cursor": None}

    report = org.get("head.ural", f"/api/v1/campaigns/{campaign['campaign_id']}/report")
    assert report.status_code == 200, report.text
    body = report.json()
    assert (body["targets"], body["reached"], body["with_new_deal"]) == (2, 0, 0)
    assert body["filter"] == roofing and body["created_by"] == org.id("head.ural")
    assert {(o["owner_id"], o["targets"]) for o in body["per_owner"]} == {
        (a["owner_id"], 1), (b["owner_id"], 1)}
    assert org.get("director", f"/api/v1/campaigns/{campaign['campaign_id']}/report"
                   ).json()["targets"] == 2

    problem(org.post("m.ural.1", "/api/v1/campaigns", json={"name": "x"}), 403, "role_required")
    problem(org.get("m.ural.1", "/api/v1/campaigns"), 403, "role_required")
    problem(org.get("head.volga", f"/api/v1/campaigns/{campaign['campaign_id']}/report"), 404,
            "campaign_not_found")
    problem(org.get("head.ural", f"/api/v1/campaigns/{uuid.uuid4()}/report"), 404,
            "campaign_not_found")
    problem(org.post("head.ural", "/api/v1/campaigns", json={
        "name": "Пусто", "filter": {"field": "segment", "op": "eq", "value": "нет такого"}}),
        422, "empty_campaign")
    assert error_fields(problem(org.post("head.ural", "/api/v1/campaigns", json={
        "filter": roofing, "due_in_days": 91}), 422)) == {"name", "due_in_days"}


# -- export -----------------------------------------------------------------------------------

def test_head_exports_csv_and_a_manager_may_not(org):
    org.create("m.ural.1", **STROYMETALL)
    org.create("m.ural.2", short_name="=HYPERLINK(\"x\")", inn=inn(501))
    org.create("m.volga.1", short_name="ООО «Волга»", inn=inn(502))

    response = org.post("head.ural", "/api/v1/clients/export", json={"format": "csv"})

    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/csv")
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and "filename*=UTF-8''clients-" in disposition
    assert disposition.endswith(".csv")
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig")), delimiter=";"))
    header, *data = rows
    assert header[:2] == ["Наименование", "Полное наименование"]
    names = sorted(row[0] for row in data)
    assert names == sorted(["ООО «Стройметалл»", "'=HYPERLINK(\"x\")"])  # no Volga, no formula
    by_name = {row[0]: dict(zip(header, row, strict=True)) for row in data}
    assert by_name["ООО «Стройметалл»"]["ИНН"] == "7707083893"
    assert by_name["ООО «Стройметалл»"]["Ответственный"] == "Иванов Иван"

    problem(org.post("m.ural.1", "/api/v1/clients/export", json={"format": "csv"}), 403,
            "role_required")
    assert error_fields(problem(org.post("head.ural", "/api/v1/clients/export",
                                         json={"format": "pdf"}), 422)) == {"format"}


def test_xlsx_export_and_the_daily_quota(org):
    org.create("m.ural.1", **STROYMETALL)

    xlsx = org.post("director", "/api/v1/clients/export", json={
        "format": "xlsx", "filter": {"field": "inn", "op": "eq", "value": "7707083893"}})

    assert xlsx.status_code == 200, xlsx.text
    assert xlsx.headers["Content-Type"] == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    assert xlsx.headers["Content-Disposition"].endswith(".xlsx")
    assert xlsx.content.startswith(b"PK")  # a zip, as every .xlsx
    for _ in range(EXPORT_QUOTA - 1):
        assert org.post("director", "/api/v1/clients/export", json={}).status_code == 200

    over = problem(org.post("director", "/api/v1/clients/export", json={}), 429,
                   "export_quota_exceeded")
    assert over["quota"] == EXPORT_QUOTA
    # The quota is per person: the head still exports.
    assert org.post("head.ural", "/api/v1/clients/export", json={}).status_code == 200


# -- the document -----------------------------------------------------------------------------

def test_openapi_documents_the_operations(org):
    spec = org.api.get("/openapi.json").json()
    validate(spec)

    operations = {(path, method): op for path, item in spec["paths"].items()
                  for method, op in item.items() if "clients" in op.get("tags", [])}
    assert {(p, m) for p, m in operations} >= {
        ("/api/v1/clients/handover", "post"), ("/api/v1/clients/merge", "post"),
        ("/api/v1/segments", "get"), ("/api/v1/segments", "post"),
        ("/api/v1/segments/{segment_id}", "delete"), ("/api/v1/segments/clients", "post"),
        ("/api/v1/clients/abc", "post"), ("/api/v1/clients/dormant/recompute", "post"),
        ("/api/v1/campaigns", "get"), ("/api/v1/campaigns", "post"),
        ("/api/v1/campaigns/{campaign_id}/report", "get"), ("/api/v1/clients/export", "post")}
    for op in operations.values():
        assert op["security"] == [{"bearer": []}]
        assert any("а" <= ch <= "я" for ch in op["summary"].lower()), op["summary"]
