"""USPS Tracking v3 (one detail object) and v3r2 (a 200/207 array) bodies to the normalised model.

Pure: standard library and ``carriers.model`` / ``carriers.errors`` / ``carriers.usps.statuses``;
no I/O, no clock. Field names are those of reference/carriers.md sections 6.3-6.5 (v3 spec 3.2.6
and a real v3 capture; v3r2 spec 3.2.2, which renames a few fields: ``eventZIPCode``,
``recipientName``, ``deliveryDateExpectation``). Any JSON value either parses or raises
:class:`CarrierPayloadError`. In a v3r2 array, a per-item failure is data: "not found" becomes a
``missing`` result, anything else (including an item this module cannot read) a problem.

Times: ``GMTTimestamp`` is the true UTC instant; ``eventTimestamp`` is the local wall time even
when USPS suffixes it with ``Z`` (reference 6.3), so its ``Z`` is ignored and ``GMTOffset``
(``-05:00``, ``-7:00`` or ``-420`` minutes) gives the offset.
"""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from carriers import detect, model, settle
from carriers.errors import CarrierPayloadError
from carriers.model import Status
from carriers.usps import statuses

__all__ = ["clean_html", "error_detail", "parse_gmt_offset", "parse_payload"]

CARRIER = "usps"
_SNIPPET = 200
_HH_MM = re.compile(r"^([+-]?)(\d{1,2}):(\d{2})$")
_NUMBER = re.compile(r"^([+-]?)(\d{1,4})$")
_SUP = re.compile(r"<sup>.*?</sup>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")

# ETA fields, best first (reference 6.3: expected, then predicted, then guaranteed).
_ETA_TOP = ("expectedDeliveryTimeStamp", "expectedDeliveryDate", "predictedDeliveryTimeStamp",
            "predictedDeliveryDate", "guaranteedDeliveryTimeStamp", "guaranteedDeliveryDate")
_ETA_V3R2 = ("expectedDeliveryDate", "predictedDeliveryDate", "guaranteedDeliveryDate")


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


def clean_html(value: Any) -> str | None:
    """``mailClass`` arrives HTML-ish ("Priority Mail<SUP>&reg;</SUP>"): drop marks and tags."""
    text = _text(value)
    if text is None:
        return None
    return html.unescape(_TAG.sub("", _SUP.sub("", text))).strip() or None


def parse_gmt_offset(value: Any) -> timezone | None:
    """``GMTOffset`` as a fixed zone: "-05:00", "-7:00", or "-420" (minutes); None if unusable.

    A bare number up to 14 is read as hours, anything larger as minutes (no zone is 15 h off).
    """
    text = _text(value)
    if text is None:
        return None
    if match := _HH_MM.match(text):
        sign, hours, minutes = match.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes))
    elif match := _NUMBER.match(text):
        sign, amount = match.groups()
        delta = timedelta(hours=int(amount)) if int(amount) <= 14 else timedelta(
            minutes=int(amount))
    else:
        return None
    if delta >= timedelta(hours=24):
        return None
    return timezone(-delta if sign == "-" else delta)


def _iso(raw: Any, payload: Any) -> datetime | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise _fail("timestamp is not a string", payload)
    try:
        return datetime.fromisoformat(raw.strip())
    except ValueError as exc:
        raise _fail(f"timestamp {raw[:40]!r} is not ISO 8601", payload) from exc


def _times(event: dict[str, Any], payload: Any) -> tuple[datetime, datetime | None, bool]:
    """(UTC instant, local time or None, offset_assumed) of one scan."""
    gmt = _iso(event.get("GMTTimestamp"), payload)
    wall = _iso(event.get("eventTimestamp"), payload)
    offset = parse_gmt_offset(event.get("GMTOffset"))
    if wall is not None and wall.utcoffset() == timedelta(0):
        wall = wall.replace(tzinfo=None)  # a "Z" on the local time is not UTC (reference 6.3)
    if wall is not None and wall.tzinfo is None and offset is not None:
        wall = wall.replace(tzinfo=offset)
    try:
        if gmt is not None:
            at = gmt.replace(tzinfo=UTC) if gmt.tzinfo is None else gmt.astimezone(UTC)
            if wall is None or wall.tzinfo is None:
                wall = at.astimezone(offset) if offset is not None else None
            return at, wall, False
        if wall is None:
            raise _fail("event without GMTTimestamp or eventTimestamp", payload)
        if wall.tzinfo is None:
            return wall.replace(tzinfo=UTC), None, True
        return wall.astimezone(UTC), wall, False
    except OverflowError as exc:
        raise _fail("timestamp out of range", payload) from exc


def _day(raw: Any) -> date | None:
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw.strip()).date()
    except ValueError:
        return None


