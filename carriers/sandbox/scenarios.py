"""Pure scenario timelines: what happens to one simulated parcel, and what is visible when.

A timeline is a deterministic function of (number, carrier, scenario, start, seed): every random
choice (route, hours between scans, signer) comes from a ``random.Random`` seeded with a SHA-256
of those inputs, so the same registration always yields the same events. Events are
carrier-neutral *kinds* (picked up, out for delivery, ...) at UTC instants and places; the
per-carrier payload builders turn them into each carrier's codes and time formats.
``Timeline.view(now)`` is what the carrier would show at ``now``: the events whose instant has
passed, the estimated delivery as known then, and whether the number is found at all.

Unregistered numbers get a scenario from :func:`pick_scenario` (stable hash, weighted mix).
No I/O, no wall clock: ``start`` and ``now`` are arguments.
"""

from __future__ import annotations

import enum
import hashlib
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

from carriers.model import DeliveryWindow
from carriers.sandbox.places import Place, Route, route_for, zone

__all__ = [
    "QUIRKS",
    "SCENARIO_WEIGHTS",
    "EddChange",
    "Kind",
    "Scenario",
    "SimEvent",
    "Timeline",
    "View",
    "build_timeline",
    "default_quirks",
    "dhl_service",
    "pick_scenario",
    "snapshot",
]


class Scenario(enum.StrEnum):
    normal = "normal"
    failed_attempt_pickup = "failed_attempt_pickup"  # out for delivery, attempt fails, pickup
    label_only = "label_only"                        # label created, never scanned
    lost = "lost"                                    # scans stop mid-transit
    edd_slip_once = "edd_slip_once"
    edd_slip_many = "edd_slip_many"
    exception_return = "exception_return"            # address exception, return to sender
    delivered_already = "delivered_already"          # delivered before registration
    not_found = "not_found"                          # the carrier never knows the number
    delivered_correction = "delivered_correction"    # delivered, later a corrected delivery


class Kind(enum.StrEnum):
    """Carrier-neutral event kinds; each carrier's payload module maps them to its codes."""

    label_created = "label_created"
    picked_up = "picked_up"
    departed = "departed"
    arrived = "arrived"
    arrived_destination = "arrived_destination"
    out_for_delivery = "out_for_delivery"
    failed_attempt = "failed_attempt"
    available_for_pickup = "available_for_pickup"
    picked_up_by_recipient = "picked_up_by_recipient"
    delivered = "delivered"
    delivered_corrected = "delivered_corrected"
    delay_weather = "delay_weather"
    delay_operational = "delay_operational"
    address_exception = "address_exception"
    return_requested = "return_requested"
    returning = "returning"
    returned_to_sender = "returned_to_sender"


# Weighted mix for numbers nobody registered: mostly ordinary deliveries.
SCENARIO_WEIGHTS: dict[Scenario, int] = {
    Scenario.normal: 60,
    Scenario.failed_attempt_pickup: 7,
    Scenario.label_only: 5,
    Scenario.lost: 4,
    Scenario.edd_slip_once: 8,
    Scenario.edd_slip_many: 3,
    Scenario.exception_return: 4,
    Scenario.delivered_already: 4,
    Scenario.not_found: 2,
    Scenario.delivered_correction: 3,
}

# Carrier quirks the reference checklist asks a simulator to reproduce on some numbers.
QUIRKS: frozenset[str] = frozenset({
    "fedex_duplicate",         # a second, older trackResult for the same number (row 9)
    "fedex_offsetless_label",  # label-created scan date without UTC offset (row 8)
    "usps_z_suffix",           # local eventTimestamp wrongly suffixed with Z (row 16)
    "dhl_offsets",             # DHL timestamps with an offset (most have none, row 12)
})
_QUIRK_ODDS: dict[str, int] = {"fedex_duplicate": 16, "fedex_offsetless_label": 8,
                               "usps_z_suffix": 4, "dhl_offsets": 4}
_DELIVERED_KINDS = frozenset({Kind.delivered, Kind.picked_up_by_recipient,
                              Kind.delivered_corrected})
_SIGNERS = ("SMITH", "J.GARCIA", "M.CHEN", "FRONT DOOR", "K.OKAFOR", "L.MULLER", "R.PATEL")


@dataclass(frozen=True, slots=True, kw_only=True)
class SimEvent:
    at: datetime  # UTC instant
    kind: Kind
    place: Place

    @property
    def local(self) -> datetime:
        """Wall time at the scan location, with its offset."""
        return self.at.astimezone(zone(self.place.zone))


