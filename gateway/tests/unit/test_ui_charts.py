"""The sales head's charts and figures: inline SVG that a browser and a screen reader can read,
axis marks that are round numbers, and figures formatted as people from 1C and Excel read them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from xml.etree import ElementTree

from gateway.ui.charts import Series, bar_chart, figure, money, moscow, nice_ticks, number

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup) -> ElementTree.Element:
    return ElementTree.fromstring(str(markup))


def test_money_and_figures_are_formatted_the_russian_way():
    assert money(Decimal("1234567.891")) == "1 234 567,89 ₽"
    assert money("0") == "0,00 ₽"
    assert money("-1500.5") == "-1 500,50 ₽"
    assert money(None) == "—"
    assert figure(12345, "int") == "12 345"
    assert figure("0.4567", "ratio") == "45,7 %"
    assert figure(None, "ratio") == "—"
    assert figure("12.25", "hours") == "12,3"
    assert figure("Стройметалл", "text") == "Стройметалл"
    assert (number("500000.00"), number("12.5"), number(None)) == ("500 000", "12,50", "—")


def test_times_are_shown_in_moscow_time():
    assert moscow(datetime(2026, 11, 27, 11, 5, tzinfo=UTC)) == "27.11.2026 14:05"
    assert moscow("2026-11-27T21:30:00+00:00") == "28.11.2026 00:30"
    assert moscow("2026-11-27") == "27.11.2026"
    assert moscow(date(2026, 1, 2)) == "02.01.2026"
    assert moscow(None) == "—"


def test_axis_marks_are_round_and_cover_the_maximum():
    assert nice_ticks(87) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(5) == [0, 1, 2, 3, 4, 5]
    assert nice_ticks(1_230_000)[-1] >= 1_230_000
    ticks = nice_ticks(3)
    assert ticks[0] == 0 and ticks[-1] >= 3 and len(ticks) <= 7
    assert nice_ticks(0) == [0.0, 1.0]


def test_a_bar_chart_is_accessible_svg_with_one_bar_per_value():
    chart = bar_chart("Звонки по дням", ["05.10", "06.10", "07.10"],
                      [Series("Всего", (3, 0, 7)), Series("Отвеченные", (2, 0, 5))],
                      chart_id="calls")
    root = parse(chart)
    assert root.tag == SVG + "svg" and root.get("role") == "img"
    assert root.get("aria-labelledby") == "calls-title calls-desc"
    assert root.find(SVG + "title").text == "Звонки по дням"
    assert "05.10 — 3" in root.find(SVG + "desc").text
    bars = [r for r in root.iter(SVG + "rect") if r.get("class") == "bar"]
    assert [(b.get("data-label"), b.get("data-series"), b.get("data-value")) for b in bars] == [
        ("05.10", "Всего", "3"), ("05.10", "Отвеченные", "2"), ("06.10", "Всего", "0"),
        ("06.10", "Отвеченные", "0"), ("07.10", "Всего", "7"), ("07.10", "Отвеченные", "5")]
    heights = {(b.get("data-label"), b.get("data-series")): float(b.get("height")) for b in bars}
    # Bars are proportional to their values on one scale.
    assert heights[("06.10", "Всего")] == 0
    assert abs(heights[("07.10", "Всего")] / heights[("05.10", "Всего")] - 7 / 3) < 0.01
    assert bars[0].find(SVG + "title").text == "05.10 · Всего: 3"


def test_money_bars_and_empty_charts():
    chart = parse(bar_chart("План", ["Ноябрь"], [Series("План", (Decimal("1500000.00"),))],
                            kind="money"))
    (bar,) = [r for r in chart.iter(SVG + "rect") if r.get("class") == "bar"]
    assert bar.find(SVG + "title").text == "Ноябрь · План: 1 500 000,00 ₽"
    empty = parse(bar_chart("Пусто", [], [Series("Всего", ())], empty="Нет данных"))
    assert not [r for r in empty.iter(SVG + "rect") if r.get("class") == "bar"]
    assert "Нет данных" in "".join(empty.itertext())


def test_labels_and_titles_are_escaped():
    chart = parse(bar_chart('<script>"x"</script>', ["A&B"], [Series("S<1>", (1,))]))
    assert chart.find(SVG + "title").text == '<script>"x"</script>'
    assert [r.get("data-label") for r in chart.iter(SVG + "rect")
            if r.get("class") == "bar"] == ["A&B"]