def _events(detail: dict[str, Any], payload: Any
            ) -> tuple[list[model.TrackingEvent], list[str | None]]:
    """Events newest first, with the signer of each event (same order) for proof of delivery."""
    raw_events = detail.get("trackingEvents")
    if raw_events is not None and not isinstance(raw_events, list):
        raise _fail("trackingEvents is not a list", payload)
    staged = []
    for raw in raw_events or []:
        if not isinstance(raw, dict):
            raise _fail("tracking event is not an object", payload)
        at, local, assumed = _times(raw, payload)
        signer = _text(raw.get("name")) or _text(raw.get("recipientName")) or _text(
            raw.get("firm"))
        location = model.Location(
            city=_text(raw.get("eventCity")), state=_text(raw.get("eventState")),
            postal_code=_text(raw.get("eventZIP")) or _text(raw.get("eventZIPCode")),
            country=_text(raw.get("eventCountry")))
        staged.append((at, local, assumed, _text(raw.get("eventCode")) or "",
                       _text(raw.get("eventType")) or "", location, signer))
    # Oldest first (stable for equal instants, which keep USPS's newest-first order reversed)
    # so a no-news scan (e.g. "GC") can take the status the parcel already had; before any
    # scan that is "in transit": USPS only links receipts to mail it holds.
    staged.sort(key=lambda s: s[0], reverse=True)
    staged.reverse()
    events: list[model.TrackingEvent] = []
    signers: list[str | None] = []
    previous = Status.in_transit
    for at, local, assumed, code, text, location, signer in staged:
        status = statuses.event_status(code) or previous
        previous = status
        events.append(model.TrackingEvent(
            at=at, status=status, code=code, description=text, location=location,
            local_time=local, offset_assumed=assumed,
            exception_reason=statuses.exception_reason(status, code, text)))
        signers.append(signer)
    events.reverse()
    signers.reverse()
    return events, signers


def _estimate(detail: dict[str, Any]) -> model.DeliveryWindow | None:
    expectation = _obj(detail.get("deliveryDateExpectation"))
    candidates = [detail.get(k) for k in _ETA_TOP] + [expectation.get(k) for k in _ETA_V3R2]
    for raw in candidates:
        day = _day(raw)
        if day is not None:
            return model.DeliveryWindow.day(day)
    return None


def _detail(detail: dict[str, Any], payload: Any) -> model.TrackingResult:
    number = _text(detail.get("trackingNumber"))
    if number is None:
        raise _fail("tracking detail without trackingNumber", payload)
    events, signers = _events(detail, payload)
    deciding = settle.deciding_event(events, no_news=statuses.NO_STATUS_CHANGE)
    status = deciding.status if deciding else Status.unknown
    if status is Status.unknown:
        # The newest scan's code is not ours (or there is no scan): USPS's category is the
        # reference's second discriminator (section 7).
        status = statuses.category_status(_text(detail.get("statusCategory")) or "") or status
    delivered_at = signed_by = None
    if deciding is not None and deciding.status is Status.delivered:
        delivered_at = deciding.at
        signed_by = next(s for e, s in zip(events, signers, strict=True) if e is deciding)
    return model.TrackingResult(
        carrier=CARRIER, tracking_number=number, status=status,
        status_detail=_text(detail.get("status")) or (deciding.description if deciding else ""),
        estimated_delivery=_estimate(detail), delivered_at=delivered_at, signed_by=signed_by,
        service=clean_html(detail.get("mailClass")), events=tuple(events),
        exception_reason=deciding.exception_reason if deciding else None,
        unknown_codes=tuple(sorted({e.code for e in events if e.status is Status.unknown})),
    )


def error_detail(payload: Any) -> str:
    """The message of USPS's error envelope (``{"apiVersion", "error": {...}}``), most specific
    first; ``CarrierPayloadError`` if the body is not one."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        raise _fail("not a USPS error envelope", payload)
    items = error.get("errors")
    first = _obj(items[0]) if isinstance(items, list) and items else {}
    return (_text(first.get("detail")) or _text(first.get("title"))
            or _text(error.get("message")) or f"error {error.get('code')!s:.20}")


def _batch(items: list[Any], payload: Any) -> model.BatchResult:
    results: list[model.TrackingResult] = []
    problems: dict[str, str] = {}
    for item in items:
        number = _text(item.get("trackingNumber")) if isinstance(item, dict) else None
        if number is None or not isinstance(item, dict):
            raise _fail("v3r2 item without trackingNumber", payload)
        code = item.get("statusCode", "200")
        code = str(code) if isinstance(code, (str, int)) and not isinstance(code, bool) else "?"
        try:
            if code == "200":
                results.append(_detail(item, item))
            elif code == "404":
                results.append(model.TrackingResult.missing(CARRIER, number, error_detail(item)))
            else:
                problems[number] = f"HTTP {code}: {error_detail(item)}"
        except CarrierPayloadError as exc:
            problems[number] = f"unreadable item: {exc.message}"
    return model.BatchResult(results=tuple(results), problems=problems)


def parse_payload(payload: Any, *, now: datetime) -> model.BatchResult:
    """Normalise one 200 body of v3 ``GET /tracking/v3/tracking/{n}?expand=DETAIL`` (an object)
    or one 200/207 body of v3r2 ``POST /tracking/v3r2/tracking`` (an array).

    ``now`` is accepted for the common parser signature; USPS bodies carry true UTC instants
    and need no clock. Raises ``CarrierPayloadError`` for anything that is not a USPS body.
    """
    del now  # part of the shared signature; nothing here is relative to the current time
    if isinstance(payload, list):
        return _batch(payload, payload)
    if isinstance(payload, dict) and "trackingNumber" in payload:
        return model.BatchResult(results=(_detail(payload, payload),))
    raise _fail("not a USPS tracking response", payload)


MAX_API_LENGTH = 34


def api_number(number: str) -> str:
    """``number`` without a leading ``420`` + ZIP5 or ZIP5+4 routing prefix (reference 8.4).

    Only numbers longer than the API's 34-character limit are changed (420 + ZIP+4 + a 26-digit
    IMpb), and only when what remains is a USPS number whose check digit passes; shorter
    routed numbers are sent as given, which the API accepts.
    """
    if not number.startswith("420") or len(number) <= MAX_API_LENGTH:
        return number
    for core in (number[8:], number[12:]):
        if any(c.carrier == "usps" and c.check_digit_ok for c in detect.detect(core)):
            return core
    return number
