"""Time zones for carrier scan times that come without an offset. Pure.

US carriers name the scan's state; the zone covering most of each US state resolves it.
"""

from __future__ import annotations

__all__ = ["US_STATE_ZONES"]

_ZONE_STATES: dict[str, str] = {
    "America/New_York": "CT DC DE FL GA IN KY MA MD ME MI NC NH NJ NY OH PA RI SC VA VT WV",
    "America/Chicago": "AL AR IA IL KS LA MN MO MS ND NE OK SD TN TX WI",
    "America/Denver": "CO MT NM UT WY ID",
    "America/Phoenix": "AZ",
    "America/Los_Angeles": "CA NV OR WA",
    "America/Anchorage": "AK",
    "Pacific/Honolulu": "HI",
    "America/Puerto_Rico": "PR VI",
}
US_STATE_ZONES: dict[str, str] = {
    state: zone for zone, states in _ZONE_STATES.items() for state in states.split()
}
