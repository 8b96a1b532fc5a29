"""Signed generic webhook channel (Standard Webhooks v1, symmetric HMAC-SHA256).

Each POST carries ``webhook-id`` (the notification id: stable across retries, the receiver's
idempotency key), ``webhook-timestamp`` (unix seconds of *this* attempt) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``. The key is the base64
decoding of the secret after its ``whsec_`` prefix, exactly as the reference library does.
Redirects are not followed. Answers are classified in :func:`classify` (push.md 4.2, 5).
I/O module (httpx).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx

from carriers.base import parse_retry_after
from notifier.channels.base import Receipt, Recipient, RenderedMessage
from notifier.config import WebhookSettings
from notifier.errors import (
    ChannelMisconfigured,
    DeliveryError,
    DeliveryRejected,
    DeliveryTransient,
)

__all__ = ["WebhookChannel", "build_payload", "classify", "decode_secret", "sign"]

_RETRY_AFTER_CAP_S = 3600.0


class WebhookChannel:
    """POST order events to ``recipient.address`` (falling back to ``settings.url``).

    The constructor raises ``ChannelMisconfigured`` when ``settings.secret`` is empty or not
    valid base64 after the optional ``whsec_`` prefix.
    """

    name: ClassVar[str] = "webhook"

    def __init__(self, settings: WebhookSettings, http: httpx.AsyncClient, *,
                 clock: Callable[[], float] = time.time, timeout_s: float = 15.0) -> None:
        self._settings = settings
        self._http = http
        self._clock = clock
        self._timeout = timeout_s
        try:
            self._key = decode_secret(settings.secret)
        except ValueError as exc:
            raise ChannelMisconfigured(self.name, f"push.webhook.secret: {exc}") from exc

    async def send(self, message: RenderedMessage, recipient: Recipient) -> Receipt:
        url = recipient.address or self._settings.url
        if not url.startswith(("http://", "https://")):
            raise DeliveryRejected(self.name, f"not an http(s) URL: {url[:100]!r}",
                                   drop_token=True)
        now = self._clock()
        body = json.dumps(build_payload(message, now=now), separators=(",", ":"),
                          ensure_ascii=False).encode()
        # The spec forbids "." in the id (it separates the signed parts).
        msg_id = message.notification_id.replace(".", "_")
        timestamp = int(now)
        headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
                   "webhook-signature": sign(self._key, msg_id, timestamp, body),
                   "content-type": "application/json"}
        async with _transport_errors():
            response = await self._http.post(url, content=body, headers=headers,
                                             timeout=self._timeout, follow_redirects=False)
        error = classify(response.status_code, response.text[:200],
                         response.headers.get("Retry-After"), now=now)
        if error is not None:
            raise error
        return Receipt(channel=self.name, provider_id=msg_id)

    async def aclose(self) -> None:
        """The HTTP client belongs to the caller; nothing else to release."""


def decode_secret(secret: str) -> bytes:
    """The HMAC key: base64 of the part after ``whsec_`` (reference library behaviour)."""
    text = str.__str__(secret).strip()
    if not text:
        raise ValueError("empty signing secret")
    try:
        return base64.b64decode(text.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the signing secret is not base64 after 'whsec_'") from exc


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value ``v1,<base64 HMAC-SHA256 of id.timestamp.body>``."""
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def build_payload(message: RenderedMessage, *, now: float) -> dict[str, Any]:
    """``{"type": trigger, "timestamp": RFC 3339, "data": {...}}``. Pure.

    ``data`` carries the message's own data with our fields on top (ours win a name clash).
    """
    data: dict[str, Any] = dict(message.data)
    data.update(notification_id=message.notification_id, title=message.title,
                body=message.body, collapse_key=message.collapse_key, urgent=message.urgent)
    stamp = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
    return {"type": message.trigger, "timestamp": stamp, "data": data}


def classify(status: int, snippet: str, retry_after: str | None, *,
             now: float) -> DeliveryError | None:
    """The outcome of one customer-endpoint answer: ``None`` on 2xx, else the error. Pure.

    Standard Webhooks "Operational considerations": 410 disables the endpoint; 3xx is a
    failure (we never follow redirects; the customer must update the URL); everything else,
    401/403 included (most likely a secret mismatch on their side), is retried on the
    schedule, honouring Retry-After.
    """
    if 200 <= status < 300:
        return None
    text = f"HTTP {status}: {snippet}"
    if status == 410:
        return DeliveryRejected("webhook", text, drop_token=True)
    if 300 <= status < 400:
        return DeliveryRejected("webhook", text + " (redirects are not followed)")
    if status in (401, 403):
        text += " (signature refused? check the customer's signing secret)"
    wait = parse_retry_after(retry_after, now=datetime.fromtimestamp(now, UTC))
    return DeliveryTransient("webhook", text,
                             retry_after=None if wait is None else min(wait, _RETRY_AFTER_CAP_S))


@asynccontextmanager
async def _transport_errors() -> AsyncIterator[None]:
    """Timeouts and connection resets are retried (push.md section 5)."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise DeliveryTransient("webhook", f"timeout: {type(exc).__name__}") from exc
    except httpx.TransportError as exc:
        raise DeliveryTransient("webhook", f"transport error: {exc!r}") from exc
