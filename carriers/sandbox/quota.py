"""Per-carrier request quotas for the sandbox, enforced the way each carrier documents them.

Windows and clocks (deliberately mixed):

* per second and per 10 seconds use the REAL monotonic clock: these are protocol-level
  throttles a client meets in real time whatever the simulated clock does;
* per hour and per day use the SIMULATED clock (``now()``): calendar hours and days in UTC,
  so a daily quota resets at 00:00 GMT as DHL and FedEx document. In the demo a simulated day
  passes in seconds, so a real-time daily window would never reset during a run.

Each window is fixed, not sliding: the 1 s and 10 s windows open at the first request after the
previous window closed and refuse everything past the limit "for the rest of the window" (the
FedEx wording); hour/day windows are the calendar hour/day. A refused request is not counted
against the quota (it is an overrun, counted by the caller). ``Refusal.retry_after_s`` is the
time until the window that refused reopens, measured on that window's own clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["Quota", "QuotaMeter", "Refusal"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Quota:
    """Limits for one carrier; ``None`` means not enforced.

    ``count_token_calls``: whether OAuth token requests count against the quota. ``None`` is
    the carrier's documented default (USPS: yes, integrators report OAuth calls are included;
    others: no, FedEx throttles its token endpoint separately per IP).
    """

    per_second: int | None = None
    per_10s: int | None = None
    per_hour: int | None = None
    per_day: int | None = None
    count_token_calls: bool | None = None

    def counts_tokens(self, carrier: str) -> bool:
        if self.count_token_calls is not None:
            return self.count_token_calls
        return carrier == "usps"


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    window: str            # "second" | "10s" | "hour" | "day"
    retry_after_s: float   # real seconds for second/10s, simulated seconds for hour/day

    @property
    def daily(self) -> bool:
        return self.window == "day"


class _RealWindow:
    def __init__(self, length_s: float) -> None:
        self.length = length_s
        self.opened: float | None = None
        self.count = 0

    def roll(self, t: float) -> None:
        if self.opened is None or t - self.opened >= self.length:
            self.opened, self.count = t, 0

    def remaining(self, t: float) -> float:
        return 0.0 if self.opened is None else max(0.0, self.opened + self.length - t)


class QuotaMeter:
    """Admission control for one carrier's requests. Not thread-safe: one event loop uses it."""

    def __init__(self, quota: Quota, *, monotonic: Callable[[], float],
                 now: Callable[[], datetime]) -> None:
        self.quota = quota
        self._monotonic = monotonic
        self._now = now
        self._second = _RealWindow(1.0)
        self._ten = _RealWindow(10.0)
        self._hour_key: str | None = None
        self._hour_count = 0
        self._day_key: str | None = None
        self._day_count = 0

    def admit(self) -> Refusal | None:
        """Count one request, or say which window refuses it (and then count nothing)."""
        q = self.quota
        t = self._monotonic()
        now = self._now().astimezone(UTC)
        self._second.roll(t)
        self._ten.roll(t)
        hour_key, day_key = now.strftime("%Y-%m-%dT%H"), now.strftime("%Y-%m-%d")
        if hour_key != self._hour_key:
            self._hour_key, self._hour_count = hour_key, 0
        if day_key != self._day_key:
            self._day_key, self._day_count = day_key, 0
        # The longest window first: a daily refusal is the one the client must hear about.
        if q.per_day is not None and self._day_count >= q.per_day:
            return Refusal(window="day", retry_after_s=_until_next(now, days=1))
        if q.per_hour is not None and self._hour_count >= q.per_hour:
            return Refusal(window="hour", retry_after_s=_until_next(now, hours=1))
        if q.per_10s is not None and self._ten.count >= q.per_10s:
            return Refusal(window="10s", retry_after_s=self._ten.remaining(t))
        if q.per_second is not None and self._second.count >= q.per_second:
            return Refusal(window="second", retry_after_s=self._second.remaining(t))
        self._second.count += 1
        self._ten.count += 1
        self._hour_count += 1
        self._day_count += 1
        return None

    def usage(self) -> dict[str, int]:
        return {"second": self._second.count, "10s": self._ten.count,
                "hour": self._hour_count, "day": self._day_count}


def _until_next(now: datetime, *, days: int = 0, hours: int = 0) -> float:
    if days:
        boundary = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=days)
    else:
        boundary = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=hours)
    return max(0.0, (boundary - now).total_seconds())
