"""Ops alert rules (pure, hand-made inputs) and their cooldown/de-duplication through the real
``ops_alerts`` table (a SQLite file in tmp_path)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from notifier import alerts
from notifier.channels.base import RenderedMessage
from notifier.config import AlertSettings
from notifier.digest import CarrierHealthRecord
from notifier.store.sqlite import SqliteStore

NOW = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)
SETTINGS = AlertSettings(circuit_open_after=timedelta(minutes=15), dead_threshold=10,
                         stale_spike=20, cooldown=timedelta(hours=1))


def keys(inputs: alerts.AlertInputs, settings: AlertSettings = SETTINGS) -> list[str]:
    return [a.key for a in alerts.evaluate(inputs, now=NOW, settings=settings)]


# ------------------------------------------------------------------------------ rules


@pytest.mark.parametrize(("health", "alerted"), [
    (CarrierHealthRecord(carrier="ups", last_success_at=NOW - timedelta(days=1)), False),
    (CarrierHealthRecord(carrier="ups", circuit_state="open",
                         circuit_opened_at=NOW - timedelta(minutes=14)), False),
    (CarrierHealthRecord(carrier="ups", circuit_state="open",
                         circuit_opened_at=NOW - timedelta(minutes=15)), True),
    (CarrierHealthRecord(carrier="ups", circuit_state="half_open",
                         circuit_opened_at=NOW - timedelta(hours=2)), True),
    # Paused for auth: measured from the last success when no circuit time is recorded.
    (CarrierHealthRecord(carrier="ups", paused_reason="auth: 401",
                         last_success_at=NOW - timedelta(minutes=5)), False),
    (CarrierHealthRecord(carrier="ups", paused_reason="auth: 401",
                         last_success_at=NOW - timedelta(minutes=20)), True),
    # Never worked at all: nothing to wait for.
    (CarrierHealthRecord(carrier="ups", paused_reason="auth: 401"), True),
], ids=["closed", "open-14m", "open-15m", "half-open-2h", "paused-5m", "paused-20m",
        "paused-never-worked"])
def test_carrier_down_rule(health: CarrierHealthRecord, alerted: bool) -> None:
    assert keys(alerts.AlertInputs(health=[health])) == (["carrier_down:ups"] if alerted else [])


def test_carrier_down_detail_names_state_duration_and_error() -> None:
    h = CarrierHealthRecord(carrier="dhl", circuit_state="open", last_error="HTTP 503",
                            circuit_opened_at=NOW - timedelta(minutes=42))
    [alert] = alerts.evaluate(alerts.AlertInputs(health=[h]), now=NOW, settings=SETTINGS)
    assert alert.detail == "dhl: circuit open, for 42m; last error: HTTP 503"


@pytest.mark.parametrize(("dead", "alerted"), [(0, False), (10, False), (11, True)])
def test_dead_notifications_over_threshold(dead: int, alerted: bool) -> None:
    assert keys(alerts.AlertInputs(dead_recent=dead)) == (
        ["dead_notifications"] if alerted else [])


def test_stale_spike_per_carrier() -> None:
    inputs = alerts.AlertInputs(stale_opened={"usps": 20, "ups": 19, "fedex": 35})
    assert keys(inputs) == ["stale_spike:fedex", "stale_spike:usps"]
    off = AlertSettings(stale_spike=0)
    assert keys(inputs, off) == []  # 0 disables the rule


def test_alert_message() -> None:
    record = alerts.OpsAlertRecord(key="stale_spike:usps", first_at=NOW, last_sent_at=None,
                                   count=3, detail="25 stale anomalies opened on usps")
    msg = alerts.alert_message(record, now=NOW)
    assert msg.subject == "[notifier alert] stale anomaly spike: usps"
    assert "25 stale anomalies opened on usps" in msg.text
    assert "Raised: 3 time(s)" in msg.text
    assert msg.notification_id == "ops-alert-stale_spike:usps-20261116T120000"


# ------------------------------------------------------------------------------ delivery


class Outbox:
    """Records what deliver_pending hands over; can be told to fail."""

    def __init__(self) -> None:
        self.sent: list[RenderedMessage] = []
        self.result: bool | Exception = True

    async def __call__(self, message: RenderedMessage) -> bool:
        if isinstance(self.result, Exception):
            raise self.result
        if self.result:
            self.sent.append(message)
        return self.result


async def test_dedup_one_alert_for_repeated_raises(store: SqliteStore) -> None:
    out = Outbox()
    assert await alerts.raise_alert(store, "channel_paused:email", "auth refused", NOW)
    assert await alerts.raise_alert(store, "channel_paused:email", "auth refused again",
                                    NOW + timedelta(seconds=30))
    assert await alerts.deliver_pending(store, out, now=NOW + timedelta(minutes=1)) == 1
    assert [m.subject for m in out.sent] == ["[notifier alert] channel paused: email"]
    assert "auth refused again" in out.sent[0].text  # the latest detail
    [row] = await store.ops_alerts_recent()
    assert (row.count, row.first_at, row.last_sent_at) == (2, NOW, NOW + timedelta(minutes=1))


async def test_cooldown_limits_repeats_per_key(store: SqliteStore) -> None:
    out = Outbox()
    cooldown = timedelta(hours=1)
    await alerts.raise_alert(store, "carrier_down:ups", "x", NOW, cooldown=cooldown)
    await alerts.deliver_pending(store, out, now=NOW)
    for minutes in (1, 30, 59):
        at = NOW + timedelta(minutes=minutes)
        assert not await alerts.raise_alert(store, "carrier_down:ups", "x", at,
                                            cooldown=cooldown)
        assert await alerts.deliver_pending(store, out, now=at) == 0
    # Another key is not held back by this one's cooldown.
    assert await alerts.raise_alert(store, "carrier_down:dhl", "y",
                                    NOW + timedelta(minutes=59), cooldown=cooldown)
    at = NOW + timedelta(minutes=60)
    assert await alerts.raise_alert(store, "carrier_down:ups", "x", at, cooldown=cooldown)
    assert await alerts.deliver_pending(store, out, now=at) == 2
    # Pending alerts go out in order of first appearance (ups was first seen before dhl).
    assert [m.subject.rsplit(": ", 1)[1] for m in out.sent] == ["ups", "ups", "dhl"]
    ups = {r.key: r for r in await store.ops_alerts_recent()}["carrier_down:ups"]
    assert ups.count == 5


async def test_failed_delivery_stays_pending(store: SqliteStore) -> None:
    out = Outbox()
    await alerts.raise_alert(store, "dead_notifications", "12 dead", NOW)
    out.result = False
    assert await alerts.deliver_pending(store, out, now=NOW) == 0
    out.result = RuntimeError("smtp exploded")
    with pytest.raises(RuntimeError):
        await alerts.deliver_pending(store, out, now=NOW + timedelta(minutes=1))
    assert [r.key for r in await store.ops_alerts_pending()] == ["dead_notifications"]
    out.result = True
    assert await alerts.deliver_pending(store, out, now=NOW + timedelta(minutes=2)) == 1
    assert await store.ops_alerts_pending() == []


async def test_a_claimed_alert_is_not_sent_twice(store: SqliteStore) -> None:
    await alerts.raise_alert(store, "stale_spike:ups", "x", NOW)
    assert await store.ops_alert_claim("stale_spike:ups", now=NOW)
    assert not await store.ops_alert_claim("stale_spike:ups", now=NOW)  # another process
    out = Outbox()
    assert await alerts.deliver_pending(store, out, now=NOW) == 0


async def test_rows_written_by_another_feature_are_delivered(store: SqliteStore) -> None:
    # The outbox may insert the row itself (pending = last_sent_at NULL) instead of calling
    # raise_alert; such a row goes out on the next run like any other.
    async with store.transaction() as db:
        await db.execute("INSERT INTO ops_alerts (key, first_at, count, detail) "
                         "VALUES ('channel_paused:apns', '2026-11-16T11:00:00.000000Z', 1, "
                         "'bad key')")
    out = Outbox()
    assert await alerts.deliver_pending(store, out, now=NOW) == 1
    assert out.sent[0].subject == "[notifier alert] channel paused: apns"


async def test_channel_paused_by_the_outbox_rearms_after_the_cooldown(
        store: SqliteStore) -> None:
    from notifier.app import App
    from notifier.clock import SimulatedClock
    from notifier.config import Settings
    from notifier.digest_job import channel_paused_hook

    clock = SimulatedClock(NOW, speed=0)
    app = App(settings=Settings(alerts=SETTINGS), clock=clock, store=store)
    hook = channel_paused_hook(app)
    out = Outbox()

    async def pause(reason: str) -> None:  # what notifier.outbox does on a pause
        await store.record_channel_paused("email", reason, now=clock.now())
        await hook("email", reason)

    await pause("535 auth failed")
    assert await alerts.deliver_pending(store, out, now=clock.now()) == 1
    clock.advance(timedelta(minutes=20))
    await pause("535 auth failed again")  # paused again within the cooldown: no new mail
    assert await alerts.deliver_pending(store, out, now=clock.now()) == 0
    clock.advance(timedelta(minutes=45))
    await pause("535 still failing")
    assert await alerts.deliver_pending(store, out, now=clock.now()) == 1
    assert [m.subject for m in out.sent] == ["[notifier alert] channel paused: email"] * 2
    assert "535 still failing" in out.sent[1].text
    [row] = await store.ops_alerts_recent()
    assert row.count == 3  # one per pause: the hook does not count twice
