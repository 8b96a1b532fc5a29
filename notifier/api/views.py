"""JSON shapes of the API's answers. Pure.

``track_json`` is what a *customer* may see about their own order: the derived status, each
shipment with its carrier's public tracking link, the estimated delivery and the scans. It
leaves out everything internal (anomalies, notifications, polling state, the e-mail).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from carriers.links import tracking_url
from notifier import models
from notifier.store.base import OrderDetails

__all__ = ["anomaly_json", "dispute_json", "track_json"]


def _iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value.isoformat()


def _link(carrier: str, number: str) -> str | None:
    try:
        return tracking_url(carrier, number)
    except ValueError:
        return None


def track_json(details: OrderDetails) -> dict[str, Any]:
    order = details.order
    shipments = []
    for s in order.shipments:
        edd = s.current_edd
        events = sorted(details.events.get(s.id or 0, []), key=lambda e: e.at, reverse=True)
        shipments.append({
            "carrier": s.carrier,
            "tracking_number": s.tracking_number,
            "tracking_url": _link(s.carrier, s.tracking_number),
            "status": s.status.value,
            "status_detail": s.status_detail,
            "estimated_delivery": None if edd is None else {"start": _iso(edd.start),
                                                            "end": _iso(edd.end)},
            "delivered_at": _iso(s.delivered_at),
            "events": [{"at": _iso(e.at), "status": e.status.value,
                        "description": e.description,
                        "location": {"city": e.location.city, "state": e.location.state,
                                     "country": e.location.country}}
                       for e in events],
        })
    return {
        "order": order.id,
        "status": models.derive_order_status(order.oms_status, order.shipments),
        "promised_date": _iso(order.promised_date),
        "expected_ship_date": _iso(order.expected_ship_date),
        "shipments": shipments,
    }


def dispute_json(d: models.Dispute) -> dict[str, Any]:
    return {"id": d.id, "order": d.order_id, "shipment_id": d.shipment_id, "reason": d.reason,
            "opened_at": _iso(d.opened_at), "resolved_at": _iso(d.resolved_at),
            "resolution": d.resolution.value if d.resolution else None, "note": d.note}


def anomaly_json(a: models.Anomaly) -> dict[str, Any]:
    return {"id": a.id, "kind": a.kind.value, "order": a.order_id,
            "shipment_id": a.shipment_id, "carrier": a.carrier, "detail": a.detail,
            "opened_at": _iso(a.opened_at), "last_seen_at": _iso(a.last_seen_at),
            "resolved_at": _iso(a.resolved_at), "resolution": a.resolution}
