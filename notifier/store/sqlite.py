"""SQLite implementation of the store (aiosqlite, WAL, foreign keys, busy timeout).

The only module family that runs SQL. One connection per process, used by one coroutine at a
time for writes (``transaction()`` serialises them with a lock and ``BEGIN IMMEDIATE`` so another
process waits on the busy timeout instead of failing). Schema migrations live in
``migrations/NNNN_name.sql`` and are applied at open, each in its own transaction, tracked by
``PRAGMA user_version``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from carriers.model import DeliveryWindow, ExceptionReason, Location, Status, TrackingEvent
from notifier import models
from notifier.domain import DomainEvent, EventKind, NewNotification
from notifier.errors import NotFound, StoreError
from notifier.store.base import OrderDetails, OrderInput, Planner, UpsertSummary
from notifier.timefmt import date_from_db, date_to_db, from_db, to_db, to_db_opt

__all__ = ["MIGRATIONS", "SqliteStore", "load_migrations"]

logger = logging.getLogger(__name__)


def load_migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every migration file, in order."""
    folder = resources.files("notifier.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise StoreError(f"migration files are not numbered 1..N: {versions}")
    return found


MIGRATIONS = load_migrations()
LATEST_VERSION = len(MIGRATIONS)


def split_statements(script: str) -> list[str]:
    """Split a SQL script into complete statements (sqlite3.complete_statement aware)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip() and not all(
            ln.strip().startswith("--") or not ln.strip() for ln in current.splitlines()):
        raise StoreError(f"incomplete SQL statement at end of migration: {current[:80]!r}")
    return statements


class SqliteStore:
    """The SQLite store. ``await store.open()`` connects and migrates; ``close()`` closes."""

    def __init__(self, path: Path | str, *, busy_timeout: timedelta = timedelta(seconds=5),
                 target_version: int | None = None) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.target_version = LATEST_VERSION if target_version is None else target_version
        self.planner: Planner | None = None
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    # ---------------------------------------------------------------- connection and schema

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("store is not open")
        return self._db

    async def open(self) -> None:
        if self._db is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = await aiosqlite.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open database: {exc}") from exc
        db.row_factory = sqlite3.Row
        self._db = db
        try:
            await db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout.total_seconds() * 1000)}")
            await db.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode survives process crashes (kill -9); only an OS crash can lose
            # the last commits, which is the standard trade-off for WAL.
            await db.execute("PRAGMA synchronous = NORMAL")
            await db.execute("PRAGMA foreign_keys = ON")
            await self._migrate()
        except sqlite3.DatabaseError as exc:
            await self.close()
            raise StoreError(f"{self.path}: {exc}") from exc
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    async def __aenter__(self) -> SqliteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def schema_version(self) -> int:
        async with self.db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def _migrate(self) -> None:
        current = await self.schema_version()
        if current > LATEST_VERSION:
            raise StoreError(f"{self.path}: schema version {current} is newer than this "
                             f"notifier knows ({LATEST_VERSION}); upgrade notifier")
        for version, name, sql in MIGRATIONS:
            if version > self.target_version:
                break
            if version <= current:
                continue
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have migrated while we waited for the write lock.
                if await self.schema_version() >= version:
                    await self.db.execute("ROLLBACK")
                    continue
                for statement in split_statements(sql):
                    await self.db.execute(statement)
                await self.db.execute(f"PRAGMA user_version = {version}")
                await self.db.execute("COMMIT")
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            logger.info("database migrated to version %d (%s)", version, name)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction; commits on success, rolls back on any exception."""
        async with self._lock:
            db = self.db
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")

    async def check_writable(self) -> None:
        async with self.transaction() as db:
            await db.execute("INSERT INTO meta (key, value) VALUES ('health', '') "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value")

    async def get_meta(self, key: str) -> str | None:
        async with self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)) as cur:
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    async def set_meta(self, key: str, value: str) -> None:
        async with self.transaction() as db:
            await db.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                             (key, value))

    # ---------------------------------------------------------------- outbox hook

    async def enqueue(self, db: aiosqlite.Connection, events: Sequence[DomainEvent]) -> int:
        """Plan notifications for ``events`` and insert them in the current transaction."""
        if not events or self.planner is None:
            return 0
        order_ids = sorted({e.order_id for e in events})
        orders = await self._orders_by_id(db, order_ids)
        return await self.insert_notifications(db, self.planner(events, orders))

    async def insert_notifications(self, db: aiosqlite.Connection,
                                   rows: Iterable[NewNotification]) -> int:
        inserted = 0
        for row in rows:
            if row.supersedes and row.supersede_group:
                marks = ",".join("?" * len(row.supersedes))
                await db.execute(
                    f"UPDATE notifications SET status = 'superseded', next_attempt_at = NULL, "
                    f"last_error = ? "
                    f"WHERE supersede_group = ? AND status = 'pending' AND trigger IN ({marks})",
                    (f"superseded by {row.trigger}", row.supersede_group, *row.supersedes))
            cur = await db.execute(
                "INSERT INTO notifications (dedup_key, order_id, shipment_id, trigger, channel, "
                "recipient, supersede_group, urgent, payload, created_at, next_attempt_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedup_key) DO NOTHING",
                (row.dedup_key, row.order_id, row.shipment_id, row.trigger, row.channel,
                 row.recipient, row.supersede_group, int(row.urgent),
                 json.dumps(row.payload, sort_keys=True, default=str), to_db(row.created_at),
                 to_db(row.next_attempt_at)))
            inserted += cur.rowcount
        return inserted

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

    async def _existing_orders(self, db: aiosqlite.Connection, ids: list[str]
                               ) -> dict[str, sqlite3.Row]:
        found: dict[str, sqlite3.Row] = {}
        for chunk in _chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            async with db.execute(f"SELECT * FROM orders WHERE id IN ({marks})", chunk) as cur:
                for row in await cur.fetchall():
                    found[row["id"]] = row
        return found

    async def _orders_by_id(self, db: aiosqlite.Connection, ids: Sequence[str]
                            ) -> dict[str, models.Order]:
        rows = await self._existing_orders(db, list(ids))
        shipments: dict[str, list[models.Shipment]] = {i: [] for i in rows}
        for chunk in _chunks(list(rows), 500):
            marks = ",".join("?" * len(chunk))
            async with db.execute(f"SELECT * FROM shipments WHERE order_id IN ({marks}) "
                                  "ORDER BY id", chunk) as cur:
                for srow in await cur.fetchall():
                    shipments[srow["order_id"]].append(shipment_from_row(srow))
        return {oid: order_from_row(row, shipments[oid]) for oid, row in rows.items()}

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


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _window(start: str | None, end: str | None) -> DeliveryWindow | None:
    if start is None:
        return None
    s = date.fromisoformat(start)
    return DeliveryWindow(start=s, end=date.fromisoformat(end) if end else s)


