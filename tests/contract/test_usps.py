"""USPS adapter contract: the pure parser against v3 and v3r2 fixtures (exact normalised
results, any JSON -> result or CarrierPayloadError), the status tables, and the client against a
real local HTTP server (OAuth form, token caching/expiry/refresh, v3 one-by-one and v3r2 batch,
not found, rate limits, outages, junk bodies, timeouts).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import carriers
from carriers import usps
from carriers.base import CarrierSettings
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
from carriers.usps import parse, statuses
from tests.support.http_server import RunningServer, serve

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "usps"
NOW = datetime(2025, 6, 12, 15, 30, tzinfo=UTC)


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def ev(at: datetime, status: Status, code: str, description: str, location: Location,
       local: str | None, *, assumed: bool = False,
       reason: ExceptionReason | None = None) -> TrackingEvent:
    return TrackingEvent(at=at, status=status, code=code, description=description,
                         location=location,
                         local_time=datetime.fromisoformat(local) if local else None,
                         offset_assumed=assumed, exception_reason=reason)


DENVER = Location(city="DENVER", state="CO", postal_code="80202")
PHOENIX = Location(city="PHOENIX", state="AZ", postal_code="85001")
BOSTON = Location(city="BOSTON", state="MA", postal_code="02108")
NOT_YET = ("A status update is not yet available for your package. It will be available when "
           "the shipper provides an update or the package is given to USPS.")

OUT_FOR_DELIVERY = TrackingResult(
    carrier="usps", tracking_number="9400191234567812345679", status=Status.out_for_delivery,
    status_detail="Out for Delivery", estimated_delivery=DeliveryWindow.day(date(2025, 6, 12)),
    service="USPS Ground Advantage",
    events=(
        ev(utc(2025, 6, 12, 13, 10, 44), Status.out_for_delivery, "OF", "Out for Delivery",
           DENVER, "2025-06-12T07:10:00-06:00"),
        ev(utc(2025, 6, 12, 11, 58, 12), Status.in_transit, "07", "Arrived at Post Office",
           DENVER, "2025-06-12T05:58:00-06:00"),
        ev(utc(2025, 6, 10, 15, 10, 31), Status.in_transit, "03", "USPS in possession of item",
           Location(city="ATLANTA", state="GA", postal_code="30301"),
           "2025-06-10T11:10:00-04:00"),
    ))

BATCH_DELIVERED = TrackingResult(
    carrier="usps", tracking_number="9400191234567812345679", status=Status.delivered,
    status_detail="Delivered, Front Door/Porch",
    estimated_delivery=DeliveryWindow.day(date(2025, 6, 12)),
    delivered_at=utc(2025, 6, 12, 19, 2, 10), service="USPS Ground Advantage",
    events=(ev(utc(2025, 6, 12, 19, 2, 10), Status.delivered, "01",
               "Delivered, Front Door/Porch",
               Location(city="DENVER", state="CO", postal_code="80202", country="US"),
               "2025-06-12T13:02:00-06:00"),))

BATCH_MISSING = TrackingResult.missing("usps", "9400190000000176543216", NOT_YET)

# Newest scan has a code we do not know: reported, and statusCategory decides the status.
BATCH_IN_TRANSIT = TrackingResult(
    carrier="usps", tracking_number="9361289878700317633795", status=Status.in_transit,
    status_detail="In Transit to Next Facility",
    estimated_delivery=DeliveryWindow.day(date(2025, 6, 14)), service="Priority Mail",
    unknown_codes=("ZQ",),
    events=(
        ev(utc(2025, 6, 12, 8, 0), Status.unknown, "ZQ", "Mystery scan",
           Location(city="MEMPHIS TN NETWORK DISTRIBUTION CENTER"), None, assumed=True),
        ev(utc(2025, 6, 12, 1, 0), Status.in_transit, "TL", "In Transit to Next Facility",
           Location(city="CHICAGO", state="IL", postal_code="60601"),
           "2025-06-11T20:00:00-05:00"),
    ))

EXPECTED: dict[str, BatchResult] = {
    # Reference 9.3 (real v3 shape: string booleans, HTML-ish mailClass, GMT + offset).
    "v3_out_for_delivery.json": BatchResult(results=(OUT_FOR_DELIVERY,)),
    # Local times suffixed "Z" are local; "-420" minutes and "-7:00" offsets; a "GC" scan after
    # delivery changes nothing; the signer comes from the delivery scan.
    "v3_delivered_signed.json": BatchResult(results=(TrackingResult(
        carrier="usps", tracking_number="9205590164917312751089", status=Status.delivered,
        status_detail="Delivered, Left with Individual",
        estimated_delivery=DeliveryWindow.day(date(2025, 2, 3)),
        delivered_at=utc(2025, 2, 3, 21, 21, 9), signed_by="J SMITH", service="Priority Mail",
        events=(
            ev(utc(2025, 2, 4, 16, 0, 5), Status.delivered, "GC", "Return Receipt Associated",
               PHOENIX, "2025-02-04T09:00:00-07:00"),
            ev(utc(2025, 2, 3, 21, 21, 9), Status.delivered, "01",
               "Delivered, Left with Individual", PHOENIX, "2025-02-03T14:21:00-07:00"),
            ev(utc(2025, 2, 3, 14, 50, 30), Status.out_for_delivery, "OF", "Out for Delivery",
               PHOENIX, "2025-02-03T07:50:00-07:00"),
            ev(utc(2025, 2, 1, 23, 5), Status.failed_attempt, "02",
               "Notice Left (No Authorized Recipient Available)", PHOENIX,
               "2025-02-01T16:05:00-07:00"),
            ev(utc(2025, 1, 30, 17, 0), Status.in_transit, "03", "USPS in possession of item",
               Location(city="TUCSON", state="AZ", postal_code="85701"),
               "2025-01-30T10:00:00-07:00"),
        )),)),
    # Exception then return, both for an address reason (code table); one scan has only an
    # eventTimestamp with its own offset; a hub scan has a facility name and no state.
    "v3_returned_address.json": BatchResult(results=(TrackingResult(
        carrier="usps", tracking_number="9400111899223197428490", status=Status.returned,
        status_detail="Return to Sender", exception_reason=ExceptionReason.address,
        estimated_delivery=DeliveryWindow.day(date(2025, 4, 2)), service="USPS Ground Advantage",
        events=(
            ev(utc(2025, 4, 3, 14, 15), Status.returned, "21",
               "Return to Sender - No Such Number", BOSTON, "2025-04-03T10:15:00-04:00",
               reason=ExceptionReason.address),
            ev(utc(2025, 4, 2, 15, 40), Status.exception, "05", "Undeliverable as Addressed",
               BOSTON, "2025-04-02T11:40:00-04:00", reason=ExceptionReason.address),
            ev(utc(2025, 4, 2, 10, 0), Status.in_transit, "07", "Arrived at Post Office",
               BOSTON, "2025-04-02T06:00:00-04:00"),
            ev(utc(2025, 4, 2, 2, 30), Status.in_transit, "A1",
               "Arrived at USPS Regional Facility",
               Location(city="BOSTON MA DISTRIBUTION CENTER"), "2025-04-01T22:30:00-04:00"),
        )),)),
    # No scans yet: statusCategory alone.
    "v3_pre_shipment_no_events.json": BatchResult(results=(TrackingResult(
        carrier="usps", tracking_number="9261290100830000000005", status=Status.info_received,
        status_detail="Pre-Shipment Info Sent to USPS, USPS Awaiting Item"),)),
    # Reference 9.4 plus an unknown-code item and a 400 item: per-item failures are data.
    "v3r2_batch_mixed.json": BatchResult(
        results=(BATCH_DELIVERED, BATCH_MISSING, BATCH_IN_TRANSIT),
        problems={"92055901": "HTTP 400: The tracking number is invalid."}),
}


def offsets(batch: BatchResult) -> list[list[str | None]]:
    # Aware datetimes compare by instant only; the offset of local_time is checked separately.
    return [[e.local_time.isoformat() if e.local_time else None for e in r.events]
            for r in batch.results]


# -- pure parser ----------------------------------------------------------------------------


def test_every_fixture_has_an_expectation() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_to_expected_result(name: str) -> None:
    batch = parse.parse_payload(load(name), now=NOW)
    assert batch == EXPECTED[name]
    assert offsets(batch) == offsets(EXPECTED[name])


@pytest.mark.parametrize(("raw", "hours"), [
    ("-05:00", -5.0), ("-7:00", -7.0), ("-420", -7.0), ("+05:30", 5.5), ("0", 0.0),
    ("-5", -5.0), ("+600", 10.0),
], ids=str)
def test_gmt_offset_forms(raw: str, hours: float) -> None:
    assert parse.parse_gmt_offset(raw) == timezone(timedelta(hours=hours))


@pytest.mark.parametrize("raw", ["bogus", "-25:00", "", None, 5, "-99999", "--5"], ids=repr)
def test_unusable_gmt_offsets(raw: Any) -> None:
    assert parse.parse_gmt_offset(raw) is None


def test_z_on_local_time_is_not_trusted() -> None:
    detail = {"trackingNumber": "1", "trackingEvents": [
        {"eventCode": "01", "eventTimestamp": "2025-02-03T14:21:00Z", "GMTOffset": "-07:00"}]}
    (event,) = parse.parse_payload(detail, now=NOW).results[0].events
    assert event.at == utc(2025, 2, 3, 21, 21)
    assert event.local_time is not None and event.local_time.isoformat() == (
        "2025-02-03T14:21:00-07:00")
    assert not event.offset_assumed


def test_mail_class_is_cleaned() -> None:
    assert parse.clean_html("Priority Mail Express<SUP>&#8482;</SUP>") == "Priority Mail Express"
    assert parse.clean_html("First-Class Mail&reg; <b>Package</b>") == "First-Class Mail® Package"
    assert parse.clean_html(None) is None
    assert parse.clean_html("<SUP>&reg;</SUP>") is None


def test_error_envelopes() -> None:
    assert parse.error_detail(load("errors/v3_not_found_404.json")) == NOT_YET
    assert parse.error_detail(load("errors/v3_unauthorized_401.json")) == (
        "The client application identifier is invalid.")
    assert parse.error_detail({"error": {"code": "500"}}) == "error 500"
    with pytest.raises(CarrierPayloadError):
        parse.error_detail({"title": "not usps"})


def test_unreadable_batch_item_is_a_problem_not_a_failed_batch() -> None:
    payload = [load("v3r2_batch_mixed.json")[0],
               {"statusCode": "200", "trackingNumber": "9400", "trackingEvents": [{}]}]
    batch = parse.parse_payload(payload, now=NOW)
    assert batch.results == (BATCH_DELIVERED,)
    assert list(batch.problems) == ["9400"]
    assert batch.problems["9400"].startswith("unreadable item: event without GMTTimestamp")


@pytest.mark.parametrize("payload", [
    {}, "<html/>", 3, None, {"apiVersion": "/tracking/v3", "error": {"code": "404"}},
    [1], [{"statusCode": "200"}], {"trackingNumber": None},
    {"trackingNumber": "1", "trackingEvents": {"eventCode": "01"}},
    {"trackingNumber": "1", "trackingEvents": ["x"]},
    {"trackingNumber": "1", "trackingEvents": [{"GMTTimestamp": "noon"}]},
    {"shipments": []},
], ids=["empty", "html", "int", "null", "error-envelope", "int-item", "item-no-number",
        "null-number", "events-obj", "event-str", "bad-time", "dhl-body"])
def test_foreign_bodies_are_payload_errors(payload: Any) -> None:
    with pytest.raises(CarrierPayloadError) as info:
        parse.parse_payload(payload, now=NOW)
    assert info.value.carrier == "usps"


KEYS = st.sampled_from([
    "trackingNumber", "statusCode", "status", "statusCategory", "mailClass", "trackingEvents",
    "eventCode", "eventType", "eventTimestamp", "GMTTimestamp", "GMTOffset", "eventCity",
    "eventZIP", "name", "error", "errors", "detail", "expectedDeliveryTimeStamp",
    "deliveryDateExpectation", "expectedDeliveryDate"])
LEAVES = (st.none() | st.booleans() | st.integers() | st.text(max_size=20)
          | st.floats(allow_nan=False, allow_infinity=False)
          | st.sampled_from(["01", "OF", "GC", "200", "404", "-05:00", "-420", "-7:00",
                             "2025-06-12T07:10:00Z", "2025-06-12", "0001-01-01T00:00:00+05:00",
                             "9999-12-31T23:59:00-05:00"]))
JSON = st.recursive(LEAVES, lambda children: st.lists(children, max_size=4)
                    | st.dictionaries(KEYS | st.text(max_size=6), children, max_size=6),
                    max_leaves=40)


def mostly(good: st.SearchStrategy[Any], junk: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` nine times in ten, so the fuzzing gets past the shape checks."""
    return st.integers(0, 9).flatmap(lambda i: good if i else junk)


