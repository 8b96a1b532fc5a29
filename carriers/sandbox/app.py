"""The carrier sandbox as one starlette app: all four carriers' token and tracking endpoints on
one host (their paths do not collide), plus the ``/_sandbox/*`` control endpoints.

Carrier paths (reference carriers.md sections 3-6):
UPS ``POST /security/v1/oauth/token``, ``GET /api/track/v1/details/{n}``;
FedEx ``POST /oauth/token``, ``POST /track/v1/trackingnumbers``;
DHL ``GET /track/shipments``;
USPS ``POST /oauth2/v3/token``, ``GET /tracking/v3/tracking/{n}``, ``POST /tracking/v3r2/tracking``.

Every carrier request goes through the same gate, in this order: fault injection (429, 5xx,
HTML, slow, malformed), authentication, daily-quota fault, configured quota, request
validation, then the scenario's payload. Control endpoints are in ``control.py``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from carriers.sandbox import responses as r
from carriers.sandbox.control import CONTROL_ROUTES
from carriers.sandbox.faults import FaultKind
from carriers.sandbox.payloads import dhl, fedex, ups, usps
from carriers.sandbox.quota import Quota
from carriers.sandbox.state import USPS_DEFAULT_SCOPES, SandboxCredentials, SandboxState

__all__ = ["create_app"]

FEDEX_MAX_BATCH = 30
USPS_MAX_BATCH = 35


def _state(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


async def _faults(request: Request, carrier: str, endpoint: str, *,
                  api_version: str = "/tracking/v3") -> tuple[Response | None, bool]:
    """Apply the next queued fault: a response to send instead, and/or "mangle the body"."""
    st = _state(request)
    fault = st.faults.take(carrier, endpoint)
    if fault is None:
        return None, False
    stats = st.stats[carrier]
    header = r.CARRIER_RETRY_AFTER[carrier] if fault.carrier_default else fault.retry_after
    if fault.kind is FaultKind.rate_limited:
        stats.bump("429_fault")
        return r.rate_limited(carrier, window="burst", retry_after_s=None, header=header,
                              token_endpoint=endpoint == "token", api_version=api_version), False
    if fault.kind is FaultKind.server_error:
        stats.bump("5xx")
        return r.server_error(carrier, fault.status or 503, header=header,
                              api_version=api_version), False
    stats.bump("faults_other")
    if fault.kind is FaultKind.html:
        return r.html_page(fault.status or 200), False
    if fault.kind is FaultKind.slow:
        await asyncio.sleep(fault.delay_s)
        if await request.is_disconnected():
            # The client gave up (timeout): do no further work, so a late request cannot
            # touch tokens, quotas or statistics after the caller has moved on.
            return Response(status_code=499), False
        return None, False
    return None, fault.kind is FaultKind.malformed


def _quota(st: SandboxState, carrier: str, *, token_endpoint: bool = False,
           api_version: str = "/tracking/v3") -> Response | None:
    """A 429 when the carrier's daily quota was exhausted by a fault or a quota refuses."""
    meter = st.quotas.get(carrier)
    quota = meter.quota if meter is not None else Quota()
    if token_endpoint and not quota.counts_tokens(carrier):
        return None
    now = st.now().astimezone(UTC)
    if st.faults.quota_exhausted(carrier, now.date()):
        st.stats[carrier].bump("429_fault")
        midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
        seconds = (midnight - now).total_seconds()
        header = r.retry_after_value(seconds) if carrier == "usps" else None
        return r.rate_limited(carrier, window="day", retry_after_s=seconds, header=header,
                              token_endpoint=token_endpoint, api_version=api_version)
    if meter is None:
        return None
    refusal = meter.admit()
    if refusal is None:
        return None
    st.stats[carrier].bump("429_quota")
    header = r.retry_after_value(refusal.retry_after_s) if carrier == "usps" else None
    return r.rate_limited(carrier, window=refusal.window, retry_after_s=refusal.retry_after_s,
                          header=header, token_endpoint=token_endpoint, api_version=api_version)


