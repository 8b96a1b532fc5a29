"""Apple Push Notification service channel: HTTP/2 ``POST /3/device/<token>``, token auth.

The ES256 provider token (``iss`` = team id, ``kid`` = key id, ``iat``) is built once and reused
for about 50 minutes: Apple rejects tokens older than an hour and answers 429
TooManyProviderTokenUpdates when they are rebuilt too often, so it is never made per request
(``token_builds`` counts builds). A 403 ExpiredProviderToken rebuilds it once and retries once.
APNs speaks only HTTP/2: over ``https`` ALPN picks h2; an ``http://`` base URL (local tests) uses
prior-knowledge h2c. Answers are classified in :func:`classify` (push.md 2.4 and 5). I/O module.
"""

from __future__ import annotations

import json
import re
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
import jwt

from carriers.base import parse_retry_after
from notifier.channels.base import Receipt, Recipient, RenderedMessage
from notifier.config import ApnsSettings
from notifier.errors import (
    ChannelMisconfigured,
    DeliveryError,
    DeliveryRejected,
    DeliveryTransient,
)

__all__ = ["TOKEN_LIFETIME_S", "ApnsChannel", "build_payload", "classify"]

# sideshow/apns2 uses 3000 s; Apple: refresh at most every 20 min, at least every 60 min.
TOKEN_LIFETIME_S = 3000.0
MAX_PAYLOAD_BYTES = 4096
_HEX = re.compile(r"^[0-9a-fA-F]+$")
# Fixed namespace so the same notification id always gives the same apns-id across retries.
_APNS_ID_NAMESPACE = uuid.UUID("5a0c3f0e-6c1b-4a55-9a7e-2f1d0b6a9c11")

_DROP = {(410, "Unregistered"), (410, "ExpiredToken"), (400, "BadDeviceToken"),
         (400, "DeviceTokenNotForTopic")}
_RETRY = {(429, "TooManyRequests"), (400, "IdleTimeout"), (403, "ExpiredProviderToken"),
          (403, "UnrelatedKeyIdInToken")}
_OPS = {(403, "InvalidProviderToken"), (403, "MissingProviderToken"),
        (403, "BadEnvironmentKeyIdInToken"), (403, "BadCertificate"),
        (403, "BadCertificateEnvironment"), (403, "Forbidden"), (400, "TopicDisallowed"),
        (429, "TooManyProviderTokenUpdates")}
# Reasons after which the connection should be replaced (push.md 2.4 / section 5).
_NEW_CONNECTION = {"UnrelatedKeyIdInToken", "Shutdown", "IdleTimeout"}


