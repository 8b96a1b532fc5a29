"""USPS (Tracking v3 / v3r2 over OAuth 2.0): adapter, pure parser and the public tracking link.

APIs: https://developers.usps.com/trackingv3 and https://developers.usps.com/trackingv3r2 ;
facts in reference/carriers.md section 6. Registered as ``carriers.usps:UspsCarrier``.
"""

from __future__ import annotations

from carriers import links
from carriers.usps.client import UspsCarrier
from carriers.usps.parse import parse_payload

__all__ = ["UspsCarrier", "parse_payload", "tracking_url"]


def tracking_url(number: str) -> str:
    """The customer-facing USPS tracking page for ``number`` (reference 6.7, karrio's form).
    Same normalisation as ``carriers.links.tracking_url``; ValueError for an empty number."""
    return links.tracking_url("usps", number)
