"""USPS Tracking v3 / v3r2 response bodies for the sandbox (reference sections 6, 9.3, 9.4).

Pure. v3 DETAIL mirrors the real capture: boolean-like fields as strings (``"false"``),
``eventZIP``, ``name``, local ``eventTimestamp`` without offset (with a wrong trailing ``Z`` on
numbers with the ``usps_z_suffix`` quirk), true-UTC ``GMTTimestamp`` and ``GMTOffset``
``-05:00`` (checklist row 16). v3r2 uses its own names (``eventZIPCode``, ``recipientName``,
``originZIPCode``, ``deliveryDateExpectation``, ``servicesEligibility`` booleans) and the
``-5:00`` offset style of its spec example. Errors use the ``{"apiVersion", "error"}``
envelope; "not found" is 404 with code 150006.

``statusCategory`` strings beyond "Accepted"/"Delivered" are unconfirmed (reference 6.4); the
customer-facing category names are used.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from carriers.model import ExceptionReason, Status
from carriers.sandbox.payloads.common import Row, gmt_offset, local, offset_iso, utc_z
from carriers.sandbox.scenarios import Kind, SimEvent, View

__all__ = ["CODES", "error", "expected", "not_found_detail", "token_body", "v3_detail",
           "v3_summary", "v3r2_item"]

S, R = Status, ExceptionReason
NOT_YET = ("A status update is not yet available for your package. It will be available when "
           "the shipper provides an update or the package is given to USPS.")
# Row(code=eventCode, text=eventType, extra=statusCategory)
CODES: dict[Kind, Row] = {
    Kind.label_created: Row(code="GX", text="Shipping Label Created, USPS Awaiting Item",
                            extra="Pre-Shipment", status=S.info_received),
    Kind.picked_up: Row(code="03", text="USPS in possession of item", extra="Accepted",
                        status=S.in_transit),
    Kind.departed: Row(code="SF", text="Departed Post Office", extra="In Transit",
                       status=S.in_transit),
    Kind.arrived: Row(code="A1", text="Arrived at USPS Regional Facility", extra="In Transit",
                      status=S.in_transit),
    Kind.arrived_destination: Row(code="07", text="Arrived at Post Office", extra="In Transit",
                                  status=S.in_transit),
    Kind.out_for_delivery: Row(code="OF", text="Out for Delivery", extra="Out for Delivery",
                               status=S.out_for_delivery),
    Kind.failed_attempt: Row(code="02", text="Notice Left (No Authorized Recipient Available)",
                             extra="Delivery Attempt", status=S.failed_attempt),
    Kind.available_for_pickup: Row(code="16", text="Available for Pickup",
                                   extra="Available for Pickup", status=S.available_for_pickup),
    Kind.picked_up_by_recipient: Row(code="43", extra="Delivered", status=S.delivered,
                                     text="Delivered, Individual Picked Up at Post Office"),
    Kind.delivered: Row(code="01", text="Delivered, Front Door/Porch", extra="Delivered",
                        status=S.delivered),
    Kind.delivered_corrected: Row(code="01", text="Delivered, Parcel Locker",
                                  extra="Delivered", status=S.delivered),
    # USPS has no documented weather-delay scan; "71 rescheduled" is how delays show up.
    Kind.delay_weather: Row(code="71", text="Rescheduled to Next Delivery Day",
                            extra="In Transit", status=S.in_transit),
    Kind.delay_operational: Row(code="71", text="Rescheduled to Next Delivery Day",
                                extra="In Transit", status=S.in_transit),
    Kind.address_exception: Row(code="05", text="Undeliverable as Addressed", extra="Alert",
                                status=S.exception, reason=R.address),
    Kind.return_requested: Row(code="21", text="Return to Sender - No Such Number",
                               extra="Return to Sender", status=S.returned),
    Kind.returning: Row(code="09", text="Return to Sender Processed", extra="Return to Sender",
                        status=S.returned),
    Kind.returned_to_sender: Row(code="09", text="Returned to Sender",
                                 extra="Return to Sender", status=S.returned),
}
# Departures from the regional facility are T1, from the origin post office SF.
_HUB_DEPARTED = Row(code="T1", text="Departed USPS Regional Facility", extra="In Transit",
                    status=S.in_transit)
_MAIL_CLASSES = (("USPS Ground Advantage<SUP>&#153;</SUP>", "USPS Ground Advantage", "001"),
                 ("Priority Mail<SUP>&#174;</SUP>", "Priority Mail", "055"))


def expected(event: SimEvent, view_hub_code: str | None = None) -> Row:
    if event.kind is Kind.departed and event.place.code == view_hub_code:
        return _HUB_DEPARTED
    return CODES[event.kind]


def _row(event: SimEvent, view: View) -> Row:
    return expected(event, view.timeline.route.hub.code)


def error(code: str, message: str, *, api_version: str = "/tracking/v3",
          errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"apiVersion": api_version,
            "error": {"code": code, "message": message, "errors": errors or []}}


def not_found_detail(number: str, api_version: str = "/tracking/v3") -> dict[str, Any]:
    return error("404", "Not Found", api_version=api_version, errors=[{
        "status": "404", "code": "150006", "title": "Not Found", "detail": NOT_YET,
        "source": {"parameter": "trackingNumber", "example": number}}])


def token_body(*, access_token: str, expires_in: int, issued_at_ms: int, client_id: str,
               scope: str) -> dict[str, Any]:
    return {"access_token": access_token, "token_type": "Bearer", "issued_at": issued_at_ms,
            "expires_in": expires_in, "status": "approved", "scope": scope,
            "issuer": "api.usps.com", "client_id": client_id,
            "application_name": "sandbox-app", "api_products": "[Public Access]",
            "public_key": ""}


def _place_fields(event: SimEvent, view: View) -> tuple[str | None, str | None, str | None]:
    p = event.place
    if event.kind is Kind.label_created:
        return None, None, None
    if p == view.timeline.route.hub:  # hub scans name the facility, state null (reference 6.3)
        return f"{p.city} {p.state} DISTRIBUTION CENTER", None, p.postal
    return p.city, p.state, p.postal


def _summary(latest: SimEvent, row: Row, view: View) -> str:
    when = local(latest.at, latest.place)
    clock = when.strftime("%I:%M %p").lstrip("0").lower()
    day = f"{when:%B} {when.day}, {when.year}"
    where = f"{latest.place.city}, {latest.place.state} {latest.place.postal}"
    if row.status is Status.delivered:
        return f"Your item was delivered at {clock} on {day} in {where}."
    return f"Your item's latest status is '{row.text}' at {clock} on {day} in {where}."


def _v3_event(event: SimEvent, view: View) -> dict[str, Any]:
    row = _row(event, view)
    loc = local(event.at, event.place)
    stamp = loc.replace(tzinfo=None).isoformat(timespec="seconds")
    if "usps_z_suffix" in view.timeline.quirks:
        stamp += "Z"  # local time wrongly marked UTC, as in USPS's README
    city, state, zip_code = _place_fields(event, view)
    signer = view.timeline.signer if row.status is Status.delivered else None
    return {"eventType": row.text, "eventTimestamp": stamp, "GMTTimestamp": utc_z(event.at),
            "GMTOffset": gmt_offset(loc), "eventCountry": None, "eventCity": city,
            "eventState": state, "eventZIP": zip_code, "firm": None, "name": signer,
            "authorizedAgent": "false", "eventCode": row.code, "additionalProp": None}


def _edd_stamp(view: View) -> str | None:
    if view.edd is None or view.delivered is not None:
        return None
    # A date-bearing UTC stamp as in the real capture (21:00Z is the same day in US zones).
    return f"{view.edd.end.isoformat()}T21:00:00Z"


def v3_detail(view: View) -> dict[str, Any]:
    """``GET /tracking/v3/tracking/{n}?expand=DETAIL`` 200 body (caller 404s when not found)."""
    tl = view.timeline
    latest = view.latest
    assert latest is not None
    row = _row(latest, view)
    route = tl.route
    mail_class, _, stc = _MAIL_CLASSES[tl.service_variant]
    body: dict[str, Any] = {
        "trackingNumber": tl.number,
        "destinationCity": route.destination.city, "destinationState": route.destination.state,
        "destinationZIP": route.destination.postal,
        "emailEnabled": "true", "kahalaIndicator": "false", "mailClass": mail_class,
        "mailType": "DM", "originCity": route.origin.city, "originState": route.origin.state,
        "originZIP": route.origin.postal, "proofOfDeliveryEnabled": "false",
        "restoreEnabled": "false", "RRAMEnabled": "false", "RREEnabled": "false",
        "services": ["USPS Tracking<SUP>&#174;</SUP>"], "serviceTypeCode": stc,
        "status": row.text, "statusCategory": row.extra,
        "statusSummary": _summary(latest, row, view),
    }
    stamp = _edd_stamp(view)
    if stamp is not None:
        body["expectedDeliveryTimeStamp"] = stamp
    body["trackingEvents"] = [_v3_event(e, view) for e in view.events]
    return body


def v3_summary(view: View) -> dict[str, Any]:
    """``expand=SUMMARY`` (the default): summary fields only, all strings."""
    latest = view.latest
    assert latest is not None
    edd = view.edd.end.isoformat() if view.edd and view.delivered is None else ""
    return {"trackingNumber": view.timeline.number, "expectedDeliveryDate": edd,
            "expectedDeliveryTime": "9:00 pm" if edd else "", "guaranteedDeliveryDate": "",
            "eventSummaries": [_summary(e, _row(e, view), view) for e in view.events]}


def _v3r2_event(event: SimEvent, view: View) -> dict[str, Any]:
    row = _row(event, view)
    loc = local(event.at, event.place)
    city, state, zip_code = _place_fields(event, view)
    out: dict[str, Any] = {"eventType": row.text, "eventCode": row.code,
                           "eventTimestamp": offset_iso(loc), "GMTTimestamp": utc_z(event.at),
                           "GMTOffset": gmt_offset(loc, pad_hours=False), "eventCity": city,
                           "eventState": state, "eventZIPCode": zip_code, "eventCountry": "US"}
    if row.status is Status.delivered:
        out["recipientName"] = view.timeline.signer
    return out


def v3r2_item(view: View) -> dict[str, Any]:
    """One element of the v3r2 response array: success (``statusCode`` "200") or 404 item."""
    tl = view.timeline
    latest = view.latest
    if latest is None:
        failure = not_found_detail(tl.number, "/tracking/v3r2")
        return {"statusCode": "404", "trackingNumber": tl.number, **failure}
    row = _row(latest, view)
    route = tl.route
    _, mail_class, stc = _MAIL_CLASSES[tl.service_variant]
    expectation: dict[str, Any] = {}
    if view.edd is not None and view.delivered is None:
        expectation["expectedDeliveryDate"] = view.edd.end.isoformat()
    label: datetime = view.events[-1].at
    return {
        "statusCode": "200", "trackingNumber": tl.number, "status": row.text,
        "statusCategory": row.extra, "statusSummary": _summary(latest, row, view),
        "mailClass": mail_class, "serviceTypeCode": stc,
        "destinationCity": route.destination.city, "destinationState": route.destination.state,
        "destinationZIPCode": route.destination.postal,
        "originCity": route.origin.city, "originState": route.origin.state,
        "originZIPCode": route.origin.postal,
        "mailingDate": local(label, route.origin).date().isoformat(),
        "deliveryDateExpectation": expectation,
        "servicesEligibility": {"proofOfDeliveryEnabled": False, "RREEnabled": False,
                                "trackingProofOfDeliveryEnabled": False},
        "trackingEvents": [_v3r2_event(e, view) for e in view.events],
    }
