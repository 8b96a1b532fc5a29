"""The SQLite store: the core plus every feature's query mixin, and the order queries."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from carriers.model import TrackingEvent
from notifier import models
from notifier.domain import DomainEvent, EventKind
from notifier.errors import NotFound
from notifier.store.base import OrderDetails, OrderInput, UpsertSummary
from notifier.store.rows import (
    anomaly_from_row,
    dispute_from_row,
    event_from_row,
    notification_from_row,
)
from notifier.store.sqlite_core import LATEST_VERSION, MIGRATIONS, SqliteCore
from notifier.store.sqlite_ops import OpsQueries
from notifier.store.sqlite_outbox import OutboxQueries
from notifier.store.sqlite_polling import PollingQueries
from notifier.timefmt import date_to_db, to_db, to_db_opt

__all__ = ["LATEST_VERSION", "MIGRATIONS", "SqliteStore"]


class SqliteStore(PollingQueries, OutboxQueries, OpsQueries, SqliteCore):
    """The SQLite store. ``await store.open()`` connects and migrates; ``close()`` closes."""

    # ---------------------------------------------------------------- orders

    async def upsert_orders(self, orders: Sequence[OrderInput], *, now: datetime
                            ) -> UpsertSummary:
        """Insert or update ``orders`` and add their new shipments, in one transaction."""
        if not orders:
            return UpsertSummary()
        # Last row wins when one batch names an order twice (as a sequence of upserts would).
        by_id: dict[str, OrderInput] = {}
        extra_shipments: dict[str, list[Any]] = {}
        for o in orders:
            if o.id in by_id:
                extra_shipments.setdefault(o.id, []).extend(by_id[o.id].shipments)
            by_id[o.id] = o
        stamp = to_db(now)
        created = updated = unchanged = added = 0
        async with self.transaction() as db:
            existing = await self._existing_orders(db, list(by_id))
            events: list[DomainEvent] = []
            order_rows = []
            for o in by_id.values():
                old = existing.get(o.id)
                row = _merge_order(o, old, stamp)
                if old is None:
                    created += 1
                elif row[1:10] == tuple(old[k] for k in _ORDER_FIELDS):
                    unchanged += 1  # re-import of the same row: no write, nothing re-evaluated
                    continue
                else:
                    updated += 1
                order_rows.append(row)
                new_status = row[6]
                if o.oms_status is not None and (old is None or old["oms_status"] != new_status):
                    events.append(DomainEvent(
                        kind=EventKind.order_status_changed, order_id=o.id, at=now,
                        data={"old": None if old is None else old["oms_status"],
                              "new": new_status, "expected_ship_date": row[7]}))
            if order_rows:
                await db.executemany(_UPSERT_ORDER, order_rows)
            shipment_rows = [
                (o.id, s.carrier, s.tracking_number, stamp, stamp)
                for o in by_id.values()
                for s in (*extra_shipments.get(o.id, ()), *o.shipments)
            ]
            if shipment_rows:
                before = db.total_changes
                await db.executemany(
                    "INSERT INTO shipments (order_id, carrier, tracking_number, created_at, "
                    "next_poll_at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (order_id, carrier, tracking_number) DO NOTHING", shipment_rows)
                added = db.total_changes - before
                if added:
                    await db.executemany(
                        "UPDATE orders SET rules_dirty = 1 WHERE id = ?",
                        [(oid,) for oid in {r[0] for r in shipment_rows}])
            await self.enqueue(db, events)
        return UpsertSummary(created=created, updated=updated, unchanged=unchanged,
                             shipments_added=added)

    async def get_order(self, order_id: str) -> models.Order:
        orders = await self._orders_by_id(self.db, [order_id])
        if order_id not in orders:
            raise NotFound(f"order {order_id!r} not found")
        return orders[order_id]

    async def order_details(self, order_id: str) -> OrderDetails:
        order = await self.get_order(order_id)
        db = self.db
        events: dict[int, list[TrackingEvent]] = {}
        async with db.execute(
                "SELECT e.* FROM events e JOIN shipments s ON s.id = e.shipment_id "
                "WHERE s.order_id = ? ORDER BY e.at DESC, e.id DESC", (order_id,)) as cur:
            for row in await cur.fetchall():
                events.setdefault(row["shipment_id"], []).append(event_from_row(row))
        async with db.execute("SELECT * FROM anomalies WHERE order_id = ? ORDER BY opened_at",
                              (order_id,)) as cur:
            anomalies = [anomaly_from_row(r) for r in await cur.fetchall()]
        async with db.execute("SELECT * FROM notifications WHERE order_id = ? ORDER BY id",
                              (order_id,)) as cur:
            notifications = [notification_from_row(r) for r in await cur.fetchall()]
        async with db.execute("SELECT * FROM disputes WHERE order_id = ? ORDER BY id",
                              (order_id,)) as cur:
            disputes = [dispute_from_row(r) for r in await cur.fetchall()]
        return OrderDetails(order=order, events=events, anomalies=anomalies,
                            notifications=notifications, disputes=disputes)

    async def set_oms_status(self, order_id: str, status: models.OmsStatus, *, now: datetime,
                             expected_ship_date: date | None = None) -> models.Order:
        async with self.transaction() as db:
            existing = await self._existing_orders(db, [order_id])
            old = existing.get(order_id)
            if old is None:
                raise NotFound(f"order {order_id!r} not found")
            stamp = to_db(now)
            changed = old["oms_status"] != status.value
            await db.execute(
                "UPDATE orders SET oms_status = ?, expected_ship_date = ?, updated_at = ?, "
                "oms_status_since = CASE WHEN oms_status = ? THEN oms_status_since ELSE ? END, "
                "rules_dirty = 1 WHERE id = ?",
                (status.value, date_to_db(expected_ship_date), stamp, status.value, stamp,
                 order_id))
            if changed or (expected_ship_date and date_to_db(expected_ship_date)
                           != old["expected_ship_date"]):
                await self.enqueue(db, [DomainEvent(
                    kind=EventKind.order_status_changed, order_id=order_id, at=now,
                    data={"old": old["oms_status"], "new": status.value,
                          "expected_ship_date": date_to_db(expected_ship_date)})])
        return await self.get_order(order_id)


# -------------------------------------------------------------------- SQL and row mapping

_ORDER_FIELDS = ("email", "name", "locale", "tz", "channels", "oms_status",
                 "expected_ship_date", "promised_date", "placed_at")

_UPSERT_ORDER = """
INSERT INTO orders (id, email, name, locale, tz, channels, oms_status, expected_ship_date,
                    promised_date, placed_at, created_at, updated_at, oms_status_since)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    email = excluded.email, name = excluded.name, locale = excluded.locale, tz = excluded.tz,
    channels = excluded.channels,
    oms_status_since = CASE WHEN orders.oms_status = excluded.oms_status
                            THEN orders.oms_status_since ELSE excluded.oms_status_since END,
    oms_status = excluded.oms_status, expected_ship_date = excluded.expected_ship_date,
    promised_date = excluded.promised_date, placed_at = excluded.placed_at,
    updated_at = excluded.updated_at, rules_dirty = 1
"""


def _merge_order(o: OrderInput, old: sqlite3.Row | None, stamp: str) -> tuple[Any, ...]:
    def pick(value: Any, key: str, default: Any) -> Any:
        if value is not None:
            return value
        return old[key] if old is not None else default

    channels = None if o.channels is None else ",".join(o.channels)
    status = None if o.oms_status is None else o.oms_status.value
    return (
        o.id, o.email, pick(o.name, "name", ""), pick(o.locale, "locale", "en"),
        pick(o.tz, "tz", "UTC"), pick(channels, "channels", ""),
        pick(status, "oms_status", "received"),
        pick(date_to_db(o.expected_ship_date), "expected_ship_date", None),
        pick(date_to_db(o.promised_date), "promised_date", None),
        pick(to_db_opt(o.placed_at), "placed_at", None),
        stamp, stamp, stamp,
    )


