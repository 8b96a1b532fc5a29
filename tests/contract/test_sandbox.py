"""The carrier sandbox over real HTTP: every endpoint's shape per reference/carriers.md
(sections 3-6, 9, checklist 10), auth errors, quotas, faults, statistics, and the scenario
timelines (determinism, time progression). The simulated clock and the monotonic clock are
fakes owned by the tests; the server is a real uvicorn on 127.0.0.1.
"""

from __future__ import annotations

import ast
import asyncio
import itertools
import json
import random
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from carriers import numbers
from carriers.sandbox import Quota, SandboxCredentials, SandboxThread, Scenario, serve
from carriers.sandbox.payloads import expected_row
from carriers.sandbox.scenarios import Kind, build_timeline, pick_scenario
from carriers.sandbox.state import DEFAULT_TOKEN_LIFETIMES

T0 = datetime(2025, 6, 9, 14, 0, tzinfo=UTC)
UPS_N, FEDEX_N, DHL_N, USPS_N = ("1Z999AA10123456784", "123456789012", "7777777770",
                                 "9400111206206406260787")
ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.t = start

    def now(self) -> datetime:
        return self.t

    def advance(self, **kw: float) -> None:
        self.t += timedelta(**kw)


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Env:
    sandbox: SandboxThread
    http: httpx.Client
    clock: FakeClock
    mono: FakeMonotonic

    def register(self, carrier: str, number: str, scenario: str = "normal",
                 start: datetime = T0, quirks: list[str] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"number": number, "carrier": carrier, "scenario": scenario,
                                "start": start.isoformat()}
        body["quirks"] = [] if quirks is None else quirks
        resp = self.http.post("/_sandbox/shipments", json=body)
        assert resp.status_code == 201, resp.text
        result: dict[str, Any] = resp.json()
        return result

    def fault(self, **body: Any) -> None:
        assert self.http.post("/_sandbox/faults", json=body).status_code == 201

    def stats(self, carrier: str) -> dict[str, int]:
        result: dict[str, int] = self.http.get("/_sandbox/stats").json()["carriers"][carrier]
        return result

    # --- carrier calls ---------------------------------------------------------------------
    def ups_token(self) -> str:
        resp = self.http.post("/security/v1/oauth/token", auth=("sandbox-client", "sandbox-secret"),
                              data={"grant_type": "client_credentials"})
        assert resp.status_code == 200, resp.text
        return str(resp.json()["access_token"])

    def ups(self, number: str, token: str | None = None) -> httpx.Response:
        return self.http.get(f"/api/track/v1/details/{number}", headers={
            "Authorization": f"Bearer {token or self.ups_token()}", "transId": "t1",
            "transactionSrc": "tests"})

    def fedex_token(self) -> str:
        resp = self.http.post("/oauth/token", data={
            "grant_type": "client_credentials", "client_id": "sandbox-client",
            "client_secret": "sandbox-secret"})
        assert resp.status_code == 200, resp.text
        return str(resp.json()["access_token"])

    def fedex(self, *nums: str, token: str | None = None, detailed: bool = True,
              headers: dict[str, str] | None = None) -> httpx.Response:
        body = {"includeDetailedScans": detailed,
                "trackingInfo": [{"trackingNumberInfo": {"trackingNumber": n}} for n in nums]}
        return self.http.post("/track/v1/trackingnumbers", json=body, headers={
            "Authorization": f"Bearer {token or self.fedex_token()}", **(headers or {})})

    def dhl(self, number: str, key: str | None = "sandbox-key") -> httpx.Response:
        headers = {"DHL-API-Key": key} if key is not None else {}
        return self.http.get("/track/shipments", params={"trackingNumber": number},
                             headers=headers)

    def usps_token(self, **extra: str) -> str:
        resp = self.http.post("/oauth2/v3/token", data={
            "grant_type": "client_credentials", "client_id": "sandbox-client",
            "client_secret": "sandbox-secret", **extra})
        assert resp.status_code == 200, resp.text
        return str(resp.json()["access_token"])

    def usps(self, number: str, token: str | None = None, expand: str = "DETAIL") -> httpx.Response:
        return self.http.get(f"/tracking/v3/tracking/{number}", params={"expand": expand},
                             headers={"Authorization": f"Bearer {token or self.usps_token()}"})

    def usps_batch(self, *nums: str, token: str | None = None) -> httpx.Response:
        return self.http.post("/tracking/v3r2/tracking",
                              json=[{"trackingNumber": n} for n in nums],
                              headers={"Authorization": f"Bearer {token or self.usps_token()}"})


