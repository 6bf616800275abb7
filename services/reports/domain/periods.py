"""Report periods and time buckets (whole local days of the business time zone)."""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

PERIODS = ("day", "week", "month", "quarter", "year", "custom")
BUCKETS = ("day", "week", "month", "quarter", "year")
MAX_CUSTOM_DAYS = 366 * 10


class PeriodError(ValueError):
    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def local_day(moment: datetime, tz: ZoneInfo) -> date:
    """The business day a moment falls on."""
    return moment.astimezone(tz).date()


def bucket_start(day: date, bucket: str) -> date:
    """The first day of the bucket ``day`` is in (weeks start on Monday, as in Russia)."""
    if bucket == "day":
        return day
    if bucket == "week":
        return day - timedelta(days=day.weekday())
    if bucket == "month":
        return day.replace(day=1)
    if bucket == "quarter":
        return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    if bucket == "year":
        return date(day.year, 1, 1)
    raise PeriodError("bucket", f"неизвестная единица времени {bucket!r}")


def bucket_end(start: date, bucket: str) -> date:
    """The last day of the bucket starting on ``start``."""
    if bucket == "day":
        return start
    if bucket == "week":
        return start + timedelta(days=6)
    if bucket == "month":
        return start.replace(day=calendar.monthrange(start.year, start.month)[1])
    if bucket == "quarter":
        last_month = start.month + 2
        return date(start.year, last_month, calendar.monthrange(start.year, last_month)[1])
    if bucket == "year":
        return date(start.year, 12, 31)
    raise PeriodError("bucket", f"неизвестная единица времени {bucket!r}")


def bucket_starts(first: date, last: date, bucket: str) -> list[date]:
    """Every bucket touching [first, last], in order (to show empty buckets as zeros)."""
    starts = []
    current = bucket_start(first, bucket)
    while current <= last:
        starts.append(current)
        current = bucket_end(current, bucket) + timedelta(days=1)
    return starts


def resolve_period(period: str, anchor: date | None, date_from: date | None,
                   date_to: date | None, today: date) -> tuple[date, date]:
    """[first, last] day of the period: the day/week/month/quarter/year containing ``anchor``
    (default today), or ``custom`` from ``date_from`` to ``date_to`` inclusive."""
    if period not in PERIODS:
        raise PeriodError("period", f"одно из: {', '.join(PERIODS)}")
    if period == "custom":
        if date_from is None or date_to is None:
            missing = "date_from" if date_from is None else "date_to"
            raise PeriodError(missing, "для period=custom нужны date_from и date_to")
        if date_from > date_to:
            raise PeriodError("date_to", "date_to раньше date_from")
        if (date_to - date_from).days > MAX_CUSTOM_DAYS:
            raise PeriodError("date_to", "период не длиннее 10 лет")
        return date_from, date_to
    start = bucket_start(anchor or today, period)
    return start, bucket_end(start, period)
