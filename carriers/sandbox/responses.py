"""Each carrier's error responses (auth, rate limit, 5xx, bad request) and the fault bodies.

Bodies and headers follow /work/shared/reference/carriers.md; where the reference marks a code
or header unconfirmed the choice is commented. Header rules on 429:

* UPS: no ``Retry-After`` (reference 3.4: "429 without rate-limit headers");
* FedEx: none documented (4.5 unconfirmed) -> none sent;
* DHL: none documented (5.5 unconfirmed) -> none sent;
* USPS: ``Retry-After: <seconds>`` (6.5, spec).
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

from starlette.responses import JSONResponse, Response

from carriers.sandbox.payloads import dhl, fedex, ups, usps

__all__ = [
    "CARRIER_RETRY_AFTER",
    "bad_request",
    "html_page",
    "json_response",
    "malformed",
    "rate_limited",
    "retry_after_value",
    "server_error",
    "token_refused",
    "transaction_id",
    "unauthorized",
]

# Retry-After a carrier sends by itself on 429/503 (None: no header).
CARRIER_RETRY_AFTER: dict[str, str | None] = {"ups": None, "fedex": None, "dhl": None,
                                              "usps": "30"}
_PROBLEM = "application/problem+json"


def json_response(body: Any, status: int = 200, *, headers: dict[str, str] | None = None,
                  media_type: str = "application/json") -> Response:
    return JSONResponse(body, status_code=status, headers=headers, media_type=media_type)


def transaction_id() -> str:
    return str(uuid.uuid4())


def _headers(retry_after: str | None) -> dict[str, str] | None:
    return {"Retry-After": retry_after} if retry_after is not None else None


def unauthorized(carrier: str, reason: str, *, api_version: str = "/tracking/v3") -> Response:
    """401 for a tracking call whose bearer token is missing/invalid/expired/out of scope."""
    if carrier == "ups":
        # Codes apply to all UPS APIs (reference 3.4): UJ0001 missing/invalid, 251004 expired.
        code, msg = (("251004", "Bearer token expired") if reason == "expired"
                     else ("UJ0001", "Invalid token or token is not present."))
        return json_response(ups.error(code, msg), 401)
    if carrier == "fedex":
        msg = ("Access token expired. Please modify your request and try again."
               if reason == "expired" else
               "The given JWT is invalid. Please modify your request and try again.")
        return json_response(fedex.error("NOT.AUTHORIZED.ERROR", msg,
                                         transaction_id=transaction_id()), 401)
    if carrier == "dhl":
        # Exact DHL 401 body unconfirmed (5.1); problem JSON like its other errors.
        return json_response(dhl.problem(401, "Unauthorized",
                                         "Invalid or missing API key (DHL-API-Key header)."),
                             401, media_type=_PROBLEM)
    msg = ("The client application identifier is invalid." if reason == "scope"
           else "Unauthorized: the access token is missing, invalid or expired.")
    return json_response(usps.error("401", msg, api_version=api_version), 401)


def token_refused(carrier: str, *, bad_request: str | None = None) -> Response:
    """The token endpoint refusing credentials (401) or a malformed grant request (400)."""
    if carrier == "ups":
        if bad_request:  # UPS OAuth 400 code unconfirmed; the envelope is documented
            return json_response(ups.error("10001", bad_request), 400)
        # karrio expects 250003 on an authentication failure (reference 3.1, obs).
        return json_response(ups.error("250003", "Invalid Access License number"), 401)
    if carrier == "fedex":
        if bad_request:
            return json_response(fedex.error("BAD.REQUEST.ERROR", bad_request,
                                             transaction_id=transaction_id()), 400)
        return json_response(fedex.error(
            "NOT.AUTHORIZED.ERROR", "The given client credentials were not valid. Please "
            "modify your request and try again.", transaction_id=transaction_id()), 401)
    if bad_request:
        return json_response({"error": bad_request.split(":")[0],
                              "error_description": bad_request}, 400)
    return json_response({"error": "invalid_client",
                          "error_description": "Client authentication failed.",
                          "error_uri": "https://datatracker.ietf.org/doc/html/rfc6749#page-45"},
                         401)


def rate_limited(carrier: str, *, window: str, retry_after_s: float | None,
                 header: str | None, token_endpoint: bool = False,
                 api_version: str = "/tracking/v3") -> Response:
    """429 in the carrier's own shape. ``header`` is the Retry-After value to send (or None);
    ``retry_after_s`` is only used in texts."""
    daily = window == "day"
    if carrier == "ups":
        # Body seen on another UPS API (reference 3.4, obs issue #123).
        return json_response(ups.error("10429", "Too Many Requests"), 429,
                             headers=_headers(header))
    if carrier == "fedex":
        # Messages from FedEx's quota guide (4.5); the JSON code itself is unconfirmed.
        msg = ("Too many requests - Daily transaction quota exceeded. Retry after 12:00AM GMT"
               if daily else "We have received too many requests in a short duration. "
               "Please wait a while to try again.")
        return json_response(fedex.error("TOO.MANY.REQUESTS.ERROR", msg,
                                         transaction_id=transaction_id()),
                             429, headers=_headers(header))
    if carrier == "dhl":
        detail = ("The daily request quota is used up; it resets at 00:00 GMT." if daily
                  else "Too many requests per second.")
        return json_response(dhl.problem(429, "Too Many Requests", detail), 429,
                             headers=_headers(header), media_type=_PROBLEM)
    if token_endpoint:  # USPS OAuth errors are OAuth-shaped (6.1); the error code is ours
        return json_response({"error": "too_many_requests",
                              "error_description": "Quota limit exceeded."}, 429,
                             headers=_headers(header))
    # Real USPS quota body (reference 6.5, obs magento/quality-patches#154).
    body = usps.error("429", "Exceeded quota limit. Please contact "
                      "https://emailus.usps.com/s/web-tools-inquiry and a representative will "
                      "assist.", api_version=api_version, errors=[{
                          "title": "Too Many Requests.",
                          "detail": "Quota limit exceeded. The number of requests has exceeded "
                                    "the quota established for the time period.",
                          "status": "429",
                          "source": {"parameter": "API product or default",
                                     "APIProduct": "Public Access I"}}])
    return json_response(body, 429, headers=_headers(header))


def retry_after_value(seconds: float) -> str:
    """Delta-seconds for a header: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))


