"""``notifier run``: the service loop.

APScheduler's AsyncIOScheduler runs the periodic jobs of the :class:`~notifier.app.App`
(``max_instances=1``, coalescing, jitter). Intervals are in clock time, so a simulated clock at
N x speed runs them N times as often in real time. SIGTERM/SIGINT stop taking new work and wait
for in-flight jobs up to ``daemon.drain_grace``; SIGHUP reloads the configuration (a bad new
configuration is refused and the old one kept). ``run_once`` runs every job once, in order.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from notifier import config as config_mod
from notifier import sdnotify
from notifier.app import JOB_NAMES, App, build_app
from notifier.clock import Clock
from notifier.config import Settings
from notifier.errors import ConfigError

__all__ = ["Daemon"]

logger = logging.getLogger(__name__)

# A simulated clock must not turn intervals into a busy loop.
MIN_REAL_INTERVAL_S = 0.05


class Daemon:
    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self._clock = clock
        self.app: App | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self._stop = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self.last_run: dict[str, float] = {}  # job -> time.monotonic() of last completion
        self.runs: dict[str, int] = dict.fromkeys(JOB_NAMES, 0)
        self.started_at = time.monotonic()
        self._reload_lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> App:
        self.app = await build_app(self.settings, clock=self._clock)
        return self.app

    async def run_once(self) -> None:
        """Run every job once, in order, then close (for tests and cron users)."""
        app = await self.start()
        try:
            for name in JOB_NAMES:
                await self._run_job(name)
        finally:
            await app.aclose()

    async def run(self) -> None:
        """Run until SIGTERM/SIGINT; then drain and close."""
        app = await self.start()
        try:
            from notifier import api

            # Only the long-running daemon serves HTTP; one-shot commands never bind the port.
            api.install(app, health=api.probe_for(self))
        except BaseException:
            await app.aclose()
            raise
        loop = asyncio.get_running_loop()
        if app.clock.speed > 1:
            # Days in seconds: jobs overlap their (tiny) real intervals all the time, and
            # APScheduler's "skipped: maximum number of running instances" is noise then.
            logging.getLogger("apscheduler").setLevel(logging.ERROR)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        self.scheduler = AsyncIOScheduler(event_loop=loop, timezone="UTC")
        self._schedule_jobs()
        self.scheduler.start()
        await app.store.check_writable()
        sdnotify.notify("READY=1", f"STATUS=running; database {self.settings.database.path}")
        logger.info("notifier running (%s)", self.settings.summary())
        watchdog = asyncio.create_task(self._watchdog())
        try:
            await self._stop.wait()
        finally:
            watchdog.cancel()
            await self._drain()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await app.aclose()
            logger.info("notifier stopped")

    def request_stop(self, sig: signal.Signals | None = None) -> None:
        if not self._stop.is_set():
            logger.info("received %s: finishing in-flight work (up to %s)",
                        sig.name if sig else "stop", self.settings.daemon.drain_grace)
            sdnotify.notify("STOPPING=1")
            if self.app:
                self.app.stopping = True
            self._stop.set()

    def request_reload(self) -> None:
        asyncio.get_running_loop().create_task(self.reload())

    async def reload(self) -> bool:
        """Re-read the configuration file; keep the old settings when the new ones are bad."""
        async with self._reload_lock:
            monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            sdnotify.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}")
            path = self.settings.path
            try:
                new = config_mod.load(path)
            except ConfigError as exc:
                for line in exc.problems:
                    logger.error("reload refused: %s", line)
                sdnotify.notify("READY=1", "STATUS=reload refused: bad configuration; "
                                "running with the previous one")
                return False
            old, self.settings = self.settings, new
            if self.app:
                self.app.settings = new
                for reloader in self.app.reloaders:
                    try:
                        await reloader(old)
                    except Exception:  # the rest of the reload still applies
                        logger.exception("reload step failed")
            if self.scheduler:
                self._schedule_jobs()
            logger.info("configuration reloaded from %s", Path(path))
            sdnotify.notify("READY=1", "STATUS=running; configuration reloaded")
            return True

    # ------------------------------------------------------------------ jobs

    def _real_seconds(self, name: str) -> float:
        assert self.app is not None
        speed = self.app.clock.speed or 1.0
        return max(MIN_REAL_INTERVAL_S, self.app.interval(name).total_seconds() / speed)

    def _schedule_jobs(self) -> None:
        assert self.scheduler is not None and self.app is not None
        jitter = self.settings.daemon.jitter.total_seconds()
        for name in JOB_NAMES:
            seconds = self._real_seconds(name)
            self.scheduler.add_job(
                self._run_job, IntervalTrigger(seconds=seconds, jitter=min(jitter, seconds / 2)
                                               or None),
                args=[name], id=name, name=name, replace_existing=True, max_instances=1,
                coalesce=True, misfire_grace_time=None,
                # First run right after start rather than one full interval later.
                next_run_time=datetime.now(UTC) + timedelta(seconds=0.05))

    async def _run_job(self, name: str) -> None:
        assert self.app is not None
        if self.app.stopping:
            return
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            await self.app.jobs[name]()
            self.runs[name] += 1
            self.last_run[name] = time.monotonic()
        except asyncio.CancelledError:
            raise
        except Exception:  # one failing job must not kill the daemon
            logger.exception("job %s failed", name)
        finally:
            if task is not None:
                self._inflight.discard(task)

    async def _drain(self) -> None:
        if self.scheduler is not None:
            self.scheduler.pause()
        pending = {t for t in self._inflight if not t.done()}
        if pending:
            grace = self.settings.daemon.drain_grace.total_seconds()
            logger.info("waiting for %d in-flight job(s)", len(pending))
            _, still = await asyncio.wait(pending, timeout=grace)
            if still:
                logger.warning("drain grace %.0fs over: cancelling %d job(s)", grace, len(still))
                for t in still:
                    t.cancel()
                await asyncio.gather(*still, return_exceptions=True)
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)

    def healthy(self, *, max_silence_s: float | None = None) -> bool:
        """True while the scheduler really runs jobs (drives the systemd watchdog)."""
        if self.scheduler is None or not self.scheduler.running:
            return False
        limit = max_silence_s or max(60.0, 3 * self._real_seconds("poll_tick"))
        last = max(self.last_run.values(), default=self.started_at)
        return time.monotonic() - last < limit

    async def _watchdog(self) -> None:
        interval = sdnotify.watchdog_interval()
        if interval is None:
            return
        while True:
            await asyncio.sleep(interval)
            if self.healthy():
                sdnotify.notify("WATCHDOG=1")
            else:
                logger.warning("scheduler silent: withholding the watchdog ping")
