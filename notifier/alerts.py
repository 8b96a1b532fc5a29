"""Immediate ops alerts: pure rules, and their delivery through the ``ops_alerts`` table.

Rules (:func:`evaluate`, pure, ``now`` passed in) turn a snapshot of carrier health, recent dead
notifications and recent stale anomalies into :class:`Alert` values with stable keys:

- ``carrier_down:<carrier>``: circuit not closed, or polling paused (auth failing), for at
  least ``alerts.circuit_open_after``;
- ``dead_notifications``: more than ``alerts.dead_threshold`` dead notifications in the window;
- ``stale_spike:<carrier>``: at least ``alerts.stale_spike`` ``stale_*`` anomalies opened on
  one carrier within the last hour (a likely carrier-side problem);
- ``channel_paused:<channel>``: upserted by the outbox (``record_channel_paused``); its
  ``on_channel_paused`` hook (:func:`notifier.digest_job.channel_paused_hook`) re-arms the
  alert once the cooldown is over.

Delivery state lives in ``ops_alerts`` (one row per key): a row whose ``last_sent_at`` is NULL
is *pending*. :func:`raise_alert` makes a key pending when it is new or its cooldown
(``alerts.cooldown``) has passed since it was last sent, and otherwise only counts it (rate
limit + de-duplication, shared by every process on the database). :func:`deliver_pending`
claims each pending row (sets ``last_sent_at``) before sending, so two instances never both send
it, and releases the claim if sending failed. The I/O goes through the store and a ``send``
callable given by the caller; this module imports no I/O library.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from notifier.channels.base import RenderedMessage
from notifier.config import AlertSettings
from notifier.digest import CarrierHealthRecord, format_age

__all__ = ["STALE_SPIKE_WINDOW", "Alert", "AlertInputs", "AlertStore", "OpsAlertRecord",
           "alert_message", "deliver_pending", "evaluate", "raise_alert"]

logger = logging.getLogger(__name__)

STALE_SPIKE_WINDOW = timedelta(hours=1)
# Dead notifications are counted over this window (by creation time) so an old pile that ops
# already know about does not re-alert forever.
DEAD_WINDOW = timedelta(days=7)


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    key: str
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertInputs:
    health: Sequence[CarrierHealthRecord] = ()
    dead_recent: int = 0
    # stale_* anomalies opened within STALE_SPIKE_WINDOW, by carrier.
    stale_opened: Mapping[str, int] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OpsAlertRecord:
    key: str
    first_at: datetime
    last_sent_at: datetime | None
    count: int
    detail: str

    @property
    def pending(self) -> bool:
        return self.last_sent_at is None


class AlertStore(Protocol):
    """What alerts need from the store (``notifier.store.sqlite_ops.OpsQueries``)."""

    async def ops_alert_raise(self, key: str, detail: str, *, now: datetime,
                              cooldown: timedelta, count: bool = True) -> bool: ...

    async def ops_alerts_pending(self) -> list[OpsAlertRecord]: ...

    async def ops_alert_claim(self, key: str, *, now: datetime) -> bool: ...

    async def ops_alert_release(self, key: str, *, sent_at: datetime) -> None: ...


# ------------------------------------------------------------------------------ rules (pure)


def carrier_down(h: CarrierHealthRecord, *, now: datetime, after: timedelta) -> Alert | None:
    """An alert when ``h`` has had an open circuit or a pause for at least ``after``.

    The columns as ``notifier.budget`` writes them: ``circuit_state`` other than ``"closed"``
    (open, half_open, paused) or a ``paused_reason`` (credentials refused) means down;
    ``circuit_opened_at`` is when that began (kept through open/half-open cycles, cleared by a
    success). Without it we count from ``last_success_at``; with neither the carrier has never
    worked as far as we know, so the alert is raised at once.
    """
    if h.circuit_state == "closed" and not h.paused_reason:
        return None
    since = h.circuit_opened_at or h.last_success_at
    if since is not None and now - since < after:
        return None
    what = f"paused ({h.paused_reason})" if h.paused_reason else f"circuit {h.circuit_state}"
    how_long = "no success recorded" if since is None else f"for {format_age(now - since)}"
    error = f"; last error: {h.last_error}" if h.last_error else ""
    return Alert(key=f"carrier_down:{h.carrier}",
                 detail=f"{h.carrier}: {what}, {how_long}{error}")


def evaluate(inputs: AlertInputs, *, now: datetime, settings: AlertSettings) -> list[Alert]:
    """Every alert whose condition holds now (cooldown and de-duplication come later)."""
    alerts = [a for h in sorted(inputs.health, key=lambda h: h.carrier)
              if (a := carrier_down(h, now=now, after=settings.circuit_open_after))]
    if inputs.dead_recent > settings.dead_threshold:
        alerts.append(Alert(key="dead_notifications",
                            detail=f"{inputs.dead_recent} notifications are dead (given up) "
                                   f"in the last {format_age(DEAD_WINDOW)}; threshold "
                                   f"{settings.dead_threshold}. See `notifier digest` or the "
                                   "outbox for the errors."))
    for carrier, count in sorted((inputs.stale_opened or {}).items()):
        if settings.stale_spike and count >= settings.stale_spike:
            alerts.append(Alert(key=f"stale_spike:{carrier}",
                                detail=f"{count} stale anomalies opened on {carrier} in the "
                                       f"last {format_age(STALE_SPIKE_WINDOW)} (threshold "
                                       f"{settings.stale_spike}): likely a carrier-side "
                                       "problem."))
    return alerts


def alert_message(record: OpsAlertRecord, *, now: datetime) -> RenderedMessage:
    """The e-mail for one alert; the id is stable for one sending of one key."""
    kind, _, subject = record.key.partition(":")
    title = {"carrier_down": "carrier down", "dead_notifications": "dead notifications",
             "stale_spike": "stale anomaly spike", "channel_paused": "channel paused"
             }.get(kind, kind)
    headline = f"{title}: {subject}" if subject else title
    text = (f"{record.detail}\n\nAlert key: {record.key}\nFirst seen: "
            f"{record.first_at.isoformat(timespec='minutes')}\nRaised: {record.count} time(s)"
            f"\nSent: {now.isoformat(timespec='minutes')}\n\nRepeats at most once per "
            "cooldown while the condition lasts (`notifier alerts` lists them).\n")
    return RenderedMessage(
        notification_id=f"ops-alert-{record.key}-{now.strftime('%Y%m%dT%H%M%S')}",
        trigger="ops_alert", subject=f"[notifier alert] {headline}", text=text, urgent=True)


# ------------------------------------------------------------------------------ delivery (I/O)


async def raise_alert(store: AlertStore, key: str, detail: str, now: datetime, *,
                      cooldown: timedelta = AlertSettings().cooldown) -> bool:
    """Record that condition ``key`` holds (for other features, e.g. ``channel_paused:email``).

    Returns True when the alert is pending delivery (new, or cooldown over), False when it was
    only counted. The next ``digest_check`` run (each minute) sends pending alerts.
    """
    return await store.ops_alert_raise(key, detail, now=now, cooldown=cooldown)


async def deliver_pending(store: AlertStore, send: Callable[[RenderedMessage], Awaitable[bool]],
                          *, now: datetime) -> int:
    """Send every pending alert once; returns how many were sent.

    ``send`` returns True when at least one recipient accepted the message. A claim is released
    (the alert stays pending for the next run) when ``send`` returns False or raises.
    """
    sent = 0
    for record in await store.ops_alerts_pending():
        if not await store.ops_alert_claim(record.key, now=now):
            continue  # another process took it
        delivered = False
        try:
            delivered = await send(alert_message(record, now=now))
        finally:
            if not delivered:
                await store.ops_alert_release(record.key, sent_at=now)
        if delivered:
            sent += 1
            logger.info("ops alert sent: %s", record.key, extra={"action": "ops_alert"})
    return sent
