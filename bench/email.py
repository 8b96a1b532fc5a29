"""E-mail throughput through the outbox: pooled, reused SMTP connections vs one per message.

One run. An aiosmtpd server that *requires* STARTTLS (certificate from a throw-away trustme CA;
the client verifies it) runs in a child process, so the server's TLS and protocol work does not
share the interpreter lock with the sender. It keeps each message's bytes as received and parses
and checks them all (TLS, multipart/alternative, one-click List-Unsubscribe, distinct
Message-IDs) only after both runs: the ~1.2 ms a message the project's ``SmtpSink`` spends
parsing would otherwise sit on both senders' clocks (``--sink-kind smtpsink`` uses it anyway).
N notifications (default 2,000) are created the real way -- orders, a "delivered" status change,
the planner writing outbox rows in a SQLite file -- and one ``OutboxSender.drain()`` renders and
sends them all (batches of ``notifications.batch_size``, ``notifications.concurrency`` in
flight):

* reuse: the daemon's ``EmailChannel`` (a pool of ``--pool`` connections, each STARTTLS-upgraded
  once and reused for many messages);
* naive: the same ``EmailChannel`` code (same message bytes, same SMTP commands), but a fresh
  single-connection channel per message (connect, EHLO, STARTTLS, EHLO, MAIL/RCPT/DATA, QUIT).

Latency is from the row's ``created_at`` to the moment the server accepted the message (the
reply to the end of DATA). All N rows of a run are created just before its drain starts, so
this is the latency of a burst of N, queueing included: p50 is about the time to send N/2. The
run lines also show ``send()`` latency: one channel call, waiting for a pooled connection
included. The last line is
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
import socket  # noqa: E402
import ssl  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from email import policy as mail_policy  # noqa: E402
from email.message import EmailMessage  # noqa: E402
from email.parser import BytesParser  # noqa: E402
from typing import ClassVar  # noqa: E402

import trustme  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import Envelope, Session  # noqa: E402

from notifier import models  # noqa: E402
from notifier.channels.base import Channel, Receipt, Recipient, RenderedMessage  # noqa: E402
from notifier.channels.email import EmailChannel  # noqa: E402
from notifier.clock import SystemClock  # noqa: E402
from notifier.config import ApiSettings, EmailSettings, Secret, Settings  # noqa: E402
from notifier.domain import DomainEvent, EventKind  # noqa: E402
from notifier.outbox import OutboxSender  # noqa: E402
from notifier.planner import PlanPolicy, plan  # noqa: E402
from notifier.store.base import OrderInput, ShipmentInput  # noqa: E402
from notifier.store.sqlite import SqliteStore  # noqa: E402

# ------------------------------------------------------------------ the sink


class RawSink:
    """aiosmtpd on loopback that requires STARTTLS and keeps each message's bytes as received.

    It does what the receiving side of SMTP must (TLS, the protocol, reading DATA) and no more:
    messages are parsed and checked by :meth:`verify` after the timed runs, so the test
    tooling's MIME parsing (~1.2 ms a message in ``SmtpSink``) does not sit on the clock of both
    senders. ``--sink-kind smtpsink`` uses the project's ``SmtpSink`` instead, parsing live.
    """

    def __init__(self, tls_context: ssl.SSLContext) -> None:
        self._tls = tls_context
        self._raw: list[tuple[bool, bytes]] = []
        self.connections = 0
        self.port = 0
        self._controller: Controller | None = None

    def __enter__(self) -> RawSink:
        with socket.socket() as probe:  # aiosmtpd cannot listen on port 0 (see SmtpSink)
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port,
                                      tls_context=self._tls, require_starttls=True,
                                      server_hostname="sink.localhost")
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._controller is not None:
            self._controller.stop()

    # aiosmtpd handler hooks (the controller's thread)

    async def handle_EHLO(self, server: object, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        if session.ssl is None:  # the EHLO before STARTTLS: one per connection
            self.connections += 1
        return responses

    async def handle_DATA(self, server: object, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        self._raw.append((session.ssl is not None,
                          content if isinstance(content, bytes) else (content or "").encode()))
        return "250 OK"

    def messages(self) -> Iterator[tuple[bool, EmailMessage]]:
        parser = BytesParser(EmailMessage, policy=mail_policy.default)
        for tls, raw in self._raw:
            yield tls, parser.parsebytes(raw)


def verify(messages: Iterable[tuple[bool, EmailMessage]], connections: int) -> str:
    """``received connections bad distinct-Message-IDs``: a message is bad unless it came over
    TLS as multipart/alternative (text/plain, text/html) with one-click List-Unsubscribe."""
    received = bad = 0
    ids = set()
    for tls, msg in messages:
        received += 1
        ids.add(str(msg["Message-ID"]))
        parts = [p.get_content_type() for p in msg.iter_parts()]
        bad += not (tls and msg.get_content_type() == "multipart/alternative"
                    and parts == ["text/plain", "text/html"] and msg["Message-ID"]
                    and msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click")
    return f"{received} {connections} {bad} {len(ids)}"


@contextmanager
def open_sink(kind: str, cert_dir: Path) -> Iterator[tuple[int, Callable[[], str]]]:
    """The STARTTLS-only sink: yields its port and a function returning :func:`verify`'s line."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_dir / "server.pem")
    if kind == "smtpsink":
        from notifier.devtools.smtp_sink import SmtpSink

        with SmtpSink(tls_context=server, require_starttls=True) as sink:
            yield sink.port, lambda: verify(((m.tls, m) for m in sink.messages),
                                            sink.connections)
        return
    with RawSink(server) as raw:
        yield raw.port, lambda: verify(raw.messages(), raw.connections)


