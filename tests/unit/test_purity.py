"""Pure modules import no I/O library (the completeness check the style guide asks for)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IO_LIBRARIES = {"httpx", "aiosqlite", "sqlite3", "aiosmtplib", "aiosmtpd", "apscheduler",
                "tenacity", "socket", "asyncio", "uvicorn", "starlette", "hypercorn",
                "urllib.request", "requests", "subprocess", "smtplib"}
PURE = ["carriers/model.py", "carriers/errors.py", "carriers/detect.py", "carriers/numbers.py",
        "carriers/links.py",
        "carriers/payload.py", "carriers/zones.py", "carriers/settle.py", "notifier/models.py",
        "notifier/domain.py",
        "notifier/errors.py",
        "notifier/timefmt.py", "notifier/views.py", "notifier/validate.py",
        "notifier/store/base.py", "notifier/channels/base.py", "notifier/rules.py",
        "notifier/schedule.py", "notifier/calendar.py", "notifier/render.py",
        "notifier/planner.py", "notifier/events.py", "notifier/tracking.py",
        "notifier/budget.py", "notifier/digest.py", "notifier/alerts.py",
        "notifier/unsubscribe.py", "notifier/notice.py"]
PURE += [str(p.relative_to(ROOT)) for p in ROOT.glob("carriers/*/parse.py")]
PURE += [str(p.relative_to(ROOT)) for p in ROOT.glob("carriers/*/statuses.py")]


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_all_pure_modules_are_checked() -> None:
    # The list is explicit; make sure it names real files (a rename must update it).
    existing = [p for p in PURE if (ROOT / p).exists()]
    assert len(existing) >= 12


@pytest.mark.parametrize("module", sorted(set(PURE)))
def test_pure_module_imports_no_io(module: str) -> None:
    path = ROOT / module
    if not path.exists():
        pytest.skip(f"{module} not written yet")
    bad = {name for name in imported_modules(path)
           if name in IO_LIBRARIES or name.split(".")[0] in IO_LIBRARIES}
    assert not bad, f"{module} imports I/O libraries: {sorted(bad)}"