def server_error(carrier: str, status: int, *, header: str | None,
                 api_version: str = "/tracking/v3") -> Response:
    if carrier == "ups":
        body: Any = ups.error("10004", "Something went wrong. Please try again later.")
    elif carrier == "fedex":
        code = "SERVICE.UNAVAILABLE.ERROR" if status == 503 else "INTERNAL.SERVER.ERROR"
        body = fedex.error(code, "The service is currently unavailable and we are working to "
                           "resolve the issue. We apologize for any inconvenience. Please "
                           "check back at a later time.", transaction_id=transaction_id())
    elif carrier == "dhl":
        return json_response(dhl.problem(status, "Service Unavailable" if status == 503
                                         else "Internal Server Error", "Please try again later."),
                             status, headers=_headers(header), media_type=_PROBLEM)
    else:
        body = usps.error(str(status), "Service Unavailable" if status == 503
                          else "Internal Server Error", api_version=api_version)
    return json_response(body, status, headers=_headers(header))


def bad_request(carrier: str, code: str, message: str, *,
                api_version: str = "/tracking/v3") -> Response:
    if carrier == "ups":
        return json_response(ups.error(code, message), 400)
    if carrier == "fedex":
        return json_response(fedex.error(code, message, transaction_id=transaction_id()), 400)
    if carrier == "dhl":
        return json_response(dhl.problem(400, "Bad Request", message), 400,
                             media_type=_PROBLEM)
    return json_response(usps.error("400", message, api_version=api_version, errors=[
        {"status": "400", "code": code, "title": "Bad Request", "detail": message}]), 400)


def html_page(status: int) -> Response:
    """What a gateway or maintenance page looks like: HTML where JSON was expected."""
    title = "Service Temporarily Unavailable" if status >= 500 else "Scheduled Maintenance"
    body = (f"<!DOCTYPE html>\n<html><head><title>{status} {title}</title></head>\n"
            f"<body><h1>{title}</h1><p>The server is temporarily unable to service your "
            f"request. Please try again later.</p><hr><address>Apache</address></body></html>\n")
    return Response(body, status_code=status, media_type="text/html; charset=utf-8")


def malformed(body: Any, status: int = 200) -> Response:
    """The real body cut off mid-way: invalid JSON with a JSON content type."""
    text = json.dumps(body)
    cut = max(1, len(text) * 3 // 5)
    return Response(text[:cut], status_code=status, media_type="application/json")
