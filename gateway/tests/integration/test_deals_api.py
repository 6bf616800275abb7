"""The deals API end to end: gateway -> RabbitMQ RPC -> deals (and clients, directory) ->
PostgreSQL. The organisation is built through the API and reaches the deals service as the
directory's events; the ERP bridge, telephony, mail and payroll are stood in for by their events,
published to the broker as those services would. The clock is moved for overdue and stalled logic
(the services run in this process, so they share it) and the periodic scans run when a test asks
for them (``POST /api/v1/admin/deals/scans``). Each test covers one rule of the issue with several
checks, to keep the number of systems started small."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import groupby
from zoneinfo import ZoneInfo

import pytest

from crm_platform.clock import clock
from crm_platform.testing import wait_for

from .deals_system import INTEGRATION, ErpDocument, running_deals_org
from .test_api import error_fields, problem
from .test_clients_api import inn

pytestmark = pytest.mark.integration

MSK = ZoneInfo("Europe/Moscow")
# A Monday morning in a normal working week of the production calendar (no holidays around).
MONDAY_10 = datetime(2026, 12, 7, 10, 0, tzinfo=MSK)
NEW_TASK = "Связаться с клиентом по новому интересу"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def msk(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=MSK)


@pytest.fixture
def org(container_factory, service_config, rabbit_config, directory_db, service_db):
    with running_deals_org(container_factory, service_config, rabbit_config["AMQP_URI"],
                           service_db, directory_db, deals_config={
                               "NO_INTERACTION_DAYS": 30, "CALLBACK_MINUTES": 30}) as org:
        yield org


# -- 1. registering leads ---------------------------------------------------------------------

def test_leads_are_checked_against_the_client_base_routed_and_never_duplicated(org):
    clock.travel_to(MONDAY_10)
    stroymetall = org.client("m.ural.2", "ООО «Стройметалл»", inn="7707083893",
                             phones=["8 (343) 123-45-67"])

    # A lead typed in by hand with only a phone and a company.
    response = org.post("m.ural.1", "/api/v1/deals", json={
        "lead": {"company": "ООО «Кровля-Урал»", "phone": "8 912 000-00-01"},
        "amount": 150000.5, "volume": {"m2": "1200"}, "product_groups": ["профнастил"],
        "expected_close_date": "2026-12-25"})
    assert response.status_code == 201, response.text
    created = response.json()
    lead = created["deal"]
    assert created["created"] is True and created["routed_to"] is None
    assert lead["client_id"] is None and lead["lead"] == {
        "company": "ООО «Кровля-Урал»", "phone": "+79120000001"}
    assert (lead["owner_id"], lead["owner_name"]) == (org.id("m.ural.1"), "Иванов Иван")
    assert (lead["stage"], lead["stage_title"], lead["source"]) == ("new", "Новый интерес",
                                                                    "manual")
    assert lead["amount"] == "150000.50" and lead["volume"]["m2"] == "1200"
    assert lead["erp"] == {"ordered": "0.00", "invoiced": "0.00", "paid": "0.00",
                           "shipped": "0.00"}
    assert at(lead["created_at"]).utcoffset() is not None

    # The same person calling again about it: the open deal, not a second one.
    again = org.post("m.ural.1", "/api/v1/deals", json={"lead": {"phone": "+7 912 000 00 01"}})
    assert again.status_code == 200, again.text
    assert again.json()["created"] is False and again.json()["deal"]["id"] == lead["id"]
    # ...and a colleague may not take it over by typing it in again.
    body = problem(org.post("m.ural.2", "/api/v1/deals",
                            json={"lead": {"phone": "89120000001"}}), 409, "lead_owned")
    assert body["owner"] == "Иванов Иван" and body["deal_id"] == lead["id"]

    # A lead whose phone is another manager's client is refused to a manager typing it in...
    body = problem(org.post("m.ural.1", "/api/v1/deals",
                            json={"lead": {"phone": "+7 343 123 45 67", "name": "Сергей"}}),
                   409, "client_owned")
    assert (body["owner_id"], body["owner"], body["department"]) == (
        org.id("m.ural.2"), "Петров Пётр", "Уральский отдел")
    assert body["client_id"] == stroymetall["id"]
    assert "Петров Пётр" in body["detail"] and "Уральский отдел" in body["detail"]
    # ...and routed to the client's owner when it came by itself (the web form).
    response = org.post(INTEGRATION, "/api/v1/deals", json={
        "lead": {"phone": "+7 343 123 45 67", "name": "Сергей", "message": "Нужен водосток"},
        "source": "web", "amount": "80000"})
    assert response.status_code == 201, response.text
    routed = response.json()
    web_deal = routed["deal"]
    assert routed["routed_to"] == {"owner_id": org.id("m.ural.2"), "owner_name": "Петров Пётр"}
    assert (web_deal["owner_id"], web_deal["client_id"], web_deal["source"]) == (
        org.id("m.ural.2"), stroymetall["id"], "web")
    assert web_deal["department_id"] == org.dept("ural")
    # A repeat contact (now a call) returns the open deal.
    response = org.post(INTEGRATION, "/api/v1/deals", json={
        "lead": {"phone": "83431234567"}, "source": "call"})
    assert response.status_code == 200, response.text
    assert response.json()["created"] is False
    assert response.json()["deal"]["id"] == web_deal["id"]
    notes = org.notifications("m.ural.2")
    assert [(n["kind"], n["deal_id"]) for n in notes] == [
        ("repeat_contact", web_deal["id"]), ("deal_routed", web_deal["id"])]
    assert all(n["read"] is False for n in notes)

    # A client waiting in the department's pool must be claimed first.
    pool = org.create("head.ural", short_name="ООО «Ничей»", region="RU-SVE", owner_id=None)
    body = problem(org.post("m.ural.1", "/api/v1/deals", json={"client_id": pool["id"]}), 409,
                   "client_in_pool")
    assert body["client_id"] == pool["id"]

    # Qualifying the lead runs the clients' duplicate check: another manager's INN is refused.
    body = problem(org.post("m.ural.1", f"/api/v1/deals/{lead['id']}/qualify",
                            json={"client": {"inn": "7707083893"}}), 409, "client_owned")
    assert org.get_deal("m.ural.1", lead["id"])["client_id"] is None
    response = org.post("m.ural.1", f"/api/v1/deals/{lead['id']}/qualify", json={
        "client": {"inn": inn(42), "region": "RU-SVE"},
        "contacts": [{"full_name": "Сидоров Сергей", "phones": ["+7 912 000-00-02"]}]})
    assert response.status_code == 200, response.text
    qualified = response.json()
    assert qualified["client_id"] and qualified["client_name"] == "ООО «Кровля-Урал»"
    assert qualified["region"] == "RU-SVE" and qualified["version"] == lead["version"] + 1
    card = org.get("m.ural.1", f"/api/v1/clients/{qualified['client_id']}").json()
    assert card["owner_id"] == org.id("m.ural.1") and card["phones"] == ["+79120000001"]
    assert card["inn"] == inn(42) and [c["full_name"] for c in card["contacts"]] == [
        "Сидоров Сергей"]
    body = problem(org.post("m.ural.1", f"/api/v1/deals/{lead['id']}/qualify", json={}), 409,
                   "already_qualified")

    # Another lead tied to a client of the base by hand: one's own, not a colleague's.
    clock.travel_to(MONDAY_10 + timedelta(minutes=1))
    by_mail = org.deal("m.ural.1", lead={"email": "Info@Ural-Dom.ru", "name": "Ольга"})
    assert by_mail["lead"] == {"email": "info@ural-dom.ru", "name": "Ольга"}
    wait_for(lambda: org.deals.scalar("SELECT count(*) FROM client_replica WHERE client_id = "
                                      ":id", id=stroymetall["id"]), message="client replica")
    problem(org.post("m.ural.1", f"/api/v1/deals/{by_mail['id']}/client",
                     json={"client_id": stroymetall["id"]}), 409, "client_owned")
    attached = org.post("m.ural.1", f"/api/v1/deals/{by_mail['id']}/client",
                        json={"client_id": qualified["client_id"]})
    assert attached.status_code == 200, attached.text
    assert attached.json()["client_name"] == "ООО «Кровля-Урал»"

    # Lists: each sees what is theirs; filters by source and text.
    mine = org.get("m.ural.1", "/api/v1/deals").json()
    assert [d["id"] for d in mine["items"]] == [by_mail["id"], lead["id"]]
    assert mine["next_cursor"] is None
    web = org.get("head.ural", "/api/v1/deals", params={"source": "web"}).json()["items"]
    assert [d["id"] for d in web] == [web_deal["id"]]
    found = org.get("director", "/api/v1/deals", params={"q": "Кровля"}).json()["items"]
    assert [d["id"] for d in found] == [lead["id"]]
    assert org.get("head.volga", "/api/v1/deals").json()["items"] == []


# -- 2. the funnel: by hand, and by the 1C documents --------------------------------------------

def test_manual_moves_lost_reopen_and_the_problems_of_bad_requests(org):
    clock.travel_to(MONDAY_10)
    client = org.client("m.ural.1", "ООО «Альфа Кровля»")
    deal = org.deal("m.ural.1", client_id=client["id"], amount="99000",
                    expected_close_date="2026-12-25")
    fetched = org.get("m.ural.1", f"/api/v1/deals/{deal['id']}")
    assert fetched.headers["ETag"] == f'"{deal["version"]}"'
    assert fetched.json()["open_tasks"] == 1 and fetched.json()["probability"] == 10

    # Edits need a version (428 without); a stale one is refused (412).
    problem(org.patch("m.ural.1", f"/api/v1/deals/{deal['id']}", json={"amount": "1"}), 428,
            "precondition_required")
    problem(org.patch("m.ural.1", f"/api/v1/deals/{deal['id']}", json={"amount": "1"},
                      headers={"If-Match": f'"{deal["version"] - 1}"'}), 412,
            "precondition_failed")
    response = org.patch("m.ural.1", f"/api/v1/deals/{deal['id']}",
                         json={"amount": "120000", "probability": 40},
                         headers={"If-Match": f'"{deal["version"]}"'})
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == f'"{deal["version"] + 1}"'
    assert (response.json()["amount"], response.json()["probability"]) == ("120000.00", 40)

    # Manual moves; the stages from the order on are the documents' (422).
    stage = f"/api/v1/deals/{deal['id']}/stage"
    body = problem(org.post("m.ural.1", stage, json={"stage": "invoiced"}), 422,
                   "validation_failed")
    assert error_fields(body) == {"stage"}
    body = problem(org.post("m.ural.1", stage, json={"stage": "lost"}), 422)
    assert error_fields(body) == {"lost_reason"}
    moved = org.post("m.ural.1", stage, json={"stage": "qualified"}).json()
    assert (moved["stage"], moved["manual_stage"]) == ("qualified", "qualified")
    lost = org.post("m.ural.1", stage, json={"stage": "lost",
                                             "lost_reason": "Купили у конкурента"})
    assert lost.status_code == 200, lost.text
    assert (lost.json()["stage"], lost.json()["open"], lost.json()["lost_reason"]) == (
        "lost", False, "Купили у конкурента")
    assert lost.json()["closed_at"]
    # Reopening is for the sales head.
    problem(org.post("m.ural.1", f"/api/v1/deals/{deal['id']}/reopen"), 403, "role_required")
    reopened = org.post("head.ural", f"/api/v1/deals/{deal['id']}/reopen")
    assert reopened.status_code == 200, reopened.text
    assert (reopened.json()["stage"], reopened.json()["open"]) == ("qualified", True)
    history = org.get("m.ural.1", f"/api/v1/deals/{deal['id']}/history").json()
    assert [(h["from_stage"], h["to_stage"], h["cause"]) for h in history] == [
        (None, "new", "user"), ("new", "qualified", "user"), ("qualified", "lost", "user"),
        ("lost", "qualified", "user")]
    assert history[2]["lost_reason"] == "Купили у конкурента"
    assert history[3]["changed_by"] == org.id("head.ural") and history[3]["left_at"] is None

    # Stage filters, repeated or as a comma list.
    clock.travel_to(MONDAY_10 + timedelta(minutes=5))
    other = org.deal("m.ural.1", client_id=client["id"], expect=201)
    listed = {key: [d["id"] for d in org.get("m.ural.1", "/api/v1/deals", params=params)
                    .json()["items"]]
              for key, params in (("new", {"stage": "new"}),
                                  ("comma", {"stage": "new,qualified"}),
                                  ("repeated", [("stage", "qualified"), ("stage", "new")]),
                                  ("closed", {"open": "false"}))}
    assert listed == {"new": [other["id"]], "comma": [other["id"], deal["id"]],
                      "repeated": [other["id"], deal["id"]], "closed": []}
    expected = org.get("m.ural.1", "/api/v1/deals", params={
        "expected_from": "2026-12-20", "expected_to": "2026-12-31", "sort": "expected_close"})
    assert [d["id"] for d in expected.json()["items"]] == [deal["id"]]
    page = org.get("m.ural.1", "/api/v1/deals", params={"limit": 1}).json()
    assert [d["id"] for d in page["items"]] == [other["id"]] and page["next_cursor"]
    page = org.get("m.ural.1", "/api/v1/deals",
                   params={"limit": 1, "cursor": page["next_cursor"]}).json()
    assert [d["id"] for d in page["items"]] == [deal["id"]] and page["next_cursor"] is None
    # Ascending by sort=field (descending is -field), paged the same way.
    page = org.get("m.ural.1", "/api/v1/deals", params={"limit": 1, "sort": "created"}).json()
    assert [d["id"] for d in page["items"]] == [deal["id"]] and page["next_cursor"]
    rest = org.get("m.ural.1", "/api/v1/deals", params={
        "limit": 1, "sort": "created", "cursor": page["next_cursor"]}).json()
    assert [d["id"] for d in rest["items"]] == [other["id"]]
    problem(org.get("m.ural.1", "/api/v1/deals", params={
        "limit": 1, "sort": "-created", "cursor": page["next_cursor"]}), 422)

    # The head hands the deal over; it leaves the manager's sight.
    problem(org.put("m.ural.1", f"/api/v1/deals/{deal['id']}/owner",
                    json={"owner_id": org.id("m.ural.2")}), 403)
    handed = org.put("head.ural", f"/api/v1/deals/{deal['id']}/owner",
                     json={"owner_id": org.id("m.ural.2")})
    assert handed.status_code == 200, handed.text
    assert handed.json()["owner_name"] == "Петров Пётр"
    assert [n["kind"] for n in org.notifications("m.ural.2")] == ["deal_assigned"]
    problem(org.get("m.ural.1", f"/api/v1/deals/{deal['id']}"), 404, "not_found")

    # Problems: unknown deals, bad bodies and queries, roles, tokens.
    problem(org.get("m.ural.1", f"/api/v1/deals/{uuid.uuid4()}"), 404, "not_found")
    problem(org.get("m.volga.1", f"/api/v1/deals/{other['id']}"), 404, "not_found")
    body = problem(org.post("m.ural.1", "/api/v1/deals",
                            json={"client_id": client["id"], "colour": "red"}), 422)
    assert error_fields(body) == {"colour"}
    body = problem(org.post("m.ural.1", "/api/v1/deals", json={
        "amount": "много", "probability": 101, "expected_close_date": "25.12.2026",
        "source": "pigeon", "lead": {"phone": "+7 912 000-00-01", "nickname": "x"}}), 422)
    assert error_fields(body) == {"amount", "probability", "expected_close_date", "source",
                                  "lead.nickname"}
    body = problem(org.post("m.ural.1", "/api/v1/deals", json={"lead": {"phone": "12"}}), 422)
    assert error_fields(body) == {"lead.phone"}
    body = problem(org.post("m.ural.1", "/api/v1/deals", json={"amount": "10"}), 422)
    assert error_fields(body) == {"client_id"}
    for params, field in (({"sort": "price"}, "sort"), ({"limit": 0}, "limit"),
                          ({"stage": "new,no-such"}, "stage"), ({"colour": "red"}, "colour"),
                          ({"cursor": "garbage"}, "cursor")):
        body = problem(org.get("m.ural.1", "/api/v1/deals", params=params), 422)
        assert error_fields(body) == {field}, params
    body = problem(org.patch("m.ural.1", f"/api/v1/deals/{other['id']}",
                             json={"expected_version": "one"}), 422)
    assert error_fields(body) == {"expected_version"}
    problem(org.post("m.ural.1", "/api/v1/admin/deals/scans"), 403, "role_required")
    problem(org.post("m.ural.1", "/api/v1/admin/deals/learn"), 403, "role_required")
    problem(org.post("director", "/api/v1/deals", json={"client_id": client["id"]}), 403)
    problem(org.get(None, "/api/v1/deals"), 401, "missing_token")
    problem(org.get(None, "/api/v1/tasks"), 401, "missing_token")

    # The API document lists the new operations.
    spec = org.api.get("/openapi.json").json()
    assert spec["paths"]["/api/v1/deals/{deal_id}/stage"]["post"]["tags"] == ["deals"]
    assert spec["paths"]["/api/v1/tasks"]["get"]["tags"] == ["tasks"]
    assert spec["paths"]["/api/v1/funnels/{funnel_id}"]["put"]["tags"] == ["funnels"]
    assert spec["paths"]["/api/v1/forecast"]["get"]["tags"] == ["forecast"]


def test_erp_documents_drive_the_funnel_and_an_unposting_moves_it_back(org):
    clock.travel_to(MONDAY_10)
    client = org.client("m.ural.1", "ООО «Бета Металл»")
    deal = org.deal("m.ural.1", client_id=client["id"], amount="100000")
    clock.travel_to(MONDAY_10 + timedelta(days=1))      # a day in "new", for the learned limit

    order = ErpDocument(org, "order", client["id"], "100000.00", msk(8, 10), number="ЗК-101",
                        deal_id=deal["id"])
    order.send()
    seen = org.wait_deal(deal["id"], stage="order_confirmed")
    assert (seen["erp"]["ordered"], seen["payment_status"]) == ("100000.00", "unpaid")
    assert seen["pipeline_amount"] == "100000.00" and seen["open"] is True
    # From the order on, the documents decide the stage.
    body = problem(org.post("m.ural.1", f"/api/v1/deals/{deal['id']}/stage",
                            json={"stage": "proposal"}), 422)
    assert error_fields(body) == {"stage"}

    steps = [
        (ErpDocument(org, "invoice", client["id"], "100000.00", msk(8, 11), number="СЧ-7",
                     order_guid=order.guid), "invoiced"),
        (ErpDocument(org, "shipment", client["id"], "40000.00", msk(8, 12), number="РН-1",
                     order_guid=order.guid), "partially_shipped"),
        (ErpDocument(org, "shipment", client["id"], "60000.00", msk(8, 13), number="РН-2",
                     order_guid=order.guid), "shipped"),
        (ErpDocument(org, "payment", client["id"], "100000.00", msk(8, 14), number="ПП-55",
                     order_guid=order.guid), "closed_won"),
    ]
    for document, stage in steps:
        document.send()
        seen = org.wait_deal(deal["id"], stage=stage)
    assert (seen["payment_status"], seen["open"]) == ("paid", False)
    assert seen["erp"] == {"ordered": "100000.00", "invoiced": "100000.00",
                           "paid": "100000.00", "shipped": "100000.00"}
    # A repeated delivery of the payment changes nothing.
    payment = steps[-1][0]
    org.deliver("erp_bridge", "erp_payment_posted", {**payment.payload})
    assert org.get_deal("m.ural.1", deal["id"])["version"] == seen["version"]

    documents = org.get("m.ural.1", f"/api/v1/deals/{deal['id']}/documents").json()
    assert [(d["kind"], d["number"], d["state"], d["amount_for_deal"]) for d in documents] == [
        ("order", "ЗК-101", "posted", "100000.00"), ("invoice", "СЧ-7", "posted", "100000.00"),
        ("shipment", "РН-1", "posted", "40000.00"), ("shipment", "РН-2", "posted", "60000.00"),
        ("payment", "ПП-55", "posted", "100000.00")]

    # The learned limits: the won deal spent 24 hours in "new".
    learned = org.post("director", "/api/v1/admin/deals/learn")
    assert learned.status_code == 200, learned.text
    [funnel] = org.get("m.ural.1", "/api/v1/funnels").json()
    new = funnel["stages"][0]
    assert new["code"] == "new" and new["limit"] == {"amount": 2, "unit": "working_days"}
    assert new["learned"]["limit_hours"] == 24.0 and new["learned"]["samples"] == 1
    assert (new["limit_mode"], new["limit_in_use"]) == ("fixed", "fixed")
    assert funnel["learned_at"] and learned.json()["funnels"][funnel["id"]]["new"][
        "limit_hours"] == 24.0

    # Un-posting the second shipment moves the deal back.
    steps[2][0].send("unposted")
    back = org.wait_deal(deal["id"], stage="partially_shipped")
    assert back["open"] is True and back["closed_at"] is None
    assert back["erp"]["shipped"] == "40000.00"
    history = org.get("m.ural.1", f"/api/v1/deals/{deal['id']}/history").json()
    assert [(h["to_stage"], h["cause"]) for h in history] == [
        ("new", "user"), ("order_confirmed", "erp"), ("invoiced", "erp"),
        ("partially_shipped", "erp"), ("shipped", "erp"), ("closed_won", "erp"),
        ("partially_shipped", "erp")]
    assert history[0]["changed_by"] == org.id("m.ural.1")
    assert [h["document_guid"] for h in history[1:]] == [
        order.guid, *[d.guid for d, _ in steps], steps[2][0].guid]
    documents = org.get("m.ural.1", f"/api/v1/deals/{deal['id']}/documents").json()
    assert [d["state"] for d in documents if d["number"] == "РН-2"] == ["unposted"]


# -- 3. tasks, meetings, the calendar, overdue ----------------------------------------------------

def test_tasks_meetings_calendar_and_overdue_tasks(org):
    clock.travel_to(MONDAY_10)
    client = org.client("m.ural.1", "ООО «Гамма Строй»")
    deal = org.deal("m.ural.1", client_id=client["id"])
    # The stage's template: call within 2 working hours.
    [stage_task] = org.tasks("m.ural.1", deal_id=deal["id"])
    assert (stage_task["title"], stage_task["source"], stage_task["stage"]) == (
        NEW_TASK, "stage", "new")
    assert at(stage_task["due_at"]) == msk(7, 12) and stage_task["overdue"] is False

    # A manual task and a meeting; times need their zone, unknown fields are refused.
    response = org.post("m.ural.1", "/api/v1/tasks", json={
        "title": "Отправить образцы", "deal_id": deal["id"], "due_at": "2026-12-07T17:00:00+03:00"})
    assert response.status_code == 201, response.text
    manual = response.json()
    assert (manual["kind"], manual["client_id"], manual["assignee_id"]) == (
        "task", client["id"], org.id("m.ural.1"))
    meeting = org.post("m.ural.1", "/api/v1/tasks", json={
        "kind": "meeting", "title": "Встреча на объекте", "deal_id": deal["id"],
        "starts_at": "2026-12-09T15:00:00+03:00", "location": "Екатеринбург, ул. Ленина, 1"})
    assert meeting.status_code == 201, meeting.text
    meeting = meeting.json()
    assert at(meeting["ends_at"]) == msk(9, 16) and at(meeting["due_at"]) == msk(9, 15)
    body = problem(org.post("m.ural.1", "/api/v1/tasks", json={
        "title": "x", "due_at": "2026-12-07T17:00:00", "priority": "high"}), 422)
    assert error_fields(body) == {"due_at", "priority"}
    body = problem(org.post("m.ural.1", "/api/v1/tasks", json={"title": "Без срока"}), 422)
    assert error_fields(body) == {"due_at"}
    body = problem(org.post("m.ural.1", "/api/v1/tasks", json={
        "kind": "meeting", "title": "x", "starts_at": "2026-12-09T15:00:00+03:00",
        "ends_at": "2026-12-09T14:00:00+03:00"}), 422)
    assert error_fields(body) == {"ends_at"}
    # The head gives a task to a manager of the department; a manager may not.
    problem(org.post("m.ural.1", "/api/v1/tasks", json={
        "title": "x", "due_at": "2026-12-08T12:00:00+03:00",
        "assignee_id": org.id("m.ural.2")}), 403)
    given = org.post("head.ural", "/api/v1/tasks", json={
        "title": "Обзвонить дилеров", "due_at": "2026-12-08T18:00:00+03:00",
        "assignee_id": org.id("m.ural.2")}).json()
    assert given["assignee_name"] == "Петров Пётр"
    assert [n["kind"] for n in org.notifications("m.ural.2")] == ["task_assigned"]
    # A call-back in the department's queue (from the telephony): one manager takes it.
    queued = org.post(INTEGRATION, "/api/v1/tasks", json={
        "kind": "callback", "title": "Перезвонить +7 912 555-55-55",
        "due_at": "2026-12-07T11:00:00+03:00", "department_id": org.dept("ural")}).json()
    assert queued["assignee_id"] is None
    assert [t["id"] for t in org.tasks("m.ural.2", queue="true")] == [queued["id"]]
    taken = org.post("m.ural.1", f"/api/v1/tasks/{queued['id']}/take")
    assert taken.status_code == 200, taken.text
    assert taken.json()["assignee_id"] == org.id("m.ural.1")
    problem(org.post("m.ural.2", f"/api/v1/tasks/{queued['id']}/take"), 409, "already_taken")
    # Reading, changing and closing.
    task_url = f"/api/v1/tasks/{manual['id']}"
    fetched = org.get("m.ural.1", task_url)
    assert fetched.json()["title"] == "Отправить образцы"
    assert fetched.headers["ETag"] == f'"{manual["version"]}"'
    problem(org.get("m.ural.2", task_url), 404, "not_found")
    problem(org.patch("m.ural.1", task_url, json={"title": "x"},
                      headers={"If-Match": '"7"'}), 412, "precondition_failed")
    problem(org.patch("m.ural.1", task_url, json={"title": "x"}), 428, "precondition_required")
    changed = org.patch("m.ural.1", task_url, json={"title": "Отправить образцы и КП"},
                        headers={"If-Match": f'"{manual["version"]}"'})
    assert changed.status_code == 200, changed.text
    assert changed.json()["title"] == "Отправить образцы и КП"
    assert changed.headers["ETag"] == f'"{manual["version"] + 1}"'
    done = org.post("m.ural.1", f"/api/v1/tasks/{queued['id']}/complete",
                    json={"result": "Договорились о встрече"}).json()
    assert (done["status"], done["result"]) == ("done", "Договорились о встрече")
    problem(org.post("m.ural.1", f"/api/v1/tasks/{queued['id']}/complete", json={}), 409,
            "task_closed")
    body = problem(org.post("m.ural.1", f"/api/v1/tasks/{manual['id']}/complete",
                            json={"status": "postponed"}), 422)
    assert error_fields(body) == {"status"}

    # The calendar: a manager's day, week and month; the department's for its head only.
    def calendar(who, **params):
        response = org.get(who, "/api/v1/calendar", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def titles(view):
        return {d["date"]: [t["title"] for t in d["items"]] for d in view["days"] if d["items"]}

    day = calendar("m.ural.1", view="day", day="2026-12-07")
    assert (day["from"], day["to"], day["timezone"]) == ("2026-12-07", "2026-12-07",
                                                         "Europe/Moscow")
    assert titles(day) == {"2026-12-07": ["Перезвонить +7 912 555-55-55", NEW_TASK,
                                          "Отправить образцы и КП"]}
    week = calendar("m.ural.1", view="week", day="2026-12-09")
    assert (week["from"], week["to"]) == ("2026-12-07", "2026-12-13")
    assert titles(week)["2026-12-09"] == ["Встреча на объекте"]
    assert [d["working"] for d in week["days"]] == [True] * 5 + [False] * 2
    month = calendar("m.ural.1", view="month", day="2026-12-15")
    assert (month["from"], month["to"], len(month["days"])) == ("2026-12-01", "2026-12-31", 31)
    assert month["days"][-1]["working"] is False        # 31 December: a holiday
    assert calendar("m.ural.1", view="week")["from"] == "2026-12-07"   # today's week
    department = calendar("head.ural", view="week", day="2026-12-07",
                          department_id=org.dept("ural"))
    assert "Обзвонить дилеров" in titles(department)["2026-12-08"]
    assert NEW_TASK in titles(department)["2026-12-07"]
    assert titles(calendar("head.ural", view="week", day="2026-12-07",
                           user_id=org.id("m.ural.2"))) == {"2026-12-08": ["Обзвонить дилеров"]}
    problem(org.get("m.ural.1", "/api/v1/calendar",
                    params={"department_id": org.dept("ural")}), 403)
    problem(org.get("head.volga", "/api/v1/calendar",
                    params={"department_id": org.dept("ural")}), 403)
    problem(org.get("m.ural.2", "/api/v1/calendar", params={"user_id": org.id("m.ural.1")}), 403)
    body = problem(org.get("m.ural.1", "/api/v1/calendar", params={"view": "year"}), 422)
    assert error_fields(body) == {"view"}

    # The next morning the stage task and the manual task are overdue: the head is told.
    clock.travel_to(msk(8, 9, 30))
    assert org.scan() == {"overdue_tasks": 2, "stalled_deals": 0, "forgotten_clients": 0}
    assert org.scan()["overdue_tasks"] == 0                 # once only
    overdue = org.tasks("m.ural.1", overdue="true")
    assert {t["id"] for t in overdue} == {stage_task["id"], manual["id"]}
    assert all(t["overdue"] for t in overdue)
    head_notes = org.notifications("head.ural", unread_only="true")
    assert sorted((n["kind"], n["task_id"]) for n in head_notes) == sorted(
        [("task_overdue", stage_task["id"]), ("task_overdue", manual["id"])])
    assert any("Иванов Иван" in n["text"] for n in head_notes)
    assert {n["task_id"] for n in org.notifications("m.ural.1") if n["kind"] ==
            "task_overdue"} == {stage_task["id"], manual["id"]}
    marked = org.post("head.ural", "/api/v1/notifications/read",
                      json={"ids": [head_notes[0]["id"]]})
    assert marked.json() == {"marked": 1}
    assert org.post("head.ural", "/api/v1/notifications/read").json() == {"marked": 1}
    assert org.notifications("head.ural", unread_only="true") == []


# -- 4. stalled deals and the funnel settings ---------------------------------------------------

def test_a_deal_past_its_stage_limit_stalls_and_the_head_is_told(org):
    clock.travel_to(MONDAY_10)
    client = org.client("m.ural.1", "ООО «Дельта»")
    deal = org.deal("m.ural.1", client_id=client["id"], title="Кровля склада")
    fresh = org.deal("m.ural.1", client_id=client["id"], title="Водосток")
    # "new" allows 2 working days: Wednesday 10:00.
    assert at(deal["stage_deadline_at"]) == msk(9, 10) and deal["stalled"] is False

    clock.travel_to(msk(9, 9, 59))
    assert org.scan()["stalled_deals"] == 0
    org.post("m.ural.1", f"/api/v1/deals/{fresh['id']}/stage", json={"stage": "qualified"})
    clock.travel_to(msk(9, 10, 30))
    counts = org.scan()
    assert counts["stalled_deals"] == 1 and org.scan()["stalled_deals"] == 0

    stalled = org.get_deal("m.ural.1", deal["id"])
    assert stalled["stalled"] is True and at(stalled["stalled_at"]) == msk(9, 10, 30)
    listed = org.get("m.ural.1", "/api/v1/deals").json()["items"]
    assert {d["id"]: d["stalled"] for d in listed} == {deal["id"]: True, fresh["id"]: False}
    only = org.get("head.ural", "/api/v1/deals", params={"stalled": "true"}).json()["items"]
    assert [d["id"] for d in only] == [deal["id"]]
    not_stalled = org.get("m.ural.1", "/api/v1/deals", params={"stalled": "false"}).json()
    assert [d["id"] for d in not_stalled["items"]] == [fresh["id"]]
    # A task for the owner, a notification for the head.
    [task] = [t for t in org.tasks("m.ural.1", deal_id=deal["id"]) if t["source"] == "stalled"]
    assert task["assignee_id"] == org.id("m.ural.1") and "Новый интерес" in task["title"]
    [note] = [n for n in org.notifications("head.ural") if n["kind"] == "deal_stalled"]
    assert note["deal_id"] == deal["id"] and "Кровля склада" in note["text"]
    # Moving on clears it.
    moved = org.post("m.ural.1", f"/api/v1/deals/{deal['id']}/stage",
                     json={"stage": "qualified"}).json()
    assert moved["stalled"] is False and moved["stalled_at"] is None

    # The funnel settings: fixed limits, learned ones beside them, who may change them.
    [funnel] = org.get("m.ural.1", "/api/v1/funnels").json()
    assert funnel["is_default"] is True
    stages = {s["code"]: s for s in funnel["stages"]}
    assert list(stages) == ["new", "qualified", "proposal", "order_confirmed", "invoiced",
                            "partially_shipped", "shipped", "closed_won", "lost"]
    assert stages["qualified"]["limit"] == {"amount": 5, "unit": "working_days"}
    assert (stages["qualified"]["limit_mode"], stages["qualified"]["learned"],
            stages["qualified"]["limit_in_use"]) == ("fixed", None, "fixed")
    assert stages["closed_won"]["limit_in_use"] == "none"
    editable = ("code", "title", "probability", "limit", "limit_mode", "tasks")
    new_stages = [{k: s[k] for k in editable} for s in funnel["stages"]]
    new_stages[0]["limit"] = {"amount": 4, "unit": "working_hours"}
    new_stages[1]["limit_mode"] = "learned"
    url = f"/api/v1/funnels/{funnel['id']}"
    current = {"If-Match": f'"{funnel["version"]}"'}
    problem(org.put("head.ural", url, json={"name": "Основная", "stages": new_stages},
                    headers=current), 403)
    problem(org.put("admin", url, json={"name": "Основная", "stages": new_stages}), 428,
            "precondition_required")
    problem(org.put("admin", url, json={"name": "Основная", "stages": new_stages},
                    headers={"If-Match": f'"{funnel["version"] + 5}"'}), 412,
            "precondition_failed")
    bad = [dict(new_stages[0], limit={"amount": 0, "unit": "fortnights"}), *new_stages[1:]]
    body = problem(org.put("admin", url, json={"name": "Основная", "stages": bad},
                           headers=current), 422)
    assert error_fields(body) == {"stages.0.limit.amount", "stages.0.limit.unit"}
    saved = org.put("admin", url, json={"name": "Основная", "stages": new_stages},
                    headers={"If-Match": f'"{funnel["version"]}"'})
    assert saved.status_code == 200, saved.text
    saved_stages = {s["code"]: s for s in saved.json()["stages"]}
    assert saved_stages["new"]["limit"] == {"amount": 4, "unit": "working_hours"}
    # Learned, but on no won deals yet: the fixed limit stays in use.
    assert (saved_stages["qualified"]["limit_mode"],
            saved_stages["qualified"]["limit_in_use"]) == ("learned", "fixed")
    assert saved.headers["ETag"] == f'"{funnel["version"] + 1}"'
    problem(org.get("m.ural.1", f"/api/v1/funnels/{uuid.uuid4()}"), 404)
    created = org.post("director", "/api/v1/funnels", json={
        "name": "Дилеры", "stages": [{"code": "contact", "title": "Контакт", "probability": 20,
                                      "limit": {"amount": 3, "unit": "days"}}]})
    assert created.status_code == 201, created.text
    assert [s["code"] for s in created.json()["stages"]][:2] == ["contact", "order_confirmed"]

    # The work calendar: read by all, set by the admin.
    calendar = org.get("m.ural.1", "/api/v1/settings/work-calendar").json()
    assert (calendar["timezone"], calendar["day_start"], calendar["day_end"]) == (
        "Europe/Moscow", "09:00", "18:00")
    problem(org.put("m.ural.1", "/api/v1/settings/work-calendar", json={"day_start": "10:00"}),
            403)
    body = problem(org.put("admin", "/api/v1/settings/work-calendar",
                           json={"day_start": "25:00", "holidays": ["2027-13-01"]}), 422)
    assert error_fields(body) == {"day_start", "holidays.0"}
    saved = org.put("admin", "/api/v1/settings/work-calendar",
                    json={"day_start": "09:00", "holidays": ["2027-01-11"]})
    assert saved.status_code == 200, saved.text
    assert saved.json()["settings"] == {"day_start": "09:00", "holidays": ["2027-01-11"]}
    assert saved.json()["timezone"] == "Europe/Moscow"


# -- 5. the forecast ------------------------------------------------------------------------------

def test_forecast_per_manager_and_department_against_the_plan(org):
    clock.travel_to(MONDAY_10)
    ural_client = org.client("m.ural.1", "ООО «Урал Кров»")
    other_client = org.client("m.ural.2", "ООО «Сталь Профиль»")
    volga_client = org.client("m.volga.1", "ООО «Казань Металл»", region="RU-TA")
    small = org.deal("m.ural.1", client_id=ural_client["id"], amount="100000",
                     expected_close_date="2026-12-20")
    ordered = org.deal("m.ural.1", client_id=ural_client["id"], amount="200000",
                       probability=50, expected_close_date="2026-12-25")
    later = org.deal("m.ural.1", client_id=ural_client["id"], amount="50000",
                     expected_close_date="2027-01-15")
    colleague = org.deal("m.ural.2", client_id=other_client["id"], amount="300000",
                         expected_close_date="2026-12-28")
    org.post("m.ural.2", f"/api/v1/deals/{colleague['id']}/stage", json={"stage": "qualified"})
    org.deal("m.volga.1", client_id=volga_client["id"], amount="70000",
             expected_close_date="2026-12-10")
    # A posted order makes a deal committed; the plans come from payroll.
    ErpDocument(org, "order", ural_client["id"], "200000.00", msk(7, 10), number="ЗК-7",
                deal_id=ordered["id"]).send()
    org.wait_deal(ordered["id"], stage="order_confirmed")
    for who, amount in (("m.ural.1", "500000.00"), ("m.ural.2", "400000.00")):
        org.deliver("payroll", "sales_plan_changed", {
            "user_id": org.id(who), "department_id": org.dept("ural"), "month": date(2026, 12, 1),
            "sales_amount": Decimal(amount)})

    def forecast(who, **params):
        response = org.get(who, "/api/v1/forecast", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    by_manager = forecast("head.ural", month_from="2026-12")
    rows = {r["group_name"]: r for r in by_manager["rows"]}
    assert set(rows) == {"Иванов Иван", "Петров Пётр"}
    mine = rows["Иванов Иван"]
    assert (mine["month"], mine["group"]) == ("2026-12", org.id("m.ural.1"))
    assert {k: mine[k] for k in ("plan", "won", "committed", "weighted", "best_case",
                                 "pipeline", "deals", "fulfilment_percent")} == {
        "plan": "500000.00", "won": "0.00", "committed": "200000.00", "weighted": "110000.00",
        "best_case": "300000.00", "pipeline": "300000.00", "deals": 2,
        "fulfilment_percent": 0.0}
    assert (rows["Петров Пётр"]["plan"], rows["Петров Пётр"]["weighted"]) == (
        "400000.00", "90000.00")
    # The manager sees only the own figures; two months bring the January deal in.
    own = forecast("m.ural.1", month_from="2026-12", month_to="2027-01")["rows"]
    assert [(r["month"], r["pipeline"], r["plan"]) for r in own] == [
        ("2026-12", "300000.00", "500000.00"), ("2027-01", "50000.00", None)]
    by_department = forecast("director", month_from="2026-12", group_by="department")["rows"]
    departments = {r["group_name"]: r for r in by_department}
    assert (departments["Уральский отдел"]["pipeline"], departments["Уральский отдел"]["plan"],
            departments["Уральский отдел"]["deals"]) == ("600000.00", "900000.00", 3)
    assert (departments["Приволжский отдел"]["weighted"],
            departments["Приволжский отдел"]["plan"]) == ("7000.00", None)
    ural_only = forecast("director", month_from="2026-12", group_by="month",
                         department_id=org.dept("ural"))["rows"]
    assert [(r["group"], r["best_case"]) for r in ural_only] == [(None, "600000.00")]

    # The deals behind a figure.
    behind = org.get("head.ural", "/api/v1/forecast/deals", params={
        "month": "2026-12", "figure": "weighted", "owner_id": org.id("m.ural.1")})
    assert behind.status_code == 200, behind.text
    assert [(d["id"], d["contribution"]) for d in behind.json()] == [
        (ordered["id"], "100000.00"), (small["id"], "10000.00")]
    committed = org.get("m.ural.1", "/api/v1/forecast/deals",
                        params={"month": "2026-12", "figure": "committed"}).json()
    assert [(d["id"], d["contribution"], d["stage"]) for d in committed] == [
        (ordered["id"], "200000.00", "order_confirmed")]
    assert later["id"] not in {d["id"] for d in committed}

    # Bad requests and roles.
    for params, fields in (({"month_from": "2026-13"}, {"month_from"}),
                           ({}, {"month_from"}),
                           ({"month_from": "2026-12", "group_by": "team"}, {"group_by"}),
                           ({"month_from": "2026-12", "month_to": "2026-10"}, {"month_to"})):
        body = problem(org.get("head.ural", "/api/v1/forecast", params=params), 422)
        assert error_fields(body) == fields, params
    body = problem(org.get("head.ural", "/api/v1/forecast/deals",
                           params={"month": "2026-12", "figure": "hope"}), 422)
    assert error_fields(body) == {"figure"}
    problem(org.get(INTEGRATION, "/api/v1/forecast", params={"month_from": "2026-12"}), 403)


# -- 6. the timeline ------------------------------------------------------------------------------

def test_the_timeline_shows_moves_tasks_documents_calls_and_emails_newest_first(org):
    clock.travel_to(MONDAY_10)
    client = org.client("m.ural.1", "ООО «Эпсилон»")
    deal = org.deal("m.ural.1", client_id=client["id"])
    clock.travel_to(msk(7, 10, 30))
    org.post("m.ural.1", f"/api/v1/deals/{deal['id']}/stage", json={"stage": "qualified"})
    clock.travel_to(msk(7, 11))
    note = org.post("m.ural.1", f"/api/v1/deals/{deal['id']}/notes",
                    json={"text": "Клиент просит образцы цвета RAL 8017"})
    assert note.status_code == 201, note.text
    assert note.json()["kind"] == "note"
    body = problem(org.post("m.ural.1", f"/api/v1/deals/{deal['id']}/notes", json={"text": ""}),
                   422)
    assert error_fields(body) == {"text"}
    clock.travel_to(msk(7, 11, 30))
    # Posted in 1C at 11:15, reaching the CRM at 11:30.
    order = ErpDocument(org, "order", client["id"], "250000.00", msk(7, 11, 15), number="ЗК-9",
                        deal_id=deal["id"])
    order.send()
    org.wait_deal(deal["id"], stage="order_confirmed")
    clock.travel_to(msk(7, 12))
    call_id = str(uuid.uuid4())
    org.deliver("telephony", "call_registered", {
        "call_id": call_id, "client_id": client["id"], "user_id": org.id("m.ural.1"),
        "direction": "outbound", "answered": True, "started_at": msk(7, 12),
        "duration_seconds": 185, "talk_seconds": 170, "external_number": "+73431112233"})
    org.deliver("mail", "email_registered", {
        "message_id": "<kp-9@roofcrm.dev>", "client_id": client["id"],
        "user_id": org.id("m.ural.1"), "direction": "outbound", "sent_at": msk(7, 12, 30),
        "subject": "Коммерческое предложение"})

    url = f"/api/v1/deals/{deal['id']}/timeline"
    everything = org.get("m.ural.1", url, params={"limit": 200}).json()
    assert everything["next_cursor"] is None
    items = everything["items"]
    # Newest first; what happened at the same moment (a move and the tasks it made) together.
    moments = [at(i["at"]) for i in items]
    assert moments == sorted(moments, reverse=True)
    assert [(moment, sorted(i["kind"] for i in group)) for moment, group in
            groupby(items, key=lambda i: at(i["at"]))] == [
        (msk(7, 12, 30), ["email"]), (msk(7, 12), ["call"]),
        (msk(7, 11, 30), ["stage", "task"]), (msk(7, 11, 15), ["erp"]), (msk(7, 11), ["note"]),
        (msk(7, 10, 30), ["stage", "task"]), (MONDAY_10, ["created", "stage", "task"])]
    by_kind = {i["kind"]: i["data"] for i in items}
    assert by_kind["email"]["subject"] == "Коммерческое предложение"
    assert (by_kind["call"]["call_id"], by_kind["call"]["talk_seconds"]) == (call_id, 170)
    assert (by_kind["erp"]["number"], by_kind["erp"]["amount"], by_kind["erp"]["state"]) == (
        "ЗК-9", "250000.00", "posted")
    assert by_kind["note"]["text"] == "Клиент просит образцы цвета RAL 8017"
    stage_moves = [(i["data"]["to_stage"], i["data"]["cause"]) for i in items
                   if i["kind"] == "stage"]
    assert stage_moves == [("order_confirmed", "erp"), ("qualified", "user"), ("new", "user")]
    # The tasks show their current state: the "new" one closed itself when the deal moved on.
    task_states = {i["data"]["title"]: i["data"]["status"] for i in items if i["kind"] == "task"}
    assert task_states == {NEW_TASK: "cancelled",
                           "Подготовить и отправить коммерческое предложение": "cancelled",
                           "Выставить счёт по заказу": "open"}

    # Pages of four, following the cursor, give the same list.
    pages, cursor = [], None
    while True:
        page = org.get("m.ural.1", url, params={"limit": 4, **(
            {"cursor": cursor} if cursor else {})}).json()
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [4, 4, 3]
    assert [i["id"] for p in pages for i in p] == [i["id"] for i in items]
    body = problem(org.get("m.ural.1", url, params={"limit": 500}), 422)
    assert error_fields(body) == {"limit"}
    problem(org.get("m.ural.2", url), 404)
