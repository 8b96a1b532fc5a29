"""Bad input from every side, against a running daemon: each gives a clear error naming the
item, the daemon keeps running (``/healthz`` 200 afterwards), and nothing already stored is lost.

- ``orders import`` of CSV and JSON Lines files with malformed rows, invalid tracking numbers,
  unknown carriers, e-mails that are not e-mails and dates in the wrong format (``FILE:LINE:
  field: problem`` per bad row; the good rows are imported);
- the HTTP API with the same mistakes, malformed JSON, a JSON array, and bodies over
  ``api.max_body_bytes`` (with and without Content-Length);
- carriers answering an HTML error page, truncated JSON (sandbox faults) or a body of several
  megabytes (a small fake carrier in place of DHL);
- a broken configuration and a broken user template: ``check-config`` and ``run`` exit 78 and
  name the key or the template file.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from notifier.errors import EX_CONFIG
from tests.conftest import ROOT, config_text, notifier_env
from tests.e2e.conftest import PYTHON, START, World
from tests.support.http_server import serve

SPEED = 21_600.0
# Valid numbers (check digits right) for each carrier used below.
UPS_1, UPS_2 = "1Z999AA10123456784", "1Z999AA10123456793"
DHL_1 = "1234567890"
HUGE = 6_000_000


def _huge_carrier() -> tuple[Starlette, list[str]]:
    """A "DHL" whose every answer is a 200 with a several-megabyte body cut off mid-JSON."""
    hits: list[str] = []
    lock = threading.Lock()
    body = b'{"shipments": [{"id": "' + b"A" * HUGE

    async def anything(request: Request) -> Response:
        with lock:
            hits.append(request.url.path)
        return Response(body, media_type="application/json")

    app = Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "POST"])])
    return app, hits


def _fixture_counts(w: World, order: str) -> tuple[int, int]:
    rows = w.query("SELECT (SELECT count(*) FROM shipments WHERE order_id = ?), "
                   "(SELECT count(*) FROM events e JOIN shipments s ON s.id = e.shipment_id "
                   "WHERE s.order_id = ?)", order, order)
    return int(rows[0][0]), int(rows[0][1])


def test_bad_input_everywhere_the_daemon_keeps_running(world: Callable[..., World]) -> None:
    w = world(speed=SPEED, channels=("email",))
    app, hits = _huge_carrier()
    with serve(app) as fake:
        w.write_config({"carriers": {"dhl": {"base_url": fake.url}},
                        "api": {"max_body_bytes": 20_000}})
        w.register("ups", UPS_1, "normal", START - timedelta(hours=6))
        w.start_daemon()
        _stored_order_survives_bad_input(w, hits)


def _stored_order_survives_bad_input(w: World, hits: list[str]) -> None:
    # Something stored first: an order whose parcel the daemon has already tracked.
    r = w.api("PUT", "/v1/orders/G-1", json={
        "email": "g1@example.org", "locale": "en", "shipments": [
            {"carrier": "ups", "tracking": UPS_1}]})
    assert r.status_code == 201, r.text
    w.wait_for("G-1's first events", lambda: _fixture_counts(w, "G-1")[1] >= 2)

    _bad_import_files(w)
    _bad_api_bodies(w)
    _bad_carrier_answers(w, hits)

    # Still there, and still being tracked; the daemon never stopped.
    shipments, events = _fixture_counts(w, "G-1")
    assert shipments == 1 and events >= 2
    shown = w.cli("orders", "show", "G-1", "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["customer"]["email"] == "g1@example.org"
    assert data["shipments"][0]["tracking_number"] == UPS_1
    assert w.wait_healthy() == 200
    assert w.alive()
    assert w.stop_daemon() == 0
    assert "Traceback" not in w.log_text(), w.log_text()[-4000:]


def _bad_import_files(w: World) -> None:
    before = _fixture_counts(w, "G-1")
    csv = w.root / "orders.csv"
    csv.write_text(
        "order,email,locale,carrier,tracking,promised\n"
        f"G-2,g2@example.org,fr,ups,{UPS_2},2026-11-20\n"     # 2: good
        f"G-3,not-an-email,en,ups,{UPS_2},\n"                  # 3: e-mail
        "G-4,g4@example.org,en,ups,1Z12,\n"                    # 4: tracking number
        f"G-5,g5@example.org,en,pigeon,{UPS_2},\n"             # 5: carrier
        f"G-6,g6@example.org,en,ups,{UPS_2},20/11/2026\n"      # 6: date format
        f"G-7,g7@example.org,en,ups,{UPS_2},2026-11-20,extra\n"  # 7: one cell too many
        f"G-1,also-not-an-email,en,ups,{UPS_1},\n"             # 8: a stored order, broken
        f'G-8,"g8@example.org,en,ups,{UPS_2},\n',              # 9: quote never closed
        encoding="utf-8")
    done = w.cli("orders", "import", str(csv))
    assert done.returncode == 1, done.stdout + done.stderr
    problems = {int(m.group(1)): m.group(2) for m in
                re.finditer(rf"^{re.escape(str(csv))}:(\d+): (.*)$", done.stderr, re.M)}
    assert set(problems) == {3, 4, 5, 6, 7, 8, 9}, done.stderr
    assert problems[3].startswith("email:") and "not-an-email" in problems[3]
    assert problems[4].startswith("tracking:") and "1Z12" in problems[4]
    assert problems[5].startswith("carrier:") and "pigeon" in problems[5]
    assert problems[6].startswith("promised:") and "YYYY-MM-DD" in problems[6]
    assert "7 cells but the header has 6 columns" in problems[7]
    assert problems[8].startswith("email:")
    assert "1 imported (1 new" in done.stdout and "7 rejected" in done.stdout, done.stdout

    jsonl = w.root / "orders.jsonl"
    jsonl.write_text(
        json.dumps({"order": "G-10", "email": "g10@example.org", "carrier": "ups",
                    "tracking": UPS_2}) + "\n"
        + '{"order": "G-11", "email": "g11@example.org", "carr\n'
        + "[1, 2, 3]\n"
        + json.dumps({"order": "G-12", "email": "g12@example.org", "tz": "Mars/Olympus"}) + "\n"
        + json.dumps({"order": "G-13", "email": "g13@example.org",
                      "expected_ship": "next week", "status": "backordered"}) + "\n"
        + json.dumps({"order": "G-14", "email": "g14@example.org", "tracking": 12345}) + "\n",
        encoding="utf-8")
    done = w.cli("orders", "import", str(jsonl))
    assert done.returncode == 1, done.stdout + done.stderr
    problems = {int(m.group(1)): m.group(2) for m in
                re.finditer(rf"^{re.escape(str(jsonl))}:(\d+): (.*)$", done.stderr, re.M)}
    assert set(problems) == {2, 3, 4, 5, 6}, done.stderr
    assert problems[2].startswith("not valid JSON")
    assert problems[3].startswith("expected a JSON object")
    assert problems[4].startswith("tz:") and "Mars/Olympus" in problems[4]
    assert problems[5].startswith("expected_ship:")
    assert problems[6].startswith("tracking:")
    # Only the good rows arrived; the stored order kept its e-mail, parcel and events.
    orders = {r[0] for r in w.query("SELECT id FROM orders")}
    assert orders == {"G-1", "G-2", "G-10"}
    assert w.query("SELECT email FROM orders WHERE id = 'G-1'")[0][0] == "g1@example.org"
    assert _fixture_counts(w, "G-1")[0] == before[0]
    assert _fixture_counts(w, "G-1")[1] >= before[1]


def _bad_api_bodies(w: World) -> None:
    def put(body: object) -> tuple[int, dict[str, object]]:
        r = w.api("PUT", "/v1/orders/G-20", json=body)
        return r.status_code, r.json()

    good = {"email": "g20@example.org", "shipments": [{"carrier": "ups", "tracking": UPS_2}]}
    cases = [
        ({**good, "email": "g20 at example.org"}, "email"),
        ({**good, "promised": "Nov 20"}, "promised"),
        ({**good, "shipments": [{"carrier": "ups", "tracking": "1Z12"}]},
         "shipments[0].tracking"),
        ({**good, "shipments": [{"carrier": "pigeon", "tracking": UPS_2}]},
         "shipments[0].carrier"),
        ({**good, "locale": 7}, "locale"),
        ({**good, "promise": "2026-11-20"}, "promise"),
    ]
    for body, field in cases:
        status, answer = put(body)
        assert status == 422 and answer["field"] == field, (body, answer)
        assert str(answer["error"]).startswith(field), answer
    headers = {"Content-Type": "application/json"}
    r = w.api("PUT", "/v1/orders/G-20", content=b'{"email": "g20@example.org", ',
              headers=headers)
    assert r.status_code == 400 and r.json()["error"].startswith("malformed JSON"), r.text
    r = w.api("PUT", "/v1/orders/G-20", content=b"[1, 2]", headers=headers)
    assert r.status_code == 422 and r.json()["error"] == "expected a JSON object", r.text
    padding = {**good, "name": "x" * 30_000}
    r = w.api("PUT", "/v1/orders/G-20", json=padding)
    assert r.status_code == 413 and "larger than 20000 bytes" in r.json()["error"], r.text

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        yield b'{"email": "g20@example.org", "name": "'
        for _ in range(10):
            yield b"y" * 4096
        yield b'"}'

    r = w.api("PUT", "/v1/orders/G-20", content=chunks(), headers=headers)
    assert r.status_code == 413, r.text
    r = w.api("POST", "/v1/orders/G-1/disputes", json={"reason": "", "tracking": UPS_1})
    assert r.status_code == 422 and r.json()["field"] == "reason", r.text
    # None of it stored anything.
    assert not w.query("SELECT 1 FROM orders WHERE id = 'G-20'")
    assert not w.query("SELECT 1 FROM disputes")


def _bad_carrier_answers(w: World, hits: list[str]) -> None:
    assert w.sandbox is not None
    log_before = len(w.log_text())
    # UPS answers an HTML error page (a 502 from its gateway, then one served with 200), then
    # JSON cut off mid-object.
    w.fault(carrier="ups", kind="html", status=502, count=1)
    w.fault(carrier="ups", kind="html", status=200, count=1)
    w.fault(carrier="ups", kind="malformed", count=1)
    # A DHL parcel: "DHL" here is the fake carrier with the several-megabyte answer.
    r = w.api("PUT", "/v1/orders/G-30", json={
        "email": "g30@example.org", "shipments": [{"carrier": "dhl", "tracking": DHL_1}]})
    assert r.status_code == 201, r.text
    w.wait_for("the huge answer to be fetched", lambda: len(hits) >= 1)

    def faults_spent() -> bool:
        assert w.sandbox is not None
        queued = w.http.get(w.sandbox.base_url + "/_sandbox/faults").json()["ups"]["queued"]
        return not queued

    w.wait_for("the UPS faults to be served", faults_spent)
    w.wait_for("the failures to be logged", lambda: len(re.findall(
        r"WARNING .*(ups|dhl): poll of", w.log_text()[log_before:])) >= 4)
    log = w.log_text()[log_before:]
    lines = [line for line in log.splitlines() if re.search(r"(ups|dhl): poll of", line)]
    ups = [line for line in lines if "ups:" in line]
    dhl = [line for line in lines if "dhl:" in line]
    assert len(ups) >= 3 and dhl, lines
    # Each names the carrier, the parcel and what was wrong with the answer, in one line.
    assert all(UPS_1 in line or UPS_2 in line for line in ups), ups
    assert all(DHL_1 in line for line in dhl), dhl
    assert any("HTTP 502" in line for line in ups), ups
    assert any(re.search(r"not JSON \(body starts: '<", line) for line in ups), ups
    assert any(re.search(r"not JSON \(body starts: '\{", line) for line in ups), ups
    assert all("not JSON" in line for line in dhl), dhl
    assert all(len(line) < 600 for line in lines), lines  # no megabytes in the log
    # Polling recovers once the carrier answers properly again.
    polled = w.query("SELECT last_success_at FROM shipments WHERE tracking_number = ?",
                     UPS_1)[0][0]
    w.wait_for("a successful UPS poll after the faults", lambda: w.query(
        "SELECT last_success_at FROM shipments WHERE tracking_number = ?", UPS_1)[0][0]
        > polled)
    status = w.query("SELECT consecutive_failures FROM carrier_health WHERE carrier = 'ups'")
    assert status[0][0] == 0
    assert w.query("SELECT consecutive_failures FROM carrier_health WHERE carrier = 'dhl'"
                   )[0][0] >= 1


# ------------------------------------------------------------------------- configuration


def _notifier(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PYTHON), "-m", "notifier", *args], cwd=cwd, env=notifier_env(),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                          check=False)


def _quiet_config(tmp_path: Path, extra: str = "") -> str:
    off = "".join(f"[carriers.{c}]\nenabled = false\n" for c in ("ups", "fedex", "dhl", "usps"))
    return config_text(str(tmp_path / "db.sqlite3"),
                       off + "[api]\nenabled = false\n[digest]\nenabled = false\n" + extra)


def test_broken_config_exits_78_naming_each_key(tmp_path: Path) -> None:
    text = _quiet_config(tmp_path)
    text = text.replace('poll_tick = "1m"', 'poll_tick = "soon"')
    text = text.replace("port = 8025", 'port = "smtp"')
    assert 'poll_tick = "soon"' in text and 'port = "smtp"' in text
    config = tmp_path / "config.toml"
    config.write_text(text, encoding="utf-8")
    for command in (["check-config"], ["run"]):
        done = _notifier(*command, "--config", str(config), cwd=tmp_path)
        assert done.returncode == EX_CONFIG, (command, done.stderr)
        assert f"{config}: daemon.poll_tick: bad duration 'soon'" in done.stderr
        assert f"{config}: email.port: expected an integer" in done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "db.sqlite3").exists()  # run refused before touching anything
    # Not TOML at all: the line and column.
    config.write_text("[daemon\npoll_tick = 1m\n", encoding="utf-8")
    done = _notifier("check-config", "--config", str(config), cwd=tmp_path)
    assert done.returncode == EX_CONFIG
    assert done.stderr.startswith(f"{config}: ") and "line 1" in done.stderr, done.stderr


def test_broken_user_template_exits_78_naming_the_file(tmp_path: Path) -> None:
    user = tmp_path / "templates.local"
    subject = user / "email" / "en" / "shipped" / "subject.txt"
    subject.parent.mkdir(parents=True)
    subject.write_text("{{ order_idd }} is on its way\n", encoding="utf-8")
    body = user / "email" / "fr" / "delivered" / "body.txt"
    body.parent.mkdir(parents=True)
    body.write_text("{% if %}Livré{% endif %}\n", encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text(_quiet_config(tmp_path, f"[templates]\nuser_dir = {json.dumps(str(user))}\n"),
                      encoding="utf-8")
    for command in (["check-config"], ["run"]):
        done = _notifier(*command, "--config", str(config), cwd=tmp_path)
        assert done.returncode == EX_CONFIG, (command, done.stdout, done.stderr)
        lines = done.stderr.splitlines()
        assert any(line.startswith(f"{subject}:1: ") and "order_idd" in line
                   for line in lines), lines
        assert any(line.startswith(f"{body}:1: ") for line in lines), lines
        assert "Traceback" not in done.stderr
    # The built-in templates alone are fine: the same config without user_dir passes.
    config.write_text(_quiet_config(tmp_path), encoding="utf-8")
    done = _notifier("check-config", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert ROOT.exists()
