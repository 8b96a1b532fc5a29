"""The demo's local world: carrier sandbox, SMTP sink, push receiver, generated credentials,
a generated ``config.toml``, and ``notifier run`` as a real subprocess. I/O module.

Everything binds 127.0.0.1 on ports the OS picks. The sandbox and the daemon share one
simulated clock by sharing ``(start, speed, anchor)``: the sandbox gets a
:class:`~notifier.clock.SimulatedClock` built from the very values written to ``[clock]``.
The daemon runs in its own process group, so a Ctrl-C in the terminal reaches only the demo,
which then stops the daemon with SIGTERM (the service's normal drain) before the servers.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import httpx

import notifier
from carriers.sandbox import Quota, SandboxThread
from notifier.clock import SimulatedClock
from notifier.config import TemplateSettings
from notifier.devtools.push_receiver import PushReceiver, PushReceiverThread, make_vapid_key
from notifier.devtools.smtp_sink import SmtpSink
from notifier.errors import NotifierError

__all__ = ["MARKER", "Layout", "Stack", "prepare_out_dir"]

MARKER = ".notifier-demo"
APNS_TEAM, APNS_KEY_ID, APNS_TOPIC = "DEMOTEAM01", "DEMOKEY001", "com.example.shop"
FCM_PROJECT = "notifier-demo"
OPS = "ops@example.com"
# Published quotas, enforced by the sandbox in SIMULATED time (calendar hour / day).
SANDBOX_QUOTAS = {"usps": Quota(per_hour=60), "dhl": Quota(per_day=250)}


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    """Where a run leaves its results."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def database(self) -> Path:
        return self.root / "notifier.sqlite3"

    @property
    def mail(self) -> Path:
        return self.root / "mail"

    @property
    def pushes(self) -> Path:
        return self.root / "pushes.jsonl"

    @property
    def digests(self) -> Path:
        return self.root / "digests"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def daemon_log(self) -> Path:
        return self.root / "daemon.log"


def prepare_out_dir(path: Path) -> Layout:
    """Empty ``path`` for a new run. Refuses (NotifierError) to wipe a non-empty folder that a
    previous demo did not create (no marker file): a typo in ``--out`` must not delete data."""
    path = path.resolve()
    if path.exists():
        if not path.is_dir():
            raise NotifierError(f"--out {path}: exists and is not a folder")
        if any(path.iterdir()):
            if not (path / MARKER).is_file():
                raise NotifierError(f"--out {path}: not empty and not a previous demo output "
                                    f"(no {MARKER} file); refusing to wipe it")
            shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).write_text("Created by `notifier demo`; wiped by the next run.\n",
                               encoding="utf-8")
    layout = Layout(root=path)
    for folder in (layout.mail, layout.digests, layout.keys):
        folder.mkdir()
    return layout


def _free_port() -> int:
    # The daemon binds the API itself; a port just released by the OS is free in practice.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _q(value: str) -> str:
    return json.dumps(value)  # a TOML basic string is a JSON string for our values


