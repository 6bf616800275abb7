from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.deals.domain.workcalendar import (
    WorkCalendar,
    calendar_from_settings,
    hours_to_timedelta,
    russian_calendar,
)

MSK = ZoneInfo("Europe/Moscow")
BERLIN = ZoneInfo("Europe/Berlin")
YEKATERINBURG = ZoneInfo("Asia/Yekaterinburg")
NEW_YORK = ZoneInfo("America/New_York")

RU = russian_calendar()
HOUR = timedelta(hours=1)


def msk(*args, **kwargs) -> datetime:
    return datetime(*args, tzinfo=MSK, **kwargs)


def utc(moment: datetime) -> datetime:
    """Compare instants, not wall clocks: Python compares two datetimes that share a tzinfo by
    their wall clocks, which misorders the repeated hour of a DST change."""
    return moment.astimezone(UTC)


def days_of(year: int, month: int | None = None) -> list[date]:
    day = date(year, month or 1, 1)
    days = []
    while day.year == year and (month is None or day.month == month):
        days.append(day)
        day += timedelta(days=1)
    return days


def window_length(calendar: WorkCalendar, day: date) -> timedelta:
    hours = calendar.working_hours(day)
    return timedelta(0) if hours is None else utc(hours[1]) - utc(hours[0])


# -- the production calendar data ------------------------------------------------------------------

# Working days and the 40-hour-week norm per month, as the official production calendars print
# them. The norm counts 8 h a day (7 h on a short day); our window is 9 h because lunch is not
# modelled, so the norm is the window minus one hour per working day.
OFFICIAL = {
    2025: ([17, 20, 21, 22, 18, 19, 23, 21, 22, 23, 19, 22],
           [136, 160, 167, 175, 144, 151, 184, 168, 176, 184, 151, 176]),
    2026: ([15, 19, 21, 22, 19, 21, 23, 21, 22, 22, 20, 22],
           [120, 152, 168, 175, 151, 167, 184, 168, 176, 176, 159, 176]),
}


@pytest.mark.parametrize("year", [2025, 2026])
def test_each_built_in_year_has_247_working_days_and_the_official_1972_hour_norm(year):
    working = [day for day in days_of(year) if RU.is_working_day(day)]
    assert len(working) == 247
    window = sum((window_length(RU, day) for day in working), timedelta(0))
    # 247 days of 9 h, less 1 h on each of the 4 short days.
    assert window == timedelta(hours=247 * 9 - 4)
    assert window - len(working) * HOUR == timedelta(hours=1972)


@pytest.mark.parametrize("year", [2025, 2026])
def test_the_built_in_years_match_the_official_calendar_month_by_month(year):
    official_days, official_norm = OFFICIAL[year]
    for month in range(1, 13):
        working = [day for day in days_of(year, month) if RU.is_working_day(day)]
        norm = sum((window_length(RU, day) - HOUR for day in working), timedelta(0))
        assert (len(working), norm) == (official_days[month - 1],
                                        timedelta(hours=official_norm[month - 1])), month


def test_days_of_the_built_in_calendar():
    assert not RU.is_working_day(date(2026, 1, 9))        # Friday, New Year holidays
    assert not RU.is_working_day(date(2026, 5, 11))       # Monday, moved from a weekend
    assert RU.is_working_day(date(2025, 11, 1))           # Saturday worked for Monday Nov 3
    assert not RU.is_working_day(date(2025, 11, 8))       # an ordinary Saturday
    assert RU.is_working_day(date(2026, 5, 8))            # a short day is still a working day
    opens, closes = RU.working_hours(date(2026, 5, 8))
    assert (opens, closes) == (msk(2026, 5, 8, 9), msk(2026, 5, 8, 17))
    assert RU.working_hours(date(2026, 5, 9)) is None


def test_working_hours_are_aware_and_in_the_calendars_zone():
    opens, closes = RU.working_hours(date(2026, 5, 12))
    assert opens.tzinfo is MSK and closes.tzinfo is MSK
    assert (opens.hour, closes.hour) == (9, 18)


def test_a_year_without_data_falls_back_to_monday_to_friday():
    # 2027 starts on a Friday: 52 whole weeks plus one Friday, so 261 weekdays. Until an
    # administrator adds its holidays in the settings, New Year's Day is an ordinary Friday.
    assert sum(RU.is_working_day(day) for day in days_of(2027)) == 261
    assert RU.is_working_day(date(2027, 1, 1))
    assert not RU.is_working_day(date(2027, 1, 2))


