"""The one injected clock. Nothing else in notifier reads the wall clock.

``SystemClock`` is real UTC time. ``SimulatedClock`` runs at N x real speed from a chosen start
and can be advanced by hand; two processes given the same (start, speed, anchor) agree on the
simulated time, which is how the daemon and the carrier sandbox share one simulated world.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "SimulatedClock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of this clock's time."""
        ...

    @property
    def speed(self) -> float:
        """Clock seconds per real second (1 for the system clock)."""
        ...


class SystemClock:
    speed = 1.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class SimulatedClock:
    """Simulated UTC time: ``start + (wall - anchor) * speed + advanced``.

    ``speed=0`` freezes the clock so only :meth:`advance` moves it (unit tests). ``anchor`` is a
    Unix timestamp (real seconds); sharing it lets separate processes agree on "now".
    """

    def __init__(self, start: datetime, *, speed: float = 1.0, anchor: float | None = None,
                 wall: Callable[[], float] = time.time) -> None:
        if start.tzinfo is None:
            raise ValueError("simulated clock start must be timezone-aware")
        self.start = start.astimezone(UTC)
        self._speed = float(speed)
        self._wall = wall
        self.anchor = wall() if anchor is None else anchor
        self._advanced = timedelta()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        elapsed = (self._wall() - self.anchor) * self._speed
        return self.start + timedelta(seconds=elapsed) + self._advanced

    def advance(self, delta: timedelta) -> None:
        """Jump forward (or back, for tests of clock skew) by ``delta``."""
        self._advanced += delta

    def set(self, when: datetime) -> None:
        """Move the clock so that ``now()`` returns ``when`` at this moment."""
        self._advanced += when.astimezone(UTC) - self.now()

    async def sleep(self, seconds: float) -> None:
        if self._speed <= 0:
            await asyncio.sleep(0)
            return
        await asyncio.sleep(max(0.0, seconds / self._speed))