def _out(body: Any, mangle: bool, status: int = 200, **kw: Any) -> Response:
    return r.malformed(body, status) if mangle else r.json_response(body, status, **kw)


def _is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == \
        "application/x-www-form-urlencoded"


async def _form(request: Request) -> dict[str, str]:
    return dict(parse_qsl((await request.body()).decode("utf-8", "replace"),
                          keep_blank_values=True))


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return None


def _ms() -> int:
    return int(time.time() * 1000)  # issued_at is wall-clock epoch ms (protocol-level)


def _alnum(number: str, low: int, high: int) -> bool:
    return number.isascii() and number.isalnum() and low <= len(number) <= high


# --- UPS -----------------------------------------------------------------------------------


async def ups_token(request: Request) -> Response:
    st = _state(request)
    st.stats["ups"].bump("token_requests")
    early, mangle = await _faults(request, "ups", "token")
    if early is not None:
        return early
    if (refused := _quota(st, "ups", token_endpoint=True)) is not None:
        return refused
    creds = st.credentials
    if _basic(request.headers.get("authorization")) != (creds.client_id, creds.client_secret):
        return r.token_refused("ups")
    if not _is_form(request):
        return r.json_response(ups.error("10007", "Unsupported content type"), 400)
    if (await _form(request)).get("grant_type") != "client_credentials":
        return r.token_refused("ups", bad_request="grant_type must be client_credentials")
    token, lifetime = st.issue_token("ups")
    return _out(ups.token_body(client_id=creds.client_id, access_token=token,
                               expires_in=lifetime, issued_at_ms=_ms()), mangle)


def _basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


async def ups_track(request: Request) -> Response:
    st = _state(request)
    stats = st.stats["ups"]
    stats.bump("requests")
    early, mangle = await _faults(request, "ups", "track")
    if early is not None:
        return early
    check = st.check_bearer("ups", request.headers.get("authorization"))
    if check != "ok":
        stats.bump("401")
        return r.unauthorized("ups", check)
    if (refused := _quota(st, "ups")) is not None:
        return refused
    # Required headers (checklist row 2). The Track API's codes for these are unconfirmed;
    # the Track Alert table uses VSS002/VSS004, reused here.
    if not request.headers.get("transId"):
        return r.bad_request("ups", "VSS002", "Missing or invalid transId")
    if not request.headers.get("transactionSrc"):
        return r.bad_request("ups", "VSS004", "Missing or invalid transactionSrc")
    number = request.path_params["number"].strip()
    if not _alnum(number, 7, 34):
        # HTTP status of TV1002 unconfirmed (reference 3.4); 400 is the likeliest.
        return r.bad_request("ups", "TV1002", "Invalid inquiry number")
    stats.bump("numbers")
    return _out(ups.track_body(st.view("ups", number)), mangle)


# --- FedEx ---------------------------------------------------------------------------------


async def fedex_token(request: Request) -> Response:
    st = _state(request)
    st.stats["fedex"].bump("token_requests")
    early, mangle = await _faults(request, "fedex", "token")
    if early is not None:
        return early
    if (refused := _quota(st, "fedex", token_endpoint=True)) is not None:
        return refused
    if not _is_form(request):
        return r.token_refused("fedex", bad_request="Content-Type must be "
                               "application/x-www-form-urlencoded")
    form = await _form(request)
    creds = st.credentials
    if (form.get("client_id"), form.get("client_secret")) != (creds.client_id,
                                                               creds.client_secret):
        return r.token_refused("fedex")
    if form.get("grant_type") != "client_credentials":
        return r.token_refused("fedex", bad_request="grant_type must be client_credentials")
    token, lifetime = st.issue_token("fedex")
    return _out(fedex.token_body(access_token=token, expires_in=lifetime), mangle)


def _fedex_numbers(body: Any) -> list[str] | None:
    if not isinstance(body, dict) or not isinstance(body.get("trackingInfo"), list):
        return None
    numbers = []
    for item in body["trackingInfo"]:
        info = item.get("trackingNumberInfo") if isinstance(item, dict) else None
        number = info.get("trackingNumber") if isinstance(info, dict) else None
        if not isinstance(number, str) or not number.strip():
            return None
        numbers.append(number.strip())
    return numbers


