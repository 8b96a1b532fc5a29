"""End-to-end harness: the carrier sandbox, an SMTP sink and a push receiver in this process,
``notifier run`` as a real subprocess configured to use them, all on one simulated clock.

:class:`World` is the reusable part (the ``world`` fixture builds them; ``bench/chaos.py``
imports it too): ``start_servers`` starts the three local servers, ``write_config`` writes a
``config.toml`` pointing the daemon at them (the repository's config.toml with the test's
values merged in), ``start_daemon`` / ``kill_daemon`` (SIGKILL) / ``stop_daemon`` (SIGTERM and
wait) drive the daemon, ``cli`` runs a ``notifier`` command against the same configuration, and
:func:`ledger` joins what the receivers got to the database's outbox rows by the notification
id every message carries (``n<row id>-<hash of the dedup key>``: the e-mail Message-ID, the
webhook-id header, the push payload's ``notification_id``), so deliveries and duplicates are
counted per de-duplication key.

The daemon and the sandbox share the clock by sharing ``(start, speed, anchor)``; intervals in
the daemon's configuration are in simulated time. Timeouts here only stop a hung run from
hanging the suite; nothing asserts on how long anything took.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from carriers.sandbox import Quota, SandboxThread
from notifier.clock import SimulatedClock
from notifier.devtools.push_receiver import PushReceiver, PushReceiverThread
from notifier.devtools.smtp_sink import SmtpSink, _Handler
from tests.conftest import ROOT, config_text, dump_toml

__all__ = ["OPS", "START", "Ledger", "SlowSmtpSink", "World", "ledger"]

PYTHON = ROOT / ".venv" / "bin" / "python"
if not PYTHON.exists():  # installed elsewhere (CI with a system venv)
    PYTHON = Path(sys.executable)
# A Monday morning: the daily 08:00 UTC digest comes two simulated hours in.
START = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
OPS = "ops@example.com"
FCM_PROJECT = "notifier-e2e"
NOTICE_ID = re.compile(r"^n(\d+)-([0-9a-f]{10})$")
GUARD_S = 60.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def notifier_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFIER_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


# ---------------------------------------------------------------------------- a slow sink


class _SlowHandler(_Handler):
    """The sink's handler, holding every DATA for ``sink.delay_s`` seconds before answering,
    and counting the messages inside that window (``sink.in_flight``)."""

    def __init__(self, sink: SlowSmtpSink) -> None:
        super().__init__(sink)
        self._slow = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        sink = self._slow
        with sink.counter_lock:
            sink.in_flight += 1
        try:
            if sink.delay_s > 0:
                await asyncio.sleep(sink.delay_s)
            return await super().handle_DATA(server, session, envelope)
        finally:
            with sink.counter_lock:
                sink.in_flight -= 1


class SlowSmtpSink(SmtpSink):
    """An :class:`SmtpSink` whose DATA answer waits ``delay_s`` (settable at any time): sends
    stay in flight long enough to be interrupted."""

    def __init__(self, out_dir: Path | None = None, *, delay_s: float = 0.0) -> None:
        import threading

        super().__init__(out_dir)
        self.delay_s = delay_s
        self.in_flight = 0
        self.counter_lock = threading.Lock()

    def _start_controller(self) -> None:
        super()._start_controller()
        assert self._controller is not None
        # The controller builds one SMTP protocol per connection from .handler.
        self._controller.handler = _SlowHandler(self)


# ---------------------------------------------------------------------------- the world


@dataclass
class World:
    """Servers, configuration and the daemon subprocess of one end-to-end run."""

    root: Path
    speed: float
    start: datetime = START
    channels: tuple[str, ...] = ("email", "webhook", "fcm")
    sink_delay_s: float = 0.0
    eml: bool = True
    sandbox_quotas: dict[str, Quota] = field(default_factory=dict)
    anchor: float = 0.0
    token: str = field(default_factory=lambda: "e2e-" + secrets.token_urlsafe(12))
    api_url: str = ""
    sandbox: SandboxThread | None = None
    sink: SlowSmtpSink | None = None
    push: PushReceiverThread | None = None
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log: BinaryIO | None = None
    _http: httpx.Client | None = None

    # ------------------------------------------------------------------ paths and clock

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def database(self) -> Path:
        return self.root / "notifier.sqlite3"

    @property
    def daemon_log(self) -> Path:
        return self.root / "daemon.log"

    @property
    def clock(self) -> SimulatedClock:
        return SimulatedClock(self.start, speed=self.speed, anchor=self.anchor)

    def now(self) -> datetime:
        return self.clock.now()

    def real_seconds(self, sim: timedelta) -> float:
        return sim.total_seconds() / self.speed

    def sleep_until(self, when: datetime) -> None:
        """Sleep (really) until the simulated clock reaches ``when``."""
        wait = (when - self.now()).total_seconds() / self.speed
        if wait > 0:
            time.sleep(wait)

    # ------------------------------------------------------------------ servers

    def start_servers(self, *, boot_s: float = 2.0) -> None:
        """Start sandbox, sink and push receiver. The simulated clock stands at ``start``
        ``boot_s`` real seconds from now (about when a daemon started next is up)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.anchor = time.time() + boot_s
        clock = self.clock  # one object: the anchor is fixed from here on
        self.sandbox = SandboxThread(now=clock.now, quotas=self.sandbox_quotas or None)
        self.sandbox.start()
        self.sink = SlowSmtpSink(self.root / "mail" if self.eml else None,
                                 delay_s=self.sink_delay_s)
        self.sink.start()
        self.push = PushReceiverThread(PushReceiver())
        self.push.start()
        self.api_url = f"http://127.0.0.1:{_free_port()}"

    def settings(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The configuration (as a dict merged over config.toml) for the running servers."""
        assert self.sandbox and self.sink and self.push
        receiver = self.push.receiver
        carriers: dict[str, Any] = {}
        for name in ("ups", "fedex", "dhl", "usps"):
            # requests_per_second is a REAL-time pacer: out of the way at these speeds. The
            # sandbox enforces only the quotas a test gives it, so none here either.
            carriers[name] = {"base_url": self.sandbox.base_url, "requests_per_second": 1000,
                              "requests_per_day": 0, "requests_per_hour": 0}
        secret = "whsec_" + base64.b64encode(b"e2e-webhook-secret-0123456789abc").decode()
        webhook_url = receiver.add_webhook("shop", secret)
        account = receiver.new_fcm_account(FCM_PROJECT)
        fcm_file = self.root / "fcm-service-account.json"
        fcm_file.write_text(json.dumps(account), encoding="utf-8")
        fcm_file.chmod(0o600)
        port = self.api_url.rsplit(":", 1)[1]
        data: dict[str, Any] = {
            "daemon": {"poll_tick": "15m", "sweep_interval": "30m", "outbox_interval": "5m",
                       "digest_check": "10m", "housekeeping_interval": "6h", "jitter": "0s",
                       "drain_grace": "15s", "log_format": "text", "log_level": "info"},
            "clock": {"mode": "simulated", "start": self.start, "speed": float(self.speed),
                      "anchor": self.anchor},
            "carriers": carriers,
            "notifications": {"channels": list(self.channels), "lease": "1h"},
            "email": {"host": "127.0.0.1", "port": self.sink.port, "security": "plain",
                      "ops_recipients": [OPS]},
            "push": {
                "webhook": {"enabled": "webhook" in self.channels, "url": webhook_url,
                            "secret": secret},
                "fcm": {"enabled": "fcm" in self.channels, "project_id": FCM_PROJECT,
                        "service_account_file": str(fcm_file),
                        "base_url": self.push.base_url, "token_url": receiver.token_url},
            },
            "api": {"listen": f"127.0.0.1:{port}", "public_url": self.api_url,
                    "tokens": [self.token], "unsubscribe_secret": "e2e-unsubscribe-secret",
                    "track_rate_per_minute": 6000},
            "digest": {"enabled": True, "cron": "0 8 * * *", "tz": "UTC", "recipients": [OPS],
                       "out_dir": str(self.root / "digests")},
            "alerts": {"recipients": [OPS]},
        }
        from tests.conftest import merge

        return merge(data, extra or {})

    def write_config(self, extra: dict[str, Any] | None = None) -> Path:
        self.config.write_text(config_text(str(self.database), dump_toml(self.settings(extra))),
                               encoding="utf-8")
        return self.config

    # ------------------------------------------------------------------ the daemon

    def start_daemon(self, *, wait: bool = True) -> subprocess.Popen[bytes]:
        """``notifier run`` in its own process group, log appended to daemon.log; returns
        once ``/healthz`` answers (any status) unless ``wait`` is false."""
        assert self.process is None or self.process.poll() is not None, "already running"
        if self._log is None:
            self._log = self.daemon_log.open("ab")
        self._log.write(f"---- start {self.starts + 1}\n".encode())
        self._log.flush()
        self.process = subprocess.Popen(
            [str(PYTHON), "-m", "notifier", "run", "--config", str(self.config)],
            cwd=self.root, env=notifier_env(), stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, process_group=0)
        self.starts += 1
        if wait:
            self.wait_healthy(any_status=True)
        return self.process

    def wait_healthy(self, *, any_status: bool = False, timeout_s: float = GUARD_S) -> int:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"daemon exited with {self.process.returncode}:\n"
                                     + self.log_tail())
            try:
                code = self.http.get(self.api_url + "/healthz").status_code
                if code == 200 or any_status:
                    return code
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("daemon not healthy in time:\n" + self.log_tail())
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill_daemon(self) -> None:
        """SIGKILL, as a power cut would; waits for the process to be gone."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=GUARD_S)

    def stop_daemon(self, *, timeout_s: float = GUARD_S) -> int | None:
        """SIGTERM and wait for the drain; returns the exit status."""
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError("daemon ignored SIGTERM:\n" + self.log_tail()) from None
        return proc.returncode

    def log_text(self) -> str:
        try:
            return self.daemon_log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # ------------------------------------------------------------------ driving it

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(timeout=30.0)
        return self._http

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return self.http.request(method, self.api_url + path, headers=headers, **kw)

    def register(self, carrier: str, number: str, scenario: str, start: datetime) -> None:
        assert self.sandbox is not None
        r = self.http.post(self.sandbox.base_url + "/_sandbox/shipments", json={
            "number": number, "carrier": carrier, "scenario": scenario,
            "start": start.isoformat()})
        assert r.status_code == 201, r.text

    def fault(self, **body: Any) -> None:
        assert self.sandbox is not None
        r = self.http.post(self.sandbox.base_url + "/_sandbox/faults", json=body)
        assert r.status_code == 201, r.text

    def cli(self, *args: str, config: Path | None = None, timeout_s: float = GUARD_S
            ) -> subprocess.CompletedProcess[str]:
        """``notifier ARGS --config CONFIG`` (this world's configuration by default). A hung
        command gets SIGINT first, so the failure shows where it hung."""
        command = [str(PYTHON), "-m", "notifier", *args, "--config", str(config or self.config)]
        proc = subprocess.Popen(command, cwd=self.root, env=notifier_env(),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            try:
                out, err = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            raise AssertionError(f"{' '.join(args)} hung:\n{out}\n{err}") from None
        return subprocess.CompletedProcess(command, proc.returncode, out, err)

    def db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.database, timeout=30)
        conn.row_factory = sqlite3.Row
        return conn

    def query(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        with closing(self.db()) as conn:
            return list(conn.execute(sql, args))

    def wait_for(self, what: str, check: Callable[[], bool], *,
                 timeout_s: float = GUARD_S, every_s: float = 0.2) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"daemon exited ({self.process.returncode}) while "
                                     f"waiting for {what}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.log_tail()}")
            time.sleep(every_s)

    def outbox_idle(self) -> bool:
        """No outbox row due now or claimed (rows held for later, e.g. quiet hours, aside)."""
        from notifier.timefmt import to_db

        rows = self.query("SELECT count(*) FROM notifications WHERE status IN "
                          "('pending', 'sending') AND next_attempt_at <= ?", to_db(self.now()))
        return int(rows[0][0]) == 0

    def stop(self) -> None:
        """Kill a daemon still running (a failed test), then stop the servers."""
        if self.alive():
            assert self.process is not None
            self.process.kill()
            self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._http is not None:
            self._http.close()
        for server in (self.push, self.sink, self.sandbox):
            if server is not None:
                server.stop()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Callable[..., World]]:
    """``world(speed=..., **options)``: a started :class:`World` (servers up, no config yet);
    stopped after the test."""
    made: list[World] = []

    def make(*, boot_s: float = 2.0, **options: Any) -> World:
        w = World(root=tmp_path / f"world{len(made)}", **options)
        made.append(w)
        w.start_servers(boot_s=boot_s)
        return w

    yield make
    for w in made:
        w.stop()


