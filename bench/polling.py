"""Polling benchmark: our adaptive, quota-aware scheduler vs a fixed-interval round robin.

One run, one in-process carrier sandbox (``SandboxThread``), one frozen simulated clock advanced
tick by tick. The same shipments (default 2,000, carriers in equal shares, scenarios drawn from
the sandbox's own weighted mix ``SCENARIO_WEIGHTS``, labels created between two days before and
two days after the start) and the same per-carrier quotas, enforced by the sandbox, for both:

* ours: ``notifier.app.build_app`` with the repository's config.toml (only the carriers' base
  URL, quotas and per-second rate changed, see below), its ``poll_tick`` job (poller then
  incremental anomaly sweep) run once per tick. Each order's customer time zone is the
  parcel's destination zone (a shop knows where its customer lives; the sandbox's EDD is a
  local date there), which the schedule uses for the delivery day and delivery hours;
* round robin, what karrio and the Home Assistant integrations do: every shipment not yet
  delivered or returned is polled once per fixed interval, in turn, in batches as large as the
  adapter allows, through the same adapters (``notifier.carriers_factory.build_carriers``).
  The interval is the shortest that keeps the carrier's quota: ``ceil(N / batch)`` requests
  per interval, spread evenly, within ``per_hour`` (minus one for the OAuth token where token
  calls count, as for ours) and ``per_day``. A per-window counter holds back a request that
  tick quantisation would push over the quota, so it never overruns either.

Delay of an event = (simulated time of the first successful poll of that number at or after the
event's instant) - (the instant), for the first out-for-delivery, delivered and exception-class
(exception, failed attempt) event of every shipment that happens during the run (instants from
the sandbox's full timeline, ``GET /_sandbox/shipments/{n}``). The sandbox shows every event
whose instant has passed, so a successful poll at or after the instant is the one that first
returned it; both sides are measured with the same wrapper around the adapters. An event never
seen before the end counts as an infinite delay (reported as ``unseen``).

Deliberate departures from production, the same for both sides: the sandbox enforces the
hourly/daily quotas only, and ``requests_per_second`` is raised to 1,000 so a simulated week
runs in minutes of real time (the per-second pacer works in real time). UPS publishes no
tracking quota and FedEx's 100k/day cannot bind 500 shipments, so the bench gives them the
binding tiers the brief names for USPS and DHL (UPS 60/h like USPS, FedEx 250/day like DHL);
with an unlimited quota a round robin may poll everything every tick and no scheduler can be
faster. The last line is ``RESULT speedup=... ours_requests=... rr_requests=... overruns=...``
(speedup = round robin's median delay / ours; overruns = requests refused for quota, both runs).

Usage: ``python bench/polling.py [--shipments N] [--days D] [--tick MINUTES] [--seed S]
[--profile] [--unknown-zones]`` (``--unknown-zones``: every customer keeps the default zone,
so the schedule cannot place the delivery day in local time).
"""

from __future__ import annotations

import sys
from pathlib import Path

