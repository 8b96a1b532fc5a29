"""Firebase Cloud Messaging (HTTP v1) channel: one POST per message, service-account OAuth.

The access token comes from the RS256 JWT-bearer flow against ``settings.token_url`` and is cached
(``carriers.base.TokenCache``) until five minutes before it expires; a 401 without an FcmError
detail means *our* token went bad, so the token is refreshed once and the send retried once.
Every HTTP answer is classified in :func:`classify` (reference push.md sections 1.4, 1.5 and 5);
transport failures in :func:`_transport_errors`. I/O module (httpx).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import httpx
import jwt

from carriers.base import TokenCache, parse_retry_after
from notifier.channels.base import Receipt, Recipient, RenderedMessage
from notifier.config import FcmSettings
from notifier.errors import (
    ChannelMisconfigured,
    DeliveryError,
    DeliveryRejected,
    DeliveryTransient,
)

__all__ = ["SCOPE", "FcmChannel", "classify"]

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
_MAX_TTL_S = 2_419_200  # four weeks: FCM answers INVALID_ARGUMENT "Invalid TTL" above this
# Project-rate 429 without Retry-After: the quota bucket refills within the next minute.
_QUOTA_DEFAULT_WAIT_S = 60.0
_RETRY_AFTER_CAP_S = 3600.0
_TOKEN_MARGIN_S = 300.0


class FcmChannel:
    """Send pushes through FCM HTTP v1. ``recipient.address`` is the registration token.

    The constructor reads the service-account JSON (``settings.service_account_file``, or the
    ``service_account`` mapping given directly) and raises ``ChannelMisconfigured`` when it is
    missing or incomplete. ``token_fetches`` counts OAuth token requests.
    """

    name: ClassVar[str] = "fcm"

    def __init__(self, settings: FcmSettings, http: httpx.AsyncClient, *,
                 clock: Callable[[], float] = time.time,
                 service_account: dict[str, Any] | None = None,
                 timeout_s: float = 15.0) -> None:
        self._settings = settings
        self._http = http
        self._clock = clock
        self._timeout = timeout_s
        account = service_account or _load_account(settings.service_account_file)
        missing = [k for k in ("client_email", "private_key") if not account.get(k)]
        if missing or not settings.project_id:
            what = ", ".join(missing) or "project_id"
            raise ChannelMisconfigured(self.name, f"service account / settings lack {what}")
        self._email = str(account["client_email"])
        self._key_id = account.get("private_key_id")
        self._private_key = str(account["private_key"])
        self._send_url = (f"{settings.base_url.rstrip('/')}/v1/projects/"
                          f"{settings.project_id}/messages:send")
        self._tokens = TokenCache(self._fetch_token, margin_s=_TOKEN_MARGIN_S, monotonic=clock)

    @property
    def token_fetches(self) -> int:
        return self._tokens.fetches

    async def send(self, message: RenderedMessage, recipient: Recipient) -> Receipt:
        body = build_message(message, recipient.address, now=self._clock())
        for attempt in (1, 2):
            token = await self._tokens.get()
            async with _transport_errors():
                response = await self._http.post(
                    self._send_url, json=body, timeout=self._timeout,
                    headers={"Authorization": f"Bearer {token}"})
            payload = _json_or_none(response)
            if (response.status_code == 401 and attempt == 1
                    and _fcm_error_code(payload) is None):
                # Our access token was refused (revoked, clock skew): refresh once, retry once.
                self._tokens.invalidate(token)
                continue
            break
        error = classify(response.status_code, payload, response.headers.get("Retry-After"),
                         now=self._clock())
        if error is not None:
            raise error
        name = payload.get("name") if isinstance(payload, dict) else None
        return Receipt(channel=self.name, provider_id=name if isinstance(name, str) else None)

    async def aclose(self) -> None:
        """The HTTP client belongs to the caller; nothing else to release."""

    async def _fetch_token(self) -> tuple[str, float]:
        now = int(self._clock())
        claims = {"iss": self._email, "scope": SCOPE, "aud": self._settings.token_url,
                  "iat": now, "exp": now + 3600}
        headers = {"kid": self._key_id} if self._key_id else None
        try:
            assertion = jwt.encode(claims, self._private_key, algorithm="RS256", headers=headers)
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise ChannelMisconfigured(self.name, f"cannot sign with the service-account key: "
                                                  f"{exc}") from exc
        async with _transport_errors():
            response = await self._http.post(
                self._settings.token_url, timeout=self._timeout,
                data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                      "assertion": assertion})
        payload = _json_or_none(response)
        status = response.status_code
        if status == 429 or status >= 500:
            raise DeliveryTransient(self.name, f"OAuth token endpoint HTTP {status}",
                                    retry_after=_retry_after(response.headers.get("Retry-After"),
                                                             self._clock()))
        if status != 200 or not isinstance(payload, dict) or "access_token" not in payload:
            raise ChannelMisconfigured(self.name, f"OAuth token request refused: HTTP {status} "
                                                  f"{response.text[:200]}")
        return str(payload["access_token"]), float(payload.get("expires_in", 3600))


def build_message(message: RenderedMessage, token: str, *, now: float) -> dict[str, Any]:
    """The ``{"message": ...}`` request body (reference push.md 1.3). Pure."""
    ttl = max(0, min(message.ttl_s, _MAX_TTL_S))
    android: dict[str, Any] = {"priority": "HIGH" if message.urgent else "NORMAL",
                               "ttl": f"{ttl}s"}
    apns_headers = {"apns-priority": "10" if message.urgent else "5",
                    "apns-expiration": str(int(now) + ttl if ttl else 0)}
    if message.collapse_key:
        android["collapse_key"] = message.collapse_key
        apns_headers["apns-collapse-id"] = message.collapse_key
    body: dict[str, Any] = {
        "token": token,
        "notification": {"title": message.title, "body": message.body},
        # FCM data is a string->string map; anything else is sent as its JSON text.
        "data": {str(k): v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
                 for k, v in message.data.items()},
        "android": android,
        "apns": {"headers": apns_headers},
        "webpush": {"headers": {"TTL": str(ttl),
                                "Urgency": "high" if message.urgent else "normal"}},
    }
    return {"message": body}


def classify(status: int, payload: Any, retry_after: str | None, *,
             now: float) -> DeliveryError | None:
    """The outcome of one FCM answer: ``None`` on success, else the error to raise.

    Order of evidence as in firebase-admin: FcmError ``errorCode``, then ``error.status``, then
    the HTTP status (push.md 1.4). Pure.
    """
    if 200 <= status < 300:
        return None
    error = payload.get("error") if isinstance(payload, dict) else None
    error = error if isinstance(error, dict) else {}
    fcm_code = _fcm_error_code(payload)
    code = fcm_code or str(error.get("status") or "")
    text = f"HTTP {status} {code or '-'}: {str(error.get('message', ''))[:200]}"
    wait = _retry_after(retry_after, now)
    if code == "UNREGISTERED" or status == 404:
        return DeliveryRejected("fcm", text, drop_token=True)
    if code == "SENDER_ID_MISMATCH":
        # push.md section 5 lists this under DROP (the token belongs to another project); many
        # of them at once point at a config mix-up, which the alerting on drops should surface.
        return DeliveryRejected("fcm", text, drop_token=True)
    if code in ("QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED") or status == 429:
        return DeliveryTransient("fcm", text, retry_after=wait if wait is not None
                                 else _QUOTA_DEFAULT_WAIT_S)
    if code in ("UNAVAILABLE", "INTERNAL") or status >= 500:
        return DeliveryTransient("fcm", text, retry_after=wait)
    if code in ("THIRD_PARTY_AUTH_ERROR", "APNS_AUTH_ERROR") or status in (401, 403):
        # 401 without FcmError reaches here only after the one token refresh; 403
        # PERMISSION_DENIED = service account lacks the role or the API is disabled
        # (push.md marks that mapping unconfirmed; it is the best-supported reading).
        return ChannelMisconfigured("fcm", text)
    if code == "INVALID_ARGUMENT" or status == 400:
        return DeliveryRejected("fcm", text, drop_token=_about_token(error))
    return DeliveryRejected("fcm", text)


def _about_token(error: dict[str, Any]) -> bool:
    """Whether a 400 INVALID_ARGUMENT is about the registration token, not our payload."""
    if "registration token" in str(error.get("message", "")).lower():
        return True
    for detail in error.get("details") or ():
        if isinstance(detail, dict) and detail.get("@type") == _BAD_REQUEST_TYPE:
            for violation in detail.get("fieldViolations") or ():
                if isinstance(violation, dict) and violation.get("field") == "message.token":
                    return True
    return False


def _fcm_error_code(payload: Any) -> str | None:
    error = payload.get("error") if isinstance(payload, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and detail.get("@type") == _FCM_ERROR_TYPE:
            code = detail.get("errorCode")
            return str(code) if code else None
    return None


def _retry_after(value: str | None, now: float) -> float | None:
    seconds = parse_retry_after(value, now=datetime.fromtimestamp(now, UTC))
    return None if seconds is None else min(seconds, _RETRY_AFTER_CAP_S)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _load_account(path: Path | None) -> dict[str, Any]:
    if path is None:
        raise ChannelMisconfigured("fcm", "push.fcm.service_account_file is not set")
    try:
        account = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ChannelMisconfigured("fcm", f"cannot read service account {path}: {exc}") from exc
    if not isinstance(account, dict):
        raise ChannelMisconfigured("fcm", f"service account {path} is not a JSON object")
    return account


@asynccontextmanager
async def _transport_errors() -> AsyncIterator[None]:
    """Timeouts and connection failures are transient (push.md section 5)."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise DeliveryTransient("fcm", f"timeout: {type(exc).__name__}") from exc
    except httpx.TransportError as exc:
        raise DeliveryTransient("fcm", f"transport error: {exc!r}") from exc
