"""DHL (Shipment Tracking - Unified API): adapter, pure parser and the public tracking page link.

API: https://developer.dhl.com/api-reference/shipment-tracking ; facts in
reference/carriers.md section 5. Registered as ``carriers.dhl:DhlCarrier``.
"""

from __future__ import annotations

from urllib.parse import quote

from carriers.dhl.client import DhlCarrier
from carriers.dhl.parse import parse_payload

__all__ = ["DhlCarrier", "parse_payload", "tracking_url"]


def tracking_url(number: str, *, region: str = "us-en") -> str:
    """The customer-facing DHL tracking page for ``number`` (reference 5.7, karrio's form).

    ``region`` is DHL's ``{country}-{lang}`` path segment; only ``us-en`` is documented in the
    reference, so it is the default.
    """
    return ("https://www.dhl.com/" + quote(region, safe="")
            + "/home/tracking/tracking-parcel.html?submit=1&tracking-id="
            + quote(number.strip(), safe=""))