TIME = st.datetimes(timezones=st.none() | st.timezones()).map(datetime.isoformat)
TIMES = st.one_of(TIME, st.dates().map(date.isoformat), LEAVES)
EVENT = st.fixed_dictionaries({}, optional={
    "eventCode": mostly(st.sampled_from([*statuses.EVENT_CODES, "GC", "ZZ"]), LEAVES),
    "eventType": LEAVES, "eventTimestamp": mostly(TIME, LEAVES),
    "GMTTimestamp": mostly(TIME, LEAVES),
    "GMTOffset": mostly(st.sampled_from(["-05:00", "-7:00", "-420", "+14:00"]), LEAVES),
    "eventCity": LEAVES, "name": LEAVES})
NUMBER = mostly(st.from_regex(r"[0-9A-Z]{4,12}", fullmatch=True), LEAVES)
DETAIL = st.fixed_dictionaries({"trackingNumber": NUMBER}, optional={
    "statusCode": mostly(st.sampled_from(["200", "200", "404", "400", 200]), LEAVES),
    "status": LEAVES, "statusCategory": st.sampled_from(list(statuses.CATEGORIES)) | LEAVES,
    "mailClass": LEAVES, "trackingEvents": mostly(st.lists(EVENT, max_size=4), JSON),
    "expectedDeliveryTimeStamp": TIMES,
    "deliveryDateExpectation": st.fixed_dictionaries({}, optional={
        "expectedDeliveryDate": TIMES, "predictedDeliveryDate": TIMES}),
    "error": st.fixed_dictionaries({}, optional={"message": LEAVES, "errors": JSON})})
