"""The outbox sender: claim due notification rows, render, send, record the outcome.

:class:`OutboxSender.drain` is the ``outbox_drain`` job. Each run marks rows older than
``give_up_after`` dead, then claims due rows in batches of ``batch_size`` (pending rows whose
``next_attempt_at`` has come, and ``sending`` rows whose lease expired after a crash), sends
them with at most ``concurrency`` in flight, and records per row:

- accepted -> ``sent`` (``sent_at``, ``provider_id``);
- ``DeliveryTransient`` -> retried in-process by the :class:`~notifier.retry.RetryPolicy`
  (honouring ``retry_after``), then rescheduled in the row with backoff so an outage of hours
  survives restarts; an unexpected exception from a channel is treated the same way (logged
  with its traceback) rather than failing a message for good on a bug;
- ``DeliveryRejected`` -> ``failed`` at once; ``drop_token`` also disables the device;
- ``ChannelMisconfigured`` -> the channel is paused (in memory, for ``pause_for``), the ops
  signal is recorded (``ops_alerts`` row + the optional ``on_channel_paused`` hook), and the
  row goes back to pending untouched.

The message id given to the renderer is ``n<row id>-<hash of the dedup key>``: stable for the
row, so a resend after a crash carries the same e-mail ``Message-ID`` / ``apns-id`` /
``webhook-id``, and distinct across databases. Every instant comes from the injected clock.
Claiming stops when ``stopping()`` turns true (SIGTERM); claimed rows not started yet are
released at once instead of waiting for their lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from notifier import metrics, notice, planner, unsubscribe
from notifier.channels.base import Channel, Receipt, Recipient, RenderedMessage
from notifier.channels.email import mask_address
from notifier.errors import (
    ChannelMisconfigured,
    DeliveryRejected,
    DeliveryTransient,
    NotFound,
    TransientError,
)
from notifier.render import BUILTIN_TEMPLATES, Renderer, RenderError
from notifier.retry import RetryPolicy
from notifier.store.sqlite_outbox import Outcome

if TYPE_CHECKING:
    from carriers.model import TrackingEvent
    from notifier import models
    from notifier.app import App
    from notifier.clock import Clock
    from notifier.config import Settings
    from notifier.domain import DomainEvent, NewNotification
    from notifier.store.base import PlanInputs
    from notifier.store.sqlite import SqliteStore

__all__ = ["DrainResult", "OutboxSender", "PausedHook", "install", "notification_id"]

logger = logging.getLogger(__name__)

PausedHook = Callable[[str, str], Awaitable[None] | None]


def notification_id(row: models.Notification) -> str:
    """The stable id of a row's message (Message-ID left part, apns-id seed, webhook-id)."""
    digest = hashlib.sha256(row.dedup_key.encode("utf-8")).hexdigest()[:10]
    return f"n{row.id}-{digest}"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Batch:
    """Claimed rows with the current orders and latest events they refer to."""

    rows: list[models.Notification]
    full: bool  # as many rows as asked for: more may be due
    orders: dict[str, models.Order]
    events: dict[int, TrackingEvent]


@dataclass(slots=True)
class DrainResult:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    dead: int = 0
    released: int = 0