# ---------------------------------------------------------------------------- accounting


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxRow:
    id: int
    dedup_key: str
    order_id: str | None
    trigger: str
    channel: str
    recipient: str
    status: str
    payload: str


@dataclass
class Ledger:
    """Outbox rows joined to what the receivers got. ``received`` counts deliveries per
    dedup key; ``strays`` are customer messages that match no row (a bug if any)."""

    rows: dict[str, OutboxRow]
    received: Counter[str]
    by_key: dict[str, list[Any]]
    strays: list[str]
    ops_mail: list[Any]

    @property
    def expected(self) -> list[OutboxRow]:
        """Rows that should reach their receiver: all but superseded and permanently failed."""
        return [r for r in self.rows.values() if r.status not in ("superseded", "failed")]

    @property
    def lost(self) -> list[OutboxRow]:
        return [r for r in self.expected if self.received[r.dedup_key] == 0]

    @property
    def delivered(self) -> int:
        return sum(1 for r in self.expected if self.received[r.dedup_key] > 0)

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.received.values() if n > 1)

    def duplicated_keys(self) -> list[str]:
        return sorted(k for k, n in self.received.items() if n > 1)


def _notice_key(notification_id: str, rows_by_id: dict[int, OutboxRow]) -> str | None:
    match = NOTICE_ID.match(notification_id.strip().strip("<>").split("@", 1)[0])
    if match is None:
        return None
    row = rows_by_id.get(int(match.group(1)))
    if row is None:
        return None
    if hashlib.sha256(row.dedup_key.encode()).hexdigest()[:10] != match.group(2):
        return None  # same row number, different database: not ours
    return row.dedup_key


