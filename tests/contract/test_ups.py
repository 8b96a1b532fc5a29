"""Contract tests for the UPS adapter: the pure parser against fixtures written from the reference
field names (tests/fixtures/ups), a fuzz proof that any JSON gives a result or a payload error,
and the client against a real local UPS look-alike server (starlette + uvicorn on 127.0.0.1)
that checks request shapes and scripts token, auth, rate-limit and outage behaviour.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from carriers import errors, ups
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
from carriers.ups.parse import parse_error_envelope
from tests.support.http_server import RunningServer, serve

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ups"
NOW = datetime(2025, 6, 14, 12, 0, tzinfo=UTC)


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def tz(hours: int) -> timezone:
    return timezone(timedelta(hours=hours))


def ev(at: str, status: Status, code: str, description: str, location: Location,
       local: str | None, *, assumed: bool = False,
       reason: ExceptionReason | None = None) -> TrackingEvent:
    return TrackingEvent(at=datetime.fromisoformat(at), status=status, code=code,
                         description=description, location=location,
                         local_time=datetime.fromisoformat(local) if local else None,
                         offset_assumed=assumed, exception_reason=reason)


DEN = Location(city="DENVER", state="CO", postal_code="80202", country="US")
LOU = Location(city="LOUISVILLE", state="KY", country="US")
DAL = Location(city="DALLAS", state="TX", postal_code="75201", country="US")
US = Location(country="US")
LABEL = "Shipper created a label, UPS has not received the package yet."


# --- parser: every fixture to an exactly expected result -------------------------------------

def test_in_transit_reference_example() -> None:
    result = ups.parse_payload(load("in_transit.json"), now=NOW)
    assert result == BatchResult(results=(TrackingResult(
        carrier="ups", tracking_number="1ZA123450312345678", status=Status.in_transit,
        status_detail="Arrived at Facility",
        estimated_delivery=DeliveryWindow.day(date(2025, 6, 12)), service="UPS Ground",
        events=(
            ev("2025-06-11T01:34:00+00:00", Status.in_transit, "005", "Arrived at Facility",
               LOU, "2025-06-10T21:34:00-04:00"),
            ev("2025-06-09T19:16:41+00:00", Status.info_received, "003", LABEL,
               US, "2025-06-09T15:16:41-04:00"),
        )),))


def test_delivered_with_later_photo_update_and_test_scan() -> None:
    result = ups.parse_payload(load("delivered.json"), now=NOW)
    assert result.problems == {}
    (r,) = result.results
    assert r.events == (
        # "Delivery Photo" (155) changes nothing: it inherits "delivered".
        ev("2025-06-12T22:35:00+00:00", Status.delivered, "155", "Delivery Photo", DEN,
           "2025-06-12T16:35:00-06:00"),
        ev("2025-06-12T22:30:00+00:00", Status.delivered, "011", "DELIVERED", DEN,
           "2025-06-12T16:30:00-06:00"),
        # the "088 Test" activity is dropped
        ev("2025-06-12T14:30:00+00:00", Status.out_for_delivery, "021",
           "Out For Delivery Today", DEN, "2025-06-12T08:30:00-06:00"),
        # loaded the evening before delivery day: not out for delivery yet
        ev("2025-06-12T04:15:00+00:00", Status.in_transit, "072", "Loaded on Delivery Vehicle",
           DEN, "2025-06-11T22:15:00-06:00"),
        ev("2025-06-11T06:00:00+00:00", Status.in_transit, "005", "Departed from Facility",
           LOU, "2025-06-11T02:00:00-04:00"),
        ev("2025-06-10T14:15:00+00:00", Status.info_received, "003", LABEL, US,
           "2025-06-10T10:15:00-04:00"),
    )
    assert r == TrackingResult(
        carrier="ups", tracking_number="1Z999AA10123456784", status=Status.delivered,
        status_detail="DELIVERED", delivered_at=datetime(2025, 6, 12, 22, 30, tzinfo=UTC),
        signed_by="JSMITH", service="UPS Next Day Air", events=r.events)


def test_not_found_warning_is_missing() -> None:
    assert ups.parse_payload(load("not_found.json"), now=NOW) == BatchResult(results=(
        TrackingResult.missing("ups", "1ZCIETST0111111114",
                               "TW0001: Tracking Information Not Found"),))


@pytest.mark.parametrize(("now", "expected"), [
    pytest.param(datetime(2025, 6, 13, 15, 0, tzinfo=UTC), Status.out_for_delivery,
                 id="same-local-day-morning"),
    # 23:00 on the 13th in Dallas is still the scan's local day, though UTC is the 14th
    pytest.param(datetime(2025, 6, 14, 4, 0, tzinfo=UTC), Status.out_for_delivery,
                 id="same-local-day-late-evening"),
    pytest.param(datetime(2025, 6, 14, 6, 0, tzinfo=UTC), Status.in_transit,
                 id="next-local-day"),
])
def test_loaded_on_vehicle_counts_only_on_its_local_day(now: datetime,
                                                        expected: Status) -> None:
    (r,) = ups.parse_payload(load("loaded_on_vehicle.json"), now=now).results
    assert r == TrackingResult(
        carrier="ups", tracking_number="1ZCIETST0422222228", status=expected,
        status_detail="Loaded on Delivery Vehicle",
        # RDD (rescheduled) wins over SDD; the EDW time window stays within that day
        estimated_delivery=DeliveryWindow.day(date(2025, 6, 13)), service="UPS Ground",
        events=(
            ev("2025-06-13T12:10:00+00:00", expected, "072", "Loaded on Delivery Vehicle",
               DAL, "2025-06-13T07:10:00-05:00"),
            ev("2025-06-13T04:15:00+00:00", Status.in_transit, "005", "Arrived at Facility",
               DAL, "2025-06-12T23:15:00-05:00"),
        ))


def test_exception_weather_delay_and_address_reason() -> None:
    (r,) = ups.parse_payload(load("exception_weather.json"), now=NOW).results
    assert r == TrackingResult(
        carrier="ups", tracking_number="1Z1442YY7229014688", status=Status.exception,
        status_detail="Delay: Severe Weather",
        estimated_delivery=DeliveryWindow.day(date(2025, 6, 16)), service="UPS 2nd Day Air",
        exception_reason=ExceptionReason.weather,
        events=(
            ev("2025-06-12T09:00:00+00:00", Status.exception, "052", "Delay: Severe Weather",
               LOU, "2025-06-12T05:00:00-04:00", reason=ExceptionReason.weather),
            ev("2025-06-11T22:00:00+00:00", Status.exception, "029",
               "Exception: Action Required. The address is incomplete.", LOU,
               "2025-06-11T18:00:00-04:00", reason=ExceptionReason.address),
            ev("2025-06-11T06:00:00+00:00", Status.in_transit, "005", "Arrived at Facility",
               LOU, "2025-06-11T02:00:00-04:00"),
        ))


def test_failed_attempt() -> None:
    (r,) = ups.parse_payload(load("failed_attempt.json"), now=NOW).results
    text = ("The receiver was not available for delivery. We'll make a second attempt the next "
            "business day.")
    assert r == TrackingResult(
        carrier="ups", tracking_number="1ZA123450312345678", status=Status.failed_attempt,
        status_detail=text, estimated_delivery=DeliveryWindow.day(date(2025, 6, 13)),
        events=(
            ev("2025-06-12T20:30:00+00:00", Status.failed_attempt, "022", text, DEN,
               "2025-06-12T14:30:00-06:00"),
            ev("2025-06-12T14:00:00+00:00", Status.out_for_delivery, "021",
               "Out For Delivery Today", DEN, "2025-06-12T08:00:00-06:00"),
        ))


def test_returned_is_not_undone_by_a_later_label_event() -> None:
    (r,) = ups.parse_payload(load("returned.json"), now=NOW).results
    text = "Returning to Sender: The receiver refused the delivery."
    assert r == TrackingResult(
        carrier="ups", tracking_number="1Z999AA10123456784", status=Status.returned,
        status_detail=text, exception_reason=ExceptionReason.refused,
        events=(
            ev("2025-06-15T13:00:00+00:00", Status.info_received, "003",
               "Shipper created a label, UPS has not received the package yet.", US,
               "2025-06-15T09:00:00-04:00"),
            ev("2025-06-13T17:00:00+00:00", Status.returned, "035", text, DEN,
               "2025-06-13T11:00:00-06:00", reason=ExceptionReason.refused),
            ev("2025-06-12T21:00:00+00:00", Status.exception, "033",
               "Return to Sender Requested", DEN, "2025-06-12T15:00:00-06:00",
               reason=ExceptionReason.other),
        ))


def test_delivered_to_access_point_is_available_for_pickup() -> None:
    (r,) = ups.parse_payload(load("access_point.json"), now=NOW).results
    assert (r.status, r.status_detail, r.delivered_at) == (
        Status.available_for_pickup, "Delivered to UPS Access Point", None)
    assert [e.status for e in r.events] == [Status.available_for_pickup, Status.in_transit]


def test_times_without_offsets() -> None:
    (r,) = ups.parse_payload(load("no_offset.json"), now=NOW).results
    chicago = ZoneInfo("America/Chicago")
    assert r.events == (
        # no gmt fields: the zone of the activity's state (Texas, CST in January), flagged
        ev("2025-01-12T15:30:00+00:00", Status.in_transit, "005", "Arrived at Facility", DAL,
           "2025-01-12T09:30:00-06:00", assumed=True),
        # gmt given without gmtOffset: the offset follows from local minus GMT (XML-era
        # "YYYY-MM-DD" gmtDate and 5-digit gmtTime accepted)
        ev("2025-01-12T03:00:00+00:00", Status.in_transit, "005", "Departed from Facility", LOU,
           "2025-01-11T22:00:00-05:00"),
        # no state to go by: UTC, flagged
        ev("2025-01-10T10:15:00+00:00", Status.info_received, "003", "Shipper created a label",
           US, "2025-01-10T10:15:00+00:00", assumed=True),
    )
    assert r.events[0].local_time == datetime(2025, 1, 12, 9, 30, tzinfo=chicago)
    assert r.events[1].local_time is not None
    assert r.events[1].local_time.utcoffset() == timedelta(hours=-5)


def test_unknown_code_is_kept_and_listed() -> None:
    (r,) = ups.parse_payload(load("unknown_code.json"), now=NOW).results
    assert (r.status, r.unknown_codes, r.status_detail) == (Status.unknown, ("999",),
                                                            "Something new")
    assert [(e.code, e.status) for e in r.events] == [("999", Status.unknown),
                                                      ("005", Status.in_transit)]


def test_unknown_newest_scan_falls_back_to_current_status() -> None:
    payload = load("unknown_code.json")
    package = payload["trackResponse"]["shipment"][0]["package"][0]
    package["currentStatus"] = {"code": "005", "description": "On the Way"}
    (r,) = ups.parse_payload(payload, now=NOW).results
    assert (r.status, r.status_detail, r.unknown_codes) == (Status.in_transit, "On the Way",
                                                            ("999",))


def test_multi_package_shipment() -> None:
    result = ups.parse_payload(load("multi_package.json"), now=NOW)
    assert [(r.tracking_number, r.status) for r in result.results] == [
        ("1Z999AA10123456784", Status.in_transit),
        ("1Z999AA10123456793", Status.out_for_delivery)]


def test_current_status_delivered_without_delivered_scan() -> None:
    payload = load("in_transit.json")
    package = payload["trackResponse"]["shipment"][0]["package"][0]
    package["currentStatus"] = {"code": "011", "description": "Delivered"}
    package["deliveryDate"] = [{"type": "DEL", "date": "20250612"}]
    package["deliveryTime"] = {"type": "DEL", "endTime": "163000"}
    (r,) = ups.parse_payload(payload, now=NOW).results
    # DEL date/time carry no zone: the destination's (Denver, MDT) is used
    assert (r.status, r.status_detail, r.delivered_at) == (
        Status.delivered, "Delivered", datetime(2025, 6, 12, 22, 30, tzinfo=UTC))


@pytest.mark.parametrize("payload", [
    None, [], "trackResponse", {"trackResponse": []}, {"trackResponse": {"shipment": {}}},
    {"trackResponse": {"shipment": [1]}}, {"trackResponse": {"shipment": [{"package": []}]}},
    {"response": {"errors": [{"code": "250002", "message": "Invalid Authentication"}]}},
], ids=repr)
def test_not_a_ups_response(payload: Any) -> None:
    with pytest.raises(errors.CarrierPayloadError):
        ups.parse_payload(payload, now=NOW)


def test_malformed_package_is_a_problem_for_that_number() -> None:
    payload = load("in_transit.json")
    payload["trackResponse"]["shipment"][0]["package"][0]["activity"][0]["date"] = "2025-13-45"
    payload["trackResponse"]["shipment"][0]["package"][0]["activity"][0].pop("gmtDate")
    result = ups.parse_payload(payload, now=NOW)
    assert result.results == ()
    assert list(result.problems) == ["1ZA123450312345678"]


def test_error_envelopes() -> None:
    invalid = load("error_invalid_number.json")
    assert parse_error_envelope(invalid, number="1ZX", http_status=400) == BatchResult(
        problems={"1ZX": "TV1002: Invalid inquiry number"})
    assert parse_error_envelope(invalid, number="1ZX", http_status=404) == BatchResult(
        results=(TrackingResult.missing("ups", "1ZX", "TV1002: Invalid inquiry number"),))
    other = {"response": {"errors": [{"code": "10007", "message": "unsupported content"}]}}
    assert parse_error_envelope(other, number="1ZX", http_status=400) is None
    assert parse_error_envelope("<html>", number="1ZX", http_status=404) is None


def test_tracking_url() -> None:
    assert ups.tracking_url(" 1Z999AA1 0123456784") == (
        "https://www.ups.com/track?loc=en_US&tracknum=1Z999AA10123456784")


# --- fuzz: any JSON gives a result or a payload error ----------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)
# Values shaped like UPS fields, weighted over arbitrary JSON so the fuzz reaches deep into the
# parser (the plain JSON test above covers garbage at the top level).
leaf = json_values | st.sampled_from(["", " ", "OD", "X", "D", "M", "TW0001", "DEL", "99"])


def like(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Nine times in ten ``good``, else anything."""
    return st.integers(0, 9).flatmap(lambda i: leaf if i == 0 else good)


