"""UPS Track API v1 adapter: the thin I/O half (OAuth token, one GET per number, error mapping).

I/O module (httpx). Builds requests exactly as /work/shared/reference/carriers.md §3.1-3.4
documents them, maps failures through ``carriers.base`` and hands 200 bodies to the pure
``carriers.ups.parse``. Imports nothing from ``notifier``.

API documentation: https://developer.ups.com/api/reference?loc=en_US#tag/Tracking
OAuth: https://developer.ups.com/api/reference?loc=en_US#tag/OAuthClientCredentials
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import ClassVar
from urllib.parse import quote

import httpx

from carriers import base, errors
from carriers.model import BatchResult, TrackingResult
from carriers.ups import parse

__all__ = ["TOKEN_PATH", "TRACK_PATH", "UpsCarrier"]

TOKEN_PATH = "/security/v1/oauth/token"  # no /api prefix on the token path (reference §3.1)
TRACK_PATH = "/api/track/v1/details/{number}"


class UpsCarrier:
    """UPS tracking: one inquiry number per request; the OAuth token is cached and reused.

    ``merchant_id`` is sent as the optional ``x-merchant-id`` token header when given (the
    shipper account number); no config key carries it yet.
    """

    name: ClassVar[str] = "ups"
    max_batch: ClassVar[int] = 1

    def __init__(self, settings: base.CarrierSettings, http: httpx.AsyncClient, *,
                 now: Callable[[], datetime], monotonic: Callable[[], float] = time.monotonic,
                 merchant_id: str = "") -> None:
        self._settings = settings
        self._http = http
        self._now = now
        self._base = settings.base_url.rstrip("/")
        self._merchant_id = merchant_id
        # UPS tokens live ~4 h; karrio keeps a 30-minute buffer. TokenCache caps the margin at a
        # tenth of the lifetime, so short sandbox tokens still get most of their life.
        self._tokens = base.TokenCache(self._fetch_token, margin_s=1800.0, monotonic=monotonic)
        self.requests_made = 0

    async def track(self, numbers: Sequence[str]) -> BatchResult:
        """Track at most one number; per-number outcomes are data, whole-call failures raise."""
        if len(numbers) > self.max_batch:
            raise ValueError(f"UPS tracks {self.max_batch} number per call, got {len(numbers)}")
        if not numbers:
            return BatchResult()
        number = numbers[0]
        response = await self._get_tracking(number)
        if response.status_code in (400, 404):
            outcome = parse.parse_error_envelope(_json_or_none(response), number=number,
                                                 http_status=response.status_code)
            if outcome is not None:
                return outcome
        base.raise_for_status(self.name, response, now=self._now())
        result = parse.parse_payload(base.decode_json(self.name, response), now=self._now())
        return _answering(result, number)

    async def aclose(self) -> None:
        """Nothing of our own to close: the shared ``httpx.AsyncClient`` belongs to the app."""

    async def _get_tracking(self, number: str) -> httpx.Response:
        """The tracking GET; after a 401, one retry with a fresh token, then CarrierAuthError."""
        url = self._base + TRACK_PATH.format(number=quote(number.strip(), safe=""))
        params = {"locale": self._settings.locale, "returnSignature": "false",
                  "returnMilestones": "false", "returnPOD": "false"}
        for attempt in (1, 2):
            token = await self._tokens.get()
            headers = {
                "Authorization": f"Bearer {token}",
                # Unique per request; a hyphenless UUID stays within 32 characters, the safe
                # reading of the unconfirmed transId length limit (reference §3.2).
                "transId": uuid.uuid4().hex,
                "transactionSrc": self._settings.transaction_src,
                "Accept": "application/json",
            }
            async with base.http_errors(self.name):
                self.requests_made += 1
                response = await self._http.get(url, params=params, headers=headers,
                                                timeout=self._settings.timeout_s)
            if response.status_code != 401:
                return response
            self._tokens.invalidate(token)
            if attempt == 2:
                break
        raise errors.CarrierAuthError(self.name, "tracking call refused the token twice (401)")

    async def _fetch_token(self) -> tuple[str, float]:
        """POST the client-credentials grant with HTTP Basic client authentication."""
        headers = {"Accept": "application/json"}
        if self._merchant_id:
            headers["x-merchant-id"] = self._merchant_id
        async with base.http_errors(self.name):
            self.requests_made += 1
            response = await self._http.post(
                self._base + TOKEN_PATH, data={"grant_type": "client_credentials"},
                auth=httpx.BasicAuth(self._settings.client_id, self._settings.client_secret),
                headers=headers, timeout=self._settings.timeout_s)
        if response.status_code == 400:
            # RFC 6749 answers bad client credentials with 400 invalid_client as well as 401.
            raise errors.CarrierAuthError(
                self.name, f"token request refused: {response.text[:200]}")
        base.raise_for_status(self.name, response, now=self._now())
        # UPS sends expires_in as a string of seconds ("14399").
        return base.read_token_response(self.name, response)


def _json_or_none(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None


def _answering(result: BatchResult, number: str) -> BatchResult:
    """Make sure the result answers to the number the caller asked for (UPS may re-case it)."""
    known = {r.tracking_number for r in result.results} | set(result.problems)
    if number in known:
        return result
    wanted = number.replace(" ", "").upper()
    results = tuple(
        r if r.tracking_number.replace(" ", "").upper() != wanted else _renamed(r, number)
        for r in result.results)
    problems = dict(result.problems)
    if not any(r.tracking_number == number for r in results):
        problems[number] = "UPS response did not mention this number"
    return BatchResult(results=results, problems=problems)


def _renamed(result: TrackingResult, number: str) -> TrackingResult:
    return dataclasses.replace(result, tracking_number=number)
