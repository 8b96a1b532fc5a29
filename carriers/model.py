"""The normalised tracking model every carrier adapter produces.

Pure: standard library only. ``notifier`` imports this module; this module never imports
``notifier``. Instants are timezone-aware UTC datetimes; carrier local times keep their offset.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime

__all__ = [
    "BatchResult",
    "DeliveryWindow",
    "ExceptionReason",
    "Location",
    "Status",
    "TrackingEvent",
    "TrackingResult",
]


class Status(enum.StrEnum):
    """Normalised shipment status (DESIGN.md, "Normalised tracking")."""

    pending = "pending"
    info_received = "info_received"
    in_transit = "in_transit"
    out_for_delivery = "out_for_delivery"
    failed_attempt = "failed_attempt"
    available_for_pickup = "available_for_pickup"
    exception = "exception"
    delivered = "delivered"
    returned = "returned"
    expired = "expired"
    unknown = "unknown"

    @property
    def progress(self) -> int:
        """How far along the journey this status is; used for "least advanced shipment"."""
        return _PROGRESS[self]

    @property
    def is_terminal(self) -> bool:
        """Delivered, returned and expired shipments do not move on by themselves."""
        return self in (Status.delivered, Status.returned, Status.expired)


# Problems (exception, failed attempt, unknown) rank with in-transit: the parcel is on its way
# but not yet at the door. Pickup is one step before delivered.
_PROGRESS: dict[Status, int] = {
    Status.pending: 0,
    Status.expired: 0,
    Status.info_received: 1,
    Status.unknown: 2,
    Status.in_transit: 2,
    Status.exception: 2,
    Status.returned: 2,
    Status.failed_attempt: 3,
    Status.out_for_delivery: 3,
    Status.available_for_pickup: 4,
    Status.delivered: 5,
}


class ExceptionReason(enum.StrEnum):
    """Why a carrier reported an exception; drives what the customer notice asks them to do."""

    address = "address"
    damaged = "damaged"
    customs = "customs"
    weather = "weather"
    refused = "refused"
    lost = "lost"
    held = "held"
    other = "other"


@dataclass(frozen=True, slots=True, kw_only=True)
class Location:
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None

    def key(self) -> str:
        """Stable text used in event identity (free text is not part of identity)."""
        return "|".join((self.city or "", self.state or "", self.postal_code or "",
                         self.country or "")).upper()


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryWindow:
    """A carrier estimated delivery: one day (start == end) or a window, in local dates."""

    start: date
    end: date

    @classmethod
    def day(cls, d: date) -> DeliveryWindow:
        return cls(start=d, end=d)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackingEvent:
    """One carrier scan.

    ``at`` is the absolute UTC instant. ``local_time`` keeps the carrier's wall time with its
    offset when the carrier gave one. ``offset_assumed`` is True when the carrier gave no offset
    and we resolved (or guessed UTC for) it, so callers can treat the instant with care.
    """

    at: datetime
    status: Status
    code: str
    description: str = ""
    location: Location = field(default_factory=Location)
    local_time: datetime | None = None
    offset_assumed: bool = False
    exception_reason: ExceptionReason | None = None

    def identity(self) -> str:
        """De-duplication identity: (instant, raw code, location), never the free text."""
        return f"{self.at.isoformat()}|{self.code}|{self.location.key()}"


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackingResult:
    """What one carrier says about one tracking number at one moment."""

    carrier: str
    tracking_number: str
    status: Status
    status_detail: str = ""
    estimated_delivery: DeliveryWindow | None = None
    delivered_at: datetime | None = None
    signed_by: str | None = None
    service: str | None = None
    events: tuple[TrackingEvent, ...] = ()
    exception_reason: ExceptionReason | None = None
    not_found: bool = False
    unknown_codes: tuple[str, ...] = ()

    @classmethod
    def missing(cls, carrier: str, tracking_number: str,
                detail: str = "not found") -> TrackingResult:
        """The carrier does not (yet) know this number: normalised as ``pending``."""
        return cls(carrier=carrier, tracking_number=tracking_number, status=Status.pending,
                   status_detail=detail, not_found=True)

    @property
    def last_event_at(self) -> datetime | None:
        return max((e.at for e in self.events), default=None)


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchResult:
    """Results of one carrier call. A per-number failure is data in ``problems``, not an error."""

    results: tuple[TrackingResult, ...] = ()
    problems: dict[str, str] = field(default_factory=dict)
