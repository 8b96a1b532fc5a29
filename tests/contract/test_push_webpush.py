"""Web Push channel against the local push receiver over real HTTP.

The receiver plays the push service *and* the browser: it verifies the VAPID JWT (aud = origin,
exp <= 24 h, sub) and decrypts the aes128gcm body with the subscription's private key.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import http_ece
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from notifier.channels.base import Recipient, RenderedMessage
from notifier.channels.webpush import WebPushChannel
from notifier.config import WebPushSettings
from notifier.devtools.push_receiver import (
    PushReceiverThread,
    make_vapid_key,
    make_webpush_subscription,
)
from notifier.errors import (
    ChannelMisconfigured,
    DeliveryError,
    DeliveryRejected,
    DeliveryTransient,
)
from tests.support.http_server import serve


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def server() -> Iterator[PushReceiverThread]:
    with PushReceiverThread() as srv:
        yield srv


@pytest.fixture(scope="module")
def vapid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    pem, public = make_vapid_key()
    path = tmp_path_factory.mktemp("vapid") / "vapid.pem"
    path.write_bytes(pem)
    return path, public


@pytest.fixture
def clock(server: PushReceiverThread) -> FakeClock:
    clock = FakeClock()
    server.receiver.clock = clock
    return clock


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def channel(vapid: tuple[Path, str], http: httpx.AsyncClient,
            clock: FakeClock) -> WebPushChannel:
    settings = WebPushSettings(enabled=True, vapid_private_key_file=vapid[0],
                               vapid_subject="mailto:ops@example.com")
    return WebPushChannel(settings, http, clock=clock, timeout_s=5.0)


def message(**overrides: Any) -> RenderedMessage:
    values: dict[str, Any] = dict(
        notification_id="n-wp-1", trigger="delivered", title="Delivered",
        body="Order 1234 was delivered — enjoy!", data={"order_id": "1234", "items": [1, 2]},
        collapse_key="order-1234", ttl_s=3600, urgent=True)
    values.update(overrides)
    return RenderedMessage(**values)


async def test_receiver_decrypts_exactly_the_json_sent(
        server: PushReceiverThread, channel: WebPushChannel, vapid: tuple[Path, str]) -> None:
    sub, _ = server.receiver.new_webpush_subscription(vapid_public_key=vapid[1])
    receipt = await channel.send(message(), Recipient(address=json.dumps(sub)))

    got = [m for m in server.receiver.by_channel("webpush") if m["endpoint"] == sub["endpoint"]]
    assert len(got) == 1
    assert got[0]["payload"] == {
        "notification_id": "n-wp-1", "trigger": "delivered", "title": "Delivered",
        "body": "Order 1234 was delivered — enjoy!", "data": {"order_id": "1234",
                                                              "items": [1, 2]},
        "tag": "order-1234"}
    headers = dict(got[0]["headers"])
    assert headers.pop("authorization").startswith("vapid t=")
    assert headers == {"ttl": "3600", "urgency": "high", "topic": "order-1234",
                       "content-encoding": "aes128gcm"}
    assert got[0]["body_bytes"] <= 4096
    assert receipt.provider_id is not None
    assert receipt.provider_id.startswith(sub["endpoint"] + "/messages/")


async def test_independent_decrypt_and_vapid_check(vapid: tuple[Path, str], clock: FakeClock,
                                                   http: httpx.AsyncClient) -> None:
    """Catch the raw request in a bare local server and check it with our own code, not the
    receiver's: a decrypt with the browser key, and the JWT with the advertised ``k``."""
    captured: list[tuple[dict[str, str], bytes]] = []

    async def capture(request: Request) -> Response:
        captured.append((dict(request.headers), await request.body()))
        return Response(status_code=201)

    app = Starlette(routes=[Route("/wpush/v2/{id}", capture, methods=["POST"])])
    with serve(app) as srv:
        sub, browser_key = make_webpush_subscription(f"{srv.url}/wpush/v2/abc")
        settings = WebPushSettings(enabled=True, vapid_private_key_file=vapid[0],
                                   vapid_subject="mailto:ops@example.com")
        channel = WebPushChannel(settings, http, clock=clock)
        await channel.send(message(urgent=False, collapse_key=None),
                           Recipient(address=json.dumps(sub)))
    headers, body = captured[0]
    auth = base64.urlsafe_b64decode(sub["keys"]["auth"] + "==")
    plain = http_ece.decrypt(body, private_key=browser_key, auth_secret=auth,
                             version="aes128gcm")
    assert json.loads(plain)["body"] == "Order 1234 was delivered — enjoy!"
    assert headers["urgency"] == "normal"
    assert "topic" not in headers
    scheme, _, params = headers["authorization"].partition(" ")
    assert scheme == "vapid"
    fields = dict(p.strip().split("=", 1) for p in params.split(","))
    assert fields["k"] == vapid[1]
    point = base64.urlsafe_b64decode(fields["k"] + "==")
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    claims = jwt.decode(fields["t"], public, algorithms=["ES256"], audience=srv.url,
                        options={"verify_exp": False})
    assert claims["sub"] == "mailto:ops@example.com"
    assert clock.now < claims["exp"] <= clock.now + 24 * 3600