@dataclass(frozen=True, slots=True, kw_only=True)
class EddChange:
    """From ``at`` on, the carrier's estimated delivery is ``window`` (None: no estimate)."""

    at: datetime
    window: DeliveryWindow | None


@dataclass(frozen=True, slots=True, kw_only=True)
class View:
    """What the carrier shows at one instant. ``events`` are newest first."""

    timeline: Timeline
    now: datetime
    events: tuple[SimEvent, ...]
    edd: DeliveryWindow | None
    first_edd: DeliveryWindow | None

    @property
    def found(self) -> bool:
        return bool(self.events)

    @property
    def delivered(self) -> SimEvent | None:
        """The newest delivery event visible, if any."""
        return next((e for e in self.events if e.kind in _DELIVERED_KINDS), None)

    @property
    def latest(self) -> SimEvent | None:
        return self.events[0] if self.events else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeline:
    number: str
    carrier: str
    scenario: Scenario
    start: datetime
    route: Route
    events: tuple[SimEvent, ...]  # oldest first
    edd: tuple[EddChange, ...]    # oldest first
    signer: str
    service_variant: int
    quirks: frozenset[str] = field(default_factory=frozenset)

    def view(self, now: datetime) -> View:
        visible = tuple(reversed([e for e in self.events if e.at <= now]))
        known = [c for c in self.edd if c.at <= now]
        return View(timeline=self, now=now, events=visible,
                    edd=known[-1].window if known else None,
                    first_edd=next((c.window for c in known if c.window), None))


def _digest(*parts: object) -> int:
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def dhl_service(number: str) -> str:
    """The DHL backend a number belongs to (the ``service`` field of the response)."""
    n = number.strip().upper()
    if n.isdigit() and len(n) == 20 and n.startswith("00"):
        return "parcel-de"
    if n.isdigit() and len(n) == 14:
        return "ecommerce"
    if n[:2] in {"GM", "LX", "RX", "UV", "CN", "SG", "TH", "IN", "HK", "MY"}:
        return "ecommerce"
    return "express"


def default_quirks(number: str, carrier: str, *, seed: int = 0) -> frozenset[str]:
    """Hash-chosen quirks of one number (stable; registration may override them)."""
    return frozenset(q for q, odds in _QUIRK_ODDS.items() if q.startswith(carrier + "_")
                     and _digest("quirk", seed, q, number) % odds == 0)


def pick_scenario(number: str, carrier: str, *, seed: int = 0,
                  now: datetime) -> tuple[Scenario, datetime]:
    """Scenario and start for an unregistered plausible number, from a stable hash.

    The start lies 0-4 days before ``now`` (the caller records it on first sight, so it does
    not drift as the clock moves).
    """
    h = _digest("scenario", seed, carrier, number)
    total = sum(SCENARIO_WEIGHTS.values())
    ticket = h % total
    chosen = Scenario.normal
    for scenario, weight in SCENARIO_WEIGHTS.items():
        if ticket < weight:
            chosen = scenario
            break
        ticket -= weight
    back = timedelta(minutes=(h >> 20) % (4 * 24 * 60))
    return chosen, now - back


# --- timeline construction -------------------------------------------------------------


def _hours(rng: random.Random, low: float, high: float) -> timedelta:
    return timedelta(minutes=round(rng.uniform(low, high) * 60))


