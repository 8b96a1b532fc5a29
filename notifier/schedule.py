"""Adaptive poll schedule and quota-aware selection of which due shipments to poll.

Pure: no I/O, no clock. ``next_poll_at`` picks a shipment's next poll from its status and how
long nothing has changed (techTRACK-style back-off, reset by a new event), a few confirmation
polls after delivery, and expiry after a maximum age. Near delivery nothing backs off: out for
delivery, and the delivery window (from the morning of the EDD's first day, local time at the
destination, to the end of the day after its last day) are polled at their base interval
during delivery hours, and a quiet shipment's next poll never overshoots the start of the
next delivery morning. ``select_within_budget`` spends a carrier's request budget where an
update is most likely and most useful, never exceeds it, and lets a long-waiting shipment
climb until it wins (ha-ups 1.0.1 starved one code). ``likely_news`` says where a spare
request (one the quota would otherwise lose) is worth spending ahead of schedule.
``defer_time`` spreads the shipments left over so they do not all come back at once.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from carriers.model import Status
from notifier.models import Shipment

if TYPE_CHECKING:  # annotations only: the schedule never loads configuration itself
    from notifier.config import PollingSettings

__all__ = [
    "LocalDay",
    "at_or_past_edd",
    "base_interval",
    "defer_time",
    "delivery_window",
    "in_delivery_hours",
    "likely_news",
    "local_day",
    "next_poll_at",
    "poll_priority",
    "select_within_budget",
]

# An EDD is a local date at the destination. Without the destination's zone, a day "has begun
# somewhere" 14 hours before it begins in UTC (UTC+14 is the earliest zone) and has ended
# everywhere 12 hours after it ends in UTC (UTC-12 is the latest): polling a few hours early
# near delivery costs little, missing the delivery day costs a lot.
_EARLIEST_ZONE = timedelta(hours=14)
_LATEST_ZONE = timedelta(hours=12)
# How far a delivery window is searched for its next delivery morning (EDD windows are days).
_MAX_WINDOW_DAYS = 14
# Out for delivery or a problem scan older than this is no longer "news is likely" (a parcel
# stuck in that status is polled on its schedule, not with every spare request).
_NEWS_MAX_AGE = timedelta(days=1)

# Priority: a base per situation plus a term that grows with time since the last poll
# attempt, faster where news is likely (``likely_news``): under a tight quota the shipments
# near delivery take turns by how long each has waited (the base gives out for delivery a
# few minutes' edge), and everything else waits its turn behind them. With these figures a
# pending shipment left waiting about 22 hours outranks an out-for-delivery one polled half
# an hour ago, so nothing waits forever behind busy neighbours.
_STARVATION_PER_HOUR = 5.0
_NEWS_PER_HOUR = 30.0
# A delivered shipment's confirmation polls (a correction is rare) yield to everything else
# under a tight quota; they still come, only later.
_SETTLED_PER_HOUR = 1.0
_OPEN_EXCEPTION_BONUS = 50.0
_PAST_EDD_BASE = 95.0   # in the delivery window, during delivery hours
_LATE_BASE = 30.0       # past the delivery window: late, worth a little more than in transit
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
_PROBLEMS = frozenset({Status.exception, Status.failed_attempt})


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalDay:
    """Where a parcel is delivered and when deliveries happen there.

    ``tz`` is the destination's zone (the customer's zone stands in for it); deliveries and
    out-for-delivery scans happen between ``start_hour`` and ``end_hour`` local time. Outside
    those hours nothing near delivery is polled eagerly.
    """

    tz: tzinfo
    start_hour: int = 6
    end_hour: int = 21

    def in_hours(self, now: datetime) -> bool:
        hour = now.astimezone(self.tz).hour
        return self.start_hour <= hour < self.end_hour

    def morning(self, day: date) -> datetime:
        """The instant delivery hours begin on local ``day``."""
        hour = min(max(self.start_hour, 0), 23)
        return datetime.combine(day, time(hour), tzinfo=self.tz).astimezone(UTC)

    def next_morning(self, now: datetime) -> datetime:
        """The next start of delivery hours strictly after ``now``."""
        today = now.astimezone(self.tz).date()
        first = self.morning(today)
        return first if first > now else self.morning(today + timedelta(days=1))


# The default zone of an order whose shop never said: not a real destination, so the schedule
# falls back to "the EDD day may have begun anywhere" rather than UTC delivery hours.
_UNKNOWN_ZONES = frozenset({"", "UTC"})


@lru_cache(maxsize=1024)
def local_day(tz: str, *, start_hour: int = 6, end_hour: int = 21) -> LocalDay | None:
    """The delivery day in the IANA zone ``tz``; None when the zone is unknown or invalid."""
    if tz in _UNKNOWN_ZONES:
        return None
    try:
        return LocalDay(tz=ZoneInfo(tz), start_hour=start_hour, end_hour=end_hour)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def next_poll_at(
    shipment: Shipment, *, now: datetime, policy: PollingSettings, changed: bool, rand: float,
    local: LocalDay | None = None,
) -> tuple[datetime | None, Status | None]:
    """When to poll ``shipment`` next, after a poll at ``now``; (None, ...) means stop polling.

    ``shipment`` is the stored state after this poll's result was applied, with
    ``unchanged_polls`` already counted (0 after a change, +1 after an unchanged poll).
    ``changed`` (a new event) resets the back-off. ``rand`` in [0, 1) picks the jitter.
    ``local`` is the destination's zone and delivery hours, when known.

    Out for delivery (a fresh scan), and an EDD-sensitive status inside its delivery window,
    are not backed off during delivery hours (news is expected any moment); everything else
    backs off while nothing changes. A backed-off interval never runs past the next
    delivery morning inside the window (or, out for delivery, the next morning at all): the
    first poll of the delivery day happens when deliveries start (or ``min_interval`` after
    this poll, if later).

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
    base = base_interval(shipment, now=now, policy=policy, local=local)
    interval = base if _eager(shipment, now, local) else _backed_off(base, unchanged, policy)
    nxt = now + _jittered(interval, policy, rand)
    wake = _next_wake(shipment, now, local)
    if wake is not None and nxt > wake:
        # Not sooner than min_interval, though: a poll just before the delivery morning
        # must not be followed by another a tick later.
        nxt = max(wake, min(nxt, now + policy.min_interval))
    if expires_at is not None and nxt > expires_at:
        nxt = expires_at  # come back exactly when it expires, so expiry is not late
    return nxt, None


