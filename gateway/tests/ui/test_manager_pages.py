"""The manager's pages in a real browser through the real stack (see conftest.py): a manager finds
a client, opens its card with the timeline (a call with its recording player and a 1C document,
published as telephony and the ERP bridge would), adds a note and a task (on the card, the desk
and the calendar), closes the task from the desk, drags a deal to the next stage on the board
(checked through the API) and is refused a drop into a 1C stage by the page and by the server,
sees a screen pop of a ringing call (known client and unknown number), is warned while typing the
INN of another manager's client, and saves, applies and deletes a client filter over two pages.
Screenshots: desk, client_list, client_card, funnel, calendar.

The stack runs in this process as for every UI test; the browser is driven from a child process
(``manager_browser.py`` through ``run_browser``, see browser_side.py). The child prints ``RING
known|unknown`` when this process should publish a ringing call."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from crm_platform.testing import publish_events
from gateway.tests.integration.deals_system import ErpDocument
from gateway.tests.integration.test_clients_api import inn

from .conftest import SCREENSHOTS, run_browser

pytestmark = pytest.mark.integration



@pytest.fixture
def seeded(ui):
    """m.ural.1's clients: "Кровля-Урал" with a recorded call and a 1C order that took its deal to
    a locked stage, "Профиль-Строй" with a fresh deal; m.ural.2's "Металлсервис"."""
    org = ui.org
    now = datetime.now(UTC)
    roof = org.client("m.ural.1", "ООО «Кровля-Урал»", inn=inn(9101),
                      phones=["+7 343 200-10-10"])
    profile = org.client("m.ural.1", "ООО «Профиль-Строй»", inn=inn(9102))
    other = org.client("m.ural.2", "ООО «Металлсервис»", inn=inn(9103))
    ordered = org.deal("m.ural.1", client_id=roof["id"], title="Кровля склада",
                       amount="250000.00")
    fresh = org.deal("m.ural.1", client_id=profile["id"], title="Профнастил для ангара",
                     amount="1234567.89")
    call_id = str(uuid.uuid4())
    org.deliver("telephony", "call_registered", {
        "call_id": call_id, "client_id": roof["id"], "user_id": org.id("m.ural.1"),
        "direction": "inbound", "answered": True, "started_at": now - timedelta(hours=2),
        "duration_seconds": 200, "talk_seconds": 185, "external_number": "+73432001010",
        "recording_url": "http://pbx.local/rec/1.wav"})
    ErpDocument(org, "order", roof["id"], "250000.00", now - timedelta(hours=1),
                number="ЗК-77", deal_id=ordered["id"]).send()
    org.wait_deal(ordered["id"], stage="order_confirmed")
    return {"token": org.tokens["m.ural.1"],
            "roof": roof, "profile": profile, "other": other, "ordered": ordered,
            "fresh": fresh, "call_id": call_id, "new_inn": inn(9104)}


def browse(ui, scenario: str, config: dict, on_ring=None) -> list[str]:
    """One scenario of manager_browser.py; ``on_ring(which)`` on each ``RING which`` line."""
    def on_line(line: str) -> None:
        if line.startswith("RING ") and on_ring is not None:
            on_ring(line.split()[1])

    return run_browser(ui, "manager_browser.py", scenario, config, on_line=on_line)


def test_a_manager_works_a_client_from_search_to_the_board(ui, seeded):
    assert browse(ui, "client_to_board", seeded) == [
        "STEP signed in", "STEP card", "STEP note", "STEP task", "STEP calendar",
        "STEP task done", "STEP dragged", "STEP refused"]
    # What the browser did is in the services.
    org = ui.org
    assert org.get_deal("m.ural.1", seeded["fresh"]["id"])["stage"] == "qualified"
    notes = org.get("m.ural.1", f"/api/v1/clients/{seeded['roof']['id']}/timeline",
                    params={"kinds": "note"})
    assert notes.status_code == 200, notes.text
    assert [i["data"]["text"] for i in notes.json()["items"]] == ["Просит образцы RAL 8017"]
    for name in ("desk", "client_list", "client_card", "funnel", "calendar"):
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000


def test_screen_pop_of_a_ringing_call(ui, seeded):
    org = ui.org

    def ring(which: str) -> None:
        known = which == "known"
        publish_events(ui.amqp_uri, [("telephony", "call_ringing", {
            "call_key": f"ring-{uuid.uuid4().hex[:8]}", "pbx": "asterisk", "extension": "101",
            "user_id": org.id("m.ural.1"),
            "external_number": "+73432001010" if known else "+73439998877",
            "client_id": seeded["roof"]["id"] if known else None, "direction": "inbound",
            "at": datetime.now(UTC)})])

    browse(ui, "screen_pop", seeded, on_ring=ring)


def test_duplicate_warning_while_typing_and_a_conflict_names_the_owner(ui, seeded):
    browse(ui, "duplicates", seeded)
    created = ui.org.get("m.ural.1", "/api/v1/clients", params={"q": seeded["new_inn"]})
    assert created.status_code == 200, created.text
    assert [c["short_name"] for c in created.json()["items"]] == ["ООО «Совсем новый»"]


def test_saved_filters_and_paging_of_the_client_list(ui, seeded):
    for n in range(55):
        ui.org.client("m.ural.1", f"ООО «Пакет {n:02d}»", inn=inn(9200 + n), segment="опт")
    browse(ui, "saved_filters", seeded)
    segments = ui.org.get("m.ural.1", "/api/v1/segments")
    assert segments.status_code == 200, segments.text
    items = segments.json()
    items = items["items"] if isinstance(items, dict) else items
    assert [s["name"] for s in items] == []
