"""UPS Track API v1 response bodies for the sandbox (reference carriers.md sections 3, 10).

Pure. Shapes follow section 3.3: ``trackResponse.shipment[].package[].activity[]`` newest
first, local ``date``/``time`` plus ``gmtDate`` (YYYYMMDD), ``gmtTime`` (HH:MM:SS) and
``gmtOffset`` (+-HH:MM); every OAuth field is a string; errors use the
``{"response":{"errors":[...]}}`` envelope.

The 2-character activity ``code`` of exception (type X) activities is not documented for the
REST API (reference 3.5 marks it unconfirmed); the values below are illustrative and adapters
are expected to key on the 3-digit ``statusCode`` first, as the reference recommends.
"""

from __future__ import annotations

from typing import Any

from carriers.model import ExceptionReason, Status
from carriers.sandbox.payloads.common import Row, gmt_offset, local
from carriers.sandbox.scenarios import Kind, SimEvent, View

__all__ = ["CODES", "error", "expected", "not_found", "token_body", "track_body"]

S, R = Status, ExceptionReason
# Row(code=3-digit statusCode, text=description, extra=type letter, extra2=activity code)
CODES: dict[Kind, Row] = {
    Kind.label_created: Row(code="003", extra="M", extra2="MP", status=S.info_received,
                            text="Shipper created a label, UPS has not received the package yet. "),
    Kind.picked_up: Row(code="038", extra="I", extra2="PU", text="Pickup Scan ",
                        status=S.in_transit),
    Kind.departed: Row(code="005", extra="I", extra2="DP", text="Departed from Facility",
                       status=S.in_transit),
    Kind.arrived: Row(code="005", extra="I", extra2="AR", text="Arrived at Facility",
                      status=S.in_transit),
    Kind.arrived_destination: Row(code="005", extra="I", extra2="DS", text="Destination Scan",
                                  status=S.in_transit),
    Kind.out_for_delivery: Row(code="021", extra="I", extra2="OT", text="Out For Delivery Today",
                               status=S.out_for_delivery),
    Kind.failed_attempt: Row(code="022", extra="X", extra2="48", status=S.failed_attempt,
                             text="The receiver was not available for delivery. We'll make a "
                                  "second attempt the next business day."),
    Kind.available_for_pickup: Row(code="017", extra="X", extra2="ZP",
                                   text="Held for Customer Pickup at UPS Access Point",
                                   status=S.available_for_pickup),
    Kind.picked_up_by_recipient: Row(code="011", extra="D", extra2="ZI", text="DELIVERED ",
                                     status=S.delivered),
    Kind.delivered: Row(code="011", extra="D", extra2="FS", text="DELIVERED ",
                        status=S.delivered),
    Kind.delivered_corrected: Row(code="011", extra="D", extra2="P5", text="DELIVERED ",
                                  status=S.delivered),
    Kind.delay_weather: Row(code="032", extra="X", extra2="WD", status=S.exception,
                            reason=R.weather, text="Adverse weather may cause delay"),
    Kind.delay_operational: Row(code="048", extra="X", extra2="DY", status=S.exception,
                                reason=R.other, text="Delay"),
    Kind.address_exception: Row(code="050", extra="X", extra2="AX", status=S.exception,
                                reason=R.address,
                                text="The address is incomplete. Address information required."),
    Kind.return_requested: Row(code="119", extra="X", extra2="RS", status=S.exception,
                               text="Return to Sender Requested"),
    Kind.returning: Row(code="036", extra="I", extra2="RT", status=S.returned,
                        text="Returning to Sender: In Transit"),
    Kind.returned_to_sender: Row(code="034", extra="I", extra2="RT", status=S.returned,
                                 text="Returned to Sender"),
}

_SERVICES = ({"code": "003", "description": "UPS Ground"},
             {"code": "002", "description": "UPS 2nd Day Air"})
_DROP_OFF = {Kind.delivered: "Front Door", Kind.picked_up_by_recipient: "UPS Access Point",
             Kind.delivered_corrected: "Parcel Locker"}


def expected(event: SimEvent) -> Row:
    return CODES[event.kind]


