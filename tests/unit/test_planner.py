"""The notification planner: every trigger, de-duplication, age limit, supersede, the daily cap,
quiet hours across DST changes, unsubscribes, recipients and the per-channel switches.

Expected instants for quiet hours are facts about the calendar (e.g. 08:00 in Paris on the day
summer time starts is 06:00 UTC), not re-computations with the planner's own helpers.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from carriers.model import DeliveryWindow, Status
from notifier import models
from notifier.config import Settings
from notifier.domain import DomainEvent, EventKind, NewNotification
from notifier.planner import PlanPolicy, notice_key_of, plan, quiet_until
from notifier.store.base import PlanInputs

NOW = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)  # a Monday; 10:00 in New York
EMAIL = "Ann@Example.com"
SID = 7
TRIGGERS = [t.value for t in models.Trigger]


def make_order(*, tz: str = "America/New_York", status: Status = Status.in_transit,
               edd: date | None = date(2026, 11, 5), channels: tuple[models.Channel, ...] = (),
               placed_at: datetime | None = None, oid: str = "A1") -> models.Order:
    shipment = models.Shipment(
        id=SID, order_id=oid, carrier="ups", tracking_number="1Z999AA10123456784",
        status=status, current_edd=DeliveryWindow.day(edd) if edd else None,
        first_edd=DeliveryWindow.day(date(2026, 11, 4)))
    return models.Order(id=oid, customer=models.Customer(email=EMAIL, name="Ann", tz=tz,
                                                         channels=channels),
                        placed_at=placed_at, shipments=(shipment,))


def policy(*channels: str, **kw: Any) -> PlanPolicy:
    chans = channels or ("email",)
    return PlanPolicy(channels={t: chans for t in TRIGGERS}, **kw)


def inputs(order: models.Order | None = None, *, devices: tuple[models.Device, ...] = (),
           unsubscribed: frozenset[tuple[str, str]] = frozenset(),
           recent: tuple[tuple[str, datetime], ...] = ()) -> PlanInputs:
    o = order or make_order()
    email = o.customer.email.lower()
    return PlanInputs(orders={o.id: o}, devices={email: devices}, unsubscribed=unsubscribed,
                      recent={email: recent})


def status(new: str, *, old: str = "in_transit", event_at: datetime | None = None,
           first_info: bool = False, reason: str | None = None) -> DomainEvent:
    at = event_at or NOW - timedelta(hours=1)
    return DomainEvent(kind=EventKind.shipment_status_changed, order_id="A1", at=NOW,
                       shipment_id=SID,
                       data={"old": old, "new": new, "event_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                             "exception_reason": reason, "first_info": first_info,
                             "carrier": "ups", "tracking_number": "1Z999AA10123456784"})


def edd(new_end: str, *, old_end: str | None = "2026-11-05", later: bool = True) -> DomainEvent:
    return DomainEvent(kind=EventKind.shipment_edd_changed, order_id="A1", at=NOW,
                       shipment_id=SID,
                       data={"old_start": old_end, "old_end": old_end, "new_start": new_end,
                             "new_end": new_end, "baseline_end": "2026-11-04", "later": later})


def anomaly(kind: str) -> DomainEvent:
    return DomainEvent(kind=EventKind.anomaly_opened, order_id="A1", at=NOW, shipment_id=SID,
                       data={"anomaly_id": 3, "kind": kind, "detail": "", "carrier": "ups"})


def oms(new: str, old: str | None = "processing", expected: str | None = None) -> DomainEvent:
    return DomainEvent(kind=EventKind.order_status_changed, order_id="A1", at=NOW,
                       data={"old": old, "new": new, "expected_ship_date": expected})


def dispute() -> DomainEvent:
    return DomainEvent(kind=EventKind.dispute_opened, order_id="A1", at=NOW, shipment_id=SID,
                       data={"dispute_id": 11, "reason": "not at my door"})


def run(*events: DomainEvent, pol: PlanPolicy | None = None, inp: PlanInputs | None = None,
        now: datetime = NOW) -> list[NewNotification]:
    return plan(list(events), inp or inputs(), policy=pol or policy(), now=now)


# ------------------------------------------------------------------------------ triggers

CASES: list[tuple[str, DomainEvent, str | None]] = [
    ("first info in transit", status("in_transit", old="pending", first_info=True), "shipped"),
    ("first info label", status("info_received", old="pending", first_info=True), "shipped"),
    ("out for delivery", status("out_for_delivery"), "out_for_delivery"),
    ("delivered", status("delivered", old="out_for_delivery"), "delivered"),
    ("failed attempt", status("failed_attempt"), "failed_attempt"),
    ("pickup", status("available_for_pickup"), "ready_for_pickup"),
    ("exception", status("exception", reason="address"), "exception"),
    ("returned", status("returned"), "returned"),
    ("first info already out for delivery", status("out_for_delivery", first_info=True),
     "out_for_delivery"),
    ("in transit again", status("in_transit", old="exception"), None),
    ("expired", status("expired"), None),
    ("edd slipped later", edd("2026-11-09"), "delayed"),
    ("edd moved but not a slip", edd("2026-11-09", later=False), None),
    ("edd earlier than before", edd("2026-11-04", old_end="2026-11-08"), None),
    ("edd removed", edd("", old_end="2026-11-05"), None),
    ("anomaly overdue", anomaly("overdue"), "delayed"),
    ("anomaly edd slipped", anomaly("edd_slipped"), "delayed"),
    ("anomaly stale", anomaly("stale_in_transit"), None),
    ("backordered", oms("backordered", expected="2026-11-20"), "backordered"),
    ("payment hold", oms("payment_hold"), "payment_hold"),
    ("cancelled", oms("cancelled"), "cancelled"),
    ("processing", oms("processing", old="received"), None),
    ("new order already cancelled", oms("cancelled", old=None), None),
    ("dispute", dispute(), "dispute_received"),
]


@pytest.mark.parametrize(("event", "trigger"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_event_kind_maps_to_its_trigger(event: DomainEvent, trigger: str | None) -> None:
    rows = run(event)
    assert [r.trigger for r in rows] == ([trigger] if trigger else [])
    for r in rows:
        assert (r.channel, r.recipient, r.order_id) == ("email", EMAIL, "A1")
        assert r.dedup_key.startswith(f"{trigger}:")
        assert r.created_at == NOW and r.next_attempt_at == NOW
        assert r.urgent is (trigger in {"out_for_delivery", "delivered", "failed_attempt",
                                        "exception", "ready_for_pickup"})
        subject = "order:A1" if trigger in ("backordered", "payment_hold", "cancelled") \
            else f"shipment:{SID}"
        assert r.supersede_group == subject
        assert r.shipment_id == (None if subject.startswith("order") else SID)


def test_every_trigger_is_reachable() -> None:
    assert {c[2] for c in CASES if c[2]} == set(TRIGGERS)


def test_payload_carries_what_the_notice_needs() -> None:
    (row,) = run(edd("2026-11-09"))
    assert row.payload["new_edd_end"] == "2026-11-09" and row.payload["old_edd_end"] == "2026-11-05"
    (row,) = run(oms("backordered", expected="2026-11-20"))
    assert row.payload["expected_ship_date"] == "2026-11-20"
    (row,) = run(dispute())
    assert row.payload["dispute_reason"] == "not at my door"
    (row,) = run(status("exception", reason="customs"))
    assert row.payload["exception_reason"] == "customs"


# ------------------------------------------------------------------------------ de-duplication


def test_replayed_events_plan_the_same_keys_and_nothing_once_stored() -> None:
    events = [status("out_for_delivery"), edd("2026-11-09"), oms("payment_hold"), dispute()]
    first = run(*events)
    again = run(*events)  # a re-poll or restart replaying the same changes
    assert [r.dedup_key for r in first] == [r.dedup_key for r in again]
    assert len({r.dedup_key for r in first}) == 4
    stored = tuple((r.dedup_key, r.created_at) for r in first)
    assert run(*events, inp=inputs(recent=stored)) == []


def test_one_delayed_notice_per_new_edd() -> None:
    slip = run(edd("2026-11-09"))[0]
    # The anomaly about the same slip (current EDD = the new end) is the same notice.
    order = make_order(edd=date(2026, 11, 9))
    assert run(anomaly("edd_slipped"), inp=inputs(order))[0].dedup_key == slip.dedup_key
    # A further slip is a new notice; overdue on that date is another one.
    second = run(edd("2026-11-12", old_end="2026-11-09"))[0]
    overdue = run(anomaly("overdue"), inp=inputs(order))[0]
    assert len({slip.dedup_key, second.dedup_key, overdue.dedup_key}) == 3
    assert ":overdue:2026-11-09|" in overdue.dedup_key


def test_one_notice_per_status_change_not_per_scan() -> None:
    # Two out-for-delivery changes on different days are two notices; on the same day, one.
    day1 = run(status("out_for_delivery", event_at=NOW - timedelta(hours=2)))[0]
    same_day = run(status("out_for_delivery", event_at=NOW - timedelta(hours=1)))[0]
    next_day = run(status("out_for_delivery", event_at=NOW + timedelta(days=1)),
                   now=NOW + timedelta(days=1, hours=1))[0]
    assert day1.dedup_key == same_day.dedup_key != next_day.dedup_key
    # Delivered, shipped and returned happen once per shipment whatever the event time.
    a = run(status("delivered", event_at=NOW - timedelta(hours=3)))[0]
    b = run(status("delivered", event_at=NOW - timedelta(hours=1)))[0]
    assert a.dedup_key == b.dedup_key


def test_events_too_old_when_first_seen_do_not_notify() -> None:
    pol = policy(max_event_age=timedelta(days=2))
    old = NOW - timedelta(days=2, minutes=1)
    assert run(status("delivered", event_at=old), pol=pol) == []
    assert run(status("in_transit", old="pending", event_at=old, first_info=True), pol=pol) == []
    assert len(run(status("delivered", event_at=NOW - timedelta(days=1)), pol=pol)) == 1
    # A new order (first import) placed long ago: no retroactive payment-hold mail.
    long_ago = make_order(placed_at=NOW - timedelta(days=30))
    assert run(oms("payment_hold", old=None), inp=inputs(long_ago), pol=pol) == []
    recent = make_order(placed_at=NOW - timedelta(hours=3))
    assert len(run(oms("payment_hold", old=None), inp=inputs(recent), pol=pol)) == 1


def test_delayed_is_not_sent_for_a_finished_shipment() -> None:
    done = make_order(status=Status.delivered)
    assert run(anomaly("overdue"), inp=inputs(done)) == []
    assert run(edd("2026-11-09"), inp=inputs(done)) == []


# ------------------------------------------------------------------------------ supersede


def test_delivered_supersedes_pending_progress_notices_of_its_shipment() -> None:
    (row,) = run(status("delivered"))
    assert row.supersede_group == f"shipment:{SID}"
    assert {"out_for_delivery", "failed_attempt", "delayed", "shipped"} <= set(row.supersedes)
    (ofd,) = run(status("out_for_delivery"))
    assert "delivered" not in ofd.supersedes and "shipped" in ofd.supersedes
    (cancel,) = run(oms("cancelled"))
    assert cancel.supersede_group == "order:A1"
    assert set(cancel.supersedes) == {"backordered", "payment_hold"}


# ------------------------------------------------------------------------------ daily cap


def _stored(n: int, at: datetime, channels: tuple[str, ...] = ("email",)
            ) -> tuple[tuple[str, datetime], ...]:
    return tuple((f"payment_hold:order:X{i}:d|{c}|h", at) for i in range(n) for c in channels)


def test_daily_cap_drops_non_urgent_notices_but_not_urgent_ones() -> None:
    pol = policy(daily_cap=3)
    # Three notices earlier today (each on two channels: still three notices).
    full = inputs(recent=_stored(3, NOW - timedelta(hours=2), ("email", "fcm")))
    assert run(status("in_transit", old="pending", first_info=True), pol=pol, inp=full) == []
    assert run(oms("payment_hold"), pol=pol, inp=full) == []
    assert [r.trigger for r in run(status("delivered"), pol=pol, inp=full)] == ["delivered"]
    # Two notices: one more fits.
    assert len(run(oms("payment_hold"), pol=pol,
                   inp=inputs(recent=_stored(2, NOW - timedelta(hours=2))))) == 1


def test_daily_cap_counts_the_customers_local_day() -> None:
    pol = policy(daily_cap=2)
    # 15:00 UTC is 04:00 next day in Auckland (UTC+13 in November): 12:00 UTC yesterday-local
    # notices (01:00 local) count, 10:00 UTC ones (23:00 the previous local day) do not.
    order = make_order(tz="Pacific/Auckland")
    today = inputs(order, recent=_stored(2, datetime(2026, 11, 2, 12, 0, tzinfo=UTC)))
    yesterday = inputs(order, recent=_stored(2, datetime(2026, 11, 2, 10, 0, tzinfo=UTC)))
    assert run(oms("payment_hold"), pol=pol, inp=today) == []
    assert len(run(oms("payment_hold"), pol=pol, inp=yesterday)) == 1


def test_daily_cap_applies_within_one_batch() -> None:
    pol = policy(daily_cap=2)
    events = [oms("backordered", expected=f"2026-11-2{i}") for i in range(4)]
    assert len(run(*events, pol=pol)) == 2


# ------------------------------------------------------------------------------ quiet hours


@pytest.mark.parametrize(("now", "tz", "expected"), [
    # The evening before summer time starts in Paris (Sunday 29 March 2026): 22:30 CET.
    # 08:00 on the 29th is CEST (UTC+2) = 06:00 UTC, not 07:00.
    (datetime(2026, 3, 28, 21, 30, tzinfo=UTC), "Europe/Paris",
     datetime(2026, 3, 29, 6, 0, tzinfo=UTC)),
    # The evening before winter time (Sunday 25 October 2026): 23:00 CEST; 08:00 CET = 07:00Z.
    (datetime(2026, 10, 24, 21, 0, tzinfo=UTC), "Europe/Paris",
     datetime(2026, 10, 25, 7, 0, tzinfo=UTC)),
    # New York on the night clocks go back (1 November 2026): 01:30 EDT -> 08:00 EST = 13:00Z.
    (datetime(2026, 11, 1, 5, 30, tzinfo=UTC), "America/New_York",
     datetime(2026, 11, 1, 13, 0, tzinfo=UTC)),
    # Daytime: not held.
    (datetime(2026, 3, 28, 12, 0, tzinfo=UTC), "Europe/Paris", None),
    # 07:59 local is still quiet; 08:00 is not.
    (datetime(2026, 7, 1, 5, 59, tzinfo=UTC), "Europe/Paris",
     datetime(2026, 7, 1, 6, 0, tzinfo=UTC)),
    (datetime(2026, 7, 1, 6, 0, tzinfo=UTC), "Europe/Paris", None),
])
def test_quiet_until(now: datetime, tz: str, expected: datetime | None) -> None:
    assert quiet_until(now, tz, 21, 8) == expected


def test_quiet_hours_hold_non_urgent_push_rows_only() -> None:
    night = datetime(2026, 3, 28, 21, 30, tzinfo=UTC)  # 22:30 in Paris before the DST change
    morning = datetime(2026, 3, 29, 6, 0, tzinfo=UTC)
    order = make_order(tz="Europe/Paris")
    device = models.Device(customer_email=EMAIL.lower(), channel=models.Channel.fcm,
                           token="tok-1")
    inp = inputs(order, devices=(device,))
    pol = policy("email", "fcm", "webhook", webhook_url="https://shop.example/hook")
    shipped = status("in_transit", old="pending", first_info=True,
                     event_at=night - timedelta(minutes=5))
    rows = {r.channel: r for r in run(shipped, pol=pol, inp=inp, now=night)}
    assert rows["fcm"].next_attempt_at == morning
    assert rows["email"].next_attempt_at == night  # e-mail waits in the inbox anyway
    assert rows["webhook"].next_attempt_at == night  # machines do not sleep
    ofd = status("out_for_delivery", event_at=night - timedelta(minutes=5))
    urgent = {r.channel: r for r in run(ofd, pol=pol, inp=inp, now=night)}
    assert urgent["fcm"].next_attempt_at == night


# ------------------------------------------------------------------------------ recipients


def test_unsubscribed_pairs_get_no_rows() -> None:
    device = models.Device(customer_email=EMAIL.lower(), channel=models.Channel.fcm,
                           token="tok-1")
    pol = policy("email", "fcm")
    inp = inputs(devices=(device,), unsubscribed=frozenset({(EMAIL.lower(), "email")}))
    assert [r.channel for r in run(status("delivered"), pol=pol, inp=inp)] == ["fcm"]
    both = inputs(devices=(device,), unsubscribed=frozenset(
        {(EMAIL.lower(), "email"), (EMAIL.lower(), "fcm")}))
    assert run(status("delivered"), pol=pol, inp=both) == []


def test_push_rows_go_to_every_enabled_device_of_the_channel() -> None:
    devs = (models.Device(customer_email=EMAIL.lower(), channel=models.Channel.fcm, token="a"),
            models.Device(customer_email=EMAIL.lower(), channel=models.Channel.fcm, token="b"),
            models.Device(customer_email=EMAIL.lower(), channel=models.Channel.apns,
                          token="c" * 64),
            models.Device(customer_email=EMAIL.lower(), channel=models.Channel.fcm, token="x",
                          enabled=False))
    rows = run(status("delivered"), pol=policy("fcm", "apns"), inp=inputs(devices=devs))
    assert sorted((r.channel, r.recipient) for r in rows) == [
        ("apns", "c" * 64), ("fcm", "a"), ("fcm", "b")]
    assert len({r.dedup_key for r in rows}) == 3
    assert len({notice_key_of(r.dedup_key) for r in rows}) == 1


def test_webhook_prefers_the_customers_endpoint_then_the_shops() -> None:
    pol = policy("webhook", webhook_url="https://shop.example/hook")
    assert [r.recipient for r in run(status("delivered"), pol=pol)] == [
        "https://shop.example/hook"]
    own = (models.Device(customer_email=EMAIL.lower(), channel=models.Channel.webhook,
                         token="https://ann.example/hook"),)
    assert [r.recipient for r in run(status("delivered"), pol=pol, inp=inputs(devices=own))] \
        == ["https://ann.example/hook"]
    assert run(status("delivered"), pol=policy("webhook")) == []


def test_customer_channel_choice_limits_the_shops_channels() -> None:
    dev = (models.Device(customer_email=EMAIL.lower(), channel=models.Channel.fcm, token="a"),)
    order = make_order(channels=(models.Channel.fcm,))
    rows = run(status("delivered"), pol=policy("email", "fcm"), inp=inputs(order, devices=dev))
    assert [r.channel for r in rows] == ["fcm"]


def test_policy_from_settings_honours_switches_per_trigger_and_channel() -> None:
    base = Settings()
    s = replace(base, notifications=replace(
        base.notifications, channels=("email", "fcm"), disabled_triggers=("returned",),
        triggers={"delivered": ("fcm",), "shipped": ("email", "webhook")}))
    pol = PlanPolicy.from_settings(s)
    assert pol.channels["returned"] == ()
    assert pol.channels["exception"] == ("email",)  # fcm section is disabled by default
    assert pol.channels["delivered"] == ()
    assert pol.channels["shipped"] == ("email",)
    on = replace(s, push=replace(s.push, fcm=replace(s.push.fcm, enabled=True)))
    assert PlanPolicy.from_settings(on).channels["delivered"] == ("fcm",)
    assert PlanPolicy.from_settings(on).channels["exception"] == ("email", "fcm")
