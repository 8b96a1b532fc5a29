"""Chaos bench: ``notifier run`` SIGKILLed at random moments through a simulated week.

One run: the carrier sandbox, an SMTP sink and a push receiver (webhooks) in this process,
``notifier run`` as a subprocess, all on one simulated clock (see ``tests/e2e/conftest.py``,
whose :func:`chaos_run` this drives). Default: 2,000 parcels (orders imported with ``notifier
orders import`` before the start and in waves while the daemon runs or lies dead), scenarios
that all reach an end (delivered or returned) within the week, e-mail and webhook channels,
and 20 SIGKILLs at uniformly random real instants, each followed by ``PRAGMA integrity_check``
and a restart. After the simulated week the daemon runs on until every parcel is final and the
outbox is empty, then stops with SIGTERM.

Accounting is per de-duplication key: every message the receivers got is mapped back to its
outbox row through the notification id it carries (the e-mail Message-ID, the webhook-id).
``expected`` = outbox rows that should reach a receiver (all but superseded and permanently
failed ones); ``delivered`` = those received at least once; ``lost`` = expected but never
received (rows left pending at the end count here); ``duplicates`` = receptions beyond the
first. At this speed the outbox is busy nearly all the time, so nearly every kill lands on sends
in flight: expect up to ``notifications.concurrency`` duplicates per kill (the at-least-once
window: delivered, outcome not yet committed). In real time the same kills would rarely meet a
send on the wire. Also checked: every delivered/returned parcel has its e-mail row
(``missing``), and every duplicate is of a row that was being sent when a kill struck. The
daemon's log is left in ``--out`` (or a temporary folder).

Usage: ``python bench/chaos.py [--shipments N] [--days D] [--kills K] [--speed X] [--seed S]
[--aim F] [--out DIR]``. ``--aim F`` makes a fraction F of the kills wait for messages on the
wire (the worst case) instead of striking at random. The last line is ``RESULT kills=...
expected=... delivered=... lost=... duplicates=...``; the exit status is 1 when anything was
lost, a parcel's notice is missing, the database failed its integrity check, a duplicate is of a
row not being sent at a kill, or there are more duplicates than sends that can be on the wire at
the kills (kills x ``notifications.concurrency``).
"""

from __future__ import annotations

import sys
from pathlib import Path

# ``python bench/chaos.py`` puts bench/ first on sys.path, where bench/email.py would shadow the
# standard library's ``email`` package: put the repository root there instead.
_ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "bench"]
sys.path.insert(0, str(_ROOT))

import argparse  # noqa: E402
import logging  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from tests.e2e.conftest import World, chaos_run  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shipments", type=int, default=2000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--speed", type=float, default=4320.0,
                        help="simulated seconds per real second (4320: a day per 20 s)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--aim", type=float, default=0.0,
                        help="fraction of kills that wait for sends in flight")
    parser.add_argument("--out", type=Path, default=None,
                        help="keep the run's folder (config, database, daemon.log) here")
    args = parser.parse_args(argv)
    # hypercorn (the push receiver) announces itself at INFO; keep the bench output clean.
    logging.getLogger("hypercorn.error").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        root = (args.out or Path(tmp) / "run").resolve()
        if root.exists() and any(root.iterdir()):
            print(f"--out {root}: not empty", file=sys.stderr)
            return 2
        world = World(root=root, speed=args.speed, eml=False)
        t0 = time.monotonic()

        def say(text: str) -> None:
            print(f"[{time.monotonic() - t0:6.1f}s] {text}", flush=True)

        print(f"chaos: {args.shipments} parcels, {args.days:g} simulated days at "
              f"{args.speed:g}x, {args.kills} SIGKILLs (seed {args.seed}, aim {args.aim:g})")
        world.start_servers()
        try:
            result = chaos_run(world, shipments=args.shipments, days=args.days,
                               kills=args.kills, seed=args.seed, aim=args.aim, say=say)
        finally:
            world.stop()
        messages = max(1, result.messages)
        print(f"kills                {result.kills} (restarts that failed: "
              f"{result.restarts_failed})")
        checks = result.integrity or "ok after every kill"
        print(f"integrity_check      {checks}")
        print(f"outbox rows          {result.rows_by_status}")
        print(f"messages expected    {result.expected}")
        print(f"delivered            {result.delivered}")
        print(f"lost                 {result.lost}" + (f" {result.lost_rows[:10]}"
                                                       if result.lost else ""))
        share = 100 * result.duplicates / messages
        print(f"duplicates           {result.duplicates} ({share:.3f}% of {result.messages} "
              "messages received)")
        print(f"claimed at kills     {result.in_flight_at_kills} rows were 'sending' when a "
              f"kill struck; duplicates of other rows: "
              f"{len(result.duplicated_ids - result.in_flight_ids)}")
        print(f"duplicate bound      {result.duplicate_bound} (kills x notifications.concurrency "
              f"{result.concurrency}: sends that can be on the wire at a kill)")
        print(f"missing notices      {len(result.missing)}" + (f" {result.missing[:5]}"
                                                              if result.missing else ""))
        if result.strays:
            print(f"strays               {result.strays[:5]}")
        print(f"run folder           {root if args.out else '(temporary, removed)'}")
        print(result.line())
        bad = (result.lost or result.missing or result.integrity
               or result.duplicated_ids - result.in_flight_ids
               or result.duplicates > result.duplicate_bound)
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
