"""``notifier demo``: the whole product on one machine, with no credentials and no internet.

Starts the carrier sandbox, a local SMTP server that keeps every message as ``.eml``, a local
push receiver (FCM, APNs, Web Push, webhooks) and ``notifier run`` itself with a fresh
database and a simulated clock (one day per 10 s by default); feeds it a seeded shop through
the HTTP API; shows a live view; and leaves the mails, pushes, digests and database behind.
See :mod:`notifier.demo.runner` for the sequence, :mod:`notifier.demo.seed` for the shop.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``demo`` subcommand to the ``notifier`` parser."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "demo", help="run everything locally on a simulated clock and show it",
        description="Start the carrier sandbox, a local SMTP server, a local push receiver "
                    "and the daemon (as a subprocess) with a simulated clock; seed orders "
                    "through the HTTP API; show a live view; leave mails (.eml), pushes, "
                    "digests and the database in --out. Ctrl-C stops early.")
    p.add_argument("--orders", type=int, default=200, metavar="N",
                   help="orders to seed (default 200)")
    p.add_argument("--speed", type=float, default=8640.0,
                   help="simulated seconds per real second (default 8640: a day per 10 s)")
    p.add_argument("--days", type=float, default=14.0,
                   help="simulated days to run (default 14)")
    p.add_argument("--out", type=Path, default=Path("demo-out"), metavar="DIR",
                   help="output folder, wiped at start if a previous demo made it "
                        "(default ./demo-out)")
    p.add_argument("--seed", type=int, default=7,
                   help="random seed: the same seed gives the same orders (default 7)")
    p.add_argument("--headless", action="store_true",
                   help="plain log lines once per simulated day instead of the live view")
    p.add_argument("--config", metavar="PATH", type=Path,
                   help="take the [templates] section (shop name, support contact, your "
                        "template folder) from this configuration; everything else is the "
                        "demo's own local setup")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from notifier import config
    from notifier.demo.runner import DemoOptions, run

    templates = config.load(args.config).templates if args.config else None
    return run(DemoOptions(orders=args.orders, speed=args.speed, days=args.days,
                           out=args.out, seed=args.seed, headless=args.headless,
                           templates=templates))
