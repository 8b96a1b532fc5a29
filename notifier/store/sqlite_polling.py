"""SQLite queries of polling and anomalies: due selection, writing a tick's results, carrier
health, the incremental anomaly sweep, disputes. Mixed into ``SqliteStore``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime

from carriers.model import Status, TrackingEvent
from notifier import models
from notifier.domain import DomainEvent, EventKind
from notifier.errors import InputError, NotFound
from notifier.store.rows import (
    anomaly_from_row,
    chunks,
    dispute_from_row,
    event_from_row,
    health_from_row,
    shipment_from_row,
)
from notifier.store.sqlite_core import SqliteCore
from notifier.timefmt import date_from_db, date_to_db, to_db, to_db_opt

__all__ = ["PollingQueries", "RulesInput"]


class RulesInput:
    """What the anomaly sweep needs for a set of orders, loaded in a few queries."""

    def __init__(self) -> None:
        self.orders: dict[str, models.Order] = {}
        self.events: dict[int, list[TrackingEvent]] = {}
        self.open_anomalies: dict[str, list[models.Anomaly]] = {}
        self.open_disputes: set[int] = set()


class PollingQueries(SqliteCore):
    """Queries of the polling and anomaly features."""

    # ------------------------------------------------------------------ polling

    async def due_shipments(self, carrier: str, now: datetime, limit: int
                            ) -> list[models.Shipment]:
        """Shipments of ``carrier`` due at ``now``, oldest due first (index only)."""
        async with self.db.execute(
                "SELECT * FROM shipments WHERE carrier = ? AND next_poll_at <= ? "
                "ORDER BY next_poll_at LIMIT ?", (carrier, to_db(now), limit)) as cur:
            return [shipment_from_row(r) for r in await cur.fetchall()]

    async def count_due(self, now: datetime) -> dict[str, int]:
        async with self.db.execute(
                "SELECT carrier, count(*) FROM shipments WHERE next_poll_at <= ? "
                "GROUP BY carrier", (to_db(now),)) as cur:
            return {r[0]: r[1] for r in await cur.fetchall()}

    async def event_identities(self, shipment_ids: Sequence[int]) -> dict[int, set[str]]:
        out: dict[int, set[str]] = {i: set() for i in shipment_ids}
        for chunk in chunks(list(shipment_ids), 500):
            marks = ",".join("?" * len(chunk))
            async with self.db.execute(
                    f"SELECT shipment_id, identity FROM events WHERE shipment_id IN ({marks})",
                    chunk) as cur:
                for row in await cur.fetchall():
                    out[row[0]].add(row[1])
        return out

    async def promised_dates(self, order_ids: Iterable[str]) -> dict[str, date | None]:
        ids = sorted(set(order_ids))
        out: dict[str, date | None] = {}
        for chunk in chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            async with self.db.execute(
                    f"SELECT id, promised_date FROM orders WHERE id IN ({marks})", chunk) as cur:
                for row in await cur.fetchall():
                    out[row[0]] = date_from_db(row[1])
        return out

    async def order_zones(self, order_ids: Iterable[str]) -> dict[str, str]:
        """Each order's customer time zone (IANA name): the poll schedule's stand-in for the
        destination's zone, where the EDD's date and the delivery hours are local."""
        ids = sorted(set(order_ids))
        out: dict[str, str] = {}
        for chunk in chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            async with self.db.execute(
                    f"SELECT id, tz FROM orders WHERE id IN ({marks})", chunk) as cur:
                for row in await cur.fetchall():
                    out[row[0]] = row[1]
        return out

    async def carrier_health(self, carrier: str) -> models.CarrierHealth:
        async with self.db.execute("SELECT * FROM carrier_health WHERE carrier = ?",
                                   (carrier,)) as cur:
            row = await cur.fetchone()
        return health_from_row(row) if row else models.CarrierHealth(carrier=carrier)

    async def all_carrier_health(self) -> list[models.CarrierHealth]:
        async with self.db.execute("SELECT * FROM carrier_health ORDER BY carrier") as cur:
            return [health_from_row(r) for r in await cur.fetchall()]

    async def save_tick(self, *, shipments: Sequence[models.Shipment],
                        new_events: Mapping[int, Sequence[TrackingEvent]],
                        domain_events: Sequence[DomainEvent],
                        health: Sequence[models.CarrierHealth], dirty_orders: Iterable[str],
                        now: datetime) -> None:
        """Write one poll tick in one transaction: events, shipment state, carrier health,
        orders to re-evaluate, and the outbox rows planned from ``domain_events``."""
        stamp = to_db(now)
        async with self.transaction() as db:
            rows = [
                (sid, e.identity(), to_db(e.at),
                 e.local_time.isoformat() if e.local_time else None, int(e.offset_assumed),
                 e.status.value, e.code, e.description, e.location.city, e.location.state,
                 e.location.postal_code, e.location.country,
                 e.exception_reason.value if e.exception_reason else None, stamp)
                for sid, events in new_events.items() for e in events]
            if rows:
                await db.executemany(
                    "INSERT INTO events (shipment_id, identity, at, local_time, offset_assumed,"
                    " status, code, description, city, state, postal_code, country, "
                    "exception_reason, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (shipment_id, identity) DO NOTHING", rows)
            if shipments:
                await db.executemany(_UPDATE_SHIPMENT, [_shipment_params(s) for s in shipments])
            for h in health:
                await db.execute(_UPSERT_HEALTH, _health_params(h))
            dirty = sorted(set(dirty_orders))
            if dirty:
                await db.executemany("UPDATE orders SET rules_dirty = 1 WHERE id = ?",
                                     [(o,) for o in dirty])
            await self.enqueue(db, domain_events)

    async def save_health(self, health: models.CarrierHealth) -> None:
        async with self.transaction() as db:
            await db.execute(_UPSERT_HEALTH, _health_params(health))

    # ------------------------------------------------------------------ anomaly sweep

    async def orders_to_evaluate(self, now: datetime, limit: int) -> list[str]:
        """Orders with new data (dirty) or a passed recheck deadline; each index-driven."""
        async with self.db.execute(
                "SELECT id FROM orders WHERE rules_dirty = 1 LIMIT ?", (limit,)) as cur:
            ids = [r[0] for r in await cur.fetchall()]
        if len(ids) < limit:
            async with self.db.execute(
                    "SELECT id FROM orders WHERE rules_recheck_at <= ? "
                    "ORDER BY rules_recheck_at LIMIT ?", (to_db(now), limit - len(ids))) as cur:
                ids += [r[0] for r in await cur.fetchall() if r[0] not in ids]
        return ids

    async def rules_input(self, order_ids: Sequence[str]) -> RulesInput:
        data = RulesInput()
        data.orders = await self._orders_by_id(self.db, order_ids)
        shipment_ids = [s.id for o in data.orders.values() for s in o.shipments if s.id]
        for chunk in chunks(shipment_ids, 500):
            marks = ",".join("?" * len(chunk))
            async with self.db.execute(
                    f"SELECT * FROM events WHERE shipment_id IN ({marks})", chunk) as cur:
                for row in await cur.fetchall():
                    data.events.setdefault(row["shipment_id"], []).append(event_from_row(row))
            async with self.db.execute(
                    f"SELECT shipment_id FROM disputes WHERE resolved_at IS NULL AND "
                    f"shipment_id IN ({marks})", chunk) as cur:
                data.open_disputes.update(r[0] for r in await cur.fetchall())
        for chunk in chunks(list(order_ids), 500):
            marks = ",".join("?" * len(chunk))
            async with self.db.execute(
                    f"SELECT * FROM anomalies WHERE resolved_at IS NULL AND order_id IN ({marks})",
                    chunk) as cur:
                for row in await cur.fetchall():
                    data.open_anomalies.setdefault(row["order_id"], []).append(
                        anomaly_from_row(row))
        return data

    async def save_sweep(self, *, opened: Sequence[tuple[str, int | None, str, str, str | None]],
                         updated: Sequence[tuple[int, str]],
                         closed: Sequence[tuple[models.Anomaly, str]],
                         rechecks: Mapping[str, datetime | None], now: datetime) -> int:
        """Write anomaly changes of one sweep batch (opened: order, shipment, kind, detail,
        carrier; updated: anomaly id, detail) and the next recheck time per order."""
        stamp = to_db(now)
        events: list[DomainEvent] = []
        async with self.transaction() as db:
            for order_id, shipment_id, kind, detail, carrier in opened:
                subject = order_id if shipment_id is None else f"{order_id}/{shipment_id}"
                cur = await db.execute(
                    "INSERT INTO anomalies (kind, order_id, shipment_id, subject, carrier, detail,"
                    " opened_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (subject, kind) WHERE resolved_at IS NULL DO NOTHING "
                    "RETURNING id", (kind, order_id, shipment_id, subject, carrier, detail,
                                     stamp, stamp))
                row = await cur.fetchone()
                if row is None:
                    continue
                await db.execute("INSERT INTO anomaly_history (anomaly_id, at, change, detail) "
                                 "VALUES (?, ?, 'opened', ?)", (row[0], stamp, detail))
                events.append(DomainEvent(
                    kind=EventKind.anomaly_opened, order_id=order_id, shipment_id=shipment_id,
                    at=now, data={"anomaly_id": row[0], "kind": kind, "detail": detail,
                                  "carrier": carrier}))
            for anomaly_id, detail in updated:
                await db.execute("UPDATE anomalies SET detail = ?, last_seen_at = ? WHERE id = ?",
                                 (detail, stamp, anomaly_id))
                await db.execute("INSERT INTO anomaly_history (anomaly_id, at, change, detail) "
                                 "VALUES (?, ?, 'updated', ?)", (anomaly_id, stamp, detail))
            for anomaly, reason in closed:
                await db.execute("UPDATE anomalies SET resolved_at = ?, resolution = ?, "
                                 "last_seen_at = ? WHERE id = ? AND resolved_at IS NULL",
                                 (stamp, reason, stamp, anomaly.id))
                await db.execute("INSERT INTO anomaly_history (anomaly_id, at, change, detail) "
                                 "VALUES (?, ?, 'closed', ?)", (anomaly.id, stamp, reason))
                events.append(DomainEvent(
                    kind=EventKind.anomaly_closed, order_id=anomaly.order_id,
                    shipment_id=anomaly.shipment_id, at=now,
                    data={"anomaly_id": anomaly.id, "kind": anomaly.kind.value,
                          "reason": reason}))
            await db.executemany(
                "UPDATE orders SET rules_dirty = 0, rules_recheck_at = ? WHERE id = ?",
                [(to_db_opt(at), oid) for oid, at in rechecks.items()])
            await self.enqueue(db, events)
        return len(events)

    async def list_anomalies(self, *, kind: str | None = None, carrier: str | None = None,
                             open_only: bool = True, limit: int = 1000
                             ) -> list[models.Anomaly]:
        where, args = [], []
        if open_only:
            where.append("resolved_at IS NULL")
        if kind:
            where.append("kind = ?")
            args.append(kind)
        if carrier:
            where.append("carrier = ?")
            args.append(carrier)
        sql = "SELECT * FROM anomalies" + (" WHERE " + " AND ".join(where) if where else "")
        async with self.db.execute(sql + " ORDER BY opened_at, id LIMIT ?",
                                   (*args, limit)) as cur:
            return [anomaly_from_row(r) for r in await cur.fetchall()]

    async def anomaly_history(self, anomaly_id: int) -> list[tuple[datetime, str, str]]:
        from notifier.timefmt import from_db

        async with self.db.execute("SELECT at, change, detail FROM anomaly_history WHERE "
                                   "anomaly_id = ? ORDER BY id", (anomaly_id,)) as cur:
            return [(from_db(r[0]), r[1], r[2])  # type: ignore[misc]
                    for r in await cur.fetchall()]

    # ------------------------------------------------------------------ disputes

    async def open_dispute(self, order_id: str, tracking_number: str | None, reason: str, *,
                           now: datetime) -> models.Dispute:
        """Record "delivered but not received". Only for a shipment the carrier reported
        delivered; with several delivered shipments the tracking number must be given."""
        reason = reason.strip()
        if not reason:
            raise InputError("reason: required", field="reason")
        order = await self.get_order(order_id)  # type: ignore[attr-defined]
        candidates = [s for s in order.shipments
                      if tracking_number is None or s.tracking_number == tracking_number]
        if tracking_number is not None and not candidates:
            raise NotFound(f"order {order_id!r} has no shipment {tracking_number!r}")
        delivered = [s for s in candidates if s.status is Status.delivered]
        if not delivered:
            which = f"shipment {tracking_number}" if tracking_number else f"order {order_id}"
            raise InputError(f"{which}: the carrier has not reported it delivered, so it cannot"
                             " be disputed as delivered-not-received (it is "
                             f"{', '.join(s.status.value for s in candidates) or 'not shipped'})",
                             field="shipment")
        if len(delivered) > 1:
            raise InputError(f"order {order_id} has {len(delivered)} delivered shipments; "
                             "name one with --shipment", field="shipment")
        shipment = delivered[0]
        stamp = to_db(now)
        async with self.transaction() as db:
            cur = await db.execute(
                "INSERT INTO disputes (order_id, shipment_id, reason, opened_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (shipment_id) WHERE resolved_at IS NULL "
                "DO NOTHING RETURNING id", (order_id, shipment.id, reason, stamp))
            row = await cur.fetchone()
            if row is None:
                async with db.execute("SELECT * FROM disputes WHERE shipment_id = ? AND "
                                      "resolved_at IS NULL", (shipment.id,)) as c2:
                    existing = await c2.fetchone()
                assert existing is not None  # the conflicting open row
                return dispute_from_row(existing)  # already open: idempotent
            await db.execute("UPDATE orders SET rules_dirty = 1 WHERE id = ?", (order_id,))
            await self.enqueue(db, [DomainEvent(
                kind=EventKind.dispute_opened, order_id=order_id, shipment_id=shipment.id,
                at=now, data={"dispute_id": row[0], "reason": reason})])
            async with db.execute("SELECT * FROM disputes WHERE id = ?", (row[0],)) as c3:
                created = await c3.fetchone()
            assert created is not None
            return dispute_from_row(created)

    async def resolve_dispute(self, dispute_id: int, resolution: str, note: str = "", *,
                              now: datetime) -> models.Dispute:
        try:
            models.DisputeResolution(resolution)
        except ValueError:
            raise InputError(f"resolution: {resolution!r} is not one of "
                             f"{', '.join(r.value for r in models.DisputeResolution)}",
                             field="resolution") from None
        stamp = to_db(now)
        async with self.transaction() as db:
            async with db.execute("SELECT * FROM disputes WHERE id = ?", (dispute_id,)) as cur:
                row = await cur.fetchone()
            if row is None:
                raise NotFound(f"dispute {dispute_id} not found")
            if row["resolved_at"] is not None:
                return dispute_from_row(row)  # resolving twice changes nothing
            await db.execute("UPDATE disputes SET resolved_at = ?, resolution = ?, note = ? "
                             "WHERE id = ?", (stamp, resolution, note, dispute_id))
            subject = f"{row['order_id']}/{row['shipment_id']}"
            async with db.execute(
                    "UPDATE anomalies SET resolved_at = ?, resolution = ?, last_seen_at = ? "
                    "WHERE subject = ? AND kind = 'delivered_disputed' AND resolved_at IS NULL "
                    "RETURNING id", (stamp, f"dispute resolved: {resolution}", stamp,
                                     subject)) as cur:
                for (anomaly_id,) in await cur.fetchall():
                    await db.execute(
                        "INSERT INTO anomaly_history (anomaly_id, at, change, detail) "
                        "VALUES (?, ?, 'closed', ?)",
                        (anomaly_id, stamp, f"dispute resolved: {resolution} {note}".strip()))
            await self.enqueue(db, [DomainEvent(
                kind=EventKind.dispute_resolved, order_id=row["order_id"],
                shipment_id=row["shipment_id"], at=now,
                data={"dispute_id": dispute_id, "resolution": resolution, "note": note})])
            async with db.execute("SELECT * FROM disputes WHERE id = ?", (dispute_id,)) as cur:
                resolved = await cur.fetchone()
            assert resolved is not None
            return dispute_from_row(resolved)

    async def open_disputes_for_order(self, order_id: str) -> list[models.Dispute]:
        async with self.db.execute("SELECT * FROM disputes WHERE order_id = ? AND resolved_at "
                                   "IS NULL ORDER BY id", (order_id,)) as cur:
            return [dispute_from_row(r) for r in await cur.fetchall()]


_UPDATE_SHIPMENT = """
UPDATE shipments SET status = ?, status_detail = ?, exception_reason = ?, first_edd_start = ?,
    first_edd_end = ?, current_edd_start = ?, current_edd_end = ?, delivered_at = ?,
    signed_by = ?, service = ?, last_event_at = ?, next_poll_at = ?, last_poll_at = ?,
    last_success_at = ?, last_change_at = ?, polls = ?, unchanged_polls = ?,
    consecutive_failures = ?, blind_seconds = ?