def shipment_from_row(row: sqlite3.Row) -> models.Shipment:
    return models.Shipment(
        id=row["id"], order_id=row["order_id"], carrier=row["carrier"],
        tracking_number=row["tracking_number"], status=Status(row["status"]),
        status_detail=row["status_detail"],
        exception_reason=ExceptionReason(row["exception_reason"]) if row["exception_reason"]
        else None,
        first_edd=_window(row["first_edd_start"], row["first_edd_end"]),
        current_edd=_window(row["current_edd_start"], row["current_edd_end"]),
        delivered_at=from_db(row["delivered_at"]), signed_by=row["signed_by"],
        service=row["service"], last_event_at=from_db(row["last_event_at"]),
        created_at=from_db(row["created_at"]), next_poll_at=from_db(row["next_poll_at"]),
        last_poll_at=from_db(row["last_poll_at"]), last_success_at=from_db(row["last_success_at"]),
        last_change_at=from_db(row["last_change_at"]), polls=row["polls"],
        unchanged_polls=row["unchanged_polls"], consecutive_failures=row["consecutive_failures"],
        blind_seconds=row["blind_seconds"],
    )


def order_from_row(row: sqlite3.Row, shipments: Sequence[models.Shipment]) -> models.Order:
    channels = tuple(models.Channel(c) for c in row["channels"].split(",") if c)
    return models.Order(
        id=row["id"],
        customer=models.Customer(email=row["email"], name=row["name"], locale=row["locale"],
                                 tz=row["tz"], channels=channels),
        oms_status=models.OmsStatus(row["oms_status"]),
        expected_ship_date=date_from_db(row["expected_ship_date"]),
        promised_date=date_from_db(row["promised_date"]),
        placed_at=from_db(row["placed_at"]), updated_at=from_db(row["updated_at"]),
        shipments=tuple(shipments),
    )


def event_from_row(row: sqlite3.Row) -> TrackingEvent:
    return TrackingEvent(
        at=from_db(row["at"]),  # type: ignore[arg-type]
        status=Status(row["status"]), code=row["code"], description=row["description"],
        location=Location(city=row["city"], state=row["state"], postal_code=row["postal_code"],
                          country=row["country"]),
        local_time=datetime.fromisoformat(row["local_time"]) if row["local_time"] else None,
        offset_assumed=bool(row["offset_assumed"]),
        exception_reason=ExceptionReason(row["exception_reason"]) if row["exception_reason"]
        else None,
    )


def anomaly_from_row(row: sqlite3.Row) -> models.Anomaly:
    return models.Anomaly(
        id=row["id"], kind=models.AnomalyKind(row["kind"]), order_id=row["order_id"],
        shipment_id=row["shipment_id"], detail=row["detail"], opened_at=from_db(row["opened_at"]),
        last_seen_at=from_db(row["last_seen_at"]), resolved_at=from_db(row["resolved_at"]),
        resolution=row["resolution"], carrier=row["carrier"])


def notification_from_row(row: sqlite3.Row) -> models.Notification:
    return models.Notification(
        id=row["id"], dedup_key=row["dedup_key"], order_id=row["order_id"] or "",
        shipment_id=row["shipment_id"], trigger=row["trigger"],
        channel=models.Channel(row["channel"]), recipient=row["recipient"],
        status=models.NotificationStatus(row["status"]), payload=json.loads(row["payload"]),
        created_at=from_db(row["created_at"]), next_attempt_at=from_db(row["next_attempt_at"]),
        attempts=row["attempts"], last_error=row["last_error"], sent_at=from_db(row["sent_at"]))


def dispute_from_row(row: sqlite3.Row) -> models.Dispute:
    return models.Dispute(
        id=row["id"], order_id=row["order_id"], shipment_id=row["shipment_id"],
        reason=row["reason"], opened_at=from_db(row["opened_at"]),
        resolved_at=from_db(row["resolved_at"]),
        resolution=models.DisputeResolution(row["resolution"]) if row["resolution"] else None,
        note=row["note"])
