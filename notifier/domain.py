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
    """What happened. ``DomainEvent.data`` carries, per kind (dates ISO ``YYYY-MM-DD``,
    instants ISO-8601 UTC ``...Z``, absent values ``None``):

    - ``order.status_changed``: ``old`` (OMS status or None for a new order), ``new``,
      ``expected_ship_date``.
    - ``shipment.status_changed``: ``old``, ``new`` (carriers.model.Status values),
      ``event_at`` (instant of the newest carrier event behind the change, None when the
      change has no event, e.g. expired), ``exception_reason``, ``first_info`` (True when this
      is the first carrier information for the shipment: the "shipped" moment), ``carrier``,
      ``tracking_number``.
    - ``shipment.edd_changed``: ``old_start``, ``old_end``, ``new_start``, ``new_end``,
      ``baseline_end`` (promised date or first carrier EDD end), ``later`` (bool: moved later
      than the baseline by at least one day, i.e. a slip).
    - ``anomaly.opened`` / ``anomaly.updated``: ``anomaly_id``, ``kind``, ``detail``,
      ``carrier``; ``anomaly.closed``: ``anomaly_id``, ``kind``, ``reason``.
    - ``dispute.opened``: ``dispute_id``, ``reason``; ``dispute.resolved``: ``dispute_id``,
      ``resolution``, ``note``.
    """

    order_status_changed = "order.status_changed"
    shipment_status_changed = "shipment.status_changed"
    shipment_edd_changed = "shipment.edd_changed"
    anomaly_opened = "anomaly.opened"
    anomaly_updated = "anomaly.updated"
    anomaly_closed = "anomaly.closed"
    dispute_opened = "dispute.opened"
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
