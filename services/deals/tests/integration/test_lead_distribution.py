"""Lead distribution in the running deals service: round robin and least loaded across a
department's managers, an absent one (the directory's ``absence_changed`` through RabbitMQ) and a
daily cap skipped, the head's queue when nobody is left, escalation after N minutes (clock travel),
and the lead's source carried in ``deal_created``."""

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from crm_platform.clock import clock
from crm_platform.errors import Forbidden, ValidationFailed

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
