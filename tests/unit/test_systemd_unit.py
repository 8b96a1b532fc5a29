"""systemd/notifier.service: the settings the daemon relies on, `systemd-analyze verify` clean,
and `systemd-analyze security --offline=yes` exposure at most 2.0 (printed; run with -s to see
it, or use scripts/check-systemd.sh)."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from notifier.config import DaemonSettings, parse_duration
from tests.conftest import ROOT

UNIT = ROOT / "systemd" / "notifier.service"
ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
needs_analyze = pytest.mark.skipif(not Path(ANALYZE).exists(),
                                   reason="systemd-analyze not installed")


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value in order (systemd keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None, f"key outside a section: {line}"
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def _sec(text: str) -> timedelta:
    return parse_duration(text if text[-1].isalpha() else text + "s")


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    return parse_unit(UNIT.read_text(encoding="utf-8"))["Service"]


def one(service: dict[str, list[str]], key: str) -> str:
    values = service.get(key)
    assert values, f"{key}= missing"
    return values[-1]


def test_notify_watchdog_restart_and_reload(service: dict[str, list[str]]) -> None:
    assert one(service, "Type") == "notify"
    assert one(service, "NotifyAccess") == "main"
    assert one(service, "Restart") == "on-failure"
    assert "78" in one(service, "RestartPreventExitStatus").split()
    assert one(service, "ExecReload") == "kill -HUP $MAINPID"
    assert one(service, "ExecStart").split()[:2] == ["/opt/notifier/venv/bin/notifier", "run"]
    # The daemon withholds pings after 60 s without a job run (Daemon.healthy), and pings at
    # half the timeout: WatchdogSec must leave room for at least one ping interval.
    assert _sec(one(service, "WatchdogSec")) >= timedelta(seconds=30)
    # SIGTERM drains for daemon.drain_grace, then closes the API server and the store.
    grace = DaemonSettings().drain_grace
    assert _sec(one(service, "TimeoutStopSec")) >= grace + timedelta(seconds=15)


def test_state_config_credentials_and_user(service: dict[str, list[str]]) -> None:
    assert one(service, "DynamicUser") == "yes"
    assert one(service, "StateDirectory") == "notifier"
    assert one(service, "ConfigurationDirectory") == "notifier"
    creds = {v.split(":", 1)[0] for v in service["LoadCredential"]}
    assert {"api_token", "unsubscribe_secret", "smtp_password"} <= creds
    # Credential files live outside the world-readable config and the unit.
    assert all(v.split(":", 1)[1].startswith("/etc/credstore/")
               for v in service["LoadCredential"])
    assert "SetCredential" not in service and "Environment" in service
    assert not any("PASSWORD" in e.upper() or "TOKEN" in e.upper()
                   for e in service["Environment"])


def test_hardening_settings(service: dict[str, list[str]]) -> None:
    expected = {
        "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "PrivateDevices": "yes", "NoNewPrivileges": "yes", "MemoryDenyWriteExecute": "yes",
        "CapabilityBoundingSet": "", "UMask": "0077", "ProtectProc": "invisible",
        "ProcSubset": "pid", "PrivateMounts": "yes", "RestrictNamespaces": "yes",
        "LockPersonality": "yes", "SystemCallArchitectures": "native",
    }
    assert {k: one(service, k) for k in expected} == expected
    assert set(one(service, "RestrictAddressFamilies").split()) == {
        "AF_UNIX", "AF_INET", "AF_INET6"}
    assert service["SystemCallFilter"][0] == "@system-service"
    assert "PrivateNetwork" not in service  # the daemon needs egress


def test_no_trailing_comments_in_values() -> None:
    # "#" starts a comment only at the start of a line; elsewhere it becomes part of a value.
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";")):
            assert " #" not in line, line


def _checkable_copy(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with ExecStart= pointing at a binary that exists here (verify checks it)."""
    text = text if text is not None else UNIT.read_text(encoding="utf-8")
    path = tmp_path / "notifier.service"
    path.write_text(re.sub(r"(?m)^ExecStart=\S+", "ExecStart=/usr/bin/true", text),
                    encoding="utf-8")
    return path


def _verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ANALYZE, "verify", "--man=no", "--recursive-errors=no", str(path)],
                          capture_output=True, text=True, timeout=60)


@needs_analyze
def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    result = _verify(_checkable_copy(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "" and result.stdout.strip() == ""
    # The check can fail: a typo in a directive is reported and fails the run.
    bad = _verify(_checkable_copy(tmp_path, UNIT.read_text(encoding="utf-8").replace(
        "ProtectHome=yes", "ProtectHomes=yes")))
    assert bad.returncode != 0 and "ProtectHomes" in bad.stderr


@needs_analyze
def test_security_exposure_at_most_2(tmp_path: Path) -> None:
    path = _checkable_copy(tmp_path)
    result = subprocess.run([ANALYZE, "security", "--offline=yes", "--threshold=20",
                             str(path)], capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for notifier\.service: (\d+\.\d+) (\w+)", output)
    assert match, output[-2000:]
    exposure = float(match.group(1))
    print(f"\nsystemd-analyze security: exposure {exposure} {match.group(2)}")
    assert exposure <= 2.0, output[-3000:]
    assert result.returncode == 0, output[-3000:]  # --threshold=20 agrees
