"""Business-day arithmetic: weekends, holidays, partial days, DST days, and add/elapsed inverse."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.calendar import BusinessCalendar, local_midnight

NY = ZoneInfo("America/New_York")
SANTIAGO = ZoneInfo("America/Santiago")  # 2024-09-08 has no local midnight (DST at 24:00)
BIZ = BusinessCalendar(business_days=True, weekend=frozenset({5, 6}), holidays=frozenset())
# 2025-03-03 is a Monday; Monday 2025-03-10 is a holiday in this calendar.
HOLIDAY = BusinessCalendar(weekend=frozenset({5, 6}), holidays=frozenset({date(2025, 3, 10)}))
CALENDAR_DAYS = BusinessCalendar(business_days=False, weekend=frozenset({5, 6}))
NO_WEEKEND = BusinessCalendar(weekend=frozenset())


def ny(day: int, hour: int = 0, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=NY)


@pytest.mark.parametrize(
    ("cal", "start", "end", "tz", "expected"),
    [
        pytest.param(BIZ, ny(3, 9), ny(3, 21), NY, 0.5, id="same-weekday-half-day"),
        pytest.param(BIZ, ny(3, 0), ny(4, 0), NY, 1.0, id="one-whole-weekday"),
        pytest.param(BIZ, ny(7, 12), ny(10, 12), NY, 1.0, id="fri-noon-to-mon-noon-skips-weekend"),
        pytest.param(BIZ, ny(8, 10), ny(9, 20), NY, 0.0, id="inside-weekend-counts-nothing"),
        pytest.param(BIZ, ny(7, 12), ny(17, 12), NY, 6.0, id="ten-calendar-days-six-business"),
        pytest.param(HOLIDAY, ny(7, 12), ny(11, 12), NY, 1.0, id="holiday-monday-skipped"),
        pytest.param(HOLIDAY, ny(10, 1), ny(10, 23), NY, 0.0, id="inside-holiday-counts-nothing"),
        pytest.param(CALENDAR_DAYS, ny(7, 12), ny(10, 12), NY, 3.0, id="business-days-off"),
        pytest.param(BIZ, ny(4, 12), ny(3, 12), NY, 0.0, id="end-before-start-is-zero"),
        pytest.param(BIZ, ny(4, 12), ny(4, 12), NY, 0.0, id="empty-interval"),
        # 2025-03-09 (Sunday) is 23 hours long in New York; a whole day still counts 1.
        pytest.param(NO_WEEKEND, ny(9, 0), ny(10, 0), NY, 1.0, id="dst-spring-day-counts-one"),
        pytest.param(NO_WEEKEND, ny(9, 0), ny(9, 12), NY, 11 / 23, id="dst-day-is-pro-rata"),
        pytest.param(NO_WEEKEND, datetime(2024, 9, 8, 4, tzinfo=UTC),
                     datetime(2024, 9, 9, 3, tzinfo=UTC), SANTIAGO, 1.0,
                     id="day-without-local-midnight"),
        # The zone decides the date: Friday 22:00 New York is already Saturday in UTC.
        pytest.param(BIZ, ny(7, 22), ny(7, 23), NY, 1 / 24, id="zone-decides-weekday"),
        pytest.param(BIZ, ny(7, 22), ny(7, 23), ZoneInfo("UTC"), 0.0, id="same-span-in-utc"),
    ],
)
def test_elapsed_days(cal: BusinessCalendar, start: datetime, end: datetime, tz: ZoneInfo,
                      expected: float) -> None:
    assert cal.elapsed_days(start, end, tz) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    ("cal", "start", "days", "expected"),
    [
        pytest.param(BIZ, ny(7, 15), 3, ny(12, 15), id="fri-plus-3-is-wed"),
        pytest.param(BIZ, ny(3, 10), 2, ny(5, 10), id="mon-plus-2-is-wed"),
        # Reaching the count exactly at a Friday's end gives that end, not Monday.
        pytest.param(BIZ, ny(7, 12), 0.5, ny(8, 0), id="ends-at-friday-midnight"),
        pytest.param(BIZ, ny(8, 10), 0.25, ny(10, 6), id="start-in-weekend-counts-from-monday"),
        pytest.param(HOLIDAY, ny(7, 15), 1, ny(11, 15), id="skips-weekend-and-holiday"),
        pytest.param(CALENDAR_DAYS, ny(7, 15), 3, ny(10, 15), id="calendar-days"),
        pytest.param(BIZ, ny(7, 15), 0, ny(7, 15), id="zero-days-is-start"),
        pytest.param(BIZ, ny(7, 15), -2, ny(7, 15), id="negative-days-is-start"),
    ],
)
def test_add_days(cal: BusinessCalendar, start: datetime, days: float, expected: datetime) -> None:
    assert cal.add_days(start, days, NY) == expected


def test_is_business_day() -> None:
    assert HOLIDAY.is_business_day(date(2025, 3, 7))
    assert not HOLIDAY.is_business_day(date(2025, 3, 8))
    assert not HOLIDAY.is_business_day(date(2025, 3, 10))
    assert CALENDAR_DAYS.is_business_day(date(2025, 3, 8))


def test_local_midnight_tiles_a_day_without_midnight() -> None:
    days = [date(2024, 9, 7), date(2024, 9, 8), date(2024, 9, 9)]
    bounds = [local_midnight(d, SANTIAGO) for d in days]
    assert bounds[0] < bounds[1] < bounds[2]
    assert bounds[2] - bounds[1] == timedelta(hours=23)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"weekend": frozenset({7})}, "0..6", id="weekday-out-of-range"),
        pytest.param({"weekend": frozenset(range(7))}, "no business day", id="all-week-weekend"),
    ],
)
def test_invalid_calendar(kwargs: dict[str, frozenset[int]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BusinessCalendar(**kwargs)  # type: ignore[arg-type]


def test_all_week_weekend_is_fine_when_counting_calendar_days() -> None:
    cal = BusinessCalendar(business_days=False, weekend=frozenset(range(7)))
    assert cal.add_days(ny(3), 1, NY) == ny(4)


def test_rejects_naive_and_non_finite() -> None:
    naive = datetime(2025, 3, 3, 12)
    with pytest.raises(ValueError, match="naive"):
        BIZ.elapsed_days(naive, ny(4), NY)
    with pytest.raises(ValueError, match="naive"):
        BIZ.add_days(naive, 1, NY)
    with pytest.raises(ValueError, match="finite"):
        BIZ.add_days(ny(3), float("inf"), NY)


ZONES = st.sampled_from(["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata",
                         "America/Santiago", "Pacific/Kiritimati"]).map(ZoneInfo)
INSTANTS = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2026, 12, 31),
                        timezones=st.just(UTC))
CALENDARS = st.builds(
    BusinessCalendar,
    business_days=st.booleans(),
    weekend=st.frozensets(st.integers(0, 6), max_size=3),
    holidays=st.frozensets(st.dates(date(2024, 1, 1), date(2027, 3, 1)), max_size=20),
)


@settings(max_examples=150, deadline=None)
@given(cal=CALENDARS, start=INSTANTS, days=st.floats(0.001, 20), tz=ZONES)
def test_add_days_inverts_elapsed_days(cal: BusinessCalendar, start: datetime, days: float,
                                       tz: ZoneInfo) -> None:
    end = cal.add_days(start, days, tz)
    assert end > start
    assert cal.elapsed_days(start, end, tz) == pytest.approx(days, abs=1e-6)
    # The earliest such instant: a second before, the count is not reached.
    assert cal.elapsed_days(start, end - timedelta(seconds=1), tz) < days


@settings(max_examples=100, deadline=None)
@given(cal=CALENDARS, a=INSTANTS, b=INSTANTS, c=INSTANTS, tz=ZONES)
def test_elapsed_days_is_additive_and_bounded(cal: BusinessCalendar, a: datetime, b: datetime,
                                              c: datetime, tz: ZoneInfo) -> None:
    a, b, c = sorted((a, b, c))
    whole = cal.elapsed_days(a, c, tz)
    assert whole == pytest.approx(cal.elapsed_days(a, b, tz) + cal.elapsed_days(b, c, tz),
                                  abs=1e-6)
    # Never more than calendar days (+1 for a day shortened by DST).
    assert whole <= (c - a).total_seconds() / 86400 + 1
