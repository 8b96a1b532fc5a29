"""APNs channel against the local push receiver over real HTTP/2 (h2c and TLS with a test CA).

The receiver verifies the ES256 provider token with the registered public key and judges its
age with the same injected clock, so token caching and rebuilding are observable end to end.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from notifier.channels.apns import ApnsChannel
from notifier.channels.base import Recipient, RenderedMessage
from notifier.config import ApnsSettings
from notifier.devtools.push_receiver import PushReceiverThread, make_apns_key
from notifier.errors import (
    ChannelMisconfigured,
    DeliveryError,
    DeliveryRejected,
    DeliveryTransient,
)

TEAM, KEY_ID, TOPIC = "TEAM123456", "KEY1234567", "com.example.shop"


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def server() -> Iterator[PushReceiverThread]:
    with PushReceiverThread(tls=True) as srv:
        yield srv


@pytest.fixture(scope="module")
def key_pem(server: PushReceiverThread) -> bytes:
    return server.receiver.new_apns_key(TEAM, KEY_ID)


@pytest.fixture
def clock(server: PushReceiverThread) -> FakeClock:
    clock = FakeClock()
    server.receiver.clock = clock
    return clock


def make_channel(server: PushReceiverThread, key_pem: bytes, clock: FakeClock, *,
                 tls: bool = False, base_url: str | None = None) -> ApnsChannel:
    url = base_url or (server.h2_url if tls else server.base_url)
    settings = ApnsSettings(enabled=True, team_id=TEAM, key_id=KEY_ID, topic=TOPIC,
                            base_url=url, ca_file=server.ca_file if tls else None)
    return ApnsChannel(settings, None, clock=clock, key_pem=key_pem, timeout_s=5.0)


def message(**overrides: Any) -> RenderedMessage:
    values: dict[str, Any] = dict(
        notification_id="n-apns-1", trigger="out_for_delivery", title="Out for delivery",
        body="Order 1234 arrives today", data={"order_id": "1234"},
        collapse_key="order-1234", ttl_s=14_400, urgent=True)
    values.update(overrides)
    return RenderedMessage(**values)


def device() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex  # 64 hex digits, like a real device token


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "tls"])
async def test_delivers_over_http2(tls: bool, server: PushReceiverThread, key_pem: bytes,
                                   clock: FakeClock) -> None:
    channel = make_channel(server, key_pem, clock, tls=tls)
    token = device()
    try:
        receipt = await channel.send(message(), Recipient(address=token))
    finally:
        await channel.aclose()
    got = [m for m in server.receiver.by_channel("apns") if m["token"] == token]
    assert len(got) == 1
    assert got[0]["scheme"] == ("https" if tls else "http")
    headers = got[0]["headers"]
    assert headers["apns-topic"] == TOPIC
    assert headers["apns-push-type"] == "alert"
    assert headers["apns-priority"] == "10"
    assert headers["apns-expiration"] == str(int(clock.now) + 14_400)
    assert headers["apns-collapse-id"] == "order-1234"
    assert str(uuid.UUID(headers["apns-id"])) == headers["apns-id"]  # canonical lowercase
    assert receipt.provider_id == headers["apns-id"]
    assert got[0]["payload"] == {"aps": {"alert": {"title": "Out for delivery",
                                                   "body": "Order 1234 arrives today"},
                                         "sound": "default"},
                                 "order_id": "1234"}


async def test_apns_id_is_stable_per_notification_and_priority_follows_urgency(
        server: PushReceiverThread, key_pem: bytes, clock: FakeClock) -> None:
    channel = make_channel(server, key_pem, clock)
    token = device()
    try:
        await channel.send(message(urgent=False), Recipient(address=token))
        await channel.send(message(urgent=False), Recipient(address=token))
        await channel.send(message(notification_id="other"), Recipient(address=token))
    finally:
        await channel.aclose()
    got = [m["headers"] for m in server.receiver.received if m["token"] == token]
    assert [h["apns-priority"] for h in got] == ["5", "5", "10"]
    assert got[0]["apns-id"] == got[1]["apns-id"] != got[2]["apns-id"]


async def test_provider_token_built_once_then_rebuilt_after_50_minutes(
        server: PushReceiverThread, key_pem: bytes, clock: FakeClock) -> None:
    channel = make_channel(server, key_pem, clock)
    seen_before = len(server.receiver.apns_provider_tokens)
    try:
        for i in range(6):
            await channel.send(message(notification_id=f"n{i}"), Recipient(address=device()))
        assert channel.token_builds == 1
        clock.now += 49 * 60
        await channel.send(message(), Recipient(address=device()))
        assert channel.token_builds == 1
        clock.now += 60  # 50 minutes after the first build
        await channel.send(message(), Recipient(address=device()))
        assert channel.token_builds == 2
    finally:
        await channel.aclose()
    presented = server.receiver.apns_provider_tokens[seen_before:]
    assert len(presented) == 8
    assert len(set(presented[:7])) == 1
    assert presented[7] != presented[0]


async def test_expired_provider_token_is_rebuilt_once_and_retried(
        server: PushReceiverThread, key_pem: bytes, clock: FakeClock) -> None:
    channel = make_channel(server, key_pem, clock)
    token = device()
    server.receiver.script("apns", token, [(403, {"reason": "ExpiredProviderToken"}, None)])
    try:
        await channel.send(message(), Recipient(address=token))
    finally:
        await channel.aclose()
    assert channel.token_builds == 2
    assert [m["token"] for m in server.receiver.received].count(token) == 1


async def test_provider_token_always_expired_means_clock_skew(
        server: PushReceiverThread, key_pem: bytes, clock: FakeClock) -> None:
    channel = make_channel(server, key_pem, clock)
    server.receiver.clock = FakeClock(clock.now + 2 * 3600)  # the far end is 2 h ahead
    try:
        with pytest.raises(ChannelMisconfigured):
            await channel.send(message(), Recipient(address=device()))
    finally:
        await channel.aclose()
    assert channel.token_builds == 2  # one rebuild, no loop


async def test_unknown_signing_key_is_misconfigured(server: PushReceiverThread,
                                                    clock: FakeClock) -> None:
    stranger, _ = make_apns_key()
    channel = make_channel(server, stranger, clock)
    try:
        with pytest.raises(ChannelMisconfigured, match="InvalidProviderToken"):
            await channel.send(message(), Recipient(address=device()))
    finally:
        await channel.aclose()


def reason(status: int, why: str, **extra: Any) -> tuple[int, dict[str, Any], None]:
    return (status, {"reason": why, **extra}, None)


# push.md 2.4 and section 5 (APNs row): answer -> (error class, drop_token)
CASES: dict[str, tuple[tuple[int, Any, Any], type[DeliveryError], bool]] = {
    "410-Unregistered": (reason(410, "Unregistered", timestamp=1_799_000_000_000),
                         DeliveryRejected, True),
    "410-ExpiredToken": (reason(410, "ExpiredToken"), DeliveryRejected, True),
    "400-BadDeviceToken": (reason(400, "BadDeviceToken"), DeliveryRejected, True),
    "400-DeviceTokenNotForTopic": (reason(400, "DeviceTokenNotForTopic"), DeliveryRejected,
                                   True),
    "429-TooManyRequests": (reason(429, "TooManyRequests"), DeliveryTransient, False),
    "500-InternalServerError": (reason(500, "InternalServerError"), DeliveryTransient, False),
    "503-ServiceUnavailable": (reason(503, "ServiceUnavailable"), DeliveryTransient, False),
    "503-Shutdown": (reason(503, "Shutdown"), DeliveryTransient, False),
    "400-IdleTimeout": (reason(400, "IdleTimeout"), DeliveryTransient, False),
    "403-UnrelatedKeyIdInToken": (reason(403, "UnrelatedKeyIdInToken"), DeliveryTransient,
                                  False),
    "403-InvalidProviderToken": (reason(403, "InvalidProviderToken"), ChannelMisconfigured,
                                 False),
    "403-MissingProviderToken": (reason(403, "MissingProviderToken"), ChannelMisconfigured,
                                 False),
    "403-BadEnvironmentKeyIdInToken": (reason(403, "BadEnvironmentKeyIdInToken"),
                                       ChannelMisconfigured, False),
    "403-Forbidden": (reason(403, "Forbidden"), ChannelMisconfigured, False),
    "400-TopicDisallowed": (reason(400, "TopicDisallowed"), ChannelMisconfigured, False),
    "429-TooManyProviderTokenUpdates": (reason(429, "TooManyProviderTokenUpdates"),
                                        ChannelMisconfigured, False),
    "413-PayloadTooLarge": (reason(413, "PayloadTooLarge"), DeliveryRejected, False),
    "400-BadTopic": (reason(400, "BadTopic"), DeliveryRejected, False),
    "400-BadCollapseId": (reason(400, "BadCollapseId"), DeliveryRejected, False),
    "400-BadExpirationDate": (reason(400, "BadExpirationDate"), DeliveryRejected, False),
    "404-BadPath": (reason(404, "BadPath"), DeliveryRejected, False),
    "405-MethodNotAllowed": (reason(405, "MethodNotAllowed"), DeliveryRejected, False),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
async def test_error_table(case: str, server: PushReceiverThread, key_pem: bytes,
                           clock: FakeClock) -> None:
    answer, kind, drop = CASES[case]
    channel = make_channel(server, key_pem, clock)
    token = device()
    server.receiver.script("apns", token, [answer])
    try:
        with pytest.raises(kind) as caught:
            await channel.send(message(), Recipient(address=token))
    finally:
        await channel.aclose()
    assert type(caught.value) is kind
    if isinstance(caught.value, DeliveryRejected):
        assert caught.value.drop_token is drop
    assert channel.token_builds == 1


async def test_local_refusals_send_nothing(server: PushReceiverThread, key_pem: bytes,
                                           clock: FakeClock) -> None:
    channel = make_channel(server, key_pem, clock)
    before = len(server.receiver.apns_provider_tokens)
    try:
        with pytest.raises(DeliveryRejected) as bad_token:
            await channel.send(message(), Recipient(address="not-a-hex-token"))
        with pytest.raises(DeliveryRejected) as too_big:
            await channel.send(message(body="x" * 5000), Recipient(address=device()))
    finally:
        await channel.aclose()
    assert bad_token.value.drop_token is True
    assert too_big.value.drop_token is False
    assert len(server.receiver.apns_provider_tokens) == before


async def test_refused_connection_is_transient(key_pem: bytes, server: PushReceiverThread,
                                               clock: FakeClock) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    channel = make_channel(server, key_pem, clock, base_url=f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(DeliveryTransient):
            await channel.send(message(), Recipient(address=device()))
    finally:
        await channel.aclose()


def test_missing_key_file_is_misconfigured() -> None:
    with pytest.raises(ChannelMisconfigured):
        ApnsChannel(ApnsSettings(enabled=True, team_id=TEAM, key_id=KEY_ID, topic=TOPIC), None)
