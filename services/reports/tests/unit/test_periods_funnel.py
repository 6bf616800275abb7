"""Periods, time buckets, the funnel ladder, conversion and percentiles (pure)."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from services.reports.domain.funnel import (
    GAMMA,
    LADDER,
    bucket_value,
    conversion,
    newly_reached,
    percentile,
    percentile_of_counts,
    rank,
    stay_bucket,
    win_rate,
)
from services.reports.domain.periods import (
    PeriodError,
    bucket_end,
    bucket_start,
    bucket_starts,
    local_day,
    resolve_period,
)

TODAY = date(2026, 11, 27)   # a Friday


@pytest.mark.parametrize("bucket, day, start, end", [
    ("day", date(2026, 2, 28), date(2026, 2, 28), date(2026, 2, 28)),
    ("week", date(2026, 11, 27), date(2026, 11, 23), date(2026, 11, 29)),
    ("week", date(2026, 1, 1), date(2025, 12, 29), date(2026, 1, 4)),
    ("month", date(2028, 2, 10), date(2028, 2, 1), date(2028, 2, 29)),
    ("quarter", date(2026, 8, 31), date(2026, 7, 1), date(2026, 9, 30)),
    ("year", date(2026, 6, 15), date(2026, 1, 1), date(2026, 12, 31)),
])
def test_buckets(bucket, day, start, end):
    assert bucket_start(day, bucket) == start
    assert bucket_end(start, bucket) == end


def test_bucket_starts_cover_the_period_including_partial_ends():
    assert bucket_starts(date(2026, 1, 30), date(2026, 3, 2), "month") == [
        date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)]
    assert len(bucket_starts(date(2026, 1, 1), date(2026, 12, 31), "day")) == 365
    assert bucket_starts(date(2026, 11, 25), date(2026, 11, 25), "week") == [date(2026, 11, 23)]


def test_resolve_period():
    assert resolve_period("month", None, None, None, TODAY) == (date(2026, 11, 1),
                                                                 date(2026, 11, 30))
    assert resolve_period("week", date(2026, 3, 4), None, None, TODAY) == (date(2026, 3, 2),
                                                                            date(2026, 3, 8))
    assert resolve_period("custom", None, date(2022, 1, 1), date(2026, 12, 31), TODAY) == (
        date(2022, 1, 1), date(2026, 12, 31))
    with pytest.raises(PeriodError) as missing:
        resolve_period("custom", None, date(2026, 1, 1), None, TODAY)
    assert missing.value.field == "date_to"
    with pytest.raises(PeriodError) as backwards:
        resolve_period("custom", None, date(2026, 2, 1), date(2026, 1, 1), TODAY)
    assert backwards.value.field == "date_to"
    with pytest.raises(PeriodError) as unknown:
        resolve_period("decade", None, None, None, TODAY)
    assert unknown.value.field == "period"


def test_local_day_is_the_business_day():
    moscow = ZoneInfo("Europe/Moscow")
    assert local_day(datetime(2026, 11, 26, 21, 30, tzinfo=UTC), moscow) == \
        date(2026, 11, 27)
    assert local_day(datetime(2026, 11, 26, 20, 59, tzinfo=UTC), moscow) == \
        date(2026, 11, 26)


def test_newly_reached_counts_skipped_stages_once():
    assert newly_reached(0, "new") == ["new"]
    assert newly_reached(1, "qualified") == ["qualified"]
    # ERP documents jump a deal from proposal to invoiced: it passed order_confirmed too.
    assert newly_reached(3, "invoiced") == ["order_confirmed", "invoiced"]
    assert newly_reached(5, "order_confirmed") == []          # moved back: nothing new
    assert newly_reached(5, "invoiced") == []                 # and forward again: not twice
    assert newly_reached(4, "lost") == []
    assert newly_reached(2, "custom_stage") == []
    assert rank("closed_won") == len(LADDER)


def test_conversion_and_win_rate():
    reached = {"new": 10, "qualified": 8, "proposal": 4, "order_confirmed": 2, "invoiced": 2,
               "partially_shipped": 1, "shipped": 1, "closed_won": 1, "lost": 3}
    rows = {row["stage"]: row for row in conversion(reached)}
    assert rows["new"] == {"stage": "new", "deals": 10, "from_previous": None, "from_first": 1.0}
    assert rows["qualified"]["from_previous"] == 0.8
    assert rows["proposal"]["from_previous"] == 0.5
    assert rows["order_confirmed"]["from_first"] == 0.2
    assert rows["lost"]["deals"] == 3
    assert win_rate(reached) == 0.25
    assert win_rate({"new": 3}) is None
    empty = {row["stage"]: row for row in conversion({})}
    assert empty["qualified"]["from_previous"] is None


def test_percentile_interpolates_like_percentile_cont():
    values = [1, 2, 3, 4]
    assert percentile(values, 0.5) == 2.5
    assert percentile(values, 0.75) == 3.25
    assert percentile(values, 1) == 4
    assert percentile([7], 0.75) == 7
    assert percentile([], 0.5) is None
    assert percentile([10, 0, 5], 0.5) == 5
    with pytest.raises(ValueError):
        percentile(values, 1.5)


def test_stay_buckets_are_within_their_error():
    for seconds in (1, 59, 3600, 86_400 * 3.3, 86_400 * 400):
        value = bucket_value(stay_bucket(seconds))
        assert abs(value - seconds) / seconds <= GAMMA ** 0.5 - 1 + 1e-9
    assert stay_bucket(0) == stay_bucket(1) == 0
    assert stay_bucket(3600) < stay_bucket(7200)


def test_percentile_of_counts_equals_the_expanded_percentile():
    values = [5, 1, 1, 3, 9, 9, 9, 2]
    pairs = [(1, 2), (2, 1), (3, 1), (5, 1), (9, 3), (4, 0)]
    for fraction in (0, 0.25, 0.5, 0.75, 0.9, 1):
        assert percentile_of_counts(pairs, fraction) == percentile(values, fraction)
    assert percentile_of_counts([], 0.5) is None
    assert percentile_of_counts([(7.5, 1)], 0.75) == 7.5
