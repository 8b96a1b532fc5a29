"""UPS Track API v1 response parser: one ``trackResponse`` body to a normalised ``BatchResult``.

Pure: standard library and ``carriers.model``/``carriers.errors`` only; no I/O, no clock (``now``
is an argument). Never raises anything but ``CarrierPayloadError`` for any JSON input: a body
that is not a UPS track response is a payload error, while a malformed record for one number
becomes ``BatchResult.problems[number]``.

Field names and rules: /work/shared/reference/carriers.md §3.3-3.5 and §7.
API documentation: https://developer.ups.com/api/reference?loc=en_US#tag/Tracking
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from carriers import errors, settle
from carriers.model import (
    BatchResult,
    DeliveryWindow,
    ExceptionReason,
    Location,
    Status,
    TrackingResult,
)
from carriers.payload import as_dict as _dict
from carriers.payload import as_list as _list
from carriers.payload import snippet as _snippet
from carriers.payload import text as _text
from carriers.ups import statuses

__all__ = ["CARRIER", "parse_error_envelope", "parse_payload"]

CARRIER = "ups"
_OFFSET_RE = re.compile(r"^([+-])(\d{1,2})[:.]?(\d{2})$", re.ASCII)


class _BadRecord(ValueError):
    """One number's record is malformed: reported in ``problems``, never raised out."""