days = like(st.sampled_from(["20250612", "2025-06-12", "20250613", "99991231", "00010101"] * 3
                            + ["20250230", "00000000"]))
times = like(st.sampled_from(["15:44:34", "74700", "2359", "000000", "231500"] * 3
                             + ["250000", "12:61:00"]))
offsets = like(st.sampled_from(["-07:00", "+05:30", "+14:00", "-04.00", "+99:99", "-0500"]))
codes = like(st.sampled_from(["011", "072", "005", "5", "155", "088", "022", "999", "000"]))
letters = like(st.sampled_from(["I", "X", "D", "M", "U", "NA", "Q"]))
two = like(st.sampled_from(["OD", "OT", "F4", "MP", "UP", "QQ"]))
states = like(st.sampled_from(["TX", "CO", "KY", "ZZ"]))
status_obj = st.fixed_dictionaries({}, optional={
    "type": letters, "code": two, "statusCode": codes, "description": leaf})
activity = st.fixed_dictionaries({"date": days, "time": times}, optional={
    "gmtDate": days, "gmtTime": times, "gmtOffset": offsets, "status": like(status_obj),
    "location": like(st.fixed_dictionaries({"address": like(st.fixed_dictionaries(
        {}, optional={"city": leaf, "stateProvince": states, "countryCode": leaf}))}))})