@pytest.fixture
def make_env() -> Iterator[Any]:
    """Fresh sandboxes with their own clocks (for tests about construction options)."""
    started: list[Env] = []

    def make(**kw: Any) -> Env:
        clock, mono = FakeClock(T0), FakeMonotonic()
        sandbox = SandboxThread(now=clock.now, monotonic=mono, **kw)
        sandbox.start()
        env = Env(sandbox, httpx.Client(base_url=sandbox.base_url, timeout=5.0), clock, mono)
        started.append(env)
        return env

    yield make
    for env in started:
        env.http.close()
        env.sandbox.stop()


@pytest.fixture(scope="module")
def shared() -> Iterator[Env]:
    """One server for the module (starting and stopping uvicorn costs ~0.2 s each)."""
    clock, mono = FakeClock(T0), FakeMonotonic()
    with SandboxThread(now=clock.now, monotonic=mono) as sandbox, \
            httpx.Client(base_url=sandbox.base_url, timeout=5.0) as http:
        yield Env(sandbox, http, clock, mono)


@pytest.fixture
def env(shared: Env) -> Env:
    """The shared sandbox, reset to a freshly created state with the clocks at their start."""
    state = shared.sandbox.state
    state.reset(everything=True)
    state.quotas.clear()
    state.token_lifetimes = dict(DEFAULT_TOKEN_LIFETIMES)
    shared.clock.t, shared.mono.t = T0, 1000.0
    return shared


def _event_time(timeline: dict[str, Any], kind: str) -> datetime:
    return datetime.fromisoformat(next(e["at"] for e in timeline["events"] if e["kind"] == kind))


# --- UPS ---------------------------------------------------------------------------------


def test_ups_token_fields_are_strings(env: Env) -> None:
    resp = env.http.post("/security/v1/oauth/token", auth=("sandbox-client", "sandbox-secret"),
                         data={"grant_type": "client_credentials"})
    body = resp.json()
    assert resp.status_code == 200
    assert set(body) == {"token_type", "issued_at", "client_id", "access_token", "scope",
                         "expires_in", "refresh_count", "status"}
    assert all(isinstance(v, str) for v in body.values())
    assert body["expires_in"] == "14399" and body["issued_at"].isdigit()
    assert body["token_type"] == "Bearer" and body["status"] == "approved"


def test_ups_token_refusals(env: Env) -> None:
    wrong = env.http.post("/security/v1/oauth/token", auth=("sandbox-client", "nope"),
                          data={"grant_type": "client_credentials"})
    assert wrong.status_code == 401
    assert wrong.json()["response"]["errors"][0]["code"] == "250003"
    missing = env.http.post("/security/v1/oauth/token", data={"grant_type": "client_credentials"})
    assert missing.status_code == 401
    as_json = env.http.post("/security/v1/oauth/token", auth=("sandbox-client", "sandbox-secret"),
                            json={"grant_type": "client_credentials"})
    assert as_json.status_code == 400
    assert as_json.json()["response"]["errors"][0]["code"] == "10007"
    assert env.stats("ups")["tokens_issued"] == 0


def test_ups_track_needs_trans_headers_and_valid_numbers(env: Env) -> None:
    token = env.ups_token()
    for drop in ("transId", "transactionSrc"):
        headers = {"Authorization": f"Bearer {token}", "transId": "a", "transactionSrc": "b"}
        del headers[drop]
        resp = env.http.get(f"/api/track/v1/details/{UPS_N}", headers=headers)
        assert resp.status_code == 400
        assert "errors" in resp.json()["response"]
    bad = env.ups("1Z9", token)
    assert bad.status_code == 400
    assert bad.json() == {"response": {"errors": [{"code": "TV1002",
                                                   "message": "Invalid inquiry number"}]}}


def test_ups_unknown_number_is_200_with_tw0001(env: Env) -> None:
    env.register("ups", UPS_N, "not_found")
    body = env.ups(UPS_N).json()
    shipment = body["trackResponse"]["shipment"][0]
    assert shipment["inquiryNumber"] == UPS_N and "package" not in shipment
    assert shipment["warnings"][0]["code"] == "TW0001"
    # A number that is not a plausible UPS number is not found either.
    assert env.ups("ZZZZZZZZZZ").json()["trackResponse"]["shipment"][0]["warnings"]


