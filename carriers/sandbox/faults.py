"""Fault injection for the sandbox: scripted failures per carrier, consumed request by request.

``POST /_sandbox/faults`` bodies are parsed by :func:`parse_fault`::

    {"carrier": "ups", "kind": "429", "count": 5, "retry_after": "2" | null}
    {"carrier": "fedex", "kind": "5xx", "status": 503, "count": 1}
    {"carrier": "dhl", "kind": "slow", "delay": 2.5}
    {"carrier": "usps", "kind": "malformed"} | {"kind": "html", "status": 200}
    {"carrier": "ups", "kind": "quota"}            # daily quota exhausted for the sim day
    {"carrier": "usps", "kind": "token_expiry"}    # revoke every token issued so far

``retry_after`` absent means "as the carrier documents" (USPS sends ``Retry-After: 30`` on
429/503, the others send none); ``null`` means no header; a value is sent verbatim.
``count`` is how many requests the fault affects (``null``: until cleared); ``endpoint`` is
``"track"`` (default), ``"token"`` or ``"any"``. ``carrier`` may be ``"all"``. Faults queue per
carrier in arrival order; each request consumes one use of the first matching fault.
``quota`` holds for the rest of the simulated day (or until cleared) and ``token_expiry`` acts
at once, so neither is queued. Pure data and bookkeeping, no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

__all__ = ["CARRIERS", "Fault", "FaultBoard", "FaultKind", "parse_fault"]

CARRIERS: tuple[str, ...] = ("ups", "fedex", "dhl", "usps")


class FaultKind(enum.StrEnum):
    rate_limited = "429"
    quota = "quota"
    server_error = "5xx"
    slow = "slow"
    malformed = "malformed"
    html = "html"
    token_expiry = "token_expiry"


_ENDPOINTS = ("track", "token", "any")


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    carrier: str
    kind: FaultKind
    count: int | None = 1
    retry_after: str | None = None  # Retry-After header value to send (None: no header)
    carrier_default: bool = False   # retry_after absent from the request: do what the carrier does
    status: int = 0                 # HTTP status for 5xx/html (0: the kind's default)
    delay_s: float = 0.0
    endpoint: str = "track"

    def applies_to(self, endpoint: str) -> bool:
        return self.endpoint in ("any", endpoint)


def _int(body: dict[str, Any], key: str, default: int | None) -> int | None:
    value = body.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer")
    return value


def parse_fault(body: Any) -> list[Fault]:
    """Validate a fault request; one Fault per carrier (``"all"`` expands). ValueError if bad."""
    if not isinstance(body, dict):
        raise ValueError("fault must be a JSON object")
    carrier = body.get("carrier", "all")
    if carrier != "all" and carrier not in CARRIERS:
        raise ValueError(f"unknown carrier {carrier!r}")
    try:
        kind = FaultKind(str(body.get("kind")))
    except ValueError:
        raise ValueError(f"unknown fault kind {body.get('kind')!r} "
                         f"(known: {', '.join(k.value for k in FaultKind)})") from None
    count = _int(body, "count", 1)
    if count is not None and count < 1:
        raise ValueError("count must be >= 1 or null")
    carrier_default = "retry_after" not in body
    retry_after = body.get("retry_after")
    if retry_after is not None:
        retry_after = str(retry_after)
    status = _int(body, "status", 0) or 0
    if kind is FaultKind.server_error and status and not 500 <= status <= 599:
        raise ValueError("a 5xx fault needs a status in 500-599")
    delay = body.get("delay", 5.0 if kind is FaultKind.slow else 0.0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
        raise ValueError("delay must be a non-negative number of seconds")
    endpoint = body.get("endpoint", "track")
    if endpoint not in _ENDPOINTS:
        raise ValueError(f"endpoint must be one of {_ENDPOINTS}")
    carriers = CARRIERS if carrier == "all" else (carrier,)
    return [Fault(carrier=c, kind=kind, count=count, retry_after=retry_after, status=status,
                  delay_s=float(delay), endpoint=endpoint, carrier_default=carrier_default)
            for c in carriers]


class FaultBoard:
    """Active faults. Not thread-safe: the sandbox's single event loop owns it."""

    def __init__(self) -> None:
        self._queues: dict[str, list[Fault]] = {c: [] for c in CARRIERS}
        self._quota_day: dict[str, date] = {}

    def add(self, fault: Fault) -> None:
        self._queues[fault.carrier].append(fault)

    def exhaust_quota(self, carrier: str, day: date) -> None:
        self._quota_day[carrier] = day

    def quota_exhausted(self, carrier: str, day: date) -> bool:
        return self._quota_day.get(carrier) == day

    def clear(self, carrier: str | None = None) -> None:
        for c in CARRIERS if carrier in (None, "all") else (str(carrier),):
            self._queues[c].clear()
            self._quota_day.pop(c, None)

    def take(self, carrier: str, endpoint: str) -> Fault | None:
        """Consume one use of the first fault that applies to this request."""
        queue = self._queues[carrier]
        for i, fault in enumerate(queue):
            if not fault.applies_to(endpoint):
                continue
            if fault.count is None:
                return fault
            if fault.count <= 1:
                del queue[i]
            else:
                queue[i] = replace(fault, count=fault.count - 1)
            return fault
        return None

    def describe(self) -> dict[str, Any]:
        return {c: {"queued": [{"kind": f.kind.value, "count": f.count,
                                "retry_after": f.retry_after, "status": f.status,
                                "delay": f.delay_s, "endpoint": f.endpoint} for f in q],
                    "quota_exhausted_on": (self._quota_day[c].isoformat()
                                           if c in self._quota_day else None)}
                for c, q in self._queues.items()}