package = st.fixed_dictionaries({"activity": like(st.lists(like(activity), min_size=1,
                                                                max_size=4))},
                                optional={
    "trackingNumber": like(st.just("1ZA123450312345678")),
    "currentStatus": like(status_obj),
    "deliveryDate": like(st.lists(st.fixed_dictionaries({
        "type": like(st.sampled_from(["SDD", "RDD", "DEL"])), "date": days}), max_size=3)),
    "deliveryTime": like(st.fixed_dictionaries({}, optional={
        "type": like(st.sampled_from(["DEL", "EDW"])), "endTime": times})),
    "deliveryInformation": like(st.fixed_dictionaries({}, optional={"receivedBy": leaf})),
    "service": like(st.fixed_dictionaries({}, optional={"description": leaf})),
    "packageAddress": like(st.lists(st.fixed_dictionaries({
        "type": st.just("DESTINATION"), "address": st.fixed_dictionaries(
            {"stateProvince": states})}), max_size=1))})
shipment = st.fixed_dictionaries({
    "inquiryNumber": like(st.just("1ZA123450312345678")),
    "package": like(st.lists(like(package), min_size=1, max_size=3))}, optional={
    "warnings": like(st.lists(st.fixed_dictionaries({"code": like(st.just("TW0001")),
                                                     "message": leaf}), max_size=2))})
