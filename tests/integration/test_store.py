"""The SQLite store: migrations, round trips, constraints, indexes, idempotent upserts."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from notifier.domain import NewNotification
from notifier.errors import NotFound
from notifier.models import OmsStatus
from notifier.store.base import OrderInput, ShipmentInput
from notifier.store.sqlite import LATEST_VERSION, MIGRATIONS, SqliteStore

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def order(oid: str = "1001", **kw: object) -> OrderInput:
    base: dict[str, object] = {"id": oid, "email": f"c{oid}@example.com", "name": "Ann",
                               "locale": "fr", "tz": "Europe/Paris"}
    base.update(kw)
    return OrderInput(**base)  # type: ignore[arg-type]


async def test_migrates_an_empty_file_to_latest(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "a.db") as s:
        assert await s.schema_version() == LATEST_VERSION
        async with s.db.execute("PRAGMA journal_mode") as cur:
            assert (await cur.fetchone())[0] == "wal"
        async with s.db.execute("PRAGMA foreign_keys") as cur:
            assert (await cur.fetchone())[0] == 1


@pytest.mark.parametrize("start", range(0, LATEST_VERSION + 1))
async def test_migrates_from_every_earlier_version(tmp_path: Path, start: int) -> None:
    path = tmp_path / "b.db"
    async with SqliteStore(path, target_version=start) as s:
        assert await s.schema_version() == start
    async with SqliteStore(path) as s:
        assert await s.schema_version() == LATEST_VERSION
        await s.upsert_orders([order()], now=NOW)
    # Idempotent: opening again changes nothing.
    async with SqliteStore(path) as s:
        assert await s.schema_version() == LATEST_VERSION
        assert (await s.get_order("1001")).customer.locale == "fr"


async def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    con.close()
    with pytest.raises(Exception, match="newer than this notifier knows"):
        async with SqliteStore(path):
            pass


def test_migration_files_are_numbered() -> None:
    assert [v for v, _, _ in MIGRATIONS] == list(range(1, LATEST_VERSION + 1))


async def test_order_round_trip(store: SqliteStore) -> None:
    summary = await store.upsert_orders([order(
        promised_date=date(2026, 11, 9), oms_status=OmsStatus.processing,
        shipments=(ShipmentInput(carrier="ups", tracking_number="1Z12345E0205271688"),
                   ShipmentInput(carrier="usps", tracking_number="9400111899223197428490")))],
        now=NOW)
    assert (summary.created, summary.shipments_added) == (1, 2)
    got = await store.get_order("1001")
    assert got.customer.tz == "Europe/Paris"
    assert got.promised_date == date(2026, 11, 9)
    assert got.oms_status is OmsStatus.processing
    assert [s.carrier for s in got.shipments] == ["ups", "usps"]
    assert got.shipments[0].next_poll_at == NOW  # a new shipment is polled soon


async def test_upsert_is_idempotent_and_keeps_unset_fields(store: SqliteStore) -> None:
    await store.upsert_orders([order(shipments=(ShipmentInput(carrier="ups",
                                                              tracking_number="1Z1"),))], now=NOW)
    again = await store.upsert_orders([order(shipments=(ShipmentInput(carrier="ups",
                                                                      tracking_number="1Z1"),))],
                                      now=NOW + timedelta(hours=1))
    assert (again.created, again.updated, again.unchanged, again.shipments_added) == (0, 0, 1, 0)
    partial = await store.upsert_orders([OrderInput(id="1001", email="c1001@example.com")],
                                        now=NOW)
    assert partial.unchanged == 1  # name/locale/tz not given: kept, so nothing changed
    got = await store.get_order("1001")
    assert (got.customer.name, got.customer.locale, len(got.shipments)) == ("Ann", "fr", 1)


async def test_one_batch_naming_an_order_twice_keeps_both_shipments(store: SqliteStore) -> None:
    await store.upsert_orders([
        order(shipments=(ShipmentInput(carrier="ups", tracking_number="1Z1"),)),
        order(shipments=(ShipmentInput(carrier="fedex", tracking_number="123456789012"),)),
    ], now=NOW)
    assert len((await store.get_order("1001")).shipments) == 2


async def test_status_change_and_not_found(store: SqliteStore) -> None:
    await store.upsert_orders([order()], now=NOW)
    got = await store.set_oms_status("1001", OmsStatus.backordered, now=NOW,
                                     expected_ship_date=date(2026, 11, 20))
    assert (got.oms_status, got.expected_ship_date) == (OmsStatus.backordered, date(2026, 11, 20))
    with pytest.raises(NotFound, match="order 'nope' not found"):
        await store.set_oms_status("nope", OmsStatus.cancelled, now=NOW)
    with pytest.raises(NotFound):
        await store.order_details("nope")


async def test_planner_rows_are_written_in_the_same_transaction(store: SqliteStore) -> None:
    calls = []

    def planner(events, orders):  # type: ignore[no-untyped-def]
        calls.append([e.kind.value for e in events])
        return [NewNotification(dedup_key=f"{e.order_id}:status:{e.data['new']}",
                                order_id=e.order_id, trigger=e.data["new"], channel="email",
                                recipient=orders[e.order_id].customer.email, created_at=e.at,
                                next_attempt_at=e.at) for e in events]

    store.planner = planner
    await store.upsert_orders([order(oms_status=OmsStatus.payment_hold)], now=NOW)
    await store.upsert_orders([order(oms_status=OmsStatus.payment_hold)], now=NOW)  # no change
    await store.set_oms_status("1001", OmsStatus.cancelled, now=NOW)
    details = await store.order_details("1001")
    assert [n.trigger for n in details.notifications] == ["payment_hold", "cancelled"]
    assert calls == [["order.status_changed"], ["order.status_changed"]]


async def test_planner_failure_rolls_back_the_state_change(store: SqliteStore) -> None:
    await store.upsert_orders([order()], now=NOW)

    def broken(events, orders):  # type: ignore[no-untyped-def]
        raise RuntimeError("planner bug")

    store.planner = broken
    with pytest.raises(RuntimeError):
        await store.set_oms_status("1001", OmsStatus.cancelled, now=NOW)
    assert (await store.get_order("1001")).oms_status is OmsStatus.received


async def test_constraints_hold(store: SqliteStore) -> None:
    await store.upsert_orders([order()], now=NOW)
    with pytest.raises(sqlite3.IntegrityError):
        async with store.transaction() as db:
            await db.execute("INSERT INTO shipments (order_id, carrier, tracking_number, "
                             "created_at) VALUES ('missing', 'ups', '1Z', 'x')")
    async with store.transaction() as db:
        sid = (await (await db.execute(
            "INSERT INTO shipments (order_id, carrier, tracking_number, created_at) "
            "VALUES ('1001', 'ups', '1Z9', 'x') RETURNING id")).fetchone())[0]
        await db.execute("INSERT INTO anomalies (kind, order_id, shipment_id, subject, opened_at,"
                         " last_seen_at) VALUES ('overdue', '1001', ?, 's', 'a', 'a')", (sid,))
    with pytest.raises(sqlite3.IntegrityError):  # one open anomaly per subject and kind
        async with store.transaction() as db:
            await db.execute("INSERT INTO anomalies (kind, order_id, subject, opened_at, "
                             "last_seen_at) VALUES ('overdue', '1001', 's', 'b', 'b')")


@pytest.mark.parametrize(("query", "index"), [
    ("SELECT id FROM shipments WHERE carrier = 'ups' AND next_poll_at IS NOT NULL "
     "AND next_poll_at <= '2026' ORDER BY next_poll_at LIMIT 100", "shipments_due"),
    ("SELECT id FROM notifications WHERE next_attempt_at <= '2026' "
     "ORDER BY next_attempt_at LIMIT 100", "notifications_due"),
    ("SELECT id FROM orders WHERE rules_recheck_at IS NOT NULL AND rules_recheck_at <= '2026'",
     "orders_rules_recheck"),
])
async def test_hot_queries_use_their_index(store: SqliteStore, query: str, index: str) -> None:
    async with store.db.execute("EXPLAIN QUERY PLAN " + query) as cur:
        plan = " ".join(str(row[3]) for row in await cur.fetchall())
    assert index in plan and "SCAN" not in plan.replace(f"USING INDEX {index}", ""), plan


async def test_a_later_row_supersedes_pending_rows_of_its_group(store: SqliteStore) -> None:
    await store.upsert_orders([order()], now=NOW)

    def row(trigger: str, supersedes: tuple[str, ...] = ()) -> NewNotification:
        return NewNotification(dedup_key=f"s1:{trigger}", order_id="1001", trigger=trigger,
                               channel="email", recipient="c1001@example.com", created_at=NOW,
                               next_attempt_at=NOW, supersede_group="s1", supersedes=supersedes)

    async with store.transaction() as db:
        # An earlier transaction left a pending "shipped"...
        assert await store.insert_notifications(db, [row("shipped")]) == 1
    async with store.transaction() as db:
        # ...then one tick saw out for delivery and delivered together.
        inserted = await store.insert_notifications(db, [
            row("out_for_delivery", ("shipped",)),
            row("delivered", ("shipped", "out_for_delivery"))])
        assert inserted == 2
        # Inserting the same dedup keys again is a no-op.
        assert await store.insert_notifications(db, [row("delivered")]) == 0
    status = {n.trigger: n.status.value for n in (await store.order_details("1001")).notifications}
    assert status == {"shipped": "superseded", "out_for_delivery": "superseded",
                      "delivered": "pending"}
