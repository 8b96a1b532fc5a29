"""Shared fixtures: a valid configuration file in a temporary folder, and a store on it."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.support importable without installing


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("NOTIFIER_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
                "CREDENTIALS_DIRECTORY", "JOURNAL_STREAM"):
        monkeypatch.delenv(var, raising=False)


def config_text(db_path: str = "notifier.sqlite3", extra: str = "") -> str:
    """The repository's config.toml with the database moved and ``extra`` appended."""
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    text = re.sub(r'(?m)^path = "notifier.sqlite3".*$', f'path = "{db_path}"', text)
    return text + "\n" + extra


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
