"""Validation of HTTP API bodies and query strings. Pure.

Each function takes the decoded JSON object (or the query parameters) and returns typed values
or raises :class:`~notifier.errors.InputError` whose ``field`` names the offending member as a
path (``email``, ``shipments[1].tracking``); the API turns it into ``422 {"error", "field"}``.
Orders go through :func:`notifier.validate.order_from_fields`, the import's own rules; unknown
members are refused so that a typo (``"promise"``) is not silently ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlsplit

import carriers
from notifier import validate
from notifier.errors import InputError
from notifier.models import AnomalyKind, DisputeResolution, OmsStatus
from notifier.store.base import ShipmentInput

__all__ = [
    "AnomalyQuery",
    "DeviceBody",
    "DisputeBody",
    "ResolveBody",
    "ShipmentsBody",
    "StatusBody",
    "anomaly_query",
    "device_body",
    "dispute_body",
    "order_body",
    "resolve_body",
    "shipments_body",
    "status_body",
    "track_query",
]

MAX_SHIPMENTS = 50
MAX_TEXT = 2000
MAX_TOKEN = 4096
PUSH_CHANNELS = ("fcm", "apns", "webpush", "webhook")
_ORDER_KEYS = frozenset({"order", "email", "name", "locale", "tz", "promised", "status",
                         "expected_ship", "channels", "shipments"})
_ORDER_TEXT_KEYS = ("order", "email", "name", "locale", "tz", "promised", "status",
                    "expected_ship")
_SHIPMENT_KEYS = frozenset({"carrier", "tracking"})
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_WHERE = re.compile(r"^(shipments\[\d+\])\.")


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusBody:
    status: OmsStatus
    expected_ship_date: date | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ShipmentsBody:
    shipments: tuple[ShipmentInput, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class DisputeBody:
    tracking_number: str | None
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolveBody:
    resolution: DisputeResolution
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceBody:
    channel: str
    token: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AnomalyQuery:
    kind: str | None = None
    carrier: str | None = None
    open_only: bool = True
    limit: int = 100


def _only(body: Mapping[str, Any], allowed: frozenset[str], prefix: str = "") -> None:
    for key in body:
        if key not in allowed:
            raise InputError(f"{prefix}{key}: unknown field (allowed: "
                             f"{', '.join(sorted(allowed))})", field=f"{prefix}{key}")


def _text(body: Mapping[str, Any], key: str, *, required: bool = False,
          limit: int = MAX_TEXT) -> str | None:
    value = body.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InputError(f"{key}: required", field=key)
        return None
    if not isinstance(value, str):
        raise InputError(f"{key}: expected a string, got {_kind(value)}", field=key)
    value = _CONTROL.sub(" ", value.strip())
    if len(value) > limit:
        raise InputError(f"{key}: longer than {limit} characters", field=key)
    return value


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            int: "a number", float: "a number"}.get(type(value), "null")


def order_body(order_id: str, body: Mapping[str, Any]) -> validate.Validated:
    """``PUT /v1/orders/{id}``: the import's fields as JSON (``channels`` may be an array)."""
    _only(body, _ORDER_KEYS)
    # The import turns numeric cells into text; a JSON API states its types.
    for key in _ORDER_TEXT_KEYS:
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise InputError(f"{key}: expected a string, got {_kind(value)}", field=key)
    given = body.get("order")
    if given is not None and given != order_id:
        raise InputError(f"order: {given!r} differs from the order id in the URL",
                         field="order")
    fields: dict[str, Any] = {k: v for k, v in body.items() if k != "channels"}
    fields["order"] = order_id
    channels = body.get("channels")
    if isinstance(channels, list):
        if not all(isinstance(c, str) for c in channels):
            raise InputError("channels: expected an array of strings", field="channels")
        fields["channels"] = ",".join(channels)
    elif channels is not None:
        fields["channels"] = channels
    shipments = body.get("shipments")
    if shipments is not None:
        if not isinstance(shipments, list):
            raise InputError(f"shipments: expected an array, got {_kind(shipments)}",
                             field="shipments")
        if len(shipments) > MAX_SHIPMENTS:
            raise InputError(f"shipments: at most {MAX_SHIPMENTS} per request",
                             field="shipments")
        for i, item in enumerate(shipments):
            if isinstance(item, Mapping):
                _only(item, _SHIPMENT_KEYS, f"shipments[{i}].")
    try:
        return validate.order_from_fields(fields)
    except InputError as exc:
        raise _located(exc) from None


