"""Build a :class:`render.NoticeContext` for one outbox row. Pure.

The context shows the *current* order and shipment (status, EDD, latest carrier event), so a
notice sent after a retry says what is true when it goes out, plus what only the triggering
change knew, from the row's payload (the new and old EDD of a delay, the expected ship date
of a backorder, the customer's dispute text). No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date
from typing import Any

from carriers import links
from carriers.model import TrackingEvent
from notifier import models
from notifier.render import NoticeContext, ShipmentView

__all__ = ["CARRIER_NAMES", "build_context", "shipment_view"]

CARRIER_NAMES = {"ups": "UPS", "fedex": "FedEx", "dhl": "DHL", "usps": "USPS"}


def shipment_view(shipment: models.Shipment, last_event: TrackingEvent | None = None
                  ) -> ShipmentView:
    """The parcel as templates see it (tracking link from ``carriers.links``)."""
    try:
        url = links.tracking_url(shipment.carrier, shipment.tracking_number)
    except ValueError:
        url = ""  # an unknown carrier or empty number: the template shows no link
    location = ""
    if last_event is not None:
        loc = last_event.location
        location = ", ".join(p for p in (loc.city, loc.state, loc.country) if p)
    return ShipmentView(
        carrier=shipment.carrier,
        carrier_name=CARRIER_NAMES.get(shipment.carrier, shipment.carrier.upper()),
        tracking_number=shipment.tracking_number, tracking_url=url,
        status=shipment.status.value,
        edd_start=shipment.current_edd.start if shipment.current_edd else None,
        edd_end=shipment.current_edd.end if shipment.current_edd else None,
        delivered_at=shipment.delivered_at, signed_by=shipment.signed_by,
        exception_reason=shipment.exception_reason.value if shipment.exception_reason
        else None,
        status_detail=shipment.status_detail,
        last_event_text=last_event.description if last_event is not None else "",
        last_event_at=last_event.at if last_event is not None else shipment.last_event_at,
        last_event_location=location)


def build_context(order: models.Order, *, trigger: str, payload: Mapping[str, Any],
                  shipment_id: int | None, last_event: TrackingEvent | None = None,
                  shop_name: str, support_email: str, support_url: str,
                  unsubscribe_url: str | None = None,
                  order_status_url: str | None = None) -> NoticeContext:
    """The context for ``trigger`` about ``order`` (and its shipment ``shipment_id``)."""
    shipment = next((s for s in order.shipments if s.id == shipment_id), None)
    view = shipment_view(shipment, last_event) if shipment is not None else None
    if view is not None and view.exception_reason is None and payload.get("exception_reason"):
        # The parcel moved on since; the notice is still about the exception that happened.
        view = replace(view, exception_reason=str(payload["exception_reason"]))
    customer = order.customer
    new_start = _date(payload.get("new_edd_start")) or _date(payload.get("new_edd_end"))
    return NoticeContext(
        trigger=trigger, order_id=order.id, customer_name=customer.name,
        customer_email=customer.email, locale=customer.locale, tz=customer.tz,
        shop_name=shop_name, support_email=support_email, support_url=support_url,
        shipment=view, shipments_total=len(order.shipments),
        new_edd_start=new_start if trigger == "delayed" else None,
        old_edd_end=_date(payload.get("old_edd_end")) if trigger == "delayed" else None,
        expected_ship_date=(_date(payload.get("expected_ship_date"))
                            or order.expected_ship_date) if trigger == "backordered" else None,
        dispute_reason=str(payload.get("dispute_reason") or ""),
        unsubscribe_url=unsubscribe_url, order_status_url=order_status_url)


def _date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    if not value:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None
