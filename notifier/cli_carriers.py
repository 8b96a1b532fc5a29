"""The carrier commands of ``notifier``: ``detect`` (which carrier a number belongs to),
``parse`` (normalise a saved carrier response), ``track`` (a live lookup through the configured
carrier API) and ``sandbox`` (run the carrier sandbox alone).

``detect`` and ``parse`` need no configuration file; ``track`` and ``sandbox`` read it. Output
of ``parse`` and ``track --json`` is one JSON object per tracking number per line
(``notifier.views.tracking_result_json``); errors are one line each on stderr, exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import json
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import carriers
from carriers import detect, errors
from carriers.model import BatchResult, TrackingResult
from notifier import config as config_mod
from notifier import logs
from notifier.cli import _config_args, load_settings
from notifier.clock import Clock, SimulatedClock
from notifier.views import tracking_result_json

__all__ = ["detect_json", "register", "result_text"]

_LABELS = {"ups": "UPS", "fedex": "FedEx", "dhl": "DHL", "usps": "USPS"}


def register(subparsers: Any) -> None:
    """Add ``detect``, ``parse``, ``track`` and ``sandbox`` to the ``notifier`` parser."""
    p = subparsers.add_parser(
        "detect", help="tell which carrier a tracking number belongs to",
        description="Detect the carrier and number format of each NUMBER (whitespace ignored) "
                    "and check its check digit. Exit 0 when every number matched some "
                    "carrier, 1 otherwise.")
    _config_args(p)
    p.add_argument("numbers", nargs="+", metavar="NUMBER")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per line: number, carriers, formats, valid")
    p.set_defaults(handler=cmd_detect)

    p = subparsers.add_parser(
        "parse", help="normalise a saved carrier API response",
        description="Normalise a saved carrier tracking response (the JSON body) and print one "
                    "JSON object per tracking number in it. Relative readings (UPS 'loaded on "
                    "vehicle' counts as out for delivery only on its day) use the time the "
                    "response was saved: the file's modification time, or --now.")
    _config_args(p)
    p.add_argument("--carrier", required=True, choices=carriers.NAMES)
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--number", metavar="N",
                   help="the number the response answers (DHL needs it to name a 'not found'); "
                        "only results for N are printed")
    p.add_argument("--now", type=_instant, metavar="ISO-8601",
                   help="when the response was received (default: the file's mtime)")
    p.set_defaults(handler=cmd_parse)

    p = subparsers.add_parser(
        "track", help="look tracking numbers up through the configured carrier API",
        description="Track each NUMBER live through the carrier API configured in "
                    "[carriers.<name>] (the sandbox in the demo configuration), in batches of "
                    "the carrier's maximum, paced by its requests_per_second. Exit 1 if any "
                    "lookup failed.")
    _config_args(p)
    p.add_argument("--carrier", required=True, choices=carriers.NAMES)
    p.add_argument("numbers", nargs="+", metavar="NUMBER")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(handler=cmd_track)

    p = subparsers.add_parser(
        "sandbox", help="run the carrier sandbox (UPS, FedEx, DHL, USPS) alone",
        description="Serve the carrier sandbox until SIGINT/SIGTERM. Its clock is the "
                    "configured one ([clock]; shared with the daemon when clock.anchor is "
                    "set); --speed N instead starts a simulated clock at the configured "
                    "clock's current time running N times faster. It accepts the demo "
                    "credentials sandbox-client / sandbox-secret and DHL key sandbox-key.")
    _config_args(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8787)
    p.add_argument("--speed", type=float, default=None,
                   help="simulated seconds per real second (default: from [clock])")
    p.set_defaults(handler=cmd_sandbox)


def _err(text: str) -> None:
    # One line per problem, whatever the message carries (snippets of bodies, tracebacks).
    print(" ".join(text.split()), file=sys.stderr)


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 date-time: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("give an offset, e.g. 2026-11-02T08:00:00Z")
    return value.astimezone(UTC)


# ------------------------------------------------------------------------------------- detect


def detect_json(number: str) -> dict[str, Any]:
    """The ``detect --json`` object: carriers and formats best first; ``valid`` is whether the
    best reading's check digit passed (or it has none); False when nothing matched."""
    normalised = detect.normalise(number)
    found = detect.detect(normalised)
    return {
        "number": normalised,
        "carriers": list(dict.fromkeys(c.carrier for c in found)),
        "formats": [c.format for c in found],
        "valid": bool(found) and found[0].check_digit_ok is not False,
    }


_VERDICT = {True: "check digit ok", False: "check digit FAILS", None: "no check digit"}


def cmd_detect(args: argparse.Namespace) -> int:
    matched_all = True
    for number in args.numbers:
        normalised = detect.normalise(number)
        found = detect.detect(normalised)
        matched_all &= bool(found)
        if args.json:
            print(json.dumps(detect_json(number)))
        elif not found:
            print(f"{normalised or repr(number)}: no carrier matches")
        else:
            print(f"{normalised}: " + "; ".join(
                f"{c.carrier} {c.format} ({_VERDICT[c.check_digit_ok]})" for c in found))
    return 0 if matched_all else 1


