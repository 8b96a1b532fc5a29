"""FedEx Track API v1 response parser: one ``trackingnumbers`` body to a normalised ``BatchResult``.

Pure: standard library and ``carriers.model``/``carriers.errors`` only; no I/O, no clock (``now``
is an argument). Never raises anything but ``CarrierPayloadError`` for any JSON input: a body
that is not a FedEx track response is a payload error; a per-number error (NOTFOUND -> a
``missing`` result, anything else -> ``problems``) or a malformed record for one number never
fails the batch.

Field names and rules: /work/shared/reference/carriers.md §4.3-4.5, §7 and the §9.1 example.
API documentation: https://developer.fedex.com/api/en-us/catalog/track/v1/docs.html
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from carriers import errors, settle
from carriers.fedex import statuses
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

__all__ = ["CARRIER", "parse_payload"]

CARRIER = "fedex"
_EPOCH = datetime.min.replace(tzinfo=UTC)


class _BadRecord(ValueError):
    """One number's record is malformed: reported in ``problems``, never raised out."""


def parse_payload(payload: Any, *, now: datetime) -> BatchResult:
    """Normalise one FedEx ``POST /track/v1/trackingnumbers`` 200 body (up to 30 numbers).

    ``now`` is accepted for the common parser contract; FedEx times carry their own offsets
    and no FedEx rule depends on today's date.
    """
    output = payload.get("output") if isinstance(payload, dict) else None
    complete = output.get("completeTrackResults") if isinstance(output, dict) else None
    if not isinstance(complete, list):
        detail = _errors_text(payload.get("errors") if isinstance(payload, dict) else None)
        raise errors.CarrierPayloadError(
            CARRIER, f"FedEx error response: {detail}" if detail else "not a FedEx track response",
            snippet=_snippet(payload))
    results: list[TrackingResult] = []
    problems: dict[str, str] = {}
    for entry in complete:
        if not isinstance(entry, dict):
            raise errors.CarrierPayloadError(CARRIER, "completeTrackResults entry is not an "
                                             "object", snippet=_snippet(entry))
        track_results = [t for t in _list(entry.get("trackResults")) if isinstance(t, dict)]
        number = _text(entry.get("trackingNumber")) or next(
            (n for t in track_results
             if (n := _text(_dict(t.get("trackingNumberInfo")).get("trackingNumber")))), None)
        if number is None:
            raise errors.CarrierPayloadError(CARRIER, "track result without trackingNumber",
                                             snippet=_snippet(entry))
        try:
            outcome = _entry(number, track_results)
        except _BadRecord as exc:
            outcome = f"malformed FedEx track result: {exc}"
        if isinstance(outcome, TrackingResult):
            results.append(outcome)
        else:
            problems[number] = outcome
    return BatchResult(results=tuple(results), problems=problems)


def _entry(number: str, track_results: list[dict[str, Any]]) -> TrackingResult | str:
    """One requested number: its result, or the problem text."""
    found = [t for t in track_results if not isinstance(t.get("error"), dict)]
    if not found:
        if not track_results:
            return "no trackResults for this number"
        error = _dict(track_results[0].get("error"))
        code = _text(error.get("code")) or "?"
        text = f"{code}: {_text(error.get('message')) or ''}".rstrip(": ")
        if code in statuses.NOT_FOUND_ERRORS:
            return TrackingResult.missing(CARRIER, number, text)
        return text
    parsed = [_track_result(number, t) for t in found]
    # Duplicate shipments under one reused number: the one with the latest scan is current.
    return max(parsed, key=lambda r: r.last_event_at or _EPOCH)


