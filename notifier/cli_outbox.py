"""CLI for the outbox: ``notifier outbox``, ``notifier outbox retry``, ``notifier send-test``.

- ``outbox [--status S] [--limit N] [--json]`` lists notification rows, newest first, with a
  count per status.
- ``outbox retry ID... | --dead`` makes failed/dead/superseded rows pending again now.
- ``send-test --channel C --to RECIPIENT [--trigger T] [--locale L]`` renders the sample
  notice for a trigger and sends it once through the configured channel (e-mail address,
  FCM/APNs token, Web Push subscription JSON, or webhook URL), with the same retry policy as
  the daemon; the exit status says whether the far end accepted it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import uuid
from typing import Any

from notifier import models
from notifier.cli import _config_args, load_settings
from notifier.errors import EX_CONFIG, DeliveryError

__all__ = ["register"]

_STATUSES = [s.value for s in models.NotificationStatus]
_CHANNELS = [c.value for c in models.Channel]
_TRIGGERS = [t.value for t in models.Trigger]


def register(sub: Any) -> None:
    """Add ``outbox`` (with ``retry``) and ``send-test`` to the top-level subparsers."""
    p = sub.add_parser("outbox", help="list notifications in the outbox, or retry them",
                       description="List outbox rows (newest first), or retry failed/dead ones "
                                   "with 'outbox retry'.")
    _config_args(p)
    p.add_argument("--status", choices=_STATUSES, help="only rows with this status")
    p.add_argument("--limit", type=int, default=50, help="at most this many rows (default 50)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_outbox)
    actions = p.add_subparsers(dest="outbox_command", metavar="ACTION")
    r = actions.add_parser("retry", help="send failed or dead notifications again",
                           description="Make the given failed/dead/superseded rows (or every "
                                       "dead row) pending again, due now.")
    _config_args(r)
    r.add_argument("ids", metavar="ID", nargs="*", type=int, help="notification ids")
    r.add_argument("--dead", action="store_true", help="retry every dead notification")
    r.set_defaults(handler=cmd_outbox_retry)

    t = sub.add_parser("send-test", help="send a sample notification through one channel",
                       description="Render the sample notice of a trigger and send it through "
                                   "the configured channel. Exit 0 when accepted.")
    _config_args(t)
    t.add_argument("--channel", required=True, choices=_CHANNELS)
    t.add_argument("--to", required=True, metavar="RECIPIENT",
                   help="e-mail address, FCM/APNs token, Web Push subscription JSON or "
                        "webhook URL")
    t.add_argument("--trigger", default="shipped", choices=_TRIGGERS,
                   help="which notice to render (default: shipped)")
    t.add_argument("--locale", default=None, help="locale of the sample (default: the "
                                                  "templates' default locale)")
    t.set_defaults(handler=cmd_send_test)


# -------------------------------------------------------------------- outbox


def _row_json(n: models.Notification) -> dict[str, Any]:
    def iso(v: Any) -> Any:
        return v.isoformat().replace("+00:00", "Z") if v is not None else None

    return {"id": n.id, "status": n.status.value, "channel": n.channel.value,
            "trigger": n.trigger, "order_id": n.order_id, "shipment_id": n.shipment_id,
            "recipient": n.recipient, "attempts": n.attempts,
            "created_at": iso(n.created_at), "next_attempt_at": iso(n.next_attempt_at),
            "sent_at": iso(n.sent_at), "last_error": n.last_error,
            "dedup_key": n.dedup_key}


def _short(text: str | None, width: int) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def cmd_outbox(args: argparse.Namespace) -> int:
    settings = load_settings(args)

    async def go() -> tuple[list[models.Notification], dict[str, int]]:
        from notifier.app import build_app

        app = await build_app(settings)
        try:
            found = await app.store.list_notifications(status=args.status,
                                                       limit=max(1, args.limit))
            return found, await app.store.outbox_counts()
        finally:
            await app.aclose()

    found, counts = asyncio.run(go())
    if args.json:
        print(json.dumps({"counts": counts, "notifications": [_row_json(n) for n in found]},
                         indent=2))
        return 0
    print("outbox: " + (", ".join(f"{counts[s]} {s}" for s in _STATUSES if counts.get(s))
                        or "empty"))
    if not found:
        return 0
    print(f"{'ID':>6}  {'STATUS':<10} {'CHANNEL':<8} {'TRIGGER':<17} {'ORDER':<12} "
          f"{'RECIPIENT':<28} {'TRIES':>5}  {'WHEN':<20} ERROR")
    for n in found:
        when = n.sent_at or n.next_attempt_at or n.created_at
        stamp = when.strftime("%Y-%m-%d %H:%M:%SZ") if when else ""
        print(f"{n.id:>6}  {n.status.value:<10} {n.channel.value:<8} {n.trigger:<17} "
              f"{_short(n.order_id, 12):<12} {_short(n.recipient, 28):<28} {n.attempts:>5}  "
              f"{stamp:<20} {_short(n.last_error, 60)}")
    return 0


def cmd_outbox_retry(args: argparse.Namespace) -> int:
    if bool(args.ids) == bool(args.dead):
        print("outbox retry: give notification ids or --dead (not both)", file=sys.stderr)
        return 2
    settings = load_settings(args)

    async def go() -> int:
        from notifier.app import build_app

        app = await build_app(settings)
        try:
            return int(await app.store.retry_notifications(now=app.clock.now(), ids=args.ids,
                                                           dead=args.dead))
        finally:
            await app.aclose()

    count = asyncio.run(go())
    print(f"outbox retry: {count} notification(s) pending again")
    if args.ids and count < len(args.ids):
        print("outbox retry: some ids were not found or not failed/dead/superseded",
              file=sys.stderr)
        return 1
    return 0


# -------------------------------------------------------------------- send-test


def cmd_send_test(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    from notifier import render, unsubscribe
    from notifier.channels import registry
    from notifier.channels.base import Recipient
    from notifier.clock import Clock
    from notifier.retry import RetryPolicy

    async def go(clock: Clock) -> tuple[int, str]:
        built = registry.build_channels(settings, clock=clock, names=[args.channel])
        try:
            if args.channel in built.broken:
                return EX_CONFIG, f"channel {args.channel} is misconfigured: " \
                                  f"{built.broken[args.channel]}"
            channel = built.channels[args.channel]
            t = settings.templates
            now = clock.now()
            ctx = render.sample_context(args.trigger, args.locale or t.default_locale, now=now,
                                        shop_name=t.shop_name, support_email=t.support_email,
                                        support_url=t.support_url)
            unsub: str | None = None
            if args.channel == "email":
                try:
                    unsub = unsubscribe.unsubscribe_url(settings.api.public_url, args.to,
                                                        "email", settings.api.unsubscribe_secret)
                except ValueError:
                    unsub = None
            ctx = dataclasses.replace(
                ctx, customer_email=args.to if args.channel == "email" else ctx.customer_email,
                unsubscribe_url=unsub)
            renderer = render.Renderer(render.BUILTIN_TEMPLATES, user_dir=t.user_dir,
                                       default_locale=t.default_locale)
            message = renderer.render(f"test-{uuid.uuid4().hex[:16]}", ctx,
                                      channel="email" if args.channel == "email" else "push")
            policy = RetryPolicy.from_settings(settings.notifications)
            try:
                async for attempt in policy.retrying():
                    with attempt:
                        receipt = await channel.send(message, Recipient(address=args.to,
                                                                        name=ctx.customer_name))
            except DeliveryError as exc:
                return 1, f"not sent: {type(exc).__name__}: {exc}"
            return 0, (f"sent {args.trigger} via {args.channel}"
                       f"{f' (id {receipt.provider_id})' if receipt.provider_id else ''}")
        finally:
            await built.aclose()

    from notifier.app import make_clock

    code, text = asyncio.run(go(make_clock(settings.clock)))
    print(f"send-test: {text}", file=sys.stderr if code else sys.stdout)
    return code
