"""Lead distribution in the running deals service: round robin and least loaded across a
department's managers, an absent one (the directory's ``absence_changed`` through RabbitMQ), one
off duty and a daily cap skipped, the head's queue when nobody is left (and its escalation to the
directors), escalation after N minutes (clock travel) restarted by a reassignment, the released
pool distributed with the real clients service, and the lead's source carried in
``deal_created``."""

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from crm_platform.clock import clock
from crm_platform.errors import Forbidden, ValidationFailed
from crm_platform.testing import ServiceCaller, SqlReader, wait_for
from services.clients.service import ClientsService

pytestmark = pytest.mark.integration

MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def add_manager(org, username, dept) -> str:
    with org.engine.begin() as conn:
        user_id = org._person(conn, username, f"Менеджер {username}", "manager",
                              org.departments[dept])
    return str(user_id)


def web_lead(svc, org, n, dept="ural"):
    """An ownerless web lead for the department's queue (no contacts: no duplicate check)."""
    return svc.create_deal({"source": "web", "lead": {"name": f"Посетитель {n}"},
                            "source_detail": {"form_key": "K", "utm_source": "yandex"}},
                           department_id=str(org.departments[dept]), as_user="erp")["deal"]


def test_round_robin_skips_the_absent_and_respects_the_cap(svc, org, bus):
    clock.travel_to(MONDAY)
    dept = str(org.departments["ural"])
    svc.set_distribution(dept, {"enabled": True, "mode": "round_robin", "daily_cap": 2},
                         as_user="head.ural")
    # A third manager on sick leave this week.
    sick = add_manager(org, "m.ural.3", "ural")
    bus.deliver("directory", "absence_changed", {
        "absence_id": str(uuid.uuid4()), "user_id": sick, "kind": "sick_leave",
        "starts_on": date(2026, 11, 23), "ends_on": date(2026, 11, 27)})
    owners = [web_lead(svc, org, n)["owner_id"] for n in range(5)]
    one, two = sorted([org.id("m.ural.1"), org.id("m.ural.2")])
    assert owners[:4] == [one, two, one, two]
    assert sick not in owners
    # Both at the cap of 2: the fifth waits in the head's queue and the head is told.
    assert owners[4] == org.id("head.ural")
    kinds = [n["kind"] for n in svc.list_notifications(as_user="head.ural")]
    assert "lead_unassigned" in kinds
    # Next day the caps are fresh.
    clock.travel_to(MONDAY + timedelta(days=1))
    assert web_lead(svc, org, 6)["owner_id"] in (one, two)


def test_least_loaded_gives_to_the_one_with_fewer_open_leads(svc, org):
    clock.travel_to(MONDAY)
    dept = str(org.departments["volga"])
    svc.set_distribution(dept, {"enabled": True, "mode": "least_loaded", "daily_cap": None},
                         as_user="admin")
    first = web_lead(svc, org, 1, "volga")
    second = web_lead(svc, org, 2, "volga")
    assert {first["owner_id"], second["owner_id"]} == {org.id("m.volga.1"), org.id("m.volga.2")}
    svc.move_stage(first["id"], "lost", lost_reason="no_budget", as_user="head.volga")
    # The owner of the closed one now has fewer open leads.
    assert web_lead(svc, org, 3, "volga")["owner_id"] == first["owner_id"]


def test_distribution_is_off_by_default_and_settings_are_checked(svc, org):
    lead = web_lead(svc, org, 1)
    assert lead["owner_id"] == org.id("head.ural")           # the department's queue, as before
    assert svc.get_distribution(str(org.departments["ural"]), as_user="head.ural")[
        "enabled"] is False
    with pytest.raises(ValidationFailed) as exc:
        svc.set_distribution(str(org.departments["ural"]), {"mode": "random", "daily_cap": 0},
                             as_user="admin")
    assert set(exc.value.fields) == {"mode", "daily_cap"}
    with pytest.raises(Forbidden):
        svc.set_distribution(str(org.departments["volga"]), {"enabled": True},
                             as_user="head.ural")