def _track_result(number: str, tr: dict[str, Any]) -> TrackingResult:
    # FedEx lists scans newest first; a scan without a status of its own before any other
    # scan counts as pending (the Scan default fallback).
    walk = settle.walk_scans(
        [_scan(e) for e in _list(tr.get("scanEvents")) if isinstance(e, dict)])
    events, status, deciding = walk.events, walk.status, walk.deciding
    unknown = sorted({e.code for e in events if e.status is Status.unknown})

    latest = _dict(tr.get("latestStatusDetail"))
    latest_status, latest_code, latest_reason = _scan_status(
        latest, latest.get("derivedCode"), _texts_of(latest))
    reason = deciding.reason if deciding else None
    if status is None or status is Status.unknown:
        # No scans (or an unmapped newest one): the carrier's own current status.
        if latest_status is not None and latest_status is not Status.unknown:
            status, deciding, reason = latest_status, None, latest_reason
        elif status is None and latest_status is Status.unknown and latest_code != "?":
            status = Status.unknown
            unknown = sorted({*unknown, latest_code})
        elif status is None:
            status = Status.pending
    if status is Status.exception and reason is None:
        reason = ExceptionReason.other
    details = _dict(tr.get("deliveryDetails"))
    service = _dict(tr.get("serviceDetail"))
    return TrackingResult(
        carrier=CARRIER, tracking_number=number, status=status,
        status_detail=_status_detail(latest, deciding),
        estimated_delivery=_estimated_delivery(tr),
        delivered_at=_delivered_at(tr, deciding) if status is Status.delivered else None,
        signed_by=_text(details.get("signedByName")) or _text(details.get("receivedByName")),
        service=_text(service.get("description")) or _text(service.get("type")),
        events=tuple(events),
        exception_reason=reason if status in settle.PROBLEM_STATUSES else None,
        unknown_codes=tuple(unknown))


def _scan(event: dict[str, Any]) -> settle.Scan:
    location = _location(_dict(event.get("scanLocation")))
    at, local_time, assumed = _when(event.get("date"), location)
    texts = _texts_of(event)
    status, code, reason = _scan_status(event, event.get("derivedStatusCode"), texts,
                                        code_key="eventType")
    # The exception text says what actually happened ("Customer not available..."); keep it.
    description = ": ".join(t for t in (_text(event.get("eventDescription")),
                                        _text(event.get("exceptionDescription"))) if t)
    return settle.Scan(at=at, local_time=local_time, offset_assumed=assumed, status=status,
                       code=code, description=description, location=location, reason=reason)


def _scan_status(raw: dict[str, Any], derived: Any, texts: str, *, code_key: str = "code",
                 ) -> tuple[Status | None, str, ExceptionReason | None]:
    """(status, raw code kept on the event, reason) for a scan event or latestStatusDetail."""
    code = (_text(raw.get(code_key)) or "").upper()
    derived_code = (_text(derived) or "").upper()
    status: Status | None
    if code in statuses.EVENT_CODES:
        status = statuses.EVENT_CODES[code]
    elif derived_code in statuses.DERIVED_CODES:
        status = statuses.DERIVED_CODES[derived_code]
    else:
        status = Status.unknown
    reason = _reason(raw, code, texts)
    if code == statuses.DELIVERY_EXCEPTION or (not code and derived_code == "DE"):
        # DE is a failed attempt when its reason is the recipient's absence; refusals, address
        # and damage problems stay exceptions (reference §4.4).
        ancillary = {(_text(a.get("reason")) or "") for a in _list(raw.get("ancillaryDetails"))
                     if isinstance(a, dict)}
        attempted = bool(ancillary & statuses.ATTEMPT_REASON_CODES) or any(
            p in texts for p in statuses.ATTEMPT_PHRASES)
        if attempted and reason not in (ExceptionReason.refused, ExceptionReason.address,
                                        ExceptionReason.damaged):
            status, reason = Status.failed_attempt, None
    return status, code or derived_code or "?", reason


def _reason(raw: dict[str, Any], code: str, texts: str) -> ExceptionReason | None:
    delay_type = (_text(_dict(raw.get("delayDetail")).get("type")) or "").upper()
    by_text = next((r for phrase, r in statuses.REASON_PHRASES if phrase in texts), None)
    return (statuses.DELAY_REASONS.get(delay_type) or by_text
            or statuses.REASON_BY_EVENT.get(code))