class OutboxSender:
    """Sends due outbox rows through ``channels`` (name -> Channel). ``broken`` names channels
    that could not be built (they count as paused from the start). ``settings`` may be replaced
    between drains (configuration reload)."""

    def __init__(self, *, store: SqliteStore, clock: Clock, settings: Settings,
                 channels: Mapping[str, Channel], renderer: Renderer | None = None,
                 retry: RetryPolicy | None = None, broken: Mapping[str, str] | None = None,
                 on_channel_paused: PausedHook | None = None,
                 pause_for: timedelta = timedelta(minutes=10),
                 stopping: Callable[[], bool] = lambda: False,
                 order_status_url: Callable[[str], str | None] | None = None) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.channels = dict(channels)
        self.renderer = renderer or Renderer(BUILTIN_TEMPLATES,
                                             user_dir=settings.templates.user_dir,
                                             default_locale=settings.templates.default_locale)
        self.retry = retry or RetryPolicy.from_settings(settings.notifications)
        self.on_channel_paused = on_channel_paused
        self.pause_for = pause_for
        self.stopping = stopping
        self.order_status_url = order_status_url
        # channel -> (reason, paused until; None = until restart)
        self.paused: dict[str, tuple[str, datetime | None]] = {}
        self._broken = dict(broken or {})
        self._warned_unsubscribe = False
        self._orders: dict[str, models.Order] = {}
        self._events: dict[int, TrackingEvent] = {}
        self._commit = _GroupCommit(self.store.record_outcomes)
        self._commits: list[asyncio.Future[None]] = []
        self._in_flight: set[int | None] = set()

    async def _record(self, outcome: Outcome) -> None:
        # Awaited while the row still holds its concurrency slot: a send is never reported
        # done before its outcome is committed, so a crash (kill -9) can repeat at most the
        # ``concurrency`` sends in flight, not a pile of finished-but-unsaved ones (which is
        # what happens when a long poll-tick transaction holds the database). Concurrent
        # outcomes still share one transaction (the group flushes once every slot has one).
        await self._commit.submit(outcome)

    # ------------------------------------------------------------------ the job

    async def drain(self) -> DrainResult:
        """One run of the job: give up on old rows, then send every due row."""
        result = DrainResult()
        n = self.settings.notifications
        now = self.clock.now()
        result.dead = await self.store.mark_dead_before(now - n.give_up_after)
        if result.dead:
            logger.error("outbox: %d notification(s) gave up after %s", result.dead,
                         n.give_up_after)
            metrics.sends.labels(channel="any", outcome="dead").inc(result.dead)
        await self._pause_broken(now)
        batch_size = max(1, n.batch_size)
        self._commit.max_batch = max(1, n.concurrency)
        batch = None if self.stopping() else await self._claim(batch_size)
        while batch is not None:
            result.claimed += len(batch.rows)
            # The next batch is claimed (and its orders fetched) while the last rows of this
            # one are still sending, so the connections do not idle between batches.
            following: asyncio.Task[_Batch | None] | None = None

            def claim_next(full: bool = batch.full) -> None:
                nonlocal following
                if full and not self.stopping():
                    following = asyncio.create_task(self._claim(batch_size))

            try:
                await self._send_batch(batch, result, max(1, n.concurrency), claim_next)
            finally:
                # On an error the claimed rows stay leased and are retried after the lease.
                batch = await following if following is not None else None
            if batch is not None and not batch.rows:
                # All the early claim got was still in flight (leases ran out during a slow
                # batch): claim again now that nothing is.
                batch = None if self.stopping() else await self._claim(batch_size)
        if result.claimed:
            logger.info("outbox: %d claimed, %d sent, %d retry later, %d failed, %d released",
                        result.claimed, result.sent, result.retried, result.failed,
                        result.released)
        return result

    async def _claim(self, limit: int) -> _Batch | None:
        """Claim up to ``limit`` due rows and prefetch their orders and latest events. None
        when nothing is due; a batch without rows when every claimed row is in flight."""
        n = self.settings.notifications
        now = self.clock.now()
        claimed = await self.store.claim_due(now=now, lease_until=now + n.lease, limit=limit,
                                             channels=self._active(now))
        # A row of the batch still in flight whose lease ran out (a very slow batch) is
        # claimed again by the query; it is being handled, so it is not sent a second time.
        if not claimed:
            return None
        rows = [r for r in claimed if r.id not in self._in_flight]
        if not rows:
            return _Batch(rows=[], full=True, orders={}, events={})
        return _Batch(
            rows=rows, full=len(claimed) >= limit,
            orders=await self.store.orders_by_id([r.order_id for r in rows if r.order_id]),
            events=await self.store.latest_events(
                [r.shipment_id for r in rows if r.shipment_id is not None]))

    async def _send_batch(self, batch: _Batch, result: DrainResult, concurrency: int,
                          on_last_started: Callable[[], None]) -> None:
        """Handle every row of ``batch``, at most ``concurrency`` at once; calls
        ``on_last_started`` once the last row has begun; returns when every outcome is
        committed. Until then the batch's ids are "in flight" for :meth:`_claim`."""
        self._orders, self._events = batch.orders, batch.events
        self._in_flight = {r.id for r in batch.rows}
        slots = asyncio.Semaphore(concurrency)
        started = 0

        async def one(row: models.Notification) -> None:
            nonlocal started
            async with slots:
                started += 1
                if started == len(batch.rows):
                    on_last_started()
                outcome = await self._handle(row)
            setattr(result, outcome, getattr(result, outcome) + 1)

        try:
            await asyncio.gather(*(one(r) for r in batch.rows))
        finally:
            self._commit.flush()  # the batch is done: no outcome will join this group
            commits, self._commits = self._commits, []
            if commits:
                await asyncio.gather(*commits)
            self._in_flight = set()

    # ------------------------------------------------------------------ one row

    async def _handle(self, row: models.Notification) -> str:
        """Process one claimed row; returns the DrainResult field to count it under."""
        assert row.id is not None
        name = row.channel.value
        channel = self.channels.get(name)
        now = self.clock.now()
        if self.stopping() or channel is None or name not in self._active(now):
            until = self.paused.get(name, ("", None))[1]
            await self._record(Outcome(id=row.id, status="pending", next_attempt_at=until or now,
                                       count_attempt=False,
                                       error="released: stopping or channel paused"))
            return "released"
        try:
            message, recipient = await self._render(row)
        except (RenderError, NotFound, ValueError) as exc:
            logger.error("notification %s (%s) cannot be rendered: %s", row.id, row.trigger, exc)
            metrics.sends.labels(channel=name, outcome="error").inc()
            await self._record(Outcome(id=row.id, status="failed", error=f"render: {exc}"))
            return "failed"
        try:
            receipt = await self._send(channel, message, recipient)
        except ChannelMisconfigured as exc:
            metrics.sends.labels(channel=name, outcome="misconfigured").inc()
            until = await self._pause(name, exc.message, self.clock.now())
            await self._record(Outcome(id=row.id, status="pending", next_attempt_at=until,
                                       count_attempt=False,
                                       error=f"channel paused: {exc.message}"))
            return "released"
        except DeliveryRejected as exc:
            metrics.sends.labels(channel=name, outcome="rejected").inc()
            logger.warning("notification %s to %s rejected: %s", row.id,
                           _mask(name, row.recipient), exc.message)
            await self._record(Outcome(id=row.id, status="failed", error=exc.message))
            if exc.drop_token and name != "email":
                await self.store.disable_device(name, row.recipient, exc.message)
            return "failed"
        except DeliveryTransient as exc:
            return await self._later(row, exc.message, exc.retry_after)
        except Exception as exc:  # an unclassified channel error: retry later, never lose it
            logger.exception("notification %s: unexpected error from channel %s", row.id, name)
            return await self._later(row, f"{type(exc).__name__}: {exc}", None)
        now = self.clock.now()
        await self._record(Outcome(id=row.id, status="sent", sent_at=now,
                                   provider_id=receipt.provider_id))
        metrics.sends.labels(channel=name, outcome="sent").inc()
        if row.created_at is not None:
            seconds = (now - row.created_at).total_seconds()
            speed = self.clock.speed
            metrics.send_latency.labels(channel=name).observe(
                max(0.0, seconds / speed if speed > 1 else seconds))
        if logger.isEnabledFor(logging.INFO):  # masking costs, per message
            logger.info("notification %s (%s) sent by %s to %s", row.id, row.trigger, name,
                        _mask(name, row.recipient))
        return "sent"

    async def _send(self, channel: Channel, message: RenderedMessage,
                    recipient: Recipient) -> Receipt:
        # Most sends succeed at once: building the tenacity loop only after a transient error
        # saves its cost on every message. The loop then takes that error as its first
        # attempt's outcome, so attempts, waits and logging are exactly as if it ran from the
        # start (errors that are not TransientError propagate unchanged either way).
        try:
            return await channel.send(message, recipient)
        except TransientError as exc:
            first: TransientError | None = exc
        async for attempt in self.retry.retrying():
            with attempt:
                if first is not None:
                    error, first = first, None
                    raise error
                return await channel.send(message, recipient)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _later(self, row: models.Notification, error: str,
                     retry_after: float | None) -> str:
        assert row.id is not None
        name = row.channel.value
        metrics.sends.labels(channel=name, outcome="transient").inc()
        now = self.clock.now()
        give_up = self.settings.notifications.give_up_after
        if row.created_at is not None and now - row.created_at >= give_up:
            logger.error("notification %s (%s) dead after %s: %s", row.id, row.trigger,
                         give_up, error)
            await self._record(Outcome(id=row.id, status="dead", error=f"{error} (gave up)"))
            return "dead"
        delay = self.retry.reschedule_after(row.attempts + 1, retry_after)
        logger.warning("notification %s to %s: %s; next try in %s", row.id,
                       _mask(name, row.recipient), error, delay)
        await self._record(Outcome(id=row.id, status="pending", next_attempt_at=now + delay,
                                   error=error))
        return "retried"

    async def _render(self, row: models.Notification) -> tuple[RenderedMessage, Recipient]:
        if not row.order_id:
            raise NotFound("the order of this notification no longer exists")
        order = self._orders.get(row.order_id)
        if order is None:
            raise NotFound(f"order {row.order_id!r} not found")
        event = self._events.get(row.shipment_id) if row.shipment_id else None
        t = self.settings.templates
        ctx = notice.build_context(
            order, trigger=row.trigger, payload=row.payload, shipment_id=row.shipment_id,
            last_event=event, shop_name=t.shop_name, support_email=t.support_email,
            support_url=t.support_url,
            unsubscribe_url=self._unsubscribe_url(order.customer.email, row.channel.value),
            order_status_url=self.order_status_url(order.id) if self.order_status_url
            else None)
        kind = "email" if row.channel.value == "email" else "push"
        message = self.renderer.render(notification_id(row), ctx, channel=kind)
        name = order.customer.name if row.channel.value == "email" else ""
        return message, Recipient(address=row.recipient, name=name)

    def _unsubscribe_url(self, email: str, channel: str) -> str | None:
        api = self.settings.api
        try:
            return unsubscribe.unsubscribe_url(api.public_url, email, channel,
                                               api.unsubscribe_secret)
        except ValueError as exc:
            if not self._warned_unsubscribe:
                logger.warning("notices go out without an unsubscribe link: %s", exc)
                self._warned_unsubscribe = True
            return None

    # ------------------------------------------------------------------ pausing

    def _active(self, now: datetime) -> list[str]:
        for name, (_, until) in list(self.paused.items()):
            if until is not None and until <= now:
                logger.info("channel %s: pause over, trying again", name)
                del self.paused[name]
        return [n for n in self.channels if n not in self.paused]

    async def _pause(self, name: str, reason: str, now: datetime, *,
                     forever: bool = False) -> datetime:
        current = self.paused.get(name)
        until = None if forever else now + self.pause_for
        if current is not None:  # another in-flight row already paused it: one alert only
            return current[1] or now + self.pause_for
        self.paused[name] = (reason, until)
        logger.error("channel %s paused%s: %s", name,
                     "" if forever else f" for {self.pause_for}", reason)
        await self.store.record_channel_paused(name, reason, now=now)
        hook = self.on_channel_paused
        if hook is not None:
            try:
                outcome = hook(name, reason)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:  # the ops hook must never stop the sender
                logger.exception("on_channel_paused hook failed")
        return until or now + self.pause_for

    async def _pause_broken(self, now: datetime) -> None:
        for name, reason in self._broken.items():
            if name not in self.paused:
                await self._pause(name, reason, now, forever=True)


