"""The store interface: every query the application runs, independent of the database.

``SqliteStore`` implements it today; a PostgreSQL backend implements the same protocol later
(claims then use ``FOR UPDATE SKIP LOCKED``). Values in and out are domain dataclasses.
Pure module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

from carriers.model import TrackingEvent
from notifier import models
from notifier.domain import DomainEvent, NewNotification

__all__ = [
    "OrderDetails",
    "OrderInput",
    "PlanInputs",
    "Planner",
    "ShipmentInput",
    "Store",
    "UpsertSummary",
]



@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class PlanInputs(Mapping[str, "models.Order"]):
    """What the planner may know besides the events, loaded in the events' transaction.

    It is a mapping of the events' orders by id (so ``inputs[order_id]`` is the current order)
    plus, keyed by the customer's e-mail in lower case: the enabled push ``devices``, the
    ``unsubscribed`` (email, channel) pairs, and ``recent`` = (dedup_key, created_at) of the
    customer's notifications created in the 26 hours before the newest event (enough to count
    any local day, DST included).
    """

    orders: dict[str, models.Order]
    devices: dict[str, tuple[models.Device, ...]] = field(default_factory=dict)
    unsubscribed: frozenset[tuple[str, str]] = frozenset()
    recent: dict[str, tuple[tuple[str, datetime], ...]] = field(default_factory=dict)

    def __getitem__(self, key: str) -> models.Order:
        return self.orders[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.orders)

    def __len__(self) -> int:
        return len(self.orders)


# Turns the domain events of one transaction into outbox rows (written in that transaction).
Planner = Callable[[Sequence[DomainEvent], PlanInputs], Sequence[NewNotification]]


@dataclass(frozen=True, slots=True, kw_only=True)
class ShipmentInput:
    carrier: str
    tracking_number: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderInput:
    """A validated order upsert. ``None`` fields keep the stored value (or the default for a
    new order); shipments are added, never removed, by an upsert."""

    id: str
    email: str
    name: str | None = None
    locale: str | None = None
    tz: str | None = None
    channels: tuple[str, ...] | None = None
    oms_status: models.OmsStatus | None = None
    expected_ship_date: date | None = None
    promised_date: date | None = None
    placed_at: datetime | None = None
    shipments: tuple[ShipmentInput, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class UpsertSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    shipments_added: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderDetails:
    order: models.Order
    events: dict[int, list[TrackingEvent]] = field(default_factory=dict)
    anomalies: list[models.Anomaly] = field(default_factory=list)
    notifications: list[models.Notification] = field(default_factory=list)
    disputes: list[models.Dispute] = field(default_factory=list)


class Store(Protocol):
    """Operations of the foundation; later features extend this protocol."""

    planner: Planner | None

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def schema_version(self) -> int: ...

    async def upsert_orders(self, orders: Sequence[OrderInput], *, now: datetime
                            ) -> UpsertSummary: ...

    async def get_order(self, order_id: str) -> models.Order: ...

    async def order_details(self, order_id: str) -> OrderDetails: ...

    async def set_oms_status(self, order_id: str, status: models.OmsStatus, *, now: datetime,
                             expected_ship_date: date | None = None) -> models.Order: ...

    async def check_writable(self) -> None: ...
