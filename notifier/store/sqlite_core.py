"""SQLite store core: connection, schema migrations, transactions, the outbox hook.

The only module family that runs SQL. One connection per process, used by one coroutine at a
time for writes (``transaction()`` serialises them with a lock and ``BEGIN IMMEDIATE`` so another
process waits on the busy timeout instead of failing). Schema migrations live in
``migrations/NNNN_name.sql`` and are applied at open, each in its own transaction, tracked by
``PRAGMA user_version``. Feature queries live in mixins (``sqlite_*.py``) built on this core.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Self

import aiosqlite

from notifier import models
from notifier.domain import DomainEvent, NewNotification
from notifier.errors import StoreError
from notifier.store.base import PlanInputs, Planner
from notifier.store.rows import chunks, order_from_row, shipment_from_row
from notifier.timefmt import from_db, to_db

__all__ = ["LATEST_VERSION", "MIGRATIONS", "SqliteCore", "load_migrations", "split_statements"]

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


class SqliteCore:
    """Connection, migrations, transactions and the outbox hook shared by every query mixin."""

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
            busy_ms = int(self.busy_timeout.total_seconds() * 1000)
            await db.execute(f"PRAGMA busy_timeout = {busy_ms}")
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

    async def __aenter__(self) -> Self:
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
        inputs = await self._plan_inputs(db, orders, since=max(e.at for e in events)
                                         - timedelta(hours=26))
        return await self.insert_notifications(db, self.planner(events, inputs))

    async def _plan_inputs(self, db: aiosqlite.Connection, orders: dict[str, models.Order],
                           *, since: datetime) -> PlanInputs:
        """The planner's view of the customers of ``orders``: enabled devices, unsubscribes
        and notifications created since ``since`` (see :class:`PlanInputs`)."""
        emails = sorted({o.customer.email.strip().lower() for o in orders.values()})
        devices: dict[str, list[models.Device]] = {}
        unsubscribed: set[tuple[str, str]] = set()
        recent: dict[str, list[tuple[str, datetime]]] = {}
        for chunk in chunks(emails, 500):
            marks = ",".join("?" * len(chunk))
            given = sorted({o.customer.email for o in orders.values()
                            if o.customer.email.strip().lower() in chunk})
            given_marks = ",".join("?" * len(given))
            async with db.execute(f"SELECT * FROM devices WHERE customer_email IN ({marks}) "
                                  "AND enabled = 1 ORDER BY id", chunk) as cur:
                for r in await cur.fetchall():
                    devices.setdefault(r["customer_email"], []).append(models.Device(
                        id=r["id"], customer_email=r["customer_email"],
                        channel=models.Channel(r["channel"]), token=r["token"]))
            async with db.execute(f"SELECT email, channel FROM unsubscribes "
                                  f"WHERE email IN ({marks})", chunk) as cur:
                unsubscribed.update((r[0], r[1]) for r in await cur.fetchall())
            async with db.execute(
                    f"SELECT o.email, n.dedup_key, n.created_at FROM orders o "
                    f"JOIN notifications n ON n.order_id = o.id "
                    f"WHERE o.email IN ({given_marks}) AND n.created_at >= ?",
                    (*given, to_db(since))) as cur:
                for email, key, created in await cur.fetchall():
                    at = from_db(created)
                    if at is not None:
                        recent.setdefault(email.strip().lower(), []).append((key, at))
        return PlanInputs(orders=orders,
                          devices={k: tuple(v) for k, v in devices.items()},
                          unsubscribed=frozenset(unsubscribed),
                          recent={k: tuple(v) for k, v in recent.items()})

    async def insert_notifications(self, db: aiosqlite.Connection,
                                   rows: Iterable[NewNotification]) -> int:
        """Insert outbox rows (a duplicate dedup key is a no-op); a row that supersedes others
        marks the pending ones of its group superseded, including earlier rows of this batch.
        Two statements per batch rather than two per row."""
        rows = list(rows)
        superseded_here: set[int] = set()
        earlier_in_group: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            if row.supersede_group is None:
                continue
            group = earlier_in_group.setdefault(row.supersede_group, [])
            if row.supersedes:
                superseded_here.update(j for j in group if rows[j].trigger in row.supersedes)
            group.append(i)
        updates = [(f"superseded by {row.trigger}", row.supersede_group, trigger)
                   for row in rows if row.supersedes and row.supersede_group
                   for trigger in row.supersedes]
        if updates:
            await db.executemany(
                "UPDATE notifications SET status = 'superseded', next_attempt_at = NULL, "
                "last_error = ? WHERE supersede_group = ? AND status = 'pending' AND trigger = ?",
                updates)
        params = [
            (row.dedup_key, row.order_id, row.shipment_id, row.trigger, row.channel,
             row.recipient, row.supersede_group, int(row.urgent),
             json.dumps(row.payload, sort_keys=True, default=str), to_db(row.created_at),
             "superseded" if i in superseded_here else "pending",
             None if i in superseded_here else to_db(row.next_attempt_at))
            for i, row in enumerate(rows)]
        if not params:
            return 0
        before = db.total_changes
        await db.executemany(
            "INSERT INTO notifications (dedup_key, order_id, shipment_id, trigger, channel, "
            "recipient, supersede_group, urgent, payload, created_at, status, next_attempt_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedup_key) DO NOTHING",
            params)
        return db.total_changes - before

    async def _existing_orders(self, db: aiosqlite.Connection, ids: list[str]
                               ) -> dict[str, sqlite3.Row]:
        found: dict[str, sqlite3.Row] = {}
        for chunk in chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            async with db.execute(f"SELECT * FROM orders WHERE id IN ({marks})", chunk) as cur:
                for row in await cur.fetchall():
                    found[row["id"]] = row
        return found

    async def _orders_by_id(self, db: aiosqlite.Connection, ids: Sequence[str]
                            ) -> dict[str, models.Order]:
        rows = await self._existing_orders(db, list(ids))
        shipments: dict[str, list[models.Shipment]] = {i: [] for i in rows}
        for chunk in chunks(list(rows), 500):
            marks = ",".join("?" * len(chunk))
            async with db.execute(f"SELECT * FROM shipments WHERE order_id IN ({marks}) "
                                  "ORDER BY id", chunk) as cur:
                for srow in await cur.fetchall():
                    shipments[srow["order_id"]].append(shipment_from_row(srow))
        return {oid: order_from_row(row, shipments[oid]) for oid, row in rows.items()}

