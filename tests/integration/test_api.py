"""The HTTP API over real HTTP: uvicorn on 127.0.0.1 (port chosen by the kernel) inside the
test's event loop, a real SQLite store, httpx as the client. Only the clock is simulated."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from carriers import numbers
from notifier import config as config_mod
from notifier import unsubscribe
from notifier.api import ApiServer, auth, install, probe_for, start
from notifier.api.ratelimit import RateLimiter
from notifier.app import App, build_app
from notifier.clock import SimulatedClock
from notifier.config import Secret
from notifier.daemon import Daemon
from notifier.errors import NotifierError

START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
TOKEN = "integration-token-1"
OTHER_TOKEN = "integration-token-2"
SECRET = "unsubscribe-secret-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
UPS = numbers.generate("ups", random.Random(7))
UPS_2 = numbers.generate("ups", random.Random(8))
FEDEX = numbers.generate("fedex", random.Random(9))


@dataclass
class Api:
    app: App
    server: ApiServer
    client: httpx.AsyncClient
    health: dict[str, Any]
    db_path: Path

    def configure(self, **api: Any) -> None:
        """Change API settings the way a SIGHUP reload does (read per request)."""
        s = self.app.settings
        self.app.settings = dataclasses.replace(s, api=dataclasses.replace(s.api, **api))

    def sql(self, statement: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db_path) as db:
            rows = db.execute(statement, args).fetchall()
        return rows


@pytest.fixture
async def api(write_config: Callable[..., Path], tmp_path: Path) -> AsyncIterator[Api]:
    settings = config_mod.load(write_config())
    db_path = tmp_path / "api.sqlite3"
    settings = dataclasses.replace(
        settings,
        database=dataclasses.replace(settings.database, path=db_path,
                                     busy_timeout=config_mod.parse_duration("200ms")),
        api=dataclasses.replace(settings.api, listen="127.0.0.1:0",
                                tokens=(Secret(TOKEN), Secret(OTHER_TOKEN)),
                                unsubscribe_secret=Secret(SECRET), max_body_bytes=4096,
                                track_rate_per_minute=1000))
    app = await build_app(settings, clock=SimulatedClock(START, speed=0))
    health: dict[str, Any] = {"running": True, "healthy": True, "last_tick_age_s": 0.5}
    server = await start(app, health=lambda: health, limiter=RateLimiter())
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as client:
            yield Api(app=app, server=server, client=client, health=health, db_path=db_path)
    finally:
        await app.aclose()


def order_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"email": "Jane.Doe@example.com", "name": "Jane Doe", "locale": "fr",
                            "tz": "Europe/Paris", "promised": "2026-11-09",
                            "status": "processing", "channels": ["email"],
                            "shipments": [{"carrier": "ups", "tracking": UPS}]}
    body.update(over)
    return body


async def put_order(api: Api, order_id: str = "A-1001", **over: Any) -> httpx.Response:
    return await api.client.put(f"/v1/orders/{order_id}", json=order_body(**over), headers=AUTH)


# ------------------------------------------------------------------------------ auth


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer wrong-token"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": "Bearer"},
])
async def test_integration_endpoints_require_a_valid_bearer_token(
        api: Api, headers: dict[str, str]) -> None:
    for method, path in (("PUT", "/v1/orders/A-1"), ("POST", "/v1/orders/A-1/status"),
                         ("POST", "/v1/orders/A-1/shipments"),
                         ("POST", "/v1/orders/A-1/disputes"),
                         ("POST", "/v1/disputes/1/resolve"),
                         ("PUT", "/v1/customers/a@example.com/devices"),
                         ("GET", "/v1/anomalies")):
        r = await api.client.request(method, path, json=order_body(), headers=headers)
        assert r.status_code == 401, (method, path)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json() == {"error": "missing or invalid bearer token", "field": None}
    assert api.sql("SELECT COUNT(*) FROM orders") == [(0,)]


async def test_every_configured_token_is_accepted_and_none_configured_refuses_all(
        api: Api) -> None:
    ok = await api.client.get("/v1/anomalies", headers={"Authorization": f"Bearer {OTHER_TOKEN}"})
    assert ok.status_code == 200
    api.configure(tokens=())
    refused = await api.client.get("/v1/anomalies", headers=AUTH)
    assert refused.status_code == 401
    api.configure(tokens=(Secret(""),))  # e.g. an empty ${VAR}
    empty = await api.client.get("/v1/anomalies", headers={"Authorization": "Bearer"})
    assert empty.status_code == 401
    assert not auth.token_ok("", [""])
    assert auth.token_ok("b", ["a", "b", "c"]) and not auth.token_ok("bb", ["a", "b"])


# ------------------------------------------------------------------------------ orders


async def test_put_order_creates_then_updates_with_the_import_validation(api: Api) -> None:
    created = await put_order(api)
    assert created.status_code == 201, created.text
    assert created.json()["created"] is True
    assert created.json()["shipments_added"] == 1
    again = await put_order(api, name="Jane D.", shipments=[{"tracking": UPS}])
    assert again.status_code == 200
    assert again.json() | {"warnings": []} == {
        "order": "A-1001", "created": False, "updated": True, "shipments_added": 0,
        "status": "pending", "warnings": []}
    rows = api.sql("SELECT name, locale, tz, channels, oms_status, promised_date FROM orders")
    assert rows == [("Jane D.", "fr", "Europe/Paris", "email", "processing", "2026-11-09")]
    assert api.sql("SELECT carrier, tracking_number FROM shipments") == [("ups", UPS)]


@pytest.mark.parametrize(("over", "field"), [
    ({"email": "not-an-address"}, "email"),
    ({"email": None}, "email"),
    ({"promise": "2026-11-09"}, "promise"),
    ({"promised": "09/11/2026"}, "promised"),
    ({"status": "shipped"}, "status"),
    ({"tz": "Mars/Olympus"}, "tz"),
    ({"locale": "xx_YY_ZZ"}, "locale"),
    ({"channels": ["email", "pigeon"]}, "channels"),
    ({"channels": [1]}, "channels"),
    ({"name": 42}, "name"),
    ({"order": "B-2"}, "order"),
    ({"shipments": {"carrier": "ups"}}, "shipments"),
    ({"shipments": [{"carrier": "ups", "tracking": UPS},
                    {"carrier": "ups", "tracking": "12345"}]}, "shipments[1].tracking"),
    ({"shipments": [{"carrier": "royalmail", "tracking": UPS}]}, "shipments[0].carrier"),
    ({"shipments": [{"carrier": "ups", "tracking": UPS, "weight": 3}]}, "shipments[0].weight"),
])
async def test_validation_errors_are_422_and_name_the_field(
        api: Api, over: dict[str, Any], field: str) -> None:
    r = await put_order(api, **over)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["field"] == field
    assert field.split("[")[0] in body["error"]
    assert api.sql("SELECT COUNT(*) FROM orders") == [(0,)]


async def test_bad_order_id_in_the_path_names_the_order_field(api: Api) -> None:
    r = await api.client.put("/v1/orders/%20bad%20id", json=order_body(), headers=AUTH)
    assert r.status_code == 422
    assert r.json()["field"] == "order"


async def test_malformed_json_non_object_and_wrong_type(api: Api) -> None:
    r = await api.client.put("/v1/orders/A-1", content=b'{"email": "a@example.com",',
                             headers=AUTH | {"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["field"] == "body" and r.json()["error"].startswith("malformed JSON")
    r = await api.client.put("/v1/orders/A-1", content=b'{"email": NaN}',
                             headers=AUTH | {"Content-Type": "application/json"})
    assert r.status_code == 400
    r = await api.client.put("/v1/orders/A-1", json=[order_body()], headers=AUTH)
    assert r.status_code == 422 and r.json()["field"] == "body"
    r = await api.client.put("/v1/orders/A-1", content=b"email=a@example.com",
                             headers=AUTH | {"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415


async def test_oversize_bodies_are_refused_with_413(api: Api) -> None:
    big = order_body(name="x" * 5000)
    r = await api.client.put("/v1/orders/A-1", json=big, headers=AUTH)
    assert r.status_code == 413
    assert r.json()["field"] == "body"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked encoding
        yield b'{"name": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    r = await api.client.put("/v1/orders/A-1", content=chunks(),
                             headers=AUTH | {"Content-Type": "application/json"})
    assert r.status_code == 413
    assert api.sql("SELECT COUNT(*) FROM orders") == [(0,)]
    # Just under the limit is fine.
    api.configure(max_body_bytes=len(httpx.Request("PUT", "/", json=big).content))
    r = await api.client.put("/v1/orders/A-1", json=big, headers=AUTH)
    assert r.status_code == 201, r.text


async def test_status_and_shipments_endpoints(api: Api) -> None:
    assert (await put_order(api)).status_code == 201
    r = await api.client.post("/v1/orders/A-1001/status", headers=AUTH,
                              json={"status": "backordered", "expected_ship": "2026-11-20"})
    assert r.status_code == 200, r.text
    assert r.json()["oms_status"] == "backordered"
    assert api.sql("SELECT oms_status, expected_ship_date FROM orders") == [
        ("backordered", "2026-11-20")]
    bad = await api.client.post("/v1/orders/A-1001/status", headers=AUTH,
                                json={"status": "backordered", "expected_ship": "soon"})
    assert bad.status_code == 422 and bad.json()["field"] == "expected_ship"
    missing = await api.client.post("/v1/orders/NOPE/status", headers=AUTH,
                                    json={"status": "processing"})
    assert missing.status_code == 404
    assert "NOPE" in missing.json()["error"]

    added = await api.client.post("/v1/orders/A-1001/shipments", headers=AUTH,
                                  json={"shipments": [{"carrier": "ups", "tracking": UPS_2},
                                                      {"tracking": FEDEX}]})
    assert added.status_code == 201, added.text
    assert added.json()["shipments_added"] == 2
    same = await api.client.post("/v1/orders/A-1001/shipments", headers=AUTH,
                                 json={"carrier": "ups", "tracking": UPS_2})
    assert same.status_code == 200 and same.json()["shipments_added"] == 0
    assert sorted(api.sql("SELECT carrier, tracking_number FROM shipments")) == sorted(
        [("ups", UPS), ("ups", UPS_2), ("fedex", FEDEX)])
    wrong = await api.client.post("/v1/orders/A-1001/shipments", headers=AUTH,
                                  json={"shipments": [{"carrier": "dhl", "tracking": "1"}]})
    assert wrong.status_code == 422
    assert wrong.json()["field"] == "shipments[0].tracking"
    none = await api.client.post("/v1/orders/NOPE/shipments", headers=AUTH,
                                 json={"carrier": "ups", "tracking": UPS_2})
    assert none.status_code == 404


# ------------------------------------------------------------------------------ disputes


async def test_disputes_open_idempotently_and_resolve(api: Api) -> None:
    assert (await put_order(api)).status_code == 201
    early = await api.client.post("/v1/orders/A-1001/disputes", headers=AUTH,
                                  json={"reason": "not received"})
    assert early.status_code == 422
    assert early.json()["field"] == "tracking"
    api.sql("UPDATE shipments SET status = 'delivered', delivered_at = ?",
            "2026-11-01T10:00:00.000000Z")
    opened = await api.client.post("/v1/orders/A-1001/disputes", headers=AUTH,
                                   json={"reason": "not received", "tracking": UPS})
    assert opened.status_code == 201, opened.text
    dispute = opened.json()
    assert dispute["reason"] == "not received" and dispute["resolved_at"] is None
    again = await api.client.post("/v1/orders/A-1001/disputes", headers=AUTH,
                                  json={"reason": "still not received"})
    assert again.status_code == 200 and again.json()["id"] == dispute["id"]
    no_reason = await api.client.post("/v1/orders/A-1001/disputes", headers=AUTH, json={})
    assert no_reason.status_code == 422 and no_reason.json()["field"] == "reason"

    bad = await api.client.post(f"/v1/disputes/{dispute['id']}/resolve", headers=AUTH,
                                json={"resolution": "lost"})
    assert bad.status_code == 422 and bad.json()["field"] == "resolution"
    resolved = await api.client.post(f"/v1/disputes/{dispute['id']}/resolve", headers=AUTH,
                                     json={"resolution": "reshipped", "note": "sent again"})
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["resolution"] == "reshipped"
    assert api.sql("SELECT resolution, note FROM disputes") == [("reshipped", "sent again")]
    unknown = await api.client.post("/v1/disputes/999/resolve", headers=AUTH,
                                    json={"resolution": "found"})
    assert unknown.status_code == 404


# ------------------------------------------------------------------------------ devices


async def test_device_registration(api: Api) -> None:
    r = await api.client.put("/v1/customers/jane@example.com/devices", headers=AUTH,
                             json={"channel": "fcm", "token": "fcm-token-abc"})
    assert r.status_code == 200, r.text
    sub = {"endpoint": "https://push.example.net/send/abc",
           "keys": {"p256dh": "BNcR...", "auth": "tBHI..."}}
    r = await api.client.put("/v1/customers/jane@example.com/devices", headers=AUTH,
                             json={"channel": "webpush", "token": sub})
    assert r.status_code == 200, r.text
    rows = api.sql("SELECT customer_email, channel FROM devices ORDER BY id")
    assert rows == [("jane@example.com", "fcm"), ("jane@example.com", "webpush")]


@pytest.mark.parametrize(("email", "body", "field"), [
    ("not-an-email", {"channel": "fcm", "token": "t"}, "email"),
    ("jane@example.com", {"channel": "sms", "token": "t"}, "channel"),
    ("jane@example.com", {"channel": "fcm"}, "token"),
    ("jane@example.com", {"channel": "webpush", "token": {"endpoint": "https://x.example",
                                                          "keys": {"p256dh": "k"}}},
     "token.keys.auth"),
    ("jane@example.com", {"channel": "webhook", "token": "ftp://x.example"}, "token"),
])
async def test_device_validation_names_the_field(api: Api, email: str, body: dict[str, Any],
                                                 field: str) -> None:
    r = await api.client.put(f"/v1/customers/{email}/devices", headers=AUTH, json=body)
    assert r.status_code == 422
    assert r.json()["field"] == field


# ------------------------------------------------------------------------------ anomalies


async def test_anomalies_listing_and_filters(api: Api) -> None:
    assert (await put_order(api)).status_code == 201
    stamp = "2026-11-01T00:00:00.000000Z"
    for kind, carrier, resolved in (("stale_in_transit", "ups", None),
                                    ("exception", "ups", None),
                                    ("overdue", "ups", stamp)):
        api.sql("INSERT INTO anomalies (kind, order_id, subject, carrier, opened_at, "
                "last_seen_at, resolved_at) VALUES (?, 'A-1001', ?, ?, ?, ?, ?)",
                kind, f"A-1001/{kind}", carrier, stamp, stamp, resolved)
    r = await api.client.get("/v1/anomalies", headers=AUTH)
    assert r.status_code == 200
    assert sorted(a["kind"] for a in r.json()["anomalies"]) == ["exception", "stale_in_transit"]
    r = await api.client.get("/v1/anomalies", params={"kind": "overdue", "open": "false"},
                             headers=AUTH)
    assert [a["kind"] for a in r.json()["anomalies"]] == ["overdue"]
    r = await api.client.get("/v1/anomalies", params={"carrier": "fedex"}, headers=AUTH)
    assert r.json()["anomalies"] == []
    for params, field in (({"kind": "late"}, "kind"), ({"limit": "0"}, "limit"),
                          ({"carrier": "royalmail"}, "carrier"), ({"sort": "x"}, "sort")):
        r = await api.client.get("/v1/anomalies", params=params, headers=AUTH)
        assert r.status_code == 422 and r.json()["field"] == field


# ------------------------------------------------------------------------------ track


async def test_track_shows_own_order_and_hides_existence_otherwise(api: Api) -> None:
    assert (await put_order(api)).status_code == 201
    (shipment_id,), = api.sql("SELECT id FROM shipments")
    api.sql("UPDATE shipments SET status = 'in_transit', current_edd_start = '2026-11-05', "
            "current_edd_end = '2026-11-06'")
    api.sql("INSERT INTO events (shipment_id, identity, at, status, code, description, city, "
            "country, seen_at) VALUES (?, 'e1', '2026-11-02T06:00:00.000000Z', 'in_transit', "
            "'I', 'Departed facility', 'Louisville', 'US', '2026-11-02T07:00:00.000000Z')",
            shipment_id)
    mine = await api.client.get("/v1/track", params={"order": "A-1001",
                                                     "email": "jane.doe@EXAMPLE.com"})
    assert mine.status_code == 200, mine.text
    data = mine.json()
    assert data["status"] == "in_transit"
    [shipment] = data["shipments"]
    assert shipment["tracking_url"].startswith("https://www.ups.com/track")
    assert UPS in shipment["tracking_url"]
    assert shipment["estimated_delivery"] == {"start": "2026-11-05", "end": "2026-11-06"}
    assert [e["description"] for e in shipment["events"]] == ["Departed facility"]
    assert "email" not in mine.text.lower().replace("e-mail", "")  # no customer data echoed
    assert "anomalies" not in data and "notifications" not in data

    wrong_email = await api.client.get("/v1/track", params={"order": "A-1001",
                                                            "email": "eve@example.com"})
    unknown = await api.client.get("/v1/track", params={"order": "Z-9999",
                                                        "email": "jane.doe@example.com"})
    assert wrong_email.status_code == unknown.status_code == 404
    assert wrong_email.content == unknown.content
    assert {k: v for k, v in wrong_email.headers.items() if k != "date"} == {
        k: v for k, v in unknown.headers.items() if k != "date"}
    missing = await api.client.get("/v1/track", params={"order": "A-1001"})
    assert missing.status_code == 422 and missing.json()["field"] == "email"


async def test_track_is_rate_limited_per_client(api: Api) -> None:
    api.configure(track_rate_per_minute=3)
    params = {"order": "A-1", "email": "a@example.com"}
    for _ in range(3):
        assert (await api.client.get("/v1/track", params=params)).status_code == 404
    limited = await api.client.get("/v1/track", params=params)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"].startswith("too many")
    # Another client (as told by the trusted local proxy) has its own bucket.
    other = await api.client.get("/v1/track", params=params,
                                 headers={"X-Forwarded-For": "203.0.113.9"})
    assert other.status_code == 404
    # Other endpoints are not limited by the lookup bucket.
    assert (await api.client.get("/healthz")).status_code == 200


def test_token_bucket_refills_over_time() -> None:
    now = [100.0]
    limiter = RateLimiter(monotonic=lambda: now[0], max_clients=2)
    assert [limiter.hit("a", 2) for _ in range(2)] == [0.0, 0.0]
    wait = limiter.hit("a", 2)
    assert wait == pytest.approx(30.0)  # 2 per minute: one token every 30 s
    now[0] += 30.0
    assert limiter.hit("a", 2) == 0.0
    assert limiter.hit("a", 2) > 0
    assert limiter.hit("b", 2) == 0.0 and limiter.hit("c", 2) == 0.0
    assert len(limiter) == 2  # the least recently seen client was forgotten
    assert limiter.hit("x", 0) == 0.0  # 0 disables the limit
    assert RateLimiter.retry_after_header(0.2) == "1"
    assert RateLimiter.retry_after_header(29.1) == "30"


# ------------------------------------------------------------------------------ unsubscribe


async def test_unsubscribe_page_then_one_click_post_is_idempotent(api: Api) -> None:
    token = unsubscribe.make_token("Jane.Doe@example.com", "email", SECRET)
    page = await api.client.get("/v1/unsubscribe", params={"token": token})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["referrer-policy"] == "no-referrer"
    assert '<form method="post"' in page.text and "j***@example.com" in page.text
    assert "jane.doe@example.com" not in page.text.lower()
    assert api.sql("SELECT COUNT(*) FROM unsubscribes") == [(0,)]  # a GET changes nothing

    first = await api.client.post("/v1/unsubscribe", params={"token": token},
                                  data={"List-Unsubscribe": "One-Click"})
    assert first.status_code == 200
    assert first.json() == {"unsubscribed": True, "channel": "email"}
    rows = api.sql("SELECT email, channel FROM unsubscribes")
    assert rows == [("jane.doe@example.com", "email")]
    second = await api.client.post("/v1/unsubscribe", params={"token": token},
                                   data={"List-Unsubscribe": "One-Click"})
    assert second.status_code == 200 and second.json() == first.json()
    assert api.sql("SELECT email, channel FROM unsubscribes") == rows
    # The link form written into messages (notifier.unsubscribe.unsubscribe_url) works too.
    url = unsubscribe.unsubscribe_url(api.server.url, "jane.doe@example.com", "email", SECRET)
    via_link = await api.client.post(url, headers={"Accept": "text/html"})
    assert via_link.status_code == 200 and "unsubscribed" in via_link.text


async def test_unsubscribe_refuses_forged_tokens(api: Api) -> None:
    forged = unsubscribe.make_token("jane@example.com", "email", "another-secret")
    r = await api.client.post("/v1/unsubscribe", params={"token": forged})
    assert r.status_code == 400 and r.json()["field"] == "token"
    page = await api.client.get("/v1/unsubscribe", params={"token": forged + "x"})
    assert page.status_code == 400 and "not valid" in page.text
    assert (await api.client.post("/v1/unsubscribe")).status_code == 400
    assert api.sql("SELECT COUNT(*) FROM unsubscribes") == [(0,)]


# ------------------------------------------------------------------------------ health, metrics


async def test_healthz_reports_database_and_scheduler(api: Api) -> None:
    ok = await api.client.get("/healthz")
    assert ok.status_code == 200
    assert ok.json()["database"] == {"writable": True}
    assert ok.json()["scheduler"]["healthy"] is True
    api.health["healthy"] = False
    stalled = await api.client.get("/healthz")
    assert stalled.status_code == 503 and stalled.json()["status"] == "unavailable"
    api.health["healthy"] = True
    # Another process holds the write lock longer than busy_timeout: not writable.
    with sqlite3.connect(api.db_path, isolation_level=None) as other:
        other.execute("BEGIN IMMEDIATE")
        locked = await api.client.get("/healthz")
        other.execute("ROLLBACK")
    assert locked.status_code == 503
    assert locked.json()["database"]["writable"] is False
    assert "locked" in locked.json()["database"]["error"]
    assert (await api.client.get("/healthz")).status_code == 200
    api.app.stopping = True
    assert (await api.client.get("/healthz")).status_code == 503


async def test_metrics_parse_and_mirror_the_database(api: Api) -> None:
    assert (await put_order(api)).status_code == 201  # its shipment is due at once
    r = await api.client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    due = {s.labels["carrier"]: s.value for s in families["notifier_due_shipments"].samples}
    assert due["ups"] == 1 and due["fedex"] == 0
    outbox = {s.labels["status"] for s in families["notifier_outbox"].samples}
    assert {"pending", "sent", "dead"} <= outbox
    kinds = {s.labels["kind"]: s.value for s in families["notifier_anomalies_open"].samples}
    assert kinds["stale_in_transit"] == 0
    assert "notifier_send_latency_seconds" in families
    api.sql("UPDATE shipments SET next_poll_at = NULL")
    families = {f.name: f for f in text_string_to_metric_families(
        (await api.client.get("/metrics")).text)}
    due = {s.labels["carrier"]: s.value for s in families["notifier_due_shipments"].samples}
    assert due["ups"] == 0


async def test_unknown_routes_and_methods_answer_json(api: Api) -> None:
    r = await api.client.get("/v2/orders")
    assert r.status_code == 404 and r.json()["error"]
    r = await api.client.delete("/v1/orders/A-1", headers=AUTH)
    assert r.status_code == 405 and r.json()["error"]


# ------------------------------------------------------------------------------ daemon wiring


async def test_install_binds_at_once_and_respects_enabled(api: Api) -> None:
    busy = dataclasses.replace(api.app.settings.api, listen=f"127.0.0.1:{api.server.port}")
    api.app.settings = dataclasses.replace(api.app.settings, api=busy)
    with pytest.raises(NotifierError, match="cannot listen"):
        install(api.app)
    api.app.settings = dataclasses.replace(
        api.app.settings, api=dataclasses.replace(busy, enabled=False))
    closers = len(api.app.closers)
    assert install(api.app) is None
    assert len(api.app.closers) == closers


async def test_healthz_follows_a_real_daemon_scheduler(
        write_config: Callable[..., Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    text = (Path(__file__).resolve().parents[2] / "config.toml").read_text(encoding="utf-8")
    text = text.replace('mode = "system"', 'mode = "simulated"\nstart = "2026-11-02T08:00:00Z"'
                        '\nspeed = 600')
    text = text.replace('path = "notifier.sqlite3"', 'path = "daemon.sqlite3"')
    text = text.replace('listen = "127.0.0.1:8080"', 'listen = "127.0.0.1:0"')
    daemon = Daemon(config_mod.load(write_config(text=text)))
    # Shorter silence limit than production's 60 s so a paused scheduler shows quickly.
    monkeypatch.setattr(daemon, "healthy",
                        functools.partial(Daemon.healthy, daemon, max_silence_s=0.5))
    task = asyncio.create_task(daemon.run())
    try:
        while daemon.app is None or daemon.scheduler is None or not daemon.runs["poll_tick"]:
            assert not task.done()
            await asyncio.sleep(0.05)
        server = await start(daemon.app, health=probe_for(daemon))
        async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as client:
            ok = await client.get("/healthz")
            assert ok.status_code == 200, ok.text
            sched = ok.json()["scheduler"]
            assert sched["running"] is True and sched["healthy"] is True
            assert sched["last_tick_age_s"] is not None and sched["runs"]["poll_tick"] >= 1
            daemon.scheduler.pause()
            await asyncio.sleep(0.8)
            stalled = await client.get("/healthz")
            assert stalled.status_code == 503
            assert stalled.json()["scheduler"]["healthy"] is False
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, 30)
