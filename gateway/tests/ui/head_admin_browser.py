"""The browser side of ``test_head_admin_pages`` (a child process: see browser_side.py)."""

from __future__ import annotations

import re
from pathlib import Path

from browser_side import main, shoot, sign_in, step
from playwright.sync_api import expect


def report(cfg, page) -> None:
    """Calls of October 2026 (seeded: 5 Oct three calls, two answered; 6 Oct one missed)."""
    sign_in(cfg, page, "head.ural", "/head/reports")
    expect(page.locator("[data-report=calls]")).to_be_visible()
    page.click("[data-report=calls]")
    page.fill("input[name=date]", "2026-10-15")
    page.click("#apply-filters")
    table = page.locator("#report-table")
    # Grouped by day: every day of October is a row (31), the seeded ones carry the calls.
    expect(table.locator("tbody tr")).to_have_count(31)
    headers = table.locator("thead th").all_inner_texts()

    def day(text: str) -> dict:
        row = table.locator("tbody tr", has=page.locator("td", has_text=text))
        return dict(zip(headers, row.locator("td").all_inner_texts(), strict=True))

    first, second = day("05.10.2026"), day("06.10.2026")
    assert (first["Всего"], first["Отвеченные"], first["Пропущенные"]) == ("3", "2", "1"), first
    assert (second["Всего"], second["Отвеченные"], second["Пропущенные"]) == (
        "1", "0", "1"), second
    assert day("07.10.2026")["Всего"] == "0"
    expect(table.locator("tfoot td").nth(headers.index("Всего"))).to_have_text("4")
    expect(table.locator("tfoot td").nth(headers.index("Отвеченные"))).to_have_text("2")
    step("table")
    # The chart draws the same numbers: a bar per day and series, a <title> for the chart.
    chart = page.locator("svg#chart-calls")
    expect(chart).to_have_attribute("role", "img")
    expect(chart.locator("title").first).to_have_text("Звонки")
    bars = chart.locator("rect.bar[data-series='Всего']")
    expect(bars).to_have_count(31)
    drawn = {b.get_attribute("data-label"): b.get_attribute("data-value") for b in bars.all()}
    assert (drawn["05.10"], drawn["06.10"], drawn["07.10"]) == ("3", "1", "0"), drawn
    assert sum(int(v) for v in drawn.values()) == 4
    answered = chart.locator("rect.bar[data-series='Отвеченные'][data-label='05.10']")
    expect(answered).to_have_attribute("data-value", "2")
    shoot(cfg, page, "head_report")
    step("chart")
    # The download is the same report as a file, through the cookie session.
    with page.expect_download() as download:
        page.click("#export-csv")
    assert download.value.suggested_filename == "calls_2026-10-01_2026-10-31.csv"
    lines = Path(download.value.path()).read_text(encoding="utf-8-sig").splitlines()
    assert lines[-1].startswith("Итого") and ";4;" in lines[-1], lines
    step("csv")
    # A bad filter is named next to the form, not an error page.
    page.goto(cfg["base_url"] + "/head/reports/calls?period=custom&date_from=2026-10-20"
              "&date_to=2026-10-01")
    expect(page.locator(".field-errors li")).to_have_count(1)
    expect(page.locator("#report-title")).to_have_text("Звонки")
    step("bad filter")
    # The other charts (and a list report) render from the real service, chart and table.
    for name, title, chart in (("funnel", "Конверсия воронки", True),
                               ("stage_time", "Время на этапах", True),
                               ("forecast", "Прогноз и план", True),
                               ("stuck_deals", "Зависшие сделки", False)):
        page.goto(f"{cfg['base_url']}/head/reports/{name}")
        expect(page.locator("#report-title")).to_have_text(title)
        expect(page.locator("#report-table")).to_be_visible()
        expect(page.locator(f"svg#chart-{name}")).to_have_count(1 if chart else 0)
    step("other reports")


def salary(cfg, page) -> None:
    """The manager's confirmed document: refuse a return without a comment, then approve."""
    sign_in(cfg, page, "head.ural", "/head/salary?month=2026-10")
    expect(page.locator("#salary-waiting")).to_contain_text("1")
    row = page.locator(f"tr[data-document='{cfg['document_id']}']")
    expect(row).to_contain_text("Иванов Иван")
    expect(row.locator("[data-state]")).to_have_text("Подтверждён")
    expect(row.locator("td").nth(3)).to_have_text("40 000,00 ₽")
    row.locator("a").click()
    expect(page.locator("#document-total")).to_have_text("40 000,00 ₽")
    expect(page.locator("#document-lines")).to_contain_text("40 000,00 ₽")
    step("document")
    page.click("#doc-return")
    expect(page.locator(".field-error[data-field=comment]")).to_be_visible()
    expect(page.locator("#document-state")).to_have_text("Подтверждён")
    shoot(cfg, page, "salary")
    step("return refused")
    page.click("#doc-approve")
    expect(page.locator("#document-state")).to_have_text("Утверждён")
    expect(page.locator(".notice")).to_have_text("Документ утверждён")
    expect(page.locator("#doc-approve")).to_have_count(0)
    step("approved")


