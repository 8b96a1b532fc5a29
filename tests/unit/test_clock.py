"""The simulated clock: N x speed, manual advance, and agreement between processes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from notifier.clock import SimulatedClock

START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def test_runs_at_speed_and_advances_by_hand() -> None:
    wall = [1000.0]
    clock = SimulatedClock(START, speed=8640, wall=lambda: wall[0])
    assert clock.now() == START
    wall[0] += 10
    assert clock.now() == START + timedelta(days=1)
    clock.advance(timedelta(hours=2))
    assert clock.now() == START + timedelta(days=1, hours=2)


def test_two_clocks_with_one_anchor_agree() -> None:
    wall = [5000.0]
    a = SimulatedClock(START, speed=100, anchor=4000.0, wall=lambda: wall[0])
    b = SimulatedClock(START, speed=100, anchor=4000.0, wall=lambda: wall[0])
    assert a.now() == b.now() == START + timedelta(seconds=100_000)


def test_frozen_clock_only_moves_by_hand() -> None:
    wall = [0.0]
    clock = SimulatedClock(START, speed=0, wall=lambda: wall[0])
    wall[0] += 1e6
    assert clock.now() == START
    clock.set(START + timedelta(days=3))
    assert clock.now() == START + timedelta(days=3)
