"""The sd_notify contract of ``notifier run``, seen from a real unix datagram socket the test
owns (an abstract-namespace one, written ``@name`` as systemd may pass it).

- ``notifier run`` as a subprocess: READY=1 (with STATUS=) before any WATCHDOG=1; WATCHDOG=1
  at about half of ``$WATCHDOG_USEC``; SIGHUP -> RELOADING=1 + MONOTONIC_USEC, then READY=1;
  SIGTERM -> STOPPING=1 and a clean exit 0.
- The daemon in-process: pings stop while the scheduler is paused and resume with it (the
  silence threshold is shortened for the test; nothing else is replaced).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from notifier import config as config_mod
from notifier import sdnotify
from notifier.daemon import Daemon
from tests.conftest import ROOT, config_text, notifier_env

WATCHDOG_USEC = 2_000_000  # pings every 1 s


class Listener:
    """An abstract unix datagram socket collecting (receipt monotonic time, fields)."""

    def __init__(self) -> None:
        self.name = f"notifier-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)
        self.messages: list[tuple[float, dict[str, str]]] = []

    @property
    def address(self) -> str:
        return "@" + self.name

    def next(self, timeout: float) -> dict[str, str]:
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096)
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if line)
        self.messages.append((time.monotonic(), fields))
        return fields

    def until(self, key: str, value: str | None = None, *, timeout: float = 30.0
              ) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {key} within {timeout}s; got {self.messages}")
            fields = self.next(left)
            if key in fields and (value is None or fields[key] == value):
                return fields

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


def _config(tmp_path: Path, extra_clock: str | None = None) -> Path:
    text = config_text(db_path=str(tmp_path / "notify.sqlite3"))
    # Port 0: if the API is served by `notifier run`, it must not collide with anything.
    text = re.sub(r'(?m)^listen = .*$', 'listen = "127.0.0.1:0"', text)
    if extra_clock is not None:
        text = re.sub(r'(?m)^mode = "system".*$', extra_clock, text)
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_notifier_run_speaks_sd_notify(tmp_path: Path, listener: Listener) -> None:
    cfg = _config(tmp_path)
    env = notifier_env(NOTIFY_SOCKET=listener.address, WATCHDOG_USEC=str(WATCHDOG_USEC))
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen([sys.executable, "-m", "notifier", "run", "--config", str(cfg)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = listener.until("READY", "1", timeout=60)
        assert first.get("STATUS", "").startswith("running")
        assert not any("WATCHDOG" in f for _, f in listener.messages[:-1])

        # Watchdog cadence: about every half timeout, never a gap the manager would punish.
        pings = []
        for _ in range(3):
            listener.until("WATCHDOG", "1", timeout=WATCHDOG_USEC / 1e6 * 2)
            pings.append(listener.messages[-1][0])
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert all(WATCHDOG_USEC / 1e6 / 4 < g < WATCHDOG_USEC / 1e6 for g in gaps), gaps

        # Reload: RELOADING=1 with our CLOCK_MONOTONIC in µs, then READY=1.
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        proc.send_signal(signal.SIGHUP)
        reloading = listener.until("RELOADING", "1", timeout=30)
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert before <= int(reloading["MONOTONIC_USEC"]) <= after
        ready_again = listener.until("READY", "1", timeout=30)
        assert "reloaded" in ready_again.get("STATUS", "")

        proc.send_signal(signal.SIGTERM)
        listener.until("STOPPING", "1", timeout=30)
        assert proc.wait(timeout=45) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _, err = proc.communicate()
    assert b"Traceback" not in err, err.decode(errors="replace")[-3000:]


def test_watchdog_pid_for_another_process_means_no_pings(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    assert sdnotify.watchdog_interval() == 1.5
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sdnotify.watchdog_interval() == 1.5
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert sdnotify.watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_PID")
    monkeypatch.delenv("WATCHDOG_USEC")
    assert sdnotify.watchdog_interval() is None
    assert sdnotify.notify("READY=1") is False  # no NOTIFY_SOCKET: silently nothing


async def test_watchdog_pings_only_while_the_scheduler_ticks(
        tmp_path: Path, listener: Listener, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fast simulated clock makes every job interval the 50 ms floor, so "ticking" is visible
    # within a fraction of a second.
    cfg = _config(tmp_path, 'mode = "simulated"\nstart = "2026-11-02T08:00:00Z"\nspeed = 600')
    settings = config_mod.load(cfg)
    settings = dataclasses.replace(settings, daemon=dataclasses.replace(
        settings.daemon, jitter=config_mod.parse_duration("0s")))
    monkeypatch.setenv("NOTIFY_SOCKET", listener.address)
    monkeypatch.setenv("WATCHDOG_USEC", "300000")  # a ping every 150 ms
    daemon = Daemon(settings)
    silence = 0.5
    healthy: Callable[[], bool] = functools.partial(Daemon.healthy, daemon,
                                                    max_silence_s=silence)
    monkeypatch.setattr(daemon, "healthy", healthy)
    listener.sock.setblocking(False)
    loop = asyncio.get_running_loop()

    async def collect(seconds: float) -> list[dict[str, str]]:
        got: list[dict[str, str]] = []
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            try:
                data = await asyncio.wait_for(loop.sock_recv(listener.sock, 4096), left)
            except TimeoutError:
                break
            got.append(dict(line.split("=", 1) for line in data.decode().splitlines()))
        return got

    async def until_ready(seconds: float) -> None:
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            if any(m.get("READY") == "1" for m in await collect(0.2)):
                return
        raise AssertionError("no READY=1")

    task = asyncio.create_task(daemon.run())
    try:
        await until_ready(30.0)
        ticking = await collect(1.0)
        assert sum(m.get("WATCHDOG") == "1" for m in ticking) >= 3
        assert daemon.scheduler is not None
        daemon.scheduler.pause()
        await collect(silence + 0.3)  # pings may go on until the silence limit passes
        paused = await collect(1.0)
        assert not any(m.get("WATCHDOG") for m in paused), paused
        daemon.scheduler.resume()
        resumed = await collect(1.5)
        assert sum(m.get("WATCHDOG") == "1" for m in resumed) >= 2
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, 30)
    assert any(m.get("STOPPING") == "1" for m in await collect(0.3))