def _located(exc: InputError) -> InputError:
    """validate names a shipment's field plainly ("tracking") with the position in the message
    ("shipments[1].tracking: ..."); the API answers with the full path in ``field``."""
    match = _WHERE.match(str(exc))
    if match and exc.field and not exc.field.startswith("shipments["):
        return InputError(str(exc), field=f"{match.group(1)}.{exc.field}")
    return exc


def status_body(body: Mapping[str, Any]) -> StatusBody:
    """``POST /v1/orders/{id}/status``: ``{"status": ..., "expected_ship": "YYYY-MM-DD"}``."""
    _only(body, frozenset({"status", "expected_ship"}))
    text = _text(body, "status", required=True)
    assert text is not None
    try:
        status = OmsStatus(text.lower())
    except ValueError:
        raise InputError(f"status: {text!r} is not one of "
                         f"{', '.join(s.value for s in OmsStatus)}", field="status") from None
    return StatusBody(status=status,
                      expected_ship_date=validate._date(body, "expected_ship"))


def shipments_body(body: Mapping[str, Any]) -> ShipmentsBody:
    """``POST /v1/orders/{id}/shipments``: one ``{"carrier", "tracking"}`` or
    ``{"shipments": [...]}``. The carrier may be left out when the number is unambiguous."""
    if "shipments" in body:
        _only(body, frozenset({"shipments"}))
        items = body["shipments"]
        if not isinstance(items, list) or not items:
            raise InputError("shipments: expected a non-empty array", field="shipments")
        if len(items) > MAX_SHIPMENTS:
            raise InputError(f"shipments: at most {MAX_SHIPMENTS} per request",
                             field="shipments")
        prefixed = [(f"shipments[{i}].", item) for i, item in enumerate(items)]
    else:
        prefixed = [("", body)]
    shipments: list[ShipmentInput] = []
    warnings: list[str] = []
    for prefix, item in prefixed:
        if not isinstance(item, Mapping):
            raise InputError(f"{prefix.rstrip('.')}: expected an object",
                             field=prefix.rstrip("."))
        _only(item, _SHIPMENT_KEYS, prefix)
        try:
            carrier = _text(item, "carrier")
            tracking = _text(item, "tracking", required=True)
            shipment, warn = validate.shipment_from_fields(carrier, tracking, where=prefix)
        except InputError as exc:
            field = exc.field or ""
            raise InputError(str(exc) if str(exc).startswith(prefix) else f"{prefix}{exc}",
                             field=field if field.startswith(prefix) else f"{prefix}{field}"
                             ) from None
        shipments.append(shipment)
        warnings.extend(warn)
    return ShipmentsBody(shipments=tuple(shipments), warnings=tuple(warnings))


def dispute_body(body: Mapping[str, Any]) -> DisputeBody:
    """``POST /v1/orders/{id}/disputes``: ``{"reason": ..., "tracking": optional}``."""
    _only(body, frozenset({"reason", "tracking"}))
    reason = _text(body, "reason", required=True, limit=1000)
    assert reason is not None
    tracking = _text(body, "tracking", limit=64)
    return DisputeBody(tracking_number=None if tracking is None else
                       tracking.replace(" ", "").upper(), reason=reason)


def resolve_body(body: Mapping[str, Any]) -> ResolveBody:
    """``POST /v1/disputes/{id}/resolve``: ``{"resolution": found|reshipped|refunded|other,
    "note": optional}``."""
    _only(body, frozenset({"resolution", "note"}))
    text = _text(body, "resolution", required=True)
    assert text is not None
    try:
        resolution = DisputeResolution(text.lower())
    except ValueError:
        raise InputError(f"resolution: {text!r} is not one of "
                         f"{', '.join(r.value for r in DisputeResolution)}",
                         field="resolution") from None
    return ResolveBody(resolution=resolution, note=_text(body, "note", limit=1000) or "")