def load_rows(database: Path) -> dict[str, OutboxRow]:
    with closing(sqlite3.connect(database, timeout=30)) as conn:
        return {r[1]: OutboxRow(id=r[0], dedup_key=r[1], order_id=r[2], trigger=r[3],
                                channel=r[4], recipient=r[5], status=r[6], payload=r[7])
                for r in conn.execute("SELECT id, dedup_key, order_id, trigger, channel, "
                                      "recipient, status, payload FROM notifications")}


def ledger(database: Path, mail: list[Any], pushes: list[dict[str, Any]]) -> Ledger:
    """Join ``mail`` (sink messages) and ``pushes`` (push receiver entries) to the rows."""
    rows = load_rows(database)
    by_id = {r.id: r for r in rows.values()}
    received: Counter[str] = Counter()
    by_key: dict[str, list[Any]] = {}
    strays: list[str] = []
    ops: list[Any] = []
    for message in mail:
        mid = str(message.get("Message-ID", ""))
        key = _notice_key(mid, by_id)
        if key is None:
            if mid.strip("<>").startswith("n"):
                strays.append(f"mail {mid} to {message.get('To')}")
            else:
                ops.append(message)  # digest or ops alert
            continue
        received[key] += 1
        by_key.setdefault(key, []).append(message)
    for entry in pushes:
        payload = entry.get("payload") or {}
        if entry["channel"] == "webhook":
            nid = str(entry["headers"].get("webhook-id", ""))
        elif entry["channel"] == "fcm":
            nid = str((payload.get("data") or {}).get("notification_id", ""))
        else:
            data = payload.get("data", payload) if isinstance(payload, dict) else {}
            nid = str(data.get("notification_id", ""))
        key = _notice_key(nid, by_id)
        if key is None:
            if not nid.startswith("digest-"):
                strays.append(f"{entry['channel']} {nid!r}")
            continue
        received[key] += 1
        by_key.setdefault(key, []).append(entry)
    return Ledger(rows=rows, received=received, by_key=by_key, strays=strays, ops_mail=ops)


