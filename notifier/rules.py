"""Anomaly rules: pure functions from (order, shipments, events, now, policy) to findings.

Pure: no I/O, no clock, no logging. ``evaluate`` says which anomalies hold *now* and the
earliest future instant at which that answer could change without new data (``recheck_at``),
so the sweep only re-evaluates an order when data arrives or its recheck time passes.
``reconcile`` turns findings plus the stored open anomalies into opens, updates and closes.

Outage awareness (DESIGN.md, "Polling"): the carrier-side stale rules only count time we could
have seen an update. Time the carrier could not be polled (``Shipment.blind_seconds``) extends
the threshold, and the shipment is stale only once a poll *after* the threshold succeeded and
the carrier still had nothing new. Those two rules therefore change only with new data: the
caller must re-evaluate after every successful poll, including one that found no new event.

Details are built from stable facts (dates, codes, thresholds), never from "N days ago", so a
lasting anomaly's detail changes only when something meaningful does.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from carriers.model import DeliveryWindow, Status, TrackingEvent
from notifier import events as ev
from notifier.calendar import BusinessCalendar, local_midnight
from notifier.models import Anomaly, AnomalyKind, OmsStatus, Order, Shipment

if TYPE_CHECKING:  # annotations only: the rules never load configuration themselves
    from notifier import config

__all__ = ["AnomalyChanges", "Finding", "RulePolicy", "Verdict", "evaluate", "reconcile"]

_DAY = timedelta(days=1)
_DAY_SECONDS = 86400.0
# Moving shipments can go stale in transit; problem statuses raise ``exception`` instead.
_MOVING = frozenset({Status.in_transit, Status.out_for_delivery, Status.unknown})
_PROBLEM = frozenset({Status.exception, Status.failed_attempt, Status.returned})
_NEVER_SCANNED = frozenset({Status.pending, Status.expired})
_NOT_OVERDUE = frozenset({Status.delivered, Status.returned, Status.available_for_pickup})
_AWAITING_SHIPMENT = frozenset(
    {OmsStatus.received, OmsStatus.processing, OmsStatus.payment_hold, OmsStatus.backordered}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RulePolicy:
    """Thresholds for the rules. Day counts are business days when the calendar says so."""

    calendar: BusinessCalendar
    stale_processing_days: float
    payment_hold_days: float
    stale_pre_transit_days: float
    stale_in_transit_days: float
    # Keys are carrier names, compared case-insensitively.
    stale_in_transit_days_by_carrier: Mapping[str, float] = field(default_factory=dict)
    not_found_grace: timedelta
    edd_slip_min_days: int
    # Zone whose business days count for order processing (the shop's); None = the customer's.
    # No config key feeds it yet.
    order_tz: str | None = None

    @classmethod
    def from_settings(cls, s: config.AnomalySettings) -> RulePolicy:
        return cls(
            calendar=BusinessCalendar(
                business_days=s.business_days,
                weekend=frozenset(s.weekend),
                holidays=frozenset(s.holidays),
            ),
            stale_processing_days=s.stale_processing_days,
            payment_hold_days=s.payment_hold_days,
            stale_pre_transit_days=s.stale_pre_transit_days,
            stale_in_transit_days=s.stale_in_transit_days,
            stale_in_transit_days_by_carrier=MappingProxyType(
                {k.lower(): float(v) for k, v in s.stale_in_transit_days_by_carrier.items()}
            ),
            not_found_grace=s.not_found_grace,
            edd_slip_min_days=s.edd_slip_min_days,
        )

    def in_transit_days(self, carrier: str) -> float:
        """The stale-in-transit threshold for ``carrier`` (per-carrier override or default)."""
        wanted = carrier.lower()
        for name, days in self.stale_in_transit_days_by_carrier.items():
            if name.lower() == wanted:
                return days
        return self.stale_in_transit_days

    @property
    def unit(self) -> str:
        return "business days" if self.calendar.business_days else "days"


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One anomaly that holds now; (order_id, shipment_id, kind) is its identity."""

    kind: AnomalyKind
    order_id: str
    shipment_id: int | None
    detail: str
    carrier: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    findings: tuple[Finding, ...]
    # Earliest future instant at which the findings could change with no new data; None when
    # only new data (events, a successful poll, an order or dispute change) can change them.
    recheck_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AnomalyChanges:
    opened: tuple[Finding, ...] = ()
    updated: tuple[tuple[Anomaly, Finding], ...] = ()
    closed: tuple[tuple[Anomaly, str], ...] = ()  # (anomaly, close reason)