def serve_sink(cert_dir: Path, kind: str) -> None:
    """Child process: run the sink, print its port, on stdin EOF print the verify line."""
    with open_sink(kind, cert_dir) as (port, report):
        print(port, flush=True)
        sys.stdin.read()
        print(report(), flush=True)


# ------------------------------------------------------------------ the two senders


class NaiveEmailChannel:
    """One connection per message: the daemon's own ``EmailChannel`` with a pool of one, built
    for the message and closed after it (connect, EHLO, STARTTLS, EHLO, MAIL/RCPT/DATA, QUIT).
    Message building and sending are the very code the reuse run uses."""

    name: ClassVar[str] = "email"

    def __init__(self, settings: EmailSettings, tls: ssl.SSLContext) -> None:
        self._s = dataclasses.replace(settings, pool_size=1)
        self._tls = tls
        self.connections_opened = 0

    async def send(self, message: RenderedMessage, recipient: Recipient) -> Receipt:
        channel = EmailChannel(self._s, tls_context=self._tls)
        try:
            return await channel.send(message, recipient)
        finally:
            await channel.aclose()  # QUIT
            self.connections_opened += channel.connections_opened

    async def aclose(self) -> None:
        return None


class Timed:
    """Records when the far end accepted each message (wall clock, like the rows' times) and
    how long the accepted ``send`` call took (perf counter)."""

    name: ClassVar[str] = "email"

    def __init__(self, inner: Channel) -> None:
        self.inner = inner
        self.accepted: dict[str, float] = {}
        self.send_ms: list[float] = []

    async def send(self, message: RenderedMessage, recipient: Recipient) -> Receipt:
        start = time.perf_counter()
        receipt = await self.inner.send(message, recipient)
        self.accepted[message.notification_id] = time.time()
        self.send_ms.append((time.perf_counter() - start) * 1000.0)
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
    timed = Timed(channel)
    sender = OutboxSender(store=store, clock=SystemClock(), settings=settings,
                          channels={"email": timed})
    await make_rows(store, prefix, n)  # then the drain starts at once: a burst of n rows
    start = time.perf_counter()
    result = await sender.drain()
    elapsed = time.perf_counter() - start
    if result.sent != n:
        raise SystemExit(f"{label}: only {result.sent} of {n} sent ({result})")
    created = {}
    for row in await store.list_notifications(status="sent", limit=10 * n):
        if row.order_id.startswith(prefix) and row.created_at is not None:
            created[f"n{row.id}-"] = row.created_at.timestamp()
    # Message ids are "n<row id>-<hash>" (outbox.notification_id).
    latencies = sorted(
        (accepted - created[nid.split("-")[0] + "-"]) * 1000.0
        for nid, accepted in timed.accepted.items())
    if len(latencies) != n:
        raise SystemExit(f"{label}: {len(latencies)} latencies for {n} messages")
    send_ms = sorted(timed.send_ms)
    opened = getattr(channel, "connections_opened", "?")
    print(f"{label:>5}: {n} messages in {elapsed:6.2f} s = {n / elapsed:7.1f}/s, "
          f"{opened} SMTP connection(s); row->accepted p50 {_pct(latencies, 50):7.1f} ms, "
          f"p99 {_pct(latencies, 99):7.1f} ms; send() p50 {_pct(send_ms, 50):6.1f} ms, "
          f"p99 {_pct(send_ms, 99):6.1f} ms")
    return n / elapsed, latencies


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1] \
        if len(values) > 1 else values[0]