SHAPED = DETAIL | st.lists(DETAIL, max_size=4)


def check_result_or_payload_error(payload: Any) -> None:
    try:
        batch = parse.parse_payload(payload, now=NOW)
    except CarrierPayloadError as exc:
        assert exc.carrier == "usps"
        return
    for result in batch.results:
        instants = [e.at for e in result.events]
        assert instants == sorted(instants, reverse=True)
        assert all(e.at.utcoffset() == timedelta(0) for e in result.events)
        assert set(result.unknown_codes) == {
            e.code for e in result.events if e.status is Status.unknown}


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=JSON)
def test_any_json_gives_a_result_or_a_payload_error(payload: Any) -> None:
    check_result_or_payload_error(payload)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=SHAPED)
def test_usps_shaped_json_gives_a_result_or_a_payload_error(payload: Any) -> None:
    check_result_or_payload_error(payload)


# -- status tables --------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "expected"), [
    ("GX", Status.info_received), ("MA", Status.info_received), ("03", Status.in_transit),
    ("A1", Status.in_transit), ("71", Status.in_transit), ("OF", Status.out_for_delivery),
    ("02", Status.failed_attempt), ("55", Status.failed_attempt), ("30", Status.failed_attempt),
    ("14", Status.available_for_pickup), ("04", Status.exception), ("DX", Status.exception),
    ("01", Status.delivered), ("43", Status.delivered), ("09", Status.returned),
    ("27", Status.returned), ("44", Status.returned), ("ZZ", Status.unknown),
    ("", Status.unknown), ("GC", None),
], ids=lambda v: v if isinstance(v, str) else None)
def test_event_codes(code: str, expected: Status | None) -> None:
    assert statuses.event_status(code) is expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Delivered", Status.delivered), ("ACCEPTED", Status.in_transit),
    (" out for delivery ", Status.out_for_delivery), ("Alert", Status.exception),
    ("Return to Sender", Status.returned), ("Something New", None),
], ids=str)
def test_status_categories(text: str, expected: Status | None) -> None:
    assert statuses.category_status(text) is expected