def test_ups_delivered_package_shape(env: Env) -> None:
    timeline = env.register("ups", UPS_N, "normal")
    env.clock.t = _event_time(timeline, "delivered") + timedelta(hours=1)
    package = env.ups(UPS_N).json()["trackResponse"]["shipment"][0]["package"][0]
    activity = package["activity"]
    assert len(activity) == len(timeline["events"])
    instants = []
    for act in activity:
        assert re.fullmatch(r"\d{8}", act["date"]) and re.fullmatch(r"\d{6}", act["time"])
        assert re.fullmatch(r"\d{8}", act["gmtDate"])
        assert re.fullmatch(r"\d\d:\d\d:\d\d", act["gmtTime"])
        assert re.fullmatch(r"[+-]\d\d:\d\d", act["gmtOffset"])
        local = datetime.strptime(act["date"] + act["time"] + act["gmtOffset"].replace(":", ""),
                                  "%Y%m%d%H%M%S%z")
        gmt = datetime.strptime(act["gmtDate"] + act["gmtTime"], "%Y%m%d%H:%M:%S")
        assert local.astimezone(UTC).replace(tzinfo=None) == gmt
        instants.append(gmt)
        assert set(act["status"]) == {"type", "description", "code", "statusCode"}
    assert instants == sorted(instants, reverse=True)  # newest first
    newest = activity[0]["status"]
    assert newest["type"] == "D" and newest["statusCode"] == "011"
    assert newest["description"] == "DELIVERED "  # trailing space as in real data
    assert package["currentStatus"]["code"] == "011"
    assert package["deliveryDate"][0]["type"] == "DEL"
    assert package["deliveryTime"]["type"] == "DEL"
    assert package["deliveryInformation"]["receivedBy"]
    assert activity[-1]["location"] == {"address": {"countryCode": "US", "country": "US"}}


def test_ups_token_expiry_revocation_and_bad_tokens(env: Env) -> None:
    env.register("ups", UPS_N)
    token = env.ups_token()
    assert env.ups(UPS_N, token).status_code == 200
    bogus = env.ups(UPS_N, "not-a-token")
    assert bogus.status_code == 401 and bogus.json()["response"]["errors"][0]["code"] == "UJ0001"
    env.mono.t += 14399  # the token's real-time lifetime has passed
    expired = env.ups(UPS_N, token)
    assert expired.status_code == 401
    assert expired.json()["response"]["errors"][0]["code"] == "251004"
    fresh = env.ups_token()
    env.fault(carrier="ups", kind="token_expiry")
    assert env.ups(UPS_N, fresh).status_code == 401
    assert env.stats("ups")["401"] == 3


# --- FedEx -------------------------------------------------------------------------------


def test_fedex_token_shape_and_refusal(env: Env) -> None:
    body = env.http.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": "sandbox-client",
        "client_secret": "sandbox-secret"}).json()
    assert body["expires_in"] == 3599 and body["token_type"] == "bearer"
    assert isinstance(body["access_token"], str) and body["scope"]
    wrong = env.http.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": "sandbox-client", "client_secret": "x"})
    assert wrong.status_code == 401
    assert wrong.json()["errors"][0]["code"] == "NOT.AUTHORIZED.ERROR"
    basic = env.http.post("/oauth/token", auth=("sandbox-client", "sandbox-secret"),
                          data={"grant_type": "client_credentials"})
    assert basic.status_code == 401  # FedEx wants the credentials as form fields


def test_fedex_mixed_batch_out_for_delivery_and_not_found(env: Env) -> None:
    timeline = env.register("fedex", FEDEX_N, "normal")
    env.register("fedex", "400123456785", "not_found")
    env.clock.t = _event_time(timeline, "out_for_delivery") + timedelta(minutes=5)
    resp = env.fedex(FEDEX_N, "400123456785", headers={"x-customer-transaction-id": "order-1"})
    assert resp.status_code == 200
    body = resp.json()
    assert body["customerTransactionId"] == "order-1" and body["transactionId"]
    found, missing = body["output"]["completeTrackResults"]
    assert missing["trackResults"][0]["error"]["code"] == "TRACKING.TRACKINGNUMBER.NOTFOUND"
    result = found["trackResults"][0]
    assert result["latestStatusDetail"]["code"] == "OD"
    assert result["latestStatusDetail"]["derivedCode"] == "IT"
    scans = result["scanEvents"]
    assert scans[0]["eventType"] == "OD" and scans[0]["derivedStatusCode"] == "IT"
    for scan in scans:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", scan["date"])
    stamps = [datetime.fromisoformat(s["date"]) for s in scans]
    assert stamps == sorted(stamps, reverse=True)
    assert scans[-1]["scanLocation"] == {"streetLines": [""], "residential": False}
    window = result["estimatedDeliveryTimeWindow"]["window"]
    assert window["begins"][:10] == window["ends"][:10] == timeline["edd_changes"][0]["end"]
    assert {d["type"] for d in result["dateAndTimes"]} >= {"ESTIMATED_DELIVERY", "SHIP"}
    assert env.stats("fedex")["numbers"] == 2


