"""Contract tests for the FedEx adapter: the pure parser against fixtures written from the
reference field names (tests/fixtures/fedex, including the reference's §9.1 example), a fuzz proof
that any JSON gives a result or a payload error, and the client against a real local FedEx
look-alike server (starlette + uvicorn on 127.0.0.1) that checks request shapes and scripts
token, auth, rate-limit and outage behaviour.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from carriers import errors, fedex
from carriers.base import CarrierSettings
from carriers.model import (
    BatchResult,
    DeliveryWindow,
    ExceptionReason,
    Location,
    Status,
    TrackingEvent,
    TrackingResult,
)
from tests.support.http_server import RunningServer, serve

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fedex"
NOW = datetime(2025, 6, 14, 12, 0, tzinfo=UTC)
NOT_FOUND = ("TRACKING.TRACKINGNUMBER.NOTFOUND: Tracking number cannot be found. Please correct "
             "the tracking number and try again.")


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def ev(local: str, status: Status, code: str, description: str, location: Location, *,
       assumed_zone_utc: str | None = None,
       reason: ExceptionReason | None = None) -> TrackingEvent:
    """An expected event; ``local`` carries the scan's offset, so it also fixes the instant."""
    local_time = datetime.fromisoformat(local)
    at = (datetime.fromisoformat(assumed_zone_utc) if assumed_zone_utc
          else local_time.astimezone(UTC))
    return TrackingEvent(at=at, status=status, code=code, description=description,
                         location=location, local_time=local_time,
                         offset_assumed=assumed_zone_utc is not None, exception_reason=reason)


DEN = Location(city="DENVER", state="CO", postal_code="80216", country="US")
MEM = Location(city="MEMPHIS", state="TN", postal_code="38118", country="US")
IND = Location(city="INDIANAPOLIS", state="IN", postal_code="46241", country="US")
NOWHERE = Location()


# --- parser ----------------------------------------------------------------------------------

def test_reference_example_out_for_delivery_and_not_found() -> None:
    result = fedex.parse_payload(load("batch_ofd_notfound.json"), now=NOW)
    assert result == BatchResult(results=(
        TrackingResult(
            carrier="fedex", tracking_number="123456789012", status=Status.out_for_delivery,
            status_detail="On FedEx vehicle for delivery",
            # the estimated window wins over dateAndTimes ESTIMATED_DELIVERY
            estimated_delivery=DeliveryWindow.day(date(2025, 6, 12)), service="FedEx 2Day",
            events=(
                # derivedStatusCode "IT" on an OD scan: the raw eventType decides
                ev("2025-06-12T08:02:00-06:00", Status.out_for_delivery, "OD",
                   "On FedEx vehicle for delivery", DEN),
                ev("2025-06-11T22:39:00-06:00", Status.in_transit, "AR",
                   "At local FedEx facility", DEN),
                ev("2025-06-10T16:05:00-05:00", Status.in_transit, "PU", "Picked up", MEM),
                ev("2025-06-10T11:30:57-05:00", Status.info_received, "OC",
                   "Shipment information sent to FedEx", NOWHERE),
            )),
        TrackingResult.missing("fedex", "400123456785", NOT_FOUND),
    ))


def test_delivered_with_proof_of_delivery() -> None:
    (r,) = fedex.parse_payload(load("delivered.json"), now=NOW).results
    assert r == TrackingResult(
        carrier="fedex", tracking_number="776094337676", status=Status.delivered,
        status_detail="Delivered", delivered_at=datetime(2025, 6, 12, 16, 41, tzinfo=UTC),
        signed_by="D.HERRERA", service="FedEx Priority Overnight",
        events=(
            ev("2025-06-12T10:41:00-06:00", Status.delivered, "DL", "Delivered", DEN),
            ev("2025-06-12T08:02:00-06:00", Status.out_for_delivery, "OD",
               "On FedEx vehicle for delivery", DEN),
            # a delivery-option request changes nothing: it inherits "in transit"
            ev("2025-06-12T07:30:00-06:00", Status.in_transit, "RR",
               "Delivery option requested", NOWHERE),
            ev("2025-06-12T06:10:00-06:00", Status.in_transit, "AR", "At local FedEx facility",
               DEN),
            ev("2025-06-11T16:05:00-05:00", Status.in_transit, "PU", "Picked up", MEM),
            ev("2025-06-11T11:30:57-05:00", Status.info_received, "OC",
               "Shipment information sent to FedEx", NOWHERE),
        ))


