"""A real HTTP server for tests: any ASGI app served by uvicorn on 127.0.0.1 in a thread.

The socket is bound to port 0 before uvicorn starts, so parallel test runs never collide and
the URL is known before the first request. The server runs its own event loop in a daemon
thread, so it works with sync and async tests alike; the app's state is shared with the test
through ordinary Python objects (guard them with a lock if several requests touch them).

Usage::

    with serve(app) as server:
        httpx.get(server.url + "/path")
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

__all__ = ["RunningServer", "serve"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunningServer:
    """Where a started server listens. ``url`` has no trailing slash."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextmanager
def serve(app: Any, *, host: str = "127.0.0.1", startup_timeout_s: float = 10.0,
          graceful_shutdown_s: float = 2.0) -> Iterator[RunningServer]:
    """Serve ``app`` (ASGI) until the block exits; stops the server and joins its thread.

    ``graceful_shutdown_s`` bounds how long shutdown waits for requests still running (a test
    that provokes client timeouts leaves a slow handler behind).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Without TCP_NODELAY every response waits for a delayed ACK (about 40 ms per request).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    # ws="none" and lifespan="off" keep optional imports (websockets) out: tests run with
    # warnings as errors and those libraries emit deprecation warnings of their own.
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off",
                            ws="none", http="h11", access_log=False,
                            timeout_graceful_shutdown=int(max(1, graceful_shutdown_s)))
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # surfaced to the test below, never swallowed
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if failure or not thread.is_alive():
            sock.close()
            raise RuntimeError(f"test server failed to start: {failure!r}")
        if time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("test server did not start in time")
        time.sleep(0.01)
    try:
        yield RunningServer(host=host, port=port)
    finally:
        server.should_exit = True
        thread.join(timeout=startup_timeout_s + graceful_shutdown_s)
        sock.close()