ups_like = st.fixed_dictionaries({"trackResponse": st.fixed_dictionaries(
    {"shipment": st.lists(shipment, min_size=1, max_size=3)})})


def _result_or_payload_error(payload: Any) -> None:
    try:
        result = ups.parse_payload(payload, now=NOW)
    except errors.CarrierPayloadError:
        return
    assert isinstance(result, BatchResult)
    for r in result.results:
        assert [e.at for e in r.events] == sorted((e.at for e in r.events), reverse=True)
        assert all(e.at.utcoffset() == timedelta(0) for e in r.events)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_gives_result_or_payload_error(payload: Any) -> None:
    _result_or_payload_error(payload)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ups_like)
def test_ups_shaped_json_gives_result_or_payload_error(payload: Any) -> None:
    _result_or_payload_error(payload)


# --- client against a real local server ------------------------------------------------------

CLIENT_ID, CLIENT_SECRET = "ups-id", "ups-secret"


@dataclass
class FakeUps:
    """A scripted UPS look-alike. Checks request shapes; records what it saw."""

    expires_in: str = "14399"
    reject_all_tokens: bool = False
    issued: list[str] = field(default_factory=list)
    valid: set[str] = field(default_factory=set)
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    track_requests: list[dict[str, Any]] = field(default_factory=list)
    script: list[Response | float] = field(default_factory=list)

    async def token(self, request: Request) -> Response:
        form = parse_qs((await request.body()).decode())
        self.token_requests.append({"auth": request.headers.get("authorization"), "form": form,
                                    "content_type": request.headers.get("content-type")})
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != expected or form.get("grant_type") != [
                "client_credentials"]:
            return JSONResponse({"response": {"errors": [
                {"code": "250002", "message": "Invalid Authentication Information."}]}}, 401)
        token = f"tok-{len(self.issued) + 1}"
        self.issued.append(token)
        self.valid.add(token)
        return JSONResponse({"token_type": "Bearer", "issued_at": "1685542319575",
                             "client_id": CLIENT_ID, "access_token": token, "scope": "",
                             "expires_in": self.expires_in, "refresh_count": "0",
                             "status": "approved"})

    async def track(self, request: Request) -> Response:
        number = request.path_params["number"]
        self.track_requests.append({"number": number, "headers": dict(request.headers),
                                    "query": dict(request.query_params)})
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.reject_all_tokens or bearer not in self.valid:
            return JSONResponse({"response": {"errors": [
                {"code": "250002", "message": "Invalid Authentication Information."}]}}, 401)
        if not request.headers.get("transId") or not request.headers.get("transactionSrc"):
            return JSONResponse({"response": {"errors": [
                {"code": "VSS002", "message": "missing transId/transactionSrc"}]}}, 400)
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, float):
                await asyncio.sleep(step)
            else:
                return step
        body = load("not_found.json")
        body["trackResponse"]["shipment"][0]["inquiryNumber"] = number
        for name in ("in_transit.json", "delivered.json"):
            candidate = load(name)
            if candidate["trackResponse"]["shipment"][0]["inquiryNumber"] == number.upper():
                body = candidate
        return JSONResponse(body)


