"""The carrier commands end to end: ``detect`` and ``parse`` in-process without any configuration
file, ``track`` against a real carrier sandbox on 127.0.0.1 (built through
``notifier.carriers_factory`` from a configuration pointing at it), and ``sandbox`` as a
subprocess stopped by SIGTERM.

Expected tracking statuses come from the sandbox's own timeline (``POST /_sandbox/shipments``
answers with what each event means); the exact ``parse`` outputs were written by hand from the
fixture files and reference/carriers.md.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from carriers import detect, numbers
from carriers.sandbox import SandboxThread
from notifier import config as config_mod
from notifier.carriers_factory import build_carriers, open_carriers
from notifier.cli import main

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
CARRIERS = ("ups", "fedex", "dhl", "usps")
T0 = datetime(2025, 6, 9, 14, 0, tzinfo=UTC)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], list[str]]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


@pytest.fixture(autouse=True)
def _no_config_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # detect/parse must work where no config.toml exists (the repo root has one).
    monkeypatch.chdir(tmp_path)


# ------------------------------------------------------------------------------------- detect


def test_detect_json_for_generated_numbers_of_every_carrier(
        capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(7)
    given = [numbers.generate(c, rng) for c in CARRIERS for _ in range(5)]
    # Whitespace inside a number is ignored (labels print numbers in groups).
    spaced = [" ".join(re.findall(".{1,4}", n)) for n in given]
    code, out, err = run(capsys, "detect", "--json", *spaced)
    assert code == 0 and not err
    rows = [json.loads(line) for line in out]
    assert len(rows) == len(given)
    for row, number, carrier in zip(rows, given, [c for c in CARRIERS for _ in range(5)],
                                    strict=True):
        assert set(row) == {"number", "carriers", "formats", "valid"}
        assert row["number"] == detect.normalise(number)
        assert carrier in row["carriers"] and row["valid"] is True
        assert row["formats"] and all(detect.carrier_of(f) in row["carriers"]
                                      for f in row["formats"])
        # carriers keep the order of their best format
        firsts = list(dict.fromkeys(detect.carrier_of(f) for f in row["formats"]))
        assert row["carriers"] == firsts


def test_detect_exit_1_when_a_number_matches_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "detect", "--json", "1Z999AA10123456784", "HELLO-WORLD")
    assert code == 1
    good, bad = (json.loads(line) for line in out)
    assert good == {"number": "1Z999AA10123456784", "carriers": ["ups"], "formats": ["ups_1z"],
                    "valid": True}
    assert bad == {"number": "HELLO-WORLD", "carriers": [], "formats": [], "valid": False}
    code, out, _ = run(capsys, "detect", "HELLO-WORLD")
    assert code == 1 and out == ["HELLO-WORLD: no carrier matches"]


def test_detect_failed_check_digit_is_a_match_but_not_valid(
        capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(3)
    number = numbers.generate("ups", rng, format="ups_1z")
    broken = numbers.corrupt(number, rng)
    code, out, _ = run(capsys, "detect", "--json", broken)
    row = json.loads(out[0])
    assert code == 0  # it matched a carrier: an explicit UPS number is never rejected
    assert "ups" in row["carriers"] and row["valid"] is False
    code, out, _ = run(capsys, "detect", broken, number)
    assert code == 0 and len(out) == 2
    assert "FAILS" in out[0] and "ups ups_1z (check digit ok)" in out[1]


# -------------------------------------------------------------------------------------- parse

# One fixture per carrier, expected output written from the fixture by hand.
EXPECTED_PARSE: dict[str, tuple[str, dict[str, Any]]] = {
    "ups": ("ups/in_transit.json", {
        "carrier": "ups", "tracking_number": "1ZA123450312345678", "status": "in_transit",
        "status_detail": "Arrived at Facility",
        "estimated_delivery": {"start": "2025-06-12", "end": "2025-06-12"},
        "delivered_at": None, "signed_by": None, "service": "UPS Ground",
        "events": [
            {"at": "2025-06-11T01:34:00Z", "local_time": "2025-06-10T21:34:00-04:00",
             "status": "in_transit", "code": "005", "description": "Arrived at Facility",
             "location": {"city": "LOUISVILLE", "state": "KY", "postal_code": None,
                          "country": "US"}},
            {"at": "2025-06-09T19:16:41Z", "local_time": "2025-06-09T15:16:41-04:00",
             "status": "info_received", "code": "003",
             "description": "Shipper created a label, UPS has not received the package yet.",
             "location": {"city": None, "state": None, "postal_code": None, "country": "US"}},
        ]}),
    "fedex": ("fedex/no_offset_running_late.json", {
        "carrier": "fedex", "tracking_number": "400123456785", "status": "in_transit",
        "status_detail": "At FedEx destination facility (Running Late)",
        "estimated_delivery": {"start": "2024-08-16", "end": "2024-08-16"},
        "delivered_at": None, "signed_by": None, "service": "FedEx Ground",
        "events": [
            # No offset in the scan: Memphis, TN resolves to America/Chicago (CDT, -05:00).
            {"at": "2024-08-15T05:00:00Z", "local_time": "2024-08-15T00:00:00-05:00",
             "status": "in_transit", "code": "FD",
             "description": "At FedEx destination facility",
             "location": {"city": "MEMPHIS", "state": "TN", "postal_code": "38118",
                          "country": "US"}},
            # No offset and no location: taken as UTC.
            {"at": "2024-08-14T18:30:00Z", "local_time": "2024-08-14T18:30:00+00:00",
             "status": "info_received", "code": "OC",
             "description": "Shipment information sent to FedEx",
             "location": {"city": None, "state": None, "postal_code": None, "country": None}},
        ]}),
    "dhl": ("dhl/label_created_status_only.json", {
        "carrier": "dhl", "tracking_number": "JVGL0599876543", "status": "info_received",
        "status_detail": "Label created, awaiting shipment", "estimated_delivery": None,
        "delivered_at": None, "signed_by": None, "service": "express",
        "events": [
            {"at": "2025-07-01T08:00:00Z", "local_time": None, "status": "info_received",
             "code": "unknown", "description": "Label created, awaiting shipment",
             "location": {"city": None, "state": None, "postal_code": None, "country": None}},
        ]}),
    "usps": ("usps/v3_out_for_delivery.json", {
        "carrier": "usps", "tracking_number": "9400191234567812345679",
        "status": "out_for_delivery", "status_detail": "Out for Delivery",
        "estimated_delivery": {"start": "2025-06-12", "end": "2025-06-12"},
        "delivered_at": None, "signed_by": None, "service": "USPS Ground Advantage",
        "events": [
            {"at": "2025-06-12T13:10:44Z", "local_time": "2025-06-12T07:10:00-06:00",
             "status": "out_for_delivery", "code": "OF", "description": "Out for Delivery",
             "location": {"city": "DENVER", "state": "CO", "postal_code": "80202",
                          "country": None}},
            {"at": "2025-06-12T11:58:12Z", "local_time": "2025-06-12T05:58:00-06:00",
             "status": "in_transit", "code": "07", "description": "Arrived at Post Office",
             "location": {"city": "DENVER", "state": "CO", "postal_code": "80202",
                          "country": None}},
            {"at": "2025-06-10T15:10:31Z", "local_time": "2025-06-10T11:10:00-04:00",
             "status": "in_transit", "code": "03", "description": "USPS in possession of item",
             "location": {"city": "ATLANTA", "state": "GA", "postal_code": "30301",
                          "country": None}},
        ]}),
}


@pytest.mark.parametrize("carrier", CARRIERS)
def test_parse_exact_output(capsys: pytest.CaptureFixture[str], carrier: str) -> None:
    name, expected = EXPECTED_PARSE[carrier]
    code, out, err = run(capsys, "parse", "--carrier", carrier, str(FIXTURES / name),
                         "--now", "2025-06-12T12:00:00Z")
    assert (code, err) == (0, [])
    assert [json.loads(line) for line in out] == [expected]
    # Same keys in the same order on every line: the output is meant for jq and diff.
    assert list(json.loads(out[0])) == list(expected)


def test_parse_every_number_of_a_batch_one_line_each_problems_on_stderr(
        capsys: pytest.CaptureFixture[str]) -> None:
    path = FIXTURES / "fedex" / "mixed_batch.json"
    code, out, err = run(capsys, "parse", "--carrier", "fedex", str(path))
    assert code == 0
    body = json.loads(path.read_text(encoding="utf-8"))
    listed = [e["trackingNumber"] for e in body["output"]["completeTrackResults"]]
    printed = [json.loads(line)["tracking_number"] for line in out]
    # every number appears once, on stdout as a result or on stderr as a carrier problem
    problem_numbers = [line.split(": ")[1] for line in err]
    assert sorted(printed + problem_numbers) == sorted(set(listed))
    assert len(err) == 1 and "FedEx reported a problem" in err[0]

    code, out, err = run(capsys, "parse", "--carrier", "fedex", str(path), "--number",
                         printed[2])
    assert (code, err) == (0, []) and [json.loads(x)["tracking_number"] for x in out] == [
        printed[2]]
    code, out, err = run(capsys, "parse", "--carrier", "fedex", str(path), "--number",
                         "999999999999")
    assert code == 1 and out == [] and len(err) == 1 and "999999999999" in err[0]


def test_parse_dhl_empty_answer_names_the_number_given(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text('{"shipments": []}', encoding="utf-8")
    code, out, _ = run(capsys, "parse", "--carrier", "dhl", str(path), "--number", "7777777770")
    assert code == 0
    (row,) = (json.loads(line) for line in out)
    assert (row["tracking_number"], row["status"], row["events"]) == ("7777777770", "pending", [])


def test_parse_now_defaults_to_the_files_mtime(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    # UPS "loaded on delivery vehicle" (2025-06-13 07:10 -05:00, Dallas) is out for delivery
    # only on that local day: the reading depends on when the response was received.
    path = tmp_path / "saved.json"
    shutil.copy(FIXTURES / "ups" / "loaded_on_vehicle.json", path)

    def status_with_mtime(when: datetime) -> str:
        os.utime(path, (when.timestamp(), when.timestamp()))
        code, out, _ = run(capsys, "parse", "--carrier", "ups", str(path))
        assert code == 0
        status: str = json.loads(out[0])["status"]
        return status

    assert status_with_mtime(datetime(2025, 6, 13, 15, 0, tzinfo=UTC)) == "out_for_delivery"
    assert status_with_mtime(datetime(2025, 6, 14, 15, 0, tzinfo=UTC)) == "in_transit"
    code, out, _ = run(capsys, "parse", "--carrier", "ups", str(path),
                       "--now", "2025-06-13T12:00:00-05:00")
    assert code == 0 and json.loads(out[0])["status"] == "out_for_delivery"


FOREIGN = {"ups": "fedex/delivered.json", "fedex": "usps/v3_delivered_signed.json",
           "dhl": "ups/delivered.json", "usps": "dhl/express_out_for_delivery.json"}


@pytest.mark.parametrize("carrier", CARRIERS)
def test_parse_another_carriers_file_is_one_line_exit_1(
        capsys: pytest.CaptureFixture[str], carrier: str) -> None:
    path = FIXTURES / FOREIGN[carrier]
    code, out, err = run(capsys, "parse", "--carrier", carrier, str(path))
    assert code == 1 and out == [] and len(err) == 1
    label = {"ups": "UPS", "fedex": "FedEx", "dhl": "DHL", "usps": "USPS"}[carrier]
    assert str(path) in err[0] and f"not a {label}" in err[0]


@pytest.mark.parametrize(("content", "problem"), [
    (b"<html><body>502 Bad Gateway</body></html>", "not JSON"),
    (b'{"trackResponse": ', "not JSON"),
    (b"\xff\xfe\x00garbage", "not JSON"),
    (None, "cannot read"),
])
def test_parse_unreadable_or_not_json_is_one_line_exit_1(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes | None,
        problem: str) -> None:
    path = tmp_path / "body.json"
    if content is not None:
        path.write_bytes(content)
    code, out, err = run(capsys, "parse", "--carrier", "ups", str(path))
    assert code == 1 and out == [] and len(err) == 1
    assert str(path) in err[0] and problem in err[0]


# ------------------------------------------------------------------------------ track, factory


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def now(self) -> datetime:
        return self.t


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[SandboxThread, httpx.Client, Clock]]:
    clock = Clock()
    with SandboxThread(now=clock.now) as thread, \
            httpx.Client(base_url=thread.base_url, timeout=5.0) as control:
        yield thread, control, clock


@pytest.fixture
def world(sandbox: tuple[SandboxThread, httpx.Client, Clock], tmp_path: Path,
          ) -> Iterator[tuple[httpx.Client, Path]]:
    """A fresh sandbox state and a configuration whose carriers all point at it (with the
    clock simulated at T0 and frozen, so the CLI and the sandbox agree on "now")."""
    thread, control, clock = sandbox
    thread.state.reset(everything=True)
    clock.t = T0
    yield control, write_config(tmp_path, thread.base_url)


def write_config(folder: Path, base_url: str, *, extra: dict[str, str] | None = None) -> Path:
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    text = text.replace("http://127.0.0.1:8787", base_url)
    text = re.sub(r"(?m)^requests_per_second = .*$", "requests_per_second = 200", text)
    text = re.sub(r'(?m)^path = "notifier.sqlite3".*$', f'path = "{folder / "db.sqlite3"}"',
                  text)
    text = re.sub(r'(?m)^mode = "system".*$',
                  f'mode = "simulated"\nstart = "{T0.isoformat()}"\nspeed = 0', text)
    for section, lines in (extra or {}).items():
        text = text.replace(f"[{section}]\n", f"[{section}]\n{lines}\n")
    path = folder / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def register(control: httpx.Client, carrier: str, number: str, scenario: str,
             start: datetime) -> dict[str, Any]:
    resp = control.post("/_sandbox/shipments", json={
        "number": number, "carrier": carrier, "scenario": scenario, "start": start.isoformat()})
    assert resp.status_code == 201, resp.text
    timeline: dict[str, Any] = resp.json()
    return timeline


def stats(control: httpx.Client, carrier: str) -> dict[str, int]:
    counts: dict[str, int] = control.get("/_sandbox/stats").json()["carriers"][carrier]
    return counts


def short_number(carrier: str, rng: random.Random) -> str:
    while len(number := numbers.generate(carrier, rng)) > 34:  # carrier APIs take <= 34
        pass
    return number


@pytest.mark.parametrize("carrier", CARRIERS)
def test_track_json_matches_the_sandbox_timeline(
        capsys: pytest.CaptureFixture[str], world: tuple[httpx.Client, Path],
        carrier: str) -> None:
    control, config = world
    rng = random.Random(carrier)
    wanted = {short_number(carrier, rng): s for s in ("normal", "delivered_already")}
    timelines = {n: register(control, carrier, n, s, T0 - timedelta(days=2))
                 for n, s in wanted.items()}
    code, out, err = run(capsys, "track", "--config", str(config), "--carrier", carrier,
                         "--json", *wanted)
    assert (code, err) == (0, [])
    rows = [json.loads(line) for line in out]
    assert [r["tracking_number"] for r in rows] == [detect.normalise(n) for n in wanted]
    for row in rows:
        timeline = timelines[row["tracking_number"]]
        visible = [e for e in timeline["events"] if e["visible"]]
        assert row["status"] == timeline["current_status"]
        assert len(row["events"]) == len(visible)
        expected = sorted((datetime.fromisoformat(e["at"]) for e in visible), reverse=True)
        for event, at in zip(row["events"], expected, strict=True):
            # An offset-less time with no known zone (DHL without a location) is taken as
            # UTC and shown without a local time; only those may differ from the timeline.
            if event["local_time"] is not None:
                assert datetime.fromisoformat(event["at"].replace("Z", "+00:00")) == at
    assert stats(control, carrier)["numbers"] == len(wanted)


def test_track_text_summary(capsys: pytest.CaptureFixture[str],
                            world: tuple[httpx.Client, Path]) -> None:
    control, config = world
    number = "1Z999AA10123456784"
    timeline = register(control, "ups", number, "delivered_already", T0 - timedelta(days=4))
    code, out, _ = run(capsys, "track", "--config", str(config), "--carrier", "ups", number)
    assert code == 0
    assert out[0].startswith(f"{number} (UPS): {timeline['current_status']}")
    assert "delivered 20" in out[1]
    assert len(out) == 2 + sum(e["visible"] for e in timeline["events"])


@pytest.mark.parametrize(("carrier", "count", "calls"), [("fedex", 31, 2), ("usps", 36, 2),
                                                         ("ups", 3, 3)])
def test_track_batches_by_the_adapters_max_batch(
        capsys: pytest.CaptureFixture[str], world: tuple[httpx.Client, Path], carrier: str,
        count: int, calls: int) -> None:
    control, config = world
    rng = random.Random(count)
    wanted = list(dict.fromkeys(short_number(carrier, rng) for _ in range(count)))
    assert len(wanted) == count
    code, out, _ = run(capsys, "track", "--config", str(config), "--carrier", carrier,
                       "--json", *wanted)
    assert code == 0 and len(out) == count
    counts = stats(control, carrier)
    assert (counts["requests"], counts["numbers"]) == (calls, count)


def test_track_failures_one_line_per_number_exit_1(
        capsys: pytest.CaptureFixture[str], world: tuple[httpx.Client, Path]) -> None:
    control, config = world
    ups_numbers = ["1Z999AA10123456784", "1ZA123450312345678"]
    assert control.post("/_sandbox/faults", json={"carrier": "ups", "kind": "5xx",
                                                  "status": 503, "count": 1}).status_code == 201
    code, out, err = run(capsys, "track", "--config", str(config), "--carrier", "ups",
                         "--json", *ups_numbers)
    # one call failed (the other number went through)
    assert code == 1 and len(out) == 1 and len(err) == 1
    assert "UPS unavailable" in err[0] and "503" in err[0]
    failed = err[0].split(": ")[1]
    assert {failed, json.loads(out[0])["tracking_number"]} == set(ups_numbers)


def test_track_bad_credentials(capsys: pytest.CaptureFixture[str],
                               sandbox: tuple[SandboxThread, httpx.Client, Clock],
                               tmp_path: Path) -> None:
    config = write_config(tmp_path, sandbox[0].base_url)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('api_key = "sandbox-key"', 'api_key = "wrong-key"'),
                      encoding="utf-8")
    code, out, err = run(capsys, "track", "--config", str(config), "--carrier", "dhl",
                         "7777777770")
    assert code == 1 and out == [] and len(err) == 1
    assert "7777777770" in err[0] and "credentials refused" in err[0]


def test_track_needs_a_configuration(capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    code, _, err = run(capsys, "track", "--config", str(tmp_path / "nope.toml"),
                       "--carrier", "ups", "1Z999AA10123456784")
    assert code == 78 and err == [f"{tmp_path / 'nope.toml'}: file not found"]


async def test_factory_builds_enabled_carriers_with_their_own_clients(
        sandbox: tuple[SandboxThread, httpx.Client, Clock], tmp_path: Path) -> None:
    thread, _, clock = sandbox
    path = write_config(tmp_path, thread.base_url, extra={
        "carriers.usps": "enabled = false", "carriers.ups": 'timeout = "7s"\nconcurrency = 2'})
    settings = config_mod.load(path)
    built = build_carriers(settings, clock.now)
    try:
        assert sorted(built) == ["dhl", "fedex", "ups"]
        assert all(type(a).name == n for n, a in built.items())
        assert len({id(c) for c in built.clients.values()}) == 3
        assert built.clients["ups"].timeout.read == 7.0
        assert built.clients["ups"].timeout.connect == 5.0
        # the secrets were revealed: the sandbox accepts the configured credentials
        for name, adapter in built.items():
            batch = await adapter.track(["1Z999AA10123456784" if name == "ups" else
                                         {"fedex": "123456789012", "dhl": "7777777770"}[name]])
            assert len(batch.results) == 1 and not batch.problems
    finally:
        await built.aclose()
    assert all(c.is_closed for c in [*built.clients.values()]) and not built
    async with open_carriers(settings, clock.now, names=["usps"]) as only:
        assert list(only) == ["usps"]  # asked for by name: built although disabled
        client = only.clients["usps"]
    assert client.is_closed
    with pytest.raises(KeyError, match="unknown carrier"):
        build_carriers(settings, clock.now, names=["royalmail"])


# ------------------------------------------------------------------------------------ sandbox


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_sandbox(config: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "NOTIFIER_CONFIG"}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "notifier", "sandbox", "--config", str(config), "--port",
         str(port), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            httpx.get(url + "/_sandbox/stats", timeout=1.0)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"sandbox did not start: {proc.communicate()}")


def stop(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, out, err


def test_sandbox_command_uses_the_configured_clock_and_stops_on_sigterm(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:1")
    proc, url = start_sandbox(config)
    try:
        assert httpx.get(url + "/_sandbox/stats").json()["now"] == T0.isoformat()
        # the demo path: `notifier track` through the configuration against this sandbox
        (tmp_path / "track").mkdir()
        tracked = run(capsys, "track", "--config", str(write_config(tmp_path / "track", url)),
                      "--carrier", "fedex", "--json", "123456789012")
        assert tracked[0] == 0 and tracked[2] == []
        assert json.loads(tracked[1][0])["tracking_number"] == "123456789012"
        assert httpx.get(url + "/_sandbox/stats").json()["carriers"]["fedex"]["numbers"] == 1
    finally:
        code, out, err = stop(proc)
    assert code == 0, err
    assert out.splitlines()[0].startswith(f"carrier sandbox on {url} ")
    assert "at 0x" in out


def test_sandbox_speed_runs_a_simulated_clock_from_the_configured_now(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:1")
    proc, url = start_sandbox(config, "--speed", "86400")
    try:
        first = datetime.fromisoformat(httpx.get(url + "/_sandbox/stats").json()["now"])
        time.sleep(0.05)
        second = datetime.fromisoformat(httpx.get(url + "/_sandbox/stats").json()["now"])
    finally:
        code, out, err = stop(proc)
    assert code == 0, err
    assert T0 < first < second
    assert "at 86400x" in out


def test_sandbox_port_in_use_is_one_error_exit_1(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:1")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = run(capsys, "sandbox", "--config", str(config), "--port", str(port))
    assert code == 1 and out == []
    assert err[-1] == f"notifier sandbox: could not serve on 127.0.0.1:{port}"