def error(code: str, message: str) -> dict[str, Any]:
    return {"response": {"errors": [{"code": code, "message": message}]}}


def token_body(*, client_id: str, access_token: str, expires_in: int,
               issued_at_ms: int) -> dict[str, str]:
    """OAuth 200 body: every value a string (reference 3.1, checklist row 1)."""
    return {"token_type": "Bearer", "issued_at": str(issued_at_ms), "client_id": client_id,
            "access_token": access_token, "scope": "", "expires_in": str(expires_in),
            "refresh_count": "0", "status": "approved"}


def not_found(number: str) -> dict[str, Any]:
    """Well-formed but unknown: HTTP 200, no ``package``, warning TW0001 (reference 3.4)."""
    return {"trackResponse": {"shipment": [{
        "inquiryNumber": number,
        "warnings": [{"code": "TW0001", "message": "Tracking Information Not Found"}]}]}}


def _address(event: SimEvent) -> dict[str, Any]:
    p = event.place
    if event.kind is Kind.label_created:  # manifest events carry only the country
        return {"address": {"countryCode": p.country, "country": p.country}}
    return {"address": {"city": p.city, "stateProvince": p.state, "postalCode": p.postal,
                        "countryCode": p.country, "country": p.country}, "slic": p.code}


def _activity(event: SimEvent) -> dict[str, Any]:
    row = CODES[event.kind]
    loc, utc = local(event.at, event.place), event.at
    return {"location": _address(event),
            "status": {"type": row.extra, "description": row.text, "code": row.extra2,
                       "statusCode": row.code},
            "date": loc.strftime("%Y%m%d"), "time": loc.strftime("%H%M%S"),
            "gmtDate": utc.strftime("%Y%m%d"), "gmtTime": utc.strftime("%H:%M:%S"),
            "gmtOffset": gmt_offset(loc)}


def _package(view: View) -> dict[str, Any]:
    tl = view.timeline
    route = tl.route
    latest = view.latest
    assert latest is not None
    package: dict[str, Any] = {
        "trackingNumber": tl.number,
        "currentStatus": {"description": CODES[latest.kind].text.strip(),
                          "code": CODES[latest.kind].code},
        "activity": [_activity(e) for e in view.events],
        "packageAddress": [
            {"type": t, "address": {"city": p.city, "stateProvince": p.state,
                                    "postalCode": p.postal, "countryCode": p.country,
                                    "country": p.country}}
            for t, p in (("ORIGIN", route.origin), ("DESTINATION", route.destination))],
        "service": dict(_SERVICES[tl.service_variant]),
        "weight": {"unitOfMeasurement": "LBS", "weight": "2.00"},
        "packageCount": 1,
    }
    delivered = view.delivered
    if delivered is not None:
        loc = local(delivered.at, delivered.place)
        package["deliveryDate"] = [{"type": "DEL", "date": loc.strftime("%Y%m%d")}]
        package["deliveryTime"] = {"type": "DEL", "endTime": loc.strftime("%H%M%S")}
        package["deliveryInformation"] = {"location": _DROP_OFF[delivered.kind],
                                          "receivedBy": tl.signer}
    elif view.edd is not None:
        dates = [{"type": "SDD", "date": (view.first_edd or view.edd).start.strftime("%Y%m%d")}]
        if view.first_edd is not None and view.edd != view.first_edd:
            dates.append({"type": "RDD", "date": view.edd.start.strftime("%Y%m%d")})
        package["deliveryDate"] = dates
        package["deliveryTime"] = {"type": "EOD", "endTime": "230000"}
    return package


def track_body(view: View) -> dict[str, Any]:
    """The 200 body for ``GET /api/track/v1/details/{n}``: the package or TW0001."""
    if not view.found:
        return not_found(view.timeline.number)
    shipment: dict[str, Any] = {"inquiryNumber": view.timeline.number,
                                "package": [_package(view)]}
    pickup = next((e for e in reversed(view.events) if e.kind is Kind.picked_up), None)
    if pickup is not None:  # not in the spec but in real responses (reference 3.3)
        shipment["pickupDate"] = local(pickup.at, pickup.place).strftime("%Y%m%d")
    return {"trackResponse": {"shipment": [shipment]}}
