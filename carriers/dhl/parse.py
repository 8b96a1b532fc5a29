"""DHL Unified Tracking (UTAPI) response bodies to the normalised model.

Pure: standard library and ``carriers.model`` / ``carriers.errors`` / ``carriers.dhl.statuses``;
no I/O, no clock (``now`` is an argument). Field names are those of reference/carriers.md
section 5.3 (DHL "Shipment Tracking API" OpenAPI 1.4.1 as generated in trieb-work/schemabase).
Any JSON value either parses or raises :class:`CarrierPayloadError`; nothing else escapes.

DHL timestamps are often local wall times *without* an offset. They are resolved with a small
table of single-zone countries (event location, else the shipment destination, as the
reference suggests), else taken as UTC; both cases set ``offset_assumed``.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from carriers import model, settle
from carriers.dhl import statuses
from carriers.errors import CarrierPayloadError
from carriers.model import Status

__all__ = ["COUNTRY_ZONES", "not_found_detail", "parse_payload"]

CARRIER = "dhl"

# Countries that use one time zone everywhere (ISO 3166-1 alpha-2 -> IANA zone). Countries with
# several zones (US, CA, BR, RU, AU, MX, ES with the Canaries, PT with the Azores...) are left
# out on purpose: guessing one zone there would be wrong by hours, UTC-and-flagged is honest.
COUNTRY_ZONES: dict[str, str] = {
    "AE": "Asia/Dubai", "AT": "Europe/Vienna", "BE": "Europe/Brussels", "BG": "Europe/Sofia",
    "CH": "Europe/Zurich", "CN": "Asia/Shanghai", "CZ": "Europe/Prague", "DE": "Europe/Berlin",
    "DK": "Europe/Copenhagen", "EE": "Europe/Tallinn", "FI": "Europe/Helsinki",
    "FR": "Europe/Paris", "GB": "Europe/London", "GR": "Europe/Athens", "HK": "Asia/Hong_Kong",
    "HR": "Europe/Zagreb", "HU": "Europe/Budapest", "IE": "Europe/Dublin", "IL": "Asia/Jerusalem",
    "IN": "Asia/Kolkata", "IT": "Europe/Rome", "JP": "Asia/Tokyo", "KR": "Asia/Seoul",
    "LT": "Europe/Vilnius", "LU": "Europe/Luxembourg", "LV": "Europe/Riga",
    "MY": "Asia/Kuala_Lumpur", "NL": "Europe/Amsterdam", "NO": "Europe/Oslo", "PH": "Asia/Manila",
    "PL": "Europe/Warsaw", "RO": "Europe/Bucharest", "SE": "Europe/Stockholm",
    "SG": "Asia/Singapore", "SI": "Europe/Ljubljana", "SK": "Europe/Bratislava",
    "TH": "Asia/Bangkok", "TR": "Europe/Istanbul", "TW": "Asia/Taipei", "VN": "Asia/Ho_Chi_Minh",
    "ZA": "Africa/Johannesburg",
}

_SNIPPET = 200


def _fail(message: str, payload: Any) -> CarrierPayloadError:
    try:
        snippet = json.dumps(payload)[:_SNIPPET]
    except (TypeError, ValueError):
        snippet = repr(payload)[:_SNIPPET]
    return CarrierPayloadError(CARRIER, message, snippet=snippet)


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def _location(address: dict[str, Any]) -> model.Location:
    """``addressLocality`` is free text: US eCommerce writes "Henderson, NV, US" (no state)."""
    locality = _text(address.get("addressLocality"))
    country = _text(address.get("countryCode"))
    city = state = None
    if locality:
        parts = [p.strip() for p in locality.split(",") if p.strip()]
        city = parts[0] if parts else None
        if len(parts) >= 2 and 2 <= len(parts[1]) <= 3 and parts[1].isalpha():
            state = parts[1].upper()
    return model.Location(city=city, state=state, postal_code=_text(address.get("postalCode")),
                          country=country.upper() if country else None)


def _instant(raw: Any, country: str | None, payload: Any
             ) -> tuple[datetime, datetime | None, bool]:
    """(UTC instant, local time or None, offset_assumed) for one DHL timestamp string."""
    if not isinstance(raw, str):
        raise _fail("timestamp missing or not a string", payload)
    try:
        parsed = datetime.fromisoformat(raw.strip())
        if parsed.tzinfo is not None:
            return parsed.astimezone(UTC), parsed, False
        zone_name = COUNTRY_ZONES.get(country or "")
        if zone_name is None:
            return parsed.replace(tzinfo=UTC), None, True
        local = parsed.replace(tzinfo=ZoneInfo(zone_name))
        return local.astimezone(UTC), local, True
    except (ValueError, OverflowError) as exc:
        raise _fail(f"timestamp {raw[:40]!r} is not ISO 8601", payload) from exc


def _day(raw: Any) -> date | None:
    """The local calendar date written in an ETA string (its own wall date, not converted)."""
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw.strip()).date()
    except ValueError:
        return None


def _event(raw: Any, fallback_country: str | None, payload: Any) -> model.TrackingEvent:
    if not isinstance(raw, dict):
        raise _fail("event is not an object", payload)
    event: dict[str, Any] = raw
    location = _location(_obj(_obj(event.get("location")).get("address")))
    at, local, assumed = _instant(event.get("timestamp"), location.country or fallback_country,
                                  payload)
    code = _text(event.get("statusCode")) or ""
    title = _text(event.get("status")) or ""
    description = _text(event.get("description")) or title
    text = f"{title} {description}"
    status = statuses.normalise(code, text)
    return model.TrackingEvent(at=at, status=status, code=code, description=description,
                               location=location, local_time=local, offset_assumed=assumed,
                               exception_reason=statuses.exception_reason(status, text))


def _event_key(raw: Any) -> str:
    fields = ("timestamp", "statusCode", "status", "description")
    return repr([raw.get(k) for k in fields]) if isinstance(raw, dict) else repr(raw)


def _estimate(shipment: dict[str, Any]) -> model.DeliveryWindow | None:
    frame = _obj(shipment.get("estimatedDeliveryTimeFrame"))
    start, end = _day(frame.get("estimatedFrom")), _day(frame.get("estimatedThrough"))
    if start and end and start <= end:
        return model.DeliveryWindow(start=start, end=end)
    single = _day(shipment.get("estimatedTimeOfDelivery")) or start or end
    return model.DeliveryWindow.day(single) if single else None


def _signer(proof: dict[str, Any]) -> str | None:
    signed = _obj(proof.get("signed"))
    name = _text(signed.get("name"))
    if name:
        return name
    parts = [p for p in (_text(signed.get("givenName")), _text(signed.get("familyName"))) if p]
    return " ".join(parts) or None


def _shipment(raw: Any, payload: Any, number: str | None) -> model.TrackingResult:
    if not isinstance(raw, dict):
        raise _fail("shipment is not an object", payload)
    shipment: dict[str, Any] = raw
    ident = shipment.get("id")
    # The spec says string; karrio's sample has a JSON number (reference 5.3).
    if isinstance(ident, int) and not isinstance(ident, bool):
        ident = str(ident)
    tracking = _text(ident) or number
    if not tracking:
        raise _fail("shipment without id", payload)
    destination = _location(_obj(_obj(shipment.get("destination")).get("address")))
    raw_events = shipment.get("events")
    if raw_events is not None and not isinstance(raw_events, list):
        raise _fail("events is not a list", payload)
    candidates = list(raw_events or [])
    latest = shipment.get("status")
    # ``status`` repeats the newest event; keep it only when ``events`` does not already have it
    # (a shipment may also come with ``status`` alone).
    if (isinstance(latest, dict) and latest.get("timestamp") is not None
            and _event_key(latest) not in {_event_key(e) for e in candidates}):
        candidates.append(latest)
    events = sorted((_event(e, destination.country, payload) for e in candidates),
                    key=lambda e: e.at, reverse=True)
    deciding = settle.deciding_event(events)
    status = deciding.status if deciding else Status.unknown
    details = _obj(shipment.get("details"))
    proof = _obj(details.get("proofOfDelivery"))
    delivered_at = None
    if deciding is not None and status is Status.delivered:
        delivered_at = deciding.at
        if proof.get("timestamp") is not None:
            delivered_at = _instant(proof.get("timestamp"), destination.country, payload)[0]
    return model.TrackingResult(
        carrier=CARRIER, tracking_number=tracking, status=status,
        status_detail=deciding.description if deciding else "",
        estimated_delivery=_estimate(shipment),
        delivered_at=delivered_at,
        signed_by=_signer(proof),
        service=_text(_obj(details.get("product")).get("productName"))
        or _text(shipment.get("service")),
        events=tuple(events),
        exception_reason=deciding.exception_reason if deciding else None,
        unknown_codes=tuple(sorted({e.code for e in events if e.status is Status.unknown})),
    )


def parse_payload(payload: Any, *, now: datetime, number: str | None = None) -> model.BatchResult:
    """Normalise one 200 body of ``GET /track/shipments``.

    ``number`` is the tracking number that was asked for: an empty ``shipments`` list then means
    "not found", and a shipment without ``id`` takes it. ``now`` is accepted for the common
    parser signature; DHL bodies need no clock. Raises ``CarrierPayloadError`` for anything that
    is not a DHL tracking body.
    """
    del now  # part of the shared signature; nothing here is relative to the current time
    if not isinstance(payload, dict) or not isinstance(payload.get("shipments"), list):
        raise _fail("not a DHL tracking response (no shipments list)", payload)
    results = tuple(_shipment(s, payload, number) for s in payload["shipments"])
    if not results and number:
        results = (model.TrackingResult.missing(CARRIER, number, "no shipments returned"),)
    return model.BatchResult(results=results)


def not_found_detail(payload: Any) -> str:
    """The human detail of DHL's RFC 7807 404 body; ``CarrierPayloadError`` if it is not one."""
    if isinstance(payload, dict) and ("title" in payload or "detail" in payload):
        detail = _text(payload.get("detail")) or _text(payload.get("title"))
        return detail or "not found"
    raise _fail("404 body is not a problem-detail document", payload)