def _texts_of(raw: dict[str, Any]) -> str:
    """All free text of a scan or status detail, lower-cased, for phrase tables."""
    parts = [raw.get(k) for k in ("eventDescription", "exceptionDescription", "description",
                                  "statusByLocale")]
    for a in _list(raw.get("ancillaryDetails")):
        if isinstance(a, dict):
            parts += [a.get("reasonDescription"), a.get("actionDescription")]
    return " | ".join(t for p in parts if (t := _text(p))).lower()


def _status_detail(latest: dict[str, Any], deciding: settle.Scan | None) -> str:
    text = (deciding.description if deciding else "") or _text(latest.get("description")) or ""
    running_late = (_text(latest.get("derivedCode")) or "").upper() == "RL" or (
        (_text(_dict(latest.get("delayDetail")).get("status")) or "").upper() == "DELAYED")
    by_locale = _text(latest.get("statusByLocale"))
    # The model has no delay flag: keep FedEx's own "Running Late"/DELAYED words visible.
    if running_late and by_locale and by_locale.lower() not in text.lower():
        text = f"{text} ({by_locale})" if text else by_locale
    return text


def _estimated_delivery(tr: dict[str, Any]) -> DeliveryWindow | None:
    """Estimated window, else ESTIMATED_DELIVERY, else COMMITMENT, else the transit standard.

    Each date is the local date written in the timestamp (FedEx writes the destination's
    offset), so the string's date part is the customer's day.
    """
    window = _dict(_dict(tr.get("estimatedDeliveryTimeWindow")).get("window"))
    begins, ends = _day(window.get("begins")), _day(window.get("ends"))
    days = [d for d in (begins, ends) if d is not None]
    if days:
        return DeliveryWindow(start=min(days), end=max(days))
    stamps = _date_and_times(tr)
    for kind in ("ESTIMATED_DELIVERY", "COMMITMENT"):
        day = _day(stamps.get(kind))
        if day is not None:
            return DeliveryWindow.day(day)
    standard = _day(_dict(_dict(tr.get("standardTransitTimeWindow")).get("window")).get("ends"))
    return DeliveryWindow.day(standard) if standard else None


def _delivered_at(tr: dict[str, Any], deciding: settle.Scan | None) -> datetime | None:
    actual = _date_and_times(tr).get("ACTUAL_DELIVERY")
    if actual is not None:
        try:
            return _when(actual, Location())[0]
        except _BadRecord:
            pass
    return deciding.at if deciding is not None and deciding.status is Status.delivered else None


def _date_and_times(tr: dict[str, Any]) -> dict[str, Any]:
    return {(_text(d.get("type")) or "").upper(): d.get("dateTime")
            for d in _list(tr.get("dateAndTimes")) if isinstance(d, dict)}


def _when(value: Any, location: Location) -> tuple[datetime, datetime | None, bool]:
    """(UTC instant, local time with offset, offset assumed?) from an ISO 8601 timestamp."""
    text = _text(value)
    if text is None:
        raise _BadRecord("scan without date")
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is not None:
            return parsed.astimezone(UTC), parsed, False
        # Offset-less (seen in real data): the zone of the scan's state, else UTC; flagged.
        zone: tzinfo = UTC
        if (location.country or "US") == "US" and location.state in statuses.US_STATE_ZONES:
            zone = ZoneInfo(statuses.US_STATE_ZONES[location.state])
        aware = parsed.replace(tzinfo=zone)
        return aware.astimezone(UTC), aware, True
    except (ValueError, OverflowError) as exc:
        raise _BadRecord(f"bad timestamp {text[:40]!r}") from exc


def _day(value: Any) -> date | None:
    """The calendar date written at the start of an ISO timestamp, or None."""
    text = _text(value)
    if text is None or len(text) < 10 or not text[:10].isascii():
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def _location(raw: dict[str, Any]) -> Location:
    return Location(city=_text(raw.get("city")), state=_text(raw.get("stateOrProvinceCode")),
                    postal_code=_text(raw.get("postalCode")),
                    country=_text(raw.get("countryCode")))


def _errors_text(errs: Any) -> str:
    return "; ".join(f"{_text(e.get('code')) or '?'}: {_text(e.get('message')) or ''}"
                     for e in _list(errs) if isinstance(e, dict))
