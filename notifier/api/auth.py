"""Bearer-token authentication for the API's integration endpoints.

Tokens come from ``api.tokens`` (usually ``"credential:api_token"``). The presented token is
compared with *every* configured token with :func:`hmac.compare_digest`, without stopping at a
match, so the time taken says nothing about which token (or which prefix) was close. No tokens
configured means every protected request is refused (fail closed).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping

__all__ = ["bearer_token", "token_ok"]


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    value = headers.get("authorization")
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def token_ok(presented: str | None, tokens: Iterable[str]) -> bool:
    if presented is None:
        return False
    given = presented.encode("utf-8")
    ok = False
    for token in tokens:
        expected = token.encode("utf-8")
        # Empty configured tokens never match (an unset ${VAR} must not open the API).
        ok |= bool(expected) & hmac.compare_digest(given, expected)
    return ok
