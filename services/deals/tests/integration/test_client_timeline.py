"""The client card's timeline: calls, e-mails, ERP documents, stage moves, tasks, deliveries and
notes of a client in one feed, written by the same handlers and RPCs that keep the deals' own
timelines (events through the real RabbitMQ), paged with a cursor, shown to whom may see the
client, following deals tied later and merged clients, scrubbed on a personal-data erasure."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crm_platform.clock import clock
from crm_platform.errors import Forbidden, ValidationFailed
from crm_platform.privacy import MARKER

from .test_erp_funnel import Documents

pytestmark = pytest.mark.integration

MSK = ZoneInfo("Europe/Moscow")
MONDAY_10 = datetime(2026, 12, 7, 10, 0, tzinfo=MSK)
PHONE = "+73431234567"


def at(minutes: int) -> datetime:
    return MONDAY_10 + timedelta(minutes=minutes)


def feed(svc, client, who="m.ural.1", **kwargs) -> list[dict]:
    return svc.client_timeline(client, limit=200, as_user=who, **kwargs)["items"]


def call_event(client, minutes, **extra) -> dict:
    return {"call_id": uuid.uuid4(), "client_id": client, "user_id": None,
            "direction": "inbound", "answered": True, "started_at": at(minutes),
            "duration_seconds": 95, "talk_seconds": 80, "external_number": PHONE,
            "our_number": "+73432000000", **extra}


def test_every_kind_of_entry_lands_on_the_clients_feed_newest_first(svc, org, bus):
    clock.travel_to(MONDAY_10)
    client = org.add_client("Лента")
    other = org.add_client("Соседний")
    deal = svc.create_deal({"client_id": client, "title": "Кровля склада"})["deal"]
    svc.create_deal({"client_id": other})
    clock.travel_to(at(1))
    svc.move_stage(deal["id"], "qualified")
    clock.travel_to(at(2))
    svc.add_note(deal["id"], "Просили КП до пятницы")
    clock.travel_to(at(3))
    note = svc.add_client_note(client, "  Директор — Иван Петрович  ")
    assert (note["kind"], note["deal_id"], note["data"]["text"]) == (
        "note", None, "Директор — Иван Петрович")
    assert note["data"]["by_name"] == "Менеджер ural 1"
    clock.travel_to(at(4))
    own_task = svc.create_task({"client_id": client, "title": "Сверка взаиморасчётов",
                                "due_at": at(60).isoformat()})
    clock.travel_to(at(5))
    svc.complete_task(own_task["id"], result="Сверились")
    call = call_event(client, 6, user_id=org.id("m.ural.1"),
                      recording_url="https://pbx.local/rec/1.wav")
    bus.deliver("telephony", "call_registered", call)
    bus.deliver("mail", "email_registered", {
        "message_id": "<kp-1@roofcrm.ru>", "client_id": client, "user_id": org.id("m.ural.1"),
        "direction": "outbound", "sent_at": at(7), "subject": "КП на профнастил",
        "from_address": "m.ural.1@roofcrm.ru", "to_addresses": ["snab@lenta.ru"],
        "thread_id": uuid.uuid4()})
    clock.travel_to(at(8))
    docs = Documents(client)
    order, order_guid = docs.event("order", "posted", "120000.00", number="УТ-77")
    bus.deliver_many([order])
    clock.travel_to(at(9))
    bus.deliver("logistics", "delivery_status_changed", {
        "transport_order_id": uuid.uuid4(), "number": "ТЗ-5", "sequence": 1,
        "deal_id": deal["id"], "status": "in_transit", "at": at(9)})
    clock.travel_to(at(10))
    unposted, _ = docs.event("order", "unposted", "120000.00", guid=order_guid, number="УТ-77")
    bus.deliver_many([unposted])

    items = feed(svc, client)
    assert {i["kind"] for i in items} == {"call", "email", "erp", "stage", "task", "note",
                                          "delivery"}
    keys = [(i["at"], i["id"]) for i in items]
    assert keys == sorted(keys, key=lambda k: (datetime.fromisoformat(k[0]), k[1]),
                          reverse=True)
    assert {i["kind"] for i in feed(svc, other)} == {"stage", "task"}   # its own deal only

    calls = [i for i in items if i["kind"] == "call"]
    assert len(calls) == 1 and calls[0]["ref"] == str(call["call_id"])
    assert calls[0]["data"].items() >= {
        "direction": "inbound", "status": "answered", "from": PHONE, "to": "+73432000000",
        "talk_seconds": 80, "has_recording": True, "user_name": "Менеджер ural 1",
        "recording": f"/api/v1/calls/{call['call_id']}/recording"}.items()
    email = next(i for i in items if i["kind"] == "email")
    assert (email["data"]["subject"], email["data"]["from"], email["data"]["to"]) == (
        "КП на профнастил", "m.ural.1@roofcrm.ru", ["snab@lenta.ru"])
    documents = [i for i in items if i["kind"] == "erp"]
    assert len(documents) == 1                  # the newest revision replaced the posted one
    assert documents[0]["data"].items() >= {
        "kind": "order", "number": "УТ-77", "amount": "120000.00", "state": "unposted",
        "revision": 2}.items()
    assert documents[0]["deal_id"] == deal["id"]
    stages = [(i["data"]["from_stage"], i["data"]["to_stage"], i["data"]["cause"])
              for i in reversed(items) if i["kind"] == "stage"]
    assert stages == [(None, "new", "user"), ("new", "qualified", "user"),
                      ("qualified", "order_confirmed", "erp"),
                      ("order_confirmed", "qualified", "erp")]
    moved = next(i for i in items if i["kind"] == "stage" and i["data"]["to_stage"] == "qualified"
                 and i["data"]["cause"] == "user")
    assert (moved["deal_title"], moved["data"]["changed_by_name"]) == (
        "Кровля склада", "Менеджер ural 1")
    tasks = {i["data"]["title"]: i for i in items if i["kind"] == "task"}
    done = tasks["Сверка взаиморасчётов"]
    assert (done["deal_id"], done["data"]["status"], done["data"]["result"]) == (
        None, "done", "Сверились")
    assert done["data"]["assignee_name"] == "Менеджер ural 1"
    assert any(t["deal_id"] == deal["id"] for t in tasks.values())   # the stage's task
    notes = {i["data"]["text"]: i["deal_id"] for i in items if i["kind"] == "note"}
    assert notes == {"Просили КП до пятницы": deal["id"], "Директор — Иван Петрович": None}
    delivery = next(i for i in items if i["kind"] == "delivery")
    assert (delivery["deal_id"], delivery["data"]["status"], delivery["data"]["number"]) == (
        deal["id"], "in_transit", "ТЗ-5")
    only = feed(svc, client, kinds=["call", "note"])
    assert sorted(i["kind"] for i in only) == ["call", "note", "note"]
    assert [i["kind"] for i in feed(svc, client, kinds="email")] == ["email"]


def test_repeated_events_and_states_leave_one_entry_each(svc, org, bus):
    clock.travel_to(MONDAY_10)
    client = org.add_client("Повторы")
    deal = svc.create_deal({"client_id": client})["deal"]
    call = call_event(client, 1)
    email = {"message_id": "<same@x.ru>", "client_id": client, "direction": "inbound",
             "sent_at": at(2), "subject": "Цена"}
    delivery = {"transport_order_id": uuid.uuid4(), "number": "ТЗ-9", "sequence": 2,
                "deal_id": deal["id"], "status": "delivered", "at": at(3)}
    # The same facts reported again by their services (new envelopes, so the inbox lets them in).
    for _ in range(2):
        bus.deliver("telephony", "call_registered", call)
        bus.deliver("mail", "email_registered", email)
        bus.deliver("logistics", "delivery_status_changed", delivery)
    # An older state of the delivery, late: the feed keeps the newer one.
    bus.deliver("logistics", "delivery_status_changed", {
        **delivery, "sequence": 1, "status": "in_transit", "at": at(2)})
    docs = Documents(client)
    order, guid = docs.event("order", "posted", "5000.00")
    changed, _ = docs.event("order", "changed", "6000.00", guid=guid)
    bus.deliver_many([changed])
    bus.deliver_many([order])                    # revision 1 after revision 2: ignored
    items = feed(svc, client)
    counts = {k: sum(1 for i in items if i["kind"] == k) for k in ("call", "email", "delivery",
                                                                     "erp")}
    assert counts == {"call": 1, "email": 1, "delivery": 1, "erp": 1}
    assert next(i for i in items if i["kind"] == "delivery")["data"]["status"] == "delivered"
    erp = next(i for i in items if i["kind"] == "erp")["data"]
    assert (erp["amount"], erp["revision"]) == ("6000.00", 2)


def test_the_feed_pages_with_an_opaque_cursor(svc, org, bus):
    clock.travel_to(MONDAY_10)
    client = org.add_client("Страницы")
    bus.deliver_many([("telephony", "call_registered", call_event(client, n % 3))
                      for n in range(7)])       # equal times: the id breaks the tie
    for n in range(5):
        clock.travel_to(at(10 + n))
        svc.add_client_note(client, f"Заметка {n}")
    seen, cursor, pages = [], None, 0
    while True:
        page = svc.client_timeline(client, limit=5, cursor=cursor)
        seen += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 12 and len({i["id"] for i in seen}) == 12
    assert seen == feed(svc, client)
    assert [i["data"]["text"] for i in seen[:5]] == [f"Заметка {n}" for n in range(4, -1, -1)]
    calls = svc.client_timeline(client, limit=4, kinds=["call"])
    rest = svc.client_timeline(client, limit=4, kinds=["call"], cursor=calls["next_cursor"])
    assert [i["kind"] for i in calls["items"] + rest["items"]] == ["call"] * 7
    assert rest["next_cursor"] is None
    with pytest.raises(ValidationFailed) as caught:
        svc.client_timeline(client, cursor="garbage!")
    assert "cursor" in caught.value.fields
    with pytest.raises(ValidationFailed) as caught:
        svc.client_timeline(client, kinds=["call", "sms"])
    assert "kinds" in caught.value.fields


def test_who_sees_the_feed_and_who_writes_notes(svc, org):
    clock.travel_to(MONDAY_10)
    client = org.add_client("Доступ")
    pool = org.add_client("Из пула", owner=None, pool_of="ural")
    svc.add_client_note(client, "Своя заметка")
    for who in ("m.ural.1", "head.ural", "director", "admin"):
        assert [i["data"]["text"] for i in feed(svc, client, who)] == ["Своя заметка"]
    for who in ("m.ural.2", "head.volga", "m.volga.1"):
        with pytest.raises(Forbidden):
            svc.client_timeline(client, as_user=who)
        with pytest.raises(Forbidden):
            svc.add_client_note(client, "чужая", as_user=who)
    # A pool client: the department reads its card; nobody notes it before claiming it.
    assert feed(svc, pool, "m.ural.2") == []
    with pytest.raises(Forbidden):
        svc.client_timeline(pool, as_user="m.volga.1")
    with pytest.raises(Forbidden):
        svc.add_client_note(pool, "в пуле", as_user="m.ural.2")
    assert svc.add_client_note(pool, "Разобраться", as_user="head.ural")["data"]["text"]
    with pytest.raises(Forbidden):
        svc.add_client_note(client, "директор", as_user="director")
    for text in ("", "   ", "x" * 5001, None):
        with pytest.raises(ValidationFailed) as caught:
            svc.add_client_note(client, text)
        assert "text" in caught.value.fields
    assert len(svc.add_client_note(client, "я" * 5000)["data"]["text"]) == 5000
    with pytest.raises(ValidationFailed):
        svc.client_timeline("not-a-uuid")
    # A task may name only a client the caller sees (it would show on that client's card).
    with pytest.raises(Forbidden):
        svc.create_task({"client_id": client, "title": "На чужого клиента",
                         "due_at": MONDAY_10.isoformat()}, as_user="m.volga.1")
    assert [i for i in feed(svc, client, "m.ural.1") if i["kind"] == "task"] == []


def test_a_lead_tied_to_a_client_brings_its_story_along(svc, org, bus):
    clock.travel_to(MONDAY_10)
    # A name only: no duplicate check to ask (no clients service runs in these tests).
    lead = svc.create_deal({"lead": {"name": "Иван с сайта"}})
    deal = lead["deal"]
    clock.travel_to(at(1))
    svc.move_stage(deal["id"], "qualified")
    svc.add_note(deal["id"], "Звонили с сайта")
    bus.deliver("telephony", "call_registered", call_event(None, 2, deal_id=deal["id"],
                                                           external_number="+79120000009"))
    client = org.add_client("Новички")
    assert feed(svc, client) == []
    svc.attach_client(deal["id"], client)
    items = feed(svc, client)
    story = svc.deal_timeline(deal["id"], limit=200)["items"]
    assert sorted(i["kind"] for i in items) == sorted(
        i["kind"] for i in story if i["kind"] != "created")
    assert {"call", "note", "stage", "task"} <= {i["kind"] for i in items}
    assert all(i["deal_id"] == deal["id"] for i in items)
    call = next(i for i in items if i["kind"] == "call")["data"]
    assert (call["from"], call["status"]) == ("+79120000009", "answered")
    # From now on the deal's entries go to the client as they happen; tying again adds nothing.
    clock.travel_to(at(5))
    svc.move_stage(deal["id"], "proposal")
    svc.attach_client(deal["id"], client)
    after = feed(svc, client)
    story = svc.deal_timeline(deal["id"], limit=200)["items"]
    assert len(after) == len([i for i in story if i["kind"] != "created"]) > len(items)
    assert after[0]["kind"] in ("stage", "task") and any(
        i["kind"] == "stage" and i["data"]["to_stage"] == "proposal" for i in after)


def test_a_merged_clients_feed_moves_to_the_survivor(svc, org, bus):
    clock.travel_to(MONDAY_10)
    survivor = org.add_client("Основной")
    merged = org.add_client("Дубль")
    svc.add_client_note(survivor, "У основного")
    svc.create_deal({"client_id": merged, "title": "Сделка дубля"})
    shared_call = call_event(survivor, 1)
    bus.deliver("telephony", "call_registered", shared_call)
    # The same call was matched to the duplicate too (numbers on both cards).
    bus.deliver("telephony", "call_registered", {**shared_call, "client_id": merged})
    before = {(i["kind"], i["ref"]) for i in feed(svc, merged)}
    bus.deliver("clients", "clients_merged", {"survivor_id": survivor, "merged_id": merged})
    items = feed(svc, survivor)
    assert {(i["kind"], i["ref"]) for i in items} >= before
    assert sum(1 for i in items if i["kind"] == "call") == 1
    assert any(i["kind"] == "note" for i in items)
    assert org.scalar("SELECT count(*) FROM client_timeline WHERE client_id = :c",
                      c=merged) == 0
    # Asking for the merged client shows the survivor's feed; late events of it go there too.
    assert feed(svc, merged) == items
    bus.deliver("telephony", "call_registered", call_event(merged, 5))
    assert sum(1 for i in feed(svc, survivor) if i["kind"] == "call") == 2


def test_erasing_a_person_scrubs_the_clients_feed(svc, org, bus):
    clock.travel_to(MONDAY_10)
    client = org.add_client("Персональные")
    bus.deliver("telephony", "call_registered", call_event(client, 1))
    bus.deliver("mail", "email_registered", {
        "message_id": "<p@x.ru>", "client_id": client, "direction": "inbound",
        "sent_at": at(2), "subject": "Вопрос", "from_address": "petrov@person.ru",
        "to_addresses": ["m.ural.1@roofcrm.ru"]})
    person = {"phones": [PHONE], "emails": ["petrov@person.ru"]}
    exported = svc.personal_data_export(person, as_user="admin")
    assert len(exported["sections"]["client_timeline"]) == 2
    erased = svc.personal_data_erase(person, "req-1", as_user="admin")
    assert erased["erased"]["client_timeline_entries"] == 2
    items = {i["kind"]: i["data"] for i in feed(svc, client)}
    assert items["call"]["from"] == MARKER and items["call"]["external_number"] == MARKER
    assert items["email"]["from"] == MARKER and items["email"]["subject"] == "Вопрос"
    assert not svc.personal_data_export(person, as_user="admin")["sections"]["client_timeline"]


def test_documents_waiting_for_their_client_join_its_feed_when_it_appears(svc, org, bus):
    counterparty = uuid.uuid4()
    docs = Documents(None, counterparty)
    order, guid = docs.event("order", "posted", "777.00", number="УТ-9")
    bus.deliver_many([order])
    assert org.scalar("SELECT count(*) FROM client_timeline") == 0
    client_id = uuid.uuid4()
    bus.deliver("clients", "client_created", {
        "client_id": client_id, "short_name": "Новый из 1С", "status": "active",
        "owner_id": org.id("m.volga.1"), "department_id": org.departments["volga"],
        "erp_counterparty_guid": counterparty})
    items = feed(svc, str(client_id), "m.volga.1")
    documents = [i for i in items if i["kind"] == "erp"]
    assert [(d["ref"], d["data"]["number"], d["data"]["state"]) for d in documents] == [
        (str(guid), "УТ-9", "posted")]
    deal = svc.list_deals({"client_id": str(client_id)}, as_user="director")["items"][0]
    assert documents[0]["deal_id"] == deal["id"]
    assert any(i["kind"] == "stage" and i["data"]["to_stage"] == "order_confirmed"
               for i in items)


def test_rebuilding_fills_the_feeds_from_what_the_service_kept_before(svc, org, bus):
    clock.travel_to(MONDAY_10)
    client = org.add_client("Старые данные")
    deal = svc.create_deal({"client_id": client})["deal"]
    clock.travel_to(at(1))
    svc.move_stage(deal["id"], "qualified")
    svc.add_note(deal["id"], "Старая заметка")
    svc.create_task({"client_id": client, "title": "Без сделки", "due_at": at(90).isoformat()})
    docs = Documents(client)
    order, order_guid = docs.event("order", "posted", "100.00", number="УТ-1")
    payment, _ = docs.event("payment", "posted", "50.00", number="П-1")   # tied to no order
    bus.deliver_many([order, payment])
    before = feed(svc, client)
    assert {i["kind"] for i in before} == {"stage", "note", "task", "erp"}
    # As if the feed had not existed when all this happened.
    org.execute("DELETE FROM client_timeline")
    assert feed(svc, client) == []
    with pytest.raises(Forbidden):
        svc.rebuild_client_timeline()
    counts = svc.rebuild_client_timeline(as_user="admin")
    assert sum(counts.values()) == len(before)
    after = feed(svc, client)

    def shape(items):
        return sorted((i["kind"], i["ref"], i["deal_id"], datetime.fromisoformat(i["at"]))
                      for i in items)

    assert shape(after) == shape(before)
    documents = {i["ref"]: i for i in after if i["kind"] == "erp"}
    assert documents[str(order_guid)]["deal_id"] == deal["id"]
    assert sorted((d["data"]["number"], d["data"]["state"]) for d in documents.values()) == [
        ("П-1", "posted"), ("УТ-1", "posted")]
    assert svc.rebuild_client_timeline(client, as_user="admin") == {
        "deal_entries": 0, "tasks": 0, "documents": 0}
