"""Charts and figures of the sales head's pages, drawn on the server as inline SVG.

No JavaScript chart library: a report's chart is a handful of rectangles, and an SVG made here
renders before any script runs, prints, and is read by screen readers through its ``<title>`` and
``<desc>`` (every bar also carries its own ``<title>``: label, series and value). The page puts the
report's table under each chart, so the numbers are there as text too.

Also the formatting of figures the way people coming from 1C and Excel read them: money as
``1 234 567,89 ₽``, counts with thousand groups, shares as per cent, dates and times in Moscow
time ``27.11.2026 14:05``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from html import escape
from zoneinfo import ZoneInfo

from markupsafe import Markup

MOSCOW = ZoneInfo("Europe/Moscow")
# Series colours: distinguishable for the common colour-blindnesses (Okabe–Ito), dark enough on
# white for the 3:1 contrast of graphical objects.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9")


# -- figures ------------------------------------------------------------------------------------
def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def group_thousands(text: str) -> str:
    """``"1234567"`` -> ``"1 234 567"`` (digits only, sign kept)."""
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    groups = []
    while len(digits) > 3:
        groups.insert(0, digits[-3:])
        digits = digits[:-3]
    groups.insert(0, digits)
    return sign + " ".join(groups)


def format_decimal(value, places: int = 2) -> str:
    """``Decimal("1234567.891")`` -> ``"1 234 567,89"``; nothing -> ``"—"``."""
    number = _decimal(value)
    if number is None:
        return "—"
    quantum = Decimal(1).scaleb(-places) if places else Decimal(1)
    text = f"{number.quantize(quantum, rounding=ROUND_HALF_UP):f}"
    whole, _, fraction = text.partition(".")
    if whole in ("-0",) and not fraction.strip("0"):
        whole = "0"
    return group_thousands(whole) + ("," + fraction if fraction else "")


def number(value) -> str:
    """A plain figure (plan, fact, per cent): ``"500000.00"`` -> ``"500 000"``,
    ``"12.50"`` -> ``"12,50"``; nothing -> ``"—"``."""
    value = _decimal(value)
    if value is None:
        return "—"
    return format_decimal(value, 0 if value == value.to_integral_value() else 2)


def money(value) -> str:
    """Roubles as people read them: ``"1 234 567,89 ₽"``."""
    text = format_decimal(value, 2)
    return text if text == "—" else text + " ₽"


def moscow(value, with_time: bool = True) -> str:
    """An ISO date or aware datetime (text or object) as ``27.11.2026 14:05`` Moscow time."""
    if value in (None, ""):
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value) if "T" in value or " " in value \
                else date.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(MOSCOW)
        return value.strftime("%d.%m.%Y %H:%M" if with_time else "%d.%m.%Y")
    return value.strftime("%d.%m.%Y")


def figure(value, kind: str = "int") -> str:
    """One figure of a report by its kind (the reports catalogue's ``kind``)."""
    if value is None or value == "":
        return "—"
    if kind == "money":
        return money(value)
    if kind == "ratio":
        number = _decimal(value)
        return "—" if number is None else format_decimal(number * 100, 1) + " %"
    if kind == "hours":
        return format_decimal(value, 1)
    if kind in ("int", "seconds"):
        number = _decimal(value)
        return str(value) if number is None else format_decimal(number, 0)
    if kind == "date":
        return moscow(value)
    return str(value)


# -- the chart ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[float, ...]


def nice_ticks(maximum: float, count: int = 5) -> list[float]:
    """Round axis marks from 0 to at least ``maximum``: steps of 1, 2, 2.5 or 5 times a power of
    ten (``nice_ticks(87)`` -> 0, 20, 40, 60, 80, 100)."""
    if maximum <= 0 or not math.isfinite(maximum):
        return [0.0, 1.0]
    raw = maximum / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    top = math.ceil(maximum / step - 1e-9) * step
    ticks, value = [], 0.0
    while value <= top + step / 2:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _short(number: float) -> str:
    """An axis mark: ``2500000`` -> ``"2,5 млн"``, ``12000`` -> ``"12 тыс"``."""
    for size, suffix in ((1e9, " млрд"), (1e6, " млн"), (1e3, " тыс")):
        if abs(number) >= size:
            text = f"{number / size:.1f}".rstrip("0").rstrip(".")
            return text.replace(".", ",") + suffix
    text = f"{number:.2f}".rstrip("0").rstrip(".")
    return text.replace(".", ",")


def bar_chart(title: str, labels: list[str], series: list[Series], *, kind: str = "int",
              width: int = 1000, height: int = 280, chart_id: str = "chart",
              empty: str = "Нет данных за период") -> Markup:
    """Vertical (grouped) bars: one group per label, one bar per series. ``kind`` formats the
    values in the bars' titles. Negative values are drawn as zero-height bars (the table under
    the chart still shows them)."""
    labels = [str(label) for label in labels]
    left, right, top, bottom = 64, 12, 14, 54
    legend = len(series) > 1
    if legend:
        top += 22
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [max(0.0, float(v or 0)) for s in series for v in s.values]
    ticks = nice_ticks(max(values, default=0.0))
    y_max = ticks[-1] or 1.0

    def y(value: float) -> float:
        return top + plot_h - plot_h * max(0.0, value) / y_max

    summary = "; ".join(
        f"{s.name}: " + ", ".join(f"{lab} — {figure(v, kind)}"
                                  for lab, v in zip(labels, s.values, strict=False))
        for s in series if labels) or empty
    parts = [f'<svg class="chart" id="{escape(chart_id)}" xmlns="http://www.w3.org/2000/svg" '
             f'viewBox="0 0 {width} {height}" role="img" '
             f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" '
             f'preserveAspectRatio="xMinYMin meet">',
             f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
             f'<desc id="{escape(chart_id)}-desc">{escape(summary)}</desc>']
    for tick in ticks:
        ty = y(tick)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{ty:.1f}" y2="{ty:.1f}" '
                     f'class="grid" stroke="#e3e8ee"/>')
        parts.append(f'<text x="{left - 6}" y="{ty + 4:.1f}" text-anchor="end" '
                     f'class="tick" font-size="11" fill="#5d6b79">{escape(_short(tick))}</text>')
    if legend:
        x = left
        for index, s in enumerate(series):
            colour = PALETTE[index % len(PALETTE)]
            parts.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{colour}"/>')
            parts.append(f'<text x="{x + 16}" y="14" font-size="12" fill="#1d2733">'
                         f'{escape(s.name)}</text>')
            x += 28 + 7 * len(s.name)
    count = len(labels)
    if count:
        group_w = plot_w / count
        bar_w = max(1.0, min(48.0, group_w * 0.8 / max(1, len(series))))
        # Every label when they fit, else every n-th (the table has them all).
        every = max(1, math.ceil(count * 70 / plot_w))
        for i, label in enumerate(labels):
            x0 = left + i * group_w + (group_w - bar_w * len(series)) / 2
            for j, s in enumerate(series):
                value = float(s.values[i] or 0) if i < len(s.values) else 0.0
                by = y(value)
                parts.append(
                    f'<rect class="bar" x="{x0 + j * bar_w:.1f}" y="{by:.1f}" '
                    f'width="{bar_w:.1f}" height="{top + plot_h - by:.1f}" '
                    f'fill="{PALETTE[j % len(PALETTE)]}" data-series="{escape(s.name)}" '
                    f'data-label="{escape(label)}" data-value="{escape(str(s.values[i]))}">'
                    f'<title>{escape(label)} · {escape(s.name)}: '
                    f'{escape(figure(s.values[i], kind))}</title></rect>')
            if i % every == 0:
                text = label if len(label) <= 14 else label[:13] + "…"
                parts.append(f'<text x="{left + (i + 0.5) * group_w:.1f}" '
                             f'y="{top + plot_h + 16}" text-anchor="middle" font-size="11" '
                             f'class="label" fill="#1d2733">{escape(text)}</text>')
    else:
        parts.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" '
                     f'text-anchor="middle" fill="#5d6b79">{escape(empty)}</text>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" '
                 f'y2="{top + plot_h}" stroke="#8a96a3"/>')
    parts.append("</svg>")
    return Markup("".join(parts))