def _at_local(day: date, hour: float, tz: str) -> datetime:
    """UTC instant of a local wall time (hour may be fractional)."""
    minutes = round(hour * 60)
    local = datetime.combine(day, time(minutes // 60, minutes % 60), zone(tz))
    return local.astimezone(UTC)


def _next_local(after: datetime, place: Place, rng: random.Random, low: float,
                high: float) -> datetime:
    """The first local time in [low, high) hours after ``after``; skips Sundays."""
    day = after.astimezone(zone(place.zone)).date()
    for _ in range(10):
        if day.weekday() != 6:
            candidate = _at_local(day, rng.uniform(low, high), place.zone)
            if candidate > after:
                return candidate
        day += timedelta(days=1)
    return after + timedelta(hours=12)  # unreachable in practice; keeps the loop bounded


def _local_date(at: datetime, place: Place) -> date:
    return at.astimezone(zone(place.zone)).date()


@dataclass(slots=True)
class _Plan:
    """The undisturbed journey; scenarios cut, stretch or extend it."""

    route: Route
    label: datetime
    pickup: datetime
    depart_origin: datetime
    arrive_hub: datetime
    depart_hub: datetime
    arrive_destination: datetime
    out_for_delivery: datetime
    delivered: datetime

    def events(self, upto: int = 8) -> list[SimEvent]:
        r = self.route
        steps = [(self.label, Kind.label_created, r.origin),
                 (self.pickup, Kind.picked_up, r.origin),
                 (self.depart_origin, Kind.departed, r.origin),
                 (self.arrive_hub, Kind.arrived, r.hub),
                 (self.depart_hub, Kind.departed, r.hub),
                 (self.arrive_destination, Kind.arrived_destination, r.destination),
                 (self.out_for_delivery, Kind.out_for_delivery, r.destination),
                 (self.delivered, Kind.delivered, r.destination)]
        return [SimEvent(at=at, kind=k, place=p) for at, k, p in steps[:upto]]

    @property
    def edd(self) -> date:
        return _local_date(self.delivered, self.route.destination)


def _plan(rng: random.Random, start: datetime, route: Route) -> _Plan:
    pickup = _next_local(start + timedelta(hours=2), route.origin, rng, 15.5, 19.5)
    depart_origin = pickup + _hours(rng, 2, 4.5)
    arrive_hub = depart_origin + _hours(rng, 3, 10)
    depart_hub = arrive_hub + _hours(rng, 2, 6)
    arrive_destination = depart_hub + _hours(rng, 5, 30)
    ofd = _next_local(arrive_destination + timedelta(hours=3), route.destination, rng, 7, 9.5)
    delivered = ofd + _hours(rng, 1.5, 7.5)
    return _Plan(route=route, label=start, pickup=pickup, depart_origin=depart_origin,
                 arrive_hub=arrive_hub, depart_hub=depart_hub,
                 arrive_destination=arrive_destination, out_for_delivery=ofd,
                 delivered=delivered)


def _tail_after_slip(rng: random.Random, plan: _Plan, after: datetime,
                     edd: date) -> list[SimEvent]:
    """Depart hub, arrive, out for delivery on ``edd`` morning, deliver - all after ``after``."""
    r = plan.route
    ofd = _at_local(edd, rng.uniform(7, 9.5), r.destination.zone)
    arrive = max(after + timedelta(hours=2), ofd - _hours(rng, 5, 12))
    depart = after + timedelta(minutes=(arrive - after) // timedelta(minutes=2))
    delivered = ofd + _hours(rng, 1.5, 7.5)
    return [SimEvent(at=depart, kind=Kind.departed, place=r.hub),
            SimEvent(at=arrive, kind=Kind.arrived_destination, place=r.destination),
            SimEvent(at=ofd, kind=Kind.out_for_delivery, place=r.destination),
            SimEvent(at=delivered, kind=Kind.delivered, place=r.destination)]


def _later_edd(previous: date, at: datetime, place: Place, days: int = 1) -> date:
    """A slipped estimate: later than before and never earlier than the day after ``at``."""
    floor = _local_date(at, place) + timedelta(days=1)
    candidate = max(previous + timedelta(days=days), floor)
    return candidate + timedelta(days=1) if candidate.weekday() == 6 else candidate


def _build(scenario: Scenario, rng: random.Random, start: datetime,
           route: Route) -> tuple[list[SimEvent], list[EddChange]]:
    if scenario is Scenario.not_found:
        return [], []
    if scenario is Scenario.delivered_already:
        # Shift the whole journey into the past so delivery precedes registration.
        start = start - timedelta(days=5) - _hours(rng, 0, 48)
    plan = _plan(rng, start, route)
    day = DeliveryWindow.day
    first = [EddChange(at=plan.label, window=day(plan.edd))]
    dest, hub = route.destination, route.hub
    ev = SimEvent

    if scenario in (Scenario.normal, Scenario.delivered_already):
        return plan.events(), first
    if scenario is Scenario.delivered_correction:
        corrected = plan.delivered + _hours(rng, 14, 30)
        return [*plan.events(), ev(at=corrected, kind=Kind.delivered_corrected, place=dest)], first
    if scenario is Scenario.label_only:
        return plan.events(1), []
    if scenario is Scenario.lost:
        return plan.events(5), first
    if scenario is Scenario.failed_attempt_pickup:
        attempt = plan.out_for_delivery + _hours(rng, 2, 8)
        ready = _next_local(attempt + timedelta(hours=10), dest, rng, 8.5, 11)
        collected = _next_local(ready + timedelta(hours=20), dest, rng, 11, 18.5)
        events = [*plan.events(7),
                  ev(at=attempt, kind=Kind.failed_attempt, place=dest),
                  ev(at=ready, kind=Kind.available_for_pickup, place=dest),
                  ev(at=collected, kind=Kind.picked_up_by_recipient, place=dest)]
        return events, first
    if scenario is Scenario.edd_slip_once:
        delay = plan.arrive_hub + _hours(rng, 1, 3)
        edd1 = _later_edd(plan.edd, delay, dest, days=rng.choice((1, 2)))
        events = [*plan.events(4), ev(at=delay, kind=Kind.delay_weather, place=hub)]
        events += _tail_after_slip(rng, plan, delay, edd1)
        return events, [*first, EddChange(at=delay, window=day(edd1))]
    if scenario is Scenario.edd_slip_many:
        delay1 = plan.arrive_hub + _hours(rng, 1, 3)
        edd1 = _later_edd(plan.edd, delay1, dest)
        depart = delay1 + _hours(rng, 18, 30)
        arrive = depart + _hours(rng, 6, 14)
        edd2 = _later_edd(edd1, arrive, dest)  # a silent slip: new estimate, no delay scan
        delay2 = _next_local(arrive + timedelta(hours=3), dest, rng, 8, 10)
        edd3 = _later_edd(edd2, delay2, dest)
        ofd = _at_local(edd3, rng.uniform(7, 9.5), dest.zone)
        events = [*plan.events(4),
                  ev(at=delay1, kind=Kind.delay_weather, place=hub),
                  ev(at=depart, kind=Kind.departed, place=hub),
                  ev(at=arrive, kind=Kind.arrived_destination, place=dest),
                  ev(at=delay2, kind=Kind.delay_operational, place=dest),
                  ev(at=ofd, kind=Kind.out_for_delivery, place=dest),
                  ev(at=ofd + _hours(rng, 1.5, 7.5), kind=Kind.delivered, place=dest)]
        edds = [*first,
                EddChange(at=delay1, window=day(edd1)),
                EddChange(at=arrive, window=day(edd2)),
                EddChange(at=delay2, window=day(edd3))]
        return events, edds
    # exception_return: address problem at the destination, then back to the shipper.
    problem = _next_local(plan.arrive_destination + timedelta(hours=3), dest, rng, 8, 11)
    requested = _next_local(problem + timedelta(hours=20), dest, rng, 9, 16)
    returning = requested + _hours(rng, 8, 16)
    back = _next_local(returning + timedelta(hours=24), route.origin, rng, 10, 16)
    events = [*plan.events(6),
              ev(at=problem, kind=Kind.address_exception, place=dest),
              ev(at=requested, kind=Kind.return_requested, place=dest),
              ev(at=returning, kind=Kind.returning, place=hub),
              ev(at=back, kind=Kind.returned_to_sender, place=route.origin)]
    return events, [*first, EddChange(at=requested, window=None)]


@lru_cache(maxsize=4096)
def build_timeline(number: str, carrier: str, scenario: Scenario, start: datetime, *,
                   seed: int = 0, quirks: frozenset[str] | None = None) -> Timeline:
    """The full, deterministic timeline (future events included) of one parcel."""
    rng = random.Random(_digest("timeline", seed, carrier, number, scenario, start.isoformat()))
    route = route_for(carrier, dhl_service(number), rng)
    events, edd = _build(scenario, rng, start, route)
    events.sort(key=lambda e: e.at)
    return Timeline(number=number, carrier=carrier, scenario=scenario, start=start, route=route,
                    events=tuple(events), edd=tuple(edd), signer=rng.choice(_SIGNERS),
                    service_variant=rng.randrange(2),
                    quirks=default_quirks(number, carrier, seed=seed) if quirks is None
                    else quirks)


def snapshot(number: str, carrier: str, scenario: Scenario, start: datetime, now: datetime,
             *, seed: int = 0, quirks: frozenset[str] | None = None) -> View:
    """What the carrier shows about ``number`` at ``now`` (events newest first, EDD, ...)."""
    return build_timeline(number, carrier, scenario, start, seed=seed, quirks=quirks).view(now)
