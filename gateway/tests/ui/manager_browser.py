"""The browser side of ``test_manager_pages`` (a child process: see browser_side.py). Besides
``STEP`` lines it prints ``RING known|unknown`` when the test process should publish a ringing
call."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import requests
from browser_side import main, shoot, sign_in, step
from playwright.sync_api import expect

MSK = ZoneInfo("Europe/Moscow")
NBSP = "\u00a0"


def api(cfg, path: str) -> dict:
    response = requests.get(cfg["base_url"] + path, timeout=30,
                            headers={"Authorization": f"Bearer {cfg['token']}"})
    assert response.status_code == 200, response.text
    return response.json()


def client_to_board(cfg, page) -> None:
    base, roof, fresh = cfg["base_url"], cfg["roof"], cfg["fresh"]
    sign_in(cfg, page, "m.ural.1", "/desk")
    step("signed in")
    # Find the client by INN.
    page.goto(base + "/clients")
    page.fill("input[name=q]", roof["inn"])
    page.press("input[name=q]", "Enter")
    rows = page.locator("#client-rows tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("ООО «Кровля-Урал»")
    shoot(cfg, page, "client_list")
    rows.first.locator("a").click()
    page.wait_for_url(re.compile(f"/clients/{roof['id']}$"))
    step("card")
    # The card: requisites left, the timeline right with the call (and its player) and 1C.
    expect(page.locator("#client-inn")).to_have_text(roof["inn"])
    timeline = page.locator("#timeline-items")
    call = timeline.locator("li[data-kind=call]")
    expect(call).to_have_count(1)
    expect(call).to_contain_text("3:05")
    expect(call.locator("audio")).to_have_attribute("src", f"/calls/{cfg['call_id']}/recording")
    erp = timeline.locator("li[data-kind=erp]")
    expect(erp).to_contain_text("ЗК-77")
    expect(erp).to_contain_text(f"250{NBSP}000,00{NBSP}₽")
    expect(timeline.locator("li[data-kind=stage]").first).to_be_visible()
    expect(page.locator("#client-deals")).to_contain_text("Кровля склада")
    # A note and a task, both on the card.
    page.fill("#note-form textarea[name=text]", "Просит образцы RAL 8017")
    page.click("#note-form button[type=submit]")
    page.wait_for_url(re.compile("notice="))
    expect(timeline.locator("li[data-kind=note]").first).to_contain_text(
        "Просит образцы RAL 8017")
    step("note")
    today = datetime.now(UTC).astimezone(MSK).date()
    page.fill("#task-form input[name=title]", "Отправить КП по кровле")
    page.fill("#task-form input[name=due_date]", today.isoformat())
    page.fill("#task-form input[name=due_time]", "23:30")
    page.click("#task-form button[type=submit]")
    page.wait_for_url(re.compile("notice=.*%D0%97%D0%B0%D0%B4%D0%B0%D1%87"))  # "Задача ..."
    expect(page.locator("#client-tasks")).to_contain_text("Отправить КП по кровле")
    shoot(cfg, page, "client_card")
    page.click("[data-kind-filter=note]")
    expect(page.locator("#timeline-items li.tl")).to_have_count(1)
    step("task")
    # The desk shows the task.
    page.goto(base + "/desk")
    task_row = page.locator("#desk-tasks li.task", has_text="Отправить КП по кровле")
    expect(task_row).to_have_count(1)
    expect(page.locator("#desk-kpi")).to_be_visible()
    shoot(cfg, page, "desk")
    # The calendar (week, then the next week, then the month).
    page.goto(base + "/calendar?view=week")
    item = page.locator("#calendar .cal-item", has_text="Отправить КП по кровле")
    expect(item).to_have_attribute("href", f"/clients/{roof['id']}")
    shoot(cfg, page, "calendar")
    page.click("#cal-next")
    expect(page.locator("#calendar .cal-item", has_text="Отправить КП")).to_have_count(0)
    page.goto(base + "/calendar?view=month")
    expect(page.locator("#calendar .cal-item", has_text="Отправить КП")).to_have_count(1)
    step("calendar")
    # Closing the task from the desk (htmx swaps the row).
    page.goto(base + "/desk")
    page.locator("#desk-tasks li.task", has_text="Отправить КП по кровле") \
        .locator("button[data-done]").click()
    expect(page.locator("#desk-tasks li.task.done", has_text="Отправить КП по кровле")) \
        .to_have_count(1)
    done = api(cfg, f"/api/v1/tasks?client_id={roof['id']}&status=done")["items"]
    assert [t["title"] for t in done] == ["Отправить КП по кровле"], done
    step("task done")
    # The board: the fresh deal goes from "new" to "qualified" by drag and drop.
    page.goto(base + "/funnel")
    board = page.locator("#board")
    card = board.locator(f".column[data-stage=new] .deal-card[data-deal='{fresh['id']}']")
    expect(card).to_contain_text(f"1{NBSP}234{NBSP}567,89{NBSP}₽")
    locked = board.locator(".column[data-stage=order_confirmed]")
    expect(locked).to_have_attribute("data-locked", "true")
    expect(locked.locator(f".deal-card[data-deal='{cfg['ordered']['id']}']")).to_have_count(1)
    shoot(cfg, page, "funnel")
    card.drag_to(board.locator(".column[data-stage=qualified] .cards"))
    moved = board.locator(f".column[data-stage=qualified] .deal-card.moved"
                          f"[data-deal='{fresh['id']}']")
    expect(moved).to_have_count(1)
    assert api(cfg, f"/api/v1/deals/{fresh['id']}")["stage"] == "qualified"
    expect(board.locator(".column[data-stage=qualified] [data-count]")).to_have_text("1")
    step("dragged")
    # A drop into a 1C stage is refused by the page: a toast, the card stays.
    moved.drag_to(locked.locator(".cards"))
    expect(page.locator("#toasts .toast").last).to_contain_text("документы 1С")
    expect(board.locator(f".column[data-stage=qualified] [data-deal='{fresh['id']}']")) \
        .to_have_count(1)
    # ... and by the server, with its message (a script sending it anyway).
    version = api(cfg, f"/api/v1/deals/{fresh['id']}")["version"]
    status, body = page.evaluate(
        """async ([id, version]) => {
             const r = await crm.post('/funnel/deals/' + id + '/move',
                                      {stage: 'order_confirmed', version: version});
             return [r.status, await r.json()];
           }""", [fresh["id"], str(version)])
    assert status == 422 and body["message"], (status, body)
    assert api(cfg, f"/api/v1/deals/{fresh['id']}")["stage"] == "qualified"
    step("refused")
    # The list view sorts by sum.
    page.goto(base + "/funnel?view=list&sort=amount")
    expect(page.locator("#deal-rows tbody tr").first).to_contain_text("Профнастил для ангара")


def screen_pop(cfg, page) -> None:
    sign_in(cfg, page, "m.ural.1", "/desk")
    page.wait_for_selector("body[data-screen-pop=open]")
    print("RING known", flush=True)
    pop = page.locator("#toasts .screen-pop")
    expect(pop).to_contain_text("+73432001010")
    link = pop.locator("a[data-f=client]")
    expect(link).to_have_text("ООО «Кровля-Урал»")
    expect(link).to_have_attribute("href", f"/clients/{cfg['roof']['id']}")
    print("RING unknown", flush=True)
    lead = page.locator("#toasts .screen-pop a[data-f=lead]")
    expect(lead).to_have_attribute("href", "/clients/new?phone=%2B73439998877")
    lead.click()
    page.wait_for_url(re.compile("/clients/new"))
    expect(page.locator("input[name=phone]")).to_have_value("+73439998877")


def duplicates(cfg, page) -> None:
    other = cfg["other"]
    sign_in(cfg, page, "m.ural.1", "/desk")
    page.goto(cfg["base_url"] + "/clients/new")
    page.fill("input[name=short_name]", "ООО «Новый металл»")
    page.locator("input[name=inn]").press_sequentially(other["inn"], delay=20)
    warning = page.locator("#duplicates [data-duplicate]")
    expect(warning).to_contain_text("Такой клиент уже есть")
    expect(warning).to_contain_text("ООО «Металлсервис»")
    expect(warning).to_contain_text("Петров Пётр")
    page.click("#create-client")
    expect(page.locator("#client-conflict")).to_contain_text("Петров Пётр")
    expect(page.locator("input[name=inn]")).to_have_value(other["inn"])   # what was typed stays
    # A new client of one's own: created, and its card opens.
    page.fill("input[name=short_name]", "ООО «Совсем новый»")
    page.fill("input[name=inn]", cfg["new_inn"])
    page.click("#create-client")
    page.wait_for_url(re.compile(r"/clients/[0-9a-f-]{36}\?notice="))
    expect(page.locator("#client-name")).to_have_text("ООО «Совсем новый»")


def saved_filters(cfg, page) -> None:
    base = cfg["base_url"]
    sign_in(cfg, page, "m.ural.1", "/desk")
    page.goto(base + "/clients?segment=опт&owner=mine")
    expect(page.locator("#clients-total")).to_have_text("55")
    expect(page.locator("#client-rows tbody tr")).to_have_count(50)
    page.click("#next-page")
    expect(page.locator("#client-rows tbody tr")).to_have_count(5)
    page.fill(".save-segment input[name=name]", "Мой опт")
    page.click(".save-segment button")
    page.wait_for_url(re.compile("notice="))
    page.goto(base + "/clients")
    page.click("[data-segment='Мой опт']")
    page.wait_for_url(re.compile(r"segment=%D0%BE%D0%BF%D1%82"))
    expect(page.locator("#clients-total")).to_have_text("55")
    page.locator("#segments li", has_text="Мой опт").locator("button").click()
    expect(page.locator("[data-segment='Мой опт']")).to_have_count(0)


SCENARIOS = {"client_to_board": client_to_board, "screen_pop": screen_pop,
             "duplicates": duplicates, "saved_filters": saved_filters}


if __name__ == "__main__":
    main(SCENARIOS)
