"""Applying what a carrier said to what we knew: the pure step of the poll tick.

``apply_result`` takes a stored shipment, the identities of its stored events, a fresh
``TrackingResult`` and ``now``; it returns the new shipment state, the events to insert and the
domain events to emit. ``apply_failure`` does the same for a poll that could not be made.
No I/O; the poller writes the outcome in one transaction per tick.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from carriers.model import DeliveryWindow, Status, TrackingEvent, TrackingResult
from notifier.config import PollingSettings
from notifier.domain import DomainEvent, EventKind
from notifier.events import new_events
from notifier.models import Shipment
from notifier.schedule import next_poll_at

__all__ = ["PollOutcome", "apply_deferral", "apply_failure", "apply_result"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PollOutcome:
    shipment: Shipment
    new_events: tuple[TrackingEvent, ...] = ()
    domain_events: tuple[DomainEvent, ...] = ()
    changed: bool = False


def _iso(d: date | None) -> str | None:
    return None if d is None else d.isoformat()


def _instant(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat().replace("+00:00", "Z")


def _blind_since_scheduled(shipment: Shipment, now: datetime) -> float:
    """How late this poll is against its schedule: time we could not see the carrier
    (circuit open, quota spent, errors) and that must not count towards staleness."""
    if shipment.next_poll_at is None:
        return 0.0
    return max(0.0, (now - shipment.next_poll_at).total_seconds())


def apply_result(shipment: Shipment, result: TrackingResult, *, known: Collection[str],
                 now: datetime, policy: PollingSettings, rand: float,
                 promised: date | None = None) -> PollOutcome:
    """The shipment after a successful poll that returned ``result``.

    Status never moves back from delivered/returned unless an event newer than the stored
    last event says so; a "not found" answer for a number that already had events keeps the
    stored state (carriers purge and glitch). Only events not already ``known`` (by identity:
    instant + raw code + location, never the free text) are new.
    """
    fresh = tuple(new_events(known, result.events))
    changed = bool(fresh)
    last_event_at = max([e.at for e in fresh] + ([shipment.last_event_at]
                                                 if shipment.last_event_at else []),
                        default=None)
    status = shipment.status
    if result.not_found:
        pass  # pending stays pending; a number that had events keeps its state
    elif status in (Status.delivered, Status.returned) and not (
            fresh and shipment.last_event_at is not None
            and max(e.at for e in fresh) > shipment.last_event_at):
        pass  # a terminal status stays unless a newer event says otherwise
    else:
        status = result.status
    domain: list[DomainEvent] = []
    if status is not shipment.status:
        newest = max(fresh, key=lambda e: e.at) if fresh else None
        first_info = (shipment.status is Status.pending and shipment.last_event_at is None
                      and status is not Status.pending)
        domain.append(DomainEvent(
            kind=EventKind.shipment_status_changed, order_id=shipment.order_id,
            shipment_id=shipment.id, at=now,
            data={"old": shipment.status.value, "new": status.value,
                  "event_at": _instant(newest.at if newest else result.last_event_at),
                  "exception_reason": (result.exception_reason.value
                                       if result.exception_reason else None),
                  "first_info": first_info, "carrier": shipment.carrier,
                  "tracking_number": shipment.tracking_number}))
    first_edd = shipment.first_edd or result.estimated_delivery
    current_edd = result.estimated_delivery or shipment.current_edd
    if status is Status.delivered:
        current_edd = shipment.current_edd or result.estimated_delivery
    if current_edd != shipment.current_edd and current_edd is not None \
            and shipment.current_edd is not None:
        domain.append(_edd_event(shipment, shipment.current_edd, current_edd, first_edd,
                                 promised, now))
    updated = dataclasses.replace(
        shipment,
        status=status,
        status_detail=result.status_detail or shipment.status_detail,
        exception_reason=result.exception_reason if status in (
            Status.exception, Status.failed_attempt, Status.returned) else None,
        first_edd=first_edd,
        current_edd=current_edd,
        delivered_at=result.delivered_at or shipment.delivered_at,
        signed_by=result.signed_by or shipment.signed_by,
        service=result.service or shipment.service,
        last_event_at=last_event_at,
        last_poll_at=now,
        last_success_at=now,
        last_change_at=now if changed else shipment.last_change_at,
        polls=shipment.polls + 1,
        unchanged_polls=0 if changed else shipment.unchanged_polls + 1,
        consecutive_failures=0,
        blind_seconds=0.0 if changed else shipment.blind_seconds
        + _blind_since_scheduled(shipment, now),
    )
    nxt, override = next_poll_at(updated, now=now, policy=policy, changed=changed, rand=rand)
    if override is not None and override is not updated.status:
        domain.append(DomainEvent(
            kind=EventKind.shipment_status_changed, order_id=shipment.order_id,
            shipment_id=shipment.id, at=now,
            data={"old": updated.status.value, "new": override.value, "event_at": None,
                  "exception_reason": None, "first_info": False, "carrier": shipment.carrier,
                  "tracking_number": shipment.tracking_number}))
        updated = dataclasses.replace(updated, status=override)
    updated = dataclasses.replace(updated, next_poll_at=nxt)
    return PollOutcome(shipment=updated, new_events=fresh, domain_events=tuple(domain),
                       changed=changed)


def _edd_event(shipment: Shipment, old: DeliveryWindow, new: DeliveryWindow,
               first: DeliveryWindow | None, promised: date | None,
               now: datetime) -> DomainEvent:
    baseline = promised or (first.end if first else old.end)
    later = (new.end - baseline).days >= 1 and new.end > old.end
    return DomainEvent(
        kind=EventKind.shipment_edd_changed, order_id=shipment.order_id,
        shipment_id=shipment.id, at=now,
        data={"old_start": _iso(old.start), "old_end": _iso(old.end),
              "new_start": _iso(new.start), "new_end": _iso(new.end),
              "baseline_end": _iso(baseline), "later": later})


def apply_failure(shipment: Shipment, *, now: datetime, retry_in: timedelta) -> Shipment:
    """The shipment after a poll attempt that failed (the carrier, not the number).
    The time it was overdue so far counts as blind time."""
    return dataclasses.replace(
        shipment, last_poll_at=now, consecutive_failures=shipment.consecutive_failures + 1,
        blind_seconds=shipment.blind_seconds + _blind_since_scheduled(shipment, now),
        next_poll_at=now + retry_in)


def apply_deferral(shipment: Shipment, *, now: datetime, until: datetime) -> Shipment:
    """A due shipment pushed back for lack of budget; the wait so far counts as blind."""
    return dataclasses.replace(
        shipment, blind_seconds=shipment.blind_seconds + _blind_since_scheduled(shipment, now),
        next_poll_at=until)
