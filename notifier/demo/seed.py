"""The demo's simulated shop: which orders arrive when, with which parcels and what happens next.

:func:`plan_world` turns ``(orders, seed, start, days)`` into a :class:`World`: every order with
its customer (several locales and time zones), the moment the shop sends it to the daemon, its
OMS status, its shipments (carrier, a valid synthetic tracking number, the sandbox scenario and
the instant its label was created), the follow-ups the shop performs later (ship a backorder,
release a payment hold, cancel), the push devices the customer registers, and a few sandbox
faults to inject. Pure: randomness only from ``random.Random(seed)``, time only from ``start``;
the same arguments always give the same world, so ``--seed`` makes a run reproducible.

Shape of the world (small runs keep at least one of each): most orders are already shipped when
first seen, about a third of them placed over the run; every sandbox scenario and every carrier
occurs; some orders ship two parcels; some are backordered (with an expected ship date), on
payment hold, or waiting in the warehouse; exactly one is cancelled; a few delivered orders are
candidates for the simulated customer's dispute.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from carriers import numbers
from carriers.sandbox.scenarios import Scenario

__all__ = ["CARRIER_WEIGHTS", "PROFILES", "SCENARIO_MIX", "Action", "FaultPlan", "OrderPlan",
           "ShipmentPlan", "World", "plan_world"]

CARRIER_WEIGHTS = {"ups": 35, "fedex": 30, "usps": 20, "dhl": 15}
# Realistic shares once every scenario has appeared once.
SCENARIO_MIX = {
    Scenario.normal: 56, Scenario.edd_slip_once: 8, Scenario.failed_attempt_pickup: 7,
    Scenario.exception_return: 5, Scenario.delivered_already: 5, Scenario.edd_slip_many: 4,
    Scenario.delivered_correction: 4, Scenario.lost: 4, Scenario.label_only: 4,
    Scenario.not_found: 3,
}
# (locale, time zone, weight): the shop sells in North America and Europe.
PROFILES = (
    ("en", "America/New_York", 24), ("en", "America/Chicago", 10),
    ("en", "America/Los_Angeles", 12), ("en", "Europe/London", 6),
    ("fr", "Europe/Paris", 14), ("fr_CA", "America/Toronto", 10),
    ("de", "Europe/Berlin", 14), ("de", "Europe/Vienna", 5), ("en", "Asia/Tokyo", 5),
)
_NAMES = {
    "en": (("Olivia", "Liam", "Emma", "Noah", "Ava", "James", "Mia", "Lucas"),
           ("Smith", "Johnson", "Brown", "Garcia", "Miller", "Davis", "Wilson", "Taylor")),
    "fr": (("Chloé", "Léa", "Hugo", "Zoé", "Théo", "Inès", "Gabriel", "Camille"),
           ("Martin", "Bernard", "Dubois", "Lefèvre", "Moreau", "Girard", "Roux", "Fournier")),
    "de": (("Jürgen", "Lena", "Maximilian", "Sophie", "Lukas", "Marie", "Jonas", "Hannah"),
           ("Müller", "Schmidt", "Schneider", "Fischer", "Weiß", "Becker", "Hoffmann", "Schäfer")),
}
_ASCII = str.maketrans({"é": "e", "è": "e", "ü": "u", "ö": "o", "ä": "a", "ß": "ss", "ç": "c"})
_DOMAINS = ("example.com", "example.org", "example.net")
PUSH_KINDS = ("fcm", "apns", "webpush")


@dataclass(frozen=True, slots=True, kw_only=True)
class ShipmentPlan:
    carrier: str
    number: str
    scenario: Scenario
    start: datetime  # the sandbox timeline's start: the label is created then


@dataclass(frozen=True, slots=True, kw_only=True)
class Action:
    """A follow-up by the shop: set the OMS status and/or add shipments, at ``at``."""

    at: datetime
    status: str | None = None
    expected_ship: date | None = None
    shipments: tuple[ShipmentPlan, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderPlan:
    id: str
    email: str
    name: str
    locale: str
    tz: str
    kind: str  # shipped | split | ships_later | backordered | payment_hold | cancelled
    intake_at: datetime
    status: str
    expected_ship: date | None = None
    promised: date | None = None
    shipments: tuple[ShipmentPlan, ...] = ()
    actions: tuple[Action, ...] = ()
    devices: tuple[str, ...] = ()  # push channels the customer registers (PUSH_KINDS)
    dispute_candidate: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultPlan:
    """A sandbox fault (``POST /_sandbox/faults``) to inject at ``at``."""

    at: datetime
    carrier: str
    kind: str
    count: int
    status: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class World:
    start: datetime
    days: float
    orders: tuple[OrderPlan, ...]
    faults: tuple[FaultPlan, ...]

    def shipments(self) -> list[ShipmentPlan]:
        """Every shipment of the world, at intake or in a later action."""
        out: list[ShipmentPlan] = []
        for o in self.orders:
            out.extend(o.shipments)
            for a in o.actions:
                out.extend(a.shipments)
        return out


def _weighted(rng: random.Random, table: dict[str, int]) -> str:
    return rng.choices(list(table), weights=list(table.values()))[0]


def _hours(rng: random.Random, low: float, high: float) -> timedelta:
    return timedelta(minutes=round(rng.uniform(low, high) * 60))


def _kinds(n: int) -> list[str]:
    """How many orders of each kind (at least one of each special kind when n allows)."""
    special = {"cancelled": 1, "payment_hold": max(2, round(n * 0.04)),
               "backordered": max(2, round(n * 0.05)), "ships_later": max(2, round(n * 0.08)),
               "split": max(1, round(n * 0.08))}
    kinds: list[str] = []
    for kind, count in special.items():
        kinds += [kind] * count
    if len(kinds) > n // 2:  # tiny runs: keep most orders ordinary shipped ones
        kinds = kinds[: max(1, n // 2)]
    return kinds + ["shipped"] * (n - len(kinds))


class _Numbers:
    """Distinct valid tracking numbers, with every carrier used early."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.seen: set[str] = set()
        self.first = list(CARRIER_WEIGHTS)

    def next(self, carrier: str | None = None) -> tuple[str, str]:
        if carrier is None:
            carrier = self.first.pop(0) if self.first else _weighted(self.rng, CARRIER_WEIGHTS)
        while True:
            number = numbers.generate(carrier, self.rng)
            if number not in self.seen:
                self.seen.add(number)
                return carrier, number


