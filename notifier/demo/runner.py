"""``notifier demo``: start the local world, drive the simulated shop, show it, summarise it.

Order of events: wipe ``--out`` (only a previous demo's folder), plan the shop
(:mod:`notifier.demo.seed`), start the sandbox, SMTP sink and push receiver, write keys and
``config.toml``, start ``notifier run`` as a subprocess, then loop until the simulated end (or
Ctrl-C / SIGTERM): send each order to the daemon's HTTP API when its time comes (registering
its parcels in the sandbox first, and the customer's push devices after), perform the shop's
follow-ups (ship a backorder, release a payment hold, cancel), inject the planned carrier
faults, file one dispute once a candidate order shows a delivered parcel in ``/v1/track``, and
refresh the live view (or print a line per simulated day with ``--headless``). Finally SIGTERM
the daemon, stop the servers and print where everything is plus a one-screen summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import itertools
import math
import secrets
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from rich.console import Console
from rich.live import Live

from notifier.config import TemplateSettings
from notifier.demo import seed as seed_mod
from notifier.demo import stats, view
from notifier.demo.stack import Layout, Stack, prepare_out_dir
from notifier.errors import NotifierError

__all__ = ["START", "DemoOptions", "run"]

# A Monday morning: the first daily digest (08:00 UTC) comes two simulated hours in.
START = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
REFRESH_S = 0.5
DISPUTE_REASON = "The tracking page says delivered but the parcel never arrived."


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoOptions:
    orders: int = 200
    speed: float = 8640.0
    days: float = 14.0
    out: Path = Path("demo-out")
    seed: int = 7
    headless: bool = False
    templates: TemplateSettings | None = None


@dataclass
class _Shop:
    """The simulated shop's side of the run: what is due and what was done."""

    world: seed_mod.World
    queue: list[tuple[datetime, int, str, Any]] = field(default_factory=list)
    sent: int = 0
    candidates: list[seed_mod.OrderPlan] = field(default_factory=list)
    dispute: str | None = None
    next_dispute_check: datetime | None = None
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        tie = itertools.count()
        for o in self.world.orders:
            self.queue.append((o.intake_at, next(tie), "intake", o))
            for a in o.actions:
                self.queue.append((a.at, next(tie), "action", (o, a)))
        for f in self.world.faults:
            self.queue.append((f.at, next(tie), "fault", f))
        heapq.heapify(self.queue)

    def due(self, now: datetime) -> list[tuple[str, Any]]:
        out = []
        while self.queue and self.queue[0][0] <= now:
            _, _, what, item = heapq.heappop(self.queue)
            out.append((what, item))
        return out


