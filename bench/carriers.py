"""Carrier adapter overhead: raw HTTP against the carrier sandbox vs full adapter round trips.

One run, one in-process sandbox (``SandboxThread``), the same carriers, numbers, HTTP client
settings (``notifier.carriers_factory.http_client``) and concurrency for both sides:

* raw: the exact tracking request the adapter sends (recorded from the adapter's own first call,
  so method, URL, headers, body and the bearer token are identical), replayed with httpx; the
  body is read but not parsed; the token was fetched beforehand;
* adapter: ``adapter.track([number])`` from ``notifier.carriers_factory.build_carriers``:
  token cache, request building, error mapping, JSON decoding and normalisation.

Raw and adapter run in alternating one-second slices per carrier, so load from other processes
on the machine hits both sides alike. The last line is
``RESULT raw_per_s=... adapter_per_s=... ratio=...`` (ratio = adapter / raw).

Usage: ``python bench/carriers.py [--seconds S] [--concurrency N] [--profile CARRIER]``.
``--profile`` also runs the adapter side of one carrier under cProfile (the sandbox runs in
another thread, so the profile shows only the client's work) and prints where the time goes.
"""

from __future__ import annotations

import sys
from pathlib import Path

# ``python bench/carriers.py`` puts bench/ first on sys.path, where this very file would shadow
# the ``carriers`` package: put the repository root there instead.
_ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "bench"]
sys.path.insert(0, str(_ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import pstats  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402

from carriers import NAMES, numbers  # noqa: E402
from carriers.sandbox import SandboxThread  # noqa: E402
from notifier.carriers_factory import build_carriers, http_client  # noqa: E402
from notifier.clock import SystemClock  # noqa: E402
from notifier.config import CarrierConfig, CarriersSettings, Secret, Settings  # noqa: E402

SLICE_S = 1.0
POOL = 50  # distinct numbers per carrier, cycled


@dataclass
class Tally:
    requests: int = 0
    seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def settings_for(base_url: str, concurrency: int) -> Settings:
    def cfg() -> CarrierConfig:
        return CarrierConfig(base_url=base_url, client_id=Secret("sandbox-client"),
                             client_secret=Secret("sandbox-secret"),
                             api_key=Secret("sandbox-key"), concurrency=concurrency,
                             requests_per_second=0)
    return Settings(carriers=CarriersSettings(ups=cfg(), fedex=cfg(), dhl=cfg(), usps=cfg()))


def pool_of(carrier: str) -> list[str]:
    rng = random.Random(f"bench-{carrier}")
    out: list[str] = []
    while len(out) < POOL:
        number = numbers.generate(carrier, rng)
        if len(number) <= 34 and number not in out:  # the carrier APIs accept up to 34
            out.append(number)
    return out


async def run_slice(call: Any, items: list[str], concurrency: int, seconds: float,
                    tally: Tally, offset: int) -> int:
    """``concurrency`` workers calling ``call(number)`` until the slice ends."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + seconds
    done = 0
    cursor = offset

    async def worker() -> None:
        nonlocal done, cursor
        while loop.time() < deadline:
            number = items[cursor % len(items)]
            cursor += 1
            try:
                await call(number)
                done += 1
            except Exception as exc:  # counted and reported, the bench goes on
                key = type(exc).__name__
                tally.errors[key] = tally.errors.get(key, 0) + 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    tally.requests += done
    tally.seconds += loop.time() - start
    return cursor


class Replay:
    """Replays the adapter's recorded tracking request for any number (raw side)."""

    def __init__(self, client: httpx.AsyncClient, request: httpx.Request, number: str) -> None:
        self.client = client
        self.method = request.method
        self.url = str(request.url)
        self.headers = {k: v for k, v in request.headers.items()
                        if k.lower() not in ("content-length", "host")}
        self.body = request.content
        self.number = number

    async def __call__(self, number: str) -> None:
        url = self.url.replace(self.number, number)
        body = self.body.replace(self.number.encode(), number.encode())
        response = await self.client.request(self.method, url, headers=self.headers,
                                             content=body or None)
        await response.aread()
        # 404 is a normal answer (a "not found" scenario number; the adapter makes it a
        # pending result); anything else outside 2xx means the comparison is off.
        if response.status_code >= 300 and response.status_code != 404:
            raise RuntimeError(f"HTTP {response.status_code}")


async def bench(base_url: str, seconds: float, concurrency: int,
                profile: str | None) -> tuple[dict[str, Tally], dict[str, Tally]]:
    settings = settings_for(base_url, concurrency)
    clock = SystemClock()
    adapters = build_carriers(settings, clock.now)
    raw_clients = {n: http_client(getattr(settings.carriers, n)) for n in NAMES}
    pools = {n: pool_of(n) for n in NAMES}
    raw: dict[str, Tally] = {n: Tally() for n in NAMES}
    full: dict[str, Tally] = {n: Tally() for n in NAMES}
    try:
        replays: dict[str, Replay] = {}
        for name in NAMES:
            seen: list[httpx.Request] = []

            async def record(request: httpx.Request, seen: list[httpx.Request] = seen) -> None:
                seen.append(request)

            client = adapters.clients[name]
            client.event_hooks["request"].append(record)
            # The adapter's first call fetches its token and tracks one number: warm-up and
            # the request to replay (the last request sent is the tracking call).
            await adapters[name].track([pools[name][0]])
            client.event_hooks["request"].remove(record)
            replays[name] = Replay(raw_clients[name], seen[-1], pools[name][0])
            await replays[name](pools[name][1])  # warm the raw client's connections

        rounds = max(1, round(seconds / SLICE_S))
        cursors = dict.fromkeys(NAMES, 0)
        for _ in range(rounds):
            for name in NAMES:
                adapter = adapters[name]

                async def track(number: str, adapter: Any = adapter) -> None:
                    await adapter.track([number])

                await run_slice(replays[name], pools[name], concurrency, SLICE_S, raw[name],
                                cursors[name])
                cursors[name] = await run_slice(track, pools[name], concurrency, SLICE_S,
                                                full[name], cursors[name])
        if profile:
            await profile_adapter(adapters[profile], pools[profile], concurrency, seconds)
    finally:
        await adapters.aclose()
        for client in raw_clients.values():
            await client.aclose()
    return raw, full


async def profile_adapter(adapter: Any, pool: list[str], concurrency: int,
                          seconds: float) -> None:
    async def track(number: str) -> None:
        await adapter.track([number])

    profiler = cProfile.Profile()
    tally = Tally()
    profiler.enable()
    await run_slice(track, pool, concurrency, seconds, tally, 0)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime")
    stats.print_stats(25)
    print(f"\n== cProfile, {adapter.name} adapter, {tally.requests} calls in "
          f"{tally.seconds:.1f} s (client thread only; sorted by own time)")
    print(out.getvalue())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0,
                        help="measured seconds per carrier per side (default 6)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--profile", choices=NAMES, default=None)
    args = parser.parse_args()

    clock = SystemClock()
    with SandboxThread(now=clock.now) as sandbox:
        started = time.perf_counter()
        raw, full = asyncio.run(bench(sandbox.base_url, args.seconds, args.concurrency,
                                      args.profile))
        elapsed = time.perf_counter() - started
        counts = httpx.get(sandbox.base_url + "/_sandbox/stats").json()["carriers"]

    print(f"carrier sandbox in-process, concurrency {args.concurrency}, "
          f"{args.seconds:g} s per side per carrier, {elapsed:.0f} s in all")
    print(f"{'carrier':<8}{'raw/s':>10}{'adapter/s':>11}{'ratio':>8}{'tokens':>8}  errors")
    for name in NAMES:
        r, a = raw[name], full[name]
        errs = {f"raw {k}": v for k, v in r.errors.items()}
        errs |= {f"adapter {k}": v for k, v in a.errors.items()}
        ratio = a.rate / r.rate if r.rate else 0.0
        tokens = counts.get(name, {}).get("tokens_issued", 0)
        print(f"{name:<8}{r.rate:>10.1f}{a.rate:>11.1f}{ratio:>8.2f}{tokens:>8}  "
              f"{errs or '-'}")
    raw_rate = sum(t.requests for t in raw.values()) / sum(t.seconds for t in raw.values())
    full_rate = sum(t.requests for t in full.values()) / sum(t.seconds for t in full.values())
    print(f"RESULT raw_per_s={raw_rate:.1f} adapter_per_s={full_rate:.1f} "
          f"ratio={full_rate / raw_rate:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
