"""The UI's frame: sign in through the form in a real browser, land on the role's page, switch
the language; the static files are served (htmx is vendored, not fetched from a CDN)."""

from __future__ import annotations

import pytest
import requests

from .conftest import run_browser

pytestmark = pytest.mark.integration


def test_signing_in_lands_on_the_role_home_and_the_language_switches(ui):
    assert run_browser(ui, "frame_browser.py", "sign_in_and_switch_language") == [
        "STEP russian", "STEP english"]


def test_static_files_are_served_and_paths_outside_are_not(ui):
    htmx = requests.get(ui.base_url + "/static/vendor/htmx-2.0.11.min.js", timeout=10)
    assert htmx.status_code == 200
    assert htmx.headers["Content-Type"].startswith(("text/javascript", "application/javascript"))
    assert "htmx" in htmx.text[:2000]
    outside = requests.get(ui.base_url + "/static/../service.py", timeout=10)
    assert outside.status_code == 404