class _Driver:
    def __init__(self, stack: Stack, shop: _Shop, api: httpx.AsyncClient,
                 sandbox: httpx.AsyncClient) -> None:
        self.stack = stack
        self.shop = shop
        self.api = api
        self.sandbox = sandbox
        self.gate = asyncio.Semaphore(6)

    async def step(self, now: datetime) -> None:
        due = self.shop.due(now)
        # Intake first (an action may concern an order that arrived in the same step).
        intakes = [o for what, o in due if what == "intake"]
        await asyncio.gather(*(self._guard(o.id, self._intake(o)) for o in intakes))
        for what, item in due:
            if what == "action":
                order, action = item
                await self._guard(order.id, self._action(order, action))
            elif what == "fault":
                await self._guard("sandbox fault", self._fault(item))
        await self._dispute(now)

    async def _guard(self, what: str, work: Any) -> None:
        async with self.gate:
            try:
                await work
            except (httpx.HTTPError, NotifierError) as exc:
                self.shop.problems.append(f"{what}: {exc}")

    async def _register(self, shipments: tuple[seed_mod.ShipmentPlan, ...]) -> None:
        for s in shipments:
            r = await self.sandbox.post("/_sandbox/shipments", json={
                "number": s.number, "carrier": s.carrier, "scenario": s.scenario.value,
                "start": s.start.isoformat()})
            _check(r, f"sandbox registration of {s.number}")

    async def _intake(self, o: seed_mod.OrderPlan) -> None:
        await self._register(o.shipments)
        body: dict[str, Any] = {"email": o.email, "name": o.name, "locale": o.locale,
                                "tz": o.tz, "status": o.status,
                                "shipments": [{"carrier": s.carrier, "tracking": s.number}
                                              for s in o.shipments]}
        if o.expected_ship is not None:
            body["expected_ship"] = o.expected_ship.isoformat()
        if o.promised is not None:
            body["promised"] = o.promised.isoformat()
        _check(await self.api.put(f"/v1/orders/{quote(o.id, safe='')}", json=body),
               f"PUT order {o.id}")
        self.shop.sent += 1
        for channel in o.devices:
            token = self._device_token(channel)
            r = await self.api.put(f"/v1/customers/{quote(o.email, safe='@')}/devices",
                                   json={"channel": channel, "token": token})
            _check(r, f"device of {o.id}")
        if o.dispute_candidate:
            self.shop.candidates.append(o)

    def _device_token(self, channel: str) -> Any:
        if channel == "apns":
            return secrets.token_hex(32)
        if channel == "webpush":
            assert self.stack.push is not None
            sub, _ = self.stack.push.receiver.new_webpush_subscription(
                vapid_public_key=self.stack.vapid_public)
            return sub
        return "fcm-" + secrets.token_urlsafe(24)

    async def _action(self, o: seed_mod.OrderPlan, a: seed_mod.Action) -> None:
        path = f"/v1/orders/{quote(o.id, safe='')}"
        if a.shipments:
            await self._register(a.shipments)
            r = await self.api.post(path + "/shipments", json={"shipments": [
                {"carrier": s.carrier, "tracking": s.number} for s in a.shipments]})
            _check(r, f"shipments of {o.id}")
        if a.status is not None:
            body: dict[str, Any] = {"status": a.status}
            if a.expected_ship is not None:
                body["expected_ship"] = a.expected_ship.isoformat()
            _check(await self.api.post(path + "/status", json=body), f"status of {o.id}")

    async def _fault(self, f: seed_mod.FaultPlan) -> None:
        body: dict[str, Any] = {"carrier": f.carrier, "kind": f.kind, "count": f.count}
        if f.status is not None:
            body["status"] = f.status
        _check(await self.sandbox.post("/_sandbox/faults", json=body), "sandbox fault")

    async def _dispute(self, now: datetime) -> None:
        """A customer whose parcel shows delivered says it never came (one dispute per run)."""
        shop = self.shop
        if shop.dispute is not None or not shop.candidates:
            return
        if shop.next_dispute_check is not None and now < shop.next_dispute_check:
            return
        shop.next_dispute_check = now + timedelta(hours=2)
        for o in shop.candidates:
            r = await self.api.get("/v1/track", params={"order": o.id, "email": o.email})
            if r.status_code != 200:
                continue
            delivered = [s for s in r.json()["shipments"] if s["status"] == "delivered"]
            if not delivered:
                continue
            r = await self.api.post(f"/v1/orders/{quote(o.id, safe='')}/disputes", json={
                "reason": DISPUTE_REASON, "tracking": delivered[0]["tracking_number"]})
            _check(r, f"dispute on {o.id}")
            day = (now - shop.world.start).total_seconds() / 86400
            shop.dispute = f"{o.id} (day {day:.1f})"
            return


def _check(response: httpx.Response, what: str) -> None:
    if response.status_code >= 300:
        raise NotifierError(f"{what}: HTTP {response.status_code} {response.text[:200]}")


class _Monitor:
    """Gathers a :class:`view.Progress` from the database, the sandbox and the output files."""

    def __init__(self, stack: Stack, shop: _Shop, opts: DemoOptions, started: float) -> None:
        self.stack = stack
        self.shop = shop
        self.opts = opts
        self.started = started
        self.pushes = stats.PushTail(stack.layout.pushes)
        self.db: Any = None
        self.carriers: dict[str, stats.CarrierCounts] = {}

    async def progress(self, sandbox: httpx.AsyncClient | None) -> view.Progress:
        if sandbox is not None:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                answer = await sandbox.get("/_sandbox/stats")
                self.carriers = stats.carrier_counts(answer.json())
        return self.snapshot()

    def snapshot(self, sim_now: datetime | None = None) -> view.Progress:
        if self.db is None:
            self.db = stats.connect_ro(self.stack.layout.database)
        db = stats.read_db(self.db) if self.db is not None else stats.DbSnapshot()
        end = self.stack.start + timedelta(days=self.opts.days)
        now = sim_now or min(self.stack.clock.now(), end)
        return view.Progress(
            sim_now=now, start=self.stack.start, days=self.opts.days, speed=self.opts.speed,
            elapsed_s=time.monotonic() - self.started,
            orders_planned=len(self.shop.world.orders), orders_sent=self.shop.sent, db=db,
            carriers=self.carriers, mails=sum(1 for _ in self.stack.layout.mail.glob("*.eml")),
            pushes=Counter(self.pushes.read()), dispute=self.shop.dispute)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None


