"""UPS status tables: raw UPS Track API codes to the normalised status and exception reason.

Pure data (standard library + ``carriers.model``); no I/O. Facts from
/work/shared/reference/carriers.md sections 3.5 and 7 (UPS "Status/Description Codes",
"package activity types" and movement-scan pages). A value of ``None`` in a status table means
"this activity does not change the shipment's status" (change requests, updated times, photos):
the parser carries the previous status forward.

API documentation: https://developer.ups.com/api/reference?loc=en_US#tag/Tracking
"""

from __future__ import annotations

from carriers import zones
from carriers.model import ExceptionReason, Status

__all__ = [
    "ACTIVITY_CODES",
    "CURRENT_STATUS_CODES",
    "IGNORED_STATUS_CODES",
    "INVALID_NUMBER_CODES",
    "LOADED_ON_VEHICLE_CODES",
    "NOT_FOUND_WARNINGS",
    "REASON_BY_STATUS_CODE",
    "REASON_PHRASES",
    "STATUS_CODES",
    "TYPE_CODES",
    "US_STATE_ZONES",
]


def _codes(status: Status | None, *codes: str | range) -> dict[str, Status | None]:
    out: dict[str, Status | None] = {}
    for code in codes:
        for c in (code,) if isinstance(code, str) else (f"{n:03d}" for n in code):
            out[c] = status
    return out


S = Status
# 3-digit ``status.statusCode`` (zero-padded): the most reliable discriminator (reference §7).
# "000 Status Not Available" is deliberately absent so the activity falls through to its
# letter type and 2-character code instead of being reported as unknown.
STATUS_CODES: dict[str, Status | None] = {
    **_codes(S.info_received, "003", "157", "079", "080", "166", "077",
             # Pickup attempts are on the shipper's side, not a delivery attempt.
             "065", "131", "135"),
    **_codes(S.in_transit, "044", "045", "167", "168", "169", "038", "160",
             "005", "010", "025", "039", "047", "087", "158", "159", "164", "165",
             "012", "014", "084", "092", "134", "016", "057", "073", "074", "137", "138",
             "071", "075", "070",
             # Requested/confirmed holds that are not a problem and not at a pickup point.
             "020", "103"),
    **_codes(S.out_for_delivery, "006", "021", "037", "089", "091", "146", "162", "072", "078"),
    **_codes(S.delivered, "011", "026", "143"),
    **_codes(S.available_for_pickup, "161", "144", "017", "040",
             # Holds confirmed at an Access Point / for pickup (reference: holds at pickup
             # points -> available_for_pickup).
             "100", "106", "108"),
    **_codes(S.failed_attempt, "022", "023", "024", "060", "061", "062", "145", "066"),
    **_codes(S.exception, "013", "029", "030", "049", "050", "058", "076", "124", "125", "139",
             "141", "032", "046", "048", "051", "052", "053", "086", "090", "132", "123", "126",
             "059", "064", "068", "069", "147", "149", "033", "119", "007", "043",
             # Unrequested holds: "Held for Future Delivery", "Held", "Held for COD Payment",
             # "Hold for Instructions Confirmed".
             "019", "083", "085", "104",
             "093", "094", "127", "128", "129", "130", "140", "142"),
    **_codes(S.returned, "081", "118", "034", "035", "036", "067"),
    **_codes(S.unknown, "148", "163"),
    # Change requests and confirmations, updated time/date/photo, return label: no change.
    **_codes(None, "018", "027", "028", "041", "042", "054", "055", "056", "063", "082",
             range(95, 100), "101", "102", "105", "107", "109", range(110, 118),
             range(120, 123), "136", "153", "154", "155", "133"),
}

# "088 Test" activities are dropped entirely (reference: "ignore").
IGNORED_STATUS_CODES: frozenset[str] = frozenset({"088"})

# 3-digit codes meaning "loaded on the delivery vehicle": out for delivery only when the scan's
# local date is today there; UPS loads vehicles a day or more ahead (reference §7 note).
LOADED_ON_VEHICLE_CODES: frozenset[str] = frozenset({"072"})
LOADED_ON_VEHICLE_ACTIVITY = "OD"

# 2-character ``status.code`` (third discriminator; reference §3.5 item 3). ``DP`` is left out:
# it means both "manifest processed" and "departure".
ACTIVITY_CODES: dict[str, Status | None] = {
    "MP": S.info_received, "RD": S.info_received, "PL": S.info_received, "OC": S.info_received,
    "VP": S.exception,
    "OT": S.out_for_delivery, "OF": S.out_for_delivery, "OD": S.out_for_delivery,
    "YP": S.in_transit, "AR": S.in_transit, "OR": S.in_transit, "PU": S.in_transit,
    "DS": S.in_transit, "EP": S.in_transit, "IP": S.in_transit, "HU": S.in_transit,
    "UL": S.in_transit, "AT": S.in_transit, "WH": S.in_transit, "XD": S.in_transit,
    "FS": S.delivered, "F4": S.delivered, "KB": S.delivered,
    "UP": None, "UT": None, "PX": None,
}

# ``status.type`` letter (second discriminator).
TYPE_CODES: dict[str, Status | None] = {
    "M": S.info_received,
    "MV": S.exception,
    "I": S.in_transit,
    "X": S.exception,
    "D": S.delivered,
    "U": None,
    # "P" is a legacy XML pickup type; [unconfirmed] for REST, mapped as the reference suggests.
    "P": S.in_transit,
    "DO": S.in_transit, "DD": S.in_transit, "W": S.in_transit,
    "NA": S.unknown,
}

# Current-status codes (``package.currentStatus.code``): real responses carry the 3-digit code,
# the spec example shows letters; both are tried.
CURRENT_STATUS_CODES: dict[str, Status | None] = {**ACTIVITY_CODES, **STATUS_CODES}

R = ExceptionReason
# Only codes that name a reason; other exception codes fall back to the description phrases
# below, then to ``other``.
REASON_BY_STATUS_CODE: dict[str, ExceptionReason] = {
    "050": R.address, "139": R.address,
    "058": R.customs, "124": R.customs, "125": R.customs, "141": R.customs, "123": R.customs,
    "126": R.customs,
    "032": R.weather, "051": R.weather, "052": R.weather, "053": R.weather,
    "059": R.damaged, "081": R.damaged, "064": R.refused,
    "068": R.lost, "093": R.lost, "094": R.lost, "127": R.lost, "128": R.lost, "129": R.lost,
    "130": R.lost, "140": R.lost, "142": R.lost,
    "147": R.held, "019": R.held, "083": R.held, "085": R.held, "104": R.held,
}

# Lower-case phrases in an activity description, tried in order when the code gives no reason.
REASON_PHRASES: tuple[tuple[str, ExceptionReason], ...] = (
    ("damage", R.damaged),
    ("refused", R.refused),
    ("customs", R.customs),
    ("clearance", R.customs),
    ("broker", R.customs),
    ("weather", R.weather),
    ("address", R.address),
    ("lost", R.lost),
    ("held", R.held),
    ("hold", R.held),
)

# ``warnings[].code`` meaning "no tracking information for this number" (reference §3.4).
NOT_FOUND_WARNINGS: frozenset[str] = frozenset({"TW0001"})
# Error-envelope codes meaning "this number is malformed": a per-number problem, not a failure.
INVALID_NUMBER_CODES: frozenset[str] = frozenset({"TV1002"})

# Offset-less scan times are resolved from the scan's US state (carriers.zones).
US_STATE_ZONES = zones.US_STATE_ZONES
