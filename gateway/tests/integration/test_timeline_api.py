"""The client card's timeline over HTTP: gateway -> RabbitMQ RPC -> deals (with clients and
directory) -> PostgreSQL. Calls, e-mails and 1C documents come as their services' events through
the broker; notes, deals and stage moves through the API. One system for the whole file (each
test below checks several rules) to keep the number of stacks started small."""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from crm_platform.clock import clock
from crm_platform.testing import wait_for

from .deals_system import ErpDocument, running_deals_org
from .test_api import error_fields, problem

pytestmark = pytest.mark.integration

MSK = ZoneInfo("Europe/Moscow")


def msk(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, 7, hour, minute, tzinfo=MSK)


@pytest.fixture
def org(container_factory, service_config, rabbit_config, service_db, directory_db):
    with running_deals_org(container_factory, service_config, rabbit_config["AMQP_URI"],
                           service_db, directory_db) as org:
        yield org


def timeline(org, who, client_id, **params) -> dict:
    response = org.get(who, f"/api/v1/clients/{client_id}/timeline", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_client_card_shows_the_whole_story_pages_it_and_takes_notes(org):
    clock.travel_to(msk(10))
    client = org.client("m.ural.1", "ООО «Лента»")
    url = f"/api/v1/clients/{client['id']}"
    # Asked at once (the client's event may still be on its way): the feed is there, empty.
    assert timeline(org, "m.ural.1", client["id"]) == {"items": [], "next_cursor": None}

    note = org.post("m.ural.1", f"{url}/notes", json={"text": "Директор — Иван Петрович"},
                    headers={"Idempotency-Key": "note-1"})
    assert note.status_code == 201, note.text
    created = note.json()
    assert (created["kind"], created["deal_id"], created["data"]["text"],
            created["data"]["by_name"]) == ("note", None, "Директор — Иван Петрович",
                                            "Иванов Иван")
    again = org.post("m.ural.1", f"{url}/notes", json={"text": "Директор — Иван Петрович"},
                     headers={"Idempotency-Key": "note-1"})
    assert again.status_code == 201 and again.json()["id"] == created["id"]

    deal = org.deal("m.ural.1", client_id=client["id"], title="Кровля склада")
    clock.travel_to(msk(10, 30))
    moved = org.post("m.ural.1", f"/api/v1/deals/{deal['id']}/stage",
                     json={"stage": "qualified"})
    assert moved.status_code == 200, moved.text
    clock.travel_to(msk(11))
    order = ErpDocument(org, "order", client["id"], "250000.00", msk(10, 45), number="ЗК-9",
                        deal_id=deal["id"])
    order.send()
    org.wait_deal(deal["id"], stage="order_confirmed")
    call_id = str(uuid.uuid4())
    org.deliver("telephony", "call_registered", {
        "call_id": call_id, "client_id": client["id"], "user_id": org.id("m.ural.1"),
        "direction": "outbound", "answered": True, "started_at": msk(11, 5),
        "duration_seconds": 185, "talk_seconds": 170, "external_number": "+73431112233",
        "our_number": "+73432000000", "recording_url": "https://pbx.local/rec/9.wav"})
    org.deliver("mail", "email_registered", {
        "message_id": "<kp-9@roofcrm.dev>", "client_id": client["id"],
        "user_id": org.id("m.ural.1"), "direction": "outbound", "sent_at": msk(11, 10),
        "subject": "Коммерческое предложение", "from_address": "m.ural.1@roofcrm.dev",
        "to_addresses": ["snab@lenta.ru"]})

    everything = timeline(org, "m.ural.1", client["id"], limit=200)
    assert everything["next_cursor"] is None
    items = everything["items"]
    assert {i["kind"] for i in items} == {"note", "stage", "task", "erp", "call", "email"}
    moments = [datetime.fromisoformat(i["at"]) for i in items]
    assert moments == sorted(moments, reverse=True)
    assert [i["kind"] for i in items[:2]] == ["email", "call"]
    call = items[1]["data"]
    assert (call["call_id"], call["from"], call["to"], call["user_name"]) == (
        call_id, "+73432000000", "+73431112233", "Иванов Иван")
    # The recording plays through the gateway's own recording route.
    assert call["recording"] == f"/api/v1/calls/{call_id}/recording"
    spec = org.api.get("/openapi.json").json()
    assert "get" in spec["paths"]["/api/v1/calls/{call_id}/recording"]
    document = next(i for i in items if i["kind"] == "erp")
    assert (document["deal_id"], document["deal_title"], document["data"]["number"],
            document["data"]["amount"], document["data"]["state"]) == (
        deal["id"], "Кровля склада", "ЗК-9", "250000.00", "posted")
    assert [i["data"]["to_stage"] for i in items if i["kind"] == "stage"] == [
        "order_confirmed", "qualified", "new"]

    only = timeline(org, "m.ural.1", client["id"], kinds="call,note")["items"]
    assert [i["kind"] for i in only] == ["call", "note"]
    pages, cursor = [], None
    while True:
        page = timeline(org, "m.ural.1", client["id"], limit=3,
                        **({"cursor": cursor} if cursor else {}))
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [i["id"] for p in pages for i in p] == [i["id"] for i in items]
    assert all(len(p) == 3 for p in pages[:-1]) and len(pages) == -(-len(items) // 3)
    # The head of the department and the director see it too.
    assert len(timeline(org, "head.ural", client["id"], limit=200)["items"]) == len(items)
    assert len(timeline(org, "director", client["id"], limit=200)["items"]) == len(items)


def test_bad_requests_and_strangers_are_refused(org):
    client = org.client("m.ural.1", "ООО «Закрытый»")
    url = f"/api/v1/clients/{client['id']}"
    for params, field in (({"limit": 0}, "limit"), ({"limit": 201}, "limit"),
                          ({"kinds": "call,sms"}, "kinds"), ({"cursor": "не курсор"}, "cursor")):
        body = problem(org.get("m.ural.1", f"{url}/timeline", params=params), 422)
        assert error_fields(body) == {field}, params
    for text in ("", "x" * 5001):
        body = problem(org.post("m.ural.1", f"{url}/notes", json={"text": text}), 422)
        assert error_fields(body) == {"text"}
    body = problem(org.post("m.ural.1", f"{url}/notes", json={"text": "   "}), 422)
    assert error_fields(body) == {"text"}
    body = problem(org.post("m.ural.1", f"{url}/notes", json={}), 422)
    assert error_fields(body) == {"text"}
    # Another department's manager and head: 403; nothing was written for them.
    wait_for(lambda: org.deals.scalar("SELECT count(*) FROM client_replica WHERE client_id = :c",
                                      c=client["id"]), message="the client in deals")
    for who in ("m.volga.1", "head.volga", "m.ural.2"):
        problem(org.get(who, f"{url}/timeline"), 403, "client_access_denied")
        problem(org.post(who, f"{url}/notes", json={"text": "чужая"}), 403)
    assert timeline(org, "m.ural.1", client["id"])["items"] == []
    problem(org.get("director", f"/api/v1/clients/{uuid.uuid4()}/timeline"), 404)
    problem(org.api.get(f"{url}/timeline"), 401)
