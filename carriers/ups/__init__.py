"""UPS carrier adapter: Track API v1 client, pure parser and status tables.

Registry name ``carriers.ups:UpsCarrier``. ``tracking_url`` builds the public customer page.
"""

from __future__ import annotations

from urllib.parse import quote

from carriers.ups.client import UpsCarrier
from carriers.ups.parse import parse_payload

__all__ = ["UpsCarrier", "parse_payload", "tracking_url"]


def tracking_url(number: str) -> str:
    """The public UPS tracking page for ``number`` (reference §3.7; spaces removed)."""
    return "https://www.ups.com/track?loc=en_US&tracknum=" + quote(
        "".join(number.split()), safe="")