def plan_world(orders: int, *, seed: int, start: datetime, days: float) -> World:
    """The whole simulated shop for a run of ``days`` from ``start`` (see module docstring)."""
    if orders < 1:
        raise ValueError("at least one order")
    rng = random.Random(seed)
    nums = _Numbers(rng)
    kinds = _kinds(orders)
    rng.shuffle(kinds)
    # A third of the orders arrive during the run (never in its last fifth: their parcels
    # should get somewhere); the rest are the shop's open orders when the demo starts.
    spread = timedelta(days=days) * 0.6
    pending: list[dict[str, object]] = []
    for i, kind in enumerate(kinds):
        locale, tz = _profile(rng)
        first_names, last_names = _NAMES[locale.split("_")[0]]
        first, last = rng.choice(first_names), rng.choice(last_names)
        domain = rng.choice(_DOMAINS)
        email = f"{first.lower()}.{last.lower()}{i + 1}@{domain}".translate(_ASCII)
        late = i >= 4 and rng.random() < 0.33
        intake = start + (spread * rng.random() if late else timedelta())
        pending.append({"i": i, "kind": kind, "locale": locale, "tz": tz,
                        "name": f"{first} {last}", "email": email, "intake": intake,
                        "late": late})
    plans = [_order(rng, nums, p) for p in pending]
    plans = _assign_scenarios(rng, plans)
    plans = _pick_dispute_candidates(plans)
    return World(start=start, days=days, orders=tuple(sorted(plans, key=lambda o: o.intake_at)),
                 faults=_faults(start, days))


def _profile(rng: random.Random) -> tuple[str, str]:
    locale, tz, _ = rng.choices(PROFILES, weights=[w for *_, w in PROFILES])[0]
    return locale, tz


def _shipment(rng: random.Random, nums: _Numbers, at: datetime,
              carrier: str | None = None) -> ShipmentPlan:
    carrier, number = nums.next(carrier)
    # Scenario placeholder: _assign_scenarios decides once every shipment exists.
    return ShipmentPlan(carrier=carrier, number=number, scenario=Scenario.normal, start=at)