@pytest.mark.parametrize(("status", "code", "text", "expected"), [
    (Status.exception, "04", "Refused", ExceptionReason.refused),
    (Status.exception, "05", "Undeliverable as Addressed", ExceptionReason.address),
    (Status.exception, "11", "Dead Letter", ExceptionReason.lost),
    (Status.exception, "08", "Missent", ExceptionReason.other),
    (Status.exception, "ZZ", "Damaged in handling", ExceptionReason.damaged),
    (Status.exception, "ZZ", "Delayed by severe weather", ExceptionReason.weather),
    (Status.returned, "27", "Return to Sender - Unclaimed", None),
    (Status.failed_attempt, "30", "No Access to Delivery Location", ExceptionReason.address),
    (Status.in_transit, "05", "Undeliverable as Addressed", None),
], ids=lambda v: v if isinstance(v, str) else None)
def test_exception_reasons(status: Status, code: str, text: str,
                           expected: ExceptionReason | None) -> None:
    assert statuses.exception_reason(status, code, text) is expected


def test_registry_and_tracking_page() -> None:
    assert carriers.adapter_class("usps") is usps.UspsCarrier
    assert usps.UspsCarrier.max_batch == 35
    assert usps.tracking_url("9400 1912 3456 7812 3456 79") == (
        "https://tools.usps.com/go/TrackConfirmAction?tLabels=9400191234567812345679")