# -- concrete due dates ----------------------------------------------------------------------------


def test_call_back_within_2_working_hours_over_the_may_holidays():
    # Friday 2026-05-08 is a short day (May 9 is a holiday), so it closes at 17:00 and 17:30 is
    # already after hours. Saturday 9 and Sunday 10 are off, Monday 11 is a transferred day off.
    # The clock starts on Tuesday 12 at 09:00: two hours later is 11:00.
    assert RU.add_working_hours(msk(2026, 5, 8, 17, 30), 2) == msk(2026, 5, 12, 11, 0)


def test_working_hours_across_the_new_year():
    # Tuesday 2025-12-30 17:00: one hour until 18:00 (not a short day: Dec 31 is a transferred
    # day off, not a holiday). Then Dec 31 and Jan 1-11 are all off; the other two hours run
    # on Monday 2026-01-12 from 09:00.
    assert RU.add_working_hours(msk(2025, 12, 30, 17, 0), 3) == msk(2026, 1, 12, 11, 0)


def test_a_working_saturday_counts():
    # Friday 2025-10-31 17:00: one hour until 18:00, the second on Saturday 2025-11-01, which
    # was worked in exchange for Monday 2025-11-03.
    assert RU.add_working_hours(msk(2025, 10, 31, 17, 0), 2) == msk(2025, 11, 1, 10, 0)


def test_a_working_saturday_before_holidays_is_short():
    # Saturday 2025-11-01 closes at 17:00 (Nov 3-4 are holidays): 30 minutes that day, then
    # Sunday and the two holidays are skipped, and the other 30 minutes run on Wednesday.
    assert RU.add_working_hours(msk(2025, 11, 1, 16, 30), 1) == msk(2025, 11, 5, 9, 30)


def test_check_payment_in_5_working_days():
    # Thursday 2026-04-30 16:30 is inside the short day (closes 17:00). May 1 is a holiday and
    # May 2-3 a weekend, so the five working days are May 4, 5, 6, 7 and 8; May 8 is short
    # too, but 16:30 is still inside it.
    assert RU.add_working_days(msk(2026, 4, 30, 16, 30), 5) == msk(2026, 5, 8, 16, 30)


def test_working_days_from_after_hours_start_at_the_next_opening():
    # Thursday 2026-04-30 17:30 is after the short day's 17:00 close, so the start moves to
    # Monday May 4 09:00; five working days later (5, 6, 7, 8 and, past the holiday on the 11th,
    # 12) is Tuesday May 12 at 09:00.
    assert RU.add_working_days(msk(2026, 4, 30, 17, 30), 5) == msk(2026, 5, 12, 9, 0)


def test_working_days_clamp_the_clock_into_a_short_day():
    # Wednesday 17:45 plus two working days is Friday 2026-05-08, which closes at 17:00.
    assert RU.add_working_days(msk(2026, 5, 6, 17, 45), 2) == msk(2026, 5, 8, 17, 0)


def test_working_days_keep_the_clock_time():
    assert RU.add_working_days(msk(2026, 5, 18, 10, 15), 1) == msk(2026, 5, 19, 10, 15)
    assert RU.add_working_days(msk(2025, 10, 31, 10, 0), 1) == msk(2025, 11, 1, 10, 0)
    # Saturday noon: the start moves to Monday 09:00, so one working day later is Tuesday 09:00.
    assert RU.add_working_days(msk(2026, 5, 16, 12, 0), 1) == msk(2026, 5, 19, 9, 0)
    assert RU.add_working_days(msk(2026, 5, 18, 10, 15), 0) == msk(2026, 5, 18, 10, 15)


def test_due_in_each_unit_from_a_friday_evening():
    start = msk(2026, 5, 8, 17, 30)  # after the short day's close, before the May holidays
    assert RU.due(start, 30, "minutes") == msk(2026, 5, 8, 18, 0)       # around the clock
    assert RU.due(start, 2, "hours") == msk(2026, 5, 8, 19, 30)         # around the clock
    assert RU.due(start, 2, "working_hours") == msk(2026, 5, 12, 11, 0)
    assert RU.due(start, 5, "days") == msk(2026, 5, 13, 17, 30)         # calendar days
    # Moves to Tuesday 09:00 first, then one working day on.
    assert RU.due(start, 1, "working_days") == msk(2026, 5, 13, 9, 0)


