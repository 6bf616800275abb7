"""From a posted 1C shipment through a planned trip to delivery, with the real deals service
showing it on the deal: cost allocation, cancellation by 1C and by the dispatcher, lateness."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from crm_platform.clock import clock, utcnow
from crm_platform.errors import Conflict, Forbidden, ValidationFailed
from crm_platform.testing import wait_for

from .conftest import Documents

pytestmark = pytest.mark.integration

MSK = ZoneInfo("Europe/Moscow")
MONDAY = datetime(2026, 12, 7, 9, 0, tzinfo=MSK)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(200))


def fleet(tms, *, per_km="45.50", per_hour="600"):
    vehicle = tms.logistics.save_vehicle({
        "plate": "a 123 bc 96", "kind": "curtain_sider", "payload_t": "20",
        "body_length_m": "13.6", "ownership": "own", "per_km_rate": per_km,
        "per_hour_rate": per_hour})
    driver = tms.logistics.save_driver({
        "full_name": "Сидоров Иван", "phone": "8 912 345-67-89", "licence": "66 12 345678",
        "user_id": tms.org.id("driver.1")})
    return vehicle, driver


def posted_order(tms, docs, *shipments):
    """A customer order posted in 1C (a deal for it in deals) and its shipments posted; returns
    (order guid, [shipment guids], deal id)."""
    order, order_guid = docs.event("order", "posted", "900000.00")
    tms.deliver(order, to=("deals",))
    items, guids = [], []
    for number, lines in shipments:
        item, guid = docs.event("shipment", "posted", "300000.00", order=order_guid,
                                number=number, lines=lines)
        items.append(item)
        guids.append(guid)
    tms.deliver(*items)
    deal_id = tms.deals_sql.scalar("SELECT deal_id FROM deal_orders WHERE order_guid = :g",
                                   g=order_guid)
    assert deal_id is not None
    return order_guid, guids, str(deal_id)


def statuses_of(tms, order_id) -> list[str]:
    return [e["status"] for e in tms.events("delivery_status_changed")
            if e["transport_order_id"] == str(order_id)]


def deliveries_on_deal(tms, deal_id) -> dict:
    items = tms.deals.deal_timeline(deal_id, limit=100, as_user="director")["items"]
    return {i["data"]["number"]: i["data"] for i in items if i["kind"] == "delivery"}


def test_posted_shipments_are_planned_carried_and_delivered_on_the_deal(tms):
    clock.travel_to(MONDAY)
    docs = Documents(tms.client_id)
    vehicle, driver = fleet(tms)
    assert vehicle["plate"] == "А123ВС96" and driver["phone"] == "+79123456789"
    _, (s1, s2), deal_id = posted_order(tms, docs, (
        "УТ-101", [{"product_name": "Профнастил С8", "quantity": "2.5", "unit_code": "168",
                    "amount": "200000.00"}]), (
        "УТ-102", [{"product_name": "Сэндвич-панели", "quantity": "10", "unit_code": "796",
                    "amount": "100000.00", "weight_kg": "1500"}]))
    o1, o2 = tms.order_of(s1), tms.order_of(s2)
    assert (o1["status"], o1["weight_kg"], o1["consignee"], o1["region"]) == (
        "new", Decimal("2500.000"), "ООО «Кровля-Урал»", "RU-SVE")
    assert o2["weight_kg"] == Decimal("1500.000")
    assert o1["window_end"] - o1["window_start"] == timedelta(hours=48)

    proposal = tms.logistics.propose_trips("2026-12-07")
    assert not proposal["unplaced"]
    (proposed,) = proposal["trips"]
    assert proposed["vehicle_plate"] == "А123ВС96" and proposed["weight_kg"] == "4000.000"
    assert {o["id"] for o in proposed["orders"]} == {str(o1["id"]), str(o2["id"])}

    trip = tms.logistics.create_trip({
        "vehicle_id": proposed["vehicle_id"], "driver_id": driver["id"],
        "planned_start": "2026-12-07T10:00:00+03:00", "distance_km": "120",
        "duration_h": "6", "order_ids": [o["id"] for o in proposed["orders"]]})
    # 120 km × 45.50 + 6 h × 600 = 9060.00, split by weight 2500 : 1500.
    assert trip["cost"] == "9060.00" and trip["status"] == "planned"
    shares = {s["order_number"]: s["freight_cost"] for s in trip["stops"]}
    assert shares == {o1["number"]: "5662.50", o2["number"]: "3397.50"}
    assert tms.order_of(s1)["freight_cost"] == Decimal("5662.50")

    # The vehicle is taken for that time: a second trip is refused.
    other = tms.logistics.create_transport_order({
        "consignee": "ИП Петров", "address": "Екатеринбург, ул. Малышева, 1",
        "region": "RU-SVE", "window_start": "2026-12-07T09:00:00+03:00",
        "window_end": "2026-12-07T18:00:00+03:00", "weight_kg": "500"})
    with pytest.raises(Conflict) as err:
        tms.logistics.create_trip({"vehicle_id": vehicle["id"], "driver_id": driver["id"],
                                   "planned_start": "2026-12-07T12:00:00+03:00",
                                   "distance_km": "10", "duration_h": "1",
                                   "order_ids": [other["id"]]})
    assert err.value.code == "trip_overlap"

    # The driver's page: today's trip; another driver may not touch it.
    (mine,) = tms.logistics.my_trips("2026-12-07", as_user="driver.1")
    assert mine["id"] == trip["id"] and len(mine["stops"]) == 2
    with pytest.raises(Forbidden):
        tms.logistics.my_trips("2026-12-07", as_user="driver.2")
    stop1 = next(s for s in mine["stops"] if s["order_number"] == o1["number"])
    with pytest.raises(Conflict):
        tms.logistics.set_stop_status(stop1["id"], "delivered", as_user="driver.1")
    tms.logistics.set_trip_status(trip["id"], "loading", as_user="driver.1")
    clock.advance(timedelta(hours=1))
    on_road = tms.logistics.set_trip_status(trip["id"], "in_transit", as_user="driver.1")
    assert on_road["status"] == "in_transit" and on_road["departed_at"]
    clock.advance(timedelta(hours=2))

    note = tms.logistics.attach_delivery_note(stop1["id"], base64.b64encode(PNG).decode(),
                                              as_user="driver.1")
    assert note["content_type"] == "image/png"
    stored = Path(tms.logistics.container.config["LOGISTICS_FILES_DIR"]) / trip["id"] / (
        hashlib.sha256(PNG).hexdigest() + ".png")
    assert stored.read_bytes() == PNG
    with pytest.raises(ValidationFailed) as err:
        tms.logistics.attach_delivery_note(stop1["id"], base64.b64encode(b"%PDF-1.4").decode(),
                                           as_user="driver.1")
    assert "file" in err.value.fields
    fetched = tms.logistics.get_delivery_note(note["id"])
    assert base64.b64decode(fetched["content_base64"]) == PNG

    after = tms.logistics.set_stop_status(stop1["id"], "delivered", as_user="driver.1")
    assert after["status"] == "in_transit"          # the second stop is still on the way
    assert statuses_of(tms, o1["id"]) == ["new", "planned", "loading", "in_transit",
                                          "delivered"]
    delivered = tms.events("delivery_status_changed")[-1]
    assert (delivered["on_time"], delivered["trip_number"], delivered["vehicle_plate"],
            delivered["freight_cost"]) == (True, trip["number"], "А123ВС96", "5662.50")

    tms.relayed()
    on_deal = deliveries_on_deal(tms, deal_id)
    assert on_deal[o1["number"]]["status"] == "delivered"
    assert on_deal[o1["number"]]["trip_number"] == trip["number"]
    assert on_deal[o1["number"]]["driver_name"] == "Сидоров Иван"
    assert on_deal[o2["number"]]["status"] == "in_transit"
    summary = tms.deals.deal_deliveries(deal_id, as_user="m.ural.1")
    assert (summary["delivered"], summary["all_delivered"]) == (1, False)

    last = tms.logistics.set_stop_status(
        next(s["id"] for s in mine["stops"] if s["order_number"] == o2["number"]),
        "delivered", as_user="driver.1")
    assert last["status"] == "delivered" and last["finished_at"]
    tms.relayed()
    summary = tms.deals.deal_deliveries(deal_id, as_user="m.ural.1")
    assert (summary["delivered"], summary["all_delivered"]) == (2, True)
    assert tms.deals_sql.scalar(
        "SELECT count(*) FROM notifications WHERE kind = 'delivery_delivered' "
        "AND deal_id = :d", d=deal_id) == 2

    report = tms.logistics.delivery_report("2026-12-07", "2026-12-08", as_user="director")
    assert report["total"] == {"delivered": 2, "on_time": 2, "late": 0,
                               "on_time_share": "1.0000", "tonnes": "4.000",
                               "freight_cost": "9060.00", "cost_per_tonne": "2265.00"}
    assert [r["region"] for r in report["regions"]] == ["RU-SVE"]
    # A manager sees the deliveries of own clients only.
    assert len(tms.logistics.client_deliveries(tms.client_id, as_user="m.ural.1")) == 2
    assert tms.logistics.client_deliveries(tms.client_id, as_user="m.volga.1") == []


def test_unposted_shipment_cancels_its_open_order_and_flags_a_delivered_one(tms):
    clock.travel_to(MONDAY)
    docs = Documents(tms.client_id)
    vehicle, driver = fleet(tms)
    lines = [{"product_name": "Металлочерепица", "quantity": "1", "unit_code": "168",
              "amount": "100000.00"}]
    order_guid, (s1, s2), deal_id = posted_order(tms, docs, ("УТ-201", lines),
                                                 ("УТ-202", lines))
    o1, o2 = tms.order_of(s1), tms.order_of(s2)
    trip = tms.logistics.create_trip({
        "vehicle_id": vehicle["id"], "driver_id": driver["id"],
        "planned_start": "2026-12-07T10:00:00+03:00", "distance_km": "50", "duration_h": "2",
        "order_ids": [str(o1["id"]), str(o2["id"])]})
    assert trip["cost"] == "3475.00"              # 50 × 45.50 + 2 × 600

    # 1C un-posts the first shipment: its order leaves the trip, the other carries all the cost.
    unposted, _ = docs.event("shipment", "unposted", guid=s1, order=order_guid,
                             number="УТ-201", lines=lines)
    stale = ("erp_bridge", "erp_shipment_posted", {**unposted[2], "revision": 1})
    tms.deliver(unposted, stale)
    assert tms.order_of(s1)["status"] == "cancelled"
    assert tms.order_of(s1)["cancel_reason"] == "Отгрузка отменена в 1С"
    view = tms.logistics.get_trip(trip["id"])
    assert [s["status"] for s in view["stops"]] == ["cancelled", "planned"]
    assert view["cost"] == "3475.00" and view["stops"][1]["freight_cost"] == "3475.00"
    assert statuses_of(tms, o1["id"])[-1] == "cancelled"

    # Posted again (a newer revision): the order waits for a trip again.
    reposted, _ = docs.event("shipment", "posted", guid=s1, order=order_guid,
                             number="УТ-201", lines=lines)
    tms.deliver(reposted)
    assert (tms.order_of(s1)["status"], tms.order_of(s1)["freight_cost"]) == ("new", None)

    # The rest is delivered; un-posting it afterwards only flags it.
    for status in ("loading", "in_transit", "delivered"):
        tms.logistics.set_trip_status(trip["id"], status, as_user="driver.1")
    late_unpost, _ = docs.event("shipment", "deleted", guid=s2, order=order_guid,
                                number="УТ-202", lines=lines)
    tms.deliver(late_unpost)
    flagged = tms.order_of(s2)
    assert flagged["status"] == "delivered" and "отменена в 1С" in flagged["flag"]

    tms.relayed()
    on_deal = deliveries_on_deal(tms, deal_id)
    assert on_deal[o1["number"]]["status"] == "new"
    assert on_deal[o2["number"]]["status"] == "delivered"

    # The dispatcher cancels a planned trip: its orders wait for another one.
    second = tms.logistics.create_trip({
        "vehicle_id": vehicle["id"], "driver_id": driver["id"],
        "planned_start": "2026-12-08T10:00:00+03:00", "distance_km": "50", "duration_h": "2",
        "order_ids": [str(o1["id"])]})
    cancelled = tms.logistics.cancel_trip(second["id"], "Машина на ремонте")
    assert cancelled["status"] == "cancelled"
    assert tms.order_of(s1)["status"] == "new" and tms.order_of(s1)["trip_id"] is None
    with pytest.raises(Forbidden):
        tms.logistics.cancel_trip(second["id"], as_user="driver.1")


def test_a_late_delivery_raises_one_task_for_the_deal_owner(tms):
    clock.travel_to(MONDAY)
    docs = Documents(tms.client_id)
    vehicle, driver = fleet(tms)
    lines = [{"product_name": "Профнастил", "quantity": "3", "unit_code": "168",
              "amount": "300000.00"}]
    order, order_guid = docs.event("order", "posted", "300000.00")
    tms.deliver(order, to=("deals",))
    shipment, guid = docs.event("shipment", "posted", order=order_guid, number="УТ-301",
                                lines=lines, date=utcnow() - timedelta(days=3))
    tms.deliver(shipment)
    deal_id = str(tms.deals_sql.scalar("SELECT deal_id FROM deal_orders WHERE order_guid = :g",
                                       g=order_guid))
    transport = tms.order_of(guid)
    trip = tms.logistics.create_trip({
        "vehicle_id": vehicle["id"], "driver_id": driver["id"],
        "planned_start": "2026-12-07T10:00:00+03:00", "distance_km": "30", "duration_h": "2",
        "order_ids": [str(transport["id"])]})

    assert tms.logistics.run_lateness_scan() == 1
    assert tms.logistics.run_lateness_scan() == 0        # once per order
    (late,) = tms.events("delivery_late")
    assert late["number"] == transport["number"] and late["status"] == "planned"
    tms.relayed()
    tasks = tms.deals_sql.rows("SELECT * FROM tasks WHERE source = 'delivery_late'")
    assert len(tasks) == 1
    assert str(tasks[0]["assignee_id"]) == tms.org.id("m.ural.1")
    assert str(tasks[0]["deal_id"]) == deal_id and tasks[0]["status"] == "open"
    assert transport["number"] in tasks[0]["title"]
    assert deliveries_on_deal(tms, deal_id)[transport["number"]]["late"] is True

    for status in ("loading", "in_transit", "delivered"):
        tms.logistics.set_trip_status(trip["id"], status, as_user="driver.1")
    assert tms.events("delivery_status_changed")[-1]["on_time"] is False
    tms.relayed()
    wait_for(lambda: tms.deals_sql.scalar(
        "SELECT status FROM tasks WHERE source = 'delivery_late'") == "done",
        message="the late task closed by the delivery")
    report = tms.logistics.delivery_report("2026-12-07", "2026-12-08")
    assert (report["total"]["delivered"], report["total"]["on_time"],
            report["total"]["late"]) == (1, 0, 1)
    assert report["total"]["cost_per_tonne"] == str(
        (Decimal(trip["cost"]) / 3).quantize(Decimal("0.01")))


def test_fleet_and_hand_made_orders_are_checked(tms):
    clock.travel_to(MONDAY)
    vehicle, driver = fleet(tms)
    with pytest.raises(Conflict):
        tms.logistics.save_vehicle({"plate": "А123ВС96", "kind": "flatbed", "payload_t": "5",
                                    "body_length_m": "6", "per_km_rate": "1",
                                    "per_hour_rate": "1"})
    with pytest.raises(ValidationFailed) as err:
        tms.logistics.create_transport_order({
            "consignee": "", "region": "RU-SVE", "window_start": "2026-12-07T18:00:00",
            "window_end": "2026-12-07T09:00:00+03:00", "weight_kg": "-5"})
    assert set(err.value.fields) >= {"consignee", "address", "window_start", "weight_kg"}
    with pytest.raises(Forbidden):
        tms.logistics.create_transport_order({}, as_user="m.ural.1")
    carrier = tms.logistics.save_carrier({"name": "ТК Восток", "rate_kind": "per_tonne",
                                          "rate": "1200"})
    hired = tms.logistics.save_vehicle({"plate": "в777ор66", "kind": "crane",
                                        "payload_t": "10", "body_length_m": "7.2",
                                        "ownership": "carrier", "carrier_id": carrier["id"]})
    heavy = tms.logistics.create_transport_order({
        "consignee": "ООО Монтаж", "address": "Тюмень, ул. Ленина, 5", "region": "RU-TYU",
        "window_start": "2026-12-07T09:00:00+03:00", "window_end": "2026-12-08T18:00:00+03:00",
        "weight_kg": "12000", "max_length_m": "6", "needs_crane": True})
    assert heavy["number"].startswith("ТЗ-2026-") and heavy["status"] == "new"
    with pytest.raises(ValidationFailed) as err:
        tms.logistics.create_trip({"vehicle_id": hired["id"], "driver_id": driver["id"],
                                   "planned_start": "2026-12-07T10:00:00+03:00",
                                   "distance_km": "300", "duration_h": "8",
                                   "order_ids": [heavy["id"]]})
    assert "грузоподъёмности" in err.value.fields["vehicle_id"][0]
    proposal = tms.logistics.propose_trips("2026-12-07")
    assert proposal["trips"] == [] and proposal["unplaced"][0]["id"] == heavy["id"]
    light = tms.logistics.update_transport_order(heavy["id"], {"weight_kg": "8500"})
    assert light["weight_kg"] == "8500.000"
    trip = tms.logistics.create_trip({"vehicle_id": hired["id"], "driver_id": driver["id"],
                                      "planned_start": "2026-12-07T10:00:00+03:00",
                                      "distance_km": "300", "duration_h": "8",
                                      "order_ids": [heavy["id"]]})
    assert trip["cost"] == "10200.00"                 # 8.5 t × 1200 (the carrier's rate)


def test_lateness_scan_skips_orders_another_replica_holds(tms):
    clock.travel_to(MONDAY)
    for n in range(3):
        tms.logistics.create_transport_order({
            "consignee": f"Клиент {n}", "address": "Екатеринбург", "region": "RU-SVE",
            "window_start": "2026-12-01T09:00:00+03:00",
            "window_end": "2026-12-01T18:00:00+03:00", "weight_kg": "100"})
    held = tms.sql.rows("SELECT id FROM transport_orders ORDER BY number LIMIT 1")[0]["id"]
    with tms.sql.engine.connect() as other_replica:
        with other_replica.begin():
            other_replica.exec_driver_sql(
                "SELECT id FROM transport_orders WHERE id = %s FOR UPDATE", (held,))
            assert tms.logistics.run_lateness_scan() == 2        # the held one is skipped
    assert tms.logistics.run_lateness_scan() == 1
    assert tms.logistics.run_lateness_scan() == 0
    assert sorted(e["number"] for e in tms.events("delivery_late")) == [
        r["number"] for r in tms.sql.rows("SELECT number FROM transport_orders ORDER BY number")]
