"""Adaptive poll schedule and quota-aware selection of which due shipments to poll.

Pure: no I/O, no clock. ``next_poll_at`` picks a shipment's next poll from its status and how
long nothing has changed (techTRACK-style back-off, reset by a new event), a few confirmation
polls after delivery, and expiry after a maximum age. ``select_within_budget`` spends a
carrier's request budget where an update is most likely and most useful, never exceeds it,
and lets a long-waiting shipment climb until it wins (ha-ups 1.0.1 starved one code).
``defer_time`` spreads the shipments left over so they do not all come back at once.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING

from carriers.model import Status
from notifier.models import Shipment

if TYPE_CHECKING:  # annotations only: the schedule never loads configuration itself
    from notifier.config import PollingSettings

__all__ = [
    "at_or_past_edd",
    "base_interval",
    "defer_time",
    "next_poll_at",
    "poll_priority",
    "select_within_budget",
]

# An EDD is a local date at the destination, which this module does not know. A day "has begun
# somewhere" 14 hours before it begins in UTC (UTC+14 is the earliest zone): polling a few hours
# early near delivery costs little, missing the delivery day costs a lot.
_EARLIEST_ZONE = timedelta(hours=14)

# Priority: a base per situation plus a starvation term that grows with time since the last
# poll attempt. With these figures a pending shipment left waiting about 20 hours outranks an
# out-for-delivery one polled just now, so nothing waits forever behind busy neighbours.
_STARVATION_PER_HOUR = 5.0
_OPEN_EXCEPTION_BONUS = 50.0
_PAST_EDD_BASE = 80.0
_STATUS_BASE: dict[Status, float] = {
    Status.out_for_delivery: 100.0,
    Status.failed_attempt: 60.0,
    Status.exception: 60.0,
    Status.available_for_pickup: 15.0,
    Status.in_transit: 20.0,
    Status.unknown: 20.0,
    Status.info_received: 5.0,
    Status.pending: 5.0,
    Status.delivered: 2.0,
    Status.returned: 0.0,
    Status.expired: 0.0,
}
# Statuses for which "at or past EDD" means "poll more often": the parcel should arrive any
# moment (problem states included: a failed attempt near the EDD is often retried that day).
# A parcel waiting at a pickup point has arrived; out for delivery is already the shortest.
_EDD_SENSITIVE = frozenset(
    {Status.pending, Status.info_received, Status.in_transit, Status.unknown, Status.exception,
     Status.failed_attempt}
)


def next_poll_at(
    shipment: Shipment, *, now: datetime, policy: PollingSettings, changed: bool, rand: float
) -> tuple[datetime | None, Status | None]:
    """When to poll ``shipment`` next, after a poll at ``now``; (None, ...) means stop polling.

    ``shipment`` is the stored state after this poll's result was applied, with
    ``unchanged_polls`` already counted (0 after a change, +1 after an unchanged poll).
    ``changed`` (a new event) resets the back-off. ``rand`` in [0, 1) picks the jitter.

    Returns (next instant, status override): ``(None, Status.expired)`` when the shipment
    outlived ``max_age`` undelivered (stop and mark it expired); ``(None, None)`` to stop after
    the delivery confirmations, or for returned/expired shipments.
    """
    status = shipment.status
    if status in (Status.returned, Status.expired):
        return None, None
    expires_at = (shipment.created_at + policy.max_age
                  if shipment.created_at is not None else None)
    unchanged = 0 if changed else max(0, shipment.unchanged_polls)
    if status is Status.delivered:
        # A few polls after delivery catch carrier corrections; a correction (changed=True)
        # restarts the count.
        if unchanged >= policy.delivered_confirmations:
            return None, None
        if expires_at is not None and now >= expires_at:
            return None, None
        return now + _jittered(policy.delivered_confirmation_interval, policy, rand), None
    if expires_at is not None and now >= expires_at:
        return None, Status.expired
    base = base_interval(shipment, now=now, policy=policy)
    interval = _backed_off(base, unchanged, policy)
    nxt = now + _jittered(interval, policy, rand)
    if expires_at is not None and nxt > expires_at:
        nxt = expires_at  # come back exactly when it expires, so expiry is not late
    return nxt, None


def base_interval(shipment: Shipment, *, now: datetime, policy: PollingSettings) -> timedelta:
    """The un-backed-off interval for the shipment's status (shorter at or past its EDD)."""
    by_status: dict[Status, timedelta] = {
        Status.pending: policy.pending,
        Status.info_received: policy.info_received,
        Status.in_transit: policy.in_transit,
        Status.out_for_delivery: policy.out_for_delivery,
        Status.exception: policy.exception,
        Status.failed_attempt: policy.failed_attempt,
        Status.available_for_pickup: policy.available_for_pickup,
        Status.unknown: policy.unknown,
    }
    interval = by_status.get(shipment.status, policy.unknown)
    if shipment.status in _EDD_SENSITIVE and at_or_past_edd(shipment, now=now):
        interval = min(interval, policy.at_or_past_edd)
    return interval