# -- client over real HTTP ------------------------------------------------------------------

TOKEN_PATH = "/oauth2/v3/token"
V3R2_PATH = "/tracking/v3r2/tracking"


@dataclass
class Scripted:
    status: int
    body: bytes
    headers: dict[str, str]
    delay: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Script:
    """Responses per path, in order, and every request the server saw."""

    responses: defaultdict[str, deque[Scripted]] = field(
        default_factory=lambda: defaultdict(deque))
    seen: list[Seen] = field(default_factory=list)
    tokens_issued: int = 0

    def add(self, path: str, status: int, body: Any = None, *,
            headers: dict[str, str] | None = None, raw: bytes | None = None,
            delay: float = 0.0, content_type: str = "application/json") -> None:
        data = raw if raw is not None else json.dumps(body).encode()
        self.responses[path].append(
            Scripted(status, data, {"content-type": content_type, **(headers or {})}, delay))

    def token(self, expires_in: Any = 28799) -> None:
        self.tokens_issued += 1
        self.add(TOKEN_PATH, 200, {
            "access_token": f"tok-{self.tokens_issued}", "token_type": "Bearer",
            "expires_in": expires_in, "issued_at": 1749731400000, "status": "approved",
            "scope": "tracking", "client_id": "cid"})

    def on(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    def bearer(self, path: str) -> list[str]:
        return [s.headers.get("authorization", "") for s in self.on(path)]


SCRIPT = Script()


async def endpoint(request: Request) -> Response:
    SCRIPT.seen.append(Seen(request.method, request.url.path, dict(request.query_params),
                            dict(request.headers), await request.body()))
    queue = SCRIPT.responses[request.url.path]
    if not queue:
        return Response("unscripted request", status_code=599)
    answer = queue.popleft()
    if answer.delay:
        await asyncio.sleep(answer.delay)
    return Response(answer.body, status_code=answer.status, headers=answer.headers)


APP = Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])])


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with serve(APP, graceful_shutdown_s=1.0) as running:
        yield running


