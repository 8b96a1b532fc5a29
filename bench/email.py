"""E-mail throughput through the outbox: pooled, reused SMTP connections vs one per message.

One run. A local :class:`~notifier.devtools.smtp_sink.SmtpSink` that *requires* STARTTLS
(certificate from a throw-away trustme CA; the client verifies it) runs in a child process, so
the server's TLS and parsing work does not share the interpreter lock with the sender. N
notifications (default 2,000) are created the real way -- orders, a "delivered" status change,
the planner writing outbox rows in a SQLite file -- and one ``OutboxSender.drain()`` sends them
all (batches of ``notifications.batch_size``, ``notifications.concurrency`` in flight):

* reuse: the daemon's ``EmailChannel`` (a pool of ``email.pool_size`` connections, each
  STARTTLS-upgraded once and reused for many messages);
* naive: the same messages (``build_message``), but each one on a fresh connection
  (connect, EHLO, STARTTLS, EHLO, MAIL/RCPT/DATA, QUIT).

Latency is from the row's ``created_at`` (the rows of a run are all created just before it, so
this is the latency of a burst: queueing included) to the moment the server accepted the
message (the DATA reply). The last line is
``RESULT ratio=... reuse_per_s=... naive_per_s=... p50_ms=... p99_ms=...`` (ratio = reuse /
naive; latencies of the reuse run). Usage: ``python bench/email.py [N] [--pool P]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# ``python bench/email.py`` puts bench/ first on sys.path, where this very file would shadow the
# standard library's ``email`` package: put the repository root there instead.
_ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "bench"]
sys.path.insert(0, str(_ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import dataclasses  # noqa: E402
import ssl  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import ClassVar  # noqa: E402

import aiosmtplib  # noqa: E402
import trustme  # noqa: E402

from notifier import models  # noqa: E402
from notifier.channels.base import Channel, Receipt, Recipient, RenderedMessage  # noqa: E402
from notifier.channels.email import EmailChannel, build_message, classify_smtp_error  # noqa: E402
from notifier.clock import SystemClock  # noqa: E402
from notifier.config import ApiSettings, EmailSettings, Secret, Settings  # noqa: E402
from notifier.domain import DomainEvent, EventKind  # noqa: E402
from notifier.outbox import OutboxSender  # noqa: E402
from notifier.planner import PlanPolicy, plan  # noqa: E402
from notifier.store.base import OrderInput, ShipmentInput  # noqa: E402
from notifier.store.sqlite import SqliteStore  # noqa: E402

# ------------------------------------------------------------------ the sink (child process)


def serve_sink(cert_dir: Path) -> None:
    """Child process: run the STARTTLS-only sink, print its port, stop on stdin EOF."""
    from notifier.devtools.smtp_sink import SmtpSink

    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_dir / "server.pem")
    with SmtpSink(tls_context=server, require_starttls=True) as sink:
        print(sink.port, flush=True)
        sys.stdin.read()
        print(len(sink.messages), sink.connections, flush=True)


# ------------------------------------------------------------------ the two senders


class NaiveEmailChannel:
    """One connection per message: connect, STARTTLS, send, QUIT. Same message bytes."""

    name: ClassVar[str] = "email"

    def __init__(self, settings: EmailSettings, tls: ssl.SSLContext) -> None:
        self._s = settings
        self._tls = tls
        self.connections_opened = 0

    async def send(self, message: RenderedMessage, recipient: Recipient) -> Receipt:
        s = self._s
        mime = build_message(message, recipient, from_address=s.from_address,
                             from_name=s.from_name, message_id_domain="shop.example.com",
                             now=datetime.now(UTC))
        client = aiosmtplib.SMTP(hostname=s.host, port=s.port, start_tls=True,
                                 tls_context=self._tls, timeout=s.timeout.total_seconds())
        try:
            await client.connect()
            self.connections_opened += 1
            await client.send_message(mime, sender=s.from_address, recipients=[recipient.address])
            await client.quit()
        except BaseException as exc:
            client.close()
            error = classify_smtp_error(exc)
            if error is None:
                raise
            raise error from exc
        return Receipt(channel=self.name, provider_id=str(mime["Message-ID"]))

    async def aclose(self) -> None:
        return None


class Timed:
    """Records when the far end accepted each message (wall clock, like the rows' times)."""

    name: ClassVar[str] = "email"

    def __init__(self, inner: Channel) -> None:
        self.inner = inner
        self.accepted: dict[str, float] = {}

    async def send(self, message: RenderedMessage, recipient: Recipient) -> Receipt:
        receipt = await self.inner.send(message, recipient)
        self.accepted[message.notification_id] = time.time()
        return receipt

    async def aclose(self) -> None:
        await self.inner.aclose()


# ------------------------------------------------------------------ one run


async def make_rows(store: SqliteStore, prefix: str, n: int) -> None:
    """N orders with a shipment each, then one 'delivered' change each: N outbox rows."""
    now = datetime.now(UTC)
    await store.upsert_orders([
        OrderInput(id=f"{prefix}{i}", email=f"customer{i}@example.com", name=f"Customer {i}",
                   locale=("en", "fr", "de")[i % 3], tz="Europe/Paris",
                   shipments=(ShipmentInput(carrier="ups", tracking_number=f"1ZBENCH{prefix}{i}"),))
        for i in range(n)], now=now)
    async with store.db.execute("SELECT id, order_id FROM shipments WHERE order_id LIKE ?",
                                (f"{prefix}%",)) as cur:
        shipments = [(r[0], r[1]) for r in await cur.fetchall()]
    now = datetime.now(UTC)
    async with store.transaction() as db:
        await store.enqueue(db, [DomainEvent(
            kind=EventKind.shipment_status_changed, order_id=oid, at=now, shipment_id=sid,
            data={"old": "out_for_delivery", "new": "delivered",
                  "event_at": (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")})
            for sid, oid in shipments])


async def run(label: str, store: SqliteStore, settings: Settings, channel: Channel,
              prefix: str, n: int) -> tuple[float, list[float]]:
    await make_rows(store, prefix, n)
    timed = Timed(channel)
    sender = OutboxSender(store=store, clock=SystemClock(), settings=settings,
                          channels={"email": timed})
    start = time.perf_counter()
    result = await sender.drain()
    elapsed = time.perf_counter() - start
    if result.sent != n:
        raise SystemExit(f"{label}: only {result.sent} of {n} sent ({result})")
    created = {}
    for row in await store.list_notifications(status="sent", limit=10 * n):
        if row.order_id.startswith(prefix) and row.created_at is not None:
            created[f"n{row.id}-"] = row.created_at.timestamp()
    latencies = sorted(
        (accepted - created[nid.split("-")[0] + "-"]) * 1000.0
        for nid, accepted in timed.accepted.items())
    opened = getattr(channel, "connections_opened", "?")
    print(f"{label:>5}: {n} messages in {elapsed:6.2f} s = {n / elapsed:7.1f}/s, "
          f"{opened} SMTP connection(s); row->accepted p50 {_pct(latencies, 50):7.1f} ms, "
          f"p99 {_pct(latencies, 99):7.1f} ms")
    return n / elapsed, latencies


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1] \
        if len(values) > 1 else values[0]


async def main_async(n: int, pool: int, tmp: Path, port: int, client_tls: ssl.SSLContext,
                     where: str) -> str:
    base = Settings()
    email = EmailSettings(host="127.0.0.1", port=port, security="starttls",
                          from_address="orders@shop.example.com", from_name="Example Shop",
                          timeout=timedelta(seconds=30), pool_size=pool)
    settings = dataclasses.replace(
        base, email=email,
        api=ApiSettings(public_url="https://shop.example", unsubscribe_secret=Secret("bench")))
    policy = PlanPolicy(channels={t.value: ("email",) for t in models.Trigger})
    async with SqliteStore(tmp / "bench.sqlite3") as store:
        store.planner = lambda events, inputs: plan(events, inputs, policy=policy,
                                                    now=datetime.now(UTC))
        print(f"{n} messages per run, outbox batch {settings.notifications.batch_size}, "
              f"concurrency {settings.notifications.concurrency}, pool {pool}, STARTTLS "
              f"required, sink in {where}")
        reuse = EmailChannel(email, tls_context=client_tls)
        try:
            reuse_per_s, latencies = await run("reuse", store, settings, reuse, "R", n)
        finally:
            await reuse.aclose()
        naive_per_s, _ = await run("naive", store, settings,
                                   NaiveEmailChannel(email, client_tls), "N", n)
    ratio = reuse_per_s / naive_per_s
    print(f"ratio reuse/naive = {ratio:.2f}")
    return (f"RESULT ratio={ratio:.2f} reuse_per_s={reuse_per_s:.1f} "
            f"naive_per_s={naive_per_s:.1f} p50_ms={_pct(latencies, 50):.1f} "
            f"p99_ms={_pct(latencies, 99):.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=2000, help="messages per run")
    parser.add_argument("--pool", type=int, default=4, help="SMTP connections of the real "
                                                            "sender (default 4)")
    parser.add_argument("--sink", choices=("process", "thread"), default="process",
                        help="run the SMTP sink in a child process (default) or in a thread "
                             "of this process")
    parser.add_argument("--serve-sink", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sink:
        serve_sink(args.serve_sink)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-email-") as tmp_name:
        tmp = Path(tmp_name)
        ca = trustme.CA()
        ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(
            str(tmp / "server.pem"))
        client_tls = ssl.create_default_context()
        ca.configure_trust(client_tls)
        if args.sink == "thread":
            from notifier.devtools.smtp_sink import SmtpSink

            server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            server.load_cert_chain(tmp / "server.pem")
            with SmtpSink(tls_context=server, require_starttls=True) as sink:
                result = asyncio.run(main_async(args.n, args.pool, tmp, sink.port, client_tls,
                                                "a thread of this process"))
                print(f"sink accepted {len(sink.messages)} messages over {sink.connections} "
                      f"SMTP sessions")
            print(result)
            return 0
        child = subprocess.Popen([sys.executable, __file__, "--serve-sink", str(tmp)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None and child.stdin is not None
            port = int(child.stdout.readline())
            result = asyncio.run(main_async(args.n, args.pool, tmp, port, client_tls,
                                            "a child process"))
            child.stdin.close()
            received, sessions = child.stdout.readline().split()
            print(f"sink accepted {received} messages over {sessions} SMTP sessions")
        finally:
            if child.poll() is None:
                child.terminate()
            child.wait(10)
    print(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
