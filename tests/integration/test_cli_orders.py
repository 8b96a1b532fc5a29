"""The ``notifier`` command line through ``cli.main`` on a temporary config and SQLite file:
``--help`` everywhere, ``orders add`` (upsert, idempotent, carrier detection, ambiguity),
``orders show`` (derived status, stable JSON shape), ``orders status``."""

from __future__ import annotations

import argparse
import json
import logging
import random
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from carriers import detect, numbers
from notifier import cli
from notifier.timefmt import to_db
from tests.conftest import config_text

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # cli.main points the root logger at the stderr of the moment (capsys's, closed later).
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(config_text(extra="[api]\nenabled = false\n"),
                    encoding="utf-8")
    return path


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str], config: Path) -> None:
        self.capsys, self.config = capsys, config
        self.db = config.parent / "notifier.sqlite3"

    def __call__(self, *args: str) -> tuple[int, str, str]:
        code = cli.main([*args, "--config", str(self.config)])
        out, err = self.capsys.readouterr()
        return code, out, err

    def sql(self, statement: str, *params: object) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(self.db)) as con, con:
            return con.execute(statement, params).fetchall()


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], config: Path) -> Cli:
    return Cli(capsys, config)


def only(carrier: str, rng: random.Random) -> str:
    """A valid number that only ``carrier``'s formats match."""
    while True:
        n = numbers.generate(carrier, rng)
        if {c.carrier for c in detect.detect(n)} == {carrier}:
            return n


