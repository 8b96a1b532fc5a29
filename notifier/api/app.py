"""The HTTP API as a Starlette application (routes, error shape, auth, body limits).

Routes (JSON unless noted; ``/v1`` is the versioned API):

- ``GET /healthz`` (open): 200 when the database is writable and the scheduler ticks, else 503.
- ``GET /metrics`` (open, Prometheus text): aggregate counts only, no customer data; the
  listener is loopback by default. Expose it beyond loopback only behind a proxy that
  restricts who may scrape.
- ``GET /v1/track?order=&email=`` (open, rate-limited per client): a customer's own order;
  an unknown order and a wrong e-mail get the same 404.
- ``GET|POST /v1/unsubscribe?token=`` (open, the token is an HMAC; also served at the path
  and ``t=`` parameter the message links use, ``notifier.unsubscribe.unsubscribe_url``): GET
  shows a confirmation page (HTML), POST unsubscribes (RFC 8058 one-click: 200, no
  redirect). Idempotent.
- Bearer token: ``PUT /v1/orders/{id}``, ``POST /v1/orders/{id}/status``, ``POST
  /v1/orders/{id}/shipments``, ``POST /v1/orders/{id}/disputes``, ``POST
  /v1/disputes/{id}/resolve``, ``PUT /v1/customers/{email}/devices``, ``GET /v1/anomalies``.

Errors are ``{"error": "...", "field": "..."}``: 400 malformed JSON, 401 no or wrong token,
404 not found, 413 body over ``api.max_body_bytes`` (refused from Content-Length before
reading, or as soon as a chunked body passes the limit), 415 not JSON, 422 invalid field,
429 rate-limited (with Retry-After). Settings are read per request, so a SIGHUP reload
changes tokens and limits at once (the listen address needs a restart).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

import carriers
from notifier import metrics, models, unsubscribe
from notifier.api import auth, pages, schemas
from notifier.api.ratelimit import RateLimiter
from notifier.api.views import anomaly_json, dispute_json, track_json
from notifier.app import App
from notifier.errors import InputError, NotFound
from notifier.store.base import OrderInput
from notifier.unsubscribe import UNSUBSCRIBE_PATH

__all__ = ["ApiError", "HealthProbe", "create_app"]

logger = logging.getLogger(__name__)

# Returns {"running": bool, "healthy": bool, "last_tick_age_s": float | None, ...}.
HealthProbe = Callable[[], Mapping[str, Any]]
Handler = Callable[[Request], Awaitable[Response]]


class ApiError(Exception):
    def __init__(self, status: int, error: str, field: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.field = field
        self.headers = dict(headers or {})


def _error(status: int, error: str, field: str | None = None,
           headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "field": field}, status_code=status,
                        headers=dict(headers or {}))


class _Api:
    def __init__(self, app: App, health: HealthProbe | None, limiter: RateLimiter) -> None:
        self.app = app
        self.health = health
        self.limiter = limiter

    # ------------------------------------------------------------------ plumbing

    def protected(self, handler: Handler) -> Handler:
        async def check(request: Request) -> Response:
            tokens = self.app.settings.api.tokens
            if not auth.token_ok(auth.bearer_token(request.headers), tokens):
                raise ApiError(401, "missing or invalid bearer token", None,
                               {"WWW-Authenticate": 'Bearer realm="notifier"'})
            return await handler(request)
        return check

    async def body(self, request: Request) -> dict[str, Any]:
        """The JSON object body, refused with 413 as soon as it is known to be too big."""
        limit = self.app.settings.api.max_body_bytes
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise ApiError(400, "bad Content-Length header", "body")
            if int(length) > limit:
                raise ApiError(413, f"body larger than {limit} bytes", "body")
        ctype = request.headers.get("content-type", "application/json")
        if ctype.split(";")[0].strip().lower() not in ("application/json", ""):
            raise ApiError(415, "expected Content-Type: application/json", "body")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > limit:
                raise ApiError(413, f"body larger than {limit} bytes", "body")
        try:
            value = json.loads(bytes(data), parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            raise ApiError(400, f"malformed JSON: {exc}", "body") from None
        if not isinstance(value, dict):
            raise ApiError(422, "expected a JSON object", "body")
        return value

    def now(self) -> datetime:
        return self.app.clock.now()

    # ------------------------------------------------------------------ open endpoints

    async def healthz(self, request: Request) -> Response:
        report: dict[str, Any] = {}
        ok = True
        try:
            await asyncio.wait_for(self.app.store.check_writable(), timeout=5.0)
            report["database"] = {"writable": True}
        except Exception as exc:  # any failure is the answer, not a crash
            ok = False
            report["database"] = {"writable": False, "error": str(exc) or type(exc).__name__}
        if self.health is None:
            report["scheduler"] = {"monitored": False}
        else:
            sched = dict(self.health())
            report["scheduler"] = sched
            ok = ok and bool(sched.get("healthy"))
        report["status"] = "ok" if ok and not self.app.stopping else "unavailable"
        if self.app.stopping:
            report["stopping"] = True
        return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503,
                            headers={"Cache-Control": "no-store"})

    async def metrics(self, request: Request) -> Response:
        await refresh_gauges(self.app)
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    async def track(self, request: Request) -> Response:
        client = request.client.host if request.client else "unknown"
        wait = self.limiter.hit(client, self.app.settings.api.track_rate_per_minute)
        if wait > 0:
            raise ApiError(429, "too many lookups; try again later", None,
                           {"Retry-After": RateLimiter.retry_after_header(wait)})
        order_id, email = schemas.track_query(request.query_params)
        miss = ApiError(404, "no order matches this order number and e-mail address")
        try:
            order = await self.app.store.get_order(order_id)
        except NotFound:
            raise miss from None
        if not auth.token_ok(email.casefold(), [order.customer.email.casefold()]):
            raise miss
        details = await self.app.store.order_details(order_id)
        return JSONResponse(track_json(details), headers={"Cache-Control": "no-store"})

    async def unsubscribe_page(self, request: Request) -> Response:
        found = self._unsubscribe_token(request)
        if found is None:
            return HTMLResponse(pages.invalid_page(), status_code=400, headers=pages.HEADERS)
        email, channel = found
        action = f"{request.url.path}?{request.url.query}"
        return HTMLResponse(pages.confirm_page(action=action, email=email, channel=channel,
                                               shop=self.app.settings.templates.shop_name),
                            headers=pages.HEADERS)

    async def unsubscribe(self, request: Request) -> Response:
        # RFC 8058: the body is "List-Unsubscribe=One-Click"; the token in the URL is what
        # counts, so the body is not needed (and not read).
        found = self._unsubscribe_token(request)
        wants_html = "text/html" in request.headers.get("accept", "")
        if found is None:
            if wants_html:
                return HTMLResponse(pages.invalid_page(), status_code=400,
                                    headers=pages.HEADERS)
            raise ApiError(400, "invalid unsubscribe token", "token")
        email, channel = found
        await self.app.store.unsubscribe(email, channel, now=self.now())
        logger.info("unsubscribed a recipient from %s", channel)
        if wants_html:
            return HTMLResponse(pages.done_page(email=email, channel=channel,
                                                shop=self.app.settings.templates.shop_name),
                                headers=pages.HEADERS)
        return JSONResponse({"unsubscribed": True, "channel": channel},
                            headers=pages.HEADERS)

    def _unsubscribe_token(self, request: Request) -> tuple[str, str] | None:
        # "t" is what notifier.unsubscribe.unsubscribe_url writes; "token" reads better in docs.
        token = request.query_params.get("token") or request.query_params.get("t") or ""
        secret = self.app.settings.api.unsubscribe_secret
        if not token or not secret:
            return None
        found = unsubscribe.verify_token(token, secret.reveal())
        return None if found is None else (str(found[0]), str(found[1]))

    # ------------------------------------------------------------------ integration

    async def put_order(self, request: Request) -> Response:
        order_id = request.path_params["order_id"]
        checked = schemas.order_body(order_id, await self.body(request))
        summary = await self.app.store.upsert_orders([checked.order], now=self.now())
        order = await self.app.store.get_order(order_id)
        logger.info("api: order %s upserted (%s)", order_id,
                    "created" if summary.created else "updated" if summary.updated
                    else "unchanged")
        return JSONResponse(
            {"order": order_id, "created": bool(summary.created),
             "updated": bool(summary.updated), "shipments_added": summary.shipments_added,
             "status": models.derive_order_status(order.oms_status, order.shipments),
             "warnings": list(checked.warnings)},
            status_code=201 if summary.created else 200)

    async def post_status(self, request: Request) -> Response:
        order_id = request.path_params["order_id"]
        body = schemas.status_body(await self.body(request))
        order = await self.app.store.set_oms_status(
            order_id, body.status, now=self.now(), expected_ship_date=body.expected_ship_date)
        return JSONResponse({"order": order.id, "oms_status": order.oms_status.value,
                             "status": models.derive_order_status(order.oms_status,
                                                                  order.shipments)})

    async def post_shipments(self, request: Request) -> Response:
        order_id = request.path_params["order_id"]
        body = schemas.shipments_body(await self.body(request))
        order = await self.app.store.get_order(order_id)
        summary = await self.app.store.upsert_orders(
            [OrderInput(id=order_id, email=order.customer.email, shipments=body.shipments)],
            now=self.now())
        return JSONResponse({"order": order_id, "shipments_added": summary.shipments_added,
                             "warnings": list(body.warnings)},
                            status_code=201 if summary.shipments_added else 200)

    async def post_dispute(self, request: Request) -> Response:
        order_id = request.path_params["order_id"]
        body = schemas.dispute_body(await self.body(request))
        before = {d.id for d in await self.app.store.open_disputes_for_order(order_id)}
        try:
            dispute = await self.app.store.open_dispute(order_id, body.tracking_number,
                                                        body.reason, now=self.now())
        except InputError as exc:
            # The store names the shipment; in this API it is the "tracking" member.
            raise ApiError(422, str(exc).replace("--shipment", '"tracking"'),
                           "tracking" if exc.field == "shipment" else exc.field) from None
        return JSONResponse(dispute_json(dispute),
                            status_code=200 if dispute.id in before else 201)

    async def resolve_dispute(self, request: Request) -> Response:
        dispute_id = request.path_params["dispute_id"]
        body = schemas.resolve_body(await self.body(request))
        dispute = await self.app.store.resolve_dispute(dispute_id, body.resolution.value,
                                                       body.note, now=self.now())
        return JSONResponse(dispute_json(dispute))

    async def put_device(self, request: Request) -> Response:
        email = request.path_params["email"]
        body = schemas.device_body(email, await self.body(request))
        await self.app.store.upsert_device(email, body.channel, body.token, now=self.now())
        return JSONResponse({"email": email, "channel": body.channel, "registered": True})

    async def anomalies(self, request: Request) -> Response:
        q = schemas.anomaly_query(request.query_params)
        found = await self.app.store.list_anomalies(kind=q.kind, carrier=q.carrier,
                                                    open_only=q.open_only, limit=q.limit)
        return JSONResponse({"anomalies": [anomaly_json(a) for a in found],
                             "count": len(found), "limit": q.limit})


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def refresh_gauges(app: App) -> None:
    """Set the gauges that mirror the database just before a scrape. Every known label gets
    a value (0 included) so series do not vanish when a count drops to zero."""
    store = app.store
    due = await store.due_counts_by_carrier(app.clock.now())
    anomalies = await store.open_anomaly_counts()
    outbox = await store.outbox_counts()
    for carrier in {*carriers.NAMES, *due}:
        metrics.due_backlog.labels(carrier=carrier).set(due.get(carrier, 0))
    for kind in {*(k.value for k in models.AnomalyKind), *anomalies}:
        metrics.anomalies_open.labels(kind=kind).set(anomalies.get(kind, 0))
    for status in {*(s.value for s in models.NotificationStatus), *outbox}:
        metrics.outbox.labels(status=status).set(outbox.get(status, 0))


# The links in messages (notifier.unsubscribe.UNSUBSCRIBE_PATH) and the versioned name.
UNSUBSCRIBE_PATHS = tuple(dict.fromkeys(("/v1/unsubscribe", UNSUBSCRIBE_PATH)))


def create_app(app: App, *, health: HealthProbe | None = None,
               limiter: RateLimiter | None = None) -> Starlette:
    """The ASGI application serving ``app``'s store. ``health`` reports the scheduler."""
    api = _Api(app, health, limiter or RateLimiter())
    p = api.protected
    routes = [
        Route("/healthz", api.healthz, methods=["GET"]),
        Route("/metrics", api.metrics, methods=["GET"]),
        Route("/v1/track", api.track, methods=["GET"]),
        *(Route(path, api.unsubscribe_page, methods=["GET"]) for path in UNSUBSCRIBE_PATHS),
        *(Route(path, api.unsubscribe, methods=["POST"]) for path in UNSUBSCRIBE_PATHS),
        Route("/v1/orders/{order_id}", p(api.put_order), methods=["PUT"]),
        Route("/v1/orders/{order_id}/status", p(api.post_status), methods=["POST"]),
        Route("/v1/orders/{order_id}/shipments", p(api.post_shipments), methods=["POST"]),
        Route("/v1/orders/{order_id}/disputes", p(api.post_dispute), methods=["POST"]),
        Route("/v1/disputes/{dispute_id:int}/resolve", p(api.resolve_dispute),
              methods=["POST"]),
        Route("/v1/customers/{email}/devices", p(api.put_device), methods=["PUT"]),
        Route("/v1/anomalies", p(api.anomalies), methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={
        ApiError: _api_error, InputError: _input_error, NotFound: _not_found,
        HTTPException: _http_error, Exception: _server_error})


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _error(exc.status, exc.error, exc.field, exc.headers)


async def _input_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InputError)
    return _error(422, str(exc), exc.field)


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error(404, str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, exc.detail, None, exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    logger.error("api: %s %s failed", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal error")
