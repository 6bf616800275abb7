"""The logistics API through the gateway: problem documents naming the field, roles, the raw-body
photo upload and its download."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.logistics.service import LogisticsService

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
PASSWORD = "secret-password-1"


@pytest.fixture
def logistics(container_factory, service_config, service_db, tmp_path):
    container = container_factory(LogisticsService, service_config(
        db_url=service_db("logistics"), LATENESS_SCAN_SECONDS=0,
        LOGISTICS_FILES_DIR=str(tmp_path)))
    container.start()
    return container


def user(api, admin_token, username, role, **extra):
    response = api.post("/api/v1/users", admin_token, json={
        "username": username, "full_name": username, "role": role, "password": PASSWORD,
        **extra})
    assert response.status_code == 201, response.text
    return response.json()


def test_fleet_orders_trips_and_photos_over_http(api, admin_token, logistics, department):
    user(api, admin_token, "disp", "dispatcher")
    driver_user = user(api, admin_token, "drv", "driver")
    user(api, admin_token, "mgr", "manager", department_id=department["id"])
    disp, drv, mgr = (api.login(name, PASSWORD) for name in ("disp", "drv", "mgr"))

    bad = api.post("/api/v1/logistics/vehicles", disp, json={
        "plate": "XYZ", "kind": "flatbed", "payload_t": "5", "body_length_m": "6",
        "per_km_rate": "10", "per_hour_rate": "10"})
    assert bad.status_code == 422 and bad.headers["Content-Type"].startswith(
        "application/problem+json")
    assert [e["field"] for e in bad.json()["errors"]] == ["plate"]
    unknown = api.post("/api/v1/logistics/vehicles", disp, json={"colour": "red"})
    assert unknown.status_code == 422
    assert {"colour", "plate", "kind"} <= {e["field"] for e in unknown.json()["errors"]}
    assert api.post("/api/v1/logistics/carriers", mgr, json={
        "name": "ТК", "rate_kind": "per_km", "rate": "10"}).status_code == 403

    vehicle = api.post("/api/v1/logistics/vehicles", disp, json={
        "plate": "е 001 кх 66", "kind": "flatbed", "payload_t": "5", "body_length_m": "6",
        "per_km_rate": "10", "per_hour_rate": "100"})
    assert vehicle.status_code == 201 and vehicle.json()["plate"] == "Е001КХ66"
    driver = api.post("/api/v1/logistics/drivers", disp, json={
        "full_name": "Водитель", "phone": "89120001122", "licence": "6600111222",
        "user_id": driver_user["id"]}).json()
    start = datetime.now(ZoneInfo("Europe/Moscow")).replace(microsecond=0)
    order = api.post("/api/v1/logistics/orders", disp, json={
        "consignee": "ООО Тест", "address": "Пермь", "region": "ru-per",
        "window_start": start.isoformat(), "window_end": (start + timedelta(hours=5)).isoformat(),
        "weight_kg": 1200}).json()
    assert order["region"] == "RU-PER" and order["status"] == "new"
    naive = api.post("/api/v1/logistics/orders", disp, json={
        "consignee": "ООО Тест", "address": "Пермь", "region": "RU-PER",
        "window_start": "2026-12-01T09:00:00", "window_end": "2026-12-01T18:00:00",
        "weight_kg": 1})
    assert naive.status_code == 422
    assert "window_start" in {e["field"] for e in naive.json()["errors"]}

    trip = api.post("/api/v1/logistics/trips", disp, json={
        "vehicle_id": vehicle.json()["id"], "driver_id": driver["id"],
        "planned_start": start.isoformat(), "distance_km": 10, "duration_h": 1,
        "order_ids": [order["id"]]})
    assert trip.status_code == 201 and trip.json()["cost"] == "200.00"
    stop_id = trip.json()["stops"][0]["id"]

    text = api.post(f"/api/v1/logistics/stops/{stop_id}/delivery-note", drv, data=b"hello",
                    headers={"Content-Type": "image/png"})
    assert text.status_code == 422 and text.json()["errors"][0]["field"] == "file"
    too_big = api.post(f"/api/v1/logistics/stops/{stop_id}/delivery-note", drv,
                       data=b"\xff\xd8\xff" + b"0" * (8 * 1024 * 1024),
                       headers={"Content-Type": "image/jpeg"})
    assert too_big.status_code == 422
    stored = api.post(f"/api/v1/logistics/stops/{stop_id}/delivery-note", drv, data=PNG,
                      headers={"Content-Type": "image/png"})
    assert stored.status_code == 201, stored.text
    assert stored.json()["sha256"] == hashlib.sha256(PNG).hexdigest()
    image = api.get(f"/api/v1/logistics/delivery-notes/{stored.json()['id']}", disp)
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/png"
    assert image.content == PNG
    assert api.get(f"/api/v1/logistics/delivery-notes/{stored.json()['id']}",
                   mgr).status_code == 403

    skip = api.post(f"/api/v1/logistics/stops/{stop_id}/status", drv, json={
        "status": "delivered"})
    assert skip.status_code == 409 and skip.json()["code"] == "invalid_status_move"
    mine = api.get("/api/v1/logistics/my-trips", drv).json()
    assert [t["id"] for t in mine] == [trip.json()["id"]]
    report = api.get("/api/v1/logistics/report?date_from=2026-12-02&date_to=2026-12-01", disp)
    assert report.status_code == 422