class Stack:
    """Start with :meth:`start_servers`, then :meth:`start_daemon`; :meth:`stop` undoes both."""

    def __init__(self, layout: Layout, *, start: datetime, speed: float,
                 templates: TemplateSettings | None = None) -> None:
        self.layout = layout
        self.templates = templates or TemplateSettings()
        self.start = start
        self.speed = speed
        self.anchor = time.time()
        self.clock = SimulatedClock(start, speed=speed, anchor=self.anchor)
        self.api_token = "demo-" + secrets.token_urlsafe(18)
        self.api_url = ""
        self.sandbox: SandboxThread | None = None
        self.sink: SmtpSink | None = None
        self.push: PushReceiverThread | None = None
        self.vapid_public = ""
        self.process: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    # ------------------------------------------------------------------ servers

    def start_servers(self, *, seed: int, boot_s: float = 2.0) -> None:
        """Start the servers, write keys and config. The simulated clock is anchored ``boot_s``
        from now, about when the daemon is up, so the simulated start is not spent booting."""
        # hypercorn (the push receiver) announces "Running on ..." at INFO on stderr, which
        # would land in the middle of the demo's screen; its warnings still show.
        logging.getLogger("hypercorn.error").addFilter(
            lambda record: record.levelno >= logging.WARNING)
        self.sandbox = SandboxThread(now=lambda: self.clock.now(), quotas=SANDBOX_QUOTAS,
                                     seed=seed)
        self.sandbox.start()
        self.sink = SmtpSink(self.layout.mail)
        self.sink.start()
        # TLS on: APNs is reached over h2 with ALPN, trusting the receiver's own CA.
        self.push = PushReceiverThread(PushReceiver(out_file=self.layout.pushes), tls=True)
        self.push.start()
        self._write_keys()
        self.api_url = f"http://127.0.0.1:{_free_port()}"
        self.anchor = time.time() + boot_s
        self.clock = SimulatedClock(self.start, speed=self.speed, anchor=self.anchor)
        self.layout.config.write_text(self.config_text(), encoding="utf-8")

    def _write_keys(self) -> None:
        assert self.push is not None and self.push.ca_file is not None
        receiver, keys = self.push.receiver, self.layout.keys
        account = receiver.new_fcm_account(FCM_PROJECT)
        (keys / "fcm-service-account.json").write_text(json.dumps(account, indent=2),
                                                       encoding="utf-8")
        (keys / "apns-AuthKey.p8").write_bytes(receiver.new_apns_key(APNS_TEAM, APNS_KEY_ID))
        vapid_pem, self.vapid_public = make_vapid_key()
        (keys / "vapid-private.pem").write_bytes(vapid_pem)
        shutil.copyfile(self.push.ca_file, keys / "push-ca.pem")
        for key in keys.iterdir():
            key.chmod(0o600)

    def _templates_toml(self) -> str:
        t = self.templates
        lines = [f"shop_name = {_q(t.shop_name)}", f"support_email = {_q(t.support_email)}",
                 f"support_url = {_q(t.support_url)}",
                 f"default_locale = {_q(t.default_locale)}"]
        if t.user_dir is not None:
            lines.append(f"user_dir = {_q(str(t.user_dir.resolve()))}")
        return "\n".join(lines)

    def config_text(self) -> str:
        assert self.sandbox and self.sink and self.push
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        webhook_url = self.push.receiver.add_webhook("shop-events", secret)
        sandbox = _q(self.sandbox.base_url)
        port = self.api_url.rsplit(":", 1)[1]
        carriers = []
        for name in ("ups", "fedex", "usps"):
            carriers.append(f'[carriers.{name}]\nbase_url = {sandbox}\n'
                            'client_id = "sandbox-client"\nclient_secret = "sandbox-secret"\n'
                            f"requests_per_second = 1000\n"
                            + ("requests_per_hour = 60\n" if name == "usps" else "") + "\n")
        carriers.append(f'[carriers.dhl]\nbase_url = {sandbox}\napi_key = "sandbox-key"\n'
                        "requests_per_second = 1000\nrequests_per_day = 250\n\n")
        start = self.start.isoformat().replace("+00:00", "Z")
        return f"""\
# Generated by `notifier demo` for one run. Every endpoint below is a local server the demo
# started on 127.0.0.1: the carrier sandbox, an SMTP sink writing .eml files to mail/, and a
# push receiver (FCM, APNs, Web Push, webhooks) writing pushes.jsonl. Keys are in keys/.
# Not a production configuration: see config.toml at the repository root for that.

[daemon]
# Intervals are in CLOCK time; the daemon divides them by the clock speed, so at 8640x the
# 15 simulated minutes of poll_tick are about 0.1 real seconds.
poll_tick = "15m"
sweep_interval = "30m"
outbox_interval = "5m"
digest_check = "10m"
housekeeping_interval = "6h"
jitter = "0s"
drain_grace = "5s"
log_format = "text"
log_level = "info"

[clock]
mode = "simulated"
start = "{start}"
speed = {self.speed!r}
# Unix time at which the simulated clock stood at `start`; the sandbox uses the same three
# values, so the carriers and the daemon agree on what time it is.
anchor = {self.anchor!r}

[database]
path = "notifier.sqlite3"

# Carriers all point at the sandbox. requests_per_second is a REAL-time throttle: at 8640x
# one simulated hour lasts 0.4 real seconds, so a per-second limit would starve the daemon
# and is set out of the way. The quotas that matter (USPS 60 per hour, DHL 250 per day) are
# in simulated time, here and in the sandbox, which answers 429 when they are overrun.
{"".join(carriers)}[notifications]
channels = ["email", "fcm", "apns", "webpush", "webhook"]
daily_cap = 6
quiet_hours_start = 21
quiet_hours_end = 8
# A claimed row's lease is clock time too: 12 simulated hours are 5 real seconds.
lease = "12h"

[email]
host = "127.0.0.1"
port = {self.sink.port}
security = "plain"           # loopback only
from_address = "orders@example.com"
from_name = "Example Shop"
ops_recipients = [{_q(OPS)}]

[push.fcm]
enabled = true
project_id = {_q(FCM_PROJECT)}
service_account_file = "keys/fcm-service-account.json"
base_url = {_q(self.push.base_url)}
token_url = {_q(self.push.receiver.token_url)}

[push.apns]
enabled = true
team_id = {_q(APNS_TEAM)}
key_id = {_q(APNS_KEY_ID)}
key_file = "keys/apns-AuthKey.p8"
topic = {_q(APNS_TOPIC)}
base_url = {_q(self.push.h2_url)}
ca_file = "keys/push-ca.pem"

[push.webpush]
enabled = true
vapid_private_key_file = "keys/vapid-private.pem"
vapid_subject = "mailto:{OPS}"

[push.webhook]
enabled = true
url = {_q(webhook_url)}
secret = {_q(secret)}

[templates]
{self._templates_toml()}

[api]
listen = "127.0.0.1:{port}"
public_url = {_q(self.api_url)}
tokens = [{_q(self.api_token)}]
unsubscribe_secret = {_q(secrets.token_urlsafe(24))}
track_rate_per_minute = 6000   # the simulated customers all call from 127.0.0.1

[digest]
enabled = true
cron = "0 8 * * *"            # every simulated morning, 08:00 UTC
tz = "UTC"
recipients = [{_q(OPS)}]
out_dir = "digests"

[alerts]
recipients = [{_q(OPS)}]
cooldown = "1d"
"""

    # ------------------------------------------------------------------ daemon

    def start_daemon(self, *, timeout_s: float = 45.0) -> None:
        """``notifier run`` in its own process group; returns once ``/healthz`` answers."""
        log = self.layout.daemon_log.open("wb")
        self._log = log
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFIER_CONFIG", "NOTIFY_SOCKET")}
        # The daemon imports the same notifier as this process, installed or from a checkout.
        root = str(Path(notifier.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "notifier", "run", "--config", str(self.layout.config)],
            cwd=self.layout.root, env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, process_group=0)
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as http:
            while True:
                if self.process.poll() is not None:
                    raise NotifierError(f"the daemon exited with status {self.process.returncode} "
                                        f"at start:\n{self.daemon_log_tail()}")
                try:
                    if http.get(self.api_url + "/healthz").status_code in (200, 503):
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise NotifierError(f"the daemon did not answer on {self.api_url} within "
                                        f"{timeout_s:.0f} s:\n{self.daemon_log_tail()}")
                time.sleep(0.1)

    def daemon_alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def daemon_log_tail(self, lines: int = 15) -> str:
        try:
            text = self.layout.daemon_log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop_daemon(self, grace_s: float = 20.0) -> int | None:
        """SIGTERM (the service's drain), then SIGKILL after ``grace_s``. Returns its status."""
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return proc.returncode

    def stop(self) -> None:
        """Stop the daemon first (it may still be sending), then the servers."""
        self.stop_daemon()
        for stop in (self.push.stop if self.push else None,
                     self.sink.stop if self.sink else None,
                     self.sandbox.stop if self.sandbox else None):
            if stop is not None:
                stop()