@pytest.fixture
def script() -> Script:
    SCRIPT.responses.clear()
    SCRIPT.seen.clear()
    SCRIPT.tokens_issued = 0
    return SCRIPT


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def make(server: RunningServer, http: httpx.AsyncClient, *, use_batch: bool = True,
         timeout_s: float = 5.0, monotonic: FakeMonotonic | None = None) -> usps.UspsCarrier:
    settings = CarrierSettings(base_url=server.url, client_id="cid", client_secret="s3cret!",
                               timeout_s=timeout_s, use_batch=use_batch)
    return usps.UspsCarrier(settings, http, now=lambda: NOW,
                            monotonic=monotonic or FakeMonotonic())


NUMBERS = ["9400191234567812345679", "9400190000000176543216", "9361289878700317633795",
           "92055901"]


async def test_batch_request_shape_and_result(server: RunningServer, script: Script,
                                              http: httpx.AsyncClient) -> None:
    script.token()
    script.add(V3R2_PATH, 207, load("v3r2_batch_mixed.json"))
    carrier = make(server, http)
    assert await carrier.track(NUMBERS) == EXPECTED["v3r2_batch_mixed.json"]
    (token_call,) = script.on(TOKEN_PATH)
    assert token_call.method == "POST"
    assert token_call.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(token_call.body.decode()) == {
        "grant_type": ["client_credentials"], "client_id": ["cid"], "client_secret": ["s3cret!"]}
    (track_call,) = script.on(V3R2_PATH)
    assert track_call.method == "POST"
    assert track_call.headers["authorization"] == "Bearer tok-1"
    assert track_call.headers["content-type"] == "application/json"
    assert json.loads(track_call.body) == [{"trackingNumber": n} for n in NUMBERS]
    assert carrier.requests_made == 2
    await carrier.aclose()
    assert not http.is_closed


async def test_number_absent_from_batch_answer_is_a_problem(
        server: RunningServer, script: Script, http: httpx.AsyncClient) -> None:
    script.token()
    script.add(V3R2_PATH, 200, [load("v3r2_batch_mixed.json")[0]])
    batch = await make(server, http).track(["9400191234567812345679", "9400111899223197428490"])
    assert batch == BatchResult(results=(BATCH_DELIVERED,), problems={
        "9400111899223197428490": "absent from the v3r2 answer"})


async def test_whole_batch_404_envelope_means_none_found(
        server: RunningServer, script: Script, http: httpx.AsyncClient) -> None:
    script.token()
    script.add(V3R2_PATH, 404, load("errors/v3_not_found_404.json"))
    batch = await make(server, http).track(["9400190000000176543216", "9261290100830000000005"])
    assert batch == BatchResult(results=(
        TrackingResult.missing("usps", "9400190000000176543216", NOT_YET),
        TrackingResult.missing("usps", "9261290100830000000005", NOT_YET)))


