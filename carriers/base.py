"""The carrier adapter seam: the ``Carrier`` protocol, its settings, the one place where
transport and HTTP failures become carrier errors, and a cached OAuth2 client-credentials token.

I/O module (httpx). Depends only on ``carriers.model`` and ``carriers.errors``.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

import httpx

from carriers import errors, model

__all__ = [
    "Carrier",
    "CarrierSettings",
    "OAuthToken",
    "TokenCache",
    "decode_json",
    "http_errors",
    "parse_retry_after",
    "raise_for_status",
    "read_token_response",
    "track_each",
]

# Per-carrier default when a 429 comes without Retry-After (seconds).
DEFAULT_RETRY_AFTER: dict[str, float] = {"ups": 60.0, "fedex": 10.0, "dhl": 1.0, "usps": 60.0}


@dataclass(frozen=True, slots=True, kw_only=True)
class CarrierSettings:
    """What an adapter needs to talk to one carrier; built by the application from config."""

    base_url: str
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    api_key: str = field(default="", repr=False)
    timeout_s: float = 15.0
    transaction_src: str = "notifier"
    use_batch: bool = True
    locale: str = "en_US"


class Carrier(Protocol):
    """One carrier's tracking API. ``track`` raises only when the whole call failed."""

    name: ClassVar[str]
    max_batch: ClassVar[int]

    async def track(self, numbers: Sequence[str]) -> model.BatchResult: ...

    async def aclose(self) -> None: ...


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    reference = now or datetime.now(UTC)
    return max(0.0, (when - reference).total_seconds())


def raise_for_status(carrier: str, response: httpx.Response, *,
                     now: datetime | None = None) -> None:
    """Map a non-success HTTP status to the carrier error it means.

    ``now`` is the adapter's clock: a Retry-After HTTP date is measured against it, so a
    daemon on a simulated clock (and tests) read it consistently.
    """
    status = response.status_code
    if status < 400:
        return
    snippet = response.text[:200]
    if status == 429:
        header = parse_retry_after(response.headers.get("Retry-After"), now=now)
        raise errors.CarrierRateLimited(
            carrier, f"HTTP 429 rate limited: {snippet}",
            retry_after=header if header is not None else DEFAULT_RETRY_AFTER.get(carrier, 30.0),
            header_sent=header is not None)
    if status in (401, 403):
        raise errors.CarrierAuthError(carrier, f"HTTP {status}: {snippet}")
    if status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now)
        raise errors.CarrierUnavailable(carrier, f"HTTP {status}", retry_after=retry_after)
    raise errors.CarrierPayloadError(carrier, f"unexpected HTTP {status}", snippet=snippet)


@asynccontextmanager
async def http_errors(carrier: str) -> AsyncIterator[None]:
    """Translate httpx transport errors into carrier errors, once, at the boundary."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise errors.CarrierUnavailable(carrier, f"timeout: {type(exc).__name__}") from exc
    except httpx.TransportError as exc:  # connect errors, protocol errors, read errors
        raise errors.CarrierUnavailable(carrier, f"transport error: {exc!r}") from exc


def decode_json(carrier: str, response: httpx.Response) -> Any:
    """The JSON body, or a payload error carrying the first bytes of what came instead."""
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.CarrierPayloadError(carrier, "response is not JSON",
                                         snippet=response.content[:200]) from exc


async def track_each(numbers: Sequence[str],
                     track_one: Callable[[str], Awaitable[model.TrackingResult | str]],
                     ) -> model.BatchResult:
    """One call per number, in order: ``track_one`` gives the number's result or its problem
    text (data about that number); whatever it raises fails the whole batch."""
    results: list[model.TrackingResult] = []
    problems: dict[str, str] = {}
    for number in numbers:
        outcome = await track_one(number)
        if isinstance(outcome, str):
            problems[number] = outcome
        else:
            results.append(outcome)
    return model.BatchResult(results=tuple(results), problems=problems)


def read_token_response(carrier: str, response: httpx.Response) -> tuple[str, float]:
    """(access_token, lifetime in seconds) of a 2xx OAuth2 token response, for ``TokenCache``.

    ``expires_in`` may be a JSON number (FedEx documents an integer) or a numeric string (UPS
    sends "14399"). A body that is not JSON, or lacks a non-empty ``access_token`` or a
    positive ``expires_in``, is a ``CarrierPayloadError``.
    """
    payload = decode_json(carrier, response)
    token = payload.get("access_token") if isinstance(payload, dict) else None
    expires_in = payload.get("expires_in") if isinstance(payload, dict) else None
    try:
        lifetime = float(expires_in) if isinstance(expires_in, str | int | float) else -1.0
    except ValueError:
        lifetime = -1.0
    if not isinstance(token, str) or not token or lifetime <= 0:
        raise errors.CarrierPayloadError(carrier, "token response without access_token/"
                                         "expires_in", snippet=response.content[:200])
    return token, lifetime


@dataclass(frozen=True, slots=True)
class OAuthToken:
    access_token: str
    expires_at: float  # monotonic seconds


class TokenCache:
    """Caches one OAuth2 token until shortly before it expires; one fetch at a time.

    ``fetch`` returns (access_token, expires_in_seconds). ``invalidate`` is called after a 401
    so the next ``get`` fetches a fresh token (refresh once, then give up: the caller decides).
    """

    def __init__(self, fetch: Callable[[], Awaitable[tuple[str, float]]], *,
                 margin_s: float = 60.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._margin = margin_s
        self._monotonic = monotonic
        self._token: OAuthToken | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def get(self) -> str:
        async with self._lock:
            token = self._token
            if token is None or self._monotonic() >= token.expires_at:
                access, expires_in = await self._fetch()
                self.fetches += 1
                margin = min(self._margin, expires_in / 10)
                token = OAuthToken(access, self._monotonic() + expires_in - margin)
                self._token = token
            return token.access_token

    def invalidate(self, access_token: str | None = None) -> None:
        """Forget the token (only if it is still ``access_token`` when one is given)."""
        if access_token is None or (self._token and self._token.access_token == access_token):
            self._token = None