def test_fedex_batch_limits_and_summary_mode(env: Env) -> None:
    env.register("fedex", FEDEX_N)
    env.clock.advance(days=2)
    token = env.fedex_token()
    too_many = env.fedex(*[FEDEX_N] * 31, token=token)
    assert too_many.status_code == 400
    empty = env.fedex(token=token)
    assert empty.status_code == 400
    assert empty.json()["errors"][0]["code"] == "TRACKING.TRACKINGNUMBER.EMPTY"
    assert env.fedex(*[FEDEX_N] * 30, token=token).status_code == 200
    latest_only = env.fedex(FEDEX_N, token=token, detailed=False).json()
    assert len(latest_only["output"]["completeTrackResults"][0]["trackResults"][0]
               ["scanEvents"]) == 1


def test_fedex_quirks_duplicate_and_offsetless_label(env: Env) -> None:
    env.register("fedex", FEDEX_N, quirks=["fedex_duplicate", "fedex_offsetless_label"])
    env.clock.advance(days=1)
    results = env.fedex(FEDEX_N).json()["output"]["completeTrackResults"][0]["trackResults"]
    assert len(results) == 2
    ids = {r["trackingNumberInfo"]["trackingNumberUniqueId"] for r in results}
    assert len(ids) == 2
    label = results[0]["scanEvents"][-1]
    assert label["eventType"] == "OC"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", label["date"])


# --- DHL ---------------------------------------------------------------------------------


def test_dhl_key_required(env: Env) -> None:
    for key in (None, "wrong"):
        resp = env.dhl(DHL_N, key)
        assert resp.status_code == 401
        assert resp.json()["status"] == 401 and resp.json()["title"]
    assert env.stats("dhl")["401"] == 2


