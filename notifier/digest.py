"""The ops digest as a view-model, and which cron period is due. Pure.

:func:`build_digest` turns plain records (open and recently closed anomalies, open disputes, dead
notifications, carrier API health) and ``now`` into a :class:`Digest` that the templates in
``templates/digest/`` only format. :func:`due_period` decides which cron fire time is due from a
"next fire time" calculator (APScheduler's ``CronTrigger.get_next_fire_time`` in the job; it is
passed in so this module imports no scheduler) and the last period already recorded: only the
latest due period is returned; earlier missed ones are counted as skipped. Never reads the clock,
never does I/O; may import ``notifier`` value modules only.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

__all__ = [
    "AGE_BUCKETS", "AnomalyGroup", "AnomalyRecord", "AnomalyRow", "Bar", "CarrierHealthRecord",
    "CarrierHealthView", "ChangeRow", "DeadRecord", "Digest", "DigestData", "DigestRecord",
    "DisputeRecord",
    "FireCalculator", "KindSection", "PeriodDue", "age_bucket", "build_digest", "digest_json",
    "due_period", "format_age", "latest_fire", "mask_recipient", "parse_period_key",
    "period_key",
]

# Fire-time calculator with APScheduler's signature: (previous fire time, now) -> next fire
# time at or after ``now`` (after ``previous`` when given), or None when there is none.
FireCalculator = Callable[[datetime | None, datetime], datetime | None]

# (label, lower bound inclusive); the last bucket is open-ended. Listed youngest first.
AGE_BUCKETS: tuple[tuple[str, timedelta], ...] = (
    ("<1d", timedelta(0)), ("1-3d", timedelta(days=1)), ("3-7d", timedelta(days=3)),
    (">7d", timedelta(days=7)))
_BUCKET_RANK = {label: i for i, (label, _) in enumerate(AGE_BUCKETS)}
NO_CARRIER = "(order)"  # order-level anomalies (e.g. stale_processing) have no carrier
_MICRO = timedelta(microseconds=1)
# Windows searched backwards for the latest fire time; the first holding one wins, so the
# forward walk inside it stays short even for dense schedules.
_LOOKBACK = (timedelta(hours=1), timedelta(days=1), timedelta(days=8), timedelta(days=35),
             timedelta(days=400), timedelta(days=1500))
_MAX_WALK = 100_000


# ------------------------------------------------------------------------------ input records


@dataclass(frozen=True, slots=True, kw_only=True)
class AnomalyRecord:
    """One anomaly: open (``resolved_at`` None) or closed; instants are aware UTC."""

    id: int
    kind: str
    order_id: str
    carrier: str | None
    tracking_number: str | None
    detail: str
    opened_at: datetime
    resolved_at: datetime | None = None
    resolution: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DisputeRecord:
    id: int
    order_id: str
    carrier: str
    tracking_number: str
    reason: str
    opened_at: datetime
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadRecord:
    """A notification given up on (``recipient`` is masked when shown)."""

    id: int
    order_id: str | None
    trigger: str
    channel: str
    recipient: str
    attempts: int
    last_error: str
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class CarrierHealthRecord:
    """One ``carrier_health`` row (counters are since the polling feature started counting)."""

    carrier: str
    successes: int = 0
    failures: int = 0
    rate_limited: int = 0
    consecutive_failures: int = 0
    circuit_state: str = "closed"
    circuit_opened_at: datetime | None = None
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_error: str | None = None
    paused_reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DigestRecord:
    """One ``digests`` row. ``created_at`` is when the current (or last) attempt started and
    gathered its data; ``summary`` holds the key numbers and the recipients already served."""

    period_key: str
    created_at: datetime
    sent_at: datetime | None
    status: str
    summary: dict[str, Any]

    @property
    def fire_time(self) -> datetime | None:
        return parse_period_key(self.period_key)


@dataclass(frozen=True, slots=True, kw_only=True)
class DigestData:
    """What the job gathers: open anomalies plus those resolved after ``since``."""

    anomalies: Sequence[AnomalyRecord] = ()
    disputes: Sequence[DisputeRecord] = ()
    dead_total: int = 0
    dead_latest: Sequence[DeadRecord] = ()
    health: Sequence[CarrierHealthRecord] = ()


# ------------------------------------------------------------------------------ view-model


@dataclass(frozen=True, slots=True, kw_only=True)
class AnomalyRow:
    order_id: str
    tracking_number: str
    detail: str
    opened: str
    age: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AnomalyGroup:
    """Open anomalies of one kind, carrier and age bucket; ``rows`` capped, ``more`` left out."""

    kind: str
    carrier: str
    bucket: str
    total: int
    rows: tuple[AnomalyRow, ...]
    more: int


@dataclass(frozen=True, slots=True, kw_only=True)
class KindSection:
    kind: str
    total: int
    groups: tuple[AnomalyGroup, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar:
    """One bar of the table-cell chart: ``percent`` of the widest bar (1-100)."""

    label: str
    count: int
    percent: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeRow:
    kind: str
    carrier: str
    order_id: str
    tracking_number: str
    at: str
    note: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DisputeView:
    order_id: str
    carrier: str
    tracking_number: str
    reason: str
    opened: str
    age: str
    note: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadView:
    id: int
    order_id: str
    trigger: str
    channel: str
    recipient: str
    attempts: int
    last_error: str
    created: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CarrierHealthView:
    carrier: str
    requests: int
    success_rate: str
    rate_limited: int
    circuit_state: str
    last_success: str
    last_error: str
    paused_reason: str
    ok: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Digest:
    """Everything the digest shows; strings are already formatted in ``tz``."""

    period_key: str
    subject: str
    generated_at: str
    since: str
    tz: str
    open_total: int
    kinds: tuple[KindSection, ...]
    bars_by_kind: tuple[Bar, ...]
    bars_by_carrier: tuple[Bar, ...]
    opened_total: int
    opened: tuple[ChangeRow, ...]
    closed_total: int
    closed: tuple[ChangeRow, ...]
    disputes_total: int
    disputes: tuple[DisputeView, ...]
    dead_total: int
    dead_latest: tuple[DeadView, ...]
    health: tuple[CarrierHealthView, ...]
    skipped_periods: int
    skipped_note: str


# ------------------------------------------------------------------------------ helpers


def age_bucket(age: timedelta) -> str:
    """The bucket label for an age; lower bounds are inclusive (exactly 1 day is "1-3d")."""
    label = AGE_BUCKETS[0][0]
    for name, lower in AGE_BUCKETS:
        if age >= lower:
            label = name
    return label


def format_age(age: timedelta) -> str:
    """``"3d 4h"``, ``"5h 12m"``, ``"7m"``; negative ages (clock skew) show as ``"0m"``."""
    minutes = max(0, int(age.total_seconds() // 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {mins}m"
    return f"{mins}m"


def mask_recipient(address: str) -> str:
    """``j***@example.com`` for e-mail; push tokens and URLs keep their first 8 characters."""
    local, at, domain = address.partition("@")
    if at and local and "/" not in address:
        return f"{local[0]}***@{domain}"
    return address[:8] + "..." if len(address) > 8 else address


def _local(when: datetime | None, tz: tzinfo) -> str:
    return "never" if when is None else when.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _bars(counts: Counter[str]) -> tuple[Bar, ...]:
    if not counts:
        return ()
    widest = max(counts.values())
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return tuple(Bar(label=k, count=v, percent=max(1, round(100 * v / widest)))
                 for k, v in ordered)


def _change(a: AnomalyRecord, at: datetime, note: str, tz: tzinfo) -> ChangeRow:
    return ChangeRow(kind=a.kind, carrier=a.carrier or NO_CARRIER, order_id=a.order_id,
                     tracking_number=a.tracking_number or "", at=_local(at, tz), note=note)


def _health(h: CarrierHealthRecord, now: datetime, tz: tzinfo) -> CarrierHealthView:
    requests = h.successes + h.failures
    rate = "n/a" if requests == 0 else f"{100 * h.successes / requests:.1f}%"
    last = _local(h.last_success_at, tz)
    if h.last_success_at is not None:
        last += f" ({format_age(now - h.last_success_at)} ago)"
    return CarrierHealthView(
        carrier=h.carrier, requests=requests, success_rate=rate, rate_limited=h.rate_limited,
        circuit_state=h.circuit_state, last_success=last, last_error=h.last_error or "",
        paused_reason=h.paused_reason or "",
        ok=h.circuit_state == "closed" and not h.paused_reason)


# ------------------------------------------------------------------------------ building


def build_digest(data: DigestData, *, now: datetime, since: datetime, period_key: str,
                 tz: tzinfo, max_rows_per_group: int = 20, max_changes: int = 50,
                 max_disputes: int = 50, skipped_periods: int = 0,
                 skipped_first: str | None = None) -> Digest:
    """The digest for ``now``. Opened/closed "since" means strictly after ``since`` and not
    after ``now``. Groups are ordered by kind, carrier, then age bucket oldest first; rows in a
    group oldest first, at most ``max_rows_per_group`` (the rest counted in ``more``). Opened
    and closed lists are newest first, capped at ``max_changes`` (totals are exact)."""
    cap = max(1, max_rows_per_group)
    open_ = sorted((a for a in data.anomalies if a.resolved_at is None),
                   key=lambda a: (a.opened_at, a.id))
    buckets: dict[tuple[str, str, str], list[AnomalyRecord]] = {}
    for a in open_:
        key = (a.kind, a.carrier or NO_CARRIER, age_bucket(now - a.opened_at))
        buckets.setdefault(key, []).append(a)
    kinds: list[KindSection] = []
    for kind in sorted({k for k, _, _ in buckets}):
        keys = sorted((k for k in buckets if k[0] == kind),
                      key=lambda k: (k[1], -_BUCKET_RANK[k[2]]))
        groups = tuple(
            AnomalyGroup(
                kind=kind, carrier=carrier, bucket=bucket, total=len(items),
                rows=tuple(AnomalyRow(order_id=a.order_id, tracking_number=a.tracking_number
                                      or "", detail=a.detail, opened=_local(a.opened_at, tz),
                                      age=format_age(now - a.opened_at))
                           for a in items[:cap]),
                more=max(0, len(items) - cap))
            for (_, carrier, bucket) in keys for items in [buckets[(kind, carrier, bucket)]])
        kinds.append(KindSection(kind=kind, total=sum(g.total for g in groups), groups=groups))

    def within(at: datetime | None) -> bool:
        return at is not None and since < at <= now

    opened = sorted((a for a in data.anomalies if within(a.opened_at)),
                    key=lambda a: (a.opened_at, a.id), reverse=True)
    closed = sorted((a for a in data.anomalies if within(a.resolved_at)),
                    key=lambda a: (a.resolved_at or now, a.id), reverse=True)
    disputes = sorted(data.disputes, key=lambda d: (d.opened_at, d.id))
    dead = sorted(data.dead_latest, key=lambda d: (d.created_at, d.id), reverse=True)
    note = ""
    if skipped_periods:
        first = f" (from {skipped_first})" if skipped_first else ""
        note = (f"{skipped_periods} earlier scheduled digest(s) were missed{first} while the "
                "daemon was not running; this digest covers them.")
    return Digest(
        period_key=period_key,
        subject=_subject(period_key, len(open_), len(opened), len(closed), data.dead_total,
                         now, tz),
        generated_at=_local(now, tz), since=_local(since, tz), tz=str(tz),
        open_total=len(open_), kinds=tuple(kinds),
        bars_by_kind=_bars(Counter(a.kind for a in open_)),
        bars_by_carrier=_bars(Counter(a.carrier or NO_CARRIER for a in open_)),
        opened_total=len(opened),
        opened=tuple(_change(a, a.opened_at, a.detail, tz) for a in opened[:max_changes]),
        closed_total=len(closed),
        closed=tuple(_change(a, a.resolved_at or now, a.resolution or "", tz)
                     for a in closed[:max_changes]),
        disputes_total=len(disputes),
        disputes=tuple(DisputeView(order_id=d.order_id, carrier=d.carrier,
                                   tracking_number=d.tracking_number, reason=d.reason,
                                   opened=_local(d.opened_at, tz),
                                   age=format_age(now - d.opened_at), note=d.note)
                       for d in disputes[:max_disputes]),
        dead_total=data.dead_total,
        dead_latest=tuple(DeadView(id=d.id, order_id=d.order_id or "", trigger=d.trigger,
                                   channel=d.channel, recipient=mask_recipient(d.recipient),
                                   attempts=d.attempts, last_error=d.last_error,
                                   created=_local(d.created_at, tz)) for d in dead),
        health=tuple(_health(h, now, tz) for h in sorted(data.health, key=lambda h: h.carrier)),
        skipped_periods=skipped_periods, skipped_note=note)


def _subject(key: str, open_total: int, opened: int, closed: int, dead: int, now: datetime,
             tz: tzinfo) -> str:
    when = _local(parse_period_key(key) or now, tz)
    text = f"Ops digest {when}: {open_total} open anomalies (+{opened} new, -{closed} resolved)"
    return text + (f", {dead} dead notifications" if dead else "")


def digest_json(digest: Digest) -> dict[str, Any]:
    """The digest as JSON-ready data (the webhook payload's ``data``)."""
    return dataclasses.asdict(digest)


# ------------------------------------------------------------------------------ periods


def period_key(fire_time: datetime) -> str:
    """``"2026-11-02T08:00+00:00"``: the fire time in the digest zone, to the minute."""
    return fire_time.isoformat(timespec="minutes")


def parse_period_key(key: str) -> datetime | None:
    """The fire time of a scheduled period key; None for manual keys and anything else."""
    try:
        when = datetime.fromisoformat(key)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def latest_fire(next_fire: FireCalculator, now: datetime) -> datetime | None:
    """The latest fire time at or before ``now`` (None if none in about four years)."""
    for window in _LOOKBACK:
        t = next_fire(None, now - window)
        if t is None or t > now:
            continue
        for _ in range(_MAX_WALK):
            n = next_fire(t, t + _MICRO)
            if n is None or n > now:
                return t
            t = n
        return t
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class PeriodDue:
    key: str
    fire_time: datetime
    # The scheduled time before this one: the "since" of a first digest with no predecessor.
    previous_fire: datetime | None
    skipped: int
    skipped_first: str | None


def due_period(next_fire: FireCalculator, *, now: datetime,
               last_fire: datetime | None) -> PeriodDue | None:
    """The period to send now, or None.

    The due period is the latest fire time at or before ``now``. It is due when no period
    was recorded yet (first run: the latest scheduled time is sent, even if it was a while ago)
    or when it is after ``last_fire``; fire times strictly between ``last_fire`` and it are
    skipped (caught up once, by this one) and counted.
    """
    fire = latest_fire(next_fire, now)
    if fire is None or (last_fire is not None and fire <= last_fire):
        return None
    skipped, first = 0, None
    if last_fire is not None:
        t = next_fire(last_fire, last_fire + _MICRO)
        while t is not None and t < fire and skipped < _MAX_WALK:
            first = first or period_key(t)
            skipped += 1
            t = next_fire(t, t + _MICRO)
    return PeriodDue(key=period_key(fire), fire_time=fire,
                     previous_fire=latest_fire(next_fire, fire - _MICRO), skipped=skipped,
                     skipped_first=first)