def base_interval(shipment: Shipment, *, now: datetime, policy: PollingSettings,
                  local: LocalDay | None = None) -> timedelta:
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
    if shipment.status in _EDD_SENSITIVE and at_or_past_edd(shipment, now=now, local=local):
        interval = min(interval, policy.at_or_past_edd)
    return interval


def delivery_window(shipment: Shipment, *, local: LocalDay | None = None
                    ) -> tuple[datetime, datetime] | None:
    """[opens, closes) of the shipment's delivery window, or None without an EDD.

    It opens when delivery hours begin on the EDD's first day and closes at the end of the
    day after its last day (a late scan, a parcel a day late), local time at the destination.
    Without the destination's zone it opens when that first day may have begun anywhere and
    closes when the day after the last may have ended everywhere.
    """
    edd = shipment.current_edd or shipment.first_edd
    if edd is None:
        return None
    after = edd.end + timedelta(days=2)
    if local is None:
        return (datetime.combine(edd.start, time(0), tzinfo=UTC) - _EARLIEST_ZONE,
                datetime.combine(after, time(0), tzinfo=UTC) + _LATEST_ZONE)
    return (local.morning(edd.start),
            datetime.combine(after, time(0), tzinfo=local.tz).astimezone(UTC))


def at_or_past_edd(shipment: Shipment, *, now: datetime, local: LocalDay | None = None) -> bool:
    """True once the shipment's delivery window has opened (see :func:`delivery_window`)."""
    window = delivery_window(shipment, local=local)
    return window is not None and now >= window[0]


def in_delivery_hours(now: datetime, local: LocalDay | None) -> bool:
    """Whether deliveries may happen at ``now`` at the destination (always, zone unknown)."""
    return local is None or local.in_hours(now)


def _in_window(shipment: Shipment, now: datetime, local: LocalDay | None) -> bool:
    window = delivery_window(shipment, local=local)
    return window is not None and window[0] <= now < window[1]


