"""``notifier demo`` end to end, the way a newcomer runs it (``make demo ARGS="--headless --days 3
--orders 50"``): a subprocess that starts the sandbox, the SMTP sink, the push receiver and
``notifier run``, drives a seeded shop through three simulated days and prints a summary.

Asserts on what was left behind: e-mails that parse and belong to the outbox rows of the right
customers with the expected triggers, pushes, a digest preview, a database with orders and
anomalies, a daemon that drained on SIGTERM, and the summary lines. Plus the safety rule for
``--out`` and the seeded shop's shape (pure, fast). The guard timeout only stops a hung run
from hanging the suite; nothing asserts on how long anything took.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from collections import Counter
from contextlib import closing
from datetime import timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from carriers import detect
from carriers.sandbox.scenarios import Scenario
from notifier.demo import seed
from notifier.demo.runner import START
from tests.conftest import ROOT, notifier_env

GUARD_S = 240.0
Run = subprocess.CompletedProcess[str]
NOTICE_ID = re.compile(r"<n(\d+)-[0-9a-f]+@")


def notifier_command() -> list[str]:
    """``.venv/bin/notifier`` as ``make demo`` runs it; ``python -m notifier`` when the
    checkout's virtualenv has the dependencies but not the package's entry point."""
    script = ROOT / ".venv" / "bin" / "notifier"
    if script.exists():
        return [str(script)]
    python = ROOT / ".venv" / "bin" / "python"
    return [str(python if python.exists() else Path(sys.executable)), "-m", "notifier"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Run]:
    out = tmp_path_factory.mktemp("demo") / "demo-out"
    proc = subprocess.run(
        [*notifier_command(), "demo", "--headless", "--days", "3", "--orders", "50",
         "--out", str(out)],
        cwd=out.parent, env=notifier_env(), stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=GUARD_S, check=False)
    return out, proc


def test_demo_exits_cleanly_and_prints_the_summary(
        demo_run: tuple[Path, Run]) -> None:
    out, proc = demo_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout
    # One headless line per simulated day, then where things are, then the summary.
    assert len(re.findall(r"^\[day +\d+\.\d ", text, re.M)) >= 3
    for label in ("E-mails (.eml)", "Pushes (JSON lines)", "Digest previews", "Database"):
        assert re.search(rf"^  {re.escape(label)} +{re.escape(str(out))}", text, re.M), label
    assert re.search(r"^Summary: 50 orders, \d+ carrier requests, [1-9]\d* e-mails, "
                     r"[1-9]\d* pushes, [1-9]\d* digests\.$", text, re.M), text[-2000:]
    for label in ("mails by trigger", "mails by locale", "pushes by channel",
                  "anomalies opened/closed", "429s by carrier", "digests sent", "disputes"):
        assert re.search(rf"^  {re.escape(label)} ", text, re.M), label
    assert "problem:" not in text  # every order, action and fault was accepted
    # The daemon was stopped with SIGTERM and drained (its own last words).
    assert (out / "daemon.log").read_text().rstrip().endswith("notifier stopped")


def test_mails_are_real_messages_to_the_right_customers(
        demo_run: tuple[Path, Run]) -> None:
    out, proc = demo_run
    assert proc.returncode == 0
    files = sorted((out / "mail").glob("*.eml"))
    assert files
    with closing(sqlite3.connect(f"file:{out / 'notifier.sqlite3'}?mode=ro", uri=True)) as db:
        rows = {i: (trigger, recipient) for i, trigger, recipient in db.execute(
            "SELECT id, trigger, recipient FROM notifications WHERE channel = 'email'")}
    parser = BytesParser(policy=policy.default)
    triggers: Counter[str] = Counter()
    seen_ids: set[str] = set()
    for path in files:
        message = parser.parsebytes(path.read_bytes())
        assert message["From"] and message["Subject"] and message["Date"], path.name
        assert message.get_body(("plain",)) is not None, path.name
        mid = str(message["Message-ID"])
        assert mid not in seen_ids, f"duplicate {mid}"
        seen_ids.add(mid)
        match = NOTICE_ID.search(mid)
        if match is None:
            continue  # an ops mail: digest or alert
        trigger, recipient = rows[int(match.group(1))]
        assert message["To"].addresses[0].addr_spec == recipient
        triggers[trigger] += 1
    assert {"shipped", "delivered"} <= set(triggers), triggers
    assert sum(triggers.values()) < len(files)  # the digests went out by mail too


def test_pushes_digests_and_database_are_left_behind(
        demo_run: tuple[Path, Run]) -> None:
    out, proc = demo_run
    assert proc.returncode == 0
    pushes = [json.loads(line) for line in
              (out / "pushes.jsonl").read_text(encoding="utf-8").splitlines()]
    channels = Counter(p["channel"] for p in pushes)
    assert channels["webhook"] > 0
    assert channels["fcm"] + channels["apns"] + channels["webpush"] > 0, channels
    assert list((out / "digests").glob("*.html"))
    with closing(sqlite3.connect(f"file:{out / 'notifier.sqlite3'}?mode=ro", uri=True)) as db:
        assert db.execute("SELECT count(*) FROM orders").fetchone()[0] == 50
        assert db.execute("SELECT count(*) FROM anomalies").fetchone()[0] > 0
        assert db.execute("SELECT count(*) FROM disputes").fetchone()[0] == 1
        assert db.execute("SELECT count(*) FROM digests WHERE status = 'sent'").fetchone()[0] > 0
        locales = {r[0] for r in db.execute("SELECT DISTINCT locale FROM orders")}
    assert {"en", "fr", "de"} <= locales


def test_refuses_to_wipe_a_folder_it_did_not_make(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    proc = subprocess.run([*notifier_command(), "demo", "--headless", "--out", str(precious)],
                          cwd=tmp_path, env=notifier_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1
    assert "refusing to wipe" in proc.stderr
    assert (precious / "thesis.txt").read_text() == "years of work"


def test_the_seeded_shop_covers_every_case_and_is_reproducible() -> None:
    world = seed.plan_world(50, seed=7, start=START, days=3)
    assert world == seed.plan_world(50, seed=7, start=START, days=3)
    assert world != seed.plan_world(50, seed=8, start=START, days=3)
    shipments = world.shipments()
    assert {s.scenario for s in shipments} == set(Scenario)
    assert {s.carrier for s in shipments} == {"ups", "fedex", "dhl", "usps"}
    assert len({s.number for s in shipments}) == len(shipments)
    for s in shipments:
        assert any(c.carrier == s.carrier and c.check_digit_ok is not False
                   for c in detect.detect(s.number)), s
    kinds = Counter(o.kind for o in world.orders)
    assert kinds["cancelled"] == 1
    assert kinds["split"] and kinds["backordered"] and kinds["payment_hold"]
    assert all(o.expected_ship for o in world.orders if o.kind == "backordered")
    for o in world.orders:
        if o.kind == "split":
            assert len(o.shipments) + sum(len(a.shipments) for a in o.actions) == 2
    assert len({o.locale for o in world.orders}) >= 4
    assert len({o.tz for o in world.orders}) >= 4
    assert any(o.devices for o in world.orders)
    assert any(o.dispute_candidate for o in world.orders)
    # Orders arrive from the start through the first 60% of the run, never after.
    assert all(START <= o.intake_at <= START + timedelta(days=world.days * 0.6)
               for o in world.orders)
