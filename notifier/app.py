"""The application container: settings, clock, store and the periodic jobs, built once.

``build_app`` is the only place that wires concrete parts together (arq's ``ctx``): the daemon,
the CLI and the tests all build an :class:`App` and close it with :meth:`App.aclose`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from notifier.clock import Clock, SimulatedClock, SystemClock
from notifier.config import ClockSettings, Settings
from notifier.store import open_store
from notifier.store.sqlite import SqliteStore

__all__ = ["JOB_NAMES", "App", "Job", "build_app", "make_clock"]

logger = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]
JOB_NAMES = ("poll_tick", "anomaly_sweep", "outbox_drain", "digest_check", "housekeeping")


def make_clock(settings: ClockSettings) -> Clock:
    if settings.mode == "simulated":
        assert settings.start is not None  # config validation guarantees it
        return SimulatedClock(settings.start, speed=settings.speed, anchor=settings.anchor)
    return SystemClock()


@dataclass
class App:
    settings: Settings
    clock: Clock
    store: SqliteStore
    jobs: dict[str, Job] = field(default_factory=dict)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Called with the old settings after a successful SIGHUP reload (rebuild clients...).
    reloaders: list[Callable[[Settings], Awaitable[None]]] = field(default_factory=list)
    # Set by the daemon on SIGTERM: long jobs check it between units of work.
    stopping: bool = False

    def interval(self, name: str) -> timedelta:
        d = self.settings.daemon
        return {
            "poll_tick": d.poll_tick,
            "anomaly_sweep": d.sweep_interval,
            "outbox_drain": d.outbox_interval,
            "digest_check": d.digest_check,
            "housekeeping": d.housekeeping_interval,
        }[name]

    async def aclose(self) -> None:
        for close in reversed(self.closers):
            try:
                await close()
            except Exception:  # closing must go on for the rest
                logger.exception("error while closing")
        await self.store.close()


async def _noop() -> None:
    return None


async def build_app(settings: Settings, *, clock: Clock | None = None,
                    features: bool = True) -> App:
    """Open the store and wire every periodic job (``features=False``: store and clock only,
    for CLI commands that just read or write orders)."""
    store = open_store(settings)
    await store.open()
    app = App(settings=settings, clock=clock or make_clock(settings.clock), store=store)
    app.jobs = {name: _noop for name in JOB_NAMES}
    from notifier import outbox

    outbox.install_planner(app)  # every state change plans its notifications
    if features:
        try:
            _install_features(app)
        except BaseException:
            await app.aclose()
            raise
    return app


def _install_features(app: App) -> None:
    # Order matters: the poll tick runs the sweep right after polling, so the sweep first.
    from notifier import digest_job, outbox, poller, sweeper

    sweeper.install(app)
    poller.install(app)
    digest_job.install(app)
    outbox.install(app, on_channel_paused=digest_job.channel_paused_hook(app))
