"""Standard Webhooks channel against the local push receiver over real HTTP.

Besides the receiver's own verification, each delivery is re-verified here by an independent
implementation of the spec (HMAC-SHA256 over ``id.timestamp.body`` with the base64-decoded
secret after ``whsec_``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from notifier.channels.base import Recipient, RenderedMessage
from notifier.channels.webhook import WebhookChannel
from notifier.config import Secret, WebhookSettings
from notifier.devtools.push_receiver import (
    PushReceiver,
    PushReceiverThread,
    make_webhook_secret,
)
from notifier.errors import (
    ChannelMisconfigured,
    DeliveryError,
    DeliveryRejected,
    DeliveryTransient,
)


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def server() -> Iterator[PushReceiverThread]:
    with PushReceiverThread() as srv:
        yield srv


@pytest.fixture
def clock(server: PushReceiverThread) -> FakeClock:
    clock = FakeClock()
    server.receiver.clock = clock
    return clock


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def make_channel(http: httpx.AsyncClient, clock: FakeClock, secret: str) -> WebhookChannel:
    return WebhookChannel(WebhookSettings(enabled=True, secret=Secret(secret)), http,
                          clock=clock, timeout_s=5.0)


def message(**overrides: Any) -> RenderedMessage:
    values: dict[str, Any] = dict(
        notification_id="ntf_01J9Z8", trigger="out_for_delivery", title="Out for delivery",
        body="Order 1234 arrives today", data={"order_id": "1234", "carrier": "ups"},
        collapse_key="order-1234", urgent=True)
    values.update(overrides)
    return RenderedMessage(**values)


def endpoint(server: PushReceiverThread, secret: str) -> str:
    return server.receiver.add_webhook(f"hook-{os.urandom(4).hex()}", secret)


def independently_verified(secret: str, headers: dict[str, str], raw: str) -> bool:
    key = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.{raw}".encode()
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    entries = [e.split(",", 1) for e in headers["webhook-signature"].split(" ")]
    return any(v == "v1" and hmac.compare_digest(sig, expected) for v, sig in entries)


async def test_delivers_signed_event(server: PushReceiverThread, http: httpx.AsyncClient,
                                     clock: FakeClock) -> None:
    secret = make_webhook_secret()
    url = endpoint(server, secret)
    receipt = await make_channel(http, clock, secret).send(message(), Recipient(address=url))

    got = [m for m in server.receiver.by_channel("webhook") if url.endswith(m["token"])]
    assert len(got) == 1
    headers = got[0]["headers"]
    assert headers["webhook-id"] == "ntf_01J9Z8" == receipt.provider_id
    assert headers["webhook-timestamp"] == str(int(clock.now))
    assert independently_verified(secret, headers, got[0]["raw"])
    assert not independently_verified(make_webhook_secret(), headers, got[0]["raw"])
    payload = got[0]["payload"]
    assert payload["type"] == "out_for_delivery"
    assert payload["timestamp"] == "2027-01-15T08:00:00Z"  # 1_800_000_000 in RFC 3339
    assert payload["data"] == {"order_id": "1234", "carrier": "ups",
                               "notification_id": "ntf_01J9Z8", "title": "Out for delivery",
                               "body": "Order 1234 arrives today",
                               "collapse_key": "order-1234", "urgent": True}


async def test_secret_without_prefix_is_the_same_key(server: PushReceiverThread,
                                                     http: httpx.AsyncClient,
                                                     clock: FakeClock) -> None:
    secret = make_webhook_secret()
    url = endpoint(server, secret)
    bare = secret.removeprefix("whsec_")
    await make_channel(http, clock, bare).send(message(), Recipient(address=url))
    assert any(url.endswith(m["token"]) for m in server.receiver.by_channel("webhook"))


async def test_wrong_secret_is_refused_and_retried(server: PushReceiverThread,
                                                   http: httpx.AsyncClient,
                                                   clock: FakeClock) -> None:
    url = endpoint(server, make_webhook_secret())
    with pytest.raises(DeliveryTransient, match="401"):
        await make_channel(http, clock, make_webhook_secret()).send(
            message(), Recipient(address=url))


async def test_id_stable_and_timestamp_fresh_across_retries(
        server: PushReceiverThread, http: httpx.AsyncClient, clock: FakeClock) -> None:
    secret = make_webhook_secret()
    url = endpoint(server, secret)
    name = url.rsplit("/", 1)[1]
    server.receiver.script("webhook", name, [(503, None, {"Retry-After": "5"})])
    channel = make_channel(http, clock, secret)
    with pytest.raises(DeliveryTransient) as caught:
        await channel.send(message(), Recipient(address=url))
    assert caught.value.retry_after == 5.0
    clock.now += 5
    await channel.send(message(), Recipient(address=url))
    clock.now += 60
    await channel.send(message(), Recipient(address=url))  # e.g. a retry after a lost 2xx
    got = [m for m in server.receiver.received if m.get("token") == name]
    assert [m["headers"]["webhook-id"] for m in got] == ["ntf_01J9Z8", "ntf_01J9Z8"]
    assert [m["headers"]["webhook-timestamp"] for m in got] == [
        str(int(clock.now) - 60), str(int(clock.now))]
    assert [m["duplicate"] for m in got] == [False, True]


async def test_stale_timestamp_is_refused_by_a_verifying_consumer(
        server: PushReceiverThread, http: httpx.AsyncClient, clock: FakeClock) -> None:
    secret = make_webhook_secret()
    url = endpoint(server, secret)
    server.receiver.clock = FakeClock(clock.now + 600)  # consumer's clock 10 min ahead
    with pytest.raises(DeliveryTransient):
        await make_channel(http, clock, secret).send(message(), Recipient(address=url))


# Standard Webhooks "Operational considerations" as summarised in push.md section 5.
CASES: dict[str, tuple[tuple[int, Any, Any], type[DeliveryError], bool, float | None]] = {
    "410": ((410, None, None), DeliveryRejected, True, None),
    "301": ((301, None, {"Location": "https://example.org/new"}), DeliveryRejected, False, None),
    "429-retry-after": ((429, None, {"Retry-After": "20"}), DeliveryTransient, False, 20.0),
    "502": ((502, None, None), DeliveryTransient, False, None),
    "503-retry-after": ((503, None, {"Retry-After": "8"}), DeliveryTransient, False, 8.0),
    "504": ((504, None, None), DeliveryTransient, False, None),
    "500": ((500, {"error": "boom"}, None), DeliveryTransient, False, None),
    "400": ((400, {"error": "bad"}, None), DeliveryTransient, False, None),
    "401": ((401, None, None), DeliveryTransient, False, None),
    "403": ((403, None, None), DeliveryTransient, False, None),
    "404": ((404, None, None), DeliveryTransient, False, None),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
async def test_error_table(case: str, server: PushReceiverThread, http: httpx.AsyncClient,
                           clock: FakeClock) -> None:
    answer, kind, drop, retry_after = CASES[case]
    secret = make_webhook_secret()
    url = endpoint(server, secret)
    server.receiver.script("webhook", url.rsplit("/", 1)[1], [answer])
    with pytest.raises(kind) as caught:
        await make_channel(http, clock, secret).send(message(), Recipient(address=url))
    assert type(caught.value) is kind
    assert caught.value.retry_after == retry_after
    if isinstance(caught.value, DeliveryRejected):
        assert caught.value.drop_token is drop


async def test_falls_back_to_configured_url(server: PushReceiverThread,
                                            http: httpx.AsyncClient, clock: FakeClock) -> None:
    secret = make_webhook_secret()
    url = endpoint(server, secret)
    channel = WebhookChannel(WebhookSettings(enabled=True, url=url, secret=Secret(secret)),
                             http, clock=clock)
    await channel.send(message(), Recipient(address=""))
    assert any(url.endswith(m["token"]) for m in server.receiver.by_channel("webhook"))


@pytest.mark.parametrize("secret", ["", "whsec_not*base64!"], ids=["empty", "not-base64"])
async def test_bad_secret_is_misconfigured(secret: str, http: httpx.AsyncClient) -> None:
    with pytest.raises(ChannelMisconfigured):
        WebhookChannel(WebhookSettings(enabled=True, secret=Secret(secret)), http)


async def test_timeout_and_refused_connection_are_transient(http: httpx.AsyncClient,
                                                            clock: FakeClock) -> None:
    secret = make_webhook_secret()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # the kernel accepts into the backlog; nobody ever answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
    with silent:
        channel = WebhookChannel(WebhookSettings(enabled=True, secret=Secret(secret)), http,
                                 clock=clock, timeout_s=0.3)
        with pytest.raises(DeliveryTransient, match="timeout"):
            await channel.send(message(), Recipient(address=url))
    with pytest.raises(DeliveryTransient, match="transport"):
        await channel.send(message(), Recipient(address=url))


async def test_receiver_appends_json_lines_to_its_out_file(tmp_path: Path,
                                                          http: httpx.AsyncClient) -> None:
    out = tmp_path / "received.jsonl"
    clock = FakeClock()
    secret = make_webhook_secret()
    with PushReceiverThread(PushReceiver(clock=clock, out_file=out)) as srv:
        url = srv.receiver.add_webhook("shop", secret)
        channel = make_channel(http, clock, secret)
        await channel.send(message(), Recipient(address=url))
        await channel.send(message(notification_id="ntf_2"), Recipient(address=url))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(m["channel"], m["headers"]["webhook-id"]) for m in lines] == [
        ("webhook", "ntf_01J9Z8"), ("webhook", "ntf_2")]
    assert lines == srv.receiver.received