@dataclass
class Handle:
    fake: FakeUps
    server: RunningServer


@pytest.fixture(scope="module")
def ups_server() -> Iterator[Handle]:
    handle = Handle(FakeUps(), RunningServer(host="", port=0))
    # The app reaches the fake through the handle, so each test can swap in a fresh one.
    async def token(request: Request) -> Response:
        return await handle.fake.token(request)

    async def track(request: Request) -> Response:
        return await handle.fake.track(request)

    app = Starlette(routes=[Route("/security/v1/oauth/token", token, methods=["POST"]),
                            Route("/api/track/v1/details/{number}", track, methods=["GET"])])
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
    carrier: ups.UpsCarrier
    fake: FakeUps
    clock: Monotonic


@pytest.fixture
async def rig(ups_server: Handle) -> AsyncIterator[Rig]:
    ups_server.fake = FakeUps()
    clock = Monotonic()
    cfg = CarrierSettings(base_url=ups_server.server.url + "/", client_id=CLIENT_ID,
                          client_secret=CLIENT_SECRET, timeout_s=0.5, transaction_src="notif-t")
    async with httpx.AsyncClient() as http:
        carrier = ups.UpsCarrier(cfg, http, now=lambda: NOW, monotonic=clock)
        yield Rig(carrier, ups_server.fake, clock)
        await carrier.aclose()
        assert not http.is_closed  # aclose leaves the shared client alone


