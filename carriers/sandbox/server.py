"""Running the sandbox: ``serve`` (async, for the demo) and ``SandboxThread`` (tests, benches).

Both bind 127.0.0.1 by default. ``SandboxThread`` binds the socket itself (port 0 by default)
before uvicorn starts, so the URL is known at once and parallel runs never collide; uvicorn
runs its own event loop in a daemon thread and is stopped and joined on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette

from carriers.sandbox.app import create_app
from carriers.sandbox.state import SandboxState

__all__ = ["SandboxThread", "serve"]


def _config(app: Starlette, host: str, port: int, graceful_s: float) -> uvicorn.Config:
    # ws="none"/lifespan="off": no optional imports (tests run with warnings as errors).
    return uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off",
                          ws="none", http="h11", access_log=False,
                          timeout_graceful_shutdown=max(1, round(graceful_s)))


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the embedding application owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(host: str = "127.0.0.1", port: int = 8787, *, now: Callable[[], datetime],
                stop: asyncio.Event | None = None, ready: asyncio.Event | None = None,
                **kw: Any) -> None:
    """Serve the sandbox until ``stop`` is set (then return after a graceful shutdown) or the
    task is cancelled (shut down, then re-raise). ``ready`` is set once it accepts
    connections. ``kw`` goes to :func:`create_app` (credentials, seed, quotas, ...)."""
    server = _Server(_config(create_app(now=now, **kw), host, port, 2.0))

    async def watch() -> None:
        while not server.started:
            await asyncio.sleep(0.01)
        if ready is not None:
            ready.set()
        if stop is not None:
            await stop.wait()
            server.should_exit = True

    watcher = asyncio.create_task(watch())
    try:
        await server.serve()
    except asyncio.CancelledError:
        if server.started:
            await server.shutdown()
        raise
    finally:
        watcher.cancel()


class SandboxThread:
    """Context manager running the sandbox in a background thread::

        with SandboxThread(now=clock.now) as sandbox:
            httpx.get(sandbox.base_url + "/_sandbox/stats")
    """

    def __init__(self, *, now: Callable[[], datetime], host: str = "127.0.0.1", port: int = 0,
                 startup_timeout_s: float = 10.0, graceful_shutdown_s: float = 1.0,
                 **kw: Any) -> None:
        self.app = create_app(now=now, **kw)
        self.state: SandboxState = self.app.state.sandbox
        self._host = host
        self._requested_port = port
        self._startup_timeout = startup_timeout_s
        self._graceful = graceful_shutdown_s
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit this on Linux. Without it, a socket handed to uvicorn via
        # ``sockets=`` keeps Nagle on and every request waits ~40 ms for a delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self._host, self._requested_port))
        self._sock, self.port = sock, sock.getsockname()[1]
        server = uvicorn.Server(_config(self.app, self._host, self.port, self._graceful))
        failure: list[BaseException] = []

        def run() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # reported by start() below
                failure.append(exc)

        self._server = server
        self._thread = threading.Thread(target=run, name=f"sandbox-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout
        while not server.started:
            if failure or not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"carrier sandbox did not start: {failure!r}")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=self._startup_timeout + self._graceful)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> SandboxThread:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
