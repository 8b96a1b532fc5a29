"""Signed unsubscribe tokens: one per (customer e-mail, channel). Pure.

A token is ``<payload>.<mac>``, both unpadded base64url: the payload is the lower-cased e-mail
and the channel joined by a NUL byte, the MAC is HMAC-SHA256 over a versioned, purpose-bound
message (so a MAC made for anything else with the same secret never verifies here), keyed by
``api.unsubscribe_secret``. Verification recomputes the MAC and compares in constant time.
Tokens do not expire: an unsubscribe link in a years-old mail must still work (RFC 8058 asks
that one-click links keep working), and the only thing a token can do is unsubscribe.

The HTTP endpoint (GET shows a confirmation, POST ``List-Unsubscribe=One-Click`` acts) lives
with the API; it calls :func:`verify_token` and then ``store.unsubscribe(email, channel, now)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from urllib.parse import quote

from notifier import models

__all__ = ["UNSUBSCRIBE_PATH", "make_token", "unsubscribe_url", "verify_token"]

UNSUBSCRIBE_PATH = "/unsubscribe"
_PURPOSE = b"notifier-unsubscribe-v1\x00"
_CHANNELS = frozenset(c.value for c in models.Channel)
_MAX_TOKEN = 2048


def _key(secret: str) -> bytes:
    text = str.__str__(secret)  # a config Secret is a str that hides itself in repr
    if not text:
        raise ValueError("api.unsubscribe_secret is empty: refusing to build unsubscribe links")
    return text.encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, _PURPOSE + payload, hashlib.sha256).digest()


def make_token(email: str, channel: str, secret: str) -> str:
    """The token for ``(email, channel)``. ValueError for an empty secret, an empty address or
    an unknown channel."""
    address = email.strip().lower()
    if not address or "\x00" in address:
        raise ValueError("no e-mail address to unsubscribe")
    if channel not in _CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    payload = address.encode("utf-8") + b"\x00" + channel.encode("ascii")
    return f"{_b64(payload)}.{_b64(_mac(_key(secret), payload))}"


def verify_token(token: str, secret: str) -> tuple[str, str] | None:
    """``(email, channel)`` when ``token`` was made with ``secret``; None for anything else
    (tampered, truncated, malformed, another secret, empty secret)."""
    try:
        key = _key(secret)
    except ValueError:
        return None
    if not token or len(token) > _MAX_TOKEN or token.count(".") != 1:
        return None
    head, _, tail = token.partition(".")
    try:
        payload, mac = _unb64(head), _unb64(tail)
    except (binascii.Error, ValueError):
        return None
    if not hmac.compare_digest(mac, _mac(key, payload)):
        return None
    address, sep, channel = payload.partition(b"\x00")
    if not sep:
        return None
    try:
        email, chan = address.decode("utf-8"), channel.decode("ascii")
    except UnicodeDecodeError:
        return None
    return (email, chan) if chan in _CHANNELS and email else None


def unsubscribe_url(public_url: str, email: str, channel: str, secret: str) -> str:
    """``{public_url}/unsubscribe?t=<token>`` (https in production; the API serves it).
    ValueError when the secret is empty (no link is better than a forgeable one)."""
    token = make_token(email, channel, secret)
    return f"{public_url.rstrip('/')}{UNSUBSCRIBE_PATH}?t={quote(token, safe='')}"