def test_mixed_batch() -> None:
    result = fedex.parse_payload(load("mixed_batch.json"), now=NOW)
    by_number = {r.tracking_number: r for r in result.results}
    assert result.problems == {"100000000009": "INTERNAL.SERVER.ERROR: We encountered an "
                               "unexpected error and are working to resolve the issue."}
    summary = {n: (r.status, r.status_detail, r.exception_reason, r.estimated_delivery,
                   r.unknown_codes) for n, r in by_number.items()}
    day = DeliveryWindow.day
    assert summary == {
        "100000000001": (Status.failed_attempt, "Delivery exception: Customer not available or "
                         "business closed", None, None, ()),
        "100000000002": (Status.exception, "Delivery exception: Refused by recipient",
                         ExceptionReason.refused, None, ()),
        "100000000003": (Status.exception, "Shipment exception: Package damaged",
                         ExceptionReason.damaged, None, ()),
        "100000000004": (Status.exception, "Clearance delay: Import documentation under review",
                         ExceptionReason.customs, day(date(2025, 6, 16)), ()),
        # a window given back to front is still the two days it spans
        "100000000005": (Status.exception, "Delay", ExceptionReason.weather,
                         DeliveryWindow(start=date(2025, 6, 13), end=date(2025, 6, 14)), ()),
        "100000000006": (Status.available_for_pickup, "Ready for recipient pickup", None, None,
                         ()),
        "100000000007": (Status.returned, "Return to shipper", None, None, ()),
        "100000000008": (Status.unknown, "Something new", None, None, ("ZQ",)),
        "100000000010": (Status.in_transit, "Arrived at FedEx location", None, None, ()),
        "100000000011": (Status.info_received, "Shipment information sent to FedEx", None, None,
                         ()),
        "128667043726": (Status.pending, NOT_FOUND, None, None, ()),
    }
    assert by_number["128667043726"].not_found
    assert by_number["100000000001"].events == (
        ev("2025-06-12T14:20:00-04:00", Status.failed_attempt, "DE",
           "Delivery exception: Customer not available or business closed", IND),
        ev("2025-06-12T08:00:00-04:00", Status.out_for_delivery, "OD",
           "On FedEx vehicle for delivery", IND),
    )
    assert by_number["100000000007"].events[1] == ev(
        "2025-06-12T15:00:00-06:00", Status.exception, "DE",
        "Delivery exception: Incorrect address", DEN, reason=ExceptionReason.address)
    assert [e.code for e in by_number["100000000010"].events] == ["AR"]


def test_offsetless_times_and_running_late() -> None:
    (r,) = fedex.parse_payload(load("no_offset_running_late.json"), now=NOW).results
    assert r == TrackingResult(
        carrier="fedex", tracking_number="400123456785", status=Status.in_transit,
        # the model has no delay flag: FedEx's "Running Late" stays visible in the detail
        status_detail="At FedEx destination facility (Running Late)",
        estimated_delivery=DeliveryWindow.day(date(2024, 8, 16)), service="FedEx Ground",
        events=(
            # Memphis, TN: resolved to Central time (CDT in August), flagged as assumed
            ev("2024-08-15T00:00:00-05:00", Status.in_transit, "FD",
               "At FedEx destination facility", MEM,
               assumed_zone_utc="2024-08-15T05:00:00+00:00"),
            # no location at all: UTC, flagged
            ev("2024-08-14T18:30:00+00:00", Status.info_received, "OC",
               "Shipment information sent to FedEx", NOWHERE,
               assumed_zone_utc="2024-08-14T18:30:00+00:00"),
        ))


