"""Shared fixtures: a valid configuration file in a temporary folder, and a store on it."""

from __future__ import annotations

import json
import os
import sys
import tomllib
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.support importable without installing


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("NOTIFIER_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
                "CREDENTIALS_DIRECTORY", "JOURNAL_STREAM"):
        monkeypatch.delenv(var, raising=False)


def config_text(db_path: str = "notifier.sqlite3", extra: str = "") -> str:
    """The repository's config.toml with the database moved and the TOML ``extra`` merged in
    (tables in ``extra`` override or extend the same tables of the base file)."""
    base = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))
    base["database"]["path"] = db_path
    return dump_toml(merge(base, tomllib.loads(extra)))


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot write {value!r} as TOML")


def dump_toml(data: dict[str, Any], prefix: str = "") -> str:
    """A small TOML writer for configuration dictionaries (tables, scalars, lists)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for key, value in data.items():
        if isinstance(value, dict):
            name = f"{prefix}{key}"
            lines += ["", f"[{name}]", dump_toml(value, name + ".")]
    return "\n".join(lines) + "\n"


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    def write(extra: str = "", *, name: str = "config.toml", text: str | None = None) -> Path:
        path = tmp_path / name
        path.write_text(text if text is not None else config_text(extra=extra),
                        encoding="utf-8")
        return path
    return write


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[object]:
    from notifier.store.sqlite import SqliteStore

    s = SqliteStore(tmp_path / "store.sqlite3")
    await s.open()
    yield s
    await s.close()


def notifier_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFIER_CONFIG", "NOTIFY_SOCKET")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env
