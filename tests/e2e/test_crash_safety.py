"""Crash safety of the outbox: SIGKILL at random moments through a simulated week, and SIGTERM
in the middle of slow sends.

The kill test runs :func:`~tests.e2e.conftest.chaos_run` small (``bench/chaos.py`` runs it big):
about 200 parcels, a few kills, the database checked with ``PRAGMA integrity_check`` after each
kill, then a full drain. Every outbox row that should reach its receiver did (none lost, none
left pending), every delivered or returned parcel has its e-mail row, and a message delivered
twice is only ever one whose row was being sent when the daemon died (delivered, but killed
before the outcome was committed: the at-least-once window, which the stable Message-ID and
webhook-id let receivers de-duplicate).

The SIGTERM test holds every SMTP DATA for a while, sends SIGTERM while messages are in flight,
and checks the drain: each claimed message was either delivered once and marked sent, or not
delivered and back to pending; after a restart each is delivered exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from tests.e2e.conftest import START, World, chaos_run, integrity, ledger

SPEED = 21_600.0  # one simulated day per 4 real seconds


def test_sigkill_at_random_moments_loses_nothing(world: Callable[..., World]) -> None:
    w = world(speed=SPEED, eml=False)
    lines: list[str] = []
    # Half the kills wait for messages on the wire: the window where a duplicate can arise.
    result = chaos_run(w, shipments=200, days=7, kills=4, seed=11, waves=2, aim=0.5,
                       say=lines.append)
    report = "\n".join(lines) + "\n" + w.log_tail(20)
    assert result.kills == 4
    assert result.integrity == [], result.integrity
    assert result.restarts_failed == 0, report
    assert result.strays == [], result.strays
    # Enough traffic for the kills to matter: shipped/delivered/... on two channels.
    assert result.expected > 600, result
    assert result.lost == 0 and result.queued == 0, (result.lost_rows, result.rows_by_status)
    assert result.delivered == result.expected
    assert result.missing == [], result.missing
    # At-least-once: duplicates only of rows that were in flight when the daemon died.
    assert result.duplicated_ids <= result.in_flight_ids, (result.duplicated,
                                                          result.in_flight_ids)
    # ... and at most one per send on the wire (notifications.concurrency) per kill: a send
    # whose outcome is committed is never repeated.
    assert result.duplicates <= result.duplicate_bound, (result.duplicates, result.kills)
    assert "Traceback" not in w.log_text(), w.log_text()[-4000:]


def test_sigterm_mid_send_drains_cleanly(world: Callable[..., World]) -> None:
    # A slow clock here: the sink holds each message 1.5 real seconds; leases must outlast it.
    w = world(speed=60.0, eml=False, sink_delay_s=1.5, channels=("email",))
    off = {c: {"enabled": False} for c in ("ups", "fedex", "dhl", "usps")}
    w.write_config({"carriers": off, "daemon": {"outbox_interval": "10s", "drain_grace": "30s"},
                    "notifications": {"concurrency": 4}, "email": {"pool_size": 4},
                    "digest": {"enabled": False}})
    # Twelve backorders: twelve "backordered" e-mails to send, four at a time.
    csv = w.root / "backorders.csv"
    ship = (START + timedelta(days=3)).date().isoformat()
    csv.write_text("order,email,locale,status,expected_ship\n" + "".join(
        f"B-{i},b{i}@example.net,en,backordered,{ship}\n" for i in range(12)),
        encoding="utf-8")
    done = w.cli("orders", "import", str(csv))
    assert done.returncode == 0, done.stderr
    rows = w.query("SELECT id FROM notifications")
    assert len(rows) == 12
    w.start_daemon()
    assert w.sink is not None and w.push is not None
    sink = w.sink
    w.wait_for("sends in flight", lambda: sink.in_flight >= 2, every_s=0.02)
    assert w.stop_daemon() == 0, w.log_tail()
    assert integrity(w.database) == "ok"
    log = w.log_text()
    assert "notifier stopped" in log and "cancelling" not in log, log[-3000:]

    book = ledger(w.database, sink.messages, [])
    statuses = {r.status for r in book.rows.values()}
    assert statuses <= {"sent", "pending"}, statuses  # nothing left claimed
    sent = {k for k, r in book.rows.items() if r.status == "sent"}
    assert sent and len(sent) < 12  # some were in flight and finished; some never started
    assert {k for k, n in book.received.items() if n} == sent
    assert book.duplicates == 0

    # Restart with a fast sink: the rest goes out, each message exactly once.
    sink.delay_s = 0.0
    w.start_daemon()
    w.wait_for("every row sent", lambda: w.query(
        "SELECT count(*) FROM notifications WHERE status != 'sent'")[0][0] == 0)
    assert w.stop_daemon() == 0
    book = ledger(w.database, sink.messages, [])
    assert len(book.rows) == 12
    assert all(book.received[k] == 1 for k in book.rows), book.received
    assert not book.strays
