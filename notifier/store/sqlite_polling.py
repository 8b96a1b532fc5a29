"""SQLite queries for the polling feature, mixed into :class:`notifier.store.sqlite.SqliteStore`.

Methods here use ``self.db``, ``self.transaction()`` and ``self.enqueue(db, events)`` of the store.
"""

from __future__ import annotations

from notifier.store.sqlite_core import SqliteCore

__all__ = ["PollingQueries"]


class PollingQueries(SqliteCore):
    """Queries of the polling feature."""