# -------------------------------------------------------------------------------------- parse


def _parser_of(carrier: str) -> Callable[..., BatchResult]:
    # The adapter's package (from the registry) exports its pure ``parse_payload``.
    package = importlib.import_module(carriers.REGISTRY[carrier].partition(":")[0])
    parse: Callable[..., BatchResult] = package.parse_payload
    return parse


def cmd_parse(args: argparse.Namespace) -> int:
    path: Path = args.file
    label = _LABELS.get(args.carrier, args.carrier)
    try:
        raw = path.read_bytes()
        saved_at = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError as exc:
        _err(f"notifier parse: {path}: cannot read: {exc.strerror or exc}")
        return 1
    try:
        payload = json.loads(raw)
    except json.JSONDecodeError as exc:
        _err(f"notifier parse: {path}: not JSON ({exc.msg} at line {exc.lineno} column "
             f"{exc.colno}), so not a saved {label} response")
        return 1
    except (UnicodeDecodeError, RecursionError) as exc:
        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else "nested too deeply"
        _err(f"notifier parse: {path}: not JSON ({reason})")
        return 1
    parse = _parser_of(args.carrier)
    kwargs: dict[str, Any] = {"now": args.now or saved_at}
    wanted = detect.normalise(args.number) if args.number else None
    if wanted and "number" in inspect.signature(parse).parameters:
        kwargs["number"] = wanted
    try:
        batch = parse(payload, **kwargs)
    except errors.CarrierPayloadError as exc:
        why = exc.message if exc.message.startswith("not a") else (
            f"not a {label} tracking response: {exc.message}")
        _err(f"notifier parse: {path}: {why}")
        return 1
    results = [r for r in batch.results
               if wanted is None or detect.normalise(r.tracking_number) == wanted]
    problems = {n: p for n, p in batch.problems.items()
                if wanted is None or detect.normalise(n) == wanted}
    if wanted and not results and not problems:
        _err(f"notifier parse: {path}: this {label} response says nothing about {wanted}")
        return 1
    for result in results:
        print(json.dumps(tracking_result_json(result)))
    # A per-number failure inside a good response is data (the file itself was fine).
    for number, problem in problems.items():
        _err(f"notifier parse: {number}: {label} reported a problem: {problem}")
    return 0


# -------------------------------------------------------------------------------------- track


def result_text(result: TrackingResult) -> str:
    """The human-readable ``track`` summary of one result: a headline, then its events."""
    data = tracking_result_json(result)
    head = f"{data['tracking_number']} ({_LABELS.get(result.carrier, result.carrier)}): "
    head += data["status"] + (f" - {data['status_detail']}" if data["status_detail"] else "")
    facts = []
    if (edd := data["estimated_delivery"]) is not None:
        span = edd["start"] if edd["start"] == edd["end"] else f"{edd['start']}..{edd['end']}"
        facts.append(f"estimated delivery {span}")
    if data["delivered_at"]:
        signed = f", signed by {data['signed_by']}" if data["signed_by"] else ""
        facts.append(f"delivered {data['delivered_at']}{signed}")
    if data["service"]:
        facts.append(f"service {data['service']}")
    lines = [head] + ([f"  {' | '.join(facts)}"] if facts else [])
    for event in data["events"]:
        loc = event["location"]
        where = ", ".join(x for x in (loc["city"], loc["state"], loc["country"]) if x)
        lines.append(f"  {event['at']}  {event['status']:<20} {event['description']}"
                     + (f"  ({where})" if where else ""))
    if not data["events"]:
        lines.append("  (no events yet)")
    return "\n".join(lines)


def cmd_track(args: argparse.Namespace) -> int:
    from notifier.app import make_clock

    settings = load_settings(args)
    carrier: str = args.carrier
    config: config_mod.CarrierConfig = getattr(settings.carriers, carrier)
    if not config.base_url:
        _err(f"notifier track: carriers.{carrier}.base_url is not set in {settings.path}")
        return 1
    numbers = list(dict.fromkeys(detect.normalise(n) for n in args.numbers if n.strip()))
    for number in numbers:
        if not detect.plausible(carrier, number):
            # Tracked anyway: the carrier, not our pattern list, has the last word.
            _err(f"notifier track: warning: {number} does not look like a "
                 f"{_LABELS[carrier]} number")
    outcomes = asyncio.run(_track(settings, carrier, numbers, make_clock(settings.clock)))
    failed = False
    for chunk, outcome in outcomes:
        if isinstance(outcome, errors.CarrierError):
            failed = True
            for number in chunk:
                _err(f"notifier track: {number}: {_describe(outcome)}")
            continue
        answered = set()
        for result in outcome.results:
            answered.add(result.tracking_number)
            print(json.dumps(tracking_result_json(result)) if args.json else result_text(result))
        for number, problem in outcome.problems.items():
            failed = True
            answered.add(number)
            _err(f"notifier track: {number}: {_LABELS[carrier]} reported a problem: {problem}")
        for number in chunk:
            if number not in answered:
                failed = True
                _err(f"notifier track: {number}: the {_LABELS[carrier]} answer did not "
                     "mention this number")
    return 1 if failed else 0