def test_a_lead_not_taken_escalates_to_the_head_once(svc, org):
    clock.travel_to(MONDAY)
    svc.set_distribution(str(org.departments["ural"]), {"enabled": True}, as_user="admin")
    idle = web_lead(svc, org, 1)
    taken = web_lead(svc, org, 2)
    clock.travel_to(MONDAY + timedelta(minutes=10))
    svc.add_note(taken["id"], "Позвонил, договорились о встрече", as_user=taken_owner(org, taken))
    clock.travel_to(MONDAY + timedelta(minutes=29))
    assert svc.escalate_leads(as_user="admin") == {"escalated": 0}
    clock.travel_to(MONDAY + timedelta(minutes=31))
    assert svc.escalate_leads(as_user="admin") == {"escalated": 1}
    assert svc.escalate_leads(as_user="admin") == {"escalated": 0}          # once
    notes = [n for n in svc.list_notifications(as_user="head.ural")
             if n["kind"] == "lead_escalated"]
    assert len(notes) == 1 and notes[0]["deal_id"] == idle["id"]
    tasks = org.rows("SELECT * FROM tasks WHERE source = 'escalation'")
    assert [(str(t["deal_id"]), str(t["assignee_id"])) for t in tasks] == [
        (idle["id"], org.id("head.ural"))]


def taken_owner(org, deal):
    return next(name for name, p in org.people.items() if p["user_id"] == deal["owner_id"])


def test_the_source_is_kept_and_carried_in_deal_created(svc, org):
    deal = web_lead(svc, org, 1)
    assert deal["source_detail"] == {"kind": "web_form", "form_key": "K", "utm_source": "yandex"}
    envelope = org.rows("SELECT envelope FROM outbox WHERE type = 'deal_created'")[0]["envelope"]
    assert envelope["payload"]["source_detail"]["utm_source"] == "yandex"
    assert envelope["payload"]["distributed"] is False
    with pytest.raises(ValidationFailed) as exc:
        svc.create_deal({"source": "web", "lead": {"name": "X"}, "source_detail": "yandex"},
                        department_id=str(org.departments["ural"]), as_user="erp")
    assert "source_detail" in exc.value.fields


def test_a_manager_off_duty_gets_no_leads_and_off_duty_is_checked(svc, org):
    clock.travel_to(MONDAY)
    dept = str(org.departments["ural"])
    resting = org.id("m.ural.1")
    view = svc.set_distribution(dept, {"enabled": True, "off_duty": [resting]},
                                as_user="head.ural")
    assert view["off_duty"] == [resting]
    assert svc.get_distribution(dept, as_user="head.ural")["off_duty"] == [resting]
    owners = {web_lead(svc, org, n)["owner_id"] for n in range(3)}
    assert owners == {org.id("m.ural.2")}
    # Both off duty: the head's queue, though nobody is absent.
    svc.set_distribution(dept, {"enabled": True, "off_duty": [resting, org.id("m.ural.2")]},
                         as_user="head.ural")
    assert web_lead(svc, org, 4)["owner_id"] == org.id("head.ural")
    # Back on duty (an empty list): given leads again.
    svc.set_distribution(dept, {"enabled": True, "off_duty": []}, as_user="head.ural")
    assert web_lead(svc, org, 5)["owner_id"] in (resting, org.id("m.ural.2"))
    for stranger in (org.id("m.volga.1"), org.id("head.ural"), "not-an-id"):
        with pytest.raises(ValidationFailed) as exc:
            svc.set_distribution(dept, {"enabled": True, "off_duty": [stranger]},
                                 as_user="head.ural")
        assert set(exc.value.fields) == {"off_duty"}
    assert svc.get_distribution(dept, as_user="head.ural")["off_duty"] == []   # nothing applied


