"""``notifier digest`` and ``notifier alerts``: the ops digest on demand, and recent ops alerts.

``digest --preview FILE.html [--text FILE.txt]`` writes the digest as of now without sending or
recording anything; ``digest --send`` sends it now (recorded as a ``manual:`` period, so the
scheduled one still goes out); ``digest`` alone prints the text part. ``alerts [--json]`` lists
the ``ops_alerts`` rows, pending ones first. Registered through ``notifier.cli.EXTENSION_MODULES``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["cmd_alerts", "cmd_digest", "register"]


def register(sub: Any) -> None:
    """Add the ``digest`` and ``alerts`` subcommands to the ``notifier`` parser."""
    from notifier.cli import _config_args

    p = sub.add_parser("digest", help="preview or send the ops digest now",
                       description="Build the ops digest as of now. Without options, print "
                                   "its text part.")
    _config_args(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--preview", metavar="FILE.html", type=Path,
                      help="write the HTML part to FILE (nothing is sent or recorded)")
    mode.add_argument("--send", action="store_true",
                      help="send it now to the digest recipients (and webhook)")
    p.add_argument("--text", metavar="FILE.txt", type=Path,
                   help="with --preview (or alone): also write the text part to FILE")
    p.set_defaults(handler=cmd_digest)

    p = sub.add_parser("alerts", help="list recent ops alerts",
                       description="List ops alerts (pending first, then the most recently "
                                   "sent) with how often each was raised.")
    _config_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.set_defaults(handler=cmd_alerts)


def cmd_digest(args: argparse.Namespace) -> int:
    from notifier.app import build_app
    from notifier.cli import load_settings
    from notifier.digest_job import DigestJob

    settings = load_settings(args)

    async def go() -> int:
        app = await build_app(settings)
        job = DigestJob(app)
        try:
            if args.send:
                outcome = await job.send_now()
                for line in outcome.errors:
                    print(f"notifier digest: {line}", file=sys.stderr)
                print(f"digest {outcome.period_key}: {outcome.status} to "
                      f"{len(outcome.delivered)} target(s); {outcome.rendered.subject}")
                return 0 if outcome.status == "sent" else 1
            digest, rendered = await job.preview()
            if args.preview is None and args.text is None:
                sys.stdout.write(rendered.text)
                return 0
            for path, content in ((args.preview, rendered.html), (args.text, rendered.text)):
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(content, encoding="utf-8")
                    print(f"wrote {path}")
            print(digest.subject)
            return 0
        finally:
            await job.aclose()
            await app.aclose()

    return asyncio.run(go())


def cmd_alerts(args: argparse.Namespace) -> int:
    from notifier.app import build_app
    from notifier.cli import load_settings

    settings = load_settings(args)

    async def go() -> list[dict[str, Any]]:
        app = await build_app(settings)
        try:
            records = await app.store.ops_alerts_recent(limit=args.limit)
        finally:
            await app.aclose()
        return [{"key": r.key, "state": "pending" if r.pending else "sent",
                 "first_at": r.first_at.isoformat(),
                 "last_sent_at": None if r.last_sent_at is None else r.last_sent_at.isoformat(),
                 "count": r.count, "detail": r.detail} for r in records]

    rows = asyncio.run(go())
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no ops alerts")
    for r in rows:
        sent = r["last_sent_at"] or "not yet"
        print(f"{r['key']}  [{r['state']}]  raised {r['count']}x since {r['first_at']}, "
              f"last sent {sent}\n    {r['detail']}")
    return 0
