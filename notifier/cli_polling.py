"""CLI commands of polling and anomalies: ``notifier dispute`` and ``notifier anomalies``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from notifier import cli
from notifier.errors import InputError, NotFound

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "dispute", help="record or resolve a delivered-but-not-received report",
        description="Record that the customer did not receive a shipment the carrier reported "
                    "delivered (opens a delivered_disputed anomaly), or resolve it.")
    cli._config_args(p)
    p.add_argument("order_id", metavar="ORDER")
    p.add_argument("--shipment", metavar="TRACKING",
                   help="the tracking number (needed when several shipments were delivered)")
    p.add_argument("--reason", help="what the customer reported")
    p.add_argument("--resolve", choices=("found", "reshipped", "refunded", "other"),
                   help="close the open dispute of this order with this outcome")
    p.add_argument("--note", default="", help="a note kept with the resolution")
    p.set_defaults(handler=cmd_dispute)

    p = sub.add_parser("anomalies", help="list anomalies",
                       description="List anomalies (open ones by default with --open).")
    cli._config_args(p)
    p.add_argument("--kind", help="only this kind, e.g. stale_in_transit")
    p.add_argument("--carrier", help="only this carrier")
    p.add_argument("--open", action="store_true", help="only open anomalies")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(handler=cmd_anomalies)


def cmd_dispute(args: argparse.Namespace) -> int:
    if not args.resolve and not args.reason:
        print("dispute: give --reason TEXT to record a dispute, or --resolve OUTCOME",
              file=sys.stderr)
        return 2
    settings = cli.load_settings(args)

    async def go() -> str:
        from notifier.app import build_app

        app = await build_app(settings, features=False)
        try:
            now = app.clock.now()
            if args.resolve:
                open_ = await app.store.open_disputes_for_order(args.order_id)
                if args.shipment:
                    order = await app.store.get_order(args.order_id)
                    ids = {s.id for s in order.shipments if s.tracking_number == args.shipment}
                    open_ = [d for d in open_ if d.shipment_id in ids]
                if not open_:
                    raise NotFound(f"order {args.order_id!r} has no open dispute")
                if len(open_) > 1:
                    raise InputError(f"order {args.order_id} has {len(open_)} open disputes; "
                                     "name the shipment with --shipment")
                d = await app.store.resolve_dispute(open_[0].id or 0, args.resolve, args.note,
                                                    now=now)
                return f"dispute #{d.id} on order {d.order_id}: resolved ({args.resolve})"
            d = await app.store.open_dispute(args.order_id, args.shipment, args.reason, now=now)
            return (f"dispute #{d.id} on order {d.order_id}: open since "
                    f"{d.opened_at:%Y-%m-%d %H:%M} UTC" if d.opened_at else f"dispute #{d.id}")
        finally:
            await app.aclose()

    try:
        print(asyncio.run(go()))
    except (InputError, NotFound) as exc:
        print(f"dispute: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_anomalies(args: argparse.Namespace) -> int:
    settings = cli.load_settings(args)

    async def go() -> list[Any]:
        from notifier.app import build_app

        app = await build_app(settings, features=False)
        try:
            return await app.store.list_anomalies(kind=args.kind, carrier=args.carrier,
                                                  open_only=args.open, limit=args.limit)
        finally:
            await app.aclose()

    anomalies = asyncio.run(go())
    for a in anomalies:
        if args.json:
            print(json.dumps({
                "id": a.id, "kind": a.kind.value, "order": a.order_id,
                "shipment_id": a.shipment_id, "carrier": a.carrier, "detail": a.detail,
                "opened_at": _iso(a.opened_at), "resolved_at": _iso(a.resolved_at),
                "resolution": a.resolution}))
        else:
            state = f"closed: {a.resolution}" if a.resolved_at else "OPEN"
            print(f"#{a.id:<6} {a.kind.value:<19} {a.order_id:<14} {a.carrier or '-':<6} "
                  f"{_iso(a.opened_at) or '':<21} {state:<12} {a.detail}")
    if not args.json and not anomalies:
        print("no anomalies")
    return 0


def _iso(value: Any) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")
