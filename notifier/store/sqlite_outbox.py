"""SQLite queries for the outbox feature, mixed into :class:`notifier.store.sqlite.SqliteStore`.

Methods here use ``self.db``, ``self.transaction()`` and ``self.enqueue(db, events)`` of the store.

Outbox row life cycle: ``pending`` (``next_attempt_at`` = when to try) -> claimed as
``sending`` (``next_attempt_at`` = when the claim's lease expires, so a row left by a crash is
claimed again) -> ``sent`` / ``failed`` / ``dead`` / ``superseded`` (``next_attempt_at`` NULL),
or back to ``pending`` with a later ``next_attempt_at`` after a transient failure.
Also: push devices, unsubscribes and the channel-paused ops signal.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from carriers.model import TrackingEvent
from notifier import models
from notifier.store.rows import chunks, event_from_row, notification_from_row
from notifier.store.sqlite_core import SqliteCore
from notifier.timefmt import to_db, to_db_opt

__all__ = ["OutboxQueries", "Outcome"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What happened to one claimed row. ``status``: sent, failed, dead, or pending (retry at
    ``next_attempt_at``); ``count_attempt`` false for a release that was not the row's fault."""

    id: int
    status: str
    sent_at: datetime | None = None
    provider_id: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None
    count_attempt: bool = True

    def __post_init__(self) -> None:
        if self.status not in ("sent", "failed", "dead", "pending"):
            raise ValueError(f"not an outcome status: {self.status!r}")
        if (self.status == "pending") != (self.next_attempt_at is not None):
            raise ValueError("pending outcomes need next_attempt_at, final ones must not")

def _device(row: sqlite3.Row) -> models.Device:
    return models.Device(id=row["id"], customer_email=row["customer_email"],
                         channel=models.Channel(row["channel"]), token=row["token"],
                         enabled=bool(row["enabled"]), disabled_reason=row["disabled_reason"])