def device_body(email: str, body: Mapping[str, Any]) -> DeviceBody:
    """``PUT /v1/customers/{email}/devices``: ``{"channel": fcm|apns|webpush|webhook,
    "token": ...}``. A Web Push token is the browser's subscription object (or its JSON text)
    with ``endpoint`` and ``keys.p256dh``/``keys.auth``; a webhook token is an http(s) URL."""
    if not validate.valid_email(email):
        raise InputError(f"email: {email!r} is not an e-mail address", field="email")
    _only(body, frozenset({"channel", "token"}))
    channel = _text(body, "channel", required=True)
    if channel not in PUSH_CHANNELS:
        raise InputError(f"channel: {channel!r} is not one of {', '.join(PUSH_CHANNELS)}",
                         field="channel")
    raw = body.get("token")
    if channel == "webpush" and isinstance(raw, Mapping):
        token = json.dumps(raw, sort_keys=True, separators=(",", ":"))
    else:
        token = _text(body, "token", required=True, limit=MAX_TOKEN) or ""
    if len(token) > MAX_TOKEN:
        raise InputError(f"token: longer than {MAX_TOKEN} characters", field="token")
    if channel == "webpush":
        _check_subscription(token)
    elif channel == "webhook":
        _check_url(token, "token")
    elif any(c.isspace() for c in token):
        raise InputError("token: a push token has no spaces", field="token")
    return DeviceBody(channel=channel, token=token)


def _check_subscription(token: str) -> None:
    try:
        sub = json.loads(token)
    except ValueError:
        raise InputError("token: a Web Push subscription is a JSON object", field="token"
                         ) from None
    if not isinstance(sub, dict):
        raise InputError("token: a Web Push subscription is a JSON object", field="token")
    endpoint = sub.get("endpoint")
    if not isinstance(endpoint, str):
        raise InputError("token.endpoint: required", field="token.endpoint")
    _check_url(endpoint, "token.endpoint")
    keys = sub.get("keys")
    for name in ("p256dh", "auth"):
        if not isinstance(keys, dict) or not isinstance(keys.get(name), str) or not keys[name]:
            raise InputError(f"token.keys.{name}: required", field=f"token.keys.{name}")


def _check_url(value: str, field: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise InputError(f"{field}: expected an http(s) URL", field=field)


def anomaly_query(params: Mapping[str, str]) -> AnomalyQuery:
    """``GET /v1/anomalies?kind=&carrier=&open=true|false&limit=1..1000``."""
    _only(params, frozenset({"kind", "carrier", "open", "limit"}))
    kind = params.get("kind") or None
    if kind is not None and kind not in AnomalyKind.__members__:
        raise InputError(f"kind: {kind!r} is not one of {', '.join(AnomalyKind)}",
                         field="kind")
    carrier = params.get("carrier") or None
    if carrier is not None and carrier not in carriers.NAMES:
        raise InputError(f"carrier: {carrier!r} is not one of {', '.join(carriers.NAMES)}",
                         field="carrier")
    open_text = params.get("open", "true").lower()
    if open_text not in ("true", "false", "1", "0"):
        raise InputError("open: expected true or false", field="open")
    limit_text = params.get("limit", "100")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= 1000:
        raise InputError("limit: expected a whole number from 1 to 1000", field="limit")
    return AnomalyQuery(kind=kind, carrier=carrier, open_only=open_text in ("true", "1"),
                        limit=int(limit_text))


def track_query(params: Mapping[str, str]) -> tuple[str, str]:
    """``GET /v1/track?order=ID&email=E`` -> (order id, e-mail). Only presence and length are
    checked: a well-formed but unknown pair must get the same answer as any other miss."""
    out: list[str] = []
    for key in ("order", "email"):
        value = (params.get(key) or "").strip()
        if not value:
            raise InputError(f"{key}: required", field=key)
        if len(value) > 254:
            raise InputError(f"{key}: too long", field=key)
        out.append(value)
    return out[0], out[1]