def test_alerts_as_string_or_array_are_tolerated() -> None:
    payload = load("batch_ofd_notfound.json")
    payload["output"]["alerts"] = "TRACKING.DATA.NOTFOUND -  Tracking data unavailable"
    as_string = fedex.parse_payload(payload, now=NOW)
    payload["output"]["alerts"] = [{"code": "VIRTUAL.RESPONSE", "alertType": "NOTE",
                                    "message": "This is a Virtual Response."}]
    assert fedex.parse_payload(payload, now=NOW) == as_string
    assert len(as_string.results) == 2


@pytest.mark.parametrize("payload", [
    None, [], "output", {"output": []}, {"output": {"completeTrackResults": {}}},
    {"output": {"completeTrackResults": [7]}},
    {"output": {"completeTrackResults": [{"trackResults": []}]}},
    {"transactionId": "x", "errors": [{"code": "NOT.AUTHORIZED.ERROR", "message": "expired"}]},
], ids=repr)
def test_not_a_fedex_response(payload: Any) -> None:
    with pytest.raises(errors.CarrierPayloadError):
        fedex.parse_payload(payload, now=NOW)


def test_malformed_record_is_a_problem_for_that_number_only() -> None:
    payload = load("batch_ofd_notfound.json")
    first = payload["output"]["completeTrackResults"][0]["trackResults"][0]
    first["scanEvents"][1]["date"] = "yesterday-ish"
    result = fedex.parse_payload(payload, now=NOW)
    assert list(result.problems) == ["123456789012"]
    assert [r.tracking_number for r in result.results] == ["400123456785"]


def test_tracking_url() -> None:
    assert fedex.tracking_url("1234 5678 9012") == (
        "https://www.fedex.com/fedextrack/?trknbr=123456789012")


# --- fuzz ------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)
# Values shaped like FedEx fields, weighted over arbitrary JSON so the fuzz reaches deep into
# the parser (the plain JSON test above covers garbage at the top level).
leaf = json_values | st.sampled_from(["", " ", "OD", "DE", "15", "TN"])