async def fedex_track(request: Request) -> Response:
    st = _state(request)
    stats = st.stats["fedex"]
    stats.bump("requests")
    early, mangle = await _faults(request, "fedex", "track")
    if early is not None:
        return early
    check = st.check_bearer("fedex", request.headers.get("authorization"))
    if check != "ok":
        stats.bump("401")
        return r.unauthorized("fedex", check)
    if (refused := _quota(st, "fedex")) is not None:
        return refused
    body = await _json(request)
    numbers = _fedex_numbers(body)
    if not numbers:
        return r.bad_request("fedex", "TRACKING.TRACKINGNUMBER.EMPTY",
                             "Please provide tracking number.")
    if len(numbers) > FEDEX_MAX_BATCH:
        # The limit is documented (30); the error code for exceeding it is not.
        return r.bad_request("fedex", "TRACKING.TRACKINGNUMBER.LIMIT.EXCEEDED",
                             f"At most {FEDEX_MAX_BATCH} tracking numbers per request.")
    stats.bump("numbers", len(numbers))
    detailed = bool(body.get("includeDetailedScans"))
    elements = [fedex.track_result(st.view("fedex", n), detailed=detailed, seed=st.seed)
                for n in numbers]
    return _out(fedex.track_body(
        elements, transaction_id=r.transaction_id(),
        customer_transaction_id=request.headers.get("x-customer-transaction-id")), mangle)


# --- DHL -----------------------------------------------------------------------------------


async def dhl_track(request: Request) -> Response:
    st = _state(request)
    stats = st.stats["dhl"]
    stats.bump("requests")
    early, mangle = await _faults(request, "dhl", "track")
    if early is not None:
        return early
    if request.headers.get("DHL-API-Key") != st.credentials.dhl_api_key:
        stats.bump("401")
        return r.unauthorized("dhl", "invalid")
    if (refused := _quota(st, "dhl")) is not None:
        return refused
    number = (request.query_params.get("trackingNumber") or "").strip()
    if not number:
        return r.bad_request("dhl", "", "Missing required parameter trackingNumber.")
    stats.bump("numbers")
    # The ``service`` hint is accepted and ignored: each sandbox number lives in one backend.
    view = st.view("dhl", number)
    if not view.found:
        return _out(dhl.not_found(number), mangle, 404, media_type="application/problem+json")
    return _out(dhl.track_body(view), mangle, headers={"Content-Language": "en"})


# --- USPS ----------------------------------------------------------------------------------


async def usps_token(request: Request) -> Response:
    st = _state(request)
    st.stats["usps"].bump("token_requests")
    early, mangle = await _faults(request, "usps", "token")
    if early is not None:
        return early
    if (refused := _quota(st, "usps", token_endpoint=True)) is not None:
        return refused
    if _is_form(request):
        fields: Any = await _form(request)
    else:  # the spec allows JSON bodies as well (reference 6.1)
        fields = await _json(request)
    if not isinstance(fields, dict):
        return r.token_refused("usps", bad_request="invalid_request: body must be a form or "
                               "a JSON object")
    if fields.get("grant_type") != "client_credentials":
        return r.token_refused("usps", bad_request="unsupported_grant_type: use "
                               "client_credentials")
    creds = st.credentials
    if (fields.get("client_id"), fields.get("client_secret")) != (creds.client_id,
                                                                   creds.client_secret):
        return r.token_refused("usps")
    scope = fields.get("scope")
    scopes = frozenset(str(scope).split()) if scope else USPS_DEFAULT_SCOPES
    token, lifetime = st.issue_token("usps", scopes)
    return _out(usps.token_body(access_token=token, expires_in=lifetime, issued_at_ms=_ms(),
                                client_id=creds.client_id, scope=" ".join(sorted(scopes))),
                mangle)