def test_reassigning_a_lead_gives_the_new_manager_the_full_time(svc, org):
    clock.travel_to(MONDAY)
    svc.set_distribution(str(org.departments["ural"]), {"enabled": True}, as_user="admin")
    lead = web_lead(svc, org, 1)
    other = next(u for u in ("m.ural.1", "m.ural.2") if org.id(u) != lead["owner_id"])
    clock.travel_to(MONDAY + timedelta(minutes=25))
    moved = svc.reassign_deal(lead["id"], org.id(other), as_user="head.ural")
    assert moved["owner_id"] == org.id(other)
    assert moved["assigned_at"] == (MONDAY + timedelta(minutes=25)).isoformat()
    # 31 minutes after the lead came, 6 after the reassignment: not yet.
    clock.travel_to(MONDAY + timedelta(minutes=31))
    assert svc.escalate_leads(as_user="admin") == {"escalated": 0}
    clock.travel_to(MONDAY + timedelta(minutes=56))
    assert svc.escalate_leads(as_user="admin") == {"escalated": 1}
    [note] = [n for n in svc.list_notifications(as_user="head.ural")
              if n["kind"] == "lead_escalated"]
    assert note["deal_id"] == lead["id"] and "Менеджер ural" in note["text"]
    # An escalated lead reassigned again starts over: it may escalate once more.
    svc.reassign_deal(lead["id"], lead["owner_id"], as_user="head.ural")
    clock.travel_to(MONDAY + timedelta(minutes=87))
    assert svc.escalate_leads(as_user="admin") == {"escalated": 1}


def test_a_lead_waiting_in_the_queue_escalates_to_the_directors_once(svc, org):
    clock.travel_to(MONDAY)
    dept = str(org.departments["ural"])
    svc.set_distribution(dept, {"enabled": True, "off_duty": [
        org.id("m.ural.1"), org.id("m.ural.2")]}, as_user="head.ural")
    waiting = web_lead(svc, org, 1)
    seen = web_lead(svc, org, 2)
    assert waiting["owner_id"] == seen["owner_id"] == org.id("head.ural")
    clock.travel_to(MONDAY + timedelta(minutes=5))
    svc.add_note(seen["id"], "Перезвоню сам", as_user="head.ural")
    # Distribution off: a lead for the queue as before, nobody "could not take" it.
    svc.set_distribution(dept, {"enabled": False}, as_user="head.ural")
    plain = web_lead(svc, org, 3)
    clock.travel_to(MONDAY + timedelta(minutes=29))
    assert svc.escalate_leads(as_user="admin") == {"escalated": 0}
    clock.travel_to(MONDAY + timedelta(minutes=31))
    assert svc.escalate_leads(as_user="admin") == {"escalated": 1}
    clock.travel_to(MONDAY + timedelta(hours=3))
    assert svc.escalate_leads(as_user="admin") == {"escalated": 0}        # once
    to_director = [n for n in svc.list_notifications(as_user="director")
                   if n["kind"] == "lead_queue_escalated"]
    assert [n["deal_id"] for n in to_director] == [waiting["id"]]
    assert "Уральский отдел" in to_director[0]["text"]
    to_head = [n["deal_id"] for n in svc.list_notifications(as_user="head.ural")
               if n["kind"] == "lead_queue_escalated"]
    assert to_head == [waiting["id"]]
    assert plain["id"] not in to_head and seen["id"] not in to_head
    # The head gives the queued lead out: the manager's N minutes start then.
    clock.travel_to(MONDAY + timedelta(hours=4))
    moved = svc.reassign_deal(waiting["id"], org.id("m.ural.1"), as_user="head.ural")
    assert moved["assigned_at"] == (MONDAY + timedelta(hours=4)).isoformat()
    clock.travel_to(MONDAY + timedelta(hours=4, minutes=31))
    assert svc.escalate_leads(as_user="admin") == {"escalated": 1}
    assert [n["kind"] for n in svc.list_notifications(as_user="head.ural")].count(
        "lead_escalated") == 1


