"""FedEx Track API v1 response bodies for the sandbox (reference carriers.md sections 4, 9.1, 10).

Pure. ``output.completeTrackResults[]`` holds one element per requested number; an unknown
number is a per-number ``error`` TRACKING.TRACKINGNUMBER.NOTFOUND inside a 200. Scan ``date``
values carry the scan location's UTC offset; ``OD`` scans carry ``derivedStatusCode: "IT"``
(checklist row 8). Numbers with the ``fedex_duplicate`` quirk get a second, older
``trackResults`` element with another ``trackingNumberUniqueId`` (row 9); with
``fedex_offsetless_label`` the label-created scan date has no offset.

Derived codes ``SE`` and ``RS`` are marked unconfirmed in the reference (section 4.4); they are
used here for shipment exceptions and returns, and adapters should key on ``eventType`` first.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from carriers.model import ExceptionReason, Status
from carriers.sandbox.payloads.common import Row, local, local_at, naive_iso, offset_iso
from carriers.sandbox.scenarios import Kind, Scenario, SimEvent, View, build_timeline

__all__ = ["CODES", "error", "expected", "not_found_result", "token_body", "track_body",
           "track_result"]

S, R = Status, ExceptionReason
# Row(code=eventType, text=eventDescription, extra=derivedStatusCode, extra2=locationType)
CODES: dict[Kind, Row] = {
    Kind.label_created: Row(code="OC", extra="IN", extra2="CUSTOMER", status=S.info_received,
                            text="Shipment information sent to FedEx"),
    Kind.picked_up: Row(code="PU", extra="PU", extra2="PICKUP_LOCATION", text="Picked up",
                        status=S.in_transit),
    Kind.departed: Row(code="DP", extra="IT", extra2="FEDEX_FACILITY",
                       text="Departed FedEx location", status=S.in_transit),
    Kind.arrived: Row(code="AR", extra="IT", extra2="FEDEX_FACILITY",
                      text="Arrived at FedEx location", status=S.in_transit),
    Kind.arrived_destination: Row(code="AR", extra="IT", extra2="DESTINATION_FEDEX_FACILITY",
                                  text="At local FedEx facility", status=S.in_transit),
    Kind.out_for_delivery: Row(code="OD", extra="IT", extra2="VEHICLE",
                               text="On FedEx vehicle for delivery", status=S.out_for_delivery),
    Kind.failed_attempt: Row(code="DE", extra="DE", extra2="DELIVERY_LOCATION",
                             text="Delivery exception", status=S.failed_attempt),
    Kind.available_for_pickup: Row(code="HP", extra="IT", extra2="FEDEX_FACILITY",
                                   text="Ready for recipient pickup",
                                   status=S.available_for_pickup),
    Kind.picked_up_by_recipient: Row(code="DL", extra="DL", extra2="FEDEX_FACILITY",
                                     text="Delivered", status=S.delivered),
    Kind.delivered: Row(code="DL", extra="DL", extra2="DELIVERY_LOCATION", text="Delivered",
                        status=S.delivered),
    Kind.delivered_corrected: Row(code="DL", extra="DL", extra2="DELIVERY_LOCATION",
                                  text="Delivered", status=S.delivered),
    Kind.delay_weather: Row(code="DY", extra="DY", extra2="FEDEX_FACILITY", text="Delay",
                            status=S.exception, reason=R.weather),
    Kind.delay_operational: Row(code="DY", extra="DY", extra2="FEDEX_FACILITY", text="Delay",
                                status=S.exception, reason=R.other),
    Kind.address_exception: Row(code="SE", extra="SE", extra2="DESTINATION_FEDEX_FACILITY",
                                text="Shipment exception", status=S.exception,
                                reason=R.address),
    Kind.return_requested: Row(code="RS", extra="RS", extra2="DESTINATION_FEDEX_FACILITY",
                               text="Returning package to shipper", status=S.returned),
    Kind.returning: Row(code="RS", extra="RS", extra2="FEDEX_FACILITY",
                        text="Return to shipper in progress", status=S.returned),
    Kind.returned_to_sender: Row(code="RS", extra="RS", extra2="ORIGIN_FEDEX_FACILITY",
                                 text="Returned to shipper", status=S.returned),
}
_DERIVED_TEXT = {"IN": "Label created", "PU": "Picked up", "IT": "In transit", "DE":
                 "Delivery exception", "DL": "Delivered", "DY": "Delay",
                 "SE": "Shipment exception", "RS": "Return to shipper"}
# (exceptionCode, exceptionDescription) on scans that have one.
_EXCEPTIONS: dict[Kind, tuple[str, str]] = {
    Kind.failed_attempt: ("15", "Customer not available or business closed"),
    Kind.delay_weather: ("", "Local weather delay"),
    Kind.delay_operational: ("A52", "Package delayed"),
    Kind.address_exception: ("03", "Incorrect address"),
}
_DELAY_TYPES = {Kind.delay_weather: "WEATHER", Kind.delay_operational: "OPERATIONAL"}
_SERVICES = ({"type": "FEDEX_GROUND", "description": "FedEx Ground", "shortDescription": "FG"},
             {"type": "FEDEX_2_DAY", "description": "FedEx 2Day", "shortDescription": "2D"})
_CARRIER_CODES = ("FDXG", "FDXE")
_COMMIT: dict[Kind, str] = {
    Kind.failed_attempt: "FIRST_DELIVERY_ATTEMPTED",
    Kind.available_for_pickup: "HELD_PACKAGE_AVAILABLE_FOR_RECIPIENT_PICKUP",
    Kind.label_created: "SHIPMENT_LABEL_CREATED",
}


def expected(event: SimEvent) -> Row:
    return CODES[event.kind]


def error(code: str, message: str, *, transaction_id: str,
          customer_transaction_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"transactionId": transaction_id}
    if customer_transaction_id is not None:
        body["customerTransactionId"] = customer_transaction_id
    body["errors"] = [{"code": code, "message": message}]
    return body


def token_body(*, access_token: str, expires_in: int) -> dict[str, Any]:
    """OAuth 200 body: integer ``expires_in`` (reference 4.1)."""
    return {"access_token": access_token, "token_type": "bearer", "expires_in": expires_in,
            "scope": "CXS"}


def not_found_result(number: str) -> dict[str, Any]:
    return {"trackingNumber": number, "trackResults": [{
        "trackingNumberInfo": {"trackingNumber": number, "trackingNumberUniqueId": "",
                               "carrierCode": ""},
        "error": {"code": "TRACKING.TRACKINGNUMBER.NOTFOUND",
                  "message": "Tracking number cannot be found. Please correct the tracking "
                             "number and try again."}}]}


def _address(event: SimEvent) -> dict[str, Any]:
    p = event.place
    if event.kind is Kind.label_created:
        return {"streetLines": [""], "residential": False}
    return {"streetLines": [""], "city": p.city, "stateOrProvinceCode": p.state,
            "postalCode": p.postal, "countryCode": p.country, "residential": False,
            "countryName": p.country_name}


def _scan(event: SimEvent, view: View) -> dict[str, Any]:
    row = CODES[event.kind]
    when = local(event.at, event.place)
    offsetless = (event.kind is Kind.label_created
                  and "fedex_offsetless_label" in view.timeline.quirks)
    code, text = _EXCEPTIONS.get(event.kind, ("", ""))
    scan: dict[str, Any] = {
        "date": naive_iso(when) if offsetless else offset_iso(when),
        "eventType": row.code, "eventDescription": row.text,
        "exceptionCode": code, "exceptionDescription": text,
        "scanLocation": _address(event), "locationType": row.extra2,
        "derivedStatusCode": row.extra, "derivedStatus": _DERIVED_TEXT[row.extra],
    }
    if event.kind is not Kind.label_created:
        scan["locationId"] = event.place.code
    if event.kind in _DELAY_TYPES:
        scan["delayDetail"] = {"type": _DELAY_TYPES[event.kind], "status": "DELAYED"}
    return scan


def _party(view: View, origin: bool) -> dict[str, Any]:
    p = view.timeline.route.origin if origin else view.timeline.route.destination
    return {"city": p.city, "stateOrProvinceCode": p.state, "countryCode": p.country,
            "residential": False, "countryName": p.country_name}


def _result(view: View, unique_id: str, *, detailed: bool) -> dict[str, Any]:
    tl = view.timeline
    latest = view.latest
    assert latest is not None
    row = CODES[latest.kind]
    dest = tl.route.destination
    status: dict[str, Any] = {"code": row.code, "derivedCode": row.extra,
                              "statusByLocale": _DERIVED_TEXT[row.extra],
                              "description": row.text, "scanLocation": _address(latest),
                              "ancillaryDetails": []}
    if latest.kind is Kind.failed_attempt:
        status["ancillaryDetails"] = [{
            "reason": "15", "reasonDescription": "Customer not available or business closed",
            "action": "", "actionDescription": "We'll try again on the next business day"}]
    if latest.kind in _DELAY_TYPES:
        status["delayDetail"] = {"type": _DELAY_TYPES[latest.kind], "status": "DELAYED"}
    label = view.events[-1]
    dates: list[dict[str, str]] = []
    delivered = view.delivered
    if delivered is not None:
        dates.append({"type": "ACTUAL_DELIVERY",
                      "dateTime": offset_iso(local(delivered.at, delivered.place))})
    elif view.edd is not None:
        dates.append({"type": "ESTIMATED_DELIVERY",
                      "dateTime": offset_iso(local_at(view.edd.end, (20, 0), dest))})
    pickup = next((e for e in view.events if e.kind is Kind.picked_up), None)
    if pickup is not None:
        dates.append({"type": "ACTUAL_PICKUP",
                      "dateTime": offset_iso(local(pickup.at, pickup.place))})
    ship_day = local(label.at, label.place).date()
    dates.append({"type": "SHIP", "dateTime": offset_iso(local_at(ship_day, (0, 0), label.place))})
    attempts = sum(1 for e in view.events if e.kind is Kind.failed_attempt)
    details: dict[str, Any] = {"deliveryAttempts": str(attempts)}
    if delivered is not None:
        details.update(receivedByName=tl.signer, signedByName=tl.signer)
    number = tl.number
    result: dict[str, Any] = {
        "trackingNumberInfo": {"trackingNumber": number, "trackingNumberUniqueId": unique_id,
                               "carrierCode": _CARRIER_CODES[tl.service_variant]},
        "additionalTrackingInfo": {"nickname": "", "hasAssociatedShipments": False},
        "shipperInformation": {"contact": {}, "address": _party(view, True)},
        "recipientInformation": {"contact": {}, "address": _party(view, False)},
        "latestStatusDetail": status,
        "dateAndTimes": dates,
        "availableImages": ([{"type": "SIGNATURE_PROOF_OF_DELIVERY"}]
                            if delivered is not None else []),
        "packageDetails": {"packagingDescription": {"type": "YOUR_PACKAGING",
                                                    "description": "Your Packaging"},
                           "sequenceNumber": "1", "count": "1",
                           "weightAndDimensions": {"weight": [{"value": "2.0", "unit": "LB"}]},
                           "packageContent": []},
        "shipmentDetails": {"possessionStatus": latest.kind is not Kind.label_created},
        # includeDetailedScans=false returns only the latest scan (reference 4.2).
        "scanEvents": [_scan(e, view) for e in (view.events if detailed else view.events[:1])],
        "deliveryDetails": details,
        "serviceDetail": dict(_SERVICES[tl.service_variant]),
    }
    if view.first_edd is not None and view.edd is not None:
        # Only while an estimate exists: adapters fall back to this service-standard date
        # (reference 4.3), which would resurrect an estimate the scenario withdrew.
        result["standardTransitTimeWindow"] = {
            "window": {"ends": offset_iso(local_at(view.first_edd.end, (0, 0), dest))}}
    if view.edd is not None and delivered is None:
        result["estimatedDeliveryTimeWindow"] = {"window": {
            "begins": offset_iso(local_at(view.edd.start, (9, 0), dest)),
            "ends": offset_iso(local_at(view.edd.end, (20, 0), dest))}}
    else:
        result["estimatedDeliveryTimeWindow"] = {"window": {}}
        if delivered is None:
            result["serviceCommitMessage"] = {
                "message": "No scheduled delivery date available at this time.",
                "type": "ESTIMATED_DELIVERY_DATE_UNAVAILABLE"}
    if latest.kind in _COMMIT and "serviceCommitMessage" not in result:
        result["serviceCommitMessage"] = {"message": row.text, "type": _COMMIT[latest.kind]}
    return result


def _unique_id(view: View) -> str:
    label = view.events[-1]
    return f"{label.at:%Y%j}{len(view.timeline.number):03d}~{view.timeline.number}~FX"


def track_result(view: View, *, detailed: bool = True, seed: int = 0) -> dict[str, Any]:
    """One ``completeTrackResults`` element for ``view`` (NOTFOUND when nothing is visible)."""
    tl = view.timeline
    if not view.found:
        return not_found_result(tl.number)
    results = [_result(view, _unique_id(view), detailed=detailed)]
    if "fedex_duplicate" in tl.quirks:
        # FedEx reuses numbers: an older, delivered shipment with the same number.
        old = build_timeline(tl.number, "fedex", Scenario.normal,
                             tl.start - timedelta(days=400), seed=seed,
                             quirks=frozenset()).view(view.now)
        if old.found:
            results.append(_result(old, _unique_id(old), detailed=detailed))
    return {"trackingNumber": tl.number, "trackResults": results}


def track_body(elements: list[dict[str, Any]], *, transaction_id: str,
               customer_transaction_id: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"transactionId": transaction_id}
    if customer_transaction_id is not None:
        body["customerTransactionId"] = customer_transaction_id
    body["output"] = {"completeTrackResults": elements}
    return body
