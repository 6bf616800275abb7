"""Working time: due dates and stall limits that respect office hours and the production calendar.

A task "call back within 2 working hours" created on Friday evening is due on Monday morning, not
on Saturday night, and "check payment in 5 working days" must skip the May holidays. Russia moves
its days off every year by government decree (the production calendar, производственный
календарь): weekday holidays, Saturdays made working in exchange, and pre-holiday days one hour
shorter. So the calendar is data, not a rule: this module ships the decrees for 2025 and 2026, and
any other year falls back to plain Monday–Friday until an administrator adds its days in the
settings (`calendar_from_settings`: keys `holidays`, `workdays`, `short_days`), with no code change.

Choices that the callers rely on:

* Every datetime in and out is timezone-aware; a naive one is a ValueError, because guessing its
  zone would silently shift due dates by hours. Results are given in the calendar's zone.
* Arithmetic on instants is done in UTC. Python compares and subtracts two datetimes that share a
  tzinfo by their wall clocks, which is wrong across a daylight-saving change.
* The working window of a day is the half-open interval [day_start, day_end): at 18:00 sharp no
  work can be started any more. Adding working time may still end exactly at a day's end ("due
  today at 18:00" rather than "tomorrow at 09:00", which is the same amount of working time).
* Lunch is not modelled: the whole window from day_start to day_end counts.
* A window never crosses midnight (day_start < day_end on the same day).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TIMEZONE = "Europe/Moscow"
DEFAULT_DAY_START = time(9, 0)
DEFAULT_DAY_END = time(18, 0)
SHORT_DAY_CUT = timedelta(hours=1)  # labour code, art. 95: a pre-holiday day is one hour shorter
ONE_DAY = timedelta(days=1)
ZERO = timedelta(0)
MICROSECONDS_PER_HOUR = 3_600_000_000

DUE_UNITS = ("minutes", "hours", "working_hours", "days", "working_days")

# The production calendar by decree. Only weekday holidays and weekend working days are listed:
# Saturdays and Sundays are off by default anyway.
RUSSIAN_CALENDAR_YEARS = (2025, 2026)
RUSSIAN_HOLIDAYS = (
    # 2025
    "2025-01-01", "2025-01-02", "2025-01-03", "2025-01-06", "2025-01-07", "2025-01-08",
    "2025-05-01", "2025-05-02", "2025-05-08", "2025-05-09",
    "2025-06-12", "2025-06-13",
    "2025-11-03", "2025-11-04",
    "2025-12-31",
    # 2026
    "2026-01-01", "2026-01-02", "2026-01-05", "2026-01-06", "2026-01-07", "2026-01-08",
    "2026-01-09",
    "2026-02-23",
    "2026-03-09",
    "2026-05-01", "2026-05-11",
    "2026-06-12",
    "2026-11-04",
    "2026-12-31",
)
RUSSIAN_WORKDAYS = (
    "2025-11-01",  # Saturday, worked in exchange for Monday 2025-11-03
)
RUSSIAN_SHORT_DAYS = (
    "2025-03-07", "2025-04-30", "2025-06-11", "2025-11-01",
    "2026-04-30", "2026-05-08", "2026-06-11", "2026-11-03",
)


@dataclass(frozen=True)
class WorkCalendar:
    """When people work: a time zone, a daily window and the calendar's exceptions.

    `holidays` are days off that would otherwise be Monday–Friday; `workdays` are working days
    that would otherwise be Saturday or Sunday; `short_days` are working days that end an hour
    early (at day_end - 1 h). A day listed as both a holiday and a workday, or as a holiday and a
    short day, is a contradiction and refused, as is a short day that is not a working day.
    """

    tz: tzinfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))
    day_start: time = DEFAULT_DAY_START
    day_end: time = DEFAULT_DAY_END
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    short_days: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        if not isinstance(self.tz, tzinfo):
            raise ValueError(f"tz: expected a time zone, got {self.tz!r}")
        for name in ("day_start", "day_end"):
            value = getattr(self, name)
            if not isinstance(value, time) or value.tzinfo is not None:
                raise ValueError(f"{name}: expected a local clock time without zone, got {value!r}")
        if _clock_span(self.day_start, self.day_end) <= SHORT_DAY_CUT:
            raise ValueError("day_end: must be more than an hour after day_start, so that a short "
                             "(pre-holiday) day still has working time")
        # Accept any iterable of dates, but keep frozensets so that the calendar stays hashable.
        for name in ("holidays", "workdays", "short_days"):
            object.__setattr__(self, name, _parse_dates(getattr(self, name), name))
        _refuse_overlap(self.holidays, "holidays", self.workdays, "workdays")
        _refuse_overlap(self.holidays, "holidays", self.short_days, "short_days")
        not_working = sorted(day for day in self.short_days if not self.is_working_day(day))
        if not_working:
            raise ValueError("short_days: not working days (add weekend ones to workdays): "
                             + ", ".join(day.isoformat() for day in not_working))

    # -- days --------------------------------------------------------------------------------------

    def is_working_day(self, day: date) -> bool:
        """Monday–Friday unless a holiday; Saturday or Sunday only if listed in `workdays`."""
        _require_date(day)
        if day in self.holidays:
            return False
        if day in self.workdays:
            return True
        return day.weekday() < 5

    def working_hours(self, day: date) -> tuple[datetime, datetime] | None:
        """The day's working window as aware datetimes in the calendar's zone; None on a day off.

        Also None in the degenerate case of a window that a daylight-saving jump swallows whole
        (only possible with a window of barely more than an hour around the jump).
        """
        window = self._window(day)
        if window is None:
            return None
        opens, closes = window
        return opens.astimezone(self.tz), closes.astimezone(self.tz)

    def _window(self, day: date) -> tuple[datetime, datetime] | None:
        """The working window of `day` in UTC, which is what every computation here works on."""
        if not self.is_working_day(day):
            return None
        end = self.day_end
        if day in self.short_days:
            end = (datetime.combine(day, end) - SHORT_DAY_CUT).time()
        opens = self._instant(day, self.day_start)
        closes = self._instant(day, end)
        if closes <= opens:
            return None
        return opens, closes

    def _instant(self, day: date, clock: time) -> datetime:
        """The UTC instant of a local clock time on a local day (a time skipped by a DST jump
        counts as the clock reading before the jump, as zoneinfo does)."""
        return datetime.combine(day, clock, tzinfo=self.tz).astimezone(UTC)

    def _local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.tz).date()

    # -- moments -----------------------------------------------------------------------------------

    def is_working_moment(self, moment: datetime) -> bool:
        """True if work can be done at `moment`: inside [opening, closing) of a working day."""
        moment = _utc(moment, "moment")
        window = self._window(self._local_date(moment))
        return window is not None and window[0] <= moment < window[1]

    def next_working_moment(self, moment: datetime) -> datetime:
        """`moment` itself if inside working hours, otherwise the next opening."""
        moment = _utc(moment, "moment")
        day = self._local_date(moment)
        while True:
            window = self._window(day)
            if window is not None and moment < window[1]:
                return max(moment, window[0]).astimezone(self.tz)
            day += ONE_DAY

    # -- adding working time -----------------------------------------------------------------------

    def add_working_time(self, start: datetime, amount: timedelta) -> datetime:
        """The moment when `amount` of working time has passed since `start`.

        Time outside working hours does not count. The result of a positive amount is inside
        working hours or exactly at a day's closing; a zero amount gives the next working moment,
        the earliest time anything can be done.
        """
        moment = _utc(start, "start")
        if not isinstance(amount, timedelta):
            raise TypeError(f"amount: expected a timedelta, got {amount!r}")
        if amount < ZERO:
            raise ValueError(f"amount: must not be negative, got {amount}")
        moment = self.next_working_moment(moment).astimezone(UTC)
        remaining = amount
        day = self._local_date(moment)
        while True:
            window = self._window(day)
            if window is not None:
                begin = max(moment, window[0])
                available = window[1] - begin
                if remaining <= available:
                    return (begin + remaining).astimezone(self.tz)
                remaining -= available
            day += ONE_DAY

    def add_working_hours(self, start: datetime, hours: float | int | Decimal) -> datetime:
        """`add_working_time` with a number of hours (fractions allowed, to the microsecond)."""
        return self.add_working_time(start, hours_to_timedelta(hours))

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """The same local clock time on the `days`-th working day after `start`'s day.

        A start outside working hours first moves to the next working moment (a task set on
        Saturday for "in 1 working day" is due Tuesday at opening, not Monday). The clock time is
        then clamped into the target day's window: 17:30 on a short day that closes at 17:00
        gives 17:00.
        """
        _utc(start, "start")
        _require_count(days, "days")
        moment = self.next_working_moment(start)
        day = moment.date()
        counted = 0
        while counted < days:
            day += ONE_DAY
            if self._window(day) is not None:
                counted += 1
        opens, closes = self._window(day)
        target = self._instant(day, moment.time())  # .time() keeps `fold`, so DST repeats hold
        return min(max(target, opens), closes).astimezone(self.tz)

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        """How much working time lies between two moments; zero if `end` is not after `start`.

        Used for stall limits ("a deal stuck in a stage for more than 3 working days").
        """
        start = _utc(start, "start")
        end = _utc(end, "end")
        if end <= start:
            return ZERO
        total = ZERO
        day = self._local_date(start)
        last = self._local_date(end)
        while day <= last:
            window = self._window(day)
            if window is not None:
                overlap = min(window[1], end) - max(window[0], start)
                if overlap > ZERO:
                    total += overlap
            day += ONE_DAY
        return total

    def due(self, start: datetime, amount: int, unit: str) -> datetime:
        """The due moment of a task template such as (2, "working_hours") or (5, "days").

        "minutes" and "hours" are elapsed time, around the clock. "days" are calendar days: the
        same local clock time `amount` days later, whether or not that is a working day.
        "working_hours" and "working_days" follow the working calendar (see their methods).
        """
        moment = _utc(start, "start")
        _require_count(amount, "amount")
        if unit == "minutes":
            return (moment + timedelta(minutes=amount)).astimezone(self.tz)
        if unit == "hours":
            return (moment + timedelta(hours=amount)).astimezone(self.tz)
        if unit == "working_hours":
            return self.add_working_time(moment, timedelta(hours=amount))
        if unit == "days":
            local = moment.astimezone(self.tz)
            later = datetime.combine(local.date() + timedelta(days=amount), local.timetz())
            return later.astimezone(UTC).astimezone(self.tz)  # normalises a time DST skipped
        if unit == "working_days":
            return self.add_working_days(moment, amount)
        raise ValueError(f"unit: expected one of {', '.join(DUE_UNITS)}, got {unit!r}")


# -- building calendars ----------------------------------------------------------------------------


def russian_calendar(tz: str | tzinfo = DEFAULT_TIMEZONE, *,
                     day_start: str | time = "09:00", day_end: str | time = "18:00",
                     extra_holidays: Iterable[str | date] = (),
                     extra_workdays: Iterable[str | date] = (),
                     extra_short_days: Iterable[str | date] = ()) -> WorkCalendar:
    """The Russian production calendar (built in for 2025 and 2026) in the given zone and hours.

    The extras (ISO date strings or dates) let an administrator extend the calendar to a new year
    or correct it when a decree changes, without a code change. They win over the built-in data:
    an extra holiday cancels a built-in working Saturday or short day on that date, an extra
    workday or short day cancels a built-in holiday. A short day on a weekend must also be listed
    as a workday.
    """
    zone = _parse_zone(tz, "tz")
    start = _parse_clock(day_start, "day_start")
    end = _parse_clock(day_end, "day_end")
    holidays = _parse_dates(extra_holidays, "extra_holidays")
    workdays = _parse_dates(extra_workdays, "extra_workdays")
    short_days = _parse_dates(extra_short_days, "extra_short_days")
    _refuse_overlap(holidays, "extra_holidays", workdays, "extra_workdays")
    _refuse_overlap(holidays, "extra_holidays", short_days, "extra_short_days")
    return WorkCalendar(
        tz=zone,
        day_start=start,
        day_end=end,
        holidays=(_BUILTIN_HOLIDAYS - workdays - short_days) | holidays,
        workdays=(_BUILTIN_WORKDAYS - holidays) | workdays,
        short_days=(_BUILTIN_SHORT_DAYS - holidays) | short_days,
    )


SETTINGS_KEYS = {
    "timezone": "tz",
    "day_start": "day_start",
    "day_end": "day_end",
    "holidays": "extra_holidays",
    "workdays": "extra_workdays",
    "short_days": "extra_short_days",
}


def calendar_from_settings(settings: Mapping | None) -> WorkCalendar:
    """The calendar described by the JSON settings an administrator keeps in the database.

    Shape: {"timezone": "Europe/Moscow", "day_start": "09:00", "day_end": "18:00",
    "holidays": ["2027-01-01", ...], "workdays": [...], "short_days": [...]}. Every key is
    optional; the date lists extend the built-in Russian calendar (see `russian_calendar`). A bad
    value raises ValueError naming its key. Unknown keys are ignored, so that a settings row
    written by a newer version of the service does not stop an older one still running.
    """
    if settings is None:
        return russian_calendar()
    if not isinstance(settings, Mapping):
        raise ValueError(f"calendar settings: expected an object, got {type(settings).__name__}")
    arguments: dict[str, object] = {}
    for key, argument in SETTINGS_KEYS.items():
        if key not in settings:
            continue
        value = settings[key]
        if key == "timezone":
            arguments[argument] = _parse_zone(value, key)
        elif key in ("day_start", "day_end"):
            arguments[argument] = _parse_clock(value, key)
        else:
            if not isinstance(value, list | tuple):
                raise ValueError(f"{key}: expected a list of ISO dates, got {value!r}")
            arguments[argument] = _parse_dates(value, key)
    # Checked here as well as in russian_calendar so that the message names the settings' keys.
    holidays = arguments.get("extra_holidays", frozenset())
    _refuse_overlap(holidays, "holidays", arguments.get("extra_workdays", frozenset()), "workdays")
    _refuse_overlap(holidays, "holidays", arguments.get("extra_short_days", frozenset()),
                    "short_days")
    return russian_calendar(**arguments)


# -- small helpers ---------------------------------------------------------------------------------


def hours_to_timedelta(hours: float | int | Decimal) -> timedelta:
    """A number of hours as a timedelta, exact to the microsecond (floats via their decimal text,
    so 0.1 h is 360 s, not 359.999999 s)."""
    if isinstance(hours, bool) or not isinstance(hours, int | float | Decimal):
        raise TypeError(f"hours: expected a number, got {hours!r}")
    exact = Decimal(str(hours)) if isinstance(hours, float) else Decimal(hours)
    if not exact.is_finite():
        raise ValueError(f"hours: must be finite, got {hours!r}")
    if exact < 0:
        raise ValueError(f"hours: must not be negative, got {hours!r}")
    micros = (exact * MICROSECONDS_PER_HOUR).to_integral_value(rounding=ROUND_HALF_EVEN)
    return timedelta(microseconds=int(micros))


def _utc(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime):
        raise TypeError(f"{name}: expected a datetime, got {moment!r}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name}: naive datetime {moment.isoformat()}; pass a timezone-aware one")
    return moment.astimezone(UTC)


def _require_date(day: date) -> None:
    # A datetime is a date too, but it would never match the calendar's dates.
    if not isinstance(day, date) or isinstance(day, datetime):
        raise TypeError(f"day: expected a date, got {day!r}")


def _require_count(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected a whole number, got {value!r}")
    if value < 0:
        raise ValueError(f"{name}: must not be negative, got {value}")


def _clock_span(start: time, end: time) -> timedelta:
    return datetime.combine(date.min, end) - datetime.combine(date.min, start)


def _parse_zone(value: str | tzinfo, name: str) -> tzinfo:
    if isinstance(value, tzinfo):
        return value
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name}: expected an IANA time zone name, got {value!r}")
    try:
        return ZoneInfo(value)
    # zoneinfo reads the name as a file path: "Europe" is a folder, a long name too long a path.
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"{name}: unknown time zone {value!r}") from exc


def _parse_clock(value: str | time, name: str) -> time:
    if isinstance(value, str):
        try:
            value = time.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{name}: expected a clock time like '09:00', got {value!r}") from exc
    if not isinstance(value, time) or value.tzinfo is not None:
        raise ValueError(f"{name}: expected a clock time like '09:00', got {value!r}")
    return value


def _parse_dates(values: Iterable[str | date], name: str) -> frozenset[date]:
    if isinstance(values, str):  # a lone string would be read as a list of characters
        raise ValueError(f"{name}: expected a list of ISO dates, got {values!r}")
    days = set()
    for value in values:
        if isinstance(value, str):
            try:
                value = date.fromisoformat(value)
            except ValueError as exc:
                raise ValueError(f"{name}: not an ISO date (YYYY-MM-DD): {value!r}") from exc
        if not isinstance(value, date) or isinstance(value, datetime):
            raise ValueError(f"{name}: expected a date, got {value!r}")
        days.add(value)
    return frozenset(days)


def _refuse_overlap(first: frozenset[date], first_name: str,
                    second: frozenset[date], second_name: str) -> None:
    both = sorted(first & second)
    if both:
        raise ValueError(f"{first_name} and {second_name} both list "
                         + ", ".join(day.isoformat() for day in both))


_BUILTIN_HOLIDAYS = _parse_dates(RUSSIAN_HOLIDAYS, "RUSSIAN_HOLIDAYS")
_BUILTIN_WORKDAYS = _parse_dates(RUSSIAN_WORKDAYS, "RUSSIAN_WORKDAYS")
_BUILTIN_SHORT_DAYS = _parse_dates(RUSSIAN_SHORT_DAYS, "RUSSIAN_SHORT_DAYS")
