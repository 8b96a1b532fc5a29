"""Domain events: what changed, emitted by state-changing store operations.

The store hands the events of one transaction to the notification planner (if one is set) and
writes the outbox rows it returns in that same transaction, so a state change and the
notifications it causes commit or roll back together. Pure module.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["DomainEvent", "EventKind", "NewNotification"]


class EventKind(enum.StrEnum):
    order_status_changed = "order.status_changed"  # data: old, new, expected_ship_date
    shipment_added = "shipment.added"
    shipment_status_changed = "shipment.status_changed"  # data: old, new, event_at
    shipment_edd_changed = "shipment.edd_changed"  # data: old_start/end, new_start/end
    anomaly_opened = "anomaly.opened"  # data: kind, detail, anomaly_id
    anomaly_updated = "anomaly.updated"
    anomaly_closed = "anomaly.closed"  # data: kind, reason
    dispute_opened = "dispute.opened"  # data: dispute_id, reason
    dispute_resolved = "dispute.resolved"


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainEvent:
    kind: EventKind
    order_id: str
    at: datetime
    shipment_id: int | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class NewNotification:
    """An outbox row to insert. ``dedup_key`` is unique: inserting it twice is a no-op."""

    dedup_key: str
    order_id: str | None
    trigger: str
    channel: str
    recipient: str
    created_at: datetime
    next_attempt_at: datetime
    shipment_id: int | None = None
    supersede_group: str | None = None
    # Pending rows of this group whose trigger is listed here become "superseded".
    supersedes: tuple[str, ...] = ()
    urgent: bool = False
    payload: dict[str, Any] = field(default_factory=dict)