async def main_async(n: int, pool: int, concurrency: int | None, tmp: Path, port: int,
                     client_tls: ssl.SSLContext, where: str) -> str:
    base = Settings()
    if concurrency is not None:
        base = dataclasses.replace(base, notifications=dataclasses.replace(
            base.notifications, concurrency=concurrency))
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
              f"required, {where}")
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
    parser.add_argument("--concurrency", type=int, default=None,
                        help="rows in flight (default: notifications.concurrency)")
    parser.add_argument("--sink", choices=("process", "thread"), default="process",
                        help="run the SMTP sink in a child process (default) or in a thread "
                             "of this process")
    parser.add_argument("--sink-kind", choices=("raw", "smtpsink"), default="raw",
                        help="raw: aiosmtpd keeping bytes, checked after the runs (default); "
                             "smtpsink: the project's SmtpSink, parsing every message live")
    parser.add_argument("--serve-sink", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sink:
        serve_sink(args.serve_sink, args.sink_kind)
        return 0
    where = f"{args.sink_kind} sink in " + (
        "a child process" if args.sink == "process" else "a thread of this process")
    with tempfile.TemporaryDirectory(prefix="bench-email-") as tmp_name:
        tmp = Path(tmp_name)
        ca = trustme.CA()
        ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(
            str(tmp / "server.pem"))
        client_tls = ssl.create_default_context()
        ca.configure_trust(client_tls)
        if args.sink == "thread":
            with open_sink(args.sink_kind, tmp) as (port, report):
                result = asyncio.run(main_async(args.n, args.pool, args.concurrency, tmp, port,
                                                client_tls, where))
                verdict = report()
        else:
            child = subprocess.Popen(
                [sys.executable, __file__, "--serve-sink", str(tmp), "--sink-kind",
                 args.sink_kind], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            try:
                assert child.stdout is not None and child.stdin is not None
                port = int(child.stdout.readline())
                result = asyncio.run(main_async(args.n, args.pool, args.concurrency, tmp, port,
                                                client_tls, where))
                child.stdin.close()
                verdict = child.stdout.readline()
            finally:
                if child.poll() is None:
                    child.terminate()
                child.wait(10)
    received, sessions, bad, distinct = (int(x) for x in verdict.split())
    print(f"sink accepted {received} messages over {sessions} SMTP sessions; {bad} malformed, "
          f"{distinct} distinct Message-IDs")
    if (received, bad, distinct) != (2 * args.n, 0, 2 * args.n):
        raise SystemExit("the sink did not get every message exactly once, well-formed")
    print(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