# ``python bench/polling.py`` puts bench/ first on sys.path, where bench/carriers.py would
# shadow the ``carriers`` package: put the repository root there instead.
_ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "bench"]
sys.path.insert(0, str(_ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import bisect  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import pstats  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tomllib  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any, ClassVar  # noqa: E402

import httpx  # noqa: E402

from carriers import numbers  # noqa: E402
from carriers.base import Carrier  # noqa: E402
from carriers.errors import CarrierError  # noqa: E402
from carriers.model import BatchResult  # noqa: E402
from carriers.sandbox import Quota, SandboxThread  # noqa: E402
from carriers.sandbox.scenarios import SCENARIO_WEIGHTS  # noqa: E402
from notifier import config, poller  # noqa: E402
from notifier.app import build_app  # noqa: E402
from notifier.carriers_factory import build_carriers  # noqa: E402
from notifier.clock import SimulatedClock  # noqa: E402
from notifier.models import OmsStatus  # noqa: E402
from notifier.store.base import OrderInput, ShipmentInput  # noqa: E402

START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)  # a Monday
CARRIERS = ("ups", "fedex", "dhl", "usps")
# The quotas both sides get (and the sandbox enforces). See the module docstring.
QUOTAS: dict[str, Quota] = {
    "usps": Quota(per_hour=60),
    "dhl": Quota(per_day=250),
    "ups": Quota(per_hour=60),
    "fedex": Quota(per_day=250),
}
# Carriers whose OAuth token calls count against the tracking quota (sandbox default: USPS).
TOKEN_COUNTS = frozenset({"usps"})
WATCHED = {"out_for_delivery": "out_for_delivery", "delivered": "delivered",
           "exception": "exception", "failed_attempt": "exception"}
TARGET_SPEEDUP = 3.0


@dataclass(frozen=True, slots=True)
class Parcel:
    order_id: str
    carrier: str
    number: str
    scenario: str
    zone: str  # the destination's zone: the shop knows where its customer lives
    # (class, instant) of the first watched event of each class during the run.
    watched: tuple[tuple[str, datetime], ...]


@dataclass
class Outcome:
    name: str
    delays: list[float] = field(default_factory=list)  # seconds; inf = never seen
    by_class: dict[str, list[float]] = field(default_factory=dict)
    by_carrier: dict[str, list[float]] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)    # tracking + counted token calls
    refused: dict[str, int] = field(default_factory=dict)     # 429 for quota
    polls: int = 0
    real_s: float = 0.0

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def overruns(self) -> int:
        return sum(self.refused.values())


class Recording:
    """An adapter that notes, per number, the simulated time of every successful answer."""

    name: ClassVar[str] = "recording"
    max_batch: ClassVar[int] = 1

    def __init__(self, inner: Carrier, seen: dict[str, list[datetime]],
                 clock: SimulatedClock) -> None:
        self.inner = inner
        # Per instance on purpose: one wrapper class stands for every carrier.
        self.name = inner.name  # type: ignore[misc]
        self.max_batch = inner.max_batch  # type: ignore[misc]
        self._seen = seen
        self._clock = clock

    @property
    def requests_made(self) -> int:
        return int(getattr(self.inner, "requests_made", 0))

    async def track(self, numbers_: Sequence[str]) -> BatchResult:
        result = await self.inner.track(numbers_)
        now = self._clock.now()
        for n in numbers_:
            if n not in result.problems:
                self._seen.setdefault(n, []).append(now)
        return result

    async def aclose(self) -> None:
        await self.inner.aclose()


# ------------------------------------------------------------------------------ the world


def make_parcels(base_url: str, count: int, rng: random.Random, end: datetime) -> list[Parcel]:
    """Register ``count`` shipments in the sandbox; read back each full timeline."""
    scenarios = list(SCENARIO_WEIGHTS)
    weights = [SCENARIO_WEIGHTS[s] for s in scenarios]
    parcels: list[Parcel] = []
    used: set[str] = set()
    with httpx.Client(base_url=base_url, timeout=30) as http:
        for i in range(count):
            carrier = CARRIERS[i % len(CARRIERS)]
            number = numbers.generate(carrier, rng)
            while number in used or len(number) > 34:
                number = numbers.generate(carrier, rng)
            used.add(number)
            scenario = rng.choices(scenarios, weights)[0].value
            start = START + timedelta(minutes=rng.uniform(-2 * 1440, 2 * 1440))
            reply = http.post("/_sandbox/shipments", json={
                "number": number, "carrier": carrier, "scenario": scenario,
                "start": start.isoformat()})
            reply.raise_for_status()
            timeline = reply.json()
            first: dict[str, datetime] = {}
            for event in timeline["events"]:
                cls = WATCHED.get(event["status"])
                at = datetime.fromisoformat(event["at"])
                if cls is not None and cls not in first and START <= at < end:
                    first[cls] = at
            parcels.append(Parcel(order_id=f"B{i:05d}", carrier=carrier, number=number,
                                  scenario=scenario,
                                  zone=timeline["route"]["destination"]["zone"],
                                  watched=tuple(sorted(first.items()))))
    return parcels


