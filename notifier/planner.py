"""The notification planner: domain events of one transaction -> outbox rows. Pure.

:func:`plan` turns each event into at most one *notice* (a trigger about a subject: a shipment
or an order, with a discriminator saying which occurrence it is), then fans the notice out to
one row per channel and recipient. Rules, in order:

- **Triggers**: ``shipment.status_changed`` -> shipped (``first_info``), out_for_delivery,
  delivered, failed_attempt, ready_for_pickup (``available_for_pickup``), exception, returned;
  ``shipment.edd_changed`` with ``later`` and a new end later than the old one, and
  ``anomaly.opened`` of kind ``edd_slipped`` / ``overdue`` -> delayed; ``order.status_changed``
  -> backordered, payment_hold, cancelled; ``dispute.opened`` -> dispute_received.
- **De-duplication**: ``dedup_key`` = notice key (``trigger:subject:discriminator``) + channel +
  a hash of the recipient. The discriminator is what makes a second notice legitimate: the new
  EDD end for delayed (``overdue:<edd>`` when overdue), the carrier event instant for failed
  attempts, exceptions and pickups, the event day for out-for-delivery, nothing for shipped,
  delivered, returned and cancelled (once per subject, ever). A re-poll, a restart or a
  re-import that replays a change therefore inserts nothing new.
- **No retroactive notices**: a status change whose carrier event is older than
  ``max_event_age`` at ``now``, and a new order first seen already cancelled or placed longer
  ago than ``max_event_age``, notify nobody.
- **Supersede**: rows carry ``supersede_group`` (``shipment:<id>`` / ``order:<id>``) and the
  triggers they make obsolete; e.g. delivered supersedes a still-pending out_for_delivery.
- **Daily cap**: at most ``daily_cap`` notices (not rows: one notice on three channels counts
  once) per customer per local day; over the cap *non-urgent* notices are dropped (not merged:
  a digest of stale news is worse than the latest urgent notice, which always goes out).
- **Quiet hours**: non-urgent rows for the person-facing push channels (fcm, apns, webpush)
  created inside the customer's quiet hours get ``next_attempt_at`` = the next local
  ``quiet_hours_end`` (DST-aware); e-mail and webhooks are never held.
- **Recipients**: e-mail -> the customer's address; fcm/apns/webpush -> every enabled device
  of the customer on that channel; webhook -> the customer's webhook devices, else the shop's
  ``push.webhook.url``. An unsubscribed (email, channel) pair gets nothing.

Never reads the clock (``now`` is an argument), never does I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from notifier import models
from notifier.domain import DomainEvent, EventKind, NewNotification
from notifier.store.base import PlanInputs

if TYPE_CHECKING:
    from notifier.config import Settings

__all__ = ["PUSH_CHANNELS", "URGENT", "PlanPolicy", "notice_key_of", "plan", "quiet_until"]

# Same set as render.URGENT_TRIGGERS (the push priority): these bypass quiet hours and the cap.
URGENT = frozenset({"out_for_delivery", "delivered", "failed_attempt", "exception",
                    "ready_for_pickup"})
# Channels that wake a person up; webhooks go to machines and e-mail waits in an inbox.
PUSH_CHANNELS = frozenset({"fcm", "apns", "webpush"})

_STATUS_TRIGGERS = {"out_for_delivery": "out_for_delivery", "delivered": "delivered",
                    "failed_attempt": "failed_attempt",
                    "available_for_pickup": "ready_for_pickup", "exception": "exception",
                    "returned": "returned"}
# Statuses that count as the "shipped" moment when they are the first carrier information.
_SHIPPED_STATUSES = frozenset({"pending", "info_received", "in_transit", "unknown"})
_SUPERSEDES: dict[str, tuple[str, ...]] = {
    "delivered": ("shipped", "out_for_delivery", "failed_attempt", "delayed",
                  "ready_for_pickup", "exception"),
    "returned": ("shipped", "out_for_delivery", "failed_attempt", "delayed",
                 "ready_for_pickup"),
    "out_for_delivery": ("shipped", "delayed"),
    "ready_for_pickup": ("shipped", "out_for_delivery", "delayed"),
    "cancelled": ("backordered", "payment_hold"),
}
_FINISHED = frozenset({"delivered", "returned", "expired"})


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanPolicy:
    """The settings the planner follows. ``channels`` maps each trigger to the channels it
    goes out on (already filtered by the per-trigger lists, the disabled triggers and which
    channel sections are enabled)."""

    channels: Mapping[str, tuple[str, ...]]
    max_event_age: timedelta = timedelta(days=2)
    daily_cap: int = 6
    quiet_hours_start: int = 21
    quiet_hours_end: int = 8
    webhook_url: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> PlanPolicy:
        n = settings.notifications
        enabled = {"email": settings.email.enabled, "fcm": settings.push.fcm.enabled,
                   "apns": settings.push.apns.enabled, "webpush": settings.push.webpush.enabled,
                   "webhook": settings.push.webhook.enabled}
        per: dict[str, tuple[str, ...]] = {}
        for trigger in models.Trigger:
            if trigger.value in n.disabled_triggers:
                per[trigger.value] = ()
                continue
            wanted = n.triggers.get(trigger.value, n.channels)
            per[trigger.value] = tuple(c for c in dict.fromkeys(wanted) if enabled.get(c))
        return cls(channels=per, max_event_age=n.max_event_age, daily_cap=n.daily_cap,
                   quiet_hours_start=n.quiet_hours_start, quiet_hours_end=n.quiet_hours_end,
                   webhook_url=settings.push.webhook.url)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Notice:
    trigger: str
    order: models.Order
    subject: str
    discriminator: str
    shipment_id: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.trigger}:{self.subject}:{self.discriminator}"

    @property
    def group(self) -> str:
        return self.subject


def notice_key_of(dedup_key: str) -> str:
    """The notice part of a dedup key written by :func:`plan` (the key itself otherwise)."""
    parts = dedup_key.rsplit("|", 2)
    return parts[0] if len(parts) == 3 else dedup_key


def plan(events: Sequence[DomainEvent], inputs: PlanInputs, *, policy: PlanPolicy,
         now: datetime) -> list[NewNotification]:
    """The outbox rows for ``events`` (see the module docstring for every rule)."""
    rows: list[NewNotification] = []
    counted: dict[str, set[str]] = {}  # customer -> notice keys of today (stored + planned)
    for event in events:
        order = inputs.orders.get(event.order_id)
        if order is None:
            continue
        notice = _notice(event, order, policy, now)
        if notice is None:
            continue
        email = order.customer.email.strip().lower()
        if email not in counted:
            counted[email] = _today(inputs.recent.get(email, ()), order.customer.tz, now)
        today = counted[email]
        if notice.key in today:
            continue  # already planned (a replayed event): inserting again would be a no-op
        if notice.trigger not in URGENT and len(today) >= policy.daily_cap:
            continue  # over the cap: non-urgent notices are dropped
        new_rows = _rows(notice, inputs, policy, now)
        if new_rows:
            today.add(notice.key)
            rows.extend(new_rows)
    return rows


def quiet_until(now: datetime, tz: str, start: int, end: int) -> datetime | None:
    """The next local ``end`` o'clock (UTC) when ``now`` is inside the customer's quiet hours
    [start, end) in zone ``tz`` (wrapping midnight when start > end); None outside them."""
    if start == end:
        return None
    zone = _zone(tz)
    local = now.astimezone(zone)
    hour = local.hour
    if start > end:
        if not (hour >= start or hour < end):
            return None
        day = local.date() + timedelta(days=1) if hour >= start else local.date()
    else:
        if not start <= hour < end:
            return None
        day = local.date()
    # Wall-clock construction: the offset is the one in force that morning (DST-aware).
    return datetime.combine(day, time(end), tzinfo=zone).astimezone(UTC)


# -------------------------------------------------------------------- events -> notices


def _notice(event: DomainEvent, order: models.Order, policy: PlanPolicy,
            now: datetime) -> _Notice | None:
    data = event.data
    if event.kind is EventKind.shipment_status_changed:
        return _status_notice(event, order, policy, now)
    if event.kind is EventKind.shipment_edd_changed:
        new_end, old_end = _date(data.get("new_end")), _date(data.get("old_end"))
        if not data.get("later") or new_end is None or (old_end is not None
                                                        and new_end <= old_end):
            return None
        return _delayed(event, order, new_end.isoformat(), {
            "new_edd_start": data.get("new_start"), "new_edd_end": new_end.isoformat(),
            "old_edd_end": data.get("old_end") or data.get("baseline_end")})
    if event.kind is EventKind.anomaly_opened and data.get("kind") in ("edd_slipped", "overdue"):
        shipment = _shipment(order, event.shipment_id)
        edd = shipment.current_edd if shipment is not None else None
        if edd is None:
            return None
        end = edd.end.isoformat()
        disc = end if data["kind"] == "edd_slipped" else f"overdue:{end}"
        return _delayed(event, order, disc, {
            "new_edd_start": edd.start.isoformat(), "new_edd_end": end,
            "old_edd_end": _baseline(order, shipment), "anomaly": data["kind"]})
    if event.kind is EventKind.order_status_changed:
        return _order_notice(event, order, policy, now)
    if event.kind is EventKind.dispute_opened and event.shipment_id is not None:
        return _Notice(trigger="dispute_received", order=order,
                       subject=f"shipment:{event.shipment_id}",
                       discriminator=f"dispute:{data.get('dispute_id')}",
                       shipment_id=event.shipment_id,
                       payload=_clean({"dispute_id": data.get("dispute_id"),
                                       "dispute_reason": data.get("reason")}))
    return None


def _status_notice(event: DomainEvent, order: models.Order, policy: PlanPolicy,
                   now: datetime) -> _Notice | None:
    data = event.data
    if event.shipment_id is None:
        return None
    new = str(data.get("new"))
    trigger = _STATUS_TRIGGERS.get(new)
    if trigger is None and data.get("first_info") and new in _SHIPPED_STATUSES:
        trigger = "shipped"
    if trigger is None:
        return None
    event_at = _instant(data.get("event_at")) or event.at
    if now - event_at > policy.max_event_age:
        return None  # first seen long after it happened (an import, a late carrier): no mail
    if trigger in ("shipped", "delivered", "returned"):
        disc = trigger
    elif trigger == "out_for_delivery":
        disc = event_at.astimezone(UTC).date().isoformat()  # one per delivery day
    else:
        disc = event_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _Notice(trigger=trigger, order=order, subject=f"shipment:{event.shipment_id}",
                   discriminator=disc, shipment_id=event.shipment_id,
                   payload=_clean({"status": new, "event_at": _iso(event_at),
                                   "exception_reason": data.get("exception_reason"),
                                   "carrier": data.get("carrier"),
                                   "tracking_number": data.get("tracking_number")}))


def _order_notice(event: DomainEvent, order: models.Order, policy: PlanPolicy,
                  now: datetime) -> _Notice | None:
    data = event.data
    new, old = data.get("new"), data.get("old")
    if new not in ("backordered", "payment_hold", "cancelled"):
        return None
    expected = data.get("expected_ship_date")
    if old == new and not (new == "backordered" and expected):
        return None
    if old is None:
        # First sight of the order: an import of history must not mail old news.
        if new == "cancelled":
            return None
        if order.placed_at is not None and now - order.placed_at > policy.max_event_age:
            return None
    disc = {"backordered": f"ship:{expected or 'unknown'}",
            "payment_hold": event.at.astimezone(UTC).date().isoformat(),
            "cancelled": "cancelled"}[new]
    return _Notice(trigger=new, order=order, subject=f"order:{order.id}", discriminator=disc,
                   payload=_clean({"expected_ship_date": expected, "old_status": old}))


def _delayed(event: DomainEvent, order: models.Order, disc: str,
             payload: dict[str, Any]) -> _Notice | None:
    shipment = _shipment(order, event.shipment_id)
    if shipment is None or shipment.status.value in _FINISHED:
        return None
    return _Notice(trigger="delayed", order=order, subject=f"shipment:{shipment.id}",
                   discriminator=disc, shipment_id=shipment.id, payload=_clean(payload))


# -------------------------------------------------------------------- notices -> rows


def _rows(notice: _Notice, inputs: PlanInputs, policy: PlanPolicy,
          now: datetime) -> list[NewNotification]:
    customer = notice.order.customer
    accepted = {c.value for c in customer.channels}
    urgent = notice.trigger in URGENT
    held: datetime | None = None
    if not urgent:
        held = quiet_until(now, customer.tz, policy.quiet_hours_start, policy.quiet_hours_end)
    rows = []
    for channel in policy.channels.get(notice.trigger, ()):
        if accepted and channel not in accepted:
            continue
        for recipient in _recipients(channel, customer, inputs, policy):
            rows.append(NewNotification(
                dedup_key=f"{notice.key}|{channel}|{_hash(recipient)}",
                order_id=notice.order.id, shipment_id=notice.shipment_id,
                trigger=notice.trigger, channel=channel, recipient=recipient,
                created_at=now,
                next_attempt_at=held if held is not None and channel in PUSH_CHANNELS else now,
                supersede_group=notice.group, supersedes=_SUPERSEDES.get(notice.trigger, ()),
                urgent=urgent, payload=notice.payload))
    return rows


def _recipients(channel: str, customer: models.Customer, inputs: PlanInputs,
                policy: PlanPolicy) -> list[str]:
    email = customer.email.strip().lower()
    if not email or (email, channel) in inputs.unsubscribed:
        return []
    if channel == "email":
        return [customer.email.strip()]
    tokens = [d.token for d in inputs.devices.get(email, ()) if d.channel.value == channel
              and d.enabled]
    if channel == "webhook" and not tokens and policy.webhook_url:
        return [policy.webhook_url]
    return list(dict.fromkeys(tokens))


def _today(recent: Sequence[tuple[str, datetime]], tz: str, now: datetime) -> set[str]:
    """Notice keys of the customer's notifications created since their local midnight."""
    zone = _zone(tz)
    midnight = datetime.combine(now.astimezone(zone).date(), time(0), tzinfo=zone)
    return {notice_key_of(key) for key, at in recent if midnight <= at <= now}


# -------------------------------------------------------------------- small helpers


def _hash(recipient: str) -> str:
    return hashlib.sha256(recipient.strip().lower().encode()).hexdigest()[:16]


def _shipment(order: models.Order, shipment_id: int | None) -> models.Shipment | None:
    return next((s for s in order.shipments if s.id == shipment_id), None)


def _baseline(order: models.Order, shipment: models.Shipment | None) -> str | None:
    if order.promised_date is not None:
        return order.promised_date.isoformat()
    if shipment is not None and shipment.first_edd is not None:
        return shipment.first_edd.end.isoformat()
    return None


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC  # an unknown zone must not stop a notice


def _date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _instant(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in values.items()
            if v is not None}