async def _usps_gate(request: Request, api_version: str) -> tuple[Response | None, bool]:
    st = _state(request)
    stats = st.stats["usps"]
    stats.bump("requests")
    early, mangle = await _faults(request, "usps", "track", api_version=api_version)
    if early is not None:
        return early, False
    check = st.check_bearer("usps", request.headers.get("authorization"), scope="tracking")
    if check != "ok":
        stats.bump("401")
        return r.unauthorized("usps", check, api_version=api_version), False
    return _quota(st, "usps", api_version=api_version), mangle


async def usps_track_v3(request: Request) -> Response:
    api = "/tracking/v3"
    early, mangle = await _usps_gate(request, api)
    if early is not None:
        return early
    st = _state(request)
    number = request.path_params["number"].strip()
    if not _alnum(number, 4, 34):  # exact 400 body unconfirmed (reference 6.5)
        return r.bad_request("usps", "150001", "Invalid tracking number.", api_version=api)
    st.stats["usps"].bump("numbers")
    view = st.view("usps", number)
    if not view.found:
        return _out(usps.not_found_detail(view.timeline.number), mangle, 404)
    expand = request.query_params.get("expand", "SUMMARY").upper()
    return _out(usps.v3_detail(view) if expand == "DETAIL" else usps.v3_summary(view), mangle)


async def usps_track_v3r2(request: Request) -> Response:
    api = "/tracking/v3r2"
    early, mangle = await _usps_gate(request, api)
    if early is not None:
        return early
    st = _state(request)
    body = await _json(request)
    items = body if isinstance(body, list) else None
    numbers = [i.get("trackingNumber") for i in items or [] if isinstance(i, dict)]
    if (not items or len(numbers) != len(items)
            or not all(isinstance(n, str) and _alnum(n.strip(), 4, 34) for n in numbers)):
        return r.bad_request("usps", "150001", "The body must be an array of objects with a "
                             "4-34 character alphanumeric trackingNumber.", api_version=api)
    if len(numbers) > USPS_MAX_BATCH:
        return r.bad_request("usps", "150002", f"At most {USPS_MAX_BATCH} tracking numbers "
                             "per request.", api_version=api)
    st.stats["usps"].bump("numbers", len(numbers))
    result = [usps.v3r2_item(st.view("usps", str(n).strip())) for n in numbers]
    # 200 when every item succeeded, 207 multi-status as soon as one failed (reference 6.2).
    status = 200 if all(i["statusCode"] == "200" for i in result) else 207
    return _out(result, mangle, status)


CARRIER_ROUTES: list[Route] = [
    Route("/security/v1/oauth/token", ups_token, methods=["POST"]),
    Route("/api/track/v1/details/{number}", ups_track, methods=["GET"]),
    Route("/oauth/token", fedex_token, methods=["POST"]),
    Route("/track/v1/trackingnumbers", fedex_track, methods=["POST"]),
    Route("/track/shipments", dhl_track, methods=["GET"]),
    Route("/oauth2/v3/token", usps_token, methods=["POST"]),
    Route("/tracking/v3/tracking/{number}", usps_track_v3, methods=["GET"]),
    Route("/tracking/v3r2/tracking", usps_track_v3r2, methods=["POST"]),
]


def create_app(*, now: Callable[[], datetime], credentials: SandboxCredentials | None = None,
               seed: int = 0, quotas: Mapping[str, Quota] | None = None,
               token_lifetimes: Mapping[str, int] | None = None,
               monotonic: Callable[[], float] = time.monotonic) -> Starlette:
    """The sandbox app. ``now`` is the shared simulated clock (aware UTC datetimes);
    ``monotonic`` is the real clock for token lifetimes and 1 s / 10 s quota windows (tests
    may inject a fake one); ``token_lifetimes`` overrides the documented ``expires_in`` per
    carrier; ``quotas`` are enforced only for the carriers given. The state is reachable as
    ``app.state.sandbox`` (a :class:`SandboxState`)."""
    state = SandboxState(now=now, monotonic=monotonic,
                         credentials=credentials or SandboxCredentials(), seed=seed,
                         quotas=quotas, token_lifetimes=token_lifetimes)
    app = Starlette(routes=[*CARRIER_ROUTES, *CONTROL_ROUTES])
    app.state.sandbox = state
    return app
