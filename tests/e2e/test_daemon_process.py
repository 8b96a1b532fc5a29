"""``notifier run`` as a real subprocess: ``--once``, a bad config at start, SIGHUP reload (bad
config refused and the daemon keeps running; good config applied), SIGTERM/SIGINT drain.

Carriers, the HTTP API and the digest are disabled in the config so that no port is needed and
no job reaches for the network. Timeouts below only stop a hung daemon from hanging the test
run; nothing asserts on how long anything took.
"""

from __future__ import annotations

import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from notifier.errors import EX_CONFIG
from notifier.store.sqlite import LATEST_VERSION
from tests.conftest import ROOT, config_text, notifier_env

PYTHON = ROOT / ".venv" / "bin" / "python"
if not PYTHON.exists():  # installed elsewhere (CI with a system venv)
    PYTHON = Path(sys.executable)
GUARD_S = 30.0  # fail instead of hanging forever; never an assertion about speed


def daemon_config(tmp_path: Path, *, poll_tick: str = "1m", drain_grace: str = "5s") -> Path:
    carriers_off = "".join(f"[carriers.{c}]\nenabled = false\n"
                           for c in ("ups", "fedex", "dhl", "usps"))
    text = config_text(extra=f'[daemon]\npoll_tick = "{poll_tick}"\n'
                             f'drain_grace = "{drain_grace}"\n'
                             f"{carriers_off}[api]\nenabled = false\n"
                             "[digest]\nenabled = false\n")
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


class Daemon:
    """A ``notifier run`` subprocess whose stderr lines are collected by a reader thread."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [str(PYTHON), "-m", "notifier", "run", "--config", str(config)],
            cwd=config.parent, env=notifier_env(), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str) -> str:
        """The first new stderr line matching ``pattern``; fails if the daemon exits first."""
        rx = re.compile(pattern)
        while True:
            try:
                line = self._queue.get(timeout=GUARD_S)
            except queue.Empty:
                pytest.fail(f"no log line matching {pattern!r}; got:\n" + "\n".join(self.lines))
            if line is None:
                pytest.fail(f"daemon exited ({self.proc.wait()}) before {pattern!r}:\n"
                            + "\n".join(self.lines))
            self.lines.append(line)
            if rx.search(line):
                return line

    def finish(self) -> int:
        code = self.proc.wait(timeout=GUARD_S)
        self._reader.join(timeout=GUARD_S)
        while True:
            line = self._queue.get_nowait() if not self._queue.empty() else None
            if line is None:
                break
            self.lines.append(line)
        return code

    def index(self, pattern: str) -> int:
        rx = re.compile(pattern)
        return next(i for i, line in enumerate(self.lines) if rx.search(line))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[type[Daemon]]:
    started: list[Daemon] = []

    class Tracked(Daemon):
        def __init__(self, config: Path) -> None:
            super().__init__(config)
            started.append(self)

    yield Tracked
    for d in started:
        d.kill()
        if d.proc.stderr is not None:
            d.proc.stderr.close()


def test_run_once_creates_and_migrates_the_database(tmp_path: Path) -> None:
    config = daemon_config(tmp_path)
    proc = subprocess.run([str(PYTHON), "-m", "notifier", "run", "--once", "--config",
                           str(config)], cwd=tmp_path, env=notifier_env(), capture_output=True,
                          text=True, timeout=GUARD_S, check=False)
    assert proc.returncode == 0, proc.stderr
    db = tmp_path / "notifier.sqlite3"
    assert db.exists()
    with closing(sqlite3.connect(db)) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"orders", "shipments", "events", "notifications", "anomalies"} <= tables
    # A second run finds the schema current and leaves it so.
    again = subprocess.run([str(PYTHON), "-m", "notifier", "run", "--once", "--config",
                            str(config)], cwd=tmp_path, env=notifier_env(), capture_output=True,
                           text=True, timeout=GUARD_S, check=False)
    assert again.returncode == 0, again.stderr
    assert "migrated" not in again.stderr


def test_bad_config_at_start_exits_78(tmp_path: Path) -> None:
    config = daemon_config(tmp_path, poll_tick="soon")
    proc = subprocess.run([str(PYTHON), "-m", "notifier", "run", "--config", str(config)],
                          cwd=tmp_path, env=notifier_env(), capture_output=True, text=True,
                          timeout=GUARD_S, check=False)
    assert proc.returncode == EX_CONFIG
    assert re.search(rf"(?m)^{re.escape(str(config))}: daemon\.poll_tick: ", proc.stderr)
    assert not (tmp_path / "notifier.sqlite3").exists()


def test_sighup_reload_then_sigterm_drain(tmp_path: Path, start: type[Daemon]) -> None:
    config = daemon_config(tmp_path, poll_tick="1m")
    daemon = start(config)
    daemon.wait_for(r"notifier running")

    # A bad value: refused with the file and key named; the daemon keeps running.
    config.write_text(config.read_text(encoding="utf-8").replace(
        'poll_tick = "1m"', 'poll_tick = "every now and then"'), encoding="utf-8")
    daemon.proc.send_signal(signal.SIGHUP)
    refused = daemon.wait_for(r"reload refused")
    assert f"{config}: daemon.poll_tick: " in refused
    assert daemon.proc.poll() is None

    # A good changed value is taken.
    config.write_text(config.read_text(encoding="utf-8").replace(
        'poll_tick = "every now and then"', 'poll_tick = "2m"'), encoding="utf-8")
    daemon.proc.send_signal(signal.SIGHUP)
    reloaded = daemon.wait_for(r"configuration reloaded")
    assert str(config) in reloaded
    assert daemon.proc.poll() is None

    daemon.proc.send_signal(signal.SIGTERM)
    daemon.wait_for(r"notifier stopped")
    assert daemon.finish() == 0
    # Order: the stop request, then (if a job was in flight) the drain, then the end.
    received = daemon.index(r"received SIGTERM: finishing in-flight work")
    stopped = daemon.index(r"notifier stopped")
    assert daemon.index(r"notifier running") < received < stopped
    draining = [i for i, line in enumerate(daemon.lines) if "in-flight job(s)" in line]
    assert all(received < i < stopped for i in draining)
    assert stopped == len(daemon.lines) - 1, daemon.lines[stopped:]
    assert not any("Traceback" in line for line in daemon.lines), daemon.lines


def test_sigint_stops_cleanly_too(tmp_path: Path, start: type[Daemon]) -> None:
    daemon = start(daemon_config(tmp_path))
    daemon.wait_for(r"notifier running")
    daemon.proc.send_signal(signal.SIGINT)
    daemon.wait_for(r"notifier stopped")
    assert daemon.finish() == 0
    assert daemon.index(r"received SIGINT") < daemon.index(r"notifier stopped")