def _eager(shipment: Shipment, now: datetime, local: LocalDay | None) -> bool:
    """Near delivery, during delivery hours: polled at the base interval, never backed off.
    Out for delivery only while the scan is fresh: a parcel stuck in that status backs off."""
    if not in_delivery_hours(now, local):
        return False
    if shipment.status is Status.out_for_delivery:
        return _fresh(shipment, now)
    return shipment.status in _EDD_SENSITIVE and _in_window(shipment, now, local)


def _fresh(shipment: Shipment, now: datetime) -> bool:
    seen = shipment.last_event_at or shipment.last_change_at
    return seen is None or now - seen <= _NEWS_MAX_AGE


def _next_wake(shipment: Shipment, now: datetime, local: LocalDay | None) -> datetime | None:
    """The next instant after ``now`` at which the shipment turns eager, if any soon."""
    if shipment.status is Status.out_for_delivery:
        return local.next_morning(now) if local is not None else None
    if shipment.status not in _EDD_SENSITIVE:
        return None
    window = delivery_window(shipment, local=local)
    if window is None or now >= window[1]:
        return None
    opens, closes = window
    if local is None or now < opens:
        return opens if now < opens else None
    wake = local.next_morning(now)
    return wake if wake < closes else None


def likely_news(shipment: Shipment, *, now: datetime, local: LocalDay | None = None) -> bool:
    """Worth a spare request before its time: a delivery or a problem's outcome is expected.

    Out for delivery or a problem scan of the last day, or an EDD-sensitive status inside its
    delivery window, during delivery hours at the destination.
    """
    if not in_delivery_hours(now, local):
        return False
    status = shipment.status
    if status is Status.out_for_delivery or status in _PROBLEMS:
        return _fresh(shipment, now)
    return status in _EDD_SENSITIVE and _in_window(shipment, now, local)


def poll_priority(shipment: Shipment, *, now: datetime, has_open_exception: bool,
                  local: LocalDay | None = None) -> float:
    """Higher polls first: out for delivery, the delivery window, problems, in transit, then
    the rest; every hour since the last poll attempt adds a little so no shipment starves.

    Out of delivery hours at the destination, out for delivery and the delivery window count
    as in transit: nothing is delivered at night.
    """
    status = shipment.status
    base = _STATUS_BASE.get(status, _STATUS_BASE[Status.unknown])
    hours = in_delivery_hours(now, local)
    if status is Status.out_for_delivery and not hours:
        base = _STATUS_BASE[Status.in_transit]
    if status in _EDD_SENSITIVE:
        if hours and _in_window(shipment, now, local):
            base = max(base, _PAST_EDD_BASE)
        elif at_or_past_edd(shipment, now=now, local=local):
            base = max(base, _LATE_BASE)
    if has_open_exception:
        base += _OPEN_EXCEPTION_BONUS
    # Measured from the last attempt, not from next_poll_at: deferring a shipment moves its
    # next_poll_at, which must not reset how long it has been waiting.
    waited_since = shipment.last_poll_at or shipment.created_at
    waited = (now - waited_since).total_seconds() / 3600 if waited_since is not None else 0.0
    if status is Status.delivered:
        slope = _SETTLED_PER_HOUR
    elif likely_news(shipment, now=now, local=local):
        slope = _NEWS_PER_HOUR
    else:
        slope = _STARVATION_PER_HOUR
    return base + slope * max(0.0, waited)


def select_within_budget(
    due: Sequence[Shipment],
    *,
    budget: int,
    now: datetime,
    open_exceptions: Collection[int],
    batch_size: int,
    local: Mapping[str, LocalDay] | None = None,
) -> tuple[list[Shipment], list[Shipment]]:
    """Split ``due`` into (poll now, deferred), both highest priority first.

    ``budget`` counts requests. One request carries up to ``batch_size`` numbers of one
    carrier, so shipments are packed per carrier and a lower-priority shipment may still ride
    in a batch already paid for. The requests needed for the chosen shipments never exceed
    ``budget``; every element of ``due`` lands in exactly one of the two lists. The index of
    a shipment in the deferred list is its ``rank`` for :func:`defer_time`. ``local`` maps
    an order id to its destination's zone and delivery hours, where known.
    """
    size = max(1, batch_size)

    def rank_key(s: Shipment) -> tuple[float, datetime, int]:
        urgent = s.id is not None and s.id in open_exceptions
        where = local.get(s.order_id) if local is not None else None
        return (-poll_priority(s, now=now, has_open_exception=urgent, local=where),
                s.next_poll_at or now,
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
