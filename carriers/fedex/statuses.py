"""FedEx status tables: Track API v1 scan codes to the normalised status and exception reason.

Pure data (standard library + ``carriers.model``); no I/O. Facts from
/work/shared/reference/carriers.md §4.4, §4.5 and §7 (FedEx "Tracking Status Codes" page and
observed derived codes). A ``None`` status means "no status change" (custom-delivery-option and
return-label bookkeeping): the parser carries the previous status forward.

API documentation: https://developer.fedex.com/api/en-us/catalog/track/v1/docs.html
"""

from __future__ import annotations

from carriers import zones
from carriers.model import ExceptionReason, Status

__all__ = [
    "ATTEMPT_PHRASES",
    "ATTEMPT_REASON_CODES",
    "DELAY_REASONS",
    "DELIVERY_EXCEPTION",
    "DERIVED_CODES",
    "EVENT_CODES",
    "NOT_FOUND_ERRORS",
    "REASON_BY_EVENT",
    "REASON_PHRASES",
    "US_STATE_ZONES",
]

S = Status
# Raw ``scanEvents[].eventType`` / ``latestStatusDetail.code``: the first discriminator, since
# the derived code collapses out-for-delivery into "IT" (reference §4.4).
EVENT_CODES: dict[str, Status | None] = {
    **dict.fromkeys(("OC", "OX", "EP", "AP"), S.info_received),
    **dict.fromkeys(("PU", "PX", "AO", "AA", "AC", "AF", "AR", "AX", "FD", "OF", "SF",
                     "DP", "LO", "IT", "IX", "PF", "PL", "PM", "EA", "EO", "TR", "CH", "OW",
                     "DS", "DR", "CC", "CP", "SP", "AE"), S.in_transit),
    **dict.fromkeys(("OD", "ED", "AD"), S.out_for_delivery),
    "DL": S.delivered,
    # DE is refined by its reason: a recipient/attempt reason makes it a failed attempt.
    "DE": S.exception,
    # Delays count as exceptions (reference §2 lists DY/DD/PD there; "team choice").
    **dict.fromkeys(("SE", "CD", "DY", "DD", "PD", "CA"), S.exception),
    **dict.fromkeys(("HL", "HP"), S.available_for_pickup),
    "RS": S.returned,
    **dict.fromkeys(("RR", "RM", "RC", "RP", "LP", "RG", "RD"), None),
}
DELIVERY_EXCEPTION = "DE"

# ``derivedStatusCode`` / ``derivedCode``: the fallback when the raw code is unknown. Only the
# values seen in real data (IN, PU, IT, DY, DE, DL, RL) are listed; the rest are unconfirmed.
DERIVED_CODES: dict[str, Status] = {
    "IN": S.info_received,
    "PU": S.in_transit,
    "IT": S.in_transit,
    "RL": S.in_transit,  # "Running Late": still moving; the delay shows in status_detail
    "DY": S.exception,
    "DE": S.exception,
    "DL": S.delivered,
}

R = ExceptionReason
# Only codes that name a reason; other exceptions fall back to phrases, then ``other``.
REASON_BY_EVENT: dict[str, ExceptionReason] = {"CD": R.customs}
# ``delayDetail.type`` (reference §4.3); OPERATIONAL/LOCAL/GENERAL name no reason.
DELAY_REASONS: dict[str, ExceptionReason] = {
    "WEATHER": R.weather,
    "CLEARANCE": R.customs,
}

# ``ancillaryDetails[].reason`` codes meaning "recipient not reachable": the reference's example
# is reason 15 "Customer not available or business closed".
ATTEMPT_REASON_CODES: frozenset[str] = frozenset({"15"})
# Lower-case phrases in a DE scan's texts that mean a delivery was attempted and will be retried.
ATTEMPT_PHRASES: tuple[str, ...] = (
    "not available", "not in", "business closed", "no one", "nobody", "attempt",
    "customer not available",
)
# Lower-case phrases tried in order when neither the code nor delayDetail gives a reason.
REASON_PHRASES: tuple[tuple[str, ExceptionReason], ...] = (
    ("damage", R.damaged),
    ("refused", R.refused),
    ("customs", R.customs),
    ("clearance", R.customs),
    ("weather", R.weather),
    ("address", R.address),
    ("lost", R.lost),
    ("hold", R.held),
    ("held", R.held),
)

# ``trackResults[].error.code`` meaning the number is unknown (reference §4.5).
NOT_FOUND_ERRORS: frozenset[str] = frozenset({"TRACKING.TRACKINGNUMBER.NOTFOUND"})

# Offset-less scan times are resolved from the scan's US state (carriers.zones).
US_STATE_ZONES = zones.US_STATE_ZONES
