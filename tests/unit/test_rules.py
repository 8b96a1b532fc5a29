"""Anomaly rules, recheck_at, reconcile and event de-duplication (pure, table-driven)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carriers.model import DeliveryWindow, ExceptionReason, Location, Status, TrackingEvent
from notifier.calendar import BusinessCalendar
from notifier.config import AnomalySettings
from notifier.events import new_events, sorted_events
from notifier.models import Anomaly, AnomalyKind, Customer, OmsStatus, Order, Shipment
from notifier.rules import Finding, RulePolicy, Verdict, evaluate, reconcile

K = AnomalyKind
NY = ZoneInfo("America/New_York")
LA = ZoneInfo("America/Los_Angeles")
DAY = timedelta(days=1)

POLICY = RulePolicy(
    calendar=BusinessCalendar(business_days=True, weekend=frozenset({5, 6}),
                              holidays=frozenset({date(2025, 3, 17)})),  # Monday 17th is off
    stale_processing_days=2,
    payment_hold_days=3,
    stale_pre_transit_days=3,
    stale_in_transit_days=3,
    stale_in_transit_days_by_carrier=MappingProxyType({"usps": 5}),
    not_found_grace=timedelta(days=2),
    edd_slip_min_days=1,
)
CALENDAR_DAYS = dataclasses.replace(POLICY, calendar=BusinessCalendar(business_days=False))


def utc(day: int, hour: int = 0, minute: int = 0) -> datetime:
    """An instant in March 2025 (the 3rd is a Monday)."""
    return datetime(2025, 3, day, hour, minute, tzinfo=UTC)


def ny(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=NY)


def ship(**kw: object) -> Shipment:
    base: dict[str, object] = {"carrier": "fedex", "tracking_number": "123456789012",
                               "order_id": "A1", "id": 1, "created_at": utc(3, 10)}
    base.update(kw)
    return Shipment(**base)  # type: ignore[arg-type]


def order(*shipments: Shipment, tz: str = "UTC", **kw: object) -> Order:
    base: dict[str, object] = {"id": "A1", "customer": Customer(email="c@example.com", tz=tz),
                               "oms_status": OmsStatus.processing, "placed_at": utc(3, 10),
                               "shipments": shipments}
    base.update(kw)
    return Order(**base)  # type: ignore[arg-type]


def event(at: datetime, status: Status = Status.in_transit, code: str = "IT",
          description: str = "In transit", **kw: object) -> TrackingEvent:
    return TrackingEvent(at=at, status=status, code=code, description=description,
                         location=Location(city="Memphis", country="US"), **kw)  # type: ignore[arg-type]


def run(o: Order, now: datetime, *, events: Mapping[int, Sequence[TrackingEvent]] | None = None,
        disputes: frozenset[int] = frozenset(), policy: RulePolicy = POLICY,
        dest_tz: Mapping[int, str] | None = None) -> Verdict:
    return evaluate(o, events=events or {}, open_disputes=disputes, now=now, policy=policy,
                    dest_tz=dest_tz)


def kinds(v: Verdict) -> set[AnomalyKind]:
    return {f.kind for f in v.findings}


def moving(**kw: object) -> Shipment:
    """In transit since Monday 3rd 10:00 UTC, last polled successfully at ``seen``."""
    base: dict[str, object] = {"status": Status.in_transit, "last_event_at": utc(3, 10)}
    base.update(kw)
    return ship(**base)


# Each case: (order, events, disputes, now, expected kinds[, policy, dest_tz]).
def case(o: Order, evs: Mapping[int, Sequence[TrackingEvent]], disputes: tuple[int, ...],
         now: datetime, expected: set[AnomalyKind], *, id: str, policy: RulePolicy = POLICY,
         dest: Mapping[int, str] | None = None) -> object:
    return pytest.param(o, evs, disputes, now, expected, policy, dest, id=id)


CASES = [
    # --- stale_processing ---------------------------------------------------------------
    case(order(), {}, (), utc(5, 10), {K.stale_processing}, id="processing-2-bdays"),
    case(order(), {}, (), utc(5, 9, 59), set(), id="processing-just-under"),
    case(order(placed_at=utc(7, 10)), {}, (), utc(10, 10), set(),
                 id="processing-weekend-not-counted"),
    case(order(placed_at=utc(7, 10)), {}, (), utc(11, 10), {K.stale_processing},
                 id="processing-after-weekend"),
    case(order(placed_at=utc(14, 10)), {}, (), utc(18, 10), set(),
                 id="processing-weekend-plus-holiday"),
    case(order(placed_at=utc(7, 10)), {}, (), utc(9, 10), {K.stale_processing},
                 id="processing-calendar-days", policy=CALENDAR_DAYS),
    case(order(oms_status=OmsStatus.received), {}, (), utc(6), {K.stale_processing},
                 id="received-counts-too"),
    case(order(oms_status=OmsStatus.payment_hold, updated_at=utc(4, 10)), {}, (),
                 utc(5, 10), {K.stale_processing}, id="payment-hold-processing-threshold"),
    case(order(oms_status=OmsStatus.backordered, expected_ship_date=date(2025, 3, 12),
                       tz="America/New_York"), {}, (), ny(13, 0), {K.stale_processing},
                 id="backordered-past-expected-ship-date"),
    case(order(oms_status=OmsStatus.backordered, expected_ship_date=date(2025, 3, 12),
                       tz="America/New_York"), {}, (), ny(12, 23, 59), set(),
                 id="backordered-on-expected-ship-date"),
    case(order(oms_status=OmsStatus.backordered), {}, (), utc(5, 10),
                 {K.stale_processing}, id="backordered-without-date"),
    case(order(oms_status=OmsStatus.cancelled), {}, (), utc(20), set(),
                 id="cancelled-never-stale"),
    case(order(placed_at=None), {}, (), utc(20), set(), id="no-placed-time"),
    case(order(ship(status=Status.info_received)), {}, (), utc(4), set(),
                 id="shipment-exists-not-processing"),
    # --- stale_pre_transit ---------------------------------------------------------------
    case(order(ship(status=Status.info_received, last_success_at=utc(6, 10))),
                 {}, (), utc(6, 10), {K.stale_pre_transit}, id="pre-transit-3-bdays"),
    case(order(ship(status=Status.info_received, last_success_at=utc(6, 9))),
                 {}, (), utc(6, 12), set(), id="pre-transit-no-poll-after-threshold"),
    case(order(ship(status=Status.info_received, created_at=utc(7, 10),
                            last_success_at=utc(12, 10))), {}, (), utc(12, 10),
                 {K.stale_pre_transit}, id="pre-transit-label-friday"),
    case(order(ship(status=Status.info_received, created_at=utc(7, 10),
                            last_success_at=utc(11, 10))), {}, (), utc(11, 10), set(),
                 id="pre-transit-weekend-not-counted"),
    case(order(ship(status=Status.info_received, created_at=utc(8, 10),
                            last_success_at=utc(8, 10)),
                       oms_status=OmsStatus.processing), {1: [event(utc(3, 10), Status.
                       info_received, "OC", "Label created")]}, (), utc(8, 10),
                 {K.stale_pre_transit}, id="pre-transit-counts-from-label-event"),
    case(order(ship(status=Status.info_received, created_at=None)), {}, (), utc(20),
                 set(), id="pre-transit-no-times"),
    # --- stale_in_transit (outage-aware) -------------------------------------------------
    case(order(moving(last_success_at=utc(6, 10))), {}, (), utc(6, 10),
                 {K.stale_in_transit}, id="in-transit-3-bdays"),
    case(order(moving(last_success_at=utc(6, 10), status=Status.out_for_delivery)),
                 {}, (), utc(6, 10), {K.stale_in_transit}, id="out-for-delivery-stalls-too"),
    case(order(moving(last_success_at=utc(6, 9, 59))), {}, (), utc(6, 10), set(),
                 id="in-transit-last-poll-before-threshold"),
    case(order(moving(last_success_at=utc(6, 10), carrier="USPS")), {}, (),
                 utc(6, 10), set(), id="in-transit-carrier-override"),
    case(order(moving(last_success_at=utc(10, 10), carrier="usps")), {}, (),
                 utc(10, 10), {K.stale_in_transit}, id="in-transit-override-reached"),
    case(order(moving(last_event_at=utc(7, 10), last_success_at=utc(11, 10))), {}, (),
                 utc(11, 10), set(), id="in-transit-weekend-not-counted"),
    # Carrier down Tue-Thu: 3 days blind. Friday's successful poll shows nothing new, yet only
    # about a business day was observable, so the parcel is not stale.
    case(order(moving(blind_seconds=3 * 86400, last_success_at=utc(7, 10))), {}, (),
                 utc(7, 10), set(), id="carrier-outage-3-days-not-stale"),
    case(order(moving(blind_seconds=3 * 86400, last_success_at=utc(11, 10))), {}, (),
                 utc(11, 10), {K.stale_in_transit}, id="outage-then-observed-silence"),
    # Outage still going on (blind not yet counted): the last success predates the threshold.
    case(order(moving(last_success_at=utc(4, 10), consecutive_failures=40)), {}, (),
                 utc(10), set(), id="ongoing-outage-no-evidence"),
    case(order(moving(last_success_at=None)), {}, (), utc(20), set(),
                 id="never-polled-no-evidence"),
    case(order(moving(last_event_at=None, last_success_at=utc(6, 10))),
                 {1: [event(utc(5, 10)), event(utc(3, 10))]}, (), utc(6, 10), set(),
                 id="events-out-of-order-latest-counts"),
    case(order(moving(last_event_at=None, last_success_at=utc(6, 10))),
                 {1: [event(utc(3, 10))]}, (), utc(6, 10), {K.stale_in_transit},
                 id="events-only-last-event"),
    # A guessed offset may be 14 h early; the rule waits for the latest possible reading.
    case(order(moving(last_event_at=None, last_success_at=utc(6, 12))),
                 {1: [event(utc(3, 10), offset_assumed=True)]}, (), utc(6, 12), set(),
                 id="offset-assumed-waits-for-latest-reading"),
    case(order(moving(last_event_at=None, last_success_at=utc(7, 0))),
                 {1: [event(utc(3, 10), offset_assumed=True)]}, (), utc(7, 0),
                 {K.stale_in_transit}, id="offset-assumed-stale-later"),
    case(order(moving(last_event_at=None, created_at=utc(3, 10),
                              last_success_at=utc(6, 10))), {}, (), utc(6, 10),
                 {K.stale_in_transit}, id="in-transit-falls-back-to-created"),
    case(order(moving(last_event_at=None, created_at=None, last_success_at=utc(6))),
                 {}, (), utc(20), set(), id="in-transit-no-times"),
    case(order(moving(status=Status.available_for_pickup, last_success_at=utc(20))),
                 {}, (), utc(20), set(), id="pickup-is-not-moving"),
    # --- edd_slipped ---------------------------------------------------------------------
    case(order(moving(first_edd=DeliveryWindow.day(date(2025, 3, 5)),
                              current_edd=DeliveryWindow.day(date(2025, 3, 7)))), {}, (),
                 utc(4), {K.edd_slipped}, id="edd-slipped-two-days"),
    case(order(moving(first_edd=DeliveryWindow.day(date(2025, 3, 5)),
                              current_edd=DeliveryWindow.day(date(2025, 3, 4)))), {}, (),
                 utc(4), set(), id="edd-earlier-is-not-a-slip"),
    case(order(moving(first_edd=DeliveryWindow(start=date(2025, 3, 3),
                                                       end=date(2025, 3, 5)),
                              current_edd=DeliveryWindow.day(date(2025, 3, 5)))), {}, (),
                 utc(4), set(), id="edd-window-start-moved-less-than-a-day"),
    case(order(moving(first_edd=DeliveryWindow(start=date(2025, 3, 4),
                                                       end=date(2025, 3, 5)),
                              current_edd=DeliveryWindow(start=date(2025, 3, 4),
                                                         end=date(2025, 3, 6)))), {}, (),
                 utc(4), {K.edd_slipped}, id="edd-window-end-compared"),
    case(order(moving(first_edd=DeliveryWindow.day(date(2025, 3, 5)),
                              current_edd=DeliveryWindow.day(date(2025, 3, 6)))), {}, (),
                 utc(4), set(), id="edd-slip-below-minimum",
                 policy=dataclasses.replace(POLICY, edd_slip_min_days=2)),
    case(order(moving(first_edd=DeliveryWindow.day(date(2025, 3, 4)),
                              current_edd=DeliveryWindow.day(date(2025, 3, 6))),
                       promised_date=date(2025, 3, 6)), {}, (), utc(4), set(),
                 id="edd-within-promise-is-not-a-slip"),
    case(order(moving(current_edd=DeliveryWindow.day(date(2025, 3, 7))),
                       promised_date=date(2025, 3, 6)), {}, (), utc(4), {K.edd_slipped},
                 id="edd-later-than-promise"),
    case(order(moving(current_edd=DeliveryWindow.day(date(2025, 3, 7)))), {}, (),
                 utc(4), set(), id="edd-without-baseline"),
    # --- overdue (destination zone) -------------------------------------------------------
    case(order(moving(current_edd=DeliveryWindow.day(date(2025, 3, 5))),
                       tz="America/Los_Angeles"), {}, (), utc(6, 7, 59), set(),
                 id="edd-day-not-over-in-los-angeles"),
    case(order(moving(current_edd=DeliveryWindow.day(date(2025, 3, 5))),
                       tz="America/Los_Angeles"), {}, (), utc(6, 8), {K.overdue},
                 id="edd-day-over-in-los-angeles"),
    case(order(moving(current_edd=DeliveryWindow.day(date(2025, 3, 5)))), {}, (),
                 utc(6, 8), set(), id="dest-tz-overrides-customer-tz",
                 dest={1: "Pacific/Honolulu"}),
    case(order(moving(current_edd=DeliveryWindow(start=date(2025, 3, 4),
                                                         end=date(2025, 3, 6)))), {}, (),
                 utc(6, 12), set(), id="edd-window-end-not-over"),
    case(order(moving(first_edd=DeliveryWindow.day(date(2025, 3, 5)))), {}, (),
                 utc(6), {K.overdue}, id="overdue-uses-first-edd-if-dropped"),
    case(order(ship(status=Status.info_received), promised_date=date(2025, 3, 5)),
                 {}, (), utc(6), {K.overdue}, id="overdue-against-promise"),
    case(order(moving(status=Status.available_for_pickup,
                              current_edd=DeliveryWindow.day(date(2025, 3, 5)))),
                 {}, (), utc(9), set(), id="pickup-is-not-overdue"),
    # --- exception -----------------------------------------------------------------------
    case(order(moving(status=Status.exception)), {}, (), utc(4), {K.exception},
                 id="exception"),
    case(order(moving(status=Status.failed_attempt)), {}, (), utc(4), {K.exception},
                 id="failed-attempt"),
    case(order(moving(status=Status.returned)), {}, (), utc(4), {K.exception},
                 id="returned"),
    # --- not_found -----------------------------------------------------------------------
    case(order(ship(last_success_at=utc(5, 9))), {}, (), utc(5, 10), {K.not_found},
                 id="not-found-after-grace"),
    case(order(ship(last_success_at=utc(5, 9))), {}, (), utc(5, 9, 59), set(),
                 id="not-found-within-grace"),
    case(order(ship(last_success_at=None)), {}, (), utc(9), set(),
                 id="not-found-needs-a-successful-poll"),
    case(order(ship(last_success_at=utc(5), blind_seconds=86400)), {}, (), utc(5, 12),
                 set(), id="not-found-grace-extended-by-outage"),
    case(order(ship(status=Status.expired, last_success_at=utc(5))), {}, (), utc(9),
                 {K.not_found}, id="expired-never-found"),
    case(order(ship(last_success_at=utc(5))), {1: [event(utc(4), Status.pending)]}, (),
                 utc(9), set(), id="pending-with-events-was-found"),
    case(order(ship(created_at=None, last_success_at=utc(5))), {}, (), utc(9), set(),
                 id="not-found-no-created-time"),
    # --- delivered / disputed --------------------------------------------------------------
    case(order(moving(status=Status.delivered, delivered_at=utc(4),
                              last_success_at=utc(20),
                              first_edd=DeliveryWindow.day(date(2025, 3, 3)),
                              current_edd=DeliveryWindow.day(date(2025, 3, 10)))),
                 {1: [event(utc(3), Status.exception, "EX")]}, (), utc(20), set(),
                 id="delivered-never-stale-overdue-or-exception"),
    case(order(moving(status=Status.delivered, delivered_at=utc(4))), {}, (1,),
                 utc(5), {K.delivered_disputed}, id="delivered-disputed"),
    case(order(moving(status=Status.in_transit)), {}, (1,), utc(4), set(),
                 id="dispute-needs-delivery"),
    case(order(moving(status=Status.delivered, delivered_at=utc(4)),
                       oms_status=OmsStatus.cancelled), {}, (1,), utc(5),
                 {K.delivered_disputed}, id="dispute-survives-cancel"),
    case(order(moving(status=Status.exception), oms_status=OmsStatus.cancelled), {},
                 (), utc(20), set(), id="cancelled-order-no-shipment-findings"),
    # A correction scan after delivery ("delivery location updated") stays delivered.
    case(order(moving(status=Status.delivered, delivered_at=utc(4),
                              last_event_at=utc(6), last_success_at=utc(20))),
                 {1: [event(utc(4), Status.delivered, "DL", "Delivered"),
                      event(utc(6), Status.delivered, "DC", "Delivery location corrected")]},
                 (), utc(20), set(), id="delivered-then-correction-event"),
    # The store moved it back on a newer event: the rules treat it as moving again.
    case(order(moving(status=Status.in_transit, delivered_at=utc(4),
                              last_event_at=utc(6), last_success_at=utc(20),
                              current_edd=DeliveryWindow.day(date(2025, 3, 5)))),
                 {1: [event(utc(4), Status.delivered, "DL"), event(utc(6), Status.in_transit,
                                                                   "MS", "Mis-delivered")]},
                 (), utc(20), {K.stale_in_transit, K.overdue}, id="delivery-corrected-back"),
]


@pytest.mark.parametrize(("o", "evs", "disputes", "now", "expected", "policy", "dest"), CASES)
def test_rules(o: Order, evs: Mapping[int, Sequence[TrackingEvent]], disputes: tuple[int, ...],
               now: datetime, expected: set[AnomalyKind], policy: RulePolicy,
               dest: Mapping[int, str] | None) -> None:
    verdict = run(o, now, events=evs, disputes=frozenset(disputes), policy=policy, dest_tz=dest)
    assert kinds(verdict) == expected
    assert all(f.order_id == o.id for f in verdict.findings)
    for f in verdict.findings:
        assert f.detail
        assert (f.shipment_id is None) == (f.kind is K.stale_processing)
        assert f.carrier == (None if f.shipment_id is None else o.shipments[0].carrier)


# --- details carry a reason -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("o", "now", "policy", "needle"),
    [
        pytest.param(order(), utc(5, 10), POLICY, "still processing: no shipment after 2 "
                     "business days", id="processing"),
        pytest.param(order(oms_status=OmsStatus.payment_hold, updated_at=utc(3, 10)),
                     utc(4, 10), dataclasses.replace(POLICY, payment_hold_days=1),
                     "payment on hold since 2025-03-03 10:00 UTC: longer than 1 business days",
                     id="payment-hold"),
        pytest.param(order(oms_status=OmsStatus.backordered,
                           expected_ship_date=date(2025, 3, 4)), utc(5), POLICY,
                     "backordered past its expected ship date 2025-03-04", id="backordered"),
        pytest.param(order(oms_status=OmsStatus.backordered), utc(5, 10), CALENDAR_DAYS,
                     "still backordered with no expected ship date: no shipment after 2 days",
                     id="backordered-no-date"),
    ],
)
def test_stale_processing_detail(o: Order, now: datetime, policy: RulePolicy,
                                 needle: str) -> None:
    (finding,) = run(o, now, policy=policy).findings
    assert needle in finding.detail


def test_earliest_reason_wins_and_stays_put() -> None:
    # On hold since Tuesday with a 1-day hold limit: the hold limit passes first (Wed 10:00),
    # the processing limit (Wed 10:00 from Monday) too; once both passed the earlier is shown.
    o = order(oms_status=OmsStatus.payment_hold, updated_at=utc(3, 12))
    pol = dataclasses.replace(POLICY, payment_hold_days=0.5)
    first = run(o, utc(4, 0), policy=pol)
    later = run(o, utc(10), policy=pol)
    assert "payment on hold" in first.findings[0].detail
    assert first.findings[0].detail == later.findings[0].detail


def test_exception_detail_uses_latest_problem_event_whatever_the_order() -> None:
    evs = [event(utc(5, 9), Status.failed_attempt, "A2", "Second attempt: nobody home",
                 exception_reason=ExceptionReason.refused),
           event(utc(3, 9), Status.in_transit, "IT"),
           event(utc(4, 9), Status.failed_attempt, "A1", "First attempt")]
    o = order(moving(status=Status.failed_attempt))
    (finding,) = run(o, utc(5, 10), events={1: evs}).findings
    assert finding.detail == ("failed_attempt (refused) at 2025-03-05 09:00 UTC [A2]: "
                              "Second attempt: nobody home")


def test_exception_detail_without_events_uses_status_detail() -> None:
    o = order(moving(status=Status.exception, exception_reason=ExceptionReason.customs,
                     status_detail="Held by customs"))
    (finding,) = run(o, utc(4)).findings
    assert finding.detail == "exception (customs): Held by customs"
    bare = run(order(moving(status=Status.returned)), utc(4)).findings[0]
    assert bare.detail == "returned"


def test_other_details() -> None:
    slipped = order(moving(first_edd=DeliveryWindow.day(date(2025, 3, 5)),
                           current_edd=DeliveryWindow(start=date(2025, 3, 6),
                                                      end=date(2025, 3, 8))))
    assert run(slipped, utc(4)).findings[0].detail == (
        "estimated delivery 2025-03-06..2025-03-08 is 3 day(s) later than the first carrier "
        "estimate 2025-03-05")
    late = order(moving(current_edd=DeliveryWindow.day(date(2025, 3, 5))), tz="America/New_York")
    assert run(late, utc(9)).findings[0].detail == (
        "expected by 2025-03-05 (America/New_York); not delivered")
    stale = order(moving(last_success_at=utc(7)))
    assert run(stale, utc(7)).findings[0].detail == (
        "no carrier event since 2025-03-03 10:00 UTC: threshold 3 business days")
    disputed = order(moving(status=Status.delivered, delivered_at=None))
    assert "delivered at an unknown time" in run(disputed, utc(4), disputes=frozenset({1})
                                                  ).findings[0].detail


# --- recheck_at --------------------------------------------------------------------------------

RECHECK_CASES = [
    pytest.param(order(), K.stale_processing, utc(5, 10), id="processing-threshold"),
    pytest.param(order(placed_at=ny(7, 15), tz="America/New_York"), K.stale_processing,
                 ny(11, 15), id="processing-threshold-over-weekend-ny"),
    pytest.param(order(oms_status=OmsStatus.backordered, expected_ship_date=date(2025, 3, 12),
                       tz="America/New_York"), K.stale_processing, ny(13),
                 id="backorder-ship-date-ends"),
    pytest.param(order(moving(current_edd=DeliveryWindow.day(date(2025, 3, 5))),
                       tz="America/Los_Angeles"), K.overdue, utc(6, 8), id="edd-day-ends"),
    pytest.param(order(ship(last_success_at=utc(3, 11), blind_seconds=3600)), K.not_found,
                 utc(5, 11), id="not-found-grace-ends"),
]


@pytest.mark.parametrize(("o", "kind", "expected_at"), RECHECK_CASES)
def test_recheck_at_is_exactly_when_the_finding_appears(o: Order, kind: AnomalyKind,
                                                        expected_at: datetime) -> None:
    early = run(o, utc(3, 12))
    assert kind not in kinds(early)
    assert early.recheck_at == expected_at
    just_before = run(o, expected_at - timedelta(microseconds=1))
    assert kind not in kinds(just_before)
    assert just_before.recheck_at == expected_at
    at = run(o, expected_at)
    assert kind in kinds(at)
    assert at.recheck_at is None


def test_recheck_at_is_the_earliest_of_several() -> None:
    o = order(moving(id=1, current_edd=DeliveryWindow.day(date(2025, 3, 7))),
              moving(id=2, current_edd=DeliveryWindow.day(date(2025, 3, 5))))
    v = run(o, utc(4))
    assert v.recheck_at == utc(6)
    v2 = run(o, utc(6))
    assert [(f.kind, f.shipment_id) for f in v2.findings] == [(K.overdue, 2)]
    assert v2.recheck_at == utc(8)


@pytest.mark.parametrize(
    "o",
    [
        pytest.param(moving(last_success_at=utc(4)), id="stale-in-transit-needs-a-poll"),
        pytest.param(moving(status=Status.info_received, last_success_at=utc(4)),
                     id="stale-pre-transit-needs-a-poll"),
        pytest.param(moving(status=Status.available_for_pickup,
                            first_edd=DeliveryWindow.day(date(2025, 3, 3)),
                            current_edd=DeliveryWindow.day(date(2025, 3, 5))),
                     id="edd-slip-changes-only-with-data"),
        pytest.param(moving(status=Status.delivered), id="delivered"),
    ],
)
def test_no_recheck_when_only_new_data_can_change_the_verdict(o: Shipment) -> None:
    o2 = order(o, oms_status=OmsStatus.processing)
    assert run(o2, utc(4)).recheck_at is None


# --- policy from settings -------------------------------------------------------------------


def test_policy_from_settings() -> None:
    s = AnomalySettings(business_days=False, holidays=(date(2025, 12, 25),), weekend=(6,),
                        stale_processing_days=1.5, payment_hold_days=4,
                        stale_pre_transit_days=2, stale_in_transit_days=6,
                        stale_in_transit_days_by_carrier={"USPS": 8},
                        not_found_grace=timedelta(hours=30), edd_slip_min_days=2)
    p = RulePolicy.from_settings(s)
    assert p.calendar == BusinessCalendar(business_days=False, weekend=frozenset({6}),
                                          holidays=frozenset({date(2025, 12, 25)}))
    assert (p.stale_processing_days, p.payment_hold_days, p.stale_pre_transit_days,
            p.stale_in_transit_days) == (1.5, 4, 2, 6)
    assert (p.not_found_grace, p.edd_slip_min_days) == (timedelta(hours=30), 2)
    assert p.in_transit_days("usps") == p.in_transit_days("Usps") == 8
    assert p.in_transit_days("dhl") == 6
    assert p.unit == "days"
    assert POLICY.unit == "business days"


# --- the delivered invariant (hypothesis) ------------------------------------------------------

STATUS = st.sampled_from(list(Status))
MARCH = st.datetimes(min_value=datetime(2025, 2, 1), max_value=datetime(2025, 5, 1),
                     timezones=st.just(UTC))
WINDOWS = st.builds(lambda d, n: DeliveryWindow(start=d, end=d + timedelta(days=n)),
                    st.dates(date(2025, 2, 1), date(2025, 5, 1)), st.integers(0, 3))


@settings(max_examples=150, deadline=None)
@given(
    last_event=st.none() | MARCH, created=st.none() | MARCH, seen=st.none() | MARCH,
    first=st.none() | WINDOWS, current=st.none() | WINDOWS, now=MARCH,
    blind=st.floats(0, 10 * 86400), evs=st.lists(st.builds(event, MARCH, STATUS), max_size=4),
    oms=st.sampled_from(list(OmsStatus)), disputed=st.booleans(),
)
def test_delivered_never_stale_overdue_or_exception(
    last_event: datetime | None, created: datetime | None, seen: datetime | None,
    first: DeliveryWindow | None, current: DeliveryWindow | None, now: datetime, blind: float,
    evs: list[TrackingEvent], oms: OmsStatus, disputed: bool,
) -> None:
    s = ship(status=Status.delivered, last_event_at=last_event, created_at=created,
             last_success_at=seen, first_edd=first, current_edd=current, blind_seconds=blind)
    v = run(order(s, oms_status=oms), now, events={1: evs},
            disputes=frozenset({1}) if disputed else frozenset())
    assert kinds(v) == ({K.delivered_disputed} if disputed else set())


# --- reconcile ---------------------------------------------------------------------------------


def anomaly(kind: AnomalyKind, shipment_id: int | None = 1, detail: str = "old",
            **kw: object) -> Anomaly:
    return Anomaly(kind=kind, order_id="A1", shipment_id=shipment_id, detail=detail,
                   opened_at=utc(3), **kw)  # type: ignore[arg-type]


def finding(kind: AnomalyKind, shipment_id: int | None = 1, detail: str = "old") -> Finding:
    return Finding(kind=kind, order_id="A1", shipment_id=shipment_id, detail=detail,
                   carrier=None if shipment_id is None else "fedex")


def test_reconcile_opens_updates_and_leaves_unchanged() -> None:
    o = order(moving())
    first = reconcile([], [finding(K.exception), finding(K.exception)], now=utc(4), order=o)
    assert first.opened == (finding(K.exception),)
    assert (first.updated, first.closed) == ((), ())
    same = reconcile([anomaly(K.exception)], [finding(K.exception)], now=utc(5), order=o)
    assert (same.opened, same.updated, same.closed) == ((), (), ())
    changed = reconcile([anomaly(K.exception)], [finding(K.exception, detail="new")],
                        now=utc(5), order=o)
    assert changed.updated == ((anomaly(K.exception), finding(K.exception, detail="new")),)
    assert (changed.opened, changed.closed) == ((), ())


def test_reconcile_identity_includes_shipment_and_kind() -> None:
    o = order(moving(id=1), moving(id=2))
    ch = reconcile([anomaly(K.exception, 1)], [finding(K.exception, 2), finding(K.overdue, 1),
                                                finding(K.exception, 1)], now=utc(5), order=o)
    assert ch.opened == (finding(K.exception, 2), finding(K.overdue, 1))
    assert ch.closed == ()


def test_reconcile_ignores_resolved_and_foreign_rows_and_closes_duplicates() -> None:
    o = order(moving())
    resolved = anomaly(K.exception, resolved_at=utc(4), resolution="delivered")
    dup_a, dup_b = anomaly(K.exception, id=1), anomaly(K.exception, id=2)
    other_order = dataclasses.replace(anomaly(K.overdue), order_id="B7")
    ch = reconcile([resolved, dup_a, other_order, dup_b], [finding(K.exception)], now=utc(5),
                   order=o)
    assert ch.opened == ()
    assert ch.closed == ((dup_b, "duplicate"),)
    disputes = [anomaly(K.delivered_disputed, id=1), anomaly(K.delivered_disputed, id=2)]
    assert reconcile(disputes, [], now=utc(5), order=o).closed == ()


CLOSE_CASES = [
    (K.stale_processing, None, order(moving()), "shipment appeared"),
    (K.stale_processing, None, order(oms_status=OmsStatus.cancelled), "order cancelled"),
    (K.stale_processing, None, order(), "order status changed"),
    (K.stale_pre_transit, 1, order(moving()), "first scan"),
    (K.stale_pre_transit, 1, order(moving(status=Status.info_received)), "new carrier event"),
    (K.stale_in_transit, 1, order(moving()), "new carrier event"),
    (K.stale_in_transit, 1, order(moving(status=Status.delivered)), "delivered"),
    (K.stale_in_transit, 1, order(moving(status=Status.returned)), "returned"),
    (K.exception, 1, order(moving()), "new carrier event"),
    (K.exception, 1, order(moving(status=Status.delivered)), "delivered"),
    (K.not_found, 1, order(moving()), "found"),
    (K.overdue, 1, order(moving(status=Status.delivered)), "delivered"),
    (K.overdue, 1, order(moving()), "new estimated delivery date"),
    (K.overdue, 1, order(moving(status=Status.available_for_pickup)), "available for pickup"),
    (K.edd_slipped, 1, order(moving(status=Status.delivered)), "delivered"),
    (K.edd_slipped, 1, order(moving(status=Status.returned)), "returned"),
    (K.edd_slipped, 1, order(moving(status=Status.expired)), "expired"),
    (K.edd_slipped, 1, order(moving()), None),
    (K.edd_slipped, 1, order(moving(status=Status.out_for_delivery)), None),
    (K.delivered_disputed, 1, order(moving(status=Status.in_transit)), None),
    (K.delivered_disputed, 1, order(moving(), oms_status=OmsStatus.cancelled), None),
    (K.exception, 7, order(moving()), "shipment removed"),
    (K.overdue, 1, order(moving(), oms_status=OmsStatus.cancelled), "order cancelled"),
]


@pytest.mark.parametrize(
    ("kind", "shipment_id", "o", "reason"),
    [pytest.param(*c, id=f"{c[0].value}-{c[3] or 'stays-open'}".replace(" ", "-"))
     for c in CLOSE_CASES],
)
def test_reconcile_close_reasons(kind: AnomalyKind, shipment_id: int | None, o: Order,
                                 reason: str | None) -> None:
    a = anomaly(kind, shipment_id)
    ch = reconcile([a], [], now=utc(9), order=o)
    assert ch.closed == (((a, reason),) if reason is not None else ())
    assert (ch.opened, ch.updated) == ((), ())


def test_sweep_timeline_opens_once_updates_and_closes_with_reason() -> None:
    """Drive evaluate + reconcile through a parcel's life with a tiny in-memory store."""
    store: list[Anomaly] = []
    log: list[tuple[str, AnomalyKind, str]] = []

    def sweep(o: Order, now: datetime, evs: Sequence[TrackingEvent] = ()) -> None:
        v = run(o, now, events={1: evs})
        ch = reconcile([a for a in store if a.is_open], v.findings, now=now, order=o)
        for f in ch.opened:
            store.append(Anomaly(kind=f.kind, order_id=f.order_id, shipment_id=f.shipment_id,
                                 detail=f.detail, opened_at=now, id=len(store) + 1))
            log.append(("open", f.kind, f.detail))
        for a, f in ch.updated:
            store[store.index(a)] = dataclasses.replace(a, detail=f.detail, last_seen_at=now)
            log.append(("update", f.kind, f.detail))
        for a, why in ch.closed:
            store[store.index(a)] = dataclasses.replace(a, resolved_at=now, resolution=why)
            log.append(("close", a.kind, why))

    e1 = event(utc(3, 10))
    base = moving(first_edd=DeliveryWindow.day(date(2025, 3, 5)),
                  current_edd=DeliveryWindow.day(date(2025, 3, 5)))
    sweep(order(base, placed_at=utc(2)), utc(4), [e1])
    assert log == []
    slipped = dataclasses.replace(base, current_edd=DeliveryWindow.day(date(2025, 3, 7)),
                                  last_success_at=utc(6, 10))
    sweep(order(slipped), utc(6, 10), [e1])
    sweep(order(slipped), utc(6, 11), [e1])  # nothing changed: no churn
    assert [x[:2] for x in log] == [("open", K.stale_in_transit), ("open", K.edd_slipped)]
    slipped_more = dataclasses.replace(slipped, current_edd=DeliveryWindow.day(date(2025, 3, 10)))
    e2 = event(utc(6, 12), code="AR")
    moved = dataclasses.replace(slipped_more, last_event_at=utc(6, 12), last_success_at=utc(6, 12))
    sweep(order(moved), utc(6, 12), [e1, e2])
    assert log[2:] == [("update", K.edd_slipped, "estimated delivery 2025-03-10 is 5 day(s) "
                        "later than the first carrier estimate 2025-03-05"),
                       ("close", K.stale_in_transit, "new carrier event")]
    delivered = dataclasses.replace(moved, status=Status.delivered, delivered_at=utc(11))
    sweep(order(delivered), utc(11), [e1, e2])
    assert log[4:] == [("close", K.edd_slipped, "delivered")]
    assert not any(a.is_open for a in store)


