"""SQLite queries for the ops feature, mixed into :class:`notifier.store.sqlite.SqliteStore`.

Methods here use ``self.db``, ``self.transaction()`` and ``self.enqueue(db, events)`` of the store.
"""

from __future__ import annotations

from notifier.store.sqlite_core import SqliteCore

__all__ = ["OpsQueries"]


class OpsQueries(SqliteCore):
    """Queries of the ops feature."""
