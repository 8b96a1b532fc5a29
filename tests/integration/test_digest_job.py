"""The digest_check job end to end: a SQLite file, a real local SMTP sink, a real webhook
receiver, the CLI in a subprocess, and headless Chromium rendering the HTML to a PNG.

The daemon clock is a frozen :class:`SimulatedClock` moved by hand (only clocks are mocked).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import struct
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from notifier import digest_job
from notifier.app import App, build_app
from notifier.channels import webhook
from notifier.clock import SimulatedClock
from notifier.config import (
    AlertSettings,
    DatabaseSettings,
    DigestSettings,
    PushSettings,
    Secret,
    Settings,
    WebhookSettings,
)
from notifier.devtools.smtp_sink import ReceivedMessage, SmtpSink
from notifier.store.sqlite import SqliteStore
from notifier.timefmt import to_db
from tests.conftest import ROOT, config_text, notifier_env
from tests.support.http_server import serve
from tests.support.smtp import email_settings

MONDAY_8 = datetime(2026, 11, 16, 8, 0, tzinfo=UTC)
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SmtpSink]:
    with SmtpSink() as s:
        yield s


def make_settings(tmp_path: Path, sink: SmtpSink, **digest: Any) -> Settings:
    values: dict[str, Any] = {"cron": "0 8 * * *", "recipients": ("ops@example.com",)}
    values.update(digest)
    return Settings(
        path=tmp_path / "config.toml",
        database=DatabaseSettings(path=tmp_path / "notifier.sqlite3"),
        email=email_settings(sink, ops_recipients=("fallback@example.com",)),
        digest=DigestSettings(**values),
        alerts=AlertSettings(recipients=("oncall@example.com",)))


async def run_job(settings: Settings, clock: SimulatedClock) -> None:
    """One digest_check run in a freshly built app (its own store connection): a restart."""
    app = await build_app(settings, clock=clock)
    try:
        digest_job.install(app)
        await app.jobs["digest_check"]()
    finally:
        await app.aclose()


@pytest.fixture
async def app(tmp_path: Path, sink: SmtpSink) -> AsyncIterator[App]:
    a = await build_app(make_settings(tmp_path, sink),
                        clock=SimulatedClock(MONDAY_8 + timedelta(minutes=1), speed=0))
    yield a
    await a.aclose()


async def seed(store: SqliteStore, now: datetime) -> None:
    """Orders on four carriers with anomalies of several kinds and ages, a dispute, dead
    notifications and carrier health: what a digest has to show."""
    carriers = ["ups", "fedex", "dhl", "usps"]
    async with store.transaction() as db:
        for i in range(1, 41):
            carrier = carriers[i % 4]
            stamp = to_db(now - timedelta(days=20))
            await db.execute("INSERT INTO orders (id, email, created_at, updated_at, "
                             "oms_status_since) VALUES (?, ?, ?, ?, ?)",
                             (f"A-{i:03d}", f"cust{i}@example.net", stamp, stamp, stamp))
            await db.execute("INSERT INTO shipments (id, order_id, carrier, tracking_number, "
                             "created_at) VALUES (?, ?, ?, ?, ?)",
                             (i, f"A-{i:03d}", carrier, f"TRK{i:06d}", stamp))
            kind = ["stale_in_transit", "exception", "overdue", "not_found"][i % 3]
            age = timedelta(hours=5 * i)
            resolved = to_db(now - timedelta(hours=2)) if i % 10 == 0 else None
            detail = "<b>Damaged</b> & returned" if kind == "exception" else "no scan for days"
            await db.execute(
                "INSERT INTO anomalies (kind, order_id, shipment_id, subject, carrier, detail, "
                "opened_at, last_seen_at, resolved_at, resolution) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (kind, f"A-{i:03d}", i, f"shipment:{i}", carrier, detail, to_db(now - age),
                 to_db(now), resolved, "delivered" if resolved else None))
        await db.execute("INSERT INTO disputes (order_id, shipment_id, reason, opened_at) "
                         "VALUES ('A-007', 7, 'not_received', ?)",
                         (to_db(now - timedelta(days=2)),))
        for i in range(3):
            await db.execute(
                "INSERT INTO notifications (dedup_key, order_id, trigger, channel, recipient, "
                "status, created_at, attempts, last_error) "
                "VALUES (?, 'A-001', 'shipped', 'email', 'cust1@example.net', 'dead', ?, 5, "
                "'550 5.1.1 mailbox unavailable')", (f"dead-{i}", to_db(now - timedelta(hours=i))))
        for name, ok, bad, limited in (("ups", 980, 20, 4), ("fedex", 500, 0, 0),
                                       ("dhl", 240, 60, 31), ("usps", 55, 5, 0)):
            await db.execute(
                "INSERT INTO carrier_health (carrier, successes, failures, rate_limited, "
                "last_success_at) VALUES (?, ?, ?, ?, ?)",
                (name, ok, bad, limited, to_db(now - timedelta(minutes=3))))


async def digest_rows(settings: Settings) -> list[tuple[str, str]]:
    async with SqliteStore(settings.database.path) as store:
        return sorted((r.period_key, r.status) for r in await store.digest_rows())


def digests(sink: SmtpSink) -> list[ReceivedMessage]:
    return [m for m in sink.messages if str(m["Subject"]).startswith("Ops digest")]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


# ------------------------------------------------------------------------------ periods


async def test_one_digest_per_period_across_a_restart(tmp_path: Path, sink: SmtpSink) -> None:
    settings = make_settings(tmp_path, sink)
    clock = SimulatedClock(MONDAY_8 + timedelta(seconds=30), speed=0)
    async with SqliteStore(settings.database.path) as store:
        await seed(store, clock.now())
    await run_job(settings, clock)
    clock.advance(timedelta(minutes=1))
    await run_job(settings, clock)  # a restart: a new process opens the same file
    clock.advance(timedelta(hours=7))
    await run_job(settings, clock)  # later in the same period
    assert await digest_rows(settings) == [("2026-11-16T08:00+00:00", "sent")]
    [mail] = digests(sink)
    assert mail["To"] == "ops@example.com"
    assert mail.get_body(preferencelist=("html",)) is not None
    assert "Open anomalies:     36" in text_of(mail)

    clock.set(MONDAY_8 + timedelta(days=1, seconds=5))  # the next period
    await run_job(settings, clock)
    await run_job(settings, clock)
    assert [m["Subject"].split(":")[0] for m in digests(sink)] == [
        "Ops digest 2026-11-16 08", "Ops digest 2026-11-17 08"]
    # The second digest's "since" is when the first one gathered its data.
    assert "changes since 2026-11-16 08:00" in text_of(digests(sink)[1])


async def test_missed_periods_are_caught_up_once(tmp_path: Path, sink: SmtpSink) -> None:
    settings = make_settings(tmp_path, sink)
    clock = SimulatedClock(MONDAY_8 + timedelta(minutes=2), speed=0)
    await run_job(settings, clock)
    clock.set(MONDAY_8 + timedelta(days=3, hours=5))  # down from Monday until Thursday 13:00
    await run_job(settings, clock)
    await run_job(settings, clock)
    assert await digest_rows(settings) == [("2026-11-16T08:00+00:00", "sent"),
                                           ("2026-11-19T08:00+00:00", "sent")]
    first, catch_up = digests(sink)
    assert "missed" not in text_of(first)
    text = text_of(catch_up)
    assert "OPS DIGEST 2026-11-19T08:00+00:00" in text
    assert "2 earlier scheduled digest(s) were missed (from 2026-11-17T08:00+00:00)" in text


async def test_a_row_left_pending_by_a_crash_is_retried_after_the_lease(
        tmp_path: Path, sink: SmtpSink) -> None:
    settings = make_settings(tmp_path, sink)
    clock = SimulatedClock(MONDAY_8 + timedelta(seconds=10), speed=0)
    async with SqliteStore(settings.database.path) as store:
        # A process inserted the period row, then died before sending.
        claim = await store.digest_claim("2026-11-16T08:00+00:00", now=clock.now(),
                                         stale_before=clock.now())
        assert claim is not None and claim.status == "pending"
    clock.advance(timedelta(minutes=5))  # maybe still sending elsewhere: leave it alone
    await run_job(settings, clock)
    assert digests(sink) == []
    clock.advance(timedelta(minutes=6))
    await run_job(settings, clock)
    await run_job(settings, clock)
    assert len(digests(sink)) == 1
    assert await digest_rows(settings) == [("2026-11-16T08:00+00:00", "sent")]


async def test_a_failed_recipient_is_retried_without_mailing_the_others_twice(
        tmp_path: Path, sink: SmtpSink) -> None:
    settings = make_settings(tmp_path, sink, recipients=("ops1@example.com", "ops2@example.com"))
    clock = SimulatedClock(MONDAY_8 + timedelta(seconds=10), speed=0)
    sink.fail_next("451 4.3.0 try again later", recipient="ops2@example.com")
    await run_job(settings, clock)
    assert await digest_rows(settings) == [("2026-11-16T08:00+00:00", "failed")]
    assert [m.envelope_to for m in digests(sink)] == [("ops1@example.com",)]
    clock.advance(timedelta(minutes=1))
    await run_job(settings, clock)
    await run_job(settings, clock)
    assert [m.envelope_to for m in digests(sink)] == [
        ("ops1@example.com",), ("ops2@example.com",)]
    assert await digest_rows(settings) == [("2026-11-16T08:00+00:00", "sent")]


# ------------------------------------------------------------------------------ outputs


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            self.requests.append((dict(request.headers), body))
        return Response(status_code=204)


async def test_webhook_json_is_signed_and_out_dir_gets_the_files(
        tmp_path: Path, sink: SmtpSink) -> None:
    receiver = Receiver()
    secret = "whsec_" + base64.b64encode(b"k" * 24).decode()
    with serve(Starlette(routes=[Route("/ops", receiver.handle, methods=["POST"])])) as server:
        settings = make_settings(tmp_path, sink, webhook_url=server.url + "/ops",
                                 out_dir=tmp_path / "previews")
        settings = replace(settings, push=PushSettings(
            webhook=WebhookSettings(secret=Secret(secret))))
        clock = SimulatedClock(MONDAY_8 + timedelta(seconds=10), speed=0)
        async with SqliteStore(settings.database.path) as store:
            await seed(store, clock.now())
        await run_job(settings, clock)
        await run_job(settings, clock)
    [(headers, body)] = receiver.requests
    expected = webhook.sign(webhook.decode_secret(secret), headers["webhook-id"],
                            int(headers["webhook-timestamp"]), body)
    assert headers["webhook-signature"] == expected
    payload = json.loads(body)
    assert payload["type"] == "ops_digest"
    assert payload["data"]["open_total"] == 36
    assert payload["data"]["period_key"] == "2026-11-16T08:00+00:00"
    assert len(digests(sink)) == 1
    files = sorted(p.name for p in (tmp_path / "previews").iterdir())
    assert files == ["digest-2026-11-16T08-00-00-00.html", "digest-2026-11-16T08-00-00-00.txt"]


async def test_alerts_go_out_at_once_and_respect_the_cooldown(
        tmp_path: Path, sink: SmtpSink) -> None:
    settings = make_settings(tmp_path, sink, enabled=False)
    clock = SimulatedClock(MONDAY_8, speed=0)
    async with SqliteStore(settings.database.path) as store, store.transaction() as db:
        await db.execute("INSERT INTO carrier_health (carrier, circuit_state, "
                         "circuit_opened_at, last_error) VALUES ('ups', 'open', ?, 'HTTP 503')",
                         (to_db(clock.now() - timedelta(minutes=20)),))
    await run_job(settings, clock)
    for minutes in (1, 30):
        clock.set(MONDAY_8 + timedelta(minutes=minutes))
        await run_job(settings, clock)
    clock.set(MONDAY_8 + timedelta(minutes=61))
    await run_job(settings, clock)
    subjects = [m["Subject"] for m in sink.messages]
    assert subjects == ["[notifier alert] carrier down: ups"] * 2
    assert sink.messages[0]["To"] == "oncall@example.com"
    assert "ups: circuit open, for 20m; last error: HTTP 503" in text_of(sink.messages[0])
    assert await digest_rows(settings) == []  # digest disabled: alerts only


# ------------------------------------------------------------------------------ CLI


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "notifier", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=60, env=notifier_env(),
                          cwd=config.parent, check=False)


def write_cli_config(tmp_path: Path, sink: SmtpSink) -> Path:
    text = config_text(db_path=str(tmp_path / "cli.sqlite3"))
    text = re.sub(r"(?m)^port = 8025", f"port = {sink.port}", text)
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def test_cli_preview_writes_html_and_text_without_sending(
        tmp_path: Path, sink: SmtpSink) -> None:
    config = write_cli_config(tmp_path, sink)
    async with SqliteStore(tmp_path / "cli.sqlite3") as store:
        await seed(store, datetime.now(UTC))
    html, text = tmp_path / "out" / "digest.html", tmp_path / "out" / "digest.txt"
    done = cli(config, "digest", "--preview", str(html), "--text", str(text))
    assert done.returncode == 0, done.stderr
    page = html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "Ops digest" in page
    assert "TRK000001" in page and "&lt;b&gt;Damaged&lt;/b&gt; &amp; returned" in page
    assert "Open anomalies:     36" in text.read_text(encoding="utf-8")
    assert sink.messages == []
    async with SqliteStore(tmp_path / "cli.sqlite3") as store:
        assert await store.digest_rows() == []


async def test_cli_send_sends_now(tmp_path: Path, sink: SmtpSink) -> None:
    config = write_cli_config(tmp_path, sink)
    done = cli(config, "digest", "--send")
    assert done.returncode == 0, done.stderr
    assert re.match(r"digest manual:\S+: sent to 1 target\(s\); Ops digest ", done.stdout)
    [mail] = digests(sink)
    assert mail["To"] == "ops@example.com"
    listed = cli(config, "alerts", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


# ------------------------------------------------------------------------------ Chromium


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_digest_html_renders_in_headless_chromium(app: App, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed (Debian package chromium)")
    await seed(app.store, app.clock.now())
    job = digest_job.DigestJob(app)
    _, rendered = await job.preview()
    await job.aclose()
    page = tmp_path / "digest.html"
    page.write_text(rendered.html, encoding="utf-8")
    ARTIFACTS.mkdir(exist_ok=True)
    png = ARTIFACTS / "digest.png"
    png.unlink(missing_ok=True)
    profile = tmp_path / "chromium-profile"
    done = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile}", f"--screenshot={png}",
         "--window-size=900,1400", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    shutil.rmtree(profile, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    data = png.read_bytes()
    assert png_size(data) == (900, 1400)
    # A blank 900x1400 page compresses to a few KB; tables, text and bars take far more.
    assert len(data) > 40_000, len(data)