WHERE id = ?
"""


def _shipment_params(s: models.Shipment) -> tuple[object, ...]:
    return (
        s.status.value, s.status_detail,
        s.exception_reason.value if s.exception_reason else None,
        date_to_db(s.first_edd.start if s.first_edd else None),
        date_to_db(s.first_edd.end if s.first_edd else None),
        date_to_db(s.current_edd.start if s.current_edd else None),
        date_to_db(s.current_edd.end if s.current_edd else None),
        to_db_opt(s.delivered_at), s.signed_by, s.service, to_db_opt(s.last_event_at),
        to_db_opt(s.next_poll_at), to_db_opt(s.last_poll_at), to_db_opt(s.last_success_at),
        to_db_opt(s.last_change_at), s.polls, s.unchanged_polls, s.consecutive_failures,
        s.blind_seconds, s.id)


_UPSERT_HEALTH = """
INSERT INTO carrier_health (carrier, last_success_at, last_failure_at, last_error,
    consecutive_failures, successes, failures, rate_limited, circuit_state, circuit_opened_at,
    blocked_until, paused_reason, window_day, day_requests, window_hour, hour_requests)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (carrier) DO UPDATE SET last_success_at = excluded.last_success_at,
    last_failure_at = excluded.last_failure_at, last_error = excluded.last_error,
    consecutive_failures = excluded.consecutive_failures, successes = excluded.successes,
    failures = excluded.failures, rate_limited = excluded.rate_limited,
    circuit_state = excluded.circuit_state, circuit_opened_at = excluded.circuit_opened_at,
    blocked_until = excluded.blocked_until, paused_reason = excluded.paused_reason,
    window_day = excluded.window_day, day_requests = excluded.day_requests,
    window_hour = excluded.window_hour, hour_requests = excluded.hour_requests
"""


def _health_params(h: models.CarrierHealth) -> tuple[object, ...]:
    return (h.carrier, to_db_opt(h.last_success_at), to_db_opt(h.last_failure_at), h.last_error,
            h.consecutive_failures, h.successes, h.failures, h.rate_limited, h.circuit_state,
            to_db_opt(h.circuit_opened_at), to_db_opt(h.blocked_until), h.paused_reason,
            h.window_day, h.day_requests, h.window_hour, h.hour_requests)

