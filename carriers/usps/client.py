"""USPS tracking adapter: the thin I/O half (httpx) over OAuth 2.0 client credentials.

APIs: https://developers.usps.com/trackingv3 (``GET /tracking/v3/tracking/{n}``),
https://developers.usps.com/trackingv3r2 (``POST /tracking/v3r2/tracking``, up to 35 numbers,
207 multi-status) and https://developers.usps.com/Oauth (``POST /oauth2/v3/token``); facts used
here are in reference/carriers.md sections 6.1, 6.2 and 6.5. Imports httpx and the ``carriers``
package only, never ``notifier``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from carriers import base, errors, model
from carriers.usps import parse

__all__ = ["UspsCarrier"]

TOKEN_PATH = "/oauth2/v3/token"
TRACK_V3_PATH = "/tracking/v3/tracking/"
TRACK_V3R2_PATH = "/tracking/v3r2/tracking"
V3R2_MAX = 35


class UspsCarrier:
    """USPS tracking. With ``settings.use_batch`` one v3r2 POST carries up to 35 numbers;
    without it ``track`` sends one v3 GET per number (each counts in ``requests_made``)."""

    name: ClassVar[str] = "usps"
    max_batch: ClassVar[int] = V3R2_MAX

    def __init__(self, settings: base.CarrierSettings, http: httpx.AsyncClient, *,
                 now: Callable[[], datetime],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._http = http
        self._now = now
        self._base = settings.base_url.rstrip("/")
        self._tokens = base.TokenCache(self._fetch_token, monotonic=monotonic)
        self.requests_made = 0

    async def track(self, numbers: Sequence[str]) -> model.BatchResult:
        """One result (or problem) per number; "not found" is a ``missing`` result.

        Raises only when the whole call failed (see ``carriers.errors``).
        """
        if len(numbers) > self.max_batch:
            raise ValueError(f"usps tracks at most {self.max_batch} numbers per call")
        if not numbers:
            return model.BatchResult()
        # USPS wants the number without its "420"+ZIP routing prefix (reference 8.4; the v3r2
        # spec allows 4-34 characters); answers are reported under the number we were given.
        api = {n: parse.api_number(n) for n in numbers}
        if any(a != n for n, a in api.items()):
            back = {a: n for n, a in api.items()}
            batch = await self.track([api[n] for n in numbers])
            return model.BatchResult(
                results=tuple(dataclasses.replace(r, tracking_number=back.get(
                    r.tracking_number, r.tracking_number)) for r in batch.results),
                problems={back.get(k, k): v for k, v in batch.problems.items()})
        if self._settings.use_batch:
            return await self._track_v3r2(numbers)
        return await base.track_each(numbers, self._track_v3)

    async def aclose(self) -> None:
        """Nothing to release: the shared ``httpx.AsyncClient`` belongs to the application."""

    # -- tracking ------------------------------------------------------------------------------

    async def _track_v3(self, number: str) -> model.TrackingResult | str:
        response = await self._authorized(
            "GET", self._base + TRACK_V3_PATH + quote(number, safe=""),
            params={"expand": "DETAIL"})
        if response.status_code == 404:
            detail = parse.error_detail(base.decode_json(self.name, response))
            return model.TrackingResult.missing(self.name, number, detail)
        if response.status_code == 400:
            # A malformed number is data about that number, not a failed call.
            return f"HTTP 400: {parse.error_detail(base.decode_json(self.name, response))}"
        base.raise_for_status(self.name, response, now=self._now())
        batch = parse.parse_payload(base.decode_json(self.name, response), now=self._now())
        if len(batch.results) != 1:
            raise errors.CarrierPayloadError(self.name, "v3 answer is not one tracking detail",
                                             snippet=response.content[:200])
        result = batch.results[0]
        return result if result.tracking_number == number else dataclasses.replace(
            result, tracking_number=number)

    async def _track_v3r2(self, numbers: Sequence[str]) -> model.BatchResult:
        response = await self._authorized(
            "POST", self._base + TRACK_V3R2_PATH,
            json=[{"trackingNumber": number} for number in numbers])
        payload: Any = None
        if response.status_code == 404:
            payload = base.decode_json(self.name, response)
            if not isinstance(payload, list):
                # Unconfirmed shape (reference 11): a whole-request 404 envelope is read as
                # "none of these numbers is known", like the v3 404.
                detail = parse.error_detail(payload)
                return model.BatchResult(results=tuple(
                    model.TrackingResult.missing(self.name, n, detail) for n in numbers))
        else:
            base.raise_for_status(self.name, response, now=self._now())
            payload = base.decode_json(self.name, response)
        if not isinstance(payload, list):
            raise errors.CarrierPayloadError(self.name, "v3r2 answer is not an array",
                                             snippet=response.content[:200])
        batch = parse.parse_payload(payload, now=self._now())
        answered = {r.tracking_number for r in batch.results} | set(batch.problems)
        problems = dict(batch.problems)
        for number in numbers:
            if number not in answered:
                problems[number] = "absent from the v3r2 answer"
        return model.BatchResult(results=batch.results, problems=problems)

    # -- HTTP and OAuth ------------------------------------------------------------------------

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async with base.http_errors(self.name):
            self.requests_made += 1
            return await self._http.request(method, url, timeout=self._settings.timeout_s,
                                            **kwargs)

    async def _authorized(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send with the cached bearer token; after a 401, once more with a fresh token."""
        response: httpx.Response | None = None
        for _ in range(2):
            token = await self._tokens.get()
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            response = await self._send(method, url, headers=headers, **kwargs)
            if response.status_code != 401:
                return response
            self._tokens.invalidate(token)
        assert response is not None
        raise errors.CarrierAuthError(
            self.name, f"HTTP 401 with a fresh token (missing 'tracking' scope?): "
                       f"{response.text[:200]}")

    async def _fetch_token(self) -> tuple[str, float]:
        # Form body, as karrio does; the spec also allows JSON (reference 6.1). No ``scope``:
        # USPS then grants the app's default scopes.
        response = await self._send("POST", self._base + TOKEN_PATH, data={
            "grant_type": "client_credentials",
            "client_id": self._settings.client_id,
            "client_secret": self._settings.client_secret,
        })
        if response.status_code in (400, 401, 403):
            raise errors.CarrierAuthError(
                self.name, f"token endpoint refused the credentials (HTTP "
                           f"{response.status_code}): {_oauth_error(response)}")
        base.raise_for_status(self.name, response, now=self._now())
        payload = base.decode_json(self.name, response)
        token = payload.get("access_token") if isinstance(payload, dict) else None
        expires = payload.get("expires_in") if isinstance(payload, dict) else None
        # expires_in is an integer in real tokens (28799) but a string in USPS's README.
        if isinstance(expires, str) and expires.strip().isdigit():
            expires = int(expires)
        if (not isinstance(token, str) or not token or isinstance(expires, bool)
                or not isinstance(expires, int | float) or expires <= 0):
            raise errors.CarrierPayloadError(self.name, "token response without access_token "
                                             "and expires_in", snippet=response.content[:200])
        return token, float(expires)


def _oauth_error(response: httpx.Response) -> str:
    """``error: error_description`` of an OAuth error body, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return f"{body['error']}: {body.get('error_description', '')}"
    return response.text[:200]