def bench_settings(base_url: str, db_path: Path, tick: timedelta) -> config.Settings:
    from tests.conftest import dump_toml, merge

    base = tomllib.loads((_ROOT / "config.toml").read_text(encoding="utf-8"))
    carriers: dict[str, Any] = {}
    for name in CARRIERS:
        q = QUOTAS[name]
        carriers[name] = {"base_url": base_url, "requests_per_second": 1000,
                          "requests_per_hour": q.per_hour or 0,
                          "requests_per_day": q.per_day or 0}
    extra = {"database": {"path": str(db_path)}, "api": {"enabled": False},
             "digest": {"enabled": False}, "notifications": {"channels": []},
             "daemon": {"poll_tick": f"{int(tick.total_seconds() // 60)}m"},
             "carriers": carriers}
    path = db_path.with_suffix(".toml")
    path.write_text(dump_toml(merge(base, extra)), encoding="utf-8")
    return config.load(path)


def sandbox_counts(base_url: str) -> tuple[dict[str, int], dict[str, int]]:
    stats = httpx.get(base_url + "/_sandbox/stats").json()["carriers"]
    requests = {c: int(s["requests"]) + (int(s["token_requests"]) if c in TOKEN_COUNTS else 0)
                for c, s in stats.items()}
    return requests, {c: int(s["429_quota"]) for c, s in stats.items()}


def score(outcome: Outcome, parcels: Sequence[Parcel], seen: dict[str, list[datetime]]
          ) -> None:
    for p in parcels:
        times = seen.get(p.number, [])
        for cls, at in p.watched:
            i = bisect.bisect_left(times, at)
            delay = (times[i] - at).total_seconds() if i < len(times) else math.inf
            outcome.delays.append(delay)
            outcome.by_class.setdefault(cls, []).append(delay)
            outcome.by_carrier.setdefault(p.carrier, []).append(delay)
    outcome.polls = sum(len(v) for v in seen.values())


# ------------------------------------------------------------------------------ ours


async def run_ours(settings: config.Settings, clock: SimulatedClock, parcels: Sequence[Parcel],
                   end: datetime, tick: timedelta, *, zones: bool = True
                   ) -> dict[str, list[datetime]]:
    app = await build_app(settings, clock=clock)
    seen: dict[str, list[datetime]] = {}
    try:
        # build_app's Poller is not reachable from the App: install a second one (the job
        # is replaced; the first one's adapters are never used) and wrap its adapters.
        mine = poller.install(app)
        for name in list(mine.adapters):
            mine.adapters[name] = Recording(mine.adapters[name], seen, clock)
        await app.store.upsert_orders([
            OrderInput(id=p.order_id, email=f"{p.order_id.lower()}@example.com",
                       tz=p.zone if zones else "UTC", oms_status=OmsStatus.processing,
                       shipments=(ShipmentInput(carrier=p.carrier, tracking_number=p.number),))
            for p in parcels], now=clock.now())
        while clock.now() < end:
            await app.jobs["poll_tick"]()
            clock.advance(tick)
    finally:
        await app.aclose()
    return seen


# ------------------------------------------------------------------------------ round robin