async def test_v3_one_by_one_when_batching_is_off(server: RunningServer, script: Script,
                                                  http: httpx.AsyncClient) -> None:
    script.token()
    script.add("/tracking/v3/tracking/9400191234567812345679", 200,
               load("v3_out_for_delivery.json"))
    script.add("/tracking/v3/tracking/9400190000000176543216", 404,
               load("errors/v3_not_found_404.json"))
    script.add("/tracking/v3/tracking/92055901", 400, load("errors/v3_bad_request_400.json"))
    carrier = make(server, http, use_batch=False)
    batch = await carrier.track(["9400191234567812345679", "9400190000000176543216", "92055901"])
    assert batch == BatchResult(results=(OUT_FOR_DELIVERY, BATCH_MISSING),
                                problems={"92055901": "HTTP 400: The tracking number is invalid."})
    gets = [s for s in script.seen if s.path.startswith("/tracking/v3/")]
    assert [(s.method, s.query) for s in gets] == [("GET", {"expand": "DETAIL"})] * 3
    assert {s.headers["authorization"] for s in gets} == {"Bearer tok-1"}
    assert carrier.requests_made == 4  # one token call + three tracking calls
    assert script.on(V3R2_PATH) == []


async def test_token_is_cached_across_calls(server: RunningServer, script: Script,
                                            http: httpx.AsyncClient) -> None:
    script.token()
    for _ in range(3):
        script.add(V3R2_PATH, 200, [load("v3r2_batch_mixed.json")[0]])
    carrier = make(server, http)
    for _ in range(3):
        await carrier.track(["9400191234567812345679"])
    assert len(script.on(TOKEN_PATH)) == 1
    assert script.bearer(V3R2_PATH) == ["Bearer tok-1"] * 3
    assert carrier.requests_made == 4


async def test_token_refreshed_shortly_before_expiry(server: RunningServer, script: Script,
                                                     http: httpx.AsyncClient) -> None:
    clock = FakeMonotonic()
    script.token(expires_in="3600")  # USPS's README shows expires_in as a string: accepted
    script.token(expires_in=3600)
    for _ in range(3):
        script.add(V3R2_PATH, 200, [load("v3r2_batch_mixed.json")[0]])
    carrier = make(server, http, monotonic=clock)
    await carrier.track(["9400191234567812345679"])
    clock.now += 3500  # still inside the lifetime minus the safety margin
    await carrier.track(["9400191234567812345679"])
    clock.now += 100  # past it: a new token before the call
    await carrier.track(["9400191234567812345679"])
    assert script.bearer(V3R2_PATH) == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]
    assert len(script.on(TOKEN_PATH)) == 2


async def test_401_refreshes_the_token_once(server: RunningServer, script: Script,
                                            http: httpx.AsyncClient) -> None:
    script.token()
    script.token()
    script.add(V3R2_PATH, 401, load("errors/v3_unauthorized_401.json"))
    script.add(V3R2_PATH, 200, [load("v3r2_batch_mixed.json")[0]])
    batch = await make(server, http).track(["9400191234567812345679"])
    assert batch == BatchResult(results=(BATCH_DELIVERED,))
    assert script.bearer(V3R2_PATH) == ["Bearer tok-1", "Bearer tok-2"]


async def test_401_twice_is_an_auth_error(server: RunningServer, script: Script,
                                          http: httpx.AsyncClient) -> None:
    script.token()
    script.token()
    script.add(V3R2_PATH, 401, load("errors/v3_unauthorized_401.json"))
    script.add(V3R2_PATH, 401, load("errors/v3_unauthorized_401.json"))
    carrier = make(server, http)
    with pytest.raises(CarrierAuthError):
        await carrier.track(["9400191234567812345679"])
    assert len(script.on(TOKEN_PATH)) == 2
    assert len(script.on(V3R2_PATH)) == 2
    assert carrier.requests_made == 4