def test_due_refuses_unknown_units_and_negative_or_fractional_amounts():
    start = msk(2026, 5, 12, 10)
    with pytest.raises(ValueError, match="unit"):
        RU.due(start, 1, "weeks")
    with pytest.raises(ValueError, match="amount"):
        RU.due(start, -1, "hours")
    with pytest.raises(TypeError, match="amount"):
        RU.due(start, 1.5, "hours")


# -- boundaries of the working window --------------------------------------------------------------


def test_the_window_is_closed_at_opening_and_open_at_closing():
    assert RU.is_working_moment(msk(2026, 5, 18, 9, 0))
    assert RU.is_working_moment(msk(2026, 5, 18, 17, 59, 59, 999999))
    assert not RU.is_working_moment(msk(2026, 5, 18, 18, 0))
    assert not RU.is_working_moment(msk(2026, 5, 18, 8, 59, 59, 999999))
    assert RU.next_working_moment(msk(2026, 5, 18, 12, 0)) == msk(2026, 5, 18, 12, 0)
    assert RU.next_working_moment(msk(2026, 5, 18, 18, 0)) == msk(2026, 5, 19, 9, 0)
    assert RU.next_working_moment(msk(2026, 5, 18, 3, 0)) == msk(2026, 5, 18, 9, 0)


def test_a_full_day_of_work_ends_at_closing_not_at_the_next_opening():
    assert RU.add_working_time(msk(2026, 5, 18, 9), timedelta(hours=9)) == msk(2026, 5, 18, 18)
    one_more = timedelta(hours=9, microseconds=1)
    assert RU.add_working_time(msk(2026, 5, 18, 9), one_more) == msk(2026, 5, 19, 9, 0, 0, 1)


def test_adding_nothing_gives_the_next_working_moment():
    # Saturday afternoon: the earliest anything can be done is Monday at opening.
    assert RU.add_working_time(msk(2026, 5, 16, 15), timedelta(0)) == msk(2026, 5, 18, 9)


def test_hours_may_be_fractions_and_decimals():
    start = msk(2026, 5, 18, 9)
    assert RU.add_working_hours(start, 0.1) == msk(2026, 5, 18, 9, 6)
    assert RU.add_working_hours(start, Decimal("1.5")) == msk(2026, 5, 18, 10, 30)
    assert hours_to_timedelta(Decimal("0.0000001")) == timedelta(microseconds=360)
    with pytest.raises(ValueError, match="negative"):
        RU.add_working_hours(start, -1)
    with pytest.raises(ValueError, match="finite"):
        RU.add_working_hours(start, float("nan"))
    with pytest.raises(TypeError):
        RU.add_working_hours(start, "2")
    with pytest.raises(ValueError, match="negative"):
        RU.add_working_time(start, -HOUR)


# -- working time between two moments (stalled deals) ----------------------------------------------


def test_working_time_over_the_may_holidays():
    # Apr 30 is short (8 h), May 1-3 off, May 4-7 four full days (36 h), May 8 short (8 h),
    # May 9-11 off, and the interval ends at Tuesday's opening: 52 h in all.
    assert RU.working_time_between(msk(2026, 4, 30, 9), msk(2026, 5, 12, 9)) == timedelta(hours=52)


def test_working_time_is_zero_when_nothing_was_worked_or_end_is_not_later():
    assert RU.working_time_between(msk(2026, 5, 16, 9), msk(2026, 5, 17, 20)) == timedelta(0)
    assert RU.working_time_between(msk(2026, 5, 18, 12), msk(2026, 5, 18, 10)) == timedelta(0)
    assert RU.working_time_between(msk(2026, 5, 18, 12), msk(2026, 5, 18, 12)) == timedelta(0)


# -- time zones ------------------------------------------------------------------------------------


def test_moments_in_other_zones_are_read_as_instants_and_answered_in_the_calendars_zone():
    # 05:00 UTC is 08:00 in Moscow, before opening: one working hour after 09:00 is 10:00.
    due = RU.add_working_hours(datetime(2026, 5, 12, 5, 0, tzinfo=UTC), 1)
    assert due == msk(2026, 5, 12, 10, 0)
    assert due.tzinfo is MSK
    # 19:30 in Yekaterinburg is 17:30 in Moscow: half an hour today, half an hour tomorrow.
    start = datetime(2026, 5, 12, 19, 30, tzinfo=YEKATERINBURG)
    assert RU.add_working_hours(start, 1) == msk(2026, 5, 13, 9, 30)


