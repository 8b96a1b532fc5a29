"""SQLite queries for the outbox feature, mixed into :class:`notifier.store.sqlite.SqliteStore`.

Methods here use ``self.db``, ``self.transaction()`` and ``self.enqueue(db, events)`` of the store.
"""

from __future__ import annotations

from notifier.store.sqlite_core import SqliteCore

__all__ = ["OutboxQueries"]


class OutboxQueries(SqliteCore):
    """Queries of the outbox feature."""
