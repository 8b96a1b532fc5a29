"""Tolerant readers for carrier JSON: a field is used only when it has the expected type.

Pure. Parsers call these instead of indexing raw payloads, so a missing or mistyped field
becomes ``None``/empty rather than an exception (the parsers' "result or payload error"
contract).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["as_dict", "as_list", "snippet", "text"]


def text(value: Any) -> str | None:
    """A stripped non-empty string (carriers pad fields: "DELIVERED "), a number as text, or
    None."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def snippet(value: Any) -> str:
    """The first 200 characters of ``value`` as JSON, for error messages."""
    return json.dumps(value, default=str)[:200]
