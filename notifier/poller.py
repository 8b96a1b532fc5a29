"""The poll tick: due shipments -> carrier adapters -> events, state, health, outbox.

For each enabled carrier: read its health, work out this tick's request budget (quota windows,
circuit, Retry-After; ``notifier.budget``), select due shipments (index only, oldest due first),
spend the budget where a poll is most useful (``schedule.select_within_budget``), push the rest
back, spend budget the quota would otherwise lose on polls ahead of schedule where news is
likely (never one shipment more often than ``min_interval``), poll in batches with bounded
concurrency while a pacer keeps the per-second limit in real time, then write everything of
the tick in one transaction per carrier. The schedule works in each destination's local time
(the customer's zone stands in for it). Time the carrier could not be polled is recorded as
blind time, so an outage never reads as a stale shipment.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from carriers.base import Carrier
from carriers.errors import (
    CarrierAuthError,
    CarrierError,
    CarrierPayloadError,
    CarrierRateLimited,
)
from carriers.model import BatchResult, TrackingEvent
from notifier import budget, metrics, schedule
from notifier.app import App
from notifier.carriers_factory import Carriers, build_carriers
from notifier.config import PollingSettings, Settings
from notifier.domain import DomainEvent
from notifier.models import CarrierHealth, Shipment
from notifier.schedule import LocalDay
from notifier.tracking import apply_deferral, apply_failure, apply_result

__all__ = ["Pacer", "Poller", "TickReport", "install"]

logger = logging.getLogger(__name__)


class Pacer:
    """At most ``rate`` request starts per real second (a simple interval pacer)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if self.interval <= 0:
            return
        async with self._lock:
            delay = self._next - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._next = max(self._next, time.monotonic()) + self.interval


@dataclass
class TickReport:
    polled: int = 0
    requests: int = 0
    changed: int = 0
    new_events: int = 0
    deferred: int = 0
    failures: int = 0
    rate_limited: int = 0
    unknown_codes: int = 0
    by_carrier: dict[str, int] = field(default_factory=dict)


@dataclass
class _CarrierTick:
    shipments: list[Shipment] = field(default_factory=list)
    events: dict[int, list[TrackingEvent]] = field(default_factory=dict)
    domain: list[DomainEvent] = field(default_factory=list)
    dirty: set[str] = field(default_factory=set)


