"""DHL Shipment Tracking - Unified response bodies for the sandbox (reference sections 5, 9.2).

Pure. ``shipments[]`` with ``status`` and ``events[]`` (newest first) in the ShipmentEvent
shape; only the five documented ``statusCode`` values, so out-for-delivery, attempts and pickup
are visible only in the ``status``/``description`` text (checklist row 12). Timestamps are
local wall time without an offset unless the number has the ``dhl_offsets`` quirk; label
(pre-transit) events have no location. Errors are RFC 7807 problem JSON.

The free-text phrases are invented (the reference lists only a few seen in data); they are
chosen so that the reference's phrase table (5.4) reads them as intended and never
collides (no "not delivered"/"not available" in an address exception, for example).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from carriers.model import ExceptionReason, Status
from carriers.sandbox.payloads.common import Row, local, local_at, naive_iso, offset_iso
from carriers.sandbox.places import Place
from carriers.sandbox.scenarios import Kind, SimEvent, View, dhl_service

__all__ = ["CODES", "expected", "not_found", "problem", "track_body"]

S, R = Status, ExceptionReason
# Row(code=statusCode, text=status, extra=description)
CODES: dict[Kind, Row] = {
    Kind.label_created: Row(code="pre-transit", text="SHIPMENT INFORMATION RECEIVED",
                            extra="Shipment information received", status=S.info_received),
    Kind.picked_up: Row(code="transit", text="PICKED UP", extra="Shipment picked up",
                        status=S.in_transit),
    Kind.departed: Row(code="transit", text="DEPARTED FACILITY",
                       extra="Shipment has departed from a DHL facility", status=S.in_transit),
    Kind.arrived: Row(code="transit", text="ARRIVED AT SORT FACILITY",
                      extra="Arrived at DHL Sort Facility", status=S.in_transit),
    Kind.arrived_destination: Row(code="transit", text="PROCESSED",
                                  extra="Processed at DHL delivery facility",
                                  status=S.in_transit),
    Kind.out_for_delivery: Row(code="transit", text="OUT FOR DELIVERY",
                               extra="Shipment is out with courier for delivery",
                               status=S.out_for_delivery),
    Kind.failed_attempt: Row(code="failure", text="DELIVERY ATTEMPTED",
                             extra="Delivery attempted - recipient not at home",
                             status=S.failed_attempt),
    Kind.available_for_pickup: Row(code="transit", text="READY FOR PICKUP",
                                   extra="The shipment is ready for pick-up at the DHL "
                                         "Service Point", status=S.available_for_pickup),
    Kind.picked_up_by_recipient: Row(code="delivered", text="DELIVERED",
                                     extra="Delivered - collected by the recipient at the "
                                           "DHL Service Point", status=S.delivered),
    Kind.delivered: Row(code="delivered", text="DELIVERED", extra="Delivered",
                        status=S.delivered),
    Kind.delivered_corrected: Row(code="delivered", text="DELIVERED - PARCEL LOCKER",
                                  extra="Delivered - delivery location corrected to a parcel "
                                        "locker", status=S.delivered),
    Kind.delay_weather: Row(code="failure", text="DELAY - ADVERSE WEATHER",
                            extra="Shipment delayed due to adverse weather conditions",
                            status=S.exception, reason=R.weather),
    Kind.delay_operational: Row(code="failure", text="DELAY",
                                extra="Shipment delayed for operational reasons",
                                status=S.exception, reason=R.other),
    Kind.address_exception: Row(code="failure", text="ADDRESS PROBLEM",
                                extra="The recipient address is incorrect or incomplete",
                                status=S.exception, reason=R.address),
    Kind.return_requested: Row(code="failure", text="RETURN TO SENDER",
                               extra="The shipment will be returned to the sender",
                               status=S.returned),
    Kind.returning: Row(code="transit", text="RETURN IN TRANSIT",
                        extra="The return shipment is on its way to the sender",
                        status=S.returned),
    Kind.returned_to_sender: Row(code="transit", text="RETURNED TO SENDER",
                                 extra="The shipment has been returned to the sender",
                                 status=S.returned),
}
_PRODUCTS = {"express": ("EXPRESS WORLDWIDE", "EXPRESS 12:00"),
             "ecommerce": ("DHL SM Parcel Plus Expedited", "DHL SM Parcel Expedited"),
             "parcel-de": ("DHL PAKET", "DHL PAKET")}


def expected(event: SimEvent) -> Row:
    return CODES[event.kind]


def problem(status: int, title: str, detail: str, instance: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"title": title, "status": status, "detail": detail}
    if instance is not None:
        body["instance"] = instance
    return body


def not_found(number: str) -> dict[str, Any]:
    """Unknown number: HTTP 404 problem JSON (reference 5.5 / 9.2)."""
    return problem(404, "No result found", "No shipment with given tracking number found.",
                   f"/shipments/{number}")


def _address(place: Place) -> dict[str, Any]:
    # US eCommerce data packs "City, ST, US" into addressLocality (no state field).
    locality = (f"{place.city.title()}, {place.state}, {place.country}" if place.country == "US"
                else place.city)
    return {"address": {"countryCode": place.country, "postalCode": place.postal,
                        "addressLocality": locality}}


def _stamp(view: View, when: datetime) -> str:
    return offset_iso(when) if "dhl_offsets" in view.timeline.quirks else naive_iso(when)


def _event(event: SimEvent, view: View) -> dict[str, Any]:
    row = CODES[event.kind]
    out: dict[str, Any] = {"timestamp": _stamp(view, local(event.at, event.place))}
    if event.kind is not Kind.label_created:
        out["location"] = _address(event.place)
    out.update(statusCode=row.code, status=row.text, description=row.extra)
    return out


def track_body(view: View) -> dict[str, Any]:
    """The 200 body for ``GET /track/shipments`` (caller sends 404 when not ``view.found``)."""
    tl = view.timeline
    route = tl.route
    service = dhl_service(tl.number)
    events = [_event(e, view) for e in view.events]
    shipment: dict[str, Any] = {
        "id": tl.number,
        "service": service,
        "origin": _address(route.origin),
        "destination": _address(route.destination),
        "status": events[0],
    }
    delivered = view.delivered
    if view.edd is not None and delivered is None:
        dest = route.destination
        shipment["estimatedTimeOfDelivery"] = _stamp(
            view, local_at(view.edd.end, (18, 0), dest))
        shipment["estimatedDeliveryTimeFrame"] = {
            "estimatedFrom": _stamp(view, local_at(view.edd.start, (9, 0), dest)),
            "estimatedThrough": _stamp(view, local_at(view.edd.end, (18, 0), dest))}
        shipment["estimatedTimeOfDeliveryRemark"] = "By End of Day"
    details: dict[str, Any] = {
        "product": {"productName": _PRODUCTS[service][tl.service_variant]},
        "totalNumberOfPieces": 1,
        "pieceIds": [f"JD01460000{tl.number[-10:]}"],
        "weight": {"value": 1.2, "unitText": "kg"},
    }
    if delivered is not None:
        details["proofOfDelivery"] = {
            "timestamp": _stamp(view, local(delivered.at, delivered.place)),
            "signatureUrl": f"https://proview.dhl.com/sandbox/signature/{tl.number}",
            "documentUrl": f"https://proview.dhl.com/sandbox/epod/{tl.number}",
            "signed": {"@type": "Person", "name": tl.signer}}
    shipment["details"] = details
    shipment["events"] = events
    return {"url": f"/shipments?trackingNumber={tl.number}&offset=0&limit=5",
            "shipments": [shipment]}