class OutboxQueries(SqliteCore):
    """Queries of the outbox feature."""

    # ------------------------------------------------------------ claiming and outcomes

    async def claim_due(self, *, now: datetime, lease_until: datetime, limit: int,
                        channels: Sequence[str]) -> list[models.Notification]:
        """Claim up to ``limit`` due rows of ``channels``: pending rows whose time has come and
        sending rows whose lease expired. They become ``sending`` until ``lease_until``."""
        if not channels or limit <= 0:
            return []
        marks = ",".join("?" * len(channels))
        async with self.transaction() as db, db.execute(
                f"UPDATE notifications SET status = 'sending', next_attempt_at = ? "
                f"WHERE id IN (SELECT id FROM notifications WHERE next_attempt_at IS NOT NULL "
                f"AND next_attempt_at <= ? AND status IN ('pending', 'sending') "
                f"AND channel IN ({marks}) ORDER BY next_attempt_at, id LIMIT ?) "
                f"RETURNING *",
                (to_db(lease_until), to_db(now), *channels, limit)) as cur:
            rows = await cur.fetchall()
        return sorted((notification_from_row(r) for r in rows), key=lambda n: n.id or 0)

    async def record_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        """Write the outcomes of many sends in one transaction (the sender's group commit).
        Only rows still ``sending`` change, so a late outcome never undoes another's."""
        if not outcomes:
            return
        async with self.transaction() as db:
            await db.executemany(
                "UPDATE notifications SET status = ?, next_attempt_at = ?, "
                "attempts = attempts + ?, last_error = ?, "
                "sent_at = coalesce(?, sent_at), provider_id = coalesce(?, provider_id) "
                "WHERE id = ? AND status = 'sending'",
                [(o.status, to_db_opt(o.next_attempt_at), int(o.count_attempt),
                  None if o.error is None else o.error[:500], to_db_opt(o.sent_at),
                  o.provider_id, o.id) for o in outcomes])

    async def mark_sent(self, notification_id: int, *, now: datetime,
                        provider_id: str | None) -> None:
        await self.record_outcomes([Outcome(id=notification_id, status="sent", sent_at=now,
                                            provider_id=provider_id)])

    async def mark_failed(self, notification_id: int, error: str, *,
                          status: str = "failed") -> None:
        """A final failure: ``failed`` (permanent) or ``dead`` (gave up)."""
        if status not in ("failed", "dead"):
            raise ValueError(f"not a failure status: {status!r}")
        await self.record_outcomes([Outcome(id=notification_id, status=status, error=error)])

    async def reschedule(self, notification_id: int, *, next_attempt_at: datetime, error: str,
                         count_attempt: bool = True) -> None:
        """Back to ``pending`` until ``next_attempt_at`` (one more attempt counted unless
        ``count_attempt`` is false: a paused channel or a drain is not the row's fault)."""
        await self.record_outcomes([Outcome(id=notification_id, status="pending", error=error,
                                            next_attempt_at=next_attempt_at,
                                            count_attempt=count_attempt)])

    async def mark_dead_before(self, created_before: datetime) -> int:
        """Rows still to do that were created before ``created_before`` become ``dead``."""
        async with self.transaction() as db:
            cur = await db.execute(
                "UPDATE notifications SET status = 'dead', next_attempt_at = NULL, "
                "last_error = coalesce(last_error, 'never sent') || ' (gave up)' "
                "WHERE next_attempt_at IS NOT NULL AND status IN ('pending', 'sending') "
                "AND created_at < ?", (to_db(created_before),))
            return cur.rowcount

    # ------------------------------------------------------------ listing and manual retry

    async def list_notifications(self, *, status: str | None = None, limit: int = 100
                                 ) -> list[models.Notification]:
        """Newest first; all statuses unless ``status`` is given."""
        where, args = ("WHERE status = ?", [status]) if status else ("", [])
        async with self.db.execute(f"SELECT * FROM notifications {where} "
                                   f"ORDER BY id DESC LIMIT ?", (*args, limit)) as cur:
            return [notification_from_row(r) for r in await cur.fetchall()]

    async def get_notification(self, notification_id: int) -> models.Notification | None:
        async with self.db.execute("SELECT * FROM notifications WHERE id = ?",
                                   (notification_id,)) as cur:
            row = await cur.fetchone()
        return None if row is None else notification_from_row(row)

    async def outbox_counts(self) -> dict[str, int]:
        async with self.db.execute("SELECT status, count(*) FROM notifications "
                                   "GROUP BY status") as cur:
            return {r[0]: r[1] for r in await cur.fetchall()}

    async def retry_notifications(self, *, now: datetime, ids: Sequence[int] = (),
                                  dead: bool = False) -> int:
        """Make failed/dead/superseded rows (``ids``) or every dead row (``dead``) pending
        now. ``created_at`` restarts at ``now`` so the give-up age counts from the retry."""
        async with self.transaction() as db:
            if dead:
                cur = await db.execute(
                    "UPDATE notifications SET status = 'pending', next_attempt_at = ?, "
                    "created_at = ?, last_error = 'manual retry: ' || coalesce(last_error, '') "
                    "WHERE status = 'dead'", (to_db(now), to_db(now)))
                return cur.rowcount
            total = 0
            for nid in ids:
                cur = await db.execute(
                    "UPDATE notifications SET status = 'pending', next_attempt_at = ?, "
                    "created_at = ?, last_error = 'manual retry: ' || coalesce(last_error, '') "
                    "WHERE id = ? AND status IN ('failed', 'dead', 'superseded')",
                    (to_db(now), to_db(now), nid))
                total += cur.rowcount
            return total

    # ------------------------------------------------------------ context for rendering

    async def latest_event(self, shipment_id: int) -> TrackingEvent | None:
        return (await self.latest_events([shipment_id])).get(shipment_id)

    async def latest_events(self, shipment_ids: Sequence[int]) -> dict[int, TrackingEvent]:
        """The newest carrier event of each shipment that has one."""
        found: dict[int, TrackingEvent] = {}
        for chunk in chunks(sorted(set(shipment_ids)), 500):
            marks = ",".join("?" * len(chunk))
            async with self.db.execute(
                    f"SELECT * FROM (SELECT e.*, row_number() OVER (PARTITION BY shipment_id "
                    f"ORDER BY at DESC, id DESC) AS newest FROM events e "
                    f"WHERE shipment_id IN ({marks})) WHERE newest = 1", chunk) as cur:
                for row in await cur.fetchall():
                    found[row["shipment_id"]] = event_from_row(row)
        return found

    async def orders_by_id(self, order_ids: Sequence[str]) -> dict[str, models.Order]:
        """The current orders (with shipments) of ``order_ids`` that still exist."""
        return await self._orders_by_id(self.db, sorted(set(order_ids)))

    # ------------------------------------------------------------ devices

    async def upsert_device(self, email: str, channel: str, token: str, *, now: datetime
                            ) -> models.Device:
        """Register (or re-register) a push destination for ``email``. A token already known
        moves to this customer and is enabled again (the app registered it anew)."""
        address = email.strip().lower()
        chan = models.Channel(channel)
        async with self.transaction() as db, db.execute(
                "INSERT INTO devices (customer_email, channel, token, created_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (channel, token) DO UPDATE SET "
                "customer_email = excluded.customer_email, enabled = 1, "
                "disabled_reason = NULL RETURNING *",
                (address, chan.value, token, to_db(now))) as cur:
            row = await cur.fetchone()
        assert row is not None
        return _device(row)

    async def disable_device(self, channel: str, token: str, reason: str) -> bool:
        """Disable a dead token / subscription / endpoint; True when one was enabled."""
        async with self.transaction() as db:
            cur = await db.execute(
                "UPDATE devices SET enabled = 0, disabled_reason = ? "
                "WHERE channel = ? AND token = ? AND enabled = 1", (reason[:300], channel, token))
            return cur.rowcount > 0

    async def devices_for(self, email: str) -> list[models.Device]:
        """Every device of the customer, enabled or not, oldest first."""
        async with self.db.execute("SELECT * FROM devices WHERE customer_email = ? ORDER BY id",
                                   (email.strip().lower(),)) as cur:
            return [_device(r) for r in await cur.fetchall()]

    # ------------------------------------------------------------ unsubscribes

    async def unsubscribe(self, email: str, channel: str, *, now: datetime) -> bool:
        """Record that ``email`` wants nothing more on ``channel``; pending rows for that
        address on that channel are superseded. True when it was new."""
        address = email.strip().lower()
        chan = models.Channel(channel).value
        async with self.transaction() as db:
            cur = await db.execute("INSERT INTO unsubscribes (email, channel, at) VALUES (?, ?, ?) "
                                   "ON CONFLICT (email, channel) DO NOTHING",
                                   (address, chan, to_db(now)))
            new = cur.rowcount > 0
            await db.execute(
                "UPDATE notifications SET status = 'superseded', next_attempt_at = NULL, "
                "last_error = 'unsubscribed' WHERE status = 'pending' AND channel = ? AND "
                "order_id IN (SELECT id FROM orders WHERE lower(email) = ?)", (chan, address))
            return new

    async def is_unsubscribed(self, email: str, channel: str) -> bool:
        async with self.db.execute("SELECT 1 FROM unsubscribes WHERE email = ? AND channel = ?",
                                   (email.strip().lower(), channel)) as cur:
            return await cur.fetchone() is not None

    # ------------------------------------------------------------ ops signal

    async def record_channel_paused(self, channel: str, reason: str, *, now: datetime) -> None:
        """Upsert the ``ops_alerts`` row ``channel_paused:<channel>`` (count, detail); the ops
        feature decides when to send it (``last_sent_at``)."""
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO ops_alerts (key, first_at, count, detail) VALUES (?, ?, 1, ?) "
                "ON CONFLICT (key) DO UPDATE SET count = count + 1, detail = excluded.detail",
                (f"channel_paused:{channel}", to_db(now), reason[:500]))

