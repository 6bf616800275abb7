"""The driver and dispatcher pages in a real browser: a driver signs in, moves the stops of the
day's trip, uploads the photo of the signed delivery note and marks the stop delivered; the
dispatcher then sees the trip delivered with the photo. Forms without the CSRF token are refused."""

from __future__ import annotations

import struct
import zlib
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from .conftest import PASSWORD

pytestmark = pytest.mark.integration

MSK = ZoneInfo("Europe/Moscow")


def png(width: int = 8, height: int = 8) -> bytes:
    """A small valid PNG (a photo stand-in the browser can display)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    rows = b"".join(b"\x00" + bytes([200, 80, 40]) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                               0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def make_user(stack, admin, username, full_name, role) -> dict:
    return stack.ok("POST", "/api/v1/users", admin, json={
        "username": username, "full_name": full_name, "role": role, "password": PASSWORD})


def sign_in(browser, stack, path, username):
    browser.get(stack.base_url + path)
    wait = settled(browser)
    wait.until(ec.presence_of_element_located((By.NAME, "username")))
    assert "/login?next=" in browser.current_url
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login-submit").click()
    wait.until(lambda b: path in b.current_url and "/login" not in b.current_url)


def stop_card(browser, number):
    return browser.find_element(By.CSS_SELECTOR, f'.stop[data-order="{number}"]')


def settled(browser) -> WebDriverWait:
    """A 30 s wait whose conditions may look up elements of a page being replaced."""
    return WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,))


def post_and_reload(browser, button, on_page):
    """Click a form's ``button`` and wait until the page it was on (``on_page``, an element of
    it) is replaced: the old page may already show the text the next wait looks for (a button
    label), so waiting for the text alone can pass before the new page is there."""
    button.click()
    settled(browser).until(ec.staleness_of(on_page))


def test_driver_delivers_with_a_photo_and_the_dispatcher_sees_it(stack, browser, tmp_path):
    admin = stack.login("admin", "admin12345")
    make_user(stack, admin, "dispatcher1", "Петрова Анна", "dispatcher")
    driver_user = make_user(stack, admin, "driver1", "Сидоров Иван", "driver")
    dispatcher = stack.login("dispatcher1", PASSWORD)

    vehicle = stack.ok("POST", "/api/v1/logistics/vehicles", dispatcher, json={
        "plate": "А123ВС96", "kind": "flatbed", "payload_t": "10", "body_length_m": "13.6",
        "ownership": "own", "per_km_rate": "40", "per_hour_rate": "500"})
    driver = stack.ok("POST", "/api/v1/logistics/drivers", dispatcher, json={
        "full_name": "Сидоров Иван", "phone": "+7 912 345-67-89", "licence": "6612345678",
        "user_id": driver_user["id"]})
    today = datetime.now(MSK).replace(hour=9, minute=0, second=0, microsecond=0)
    orders = [stack.ok("POST", "/api/v1/logistics/orders", dispatcher, json={
        "consignee": consignee, "address": address, "region": "RU-SVE",
        "window_start": today.isoformat(),
        "window_end": (today + timedelta(hours=9)).isoformat(), "weight_kg": weight})
        for consignee, address, weight in (
            ("ООО «Кровля-Урал»", "Екатеринбург, ул. Малышева, 1", "2500"),
            ("ИП Петров", "Берёзовский, ул. Ленина, 7", "1500"))]
    trip = stack.ok("POST", "/api/v1/logistics/trips", dispatcher, json={
        "vehicle_id": vehicle["id"], "driver_id": driver["id"],
        "planned_start": today.isoformat(), "distance_km": "80", "duration_h": "5",
        "order_ids": [o["id"] for o in orders]})
    assert trip["cost"] == "5700.00"        # 80 × 40 + 5 × 500

    # The driver signs in on the phone and sees the day's trip with both stops.
    sign_in(browser, stack, "/logistics/driver", "driver1")
    page = browser.find_element(By.CSS_SELECTOR, f'.trip[data-trip="{trip["number"]}"]')
    assert "Сидоров" in browser.find_element(By.TAG_NAME, "header").text
    assert "Екатеринбург, ул. Малышева, 1" in page.text
    post_and_reload(browser, browser.find_element(
        By.XPATH, "//button[contains(., 'Начать погрузку')]"), page)
    settled(browser).until(
        lambda b: "Погрузка" in stop_card(b, orders[0]["number"]).text)
    card = stop_card(browser, orders[0]["number"])
    post_and_reload(browser, card.find_element(By.CLASS_NAME, "stop-action"), card)
    settled(browser).until(
        lambda b: "В пути" in stop_card(b, orders[0]["number"]).text)

    photo = tmp_path / "nakladnaya.png"
    photo.write_bytes(png())
    card = stop_card(browser, orders[0]["number"])
    card.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(photo))
    post_and_reload(browser, card.find_element(By.CSS_SELECTOR, ".photo-form button"), card)
    settled(browser).until(
        lambda b: "Фото накладной сохранено" in b.find_element(By.TAG_NAME, "main").text)
    settled(browser).until(lambda b: b.execute_script(
        "var i = document.querySelector('img.note'); return i && i.complete && i.naturalWidth")
        == 8)

    card = stop_card(browser, orders[0]["number"])
    post_and_reload(browser, card.find_element(By.CLASS_NAME, "stop-action"), card)
    settled(browser).until(
        lambda b: "Доставлен" in stop_card(b, orders[0]["number"]).text)
    assert "Погрузка" in stop_card(browser, orders[1]["number"]).text

    # The session cookie is HttpOnly and SameSite=Strict.
    cookie = browser.get_cookie("crm_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    # A form posted without its CSRF token (as another site would) is refused.
    forged = requests.post(f"{stack.base_url}/logistics/stops/{trip['stops'][1]['id']}/status",
                           data={"status": "in_transit"},
                           cookies={"crm_session": cookie["value"]}, timeout=30,
                           allow_redirects=False)
    assert forged.status_code == 403
    assert stack.ok("GET", f"/api/v1/logistics/trips/{trip['id']}",
                    dispatcher)["stops"][1]["status"] == "loading"

    # Sign out; the dispatcher signs in and sees the delivered stop with its photo.
    browser.find_element(By.XPATH, "//button[contains(., 'Выйти')]").click()
    settled(browser).until(lambda b: "/login" in b.current_url)
    sign_in(browser, stack, "/logistics/dispatcher", "dispatcher1")
    trip_card = browser.find_element(By.CSS_SELECTOR,
                                     f'#trips .trip[data-trip="{trip["number"]}"]')
    delivered = trip_card.find_element(By.CSS_SELECTOR,
                                       f'.stop[data-order="{orders[0]["number"]}"]')
    assert "Доставлен" in delivered.text and "В пути" in trip_card.text
    delivered.find_element(By.CLASS_NAME, "note-link").click()
    settled(browser).until(lambda b: "/logistics/notes/" in b.current_url)
    assert browser.execute_script(
        "return document.images.length && document.images[0].naturalWidth") == 8

    # The driver page is not the dispatcher's.
    browser.get(stack.base_url + "/logistics/driver")
    assert "не для вашей роли" in browser.find_element(By.TAG_NAME, "main").text


def test_dispatcher_makes_a_trip_from_the_planners_proposal(stack, browser):
    admin = stack.login("admin", "admin12345")
    make_user(stack, admin, "dispatcher1", "Петрова Анна", "dispatcher")
    dispatcher = stack.login("dispatcher1", PASSWORD)
    stack.ok("POST", "/api/v1/logistics/vehicles", dispatcher, json={
        "plate": "В777ОР66", "kind": "curtain_sider", "payload_t": "20",
        "body_length_m": "13.6", "ownership": "own", "per_km_rate": "50",
        "per_hour_rate": "600"})
    stack.ok("POST", "/api/v1/logistics/drivers", dispatcher, json={
        "full_name": "Орлов Пётр", "phone": "+7 912 000-11-22", "licence": "6600111222"})
    today = datetime.now(MSK).replace(hour=9, minute=0, second=0, microsecond=0)
    for consignee, weight in (("ООО «Альфа»", "8000"), ("ООО «Бета»", "7000")):
        stack.ok("POST", "/api/v1/logistics/orders", dispatcher, json={
            "consignee": consignee, "address": "Екатеринбург", "region": "RU-SVE",
            "window_start": today.isoformat(),
            "window_end": (today + timedelta(hours=9)).isoformat(), "weight_kg": weight})

    sign_in(browser, stack, "/logistics/dispatcher", "dispatcher1")
    proposed = browser.find_element(By.CSS_SELECTOR, "#proposal form.proposed")
    assert "В777ОР66" in proposed.text and "15000" in proposed.text
    proposed.find_element(By.NAME, "distance_km").send_keys("100")
    proposed.find_element(By.NAME, "duration_h").send_keys("4")
    proposed.find_element(By.XPATH, ".//button[contains(., 'Создать рейс')]").click()
    settled(browser).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "#trips .trip"))
    trips = stack.ok("GET", "/api/v1/logistics/trips", dispatcher)["items"]
    assert len(trips) == 1 and trips[0]["cost"] == "7400.00"     # 100 × 50 + 4 × 600
    assert "Все заявки распределены" in browser.find_element(By.ID, "waiting").text
    assert "Запланирован" in browser.find_element(By.ID, "trips").text
