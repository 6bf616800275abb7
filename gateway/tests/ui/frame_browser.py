"""Browser side of ``test_frame`` (see browser_side.py)."""

from __future__ import annotations

import re

from browser_side import main, sign_in, step
from playwright.sync_api import expect


def sign_in_and_switch_language(cfg, page) -> None:
    sign_in(cfg, page, "m.ural.1")
    expect(page).to_have_url(re.compile(r"/desk$"))
    menu = page.locator("nav.menu")
    expect(menu.locator("[data-nav=clients]")).to_have_text("Клиенты")
    # A manager's menu has no sales head or admin entries.
    expect(menu.locator("[data-nav=admin]")).to_have_count(0)
    expect(menu.locator("[data-nav=salary]")).to_have_count(0)
    step("russian")
    page.click("[data-lang=en]")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page).to_have_url(re.compile(r"/desk$"))
    expect(page.locator("nav.menu [data-nav=clients]")).to_have_text("Clients")
    step("english")


if __name__ == "__main__":
    main({"sign_in_and_switch_language": sign_in_and_switch_language})