@pytest.mark.parametrize("status", [400, 401])
async def test_token_endpoint_refusing_credentials(server: RunningServer, script: Script,
                                                   http: httpx.AsyncClient,
                                                   status: int) -> None:
    script.add(TOKEN_PATH, status, load("errors/token_invalid_client.json"))
    with pytest.raises(CarrierAuthError) as info:
        await make(server, http).track(["9400191234567812345679"])
    assert "invalid_client" in str(info.value)
    assert "s3cret!" not in str(info.value)
    assert script.on(V3R2_PATH) == []


async def test_token_endpoint_rate_limited(server: RunningServer, script: Script,
                                           http: httpx.AsyncClient) -> None:
    script.add(TOKEN_PATH, 429, {"error": "too_many_requests"}, headers={"Retry-After": "30"})
    with pytest.raises(CarrierRateLimited) as info:
        await make(server, http).track(["9400191234567812345679"])
    assert info.value.retry_after == 30.0


async def test_token_without_access_token_is_a_payload_error(
        server: RunningServer, script: Script, http: httpx.AsyncClient) -> None:
    script.add(TOKEN_PATH, 200, {"token_type": "Bearer", "expires_in": 28799})
    with pytest.raises(CarrierPayloadError):
        await make(server, http).track(["9400191234567812345679"])


@pytest.mark.parametrize(("headers", "retry_after", "header_sent"), [
    ({"Retry-After": "30"}, 30.0, True),
    ({"Retry-After": email.utils.format_datetime(NOW + timedelta(seconds=90), usegmt=True)},
     90.0, True),
    ({}, 60.0, False),
], ids=["seconds", "http-date", "absent"])
async def test_429_on_tracking(server: RunningServer, script: Script, http: httpx.AsyncClient,
                               headers: dict[str, str], retry_after: float,
                               header_sent: bool) -> None:
    script.token()
    script.add(V3R2_PATH, 429, load("errors/quota_429.json"), headers=headers)
    with pytest.raises(CarrierRateLimited) as info:
        await make(server, http).track(["9400191234567812345679"])
    assert (info.value.retry_after, info.value.header_sent) == (retry_after, header_sent)


@pytest.mark.parametrize("status", [500, 503])
async def test_5xx_is_unavailable(server: RunningServer, script: Script,
                                  http: httpx.AsyncClient, status: int) -> None:
    script.token()
    script.add(V3R2_PATH, status, {"apiVersion": "/tracking/v3r2", "error": {"code": "503"}},
               headers={"Retry-After": "12"})
    with pytest.raises(CarrierUnavailable) as info:
        await make(server, http).track(["9400191234567812345679"])
    assert not isinstance(info.value, CarrierRateLimited)
    assert info.value.retry_after == 12.0


@pytest.mark.parametrize(("use_batch", "path"), [
    (True, V3R2_PATH), (False, "/tracking/v3/tracking/9400191234567812345679")])
async def test_html_page_is_a_payload_error(server: RunningServer, script: Script,
                                            http: httpx.AsyncClient, use_batch: bool,
                                            path: str) -> None:
    script.token()
    script.add(path, 200, raw=b"<html><body>Access Denied</body></html>",
               content_type="text/html")
    with pytest.raises(CarrierPayloadError) as info:
        await make(server, http, use_batch=use_batch).track(["9400191234567812345679"])
    assert info.value.snippet.startswith("<html>")


async def test_timeout_is_unavailable(server: RunningServer, script: Script,
                                      http: httpx.AsyncClient) -> None:
    script.token()
    script.add(V3R2_PATH, 200, [], delay=1.0)
    with pytest.raises(CarrierUnavailable, match="timeout"):
        await make(server, http, timeout_s=0.2).track(["9400191234567812345679"])


async def test_batch_limits(server: RunningServer, script: Script,
                            http: httpx.AsyncClient) -> None:
    carrier = make(server, http)
    assert await carrier.track([]) == BatchResult()
    with pytest.raises(ValueError):
        await carrier.track([str(n) for n in range(36)])
    assert carrier.requests_made == 0
    assert script.seen == []
