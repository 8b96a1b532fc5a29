"""Helpers shared by the per-carrier payload builders: time formats and code-table rows.

Pure. Every builder takes a scenario ``View`` (what is visible at ``now``) and returns plain
JSON-ready data; nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

from carriers.model import ExceptionReason, Status
from carriers.sandbox.places import Place, zone

__all__ = ["Row", "gmt_offset", "local", "local_at", "naive_iso", "offset_iso", "utc_z"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One carrier code for a scenario kind, plus the normalised reading the reference gives.

    ``status``/``reason`` are what an adapter following /work/shared/reference/carriers.md
    should produce; the sandbox reports them in its timeline so benchmarks can score adapters.
    """

    code: str
    text: str
    status: Status
    reason: ExceptionReason | None = None
    extra: str = ""   # carrier-specific second code (UPS letter type, FedEx derived code...)
    extra2: str = ""  # a third one where the carrier has it (UPS 2-char activity code...)


def local(at: datetime, place: Place) -> datetime:
    return at.astimezone(zone(place.zone))


def local_at(day: date, hhmm: tuple[int, int], place: Place) -> datetime:
    """An aware local wall time at ``place`` on ``day``."""
    return datetime.combine(day, time(*hhmm), zone(place.zone))


def offset_iso(dt: datetime) -> str:
    """``2025-06-12T08:02:00-06:00`` (seconds always present)."""
    return dt.isoformat(timespec="seconds")


def naive_iso(dt: datetime) -> str:
    """Local wall time without any offset: ``2025-06-12T08:02:00``."""
    return dt.replace(tzinfo=None).isoformat(timespec="seconds")


def utc_z(dt: datetime) -> str:
    return dt.astimezone(zone("UTC")).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def gmt_offset(dt: datetime, *, pad_hours: bool = True) -> str:
    """``-05:00`` (or ``-5:00`` when ``pad_hours`` is False) for an aware datetime."""
    delta = dt.utcoffset()
    minutes = int(delta.total_seconds() // 60) if delta is not None else 0
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}" if pad_hours else f"{sign}{hours}:{mins:02d}"
