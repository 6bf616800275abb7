"""Auto-reactions with the clock moved: overdue tasks, stalled deals (fixed and learned limits),
forgotten clients, missed calls and call-backs, e-mails, reactivation calls; the calendar."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from crm_platform.clock import clock
from crm_platform.errors import Conflict, Forbidden, ValidationFailed
from services.deals.models import deals, stage_history

pytestmark = pytest.mark.integration

MSK = ZoneInfo("Europe/Moscow")
MONDAY_10 = datetime(2026, 12, 7, 10, 0, tzinfo=MSK)


def payloads(org, event_type):
    return [r.envelope["payload"] for r in org.rows(
        "SELECT envelope FROM outbox WHERE type = :t ORDER BY id", t=event_type)]


def test_an_overdue_task_is_raised_once_to_the_assignee_and_the_head(svc, org):
    clock.travel_to(MONDAY_10)
    deal = svc.create_deal({"client_id": org.add_client("Альфа")})["deal"]
    task = svc.list_tasks({"deal_id": deal["id"]})["items"][0]     # due 12:00
    clock.travel_to(MONDAY_10 + timedelta(hours=1, minutes=59))
    assert svc.run_scans(as_user="admin")["overdue_tasks"] == 0
    clock.travel_to(MONDAY_10 + timedelta(hours=2, minutes=1))
    assert svc.run_scans(as_user="admin")["overdue_tasks"] == 1
    assert svc.run_scans(as_user="admin")["overdue_tasks"] == 0      # once
    overdue = payloads(org, "task_overdue")
    assert [(p["task_id"], p["head_user_id"]) for p in overdue] == [
        (task["id"], org.id("head.ural"))]
    assert svc.list_tasks({"overdue": True})["items"][0]["id"] == task["id"]
    head_notes = svc.list_notifications(as_user="head.ural")
    assert head_notes[0]["kind"] == "task_overdue" and "Менеджер ural 1" in head_notes[0]["text"]
    # Moved to tomorrow, it may become overdue again later.
    svc.update_task(task["id"], {"due_at": (MONDAY_10 + timedelta(days=1)).isoformat()})
    clock.travel_to(MONDAY_10 + timedelta(days=1, minutes=1))
    assert svc.run_scans(as_user="admin")["overdue_tasks"] == 1
    done = svc.complete_task(task["id"], result="Дозвонился, ждут КП")
    assert done["status"] == "done"
    with pytest.raises(Conflict):
        svc.complete_task(task["id"])


def test_a_deal_past_its_stage_limit_stalls_once_with_a_task_and_a_notification(svc, org):
    clock.travel_to(MONDAY_10)
    deal = svc.create_deal({"client_id": org.add_client("Бета")})["deal"]   # new: 2 working days
    clock.travel_to(datetime(2026, 12, 9, 9, 59, tzinfo=MSK))
    assert svc.run_scans(as_user="admin")["stalled_deals"] == 0
    clock.travel_to(datetime(2026, 12, 9, 10, 1, tzinfo=MSK))
    assert svc.run_scans(as_user="admin")["stalled_deals"] == 1
    assert svc.run_scans(as_user="admin")["stalled_deals"] == 0
    state = svc.get_deal(deal["id"])
    assert state["stalled"] is True
    assert [d["id"] for d in svc.list_deals({"stalled": True})["items"]] == [deal["id"]]
    stalled = payloads(org, "deal_stalled")
    assert stalled[0]["deal_id"] == deal["id"] and stalled[0]["head_user_id"] == org.id(
        "head.ural")
    assert stalled[0]["limit_hours"] == 48.0
    tasks = svc.list_tasks({"deal_id": deal["id"], "status": "open"})["items"]
    assert any(t["source"] == "stalled" for t in tasks)
    assert svc.list_notifications(as_user="head.ural")[0]["kind"] == "deal_stalled"
    # Moving on clears it; the next stage has its own limit.
    moved = svc.move_stage(deal["id"], "qualified")
    assert moved["stalled"] is False


def test_learned_limits_come_from_won_deals_and_replace_fixed_ones(svc, org):
    """Twelve won deals that spent 10 to 21 hours in "qualified": p75 = 18.25 h."""
    funnel = svc.get_funnel(as_user="admin")
    now = datetime(2026, 12, 7, 10, 0, tzinfo=MSK)
    clock.travel_to(now)
    client = org.add_client("История")
    with org.engine.begin() as conn:
        for hours in range(10, 22):
            deal_id = uuid.uuid4()
            entered = now - timedelta(days=30)
            conn.execute(sa.insert(deals).values(
                id=deal_id, funnel_id=uuid.UUID(funnel["id"]), title="Старая",
                client_id=client, owner_id=org.id("m.ural.1"), source="manual",
                manual_stage="qualified", stage="closed_won", stage_entered_at=entered,
                closed_at=now - timedelta(days=20), created_at=entered, updated_at=entered))
            conn.execute(sa.insert(stage_history).values(
                deal_id=deal_id, funnel_id=uuid.UUID(funnel["id"]), from_stage="new",
                to_stage="qualified", at=entered, left_at=entered + timedelta(hours=hours),
                cause="user"))
    svc.learn_now(as_user="admin")
    stages = {s["code"]: s for s in svc.get_funnel(as_user="admin")["stages"]}
    assert stages["qualified"]["learned"]["limit_hours"] == 18.25
    assert stages["qualified"]["learned"]["samples"] == 12
    assert stages["qualified"]["learned"]["win_rate"] == 1.0
    assert stages["qualified"]["limit_in_use"] == "fixed"
    # Switched to learned in the settings: a deal in "qualified" stalls after 18.25 h.
    edited = [dict(s, limit_mode="learned") if s["code"] == "qualified" else s
              for s in funnel["stages"]]
    for s in edited:
        s.pop("learned", None)
        s.pop("limit_in_use", None)
    svc.save_funnel(funnel["id"], funnel["name"], edited, as_user="admin")
    assert {s["code"]: s for s in svc.get_funnel(as_user="admin")["stages"]}[
        "qualified"]["limit_in_use"] == "learned"
    deal = svc.create_deal({"client_id": client})["deal"]
    svc.move_stage(deal["id"], "qualified")
    clock.travel_to(now + timedelta(hours=18, minutes=10))
    assert svc.run_scans(as_user="admin")["stalled_deals"] == 0
    clock.travel_to(now + timedelta(hours=18, minutes=20))
    assert svc.run_scans(as_user="admin")["stalled_deals"] == 1


def test_funnel_settings_are_checked_and_guarded(svc, org):
    funnel = svc.get_funnel(as_user="admin")
    with pytest.raises(Forbidden):
        svc.save_funnel(funnel["id"], "x", funnel["stages"], as_user="m.ural.1")
    svc.create_deal({"client_id": org.add_client("Гамма")})            # a deal in "new"
    without_new = [s for s in funnel["stages"] if s["code"] != "new"]
    with pytest.raises(Conflict) as in_use:
        svc.save_funnel(funnel["id"], funnel["name"], without_new, as_user="admin")
    assert in_use.value.extra["stages"] == ["new"]
    with pytest.raises(ValidationFailed):
        svc.save_funnel(funnel["id"], "", funnel["stages"], as_user="admin")
    created = svc.save_funnel(None, "Дилеры", [{"code": "contact", "probability": 20}],
                              as_user="admin")
    assert [s["code"] for s in created["stages"]][:2] == ["contact", "order_confirmed"]
    deal = svc.create_deal({"client_id": org.add_client("Дилер"), "funnel_id": created["id"]})
    assert deal["deal"]["stage"] == "contact"


def test_a_client_without_contact_for_n_days_raises_a_call_task_once(svc, org):
    clock.travel_to(MONDAY_10)
    client = org.add_client("Забытый")
    clock.travel_to(MONDAY_10 + timedelta(days=29))
    assert svc.run_scans(as_user="admin")["forgotten_clients"] == 0
    clock.travel_to(MONDAY_10 + timedelta(days=31))
    assert svc.run_scans(as_user="admin")["forgotten_clients"] == 1
    assert svc.run_scans(as_user="admin")["forgotten_clients"] == 0
    task = svc.list_tasks({"client_id": client})["items"][0]
    assert task["source"] == "no_interaction" and task["kind"] == "call"
    assert svc.list_notifications(as_user="head.ural")[0]["kind"] == "client_forgotten"


def test_a_missed_call_becomes_a_call_back_that_a_call_closes(svc, org, bus):
    clock.travel_to(MONDAY_10)
    client = org.add_client("Звонящий")
    deal = svc.create_deal({"client_id": client})["deal"]
    call = {"call_id": uuid.uuid4(), "client_id": client, "user_id": org.id("m.ural.1"),
            "direction": "inbound", "answered": False, "started_at": MONDAY_10,
            "duration_seconds": 20, "external_number": "+73431234567"}
    bus.deliver("telephony", "call_registered", call)
    bus.deliver("telephony", "call_registered", {**call, "call_id": uuid.uuid4(),
                                                 "started_at": MONDAY_10 + timedelta(minutes=5)})
    callbacks = svc.list_tasks({"client_id": client, "kind": "callback"})["items"]
    assert len(callbacks) == 1 and callbacks[0]["status"] == "open"
    assert datetime.fromisoformat(callbacks[0]["due_at"]) == MONDAY_10 + timedelta(minutes=30)
    assert "Ещё пропущенный звонок" in callbacks[0]["description"]
    bus.deliver("telephony", "call_registered", {
        **call, "call_id": uuid.uuid4(), "direction": "outbound", "answered": True,
        "started_at": MONDAY_10 + timedelta(minutes=10), "duration_seconds": 95,
        "talk_seconds": 80})
    assert svc.get_task(callbacks[0]["id"])["status"] == "done"
    kinds = [t["kind"] for t in svc.deal_timeline(deal["id"])["items"]]
    assert kinds.count("call") == 3
    # An unknown number missed in a queue: the department's queue gets the call-back.
    bus.deliver("telephony", "call_registered", {
        "call_id": uuid.uuid4(), "direction": "inbound", "answered": False,
        "started_at": MONDAY_10, "duration_seconds": 5, "external_number": "+79990001122",
        "department_id": org.departments["volga"]})
    queue = svc.list_tasks({"queue": True}, as_user="m.volga.1")["items"]
    assert [t["title"] for t in queue] == ["Перезвонить: +79990001122"]
    taken = svc.take_task(queue[0]["id"], as_user="m.volga.1")
    assert taken["assignee_id"] == org.id("m.volga.1")
    with pytest.raises(Conflict):
        svc.take_task(queue[0]["id"], as_user="m.volga.2")


def test_an_email_shows_on_the_deal_and_touches_the_client(svc, org, bus):
    clock.travel_to(MONDAY_10)
    client = org.add_client("Пишущий")
    deal = svc.create_deal({"client_id": client})["deal"]
    bus.deliver("mail", "email_registered", {
        "message_id": "<abc@client.ru>", "client_id": client, "user_id": org.id("m.ural.1"),
        "direction": "inbound", "sent_at": MONDAY_10 + timedelta(hours=1),
        "subject": "Запрос цены на С21"})
    items = svc.deal_timeline(deal["id"])["items"]
    assert items[0]["kind"] == "email" and items[0]["data"]["subject"] == "Запрос цены на С21"
    touched = org.scalar("SELECT last_interaction_at FROM client_replica WHERE client_id = :c",
                         c=client)
    assert touched == MONDAY_10 + timedelta(hours=1)


def test_a_reactivation_request_becomes_a_call_for_the_owner(svc, org, bus):
    client = org.add_client("Спящий")
    bus.deliver("clients", "reactivation_call_requested", {
        "campaign_id": uuid.uuid4(), "campaign_name": "Весна", "client_id": client,
        "owner_id": org.id("m.ural.1"), "department_id": org.departments["ural"],
        "due_at": MONDAY_10})
    task = svc.list_tasks({"client_id": client})["items"][0]
    assert task["source"] == "reactivation" and "Весна" in task["title"]


def test_the_calendar_by_day_week_month_for_a_manager_and_the_department(svc, org):
    clock.travel_to(MONDAY_10)
    meeting = svc.create_task({"kind": "meeting", "title": "Встреча на объекте",
                               "starts_at": "2026-12-10T14:00:00+03:00",
                               "location": "Екатеринбург, ул. Мира, 1"})
    assert meeting["ends_at"] == datetime(2026, 12, 10, 15, tzinfo=MSK).isoformat() or \
        datetime.fromisoformat(meeting["ends_at"]) == datetime(2026, 12, 10, 15, tzinfo=MSK)
    svc.create_task({"title": "Счёт", "due_at": "2026-12-31T10:00:00+03:00"},
                    as_user="m.ural.2")
    week = svc.calendar("week", "2026-12-09")
    assert (week["from"], week["to"]) == ("2026-12-07", "2026-12-13")
    thursday = next(d for d in week["days"] if d["date"] == "2026-12-10")
    assert [i["title"] for i in thursday["items"]] == ["Встреча на объекте"]
    assert [d["working"] for d in week["days"]] == [True] * 5 + [False] * 2
    month = svc.calendar("month", "2026-12-01", department_id=org.departments["ural"],
                         as_user="head.ural")
    december_31 = next(d for d in month["days"] if d["date"] == "2026-12-31")
    assert december_31["working"] is False                  # a holiday in 2026
    assert [i["title"] for i in december_31["items"]] == ["Счёт"]
    with pytest.raises(Forbidden):
        svc.calendar("week", department_id=org.departments["ural"])
    with pytest.raises(Forbidden):
        svc.calendar("week", user_id=org.id("m.ural.2"))
    assert svc.calendar("day", "2026-12-10", user_id=org.id("m.ural.1"),
                        as_user="head.ural")["days"][0]["items"][0]["kind"] == "meeting"
    with pytest.raises(ValidationFailed):
        svc.create_task({"kind": "meeting", "title": "x",
                         "starts_at": "2026-12-10T14:00:00+03:00",
                         "ends_at": "2026-12-10T13:00:00+03:00"})
    with pytest.raises(ValidationFailed):
        svc.create_task({"title": "x", "due_at": "2026-12-10T14:00:00"})   # no time zone


def test_hand_over_moves_open_deals_and_tasks_with_the_client(svc, org, bus):
    client = org.add_client("Передаваемый")
    deal = svc.create_deal({"client_id": client, "amount": Decimal("10")})["deal"]
    bus.deliver("clients", "client_owner_changed", {
        "client_id": client, "previous_owner_id": org.id("m.ural.1"),
        "new_owner_id": org.id("m.ural.2"), "previous_department_id": org.departments["ural"],
        "new_department_id": org.departments["ural"], "reason": "transfer"})
    assert svc.get_deal(deal["id"], as_user="m.ural.2")["owner_id"] == org.id("m.ural.2")
    assert all(t["assignee_id"] == org.id("m.ural.2")
               for t in svc.list_tasks({"client_id": client}, as_user="head.ural")["items"])
    assert svc.list_notifications(as_user="m.ural.2")[0]["kind"] == "deal_assigned"


def test_two_replicas_scanning_at_once_react_once_to_each_thing(container_factory, deals_config,
                                                                 org, svc):
    """Production runs several replicas of deals: their scans claim rows with SKIP LOCKED, so
    every overdue task and stalled deal is raised exactly once."""
    import eventlet

    from services.deals.service import DealsService

    from .conftest import Deals

    clock.travel_to(MONDAY_10)
    for n in range(40):
        svc.create_deal({"client_id": org.add_client(f"Параллельный {n}")})
    second = container_factory(DealsService, deals_config)
    second.start()
    replicas = [svc, Deals(second, org)]
    clock.travel_to(MONDAY_10 + timedelta(days=5))
    runs = [eventlet.spawn(replica.run_scans, as_user="admin") for replica in replicas]
    counts = [run.wait() for run in runs]
    assert sum(c["overdue_tasks"] for c in counts) == 40
    assert sum(c["stalled_deals"] for c in counts) == 40
    assert len(payloads(org, "task_overdue")) == 40
    assert len({p["deal_id"] for p in payloads(org, "deal_stalled")}) == 40
    assert len(payloads(org, "deal_stalled")) == 40
