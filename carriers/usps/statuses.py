"""USPS Tracking v3 / v3r2 status tables: Pub 199 ``eventCode`` and ``statusCategory`` to our model.

Pure: standard library and ``carriers.model`` only; no I/O. The event-code meanings come from
secondary sources (reference/carriers.md section 6.4, marked so there), the mapping to our
statuses is the reference's. ``statusCategory`` strings beyond "Accepted" and "Delivered" are
unconfirmed as exact API values, so they are matched case-insensitively and only used when
the event code gives nothing.
"""

from __future__ import annotations

from carriers.model import ExceptionReason, Status

__all__ = [
    "CATEGORIES",
    "EVENT_CODES",
    "EXCEPTION_REASON_CODES",
    "EXCEPTION_REASON_PHRASES",
    "NO_STATUS_CHANGE",
    "category_status",
    "event_status",
    "exception_reason",
]


def _codes(status: Status, *codes: str) -> dict[str, Status]:
    return dict.fromkeys(codes, status)


EVENT_CODES: dict[str, Status] = {
    **_codes(Status.info_received, "GX", "MA", "89"),
    **_codes(Status.in_transit, "83", "TM", "03", "OA", "UA", "PA", "AD", "SF", "10", "A1",
             "T1", "TL", "EF", "PC", "07", "80", "81", "82", "42", "19", "41", "06",
             "71"),  # 71 "rescheduled to next delivery day": still moving, a delay hint
    **_codes(Status.out_for_delivery, "OF"),
    **_codes(Status.delivered, "01", "17", "43"),
    **_codes(Status.failed_attempt, "02", "52", "53", "54", "55", "56", "30", "51"),
    **_codes(Status.available_for_pickup, "14", "16"),
    **_codes(Status.exception, "04", "05", "08", "15", "11", "DX"),
    **_codes(Status.returned, "44", "09", "21", "22", "23", "24", "25", "26", "27", "28",
             "29", "31"),
}

# Scans that carry no news about where the parcel is ("return receipt associated"): the event
# keeps the status the parcel already had.
NO_STATUS_CHANGE: frozenset[str] = frozenset({"GC"})

# statusCategory (lower-cased) -> status. "accepted" and "delivered" are seen in data; the rest
# are USPS's customer-facing categories, unconfirmed as API strings (reference 6.4).
CATEGORIES: dict[str, Status] = {
    "pre-shipment": Status.info_received,
    "accepted": Status.in_transit,
    "in transit": Status.in_transit,
    "out for delivery": Status.out_for_delivery,
    "delivery attempt": Status.failed_attempt,
    "available for pickup": Status.available_for_pickup,
    "alert": Status.exception,
    "return to sender": Status.returned,
    "delivered": Status.delivered,
}

EXCEPTION_REASON_CODES: dict[str, ExceptionReason] = {
    "04": ExceptionReason.refused,
    "05": ExceptionReason.address,
    "11": ExceptionReason.lost,
    **dict.fromkeys(("21", "22", "23", "24", "25", "26"), ExceptionReason.address),
    "30": ExceptionReason.address,  # no access to the delivery location
}

# Ordered: the first matching row gives the reason when the code table has none.
EXCEPTION_REASON_PHRASES: tuple[tuple[tuple[str, ...], ExceptionReason], ...] = (
    (("REFUSED",), ExceptionReason.refused),
    (("DAMAGE",), ExceptionReason.damaged),
    (("CUSTOMS",), ExceptionReason.customs),
    (("WEATHER", "NATURAL DISASTER"), ExceptionReason.weather),
    (("ADDRESS", "NO SUCH NUMBER", "VACANT", "MOVED"), ExceptionReason.address),
    (("LOST", "MISSING", "DEAD LETTER"), ExceptionReason.lost),
    (("HELD", "HOLD"), ExceptionReason.held),
)

_REASONED = frozenset({Status.exception, Status.failed_attempt, Status.returned})


def event_status(code: str) -> Status | None:
    """Status of one scan; ``None`` for a scan that changes nothing (see ``NO_STATUS_CHANGE``).

    An unlisted code gives ``Status.unknown`` (the caller keeps and reports the raw code).
    """
    if code in NO_STATUS_CHANGE:
        return None
    return EVENT_CODES.get(code, Status.unknown)


def category_status(category: str) -> Status | None:
    """Status for a ``statusCategory`` text, or None when it is not one we know."""
    return CATEGORIES.get(category.strip().lower())


def exception_reason(status: Status, code: str, text: str) -> ExceptionReason | None:
    """Why an exception / failed attempt / return happened: code table, then text phrases."""
    if status not in _REASONED:
        return None
    if code in EXCEPTION_REASON_CODES:
        return EXCEPTION_REASON_CODES[code]
    upper = text.upper()
    for phrases, reason in EXCEPTION_REASON_PHRASES:
        if any(p in upper for p in phrases):
            return reason
    return ExceptionReason.other if status is Status.exception else None
