"""Deciding a shipment's current status from its scans: the walks the carrier parsers share.

Pure: standard library and ``carriers.model`` only; no I/O, no clock. Two rules live here
(DESIGN.md): a delivered or returned shipment does not move back on a later scan that brings
no news, and a scan that reports no status of its own takes the status the shipment already
had. UPS and FedEx use :func:`walk_scans` (their raw scans may carry no status; weak statuses
are unknown/info_received/pending); DHL and USPS use :func:`deciding_event` over already
normalised events (routine statuses also include in_transit).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from carriers.model import ExceptionReason, Location, Status, TrackingEvent

__all__ = ["PROBLEM_STATUSES", "Scan", "Walk", "deciding_event", "event_reason", "walk_scans"]

PROBLEM_STATUSES = (Status.exception, Status.failed_attempt, Status.returned)
# A newer scan this weak does not move a delivered/returned shipment back (DESIGN.md).
_WEAK_STATUSES = (Status.unknown, Status.info_received, Status.pending)
_STICKY = frozenset({Status.delivered, Status.returned})
_ROUTINE = frozenset({Status.in_transit, Status.info_received, Status.unknown, Status.pending})


@dataclass(frozen=True, slots=True, kw_only=True)
class Scan:
    """One raw scan, already read: ``status`` None carries the previous status forward, and
    ``fallback`` is used for such a scan when there is no previous status yet."""

    at: datetime
    local_time: datetime | None
    offset_assumed: bool
    status: Status | None
    code: str
    description: str
    location: Location
    reason: ExceptionReason | None
    fallback: Status = Status.pending


@dataclass(frozen=True, slots=True, kw_only=True)
class Walk:
    """What :func:`walk_scans` found: events newest first, the shipment's status (None when
    there was no scan) and the scan that set it (None when there was no scan)."""

    events: list[TrackingEvent]
    status: Status | None
    deciding: Scan | None


def event_reason(status: Status, reason: ExceptionReason | None) -> ExceptionReason | None:
    """Reasons belong to problem events only; an exception always has one (``other``)."""
    if status not in PROBLEM_STATUSES:
        return None
    return reason or (ExceptionReason.other if status is Status.exception else None)


def walk_scans(scans: Sequence[Scan]) -> Walk:
    """Walk ``scans`` (in the carrier's newest-first order) oldest to newest.

    Sorted by instant ourselves; the sort is stable over the reversed list, so equal instants
    keep the carrier's order. Each scan becomes one event with its own (possibly carried)
    status; the shipment's status follows the newest scan, except that a weak scan after
    delivered/returned is kept as an event but does not change the status.
    """
    chrono = sorted(reversed(scans), key=lambda s: s.at)
    events: list[TrackingEvent] = []
    status: Status | None = None
    deciding: Scan | None = None
    for scan in chrono:
        own = scan.status if scan.status is not None else (status or scan.fallback)
        events.append(TrackingEvent(
            at=scan.at, status=own, code=scan.code, description=scan.description,
            location=scan.location, local_time=scan.local_time,
            offset_assumed=scan.offset_assumed,
            exception_reason=event_reason(own, scan.reason)))
        if status in (Status.delivered, Status.returned) and own in _WEAK_STATUSES:
            continue
        if scan.status is not None or status is None:
            deciding = scan
        status = own
    events.reverse()
    return Walk(events=events, status=status, deciding=deciding)


def deciding_event(events: Sequence[TrackingEvent], *,
                   no_news: Collection[str] = ()) -> TrackingEvent | None:
    """The event that decides the shipment's status (events newest first): the newest one, but
    a delivered/returned parcel only moves on when a newer event reports news after delivery
    (an exception, attempt, pickup or delivery), not a late routine scan. Events whose code is
    in ``no_news`` carry no news about the parcel and never decide."""
    deciding: TrackingEvent | None = None
    for event in reversed(events):
        if event.code in no_news:
            continue
        if deciding is not None and deciding.status in _STICKY and event.status in _ROUTINE:
            continue
        deciding = event
    return deciding
