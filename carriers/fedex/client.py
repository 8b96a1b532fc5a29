"""FedEx Track API v1 adapter: the thin I/O half (OAuth token, batched POST, error mapping).

I/O module (httpx). Builds requests exactly as /work/shared/reference/carriers.md §4.1-4.5
documents them, maps failures through ``carriers.base`` and hands 200 bodies to the pure
``carriers.fedex.parse``. Imports nothing from ``notifier``.

API documentation: https://developer.fedex.com/api/en-us/catalog/track/v1/docs.html
OAuth: https://developer.fedex.com/api/en-us/catalog/authorization/v1/docs.html
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, ClassVar

import httpx

from carriers import base, errors
from carriers.fedex import parse
from carriers.model import BatchResult

__all__ = ["TOKEN_PATH", "TRACK_PATH", "FedexCarrier"]

TOKEN_PATH = "/oauth/token"
TRACK_PATH = "/track/v1/trackingnumbers"


class FedexCarrier:
    """FedEx tracking: up to 30 numbers per POST; the OAuth token is cached and reused.

    ``grant_type`` defaults to ``client_credentials`` (normal customers); the child-account
    grant types of compatible providers are not supported.
    """

    name: ClassVar[str] = "fedex"
    max_batch: ClassVar[int] = 30

    def __init__(self, settings: base.CarrierSettings, http: httpx.AsyncClient, *,
                 now: Callable[[], datetime], monotonic: Callable[[], float] = time.monotonic,
                 ) -> None:
        self._settings = settings
        self._http = http
        self._now = now
        self._base = settings.base_url.rstrip("/")
        # FedEx tokens live one hour; refresh a minute early (TokenCache caps the margin at a
        # tenth of the lifetime). FedEx throttles the token endpoint per IP: never one per call.
        self._tokens = base.TokenCache(self._fetch_token, margin_s=60.0, monotonic=monotonic)
        self.requests_made = 0

    async def track(self, numbers: Sequence[str]) -> BatchResult:
        """Track up to 30 numbers in one call; per-number errors come back as data.

        A requested number missing from the response is reported in ``problems``.
        """
        if len(numbers) > self.max_batch:
            raise ValueError(f"FedEx tracks at most {self.max_batch} numbers per call, "
                             f"got {len(numbers)}")
        if not numbers:
            return BatchResult()
        body = {
            # Without includeDetailedScans FedEx returns only the latest status, no scanEvents.
            "includeDetailedScans": True,
            "trackingInfo": [{"trackingNumberInfo": {"trackingNumber": n.strip()}}
                             for n in numbers],
        }
        response = await self._post_tracking(body)
        base.raise_for_status(self.name, response, now=self._now())
        result = parse.parse_payload(base.decode_json(self.name, response), now=self._now())
        answered = {r.tracking_number for r in result.results} | set(result.problems)
        missing = {n: "FedEx response did not mention this number"
                   for n in numbers if n.strip() not in answered}
        if not missing:
            return result
        return BatchResult(results=result.results, problems={**result.problems, **missing})

    async def aclose(self) -> None:
        """Nothing of our own to close: the shared ``httpx.AsyncClient`` belongs to the app."""

    async def _post_tracking(self, body: dict[str, Any]) -> httpx.Response:
        """The tracking POST; after a 401, one retry with a fresh token, then CarrierAuthError."""
        for attempt in (1, 2):
            token = await self._tokens.get()
            headers = {
                "Authorization": f"Bearer {token}",
                "X-locale": self._settings.locale,
                # Echoed back as customerTransactionId: ties a response to our request in logs.
                "x-customer-transaction-id": uuid.uuid4().hex,
                "Accept": "application/json",
            }
            async with base.http_errors(self.name):
                self.requests_made += 1
                response = await self._http.post(self._base + TRACK_PATH, json=body,
                                                 headers=headers,
                                                 timeout=self._settings.timeout_s)
            if response.status_code != 401:
                return response
            self._tokens.invalidate(token)
            if attempt == 2:
                break
        raise errors.CarrierAuthError(self.name, "tracking call refused the token twice (401)")

    async def _fetch_token(self) -> tuple[str, float]:
        """POST the client-credentials grant with id and secret as form fields (no Basic)."""
        form = {"grant_type": "client_credentials", "client_id": self._settings.client_id,
                "client_secret": self._settings.client_secret}
        async with base.http_errors(self.name):
            self.requests_made += 1
            response = await self._http.post(self._base + TOKEN_PATH, data=form,
                                             headers={"Accept": "application/json"},
                                             timeout=self._settings.timeout_s)
        if response.status_code == 400:
            # RFC 6749 answers bad client credentials with 400 invalid_client as well as 401.
            raise errors.CarrierAuthError(
                self.name, f"token request refused: {response.text[:200]}")
        base.raise_for_status(self.name, response, now=self._now())
        # FedEx documents an integer expires_in; a numeric string is accepted rather than failing.
        return base.read_token_response(self.name, response)
