"""How instants and dates are written to the database and read back. Pure.

Instants are stored as fixed-width UTC text (``2026-11-28T18:00:00.000000Z``) so that text order
is time order and indexes on them work for range queries.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

__all__ = ["date_from_db", "date_to_db", "from_db", "to_db"]


def to_db(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r} cannot be stored (need UTC)")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_db_opt(value: datetime | None) -> str | None:
    return None if value is None else to_db(value)


def from_db(text: str | None) -> datetime | None:
    if text is None:
        return None
    # fromisoformat is ~30x faster than strptime, and this runs for every row read.
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


def date_to_db(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def date_from_db(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)