def at_or_past_edd(shipment: Shipment, *, now: datetime) -> bool:
    """True once the first day of the shipment's EDD may have begun at its destination."""
    edd = shipment.current_edd or shipment.first_edd
    if edd is None:
        return False
    first_day = datetime.combine(edd.start, time(0), tzinfo=UTC) - _EARLIEST_ZONE
    return now >= first_day


def poll_priority(shipment: Shipment, *, now: datetime, has_open_exception: bool) -> float:
    """Higher polls first: out for delivery, at/past EDD, open exceptions, then the rest; every
    hour since the last poll attempt adds a little so no shipment starves."""
    status = shipment.status
    base = _STATUS_BASE.get(status, _STATUS_BASE[Status.unknown])
    if status in _EDD_SENSITIVE and at_or_past_edd(shipment, now=now):
        base = max(base, _PAST_EDD_BASE)
    if has_open_exception:
        base += _OPEN_EXCEPTION_BONUS
    # Measured from the last attempt, not from next_poll_at: deferring a shipment moves its
    # next_poll_at, which must not reset how long it has been waiting.
    waited_since = shipment.last_poll_at or shipment.created_at
    waited = (now - waited_since).total_seconds() / 3600 if waited_since is not None else 0.0
    return base + _STARVATION_PER_HOUR * max(0.0, waited)


def select_within_budget(
    due: Sequence[Shipment],
    *,
    budget: int,
    now: datetime,
    open_exceptions: Collection[int],
    batch_size: int,
) -> tuple[list[Shipment], list[Shipment]]:
    """Split ``due`` into (poll now, deferred), both highest priority first.

    ``budget`` counts requests. One request carries up to ``batch_size`` numbers of one
    carrier, so shipments are packed per carrier and a lower-priority shipment may still ride
    in a batch already paid for. The requests needed for the chosen shipments never exceed
    ``budget``; every element of ``due`` lands in exactly one of the two lists. The index of
    a shipment in the deferred list is its ``rank`` for :func:`defer_time`.
    """
    size = max(1, batch_size)

    def rank_key(s: Shipment) -> tuple[float, datetime, int]:
        urgent = s.id is not None and s.id in open_exceptions
        return (-poll_priority(s, now=now, has_open_exception=urgent), s.next_poll_at or now,
                s.id if s.id is not None else -1)

    ranked = sorted(due, key=rank_key)
    requests_left = max(0, budget)
    in_batch: dict[str, int] = {}  # carrier -> shipments in its last open batch
    chosen: list[Shipment] = []
    deferred: list[Shipment] = []
    for s in ranked:
        carrier = s.carrier.lower()
        filled = in_batch.get(carrier, 0)
        if 0 < filled < size:
            in_batch[carrier] = filled + 1
            chosen.append(s)
        elif requests_left > 0:
            requests_left -= 1
            in_batch[carrier] = 1
            chosen.append(s)
        else:
            deferred.append(s)
    return chosen, deferred


def defer_time(
    now: datetime, *, window_resets_at: datetime | None, spread: timedelta, rank: int, total: int
) -> datetime:
    """Where deferred shipment number ``rank`` (0 = most urgent) of ``total`` goes.

    From when the budget window resets (or ``now`` if unknown or past), the deferred
    shipments are spread evenly over ``spread`` in rank order, so the most urgent come back
    first and they do not all hit the new window in the same instant.
    """
    start = window_resets_at if window_resets_at is not None and window_resets_at > now else now
    if total <= 1 or spread <= timedelta(0):
        return start
    position = min(max(rank, 0), total - 1)
    return start + spread * (position / total)


def _backed_off(base: timedelta, unchanged: int, policy: PollingSettings) -> timedelta:
    """``base * backoff_factor ** unchanged``, capped at max_interval (never below ``base``)."""
    if base <= timedelta(0):
        return base
    cap = max(policy.max_interval, base)
    factor = max(1.0, policy.backoff_factor)
    # Compared in logs: a long-unchanged shipment would overflow factor ** unchanged.
    if unchanged * math.log(factor) >= math.log(cap / base):
        return cap
    return base * factor**unchanged


def _jittered(interval: timedelta, policy: PollingSettings, rand: float) -> timedelta:
    """``interval`` scaled by a factor in [1 - jitter, 1 + jitter) chosen by ``rand``."""
    r = rand if math.isfinite(rand) else 0.5
    r = min(max(r, 0.0), 1.0)
    jitter = min(max(policy.jitter, 0.0), 0.9)  # never a zero or negative interval
    return interval * (1.0 + jitter * (2.0 * r - 1.0))