@pytest.fixture
def crm(service_db, service_config, container_factory, svc, org):
    clients_db = service_db("clients")
    org.copy_to(clients_db)
    clients = container_factory(ClientsService, service_config(
        db_url=clients_db, CLIENT_RESERVATION_DAYS=30))
    clients.start()
    reader = SqlReader(clients_db)
    yield ServiceCaller(clients, org), reader
    reader.dispose()


def test_a_released_client_goes_to_a_manager_on_duty_with_its_open_deal(svc, org, crm):
    clients, clients_sql = crm
    clock.travel_to(MONDAY)
    svc.set_distribution(str(org.departments["ural"]), {"enabled": True, "daily_cap": 5},
                         as_user="head.ural")
    # Volga distributes too, but nobody there is on duty: its released client stays in the pool.
    svc.set_distribution(str(org.departments["volga"]), {"enabled": True, "off_duty": [
        org.id("m.volga.1"), org.id("m.volga.2")]}, as_user="head.volga")
    forgotten = clients.create_client({"short_name": "Кровля-Сервис"},
                                      as_user="m.ural.1")["client"]
    stays = clients.create_client({"short_name": "Волга-Металл"}, as_user="m.volga.1")["client"]
    deal = svc.create_deal({"client_id": forgotten["id"], "title": "Кровля на склад"},
                           as_user="m.ural.1")["deal"]

    clock.travel_to(MONDAY + timedelta(days=31))
    clients.release_forgotten_clients(as_user=None)                    # the hourly timer

    # The manager who let it go is not given it back: the other one on duty gets it.
    taker = org.id("m.ural.2")
    owner_of = "SELECT owner_id::text FROM clients WHERE id = :id"
    wait_for(lambda: clients_sql.scalar(owner_of, id=forgotten["id"]) == taker,
             message="the released client to be given out")
    history = clients.ownership_history(forgotten["id"], as_user="head.ural")
    assert [(h["reason"], h["owner_id"]) for h in history] == [
        ("created", org.id("m.ural.1")), ("release", None), ("distribution", taker)]
    wait_for(lambda: org.scalar("SELECT owner_id::text FROM deals WHERE id = :id",
                                id=deal["id"]) == taker,
             message="the client's open deal to follow it")
    assert [n["kind"] for n in svc.list_notifications(as_user="m.ural.2")].count(
        "client_distributed") == 1
    assert org.scalar("SELECT count FROM distribution_counts WHERE user_id = :u",
                      u=taker) == 1

    wait_for(lambda: org.scalar(
        "SELECT count(*) FROM processed_events WHERE consumer LIKE '%handle_client_released'")
        == 2, message="both releases to be looked at")
    assert clients_sql.scalar(owner_of, id=stays["id"]) is None
    told = [n["text"] for n in svc.list_notifications(as_user="head.volga")
            if n["kind"] == "lead_unassigned"]
    assert told and told[0].startswith("Клиент из пула")


def test_a_client_sent_to_the_pool_by_the_head_is_not_distributed(svc, org, crm):
    clients, clients_sql = crm
    svc.set_distribution(str(org.departments["ural"]), {"enabled": True}, as_user="head.ural")
    client = clients.create_client({"short_name": "Сайдинг-Центр"}, as_user="m.ural.1")["client"]
    clients.reassign_client(client["id"], None, as_user="head.ural")
    wait_for(lambda: org.scalar(
        "SELECT count(*) FROM processed_events WHERE consumer LIKE '%handle_client_owner_changed'")
        == 1, message="the owner change to reach deals")
    assert org.scalar(
        "SELECT count(*) FROM processed_events WHERE consumer LIKE '%handle_client_released'") \
        == 0
    assert clients_sql.scalar("SELECT owner_id FROM clients WHERE id = :id",
                              id=client["id"]) is None
