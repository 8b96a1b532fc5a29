"""Persistence: the store interface (``base``, pure) and its SQLite implementation (``sqlite``).

This package's ``__init__`` imports no database driver, so pure modules can use the input and
result types in ``notifier.store.base``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from notifier.store.base import OrderDetails, OrderInput, ShipmentInput, Store, UpsertSummary

if TYPE_CHECKING:
    from notifier.config import Settings
    from notifier.store.sqlite import SqliteStore

__all__ = ["OrderDetails", "OrderInput", "ShipmentInput", "Store", "UpsertSummary", "open_store"]


def open_store(settings: Settings) -> SqliteStore:
    """The configured store, not yet opened (``await store.open()`` or ``async with``)."""
    from notifier.store.sqlite import SqliteStore

    return SqliteStore(settings.database.path, busy_timeout=settings.database.busy_timeout)