def parse_payload(payload: Any, *, now: datetime) -> BatchResult:
    """Normalise one UPS ``GET /api/track/v1/details/{n}`` 200 body.

    Raises ``CarrierPayloadError`` when ``payload`` is not a UPS track response (including the
    UPS error envelope, which carries no tracking number to attach it to).
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("trackResponse"), dict):
        detail = _envelope_errors(payload)
        raise errors.CarrierPayloadError(
            CARRIER, f"UPS error response: {detail}" if detail else "not a UPS track response",
            snippet=_snippet(payload))
    shipments = payload["trackResponse"].get("shipment")
    if not isinstance(shipments, list):
        raise errors.CarrierPayloadError(CARRIER, "trackResponse.shipment is not a list",
                                         snippet=_snippet(payload))
    results: list[TrackingResult] = []
    problems: dict[str, str] = {}
    for shipment in shipments:
        if not isinstance(shipment, dict):
            raise errors.CarrierPayloadError(CARRIER, "shipment is not an object",
                                             snippet=_snippet(shipment))
        _shipment(shipment, now, results, problems)
    return BatchResult(results=tuple(results), problems=problems)


def parse_error_envelope(payload: Any, *, number: str, http_status: int) -> BatchResult | None:
    """The per-number meaning of a UPS 4xx error envelope, or None when it has none.

    404 "Tracking number information not found" (documented, though UPS usually answers
    200 + TW0001) is a ``missing`` result; an "Invalid inquiry number" code is a problem for
    that number. Anything else is for the caller to raise.
    """
    codes = _envelope_codes(payload)
    if not codes:
        return None
    text = "; ".join(f"{code}: {message}" for code, message in codes)
    if http_status == 404:
        return BatchResult(results=(TrackingResult.missing(CARRIER, number, text),))
    if any(code in statuses.INVALID_NUMBER_CODES for code, _ in codes):
        return BatchResult(problems={number: text})
    return None


def _shipment(shipment: dict[str, Any], now: datetime, results: list[TrackingResult],
              problems: dict[str, str]) -> None:
    packages = [p for p in _list(shipment.get("package")) if isinstance(p, dict)]
    number = _text(shipment.get("inquiryNumber"))
    if number is None and packages:
        number = _text(packages[0].get("trackingNumber"))
    if number is None:
        raise errors.CarrierPayloadError(CARRIER, "shipment without inquiryNumber",
                                         snippet=_snippet(shipment))
    if not packages:
        warnings = [(_text(w.get("code")) or "", _text(w.get("message")) or "")
                    for w in _list(shipment.get("warnings")) if isinstance(w, dict)]
        text = "; ".join(f"{c}: {m}" for c, m in warnings) or "no package in response"
        if any(code in statuses.NOT_FOUND_WARNINGS for code, _ in warnings):
            results.append(TrackingResult.missing(CARRIER, number, text))
        else:
            problems[number] = text
        return
    for package in packages:
        own = _text(package.get("trackingNumber"))
        # The caller knows the number it asked for: the (lead) package answers to it.
        key = number if len(packages) == 1 or own is None or _same(own, number) else own
        try:
            results.append(_package(package, key, now))
        except _BadRecord as exc:
            problems[key] = f"malformed UPS package record: {exc}"


def _package(pkg: dict[str, Any], number: str, now: datetime) -> TrackingResult:
    # UPS lists newest first; the walk goes oldest to newest to carry "no change" statuses
    # forward (a first scan without one takes its type letter's status, see ``_scan``).
    walk = settle.walk_scans([s for s in (_scan(a, now) for a in _list(pkg.get("activity"))
                                          if isinstance(a, dict)) if s is not None])
    events, status, deciding = walk.events, walk.status, walk.deciding
    unknown = sorted({e.code for e in events if e.status is Status.unknown})

    current = _dict(pkg.get("currentStatus"))
    current_code = _status_code(_text(current.get("code")))
    current_status = statuses.CURRENT_STATUS_CODES.get(current_code or "")
    if status is None or status is Status.unknown:
        if current_status is not None and current_status is not Status.unknown:
            status, deciding = current_status, None
        elif status is None:
            status = Status.pending
            if current_code:
                status = Status.unknown
                unknown = sorted({*unknown, current_code})
    elif current_status is Status.delivered and status not in (Status.delivered,
                                                               Status.returned):
        # karrio's rule: currentStatus 011 means delivered even if no "D" activity came back.
        status, deciding = Status.delivered, None

    detail = deciding.description if deciding else (_text(current.get("description")) or "")
    reason = deciding.reason if deciding else None
    if status is Status.exception and reason is None:
        reason = ExceptionReason.other
    delivered_at = None
    if status is Status.delivered:
        delivered_at = deciding.at if deciding else _delivered_at(pkg)
    return TrackingResult(
        carrier=CARRIER, tracking_number=number, status=status, status_detail=detail,
        estimated_delivery=_estimated_delivery(pkg),
        delivered_at=delivered_at,
        signed_by=_text(_dict(pkg.get("deliveryInformation")).get("receivedBy")),
        service=_text(_dict(pkg.get("service")).get("description"))
        or _text(_dict(pkg.get("service")).get("code")),
        events=tuple(events),
        exception_reason=reason if status in settle.PROBLEM_STATUSES else None,
        unknown_codes=tuple(unknown))


def _scan(activity: dict[str, Any], now: datetime) -> settle.Scan | None:
    raw = _dict(activity.get("status"))
    status_code = _status_code(_text(raw.get("statusCode")))
    letter = (_text(raw.get("type")) or "").upper()
    code2 = (_text(raw.get("code")) or "").upper()
    if status_code in statuses.IGNORED_STATUS_CODES:
        return None
    location = _location(_dict(activity.get("location")))
    at, local_time, assumed = _when(activity, location)
    description = _text(raw.get("description")) or ""

    status: Status | None
    if status_code in statuses.LOADED_ON_VEHICLE_CODES or (
            status_code is None and code2 == statuses.LOADED_ON_VEHICLE_ACTIVITY):
        # Loaded on the vehicle counts as out for delivery only on the day, at that place.
        zone = local_time.tzinfo if local_time is not None else UTC
        today = now.astimezone(zone).date()
        status = (Status.out_for_delivery if (local_time or at).date() == today
                  else Status.in_transit)
    elif status_code in statuses.STATUS_CODES:
        status = statuses.STATUS_CODES[status_code]
    elif code2 in statuses.ACTIVITY_CODES:
        status = statuses.ACTIVITY_CODES[code2]
    elif letter in statuses.TYPE_CODES:
        status = statuses.TYPE_CODES[letter]
    else:
        status = Status.unknown
    fallback = statuses.TYPE_CODES.get(letter) or Status.pending
    reason = statuses.REASON_BY_STATUS_CODE.get(status_code or "") or _reason_from_text(
        description)
    return settle.Scan(at=at, local_time=local_time, offset_assumed=assumed, status=status,
                       fallback=fallback, code=status_code or code2 or letter or "?",
                       description=description, location=location, reason=reason)


def _when(activity: dict[str, Any], location: Location) -> tuple[datetime, datetime | None, bool]:
    """(UTC instant, local wall time with offset, offset assumed?) for one activity."""
    try:
        local = _datetime(activity.get("date"), activity.get("time"))
        gmt = _datetime(activity.get("gmtDate"), activity.get("gmtTime"))
        offset = _offset(activity.get("gmtOffset"))
        if gmt is not None:
            at = gmt.replace(tzinfo=UTC)
            if offset is None and local is not None:
                delta = local - gmt
                if abs(delta) < timedelta(hours=18):
                    offset = timezone(timedelta(minutes=round(delta.total_seconds() / 900) * 15))
            if offset is None:
                return at, None, False
            return at, (local.replace(tzinfo=offset) if local else at.astimezone(offset)), False
        if local is None:
            raise _BadRecord("activity without date/time")
        if offset is not None:
            aware = local.replace(tzinfo=offset)
            return aware.astimezone(UTC), aware, False
        # No GMT fields and no offset (older responses): the zone of the activity's state.
        zone: tzinfo = UTC
        if (location.country or "US") == "US" and location.state in statuses.US_STATE_ZONES:
            zone = ZoneInfo(statuses.US_STATE_ZONES[location.state])
        aware = local.replace(tzinfo=zone)
        return aware.astimezone(UTC), aware, True
    except (ValueError, OverflowError) as exc:
        raise _BadRecord(f"bad activity time: {exc}") from exc


def _estimated_delivery(pkg: dict[str, Any]) -> DeliveryWindow | None:
    """Rescheduled date (RDD) first, else scheduled (SDD): one local day.

    ``deliveryTime`` (EOD/CMT or an EDW/CDW/IDW time window) narrows the hour within that day;
    ``DeliveryWindow`` holds dates only, so the time window does not change the result.
    """
    by_type = {(_text(d.get("type")) or "").upper(): _text(d.get("date"))
               for d in _list(pkg.get("deliveryDate")) if isinstance(d, dict)}
    for kind in ("RDD", "SDD"):
        day = _date(by_type.get(kind))
        if day is not None:
            return DeliveryWindow.day(day)
    return None


def _delivered_at(pkg: dict[str, Any]) -> datetime | None:
    # No delivered scan: deliveryDate DEL + deliveryTime DEL, zone-less, taken as the
    # destination's zone where known (reference §3.3), else UTC.
    day = next((_text(d.get("date")) for d in _list(pkg.get("deliveryDate"))
                if isinstance(d, dict) and _text(d.get("type")) == "DEL"), None)
    delivery_time = _dict(pkg.get("deliveryTime"))
    try:
        local = _datetime(day, delivery_time.get("endTime")
                          if _text(delivery_time.get("type")) == "DEL" else None)
        if local is None:
            return None
        destination = next((_dict(a.get("address")) for a in _list(pkg.get("packageAddress"))
                            if isinstance(a, dict) and _text(a.get("type")) == "DESTINATION"), {})
        state = _text(destination.get("stateProvince"))
        zone: tzinfo = ZoneInfo(statuses.US_STATE_ZONES[state]) if (
            state in statuses.US_STATE_ZONES) else UTC
        return local.replace(tzinfo=zone).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _location(raw: dict[str, Any]) -> Location:
    address = _dict(raw.get("address"))
    return Location(city=_text(address.get("city")), state=_text(address.get("stateProvince")),
                    postal_code=_text(address.get("postalCode")),
                    country=_text(address.get("countryCode")) or _text(address.get("country")))


def _reason_from_text(text: str) -> ExceptionReason | None:
    lowered = text.lower()
    return next((r for phrase, r in statuses.REASON_PHRASES if phrase in lowered), None)


def _status_code(value: str | None) -> str | None:
    """UPS zero-pads 3-digit codes in JSON ("005"); accept "5" too."""
    if value is None:
        return None
    return value.zfill(3) if _ascii_digits(value) and len(value) < 3 else value


def _date(value: Any) -> date | None:
    """``YYYYMMDD`` (also ``YYYY-MM-DD``, the old XML form); None when absent or malformed."""
    text = _text(value)
    if text is None:
        return None
    digits = text.replace("-", "")
    if len(digits) != 8 or not _ascii_digits(digits):
        return None
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None


def _datetime(day: Any, clock: Any) -> datetime | None:
    """Naive wall time from a UPS date and ``HHMMSS`` / ``HH:MM:SS`` time (midnight if absent)."""
    d = _date(day)
    if d is None:
        if _text(day) is not None:
            raise ValueError(f"bad date {day!r}")
        return None
    text = (_text(clock) or "000000").replace(":", "")
    # The spec example "74700" drops the leading zero of 07:47:00; "HHMM" lacks seconds.
    text = text.zfill(6) if len(text) == 5 else (text + "00" if len(text) == 4 else text)
    if len(text) != 6 or not _ascii_digits(text):
        raise ValueError(f"bad time {clock!r}")
    return datetime(d.year, d.month, d.day, int(text[:2]), int(text[2:4]), int(text[4:]))


def _offset(value: Any) -> timezone | None:
    match = _OFFSET_RE.match(_text(value) or "")
    if match is None:
        return None
    sign, hours, minutes = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    if delta >= timedelta(hours=24) or int(minutes) >= 60:
        return None
    return timezone(-delta if sign == "-" else delta)


def _envelope_codes(payload: Any) -> list[tuple[str, str]]:
    response = payload.get("response") if isinstance(payload, dict) else None
    errs = response.get("errors") if isinstance(response, dict) else None
    return [(_text(e.get("code")) or "?", _text(e.get("message")) or "")
            for e in _list(errs) if isinstance(e, dict)]


def _envelope_errors(payload: Any) -> str:
    return "; ".join(f"{c}: {m}" for c, m in _envelope_codes(payload))


def _ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _same(a: str, b: str) -> bool:
    return a.replace(" ", "").upper() == b.replace(" ", "").upper()