# A rule's outcome: the finding if it holds now, else the future instant at which it would.
_Outcome = tuple[Finding | None, datetime | None]
_NOTHING: _Outcome = (None, None)


def evaluate(
    order: Order,
    *,
    events: Mapping[int, Sequence[TrackingEvent]],
    open_disputes: Collection[int],
    now: datetime,
    policy: RulePolicy,
    dest_tz: Mapping[int, str] | None = None,
) -> Verdict:
    """Every anomaly that holds for ``order`` at ``now``, plus the next time-driven change.

    ``order.shipments`` are stored rows (with ids) carrying their state; ``shipment.status`` is
    authoritative (the store applies "never back from delivered unless a newer event says
    so"). ``events`` are the stored (de-duplicated) events per shipment id, in any order.
    ``dest_tz`` gives each shipment's destination zone; the customer's zone is the default.
    A delivered shipment yields at most ``delivered_disputed``; so does a cancelled order.
    """
    outcomes: list[_Outcome] = []
    cancelled = order.oms_status is OmsStatus.cancelled
    if not cancelled:
        outcomes.append(_stale_processing(order, now, policy))
    for s in order.shipments:
        if s.status is Status.delivered:
            if s.id is not None and s.id in open_disputes:
                outcomes.append((_finding(AnomalyKind.delivered_disputed, order, s,
                                          "customer reports it not received; carrier said "
                                          f"delivered {_when(s.delivered_at)}"), None))
            continue
        if cancelled:
            continue
        evs = tuple(events.get(s.id, ())) if s.id is not None else ()
        zone_name = (dest_tz or {}).get(s.id) if s.id is not None else None
        tz = _zone(zone_name or order.customer.tz)
        outcomes += [
            _stale_pre_transit(order, s, evs, tz, now, policy),
            _stale_in_transit(order, s, evs, tz, now, policy),
            _edd_slipped(order, s, policy),
            _overdue(order, s, tz, now),
            _exception(order, s, evs),
            _not_found(order, s, evs, now, policy),
        ]
    findings = tuple(f for f, _ in outcomes if f is not None)
    rechecks = [t for _, t in outcomes if t is not None]
    return Verdict(findings=findings, recheck_at=min(rechecks, default=None))


def reconcile(
    open_anomalies: Sequence[Anomaly],
    findings: Sequence[Finding],
    *,
    now: datetime,
    order: Order,
) -> AnomalyChanges:
    """Opens, updates (detail changed) and closes that bring the open anomalies of ``order``
    in line with ``findings``; one open anomaly per (order_id, shipment_id, kind).

    ``delivered_disputed`` is never closed here (ops resolve disputes); ``edd_slipped`` stays
    open (kept in history) until the shipment is delivered or otherwise finished. A second
    open row for one identity, which only an upstream bug creates, is closed as "duplicate".
    Anomalies of other orders are ignored. ``now`` is accepted for symmetry; the caller
    stamps the changes with it.
    """
    del now  # the caller stamps opened/last_seen/resolved; nothing here depends on the time
    wanted: dict[tuple[str, int | None, AnomalyKind], Finding] = {}
    for f in findings:
        wanted.setdefault((f.order_id, f.shipment_id, f.kind), f)
    current: dict[tuple[str, int | None, AnomalyKind], Anomaly] = {}
    closed: list[tuple[Anomaly, str]] = []
    for a in open_anomalies:
        if not a.is_open or a.order_id != order.id:
            continue
        key = (a.order_id, a.shipment_id, a.kind)
        if key in current:
            if a.kind is not AnomalyKind.delivered_disputed:
                closed.append((a, "duplicate"))
            continue
        current[key] = a
    opened = tuple(f for key, f in wanted.items() if key not in current)
    updated = tuple(
        (current[key], f)
        for key, f in wanted.items()
        if key in current and current[key].detail != f.detail
    )
    for key, a in current.items():
        if key not in wanted and (reason := _close_reason(a, order)) is not None:
            closed.append((a, reason))
    return AnomalyChanges(opened=opened, updated=updated, closed=tuple(closed))


# --- rules ---------------------------------------------------------------------------------


