"""The outbox end to end: planner rows in a SQLite file, the sender, real local servers.

E-mail goes to a real aiosmtpd :class:`SmtpSink`; push goes to the local
:class:`PushReceiverThread` that speaks FCM, APNs (h2c) and Web Push. Time is a
:class:`SimulatedClock` at speed 0 moved with ``advance``; tenacity waits are ``wait_none``.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from tenacity import wait_none

from notifier import metrics, models
from notifier.app import App
from notifier.channels.apns import ApnsChannel
from notifier.channels.base import Channel, Receipt, Recipient, RenderedMessage
from notifier.channels.email import EmailChannel, make_message_id
from notifier.channels.fcm import FcmChannel
from notifier.channels.webpush import WebPushChannel, load_vapid_key
from notifier.clock import SimulatedClock
from notifier.config import (
    ApiSettings,
    ApnsSettings,
    FcmSettings,
    Secret,
    Settings,
    WebPushSettings,
)
from notifier.devtools.push_receiver import PushReceiverThread, make_vapid_key
from notifier.devtools.smtp_sink import SmtpSink
from notifier.domain import DomainEvent, EventKind
from notifier.errors import DeliveryTransient
from notifier.outbox import OutboxSender, _GroupCommit, install, notification_id
from notifier.planner import PlanPolicy, plan
from notifier.retry import RetryPolicy
from notifier.store.base import OrderInput, ShipmentInput
from notifier.store.sqlite import SqliteStore
from notifier.store.sqlite_outbox import Outcome
from notifier.unsubscribe import verify_token
from tests.support.smtp import email_settings

NOW = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
SECRET = "unsubscribe-test-secret"
TEAM, KEY_ID, TOPIC = "TEAM123456", "KEY1234567", "com.example.shop"


def settings(**notifications: Any) -> Settings:
    base = Settings()
    return replace(base, api=ApiSettings(public_url="https://shop.example",
                                         unsubscribe_secret=Secret(SECRET)),
                   notifications=replace(base.notifications, **notifications))


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(NOW, speed=0)


@pytest.fixture
async def store(tmp_path: Path, clock: SimulatedClock) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "outbox.sqlite3")
    await s.open()
    channels = ("email", "fcm", "apns", "webpush")
    pol = PlanPolicy(channels={t.value: channels for t in models.Trigger})
    s.planner = lambda events, inputs: plan(events, inputs, policy=pol, now=clock.now())
    yield s
    await s.close()


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as s:
        yield s


@pytest.fixture(scope="module")
def push() -> Iterator[PushReceiverThread]:
    with PushReceiverThread() as srv:
        yield srv


@pytest.fixture
async def email(sink: SmtpSink, clock: SimulatedClock) -> AsyncIterator[EmailChannel]:
    channel = EmailChannel(email_settings(sink), clock=clock)
    yield channel
    await channel.aclose()


def sender(store: SqliteStore, clock: SimulatedClock, channels: dict[str, Channel],
           cfg: Settings | None = None, **kw: Any) -> OutboxSender:
    return OutboxSender(store=store, clock=clock, settings=cfg or settings(), channels=channels,
                        retry=RetryPolicy(attempts=3, wait=wait_none(), rng=random.Random(7)),
                        **kw)


async def seed(store: SqliteStore, n: int) -> list[models.Order]:
    await store.upsert_orders([
        OrderInput(id=f"A{i}", email=f"c{i}@example.com", name=f"Customer {i}",
                   locale=("en", "fr", "de")[i % 3], tz="America/New_York",
                   shipments=(ShipmentInput(carrier="ups",
                                            tracking_number=f"1Z999AA1012345678{i}"),))
        for i in range(n)], now=NOW)
    return [await store.get_order(f"A{i}") for i in range(n)]


async def change(store: SqliteStore, clock: SimulatedClock, orders: list[models.Order],
                 new: str = "out_for_delivery") -> None:
    """What the poller does: a status change and its notifications in one transaction."""
    at = clock.now()
    async with store.transaction() as db:
        await store.enqueue(db, [DomainEvent(
            kind=EventKind.shipment_status_changed, order_id=o.id, at=at,
            shipment_id=o.shipments[0].id,
            data={"old": "in_transit", "new": new, "first_info": False, "carrier": "ups",
                  "event_at": (at - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "tracking_number": o.shipments[0].tracking_number}) for o in orders])


async def rows(store: SqliteStore, channel: str | None = None) -> list[models.Notification]:
    found = await store.list_notifications(limit=1000)
    return sorted((r for r in found if channel is None or r.channel.value == channel),
                  key=lambda r: r.id or 0)


def sent_count(channel: str, outcome: str) -> float:
    value = metrics.REGISTRY.get_sample_value("notifier_sends_total",
                                              {"channel": channel, "outcome": outcome})
    return value or 0.0


# ------------------------------------------------------------------------------ e-mail


async def test_each_notification_is_delivered_once(store: SqliteStore, clock: SimulatedClock,
                                                   sink: SmtpSink, email: EmailChannel) -> None:
    orders = await seed(store, 3)
    await change(store, clock, orders)
    before = sent_count("email", "sent")
    result = await sender(store, clock, {"email": email}).drain()
    assert (result.claimed, result.sent) == (3, 3)
    # A re-poll replaying the change, a restart (new sender), another drain: nothing more.
    await change(store, clock, orders)
    clock.advance(timedelta(minutes=1))
    assert (await sender(store, clock, {"email": email}).drain()).claimed == 0
    got = sink.messages
    assert sorted(m.envelope_to[0] for m in got) == [f"c{i}@example.com" for i in range(3)]
    assert sent_count("email", "sent") - before == 3
    for row in await rows(store):
        assert row.status is models.NotificationStatus.sent and row.sent_at == NOW
        assert row.next_attempt_at is None and row.attempts == 1
        msg = next(m for m in got if m.envelope_to[0] == row.recipient)
        assert msg["Message-ID"] == make_message_id(notification_id(row), "shop.example.com")
        url = str(msg["List-Unsubscribe"]).split("<")[1].split(">")[0]
        assert url.startswith("https://shop.example/unsubscribe?t=")
        assert verify_token(url.split("t=")[1], SECRET) == (row.recipient, "email")
    assert sink.connections <= 2  # reused connections (the channel's pool), not one per mail


async def test_421_and_451_are_retried_and_delivered_once(
        store: SqliteStore, clock: SimulatedClock, sink: SmtpSink, email: EmailChannel,
        caplog: pytest.LogCaptureFixture) -> None:
    orders = await seed(store, 3)
    await change(store, clock, orders)
    sink.fail_next("421 4.3.2 shutting down, try again", stage="MAIL")
    sink.fail_next("451 4.3.0 temporary failure", stage="RCPT", recipient="c1@example.com")
    with caplog.at_level("WARNING", logger="notifier.retry"):
        result = await sender(store, clock, {"email": email},
                              cfg=settings(concurrency=1)).drain()
    assert result.sent == 3 and result.retried == 0
    retries = [r.getMessage() for r in caplog.records if r.name == "notifier.retry"]
    assert len(retries) == 2 and "421" in retries[0] and "451" in retries[1]
    assert sink.connections == 2  # the 421 closed the first connection; reopened once
    assert all(r.attempts == 1 for r in await rows(store))  # one outbox round each
    assert sorted(m.envelope_to[0] for m in sink.messages) == [
        f"c{i}@example.com" for i in range(3)]
    assert len({m["Message-ID"] for m in sink.messages}) == 3


async def test_550_fails_one_recipient_and_the_others_are_delivered(
        store: SqliteStore, clock: SimulatedClock, sink: SmtpSink, email: EmailChannel) -> None:
    orders = await seed(store, 3)
    await change(store, clock, orders)
    sink.fail_next("550 5.1.1 no such user", count=10, stage="RCPT", recipient="c1@example.com")
    result = await sender(store, clock, {"email": email}).drain()
    assert (result.sent, result.failed) == (2, 1)
    by_rcpt = {r.recipient: r for r in await rows(store)}
    assert by_rcpt["c1@example.com"].status is models.NotificationStatus.failed
    assert "550" in (by_rcpt["c1@example.com"].last_error or "")
    assert by_rcpt["c1@example.com"].next_attempt_at is None
    assert sorted(m.envelope_to[0] for m in sink.messages) == ["c0@example.com",
                                                               "c2@example.com"]
    clock.advance(timedelta(hours=1))
    assert (await sender(store, clock, {"email": email}).drain()).claimed == 0


async def test_an_hour_long_outage_then_everything_once(
        store: SqliteStore, clock: SimulatedClock, sink: SmtpSink) -> None:
    orders = await seed(store, 4)
    await change(store, clock, orders)
    sink.down()
    cfg = settings()
    channel = EmailChannel(email_settings(sink, timeout=timedelta(seconds=2)), clock=clock)
    try:
        first = await sender(store, clock, {"email": channel}, cfg).drain()
        assert first.retried == 4 and sink.messages == []
        pending = await rows(store)
        assert all(r.status is models.NotificationStatus.pending and r.attempts == 1
                   and r.next_attempt_at is not None and r.next_attempt_at > NOW
                   for r in pending)
        # Every 10 simulated minutes for an hour: due rows fail again and back off further.
        for _ in range(6):
            clock.advance(timedelta(minutes=10))
            await sender(store, clock, {"email": channel}, cfg).drain()
        assert sink.messages == []
        assert max(r.attempts for r in await rows(store)) >= 3
    finally:
        await channel.aclose()
    sink.up()
    # A restarted process: new channel, new sender; the schedule lives in the rows.
    channel = EmailChannel(email_settings(sink), clock=clock)
    try:
        for _ in range(12):
            clock.advance(timedelta(minutes=10))
            await sender(store, clock, {"email": channel}, cfg).drain()
    finally:
        await channel.aclose()
    assert sorted(m.envelope_to[0] for m in sink.messages) == [
        f"c{i}@example.com" for i in range(4)]
    assert all(r.status is models.NotificationStatus.sent for r in await rows(store))


async def test_rows_past_give_up_after_are_dead(
        store: SqliteStore, clock: SimulatedClock, sink: SmtpSink, email: EmailChannel) -> None:
    await change(store, clock, await seed(store, 2))
    sink.down()
    cfg = settings(give_up_after=timedelta(hours=2))
    await sender(store, clock, {"email": email}, cfg).drain()
    clock.advance(timedelta(hours=2, minutes=1))
    result = await sender(store, clock, {"email": email}, cfg).drain()
    assert result.dead == 2 and result.claimed == 0
    assert {r.status for r in await rows(store)} == {models.NotificationStatus.dead}


class CrashAfterSend:
    """Sends for real, then dies before the outcome is recorded (a kill -9 mid-flight)."""

    name = "email"

    def __init__(self, inner: EmailChannel) -> None:
        self.inner = inner

    async def send(self, message: RenderedMessage, recipient: Recipient) -> Receipt:
        await self.inner.send(message, recipient)
        raise asyncio.CancelledError

    async def aclose(self) -> None:
        return None


async def test_a_row_left_sending_by_a_crash_is_resent_after_its_lease_with_the_same_id(
        store: SqliteStore, clock: SimulatedClock, sink: SmtpSink, email: EmailChannel) -> None:
    await change(store, clock, await seed(store, 1))
    with pytest.raises(asyncio.CancelledError):
        await sender(store, clock, {"email": CrashAfterSend(email)}).drain()  # type: ignore[dict-item]
    (row,) = await rows(store)
    assert row.status is models.NotificationStatus.sending
    lease = settings().notifications.lease
    assert row.next_attempt_at == NOW + lease
    # Still leased: a restarted sender leaves it alone.
    assert (await sender(store, clock, {"email": email}).drain()).claimed == 0
    clock.advance(lease + timedelta(seconds=1))
    assert (await sender(store, clock, {"email": email}).drain()).sent == 1
    first, second = sink.messages
    assert first["Message-ID"] == second["Message-ID"]  # the receiver can de-duplicate
    assert (await rows(store))[0].status is models.NotificationStatus.sent


async def test_delivered_supersedes_a_pending_out_for_delivery(
        store: SqliteStore, clock: SimulatedClock, sink: SmtpSink, email: EmailChannel) -> None:
    orders = await seed(store, 1)
    await change(store, clock, orders, "out_for_delivery")
    clock.advance(timedelta(hours=2))
    await change(store, clock, orders, "delivered")
    await sender(store, clock, {"email": email}).drain()
    status = {r.trigger: r.status for r in await rows(store)}
    assert status == {"out_for_delivery": models.NotificationStatus.superseded,
                      "delivered": models.NotificationStatus.sent}
    assert len(sink.messages) == 1


async def test_stopping_claims_nothing(store: SqliteStore, clock: SimulatedClock,
                                       email: EmailChannel) -> None:
    await change(store, clock, await seed(store, 2))
    assert (await sender(store, clock, {"email": email}, stopping=lambda: True).drain()
            ).claimed == 0
    assert {r.status for r in await rows(store)} == {models.NotificationStatus.pending}


class Recording:
    """A channel that accepts after a short real pause and records what it was given."""

    name: ClassVar[str] = "email"

    def __init__(self, *, pause: float = 0.0, transient_failures: int = 0) -> None:
        self.pause = pause
        self.sent: list[str] = []
        self.calls = 0
        self.transient_failures = transient_failures

    async def send(self, message: RenderedMessage, recipient: Recipient) -> Receipt:
        self.calls += 1
        await asyncio.sleep(self.pause)
        if self.transient_failures:
            self.transient_failures -= 1
            raise DeliveryTransient("email", "451 4.3.0 try later")
        self.sent.append(message.notification_id)
        return Receipt(channel="email", provider_id=f"<{message.notification_id}@x>")

    async def aclose(self) -> None:
        return None


@pytest.mark.parametrize("lease", [timedelta(minutes=5), timedelta(0)])
async def test_batches_follow_each_other_and_every_row_is_sent_once(
        store: SqliteStore, clock: SimulatedClock, lease: timedelta) -> None:
    # Several batches: the next one is claimed while the last rows of the current one send.
    # With a zero lease every claimed row is immediately claimable again, so that early claim
    # also gets rows still in flight: they must not be sent a second time.
    await change(store, clock, await seed(store, 7))
    channel = Recording(pause=0.005)
    cfg = settings(batch_size=3, concurrency=2, lease=lease)
    result = await sender(store, clock, {"email": channel}, cfg).drain()
    assert (result.claimed, result.sent) == (7, 7)
    assert len(channel.sent) == 7 and len(set(channel.sent)) == 7
    assert {r.status for r in await rows(store)} == {models.NotificationStatus.sent}
    assert (await sender(store, clock, {"email": channel}, cfg).drain()).claimed == 0


async def test_outcomes_are_committed_in_groups(store: SqliteStore,
                                                clock: SimulatedClock) -> None:
    await change(store, clock, await seed(store, 12))
    writes: list[int] = []
    record = store.record_outcomes

    async def counting(outcomes: Sequence[Outcome]) -> None:
        writes.append(len(outcomes))
        await record(outcomes)

    store.record_outcomes = counting  # type: ignore[method-assign]
    result = await sender(store, clock, {"email": Recording()}, settings(concurrency=4)).drain()
    assert result.sent == 12 and sum(writes) == 12
    assert len(writes) < 12  # not one transaction per message
    assert all(r.status is models.NotificationStatus.sent for r in await rows(store))


async def test_group_commit_failure_reaches_every_outcome_of_its_group() -> None:
    written: list[list[int]] = []
    fail = [True]

    async def write(outcomes: list[Outcome]) -> None:
        if fail.pop() if fail else False:
            raise OSError("disk I/O error")
        written.append([o.id for o in outcomes])

    group = _GroupCommit(write, max_delay=0.01, max_batch=3)
    first = [group.submit(Outcome(id=i, status="sent")) for i in (1, 2)]
    results = await asyncio.gather(*first, return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)
    # A full group is written without waiting for the delay; later ones still go through.
    more = [group.submit(Outcome(id=i, status="sent")) for i in (3, 4, 5, 6)]
    await asyncio.gather(*more)
    assert sorted(i for ids in written for i in ids) == [3, 4, 5, 6]
    late = group.submit(Outcome(id=7, status="sent"))
    group.flush()
    await late
    assert written[-1] == [7]


@pytest.mark.parametrize(("attempts", "sent"), [(3, True), (2, False)])
async def test_in_process_attempts_count_the_first_failure(
        store: SqliteStore, clock: SimulatedClock, attempts: int, sent: bool) -> None:
    # The first try runs outside tenacity; its failure must still count as attempt 1.
    await change(store, clock, await seed(store, 1))
    channel = Recording(transient_failures=2)
    out = OutboxSender(store=store, clock=clock, settings=settings(), channels={"email": channel},
                       retry=RetryPolicy(attempts=attempts, wait=wait_none()))
    result = await out.drain()
    assert channel.calls == min(attempts, 3)
    assert (result.sent, result.retried) == ((1, 0) if sent else (0, 1))


# ------------------------------------------------------------------------------ push


@pytest.fixture
async def push_channels(push: PushReceiverThread) -> AsyncIterator[dict[str, Channel]]:
    receiver = push.receiver
    async with httpx.AsyncClient(timeout=5.0) as http:
        fcm = FcmChannel(FcmSettings(enabled=True, project_id="notifier-demo",
                                     base_url=push.base_url, token_url=receiver.token_url),
                         http, service_account=receiver.new_fcm_account("notifier-demo"))
        apns = ApnsChannel(ApnsSettings(enabled=True, team_id=TEAM, key_id=KEY_ID, topic=TOPIC,
                                        base_url=push.base_url), None,
                           key_pem=receiver.new_apns_key(TEAM, KEY_ID), timeout_s=5.0)
        vapid_pem, _ = make_vapid_key()
        webpush = WebPushChannel(WebPushSettings(enabled=True), http,
                                 vapid_key=load_vapid_key(vapid_pem))
        yield {"fcm": fcm, "apns": apns, "webpush": webpush}
        await apns.aclose()


def unique(prefix: str) -> str:
    return f"{prefix}{random.Random().getrandbits(64):016x}"


async def test_dead_push_tokens_are_disabled_and_live_ones_delivered(
        store: SqliteStore, clock: SimulatedClock, push: PushReceiverThread,
        push_channels: dict[str, Channel]) -> None:
    receiver = push.receiver
    (order,) = await seed(store, 1)
    who = order.customer.email
    fcm_dead, fcm_live = unique("fcm-dead-"), unique("fcm-live-")
    apns_dead, apns_live = unique("") * 4, unique("") * 4
    sub_dead, _ = receiver.new_webpush_subscription()
    sub_live, _ = receiver.new_webpush_subscription()
    dead_id = sub_dead["endpoint"].rsplit("/", 1)[1]
    for channel, token in (("fcm", fcm_dead), ("fcm", fcm_live), ("apns", apns_dead),
                           ("apns", apns_live), ("webpush", json.dumps(sub_dead)),
                           ("webpush", json.dumps(sub_live))):
        await store.upsert_device(who, channel, token, now=NOW)
    receiver.script("fcm", fcm_dead, [(404, {"error": {
        "code": 404, "status": "NOT_FOUND", "message": "Requested entity was not found.",
        "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                     "errorCode": "UNREGISTERED"}]}}, None)])
    receiver.script("apns", apns_dead, [(410, {"reason": "Unregistered",
                                               "timestamp": int(NOW.timestamp() * 1000)}, None)])
    receiver.script("webpush", dead_id, [(410, None, None)])
    await change(store, clock, [order], "delivered")
    result = await sender(store, clock, push_channels).drain()
    assert (result.sent, result.failed) == (3, 3)
    enabled = {(d.channel.value, d.token): d.enabled for d in await store.devices_for(who)}
    assert enabled == {("fcm", fcm_dead): False, ("fcm", fcm_live): True,
                       ("apns", apns_dead): False, ("apns", apns_live): True,
                       ("webpush", json.dumps(sub_dead)): False,
                       ("webpush", json.dumps(sub_live)): True}
    live = {m["channel"]: m["token"] for m in receiver.received
            if m["token"] in (fcm_live, apns_live, sub_live["endpoint"].rsplit("/", 1)[1])}
    assert set(live) == {"fcm", "apns", "webpush"}
    # The next notice goes to the live devices only.
    clock.advance(timedelta(hours=1))
    await change(store, clock, [order], "returned")
    new = [r for r in await rows(store) if r.trigger == "returned"]
    assert sorted(r.recipient for r in new if r.channel.value != "email") == sorted(
        [fcm_live, apns_live, json.dumps(sub_live)])


async def test_misconfigured_channel_is_paused_with_an_ops_signal(
        store: SqliteStore, clock: SimulatedClock, push: PushReceiverThread, sink: SmtpSink,
        email: EmailChannel) -> None:
    (order,) = await seed(store, 1)
    token = unique("") * 4
    await store.upsert_device(order.customer.email, "apns", token, now=NOW)
    # A provider key APNs does not know: 403 InvalidProviderToken, an ops problem (push.md 5).
    from notifier.devtools.push_receiver import make_apns_key

    unknown_key, _ = make_apns_key()
    apns = ApnsChannel(ApnsSettings(enabled=True, team_id="OTHERTEAM", key_id="K",
                                    topic=TOPIC, base_url=push.base_url), None,
                       key_pem=unknown_key, timeout_s=5.0)
    calls: list[tuple[str, str]] = []

    async def hook(channel: str, reason: str) -> None:
        calls.append((channel, reason))

    try:
        out = sender(store, clock, {"email": email, "apns": apns}, on_channel_paused=hook,
                     pause_for=timedelta(minutes=10))
        await change(store, clock, [order], "delivered")
        result = await out.drain()
        assert result.sent == 1  # the e-mail went out regardless
        by_channel = {r.channel.value: r for r in await rows(store)}
        apns_row = by_channel["apns"]
        assert apns_row.status is models.NotificationStatus.pending and apns_row.attempts == 0
        assert "InvalidProviderToken" in (apns_row.last_error or "")
        assert [c for c, _ in calls] == ["apns"] and "apns" in out.paused
        async with store.db.execute("SELECT count, detail FROM ops_alerts WHERE key = ?",
                                    ("channel_paused:apns",)) as cur:
            alert = await cur.fetchone()
        assert alert is not None and alert[0] == 1
        refused = len(push.receiver.refused)
        # While paused: not even tried.
        clock.advance(timedelta(minutes=5))
        assert (await out.drain()).claimed == 0 and len(push.receiver.refused) == refused
        # After the pause: tried once more, still broken, paused again, second signal.
        clock.advance(timedelta(minutes=6))
        await out.drain()
        assert len(push.receiver.refused) == refused + 1 and len(calls) == 2
    finally:
        await apns.aclose()


# ------------------------------------------------------------------------------ install(app)


async def test_install_wires_planner_job_and_closers(tmp_path: Path, clock: SimulatedClock,
                                                     sink: SmtpSink) -> None:
    base = settings()
    cfg = replace(base, email=email_settings(sink),
                  database=replace(base.database, path=tmp_path / "app.sqlite3"))
    s = SqliteStore(cfg.database.path)
    await s.open()
    app = App(settings=cfg, clock=clock, store=s)
    sender_ = install(app)
    assert app.store.planner is not None and "outbox_drain" in app.jobs
    assert set(sender_.channels) == {"email"}
    try:
        await app.store.upsert_orders([OrderInput(id="B1", email="b1@example.com",
                                                  oms_status=models.OmsStatus.payment_hold,
                                                  placed_at=NOW)], now=NOW)
        await app.jobs["outbox_drain"]()
        (msg,) = sink.messages
        assert msg.envelope_to == ("b1@example.com",)
        (row,) = await app.store.list_notifications()
        assert (row.trigger, row.status) == ("payment_hold", models.NotificationStatus.sent)
    finally:
        await app.aclose()


# ------------------------------------------------------------------------------ retry-after


async def test_retry_after_longer_than_the_in_process_budget_reschedules_the_row(
        store: SqliteStore, clock: SimulatedClock, push: PushReceiverThread) -> None:
    from notifier.channels.webhook import WebhookChannel
    from notifier.config import WebhookSettings
    from notifier.devtools.push_receiver import make_webhook_secret

    secret = make_webhook_secret()
    name = unique("hook-")
    url = push.receiver.add_webhook(name, secret)
    push.receiver.script("webhook", name, [(503, None, {"Retry-After": "600"})])
    (order,) = await seed(store, 1)
    await store.upsert_device(order.customer.email, "webhook", url, now=NOW)
    pol = PlanPolicy(channels={t.value: ("webhook",) for t in models.Trigger})
    store.planner = lambda events, inputs: plan(events, inputs, policy=pol, now=clock.now())
    await change(store, clock, [order], "delivered")
    async with httpx.AsyncClient(timeout=5.0) as http:
        hook = WebhookChannel(WebhookSettings(enabled=True, secret=Secret(secret)), http)
        out = sender(store, clock, {"webhook": hook})
        refused = len(push.receiver.refused)
        assert (await out.drain()).retried == 1
        assert len(push.receiver.refused) == refused + 1  # no in-process retry for 10 min
        (row,) = await rows(store)
        assert row.status is models.NotificationStatus.pending and row.attempts == 1
        assert row.next_attempt_at is not None
        assert row.next_attempt_at - NOW >= timedelta(seconds=600)
        clock.advance(timedelta(seconds=300))
        assert (await out.drain()).claimed == 0  # not before the server's time
        clock.set(row.next_attempt_at)
        assert (await out.drain()).sent == 1
    (got,) = [m for m in push.receiver.by_channel("webhook") if m["token"] == name]
    assert got["headers"]["webhook-id"] == notification_id(row)


# ------------------------------------------------------------------------------ registry


async def test_registry_builds_enabled_channels_and_reports_broken_ones(
        tmp_path: Path, push: PushReceiverThread) -> None:
    from notifier.channels.registry import build_channels, enabled_channels

    account = tmp_path / "fcm.json"
    account.write_text(json.dumps(push.receiver.new_fcm_account("notifier-demo")))
    base = settings(channels=("email", "fcm", "webhook"))
    cfg = replace(base, push=replace(
        base.push, fcm=FcmSettings(enabled=True, project_id="notifier-demo",
                                   service_account_file=account, base_url=push.base_url,
                                   token_url=push.receiver.token_url),
        webhook=replace(base.push.webhook, enabled=True)))  # no secret: misconfigured
    assert enabled_channels(cfg) == ["email", "fcm", "webhook"]
    built = build_channels(cfg)
    clients = list(built.clients)
    try:
        assert set(built.channels) == {"email", "fcm"}
        assert "secret" in built.broken["webhook"]
        assert len(clients) == 2  # fcm's, and the webhook's (closed even though unused)
    finally:
        await built.aclose()
    assert all(c.is_closed for c in clients)
