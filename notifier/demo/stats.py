"""What the demo shows: counts read from the daemon's database (read-only), the sandbox's
statistics, and the files the local servers wrote. I/O module (reads only).

The database is opened with ``mode=ro`` while the daemon writes it: SQLite's WAL mode lets a
reader see the last committed state without blocking the writer. E-mails are tied back to
their outbox row by their Message-ID (``<n<row id>-<hash>@...>``, see
:func:`notifier.outbox.notification_id`), which gives each mail its trigger and locale.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from carriers.model import Status
from notifier import models
from notifier.models import OmsStatus

__all__ = [
    "CarrierCounts",
    "DbSnapshot",
    "MailSummary",
    "PushTail",
    "carrier_counts",
    "mail_summary",
    "read_db",
]

_NOTICE_ID = re.compile(r"<n(\d+)-[0-9a-f]+@")


@dataclass(frozen=True, slots=True, kw_only=True)
class DbSnapshot:
    orders: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    anomalies_open: dict[str, int] = field(default_factory=dict)
    anomalies_opened: dict[str, int] = field(default_factory=dict)
    anomalies_closed: dict[str, int] = field(default_factory=dict)
    # channel -> notification status -> rows
    notifications: dict[str, dict[str, int]] = field(default_factory=dict)
    digests_sent: int = 0
    disputes: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CarrierCounts:
    requests: int = 0
    numbers: int = 0
    rate_limited: int = 0  # 429 answers: quota overruns plus injected bursts
    server_errors: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class MailSummary:
    total: int = 0
    by_trigger: Counter[str] = field(default_factory=Counter)
    by_locale: Counter[str] = field(default_factory=Counter)
    ops: int = 0  # digests and ops alerts (not customer notices)
    unreadable: int = 0


def connect_ro(path: Path) -> sqlite3.Connection | None:
    """A read-only connection, or None while the daemon has not created the file yet."""
    if not path.exists():
        return None
    try:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
    except sqlite3.Error:
        return None


def read_db(db: sqlite3.Connection) -> DbSnapshot:
    """One consistent snapshot (a single read transaction) of the counts the view shows."""
    try:
        db.execute("BEGIN")
        try:
            return _snapshot(db)
        finally:
            db.execute("COMMIT")
    except sqlite3.Error:
        return DbSnapshot()  # schema not migrated yet, or a busy moment: next time


def _snapshot(db: sqlite3.Connection) -> DbSnapshot:
    shipments: dict[str, list[models.Shipment]] = {}
    for order_id, carrier, number, status in db.execute(
            "SELECT order_id, carrier, tracking_number, status FROM shipments"):
        shipments.setdefault(order_id, []).append(
            models.Shipment(carrier=carrier, tracking_number=number, status=Status(status)))
    by_status: Counter[str] = Counter()
    orders = 0
    for order_id, oms in db.execute("SELECT id, oms_status FROM orders"):
        orders += 1
        by_status[models.derive_order_status(OmsStatus(oms), shipments.get(order_id, []))] += 1
    notifications: dict[str, dict[str, int]] = {}
    for channel, status, count in db.execute(
            "SELECT channel, status, count(*) FROM notifications GROUP BY channel, status"):
        notifications.setdefault(channel, {})[status] = count
    return DbSnapshot(
        orders=orders, by_status=dict(by_status),
        anomalies_open=_pairs(db, "SELECT kind, count(*) FROM anomalies "
                                  "WHERE resolved_at IS NULL GROUP BY kind"),
        anomalies_opened=_pairs(db, "SELECT kind, count(*) FROM anomalies GROUP BY kind"),
        anomalies_closed=_pairs(db, "SELECT kind, count(*) FROM anomalies "
                                    "WHERE resolved_at IS NOT NULL GROUP BY kind"),
        notifications=notifications,
        digests_sent=_one(db, "SELECT count(*) FROM digests WHERE status = 'sent'"),
        disputes=_one(db, "SELECT count(*) FROM disputes"))


def _pairs(db: sqlite3.Connection, sql: str) -> dict[str, int]:
    return {str(k): int(v) for k, v in db.execute(sql)}


def _one(db: sqlite3.Connection, sql: str) -> int:
    row = db.execute(sql).fetchone()
    return int(row[0]) if row else 0


def carrier_counts(stats: dict[str, Any]) -> dict[str, CarrierCounts]:
    """``GET /_sandbox/stats`` -> per-carrier counts."""
    out: dict[str, CarrierCounts] = {}
    for carrier, c in (stats.get("carriers") or {}).items():
        out[carrier] = CarrierCounts(
            requests=int(c.get("requests", 0)), numbers=int(c.get("numbers", 0)),
            rate_limited=int(c.get("429_quota", 0)) + int(c.get("429_fault", 0)),
            server_errors=int(c.get("5xx", 0)))
    return out


def mail_summary(mail_dir: Path, db: sqlite3.Connection | None) -> MailSummary:
    """Parse every ``.eml`` and classify it by the outbox row its Message-ID names."""
    rows: dict[int, tuple[str, str]] = {}
    if db is not None:
        try:
            rows = {int(i): (str(t), str(loc or "en")) for i, t, loc in db.execute(
                "SELECT n.id, n.trigger, o.locale FROM notifications n "
                "LEFT JOIN orders o ON o.id = n.order_id WHERE n.channel = 'email'")}
        except sqlite3.Error:
            rows = {}
    total = ops = unreadable = 0
    by_trigger: Counter[str] = Counter()
    by_locale: Counter[str] = Counter()
    parser = BytesParser(policy=policy.default)
    for path in sorted(mail_dir.glob("*.eml")):
        total += 1
        try:
            message = parser.parsebytes(path.read_bytes(), headersonly=True)
        except (OSError, ValueError):
            unreadable += 1
            continue
        match = _NOTICE_ID.search(str(message.get("Message-ID", "")))
        row = rows.get(int(match.group(1))) if match else None
        if row is None:
            ops += 1
            continue
        by_trigger[row[0]] += 1
        by_locale[row[1]] += 1
    return MailSummary(total=total, by_trigger=by_trigger, by_locale=by_locale, ops=ops,
                       unreadable=unreadable)


class PushTail:
    """Counts pushes.jsonl by channel, reading only what was appended since last time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.counts: Counter[str] = Counter()

    def read(self) -> Counter[str]:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except OSError:
            return self.counts
        end = chunk.rfind(b"\n") + 1  # a half-written last line waits for next time
        for line in chunk[:end].splitlines():
            try:
                self.counts[str(json.loads(line).get("channel", "?"))] += 1
            except (ValueError, AttributeError):
                continue
        self.offset += end
        return self.counts