def _stale_processing(order: Order, now: datetime, policy: RulePolicy) -> _Outcome:
    if order.shipments or order.oms_status not in _AWAITING_SHIPMENT:
        return _NOTHING
    tz = _zone(policy.order_tz or order.customer.tz)
    cal, n, unit = policy.calendar, policy.stale_processing_days, policy.unit
    placed = order.placed_at or order.updated_at
    status = order.oms_status.value
    candidates: list[tuple[datetime, str]] = []
    if order.oms_status is OmsStatus.backordered and order.expected_ship_date is not None:
        candidates.append((
            local_midnight(order.expected_ship_date + _DAY, tz),
            f"backordered past its expected ship date {order.expected_ship_date.isoformat()}",
        ))
    elif placed is not None:
        why = " with no expected ship date" if order.oms_status is OmsStatus.backordered else ""
        candidates.append((
            cal.add_days(placed, n, tz),
            f"order placed {_when(placed)} still {status}{why}: "
            f"no shipment after {_num(n)} {unit}",
        ))
    held = order.updated_at or order.placed_at
    if order.oms_status is OmsStatus.payment_hold and held is not None:
        candidates.append((
            cal.add_days(held, policy.payment_hold_days, tz),
            f"payment on hold since {_when(held)}: "
            f"longer than {_num(policy.payment_hold_days)} {unit}",
        ))
    passed = [c for c in candidates if now >= c[0]]
    if passed:
        detail = min(passed)[1]
        return _finding(AnomalyKind.stale_processing, order, None, detail), None
    return None, min((c[0] for c in candidates), default=None)


def _stale_pre_transit(order: Order, s: Shipment, evs: Sequence[TrackingEvent], tz: ZoneInfo,
                       now: datetime, policy: RulePolicy) -> _Outcome:
    if s.status is not Status.info_received:
        return _NOTHING
    # Since the label existed: the earliest thing we know of (its events or our registration).
    ours = [t for t in (s.created_at, s.last_event_at) if t is not None]
    if not evs and not ours:
        return _NOTHING
    shown = min([e.at for e in evs] + ours)
    since = min([ev.latest_possible(e) for e in evs] + ours)
    n = policy.stale_pre_transit_days
    detail = f"label created {_when(shown)}: no carrier scan after {_num(n)} {policy.unit}"
    return _observed_stale(AnomalyKind.stale_pre_transit, order, s, since, n, tz, now, policy,
                           detail)


def _stale_in_transit(order: Order, s: Shipment, evs: Sequence[TrackingEvent], tz: ZoneInfo,
                      now: datetime, policy: RulePolicy) -> _Outcome:
    if s.status not in _MOVING:
        return _NOTHING
    # Latest carrier event by instant (array order is not trusted); an offset-less time counts
    # at the latest instant it could be, so a guessed zone never makes a parcel stale early.
    ours = [s.last_event_at] if s.last_event_at is not None else []
    if not evs and not ours and s.created_at is not None:
        ours = [s.created_at]
    if not evs and not ours:
        return _NOTHING
    shown = max([e.at for e in evs] + ours)
    since = max([ev.latest_possible(e) for e in evs] + ours)
    n = policy.in_transit_days(s.carrier)
    detail = f"no carrier event since {_when(shown)}: threshold {_num(n)} {policy.unit}"
    return _observed_stale(AnomalyKind.stale_in_transit, order, s, since, n, tz, now, policy,
                           detail)


def _observed_stale(kind: AnomalyKind, order: Order, s: Shipment, since: datetime, days: float,
                    tz: ZoneInfo, now: datetime, policy: RulePolicy, detail: str) -> _Outcome:
    """Stale only on evidence: a successful poll after the (outage-extended) threshold.

    Blind time is stored as a total, not as intervals, so it is counted as if it fell on
    business days: the conservative reading, which can delay an alert by the weekend part of
    an outage but never raises one early.
    """
    deadline = policy.calendar.add_days(since, days + s.blind_seconds / _DAY_SECONDS, tz)
    seen = s.last_success_at
    if seen is not None and now >= deadline and seen >= deadline:
        return _finding(kind, order, s, detail), None
    return _NOTHING


def _edd_slipped(order: Order, s: Shipment, policy: RulePolicy) -> _Outcome:
    if s.current_edd is None or s.status.is_terminal:
        return _NOTHING
    if order.promised_date is not None:
        baseline, source = order.promised_date, "promised date"
    elif s.first_edd is not None:
        baseline, source = s.first_edd.end, "first carrier estimate"
    else:
        return _NOTHING
    # Windows compare their ends: a window whose start moved but whose last day did not has
    # not slipped. Dates are whole days, so "less than a day" is "the same end date".
    slip = (s.current_edd.end - baseline).days
    if slip < max(1, policy.edd_slip_min_days):
        return _NOTHING
    detail = (f"estimated delivery {_window(s.current_edd)} is {slip} day(s) later than the "
              f"{source} {baseline.isoformat()}")
    return _finding(AnomalyKind.edd_slipped, order, s, detail), None


