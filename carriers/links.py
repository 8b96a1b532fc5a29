"""Public customer tracking-page URLs per carrier (reference/carriers.md §3.7, §4.7, §5.7, §6.7),
for the "shipped" notification's tracking link. Pure: standard library only, no I/O.
"""

from __future__ import annotations

from urllib.parse import quote

from carriers.detect import normalise

__all__ = ["TEMPLATES", "tracking_url"]

# ``{n}`` is the normalised, URL-quoted tracking number.
TEMPLATES: dict[str, str] = {
    # §3.7: the plain form of the page karrio links to (it adds requester=QUIC and /trackdetails).
    "ups": "https://www.ups.com/track?loc=en_US&tracknum={n}",
    # §4.7: karrio's form.
    "fedex": "https://www.fedex.com/fedextrack/?trknbr={n}",
    # §5.7: karrio's parcel page with the us-en locale; it serves every DHL service (the separate
    # Express page form is unconfirmed).
    "dhl": "https://www.dhl.com/us-en/home/tracking/tracking-parcel.html?submit=1&tracking-id={n}",
    # §6.7: karrio and the jkeen data set agree on this one.
    "usps": "https://tools.usps.com/go/TrackConfirmAction?tLabels={n}",
}


def tracking_url(carrier: str, number: str) -> str:
    """The carrier's public tracking page for ``number`` (whitespace removed, upper-cased and
    URL-quoted, so any input yields a well-formed URL). ValueError for an unknown carrier or a
    number that is empty after normalising."""
    try:
        template = TEMPLATES[carrier]
    except KeyError:
        raise ValueError(f"no tracking page known for carrier {carrier!r}") from None
    n = normalise(number)
    if not n:
        raise ValueError("empty tracking number")
    return template.format(n=quote(n, safe=""))