def handover(cfg, page) -> None:
    """m.ural.1's one client to m.ural.2; then the pool's client to m.ural.1."""
    sign_in(cfg, page, "head.ural", "/head/handover")
    page.select_option("#h-from", label="Иванов Иван")
    page.click("#h-choose")
    expect(page.locator("[data-count=clients]")).to_have_text("1")
    page.click("#h-preview")
    expect(page.locator(".field-error[data-field=to_user_ids]")).to_be_visible()
    page.check("input[data-receiver='Петров Пётр']")
    page.click("#h-preview")
    rows = page.locator("#handover-split tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.locator("td")).to_have_text(["Петров Пётр", "1"])
    shoot(cfg, page, "handover")
    step("preview")
    page.click("#h-confirm")
    expect(page.locator("[data-count=moved]")).to_have_text("1")
    expect(page.locator("#handover-result")).to_contain_text("Петров Пётр")
    step("handed over")
    page.click("nav.menu [data-nav=pool]")
    row = page.locator("tr[data-client='ООО «Ничей»']")
    row.locator("select[name=owner_id]").select_option(label="Иванов Иван")
    row.locator("button.assign").click()
    expect(page.locator(".notice")).to_contain_text("Иванов Иван")
    expect(page.locator("tr[data-client='ООО «Ничей»']")).to_have_count(0)
    step("assigned")


def admin(cfg, page) -> None:
    """A user created (after a refused extension), the mail page without the mail service, the
    quarantine entry re-driven (still unreadable) and dismissed."""
    sign_in(cfg, page, "admin", "/admin/users", password=cfg["admin_password"])
    form = page.locator("#user-create")
    form.locator("input[name=username]").fill("new.manager")
    form.locator("input[name=full_name]").fill("Новиков Николай")
    form.locator("select[name=department_id]").select_option(label="Уральский отдел")
    form.locator("input[name=extension]").fill("12a")
    form.locator("input[name=password]").fill("new-password-1")
    page.click("#user-create-submit")
    # The directory's refusal is shown next to the field, with what was typed kept.
    expect(page.locator("#user-create .field-error[data-field=extension]")).to_be_visible()
    expect(page.locator("#user-create input[name=full_name]")).to_have_value("Новиков Николай")
    step("refused")
    page.locator("#user-create input[name=extension]").fill("777")
    page.locator("#user-create input[name=password]").fill("new-password-1")
    page.click("#user-create-submit")
    expect(page.locator(".notice")).to_contain_text("new.manager")
    expect(page.locator("tr[data-username='new.manager']")).to_contain_text("777")
    shoot(cfg, page, "admin_users")
    step("created")
    page.click("[data-section=mailboxes]")
    expect(page.locator("#mail-unavailable")).to_be_visible()
    step("mail unavailable")
    page.click("[data-section=quarantine]")
    entry = cfg["entry"]
    row = page.locator(f"tr[data-entry='{entry}']")
    expect(row).to_contain_text("Message_UT_CRM_9.xml")
    shoot(cfg, page, "quarantine")
    row.locator("button.redrive").click()
    expect(page.locator(".error")).to_contain_text(f"№ {entry}")    # still unreadable
    page.locator(f"tr[data-entry='{entry}'] button.dismiss").click()
    expect(page.locator(".notice")).to_contain_text(str(entry))
    expect(page.locator(f"tr[data-entry='{entry}']")).to_have_count(0)
    expect(page).to_have_url(re.compile("/admin/quarantine"))
    step("dismissed")
    # The funnel's first stage: a probability over 100 is refused next to the field.
    page.click("[data-section=funnels]")
    probability = page.locator("#stages-table input[name=probability_0]")
    probability.fill("150")
    page.click("#funnel-save")
    expect(page.locator(".field-error[data-field='stages.0.probability']")).to_be_visible()
    expect(page.locator("#stages-table input[name=probability_0]")).to_have_value("150")
    page.locator("#stages-table input[name=probability_0]").fill("15")
    page.click("#funnel-save")
    expect(page.locator(".notice")).to_have_text("Воронка сохранена")
    expect(page.locator("#stages-table input[name=probability_0]")).to_have_value("15")
    step("funnel")
    # A pay scheme version: a bonus rate over 100 % refused, then created.
    page.click("[data-section=schemes]")
    form = page.locator("#scheme-form")
    form.locator("input[name=position]").fill("manager")
    form.locator("input[name=name]").fill("Менеджер 2027")
    form.locator("input[name=valid_from]").fill("2027-01")
    form.locator("input[name=fixed]").fill("45 000")
    form.locator("input[name=tier_from_0]").fill("80")
    form.locator("input[name=tier_rate_0]").fill("500")
    page.click("#scheme-save")
    expect(page.locator(".field-error[data-field='bonus.tiers.0.rate']")).to_be_visible()
    page.locator("#scheme-form input[name=tier_rate_0]").fill("1,5")
    page.click("#scheme-save")
    expect(page.locator(".notice")).to_contain_text("версия 1")
    expect(page.locator("tr[data-position=manager][data-version='1']")).to_contain_text(
        "45 000,00 ₽")
    step("scheme")


SCENARIOS = {"report": report, "salary": salary, "handover": handover, "admin": admin}


if __name__ == "__main__":
    main(SCENARIOS)