async def test_vapid_jwt_reused_per_origin_until_an_hour_before_expiry(
        server: PushReceiverThread, channel: WebPushChannel, clock: FakeClock) -> None:
    subs = [server.receiver.new_webpush_subscription()[0] for _ in range(3)]
    for sub in subs:
        await channel.send(message(), Recipient(address=json.dumps(sub)))
    clock.now += 11 * 3600 - 1  # the 12 h token still has over an hour left
    await channel.send(message(), Recipient(address=json.dumps(subs[0])))
    clock.now += 2
    await channel.send(message(), Recipient(address=json.dumps(subs[0])))
    endpoints = {s["endpoint"] for s in subs}
    tokens = [m["headers"]["authorization"] for m in server.receiver.received
              if m.get("endpoint") in endpoints]
    assert len(tokens) == 5
    assert len(set(tokens[:4])) == 1
    assert tokens[4] != tokens[0]


async def test_long_collapse_key_becomes_a_valid_topic(
        server: PushReceiverThread, channel: WebPushChannel) -> None:
    sub, _ = server.receiver.new_webpush_subscription()
    key = "order:1234/out for delivery and then some more words"
    await channel.send(message(collapse_key=key), Recipient(address=json.dumps(sub)))
    await channel.send(message(collapse_key=key), Recipient(address=json.dumps(sub)))
    topics = [m["headers"]["topic"] for m in server.receiver.received
              if m.get("endpoint") == sub["endpoint"]]
    assert len(topics) == 2 and topics[0] == topics[1]
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,32}", topics[0])


async def test_subscription_made_with_another_vapid_key_is_refused(
        server: PushReceiverThread, channel: WebPushChannel) -> None:
    _, other_public = make_vapid_key()
    sub, _ = server.receiver.new_webpush_subscription(vapid_public_key=other_public)
    with pytest.raises(ChannelMisconfigured):
        await channel.send(message(), Recipient(address=json.dumps(sub)))


async def test_expired_subscription_is_dropped(server: PushReceiverThread,
                                               channel: WebPushChannel) -> None:
    # Never registered with the push service: it answers 404 as for an expired one.
    sub, _ = server.receiver.new_webpush_subscription()
    sub["endpoint"] = sub["endpoint"].rsplit("/", 1)[0] + "/gone-away"
    with pytest.raises(DeliveryRejected) as caught:
        await channel.send(message(), Recipient(address=json.dumps(sub)))
    assert caught.value.drop_token is True


