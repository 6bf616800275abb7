"""Months of the payroll: Europe/Moscow calendar months.

A fact belongs to the month its document date (a call's start, a meeting's completion, a client's
creation) falls in *in Moscow time*: a shipment dated 2026-10-31T22:30Z is 2026-11-01 01:30 MSK and
counts for November. Months are written as the date of their first day.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

MOSCOW = ZoneInfo("Europe/Moscow")


def month_of(moment: datetime) -> date:
    """The first day of the Moscow month ``moment`` (timezone-aware) falls in."""
    if moment.tzinfo is None:
        raise ValueError("month_of needs a timezone-aware datetime")
    local = moment.astimezone(MOSCOW)
    return date(local.year, local.month, 1)


def first_day(day: date) -> date:
    return date(day.year, day.month, 1)


def previous_month(month: date) -> date:
    return date(month.year - 1, 12, 1) if month.month == 1 else date(month.year, month.month - 1, 1)


def next_month(month: date) -> date:
    return date(month.year + 1, 1, 1) if month.month == 12 else date(month.year, month.month + 1, 1)


def month_label(month: date) -> str:
    return f"{month.month:02d}.{month.year}"
