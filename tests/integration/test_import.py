"""``notifier orders import``: CSV and JSON Lines with good and bad rows through the real CLI
(in-process ``cli.main`` on a temporary config and SQLite file), ``FILE:LINE: problem`` reports,
exit statuses, batches, idempotent re-import, malformed input (too many cells, not JSON, not an
object, blank lines, BOM, non-UTF-8 bytes)."""

from __future__ import annotations

import json
import logging
import random
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from carriers import detect, numbers
from notifier import cli
from notifier.domain import DomainEvent, NewNotification
from notifier.importer import import_file
from notifier.store.base import OrderInput, PlanInputs, UpsertSummary
from notifier.store.sqlite import SqliteStore
from tests.conftest import config_text

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CSV_HEADER = "order,email,name,locale,tz,promised,carrier,tracking,status"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # cli.main points the root logger at the stderr of the moment (capsys's, closed later).
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def write_config(folder: Path) -> Path:
    # The API server stays off: no port needed.
    path = folder / "config.toml"
    path.write_text(config_text(extra="[api]\nenabled = false\n"),
                    encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, list[str]]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def reports(err: list[str], path: Path) -> dict[int, str]:
    """``{line: problem}`` from the ``FILE:LINE: problem`` lines on stderr (one per line)."""
    found: dict[int, str] = {}
    for text in err:
        m = re.fullmatch(rf"{re.escape(str(path))}:(\d+): (.+)", text)
        if m:
            assert int(m.group(1)) not in found, f"line {m.group(1)} reported twice"
            found[int(m.group(1))] = m.group(2)
    return found


def query(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as con:
        return con.execute(sql, params).fetchall()


def failing(carrier: str, rng: random.Random) -> str:
    """A ``carrier``-shaped number whose check digit fails (corrupt may break the shape too)."""
    while True:
        bad = numbers.corrupt(numbers.generate(carrier, rng), rng)
        if detect.plausible(carrier, bad) and detect.check_digit_ok(carrier, bad) is False:
            return bad


def summary_counts(out: str) -> dict[str, int]:
    words = ("rows", "imported", "new", "updated", "unchanged", "shipments added", "rejected",
             "warnings")
    return {w: int(re.search(rf"(\d+) {w}", out).group(1)) for w in words}  # type: ignore[union-attr]


# ------------------------------------------------------------------------------ CSV


def test_csv_mixed_good_and_bad_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(20261102)
    ups, fedex, dhl = (numbers.generate(c, rng) for c in ("ups", "fedex", "dhl"))
    warn_number = failing("usps", rng)
    good_numbers = {"A1": ("ups", ups), "A2": ("fedex", fedex), "A3": ("dhl", dhl),
                    "A5": ("usps", warn_number)}
    lines = [  # physical line numbers on the right; A2's quoted name spans lines 3 and 4
        CSV_HEADER,                                                                   # 1
        f"A1,ann@example.com,Ann,fr,Europe/Paris,2026-11-10,ups,{ups},",              # 2
        f'A2,bob@example.com,"Bob\nSmith",en_US,America/Chicago,,FEDEX,{fedex},processing',
        f"A3,cy@example.com,Cy,de_AT,Europe/Vienna,,,{dhl},",                         # 5
        "",                                                                           # 6
        "B1,not-an-email,Bad,en,UTC,,,,",                                             # 7
        "B2,b2@example.com,Bad,en,UTC,2026-02-30,,,",                                 # 8
        "B3,b3@example.com,Bad,en,Mars/Olympus,,,,",                                  # 9
        "B4,b4@example.com,Bad,xx_QQ,UTC,,,,",                                        # 10
        f"B5,b5@example.com,Bad,en,UTC,,acme,{ups},",                                 # 11
        "B6,b6@example.com,Bad,en,UTC,,ups,1Z12345,",                                 # 12
        f"B7,b7@example.com,Bad,en,UTC,,usps,{ups}X,",                                # 13
        f"A5,eve@example.com,Eve,en,UTC,,usps,{warn_number},",                        # 14
        "B8,b8@example.com,Bad,en,UTC,,,,,,surplus",                                  # 15
        "   ,  ,",                                                                    # 16
        f"A6,fay@example.com,,,,,,,{'received'}",                                     # 17
    ]
    path = tmp_path / "orders.csv"
    # A BOM, as spreadsheet programs write it; line 3's quoted name spans two physical lines.
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode("utf-8") + b"\n")
    config = write_config(tmp_path)

    code, out, err = run(capsys, "orders", "import", str(path), "--config", str(config))

    assert code == 1
    got = reports(err, path)
    expected = {
        7: "email", 8: "promised", 9: "tz", 10: "locale", 11: "carrier", 12: "tracking",
        13: "tracking", 15: "cells",
    }
    assert {n for n, text in got.items() if not text.startswith("warning:")} == set(expected)
    for line, word in expected.items():
        assert word in got[line], (line, got[line])
    assert "'not-an-email' is not an e-mail address" in got[7]
    assert "'2026-02-30'" in got[8]
    assert "'Mars/Olympus'" in got[9]
    assert "'xx_QQ'" in got[10]
    assert "unknown carrier 'acme'" in got[11]
    assert "not a plausible ups" in got[12] and "not a plausible usps" in got[13]
    assert got[15] == "11 cells but the header has 9 columns"
    assert got[14].startswith("warning: tracking:") and "check digit" in got[14]
    assert warn_number in got[14]

    counts = summary_counts(out)
    assert counts == {"rows": 13, "imported": 5, "new": 5, "updated": 0, "unchanged": 0,
                      "shipments added": 4, "rejected": 8, "warnings": 1}
    db = tmp_path / "notifier.sqlite3"
    assert sorted(r[0] for r in query(db, "SELECT id FROM orders")) == [
        "A1", "A2", "A3", "A5", "A6"]
    assert {r[0]: (r[1], r[2]) for r in query(
        db, "SELECT order_id, carrier, tracking_number FROM shipments")} == good_numbers
    a2 = query(db, "SELECT name, locale, tz, oms_status FROM orders WHERE id = 'A2'")[0]
    assert a2 == ("Bob Smith", "en_US", "America/Chicago", "processing")
    a6 = query(db, "SELECT email, locale, tz FROM orders WHERE id = 'A6'")[0]
    assert a6 == ("fay@example.com", "en", "UTC")


