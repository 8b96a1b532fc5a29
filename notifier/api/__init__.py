"""The HTTP API served by ``notifier run`` (routes in :mod:`notifier.api.app`).

``install(app, health=...)`` binds ``api.listen`` at once (so a busy port fails the start, not
some later moment), serves it with uvicorn inside the daemon's event loop and registers a
closer that stops the server before the store closes. uvicorn's own signal handlers are left
out: the daemon owns SIGTERM/SIGINT/SIGHUP. Call it from the daemon only, never from one-shot
CLI commands (they would compete for the port). ``probe_for(daemon)`` builds the health probe
``GET /healthz`` uses to tell whether the scheduler is really ticking.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import uvicorn

from notifier.api.app import HealthProbe, create_app
from notifier.api.ratelimit import RateLimiter
from notifier.app import App
from notifier.errors import NotifierError

__all__ = ["ApiServer", "HealthProbe", "create_app", "install", "probe_for", "start"]

logger = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the daemon owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def parse_listen(listen: str) -> tuple[str, int]:
    """``127.0.0.1:8080`` or ``[::1]:8080`` -> (host, port)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class ApiServer:
    """One uvicorn server on an already bound socket, run as a task of the current loop."""

    def __init__(self, app: App, *, health: HealthProbe | None = None,
                 limiter: RateLimiter | None = None) -> None:
        self.app = app
        host, port = parse_listen(app.settings.api.listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise NotifierError(f"api.listen {app.settings.api.listen}: cannot listen: "
                                f"{exc.strerror or exc}") from None
        self.sock = sock
        self.host, self.port = host, sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(app, health=health, limiter=limiter), host=host, port=self.port,
            # log_config=None: uvicorn's records go through our root logger (journald format).
            log_config=None, log_level="warning", access_log=False, lifespan="off",
            ws="none", http="h11", server_header=False, limit_concurrency=200,
            timeout_graceful_shutdown=3)
        self.server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def launch(self) -> None:
        """Start serving in a task of the running loop (returns at once)."""
        self._task = asyncio.get_running_loop().create_task(
            self.server.serve(sockets=[self.sock]), name="notifier-api")
        self._task.add_done_callback(self._done)

    async def started(self, timeout: float = 10.0) -> None:
        """Wait until the server accepts connections (raises if it died first)."""
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if self._task is not None and self._task.done():
                self._task.result()
                raise NotifierError("api server stopped during start-up")
            if time.monotonic() > deadline:
                raise NotifierError("api server did not start in time")
            await asyncio.sleep(0.01)

    def _done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("api server failed", exc_info=task.exception())

    async def close(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=10.0)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
            except Exception:
                pass  # already logged by _done
        self.sock.close()


def install(app: App, *, health: HealthProbe | None = None) -> ApiServer | None:
    """Serve the API on ``api.listen`` for the daemon's lifetime (needs a running loop).
    Returns None when ``api.enabled`` is false."""
    if not app.settings.api.enabled:
        return None
    if not app.settings.api.tokens:
        logger.warning("api.tokens is empty: the authenticated API endpoints refuse every "
                       "request")
    server = ApiServer(app, health=health)
    server.launch()
    app.closers.append(server.close)
    logger.info("api listening on %s", server.url)
    return server


async def start(app: App, *, health: HealthProbe | None = None,
                limiter: RateLimiter | None = None) -> ApiServer:
    """Like :func:`install` but returns once the server accepts connections (tests)."""
    server = ApiServer(app, health=health, limiter=limiter)
    server.launch()
    app.closers.append(server.close)
    await server.started()
    return server


class DaemonLike(Protocol):
    scheduler: Any
    last_run: dict[str, float]
    runs: dict[str, int]

    def healthy(self) -> bool: ...


def probe_for(daemon: DaemonLike) -> HealthProbe:
    """Health of the daemon's scheduler for ``GET /healthz``: running, ticking, last tick."""
    def probe() -> Mapping[str, Any]:
        scheduler = daemon.scheduler
        last = max(daemon.last_run.values(), default=None)
        return {
            "running": bool(scheduler is not None and scheduler.running),
            "healthy": daemon.healthy(),
            "last_tick_age_s": None if last is None else round(time.monotonic() - last, 3),
            "runs": dict(daemon.runs),
        }
    return probe
