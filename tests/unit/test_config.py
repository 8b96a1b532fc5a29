"""Configuration: every class of mistake gives one FILE: KEY.PATH: problem line and exit 78."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from notifier import cli, config
from notifier.errors import ConfigError


def load_text(tmp_path: Path, text: str, **kw: object) -> config.Settings:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    return config.load(path, **kw)  # type: ignore[arg-type]


MINIMAL = """
[carriers.ups]
client_id = "a"
client_secret = "b"
[carriers.fedex]
enabled = false
[carriers.dhl]
enabled = false
[carriers.usps]
enabled = false
"""


def problems_of(tmp_path: Path, text: str, **kw: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text, **kw)
    return info.value.problems


def test_repository_config_is_valid() -> None:
    settings = config.load(Path(__file__).parents[2] / "config.toml")
    assert settings.carriers.dhl.requests_per_day == 250
    assert settings.daemon.poll_tick == timedelta(minutes=1)


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param(MINIMAL + "[daemon]\npoll_tik = '1m'\n",
                 "daemon.poll_tik: unknown key (did you mean 'poll_tick'?)", id="unknown-key"),
    pytest.param(MINIMAL + "[nonsense]\nx = 1\n", "nonsense: unknown key", id="unknown-section"),
    pytest.param(MINIMAL + "[daemon]\npoll_tick = 30\n",
                 'daemon.poll_tick: expected a duration string like "90m", got an integer',
                 id="wrong-type-duration"),
    pytest.param(MINIMAL + "[daemon]\npoll_tick = '30 parsecs'\n",
                 "daemon.poll_tick: bad duration '30 parsecs'", id="bad-duration"),
    pytest.param(MINIMAL + "[digest]\ntz = 'Mars/Olympus'\n",
                 "digest.tz: unknown time zone 'Mars/Olympus'", id="bad-time-zone"),
    pytest.param(MINIMAL + "[notifications]\ndaily_cap = 'six'\n",
                 "notifications.daily_cap: expected an integer, got a string", id="wrong-type"),
    pytest.param(MINIMAL + "[email]\nsecurity = 'ssl'\n",
                 "email.security: must be one of 'starttls', 'tls', 'plain', got 'ssl'",
                 id="bad-choice"),
    pytest.param(MINIMAL.replace('client_secret = "b"\n', ""),
                 "carriers.ups.client_secret: required when ups is enabled", id="missing-required"),
    pytest.param(MINIMAL + "[clock]\nmode = 'simulated'\n",
                 'clock.start: required when clock.mode is "simulated"', id="missing-clock-start"),
    pytest.param(MINIMAL + "[digest]\ncron = '61 * * * *'\n", "digest.cron:", id="bad-cron"),
    pytest.param(MINIMAL + "[email]\nsecurity = 'plain'\nhost = 'smtp.example.com'\n",
                 'email.security: "plain" is only allowed to a loopback host', id="plain-remote"),
    pytest.param(MINIMAL + "[notifications]\nchannels = ['email', 'pigeon']\n",
                 "notifications.channels: unknown channel 'pigeon'", id="unknown-channel"),
    pytest.param(MINIMAL + "[polling]\ndelivery_hours_start = 22\ndelivery_hours_end = 8\n",
                 "polling.delivery_hours_end: delivery hours 22-8 must be", id="bad-hours"),
    pytest.param("[daemon\n", "TOML syntax error", id="toml-syntax"),
])
def test_each_mistake_is_named(tmp_path: Path, text: str, expected: str) -> None:
    problems = problems_of(tmp_path, text)
    path = str(tmp_path / "c.toml")
    assert any(p.startswith(f"{path}: ") and expected in p for p in problems), problems


def test_every_problem_reported_in_one_run(tmp_path: Path) -> None:
    text = MINIMAL + "[daemon]\npoll_tick = 'x'\nbogus = 1\n[digest]\ntz = 'Nowhere/None'\n"
    assert len(problems_of(tmp_path, text)) == 3


def test_secret_from_environment_and_never_in_repr(tmp_path: Path) -> None:
    text = MINIMAL.replace('client_secret = "b"', 'client_secret = "${UPS_SECRET}"')
    settings = load_text(tmp_path, text, environ={"UPS_SECRET": "hunter2"})
    secret = settings.carriers.ups.client_secret
    assert secret.reveal() == "hunter2"
    assert "hunter2" not in repr(settings)
    problems = problems_of(tmp_path, text, environ={})
    assert any("carriers.ups.client_secret: environment variable UPS_SECRET is not set" in p
               for p in problems)


def test_secret_from_systemd_credentials(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "ups_secret").write_text("s3cret\n")
    text = MINIMAL.replace('client_secret = "b"', 'client_secret = "credential:ups_secret"')
    settings = load_text(tmp_path, text, environ={"CREDENTIALS_DIRECTORY": str(creds)})
    assert settings.carriers.ups.client_secret.reveal() == "s3cret"
    problems = problems_of(tmp_path, text.replace("ups_secret", "missing"),
                           environ={"CREDENTIALS_DIRECTORY": str(creds)})
    assert any("credential 'missing' not found" in p for p in problems)


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    settings = load_text(tmp_path, MINIMAL + "[database]\npath = 'data/n.sqlite3'\n")
    assert settings.database.path == tmp_path / "data" / "n.sqlite3"


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("90m", 5400), ("3h", 10800),
                                               ("2d", 172800), ("1.5h", 5400)])
def test_duration_syntax(text: str, seconds: int) -> None:
    assert config.parse_duration(text).total_seconds() == seconds


def test_cli_exits_78_with_one_line_per_problem(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(MINIMAL + "[daemon]\npoll_tick = 'soon'\n")
    assert cli.main(["check-config", "--config", str(path)]) == 78
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{path}: daemon.poll_tick: bad duration 'soon' (use a number and a unit: "
                   "30s, 90m, 3h, 2d)"]


def test_cli_config_from_environment_variable(write_config, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config()
    monkeypatch.setenv("NOTIFIER_CONFIG", str(path))
    assert cli.main(["check-config"]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: ok")


def test_usage_errors_stay_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["orders", "status", "X", "--set", "shipped-to-mars"])
    assert info.value.code == 2
