"""Retry policies for notification sends: a short in-process tenacity loop, then the outbox.

Two horizons (protocols.md 4.5, RFC 5321 4.5.4.1):

- :class:`RetryPolicy.attempts` builds a tenacity ``AsyncRetrying`` for connection blips: only
  ``TransientError`` is retried, a few attempts, exponential backoff with jitter, and a
  server's ``retry_after`` honoured (capped, and when it is longer than the in-process budget
  the loop stops at once so the row is rescheduled instead of holding a worker).
- :meth:`RetryPolicy.reschedule_after` is the outbox's long horizon: exponential backoff with
  jitter from one minute up to ``max_backoff`` per row attempt, never sooner than the
  server's ``retry_after``, so an hour-long outage costs a handful of attempts and survives
  restarts (the time is stored in the row).

Tests build a policy with ``wait=tenacity.wait_none()`` so nothing sleeps.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from notifier.errors import DeliveryError, TransientError

if TYPE_CHECKING:
    from notifier.config import NotificationSettings

__all__ = ["RetryPolicy", "wait_retry_after"]

logger = logging.getLogger(__name__)


class wait_retry_after(wait_base):
    """Wait what the server asked for (``DeliveryError.retry_after``, capped at ``cap``), else
    what ``fallback`` says."""

    def __init__(self, fallback: wait_base, cap: float) -> None:
        self.fallback = fallback
        self.cap = cap

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        if outcome is not None and outcome.failed:
            exc = outcome.exception()
            if isinstance(exc, DeliveryError) and exc.retry_after is not None:
                return float(min(max(0.0, exc.retry_after), self.cap))
        return float(self.fallback(retry_state))


class _stop_on_long_retry_after(stop_base):
    """Stop the in-process loop when the server asks for more than ``budget`` seconds: the
    outbox reschedules the row instead of holding a worker that long."""

    def __init__(self, budget: float) -> None:
        self.budget = budget

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        if outcome is None or not outcome.failed:
            return False
        exc = outcome.exception()
        return (isinstance(exc, DeliveryError) and exc.retry_after is not None
                and exc.retry_after > self.budget)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How sends are retried. ``attempts`` per in-process loop (including the first);
    ``max_wait`` caps one in-process sleep; ``wait`` replaces the backoff (tests:
    ``wait_none()``); ``sleep`` replaces ``asyncio.sleep``."""

    attempts: int = 3
    max_wait: float = 30.0
    first_backoff: timedelta = timedelta(minutes=1)
    max_backoff: timedelta = timedelta(minutes=30)
    jitter: float = 0.2
    wait: wait_base | None = None
    sleep: Callable[[float], Awaitable[None]] | None = None
    rng: random.Random = field(default_factory=random.Random)

    @classmethod
    def from_settings(cls, settings: NotificationSettings, **overrides: object) -> RetryPolicy:
        values: dict[str, object] = {"attempts": max(1, settings.retry_attempts),
                                     "max_wait": settings.retry_max_wait.total_seconds()}
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    def retrying(self) -> AsyncRetrying:
        """A fresh tenacity loop: retries ``TransientError`` only, re-raises the last error."""
        fallback = self.wait or wait_exponential_jitter(initial=1, max=self.max_wait, jitter=1)
        kwargs: dict[str, object] = {}
        if self.sleep is not None:
            kwargs["sleep"] = self.sleep
        return AsyncRetrying(
            stop=stop_after_attempt(max(1, self.attempts))
            | _stop_on_long_retry_after(self.max_wait),
            wait=wait_retry_after(fallback, self.max_wait),
            retry=retry_if_exception_type(TransientError),
            before_sleep=before_sleep_log(logger, logging.WARNING),
            reraise=True,
            **kwargs,  # type: ignore[arg-type]
        )

    def reschedule_after(self, row_attempts: int, retry_after: float | None = None) -> timedelta:
        """Delay before the row's next try after ``row_attempts`` failed rounds (>= 1):
        ``first_backoff * 2**(n-1)`` capped at ``max_backoff``, +/- ``jitter``, and never
        less than ``retry_after``."""
        n = max(1, row_attempts)
        base = self.first_backoff.total_seconds() * (2.0 ** min(n - 1, 30))
        base = min(base, self.max_backoff.total_seconds())
        seconds = base * (1.0 + self.jitter * (2.0 * self.rng.random() - 1.0))
        if retry_after is not None:
            seconds = max(seconds, min(retry_after, self.max_backoff.total_seconds() * 2))
        return timedelta(seconds=max(1.0, seconds))
