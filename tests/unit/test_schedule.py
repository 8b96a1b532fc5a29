"""Adaptive poll schedule, priorities, budget selection and deferral (pure)."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carriers.model import DeliveryWindow, Status
from notifier.config import PollingSettings
from notifier.models import Shipment
from notifier.schedule import (
    LocalDay,
    at_or_past_edd,
    defer_time,
    delivery_window,
    likely_news,
    local_day,
    next_poll_at,
    poll_priority,
    select_within_budget,
)

NOW = datetime(2025, 3, 10, 12, tzinfo=UTC)
H = timedelta(hours=1)
NO_JITTER = dataclasses.replace(PollingSettings(), jitter=0.0)
P = PollingSettings()


def ship(**kw: object) -> Shipment:
    base: dict[str, object] = {"carrier": "fedex", "tracking_number": "1", "id": 1,
                               "status": Status.in_transit, "created_at": NOW - 2 * 24 * H,
                               "last_poll_at": NOW}
    base.update(kw)
    return Shipment(**base)  # type: ignore[arg-type]


def nxt(s: Shipment, *, changed: bool = True, policy: PollingSettings = NO_JITTER,
        rand: float = 0.5) -> tuple[datetime | None, Status | None]:
    return next_poll_at(s, now=NOW, policy=policy, changed=changed, rand=rand)


TODAY = DeliveryWindow.day(date(2025, 3, 10))
NEXT_WEEK = DeliveryWindow.day(date(2025, 3, 17))


@pytest.mark.parametrize(
    ("s", "interval"),
    [
        pytest.param(ship(status=Status.pending), 6 * H, id="pending-rare"),
        pytest.param(ship(status=Status.info_received), 6 * H, id="info-received-rare"),
        pytest.param(ship(), 3 * H, id="in-transit-between"),
        pytest.param(ship(status=Status.out_for_delivery), 0.5 * H, id="out-for-delivery-often"),
        pytest.param(ship(status=Status.exception), 1 * H, id="exception"),
        pytest.param(ship(status=Status.failed_attempt), 2 * H, id="failed-attempt"),
        pytest.param(ship(status=Status.available_for_pickup), 6 * H, id="pickup"),
        pytest.param(ship(status=Status.unknown), 3 * H, id="unknown-code"),
        pytest.param(ship(current_edd=TODAY), 1 * H, id="in-transit-on-edd-day"),
        pytest.param(ship(current_edd=DeliveryWindow(start=date(2025, 3, 8),
                                                     end=date(2025, 3, 12))), 1 * H,
                     id="in-transit-inside-edd-window"),
        pytest.param(ship(first_edd=DeliveryWindow.day(date(2025, 3, 1))), 1 * H,
                     id="in-transit-past-first-edd"),
        pytest.param(ship(current_edd=NEXT_WEEK), 3 * H, id="in-transit-edd-far"),
        pytest.param(ship(status=Status.pending, current_edd=TODAY), 1 * H,
                     id="pending-on-edd-day"),
        pytest.param(ship(status=Status.available_for_pickup, current_edd=TODAY), 6 * H,
                     id="pickup-ignores-edd"),
        pytest.param(ship(status=Status.out_for_delivery, current_edd=TODAY), 0.5 * H,
                     id="out-for-delivery-stays-shortest"),
    ],
)
def test_interval_by_status(s: Shipment, interval: timedelta) -> None:
    assert nxt(s) == (NOW + interval, None)


def test_edd_day_begins_at_the_earliest_zone() -> None:
    tomorrow = ship(current_edd=DeliveryWindow.day(date(2025, 3, 11)))
    # 2025-03-11 begins in UTC+14 at 2025-03-10 10:00 UTC.
    assert at_or_past_edd(tomorrow, now=datetime(2025, 3, 10, 10, tzinfo=UTC))
    assert not at_or_past_edd(tomorrow, now=datetime(2025, 3, 10, 9, 59, tzinfo=UTC))
    assert not at_or_past_edd(ship(), now=NOW)


@pytest.mark.parametrize(
    ("unchanged", "changed", "interval"),
    [
        pytest.param(0, False, 3 * H, id="first-unchanged"),
        pytest.param(1, False, 4.5 * H, id="one-unchanged"),
        pytest.param(2, False, 6.75 * H, id="two-unchanged"),
        pytest.param(4, False, 12 * H, id="capped"),
        pytest.param(10**6, False, 12 * H, id="huge-count-capped"),
        pytest.param(5, True, 3 * H, id="new-event-resets"),
    ],
)
def test_backoff_and_reset(unchanged: int, changed: bool, interval: timedelta) -> None:
    assert nxt(ship(unchanged_polls=unchanged), changed=changed) == (NOW + interval, None)


def test_base_above_cap_is_not_shortened_and_factor_below_one_ignored() -> None:
    slow = dataclasses.replace(NO_JITTER, pending=24 * H)
    assert nxt(ship(status=Status.pending, unchanged_polls=3), changed=False, policy=slow) == (
        NOW + 24 * H, None)
    shrinking = dataclasses.replace(NO_JITTER, backoff_factor=0.5)
    assert nxt(ship(unchanged_polls=3), changed=False, policy=shrinking) == (NOW + 3 * H, None)


def test_delivered_confirmations_then_stop() -> None:
    delivered = ship(status=Status.delivered, delivered_at=NOW)
    assert nxt(delivered, changed=True) == (NOW + 6 * H, None)
    assert nxt(dataclasses.replace(delivered, unchanged_polls=1), changed=False) == (
        NOW + 6 * H, None)
    assert nxt(dataclasses.replace(delivered, unchanged_polls=2), changed=False) == (None, None)
    # A correction event during the confirmations restarts them.
    assert nxt(dataclasses.replace(delivered, unchanged_polls=2), changed=True) == (
        NOW + 6 * H, None)
    none = dataclasses.replace(NO_JITTER, delivered_confirmations=0)
    assert nxt(delivered, changed=True, policy=none) == (None, None)
    old = dataclasses.replace(delivered, created_at=NOW - 61 * 24 * H)
    assert nxt(old, changed=True) == (None, None)


@pytest.mark.parametrize(
    ("s", "expected"),
    [
        pytest.param(ship(created_at=NOW - 60 * 24 * H), (None, Status.expired),
                     id="exactly-max-age-expires"),
        pytest.param(ship(status=Status.pending, created_at=NOW - 90 * 24 * H),
                     (None, Status.expired), id="never-found-expires"),
        pytest.param(ship(created_at=NOW - 60 * 24 * H + H), (NOW + H, None),
                     id="last-poll-lands-on-expiry"),
        pytest.param(ship(created_at=None, unchanged_polls=0), (NOW + 3 * H, None),
                     id="no-created-time-no-expiry"),
        pytest.param(ship(status=Status.returned), (None, None), id="returned-stops"),
        pytest.param(ship(status=Status.expired), (None, None), id="expired-stops"),
    ],
)
def test_expiry_and_stops(s: Shipment, expected: tuple[datetime | None, Status | None]) -> None:
    assert nxt(s) == expected


@settings(max_examples=200, deadline=None)
@given(rand=st.floats(0, 1, exclude_max=True), jitter=st.floats(0, 0.5),
       unchanged=st.integers(0, 20), status=st.sampled_from(
           [Status.pending, Status.in_transit, Status.out_for_delivery, Status.exception]))
def test_jitter_bounds(rand: float, jitter: float, unchanged: int, status: Status) -> None:
    s = ship(status=status, unchanged_polls=unchanged)
    plain, _ = nxt(s, changed=False)
    jittered, override = nxt(s, changed=False, rand=rand,
                             policy=dataclasses.replace(P, jitter=jitter))
    assert plain is not None and jittered is not None and override is None
    interval = plain - NOW
    assert NOW + interval * (1 - jitter) - timedelta(microseconds=1) <= jittered
    assert jittered <= NOW + interval * (1 + jitter) + timedelta(microseconds=1)


def test_jitter_extremes_and_bad_input() -> None:
    s = ship()
    assert nxt(s, policy=P, rand=0.0) == (NOW + 3 * H * 0.9, None)
    assert nxt(s, policy=P, rand=0.5) == (NOW + 3 * H, None)
    assert nxt(s, policy=P, rand=math.nan) == (NOW + 3 * H, None)
    assert nxt(s, policy=P, rand=7.0) == (NOW + 3 * H * 1.1, None)
    wild = dataclasses.replace(P, jitter=5.0)  # clamped so the interval stays positive
    first, _ = nxt(s, policy=wild, rand=0.0)
    assert first is not None and first > NOW


# --- priority and budget ---------------------------------------------------------------------


def test_priority_order_for_equal_waits() -> None:
    def prio(s: Shipment, exc: bool = False) -> float:
        return poll_priority(s, now=NOW, has_open_exception=exc)

    ofd = prio(ship(status=Status.out_for_delivery))
    past_edd = prio(ship(current_edd=TODAY))
    exception = prio(ship(status=Status.exception))
    open_exception = prio(ship(), exc=True)
    in_transit = prio(ship())
    pending = prio(ship(status=Status.pending))
    assert ofd > past_edd > exception > in_transit > pending
    assert open_exception > in_transit
    assert prio(ship(status=Status.exception), exc=True) > exception


def test_priority_grows_with_time_since_last_poll() -> None:
    def prio(s: Shipment) -> float:
        return poll_priority(s, now=NOW, has_open_exception=False)

    fresh = prio(ship(status=Status.pending))
    waited = prio(ship(status=Status.pending, last_poll_at=NOW - 10 * H))
    never_polled = prio(ship(status=Status.pending, last_poll_at=None,
                             created_at=NOW - 10 * H))
    assert waited > fresh
    assert never_polled == waited
    assert prio(ship(last_poll_at=None, created_at=None)) == prio(ship())
    assert prio(ship(last_poll_at=NOW + H)) == prio(ship())  # clock skew never lowers it


def test_budget_prefers_useful_polls() -> None:
    ofd = ship(id=1, status=Status.out_for_delivery)
    past = ship(id=2, current_edd=TODAY)
    exc = ship(id=3)
    plain = ship(id=4)
    pending = ship(id=5, status=Status.pending)
    chosen, deferred = select_within_budget([pending, plain, exc, past, ofd], budget=3, now=NOW,
                                            open_exceptions={3}, batch_size=1)
    assert chosen == [ofd, past, exc]
    assert deferred == [plain, pending]


def test_batches_pack_per_carrier() -> None:
    fedex = [ship(id=i, carrier="fedex", status=Status.out_for_delivery) for i in range(1, 4)]
    ups = [ship(id=10 + i, carrier="ups") for i in range(3)]
    dhl = ship(id=20, carrier="dhl", status=Status.pending)
    chosen, deferred = select_within_budget([*ups, dhl, *fedex], budget=2, now=NOW,
                                            open_exceptions=(), batch_size=2)
    # fedex needs 2 requests for 3 numbers; the budget buys those two; the 4th slot in the
    # second fedex batch is free but no other fedex shipment is due.
    assert chosen == fedex
    assert deferred == [*ups, dhl]
    chosen, deferred = select_within_budget([*ups, *fedex], budget=3, now=NOW,
                                            open_exceptions=(), batch_size=2)
    assert chosen == [*fedex, *ups[:2]]  # the third request carries two UPS numbers
    assert deferred == [ups[2]]


@pytest.mark.parametrize("budget", [0, -3])
def test_no_budget_defers_everything(budget: int) -> None:
    due = [ship(id=1), ship(id=2, status=Status.out_for_delivery)]
    chosen, deferred = select_within_budget(due, budget=budget, now=NOW, open_exceptions=(),
                                            batch_size=30)
    assert chosen == []
    assert deferred == [due[1], due[0]]


def requests_for(chosen: list[Shipment], batch_size: int) -> int:
    per_carrier = Counter(s.carrier.lower() for s in chosen)
    return sum(math.ceil(n / max(1, batch_size)) for n in per_carrier.values())


SHIPMENTS = st.builds(
    Shipment,
    carrier=st.sampled_from(["fedex", "ups", "UPS", "dhl"]),
    tracking_number=st.just("x"),
    id=st.none() | st.integers(1, 50),
    status=st.sampled_from(list(Status)),
    current_edd=st.none() | st.just(TODAY) | st.just(NEXT_WEEK),
    last_poll_at=st.none() | st.datetimes(min_value=datetime(2025, 3, 1),
                                          max_value=datetime(2025, 3, 10),
                                          timezones=st.just(UTC)),
    next_poll_at=st.none() | st.just(NOW - H),
)


@settings(max_examples=200, deadline=None)
@given(due=st.lists(SHIPMENTS, max_size=40), budget=st.integers(-1, 12),
       batch=st.integers(0, 5), exceptions=st.sets(st.integers(1, 50)))
def test_budget_is_never_exceeded_and_every_shipment_lands_once(
    due: list[Shipment], budget: int, batch: int, exceptions: set[int]
) -> None:
    chosen, deferred = select_within_budget(due, budget=budget, now=NOW,
                                            open_exceptions=exceptions, batch_size=batch)
    assert requests_for(chosen, batch) <= max(0, budget)
    assert Counter(map(id, chosen + deferred)) == Counter(map(id, due))
    # Nothing was deferred that the remaining budget could still have carried.
    if deferred:
        assert requests_for(chosen, batch) == max(0, budget) or all(
            requests_for([*chosen, d], batch) > budget for d in deferred)


def test_long_waiting_low_priority_shipment_eventually_wins() -> None:
    """Three parcels out for delivery are due every tick and the budget covers three
    requests; the pending parcel is deferred at first but gets its turn within a day."""
    tick = timedelta(minutes=30)
    busy = [ship(id=i, status=Status.out_for_delivery, last_poll_at=NOW) for i in range(1, 4)]
    starving = ship(id=9, status=Status.pending, last_poll_at=NOW)
    now = NOW
    won_at = None
    for n in range(1, 49):
        now = NOW + n * tick
        chosen, _ = select_within_budget([*busy, starving], budget=3, now=now,
                                         open_exceptions=(), batch_size=1)
        if starving in chosen:
            won_at = n
            break
        busy = [dataclasses.replace(s, last_poll_at=now) for s in chosen]
    assert won_at is not None and won_at > 1


@pytest.mark.parametrize(
    ("reset", "spread", "rank", "total", "expected"),
    [
        pytest.param(NOW + H, 10 * H, 0, 10, NOW + H, id="first-at-window-reset"),
        pytest.param(NOW + H, 10 * H, 5, 10, NOW + 6 * H, id="spread-by-rank"),
        pytest.param(NOW + H, 10 * H, 99, 10, NOW + 10 * H, id="rank-clamped-high"),
        pytest.param(NOW + H, 10 * H, -4, 10, NOW + H, id="rank-clamped-low"),
        pytest.param(None, 10 * H, 5, 10, NOW + 5 * H, id="unknown-reset-spreads-from-now"),
        pytest.param(NOW - H, 10 * H, 5, 10, NOW + 5 * H, id="past-reset-spreads-from-now"),
        pytest.param(NOW + H, 10 * H, 0, 1, NOW + H, id="single-deferred"),
        pytest.param(NOW + H, timedelta(0), 3, 10, NOW + H, id="no-spread"),
    ],
)
def test_defer_time(reset: datetime | None, spread: timedelta, rank: int, total: int,
                    expected: datetime) -> None:
    assert defer_time(NOW, window_resets_at=reset, spread=spread, rank=rank,
                      total=total) == expected


@settings(max_examples=100, deadline=None)
@given(total=st.integers(2, 500), spread_s=st.integers(1, 86400))
def test_defer_times_are_spread_and_ordered(total: int, spread_s: int) -> None:
    spread = timedelta(seconds=spread_s)
    times = [defer_time(NOW, window_resets_at=NOW + H, spread=spread, rank=r, total=total)
             for r in range(total)]
    assert times == sorted(times)
    assert times[0] == NOW + H
    assert times[-1] < NOW + H + spread


def test_zero_interval_is_not_backed_off_into_an_error() -> None:
    eager = dataclasses.replace(NO_JITTER, in_transit=timedelta(0))
    assert nxt(ship(unchanged_polls=3), changed=False, policy=eager) == (NOW, None)


# --- destination-aware delivery window -------------------------------------------------------

NY = LocalDay(tz=ZoneInfo("America/New_York"))  # delivery hours 06:00-21:00 local
# 2025-03-10 is a Monday; New York is on EDT (UTC-4) from 2025-03-09.
MORNING = datetime(2025, 3, 10, 10, tzinfo=UTC)   # 06:00 in New York
NIGHT = datetime(2025, 3, 11, 3, tzinfo=UTC)      # 23:00 on the 10th in New York


def test_delivery_window_in_local_time() -> None:
    s = ship(current_edd=TODAY)
    assert delivery_window(s, local=NY) == (MORNING, datetime(2025, 3, 12, 4, tzinfo=UTC))
    assert not at_or_past_edd(s, now=MORNING - timedelta(minutes=1), local=NY)
    assert at_or_past_edd(s, now=MORNING, local=NY)
    # Without the zone: opens when the day may have begun anywhere, closes when the day
    # after may have ended everywhere.
    assert delivery_window(s) == (datetime(2025, 3, 9, 10, tzinfo=UTC),
                                  datetime(2025, 3, 12, 12, tzinfo=UTC))
    assert delivery_window(ship()) is None
    ranged = ship(current_edd=DeliveryWindow(start=date(2025, 3, 10), end=date(2025, 3, 12)))
    assert delivery_window(ranged, local=NY) == (MORNING, datetime(2025, 3, 14, 4, tzinfo=UTC))


@pytest.mark.parametrize(
    ("s", "now", "expected"),
    [
        pytest.param(ship(current_edd=TODAY, unchanged_polls=6), MORNING + 2 * H,
                     MORNING + 3 * H, id="window-in-hours-not-backed-off"),
        pytest.param(ship(status=Status.out_for_delivery, current_edd=TODAY, unchanged_polls=6),
                     MORNING + 2 * H, MORNING + 2.5 * H, id="out-for-delivery-not-backed-off"),
        pytest.param(ship(current_edd=TODAY, unchanged_polls=6), NIGHT,
                     datetime(2025, 3, 11, 10, tzinfo=UTC), id="window-night-waits-for-morning"),
        pytest.param(ship(current_edd=TODAY, unchanged_polls=1), NIGHT,
                     NIGHT + 1.5 * H, id="window-night-backs-off"),
        pytest.param(ship(status=Status.out_for_delivery, unchanged_polls=10), NIGHT,
                     datetime(2025, 3, 11, 10, tzinfo=UTC), id="out-for-delivery-night"),
        pytest.param(ship(current_edd=DeliveryWindow.day(date(2025, 3, 11)), unchanged_polls=6),
                     NIGHT - 2 * H, datetime(2025, 3, 11, 10, tzinfo=UTC),
                     id="first-poll-at-the-delivery-morning"),
        pytest.param(ship(current_edd=DeliveryWindow.day(date(2025, 3, 1)),
                          unchanged_polls=10), MORNING, MORNING + 12 * H,
                     id="long-past-the-window-backs-off"),
        pytest.param(ship(status=Status.available_for_pickup, current_edd=TODAY,
                          unchanged_polls=6), MORNING, MORNING + 12 * H,
                     id="pickup-backs-off"),
    ],
)
def test_local_schedule(s: Shipment, now: datetime, expected: datetime) -> None:
    assert next_poll_at(s, now=now, policy=NO_JITTER, changed=False, rand=0.5,
                        local=NY) == (expected, None)


def test_likely_news() -> None:
    def news(s: Shipment, now: datetime) -> bool:
        return likely_news(s, now=now, local=NY)

    ofd = ship(status=Status.out_for_delivery, last_event_at=MORNING)
    assert news(ofd, MORNING + H)
    assert not news(ofd, NIGHT)  # nothing is delivered at night
    assert not news(ofd, MORNING + 2 * 24 * H)  # stuck for two days: polled on schedule
    assert news(ship(current_edd=TODAY), MORNING)
    assert not news(ship(current_edd=TODAY), MORNING - H)
    assert not news(ship(current_edd=DeliveryWindow.day(date(2025, 3, 1))), MORNING)
    assert not news(ship(), MORNING)
    assert news(ship(status=Status.failed_attempt, last_event_at=MORNING), MORNING + H)
    assert likely_news(ship(current_edd=TODAY), now=MORNING - H)  # zone unknown: any hour


def test_priority_in_local_time() -> None:
    def prio(s: Shipment, now: datetime) -> float:
        return poll_priority(s, now=now, has_open_exception=False, local=NY)

    window = ship(current_edd=TODAY, last_poll_at=None, created_at=None)
    transit = ship(last_poll_at=None, created_at=None)
    ofd = ship(status=Status.out_for_delivery, last_poll_at=None, created_at=None)
    assert prio(ofd, MORNING) > prio(window, MORNING) > prio(transit, MORNING)
    # At night near delivery counts as in transit (late: a little more).
    assert prio(ofd, NIGHT) == prio(transit, NIGHT)
    assert prio(transit, NIGHT) < prio(window, NIGHT) < prio(window, MORNING)


def test_local_day_from_the_customer_zone() -> None:
    assert local_day("America/New_York") == NY
    assert local_day("Europe/Berlin", start_hour=7, end_hour=20) == LocalDay(
        tz=ZoneInfo("Europe/Berlin"), start_hour=7, end_hour=20)
    # The default zone of an order nobody set, and nonsense, are "unknown".
    assert local_day("UTC") is None
    assert local_day("") is None
    assert local_day("Not/AZone") is None
    assert local_day("../etc/passwd") is None


def test_out_for_delivery_stuck_for_days_backs_off() -> None:
    fresh = ship(status=Status.out_for_delivery, last_event_at=MORNING, unchanged_polls=10)
    stuck = dataclasses.replace(fresh, last_event_at=MORNING - 3 * 24 * H)
    now = MORNING + 2 * H
    assert next_poll_at(fresh, now=now, policy=NO_JITTER, changed=False, rand=0.5,
                        local=NY) == (now + 0.5 * H, None)
    # Backed off to the cap, but never past the next delivery morning.
    assert next_poll_at(stuck, now=now, policy=NO_JITTER, changed=False, rand=0.5,
                        local=NY) == (now + 12 * H, None)