def _overdue(order: Order, s: Shipment, tz: ZoneInfo, now: datetime) -> _Outcome:
    if s.status in _NOT_OVERDUE:
        return _NOTHING
    edd = s.current_edd or s.first_edd
    last_day = edd.end if edd is not None else order.promised_date
    if last_day is None:
        return _NOTHING
    # The EDD is a local date at the destination: it has passed when that day has ended there
    # (never "midnight UTC", the classic off-by-a-day; shippo-php-client #29).
    deadline = local_midnight(last_day + _DAY, tz)
    if now < deadline:
        return None, deadline
    detail = f"expected by {last_day.isoformat()} ({tz.key}); not delivered"
    return _finding(AnomalyKind.overdue, order, s, detail), None


def _exception(order: Order, s: Shipment, evs: Sequence[TrackingEvent]) -> _Outcome:
    if s.status not in _PROBLEM:
        return _NOTHING
    matching = [e for e in ev.sorted_events(evs) if e.status is s.status]
    latest = matching[-1] if matching else None
    reason = s.exception_reason or (latest.exception_reason if latest is not None else None)
    detail = s.status.value + (f" ({reason.value})" if reason is not None else "")
    if latest is not None:
        # Identity parts plus the stored text: an edited re-send of the same scan is not new.
        detail += f" at {_when(latest.at)} [{latest.code}]"
        text = latest.description
    else:
        text = s.status_detail
    if text:
        detail += f": {text}"
    return _finding(AnomalyKind.exception, order, s, detail), None


def _not_found(order: Order, s: Shipment, evs: Sequence[TrackingEvent], now: datetime,
               policy: RulePolicy) -> _Outcome:
    # Needs one successful poll: if we never reached the carrier it is our outage, not theirs.
    if (s.status not in _NEVER_SCANNED or evs or s.last_event_at is not None
            or s.created_at is None or s.last_success_at is None):
        return _NOTHING
    deadline = s.created_at + policy.not_found_grace + timedelta(seconds=s.blind_seconds)
    if now < deadline:
        return None, deadline
    detail = f"carrier has not found the number since {_when(s.created_at)}"
    return _finding(AnomalyKind.not_found, order, s, detail), None


# --- reconcile -----------------------------------------------------------------------------

_CLOSE_REASON: dict[AnomalyKind, str] = {
    AnomalyKind.stale_processing: "shipment appeared",
    AnomalyKind.stale_pre_transit: "first scan",
    AnomalyKind.stale_in_transit: "new carrier event",
    AnomalyKind.exception: "new carrier event",
    AnomalyKind.not_found: "found",
    AnomalyKind.overdue: "new estimated delivery date",
}


def _close_reason(a: Anomaly, order: Order) -> str | None:
    """Why an open anomaly no longer holds, or None when it must stay open."""
    if a.kind is AnomalyKind.delivered_disputed:
        return None
    cancelled = order.oms_status is OmsStatus.cancelled
    if a.shipment_id is None:
        if cancelled:
            return "order cancelled"
        return "shipment appeared" if order.shipments else "order status changed"
    shipment = next((s for s in order.shipments if s.id == a.shipment_id), None)
    if shipment is None:
        return "shipment removed"
    if cancelled:
        return "order cancelled"
    status = shipment.status
    if status is Status.delivered:
        return "delivered"
    if a.kind is AnomalyKind.edd_slipped:
        # Kept in history while the parcel travels; a finished journey closes it.
        return status.value if status.is_terminal else None
    if status is Status.returned:
        return "returned"
    if a.kind is AnomalyKind.overdue and status is Status.available_for_pickup:
        return "available for pickup"
    if a.kind is AnomalyKind.stale_pre_transit and status is Status.info_received:
        return "new carrier event"
    return _CLOSE_REASON[a.kind]


# --- helpers -------------------------------------------------------------------------------


def _finding(kind: AnomalyKind, order: Order, s: Shipment | None, detail: str) -> Finding:
    return Finding(kind=kind, order_id=order.id, shipment_id=s.id if s is not None else None,
                   detail=detail, carrier=s.carrier if s is not None else None)


def _zone(name: str) -> ZoneInfo:
    # One bad zone name on one customer must not stop the sweep for everyone; UTC is shown in
    # the details (``tz.key``), so the fallback stays visible.
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _when(instant: datetime | None) -> str:
    if instant is None:
        return "at an unknown time"
    return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _num(x: float) -> str:
    return f"{x:g}"


def _window(w: DeliveryWindow) -> str:
    return w.end.isoformat() if w.start == w.end else f"{w.start.isoformat()}..{w.end.isoformat()}"

