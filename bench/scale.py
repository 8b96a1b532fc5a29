"""Scale benchmark: the polling hot paths on a database of 1,000,000 active shipments.

A child process generates the database in a temporary folder (created per run, removed at the
end unless ``--keep``): the schema is applied by ``SqliteStore.open()`` (the migrations), then
rows go in with plain ``sqlite3`` ``executemany`` in large transactions: 1,000,000 orders (one
shipment each, customers shared by five orders), 1,000,000 shipments across the four carriers
(mostly in transit, ``next_poll_at`` spread from 30 minutes ago to 12 hours ahead, so about 4%
are due), two events per shipment, 200,000 sent notifications, 1,000 orders marked
``rules_dirty`` and every other order's recheck deadline in the future. Generation is not timed
and its memory is the child's, not ours.

Then, in this process, through the real code:

* select: ``store.due_shipments("ups", now, 1000)``;
* sweep: ``notifier.sweeper.sweep(app)`` with the 1,000 dirty orders among the million;
* tick: what one ``poll_tick`` job does for 1,000 answers: due selection, stored event
  identities and promised dates, ``tracking.apply_result`` per shipment (each answer carries one
  new out-for-delivery event, so every shipment changes status and emits a domain event),
  ``store.save_tick`` (events, shipments, health, dirty marks and the outbox rows planned by the
  notification planner, installed with ``notifier.outbox.install``, in one transaction), then
  the incremental sweep of the 1,000 orders it marked;
* peak RSS of this process (``resource.getrusage``, after everything).

Targets: select < 0.05 s, sweep < 0.25 s, tick < 0.5 s, RSS < 250 MB. The last line is
``RESULT select_s=... sweep_s=... tick_s=... peak_rss_mb=...``.
Usage: ``python bench/scale.py [--shipments N] [--keep] [--profile]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# ``python bench/scale.py`` puts bench/ first on sys.path, where bench/carriers.py would shadow
# the ``carriers`` package: put the repository root there instead.
_ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "bench"]
sys.path.insert(0, str(_ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import pstats  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tomllib  # noqa: E402
from datetime import UTC, date, datetime, timedelta  # noqa: E402

from carriers.model import DeliveryWindow, Location, Status, TrackingEvent, TrackingResult  # noqa: E402
from notifier import config, outbox  # noqa: E402
from notifier.app import build_app  # noqa: E402
from notifier.clock import SimulatedClock  # noqa: E402
from notifier.domain import DomainEvent  # noqa: E402
from notifier.models import Shipment  # noqa: E402
from notifier.sweeper import sweep  # noqa: E402
from notifier.timefmt import to_db  # noqa: E402
from notifier.tracking import apply_result  # noqa: E402

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
CARRIERS = ("ups", "fedex", "dhl", "usps")
DIRTY = 1000
TICK_RESULTS = 1000
TARGETS = {"select_s": 0.05, "sweep_s": 0.25, "tick_s": 0.5, "peak_rss_mb": 250.0}
CHUNK = 100_000


# ------------------------------------------------------------------------------ generation


def generate(path: Path, count: int, seed: int) -> None:
    """Create the schema through the store, then bulk-insert ``count`` orders/shipments."""
    from notifier.store.sqlite import SqliteStore

    async def schema() -> None:
        store = SqliteStore(path)
        await store.open()
        await store.close()

    asyncio.run(schema())
    rng = random.Random(seed)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = OFF")  # generation only; the bench opens it normally
    stamp = to_db(NOW - timedelta(days=3))
    dirty = set(rng.sample(range(count), min(DIRTY, count)))
    for lo in range(0, count, CHUNK):
        hi = min(count, lo + CHUNK)
        orders, shipments, events, notes = [], [], [], []
        for i in range(lo, hi):
            oid = f"S{i:07d}"
            created = NOW - timedelta(minutes=rng.uniform(1440, 6 * 1440))
            recheck = NOW + timedelta(minutes=rng.uniform(60, 3 * 1440))
            orders.append((oid, f"c{i // 5}@example.com", "America/New_York", "processing",
                           to_db(created), stamp, stamp, int(i in dirty),
                           None if i in dirty else to_db(recheck)))
            carrier = CARRIERS[i % 4]
            edd = (NOW + timedelta(days=rng.randint(-1, 4))).date().isoformat()
            last = created + timedelta(hours=rng.uniform(2, 20))
            nxt = NOW + timedelta(minutes=rng.uniform(-30, 12 * 60))
            shipments.append((i + 1, oid, carrier, f"SC{carrier.upper()}{i:010d}",
                              "in_transit", "Departed facility", edd, edd, edd, edd,
                              to_db(last), to_db(created), to_db(nxt),
                              to_db(nxt - timedelta(hours=3)), to_db(last), rng.randint(1, 9)))
            for k, (status, code) in enumerate((("info_received", "MP"), ("in_transit", "DP"))):
                at = to_db(created + timedelta(hours=k * 6))
                events.append((i + 1, f"{at}|{code}|MEMPHIS|TN|38118|US", at, status, code,
                               "Scan", "MEMPHIS", "TN", "38118", "US", stamp))
            if i % 5 == 0:
                notes.append((f"shipped:{oid}:email", oid, i + 1, "shipped", "email",
                              f"c{i // 5}@example.com", "sent", stamp))
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO orders (id, email, tz, oms_status, created_at, updated_at, "
            "oms_status_since, rules_dirty, rules_recheck_at) VALUES (?,?,?,?,?,?,?,?,?)",
            orders)
        db.executemany(
            "INSERT INTO shipments (id, order_id, carrier, tracking_number, status, "
            "status_detail, first_edd_start, first_edd_end, current_edd_start, current_edd_end,"
            " last_event_at, created_at, next_poll_at, last_poll_at, last_success_at, polls) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", shipments)
        db.executemany(
            "INSERT INTO events (shipment_id, identity, at, status, code, description, city, "
            "state, postal_code, country, seen_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)", events)
        db.executemany(
            "INSERT INTO notifications (dedup_key, order_id, shipment_id, trigger, channel, "
            "recipient, status, created_at) VALUES (?,?,?,?,?,?,?,?)", notes)
        db.execute("COMMIT")
    db.execute("ANALYZE")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


# ------------------------------------------------------------------------------ measurement


def settings_for(db_path: Path) -> config.Settings:
    from tests.conftest import dump_toml, merge

    base = tomllib.loads((_ROOT / "config.toml").read_text(encoding="utf-8"))
    extra = {"database": {"path": str(db_path)}, "api": {"enabled": False},
             "digest": {"enabled": False}}
    path = db_path.with_suffix(".toml")
    path.write_text(dump_toml(merge(base, extra)), encoding="utf-8")
    return config.load(path)


def answer(number: str, carrier: str, edd: date) -> TrackingResult:
    """A carrier answer with one new out-for-delivery scan (a status change for every one)."""
    at = NOW - timedelta(minutes=20)
    event = TrackingEvent(at=at, status=Status.out_for_delivery, code="OD",
                          description="Out for delivery",
                          location=Location(city="ATLANTA", state="GA", postal_code="30301",
                                            country="US"))
    return TrackingResult(carrier=carrier, tracking_number=number,
                          status=Status.out_for_delivery, status_detail="Out for delivery",
                          estimated_delivery=DeliveryWindow.day(edd), events=(event,))


async def measure(db_path: Path, profile: bool) -> dict[str, float]:
    settings = settings_for(db_path)
    clock = SimulatedClock(NOW, speed=0)
    app = await build_app(settings, clock=clock, features=False)
    outbox.install(app)  # the planner: save_tick / save_sweep write outbox rows
    store = app.store
    figures: dict[str, float] = {}
    profiler = cProfile.Profile() if profile else None
    try:
        t0 = time.perf_counter()
        due = await store.due_shipments("ups", NOW, TICK_RESULTS)
        figures["select_s"] = time.perf_counter() - t0
        assert len(due) == TICK_RESULTS, f"only {len(due)} due"

        dirty = await store.orders_to_evaluate(NOW, 2 * DIRTY)
        t0 = time.perf_counter()
        report = await sweep(app)
        figures["sweep_s"] = time.perf_counter() - t0
        print(f"sweep: {report.evaluated} orders evaluated ({len(dirty)} were due), "
              f"{report.opened} anomalies opened")

        if profiler:
            profiler.enable()
        t0 = time.perf_counter()
        due = await store.due_shipments("ups", NOW, TICK_RESULTS)
        ids = [s.id for s in due if s.id is not None]
        known = await store.event_identities(ids)
        promised = await store.promised_dates(s.order_id for s in due)
        health = await store.carrier_health("ups")
        rng = random.Random(3)
        shipments: list[Shipment] = []
        new_events: dict[int, list[TrackingEvent]] = {}
        domain: list[DomainEvent] = []
        for s in due:
            edd = (s.current_edd.end if s.current_edd else NOW.date())
            outcome = apply_result(s, answer(s.tracking_number, "ups", edd),
                                   known=known.get(s.id or 0, set()), now=NOW,
                                   policy=settings.polling, rand=rng.random(),
                                   promised=promised.get(s.order_id))
            shipments.append(outcome.shipment)
            if outcome.new_events and s.id is not None:
                new_events[s.id] = list(outcome.new_events)
            domain.extend(outcome.domain_events)
        t1 = time.perf_counter()
        await store.save_tick(shipments=shipments, new_events=new_events, domain_events=domain,
                              health=[health], dirty_orders={s.order_id for s in due}, now=NOW)
        t2 = time.perf_counter()
        after = await sweep(app)
        t3 = time.perf_counter()
        if profiler:
            profiler.disable()
        figures["tick_s"] = t3 - t0
        async with store.db.execute("SELECT count(*) FROM notifications WHERE created_at = ?",
                                    (to_db(NOW),)) as cur:
            row = await cur.fetchone()
        planned = row[0] if row else 0
        print(f"tick: {len(shipments)} shipments, {sum(map(len, new_events.values()))} new "
              f"events, {len(domain)} domain events -> {planned} outbox rows; select+apply "
              f"{t1 - t0:.3f}s, save_tick {t2 - t1:.3f}s, sweep of {after.evaluated} orders "
              f"{t3 - t2:.3f}s")
    finally:
        await app.aclose()
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
        print(out.getvalue())
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shipments", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the generated database")
    parser.add_argument("--profile", action="store_true", help="cProfile the tick")
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--reuse", type=Path, help="measure again on a database kept with "
                        "--keep (marks 1,000 other orders dirty first)")
    args = parser.parse_args()
    if args.generate is not None:
        generate(args.generate, args.shipments, args.seed)
        return 0
    if args.reuse is not None:
        redirty(args.reuse)
        return report(asyncio.run(measure(args.reuse, args.profile)))
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        db_path = tmp / "scale.sqlite3"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--generate", str(db_path),
                        "--shipments", str(args.shipments), "--seed", str(args.seed)],
                       check=True)
        size = db_path.stat().st_size / 1e6
        print(f"generated {args.shipments} shipments in {time.perf_counter() - t0:.1f}s "
              f"({size:.0f} MB) at {db_path}")
        figures = asyncio.run(measure(db_path, args.profile))
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return report(figures)


def redirty(path: Path) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    count = db.execute("SELECT max(rowid) FROM orders").fetchone()[0]
    picks = random.Random(time.time_ns()).sample(range(count), DIRTY)
    db.executemany("UPDATE orders SET rules_dirty = 1 WHERE id = ?",
                   [(f"S{i:07d}",) for i in picks])
    db.close()


def report(figures: dict[str, float]) -> int:
    for key, target in TARGETS.items():
        verdict = "ok" if figures[key] < target else "MISSED"
        print(f"{key:12} {figures[key]:8.3f}  target < {target:g}  {verdict}")
    print(f"RESULT select_s={figures['select_s']:.4f} sweep_s={figures['sweep_s']:.3f} "
          f"tick_s={figures['tick_s']:.3f} peak_rss_mb={figures['peak_rss_mb']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