def _describe(exc: errors.CarrierError) -> str:
    kind = {errors.CarrierRateLimited: "rate limited", errors.CarrierUnavailable: "unavailable",
            errors.CarrierAuthError: "credentials refused",
            errors.CarrierPayloadError: "unexpected response"}
    what = next((v for k, v in kind.items() if isinstance(exc, k)), "failed")
    text = f"{_LABELS.get(exc.carrier, exc.carrier)} {what}: {exc.message}"
    retry = getattr(exc, "retry_after", None)
    return text + (f" (retry after {retry:g} s)" if retry else "")


Outcome = tuple[list[str], BatchResult | errors.CarrierError]


async def _track(settings: config_mod.Settings, carrier: str, numbers: Sequence[str],
                 clock: Clock) -> list[Outcome]:
    """Every number, in chunks of the adapter's ``max_batch``: at most ``concurrency`` calls in
    flight, call starts spaced by ``1 / requests_per_second`` (the configured budget)."""
    from notifier.carriers_factory import open_carriers

    config: config_mod.CarrierConfig = getattr(settings.carriers, carrier)
    async with open_carriers(settings, clock.now, names=[carrier]) as built:
        adapter = built[carrier]
        size = max(1, adapter.max_batch)
        chunks = [list(numbers[i:i + size]) for i in range(0, len(numbers), size)]
        gate = asyncio.Semaphore(max(1, config.concurrency))
        spacing = 1.0 / config.requests_per_second if config.requests_per_second > 0 else 0.0
        loop = asyncio.get_running_loop()
        t0 = loop.time()

        async def one(i: int, chunk: list[str]) -> Outcome:
            await asyncio.sleep(max(0.0, t0 + i * spacing - loop.time()))
            async with gate:
                try:
                    return chunk, await adapter.track(chunk)
                except errors.CarrierError as exc:
                    return chunk, exc

        return list(await asyncio.gather(*(one(i, c) for i, c in enumerate(chunks))))


# ------------------------------------------------------------------------------------ sandbox


def _settings_or_defaults(args: argparse.Namespace) -> config_mod.Settings:
    """The configuration when one is given or found; built-in defaults otherwise (the sandbox
    runs fine without a configuration file)."""
    if args.config or config_mod.find_config(None).exists():
        return load_settings(args)
    logs.setup(args.log_format or "text", "info")
    return config_mod.Settings()


def sandbox_clock(settings: config_mod.Settings, speed: float | None) -> Clock:
    """The configured clock; with ``speed``, a simulated clock starting at its current time."""
    from notifier.app import make_clock

    base = make_clock(settings.clock)
    return base if speed is None else SimulatedClock(base.now(), speed=speed)


def cmd_sandbox(args: argparse.Namespace) -> int:
    if args.speed is not None and args.speed < 0:
        _err("notifier sandbox: --speed must be 0 (frozen) or more")
        return 2
    clock = sandbox_clock(_settings_or_defaults(args), args.speed)
    try:
        asyncio.run(_serve_sandbox(args.host, args.port, clock))
    except _CannotServe:
        _err(f"notifier sandbox: could not serve on {args.host}:{args.port}")
        return 1
    return 0


class _CannotServe(Exception):
    """uvicorn gave up at startup (it calls ``sys.exit`` after logging why, e.g. port in use)."""


async def _serve_or_raise(host: str, port: int, clock: Clock, stop: asyncio.Event,
                          ready: asyncio.Event) -> None:
    from carriers.sandbox import serve

    try:
        await serve(host, port, now=clock.now, stop=stop, ready=ready)
    except SystemExit as exc:
        # Caught inside the task: a SystemExit escaping a task would tear through the loop.
        raise _CannotServe(exc.code) from None


async def _serve_sandbox(host: str, port: int, clock: Clock) -> None:
    loop = asyncio.get_running_loop()
    stop, ready = asyncio.Event(), asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(_serve_or_raise(host, port, clock, stop, ready))
    try:
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait((task, waiter), return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if ready.is_set():
            print(f"carrier sandbox on http://{host}:{port} (UPS, FedEx, DHL, USPS); clock "
                  f"{clock.now().isoformat().replace('+00:00', 'Z')} at {clock.speed:g}x; "
                  "SIGINT/SIGTERM stops it", flush=True)
        await task
    finally:
        for sig in signals:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
