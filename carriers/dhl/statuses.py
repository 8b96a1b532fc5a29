"""DHL Unified Tracking (UTAPI) status tables: ``statusCode`` and free-text phrases to our model.

Pure: standard library and ``carriers.model`` only; no I/O. DHL has five coarse ``statusCode``
values and puts everything finer (out for delivery, pickup point, return) in the free text
``status`` / ``description``, so the coarse code is refined by ordered phrase tables.
Source: reference/carriers.md sections 5.4 and 7 (the phrase list is the reference's proposal;
only "OUT FOR DELIVERY", "LABEL CREATED" and "DELIVERED - PARCEL LOCKER" were seen in data).
"""

from __future__ import annotations

from carriers.model import ExceptionReason, Status

__all__ = [
    "EXCEPTION_REASON_PHRASES",
    "REFINEMENTS",
    "STATUS_CODES",
    "Refinement",
    "exception_reason",
    "normalise",
]

# The five documented statusCode values (DHL support KB, spec enum).
STATUS_CODES: dict[str, Status] = {
    "pre-transit": Status.info_received,
    "transit": Status.in_transit,
    "delivered": Status.delivered,
    "failure": Status.exception,
    "unknown": Status.unknown,
}

# (phrases, resulting status, statusCodes the refinement may override, phrases that veto it).
Refinement = tuple[tuple[str, ...], Status, frozenset[str], tuple[str, ...]]

_MOVING = frozenset({"transit", "failure", "unknown"})

# Ordered: the first matching row wins. Phrases are matched upper-case against
# "status + description". A "delivered" statusCode is never refined: "DELIVERED - PARCEL LOCKER"
# is a delivery, not a parcel waiting at a locker. Customs/held/delay text only turns an
# ``unknown`` code into an exception: under ``transit`` a customs scan is normal movement
# (reference section 2: in_transit "includes ... customs"), and ``failure`` already is one.
REFINEMENTS: tuple[Refinement, ...] = (
    (("RETURN",), Status.returned, _MOVING, ()),
    (("ATTEMPT", "NOT DELIVERED", "RECIPIENT NOT AT HOME", "NOT AVAILABLE"),
     Status.failed_attempt, _MOVING, ()),
    (("OUT FOR DELIVERY", "WITH DELIVERY COURIER"), Status.out_for_delivery, _MOVING, ()),
    (("READY FOR PICK", "AVAILABLE FOR PICKUP", "SERVICE POINT", "PARCEL LOCKER"),
     Status.available_for_pickup, _MOVING, ("DELIVERED",)),
    (("LABEL CREATED", "AWAITING", "EN ROUTE TO DHL"), Status.info_received,
     frozenset({"pre-transit", "unknown"}), ()),
    (("CUSTOMS", "HELD", "DELAY", "DAMAGE"), Status.exception, frozenset({"unknown"}), ()),
)

# Ordered: the first matching row gives the reason of an exception-like event.
EXCEPTION_REASON_PHRASES: tuple[tuple[tuple[str, ...], ExceptionReason], ...] = (
    (("REFUSED", "REFUSAL"), ExceptionReason.refused),
    (("DAMAGE",), ExceptionReason.damaged),
    (("CUSTOMS", "DUTY", "DUTIES"), ExceptionReason.customs),
    (("WEATHER", "NATURAL DISASTER", "STORM"), ExceptionReason.weather),
    (("ADDRESS", "MOVED", "RECIPIENT UNKNOWN", "UNKNOWN RECIPIENT", "CONSIGNEE UNKNOWN"),
     ExceptionReason.address),
    (("LOST", "MISSING", "CANNOT BE LOCATED"), ExceptionReason.lost),
    (("HELD", "HOLD"), ExceptionReason.held),
)

# Statuses whose events carry a reason; an exception without a recognised phrase is "other".
_REASONED = frozenset({Status.exception, Status.failed_attempt, Status.returned})


def normalise(status_code: str, text: str) -> Status:
    """Status for one DHL event: the coarse code refined by the first matching phrase row.

    An undocumented ``statusCode`` gives ``Status.unknown`` (the caller records the raw code).
    """
    base = STATUS_CODES.get(status_code, Status.unknown)
    upper = text.upper()
    for phrases, status, codes, vetoes in REFINEMENTS:
        if status_code not in codes:
            continue
        if any(p in upper for p in phrases) and not any(v in upper for v in vetoes):
            return status
    return base


def exception_reason(status: Status, text: str) -> ExceptionReason | None:
    """Why an exception / failed attempt / return happened, from its text; None otherwise."""
    if status not in _REASONED:
        return None
    upper = text.upper()
    for phrases, reason in EXCEPTION_REASON_PHRASES:
        if any(p in upper for p in phrases):
            return reason
    return ExceptionReason.other if status is Status.exception else None