class Poller:
    def __init__(self, app: App, adapters: Carriers, *,
                 rng: random.Random | None = None) -> None:
        self.app = app
        self.adapters = adapters
        self.rng = rng or random.Random()
        self.pacers: dict[str, Pacer] = {}

    def _pacer(self, name: str) -> Pacer:
        rate = getattr(self.app.settings.carriers, name).requests_per_second
        pacer = self.pacers.get(name)
        if pacer is None or abs(pacer.interval - (1.0 / rate if rate else 0.0)) > 1e-9:
            pacer = self.pacers[name] = Pacer(rate)
        return pacer

    async def tick(self) -> TickReport:
        report = TickReport()
        results = await asyncio.gather(*(self._carrier_tick(name, adapter, report)
                                         for name, adapter in self.adapters.items()),
                                       return_exceptions=True)
        for name, outcome in zip(self.adapters, results, strict=True):
            if isinstance(outcome, BaseException):
                logger.error("poll tick for %s failed", name, exc_info=outcome)
        if report.polled or report.failures or report.deferred:
            logger.info("poll tick: %d polled in %d requests, %d changed, %d new events, "
                        "%d deferred, %d failed, %d rate limited, %d unknown codes",
                        report.polled, report.requests, report.changed, report.new_events,
                        report.deferred, report.failures, report.rate_limited,
                        report.unknown_codes)
        return report

    async def _carrier_tick(self, name: str, adapter: Carrier, report: TickReport) -> None:
        app = self.app
        cfg = getattr(app.settings.carriers, name)
        policy = app.settings.polling
        now = app.clock.now()
        health = budget.advance_circuit(await app.store.carrier_health(name), now=now)
        tick = app.interval("poll_tick")
        real_tick = tick.total_seconds() / (app.clock.speed or 1.0)
        allowance = budget.tick_budget(health, cfg, now=now, tick=tick, real_tick_s=real_tick,
                                       carrier=name)
        due = await app.store.due_shipments(name, now, policy.batch_limit)
        local = await self._local(s.order_id for s in due)
        if not due and allowance > 0:
            # Nothing due, budget to spare: see whether a poll ahead of time is worth it.
            due_ahead = await self._ahead(name, (), (), allowance=allowance,
                                          batch_size=adapter.max_batch, now=now, local=local)
        else:
            due_ahead = []
        if not due and not due_ahead:
            if health.circuit_state == "half_open":
                await app.store.save_health(health)
            return
        metrics.due_backlog.labels(name).set(len(due))
        # No open-exception bonus from the status: the status already ranks a problem (an
        # extra bonus would put it above out for delivery, where news is likelier).
        chosen, deferred = schedule.select_within_budget(
            due, budget=allowance, now=now, open_exceptions=(),
            batch_size=adapter.max_batch, local=local)
        work = _CarrierTick()
        resets_at = budget.window_resets_at(health, cfg, now=now)
        if deferred and (resets_at is not None or len(due) >= policy.batch_limit):
            # Quota window spent or carrier blocked: push the rest to when it comes back. All
            # at that instant, not spread: the window's smoothed budget paces them in
            # priority order, and a spread would leave the window's first tick almost idle.
            # Within a window whose budget is only smoothed to nothing this tick, the rest
            # stays due and competes again next tick (pushing it a tick or two would leave
            # the next tick with nothing due and its budget unspent).
            until = resets_at or now + tick
            for s in deferred:
                work.shipments.append(apply_deferral(s, now=now, until=until))
            report.deferred += len(deferred)
        if due_ahead:
            chosen = due_ahead
        elif not deferred and allowance > 0:
            chosen = chosen + await self._ahead(name, due, chosen, allowance=allowance,
                                                batch_size=adapter.max_batch, now=now,
                                                local=local)
        if chosen:
            health = await self._poll(name, adapter, chosen, health, work, report, now,
                                      local)
        await app.store.save_tick(shipments=work.shipments, new_events=work.events,
                                  domain_events=work.domain, health=[health],
                                  dirty_orders=work.dirty, now=now)
        metrics.circuit_state.labels(name).set(1 if health.circuit_state in ("open", "paused")
                                               else 0)

    async def _local(self, order_ids: Iterable[str]) -> dict[str, LocalDay]:
        """Destination zone and delivery hours per order, where the customer's zone is known."""
        policy = self.app.settings.polling
        out: dict[str, LocalDay] = {}
        for order_id, tz in (await self.app.store.order_zones(order_ids)).items():
            where = schedule.local_day(tz, start_hour=policy.delivery_hours_start,
                                       end_hour=policy.delivery_hours_end)
            if where is not None:
                out[order_id] = where
        return out

    async def _ahead(self, name: str, due: Sequence[Shipment], chosen: Sequence[Shipment], *,
                     allowance: int, batch_size: int, now: datetime,
                     local: dict[str, LocalDay]) -> list[Shipment]:
        """Shipments not yet due to poll in this tick, when everything due fits the budget.

        Budget left unspent in a tick is lost (the quota windows do not carry it over), and
        with a fixed schedule a parcel that goes out for delivery right after a poll waits a
        whole interval to be seen. So (bench/polling.py measured this against a fixed-interval
        round robin): (1) free places in the last batch request, which cost nothing, go to the
        best candidates by priority; (2) spare whole requests go only to shipments where news
        is likely now (``schedule.likely_news``: out for delivery, a fresh problem, the
        delivery window during delivery hours), highest priority first, so the starvation term
        of ``poll_priority`` rotates them; the last such request is filled up to the batch
        size with the next best. Spare requests exist only under an hourly or daily quota:
        a carrier limited per second only (UPS in production) is polled on schedule. No
        candidate was polled less than ``min_interval`` ago, so no shipment is polled every
        tick. Never more requests than ``allowance``. ``local`` gains the candidates' zones.
        """
        size = max(1, batch_size)
        cfg = getattr(self.app.settings.carriers, name)
        # Only an hourly or daily quota loses what a tick leaves unspent. A carrier limited
        # per second only has no spare budget to use up: its extra requests would be load on
        # the carrier and nothing else, so it is polled on schedule (free batch places aside).
        quota = bool(cfg.requests_per_hour or cfg.requests_per_day)
        spare = allowance - math.ceil(len(chosen) / size) if quota else 0
        free = (-len(chosen)) % size
        if spare <= 0 and free == 0:
            return []
        policy = self.app.settings.polling
        taken = {s.id for s in due}
        recent = now - policy.min_interval
        pool = [s for s in await self.app.store.due_shipments(
                    name, now + policy.max_interval, policy.batch_limit)
                if s.id not in taken and (s.last_poll_at is None or s.last_poll_at <= recent)]
        if not pool:
            return []
        local.update(await self._local(s.order_id for s in pool if s.order_id not in local))
        ranked = sorted(pool, key=lambda s: -schedule.poll_priority(
            s, now=now, has_open_exception=False, local=local.get(s.order_id)))
        extra, rest = ranked[:free], ranked[free:]
        if spare <= 0:
            return extra
        news = [s for s in rest
                if schedule.likely_news(s, now=now, local=local.get(s.order_id))][:spare * size]
        if not news:
            return extra
        picked = {id(s) for s in news}
        fill = [s for s in rest if id(s) not in picked][:(-len(news)) % size]
        return extra + news + fill

    async def _poll(self, name: str, adapter: Carrier, chosen: Sequence[Shipment],
                    health: CarrierHealth, work: _CarrierTick, report: TickReport,
                    now: datetime, local: Mapping[str, LocalDay]) -> CarrierHealth:
        app = self.app
        size = max(1, adapter.max_batch)
        batches = [list(chosen[i:i + size]) for i in range(0, len(chosen), size)]
        known = await app.store.event_identities([s.id for s in chosen if s.id is not None])
        promised = await app.store.promised_dates(s.order_id for s in chosen)
        limit = asyncio.Semaphore(getattr(app.settings.carriers, name).concurrency)
        pacer = self._pacer(name)
        stop = False
        # The adapter counts its HTTP requests (token calls, one GET per number where a batch
        # endpoint is missing) in one counter shared by the concurrent batches, so it is read
        # around the whole tick: each attempted batch counts one request as it finishes, and
        # whatever the counter says beyond that is added at the end.
        made_before = getattr(adapter, "requests_made", None)
        attempted = 0

        async def one(batch: list[Shipment]
                      ) -> tuple[list[Shipment], BatchResult | Exception | None]:
            async with limit:
                if stop or app.stopping:
                    return batch, None  # not attempted
                await pacer.wait()
                try:
                    result: BatchResult | Exception = await adapter.track(
                        [s.tracking_number for s in batch])
                except CarrierError as exc:
                    result = exc
                return batch, result

        tasks = [asyncio.ensure_future(one(b)) for b in batches]
        for finished in asyncio.as_completed(tasks):
            batch, result = await finished
            if result is None:
                continue  # not attempted: stays due, nothing counted
            attempted += 1
            report.requests += 1
            health = budget.after_requests(health, 1, now=now)
            if isinstance(result, Exception):
                health, stop = self._failed(name, batch, result, health, work, report, now,
                                            stop)
                continue
            health = budget.after_success(health, now=now)
            metrics.polls.labels(name, "ok").inc()
            self._apply(batch, result, known, promised, work, report, now, local)
        if isinstance(made_before, int):
            extra = int(getattr(adapter, "requests_made", made_before)) - made_before - attempted
            if extra > 0:
                report.requests += extra
                health = budget.after_requests(health, extra, now=now)
        report.by_carrier[name] = report.by_carrier.get(name, 0) + len(chosen)
        return health

    def _failed(self, name: str, batch: list[Shipment], exc: Exception, health: CarrierHealth,
                work: _CarrierTick, report: TickReport, now: datetime, stop: bool
                ) -> tuple[CarrierHealth, bool]:
        report.failures += len(batch)
        policy = self.app.settings.polling
        if isinstance(exc, CarrierRateLimited):
            report.rate_limited += 1
            metrics.rate_limited.labels(name).inc()
            metrics.polls.labels(name, "rate_limited").inc()
            health = budget.after_rate_limited(health, exc.retry_after or 1.0, now=now)
            retry = timedelta(seconds=max(exc.retry_after or 1.0, 1.0))
            stop = True  # the rest of this tick's batches would be refused too
        elif isinstance(exc, CarrierAuthError):
            metrics.polls.labels(name, "auth_failed").inc()
            logger.error("%s: credentials rejected; polling paused until the configuration "
                         "is fixed: %s", name, exc.message)
            health = budget.after_auth_failure(health, exc.message, now=now)
            retry = policy.circuit_open_for
            stop = True
        else:
            outcome = "bad_payload" if isinstance(exc, CarrierPayloadError) else "unavailable"
            metrics.polls.labels(name, outcome).inc()
            # Name the parcels (a few of a large batch): "which one?" is the first question.
            shown = ", ".join(s.tracking_number for s in batch[:3])
            more = f" and {len(batch) - 3} more" if len(batch) > 3 else ""
            logger.warning("%s: poll of %d number(s) (%s%s) failed: %s", name, len(batch),
                           shown, more, exc)
            retry_after = getattr(exc, "retry_after", None)
            health = budget.after_failure(health, str(exc), now=now, policy=policy,
                                          retry_after=retry_after)
            backoff = min(policy.circuit_open_for * (2 ** min(health.consecutive_failures, 6)),
                          policy.max_interval)
            retry = max(backoff, timedelta(seconds=retry_after or 0))
            stop = stop or health.circuit_state == "open"
        for s in batch:
            work.shipments.append(apply_failure(s, now=now, retry_in=retry))
        return health, stop

    def _apply(self, batch: list[Shipment], result: BatchResult, known: dict[int, set[str]],
               promised: Mapping[str, date | None], work: _CarrierTick, report: TickReport,
               now: datetime, local: Mapping[str, LocalDay]) -> None:
        by_number = {r.tracking_number: r for r in result.results}
        settings = self.app.settings.polling
        for s in batch:
            r = by_number.get(s.tracking_number)
            if r is None:
                problem = result.problems.get(s.tracking_number, "no answer for this number")
                logger.warning("%s %s: %s", s.carrier, s.tracking_number, problem)
                work.shipments.append(apply_failure(s, now=now, retry_in=settings.exception))
                continue
            report.unknown_codes += len(r.unknown_codes)
            rand = self.rng.random()
            outcome = apply_result(s, r, known=known.get(s.id or 0, set()), now=now,
                                   policy=settings, rand=rand,
                                   promised=promised.get(s.order_id))
            report.polled += 1
            work.shipments.append(_localised(outcome.shipment, changed=outcome.changed,
                                             now=now, policy=settings, rand=rand,
                                             local=local.get(s.order_id)))
            work.dirty.add(s.order_id)  # rules re-run after every successful poll
            if outcome.new_events and s.id is not None:
                work.events[s.id] = list(outcome.new_events)
                report.new_events += len(outcome.new_events)
            if outcome.changed:
                report.changed += 1
            work.domain.extend(outcome.domain_events)


