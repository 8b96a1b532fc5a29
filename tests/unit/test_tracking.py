"""Applying a carrier result to a stored shipment: new events, status, EDDs, blind time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from carriers.model import DeliveryWindow, Location, Status, TrackingEvent, TrackingResult
from notifier.config import PollingSettings
from notifier.domain import EventKind
from notifier.models import Shipment
from notifier.tracking import apply_deferral, apply_failure, apply_result

NOW = datetime(2026, 11, 4, 12, 0, tzinfo=UTC)
POLICY = PollingSettings(jitter=0)
PARIS = Location(city="PARIS", country="FR")


def ev(hours_ago: float, status: Status, code: str, text: str = "scan") -> TrackingEvent:
    return TrackingEvent(at=NOW - timedelta(hours=hours_ago), status=status, code=code,
                         description=text, location=PARIS)


def shipment(**kw: object) -> Shipment:
    base: dict[str, object] = {"id": 1, "order_id": "A1", "carrier": "ups",
                               "tracking_number": "1Z", "created_at": NOW - timedelta(days=2),
                               "next_poll_at": NOW}
    base.update(kw)
    return Shipment(**base)  # type: ignore[arg-type]


def result(*events: TrackingEvent, status: Status | None = None, **kw: object
           ) -> TrackingResult:
    newest = max(events, key=lambda e: e.at) if events else None
    return TrackingResult(carrier="ups", tracking_number="1Z",
                          status=status or (newest.status if newest else Status.pending),
                          events=events, **kw)  # type: ignore[arg-type]


def test_first_information_is_the_shipped_moment() -> None:
    out = apply_result(shipment(), result(ev(3, Status.in_transit, "I")), known=set(), now=NOW,
                       policy=POLICY, rand=0.5)
    assert out.shipment.status is Status.in_transit and out.changed
    [event] = out.domain_events
    assert event.kind is EventKind.shipment_status_changed
    assert event.data["first_info"] is True and event.data["old"] == "pending"
    assert out.shipment.next_poll_at == NOW + POLICY.in_transit


def test_same_scan_with_edited_text_is_not_new() -> None:
    first = ev(3, Status.in_transit, "I", "Departed facility")
    edited = ev(3, Status.in_transit, "I", "DEPARTED FROM FACILITY (updated)")
    stored = shipment(status=Status.in_transit, last_event_at=first.at, unchanged_polls=2)
    out = apply_result(stored, result(edited), known={first.identity()}, now=NOW,
                       policy=POLICY, rand=0.5)
    assert not out.changed and not out.new_events and not out.domain_events
    assert out.shipment.unchanged_polls == 3  # backs off


def test_delivered_does_not_move_back_without_a_newer_event() -> None:
    delivered = ev(2, Status.delivered, "D")
    stored = shipment(status=Status.delivered, last_event_at=delivered.at)
    older = ev(5, Status.in_transit, "I")  # arrives late, out of order
    out = apply_result(stored, result(older, status=Status.in_transit),
                       known={delivered.identity()}, now=NOW, policy=POLICY, rand=0.5)
    assert out.shipment.status is Status.delivered
    assert not any(e.kind is EventKind.shipment_status_changed for e in out.domain_events)


def test_a_newer_correction_after_delivery_is_followed() -> None:
    delivered = ev(5, Status.delivered, "D")
    stored = shipment(status=Status.delivered, last_event_at=delivered.at)
    correction = ev(1, Status.exception, "X", "delivered to wrong address")
    out = apply_result(stored, result(delivered, correction), known={delivered.identity()},
                       now=NOW, policy=POLICY, rand=0.5)
    assert out.shipment.status is Status.exception


def test_not_found_keeps_a_shipment_that_had_events() -> None:
    stored = shipment(status=Status.in_transit, last_event_at=NOW - timedelta(days=1))
    out = apply_result(stored, TrackingResult.missing("ups", "1Z"), known=set(), now=NOW,
                       policy=POLICY, rand=0.5)
    assert out.shipment.status is Status.in_transit


def test_edd_slip_emits_an_edd_event_marked_later() -> None:
    first = DeliveryWindow.day(date(2026, 11, 5))
    stored = shipment(status=Status.in_transit, first_edd=first, current_edd=first,
                      last_event_at=NOW - timedelta(hours=6))
    out = apply_result(stored, result(ev(1, Status.in_transit, "I"),
                                      estimated_delivery=DeliveryWindow.day(date(2026, 11, 7))),
                       known=set(), now=NOW, policy=POLICY, rand=0.5)
    [edd] = [e for e in out.domain_events if e.kind is EventKind.shipment_edd_changed]
    assert edd.data["later"] is True and edd.data["new_end"] == "2026-11-07"
    assert out.shipment.first_edd == first  # the baseline is kept


def test_edd_moving_earlier_is_not_a_slip() -> None:
    first = DeliveryWindow.day(date(2026, 11, 7))
    stored = shipment(status=Status.in_transit, first_edd=first, current_edd=first)
    out = apply_result(stored, result(ev(1, Status.in_transit, "I"),
                                      estimated_delivery=DeliveryWindow.day(date(2026, 11, 6))),
                       known=set(), now=NOW, policy=POLICY, rand=0.5)
    [edd] = [e for e in out.domain_events if e.kind is EventKind.shipment_edd_changed]
    assert edd.data["later"] is False


def test_blind_time_accumulates_while_we_cannot_poll_and_resets_on_news() -> None:
    stored = shipment(status=Status.in_transit, next_poll_at=NOW - timedelta(hours=10))
    failed = apply_failure(stored, now=NOW, retry_in=timedelta(hours=1))
    assert failed.blind_seconds == 10 * 3600 and failed.consecutive_failures == 1
    deferred = apply_deferral(failed, now=NOW + timedelta(hours=3),
                              until=NOW + timedelta(hours=4))
    assert deferred.blind_seconds == 12 * 3600
    later = NOW + timedelta(hours=5)
    quiet = apply_result(deferred, result(status=Status.in_transit), known=set(), now=later,
                         policy=POLICY, rand=0.5)
    assert quiet.shipment.blind_seconds == 13 * 3600  # success, nothing new: still counted
    news = apply_result(deferred, result(ev(-4, Status.in_transit, "I")), known=set(),
                        now=later, policy=POLICY, rand=0.5)
    assert news.shipment.blind_seconds == 0


def test_max_age_marks_expired_and_stops() -> None:
    old = shipment(status=Status.in_transit, created_at=NOW - POLICY.max_age)
    out = apply_result(old, result(status=Status.in_transit), known=set(), now=NOW,
                       policy=POLICY, rand=0.5)
    assert out.shipment.status is Status.expired and out.shipment.next_poll_at is None
    assert out.domain_events[-1].data["new"] == "expired"
