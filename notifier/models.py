"""The domain model: orders, customers, shipments, anomalies, disputes, notifications, devices.

Pure: frozen, slotted, keyword-only dataclasses and enums; no I/O, no clock. Normalised carrier
statuses and tracking events live in ``carriers.model`` and are re-used here.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from carriers.model import DeliveryWindow, ExceptionReason, Status, TrackingEvent

__all__ = [
    "Anomaly",
    "AnomalyKind",
    "Channel",
    "Customer",
    "Device",
    "Dispute",
    "DisputeResolution",
    "Notification",
    "NotificationStatus",
    "OmsStatus",
    "Order",
    "Shipment",
    "Trigger",
    "derive_order_status",
]


class OmsStatus(enum.StrEnum):
    """What the shop's order-management system says before and around shipping."""

    received = "received"
    processing = "processing"
    payment_hold = "payment_hold"
    backordered = "backordered"
    cancelled = "cancelled"


class Channel(enum.StrEnum):
    email = "email"
    fcm = "fcm"
    apns = "apns"
    webpush = "webpush"
    webhook = "webhook"


class Trigger(enum.StrEnum):
    """Customer notification triggers (DESIGN.md, "Notifications")."""

    shipped = "shipped"
    out_for_delivery = "out_for_delivery"
    delivered = "delivered"
    failed_attempt = "failed_attempt"
    ready_for_pickup = "ready_for_pickup"
    delayed = "delayed"
    exception = "exception"
    returned = "returned"
    backordered = "backordered"
    payment_hold = "payment_hold"
    cancelled = "cancelled"
    dispute_received = "dispute_received"


class AnomalyKind(enum.StrEnum):
    stale_processing = "stale_processing"
    stale_pre_transit = "stale_pre_transit"
    stale_in_transit = "stale_in_transit"
    edd_slipped = "edd_slipped"
    overdue = "overdue"
    exception = "exception"
    not_found = "not_found"
    delivered_disputed = "delivered_disputed"


class NotificationStatus(enum.StrEnum):
    pending = "pending"
    sending = "sending"
    sent = "sent"
    failed = "failed"
    dead = "dead"
    superseded = "superseded"


class DisputeResolution(enum.StrEnum):
    found = "found"
    reshipped = "reshipped"
    refunded = "refunded"
    other = "other"


@dataclass(frozen=True, slots=True, kw_only=True)
class Customer:
    email: str
    name: str = ""
    locale: str = "en"
    tz: str = "UTC"
    # Channels the customer accepts; an empty tuple means "the shop's defaults".
    channels: tuple[Channel, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Shipment:
    carrier: str
    tracking_number: str
    order_id: str = ""
    id: int | None = None
    status: Status = Status.pending
    status_detail: str = ""
    exception_reason: ExceptionReason | None = None
    first_edd: DeliveryWindow | None = None
    current_edd: DeliveryWindow | None = None
    delivered_at: datetime | None = None
    signed_by: str | None = None
    service: str | None = None
    last_event_at: datetime | None = None
    created_at: datetime | None = None
    # Polling state.
    next_poll_at: datetime | None = None
    last_poll_at: datetime | None = None
    last_success_at: datetime | None = None
    last_change_at: datetime | None = None
    polls: int = 0
    unchanged_polls: int = 0
    consecutive_failures: int = 0
    # Time the carrier could not be polled since the last change (outage-aware staleness).
    blind_seconds: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Order:
    id: str
    customer: Customer
    oms_status: OmsStatus = OmsStatus.received
    expected_ship_date: date | None = None
    promised_date: date | None = None
    placed_at: datetime | None = None
    updated_at: datetime | None = None
    shipments: tuple[Shipment, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Anomaly:
    kind: AnomalyKind
    order_id: str
    shipment_id: int | None = None
    id: int | None = None
    detail: str = ""
    opened_at: datetime | None = None
    last_seen_at: datetime | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None
    carrier: str | None = None

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


@dataclass(frozen=True, slots=True, kw_only=True)
class Dispute:
    order_id: str
    shipment_id: int
    reason: str
    id: int | None = None
    opened_at: datetime | None = None
    resolved_at: datetime | None = None
    resolution: DisputeResolution | None = None
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    """One outbox row: a message for one recipient on one channel."""

    dedup_key: str
    order_id: str
    trigger: str
    channel: Channel
    recipient: str
    id: int | None = None
    shipment_id: int | None = None
    status: NotificationStatus = NotificationStatus.pending
    payload: dict[str, object] = field(default_factory=dict)
    created_at: datetime | None = None
    next_attempt_at: datetime | None = None
    attempts: int = 0
    last_error: str | None = None
    sent_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Device:
    """A push destination: FCM/APNs token, Web Push subscription (JSON) or webhook URL."""

    customer_email: str
    channel: Channel
    token: str
    id: int | None = None
    enabled: bool = True
    disabled_reason: str | None = None


# The customer-facing order status is one of these strings: an OMS status, a carrier Status,
# or "partially_delivered".
PARTIALLY_DELIVERED = "partially_delivered"


def derive_order_status(oms_status: OmsStatus, shipments: Sequence[Shipment]) -> str:
    """Cancelled; else the OMS status until a shipment exists; else the least advanced
    shipment, or ``partially_delivered`` when some but not all shipments are delivered."""
    if oms_status is OmsStatus.cancelled:
        return OmsStatus.cancelled.value
    if not shipments:
        return oms_status.value
    statuses = [s.status for s in shipments]
    delivered = sum(1 for s in statuses if s is Status.delivered)
    if 0 < delivered < len(statuses):
        return PARTIALLY_DELIVERED
    # Least advanced; among equals prefer the one that needs attention (exception first).
    attention = (Status.exception, Status.failed_attempt, Status.returned, Status.unknown)
    least = min(statuses, key=lambda s: (s.progress, s not in attention))
    return least.value


def event_sort_key(event: TrackingEvent) -> tuple[datetime, str]:
    """Events sort by instant (the carriers' array order is not trusted)."""
    return (event.at, event.code)


@dataclass(frozen=True, slots=True, kw_only=True)
class CarrierHealth:
    """What we know about one carrier's API: outcomes, circuit, quota windows (clock time)."""

    carrier: str
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    successes: int = 0
    failures: int = 0
    rate_limited: int = 0
    circuit_state: str = "closed"  # closed | open | half_open | paused (auth failure)
    circuit_opened_at: datetime | None = None
    blocked_until: datetime | None = None
    paused_reason: str | None = None
    window_day: str | None = None
    day_requests: int = 0
    window_hour: str | None = None
    hour_requests: int = 0
