"""SQLite queries for the ops feature, mixed into :class:`notifier.store.sqlite.SqliteStore`.

Methods here use ``self.db``, ``self.transaction()`` and ``self.enqueue(db, events)`` of the store.
"""

from __future__ import annotations

from datetime import datetime

from notifier.store.sqlite_core import SqliteCore
from notifier.timefmt import to_db

__all__ = ["OpsQueries"]


class OpsQueries(SqliteCore):
    """Queries of the ops feature."""

    # --- API/metrics queries (read-only; notifier.api refreshes the DB-mirroring gauges)

    async def due_counts_by_carrier(self, now: datetime) -> dict[str, int]:
        """Shipments due for polling at ``now``, per carrier (the polling backlog)."""
        async with self.db.execute(
                "SELECT carrier, COUNT(*) FROM shipments WHERE next_poll_at IS NOT NULL "
                "AND next_poll_at <= ? GROUP BY carrier", (to_db(now),)) as cur:
            return {str(r[0]): int(r[1]) for r in await cur.fetchall()}

    async def open_anomaly_counts(self) -> dict[str, int]:
        """Open anomalies per kind."""
        async with self.db.execute(
                "SELECT kind, COUNT(*) FROM anomalies WHERE resolved_at IS NULL "
                "GROUP BY kind") as cur:
            return {str(r[0]): int(r[1]) for r in await cur.fetchall()}

    async def outbox_counts(self) -> dict[str, int]:
        """Notifications per status."""
        async with self.db.execute(
                "SELECT status, COUNT(*) FROM notifications GROUP BY status") as cur:
            return {str(r[0]): int(r[1]) for r in await cur.fetchall()}