class _GroupCommit:
    """Outcomes of concurrent sends written together. :meth:`submit` queues an outcome and
    returns a future resolved when its transaction commits (or failed with its error). A group
    is written when ``max_batch`` outcomes are queued, ``max_delay`` seconds after its first
    outcome, or at :meth:`flush`; outcomes queued while one transaction runs go into the next.
    One transaction per few messages instead of one per message: each costs several round trips
    to the database thread."""

    def __init__(self, write: Callable[[list[Outcome]], Awaitable[None]], *,
                 max_delay: float = 0.005, max_batch: int = 64) -> None:
        self._write = write
        self._max_delay = max_delay
        self.max_batch = max_batch
        self._queue: list[tuple[Outcome, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._full: asyncio.Event | None = None

    def submit(self, outcome: Outcome) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((outcome, future))
        if self._task is None or self._task.done():
            self._full = asyncio.Event()
            self._task = asyncio.create_task(self._run(self._full))
        if len(self._queue) >= self.max_batch:
            self.flush()
        return future

    async def add(self, outcome: Outcome) -> None:
        """Queue ``outcome`` and wait until it is committed."""
        await self.submit(outcome)

    def flush(self) -> None:
        """Write what is queued now instead of waiting for more."""
        if self._full is not None:
            self._full.set()

    async def _run(self, full: asyncio.Event) -> None:
        while self._queue:
            if not full.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(full.wait(), self._max_delay)
            full.clear()
            batch, self._queue = self._queue, []
            try:
                await self._write([o for o, _ in batch])
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)


def _mask(channel: str, recipient: str) -> str:
    if channel == "email":
        return mask_address(recipient)
    return recipient[:12] + "..." if len(recipient) > 12 else recipient


def install_planner(app: App) -> None:
    """Make every state change of ``app.store`` plan its notifications in the same
    transaction. Cheap and pure: one-shot commands (import, status, dispute) use it too."""

    def plan_notifications(events: Sequence[DomainEvent], inputs: PlanInputs
                           ) -> list[NewNotification]:
        return planner.plan(events, inputs,
                            policy=planner.PlanPolicy.from_settings(app.settings),
                            now=app.clock.now())

    app.store.planner = plan_notifications


def install(app: App, *, on_channel_paused: PausedHook | None = None) -> OutboxSender:
    """Wire notifications into ``app``: the store's planner, the ``outbox_drain`` job, and the
    channels' closers. Returns the sender (``sender.on_channel_paused`` may be set later)."""
    from notifier.channels import registry

    install_planner(app)
    built = registry.build_channels(app.settings, clock=app.clock)
    sender = OutboxSender(store=app.store, clock=app.clock, settings=app.settings,
                          channels=built.channels, broken=built.broken,
                          on_channel_paused=on_channel_paused,
                          stopping=lambda: app.stopping)

    async def outbox_drain() -> None:
        sender.settings = app.settings  # pick up a reloaded configuration
        await sender.drain()

    app.jobs["outbox_drain"] = outbox_drain
    app.closers.append(built.aclose)
    return sender