async def _drive(stack: Stack, shop: _Shop, monitor: _Monitor, opts: DemoOptions,
                 show: Callable[[view.Progress], None]) -> str:
    """Run until the simulated end, a stop signal, or the daemon's death; say which."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    end = stack.start + timedelta(days=opts.days)
    headers = {"Authorization": f"Bearer {stack.api_token}"}
    assert stack.sandbox is not None
    reason = "end"
    try:
        async with httpx.AsyncClient(base_url=stack.api_url, headers=headers,
                                     timeout=30.0) as api, \
                httpx.AsyncClient(base_url=stack.sandbox.base_url, timeout=10.0) as sandbox:
            driver = _Driver(stack, shop, api, sandbox)
            last_show = 0.0
            while True:
                now = stack.clock.now()
                if now >= end:
                    break
                if stop.is_set():
                    reason = "interrupted"
                    break
                if not stack.daemon_alive():
                    reason = "daemon-died"
                    break
                await driver.step(now)
                if time.monotonic() - last_show >= REFRESH_S:
                    last_show = time.monotonic()
                    show(await monitor.progress(sandbox))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=0.1)
            await monitor.progress(sandbox)  # last sandbox counts before it stops
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    return reason


def run(opts: DemoOptions, console: Console | None = None) -> int:
    """The whole demo; returns the exit status (0 done, 1 failed, 130 interrupted)."""
    console = console or Console(highlight=False)
    if opts.orders < 1 or opts.days <= 0 or opts.speed <= 0:
        raise NotifierError("--orders, --days and --speed must be positive")
    layout = prepare_out_dir(opts.out)
    world = seed_mod.plan_world(opts.orders, seed=opts.seed, start=START, days=opts.days)
    stack = Stack(layout, start=START, speed=opts.speed, templates=opts.templates)
    shop = _Shop(world)
    say = _sayer(console)
    say(f"notifier demo: {opts.orders} orders, {opts.days:g} simulated days at {opts.speed:g}x "
        f"(one simulated day per {86400 / opts.speed:.3g} s), seed {opts.seed}")
    started = time.monotonic()
    monitor = _Monitor(stack, shop, opts, started)
    reason = "failed"
    try:
        stack.start_servers(seed=opts.seed)
        assert stack.sandbox and stack.sink and stack.push
        say(f"  carrier sandbox  {stack.sandbox.base_url}  (UPS, FedEx, DHL, USPS)")
        say(f"  SMTP sink        127.0.0.1:{stack.sink.port} -> {layout.mail}/")
        say(f"  push receiver    {stack.push.base_url} -> {layout.pushes}")
        stack.start_daemon()
        say(f"  daemon           notifier run --config {layout.config}")
        say(f"                   pid {stack.process.pid if stack.process else '?'}, "
            f"API {stack.api_url}, log {layout.daemon_log}")
        reason = _run_loop(stack, shop, monitor, opts, console)
    except KeyboardInterrupt:
        reason = "interrupted"
    finally:
        # A second Ctrl-C while shutting down must not leave the daemon (own process group)
        # running on its own: ignore SIGINT until it and the servers are stopped.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            code = stack.stop_daemon()
            final = monitor.snapshot()
            stack.stop()
            mail = stats.mail_summary(layout.mail, monitor.db)
            monitor.close()
        finally:
            signal.signal(signal.SIGINT, previous)
    if reason == "daemon-died":
        say(f"The daemon stopped unexpectedly (status {code}). Last lines of "
            f"{layout.daemon_log}:\n{stack.daemon_log_tail()}")
    notes = tuple(f"  problem: {p}" for p in shop.problems[:10])
    if code not in (0, None):
        notes += (f"  the daemon exited with status {code} (see {layout.daemon_log})",)
    final = dataclasses.replace(final, notes=notes)
    say("")
    for line in view.summary_lines(final, mail, where=_where(layout)):
        say(line)
    if reason == "interrupted":
        return 130
    return 0 if reason == "end" and code == 0 else 1


def _sayer(console: Console) -> Callable[[str], None]:
    def say(text: str) -> None:
        # No wrapping: paths and log-like lines stay whole in narrow terminals and CI logs.
        console.print(text, markup=False, highlight=False, soft_wrap=True)
    return say


def _run_loop(stack: Stack, shop: _Shop, monitor: _Monitor, opts: DemoOptions,
              console: Console) -> str:
    if opts.headless:
        state = {"day": -1}

        def line(p: view.Progress) -> None:
            day = math.floor(p.day)
            if day > state["day"]:
                state["day"] = day
                say(view.headless_line(p))

        say = _sayer(console)
        reason = asyncio.run(_drive(stack, shop, monitor, opts, line))
        say(view.headless_line(monitor.snapshot()))
        return reason
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        reason = asyncio.run(_drive(stack, shop, monitor, opts,
                                    lambda p: live.update(view.live_view(p))))
        live.update(view.live_view(monitor.snapshot()))
    return reason


def _cli() -> str:
    """How this process was started, so the hint works as typed (``make demo`` runs
    ``.venv/bin/notifier``, which is usually not on PATH)."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "notifier" and argv0.is_file():
        return str(argv0)
    return f"{sys.executable} -m notifier"


def _where(layout: Layout) -> dict[str, str]:
    return {
        "E-mails (.eml)": f"{layout.mail}/",
        "Pushes (JSON lines)": str(layout.pushes),
        "Digest previews": f"{layout.digests}/",
        "Database": str(layout.database),
        "Daemon log": str(layout.daemon_log),
        "Configuration": str(layout.config),
        "Look at an order": f"{_cli()} orders show DEMO-1001 --config {layout.config}",
    }
