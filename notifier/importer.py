"""``notifier orders import FILE``: CSV (header row) or JSON Lines, streamed in batches.

Every bad row is reported as ``FILE:LINE: problem`` and skipped; good rows are upserted in
batches (one transaction each), so memory stays flat in the file size and a re-import is
idempotent (unchanged rows are not rewritten).
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from notifier import validate
from notifier.errors import InputError
from notifier.store.base import OrderInput, Store

__all__ = ["ImportSummary", "import_file", "read_rows"]

logger = logging.getLogger(__name__)

BATCH_SIZE = 2000


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportSummary:
    rows: int
    imported: int
    rejected: int
    warnings: int
    created: int
    updated: int
    unchanged: int
    shipments_added: int


def _is_jsonl(path: Path, handle: IO[str]) -> bool:
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return True
    if path.suffix.lower() == ".csv":
        return False
    # Sniff past leading blank lines (skipped as rows anyway); seek(0) re-skips a BOM.
    first = handle.read(4096).lstrip()[:1]
    handle.seek(0)
    return first == "{"


def _undecodable(text: str) -> bool:
    """True when ``text`` holds bytes that were not UTF-8 (read with ``surrogateescape``)."""
    if text.isascii():  # the common case, and a cheap one
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_NOT_UTF8 = "not valid UTF-8 (save the file as UTF-8)"
_REQUIRED = ("order", "email")


class _Counting:
    """Iterates lines of a text file, counting characters read (for the progress bar)."""

    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle
        self.chars = 0

    def __iter__(self) -> Iterator[str]:
        for line in self.handle:
            self.chars += len(line)
            yield line


def read_rows(path: Path, handle: IO[str], lines: Iterator[str] | None = None
              ) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, fields) per row, or (line, problem text) for a row that cannot be read."""
    source = lines if lines is not None else iter(handle)
    if _is_jsonl(path, handle):
        for number, line in enumerate(source, start=1):
            if not line.strip():
                continue
            if _undecodable(line):
                yield number, _NOT_UTF8
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, f"not valid JSON ({exc.msg} at column {exc.colno})"
                continue
            if not isinstance(value, dict):
                yield number, f"expected a JSON object, got {type(value).__name__}"
                continue
            yield number, value
        return
    reader = csv.reader(source)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        return
    except csv.Error as exc:
        yield 1, f"unreadable CSV header: {exc}"
        return
    if _undecodable(",".join(header)):
        yield 1, f"CSV header {_NOT_UTF8}"
        return
    missing = [h for h in _REQUIRED if h not in header]
    if missing:
        # Every row would be rejected for it: say it once, for the header.
        yield 1, (f"CSV header lacks the required column(s) {', '.join(map(repr, missing))} "
                  f"(columns: {', '.join(validate.FIELDS)})")
        return
    unknown = [h for h in header if h and h not in validate.FIELDS]
    if unknown:
        yield 1, f"unknown column(s) {', '.join(map(repr, unknown))} ignored"
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, f"unreadable CSV row: {exc}"
            continue
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            yield start, f"{len(cells)} cells but the header has {len(header)} columns"
            continue
        if _undecodable("".join(cells)):
            yield start, _NOT_UTF8
            continue
        yield start, {h: c for h, c in zip(header, cells, strict=False) if h}


async def import_file(path: Path, store: Store, *, now: Callable[[], datetime],
                      report: Callable[[str], None],
                      progress: Callable[[int], None] | None = None,
                      batch_size: int = BATCH_SIZE) -> ImportSummary:
    """Import ``path`` into ``store``; ``report`` receives each ``FILE:LINE: problem`` line."""
    rows = rejected = warnings = imported = 0
    created = updated = unchanged = added = 0
    batch: list[OrderInput] = []

    async def flush() -> None:
        nonlocal imported, created, updated, unchanged, added
        if not batch:
            return
        summary = await store.upsert_orders(batch, now=now())
        imported += len(batch)
        created += summary.created
        updated += summary.updated
        unchanged += summary.unchanged
        added += summary.shipments_added
        batch.clear()

    # surrogateescape: a stray Latin-1 byte becomes a rejected row, not a crash mid-file.
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        counting = _Counting(handle)
        for line, fields in read_rows(path, handle, iter(counting)):
            if isinstance(fields, str):
                if line == 1 and fields.endswith("ignored"):
                    report(f"{path}:{line}: warning: {fields}")
                    warnings += 1
                    continue
                rows += 1
                rejected += 1
                report(f"{path}:{line}: {fields}")
                continue
            rows += 1
            try:
                checked = validate.order_from_fields(fields)
            except InputError as exc:
                rejected += 1
                report(f"{path}:{line}: {exc}")
                continue
            for warning in checked.warnings:
                warnings += 1
                report(f"{path}:{line}: warning: {warning}")
            batch.append(checked.order)
            if len(batch) >= batch_size:
                await flush()
                if progress:
                    progress(counting.chars)
        await flush()
        if progress:
            progress(counting.chars)
    return ImportSummary(rows=rows, imported=imported, rejected=rejected, warnings=warnings,
                         created=created, updated=updated, unchanged=unchanged,
                         shipments_added=added)