def like(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Nine times in ten ``good``, else anything."""
    return st.integers(0, 9).flatmap(lambda i: leaf if i == 0 else good)


stamps = like(st.sampled_from([
    "2025-06-12T08:02:00-06:00", "2024-08-15T00:00:00", "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00", "2025-06-12", "2025-06-13T10:00:00Z"] * 3
    + ["2025-13-40T00:00:00", "2025-06-12T25:00:00Z"]))
codes = like(st.sampled_from(["OD", "DE", "DL", "IT", "RR", "HP", "ZQ", "AR"]))
derived = like(st.sampled_from(["IT", "DL", "DE", "RL", "IN", "ZZ"]))
location = like(st.fixed_dictionaries({}, optional={
    "city": leaf, "stateOrProvinceCode": like(st.sampled_from(["TN", "CO", "ZZ"])),
    "countryCode": like(st.sampled_from(["US", "CA"]))}))
scan_event = st.fixed_dictionaries({"date": stamps}, optional={
    "eventType": codes, "derivedStatusCode": derived, "eventDescription": leaf,
    "exceptionDescription": leaf, "scanLocation": location,
    "delayDetail": like(st.fixed_dictionaries({}, optional={
        "type": like(st.sampled_from(["WEATHER", "CLEARANCE", "LOCAL"])),
        "status": like(st.just("DELAYED"))})),
    "ancillaryDetails": like(st.lists(st.fixed_dictionaries({}, optional={
        "reason": like(st.just("15")), "reasonDescription": leaf}), max_size=2))})
latest = st.fixed_dictionaries({}, optional={
    "code": codes, "derivedCode": derived, "description": leaf, "statusByLocale": leaf})
window = like(st.fixed_dictionaries({}, optional={"window": like(st.fixed_dictionaries(
    {}, optional={"begins": stamps, "ends": stamps}))}))
track_result = st.fixed_dictionaries({}, optional={
    "trackingNumberInfo": like(st.fixed_dictionaries({}, optional={
        "trackingNumber": like(st.just("123456789012"))})),
    "scanEvents": like(st.lists(like(scan_event), min_size=1, max_size=4)),
    "latestStatusDetail": like(latest),
    "dateAndTimes": like(st.lists(st.fixed_dictionaries({
        "type": like(st.sampled_from(["ACTUAL_DELIVERY", "ESTIMATED_DELIVERY", "COMMITMENT"])),
        "dateTime": stamps}), max_size=3)),
    "estimatedDeliveryTimeWindow": window, "standardTransitTimeWindow": window,
    "deliveryDetails": like(st.fixed_dictionaries({}, optional={"receivedByName": leaf})),
    # rarely an error: most records should reach the scan parser
    "error": st.integers(0, 5).flatmap(lambda i: st.fixed_dictionaries({}, optional={
        "code": like(st.just("TRACKING.TRACKINGNUMBER.NOTFOUND")), "message": leaf})
        if i == 0 else st.just(None))})
complete_entry = st.fixed_dictionaries({
    "trackingNumber": like(st.just("123456789012")),
    "trackResults": like(st.lists(like(track_result), min_size=1, max_size=3))})
fedex_like = st.fixed_dictionaries({"output": st.fixed_dictionaries(
    {"completeTrackResults": st.lists(complete_entry, min_size=1, max_size=3)})})


def _result_or_payload_error(payload: Any) -> None:
    try:
        result = fedex.parse_payload(payload, now=NOW)
    except errors.CarrierPayloadError:
        return
    assert isinstance(result, BatchResult)
    for r in result.results:
        assert [e.at for e in r.events] == sorted((e.at for e in r.events), reverse=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_gives_result_or_payload_error(payload: Any) -> None:
    _result_or_payload_error(payload)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fedex_like)
def test_fedex_shaped_json_gives_result_or_payload_error(payload: Any) -> None:
    _result_or_payload_error(payload)


# --- client against a real local server ------------------------------------------------------

CLIENT_ID, CLIENT_SECRET = "fx-key", "fx-secret"


def _fixture_entries() -> dict[str, Any]:
    entries: dict[str, Any] = {}
    for name in ("batch_ofd_notfound.json", "delivered.json", "mixed_batch.json"):
        for entry in load(name)["output"]["completeTrackResults"]:
            entries[entry["trackingNumber"]] = entry
    return entries


@dataclass
class FakeFedex:
    """A scripted FedEx look-alike. Checks request shapes; records what it saw."""

    expires_in: int = 3599
    reject_all_tokens: bool = False
    drop: set[str] = field(default_factory=set)  # numbers left out of the response
    issued: list[str] = field(default_factory=list)
    valid: set[str] = field(default_factory=set)
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    track_requests: list[dict[str, Any]] = field(default_factory=list)
    script: list[Response | float] = field(default_factory=list)
    entries: dict[str, Any] = field(default_factory=_fixture_entries)

    async def token(self, request: Request) -> Response:
        form = parse_qs((await request.body()).decode())
        self.token_requests.append({"form": form, "headers": dict(request.headers)})
        if form != {"grant_type": ["client_credentials"], "client_id": [CLIENT_ID],
                    "client_secret": [CLIENT_SECRET]}:
            return JSONResponse({"transactionId": "t", "errors": [{
                "code": "NOT.AUTHORIZED.ERROR",
                "message": "The given client credentials were not valid."}]}, 401)
        token = f"tok-{len(self.issued) + 1}"
        self.issued.append(token)
        self.valid.add(token)
        return JSONResponse({"access_token": token, "token_type": "bearer",
                             "expires_in": self.expires_in, "scope": "CXS"})

    async def track(self, request: Request) -> Response:
        body = json.loads(await request.body())
        self.track_requests.append({"body": body, "headers": dict(request.headers)})
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.reject_all_tokens or bearer not in self.valid:
            return JSONResponse({"transactionId": "t", "errors": [{
                "code": "NOT.AUTHORIZED.ERROR", "message": "Access token expired."}]}, 401)
        numbers = [i["trackingNumberInfo"]["trackingNumber"] for i in body["trackingInfo"]]
        if not numbers or len(numbers) > 30 or body.get("includeDetailedScans") is not True:
            return JSONResponse({"transactionId": "t", "errors": [{
                "code": "TRACKING.TRACKINGNUMBER.EMPTY", "message": "bad request"}]}, 400)
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, float):
                await asyncio.sleep(step)
            else:
                return step
        complete = [self.entries.get(n) or {"trackingNumber": n, "trackResults": [{
            "trackingNumberInfo": {"trackingNumber": n},
            "error": {"code": "TRACKING.TRACKINGNUMBER.NOTFOUND", "message": "not found"}}]}
            for n in numbers if n not in self.drop]
        return JSONResponse({"transactionId": "t",
                             "customerTransactionId":
                                 request.headers.get("x-customer-transaction-id"),
                             "output": {"completeTrackResults": complete}})


@dataclass
class Handle:
    fake: FakeFedex
    server: RunningServer


@pytest.fixture(scope="module")
def fedex_server() -> Iterator[Handle]:
    handle = Handle(FakeFedex(), RunningServer(host="", port=0))

    # The app reaches the fake through the handle, so each test can swap in a fresh one.
    async def token(request: Request) -> Response:
        return await handle.fake.token(request)

    async def track(request: Request) -> Response:
        return await handle.fake.track(request)

    app = Starlette(routes=[Route("/oauth/token", token, methods=["POST"]),
                            Route("/track/v1/trackingnumbers", track, methods=["POST"])])
    with serve(app) as server:
        handle.server = server
        yield handle


class Monotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Rig:
    carrier: fedex.FedexCarrier
    fake: FakeFedex
    clock: Monotonic


@pytest.fixture
async def rig(fedex_server: Handle) -> AsyncIterator[Rig]:
    fedex_server.fake = FakeFedex()
    clock = Monotonic()
    cfg = CarrierSettings(base_url=fedex_server.server.url, client_id=CLIENT_ID,
                          client_secret=CLIENT_SECRET, timeout_s=0.5, locale="en_GB")
    async with httpx.AsyncClient() as http:
        carrier = fedex.FedexCarrier(cfg, http, now=lambda: NOW, monotonic=clock)
        yield Rig(carrier, fedex_server.fake, clock)
        await carrier.aclose()
        assert not http.is_closed  # aclose leaves the shared client alone


async def test_batch_request_shape_and_token_reuse(rig: Rig) -> None:
    numbers = ["123456789012", "400123456785", "776094337676"] + [
        f"1000000000{i:02d}" for i in range(1, 12)]
    result = await rig.carrier.track(numbers)
    assert {r.tracking_number for r in result.results} | set(result.problems) == set(numbers)
    assert result.problems == {"100000000009": "INTERNAL.SERVER.ERROR: We encountered an "
                               "unexpected error and are working to resolve the issue."}
    await rig.carrier.track(["776094337676"])
    assert rig.fake.issued == ["tok-1"] and rig.carrier.requests_made == 3
    (token_request,) = rig.fake.token_requests
    assert "authorization" not in token_request["headers"]  # no Basic auth: form fields only
    assert token_request["headers"]["content-type"] == "application/x-www-form-urlencoded"
    first = rig.fake.track_requests[0]
    assert first["body"] == {"includeDetailedScans": True, "trackingInfo": [
        {"trackingNumberInfo": {"trackingNumber": n}} for n in numbers]}
    assert first["headers"]["content-type"] == "application/json"
    assert first["headers"]["x-locale"] == "en_GB"
    assert first["headers"]["authorization"] == "Bearer tok-1"


async def test_thirty_numbers_in_one_call(rig: Rig) -> None:
    numbers = [f"9000000000{i:02d}" for i in range(30)]
    result = await rig.carrier.track(numbers)
    assert [r.tracking_number for r in result.results] == numbers
    assert all(r.not_found for r in result.results)
    assert len(rig.fake.track_requests) == 1
    with pytest.raises(ValueError):
        await rig.carrier.track([*numbers, "900000000030"])


async def test_number_missing_from_response_is_a_problem(rig: Rig) -> None:
    rig.fake.drop.add("400123456785")
    result = await rig.carrier.track(["123456789012", "400123456785"])
    assert [r.tracking_number for r in result.results] == ["123456789012"]
    assert list(result.problems) == ["400123456785"]


async def test_token_refreshed_after_expiry(rig: Rig) -> None:
    await rig.carrier.track(["123456789012"])
    rig.clock.t += 3000  # integer expires_in 3599: still cached
    await rig.carrier.track(["123456789012"])
    assert rig.fake.issued == ["tok-1"]
    rig.clock.t += 560  # 3560 s: inside the one-minute refresh margin
    await rig.carrier.track(["123456789012"])
    assert rig.fake.issued == ["tok-1", "tok-2"]


async def test_401_refreshes_once_then_succeeds(rig: Rig) -> None:
    await rig.carrier.track(["123456789012"])
    rig.fake.valid.clear()
    result = await rig.carrier.track(["123456789012"])
    assert result.results[0].status is Status.out_for_delivery
    assert rig.fake.issued == ["tok-1", "tok-2"]


async def test_401_twice_is_auth_error(rig: Rig) -> None:
    rig.fake.reject_all_tokens = True
    with pytest.raises(errors.CarrierAuthError):
        await rig.carrier.track(["123456789012"])
    assert len(rig.fake.issued) == 2 and len(rig.fake.track_requests) == 2


async def test_bad_credentials_is_auth_error(fedex_server: Handle) -> None:
    fedex_server.fake = FakeFedex()
    cfg = CarrierSettings(base_url=fedex_server.server.url, client_id=CLIENT_ID,
                          client_secret="nope")
    async with httpx.AsyncClient() as http:
        carrier = fedex.FedexCarrier(cfg, http, now=lambda: NOW)
        with pytest.raises(errors.CarrierAuthError):
            await carrier.track(["123456789012"])
    assert fedex_server.fake.track_requests == []


@pytest.mark.parametrize(("headers", "retry_after", "header_sent"), [
    pytest.param({}, 10.0, False, id="no-retry-after"),
    pytest.param({"Retry-After": "3"}, 3.0, True, id="seconds"),
    pytest.param({"Retry-After": email.utils.format_datetime(NOW + timedelta(seconds=45),
                                                             usegmt=True)},
                 45.0, True, id="http-date"),
])
async def test_rate_limited(rig: Rig, headers: dict[str, str], retry_after: float,
                            header_sent: bool) -> None:
    rig.fake.script.append(JSONResponse({"transactionId": "t", "errors": [{
        "code": "RATE.LIMIT.EXCEEDED", "message": "We have received too many requests in a "
        "short duration. Please wait a while to try again"}]}, 429, headers=headers))
    with pytest.raises(errors.CarrierRateLimited) as caught:
        await rig.carrier.track(["123456789012"])
    assert (caught.value.retry_after, caught.value.header_sent) == (retry_after, header_sent)


async def test_server_error_is_unavailable(rig: Rig) -> None:
    rig.fake.script.append(JSONResponse({"transactionId": "t", "errors": [{
        "code": "SERVICE.UNAVAILABLE.ERROR", "message": "unavailable"}]}, 503))
    with pytest.raises(errors.CarrierUnavailable) as caught:
        await rig.carrier.track(["123456789012"])
    assert not isinstance(caught.value, errors.CarrierRateLimited)


async def test_html_page_is_payload_error(rig: Rig) -> None:
    rig.fake.script.append(Response("<html><body>Down for maintenance</body></html>",
                                    media_type="text/html"))
    with pytest.raises(errors.CarrierPayloadError) as caught:
        await rig.carrier.track(["123456789012"])
    assert "<html>" in caught.value.snippet


async def test_timeout_is_unavailable(rig: Rig) -> None:
    rig.fake.script.append(1.0)
    with pytest.raises(errors.CarrierUnavailable):
        await rig.carrier.track(["123456789012"])


async def test_empty_call_sends_nothing(rig: Rig) -> None:
    assert await rig.carrier.track([]) == BatchResult()
    assert rig.carrier.requests_made == 0
