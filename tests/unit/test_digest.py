"""The digest view-model (grouping, caps, age buckets, opened/closed since), cron periods, and
the templates (escaping, readable text part). Pure: hand-made records, ``now`` passed in."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from notifier import digest as dg
from notifier.digest_job import DigestRenderer, fire_calculator

NOW = datetime(2026, 11, 16, 8, 0, tzinfo=UTC)
SINCE = NOW - timedelta(days=1)
_ids = iter(range(1, 1_000_000))


def anomaly(kind: str = "stale_in_transit", carrier: str | None = "ups", *, age: timedelta,
            order: str | None = None, resolved_ago: timedelta | None = None,
            detail: str = "no scan") -> dg.AnomalyRecord:
    i = next(_ids)
    return dg.AnomalyRecord(
        id=i, kind=kind, order_id=order or f"O-{i}", carrier=carrier,
        tracking_number=None if carrier is None else f"1Z{i:08d}", detail=detail,
        opened_at=NOW - age, resolved_at=None if resolved_ago is None else NOW - resolved_ago,
        resolution=None if resolved_ago is None else "delivered")


def build(*records: dg.AnomalyRecord, cap: int = 20, **data: object) -> dg.Digest:
    return dg.build_digest(dg.DigestData(anomalies=records, **data),  # type: ignore[arg-type]
                           now=NOW, since=SINCE, period_key="2026-11-16T08:00+00:00", tz=UTC,
                           max_rows_per_group=cap)


# ------------------------------------------------------------------------------ buckets


@pytest.mark.parametrize(("age", "bucket"), [
    (timedelta(0), "<1d"), (timedelta(hours=23, minutes=59), "<1d"), (timedelta(days=1), "1-3d"),
    (timedelta(days=2, hours=23), "1-3d"), (timedelta(days=3), "3-7d"),
    (timedelta(days=6, hours=23), "3-7d"), (timedelta(days=7), ">7d"), (timedelta(days=90), ">7d"),
], ids=lambda v: str(v))
def test_age_bucket_edges(age: timedelta, bucket: str) -> None:
    assert dg.age_bucket(age) == bucket


@pytest.mark.parametrize(("age", "text"), [
    (timedelta(minutes=7, seconds=59), "7m"), (timedelta(hours=5, minutes=12), "5h 12m"),
    (timedelta(days=3, hours=4, minutes=30), "3d 4h"), (timedelta(seconds=-30), "0m")])
def test_format_age(age: timedelta, text: str) -> None:
    assert dg.format_age(age) == text


# ------------------------------------------------------------------------------ grouping


def test_groups_by_kind_carrier_and_bucket_oldest_first() -> None:
    records = [
        anomaly("stale_in_transit", "ups", age=timedelta(hours=2)),
        anomaly("stale_in_transit", "ups", age=timedelta(days=10)),
        anomaly("stale_in_transit", "ups", age=timedelta(days=8)),
        anomaly("stale_in_transit", "fedex", age=timedelta(days=2)),
        anomaly("exception", "dhl", age=timedelta(days=4)),
        anomaly("stale_processing", None, age=timedelta(days=5)),
    ]
    d = build(*records)
    assert d.open_total == 6
    assert [k.kind for k in d.kinds] == ["exception", "stale_in_transit", "stale_processing"]
    transit = d.kinds[1]
    assert transit.total == 4
    assert [(g.carrier, g.bucket, g.total) for g in transit.groups] == [
        ("fedex", "1-3d", 1), ("ups", ">7d", 2), ("ups", "<1d", 1)]
    # Rows inside a group: oldest first.
    assert [r.age for r in transit.groups[1].rows] == ["10d 0h", "8d 0h"]
    assert d.kinds[2].groups[0].carrier == dg.NO_CARRIER
    assert d.kinds[2].groups[0].rows[0].tracking_number == ""


def test_groups_are_capped_with_and_n_more() -> None:
    records = [anomaly(age=timedelta(days=8, hours=i)) for i in range(7)]
    records.append(anomaly(age=timedelta(hours=1)))
    d = build(*records, cap=3)
    old, young = d.kinds[0].groups
    assert (old.bucket, old.total, len(old.rows), old.more) == (">7d", 7, 3, 4)
    # The three shown are the three oldest.
    assert [r.age for r in old.rows] == ["8d 6h", "8d 5h", "8d 4h"]
    assert (young.total, len(young.rows), young.more) == (1, 1, 0)
    assert d.kinds[0].total == 8


def test_resolved_anomalies_are_not_open() -> None:
    d = build(anomaly(age=timedelta(days=2), resolved_ago=timedelta(hours=1)),
              anomaly(age=timedelta(days=2)))
    assert d.open_total == 1
    assert sum(g.total for k in d.kinds for g in k.groups) == 1


def test_bars_scale_to_the_largest_count() -> None:
    records = ([anomaly("overdue", "ups", age=timedelta(days=1)) for _ in range(4)]
               + [anomaly("exception", "usps", age=timedelta(days=1))])
    d = build(*records)
    assert [(b.label, b.count, b.percent) for b in d.bars_by_kind] == [
        ("overdue", 4, 100), ("exception", 1, 25)]
    assert [(b.label, b.count) for b in d.bars_by_carrier] == [("ups", 4), ("usps", 1)]


# ------------------------------------------------------------------------------ since


def test_opened_and_closed_since_the_previous_digest() -> None:
    before = anomaly(age=timedelta(days=2))  # opened before `since`, still open
    new_open = anomaly(age=timedelta(hours=3))
    at_since = anomaly(age=NOW - SINCE)  # exactly at `since`: belongs to the previous digest
    at_now = anomaly(age=timedelta(0))  # exactly now: this digest
    closed_old = anomaly(age=timedelta(days=5), resolved_ago=timedelta(hours=2))
    flash = anomaly(age=timedelta(hours=6), resolved_ago=timedelta(hours=5))  # both, in window
    closed_before = anomaly(age=timedelta(days=5), resolved_ago=timedelta(days=2))
    d = build(before, new_open, at_since, at_now, closed_old, flash, closed_before)
    assert d.opened_total == 3
    assert [c.order_id for c in d.opened] == [at_now.order_id, new_open.order_id,
                                               flash.order_id]  # newest first
    assert d.closed_total == 2
    assert [c.order_id for c in d.closed] == [closed_old.order_id, flash.order_id]
    assert d.closed[0].note == "delivered"
    assert d.open_total == 4


def test_change_lists_are_capped_but_totals_exact() -> None:
    records = [anomaly(age=timedelta(minutes=10 + i)) for i in range(60)]
    d = build(*records)
    assert d.opened_total == 60
    assert len(d.opened) == 50


# ------------------------------------------------------------------------------ other parts


def test_health_disputes_dead_and_subject() -> None:
    health = [
        dg.CarrierHealthRecord(carrier="ups", successes=197, failures=3, rate_limited=2,
                               last_success_at=NOW - timedelta(minutes=5)),
        dg.CarrierHealthRecord(carrier="dhl", circuit_state="open", last_error="HTTP 503",
                               circuit_opened_at=NOW - timedelta(minutes=40)),
    ]
    dead = [dg.DeadRecord(id=i, order_id=f"O-{i}", trigger="shipped", channel="email",
                          recipient="jane.doe@example.net", attempts=5, last_error="550 no",
                          created_at=NOW - timedelta(hours=i)) for i in range(1, 4)]
    disputes = [dg.DisputeRecord(id=1, order_id="O-9", carrier="fedex", tracking_number="7946",
                                 reason="not_received", opened_at=NOW - timedelta(days=2))]
    d = build(anomaly(age=timedelta(hours=1)), health=health, dead_total=12, dead_latest=dead,
              disputes=disputes)
    assert [(h.carrier, h.success_rate, h.rate_limited, h.ok) for h in d.health] == [
        ("dhl", "n/a", 0, False), ("ups", "98.5%", 2, True)]
    assert d.health[0].last_success == "never"
    assert d.health[1].last_success == "2026-11-16 07:55 (5m ago)"
    assert d.dead_total == 12
    assert [n.id for n in d.dead_latest] == [1, 2, 3]  # newest first
    assert all(n.recipient == "j***@example.net" for n in d.dead_latest)
    assert d.disputes_total == 1 and d.disputes[0].age == "2d 0h"
    assert d.subject == ("Ops digest 2026-11-16 08:00: 1 open anomalies (+1 new, -0 resolved), "
                         "12 dead notifications")


def test_times_are_shown_in_the_digest_zone() -> None:
    d = dg.build_digest(dg.DigestData(anomalies=[anomaly(age=timedelta(hours=1))]), now=NOW,
                        since=SINCE, period_key="2026-11-16T09:00+01:00",
                        tz=ZoneInfo("Europe/Paris"))
    assert d.generated_at == "2026-11-16 09:00"
    assert d.kinds[0].groups[0].rows[0].opened == "2026-11-16 08:00"


def test_mask_recipient() -> None:
    assert dg.mask_recipient("ops@example.com") == "o***@example.com"
    assert dg.mask_recipient("https://hooks.example.com/x") == "https://..."
    assert dg.mask_recipient("short") == "short"


def test_skipped_periods_are_noted() -> None:
    d = dg.build_digest(dg.DigestData(), now=NOW, since=SINCE, period_key="k", tz=UTC,
                        skipped_periods=3, skipped_first="2026-11-12T08:00+00:00")
    assert "3 earlier scheduled digest(s) were missed (from 2026-11-12T08:00+00:00)" in (
        d.skipped_note)
    assert dg.build_digest(dg.DigestData(), now=NOW, since=SINCE, period_key="k",
                           tz=UTC).skipped_note == ""


# ------------------------------------------------------------------------------ periods


def daily_at_8(previous: datetime | None, now: datetime) -> datetime | None:
    """A hand-made calculator with APScheduler's contract: 08:00 UTC every day."""
    start = now if previous is None else max(now, previous + timedelta(microseconds=1))
    fire = start.astimezone(UTC).replace(hour=8, minute=0, second=0, microsecond=0)
    return fire if fire >= start else fire + timedelta(days=1)


