"""Per-carrier request budget and circuit breaker, as pure functions of health and ``now``.

Quota windows are calendar hours and days in UTC of the daemon's clock (the carriers document
daily quotas resetting at 00:00 GMT). The budget of one tick is smoothed across its window so a
60-per-hour quota is spent about one a minute rather than all at the top of the hour, and never
exceeds what is left. The per-second limit is enforced in real time by the poller's pacer.
A circuit opens after ``circuit_failures`` consecutive failures, stays open for
``circuit_open_for`` (or the carrier's Retry-After), then lets one probe through (half-open).
An authentication failure pauses the carrier until the configuration changes.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta

from notifier.config import CarrierConfig, PollingSettings
from notifier.models import CarrierHealth

__all__ = [
    "advance_circuit",
    "after_auth_failure",
    "after_failure",
    "after_rate_limited",
    "after_requests",
    "after_success",
    "tick_budget",
    "unpaused",
    "window_resets_at",
]

# Carriers whose OAuth token requests count against the tracking quota (reference: USPS).
TOKEN_CALLS_COUNT = frozenset({"usps"})


def _day_key(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%d")


def _hour_key(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H")


def rolled(health: CarrierHealth, now: datetime) -> CarrierHealth:
    """Health with the quota counters of elapsed windows reset."""
    day, hour = _day_key(now), _hour_key(now)
    changes: dict[str, object] = {}
    if health.window_day != day:
        changes.update(window_day=day, day_requests=0)
    if health.window_hour != hour:
        changes.update(window_hour=hour, hour_requests=0)
    return dataclasses.replace(health, **changes) if changes else health  # type: ignore[arg-type]


def _smoothed(limit: int, used: int, window: timedelta, into: timedelta, tick: timedelta) -> int:
    fraction = min(1.0, (into + tick) / window)
    return max(0, min(limit - used, math.ceil(limit * fraction) - used))


def tick_budget(health: CarrierHealth, cfg: CarrierConfig, *, now: datetime, tick: timedelta,
                real_tick_s: float, carrier: str) -> int:
    """Requests this carrier may make in the tick starting at ``now`` (0 when blocked)."""
    if not cfg.enabled:
        return 0
    if health.circuit_state == "paused":
        # Rejected credentials: one probe per AUTH_PROBE_EVERY in case they were fixed on the
        # carrier's side; a configuration change (SIGHUP) unpauses at once.
        return 1 if health.blocked_until is not None and now >= health.blocked_until else 0
    if health.blocked_until is not None and now < health.blocked_until:
        return 0
    if health.circuit_state == "open":
        return 0
    h = rolled(health, now)
    budget = max(1, math.ceil(cfg.requests_per_second * max(real_tick_s, 1.0)))
    reserve = 1 if carrier in TOKEN_CALLS_COUNT else 0
    start_of_day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if cfg.requests_per_day:
        budget = min(budget, _smoothed(cfg.requests_per_day - reserve, h.day_requests,
                                       timedelta(days=1), now - start_of_day, tick))
    if cfg.requests_per_hour:
        start_of_hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        budget = min(budget, _smoothed(cfg.requests_per_hour - reserve, h.hour_requests,
                                       timedelta(hours=1), now - start_of_hour, tick))
    if health.circuit_state == "half_open":
        budget = min(budget, 1)  # one probe request
    return max(0, budget)


def window_resets_at(health: CarrierHealth, cfg: CarrierConfig, *, now: datetime
                     ) -> datetime | None:
    """When a spent quota window (or a block) ends; None when nothing is spent."""
    h = rolled(health, now)
    if health.blocked_until is not None and health.blocked_until > now:
        return health.blocked_until
    utc = now.astimezone(UTC)
    if cfg.requests_per_hour and h.hour_requests >= cfg.requests_per_hour - 1:
        return utc.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    if cfg.requests_per_day and h.day_requests >= cfg.requests_per_day - 1:
        return utc.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return None


def after_requests(health: CarrierHealth, count: int, *, now: datetime) -> CarrierHealth:
    h = rolled(health, now)
    return dataclasses.replace(h, day_requests=h.day_requests + count,
                               hour_requests=h.hour_requests + count)


def after_success(health: CarrierHealth, *, now: datetime) -> CarrierHealth:
    """A successful call closes the circuit, including a pause (the credentials work now)."""
    return dataclasses.replace(
        health, last_success_at=now, consecutive_failures=0, successes=health.successes + 1,
        circuit_state="closed", circuit_opened_at=None, paused_reason=None)


def after_failure(health: CarrierHealth, error: str, *, now: datetime,
                  policy: PollingSettings, retry_after: float | None = None) -> CarrierHealth:
    failures = health.consecutive_failures + 1
    opens = health.circuit_state == "half_open" or failures >= policy.circuit_failures
    wait = timedelta(seconds=retry_after) if retry_after else policy.circuit_open_for
    return dataclasses.replace(
        health, last_failure_at=now, last_error=error[:300], consecutive_failures=failures,
        failures=health.failures + 1,
        circuit_state="open" if opens else health.circuit_state,
        circuit_opened_at=(health.circuit_opened_at or now) if opens else
        health.circuit_opened_at,
        blocked_until=now + wait if opens or retry_after else health.blocked_until)


def after_rate_limited(health: CarrierHealth, retry_after: float, *, now: datetime
                       ) -> CarrierHealth:
    """A 429 is not a failure of the carrier: wait as told, keep the circuit as it is."""
    return dataclasses.replace(
        health, rate_limited=health.rate_limited + 1, last_error="HTTP 429 rate limited",
        last_failure_at=now, blocked_until=now + timedelta(seconds=max(retry_after, 1.0)))


AUTH_PROBE_EVERY = timedelta(hours=1)


def after_auth_failure(health: CarrierHealth, error: str, *, now: datetime) -> CarrierHealth:
    return dataclasses.replace(
        health, circuit_state="paused", paused_reason=error[:300], last_failure_at=now,
        last_error=error[:300], failures=health.failures + 1,
        circuit_opened_at=health.circuit_opened_at or now, blocked_until=now + AUTH_PROBE_EVERY)


def unpaused(health: CarrierHealth) -> CarrierHealth:
    """After a configuration change: forget the pause so the next tick probes the carrier."""
    return dataclasses.replace(health, circuit_state="half_open", paused_reason=None,
                               blocked_until=None)


def advance_circuit(health: CarrierHealth, *, now: datetime) -> CarrierHealth:
    """An open circuit whose wait is over becomes half-open (one probe may go)."""
    if health.circuit_state == "open" and (health.blocked_until is None
                                           or now >= health.blocked_until):
        return dataclasses.replace(health, circuit_state="half_open")
    return health
