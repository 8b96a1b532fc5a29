"""The ``notifier`` command: argparse subcommands, each taking ``--config PATH`` after its name.

Exit statuses: 0 success, 1 the command ran but something failed (rejected rows, not found),
2 usage errors (argparse), 78 configuration errors (EX_CONFIG; systemd will not restart-loop).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from notifier import __version__, logs
from notifier import config as config_mod
from notifier.errors import EX_CONFIG, ConfigError, InputError, NotFound, NotifierError

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, Handler] = {}


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH",
                        help="configuration file (default: $NOTIFIER_CONFIG, ./config.toml, "
                             "then /etc/notifier/config.toml)")
    parser.add_argument("--log-format", choices=("text", "json"), default=None,
                        help="log line format (default: from config, text)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="notifier",
        description="Order-tracking notification daemon: polls UPS, FedEx, DHL and USPS, "
                    "spots stale and anomalous orders, tells customers and ops.")
    parser.add_argument("--version", action="version", version=f"notifier {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("check-config", help="validate the configuration and exit",
                       description="Validate the configuration completely (and render every "
                                   "template with sample data). Exit 0, or 78 with one line "
                                   "per problem.")
    _config_args(p)

    p = sub.add_parser("run", help="run the daemon",
                       description="Run the daemon: poll carriers, sweep anomalies, send "
                                   "notifications, serve the HTTP API.")
    _config_args(p)
    p.add_argument("--once", action="store_true",
                   help="run every periodic job once and exit (tests, cron)")

    orders = sub.add_parser("orders", help="add, import, show and update orders",
                            description="Manage orders.")
    osub = orders.add_subparsers(dest="orders_command", metavar="ACTION", required=True)

    p = osub.add_parser("add", help="add or update one order (idempotent)",
                        description="Upsert one order with its customer and shipments.")
    _config_args(p)
    p.add_argument("--order", required=True, help="merchant order number")
    p.add_argument("--email", required=True, help="customer e-mail")
    p.add_argument("--name", help="customer name")
    p.add_argument("--locale", help="customer locale, e.g. en, fr_CA")
    p.add_argument("--tz", help="customer time zone, e.g. Europe/Paris")
    p.add_argument("--promised", metavar="YYYY-MM-DD", help="promised delivery date")
    p.add_argument("--status", help="OMS status (received, processing, payment_hold, "
                                    "backordered, cancelled)")
    p.add_argument("--expected-ship", metavar="YYYY-MM-DD", help="expected ship date")
    p.add_argument("--carrier", action="append", default=[],
                   help="carrier of the following --tracking (ups, fedex, dhl, usps); repeat "
                        "per shipment, or leave out to detect it from the number")
    p.add_argument("--tracking", action="append", default=[], help="tracking number (repeat)")

    p = osub.add_parser("import", help="import orders from CSV or JSON Lines",
                        description="Import orders (columns: order, email, name, locale, tz, "
                                    "promised, carrier, tracking, status, expected_ship). Bad "
                                    "rows are reported as FILE:LINE: problem and skipped.")
    _config_args(p)
    p.add_argument("file", type=Path)
    p.add_argument("--batch-size", type=int, default=2000, help=argparse.SUPPRESS)

    p = osub.add_parser("show", help="show one order with everything known about it",
                        description="Show an order: derived status, shipments, events, "
                                    "anomalies, notifications.")
    _config_args(p)
    p.add_argument("order_id", metavar="ID")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = osub.add_parser("status", help="set the OMS status of an order",
                        description="Record an order-management status change.")
    _config_args(p)
    p.add_argument("order_id", metavar="ID")
    p.add_argument("--set", required=True, dest="status",
                   choices=("received", "processing", "payment_hold", "backordered",
                            "cancelled"))
    p.add_argument("--expected-ship", metavar="YYYY-MM-DD",
                   help="expected ship date (for backordered)")

    for module_name in EXTENSION_MODULES:
        if importlib.util.find_spec(module_name) is not None:
            importlib.import_module(module_name).register(sub)
    return parser


# Feature modules that add subcommands: each has ``register(subparsers)`` and sets
# ``handler=`` on its parsers with ``set_defaults``. Handlers take the parsed args, return a code.
EXTENSION_MODULES = (
    "notifier.cli_carriers",
    "notifier.cli_polling",
    "notifier.cli_outbox",
    "notifier.cli_ops",
    "notifier.demo",
)


def command(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _COMMANDS[name] = fn
        return fn
    return register


def load_settings(args: argparse.Namespace) -> config_mod.Settings:
    path = config_mod.find_config(getattr(args, "config", None))
    settings = config_mod.load(path)
    logs.setup(args.log_format or settings.daemon.log_format, settings.daemon.log_level)
    return settings


def _err(text: str) -> None:
    print(text, file=sys.stderr)


@command("check-config")
def cmd_check_config(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    from notifier import checks

    problems = checks.check_all(settings)
    if problems:
        for line in problems:
            _err(line)
        return EX_CONFIG
    print(settings.summary())
    return 0


@command("run")
def cmd_run(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    from notifier import checks
    from notifier.daemon import Daemon

    problems = checks.check_all(settings)
    if problems:
        for line in problems:
            _err(line)
        return EX_CONFIG
    daemon = Daemon(settings)
    asyncio.run(daemon.run_once() if args.once else daemon.run())
    return 0


@command("orders add")
def cmd_orders_add(args: argparse.Namespace) -> int:
    from notifier import validate

    if args.carrier and len(args.carrier) != len(args.tracking):
        _err("orders add: give one --carrier per --tracking, or none to detect carriers")
        return 2
    carriers_given = args.carrier or [None] * len(args.tracking)
    fields: dict[str, Any] = {
        "order": args.order, "email": args.email, "name": args.name, "locale": args.locale,
        "tz": args.tz, "promised": args.promised, "status": args.status,
        "expected_ship": args.expected_ship,
    }
    pairs = list(zip(carriers_given, args.tracking, strict=True))
    if pairs:
        # The first pair uses the row fields, so messages name "tracking"/"carrier" plainly.
        fields["carrier"], fields["tracking"] = pairs[0]
        fields["shipments"] = [{"carrier": c, "tracking": t} for c, t in pairs[1:]]
    settings = load_settings(args)
    try:
        checked = validate.order_from_fields(fields)
    except InputError as exc:
        _err(f"orders add: {exc}")
        return 1
    for warning in checked.warnings:
        _err(f"orders add: warning: {warning}")

    async def go() -> str:
        app = await _app(settings)
        try:
            summary = await app.store.upsert_orders([checked.order], now=app.clock.now())
        finally:
            await app.aclose()
        state = "created" if summary.created else "updated" if summary.updated else "unchanged"
        return f"order {checked.order.id}: {state}, {summary.shipments_added} shipment(s) added"

    print(asyncio.run(go()))
    return 0


@command("orders import")
def cmd_orders_import(args: argparse.Namespace) -> int:
    from notifier import importer

    settings = load_settings(args)
    if not args.file.is_file():
        _err(f"{args.file}: no such file")
        return 1

    async def go() -> importer.ImportSummary:
        app = await _app(settings)
        try:
            with _progress(args.file) as progress:
                return await importer.import_file(
                    args.file, app.store, now=app.clock.now, report=_err, progress=progress,
                    batch_size=args.batch_size)
        finally:
            await app.aclose()

    summary = asyncio.run(go())
    print(f"{args.file}: {summary.rows} rows, {summary.imported} imported "
          f"({summary.created} new, {summary.updated} updated, {summary.unchanged} unchanged, "
          f"{summary.shipments_added} shipments added), {summary.rejected} rejected, "
          f"{summary.warnings} warnings")
    return 1 if summary.rejected else 0


@command("orders show")
def cmd_orders_show(args: argparse.Namespace) -> int:
    from notifier import views

    settings = load_settings(args)

    async def go() -> Any:
        app = await _app(settings)
        try:
            return await app.store.order_details(args.order_id)
        finally:
            await app.aclose()

    try:
        details = asyncio.run(go())
    except NotFound as exc:
        _err(f"orders show: {exc}")
        return 1
    if args.json:
        print(json.dumps(views.order_details_json(details), indent=2))
    else:
        print(views.order_details_text(details))
    return 0


@command("orders status")
def cmd_orders_status(args: argparse.Namespace) -> int:
    from notifier import validate
    from notifier.models import OmsStatus, derive_order_status

    settings = load_settings(args)
    try:
        expected = validate._date({"expected_ship": args.expected_ship}, "expected_ship")
    except InputError as exc:
        _err(f"orders status: {exc}")
        return 1

    async def go() -> str:
        app = await _app(settings)
        try:
            order = await app.store.set_oms_status(args.order_id, OmsStatus(args.status),
                                                   now=app.clock.now(),
                                                   expected_ship_date=expected)
        finally:
            await app.aclose()
        return (f"order {order.id}: OMS status {order.oms_status.value}; shown to the customer "
                f"as {derive_order_status(order.oms_status, order.shipments)}")

    try:
        print(asyncio.run(go()))
    except NotFound as exc:
        _err(f"orders status: {exc}")
        return 1
    return 0


async def _app(settings: config_mod.Settings) -> Any:
    """Store, clock and notification planner; no carriers, channels or jobs."""
    from notifier.app import build_app

    return await build_app(settings, features=False)


class _progress:
    """A rich progress bar on a terminal; nothing otherwise."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bar: Any = None

    def __enter__(self) -> Callable[[int], None] | None:
        if not sys.stderr.isatty():
            return None
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeRemainingColumn

        self.bar = Progress("[progress.description]{task.description}", BarColumn(),
                            TaskProgressColumn(), TimeRemainingColumn(), transient=True)
        self.bar.start()
        task = self.bar.add_task(f"importing {self.path.name}", total=self.path.stat().st_size)
        # Progress counts characters; the total is bytes, so non-ASCII data ends short of it.
        return lambda chars: self.bar.update(task, completed=chars)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    name = args.command
    if name == "orders":
        name = f"orders {args.orders_command}"
    handler = _COMMANDS.get(name) or _lookup_extension(args)
    try:
        return handler(args)
    except ConfigError as exc:
        for line in exc.problems:
            _err(line)
        return EX_CONFIG
    except NotifierError as exc:
        _err(f"notifier {name}: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


def _lookup_extension(args: argparse.Namespace) -> Handler:
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        raise SystemExit(f"notifier: command {args.command!r} has no handler")
    return handler