def test_first_run_sends_the_latest_due_period() -> None:
    due = dg.due_period(daily_at_8, now=NOW + timedelta(hours=3), last_fire=None)
    assert due is not None
    assert (due.key, due.skipped) == ("2026-11-16T08:00+00:00", 0)
    assert due.previous_fire == NOW - timedelta(days=1)


def test_a_period_is_due_once() -> None:
    assert dg.due_period(daily_at_8, now=NOW + timedelta(hours=23), last_fire=NOW) is None
    due = dg.due_period(daily_at_8, now=NOW + timedelta(days=1), last_fire=NOW)
    assert due is not None and due.key == "2026-11-17T08:00+00:00"
    assert dg.due_period(daily_at_8, now=NOW - timedelta(seconds=1), last_fire=None) is not None


def test_missed_periods_are_caught_up_once_and_counted() -> None:
    due = dg.due_period(daily_at_8, now=NOW + timedelta(days=4, hours=2), last_fire=NOW)
    assert due is not None
    assert due.key == "2026-11-20T08:00+00:00"
    assert (due.skipped, due.skipped_first) == (3, "2026-11-17T08:00+00:00")


def test_cron_periods_follow_the_digest_zone_across_dst() -> None:
    calc = fire_calculator("0 8 * * mon-fri", ZoneInfo("America/New_York"))
    # Friday 30 Oct 2026 (EDT, -04:00), then Monday 2 Nov 2026 after the fall-back (EST).
    due = dg.due_period(calc, now=datetime(2026, 11, 2, 14, 0, tzinfo=UTC),
                        last_fire=datetime(2026, 10, 30, 12, 0, tzinfo=UTC))
    assert due is not None
    assert due.key == "2026-11-02T08:00-05:00"
    assert due.skipped == 0  # the weekend has no fire time
    assert due.previous_fire == datetime(2026, 10, 30, 12, 0, tzinfo=UTC)
    assert dg.parse_period_key(due.key) == datetime(2026, 11, 2, 13, 0, tzinfo=UTC)


