"""FCM HTTP v1 channel against the local push receiver over real HTTP.

The receiver verifies the RS256 assertion at its token endpoint and only accepts the bearer
tokens it issued; scripted answers reproduce each row of push.md sections 1.4/1.5/5.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from notifier.channels.base import Recipient, RenderedMessage
from notifier.channels.fcm import FcmChannel
from notifier.config import FcmSettings
from notifier.devtools.push_receiver import PushReceiverThread
from notifier.errors import ChannelMisconfigured, DeliveryRejected, DeliveryTransient

PROJECT = "notifier-test"
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


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


def make_channel(server: PushReceiverThread, http: httpx.AsyncClient, clock: FakeClock, *,
                 project: str = PROJECT, account: dict[str, Any] | None = None,
                 timeout_s: float = 5.0) -> FcmChannel:
    settings = FcmSettings(enabled=True, project_id=project, base_url=server.base_url,
                           token_url=server.receiver.token_url)
    return FcmChannel(settings, http, clock=clock, timeout_s=timeout_s,
                      service_account=account or server.receiver.new_fcm_account(project))


def message(**overrides: Any) -> RenderedMessage:
    values: dict[str, Any] = dict(
        notification_id="n-1", trigger="out_for_delivery", title="Out for delivery",
        body="Order 1234 arrives today", data={"order_id": "1234", "stops": 3},
        collapse_key="order-1234", ttl_s=7200, urgent=True)
    values.update(overrides)
    return RenderedMessage(**values)


def fresh_token(tag: str) -> str:
    return f"fcm-{tag}-{id(object())}"


async def test_delivers_the_v1_message_shape(server: PushReceiverThread, http: httpx.AsyncClient,
                                             clock: FakeClock) -> None:
    channel = make_channel(server, http, clock)
    token = fresh_token("ok")
    receipt = await channel.send(message(), Recipient(address=token))

    got = [m for m in server.receiver.by_channel("fcm") if m["token"] == token]
    assert len(got) == 1
    sent = got[0]["payload"]
    assert sent["notification"] == {"title": "Out for delivery",
                                    "body": "Order 1234 arrives today"}
    # FCM data is string -> string: the integer arrives as its JSON text.
    assert sent["data"] == {"order_id": "1234", "stops": "3"}
    assert sent["android"] == {"priority": "HIGH", "ttl": "7200s", "collapse_key": "order-1234"}
    assert sent["apns"]["headers"]["apns-priority"] == "10"
    assert sent["apns"]["headers"]["apns-collapse-id"] == "order-1234"
    assert sent["apns"]["headers"]["apns-expiration"] == str(int(clock.now) + 7200)
    assert sent["webpush"]["headers"] == {"TTL": "7200", "Urgency": "high"}
    assert receipt.channel == "fcm"
    assert receipt.provider_id is not None
    assert receipt.provider_id.startswith(f"projects/{PROJECT}/messages/")


async def test_non_urgent_is_normal_priority(server: PushReceiverThread,
                                             http: httpx.AsyncClient, clock: FakeClock) -> None:
    channel = make_channel(server, http, clock)
    token = fresh_token("normal")
    await channel.send(message(urgent=False, collapse_key=None), Recipient(address=token))
    sent = next(m for m in server.receiver.received if m["token"] == token)["payload"]
    assert sent["android"]["priority"] == "NORMAL"
    assert "collapse_key" not in sent["android"]
    assert sent["apns"]["headers"]["apns-priority"] == "5"


async def test_access_token_is_cached_then_refreshed_before_expiry(
        server: PushReceiverThread, http: httpx.AsyncClient, clock: FakeClock) -> None:
    channel = make_channel(server, http, clock)
    before = server.receiver.token_requests
    for i in range(5):
        await channel.send(message(notification_id=f"n-{i}"), Recipient(address=fresh_token("c")))
    assert channel.token_fetches == 1
    assert server.receiver.token_requests - before == 1

    clock.now += 3600 - 300 - 1  # still inside the refresh margin of a 3600 s token
    await channel.send(message(), Recipient(address=fresh_token("c")))
    assert channel.token_fetches == 1
    clock.now += 2  # now within five minutes of expiry: refresh early
    await channel.send(message(), Recipient(address=fresh_token("c")))
    assert channel.token_fetches == 2
    assert server.receiver.token_requests - before == 2


UNAUTHENTICATED = (401, {"error": {"code": 401, "status": "UNAUTHENTICATED",
                                   "message": "Request had invalid authentication credentials."}},
                   None)


async def test_401_refreshes_the_token_once_and_retries(
        server: PushReceiverThread, http: httpx.AsyncClient, clock: FakeClock) -> None:
    channel = make_channel(server, http, clock)
    token = fresh_token("401")
    server.receiver.script("fcm", token, [UNAUTHENTICATED])
    await channel.send(message(), Recipient(address=token))
    assert channel.token_fetches == 2
    assert [m["token"] for m in server.receiver.received].count(token) == 1


async def test_second_401_means_misconfigured(server: PushReceiverThread,
                                              http: httpx.AsyncClient, clock: FakeClock) -> None:
    channel = make_channel(server, http, clock)
    token = fresh_token("401x2")
    server.receiver.script("fcm", token, [UNAUTHENTICATED, UNAUTHENTICATED])
    with pytest.raises(ChannelMisconfigured):
        await channel.send(message(), Recipient(address=token))
    assert channel.token_fetches == 2


def fcm_error(status: int, rpc: str, text: str, *details: dict[str, Any]) -> dict[str, Any]:
    return {"error": {"code": status, "status": rpc, "message": text, "details": list(details)}}


# (status, body, headers) -> (error class, drop_token, retry_after); push.md section 5, FCM row.
CASES: dict[str, Any] = {
    "unregistered-404": ((404, fcm_error(404, "NOT_FOUND", "Requested entity was not found.",
                                         {"@type": FCM_ERROR, "errorCode": "UNREGISTERED"}), None),
                         (DeliveryRejected, True, None)),
    "invalid-token-message": ((400, fcm_error(
        400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token",
        {"@type": FCM_ERROR, "errorCode": "INVALID_ARGUMENT"}), None),
        (DeliveryRejected, True, None)),
    "invalid-token-field": ((400, fcm_error(
        400, "INVALID_ARGUMENT", "Invalid value", {"@type": BAD_REQUEST, "fieldViolations": [
            {"field": "message.token", "description": "Invalid registration token"}]}), None),
        (DeliveryRejected, True, None)),
    "invalid-payload": ((400, fcm_error(
        400, "INVALID_ARGUMENT", "Invalid value at 'message.data[0].value' (TYPE_STRING), 12",
        {"@type": BAD_REQUEST, "fieldViolations": [{"field": "message.data[0].value"}]}), None),
        (DeliveryRejected, False, None)),
    "sender-id-mismatch": ((403, fcm_error(403, "PERMISSION_DENIED", "SenderId mismatch",
                                           {"@type": FCM_ERROR,
                                            "errorCode": "SENDER_ID_MISMATCH"}), None),
                           (DeliveryRejected, True, None)),
    "quota-retry-after": ((429, fcm_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded",
                                          {"@type": FCM_ERROR, "errorCode": "QUOTA_EXCEEDED"}),
                           {"Retry-After": "7"}), (DeliveryTransient, False, 7.0)),
    "quota-no-header": ((429, fcm_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded"), None),
                        (DeliveryTransient, False, 60.0)),
    "unavailable": ((503, fcm_error(503, "UNAVAILABLE", "overloaded",
                                    {"@type": FCM_ERROR, "errorCode": "UNAVAILABLE"}),
                     {"Retry-After": "5"}), (DeliveryTransient, False, 5.0)),
    "internal": ((500, fcm_error(500, "INTERNAL", "Internal error encountered.",
                                 {"@type": FCM_ERROR, "errorCode": "INTERNAL"}), None),
                 (DeliveryTransient, False, None)),
    "bad-gateway-no-body": ((502, None, None), (DeliveryTransient, False, None)),
    "third-party-auth": ((401, fcm_error(401, "UNAUTHENTICATED", "APNs auth key invalid",
                                         {"@type": FCM_ERROR,
                                          "errorCode": "THIRD_PARTY_AUTH_ERROR"}), None),
                         (ChannelMisconfigured, False, None)),
    "permission-denied": ((403, fcm_error(403, "PERMISSION_DENIED", "FCM API disabled"), None),
                          (ChannelMisconfigured, False, None)),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
async def test_error_table(case: str, server: PushReceiverThread, http: httpx.AsyncClient,
                           clock: FakeClock) -> None:
    answer, (kind, drop, retry_after) = CASES[case]
    channel = make_channel(server, http, clock)
    token = fresh_token(case)
    server.receiver.script("fcm", token, [answer])
    with pytest.raises(kind) as caught:
        await channel.send(message(), Recipient(address=token))
    assert caught.value.retry_after == retry_after
    if isinstance(caught.value, DeliveryRejected):
        assert caught.value.drop_token is drop
    assert type(caught.value) is kind
    assert token not in [m["token"] for m in server.receiver.received]


async def test_reserved_data_key_is_a_payload_bug_not_a_dead_token(
        server: PushReceiverThread, http: httpx.AsyncClient, clock: FakeClock) -> None:
    channel = make_channel(server, http, clock)
    with pytest.raises(DeliveryRejected) as caught:
        await channel.send(message(data={"from": "shop"}), Recipient(address=fresh_token("r")))
    assert caught.value.drop_token is False


async def test_token_for_another_project_is_refused_as_misconfigured(
        server: PushReceiverThread, http: httpx.AsyncClient, clock: FakeClock) -> None:
    account = server.receiver.new_fcm_account("some-other-project")
    channel = make_channel(server, http, clock, project=PROJECT, account=account)
    with pytest.raises(ChannelMisconfigured):
        await channel.send(message(), Recipient(address=fresh_token("p")))


async def test_unknown_service_account_is_misconfigured(
        server: PushReceiverThread, http: httpx.AsyncClient, clock: FakeClock) -> None:
    from notifier.devtools.push_receiver import make_fcm_service_account

    stranger = make_fcm_service_account(server.receiver.token_url, project_id=PROJECT)
    channel = make_channel(server, http, clock, account=stranger)
    with pytest.raises(ChannelMisconfigured):
        await channel.send(message(), Recipient(address=fresh_token("s")))


async def test_token_endpoint_outage_is_transient(server: PushReceiverThread,
                                                  http: httpx.AsyncClient,
                                                  clock: FakeClock) -> None:
    account = server.receiver.new_fcm_account(PROJECT)
    server.receiver.script("fcm_oauth", account["client_email"],
                           [(503, {"error": "backend_error"}, {"Retry-After": "3"})])
    channel = make_channel(server, http, clock, account=account)
    with pytest.raises(DeliveryTransient) as caught:
        await channel.send(message(), Recipient(address=fresh_token("o")))
    assert caught.value.retry_after == 3.0
    await channel.send(message(), Recipient(address=fresh_token("o")))  # recovers


async def test_missing_service_account_file_is_misconfigured(
        tmp_path: Path, http: httpx.AsyncClient) -> None:
    settings = FcmSettings(enabled=True, project_id=PROJECT,
                           service_account_file=tmp_path / "absent.json")
    with pytest.raises(ChannelMisconfigured):
        FcmChannel(settings, http)


async def test_service_account_read_from_file(server: PushReceiverThread,
                                              http: httpx.AsyncClient, clock: FakeClock,
                                              tmp_path: Path) -> None:
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(server.receiver.new_fcm_account(PROJECT)))
    settings = FcmSettings(enabled=True, project_id=PROJECT, service_account_file=path,
                           base_url=server.base_url, token_url=server.receiver.token_url)
    channel = FcmChannel(settings, http, clock=clock)
    token = fresh_token("file")
    await channel.send(message(), Recipient(address=token))
    assert token in [m["token"] for m in server.receiver.received]


async def test_timeout_and_refused_connection_are_transient(
        server: PushReceiverThread, http: httpx.AsyncClient, clock: FakeClock) -> None:
    account = server.receiver.new_fcm_account(PROJECT)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts into the backlog, never answers
    with silent:
        port = silent.getsockname()[1]
        slow = FcmChannel(FcmSettings(enabled=True, project_id=PROJECT,
                                      token_url=f"http://127.0.0.1:{port}/token"),
                          http, clock=clock, service_account=account, timeout_s=0.3)
        with pytest.raises(DeliveryTransient, match="timeout"):
            await slow.send(message(), Recipient(address="t"))
    closed = FcmChannel(FcmSettings(enabled=True, project_id=PROJECT,
                                    token_url=f"http://127.0.0.1:{port}/token"),
                        http, clock=clock, service_account=account)
    with pytest.raises(DeliveryTransient, match="transport"):
        await closed.send(message(), Recipient(address="t"))
