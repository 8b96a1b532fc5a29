"""Errors raised by carrier adapters when a whole call fails.

Tree::

    CarrierError(carrier)
     ├── CarrierUnavailable  (transient: 5xx, timeouts, connection errors; has retry_after)
     │    └── CarrierRateLimited  (429; retry_after from Retry-After or a per-carrier default)
     ├── CarrierAuthError    (bad credentials: not transient, an ops problem)
     └── CarrierPayloadError (unparseable or unexpected body; keeps a short snippet)

Transient errors also inherit :class:`TransientCarrierError` (and ``ConnectionError``) so one
``isinstance`` check decides whether to retry, in the aiosmtplib style. Standard library only.
"""

from __future__ import annotations

__all__ = [
    "CarrierAuthError",
    "CarrierError",
    "CarrierPayloadError",
    "CarrierRateLimited",
    "CarrierUnavailable",
    "TransientCarrierError",
]

SNIPPET_CHARS = 200


class TransientCarrierError(Exception):
    """Marker: retrying later may succeed."""


class CarrierError(Exception):
    """A carrier call failed as a whole."""

    def __init__(self, carrier: str, message: str) -> None:
        super().__init__(f"{carrier}: {message}")
        self.carrier = carrier
        self.message = message


class CarrierUnavailable(CarrierError, TransientCarrierError, ConnectionError):
    """5xx, timeout or connection failure."""

    def __init__(self, carrier: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(carrier, message)
        self.retry_after = retry_after


class CarrierRateLimited(CarrierUnavailable):
    """HTTP 429. ``retry_after`` is in seconds (from the header, else the carrier default)."""

    def __init__(self, carrier: str, message: str, *, retry_after: float,
                 header_sent: bool = False) -> None:
        super().__init__(carrier, message, retry_after=retry_after)
        self.header_sent = header_sent


class CarrierAuthError(CarrierError):
    """Credentials rejected. Not transient: pause the carrier and tell ops."""


class CarrierPayloadError(CarrierError):
    """The body was not what the carrier documents (HTML error page, truncated JSON...)."""

    def __init__(self, carrier: str, message: str, *, snippet: str | bytes = "") -> None:
        if isinstance(snippet, bytes):
            snippet = snippet.decode("utf-8", "replace")
        self.snippet = snippet[:SNIPPET_CHARS]
        super().__init__(carrier, f"{message} (body starts: {self.snippet!r})" if snippet
                         else message)
