"""What every browser scenario of the UI tests shares, on the browser side.

The scenarios run in a child process of their own (``python gateway/tests/ui/<x>_browser.py
SCENARIO CONFIG_JSON``, started by ``run_browser`` in conftest.py): Playwright's sync API inside
the test process — under eventlet's monkey patching, next to the in-process services — was seen to
stall for good on real pages (driver and browser both waiting, no Playwright timeout firing). The
child is a plain Python process with no eventlet and imports nothing of the project but this.

A scenario is ``def name(cfg, page)``; it prints ``STEP <what>`` as it goes (``step``), may print
other lines the test process reacts to (e.g. ``RING known``), and fails with a traceback (non-zero
exit) on a failed check. ``main(SCENARIOS)`` runs one and prints ``DONE``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

TIMEOUT_MS = 15_000


def step(name: str) -> None:
    print(f"STEP {name}", flush=True)


def shoot(cfg, page, name: str) -> None:
    """A full-page screenshot kept as a test artifact (``.test-results/screenshots``)."""
    folder = Path(cfg["screenshots"])
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def sign_in(cfg, page, username: str, path: str = "", password: str | None = None) -> None:
    """Through the login form, as a person would; with ``path``, straight there (the form's
    ``next``), else to the role's home page."""
    page.goto(f"{cfg['base_url']}/login" + (f"?next={path}" if path else ""))
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password or cfg["password"])
    page.click("#login-submit")
    page.wait_for_url(lambda url: "/login" not in url and (not path or path in url))


def main(scenarios: dict) -> None:
    scenario, cfg = sys.argv[1], json.loads(sys.argv[2])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=cfg["chromium"], headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        context = browser.new_context(locale="ru-RU", viewport={"width": 1366, "height": 860},
                                      timezone_id="Europe/Moscow", accept_downloads=True)
        context.set_default_timeout(TIMEOUT_MS)
        expect.set_options(timeout=TIMEOUT_MS)
        page = context.new_page()
        try:
            scenarios[scenario](cfg, page)
        finally:
            page.goto("about:blank")     # live streams close before the stack stops
            context.close()
            browser.close()
    print("DONE", flush=True)
