"""DHL (Shipment Tracking - Unified API): adapter, pure parser and the public tracking page link.

API: https://developer.dhl.com/api-reference/shipment-tracking ; facts in
reference/carriers.md section 5. Registered as ``carriers.dhl:DhlCarrier``.
"""

from __future__ import annotations

from carriers import links
from carriers.dhl.client import DhlCarrier
from carriers.dhl.parse import parse_payload

__all__ = ["DhlCarrier", "parse_payload", "tracking_url"]


def tracking_url(number: str) -> str:
    """The customer-facing DHL tracking page for ``number`` (reference 5.7: karrio's parcel page,
    ``us-en`` locale, which serves every DHL service). Same normalisation as
    ``carriers.links.tracking_url``; ValueError for a number that is empty after it."""
    return links.tracking_url("dhl", number)