def _order(rng: random.Random, nums: _Numbers, p: dict[str, object]) -> OrderPlan:
    kind = str(p["kind"])
    intake = p["intake"]
    assert isinstance(intake, datetime)
    # Open orders at the start have parcels already on their way for up to ~2 days;
    # orders arriving later were labelled a few hours before the shop sent them.
    label = intake - (_hours(rng, 2, 6) if p["late"] else _hours(rng, 0, 44))
    status, expected = "processing", None
    shipments: tuple[ShipmentPlan, ...] = ()
    actions: tuple[Action, ...] = ()
    if kind == "shipped":
        shipments = (_shipment(rng, nums, label),)
    elif kind == "split":
        second = label + _hours(rng, 3, 30)
        shipments = (_shipment(rng, nums, label),)
        actions = (Action(at=max(second, intake + timedelta(minutes=30)),
                          shipments=(_shipment(rng, nums, second),)),)
    elif kind == "ships_later":
        at = intake + _hours(rng, 6, 30)
        actions = (Action(at=at, shipments=(_shipment(rng, nums, at),)),)
    elif kind == "backordered":
        status = "backordered"
        expected = (intake + timedelta(days=rng.randint(2, 4))).date()
        at = datetime.combine(expected, intake.timetz()) + _hours(rng, 1, 8)
        actions = (Action(at=at, status="processing", shipments=(_shipment(rng, nums, at),)),)
    elif kind == "payment_hold":
        status = "payment_hold"
        at = intake + _hours(rng, 10, 40)
        actions = (Action(at=at, status="processing", shipments=(_shipment(rng, nums, at),)),)
    elif kind == "cancelled":
        status = "received"
        actions = (Action(at=intake + _hours(rng, 4, 14), status="cancelled"),)
    devices: tuple[str, ...] = ()
    roll = rng.random()
    if roll < 0.35:
        devices = (rng.choice(PUSH_KINDS),)
        if roll < 0.05:
            devices += (rng.choice(PUSH_KINDS),)
    promised = (intake + timedelta(days=rng.randint(4, 7))).date() if rng.random() < 0.5 \
        else None
    return OrderPlan(id=f"DEMO-{1001 + int(str(p['i']))}", email=str(p["email"]),
                     name=str(p["name"]), locale=str(p["locale"]), tz=str(p["tz"]), kind=kind,
                     intake_at=intake, status=status, expected_ship=expected, promised=promised,
                     shipments=shipments, actions=actions, devices=devices)


def _leave_unresolved(plans: list[OrderPlan]) -> list[OrderPlan]:
    """One order of each waiting kind never gets its follow-up: the anomalies to find."""
    done: set[str] = set()
    out: list[OrderPlan] = []
    for o in plans:
        if o.kind in ("ships_later", "backordered", "payment_hold") and o.kind not in done:
            done.add(o.kind)
            o = dataclasses.replace(o, actions=())
        out.append(o)
    return out


def _assign_scenarios(rng: random.Random, plans: list[OrderPlan]) -> list[OrderPlan]:
    plans = _leave_unresolved(plans)
    slots = [(oi, ai, si) for oi, o in enumerate(plans)
             for ai, group in enumerate((o.shipments, *(a.shipments for a in o.actions)))
             for si in range(len(group))]
    order = list(range(len(slots)))
    rng.shuffle(order)
    chosen: dict[tuple[int, int, int], Scenario] = {}
    every = list(Scenario)
    for n, k in enumerate(order):
        chosen[slots[k]] = every[n] if n < len(every) else Scenario(
            _weighted(rng, {s.value: w for s, w in SCENARIO_MIX.items()}))
    out: list[OrderPlan] = []
    for oi, o in enumerate(plans):
        def tag(ai: int, group: tuple[ShipmentPlan, ...], oi: int = oi) -> tuple[
                ShipmentPlan, ...]:
            return tuple(ShipmentPlan(carrier=s.carrier, number=s.number, start=s.start,
                                      scenario=chosen[(oi, ai, si)])
                         for si, s in enumerate(group))
        actions = tuple(Action(at=a.at, status=a.status, expected_ship=a.expected_ship,
                               shipments=tag(ai + 1, a.shipments))
                        for ai, a in enumerate(o.actions))
        out.append(dataclasses.replace(o, shipments=tag(0, o.shipments), actions=actions))
    return out


def _pick_dispute_candidates(plans: list[OrderPlan]) -> list[OrderPlan]:
    """Up to three open orders whose one parcel will be delivered: the first to show delivered
    gets the simulated customer's dispute ("says delivered, never received")."""
    wanted, out = 3, []
    first = min(p.intake_at for p in plans)
    for o in plans:
        ok = (wanted > 0 and o.kind == "shipped" and o.intake_at == first
              and o.shipments[0].scenario in (Scenario.normal, Scenario.delivered_correction))
        if ok:
            wanted -= 1
            o = dataclasses.replace(o, dispute_candidate=True)
        out.append(o)
    return out


def _faults(start: datetime, days: float) -> tuple[FaultPlan, ...]:
    """A few bursts the daemon must ride out: 429s with the carrier's Retry-After and 503s."""
    # Kinds as POST /_sandbox/faults names them: "429" (with the carrier's own Retry-After)
    # and "5xx".
    script = [(0.55, "ups", "429", 3, None), (1.4, "fedex", "5xx", 2, 503),
              (2.3, "dhl", "429", 2, None), (4.6, "usps", "5xx", 3, 503),
              (6.2, "ups", "429", 4, None), (9.5, "fedex", "429", 3, None)]
    return tuple(FaultPlan(at=start + timedelta(days=d), carrier=c, kind=k, count=n, status=s)
                 for d, c, k, n, s in script if d < days)
