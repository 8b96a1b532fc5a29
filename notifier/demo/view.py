"""The demo's screens: the rich live view, the headless once-a-day line, the final summary.

Rendering only: every function takes a :class:`Progress` (what the runner gathered) and
returns something printable; nothing here reads files, the database or the clock.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table

from notifier.demo.stats import CarrierCounts, DbSnapshot, MailSummary

__all__ = ["Progress", "headless_line", "live_view", "summary_lines"]

CARRIERS = ("ups", "fedex", "dhl", "usps")
CHANNELS = ("email", "fcm", "apns", "webpush", "webhook")
# Derived statuses in the order a parcel goes through them.
STATUS_ORDER = ("received", "processing", "payment_hold", "backordered", "pending",
                "info_received", "in_transit", "out_for_delivery", "failed_attempt",
                "available_for_pickup", "exception", "unknown", "partially_delivered",
                "delivered", "returned", "expired", "cancelled")


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    sim_now: datetime
    start: datetime
    days: float
    speed: float
    elapsed_s: float
    orders_planned: int
    orders_sent: int
    db: DbSnapshot
    carriers: dict[str, CarrierCounts] = field(default_factory=dict)
    mails: int = 0
    pushes: Counter[str] = field(default_factory=Counter)
    dispute: str | None = None  # "DEMO-1007 (filed day 2)" once filed
    notes: tuple[str, ...] = ()

    @property
    def day(self) -> float:
        return (self.sim_now - self.start).total_seconds() / 86400


def _ordered(counts: dict[str, int], order: tuple[str, ...]) -> list[tuple[str, int]]:
    known = [(k, counts[k]) for k in order if counts.get(k)]
    return known + sorted((k, v) for k, v in counts.items() if k not in order and v)


def _table(title: str, *columns: str) -> Table:
    # Compact boxes: the four tables fit side by side in an 80-column terminal.
    table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
                  padding=(0, 1), pad_edge=False)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    return table


def live_view(p: Progress) -> RenderableType:
    orders = _table("Orders by status", "status", "orders")
    for status, n in _ordered(p.db.by_status, STATUS_ORDER):
        orders.add_row(status, str(n))
    orders.add_row("[dim]sent to the daemon[/dim]", f"[dim]{p.orders_sent}/{p.orders_planned}")

    carriers = _table("Carrier API (sandbox)", "carrier", "requests", "429s", "5xx")
    for name in CARRIERS:
        c = p.carriers.get(name, CarrierCounts())
        carriers.add_row(name, str(c.requests),
                         f"[yellow]{c.rate_limited}[/yellow]" if c.rate_limited else "0",
                         str(c.server_errors))

    anomalies = _table("Anomalies open", "kind", "open")
    for kind, n in sorted(p.db.anomalies_open.items()):
        anomalies.add_row(kind, str(n))
    if not p.db.anomalies_open:
        anomalies.add_row("[dim]none[/dim]", "")

    notes = _table("Notifications", "channel", "sent", "pending", "failed", "dead")
    for channel in CHANNELS:
        row = p.db.notifications.get(channel, {})
        notes.add_row(channel, str(row.get("sent", 0)),
                      str(row.get("pending", 0) + row.get("sending", 0)),
                      str(row.get("failed", 0)),
                      f"[red]{row['dead']}[/red]" if row.get("dead") else "0")

    grid = Table.grid(padding=(0, 4))
    grid.add_column(min_width=42)
    grid.add_column()
    grid.add_row(orders, Group(carriers, anomalies))
    grid.add_row(notes, _received(p))
    dispute = (f"A customer disputed a delivery: {p.dispute}." if p.dispute else
               "[dim]A customer will dispute a delivery once a parcel shows delivered.[/dim]")
    body = Group(grid, dispute)
    title = (f"[bold]notifier demo[/bold] · {p.sim_now:%a %Y-%m-%d %H:%M} UTC · day "
             f"{min(p.day, p.days):.1f} of {p.days:g}")
    subtitle = f"{p.speed:g}x · {p.elapsed_s:.0f} s · Ctrl-C stops early and prints the summary"
    return Panel(body, title=title, subtitle=subtitle, expand=False)


def _received(p: Progress) -> RenderableType:
    table = _table("Received locally", "what", "count")
    table.add_row("e-mails", str(p.mails))
    for channel in ("fcm", "apns", "webpush", "webhook"):
        table.add_row(f"{channel} pushes", str(p.pushes.get(channel, 0)))
    table.add_row("digests sent", str(p.db.digests_sent))
    return table


def headless_line(p: Progress) -> str:
    """One plain line for CI logs (printed once per simulated day and at the end)."""
    statuses = " ".join(f"{k}={v}" for k, v in _ordered(p.db.by_status, STATUS_ORDER))
    sent = sum(row.get("sent", 0) for row in p.db.notifications.values())
    pending = sum(row.get("pending", 0) + row.get("sending", 0)
                  for row in p.db.notifications.values())
    dead = sum(row.get("dead", 0) for row in p.db.notifications.values())
    polls = sum(c.requests for c in p.carriers.values())
    r429 = sum(c.rate_limited for c in p.carriers.values())
    return (f"[day {p.day:4.1f} {p.sim_now:%Y-%m-%d %H:%M}Z] orders {p.db.orders}/"
            f"{p.orders_planned} ({statuses or 'none yet'}) | polls {polls} 429s {r429} | "
            f"anomalies open {sum(p.db.anomalies_open.values())} | notifications sent {sent} "
            f"pending {pending} dead {dead} | mails {p.mails} pushes {sum(p.pushes.values())}"
            f" digests {p.db.digests_sent}")


def _counts(counter: Counter[str] | dict[str, int]) -> str:
    items = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{k} {v}" for k, v in items) or "none"


def summary_lines(p: Progress, mail: MailSummary, *, where: dict[str, str]) -> list[str]:
    """The end-of-run summary: where things are, then one line per family of counts."""
    db = p.db
    kinds = sorted(set(db.anomalies_opened) | set(db.anomalies_closed))
    anomalies = ", ".join(f"{k} {db.anomalies_opened.get(k, 0)}/"
                          f"{db.anomalies_closed.get(k, 0)}" for k in kinds) or "none"
    r429 = {c: n.rate_limited for c, n in p.carriers.items() if n.rate_limited}
    width = max(len(k) for k in where) if where else 0
    lines = [f"Simulated {p.day:.1f} days ({p.start:%Y-%m-%d} to {p.sim_now:%Y-%m-%d %H:%M} UTC)"
             f" in {p.elapsed_s:.0f} s real time.", ""]
    lines += [f"  {k.ljust(width)}  {v}" for k, v in where.items()]
    lines += [
        "",
        f"Summary: {db.orders} orders, {sum(c.requests for c in p.carriers.values())} carrier "
        f"requests, {mail.total} e-mails, {sum(p.pushes.values())} pushes, "
        f"{db.digests_sent} digests.",
        f"  orders by status   {_counts(db.by_status)}",
        f"  mails by trigger   {_counts(mail.by_trigger)}"
        + (f"; ops mails (digests, alerts) {mail.ops}" if mail.ops else ""),
        f"  mails by locale    {_counts(mail.by_locale)}",
        f"  pushes by channel  {_counts(p.pushes)}",
        f"  anomalies opened/closed  {anomalies}",
        f"  429s by carrier    {_counts(r429)}",
        f"  digests sent       {db.digests_sent}",
        f"  disputes           {db.disputes}" + (f", on {p.dispute}" if p.dispute else ""),
    ]
    dead = {c: r.get("dead", 0) for c, r in db.notifications.items() if r.get("dead")}
    if dead:
        lines.append(f"  dead notifications {_counts(dead)}")
    lines += list(p.notes)
    return lines