async def test_token_cached_and_request_shape(rig: Rig) -> None:
    for number in ("1ZA123450312345678", "1Z999AA10123456784", "1ZA123450312345678"):
        result = await rig.carrier.track([number])
        assert [r.tracking_number for r in result.results] == [number]
    assert rig.fake.issued == ["tok-1"]
    assert rig.carrier.requests_made == 4
    (token_request,) = rig.fake.token_requests
    assert token_request["form"] == {"grant_type": ["client_credentials"]}
    assert token_request["content_type"] == "application/x-www-form-urlencoded"
    trans_ids = [r["headers"]["transid"] for r in rig.fake.track_requests]
    assert len(set(trans_ids)) == 3 and all(len(t) <= 32 for t in trans_ids)
    first = rig.fake.track_requests[0]
    assert first["headers"]["transactionsrc"] == "notif-t"
    assert first["headers"]["authorization"] == "Bearer tok-1"
    assert first["query"]["locale"] == "en_US"


async def test_token_refreshed_after_expiry(rig: Rig) -> None:
    await rig.carrier.track(["1ZA123450312345678"])
    rig.clock.t += 12000  # well within the string expires_in "14399": still cached
    await rig.carrier.track(["1ZA123450312345678"])
    assert rig.fake.issued == ["tok-1"]
    rig.clock.t += 1400  # 13400 s: inside the refresh margin before expiry
    await rig.carrier.track(["1ZA123450312345678"])
    assert rig.fake.issued == ["tok-1", "tok-2"]
    assert rig.fake.track_requests[-1]["headers"]["authorization"] == "Bearer tok-2"


async def test_401_refreshes_once_then_succeeds(rig: Rig) -> None:
    await rig.carrier.track(["1ZA123450312345678"])
    rig.fake.valid.clear()  # the server forgets the token (expired early)
    result = await rig.carrier.track(["1ZA123450312345678"])
    assert result.results[0].status is Status.in_transit
    assert rig.fake.issued == ["tok-1", "tok-2"]


async def test_401_twice_is_auth_error(rig: Rig) -> None:
    rig.fake.reject_all_tokens = True
    with pytest.raises(errors.CarrierAuthError):
        await rig.carrier.track(["1ZA123450312345678"])
    assert len(rig.fake.issued) == 2 and len(rig.fake.track_requests) == 2


