"""Tracking-event de-duplication and ordering helpers shared by the poller and the rules.

Pure: no I/O, no clock. Event identity is ``TrackingEvent.identity()`` - (instant, raw code,
location) - never the free text, because carriers edit descriptions of old scans and a re-worded
scan must not count as news (TA2k/ioBroker.parcel #50 re-alerted parcels delivered weeks before).
Carriers' array order is not trusted: everything here orders by instant.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta

from carriers.model import TrackingEvent
from notifier.models import event_sort_key

__all__ = ["OFFSET_UNCERTAINTY", "latest_possible", "new_events", "sorted_events"]

# When a carrier gave a wall time without an offset (``offset_assumed``) the true instant can sit
# anywhere the world's UTC offsets (-12:00 .. +14:00) put it. Rules that must not fire early (stale)
# take the latest possible reading.
OFFSET_UNCERTAINTY = timedelta(hours=14)


def new_events(
    existing_identities: Collection[str], incoming: Sequence[TrackingEvent]
) -> list[TrackingEvent]:
    """Events of ``incoming`` not already known, each identity once, sorted by instant.

    ``existing_identities`` are the stored ``identity()`` strings. A repeat inside ``incoming``
    (carriers repeat scans within one payload) keeps its first occurrence. An event whose text
    was edited but whose instant, code and location are unchanged is not new.
    """
    seen = set(existing_identities)
    fresh: list[TrackingEvent] = []
    for event in incoming:
        key = event.identity()
        if key in seen:
            continue
        seen.add(key)
        fresh.append(event)
    return sorted_events(fresh)


def sorted_events(events: Iterable[TrackingEvent]) -> list[TrackingEvent]:
    """Events oldest first by instant (ties by raw code), whatever order the carrier sent."""
    return sorted(events, key=event_sort_key)


def latest_possible(event: TrackingEvent) -> datetime:
    """The latest instant the event may really have happened at (see OFFSET_UNCERTAINTY)."""
    return event.at + OFFSET_UNCERTAINTY if event.offset_assumed else event.at