@dataclass
class _Lane:
    """One carrier's round robin: fixed groups of ``batch`` consecutive shipments, group j
    polled at ``j * spacing + k * interval``."""

    name: str
    adapter: Carrier
    groups: list[list[str]]
    interval: timedelta
    per_hour: int | None
    per_day: int | None
    next_group: int = 0
    next_at: datetime = START
    window: dict[str, int] = field(default_factory=dict)

    @property
    def spacing(self) -> timedelta:
        return self.interval / len(self.groups)

    def allowed(self, now: datetime) -> bool:
        hour, day = now.strftime("%Y-%m-%dT%H"), now.strftime("%Y-%m-%d")
        return ((self.per_hour is None or self.window.get(hour, 0) < self.per_hour)
                and (self.per_day is None or self.window.get(day, 0) < self.per_day))

    def count(self, now: datetime) -> None:
        for key in (now.strftime("%Y-%m-%dT%H"), now.strftime("%Y-%m-%d")):
            self.window[key] = self.window.get(key, 0) + 1


def rr_interval(n: int, batch: int, quota: Quota, tick: timedelta, reserve: int) -> timedelta:
    """The shortest fixed interval at which ``n`` shipments fit the quota."""
    per_round = math.ceil(n / max(1, batch))
    interval = tick
    if quota.per_hour:
        interval = max(interval, timedelta(hours=1) * per_round / (quota.per_hour - reserve))
    if quota.per_day:
        interval = max(interval, timedelta(days=1) * per_round / (quota.per_day - reserve))
    return interval


async def run_round_robin(settings: config.Settings, clock: SimulatedClock,
                          parcels: Sequence[Parcel], end: datetime, tick: timedelta
                          ) -> tuple[dict[str, list[datetime]], dict[str, timedelta]]:
    seen: dict[str, list[datetime]] = {}
    adapters = build_carriers(settings, clock.now)
    done: set[str] = set()  # delivered or returned: karrio stops polling them
    lanes: list[_Lane] = []
    try:
        for name in CARRIERS:
            adapter = Recording(adapters[name], seen, clock)
            mine = [p.number for p in parcels if p.carrier == name]
            size = max(1, adapter.max_batch)
            groups = [mine[i:i + size] for i in range(0, len(mine), size)]
            reserve = 1 if name in TOKEN_COUNTS else 0
            q = QUOTAS[name]
            lanes.append(_Lane(name=name, adapter=adapter, groups=groups,
                               interval=rr_interval(len(mine), size, q, tick, reserve),
                               per_hour=q.per_hour - reserve if q.per_hour else None,
                               per_day=q.per_day - reserve if q.per_day else None))
        limits = {lane.name: asyncio.Semaphore(getattr(settings.carriers, lane.name).concurrency)
                  for lane in lanes}

        async def poll(lane: _Lane, group: list[str]) -> None:
            async with limits[lane.name]:
                try:
                    result = await lane.adapter.track(group)
                except CarrierError as exc:
                    logging.getLogger("bench").warning("%s: %s", lane.name, exc)
                    return
            for r in result.results:
                if r.status.value in ("delivered", "returned"):
                    done.add(r.tracking_number)

        while clock.now() < end:
            now = clock.now()
            work = []
            for lane in lanes:
                while lane.next_at <= now and lane.allowed(now):
                    group = [n for n in lane.groups[lane.next_group] if n not in done]
                    lane.next_group = (lane.next_group + 1) % len(lane.groups)
                    lane.next_at += lane.spacing
                    if group:
                        lane.count(now)
                        work.append(poll(lane, group))
            await asyncio.gather(*work)
            clock.advance(tick)
    finally:
        await adapters.aclose()
    return seen, {lane.name: lane.interval for lane in lanes}


# ------------------------------------------------------------------------------ report