def test_a_department_in_another_zone_keeps_its_own_hours():
    ural = russian_calendar("Asia/Yekaterinburg")
    # 17:30 Moscow time is 19:30 in Yekaterinburg, after the Ural office's 18:00 close.
    due = ural.add_working_hours(msk(2026, 5, 12, 17, 30), 1)
    assert due == datetime(2026, 5, 13, 10, 0, tzinfo=YEKATERINBURG)


def test_a_window_crossing_the_dst_changes_has_the_real_length():
    # A night window 01:00-05:00 in Berlin, worked on the two Sundays when the clocks change
    # (02:00 -> 03:00 in March, 03:00 -> 02:00 in October).
    night = WorkCalendar(tz=BERLIN, day_start=time(1), day_end=time(5),
                         workdays=frozenset({date(2026, 3, 29), date(2026, 10, 25)}))
    assert window_length(night, date(2026, 3, 29)) == timedelta(hours=3)
    assert window_length(night, date(2026, 10, 25)) == timedelta(hours=5)
    # 01:30 CET plus two working hours: 02:00-03:00 does not exist, so it is 04:30 CEST.
    start = datetime(2026, 3, 29, 1, 30, tzinfo=BERLIN)
    assert utc(night.add_working_time(start, 2 * HOUR)) == datetime(2026, 3, 29, 2, 30, tzinfo=UTC)
    # 02:30 happens twice in October; an hour of work lies between the two.
    first = datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN)
    second = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN)
    assert night.working_time_between(first, second) == HOUR
    assert utc(night.add_working_time(second, HOUR)) == datetime(2026, 10, 25, 2, 30, tzinfo=UTC)
    # A working day later keeps the clock reading of the second 02:30 (CET, not CEST).
    assert utc(night.add_working_days(second, 0)) == utc(second)


def test_calendar_days_keep_the_clock_across_dst_while_hours_do_not():
    berlin = russian_calendar("Europe/Berlin")
    start = datetime(2026, 3, 28, 10, 0, tzinfo=BERLIN)  # the night before summer time
    assert berlin.due(start, 1, "days") == datetime(2026, 3, 29, 10, 0, tzinfo=BERLIN)
    assert utc(berlin.due(start, 24, "hours")) == utc(datetime(2026, 3, 29, 11, 0, tzinfo=BERLIN))


@pytest.mark.parametrize("call", [
    lambda: RU.is_working_moment(datetime(2026, 5, 12, 10)),
    lambda: RU.next_working_moment(datetime(2026, 5, 12, 10)),
    lambda: RU.add_working_time(datetime(2026, 5, 12, 10), HOUR),
    lambda: RU.add_working_hours(datetime(2026, 5, 12, 10), 1),
    lambda: RU.add_working_days(datetime(2026, 5, 12, 10), 1),
    lambda: RU.working_time_between(datetime(2026, 5, 12, 10), msk(2026, 5, 13)),
    lambda: RU.working_time_between(msk(2026, 5, 11), datetime(2026, 5, 12, 10)),
    lambda: RU.due(datetime(2026, 5, 12, 10), 1, "minutes"),
])
def test_a_naive_datetime_is_refused(call):
    with pytest.raises(ValueError, match="naive"):
        call()


def test_a_datetime_is_not_taken_for_a_day():
    with pytest.raises(TypeError, match="date"):
        RU.is_working_day(msk(2026, 5, 12, 10))


# -- building calendars: extras, settings, validation ----------------------------------------------


def test_settings_default_to_the_russian_calendar_in_moscow():
    assert calendar_from_settings(None) == RU
    assert calendar_from_settings({}) == RU
    assert RU.tz is MSK and (RU.day_start, RU.day_end) == (time(9), time(18))