# ------------------------------------------------------------------------------ help


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
              ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(cli.build_parser()))


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    top = [path[0] for path, _ in COMMANDS if len(path) == 1]
    assert {"check-config", "run", "orders"} <= set(top)
    for name in top:
        assert f"\n    {name}" in text, name


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...],
                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main([*path, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: notifier {' '.join(path)}")
    parser = dict(COMMANDS)[path]
    if not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
        # A leaf: takes --config after its name and has a handler.
        assert "--config PATH" in text
        assert " ".join(path) in cli._COMMANDS or parser.get_default("handler") is not None


def test_orders_subcommands_listed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["orders", "--help"])
    text = capsys.readouterr().out
    for action in ("add", "import", "show", "status"):
        assert f"\n    {action}" in text


# ------------------------------------------------------------------------------ orders add


def test_add_is_an_idempotent_upsert(run: Cli) -> None:
    rng = random.Random(1)
    ups = numbers.generate("ups", rng)
    args = ("orders", "add", "--order", "1001", "--email", "ann@example.com", "--name", "Ann",
            "--locale", "fr", "--tz", "Europe/Paris", "--promised", "2026-11-10",
            "--carrier", "ups", "--tracking", ups)
    code, out, err = run(*args)
    assert code == 0, err
    assert out.strip() == "order 1001: created, 1 shipment(s) added"
    row = run.sql("SELECT * FROM orders")
    code, out, _ = run(*args)
    assert code == 0
    assert out.strip() == "order 1001: unchanged, 0 shipment(s) added"
    assert run.sql("SELECT * FROM orders") == row
    assert run.sql("SELECT count(*) FROM shipments") == [(1,)]

    # Upsert: a changed field updates; left-out fields keep their values; shipments add up.
    fedex = numbers.generate("fedex", rng)
    code, out, _ = run("orders", "add", "--order", "1001", "--email", "ann@example.org",
                       "--carrier", "fedex", "--tracking", fedex)
    assert out.strip() == "order 1001: updated, 1 shipment(s) added"
    assert run.sql("SELECT email, name, locale, tz, promised_date FROM orders") == [
        ("ann@example.org", "Ann", "fr", "Europe/Paris", "2026-11-10")]
    assert sorted(run.sql("SELECT carrier, tracking_number FROM shipments")) == sorted(
        [("ups", ups), ("fedex", fedex)])


def test_add_detects_carriers_when_omitted(run: Cli) -> None:
    rng = random.Random(2)
    a, b = only("dhl", rng), only("usps", rng)
    code, out, err = run("orders", "add", "--order", "D1", "--email", "d@example.com",
                         "--tracking", a, "--tracking", b.lower())
    assert code == 0, err
    assert "2 shipment(s) added" in out
    assert sorted(run.sql("SELECT carrier, tracking_number FROM shipments")) == sorted(
        [("dhl", a), ("usps", b)])


def test_add_ambiguous_number_is_an_error(run: Cli) -> None:
    rng = random.Random(3)
    while True:  # 20 digits from 00: DHL Paket (no check digit) and USPS 20-digit
        n = "00" + "".join(rng.choices("0123456789", k=18))
        if len({c.carrier for c in detect.detect(n) if c.check_digit_ok is not False}) > 1:
            break
    code, out, err = run("orders", "add", "--order", "X1", "--email", "x@example.com",
                         "--tracking", n)
    assert code == 1 and out == ""
    # cli.py passes --tracking as "shipments", so the message reads "shipments[0].carrier: ...".
    assert err.startswith("orders add: ") and f"carrier: '{n}' could be " in err
    assert "give the carrier explicitly" in err
    assert not run.db.exists()  # rejected before the database is opened
    code, out, err = run("orders", "add", "--order", "X1", "--email", "x@example.com",
                         "--carrier", "usps", "--tracking", n)
    assert code == 0, err
    assert run.sql("SELECT carrier FROM shipments") == [("usps",)]


def test_add_rejects_bad_input_with_one_line(run: Cli) -> None:
    cases = [
        (("--email", "nope"), "orders add: email: 'nope' is not an e-mail address"),
        (("--email", "a@example.com", "--tz", "Mars/Base"), "orders add: tz: 'Mars/Base'"),
        (("--email", "a@example.com", "--promised", "soon"), "orders add: promised: 'soon'"),
        (("--email", "a@example.com", "--carrier", "ups", "--tracking", "12"),
         "tracking: '12' is not a plausible ups"),
    ]
    for extra, text in cases:
        code, out, err = run("orders", "add", "--order", "E1", *extra)
        assert code == 1 and out == ""
        assert err.startswith("orders add: ") and text in err, err
        assert len(err.strip().splitlines()) == 1
    code, _, err = run("orders", "add", "--order", "E1", "--email", "a@example.com",
                       "--carrier", "ups", "--tracking", "1", "--tracking", "2")
    assert code == 2 and "one --carrier per --tracking" in err
    assert not run.db.exists()  # rejected before the database is even opened


def test_add_warns_on_failed_check_digit(run: Cli) -> None:
    rng = random.Random(4)
    while True:
        bad = numbers.corrupt(numbers.generate("fedex", rng), rng)
        if detect.plausible("fedex", bad) and detect.check_digit_ok("fedex", bad) is False:
            break
    code, out, err = run("orders", "add", "--order", "W1", "--email", "w@example.com",
                         "--carrier", "fedex", "--tracking", bad)
    assert code == 0
    assert err.startswith("orders add: warning: ")
    assert f"tracking: '{bad}' fails the fedex check digit" in err
    assert "1 shipment(s) added" in out


# ------------------------------------------------------------------------------ show, status

TOP_KEYS = {"order", "status", "oms_status", "expected_ship_date", "promised_date", "customer",
            "shipments", "anomalies", "disputes", "notifications"}
SHIPMENT_KEYS = {"id", "carrier", "tracking_number", "status", "status_detail",
                 "exception_reason", "first_edd", "current_edd", "delivered_at", "signed_by",
                 "last_event_at", "next_poll_at", "last_success_at", "polls", "events"}
EVENT_KEYS = {"at", "local_time", "status", "code", "description", "location"}


def _two_parcels(run: Cli) -> tuple[str, str]:
    rng = random.Random(5)
    a, b = numbers.generate("ups", rng), numbers.generate("usps", rng)
    code, _, err = run("orders", "add", "--order", "S1", "--email", "s@example.com",
                       "--name", "Sam", "--locale", "de_AT", "--tz", "Europe/Vienna",
                       "--promised", "2026-11-12", "--carrier", "ups", "--tracking", a,
                       "--carrier", "usps", "--tracking", b)
    assert code == 0, err
    return a, b


def show(run: Cli, order: str = "S1") -> dict[str, Any]:
    code, out, err = run("orders", "show", order, "--json")
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


def test_show_json_shape_and_derived_status(run: Cli) -> None:
    a, b = _two_parcels(run)
    data = show(run)
    assert set(data) == TOP_KEYS
    assert data["order"] == "S1" and data["promised_date"] == "2026-11-12"
    assert data["customer"] == {"email": "s@example.com", "name": "Sam", "locale": "de_AT",
                                "tz": "Europe/Vienna", "channels": []}
    assert [s["tracking_number"] for s in data["shipments"]] == [a, b]
    for s in data["shipments"]:
        assert set(s) == SHIPMENT_KEYS
        assert s["status"] == "pending" and s["events"] == []
    assert data["status"] == "pending"  # the least advanced shipment
    assert data["anomalies"] == data["notifications"] == data["disputes"] == []

    # One parcel delivered, with events; the other in transit: partially delivered.
    ids = dict(run.sql("SELECT tracking_number, id FROM shipments"))
    run.sql("UPDATE shipments SET status = 'delivered', delivered_at = ?, signed_by = 'SAM' "
            "WHERE id = ?", to_db(T0), ids[a])
    run.sql("UPDATE shipments SET status = 'in_transit' WHERE id = ?", ids[b])
    for i, (status, raw) in enumerate((("in_transit", "I1"), ("delivered", "D1"))):
        run.sql("INSERT INTO events (shipment_id, identity, at, status, code, description, "
                "city, country, seen_at) VALUES (?, ?, ?, ?, ?, ?, 'Wien', 'AT', ?)",
                ids[a], f"e{i}", to_db(T0.replace(hour=8 + i)), status, raw, f"step {i}",
                to_db(T0))
    run.sql("INSERT INTO anomalies (kind, order_id, shipment_id, subject, detail, opened_at, "
            "last_seen_at) VALUES ('stale_in_transit', 'S1', ?, ?, 'no scan for 4 days', ?, ?)",
            ids[b], f"shipment:{ids[b]}", to_db(T0), to_db(T0))
    data = show(run)
    assert data["status"] == "partially_delivered"
    first = data["shipments"][0]
    assert first["delivered_at"] == "2026-11-02T09:00:00Z" and first["signed_by"] == "SAM"
    assert [e["code"] for e in first["events"]] == ["D1", "I1"]  # newest first
    assert set(first["events"][0]) == EVENT_KEYS
    assert first["events"][0]["location"]["city"] == "Wien"
    assert [(x["kind"], x["resolved_at"]) for x in data["anomalies"]] == [
        ("stale_in_transit", None)]

    code, out, _ = run("orders", "show", "S1")
    assert code == 0
    assert out.startswith("Order S1: partially_delivered  (OMS: received)")
    assert f"shipment   ups {a}: delivered" in out and "anomaly    stale_in_transit" in out

    run.sql("UPDATE shipments SET status = 'delivered'")
    assert show(run)["status"] == "delivered"


def test_status_changes_and_cancelled_wins(run: Cli) -> None:
    code, _, err = run("orders", "add", "--order", "P1", "--email", "p@example.com")
    assert code == 0, err
    assert show(run, "P1")["status"] == "received"
    code, out, err = run("orders", "status", "P1", "--set", "backordered",
                         "--expected-ship", "2026-11-20")
    assert code == 0, err
    assert out.strip() == ("order P1: OMS status backordered; shown to the customer as "
                           "backordered")
    data = show(run, "P1")
    assert (data["status"], data["expected_ship_date"]) == ("backordered", "2026-11-20")

    _two_parcels(run)
    run.sql("UPDATE shipments SET status = 'in_transit'")
    assert show(run)["status"] == "in_transit"  # shipments speak once they exist
    code, out, _ = run("orders", "status", "S1", "--set", "cancelled")
    assert code == 0 and out.strip().endswith("shown to the customer as cancelled")
    assert show(run)["status"] == "cancelled"


def test_unknown_order_is_one_clear_line(run: Cli) -> None:
    code, out, err = run("orders", "status", "NOPE", "--set", "processing")
    assert (code, out) == (1, "")
    assert err.strip().splitlines()[-1] == "orders status: order 'NOPE' not found"
    code, out, err = run("orders", "show", "NOPE")
    assert (code, out) == (1, "")
    assert err.strip().splitlines()[-1] == "orders show: order 'NOPE' not found"
    code, _, err = run("orders", "status", "NOPE", "--set", "processing",
                       "--expected-ship", "tomorrow")
    assert code == 1 and "expected_ship: 'tomorrow'" in err


def test_status_rejects_unknown_value(run: Cli) -> None:
    with pytest.raises(SystemExit) as info:
        run("orders", "status", "P1", "--set", "shipped")
    assert info.value.code == 2
