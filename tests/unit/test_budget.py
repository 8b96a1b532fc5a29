"""Quota budget and circuit breaker: never over the quota, smoothed, honest about blocks."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier import budget
from notifier.config import CarrierConfig, PollingSettings
from notifier.models import CarrierHealth

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
TICK = timedelta(minutes=1)
USPS = CarrierConfig(base_url="x", requests_per_second=100, requests_per_hour=60)
DHL = CarrierConfig(base_url="x", requests_per_second=100, requests_per_day=250)
POLICY = PollingSettings()


def health(**kw: object) -> CarrierHealth:
    return CarrierHealth(carrier="usps", **kw)  # type: ignore[arg-type]


def spend_a_window(cfg: CarrierConfig, carrier: str, start: datetime, ticks: int,
                   demand: int) -> tuple[int, dict[str, int]]:
    """Simulate ``ticks`` ticks each wanting ``demand`` requests; returns (total, per hour)."""
    h = CarrierHealth(carrier=carrier)
    total, per_hour = 0, {}
    for i in range(ticks):
        now = start + TICK * i
        b = min(demand, budget.tick_budget(h, cfg, now=now, tick=TICK, real_tick_s=60,
                                           carrier=carrier))
        h = budget.after_requests(h, b, now=now)
        total += b
        key = now.strftime("%d%H")
        per_hour[key] = per_hour.get(key, 0) + b
    return total, per_hour


def test_hourly_quota_is_spread_across_the_hour_and_never_exceeded() -> None:
    _, per_hour = spend_a_window(USPS, "usps", NOW, 180, demand=1000)
    assert max(per_hour.values()) <= 60
    # One request is kept back each hour for a USPS token call, which counts against quota.
    assert all(v == 59 for v in per_hour.values())
    # Smoothed: the first ten minutes of an hour get about a sixth, not everything.
    first, _ = spend_a_window(USPS, "usps", NOW, 10, demand=1000)
    assert 9 <= first <= 11


def test_daily_quota_resets_at_midnight_utc() -> None:
    late = datetime(2026, 11, 2, 23, 30, tzinfo=UTC)
    _, per_hour = spend_a_window(DHL, "dhl", late, 120, demand=1000)
    day1 = sum(v for k, v in per_hour.items() if k.startswith("02"))
    day2 = sum(v for k, v in per_hour.items() if k.startswith("03"))
    assert day1 <= 250 and day2 <= 250 and day2 > 0


@settings(max_examples=60, deadline=None)
@given(demands=st.lists(st.integers(0, 500), min_size=1, max_size=200),
       per_hour=st.integers(1, 120), per_day=st.integers(0, 3000))
def test_never_exceeds_any_window(demands: list[int], per_hour: int, per_day: int) -> None:
    cfg = CarrierConfig(base_url="x", requests_per_second=50, requests_per_hour=per_hour,
                        requests_per_day=per_day)
    h = CarrierHealth(carrier="ups")
    hours: dict[str, int] = {}
    days: dict[str, int] = {}
    for i, demand in enumerate(demands):
        now = NOW + timedelta(minutes=7) * i
        b = min(demand, budget.tick_budget(h, cfg, now=now, tick=timedelta(minutes=7),
                                           real_tick_s=420, carrier="ups"))
        h = budget.after_requests(h, b, now=now)
        hours[now.strftime("%d%H")] = hours.get(now.strftime("%d%H"), 0) + b
        days[now.strftime("%d")] = days.get(now.strftime("%d"), 0) + b
    assert max(hours.values()) <= per_hour
    if per_day:
        assert max(days.values()) <= per_day


def test_per_second_rate_caps_one_tick() -> None:
    cfg = CarrierConfig(base_url="x", requests_per_second=2)
    assert budget.tick_budget(health(), cfg, now=NOW, tick=TICK, real_tick_s=30,
                              carrier="ups") == 60


@pytest.mark.parametrize(("state", "expected"), [
    pytest.param({"blocked_until": NOW + timedelta(seconds=5)}, 0, id="retry-after-blocks"),
    pytest.param({"blocked_until": NOW - timedelta(seconds=5)}, 60, id="block-over"),
    pytest.param({"circuit_state": "open", "blocked_until": NOW + timedelta(minutes=1)}, 0,
                 id="circuit-open"),
    pytest.param({"circuit_state": "half_open"}, 1, id="half-open-probe"),
    pytest.param({"circuit_state": "paused", "blocked_until": NOW + timedelta(minutes=5)}, 0,
                 id="auth-paused"),
    pytest.param({"circuit_state": "paused", "blocked_until": NOW - timedelta(minutes=5)}, 1,
                 id="auth-paused-hourly-probe"),
])
def test_blocks(state: dict[str, object], expected: int) -> None:
    cfg = CarrierConfig(base_url="x", requests_per_second=1)
    assert budget.tick_budget(health(**state), cfg, now=NOW, tick=TICK, real_tick_s=60,
                              carrier="ups") == expected


def test_circuit_opens_after_repeated_failures_then_probes_then_closes() -> None:
    h = health()
    for _ in range(POLICY.circuit_failures - 1):
        h = budget.after_failure(h, "HTTP 503", now=NOW, policy=POLICY)
        assert h.circuit_state == "closed"
    h = budget.after_failure(h, "HTTP 503", now=NOW, policy=POLICY)
    assert h.circuit_state == "open" and h.circuit_opened_at == NOW
    assert budget.advance_circuit(h, now=NOW + timedelta(minutes=1)).circuit_state == "open"
    probing = budget.advance_circuit(h, now=NOW + POLICY.circuit_open_for)
    assert probing.circuit_state == "half_open"
    failed_probe = budget.after_failure(probing, "HTTP 503", now=NOW, policy=POLICY)
    assert failed_probe.circuit_state == "open"
    closed = budget.after_success(probing, now=NOW)
    assert (closed.circuit_state, closed.consecutive_failures) == ("closed", 0)


def test_rate_limit_is_not_a_failure() -> None:
    h = budget.after_rate_limited(health(), 30, now=NOW)
    assert (h.rate_limited, h.consecutive_failures, h.circuit_state) == (1, 0, "closed")
    assert h.blocked_until == NOW + timedelta(seconds=30)


def test_auth_failure_pauses_until_unpaused_or_success() -> None:
    h = budget.after_auth_failure(health(), "HTTP 401", now=NOW)
    assert h.circuit_state == "paused" and h.paused_reason == "HTTP 401"
    assert budget.unpaused(h).circuit_state == "half_open"
    assert budget.after_success(h, now=NOW).circuit_state == "closed"


def test_windows_roll_over() -> None:
    h = budget.after_requests(health(), 10, now=NOW)
    later = budget.after_requests(h, 1, now=NOW + timedelta(hours=1))
    assert (later.hour_requests, later.day_requests) == (1, 11)
    assert dataclasses.replace(later).window_day == "2026-11-02"