def test_parse_period_key_rejects_manual_and_naive_keys() -> None:
    assert dg.parse_period_key("manual:2026-11-16T08:00:00+00:00") is None
    assert dg.parse_period_key("2026-11-16T08:00") is None
    assert dg.parse_period_key("2026-11-16T08:00+00:00") == NOW


# ------------------------------------------------------------------------------ templates


def test_html_escapes_carrier_text_and_has_no_script() -> None:
    evil = anomaly("exception", "ups", age=timedelta(days=2),
                   detail='<script>alert(1)</script><img src=x onerror="y">')
    health = [dg.CarrierHealthRecord(carrier="ups", circuit_state="open",
                                     last_error="<b>bad</b> & worse")]
    rendered = DigestRenderer().render(build(evil, health=health))
    assert "<script" not in rendered.html.lower()
    assert "<img" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert "&lt;b&gt;bad&lt;/b&gt; &amp; worse" in rendered.html
    # The text part is not HTML: carrier text shows as written.
    assert "<script>alert(1)</script>" in rendered.text


def test_html_has_a_table_cell_bar_chart_and_inline_styles_only() -> None:
    records = ([anomaly("overdue", "ups", age=timedelta(days=1)) for _ in range(4)]
               + [anomaly("exception", "usps", age=timedelta(days=1))])
    html = DigestRenderer().render(build(*records)).html
    assert re.search(r'<td width="100%" style="background:#3b6ea8;', html)
    assert re.search(r'<td width="25%" style="background:#3b6ea8;', html)
    assert "<style" not in html and "<link" not in html and "<img" not in html


def test_text_part_is_readable_and_has_the_key_numbers() -> None:
    records = [anomaly(age=timedelta(days=8, hours=i)) for i in range(5)]
    records += [anomaly("exception", "dhl", age=timedelta(hours=2), detail="damaged"),
                anomaly(age=timedelta(days=3), resolved_ago=timedelta(hours=1))]
    health = [dg.CarrierHealthRecord(carrier="ups", successes=99, failures=1, rate_limited=7)]
    text = DigestRenderer().render(build(*records, cap=2, health=health, dead_total=4)).text
    assert "Open anomalies:     6" in text
    assert "New since last:     1" in text
    assert "Resolved since:     1" in text
    assert "Dead notifications: 4" in text
    assert "ups: 100 requests, success 99.0%, 7 x 429, circuit closed" in text
    assert "  ups / >7d (5)" in text and "    and 3 more" in text
    assert "damaged" in text
    assert "\n\n\n" not in text
    assert max(len(line) for line in text.splitlines()) < 200