def test_all_good_rows_exit_0_and_reimport_is_idempotent(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(7)
    rows = [CSV_HEADER]
    for i in range(40):
        carrier = ("ups", "fedex", "dhl", "usps")[i % 4]
        status = ("", "processing", "backordered")[i % 3]
        rows.append(f"R{i},c{i}@example.com,C {i},en,Europe/Berlin,2026-12-0{1 + i % 9},"
                    f"{carrier},{numbers.generate(carrier, rng)},{status}")
        if i % 5 == 0:  # a second parcel of the same order, on its own row
            rows.append(f"R{i},c{i}@example.com,C {i},en,Europe/Berlin,2026-12-0{1 + i % 9},"
                        f"{carrier},{numbers.generate(carrier, rng)},{status}")
    path = tmp_path / "good.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    config = write_config(tmp_path)
    db = tmp_path / "notifier.sqlite3"

    code, out, err = run(capsys, "orders", "import", str(path), "--config", str(config),
                         "--batch-size", "7")
    assert code == 0, err
    assert reports(err, path) == {}
    first = summary_counts(out)
    assert first["rows"] == first["imported"] == 48 and first["rejected"] == 0
    assert first["new"] == 40 and first["shipments added"] == 48
    snapshot = query(db, "SELECT * FROM orders ORDER BY id")
    shipments = query(db, "SELECT * FROM shipments ORDER BY id")
    notifications = query(db, "SELECT count(*) FROM notifications")

    code, out, err = run(capsys, "orders", "import", str(path), "--config", str(config),
                         "--batch-size", "7")
    assert code == 0, err
    again = summary_counts(out)
    assert again["new"] == 0 and again["updated"] == 0 and again["shipments added"] == 0
    assert again["imported"] == 48 and again["unchanged"] >= 40
    assert query(db, "SELECT * FROM orders ORDER BY id") == snapshot  # not even updated_at
    assert query(db, "SELECT * FROM shipments ORDER BY id") == shipments
    assert query(db, "SELECT count(*) FROM notifications") == notifications


# ------------------------------------------------------------------------------ JSON Lines


def test_jsonl_mixed_good_and_bad_lines(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(99)
    fedex, usps, ups = (numbers.generate(c, rng) for c in ("fedex", "usps", "ups"))
    warn_number = failing("fedex", rng)
    lines = [
        json.dumps({"order": 5001, "email": "a@example.com", "locale": "pt-br",          # 1
                    "tz": "America/Sao_Paulo", "carrier": "fedex", "tracking": fedex}),
        "",                                                                              # 2
        '{"order": "J2", "email": "b@example.com", ',                                    # 3
        "[1, 2, 3]",                                                                     # 4
        "42",                                                                            # 5
        json.dumps({"order": "J6", "email": "c@example.com", "tz": "Nowhere/Land"}),     # 6
        "   ",                                                                           # 7
        json.dumps({"order": "J8", "email": "d@example.com", "promised": "2026-11-31"}),  # 8
        json.dumps({"order": "J9", "email": "e@example.com", "carrier": "fedex",         # 9
                    "tracking": warn_number}),
        json.dumps({"order": "J10", "email": "f@example.com", "locale": "klingon"}),     # 10
        json.dumps({"order": "J11", "email": "g@example.com", "carrier": "ups",          # 11
                    "tracking": ups, "shipments": [{"carrier": "usps", "tracking": usps}]}),
        json.dumps({"order": "J12", "email": "h@example", "name": "X"}),                 # 12
        json.dumps({"order": "J13", "email": "i@example.com", "carrier": "royalmail",    # 13
                    "tracking": ups}),
        json.dumps({"order": "J14", "email": "j@example.com", "carrier": "dhl",          # 14
                    "tracking": "DHL-123"}),
    ]
    path = tmp_path / "orders.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode("utf-8"))  # no final newline
    config = write_config(tmp_path)

    code, out, err = run(capsys, "orders", "import", str(path), "--config", str(config))

    assert code == 1
    got = reports(err, path)
    errors = {n: t for n, t in got.items() if not t.startswith("warning:")}
    assert set(errors) == {3, 4, 5, 6, 8, 10, 12, 13, 14}
    assert errors[3].startswith("not valid JSON")
    assert errors[4] == "expected a JSON object, got list"
    assert errors[5] == "expected a JSON object, got int"
    assert errors[6].startswith("tz: 'Nowhere/Land'")
    assert errors[8].startswith("promised: '2026-11-31'")
    assert errors[10].startswith("locale: 'klingon'")
    assert errors[12].startswith("email: 'h@example'")
    assert errors[13].startswith("carrier: unknown carrier 'royalmail'")
    assert errors[14].startswith("tracking: 'DHL-123' is not a plausible dhl")
    assert got[9].startswith("warning: tracking:") and warn_number in got[9]
    assert summary_counts(out)["rejected"] == 9
    db = tmp_path / "notifier.sqlite3"
    assert sorted(r[0] for r in query(db, "SELECT id FROM orders")) == ["5001", "J11", "J9"]
    assert query(db, "SELECT locale, tz FROM orders WHERE id = '5001'") == [
        ("pt_BR", "America/Sao_Paulo")]
    assert sorted(query(db, "SELECT carrier, tracking_number FROM shipments "
                            "WHERE order_id = 'J11'")) == sorted([("ups", ups), ("usps", usps)])


def test_jsonl_detected_by_content_and_reimport(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(3)
    path = tmp_path / "export.txt"  # no telling suffix: sniffed past the leading blank line
    path.write_text("\n" + "\n".join(json.dumps(
        {"order": f"T{i}", "email": f"t{i}@example.com", "carrier": "usps",
         "tracking": numbers.generate("usps", rng), "status": "processing"})
        for i in range(5)) + "\n", encoding="utf-8")
    config = write_config(tmp_path)
    code, out, err = run(capsys, "orders", "import", str(path), "--config", str(config))
    assert code == 0, err
    assert summary_counts(out)["new"] == 5
    code, out, err = run(capsys, "orders", "import", str(path), "--config", str(config))
    assert code == 0
    c = summary_counts(out)
    assert (c["new"], c["updated"], c["unchanged"], c["shipments added"]) == (0, 0, 5, 0)


# ------------------------------------------------------------------------------ malformed files


def test_csv_header_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    missing = tmp_path / "missing.csv"
    missing.write_text("id,mail\n1,a@example.com\n2,b@example.com\n", encoding="utf-8")
    code, out, err = run(capsys, "orders", "import", str(missing), "--config", str(config))
    assert code == 1
    got = reports(err, missing)
    assert list(got) == [1] and "'order'" in got[1] and "'email'" in got[1]

    extra = tmp_path / "extra.csv"
    extra.write_text("order,email,colour\n1,a@example.com,red\n", encoding="utf-8")
    code, out, err = run(capsys, "orders", "import", str(extra), "--config", str(config))
    assert code == 0  # an unknown column is a warning; the row is imported
    assert reports(err, extra) == {1: "warning: unknown column(s) 'colour' ignored"}

    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    code, out, err = run(capsys, "orders", "import", str(empty), "--config", str(config))
    assert code == 0 and summary_counts(out)["rows"] == 0

    code, out, err = run(capsys, "orders", "import", str(tmp_path / "absent.csv"),
                         "--config", str(config))
    assert code == 1 and any("no such file" in line for line in err)


def test_non_utf8_bytes_reject_only_their_row(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"order,email,name\n1,a@example.com,Ann\n2,b@example.com,Ren\xe9e\n"
                     b"3,c@example.com,Cy\n")
    config = write_config(tmp_path)
    code, _out, err = run(capsys, "orders", "import", str(path), "--config", str(config))
    assert code == 1
    assert reports(err, path) == {3: "not valid UTF-8 (save the file as UTF-8)"}
    db = tmp_path / "notifier.sqlite3"
    assert sorted(r[0] for r in query(db, "SELECT id FROM orders")) == ["1", "3"]

    jsonl = tmp_path / "latin1.jsonl"
    jsonl.write_bytes(b'{"order": "9", "email": "z@example.com", "name": "Ren\xe9e"}\n')
    code, _, err = run(capsys, "orders", "import", str(jsonl), "--config", str(config))
    assert code == 1 and reports(err, jsonl) == {1: "not valid UTF-8 (save the file as UTF-8)"}


# ------------------------------------------------------------------------------ batches, events


async def count_notifications(store: SqliteStore) -> int:
    async with store.db.execute("SELECT count(*) FROM notifications") as cur:
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


class RecordingStore(SqliteStore):
    """The real store, noting each batch it is given."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.batches: list[int] = []

    async def upsert_orders(self, orders: Sequence[OrderInput], *, now: datetime
                            ) -> UpsertSummary:
        self.batches.append(len(orders))
        return await super().upsert_orders(orders, now=now)


async def test_rows_are_written_in_batches_with_events_once(tmp_path: Path) -> None:
    rng = random.Random(1)
    path = tmp_path / "o.csv"
    body = [CSV_HEADER] + [
        f"O{i},o{i}@example.com,,,,,dhl,{numbers.generate('dhl', rng)},processing"
        for i in range(23)]
    body.insert(5, "bad,nope,,,,,,,")
    path.write_text("\n".join(body) + "\n", encoding="utf-8")
    seen: list[DomainEvent] = []

    def planner(events: Sequence[DomainEvent], orders: PlanInputs
                ) -> list[NewNotification]:
        seen.extend(events)
        return [NewNotification(dedup_key=f"{e.order_id}:{len(seen)}:{i}", order_id=e.order_id,
                                trigger="test", channel="email",
                                recipient=orders[e.order_id].customer.email, created_at=NOW,
                                next_attempt_at=NOW + timedelta(minutes=1))
                for i, e in enumerate(events)]

    problems: list[str] = []
    progress: list[int] = []
    store = RecordingStore(tmp_path / "s.sqlite3")
    store.planner = planner
    async with store:
        summary = await import_file(path, store, now=lambda: NOW, report=problems.append,
                                    progress=progress.append, batch_size=5)
        assert store.batches == [5, 5, 5, 5, 3]
        assert summary.imported == summary.created == 23 and summary.rejected == 1
        assert problems == [f"{path}:6: email: 'nope' is not an e-mail address"]
        assert progress == sorted(progress) and progress[-1] == len(path.read_text())
        assert len(seen) == 23  # one order_status_changed per new order
        assert await count_notifications(store) == 23

        again = await import_file(path, store, now=lambda: NOW + timedelta(hours=1),
                                  report=problems.append, batch_size=5)
        assert (again.created, again.updated, again.unchanged, again.shipments_added) == (
            0, 0, 23, 0)
        assert len(seen) == 23  # nothing re-evaluated, so no new notifications
        assert await count_notifications(store) == 23


async def test_same_order_on_rows_in_different_batches_keeps_every_parcel(
        tmp_path: Path) -> None:
    rng = random.Random(2)
    parcels = [numbers.generate("ups", rng) for _ in range(3)]
    path = tmp_path / "o.csv"
    path.write_text("\n".join([CSV_HEADER] + [
        f"M1,m@example.com,Mia,,,,ups,{n}," for n in parcels]) + "\n", encoding="utf-8")
    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        summary = await import_file(path, store, now=lambda: NOW, report=print, batch_size=2)
        assert summary.shipments_added == 3
        order = await store.get_order("M1")
        assert sorted(s.tracking_number for s in order.shipments) == sorted(parcels)