def test_dhl_shipment_shape_and_text_only_out_for_delivery(env: Env) -> None:
    timeline = env.register("dhl", DHL_N)
    env.clock.t = _event_time(timeline, "out_for_delivery") + timedelta(minutes=1)
    resp = env.dhl(DHL_N)
    assert resp.status_code == 200
    shipment = resp.json()["shipments"][0]
    assert shipment["id"] == DHL_N and shipment["service"] == "express"
    assert shipment["status"]["statusCode"] == "transit"
    assert "OUT FOR DELIVERY" in shipment["status"]["status"]
    for event in shipment["events"]:
        assert event["statusCode"] in {"pre-transit", "transit", "delivered", "failure",
                                       "unknown"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", event["timestamp"])
    assert "location" not in shipment["events"][-1]  # pre-transit: no location
    assert shipment["events"][-1]["statusCode"] == "pre-transit"
    assert shipment["estimatedTimeOfDelivery"].startswith(timeline["edd_changes"][-1]["end"])


def test_dhl_not_found_problem_json_and_offsets_quirk(env: Env) -> None:
    env.register("dhl", "8264715546", "not_found")
    resp = env.dhl("8264715546")
    assert resp.status_code == 404
    assert resp.json() == {"title": "No result found", "status": 404,
                           "detail": "No shipment with given tracking number found.",
                           "instance": "/shipments/8264715546"}
    env.register("dhl", DHL_N, quirks=["dhl_offsets"])
    env.clock.advance(days=1)
    stamp = env.dhl(DHL_N).json()["shipments"][0]["events"][0]["timestamp"]
    assert re.fullmatch(r".*[+-]\d\d:\d\d", stamp)


# --- USPS --------------------------------------------------------------------------------


def test_usps_token_form_json_and_refusals(env: Env) -> None:
    form = env.http.post("/oauth2/v3/token", data={
        "grant_type": "client_credentials", "client_id": "sandbox-client",
        "client_secret": "sandbox-secret"}).json()
    as_json = env.http.post("/oauth2/v3/token", json={
        "grant_type": "client_credentials", "client_id": "sandbox-client",
        "client_secret": "sandbox-secret"}).json()
    for body in (form, as_json):
        assert body["expires_in"] == 28799 and isinstance(body["issued_at"], int)
        assert body["token_type"] == "Bearer" and "tracking" in body["scope"].split()
    wrong = env.http.post("/oauth2/v3/token", data={
        "grant_type": "client_credentials", "client_id": "sandbox-client", "client_secret": "x"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    grant = env.http.post("/oauth2/v3/token", data={
        "grant_type": "password", "client_id": "sandbox-client", "client_secret": "x"})
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"


def test_usps_token_without_tracking_scope_gets_401(env: Env) -> None:
    env.register("usps", USPS_N)
    token = env.usps_token(scope="labels")
    resp = env.usps(USPS_N, token)
    assert resp.status_code == 401
    assert resp.json() == {"apiVersion": "/tracking/v3", "error": {
        "code": "401", "message": "The client application identifier is invalid.", "errors": []}}


def test_usps_v3_detail_summary_and_not_found(env: Env) -> None:
    timeline = env.register("usps", USPS_N, quirks=["usps_z_suffix"])
    env.clock.t = _event_time(timeline, "out_for_delivery") + timedelta(minutes=1)
    token = env.usps_token()
    detail = env.usps(USPS_N, token).json()
    assert detail["statusCategory"] == "Out for Delivery"
    for key in ("proofOfDeliveryEnabled", "RREEnabled", "restoreEnabled", "kahalaIndicator"):
        assert detail[key] in ("true", "false")
    assert detail["expectedDeliveryTimeStamp"].startswith(timeline["edd_changes"][-1]["end"])
    newest = detail["trackingEvents"][0]
    assert newest["eventCode"] == "OF" and "eventZIP" in newest and "name" in newest
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", newest["eventTimestamp"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", newest["GMTTimestamp"])
    assert re.fullmatch(r"[+-]\d\d:\d\d", newest["GMTOffset"])
    summary = env.usps(USPS_N, token, expand="SUMMARY").json()
    assert set(summary) == {"trackingNumber", "expectedDeliveryDate", "expectedDeliveryTime",
                            "guaranteedDeliveryDate", "eventSummaries"}
    env.register("usps", "9400191234567812345679", "not_found")
    missing = env.usps("9400191234567812345679", token)
    assert missing.status_code == 404
    assert missing.json()["error"]["errors"][0]["code"] == "150006"


def test_usps_v3r2_batch_statuses(env: Env) -> None:
    env.register("usps", USPS_N)
    env.register("usps", "9400191234567812345679", "not_found")
    env.clock.advance(days=1)
    token = env.usps_token()
    ok = env.usps_batch(USPS_N, token=token)
    assert ok.status_code == 200 and ok.json()[0]["statusCode"] == "200"
    item = ok.json()[0]
    assert "originZIPCode" in item and "deliveryDateExpectation" in item
    assert "eventZIPCode" in item["trackingEvents"][0]
    assert isinstance(item["servicesEligibility"]["RREEnabled"], bool)
    mixed = env.usps_batch(USPS_N, "9400191234567812345679", token=token)
    assert mixed.status_code == 207
    assert [i["statusCode"] for i in mixed.json()] == ["200", "404"]
    assert mixed.json()[1]["error"]["errors"][0]["code"] == "150006"
    assert env.usps_batch(*[USPS_N] * 36, token=token).status_code == 400
    assert env.usps_batch(*[USPS_N] * 35, token=token).status_code == 200


# --- quotas ------------------------------------------------------------------------------


def test_dhl_per_second_quota_real_clock(env: Env) -> None:
    env.sandbox.state.set_quota("dhl", Quota(per_second=2))
    env.register("dhl", DHL_N)
    assert [env.dhl(DHL_N).status_code for _ in range(3)] == [200, 200, 429]
    refused = env.dhl(DHL_N)
    assert refused.json()["status"] == 429 and "Retry-After" not in refused.headers
    env.mono.t += 1.0  # the one-second window has passed
    assert env.dhl(DHL_N).status_code == 200
    stats = env.stats("dhl")
    assert stats["429_quota"] == stats["overruns"] == 2 and stats["requests"] == 5


def test_daily_quota_uses_simulated_day(env: Env) -> None:
    env.sandbox.state.set_quota("dhl", Quota(per_day=3))
    env.register("dhl", DHL_N)
    assert [env.dhl(DHL_N).status_code for _ in range(4)] == [200, 200, 200, 429]
    env.mono.t += 86400.0  # real time alone does not reset a daily quota
    assert env.dhl(DHL_N).status_code == 429
    env.clock.t = datetime.combine(T0.date() + timedelta(days=1), datetime.min.time(), UTC)
    assert env.dhl(DHL_N).status_code == 200


def test_fedex_ten_second_window_refuses_exactly_past_limit(env: Env) -> None:
    env.sandbox.state.set_quota("fedex", Quota(per_10s=5))
    token = env.fedex_token()  # token calls do not count for FedEx
    codes = [env.fedex(FEDEX_N, token=token).status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    refused = env.fedex(FEDEX_N, token=token)
    assert "short duration" in refused.json()["errors"][0]["message"]
    env.mono.t += 9.9
    assert env.fedex(FEDEX_N, token=token).status_code == 429
    env.mono.t += 0.1
    assert env.fedex(FEDEX_N, token=token).status_code == 200


def test_usps_hourly_quota_counts_token_calls_and_sends_retry_after(env: Env) -> None:
    env.sandbox.state.set_quota("usps", Quota(per_hour=3))
    env.clock.t = T0 + timedelta(minutes=45)
    token = env.usps_token()
    assert [env.usps(USPS_N, token).status_code for _ in range(3)] == [200, 200, 429]
    refused = env.usps(USPS_N, token)
    assert refused.headers["Retry-After"] == str(15 * 60)  # to the next simulated hour
    assert refused.json()["error"]["code"] == "429"
    env.clock.advance(minutes=15)
    assert env.usps(USPS_N, token).status_code == 200


def test_ups_quota_429_has_no_retry_after_and_quota_endpoint(env: Env) -> None:
    env.http.post("/_sandbox/quotas", json={"carrier": "ups", "per_second": 1})
    token = env.ups_token()
    assert env.ups(UPS_N, token).status_code == 200
    refused = env.ups(UPS_N, token)
    assert refused.status_code == 429 and "Retry-After" not in refused.headers
    assert refused.json()["response"]["errors"][0]["code"] == "10429"
    listed = env.http.get("/_sandbox/quotas").json()
    assert listed["ups"]["per_second"] == 1 and listed["ups"]["used"]["second"] == 1
    env.http.post("/_sandbox/quotas", json={"carrier": "ups"})
    assert env.ups(UPS_N, token).status_code == 200


# --- faults ------------------------------------------------------------------------------


def test_fault_429_burst_with_and_without_retry_after(env: Env) -> None:
    env.fault(carrier="fedex", kind="429", count=2, retry_after="7")
    token = env.fedex_token()  # track faults do not touch the token endpoint
    first, second = env.fedex(FEDEX_N, token=token), env.fedex(FEDEX_N, token=token)
    assert (first.status_code, second.status_code) == (429, 429)
    assert first.headers["Retry-After"] == "7"
    assert env.fedex(FEDEX_N, token=token).status_code == 200
    env.fault(carrier="usps", kind="429", retry_after=None)
    env.fault(carrier="usps", kind="429")
    token = env.usps_token()
    assert "Retry-After" not in env.usps(USPS_N, token).headers  # explicit null: no header
    assert env.usps(USPS_N, token).headers["Retry-After"] == "30"  # USPS's own default
    assert env.stats("fedex")["429_fault"] == 2 and env.stats("fedex")["429_quota"] == 0


def test_fault_5xx_html_malformed_and_slow(env: Env) -> None:
    env.register("dhl", DHL_N)
    env.fault(carrier="dhl", kind="5xx", status=502)
    env.fault(carrier="dhl", kind="html")
    env.fault(carrier="dhl", kind="malformed")
    env.fault(carrier="dhl", kind="slow", delay=1.0)
    error = env.dhl(DHL_N)
    assert error.status_code == 502 and error.json()["status"] == 502
    html = env.dhl(DHL_N)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    broken = env.dhl(DHL_N)
    assert broken.headers["content-type"] == "application/json"
    with pytest.raises(ValueError):
        json.loads(broken.content)
    with pytest.raises(httpx.ReadTimeout):
        env.http.get("/track/shipments", params={"trackingNumber": DHL_N},
                     headers={"DHL-API-Key": "sandbox-key"}, timeout=0.2)
    assert env.dhl(DHL_N).status_code == 200
    assert env.stats("dhl")["5xx"] == 1


def test_fault_on_token_endpoint_and_clear(env: Env) -> None:
    env.fault(carrier="ups", kind="5xx", endpoint="token", count=None)
    assert env.http.post("/security/v1/oauth/token", auth=("sandbox-client", "sandbox-secret"),
                         data={"grant_type": "client_credentials"}).status_code == 503
    env.http.delete("/_sandbox/faults")
    token = env.ups_token()
    assert env.ups(UPS_N, token).status_code == 200
    bad = env.http.post("/_sandbox/faults", json={"carrier": "ups", "kind": "teapot"})
    assert bad.status_code == 400


def test_fault_daily_quota_exhaustion_until_next_simulated_day(env: Env) -> None:
    env.fault(carrier="fedex", kind="quota")
    token = env.fedex_token()
    refused = env.fedex(FEDEX_N, token=token)
    assert refused.status_code == 429
    assert "Daily transaction quota exceeded" in refused.json()["errors"][0]["message"]
    env.clock.advance(days=1)
    assert env.fedex(FEDEX_N, token=token).status_code == 200


def test_stats_and_reset(env: Env) -> None:
    env.register("usps", USPS_N)
    token = env.usps_token()
    env.usps(USPS_N, token)
    env.usps_batch(USPS_N, "9400191234567812345679", token=token)
    stats = env.stats("usps")
    assert (stats["requests"], stats["numbers"], stats["tokens_issued"]) == (2, 3, 1)
    assert stats["distinct_numbers"] == 2
    env.http.post("/_sandbox/reset")
    assert env.stats("usps")["requests"] == 0
    assert env.http.get(f"/_sandbox/shipments/{USPS_N}?carrier=usps").json()["registered"]
    env.http.post("/_sandbox/reset", json={"all": True})
    assert not env.http.get(f"/_sandbox/shipments/{USPS_N}?carrier=usps").json()["registered"]


# --- scenarios ---------------------------------------------------------------------------


def test_time_progression_follows_the_timeline(env: Env) -> None:
    timeline = env.register("ups", UPS_N, "failed_attempt_pickup", start=T0)
    token = env.ups_token()
    env.clock.t = T0 - timedelta(minutes=1)
    assert "warnings" in env.ups(UPS_N, token).json()["trackResponse"]["shipment"][0]
    events = timeline["events"]
    for i, event in enumerate(events):
        env.clock.t = datetime.fromisoformat(event["at"]) + timedelta(seconds=30)
        package = env.ups(UPS_N, token).json()["trackResponse"]["shipment"][0]["package"][0]
        assert len(package["activity"]) == i + 1
        assert package["activity"][0]["status"]["statusCode"] == event["code"]
    assert [e["status"] for e in events][-3:] == ["failed_attempt", "available_for_pickup",
                                                  "delivered"]


def test_timeline_endpoint_shows_future_events(env: Env) -> None:
    env.register("usps", USPS_N, "edd_slip_many")
    env.clock.advance(hours=1)
    shown = env.http.get(f"/_sandbox/shipments/{USPS_N}", params={"carrier": "usps"}).json()
    assert shown["scenario"] == "edd_slip_many" and shown["start"] == T0.isoformat()
    visible = [e["visible"] for e in shown["events"]]
    assert visible[0] and not visible[-1]
    assert shown["current_status"] == "info_received" and shown["final_status"] == "delivered"
    assert len(shown["edd_changes"]) == 4


def test_unregistered_numbers_are_stable_and_implausible_ones_not_found(env: Env) -> None:
    first = env.http.get(f"/_sandbox/shipments/{FEDEX_N}", params={"carrier": "fedex"}).json()
    assert not first["registered"]
    start = datetime.fromisoformat(first["start"])
    assert T0 - timedelta(days=4) <= start <= T0
    env.clock.advance(days=3)
    again = env.http.get(f"/_sandbox/shipments/{FEDEX_N}", params={"carrier": "fedex"}).json()
    assert (again["scenario"], again["start"]) == (first["scenario"], first["start"])
    nonsense = env.http.get("/_sandbox/shipments/HELLO", params={"carrier": "fedex"}).json()
    assert nonsense["scenario"] == "not_found" and nonsense["events"] == []


def test_construction_options(make_env: Any) -> None:
    env = make_env(quotas={"ups": Quota(per_second=1)}, token_lifetimes={"ups": 60},
                   credentials=SandboxCredentials(client_id="a", client_secret="b",
                                                  dhl_api_key="k"))
    assert env.http.post("/security/v1/oauth/token", auth=("sandbox-client", "sandbox-secret"),
                         data={"grant_type": "client_credentials"}).status_code == 401
    token = env.http.post("/security/v1/oauth/token", auth=("a", "b"),
                          data={"grant_type": "client_credentials"}).json()
    assert token["expires_in"] == "60"
    assert env.ups(UPS_N, token["access_token"]).status_code == 200
    assert env.ups(UPS_N, token["access_token"]).status_code == 429
    assert env.dhl(DHL_N, "k").status_code == 200 and env.dhl(DHL_N).status_code == 401


async def test_serve_runs_until_stopped_or_cancelled() -> None:
    def free_port() -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
            return port

    port = free_port()
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(port=port, now=FakeClock(T0).now, stop=stop, ready=ready))
    await asyncio.wait_for(ready.wait(), 10)
    async with httpx.AsyncClient() as client:
        stats = await client.get(f"http://127.0.0.1:{port}/_sandbox/stats")
    assert stats.json()["now"] == T0.isoformat()
    stop.set()
    await asyncio.wait_for(task, 10)
    ready = asyncio.Event()
    task = asyncio.create_task(serve(port=port, now=FakeClock(T0).now, ready=ready))
    await asyncio.wait_for(ready.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with socket.socket() as again:  # the listening socket was closed
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))


def test_two_sandboxes_with_one_seed_agree(make_env: Any) -> None:
    a, b = make_env(seed=7), make_env(seed=7)
    rng = random.Random(5)
    for carrier in ("ups", "fedex", "dhl", "usps"):
        number = numbers.generate(carrier, rng)
        shown = [e.http.get(f"/_sandbox/shipments/{number}", params={"carrier": carrier}).json()
                 for e in (a, b)]
        assert shown[0] == shown[1]


def test_hash_mix_is_mostly_normal_delivery() -> None:
    rng = random.Random(1)
    counts: dict[Scenario, int] = {}
    for _ in range(2000):
        scenario, _start = pick_scenario(numbers.generate("ups", rng), "ups", now=T0)
        counts[scenario] = counts.get(scenario, 0) + 1
    assert max(counts, key=lambda s: counts[s]) is Scenario.normal
    assert counts[Scenario.normal] > 1000 and len(counts) == len(Scenario)


def _coherent(scenario: Scenario, kinds: list[Kind], instants: list[datetime],
              windows: list[Any], statuses: list[str]) -> bool:
    """What each scenario promises, stated once."""
    if scenario is Scenario.normal:
        return kinds[-1] is Kind.delivered and instants[0] == T0
    if scenario is Scenario.failed_attempt_pickup:
        return kinds[-3:] == [Kind.failed_attempt, Kind.available_for_pickup,
                              Kind.picked_up_by_recipient]
    if scenario is Scenario.label_only:
        return kinds == [Kind.label_created] and windows == []
    if scenario is Scenario.lost:
        return Kind.delivered not in kinds and len(kinds) == 5
    if scenario is Scenario.edd_slip_once:
        return len(windows) == 2 and _later(windows)
    if scenario is Scenario.edd_slip_many:
        return len(windows) == 4 and _later(windows)
    if scenario is Scenario.exception_return:
        return statuses[-1] == "returned" and windows[-1] is None
    if scenario is Scenario.delivered_already:
        return kinds[-1] is Kind.delivered and instants[-1] < T0
    if scenario is Scenario.not_found:
        return kinds == []
    return kinds[-2:] == [Kind.delivered, Kind.delivered_corrected]


@pytest.mark.parametrize("scenario", list(Scenario))
@pytest.mark.parametrize("carrier", ["ups", "fedex", "dhl", "usps"])
def test_every_scenario_is_deterministic_and_coherent(carrier: str, scenario: Scenario) -> None:
    number = {"ups": UPS_N, "fedex": FEDEX_N, "dhl": DHL_N, "usps": USPS_N}[carrier]
    tl = build_timeline(number, carrier, scenario, T0, seed=3)
    build_timeline.cache_clear()
    assert build_timeline(number, carrier, scenario, T0, seed=3) == tl
    kinds = [e.kind for e in tl.events]
    instants = [e.at for e in tl.events]
    assert instants == sorted(instants)
    windows = [c.window for c in tl.edd]
    statuses = [expected_row(carrier, e, tl).status.value for e in tl.events]
    assert _coherent(scenario, kinds, instants, windows, statuses), (kinds, windows)
    if Kind.delivered in kinds and scenario is not Scenario.failed_attempt_pickup:
        # The final estimate is the local delivery day.
        delivered = next(e for e in tl.events if e.kind is Kind.delivered)
        final = windows[-1]
        assert final is not None and final.start == delivered.local.date()
    if len(instants) > 6:  # scans spread over days, not minutes
        assert instants[-1] - instants[0] > timedelta(days=1)


def _later(windows: list[Any]) -> bool:
    days: list[date] = [w.start for w in windows]
    return all(b > a for a, b in itertools.pairwise(days))


SANDBOX_PURE = ["scenarios.py", "places.py", "quota.py", "faults.py", "payloads/__init__.py",
                "payloads/common.py", "payloads/ups.py", "payloads/fedex.py", "payloads/dhl.py",
                "payloads/usps.py"]


@pytest.mark.parametrize("module", SANDBOX_PURE)
def test_sandbox_pure_modules_do_no_io(module: str) -> None:
    tree = ast.parse((ROOT / "carriers" / "sandbox" / module).read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    io = {"httpx", "starlette", "uvicorn", "asyncio", "socket", "time", "secrets", "uuid"}
    assert not {m for m in imported if m.split(".")[0] in io}
    calls = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert not {c for c in calls if c.endswith(("datetime.now", "date.today", "time.time"))}