def test_settings_extend_the_calendar_to_a_new_year_and_set_the_hours():
    calendar = calendar_from_settings({
        "timezone": "Asia/Yekaterinburg",
        "day_start": "08:00",
        "day_end": "17:00",
        "holidays": ["2027-01-01", "2027-01-04"],
        "workdays": ["2027-01-09"],
        "short_days": ["2026-12-30"],
        "comment": "unknown keys are ignored",
    })
    assert calendar.tz == YEKATERINBURG
    assert not calendar.is_working_day(date(2027, 1, 1))
    assert calendar.is_working_day(date(2027, 1, 9))           # a Saturday made working
    assert calendar.working_hours(date(2026, 12, 30)) == (
        datetime(2026, 12, 30, 8, tzinfo=YEKATERINBURG),
        datetime(2026, 12, 30, 16, tzinfo=YEKATERINBURG),     # short: 17:00 less an hour
    )
    assert not calendar.is_working_day(date(2026, 5, 11))      # built-in data still applies


def test_extras_correct_the_built_in_data():
    # Should a decree cancel the Dec 31 day off, listing it as a workday undoes the holiday...
    corrected = russian_calendar(extra_workdays=["2026-12-31"])
    assert corrected.is_working_day(date(2026, 12, 31))
    # ...and a new holiday cancels a built-in working (short) Saturday on that date.
    corrected = russian_calendar(extra_holidays=[date(2025, 11, 1)])
    assert not corrected.is_working_day(date(2025, 11, 1))
    # A new short day on a built-in holiday makes it a working day.
    corrected = russian_calendar(extra_short_days=["2026-05-11"])
    assert corrected.working_hours(date(2026, 5, 11)) == (msk(2026, 5, 11, 9), msk(2026, 5, 11, 17))


@pytest.mark.parametrize(("settings_row", "key"), [
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"timezone": 3}, "timezone"),
    ({"timezone": "Europe"}, "timezone"),         # a folder of the zone database
    ({"timezone": "Europe/" + "x" * 300}, "timezone"),
    ({"day_start": "9am"}, "day_start"),
    ({"day_start": "09:00+03:00"}, "day_start"),
    ({"day_end": "25:00"}, "day_end"),
    ({"day_start": "17:30"}, "day_end"),          # a short day would have no working time
    ({"holidays": "2027-01-01"}, "holidays"),
    ({"holidays": ["2027-02-30"]}, "holidays"),
    ({"workdays": [20270102]}, "workdays"),
    ({"short_days": ["2027-01-02"]}, "short_days"),  # a Saturday not listed as a workday
    ({"holidays": ["2027-01-01"], "workdays": ["2027-01-01"]}, "holidays and workdays"),
    ({"holidays": ["2027-01-01"], "short_days": ["2027-01-01"]}, "holidays and short_days"),
])
def test_bad_settings_name_the_key(settings_row, key):
    with pytest.raises(ValueError, match=key):
        calendar_from_settings(settings_row)


def test_settings_must_be_an_object():
    with pytest.raises(ValueError, match="object"):
        calendar_from_settings(["2027-01-01"])


def test_a_calendar_refuses_contradictions():
    with pytest.raises(ValueError, match="day_end"):
        WorkCalendar(day_start=time(9), day_end=time(10))
    with pytest.raises(ValueError, match="holidays and workdays"):
        WorkCalendar(holidays=frozenset({date(2027, 1, 2)}), workdays=frozenset({date(2027, 1, 2)}))
    with pytest.raises(ValueError, match="short_days"):
        WorkCalendar(short_days=frozenset({date(2027, 1, 2)}))


def test_a_calendar_is_hashable_and_compares_by_value():
    assert hash(RU) == hash(russian_calendar())
    assert WorkCalendar(holidays={date(2027, 1, 1)}) == WorkCalendar(
        holidays=frozenset({date(2027, 1, 1)}))


# -- properties ------------------------------------------------------------------------------------


def _weekends(first_year: int, last_year: int) -> frozenset[date]:
    return frozenset(day for year in range(first_year, last_year + 1) for day in days_of(year)
                     if day.weekday() >= 5)


CALENDARS = [
    RU,
    russian_calendar("Europe/Berlin"),
    russian_calendar("America/New_York", day_start="07:30", day_end="16:15"),
    # Night shifts every day of the week, so that the DST changes (at 02:00-03:00 local, on
    # Sundays) fall inside working windows.
    WorkCalendar(tz=BERLIN, day_start=time(1), day_end=time(5), workdays=_weekends(2024, 2028)),
    WorkCalendar(tz=NEW_YORK, day_start=time(0, 30), day_end=time(4),
                 workdays=_weekends(2024, 2028)),
]
ZONES = [MSK, BERLIN, NEW_YORK, UTC, YEKATERINBURG]