# --- event de-duplication ---------------------------------------------------------------------


def test_new_events_ignores_edited_text_and_repeats_and_sorts() -> None:
    old = event(utc(3, 10), code="AR", description="Arrived at facility")
    edited = dataclasses.replace(old, description="Arrived at FedEx facility MEMPHIS TN")
    later = event(utc(4, 10), code="DP", description="Departed")
    earlier = event(utc(3, 12), code="IT")
    elsewhere = dataclasses.replace(old, location=Location(city="Dallas", country="US"))
    fresh = new_events({old.identity()}, [later, edited, earlier, later, elsewhere])
    assert fresh == [elsewhere, earlier, later]
    assert new_events([], []) == []


def test_sorted_events_orders_by_instant() -> None:
    a, b = event(utc(4), code="B"), event(utc(3), code="A")
    assert sorted_events([a, b]) == [b, a]


@pytest.mark.parametrize("bad", ["Not/AZone", ""])
def test_unknown_zone_falls_back_to_utc(bad: str) -> None:
    late = order(moving(current_edd=DeliveryWindow.day(date(2025, 3, 5))), tz=bad)
    (finding,) = run(late, utc(6)).findings
    assert finding.detail == "expected by 2025-03-05 (UTC); not delivered"


def test_offset_assumed_shifts_the_deadline_not_the_reported_time() -> None:
    guessed = event(utc(3, 10), offset_assumed=True)
    stale = order(moving(last_event_at=None, last_success_at=utc(7)))
    (finding,) = run(stale, utc(7), events={1: [guessed]}).findings
    assert finding.detail == ("no carrier event since 2025-03-03 10:00 UTC: "
                              "threshold 3 business days")
    label = order(ship(status=Status.info_received, created_at=utc(5), last_success_at=utc(7)))
    (pre,) = run(label, utc(7), events={1: [dataclasses.replace(guessed, code="OC")]}).findings
    assert pre.detail == ("label created 2025-03-03 10:00 UTC: "
                          "no carrier scan after 3 business days")