class ApnsChannel:
    """Send alert pushes to APNs. ``recipient.address`` is the device token in hex.

    ``http`` is accepted for a uniform constructor but APNs needs its own HTTP/2 client: pass
    ``h2`` to share one, otherwise the channel creates (and closes) its own, trusting
    ``settings.ca_file`` when set. The .p8 key comes from ``settings.key_file`` or ``key_pem``;
    the constructor raises ``ChannelMisconfigured`` when it or team/key id/topic is missing.
    """

    name: ClassVar[str] = "apns"

    def __init__(self, settings: ApnsSettings, http: httpx.AsyncClient | None = None, *,
                 clock: Callable[[], float] = time.time, h2: httpx.AsyncClient | None = None,
                 key_pem: bytes | None = None, timeout_s: float = 15.0) -> None:
        self._settings = settings
        self._clock = clock
        self._timeout = timeout_s
        missing = [k for k in ("team_id", "key_id", "topic") if not getattr(settings, k)]
        if missing:
            raise ChannelMisconfigured(self.name, f"push.apns lacks {', '.join(missing)}")
        self._key = key_pem if key_pem is not None else self._read_key()
        self._base = settings.base_url.rstrip("/")
        self._own_client = h2 is None
        self._client = h2 if h2 is not None else self._new_client()
        self._token: str | None = None
        self._token_iat = 0.0
        self.token_builds = 0

    async def send(self, message: RenderedMessage, recipient: Recipient) -> Receipt:
        device = recipient.address.strip()
        if not _HEX.match(device):
            raise DeliveryRejected(self.name, "device token is not hex", drop_token=True)
        body = json.dumps(build_payload(message), separators=(",", ":"),
                          ensure_ascii=False).encode()
        if len(body) > MAX_PAYLOAD_BYTES:
            raise DeliveryRejected(self.name, f"payload is {len(body)} bytes (max 4096)")
        apns_id = str(uuid.uuid5(_APNS_ID_NAMESPACE, message.notification_id))
        headers = {"apns-topic": self._settings.topic, "apns-push-type": "alert",
                   "apns-priority": "10" if message.urgent else "5",
                   "apns-expiration": str(int(self._clock()) + message.ttl_s
                                          if message.ttl_s > 0 else 0),
                   "apns-id": apns_id, "content-type": "application/json"}
        if message.collapse_key:
            headers["apns-collapse-id"] = message.collapse_key[:64]
        for attempt in (1, 2):
            token = self._provider_token()
            async with _transport_errors():
                response = await self._client.post(
                    f"{self._base}/3/device/{device}", content=body, timeout=self._timeout,
                    headers={**headers, "authorization": f"bearer {token}"})
            reason = _reason(response)
            if response.status_code == 403 and reason == "ExpiredProviderToken" and attempt == 1:
                # Rebuild once (only if nobody else already did) and retry once.
                if self._token == token:
                    self._build_token()
                continue
            break
        if response.status_code == 403 and reason == "ExpiredProviderToken":
            # A freshly built token was called expired too: our clock is off (ops problem).
            raise ChannelMisconfigured(self.name, "ExpiredProviderToken for a fresh provider "
                                                  "token: check the system clock")
        if reason in _NEW_CONNECTION:
            await self._reconnect()
        error = classify(response.status_code, reason, response.headers.get("Retry-After"),
                         timestamp_ms=_timestamp(response), now=self._clock())
        if error is not None:
            raise error
        return Receipt(channel=self.name, provider_id=response.headers.get("apns-id", apns_id))

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    def _provider_token(self) -> str:
        if self._token is None or self._clock() - self._token_iat >= TOKEN_LIFETIME_S:
            self._build_token()
        assert self._token is not None
        return self._token

    def _build_token(self) -> None:
        iat = int(self._clock())
        try:
            self._token = jwt.encode({"iss": self._settings.team_id, "iat": iat}, self._key,
                                     algorithm="ES256", headers={"kid": self._settings.key_id})
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise ChannelMisconfigured(self.name, f"cannot sign with the .p8 key: {exc}") from exc
        self._token_iat = float(iat)
        self.token_builds += 1

    def _read_key(self) -> bytes:
        path = self._settings.key_file
        if path is None:
            raise ChannelMisconfigured(self.name, "push.apns.key_file is not set")
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ChannelMisconfigured(self.name, f"cannot read {path}: {exc}") from exc

    def _new_client(self) -> httpx.AsyncClient:
        verify: ssl.SSLContext | bool = True
        if self._settings.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(self._settings.ca_file))
        # http1=False: over TLS offer only h2 via ALPN; over http:// speak h2c prior knowledge.
        return httpx.AsyncClient(http1=False, http2=True, verify=verify,
                                 timeout=self._timeout)

    async def _reconnect(self) -> None:
        if self._own_client:
            old, self._client = self._client, self._new_client()
            await old.aclose()


def build_payload(message: RenderedMessage) -> dict[str, Any]:
    """The APNs JSON: ``aps`` alert plus the custom data keys next to it (push.md 2.2). Pure."""
    payload: dict[str, Any] = {k: v for k, v in message.data.items() if k != "aps"}
    payload["aps"] = {"alert": {"title": message.title, "body": message.body},
                      "sound": "default"}
    return payload


def classify(status: int, reason: str, retry_after: str | None, *,
             timestamp_ms: int | None = None, now: float) -> DeliveryError | None:
    """The outcome of one APNs answer: ``None`` on 200, else the error to raise. Pure."""
    if status == 200:
        return None
    text = f"HTTP {status} {reason or '-'}"
    if timestamp_ms is not None:
        # Kept in the message: the caller may keep a token re-registered after this instant.
        text += f" (inactive since {timestamp_ms} ms)"
    key = (status, reason)
    wait = parse_retry_after(retry_after, now=datetime.fromtimestamp(now, UTC))
    if key in _DROP or status == 410:
        return DeliveryRejected("apns", text, drop_token=True)
    if key in _OPS:
        return ChannelMisconfigured("apns", text)
    if key in _RETRY or status >= 500:
        return DeliveryTransient("apns", text, retry_after=wait)
    if status == 403:
        return ChannelMisconfigured("apns", text)
    if status == 429:
        return DeliveryTransient("apns", text, retry_after=wait)
    # 413 PayloadTooLarge, the other 400s, 404 BadPath, 405: our request is wrong.
    return DeliveryRejected("apns", text)


def _reason(response: httpx.Response) -> str:
    if response.status_code == 200:
        return ""
    try:
        payload = response.json()
    except ValueError:
        return ""
    return str(payload.get("reason", "")) if isinstance(payload, dict) else ""


def _timestamp(response: httpx.Response) -> int | None:
    if response.status_code != 410:
        return None
    try:
        value = response.json().get("timestamp")
    except (ValueError, AttributeError):
        return None
    return int(value) if isinstance(value, int | float) else None


@asynccontextmanager
async def _transport_errors() -> AsyncIterator[None]:
    """Timeouts, resets and GOAWAY are transient (push.md section 5)."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise DeliveryTransient("apns", f"timeout: {type(exc).__name__}") from exc
    except httpx.TransportError as exc:
        raise DeliveryTransient("apns", f"transport error: {exc!r}") from exc
