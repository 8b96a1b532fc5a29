"""Per-client token buckets for the public status lookup (``GET /v1/track``).

Each client key (the peer address, or the ``X-Forwarded-For`` address uvicorn accepts from a
trusted local proxy) gets a bucket of ``rate_per_minute`` tokens refilled continuously; a request
takes one token or is refused with the seconds until one is back (``Retry-After``). Buckets run
on real monotonic time, not the simulated clock: they limit real request rates. The table is
bounded: when it is full, the least recently seen clients are forgotten (they come back with a
full bucket, which only ever errs towards letting a request through).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RateLimiter"]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """``hit(key, rate_per_minute)`` -> 0.0 when allowed, else seconds to wait (> 0)."""

    def __init__(self, *, max_clients: int = 10_000,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.max_clients = max_clients
        self._monotonic = monotonic
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def hit(self, key: str, rate_per_minute: int) -> float:
        if rate_per_minute <= 0:  # 0 disables the limit
            return 0.0
        capacity = float(rate_per_minute)
        per_second = rate_per_minute / 60.0
        now = self._monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(tokens=capacity, at=now)
            self._buckets[key] = bucket
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            # A reload may lower the rate: never keep more tokens than the new capacity.
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.at) * per_second)
            bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / per_second

    @staticmethod
    def retry_after_header(wait: float) -> str:
        """Whole seconds, rounded up (RFC 9110 delay-seconds), at least 1."""
        return str(max(1, math.ceil(wait)))

    def __len__(self) -> int:
        return len(self._buckets)
