"""SQLite queries for the ops feature, mixed into :class:`notifier.store.sqlite.SqliteStore`.

Methods here use ``self.db``, ``self.transaction()`` and ``self.enqueue(db, events)`` of the store.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta

from notifier import alerts as alerts_mod
from notifier import digest as digest_mod
from notifier.store.sqlite_core import SqliteCore
from notifier.timefmt import from_db, to_db

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

    # --- digest and alert queries (notifier.digest_job, notifier.alerts, notifier.cli_ops)

    async def digest_rows(self, *, limit: int = 50, scheduled_only: bool = False
                          ) -> list[digest_mod.DigestRecord]:
        """Recorded digests, the most recent attempt first (``scheduled_only``: without the
        on-demand ``manual:`` ones)."""
        where = "WHERE period_key NOT LIKE 'manual:%' " if scheduled_only else ""
        async with self.db.execute(
                f"SELECT * FROM digests {where}ORDER BY created_at DESC, period_key DESC "
                "LIMIT ?", (limit,)) as cur:
            return [_digest_record(r) for r in await cur.fetchall()]

    async def digest_claim(self, period_key: str, *, now: datetime, stale_before: datetime
                           ) -> digest_mod.DigestRecord | None:
        """Take ``period_key`` for sending, or None when it is sent or in flight elsewhere.

        A new key is inserted as ``pending`` (the PRIMARY KEY makes one row per period across
        restarts and processes). An existing ``failed`` row, or a ``pending`` one whose attempt
        started before ``stale_before`` (its process died), is taken over: ``created_at``
        becomes ``now``. The returned record keeps the previous ``summary`` (who was served).
        """
        stamp = to_db(now)
        async with self.transaction() as db:
            cur = await db.execute(
                "INSERT INTO digests (period_key, created_at, status) VALUES (?, ?, 'pending') "
                "ON CONFLICT (period_key) DO NOTHING", (period_key, stamp))
            if cur.rowcount == 0:
                async with db.execute("SELECT * FROM digests WHERE period_key = ?",
                                      (period_key,)) as c:
                    row = await c.fetchone()
                assert row is not None
                if row["status"] == "sent" or (
                        row["status"] == "pending" and row["created_at"] >= to_db(stale_before)):
                    return None
                await db.execute("UPDATE digests SET status = 'pending', created_at = ? "
                                 "WHERE period_key = ?", (stamp, period_key))
            async with db.execute("SELECT * FROM digests WHERE period_key = ?",
                                  (period_key,)) as c:
                row = await c.fetchone()
        assert row is not None
        return _digest_record(row)

    async def digest_update(self, period_key: str, *, status: str, summary: dict[str, object],
                            sent_at: datetime | None = None) -> None:
        """Record progress of an attempt: ``pending`` (more served), ``sent`` or ``failed``."""
        async with self.transaction() as db:
            await db.execute(
                "UPDATE digests SET status = ?, summary = ?, sent_at = COALESCE(?, sent_at) "
                "WHERE period_key = ?",
                (status, json.dumps(summary, sort_keys=True, default=str),
                 None if sent_at is None else to_db(sent_at), period_key))

    async def digest_anomalies(self, since: datetime) -> list[digest_mod.AnomalyRecord]:
        """Open anomalies plus those resolved after ``since``, with tracking numbers."""
        async with self.db.execute(
                "SELECT a.id, a.kind, a.order_id, a.carrier, a.detail, a.opened_at, "
                "a.resolved_at, a.resolution, s.tracking_number, s.carrier AS s_carrier "
                "FROM anomalies a LEFT JOIN shipments s ON s.id = a.shipment_id "
                "WHERE a.resolved_at IS NULL OR a.resolved_at > ? ORDER BY a.opened_at, a.id",
                (to_db(since),)) as cur:
            rows = await cur.fetchall()
        return [digest_mod.AnomalyRecord(
            id=r["id"], kind=r["kind"], order_id=r["order_id"],
            carrier=r["carrier"] or r["s_carrier"], tracking_number=r["tracking_number"],
            detail=r["detail"], opened_at=_instant(r["opened_at"]),
            resolved_at=from_db(r["resolved_at"]), resolution=r["resolution"]) for r in rows]

    async def digest_disputes(self) -> list[digest_mod.DisputeRecord]:
        """Open disputes, oldest first."""
        async with self.db.execute(
                "SELECT d.*, s.carrier, s.tracking_number FROM disputes d "
                "JOIN shipments s ON s.id = d.shipment_id WHERE d.resolved_at IS NULL "
                "ORDER BY d.opened_at, d.id") as cur:
            rows = await cur.fetchall()
        return [digest_mod.DisputeRecord(
            id=r["id"], order_id=r["order_id"], carrier=r["carrier"],
            tracking_number=r["tracking_number"], reason=r["reason"],
            opened_at=_instant(r["opened_at"]), note=r["note"]) for r in rows]

    async def dead_notifications(self, *, limit: int = 5
                                 ) -> tuple[int, list[digest_mod.DeadRecord]]:
        """How many notifications are dead, and the latest ``limit`` of them."""
        async with self.db.execute(
                "SELECT COUNT(*) FROM notifications WHERE status = 'dead'") as cur:
            total_row = await cur.fetchone()
        async with self.db.execute(
                "SELECT id, order_id, trigger, channel, recipient, attempts, last_error, "
                "created_at FROM notifications WHERE status = 'dead' ORDER BY id DESC LIMIT ?",
                (limit,)) as cur:
            rows = await cur.fetchall()
        return int(total_row[0]) if total_row else 0, [digest_mod.DeadRecord(
            id=r["id"], order_id=r["order_id"], trigger=r["trigger"], channel=r["channel"],
            recipient=r["recipient"], attempts=r["attempts"], last_error=r["last_error"] or "",
            created_at=_instant(r["created_at"])) for r in rows]

    async def dead_count_since(self, since: datetime) -> int:
        async with self.db.execute(
                "SELECT COUNT(*) FROM notifications WHERE status = 'dead' AND created_at >= ?",
                (to_db(since),)) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def carrier_health_all(self) -> list[digest_mod.CarrierHealthRecord]:
        async with self.db.execute("SELECT * FROM carrier_health ORDER BY carrier") as cur:
            rows = await cur.fetchall()
        return [digest_mod.CarrierHealthRecord(
            carrier=r["carrier"], successes=r["successes"], failures=r["failures"],
            rate_limited=r["rate_limited"], consecutive_failures=r["consecutive_failures"],
            circuit_state=r["circuit_state"], circuit_opened_at=from_db(r["circuit_opened_at"]),
            last_success_at=from_db(r["last_success_at"]),
            last_failure_at=from_db(r["last_failure_at"]), last_error=r["last_error"],
            paused_reason=r["paused_reason"]) for r in rows]

    async def stale_opened_by_carrier(self, since: datetime) -> dict[str, int]:
        """``stale_*`` anomalies opened after ``since`` (open or not), per carrier."""
        async with self.db.execute(
                "SELECT carrier, COUNT(*) FROM anomalies WHERE kind LIKE 'stale\\_%' ESCAPE '\\' "
                "AND opened_at > ? AND carrier IS NOT NULL GROUP BY carrier",
                (to_db(since),)) as cur:
            return {str(r[0]): int(r[1]) for r in await cur.fetchall()}

    async def ops_alert_raise(self, key: str, detail: str, *, now: datetime,
                              cooldown: timedelta, count: bool = True) -> bool:
        """Count condition ``key``; make it pending (True) when new or its cooldown passed.

        ``count=False`` when the caller's feature already counted this occurrence in the row
        (the outbox's ``record_channel_paused``)."""
        async with self.transaction() as db:
            async with db.execute("SELECT last_sent_at FROM ops_alerts WHERE key = ?",
                                  (key,)) as cur:
                row = await cur.fetchone()
            if row is None:
                await db.execute("INSERT INTO ops_alerts (key, first_at, count, detail) "
                                 "VALUES (?, ?, 1, ?)", (key, to_db(now), detail))
                return True
            last = from_db(row["last_sent_at"])
            pending = last is None or now - last >= cooldown
            await db.execute(
                "UPDATE ops_alerts SET count = count + ?, detail = ?, "
                "last_sent_at = CASE WHEN ? THEN NULL ELSE last_sent_at END WHERE key = ?",
                (int(count), detail, int(pending), key))
            return pending

    async def ops_alerts_pending(self) -> list[alerts_mod.OpsAlertRecord]:
        async with self.db.execute("SELECT * FROM ops_alerts WHERE last_sent_at IS NULL "
                                   "ORDER BY first_at, key") as cur:
            return [_alert_record(r) for r in await cur.fetchall()]

    async def ops_alert_claim(self, key: str, *, now: datetime) -> bool:
        """Mark a pending alert sent at ``now`` before sending it; False if already taken."""
        async with self.transaction() as db:
            cur = await db.execute("UPDATE ops_alerts SET last_sent_at = ? "
                                   "WHERE key = ? AND last_sent_at IS NULL", (to_db(now), key))
            return cur.rowcount == 1

    async def ops_alert_release(self, key: str, *, sent_at: datetime) -> None:
        """Undo our claim (sending failed) so the alert stays pending."""
        async with self.transaction() as db:
            await db.execute("UPDATE ops_alerts SET last_sent_at = NULL "
                             "WHERE key = ? AND last_sent_at = ?", (key, to_db(sent_at)))

    async def ops_alerts_recent(self, *, limit: int = 50) -> list[alerts_mod.OpsAlertRecord]:
        """Alerts, pending first, then the most recently sent."""
        async with self.db.execute(
                "SELECT * FROM ops_alerts ORDER BY last_sent_at IS NOT NULL, "
                "last_sent_at DESC, first_at DESC LIMIT ?", (limit,)) as cur:
            return [_alert_record(r) for r in await cur.fetchall()]


def _instant(text: str) -> datetime:
    value = from_db(text)
    assert value is not None
    return value


def _digest_record(r: sqlite3.Row) -> digest_mod.DigestRecord:
    try:
        summary = json.loads(r["summary"]) if r["summary"] else {}
    except ValueError:
        summary = {"unreadable": r["summary"][:200]}
    return digest_mod.DigestRecord(
        period_key=r["period_key"], created_at=_instant(r["created_at"]),
        sent_at=from_db(r["sent_at"]), status=r["status"],
        summary=summary if isinstance(summary, dict) else {"value": summary})


def _alert_record(r: sqlite3.Row) -> alerts_mod.OpsAlertRecord:
    return alerts_mod.OpsAlertRecord(
        key=r["key"], first_at=_instant(r["first_at"]), last_sent_at=from_db(r["last_sent_at"]),
        count=r["count"], detail=r["detail"])
