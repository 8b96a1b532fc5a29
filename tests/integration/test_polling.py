"""The poll tick and anomaly sweep against the carrier sandbox over real HTTP, through a
simulated fortnight: statuses follow the scenarios, the expected anomalies open and close at
the right simulated times, and the sandbox never has to refuse a request for quota."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from carriers import numbers
from carriers.base import Carrier
from carriers.model import BatchResult
from carriers.sandbox import Quota, SandboxThread
from notifier import config, poller
from notifier.app import build_app
from notifier.clock import SimulatedClock
from notifier.models import OmsStatus
from notifier.store.base import OrderInput, ShipmentInput
from tests.conftest import config_text

START = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)  # a Monday morning
TICK = timedelta(minutes=30)

# (scenario, carrier) pairs; every scenario appears, every carrier appears.
CASES = [
    ("normal", "ups"), ("normal", "fedex"), ("normal", "dhl"), ("normal", "usps"),
    ("lost", "ups"), ("label_only", "fedex"), ("not_found", "usps"),
    ("exception_return", "dhl"), ("edd_slip_once", "fedex"), ("edd_slip_many", "ups"),
    ("failed_attempt_pickup", "usps"), ("delivered_already", "fedex"),
    ("delivered_correction", "dhl"),
]


@dataclass
class World:
    clock: SimulatedClock
    sandbox: SandboxThread
    settings: config.Settings
    numbers: dict[str, tuple[str, str]]  # order id -> (carrier, number)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = SimulatedClock(START, speed=0)
    quotas = {"dhl": Quota(per_day=250), "usps": Quota(per_hour=60)}
    with SandboxThread(now=clock.now, quotas=quotas) as sandbox:
        # The sandbox enforces the hour/day quotas here, not per-second ones: a per-second
        # limit is paced in real time and would make a simulated fortnight take minutes.
        extra = "[api]\nenabled = false\n" + "".join(
            f"[carriers.{c}]\nrequests_per_second = 1000\n"
            for c in ("ups", "fedex", "dhl", "usps"))
        text = config_text(str(tmp_path / "n.sqlite3"), extra).replace(
            "http://127.0.0.1:8787", sandbox.base_url)
        path = tmp_path / "config.toml"
        path.write_text(text)
        settings = config.load(path)
        rng = random.Random(7)
        registered: dict[str, tuple[str, str]] = {}
        for i, (scenario, carrier) in enumerate(CASES):
            number = numbers.generate(carrier, rng)
            httpx.post(sandbox.base_url + "/_sandbox/shipments", json={
                "number": number, "carrier": carrier, "scenario": scenario,
                "start": START.isoformat()}).raise_for_status()
            registered[f"O{i}-{scenario}"] = (carrier, number)
        yield World(clock=clock, sandbox=sandbox, settings=settings, numbers=registered)


async def run_days(world: World, days: int) -> dict[str, list[tuple[datetime, str, str]]]:
    """Poll every TICK for ``days``; returns per order the (time, change, kind) of anomalies."""
    app = await build_app(world.settings, clock=world.clock)
    try:
        await app.store.upsert_orders([
            OrderInput(id=oid, email=f"{oid.lower()}@example.com", tz="America/New_York",
                       oms_status=OmsStatus.processing,
                       shipments=(ShipmentInput(carrier=c, tracking_number=n),))
            for oid, (c, n) in world.numbers.items()], now=world.clock.now())
        end = START + timedelta(days=days)
        while world.clock.now() < end:
            await app.jobs["poll_tick"]()
            world.clock.advance(TICK)
        await app.jobs["anomaly_sweep"]()
        history: dict[str, list[tuple[datetime, str, str]]] = {}
        for a in await app.store.list_anomalies(open_only=False):
            for at, change, _ in await app.store.anomaly_history(a.id or 0):
                history.setdefault(a.order_id, []).append((at, change, a.kind.value))
        statuses = {oid: (await app.store.get_order(oid)).shipments[0].status.value
                    for oid in world.numbers}
        history["_statuses"] = [(START, s, oid) for oid, s in statuses.items()]
        return history
    finally:
        await app.aclose()


def kinds(history: dict[str, list[tuple[datetime, str, str]]], oid: str, change: str
          ) -> set[str]:
    return {k for _, c, k in history.get(oid, []) if c == change}


@pytest.mark.slow
async def test_a_simulated_fortnight(world: World) -> None:
    history = await run_days(world, 14)
    status = {oid: s for _, s, oid in history["_statuses"]}
    oid = {scenario_carrier: o for o in world.numbers
           for scenario_carrier in [o.split("-", 1)[1] + ":" + world.numbers[o][0]]}

    for carrier in ("ups", "fedex", "dhl", "usps"):
        assert status[oid[f"normal:{carrier}"]] == "delivered", carrier
    assert status[oid["delivered_already:fedex"]] == "delivered"
    assert status[oid["exception_return:dhl"]] == "returned"
    assert status[oid["label_only:fedex"]] == "info_received"
    assert status[oid["not_found:usps"]] in ("pending", "expired")

    # Normal deliveries open nothing.
    for carrier in ("ups", "fedex", "dhl", "usps"):
        assert not kinds(history, oid[f"normal:{carrier}"], "opened"), carrier
    assert "stale_in_transit" in kinds(history, oid["lost:ups"], "opened")
    assert "stale_pre_transit" in kinds(history, oid["label_only:fedex"], "opened")
    assert "not_found" in kinds(history, oid["not_found:usps"], "opened")
    assert "exception" in kinds(history, oid["exception_return:dhl"], "opened")
    assert "edd_slipped" in kinds(history, oid["edd_slip_once:fedex"], "opened")
    assert "edd_slipped" in kinds(history, oid["edd_slip_many:ups"], "opened")
    # The slipped shipments were delivered in the end: the slip closes with the delivery.
    assert "edd_slipped" in kinds(history, oid["edd_slip_once:fedex"], "closed")
    # A failed attempt opens an exception that the pickup/delivery closes.
    fa = oid["failed_attempt_pickup:usps"]
    assert "exception" in kinds(history, fa, "opened")
    assert "exception" in kinds(history, fa, "closed")

    stats = httpx.get(world.sandbox.base_url + "/_sandbox/stats").json()
    overruns = sum(c.get("429_quota", 0) for c in stats.values() if isinstance(c, dict))
    assert overruns == 0, stats
    # The per-carrier counters sit under "carriers"; requests were made and none refused.
    assert sum(c["requests"] for c in stats["carriers"].values()) > 0, stats
    assert all(c["429_quota"] == 0 for c in stats["carriers"].values()), stats


async def test_stale_in_transit_opens_after_the_threshold_not_before(world: World) -> None:
    history = await run_days(world, 14)
    lost = next(o for o in world.numbers if o.endswith("lost"))
    opened = [at for at, change, kind in history[lost]
              if change == "opened" and kind == "stale_in_transit"]
    assert len(opened) == 1  # opens once, stays open
    # Three business days after the last scan, never earlier than three calendar days.
    assert opened[0] - START >= timedelta(days=3)


class Recorder:
    """Wraps an adapter and notes the simulated instant of every poll of every number."""

    name: ClassVar[str] = "recorder"
    max_batch: ClassVar[int] = 1

    def __init__(self, inner: Carrier, clock: SimulatedClock,
                 polls: dict[str, list[datetime]]) -> None:
        self.inner = inner
        # Per instance on purpose: one wrapper class stands for every carrier.
        self.name = inner.name  # type: ignore[misc]
        self.max_batch = inner.max_batch  # type: ignore[misc]
        self.clock = clock
        self.polls = polls

    @property
    def requests_made(self) -> int:
        return int(getattr(self.inner, "requests_made", 0))

    async def track(self, numbers_: Sequence[str]) -> BatchResult:
        for n in numbers_:
            self.polls.setdefault(n, []).append(self.clock.now())
        return await self.inner.track(numbers_)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_near_delivery_polls_are_spaced_and_a_per_second_carrier_is_not_hammered(
        tmp_path: Path) -> None:
    """Four simulated days at a 5-minute tick, parcels delivered in that time. UPS has no
    hourly or daily quota (production: a per-second rate only): it is polled on its schedule,
    never ahead of it. USPS (60/h) spends its spare budget polling parcels near delivery ahead
    of schedule, but no shipment of either is ever polled twice within ``min_interval``."""
    tick = timedelta(minutes=5)
    clock = SimulatedClock(START, speed=0)
    polls: dict[str, list[datetime]] = {}
    with SandboxThread(now=clock.now, quotas={"usps": Quota(per_hour=60)}) as sandbox:
        extra = "[api]\nenabled = false\n" + "".join(
            f"[carriers.{c}]\nrequests_per_second = 1000\n" for c in ("ups", "usps"))
        text = config_text(str(tmp_path / "n.sqlite3"), extra).replace(
            "http://127.0.0.1:8787", sandbox.base_url)
        (tmp_path / "config.toml").write_text(text)
        settings = config.load(tmp_path / "config.toml")
        rng = random.Random(11)
        orders: list[OrderInput] = []
        for i in range(8):
            carrier = ("ups", "usps")[i % 2]
            number = numbers.generate(carrier, rng)
            reply = httpx.post(sandbox.base_url + "/_sandbox/shipments", json={
                "number": number, "carrier": carrier, "scenario": "normal",
                "start": (START - timedelta(hours=20 + 4 * i)).isoformat()})
            reply.raise_for_status()
            zone = reply.json()["route"]["destination"]["zone"]
            orders.append(OrderInput(
                id=f"Z{i}", email=f"z{i}@example.com", tz=zone,
                oms_status=OmsStatus.processing,
                shipments=(ShipmentInput(carrier=carrier, tracking_number=number),)))
        app = await build_app(settings, clock=clock)
        try:
            mine = poller.install(app)  # replaces the poll job; its adapters are recorded
            for name in list(mine.adapters):
                mine.adapters[name] = Recorder(mine.adapters[name], clock, polls)
            await app.store.upsert_orders(orders, now=clock.now())
            end = START + timedelta(days=4)
            while clock.now() < end:
                await app.jobs["poll_tick"]()
                clock.advance(tick)
            statuses = {(await app.store.get_order(o.id)).shipments[0].status.value
                        for o in orders}
        finally:
            await app.aclose()

    assert statuses == {"delivered"}, polls
    policy = settings.polling
    gaps: dict[str, list[timedelta]] = {"ups": [], "usps": []}
    for o in orders:
        carrier, number = o.shipments[0].carrier, o.shipments[0].tracking_number
        times = polls[number]
        gaps[carrier] += [b - a for a, b in pairwise(times)]
    assert gaps["ups"] and gaps["usps"]
    assert min(gaps["ups"] + gaps["usps"]) >= policy.min_interval
    # UPS is polled on its schedule: a gap shorter than its shortest status interval (out for
    # delivery, less jitter) only where a poll shortly before a delivery morning is followed
    # by the morning's first poll, at most once a parcel a day. USPS's spare requests bought
    # far more such polls ahead of schedule.
    shortest = policy.out_for_delivery * (1 - policy.jitter)
    short = {c: sum(1 for g in gaps[c] if g < shortest) for c in gaps}
    per_carrier_days = 4 * len(orders) // 2
    assert short["ups"] <= per_carrier_days, short
    assert short["usps"] > 2 * per_carrier_days, short
