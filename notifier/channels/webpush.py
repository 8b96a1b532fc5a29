"""Web Push channel (RFC 8030 delivery, RFC 8291 aes128gcm payload, RFC 8292 VAPID).

The JSON payload is encrypted with ``http_ece`` for the subscription's ``p256dh``/``auth`` keys
using a fresh ephemeral key per message, and POSTed with ``TTL``, ``Urgency``, ``Topic`` and
``Authorization: vapid t=<JWT>, k=<public key>``. The VAPID JWT (ES256; ``aud`` = the endpoint's
origin, ``sub`` = ``settings.vapid_subject``, ``exp`` 12 h ahead) is cached per origin and reused
until an hour before it expires. Answers are classified in :func:`classify` (push.md 3.2, 5).
I/O module (httpx).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import http_ece
import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from carriers.base import parse_retry_after
from notifier.channels.base import Receipt, Recipient, RenderedMessage
from notifier.config import WebPushSettings
from notifier.errors import (
    ChannelMisconfigured,
    DeliveryError,
    DeliveryRejected,
    DeliveryTransient,
)

__all__ = ["WebPushChannel", "build_payload", "classify", "load_vapid_key", "topic_for"]

# 4096-byte body - 86-byte header - 16-byte tag - 1 delimiter byte (push.md 3.3).
MAX_PLAINTEXT_BYTES = 3993
_JWT_LIFETIME_S = 12 * 3600  # RFC 8292: at most 24 h
_JWT_REUSE_MARGIN_S = 3600
_RETRY_AFTER_CAP_S = 3600.0
_TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class WebPushChannel:
    """Send to a browser's push service. ``recipient.address`` is the subscription JSON text.

    The VAPID key comes from ``settings.vapid_private_key_file`` (PEM, or py_vapid's base64url
    raw/DER text) or ``vapid_key``; the constructor raises ``ChannelMisconfigured`` without one.
    """

    name: ClassVar[str] = "webpush"

    def __init__(self, settings: WebPushSettings, http: httpx.AsyncClient, *,
                 clock: Callable[[], float] = time.time,
                 vapid_key: ec.EllipticCurvePrivateKey | None = None,
                 timeout_s: float = 15.0) -> None:
        self._settings = settings
        self._http = http
        self._clock = clock
        self._timeout = timeout_s
        if vapid_key is None:
            if settings.vapid_private_key_file is None:
                raise ChannelMisconfigured(self.name, "push.webpush.vapid_private_key_file "
                                                      "is not set")
            try:
                vapid_key = load_vapid_key(settings.vapid_private_key_file.read_bytes())
            except (OSError, ValueError) as exc:
                raise ChannelMisconfigured(self.name, f"cannot load the VAPID key: {exc}"
                                           ) from exc
        self._vapid_key = vapid_key
        self._vapid_public = _b64(vapid_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))
        self._jwts: dict[str, tuple[str, float]] = {}  # origin -> (jwt, exp)

    async def send(self, message: RenderedMessage, recipient: Recipient) -> Receipt:
        endpoint, ua_public, auth = _parse_subscription(recipient.address)
        plaintext = json.dumps(build_payload(message), separators=(",", ":"),
                               ensure_ascii=False).encode()
        if len(plaintext) > MAX_PLAINTEXT_BYTES:
            raise DeliveryRejected(self.name, f"payload is {len(plaintext)} bytes "
                                              f"(max {MAX_PLAINTEXT_BYTES})")
        body = http_ece.encrypt(plaintext, private_key=ec.generate_private_key(ec.SECP256R1()),
                                dh=ua_public, auth_secret=auth, version="aes128gcm")
        headers = {"TTL": str(max(0, message.ttl_s)),
                   "Urgency": "high" if message.urgent else "normal",
                   "Content-Encoding": "aes128gcm",
                   "Content-Type": "application/octet-stream",
                   "Authorization": f"vapid t={self._vapid_jwt(endpoint)}, k={self._vapid_public}"}
        if message.collapse_key:
            headers["Topic"] = topic_for(message.collapse_key)
        async with _transport_errors():
            response = await self._http.post(endpoint, content=body, headers=headers,
                                             timeout=self._timeout, follow_redirects=False)
        error = classify(response.status_code, response.text[:200],
                         response.headers.get("Retry-After"), now=self._clock())
        if error is not None:
            raise error
        return Receipt(channel=self.name, provider_id=response.headers.get("Location"))

    async def aclose(self) -> None:
        """The HTTP client belongs to the caller; nothing else to release."""

    def _vapid_jwt(self, endpoint: str) -> str:
        parts = urlsplit(endpoint)
        origin = f"{parts.scheme}://{parts.netloc}"
        now = self._clock()
        cached = self._jwts.get(origin)
        if cached is not None and now < cached[1] - _JWT_REUSE_MARGIN_S:
            return cached[0]
        exp = int(now) + _JWT_LIFETIME_S
        token = jwt.encode({"aud": origin, "exp": exp, "sub": self._settings.vapid_subject},
                           self._vapid_key, algorithm="ES256", headers={"typ": "JWT"})
        self._jwts[origin] = (token, float(exp))
        return token


def build_payload(message: RenderedMessage) -> dict[str, Any]:
    """What the service worker receives (our own shape; it is opaque to the push service)."""
    payload: dict[str, Any] = {"notification_id": message.notification_id,
                               "trigger": message.trigger, "title": message.title,
                               "body": message.body, "data": message.data}
    if message.collapse_key:
        payload["tag"] = message.collapse_key  # lets the page replace an older notification
    return payload


def topic_for(collapse_key: str) -> str:
    """RFC 8030 Topic: at most 32 URL-safe base64 characters; other keys are hashed (stable)."""
    if _TOPIC.match(collapse_key):
        return collapse_key
    return _b64(hashlib.sha256(collapse_key.encode()).digest())[:32]


def classify(status: int, snippet: str, retry_after: str | None, *,
             now: float) -> DeliveryError | None:
    """The outcome of one push-service answer: ``None`` on 2xx, else the error. Pure."""
    if 200 <= status < 300:
        return None
    text = f"HTTP {status}: {snippet}"
    if status in (404, 410):
        return DeliveryRejected("webpush", text, drop_token=True)
    if status == 429 or status >= 500:
        wait = parse_retry_after(retry_after, now=datetime.fromtimestamp(now, UTC))
        return DeliveryTransient("webpush", text, retry_after=None if wait is None
                                 else min(wait, _RETRY_AFTER_CAP_S))
    if status in (401, 403):
        # VAPID rejected. A status alone cannot tell "our key/claims are bad" (every
        # subscription fails) from "this subscription was made with another key", so take the
        # safe reading: pause the channel and let ops look (push.md section 5, OPS column).
        return ChannelMisconfigured("webpush", text)
    # 413 (too large), 400 (bad headers), 3xx and the rest: this message, as sent, is wrong.
    return DeliveryRejected("webpush", text)


def load_vapid_key(data: bytes) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key from PEM, or base64url raw (32 bytes) / DER text as py_vapid writes."""
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        key = serialization.load_pem_private_key(text, password=None)
    else:
        raw = base64.urlsafe_b64decode(text.replace(b"\n", b"") + b"=" * (-len(text) % 4))
        if len(raw) == 32:
            key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
        else:
            key = serialization.load_der_private_key(raw, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("the VAPID key must be an EC P-256 private key")
    return key


def _parse_subscription(text: str) -> tuple[str, bytes, bytes]:
    """(endpoint, p256dh point, auth secret); an unusable subscription is dropped."""
    try:
        sub = json.loads(text)
        endpoint = sub["endpoint"]
        keys = sub["keys"]
        ua_public = _unb64(keys["p256dh"])
        auth = _unb64(keys["auth"])
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ua_public)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DeliveryRejected("webpush", f"unusable subscription: {exc!r}",
                               drop_token=True) from exc
    if not isinstance(endpoint, str) or urlsplit(endpoint).scheme not in ("http", "https"):
        raise DeliveryRejected("webpush", "subscription endpoint is not a URL", drop_token=True)
    if len(auth) != 16:
        raise DeliveryRejected("webpush", "subscription auth secret is not 16 bytes",
                               drop_token=True)
    return endpoint, ua_public, auth


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@asynccontextmanager
async def _transport_errors() -> AsyncIterator[None]:
    """Timeouts and connection failures are transient (push.md section 5)."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise DeliveryTransient("webpush", f"timeout: {type(exc).__name__}") from exc
    except httpx.TransportError as exc:
        raise DeliveryTransient("webpush", f"transport error: {exc!r}") from exc
