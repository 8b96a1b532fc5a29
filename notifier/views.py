"""Presentation of stored data for the CLI and the API (text and JSON). Pure."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from carriers.model import TrackingEvent, TrackingResult
from notifier import models
from notifier.store.base import OrderDetails

__all__ = ["event_json", "order_details_json", "order_details_text", "tracking_result_json"]


def _iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value.isoformat()


def event_json(event: TrackingEvent) -> dict[str, Any]:
    loc = event.location
    return {
        "at": _iso(event.at),
        "local_time": event.local_time.isoformat() if event.local_time else None,
        "status": event.status.value,
        "code": event.code,
        "description": event.description,
        "location": {"city": loc.city, "state": loc.state, "postal_code": loc.postal_code,
                     "country": loc.country},
    }


def tracking_result_json(result: TrackingResult) -> dict[str, Any]:
    """The ``notifier parse`` / ``notifier track`` output object (events newest first)."""
    edd = result.estimated_delivery
    return {
        "carrier": result.carrier,
        "tracking_number": result.tracking_number,
        "status": result.status.value,
        "status_detail": result.status_detail,
        "estimated_delivery": None if edd is None else {"start": edd.start.isoformat(),
                                                        "end": edd.end.isoformat()},
        "delivered_at": _iso(result.delivered_at),
        "signed_by": result.signed_by,
        "service": result.service,
        "events": [event_json(e) for e in sorted(result.events, key=lambda e: e.at,
                                                 reverse=True)],
    }


def _shipment_json(s: models.Shipment, events: list[TrackingEvent]) -> dict[str, Any]:
    return {
        "id": s.id, "carrier": s.carrier, "tracking_number": s.tracking_number,
        "status": s.status.value, "status_detail": s.status_detail,
        "exception_reason": s.exception_reason.value if s.exception_reason else None,
        "first_edd": None if s.first_edd is None else {"start": _iso(s.first_edd.start),
                                                       "end": _iso(s.first_edd.end)},
        "current_edd": None if s.current_edd is None else {"start": _iso(s.current_edd.start),
                                                           "end": _iso(s.current_edd.end)},
        "delivered_at": _iso(s.delivered_at), "signed_by": s.signed_by,
        "last_event_at": _iso(s.last_event_at), "next_poll_at": _iso(s.next_poll_at),
        "last_success_at": _iso(s.last_success_at), "polls": s.polls,
        "events": [event_json(e) for e in events],
    }


def order_details_json(d: OrderDetails) -> dict[str, Any]:
    o = d.order
    return {
        "order": o.id,
        "status": models.derive_order_status(o.oms_status, o.shipments),
        "oms_status": o.oms_status.value,
        "expected_ship_date": _iso(o.expected_ship_date),
        "promised_date": _iso(o.promised_date),
        "customer": {"email": o.customer.email, "name": o.customer.name,
                     "locale": o.customer.locale, "tz": o.customer.tz,
                     "channels": [c.value for c in o.customer.channels]},
        "shipments": [_shipment_json(s, d.events.get(s.id or 0, [])) for s in o.shipments],
        "anomalies": [{"id": a.id, "kind": a.kind.value, "shipment_id": a.shipment_id,
                       "detail": a.detail, "opened_at": _iso(a.opened_at),
                       "resolved_at": _iso(a.resolved_at), "resolution": a.resolution}
                      for a in d.anomalies],
        "disputes": [{"id": x.id, "shipment_id": x.shipment_id, "reason": x.reason,
                      "opened_at": _iso(x.opened_at), "resolved_at": _iso(x.resolved_at),
                      "resolution": x.resolution.value if x.resolution else None}
                     for x in d.disputes],
        "notifications": [{"id": n.id, "trigger": n.trigger, "channel": n.channel.value,
                           "status": n.status.value, "attempts": n.attempts,
                           "created_at": _iso(n.created_at), "sent_at": _iso(n.sent_at),
                           "last_error": n.last_error}
                          for n in d.notifications],
    }


def order_details_text(d: OrderDetails) -> str:
    data = order_details_json(d)
    c = data["customer"]
    lines = [
        f"Order {data['order']}: {data['status']}  (OMS: {data['oms_status']})",
        f"  customer   {c['name'] or '-'} <{c['email']}>  locale {c['locale']}  tz {c['tz']}",
    ]
    if data["promised_date"]:
        lines.append(f"  promised   {data['promised_date']}")
    if data["expected_ship_date"]:
        lines.append(f"  ships      {data['expected_ship_date']} (expected)")
    for s in data["shipments"]:
        edd = s["current_edd"]
        edd_text = "" if not edd else (f"  EDD {edd['start']}" if edd["start"] == edd["end"]
                                       else f"  EDD {edd['start']}..{edd['end']}")
        lines.append(f"  shipment   {s['carrier']} {s['tracking_number']}: {s['status']}"
                     f"{edd_text}")
        for e in s["events"][:10]:
            where = ", ".join(x for x in (e["location"]["city"], e["location"]["country"]) if x)
            lines.append(f"    {e['at']}  {e['status']:<20} {e['description']}"
                         f"{'  (' + where + ')' if where else ''}")
        if len(s["events"]) > 10:
            lines.append(f"    ... {len(s['events']) - 10} older events")
    for a in data["anomalies"]:
        state = f"closed {a['resolved_at']} ({a['resolution']})" if a["resolved_at"] else "OPEN"
        lines.append(f"  anomaly    {a['kind']}: {a['detail']}  opened {a['opened_at']}  {state}")
    for x in data["disputes"]:
        lines.append(f"  dispute    #{x['id']}: {x['reason']}  "
                     f"{'resolved: ' + x['resolution'] if x['resolution'] else 'OPEN'}")
    for n in data["notifications"]:
        lines.append(f"  notice     {n['trigger']} via {n['channel']}: {n['status']}"
                     f"{' (' + n['last_error'] + ')' if n['last_error'] else ''}")
    return "\n".join(lines)
