"""The incremental anomaly sweep.

Only orders whose data changed (``rules_dirty``) or whose recheck deadline passed
(``rules_recheck_at <= now``) are evaluated; both are index lookups, so a sweep over a million
quiet orders costs nothing. Each batch: load (few queries) -> ``rules.evaluate`` +
``rules.reconcile`` (pure) -> write opens/updates/closes with history, the next deadline, and
the notifications they cause, in one transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from notifier import metrics, rules
from notifier.app import App

__all__ = ["SweepReport", "install", "sweep"]

logger = logging.getLogger(__name__)

BATCH = 500


@dataclass
class SweepReport:
    evaluated: int = 0
    opened: int = 0
    updated: int = 0
    closed: int = 0


async def sweep(app: App, *, max_batches: int = 20) -> SweepReport:
    """Evaluate every order that needs it (up to ``max_batches`` x BATCH per call)."""
    policy = rules.RulePolicy.from_settings(app.settings.anomalies)
    report = SweepReport()
    for _ in range(max_batches):
        if app.stopping:
            break
        now = app.clock.now()
        ids = await app.store.orders_to_evaluate(now, BATCH)
        if not ids:
            break
        data = await app.store.rules_input(ids)
        opened, updated, closed, rechecks = [], [], [], {}
        for oid in ids:
            order = data.orders.get(oid)
            if order is None:
                continue
            verdict = rules.evaluate(order, events=data.events, open_disputes=data.open_disputes,
                                     now=now, policy=policy)
            changes = rules.reconcile(data.open_anomalies.get(oid, []), verdict.findings,
                                      now=now, order=order)
            opened += [(f.order_id, f.shipment_id, f.kind.value, f.detail, f.carrier)
                       for f in changes.opened]
            updated += [(a.id, f.detail) for a, f in changes.updated if a.id is not None]
            closed += list(changes.closed)
            rechecks[oid] = verdict.recheck_at
        await app.store.save_sweep(opened=opened, updated=updated, closed=closed,
                                   rechecks=rechecks, now=now)
        report.evaluated += len(ids)
        report.opened += len(opened)
        report.updated += len(updated)
        report.closed += len(closed)
        if len(ids) < BATCH:
            break
    if report.opened or report.closed:
        logger.info("anomaly sweep: %d orders evaluated, %d opened, %d updated, %d closed",
                    report.evaluated, report.opened, report.updated, report.closed)
    metrics.ticks.labels("anomaly_sweep").inc()
    return report


def install(app: App) -> None:
    async def job() -> None:
        await sweep(app)

    app.jobs["anomaly_sweep"] = job
