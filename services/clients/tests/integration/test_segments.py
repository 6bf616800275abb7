"""Saved filters, the dormant scan, ABC and reactivation campaigns against the real database (and
the broker, for the facts that mark campaign outcomes)."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from crm_platform.clock import utcnow
from crm_platform.errors import Conflict, Forbidden, NotFound, ValidationFailed

from .test_facts import add_client, add_document, call, client, deliver, outbox_events

pytestmark = pytest.mark.integration


def names(result) -> list[str]:
    return sorted(item["short_name"] for item in result["items"])


# -- saved filters ---------------------------------------------------------------------------------


def test_save_list_replace_and_delete_a_segment(svc, org):
    dormant = {"field": "status", "op": "eq", "value": "dormant"}
    saved = svc.save_segment("Спящие", dormant)
    assert saved["name"] == "Спящие" and saved["filter"] == dormant

    with pytest.raises(Conflict):
        svc.save_segment("спящие", [dormant])
    assert [s["name"] for s in svc.call("list_segments", as_user="m.ural.2")] == []

    silent = [{"field": "last_interaction", "op": "older_than_days", "value": 30}]
    replaced = svc.save_segment("Молчуны", silent, segment_id=saved["id"])
    assert replaced["id"] == saved["id"] and replaced["filter"] == silent
    assert [s["name"] for s in svc.list_segments()] == ["Молчуны"]

    with pytest.raises(NotFound):
        svc.call("delete_segment", saved["id"], as_user="m.ural.2")
    assert svc.delete_segment(saved["id"]) == {"deleted": saved["id"]}
    assert svc.list_segments() == []


def test_a_bad_filter_is_refused_naming_the_field(svc, org):
    with pytest.raises(ValidationFailed) as caught:
        svc.save_segment("Плохой", {"all": [{"field": "salary", "op": "gte", "value": 1}]})
    assert "salary" in caught.value.fields
    with pytest.raises(ValidationFailed) as caught:
        svc.segment_clients({"field": "status", "op": "gte", "value": "active"})
    assert "status" in caught.value.fields
    with pytest.raises(Forbidden):
        svc.call("save_segment", "x", None, as_user="admin")


def test_segment_clients_by_card_fields_and_visibility(svc, org):
    add_client(org, "Урал Опт", segment="опт", inn="7707083893", region="RU-SVE")
    add_client(org, "Урал Розница", segment="розница", region="RU-SVE")
    add_client(org, "Урал Второй", owner="m.ural.2", segment="опт")
    add_client(org, "Урал Пул", owner=None, pool_of="ural", segment="опт")
    add_client(org, "Волга Опт", owner="m.volga.1", segment="опт")

    wholesale = {"field": "segment", "op": "eq", "value": "опт"}
    assert names(svc.segment_clients(wholesale)) == ["Урал Опт", "Урал Пул"]  # own + pool
    assert names(svc.call("segment_clients", wholesale, as_user="head.ural")) == \
        ["Урал Второй", "Урал Опт", "Урал Пул"]
    result = svc.call("segment_clients", wholesale, as_user="director", limit=2)
    assert result["total"] == 4 and len(result["items"]) == 2
    assert svc.call("segment_clients", wholesale, as_user="admin")["total"] == 0

    with_inn = [{"field": "inn", "op": "present"}]
    assert names(svc.call("segment_clients", with_inn, as_user="director")) == ["Урал Опт"]
    pool = {"field": "owner_id", "op": "absent"}
    assert names(svc.call("segment_clients", pool, as_user="head.ural")) == ["Урал Пул"]
    not_wholesale = {"not": wholesale}
    assert names(svc.call("segment_clients", not_wholesale, as_user="head.ural")) == \
        ["Урал Розница"]
    item = svc.segment_clients(wholesale)["items"][0]
    assert item["owner_name"] == "Менеджер ural 1" and item["department_name"] == \
        "Уральский отдел"
    assert org.scalar("SELECT count(*) FROM audit_log WHERE action = 'segment_query'") >= 1


def test_segment_clients_by_interaction_invoice_and_revenue(svc, org):
    quiet = add_client(org, "Тихий", last_interaction_at=utcnow() - timedelta(days=90))
    add_client(org, "Болтливый", last_interaction_at=utcnow() - timedelta(days=2))
    add_client(org, "Немой")  # never
    big = add_client(org, "Крупный", last_invoice_at=utcnow() - timedelta(days=800))
    add_document(org, big, "shipment", "900000.00", days_ago=40)
    add_document(org, big, "shipment", "200000.00", days_ago=50)
    add_document(org, big, "shipment", "5000000.00", days_ago=50, active=False)  # un-posted
    add_document(org, quiet, "shipment", "50000.00", days_ago=40)
    add_document(org, quiet, "invoice", "2000000.00", days_ago=40)

    silent = {"field": "last_interaction", "op": "older_than_days", "value": 30}
    assert names(svc.segment_clients(silent)) == ["Крупный", "Немой", "Тихий"]
    talked = {"field": "last_interaction", "op": "within_days", "value": 30}
    assert names(svc.segment_clients(talked)) == ["Болтливый"]
    no_invoice = {"field": "last_invoice", "op": "older_than_months", "value": 24}
    assert "Крупный" in names(svc.segment_clients(no_invoice))

    revenue = {"field": "revenue", "op": "gte", "value": "1000000", "last_months": 3}
    assert names(svc.segment_clients(revenue)) == ["Крупный"]
    invoiced = {"field": "invoiced", "op": "gte", "value": "1000000", "last_months": 3}
    assert names(svc.segment_clients(invoiced)) == ["Тихий"]
    old_period = {"field": "revenue", "op": "gt", "value": "0",
                  "from": "2000-01-01", "to": "2000-12-31"}
    assert svc.segment_clients(old_period)["total"] == 0

    saved = svc.save_segment("Крупные молчуны", [silent, revenue])
    assert names(svc.segment_clients(segment_id=saved["id"])) == ["Крупный"]
    with pytest.raises(NotFound):
        svc.call("segment_clients", segment_id=saved["id"], as_user="m.ural.2")


# -- the dormant scan ------------------------------------------------------------------------------


def test_the_scan_puts_silent_clients_to_sleep_and_wakes_invoiced_ones(svc, org):
    sleepy = add_client(org, "Давно без счетов", created_days_ago=3000,
                        last_invoice_at=utcnow() - timedelta(days=800))
    never = add_client(org, "Активный без счетов", created_days_ago=3000)
    young = add_client(org, "Новый активный", created_days_ago=30)
    woken = add_client(org, "Проснувшийся", status="dormant", created_days_ago=3000,
                       last_invoice_at=utcnow() - timedelta(days=20))
    prospect = add_client(org, "Перспективный", status="potential", created_days_ago=3000)
    lost = add_client(org, "Потерянный", status="lost", created_days_ago=3000,
                      last_invoice_at=utcnow() - timedelta(days=20))
    other_dept = add_client(org, "Волжский спящий", owner="m.volga.1", created_days_ago=3000)

    with pytest.raises(Forbidden):
        svc.recompute_dormant()
    result = svc.call("recompute_dormant", as_user="head.ural")
    assert result == {"changed": 3, "to_dormant": 2, "to_active": 1}
    statuses = {cid: client(org, cid)["status"] for cid in
                (sleepy, never, young, woken, prospect, lost, other_dept)}
    assert statuses == {sleepy: "dormant", never: "dormant", young: "active", woken: "active",
                        prospect: "potential", lost: "lost", other_dept: "active"}
    events = outbox_events(org, "client_updated")
    assert sorted((e["client_id"], e["status"]) for e in events) == sorted(
        [(sleepy, "dormant"), (never, "dormant"), (woken, "active")])
    assert all(e["changed_fields"] == ["status"] for e in events)

    svc.call("recompute_statuses_on_schedule", as_user=None)  # the timer: everyone
    assert client(org, other_dept)["status"] == "dormant"
    assert svc.call("recompute_dormant", as_user="director") == \
        {"changed": 0, "to_dormant": 0, "to_active": 0}


def test_the_period_is_configurable(container_factory, service_config, clients_db, org):
    from services.clients.service import ClientsService

    from .conftest import Clients

    container = container_factory(ClientsService, service_config(
        db_url=clients_db, DORMANT_AFTER_MONTHS=6))
    container.start()
    svc = Clients(container, org)
    cid = add_client(org, "Полгода без счетов", created_days_ago=3000,
                     last_invoice_at=utcnow() - timedelta(days=200))
    svc.call("recompute_dormant", as_user="director")
    assert client(org, cid)["status"] == "dormant"


def test_the_scan_skips_rows_another_replica_holds(svc, org):
    held = add_client(org, "Занятый", created_days_ago=3000)
    free = add_client(org, "Свободный", created_days_ago=3000)
    locked, release = threading.Event(), threading.Event()

    def hold():
        with org.engine.begin() as conn:
            conn.execute(sa.text("SELECT 1 FROM clients WHERE id = :c FOR UPDATE"), {"c": held})
            locked.set()
            release.wait(20)

    import eventlet

    holder = eventlet.spawn(hold)
    assert locked.wait(10)
    try:
        result = svc.call("recompute_dormant", as_user="director")
    finally:
        release.set()
        holder.wait()
    assert result["to_dormant"] == 1
    assert client(org, free)["status"] == "dormant" and client(org, held)["status"] == "active"
    svc.call("recompute_dormant", as_user="director")
    assert client(org, held)["status"] == "dormant"


# -- ABC ------------------------------------------------------------------------------------------


def test_abc_by_revenue_over_a_period(svc, org):
    amounts = {"Альфа": "500000.00", "Бета": "300000.00", "Гамма": "100000.00",
               "Дельта": "60000.00", "Эпсилон": "40000.00"}
    ids = {}
    for name, amount in amounts.items():
        ids[name] = add_client(org, name)
        add_document(org, ids[name], "shipment", amount, days_ago=10)
    ids["Ноль"] = add_client(org, "Ноль")
    add_document(org, ids["Ноль"], "shipment", "999999.00", days_ago=10, active=False)
    add_document(org, ids["Ноль"], "invoice", "999999.00", days_ago=10)
    add_client(org, "Чужой", owner="m.volga.1")
    today = utcnow().date()
    period = ((today - timedelta(days=30)).isoformat(), today.isoformat())

    result = svc.call("abc_analysis", *period, as_user="head.ural")

    assert result["total_revenue"] == "1000000.00" and result["clients"] == 6
    classes = {i["short_name"]: i["abc_class"] for i in result["items"]}
    assert classes == {"Альфа": "A", "Бета": "A", "Гамма": "B", "Дельта": "B",
                       "Эпсилон": "C", "Ноль": "C"}
    assert result["classes"]["A"] == {"clients": 2, "revenue": "800000.00", "share": "0.8000"}
    assert result["classes"]["C"]["clients"] == 2
    first = result["items"][0]
    assert first["short_name"] == "Альфа" and first["share"] == "0.5000"
    assert first["owner_name"] == "Менеджер ural 1"

    by_invoice = svc.call("abc_analysis", *period, basis="invoice", as_user="head.ural")
    assert by_invoice["total_revenue"] == "999999.00"
    filtered = svc.call("abc_analysis", *period, as_user="head.ural",
                        filter={"field": "short_name", "op": "in", "value": ["Альфа", "Эпсилон"]})
    assert {i["short_name"]: i["abc_class"] for i in filtered["items"]} == \
        {"Альфа": "A", "Эпсилон": "B"}  # 500 000 of 540 000 is 92.6 %
    paged = svc.call("abc_analysis", *period, as_user="head.ural", limit=2, offset=2)
    assert [i["short_name"] for i in paged["items"]] == ["Гамма", "Дельта"]
    assert paged["classes"] == result["classes"]

    empty = svc.call("abc_analysis", "2001-01-01", "2001-12-31", as_user="head.ural")
    assert empty["total_revenue"] == "0" and {i["abc_class"] for i in empty["items"]} == {"C"}
    with pytest.raises(ValidationFailed):
        svc.call("abc_analysis", period[1], period[0], as_user="head.ural")
    with pytest.raises(ValidationFailed):
        svc.call("abc_analysis", "вчера", period[1], as_user="head.ural")
    assert Decimal(result["classes"]["B"]["revenue"]) == Decimal("160000.00")


# -- reactivation campaigns ------------------------------------------------------------------------


def test_a_campaign_turns_a_segment_into_call_requests_and_tracks_the_outcome(
        svc, org, rabbit_config):
    first = add_client(org, "Спящий один", status="dormant")
    second = add_client(org, "Спящий два", owner="m.ural.2", status="dormant")
    pooled = add_client(org, "Спящий в пуле", owner=None, pool_of="ural", status="dormant")
    add_client(org, "Спящий волжский", owner="m.volga.1", status="dormant")
    add_client(org, "Бодрый", status="active")
    segment = svc.call("save_segment", "Спящие",
                       {"field": "status", "op": "eq", "value": "dormant"}, as_user="head.ural")
    # a call made before the campaign does not count
    deliver(rabbit_config, org, "telephony", "call_registered",
            call(first, org.id("m.ural.1"), minutes_ago=60))

    with pytest.raises(Forbidden):
        svc.start_campaign("Нельзя", {"field": "status", "op": "eq", "value": "dormant"})
    started = svc.call("start_campaign", "Реактивация осень", segment_id=segment["id"],
                       due_in_days=7, as_user="head.ural")

    assert started["targets"] == 3
    requests = outbox_events(org, "reactivation_call_requested")
    assert sorted(r["client_id"] for r in requests) == sorted([first, second, pooled])
    by_client = {r["client_id"]: r for r in requests}
    assert by_client[first]["owner_id"] == org.id("m.ural.1")
    assert by_client[pooled]["owner_id"] is None
    assert by_client[pooled]["department_id"] == str(org.departments["ural"])
    assert by_client[first]["campaign_name"] == "Реактивация осень"
    assert by_client[first]["campaign_id"] == started["campaign_id"]
    assert by_client[first]["due_at"] == started["due_at"]

    deliver(rabbit_config, org, "telephony", "call_registered",
            call(first, org.id("m.ural.1"), minutes_ago=-1))
    deliver(rabbit_config, org, "telephony", "call_registered",
            call(second, org.id("m.ural.2"), minutes_ago=-1, answered=False))
    deliver(rabbit_config, org, "mail", "email_registered", {
        "message_id": "<r1@mail.example>", "client_id": second, "user_id": org.id("m.ural.2"),
        "direction": "outbound", "sent_at": utcnow() + timedelta(minutes=2)})
    deliver(rabbit_config, org, "deals", "deal_created", {
        "deal_id": uuid.uuid4(), "client_id": first, "owner_id": org.id("m.ural.1"),
        "created_at": utcnow() + timedelta(minutes=3), "source": "campaign"})
    deliver(rabbit_config, org, "deals", "deal_created", {
        "deal_id": uuid.uuid4(), "client_id": second, "owner_id": org.id("m.ural.2"),
        "created_at": utcnow() - timedelta(days=3), "source": None})  # before: not an outcome

    report = svc.call("campaign_report", started["campaign_id"], as_user="head.ural")
    assert (report["targets"], report["reached"], report["with_new_deal"]) == (3, 2, 1)
    per_owner = {o["owner_name"]: (o["targets"], o["reached"], o["with_new_deal"])
                 for o in report["per_owner"]}
    assert per_owner == {"Менеджер ural 1": (1, 1, 1), "Менеджер ural 2": (1, 1, 0),
                         None: (1, 0, 0)}
    assert report["name"] == "Реактивация осень"
    assert svc.call("campaign_report", started["campaign_id"], as_user="director")["targets"] == 3
    with pytest.raises(NotFound):
        svc.call("campaign_report", started["campaign_id"], as_user="head.volga")
    with pytest.raises(Forbidden):
        svc.campaign_report(started["campaign_id"])

    [listed] = svc.call("list_campaigns", as_user="head.ural")
    assert (listed["targets"], listed["reached"], listed["with_new_deal"]) == (3, 2, 1)
    assert svc.call("list_campaigns", as_user="head.volga") == []
    assert org.scalar("SELECT details->>'targets' FROM audit_log WHERE action = "
                      "'campaign_start'") == "3"


def test_a_campaign_needs_targets_and_a_sane_due_date(svc, org):
    nobody = {"field": "status", "op": "eq", "value": "lost"}
    with pytest.raises(ValidationFailed) as caught:
        svc.call("start_campaign", "Пусто", nobody, as_user="head.ural")
    assert caught.value.code == "empty_campaign"
    add_client(org, "Кто-то", status="lost")
    with pytest.raises(ValidationFailed) as caught:
        svc.call("start_campaign", "Долго", nobody, due_in_days=365, as_user="head.ural")
    assert "due_in_days" in caught.value.fields
    with pytest.raises(ValidationFailed):
        svc.call("start_campaign", " ", nobody, as_user="head.ural")
    assert org.scalar("SELECT count(*) FROM campaigns") == 0
    campaign = svc.call("start_campaign", "Потерянные", nobody, as_user="director")
    assert campaign["targets"] == 1