# push.md 3.2 and section 5 (Web Push row): (status, body, headers) -> (class, drop, retry_after)
CASES: dict[str, tuple[tuple[int, Any, Any], type[DeliveryError], bool, float | None]] = {
    "404": ((404, {"code": 404}, None), DeliveryRejected, True, None),
    "410": ((410, {"code": 410, "message": "push subscription has unsubscribed or expired."},
             None), DeliveryRejected, True, None),
    "413": ((413, {"code": 413}, None), DeliveryRejected, False, None),
    "400": ((400, {"code": 400, "message": "bad header"}, None), DeliveryRejected, False, None),
    "429-retry-after": ((429, None, {"Retry-After": "12"}), DeliveryTransient, False, 12.0),
    "429-bare": ((429, None, None), DeliveryTransient, False, None),
    "500": ((500, None, None), DeliveryTransient, False, None),
    "502": ((502, None, None), DeliveryTransient, False, None),
    "503-retry-after": ((503, None, {"Retry-After": "30"}), DeliveryTransient, False, 30.0),
    "504": ((504, None, None), DeliveryTransient, False, None),
    "401": ((401, {"code": 401}, None), ChannelMisconfigured, False, None),
    "403": ((403, {"code": 403}, None), ChannelMisconfigured, False, None),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
async def test_error_table(case: str, server: PushReceiverThread,
                           channel: WebPushChannel) -> None:
    answer, kind, drop, retry_after = CASES[case]
    sub, _ = server.receiver.new_webpush_subscription()
    sub_id = sub["endpoint"].rsplit("/", 1)[1]
    server.receiver.script("webpush", sub_id, [answer])
    with pytest.raises(kind) as caught:
        await channel.send(message(), Recipient(address=json.dumps(sub)))
    assert type(caught.value) is kind
    assert caught.value.retry_after == retry_after
    if isinstance(caught.value, DeliveryRejected):
        assert caught.value.drop_token is drop
    await channel.send(message(), Recipient(address=json.dumps(sub)))  # script used up: ok


@pytest.mark.parametrize("address", [
    "not json",
    json.dumps({"endpoint": "http://127.0.0.1/x"}),
    json.dumps({"endpoint": "http://127.0.0.1/x", "keys": {"p256dh": "AAAA", "auth": "AAAA"}}),
], ids=["not-json", "no-keys", "bad-keys"])
async def test_unusable_subscription_is_dropped_without_a_request(
        address: str, channel: WebPushChannel) -> None:
    with pytest.raises(DeliveryRejected) as caught:
        await channel.send(message(), Recipient(address=address))
    assert caught.value.drop_token is True


async def test_oversized_payload_is_rejected_locally(server: PushReceiverThread,
                                                     channel: WebPushChannel) -> None:
    sub, _ = server.receiver.new_webpush_subscription()
    with pytest.raises(DeliveryRejected) as caught:
        await channel.send(message(body="x" * 4000), Recipient(address=json.dumps(sub)))
    assert caught.value.drop_token is False


async def test_raw_vapid_key_text_is_accepted(server: PushReceiverThread, tmp_path: Path,
                                              http: httpx.AsyncClient, clock: FakeClock) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    raw = key.private_numbers().private_value.to_bytes(32, "big")
    path = tmp_path / "private_key.txt"
    path.write_text(base64.urlsafe_b64encode(raw).rstrip(b"=").decode())
    public = base64.urlsafe_b64encode(key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    ).rstrip(b"=").decode()
    sub, _ = server.receiver.new_webpush_subscription(vapid_public_key=public)
    channel = WebPushChannel(WebPushSettings(enabled=True, vapid_private_key_file=path), http,
                             clock=clock)
    await channel.send(message(), Recipient(address=json.dumps(sub)))
    assert any(m.get("endpoint") == sub["endpoint"] for m in server.receiver.received)


async def test_missing_vapid_key_is_misconfigured(http: httpx.AsyncClient,
                                                  tmp_path: Path) -> None:
    with pytest.raises(ChannelMisconfigured):
        WebPushChannel(WebPushSettings(enabled=True), http)
    with pytest.raises(ChannelMisconfigured):
        WebPushChannel(WebPushSettings(vapid_private_key_file=tmp_path / "absent.pem"), http)


async def test_refused_connection_is_transient(channel: WebPushChannel,
                                               server: PushReceiverThread) -> None:
    import socket

    sub, _ = server.receiver.new_webpush_subscription()
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    sub["endpoint"] = f"http://127.0.0.1:{port}/webpush/x"
    with pytest.raises(DeliveryTransient):
        await channel.send(message(), Recipient(address=json.dumps(sub)))
