"""Deals by hand: registering, the manual stages, lost and reopened, tasks from stage templates,
who may see and change what, versions and pages."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from crm_platform.clock import clock
from crm_platform.errors import Conflict, Forbidden, NotFound, ValidationFailed

pytestmark = pytest.mark.integration

MSK = ZoneInfo("Europe/Moscow")
# A Monday morning in a normal working week (no holidays around).
MONDAY_10 = datetime(2026, 12, 7, 10, 0, tzinfo=MSK)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def outbox_types(org, deal_id=None):
    rows = org.rows("SELECT type, envelope FROM outbox ORDER BY id")
    return [r.type for r in rows if deal_id is None or
            r.envelope["payload"].get("deal_id") == deal_id]


def test_a_manager_registers_a_deal_for_own_client_and_gets_the_first_stage_task(svc, org):
    clock.travel_to(MONDAY_10)
    client = org.add_client("ООО «Стройметалл»")
    result = svc.create_deal({"client_id": client, "amount": "150000.50",
                              "volume": {"m2": "1200"}, "product_groups": ["профнастил"],
                              "expected_close_date": "2026-12-25"})
    deal = result["deal"]
    assert result["created"] is True and result["routed_to"] is None
    assert deal["stage"] == "new" and deal["owner_id"] == org.id("m.ural.1")
    assert deal["amount"] == "150000.50" and deal["volume"]["m2"] == "1200"
    assert deal["title"] == "Интерес: ООО «Стройметалл»" and deal["client_name"] == \
        "ООО «Стройметалл»"
    assert deal["probability"] == 10 and deal["region"] == "RU-SVE"
    # "new": call back within 2 working hours; the stage limit is 2 working days.
    tasks = svc.list_tasks({"deal_id": deal["id"]})["items"]
    assert [(t["title"], at(t["due_at"])) for t in tasks] == [
        ("Связаться с клиентом по новому интересу", datetime(2026, 12, 7, 12, 0, tzinfo=MSK))]
    assert at(deal["stage_deadline_at"]) == datetime(2026, 12, 9, 10, 0, tzinfo=MSK)
    assert outbox_types(org, deal["id"]) == ["deal_created", "deal_stage_changed",
                                             "task_created"]


def test_manual_moves_lost_with_a_reason_and_reopening_by_the_head(svc, org):
    clock.travel_to(MONDAY_10)
    deal = svc.create_deal({"client_id": org.add_client("Альфа Кровля")})["deal"]
    first_task = svc.list_tasks({"deal_id": deal["id"]})["items"][0]
    moved = svc.move_stage(deal["id"], "qualified", expected_version=deal["version"])
    assert moved["stage"] == "qualified" and moved["manual_stage"] == "qualified"
    # The "new" task closed itself; the "qualified" template made its own.
    tasks = {t["title"]: t for t in svc.list_tasks({"deal_id": deal["id"]})["items"]}
    assert tasks[first_task["title"]]["status"] == "cancelled"
    assert tasks["Подготовить и отправить коммерческое предложение"]["status"] == "open"
    with pytest.raises(Conflict) as stale:
        svc.move_stage(deal["id"], "proposal", expected_version=deal["version"])
    assert stale.value.code == "stale_version"
    with pytest.raises(ValidationFailed) as erp_stage:
        svc.move_stage(deal["id"], "invoiced")
    assert "stage" in erp_stage.value.fields
    with pytest.raises(ValidationFailed) as no_reason:
        svc.move_stage(deal["id"], "lost")
    assert "lost_reason" in no_reason.value.fields
    lost = svc.move_stage(deal["id"], "lost", lost_reason="Купили у конкурента дешевле")
    assert lost["stage"] == "lost" and lost["open"] is False and lost["closed_at"]
    assert all(t["status"] != "open" for t in svc.list_tasks({"deal_id": deal["id"]})["items"])
    with pytest.raises(ValidationFailed):
        svc.move_stage(deal["id"], "proposal")
    with pytest.raises(Forbidden):
        svc.reopen_deal(deal["id"])            # a manager may not
    reopened = svc.reopen_deal(deal["id"], as_user="head.ural")
    assert reopened["stage"] == "qualified" and reopened["lost_reason"] is None
    history = svc.stage_history(deal["id"])
    assert [(h["from_stage"], h["to_stage"], h["cause"]) for h in history] == [
        (None, "new", "user"), ("new", "qualified", "user"), ("qualified", "lost", "user"),
        ("lost", "qualified", "user")]
    assert history[2]["lost_reason"] == "Купили у конкурента дешевле"
    assert history[0]["left_at"] == history[1]["at"]


def test_who_sees_and_changes_a_deal(svc, org):
    deal = svc.create_deal({"client_id": org.add_client("Бета")})["deal"]
    assert svc.get_deal(deal["id"], as_user="head.ural")["id"] == deal["id"]
    assert svc.get_deal(deal["id"], as_user="director")["id"] == deal["id"]
    for outsider in ("m.ural.2", "head.volga", "m.volga.1"):
        with pytest.raises(NotFound):
            svc.get_deal(deal["id"], as_user=outsider)
    with pytest.raises(Forbidden):
        svc.update_deal(deal["id"], {"amount": "1"}, as_user="director")
    changed = svc.update_deal(deal["id"], {"amount": "99.99", "probability": 40},
                              as_user="head.ural")
    assert changed["amount"] == "99.99" and changed["probability"] == 40
    assert svc.list_deals({}, as_user="m.ural.2")["items"] == []
    assert [d["id"] for d in svc.list_deals({}, as_user="head.ural")["items"]] == [deal["id"]]


def test_a_manager_cannot_register_a_deal_for_someone_elses_client(svc, org):
    client = org.add_client("Гамма", owner="m.ural.2")
    with pytest.raises(Conflict) as refused:
        svc.create_deal({"client_id": client})
    assert refused.value.code == "client_owned"
    assert refused.value.extra["owner"] == "Менеджер ural 2"
    assert refused.value.extra["department"] == "Уральский отдел"
    # The same lead coming in by itself (an integration: a web form) goes to the owner.
    routed = svc.create_deal({"client_id": client, "source": "web"}, as_user="erp")
    assert routed["deal"]["owner_id"] == org.id("m.ural.2")
    assert routed["routed_to"]["owner_name"] == "Менеджер ural 2"
    # ...and once more it is the same open deal, not a second one.
    again = svc.create_deal({"client_id": client, "source": "web"}, as_user="erp")
    assert again["created"] is False and again["deal"]["id"] == routed["deal"]["id"]
    notes = svc.list_notifications(as_user="m.ural.2")
    assert [n["kind"] for n in notes] == ["repeat_contact", "deal_routed"]


def test_bad_input_is_refused_with_the_fields_named(svc, org):
    client = org.add_client("Дельта")
    with pytest.raises(ValidationFailed) as caught:
        svc.create_deal({"client_id": client, "amount": "-5", "probability": 101,
                         "expected_close_date": "31.12.2026", "volume": {"tonnes": "x"},
                         "source": "pigeon"})
    assert set(caught.value.fields) == {"source"}
    with pytest.raises(ValidationFailed) as caught:
        svc.create_deal({"client_id": client, "amount": "-5", "probability": 101,
                         "expected_close_date": "31.12.2026", "volume": {"tonnes": "x"}})
    assert set(caught.value.fields) == {"amount", "probability", "expected_close_date",
                                        "volume.tonnes"}
    assert org.count("deals") == 0


def test_deal_list_pages_with_a_cursor_and_filters(svc, org):
    ids = []
    for n in range(7):
        client = org.add_client(f"Клиент {n}")
        ids.append(svc.create_deal({"client_id": client, "amount": str(1000 * n)})["deal"]["id"])
    seen, cursor = [], None
    while True:
        page = svc.list_deals({"sort": "amount"}, limit=3, cursor=cursor)
        seen += [d["id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    svc.move_stage(ids[0], "lost", lost_reason="Нет бюджета")
    assert len(svc.list_deals({"open": True})["items"]) == 6
    assert [d["id"] for d in svc.list_deals({"stage": "lost"})["items"]] == [ids[0]]
    with pytest.raises(ValidationFailed):
        svc.list_deals({}, cursor="garbage!")