def integrity(database: Path) -> str:
    """``PRAGMA integrity_check`` of the file (recovering the WAL, as the next open would)."""
    with closing(sqlite3.connect(database, timeout=30)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


# ---------------------------------------------------------------------------- chaos


# Scenarios whose parcels reach an end (delivered or returned) within a few simulated days, so
# "everything that should have been sent was sent" has a well-defined end.
CHAOS_SCENARIOS = {"normal": 64, "failed_attempt_pickup": 10, "edd_slip_once": 10,
                   "exception_return": 8, "delivered_correction": 8}
# Batch carriers first: 2,000 single-number UPS/DHL polls per simulated few hours would be
# thousands of requests per real second at these speeds.
CHAOS_CARRIERS = {"fedex": 45, "usps": 45, "ups": 6, "dhl": 4}


@dataclass
class ChaosResult:
    kills: int = 0
    expected: int = 0
    delivered: int = 0
    lost: int = 0
    duplicates: int = 0
    messages: int = 0           # deliveries seen at the receivers (duplicates included)
    queued: int = 0             # rows still pending at the end (never due: counted as lost)
    missing: list[str] = field(default_factory=list)   # invariant breaches (should-be rows)
    integrity: list[str] = field(default_factory=list)  # integrity_check answers != "ok"
    in_flight_at_kills: int = 0  # rows claimed ('sending') right after the kills, summed
    in_flight_ids: set[int] = field(default_factory=set)  # ... and their ids
    concurrency: int = 8        # notifications.concurrency: sends on the wire at once
    duplicated_ids: set[int] = field(default_factory=set)
    strays: list[str] = field(default_factory=list)
    lost_rows: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    rows_by_status: dict[str, int] = field(default_factory=dict)
    restarts_failed: int = 0

    @property
    def duplicate_bound(self) -> int:
        """At most one duplicate per send on the wire when a kill struck: a message delivered
        whose outcome was not committed yet. Sends on the wire <= ``concurrency``."""
        return self.kills * self.concurrency

    def line(self) -> str:
        return (f"RESULT kills={self.kills} expected={self.expected} "
                f"delivered={self.delivered} lost={self.lost} duplicates={self.duplicates}")


def _weighted(rng: Any, table: dict[str, int]) -> str:
    return str(rng.choices(list(table), weights=list(table.values()))[0])


def chaos_run(w: World, *, shipments: int, days: float, kills: int, seed: int,
              waves: int = 4, aim: float = 0.0, min_uptime_s: float = 1.0,
              say: Callable[[str], None] = lambda _: None) -> ChaosResult:
    """Drive ``w`` (servers started, no daemon yet) through ``days`` simulated days with
    ``shipments`` parcels, SIGKILLing the daemon ``kills`` times at random moments and
    restarting it; then let it drain, stop it with SIGTERM, and account for every message.

    A third of the orders is imported before the first start, the rest in ``waves`` CLI
    imports while the daemon runs (or lies dead). The database passes ``integrity_check``
    after every kill or it is recorded in ``result.integrity``. A fraction ``aim`` of the kills
    waits (up to a second) for outbox rows being sent, the worst moment; the others strike
    at a uniformly random instant. A kill never comes sooner than ``min_uptime_s`` real seconds
    after the restart before it: kills bunched closer would only measure start-up time, and the
    downtime would age the outbox past ``give_up_after`` in simulated time."""
    import random

    from carriers import numbers

    rng = random.Random(seed)
    result = ChaosResult()
    w.write_config({"notifications": {"channels": ["email", "webhook"]}})
    seen: set[str] = set()
    plans: list[tuple[str, str, str, str, datetime]] = []  # order, carrier, number, scen, start
    label_span = max(0.5, days - 4.5)  # the last parcels still arrive before the end
    for i in range(shipments):
        carrier = _weighted(rng, CHAOS_CARRIERS)
        number = numbers.generate(carrier, rng)
        while number in seen:
            number = numbers.generate(carrier, rng)
        seen.add(number)
        start = w.start + timedelta(days=rng.uniform(-0.5, label_span))
        plans.append((f"C-{i + 1:05d}", carrier, number, _weighted(rng, CHAOS_SCENARIOS),
                      start))
    for _, carrier, number, scenario, start in plans:
        w.register(carrier, number, scenario, start)
    # Each order reaches the shop when its label is made (the early ones at once).
    early = w.start + timedelta(days=label_span / 3)
    first = [p for p in plans if p[4] <= early]
    later = sorted((p for p in plans if p[4] > early), key=lambda p: p[4])
    chunk = max(1, -(-len(later) // max(1, waves)))
    wave_plan = [later[i:i + chunk] for i in range(0, len(later), chunk)]
    locales = (("en", "America/New_York"), ("fr", "Europe/Paris"), ("de", "Europe/Berlin"))

    def import_wave(batch: list[tuple[str, str, str, str, datetime]], n: int) -> None:
        path = w.root / f"wave{n}.csv"
        lines = ["order,email,locale,tz,carrier,tracking"]
        for order, carrier, number, _, _ in batch:
            loc, tz = locales[int(order[2:]) % 3]
            lines.append(f"{order},{order.lower()}@example.net,{loc},{tz},{carrier},{number}")
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        done = w.cli("orders", "import", str(path), timeout_s=300)
        if done.returncode != 0:
            raise AssertionError(f"import of wave {n} failed:\n{done.stderr[-2000:]}")
        say(f"imported {len(batch)} orders (wave {n})")

    import_wave(first, 0)
    w.start_daemon()
    up_since = time.monotonic()
    end = w.start + timedelta(days=days)
    # Kill moments: random real instants over the run, no two closer than a restart.
    run_s = (end - w.now()).total_seconds() / w.speed
    moments = sorted(rng.uniform(0.5, run_s) for _ in range(kills))
    t0 = time.monotonic()
    events: list[tuple[float, str, Any]] = [(m, "kill", None) for m in moments]
    for n, batch in enumerate(wave_plan, start=1):
        due = max(batch[0][4], w.start)
        events.append(((due - w.now()).total_seconds() / w.speed, "wave", (n, batch)))
    events.sort(key=lambda e: e[0])
    for at, what, item in events:
        delay = at - (time.monotonic() - t0)
        if delay > 0:
            time.sleep(delay)
        if what == "wave":
            import_wave(item[1], item[0])
            continue
        if not w.alive():
            w.start_daemon()  # the previous restart may still be on its way up
        time.sleep(max(0.0, min_uptime_s - (time.monotonic() - up_since)))
        if rng.random() < aim:
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and not w.query(
                    "SELECT 1 FROM notifications WHERE status = 'sending' LIMIT 1"):
                time.sleep(0.01)
        w.kill_daemon()
        result.kills += 1
        check = integrity(w.database)
        if check != "ok":
            result.integrity.append(check)
        sending = {int(r[0]) for r in
                   w.query("SELECT id FROM notifications WHERE status = 'sending'")}
        result.in_flight_at_kills += len(sending)
        result.in_flight_ids |= sending
        say(f"kill {result.kills} at {w.now():%a %H:%M} (sim): integrity {check}, "
            f"{len(sending)} row(s) were being sent")
        try:
            w.start_daemon()
        except AssertionError as exc:
            result.restarts_failed += 1
            say(f"restart failed: {exc}")
            w.start_daemon()
        up_since = time.monotonic()
    w.sleep_until(end)
    _drain_everything(w, say)
    code = w.stop_daemon()
    say(f"daemon stopped with status {code}")
    check = integrity(w.database)
    if check != "ok":
        result.integrity.append(check)
    assert w.sink is not None and w.push is not None
    book = ledger(w.database, w.sink.messages, w.push.receiver.received)
    result.expected = len(book.expected)
    result.delivered = book.delivered
    result.lost = len(book.lost)
    result.duplicates = book.duplicates
    result.messages = sum(book.received.values())
    result.queued = sum(1 for r in book.rows.values() if r.status in ("pending", "sending"))
    result.lost_rows = [f"{r.id} {r.trigger} {r.channel} {r.status}" for r in book.lost][:50]
    result.duplicated = book.duplicated_keys()[:50]
    result.duplicated_ids = {book.rows[k].id for k in book.duplicated_keys()}
    result.strays = book.strays[:50]
    counts: Counter[str] = Counter(r.status for r in book.rows.values())
    result.rows_by_status = dict(counts)
    result.missing = missing_notices(w.database)
    return result


def _drain_everything(w: World, say: Callable[[str], None], *, timeout_s: float = 120.0
                      ) -> None:
    """Run on until every parcel is final and no outbox row is left to send (or the guard
    runs out: what is left then counts as lost)."""
    deadline = time.monotonic() + timeout_s
    quiet_since: float | None = None
    while time.monotonic() < deadline:
        if not w.alive():
            w.start_daemon()
        open_parcels = w.query("SELECT count(*) FROM shipments WHERE status NOT IN "
                               "('delivered', 'returned')")[0][0]
        todo = w.query("SELECT count(*) FROM notifications WHERE status IN "
                       "('pending', 'sending')")[0][0]
        if open_parcels == 0 and todo == 0:
            # Quiet for a few simulated hours: nothing new is being planned.
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > max(1.0, w.real_seconds(timedelta(hours=6))):
                return
        else:
            quiet_since = None
        time.sleep(0.2)
    say("drain guard ran out")


def missing_notices(database: Path, *, max_event_age: timedelta = timedelta(days=2),
                    slack: timedelta = timedelta(hours=6)) -> list[str]:
    """Invariant: every delivered (returned) parcel has a ``delivered`` (``returned``) e-mail
    row, unless the daemon first saw that event about ``max_event_age`` or more after it
    happened (no retroactive notices, by design). ``slack``: the planner compares with the
    clock when the tick's transaction plans, a little after the poll's ``seen_at``."""
    out: list[str] = []
    with closing(sqlite3.connect(database, timeout=30)) as conn:
        for sid, order_id, status in conn.execute(
                "SELECT id, order_id, status FROM shipments "
                "WHERE status IN ('delivered', 'returned')"):
            row = conn.execute("SELECT 1 FROM notifications WHERE shipment_id = ? AND "
                               "trigger = ? AND channel = 'email'", (sid, status)).fetchone()
            if row is not None:
                continue
            first = conn.execute("SELECT at, seen_at FROM events WHERE shipment_id = ? AND "
                                 "status = ? ORDER BY at LIMIT 1", (sid, status)).fetchone()
            if first is not None:
                at, seen = (datetime.fromisoformat(v.replace("Z", "+00:00")) for v in first)
                if seen - at > max_event_age - slack:
                    continue
            out.append(f"order {order_id} shipment {sid}: {status} but no {status} e-mail row")
    return out