calendars = st.sampled_from(CALENDARS)
moments = st.datetimes(min_value=datetime(2024, 9, 1), max_value=datetime(2027, 4, 30),
                       timezones=st.sampled_from(ZONES))
durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=200))
PROPERTY = settings(deadline=None)


@PROPERTY
@given(calendars, moments, durations)
def test_working_time_between_undoes_adding_it(calendar, start, amount):
    assert calendar.working_time_between(start, calendar.add_working_time(start, amount)) == amount


@PROPERTY
@given(calendars, moments, durations, durations)
def test_adding_more_working_time_never_gives_an_earlier_moment(calendar, start, first, second):
    shorter, longer = sorted((first, second))
    assert utc(calendar.add_working_time(start, shorter)) <= utc(
        calendar.add_working_time(start, longer))


@PROPERTY
@given(calendars, moments, durations.filter(lambda amount: amount > timedelta(0)))
def test_a_positive_amount_ends_inside_working_hours_or_at_a_closing(calendar, start, amount):
    due = calendar.add_working_time(start, amount)
    assert utc(due) > utc(start)
    hours = calendar.working_hours(due.date())  # `due` is in the calendar's zone
    assert hours is not None
    assert calendar.is_working_moment(due) or utc(due) == utc(hours[1])


@PROPERTY
@given(calendars, moments)
def test_the_next_working_moment_is_the_first_one_at_or_after(calendar, moment):
    found = calendar.next_working_moment(moment)
    assert utc(found) >= utc(moment)
    assert calendar.is_working_moment(found)
    assert calendar.working_time_between(moment, found) == timedelta(0)
    assert calendar.next_working_moment(found) == found


@PROPERTY
@given(calendars, moments, moments, moments)
def test_working_time_adds_up_over_consecutive_intervals(calendar, first, second, third):
    a, b, c = sorted((first, second, third), key=utc)
    assert calendar.working_time_between(a, c) == (
        calendar.working_time_between(a, b) + calendar.working_time_between(b, c))


@PROPERTY
@given(calendars, moments, st.integers(min_value=0, max_value=40))
def test_working_days_land_on_the_nth_working_day_within_its_hours(calendar, start, days):
    due = calendar.add_working_days(start, days)
    first_day = calendar.next_working_moment(start).date()
    between = [first_day + timedelta(days=offset)
               for offset in range(1, (due.date() - first_day).days + 1)]
    assert sum(calendar.working_hours(day) is not None for day in between) == days
    opens, closes = calendar.working_hours(due.date())
    assert utc(opens) <= utc(due) <= utc(closes)


@PROPERTY
@given(calendars, moments, st.integers(min_value=0, max_value=10_000))
def test_minutes_and_hours_are_elapsed_time(calendar, start, amount):
    assert utc(calendar.due(start, amount, "minutes")) - utc(start) == timedelta(minutes=amount)
    assert utc(calendar.due(start, amount, "hours")) - utc(start) == timedelta(hours=amount)


@PROPERTY
@given(st.decimals(min_value=0, max_value=500, places=10))
def test_decimal_hours_round_to_the_microsecond(hours):
    assert hours_to_timedelta(hours) == timedelta(microseconds=round(hours * 3_600_000_000))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8)
settings_rows = st.fixed_dictionaries({}, optional={
    "timezone": st.sampled_from(["Europe/Moscow", "Asia/Omsk", "Nowhere/City", "Europe"])
    | json_values,
    "day_start": st.sampled_from(["08:00", "09:30", "17:30"]) | json_values,
    "day_end": st.sampled_from(["17:00", "18:00", "09:00"]) | json_values,
    "holidays": st.lists(st.dates().map(date.isoformat), max_size=3) | json_values,
    "workdays": st.lists(st.dates().map(date.isoformat), max_size=3) | json_values,
    "short_days": st.lists(st.dates().map(date.isoformat), max_size=3) | json_values,
})


@PROPERTY
@given(settings_rows | json_values)
def test_any_settings_row_gives_a_calendar_or_a_value_error(row):
    # The service turns ValueError into a validation problem for the admin; anything else
    # would be a server error.
    try:
        calendar = calendar_from_settings(row)
    except ValueError:
        return
    assert isinstance(calendar, WorkCalendar)
