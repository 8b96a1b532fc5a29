"""DHL Unified Tracking adapter: the thin I/O half (httpx), one tracking number per request.

API: https://developer.dhl.com/api-reference/shipment-tracking (Shipment Tracking - Unified);
facts used here are in reference/carriers.md sections 5.1, 5.2 and 5.5. Imports httpx and the
``carriers`` package only, never ``notifier``. Pacing (1 call/s, 250/day on the starter tier)
is the scheduler's budget; this module only reports a 429 with a sensible ``retry_after``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import httpx

from carriers import base, errors, model
from carriers.dhl import parse

__all__ = ["DhlCarrier"]

TRACK_PATH = "/track/shipments"

# 1 call per second on the starter tier (reference 5.5): the first 429 in a row is taken as
# that limit. Another 429 right after a wait means the daily quota is spent, and DHL refuses
# until the quota resets at 24:00 GMT. Whether DHL sends Retry-After is unconfirmed
# (reference section 11); when it does, it wins.
PER_SECOND_RETRY_S = 1.0


class DhlCarrier:
    """``GET /track/shipments?trackingNumber=...`` with the ``DHL-API-Key`` header."""

    name: ClassVar[str] = "dhl"
    max_batch: ClassVar[int] = 1

    def __init__(self, settings: base.CarrierSettings, http: httpx.AsyncClient, *,
                 now: Callable[[], datetime], monotonic: Callable[[], float] = time.monotonic,
                 service: str | None = None) -> None:
        """``service`` is DHL's backend hint (``express``, ``parcel-de``...); without it DHL
        searches every backend (reference 5.2), which is the only option when it is unknown."""
        self._settings = settings
        self._http = http
        self._now = now
        self._monotonic = monotonic  # no token to expire; kept for the common constructor
        self._service = service
        self._url = settings.base_url.rstrip("/") + TRACK_PATH
        self._throttled_in_row = 0
        self.requests_made = 0

    async def track(self, numbers: Sequence[str]) -> model.BatchResult:
        """One result per number; "not found" is a ``missing`` result, a refused number a
        problem. Raises only when the whole call failed (see ``carriers.errors``)."""
        if len(numbers) > self.max_batch:
            raise ValueError(f"dhl tracks {self.max_batch} number per call, got {len(numbers)}")
        return await base.track_each(numbers, self._track_one)

    async def aclose(self) -> None:
        """Nothing to release: the shared ``httpx.AsyncClient`` belongs to the application."""

    async def _track_one(self, number: str) -> model.TrackingResult | str:
        # language=en: the phrase tables that refine DHL's coarse statusCode are English.
        params = {"trackingNumber": number, "language": "en"}
        if self._service:
            params["service"] = self._service
        headers = {"DHL-API-Key": self._settings.api_key, "Accept": "application/json"}
        async with base.http_errors(self.name):
            self.requests_made += 1
            response = await self._http.get(self._url, params=params, headers=headers,
                                            timeout=self._settings.timeout_s)
        if response.status_code == 429:
            self._throttled_in_row += 1
            raise self._rate_limited(response)
        self._throttled_in_row = 0
        if response.status_code == 404:
            detail = parse.not_found_detail(base.decode_json(self.name, response))
            return model.TrackingResult.missing(self.name, number, detail)
        if response.status_code == 400:
            # Bad parameters for this number: data about the number, not a failed call.
            return f"HTTP 400: {parse.not_found_detail(base.decode_json(self.name, response))}"
        base.raise_for_status(self.name, response, now=self._now())
        batch = parse.parse_payload(base.decode_json(self.name, response), now=self._now(),
                                    number=number)
        return _pick(batch.results, number)

    def _rate_limited(self, response: httpx.Response) -> errors.CarrierRateLimited:
        now = self._now()
        header = base.parse_retry_after(response.headers.get("Retry-After"), now=now)
        if header is not None:
            retry_after = header
        elif self._throttled_in_row >= 2:
            midnight = datetime.combine(now.astimezone(UTC).date() + timedelta(days=1),
                                        datetime.min.time(), tzinfo=UTC)
            retry_after = (midnight - now).total_seconds()
        else:
            retry_after = PER_SECOND_RETRY_S
        return errors.CarrierRateLimited(
            self.name, f"HTTP 429 rate limited ({self._throttled_in_row} in a row)",
            retry_after=retry_after, header_sent=header is not None)


def _pick(results: tuple[model.TrackingResult, ...], number: str) -> model.TrackingResult:
    """The shipment for ``number``: DHL may answer a piece id with its shipment, or list several
    shipments sharing the number across backends (then its own first choice is kept)."""
    chosen = next((r for r in results if r.tracking_number == number), results[0])
    return chosen if chosen.tracking_number == number else dataclasses.replace(
        chosen, tracking_number=number)