def _localised(shipment: Shipment, *, changed: bool, now: datetime, policy: PollingSettings,
               rand: float, local: LocalDay | None) -> Shipment:
    """``apply_result`` schedules without the destination's zone; where it is known, the next
    poll is worked out again in local time (same inputs, same jitter). A stop or an expiry
    does not depend on the zone and is kept as it is."""
    if local is None or shipment.next_poll_at is None:
        return shipment
    nxt, _ = schedule.next_poll_at(shipment, now=now, policy=policy, changed=changed,
                                   rand=rand, local=local)
    return dataclasses.replace(shipment, next_poll_at=nxt) if nxt is not None else shipment


def install(app: App) -> Poller:
    """Build the carrier adapters and wire the ``poll_tick`` job (poll, then sweep).

    On reload the adapters are rebuilt from the new settings, and a carrier paused for
    rejected credentials is unpaused when its configuration changed (it is probed at once).
    """
    adapters = build_carriers(app.settings, app.clock.now)
    poller = Poller(app, adapters)
    sweep = app.jobs.get("anomaly_sweep")

    async def close() -> None:
        await poller.adapters.aclose()

    async def reload(old: Settings) -> None:
        previous = poller.adapters
        poller.adapters = build_carriers(app.settings, app.clock.now)
        await previous.aclose()
        for name in poller.adapters:
            if getattr(old.carriers, name) != getattr(app.settings.carriers, name):
                health = await app.store.carrier_health(name)
                if health.circuit_state == "paused":
                    await app.store.save_health(budget.unpaused(health))
                    logger.info("%s: configuration changed; polling resumes", name)

    app.closers.append(close)
    app.reloaders.append(reload)

    async def poll_tick() -> None:
        await poller.tick()
        if sweep is not None:
            await sweep()  # evaluate what this tick changed without waiting for the sweep job

    app.jobs["poll_tick"] = poll_tick
    return poller
