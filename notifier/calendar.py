"""Business-day arithmetic in a given time zone: how much countable time lies between two instants.

Pure: standard library only, no clock. A *business day* is a local calendar date that is neither
a weekend day nor a holiday; one whole business day counts 1.0 whatever its length in hours (23 or
25 on daylight-saving days), and part of a day counts pro rata, so "3 business days" from Friday
15:00 is Wednesday 15:00 in that zone. With ``business_days`` off every 24 hours count one day.
Weekend and holiday time never counts, which is what keeps a Friday-evening label from turning
"stale" on Monday morning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["BusinessCalendar", "local_midnight"]

_DAY_SECONDS = 86400.0
_ONE_DAY = timedelta(days=1)


def local_midnight(d: date, tz: ZoneInfo) -> datetime:
    """The UTC instant at which local date ``d`` begins in ``tz``.

    Where midnight does not exist (a DST jump at 00:00) fold=0 resolves it to the transition
    instant, so consecutive days still tile the time line without gaps or overlaps.
    """
    return datetime.combine(d, time(0), tzinfo=tz).astimezone(UTC)


def _require_aware(*instants: datetime) -> None:
    for instant in instants:
        if instant.tzinfo is None or instant.utcoffset() is None:
            raise ValueError(f"naive datetime {instant.isoformat()}: instants must be aware")


@dataclass(frozen=True, slots=True, kw_only=True)
class BusinessCalendar:
    """Which local dates count; weekdays are numbered Monday = 0 as in ``date.weekday()``."""

    business_days: bool = True
    weekend: frozenset[int] = frozenset({5, 6})
    holidays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        if any(not 0 <= d <= 6 for d in self.weekend):
            raise ValueError(f"weekend days must be 0..6 (Monday = 0), got {sorted(self.weekend)}")
        if self.business_days and len(self.weekend) >= 7:
            # Nothing would ever count and add_days() could never finish.
            raise ValueError("a week with no business day cannot count business days")

    def is_business_day(self, d: date) -> bool:
        """True when local date ``d`` counts (always True with business days off)."""
        if not self.business_days:
            return True
        return d.weekday() not in self.weekend and d not in self.holidays

    def elapsed_days(self, start: datetime, end: datetime, tz: ZoneInfo) -> float:
        """Countable days between two instants; 0.0 when ``end <= start``.

        Business days are judged on local dates in ``tz``; with business days off this is
        plain elapsed time in units of 24 hours.
        """
        _require_aware(start, end)
        if end <= start:
            return 0.0
        if not self.business_days:
            return (end - start).total_seconds() / _DAY_SECONDS
        total = 0.0
        day = start.astimezone(tz).date()
        lo = local_midnight(day, tz)
        while lo < end:
            hi = local_midnight(day + _ONE_DAY, tz)
            if self.is_business_day(day):
                a, b = max(lo, start), min(hi, end)
                total += (b - a).total_seconds() / (hi - lo).total_seconds()
            day, lo = day + _ONE_DAY, hi
        return total

    def add_days(self, start: datetime, days: float, tz: ZoneInfo) -> datetime:
        """The earliest instant ``t`` with ``elapsed_days(start, t, tz) == days``.

        Used for deadlines: a rule fires when ``now >= add_days(base, threshold, tz)``. When the
        count is reached exactly at the end of a business day, that end is returned (not the
        start of the next business day). ``days <= 0`` returns ``start``.
        """
        _require_aware(start)
        if not math.isfinite(days):
            raise ValueError(f"days must be finite, got {days!r}")
        if days <= 0:
            return start
        if not self.business_days:
            return start + timedelta(seconds=days * _DAY_SECONDS)
        remaining = days
        day = start.astimezone(tz).date()
        lo = local_midnight(day, tz)
        while True:  # ends: every week has a business day and holidays are finite
            hi = local_midnight(day + _ONE_DAY, tz)
            if self.is_business_day(day):
                a = max(lo, start)
                length = (hi - lo).total_seconds()
                available = (hi - a).total_seconds() / length
                if remaining <= available:
                    return a + timedelta(seconds=remaining * length)
                remaining -= available
            day, lo = day + _ONE_DAY, hi