def _fmt(seconds: float) -> str:
    if math.isinf(seconds):
        return "unseen"
    return f"{seconds / 60:.0f}m" if seconds < 3 * 3600 else f"{seconds / 3600:.1f}h"


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def report(o: Outcome) -> None:
    unseen = sum(1 for d in o.delays if math.isinf(d))
    print(f"{o.name}: {o.total_requests} requests "
          f"({', '.join(f'{c} {n}' for c, n in o.requests.items())}), "
          f"{o.overruns} refused for quota (429), {o.polls} numbers answered, "
          f"real {o.real_s:.0f}s")
    print(f"  delay over {len(o.delays)} events: median {_fmt(statistics.median(o.delays))}, "
          f"p90 {_fmt(_pct(o.delays, 0.9))}, unseen {unseen}")
    for cls, values in [*sorted(o.by_class.items()), *o.by_carrier.items()]:
        print(f"    {cls:17} n={len(values):4}  median {_fmt(statistics.median(values)):>7}  "
              f"p90 {_fmt(_pct(values, 0.9)):>7}")


async def main_async(args: argparse.Namespace) -> int:
    tick = timedelta(minutes=args.tick)
    end = START + timedelta(days=args.days)
    clock = SimulatedClock(START, speed=0)
    rng = random.Random(args.seed)
    with SandboxThread(now=clock.now, quotas=QUOTAS) as sandbox, \
            tempfile.TemporaryDirectory(prefix="bench-polling-") as tmp:
        t0 = time.perf_counter()
        parcels = make_parcels(sandbox.base_url, args.shipments, rng, end)
        settings = bench_settings(sandbox.base_url, Path(tmp) / "bench.sqlite3", tick)
        mix: dict[str, int] = {}
        for p in parcels:
            mix[p.scenario] = mix.get(p.scenario, 0) + 1
        print(f"{len(parcels)} shipments ({', '.join(f'{k} {v}' for k, v in sorted(mix.items()))}),"
              f" {args.days} simulated days, tick {args.tick} min; quotas "
              + ", ".join(f"{c} {q.per_hour}/h" if q.per_hour else f"{c} {q.per_day}/day"
                          for c, q in QUOTAS.items())
              + f"; setup {time.perf_counter() - t0:.1f}s")

        ours = Outcome(name="ours")
        t0 = time.perf_counter()
        profiler = cProfile.Profile() if args.profile else None
        if profiler:
            profiler.enable()
        seen = await run_ours(settings, clock, parcels, end, tick,
                              zones=not args.unknown_zones)
        if profiler:
            profiler.disable()
        ours.real_s = time.perf_counter() - t0
        ours.requests, ours.refused = sandbox_counts(sandbox.base_url)
        score(ours, parcels, seen)

        httpx.post(sandbox.base_url + "/_sandbox/reset", json={}).raise_for_status()
        clock.set(START)
        rr = Outcome(name="round robin")
        t0 = time.perf_counter()
        seen, intervals = await run_round_robin(settings, clock, parcels, end, tick)
        rr.real_s = time.perf_counter() - t0
        rr.requests, rr.refused = sandbox_counts(sandbox.base_url)
        score(rr, parcels, seen)

    report(ours)
    print("  round robin intervals: " + ", ".join(f"{c} {_fmt(i.total_seconds())}"
                                                 for c, i in intervals.items()))
    report(rr)
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
        print(out.getvalue())
    ours_median = statistics.median(ours.delays)
    rr_median = statistics.median(rr.delays)
    speedup = rr_median / ours_median if ours_median > 0 else math.inf
    ok = (speedup >= TARGET_SPEEDUP and ours.total_requests <= rr.total_requests
          and ours.overruns + rr.overruns == 0)
    print(f"target (median >= {TARGET_SPEEDUP:g}x lower at <= requests, 0 overruns): "
          f"{'met' if ok else 'NOT met'}")
    print(f"RESULT speedup={speedup:.2f} ours_requests={ours.total_requests} "
          f"rr_requests={rr.total_requests} overruns={ours.overruns + rr.overruns}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shipments", type=int, default=2000)
    parser.add_argument("--days", type=float, default=7)
    parser.add_argument("--tick", type=float, default=5, help="tick length in minutes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="cProfile our scheduler's run")
    parser.add_argument("--unknown-zones", action="store_true",
                        help="customers' zone left at the default (UTC, read as unknown)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
