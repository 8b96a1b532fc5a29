"""DHL adapter contract: the pure parser against the payload fixtures (exact normalised results,
any JSON -> result or CarrierPayloadError), the status tables, and the client against a real
local HTTP server (request shape, not found, rate limits, outages, junk bodies, timeouts).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import socket
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import carriers
from carriers import dhl
from carriers.base import CarrierSettings
from carriers.dhl import parse, statuses
from carriers.errors import (
    CarrierAuthError,
    CarrierPayloadError,
    CarrierRateLimited,
    CarrierUnavailable,
)
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

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dhl"
NOW = datetime(2025, 6, 12, 15, 30, tzinfo=UTC)


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def ev(at: datetime, status: Status, code: str, description: str, location: Location | None = None,
       *, local: datetime | None = None, assumed: bool = False,
       reason: ExceptionReason | None = None) -> TrackingEvent:
    return TrackingEvent(at=at, status=status, code=code, description=description,
                         location=location or Location(), local_time=local,
                         offset_assumed=assumed, exception_reason=reason)


def local(text: str) -> datetime:
    return datetime.fromisoformat(text)


NEW_YORK = Location(city="New York", state="NY", postal_code="10001", country="US")
LEIPZIG = Location(city="Leipzig", postal_code="04435", country="DE")
HENDERSON = Location(city="Henderson", state="NV", postal_code="89014", country="US")
BERLIN = Location(city="Berlin", postal_code="10115", country="DE")
UTRECHT = Location(city="Utrecht", postal_code="3511", country="NL")

EXPECTED: dict[str, TrackingResult] = {
    # Reference 9.2: offset-less times; Leipzig resolves to Europe/Berlin (CEST), the US (several
    # zones) and the location-less pre-transit event (destination US) fall back to UTC.
    "express_out_for_delivery.json": TrackingResult(
        carrier="dhl", tracking_number="1234567891", status=Status.out_for_delivery,
        status_detail="Shipment is out with courier for delivery",
        estimated_delivery=DeliveryWindow.day(date(2025, 6, 12)), service="EXPRESS WORLDWIDE",
        events=(
            ev(utc(2025, 6, 12, 9, 14), Status.out_for_delivery, "transit",
               "Shipment is out with courier for delivery", NEW_YORK, assumed=True),
            ev(utc(2025, 6, 11, 0, 5), Status.in_transit, "transit",
               "Shipment has departed from a DHL facility", LEIPZIG,
               local=local("2025-06-11T02:05:00+02:00"), assumed=True),
            ev(utc(2025, 6, 10, 15, 40), Status.info_received, "pre-transit",
               "Shipment information received", assumed=True),
        )),
    # Offsets given; "DELIVERED - PARCEL LOCKER" stays delivered; id as a JSON number;
    # proof of delivery gives delivered_at and the signer; "LABEL CREATED" refines "unknown".
    "ecommerce_delivered_parcel_locker.json": TrackingResult(
        carrier="dhl", tracking_number="7777777770", status=Status.delivered,
        status_detail="DELIVERED - PARCEL LOCKER",
        estimated_delivery=DeliveryWindow.day(date(2025, 5, 8)),
        delivered_at=utc(2025, 5, 8, 17, 38), signed_by="Pat Lee",
        service="DHL SM Parcel Plus Expedited",
        events=(
            ev(utc(2025, 5, 8, 17, 37), Status.delivered, "delivered",
               "DELIVERED - PARCEL LOCKER", HENDERSON, local=local("2025-05-08T10:37:00-07:00")),
            ev(utc(2025, 5, 8, 13, 2), Status.out_for_delivery, "transit", "OUT FOR DELIVERY",
               HENDERSON, local=local("2025-05-08T06:02:00-07:00")),
            ev(utc(2025, 5, 7, 21, 15), Status.in_transit, "transit",
               "ARRIVAL DESTINATION DHL ECOMMERCE FACILITY",
               Location(city="Las Vegas", state="NV", postal_code="89115", country="US"),
               local=local("2025-05-07T21:15:00+00:00")),
            ev(utc(2025, 5, 5, 18, 10), Status.in_transit, "transit", "PROCESSED",
               Location(city="HEBRON", state="KY", postal_code="41048", country="US"),
               local=local("2025-05-05T14:10:00-04:00")),
            ev(utc(2025, 5, 5, 13, 0), Status.info_received, "unknown", "LABEL CREATED",
               local=local("2025-05-05T09:00:00-04:00")),
        )),
    # Parcel DE in March (CET, +01:00): customs hold under "unknown", a failure that is not an
    # attempt (address), then the return; reasons from the text.
    "parcel_de_returned.json": TrackingResult(
        carrier="dhl", tracking_number="00340434292135100186", status=Status.returned,
        status_detail="Returned to sender: recipient address unknown", service="parcel-de",
        exception_reason=ExceptionReason.address,
        events=(
            ev(utc(2025, 3, 14, 15, 20), Status.returned, "failure",
               "Returned to sender: recipient address unknown",
               Location(city="Hamburg", postal_code="20095", country="DE"),
               local=local("2025-03-14T16:20:00+01:00"), assumed=True,
               reason=ExceptionReason.address),
            ev(utc(2025, 3, 13, 10, 5), Status.exception, "failure",
               "The recipient is not known at the given address", BERLIN,
               local=local("2025-03-13T11:05:00+01:00"), assumed=True,
               reason=ExceptionReason.address),
            ev(utc(2025, 3, 13, 6, 45), Status.out_for_delivery, "transit",
               "Shipment is with delivery courier", BERLIN,
               local=local("2025-03-13T07:45:00+01:00"), assumed=True),
            ev(utc(2025, 3, 12, 21, 30), Status.exception, "unknown",
               "Shipment held for customs inspection", LEIPZIG,
               local=local("2025-03-12T22:30:00+01:00"), assumed=True,
               reason=ExceptionReason.customs),
            ev(utc(2025, 3, 11, 8, 0), Status.info_received, "pre-transit",
               "The shipment has been electronically announced",
               Location(city="Zurich", country="CH"), local=local("2025-03-11T09:00:00+01:00"),
               assumed=True),
        )),
    # An undocumented statusCode is unknown and reported; EDD window over three days; the
    # location-less label event resolves with the destination (NL, CEST).
    "ecommerce_pickup_unknown_code.json": TrackingResult(
        carrier="dhl", tracking_number="GM2951173225174494", status=Status.unknown,
        status_detail="Item held at depot",
        estimated_delivery=DeliveryWindow(start=date(2025, 10, 1), end=date(2025, 10, 3)),
        service="DHL Parcel Connect", unknown_codes=("held-at-depot",),
        events=(
            ev(utc(2025, 10, 2, 12, 3), Status.unknown, "held-at-depot", "Item held at depot",
               UTRECHT, local=local("2025-10-02T14:03:00+02:00")),
            ev(utc(2025, 10, 1, 10, 0), Status.available_for_pickup, "transit",
               "Parcel is ready for pickup at the DHL ServicePoint", UTRECHT,
               local=local("2025-10-01T12:00:00+02:00"), assumed=True),
            ev(utc(2025, 9, 30, 6, 0), Status.in_transit, "transit", "Parcel sorted at the hub",
               Location(city="Amsterdam", country="NL"),
               local=local("2025-09-30T08:00:00+02:00"), assumed=True),
            ev(utc(2025, 9, 29, 15, 30), Status.info_received, "pre-transit", "LABEL CREATED",
               local=local("2025-09-29T17:30:00+02:00"), assumed=True),
        )),
    # A routine scan after delivery does not move the shipment back.
    "express_delivered_late_scan.json": TrackingResult(
        carrier="dhl", tracking_number="8264715546", status=Status.delivered,
        status_detail="Delivered - Signed for by: SMITH", delivered_at=utc(2025, 1, 20, 11, 32),
        service="EXPRESS 12:00",
        events=(
            ev(utc(2025, 1, 20, 18, 0), Status.in_transit, "transit", "Processed at LONDON - UK",
               Location(city="London", country="GB"), local=local("2025-01-20T18:00:00+00:00")),
            ev(utc(2025, 1, 20, 11, 32), Status.delivered, "delivered",
               "Delivered - Signed for by: SMITH",
               Location(city="London", postal_code="EC1A 1BB", country="GB"),
               local=local("2025-01-20T11:32:00+00:00"), assumed=True),
            ev(utc(2025, 1, 20, 7, 10), Status.out_for_delivery, "transit",
               "Shipment is with delivery courier", Location(city="London", country="GB"),
               local=local("2025-01-20T07:10:00+00:00"), assumed=True),
        )),
    # A shipment with ``status`` only (no events array).
    "label_created_status_only.json": TrackingResult(
        carrier="dhl", tracking_number="JVGL0599876543", status=Status.info_received,
        status_detail="Label created, awaiting shipment", service="express",
        events=(ev(utc(2025, 7, 1, 8, 0), Status.info_received, "unknown",
                   "Label created, awaiting shipment", assumed=True),)),
}


def offsets(result: TrackingResult) -> list[str | None]:
    # Aware datetimes compare by instant only; the offset of local_time is checked separately.
    return [e.local_time.isoformat() if e.local_time else None for e in result.events]


# -- pure parser ----------------------------------------------------------------------------


def test_every_fixture_has_an_expectation() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_to_expected_result(name: str) -> None:
    batch = parse.parse_payload(load(name), now=NOW)
    assert batch == BatchResult(results=(EXPECTED[name],))
    assert offsets(batch.results[0]) == offsets(EXPECTED[name])


def test_zone_resolution_follows_dst() -> None:
    # The same wall time in Berlin is +01:00 in winter and +02:00 in summer.
    payload = {"shipments": [{"id": "1", "events": [
        {"timestamp": "2025-01-15T12:00:00", "statusCode": "transit",
         "location": {"address": {"countryCode": "DE"}}},
        {"timestamp": "2025-07-15T12:00:00", "statusCode": "transit",
         "location": {"address": {"countryCode": "de"}}}]}]}
    events = parse.parse_payload(payload, now=NOW).results[0].events
    assert [e.at for e in events] == [utc(2025, 7, 15, 10, 0), utc(2025, 1, 15, 11, 0)]
    assert all(e.offset_assumed for e in events)


def test_empty_shipments_for_a_requested_number_is_missing() -> None:
    batch = parse.parse_payload({"shipments": []}, now=NOW, number="5550001111")
    assert batch.results == (TrackingResult.missing("dhl", "5550001111", "no shipments returned"),)
    assert parse.parse_payload({"shipments": []}, now=NOW) == BatchResult()


def test_not_found_detail_reads_the_problem_document() -> None:
    assert parse.not_found_detail(load("errors/not_found_404.json")) == (
        "No shipment with given tracking number found.")
    assert parse.not_found_detail({"title": "No result found"}) == "No result found"


@pytest.mark.parametrize("payload", [
    [], {}, "<html>oops</html>", 7, None, {"shipments": "no"}, {"shipments": [1]},
    {"shipments": [{"id": "1", "events": "x"}]},
    {"shipments": [{"id": "1", "events": [{"timestamp": "yesterday"}]}]},
    {"shipments": [{"id": "1", "events": [{"timestamp": 1718000000}]}]},
    {"shipments": [{"events": []}]},
    [{"statusCode": "200", "trackingNumber": "9400"}],
], ids=["list", "empty", "html", "int", "null", "shipments-str", "shipment-int", "events-str",
        "bad-time", "epoch-time", "no-id", "usps-body"])
def test_foreign_bodies_are_payload_errors(payload: Any) -> None:
    with pytest.raises(CarrierPayloadError) as info:
        parse.parse_payload(payload, now=NOW)
    assert info.value.carrier == "dhl"


def test_problem_detail_check_refuses_other_bodies() -> None:
    with pytest.raises(CarrierPayloadError):
        parse.not_found_detail(["not", "a", "problem"])


KEYS = st.sampled_from([
    "shipments", "id", "service", "status", "events", "timestamp", "statusCode", "description",
    "location", "address", "countryCode", "addressLocality", "postalCode", "details",
    "proofOfDelivery", "signed", "name", "givenName", "familyName", "product", "productName",
    "estimatedTimeOfDelivery", "estimatedDeliveryTimeFrame", "estimatedFrom",
    "estimatedThrough", "destination"])
LEAVES = (st.none() | st.booleans() | st.integers() | st.text(max_size=20)
          | st.floats(allow_nan=False, allow_infinity=False)
          | st.sampled_from(["transit", "delivered", "failure", "unknown", "pre-transit", "DE",
                             "US", "OUT FOR DELIVERY", "2025-06-12T09:14:00",
                             "2025-06-12T09:14:00+02:00", "2025-06-12", "0001-01-01T00:30:00",
                             "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:00-05:00"]))
JSON = st.recursive(LEAVES, lambda children: st.lists(children, max_size=4)
                    | st.dictionaries(KEYS | st.text(max_size=6), children, max_size=6),
                    max_leaves=40)
# DHL-shaped documents with random leaves, so the fuzzing reaches events, times and proofs.
TIMES = st.one_of(st.datetimes(timezones=st.none() | st.timezones()).map(datetime.isoformat),
                  st.dates().map(date.isoformat), LEAVES)


def maybe(required: dict[str, st.SearchStrategy[Any]] | None = None,
          **optional: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(required or {}, optional=optional)


ADDRESS = maybe(address=maybe(countryCode=st.sampled_from(["DE", "US", "NL", "de"]) | LEAVES,
                              addressLocality=LEAVES, postalCode=LEAVES))
CODES = st.sampled_from(list(statuses.STATUS_CODES)) | LEAVES
EVENT = maybe({"timestamp": TIMES}, statusCode=CODES, status=LEAVES, description=LEAVES,
              location=ADDRESS)
SHIPMENT = maybe(
    id=LEAVES, service=LEAVES, status=EVENT | JSON, events=st.lists(EVENT, max_size=4) | JSON,
    destination=ADDRESS, estimatedTimeOfDelivery=TIMES,
    estimatedDeliveryTimeFrame=maybe(estimatedFrom=TIMES, estimatedThrough=TIMES),
    details=maybe(product=maybe(productName=LEAVES), proofOfDelivery=maybe(
        timestamp=TIMES, signed=maybe(name=LEAVES, givenName=LEAVES, familyName=LEAVES))))
SHAPED = st.fixed_dictionaries({"shipments": st.lists(SHIPMENT, min_size=1, max_size=3)})


def check_result_or_payload_error(payload: Any, number: str | None) -> None:
    try:
        batch = parse.parse_payload(payload, now=NOW, number=number)
    except CarrierPayloadError as exc:
        assert exc.carrier == "dhl"
        return
    for result in batch.results:
        instants = [e.at for e in result.events]
        assert instants == sorted(instants, reverse=True)
        assert all(e.at.utcoffset() == timedelta(0) for e in result.events)
        assert set(result.unknown_codes) == {
            e.code for e in result.events if e.status is Status.unknown}


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=JSON, number=st.none() | st.just("1234567891"))
def test_any_json_gives_a_result_or_a_payload_error(payload: Any, number: str | None) -> None:
    check_result_or_payload_error(payload, number)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=SHAPED, number=st.none() | st.just("1234567891"))
def test_dhl_shaped_json_gives_a_result_or_a_payload_error(payload: Any,
                                                           number: str | None) -> None:
    check_result_or_payload_error(payload, number)


# -- status tables --------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "text", "expected"), [
    ("pre-transit", "Shipment information received", Status.info_received),
    ("transit", "PROCESSED", Status.in_transit),
    ("transit", "OUT FOR DELIVERY", Status.out_for_delivery),
    ("transit", "Shipment is with delivery courier", Status.out_for_delivery),
    ("transit", "Parcel ready for pick-up... READY FOR PICKUP", Status.available_for_pickup),
    ("transit", "Delivered to the DHL service point", Status.in_transit),
    ("failure", "Recipient not at home, delivery ATTEMPT failed", Status.failed_attempt),
    ("failure", "Not available for pickup anymore", Status.failed_attempt),
    ("failure", "Return to origin", Status.returned),
    ("failure", "Damaged in transit", Status.exception),
    ("transit", "Customs clearance processing", Status.in_transit),
    ("unknown", "HELD AT CUSTOMS", Status.exception),
    ("unknown", "LABEL CREATED", Status.info_received),
    ("unknown", "something new", Status.unknown),
    ("delivered", "DELIVERED - PARCEL LOCKER", Status.delivered),
    ("delivered", "Returned item delivered to sender", Status.delivered),
    ("in-customs", "OUT FOR DELIVERY", Status.unknown),
], ids=lambda v: v if isinstance(v, str) else None)
def test_status_refinement(code: str, text: str, expected: Status) -> None:
    assert statuses.normalise(code, text) is expected


@pytest.mark.parametrize(("status", "text", "expected"), [
    (Status.exception, "Shipment refused by recipient", ExceptionReason.refused),
    (Status.exception, "Shipment damaged", ExceptionReason.damaged),
    (Status.exception, "Awaiting customs duties payment", ExceptionReason.customs),
    (Status.exception, "Delayed due to severe weather", ExceptionReason.weather),
    (Status.exception, "Incorrect address", ExceptionReason.address),
    (Status.exception, "Shipment lost", ExceptionReason.lost),
    (Status.exception, "Held at depot", ExceptionReason.held),
    (Status.exception, "Something unforeseen", ExceptionReason.other),
    (Status.failed_attempt, "Recipient not at home", None),
    (Status.in_transit, "Incorrect address", None),
], ids=lambda v: v if isinstance(v, str) else None)
def test_exception_reasons(status: Status, text: str, expected: ExceptionReason | None) -> None:
    assert statuses.exception_reason(status, text) is expected


def test_registry_and_tracking_page() -> None:
    assert carriers.adapter_class("dhl") is dhl.DhlCarrier
    assert dhl.tracking_url(" 1234567891 ") == (
        "https://www.dhl.com/us-en/home/tracking/tracking-parcel.html?submit=1"
        "&tracking-id=1234567891")
    assert dhl.tracking_url("GM 2951/17").endswith("tracking-id=GM2951%2F17")


# -- client over real HTTP ------------------------------------------------------------------


@dataclass
class Scripted:
    status: int
    body: bytes
    headers: dict[str, str]
    delay: float = 0.0


@dataclass
class Script:
    """Responses the test server gives, in order, and the requests it saw."""

    responses: deque[Scripted] = field(default_factory=deque)
    requests: list[Request] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    def add(self, status: int, body: Any = None, *, headers: dict[str, str] | None = None,
            raw: bytes | None = None, delay: float = 0.0,
            content_type: str = "application/problem+json") -> None:
        data = raw if raw is not None else json.dumps(body).encode()
        self.responses.append(Scripted(status, data, {"content-type": content_type,
                                                      **(headers or {})}, delay))


SCRIPT = Script()


async def endpoint(request: Request) -> Response:
    SCRIPT.requests.append(request)
    SCRIPT.bodies.append(await request.body())
    if not SCRIPT.responses:
        return Response("unscripted request", status_code=599)
    answer = SCRIPT.responses.popleft()
    if answer.delay:
        await asyncio.sleep(answer.delay)
    return Response(answer.body, status_code=answer.status, headers=answer.headers)


APP = Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])])


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with serve(APP, graceful_shutdown_s=1.0) as running:
        yield running


@pytest.fixture
def script() -> Script:
    SCRIPT.responses.clear()
    SCRIPT.requests.clear()
    SCRIPT.bodies.clear()
    return SCRIPT


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def make(server: RunningServer, http: httpx.AsyncClient, *, timeout_s: float = 5.0,
         service: str | None = None, now: datetime = NOW) -> dhl.DhlCarrier:
    settings = CarrierSettings(base_url=server.url + "/", api_key="dhl-key-123",
                               timeout_s=timeout_s)
    return dhl.DhlCarrier(settings, http, now=lambda: now, service=service)


async def test_request_shape_and_parsed_result(server: RunningServer, script: Script,
                                               http: httpx.AsyncClient) -> None:
    script.add(200, load("express_out_for_delivery.json"), content_type="application/json")
    carrier = make(server, http)
    batch = await carrier.track(["1234567891"])
    assert batch == BatchResult(results=(EXPECTED["express_out_for_delivery.json"],))
    (request,) = script.requests
    assert request.method == "GET"
    assert request.url.path == "/track/shipments"
    assert dict(request.query_params) == {"trackingNumber": "1234567891", "language": "en"}
    assert request.headers["dhl-api-key"] == "dhl-key-123"
    assert request.headers["accept"] == "application/json"
    assert carrier.requests_made == 1
    await carrier.aclose()
    assert not http.is_closed  # the shared client belongs to the application


async def test_service_hint_is_sent_when_known(server: RunningServer, script: Script,
                                               http: httpx.AsyncClient) -> None:
    script.add(200, load("express_delivered_late_scan.json"), content_type="application/json")
    batch = await make(server, http, service="express").track(["8264715546"])
    assert batch.results[0].status is Status.delivered
    assert script.requests[0].query_params["service"] == "express"


async def test_piece_id_answer_is_reported_under_the_requested_number(
        server: RunningServer, script: Script, http: httpx.AsyncClient) -> None:
    script.add(200, load("express_out_for_delivery.json"), content_type="application/json")
    batch = await make(server, http).track(["JD014600006281230704"])
    (result,) = batch.results
    assert result.tracking_number == "JD014600006281230704"
    assert result.events == EXPECTED["express_out_for_delivery.json"].events


async def test_404_problem_is_a_missing_result(server: RunningServer, script: Script,
                                               http: httpx.AsyncClient) -> None:
    script.add(404, load("errors/not_found_404.json"))
    batch = await make(server, http).track(["5550001111"])
    assert batch == BatchResult(results=(TrackingResult.missing(
        "dhl", "5550001111", "No shipment with given tracking number found."),))
    assert batch.results[0].not_found


async def test_400_problem_is_a_per_number_problem(server: RunningServer, script: Script,
                                                   http: httpx.AsyncClient) -> None:
    script.add(400, load("errors/bad_request_400.json"))
    batch = await make(server, http).track(["12"])
    assert batch == BatchResult(problems={"12": "HTTP 400: Invalid tracking number format."})


async def test_bad_key_is_an_auth_error(server: RunningServer, script: Script,
                                        http: httpx.AsyncClient) -> None:
    script.add(401, load("errors/unauthorized_401.json"))
    carrier = make(server, http)
    with pytest.raises(CarrierAuthError):
        await carrier.track(["1234567891"])
    assert carrier.requests_made == 1  # a static key: nothing to refresh, no retry


async def test_429_with_retry_after_seconds(server: RunningServer, script: Script,
                                            http: httpx.AsyncClient) -> None:
    script.add(429, {"status": 429, "title": "Too Many Requests"}, headers={"Retry-After": "7"})
    with pytest.raises(CarrierRateLimited) as info:
        await make(server, http).track(["1234567891"])
    assert (info.value.retry_after, info.value.header_sent) == (7.0, True)


async def test_429_with_retry_after_http_date(server: RunningServer, script: Script,
                                              http: httpx.AsyncClient) -> None:
    when = email.utils.format_datetime(NOW + timedelta(seconds=120), usegmt=True)
    script.add(429, {"status": 429}, headers={"Retry-After": when})
    with pytest.raises(CarrierRateLimited) as info:
        await make(server, http).track(["1234567891"])
    assert info.value.retry_after == 120.0  # measured against the injected clock


async def test_429_without_header_per_second_then_daily_quota(
        server: RunningServer, script: Script, http: httpx.AsyncClient) -> None:
    carrier = make(server, http)
    script.add(429, {"status": 429})
    with pytest.raises(CarrierRateLimited) as first:
        await carrier.track(["1234567891"])
    assert (first.value.retry_after, first.value.header_sent) == (1.0, False)
    script.add(429, {"status": 429})
    with pytest.raises(CarrierRateLimited) as second:
        await carrier.track(["1234567891"])
    # Still refused after the per-second wait: the daily quota, which resets at 00:00 GMT.
    midnight = datetime(2025, 6, 13, tzinfo=UTC)
    assert second.value.retry_after == (midnight - NOW).total_seconds()
    script.add(200, load("label_created_status_only.json"), content_type="application/json")
    await carrier.track(["JVGL0599876543"])
    script.add(429, {"status": 429})
    with pytest.raises(CarrierRateLimited) as third:
        await carrier.track(["1234567891"])
    assert third.value.retry_after == 1.0  # a success in between resets the count


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_unavailable(server: RunningServer, script: Script,
                                  http: httpx.AsyncClient, status: int) -> None:
    script.add(status, {"status": status, "title": "Server Error"})
    with pytest.raises(CarrierUnavailable) as info:
        await make(server, http).track(["1234567891"])
    assert not isinstance(info.value, CarrierRateLimited)


@pytest.mark.parametrize("status", [200, 404])
async def test_html_page_is_a_payload_error(server: RunningServer, script: Script,
                                            http: httpx.AsyncClient, status: int) -> None:
    script.add(status, raw=b"<html><body>Gateway says hello</body></html>",
               content_type="text/html")
    with pytest.raises(CarrierPayloadError) as info:
        await make(server, http).track(["1234567891"])
    assert info.value.snippet.startswith("<html>")


async def test_timeout_is_unavailable(server: RunningServer, script: Script,
                                      http: httpx.AsyncClient) -> None:
    script.add(200, load("express_out_for_delivery.json"), delay=1.0)
    with pytest.raises(CarrierUnavailable, match="timeout"):
        await make(server, http, timeout_s=0.2).track(["1234567891"])


async def test_connection_refused_is_unavailable(http: httpx.AsyncClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = CarrierSettings(base_url=f"http://127.0.0.1:{port}", api_key="k", timeout_s=2.0)
    with pytest.raises(CarrierUnavailable):
        await dhl.DhlCarrier(settings, http, now=lambda: NOW).track(["1234567891"])


async def test_more_numbers_than_one_is_a_caller_bug(http: httpx.AsyncClient) -> None:
    carrier = dhl.DhlCarrier(CarrierSettings(base_url="http://127.0.0.1:9"), http,
                             now=lambda: NOW)
    with pytest.raises(ValueError):
        await carrier.track(["1", "2"])
    assert carrier.requests_made == 0
