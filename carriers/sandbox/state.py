"""The sandbox's mutable world: registrations, issued tokens, quotas, faults and statistics.

One ``SandboxState`` per app, used only from the server's event loop (no locking). Scenario
resolution: an explicitly registered number uses its registration; any other number that is
plausible for the carrier (``carriers.detect.plausible``) gets a hash-chosen scenario and a
start a few days before the moment it is first seen, remembered from then on so it does not
drift; an implausible number is "not found". OAuth tokens expire on the REAL monotonic clock
(they are protocol-level); scenarios run on the simulated ``now()``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from carriers.sandbox.faults import CARRIERS, FaultBoard
from carriers.sandbox.quota import Quota, QuotaMeter
from carriers.sandbox.scenarios import Scenario, Timeline, View, build_timeline, pick_scenario

__all__ = ["DEFAULT_TOKEN_LIFETIMES", "SandboxCredentials", "SandboxState", "plausible"]

# Documented lifetimes (reference section 1): UPS "14399" s, FedEx 3599 s, USPS 28799 s.
DEFAULT_TOKEN_LIFETIMES: dict[str, int] = {"ups": 14399, "fedex": 3599, "usps": 28799}
USPS_DEFAULT_SCOPES = frozenset({"addresses", "labels", "prices", "tracking"})


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxCredentials:
    """What the sandbox accepts: one OAuth client for UPS/FedEx/USPS, one DHL API key."""

    client_id: str = "sandbox-client"
    client_secret: str = field(default="sandbox-secret", repr=False)
    dhl_api_key: str = field(default="sandbox-key", repr=False)


def _fallback_plausible(carrier: str, number: str) -> bool:
    lengths = {"ups": (7, 34), "fedex": (12, 34), "dhl": (10, 39), "usps": (13, 34)}
    low, high = lengths.get(carrier, (7, 34))
    return number.isalnum() and low <= len(number) <= high


def plausible(carrier: str, number: str) -> bool:
    """``carriers.detect.plausible`` when available, else a length/charset check."""
    try:
        from carriers.detect import plausible as detect_plausible
    except ImportError:  # detection lands separately; keep the sandbox usable without it
        return _fallback_plausible(carrier, number)
    return bool(detect_plausible(carrier, number))


def normalise(number: str) -> str:
    return "".join(number.split()).upper()


@dataclass(frozen=True, slots=True, kw_only=True)
class Registration:
    scenario: Scenario
    start: datetime
    registered: bool          # True: POST /_sandbox/shipments; False: implicit (hash)
    quirks: frozenset[str] | None = None


@dataclass(slots=True)
class IssuedToken:
    carrier: str
    expires_at: float         # monotonic seconds
    scopes: frozenset[str]
    revoked: bool = False


_COUNTERS = ("requests", "numbers", "token_requests", "tokens_issued", "401", "429_fault",
             "429_quota", "5xx", "faults_other")


@dataclass(slots=True)
class CarrierStats:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTERS, 0))
    distinct: set[str] = field(default_factory=set)

    def bump(self, key: str, by: int = 1) -> None:
        self.counts[key] += by

    def as_json(self) -> dict[str, int]:
        out = dict(self.counts)
        out["distinct_numbers"] = len(self.distinct)
        out["overruns"] = out["429_quota"]  # requests refused for exceeding a quota
        return out


class SandboxState:
    def __init__(self, *, now: Callable[[], datetime], monotonic: Callable[[], float],
                 credentials: SandboxCredentials, seed: int,
                 quotas: Mapping[str, Quota] | None,
                 token_lifetimes: Mapping[str, int] | None) -> None:
        self.now = now
        self.monotonic = monotonic
        self.credentials = credentials
        self.seed = seed
        self.token_lifetimes = {**DEFAULT_TOKEN_LIFETIMES, **(token_lifetimes or {})}
        self.faults = FaultBoard()
        self.registrations: dict[tuple[str, str], Registration] = {}
        self.tokens: dict[str, IssuedToken] = {}
        self.quotas: dict[str, QuotaMeter] = {}
        for carrier, quota in (quotas or {}).items():
            self.set_quota(carrier, quota)
        self.stats: dict[str, CarrierStats] = {c: CarrierStats() for c in CARRIERS}

    # --- quotas -----------------------------------------------------------------------
    def set_quota(self, carrier: str, quota: Quota | None) -> None:
        if carrier not in CARRIERS:
            raise ValueError(f"unknown carrier {carrier!r}")
        if quota is None:
            self.quotas.pop(carrier, None)
        else:
            self.quotas[carrier] = QuotaMeter(quota, monotonic=self.monotonic, now=self.now)

    # --- scenarios --------------------------------------------------------------------
    def register(self, carrier: str, number: str, scenario: Scenario, start: datetime,
                 quirks: frozenset[str] | None) -> None:
        registration = Registration(scenario=scenario, start=start, registered=True,
                                    quirks=quirks)
        self.registrations[(carrier, normalise(number))] = registration
        if carrier == "usps":
            # USPS tracks a routed number (420 + ZIP + IMpb) by its IMpb part too; the adapter
            # sends that part when the whole is longer than the API allows.
            from carriers.usps.parse import api_number

            self.registrations[(carrier, api_number(normalise(number)))] = registration

    def resolve(self, carrier: str, number: str) -> Registration:
        key = (carrier, normalise(number))
        found = self.registrations.get(key)
        if found is None:
            if plausible(carrier, key[1]):
                scenario, start = pick_scenario(key[1], carrier, seed=self.seed, now=self.now())
            else:
                scenario, start = Scenario.not_found, self.now()
            found = Registration(scenario=scenario, start=start, registered=False)
            self.registrations[key] = found
        return found

    def timeline(self, carrier: str, number: str) -> Timeline:
        reg = self.resolve(carrier, number)
        return build_timeline(normalise(number), carrier, reg.scenario, reg.start,
                              seed=self.seed, quirks=reg.quirks)

    def view(self, carrier: str, number: str) -> View:
        self.stats[carrier].distinct.add(normalise(number))
        return self.timeline(carrier, number).view(self.now())

    # --- tokens -----------------------------------------------------------------------
    def issue_token(self, carrier: str, scopes: frozenset[str] = frozenset()) -> tuple[str, int]:
        lifetime = self.token_lifetimes[carrier]
        token = f"{carrier}-{secrets.token_urlsafe(24)}"
        self.tokens[token] = IssuedToken(carrier=carrier, scopes=scopes,
                                         expires_at=self.monotonic() + lifetime)
        self.stats[carrier].bump("tokens_issued")
        return token, lifetime

    def check_bearer(self, carrier: str, authorization: str | None,
                     scope: str | None = None) -> str:
        """"ok", "missing", "invalid", "expired" or "scope" for an Authorization header."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return "missing"
        issued = self.tokens.get(authorization[7:].strip())
        if issued is None or issued.carrier != carrier:
            return "invalid"
        if issued.revoked or self.monotonic() >= issued.expires_at:
            return "expired"
        if scope is not None and scope not in issued.scopes:
            return "scope"
        return "ok"

    def revoke_tokens(self, carrier: str | None = None) -> int:
        revoked = 0
        for token in self.tokens.values():
            if carrier in (None, "all", token.carrier) and not token.revoked:
                token.revoked = True
                revoked += 1
        return revoked

    # --- stats / reset ----------------------------------------------------------------
    def stats_json(self) -> dict[str, Any]:
        return {c: s.as_json() for c, s in self.stats.items()}

    def reset(self, *, everything: bool = False) -> None:
        """Zero statistics, clear faults and quota windows; ``everything`` also forgets
        registrations (explicit and implicit) and issued tokens."""
        self.stats = {c: CarrierStats() for c in CARRIERS}
        self.faults = FaultBoard()
        for carrier, meter in list(self.quotas.items()):
            self.set_quota(carrier, meter.quota)
        if everything:
            self.registrations.clear()
            self.tokens.clear()
