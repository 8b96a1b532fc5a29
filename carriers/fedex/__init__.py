"""FedEx carrier adapter: Track API v1 client, pure parser and status tables.

Registry name ``carriers.fedex:FedexCarrier``. ``tracking_url`` builds the public customer page.
"""

from __future__ import annotations

from urllib.parse import quote

from carriers.fedex.client import FedexCarrier
from carriers.fedex.parse import parse_payload

__all__ = ["FedexCarrier", "parse_payload", "tracking_url"]


def tracking_url(number: str) -> str:
    """The public FedEx tracking page for ``number`` (reference §4.7; spaces removed)."""
    return "https://www.fedex.com/fedextrack/?trknbr=" + quote("".join(number.split()), safe="")