async def test_bad_credentials_is_auth_error(ups_server: Handle) -> None:
    ups_server.fake = FakeUps()
    cfg = CarrierSettings(base_url=ups_server.server.url, client_id=CLIENT_ID,
                          client_secret="wrong")
    async with httpx.AsyncClient() as http:
        carrier = ups.UpsCarrier(cfg, http, now=lambda: NOW)
        with pytest.raises(errors.CarrierAuthError):
            await carrier.track(["1ZA123450312345678"])
    assert ups_server.fake.track_requests == []


async def test_not_found_and_invalid_number_are_data(rig: Rig) -> None:
    assert await rig.carrier.track(["1ZCIETST0111111114"]) == BatchResult(results=(
        TrackingResult.missing("ups", "1ZCIETST0111111114",
                               "TW0001: Tracking Information Not Found"),))
    rig.fake.script.append(JSONResponse(load("error_invalid_number.json"), 400))
    assert await rig.carrier.track(["1ZBAD"]) == BatchResult(
        problems={"1ZBAD": "TV1002: Invalid inquiry number"})
    rig.fake.script.append(JSONResponse({"response": {"errors": [
        {"code": "TN404", "message": "Tracking number information not found"}]}}, 404))
    (missing,) = (await rig.carrier.track(["1ZGONE"])).results
    assert missing.not_found and missing.tracking_number == "1ZGONE"


async def test_number_recased_by_ups_answers_to_the_asked_number(rig: Rig) -> None:
    (r,) = (await rig.carrier.track(["1za123450312345678"])).results
    assert r.tracking_number == "1za123450312345678" and r.status is Status.in_transit


@pytest.mark.parametrize(("headers", "retry_after", "header_sent"), [
    pytest.param({}, 60.0, False, id="no-retry-after"),
    pytest.param({"Retry-After": "7"}, 7.0, True, id="seconds"),
    pytest.param({"Retry-After": email.utils.format_datetime(NOW + timedelta(seconds=120),
                                                             usegmt=True)},
                 120.0, True, id="http-date"),
])
async def test_rate_limited(rig: Rig, headers: dict[str, str], retry_after: float,
                            header_sent: bool) -> None:
    rig.fake.script.append(JSONResponse({"response": {"errors": [
        {"code": "10429", "message": "Too Many Requests"}]}}, 429, headers=headers))
    with pytest.raises(errors.CarrierRateLimited) as caught:
        await rig.carrier.track(["1ZA123450312345678"])
    assert (caught.value.retry_after, caught.value.header_sent) == (retry_after, header_sent)


async def test_server_error_is_unavailable(rig: Rig) -> None:
    rig.fake.script.append(JSONResponse({"response": {"errors": [
        {"code": "10004", "message": "something went wrong"}]}}, 503))
    with pytest.raises(errors.CarrierUnavailable) as caught:
        await rig.carrier.track(["1ZA123450312345678"])
    assert not isinstance(caught.value, errors.CarrierRateLimited)


async def test_html_page_is_payload_error(rig: Rig) -> None:
    rig.fake.script.append(Response("<html><body>Maintenance</body></html>",
                                    media_type="text/html"))
    with pytest.raises(errors.CarrierPayloadError) as caught:
        await rig.carrier.track(["1ZA123450312345678"])
    assert "<html>" in caught.value.snippet


async def test_timeout_is_unavailable(rig: Rig) -> None:
    rig.fake.script.append(1.0)  # the server sleeps past the 0.5 s client timeout
    with pytest.raises(errors.CarrierUnavailable):
        await rig.carrier.track(["1ZA123450312345678"])


async def test_batch_limit_and_empty(rig: Rig) -> None:
    with pytest.raises(ValueError):
        await rig.carrier.track(["1ZA123450312345678", "1Z999AA10123456784"])
    assert await rig.carrier.track([]) == BatchResult()
    assert rig.carrier.requests_made == 0
