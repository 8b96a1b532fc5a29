"""Builds the carrier adapters from configuration: one adapter per enabled carrier, each with its
own ``httpx.AsyncClient`` (explicit timeouts and pool limits) and the application's clock.

The poller, the ``track`` command and the benchmarks all get their adapters here, so how a
carrier is wired (secrets revealed, base URL, batch mode, pool size) is decided in one place.
:class:`Carriers` is a ``dict[str, Carrier]`` that also owns the HTTP clients: close it once
with :meth:`Carriers.aclose` (or use :func:`open_carriers`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx

import carriers
from carriers.base import Carrier, CarrierSettings
from notifier import __version__
from notifier.config import CarrierConfig, Settings

__all__ = ["Carriers", "build_carriers", "carrier_settings", "http_client", "open_carriers"]

logger = logging.getLogger(__name__)

# Connecting to a carrier should take well under the read budget; a long connect usually means
# the host is unreachable, and failing fast lets the circuit breaker see it sooner.
CONNECT_TIMEOUT_S = 5.0
# Idle keep-alive connections are dropped after this; carriers' load balancers close idle
# connections after about a minute, and reusing a half-closed one costs a failed request.
KEEPALIVE_EXPIRY_S = 30.0


def carrier_settings(config: CarrierConfig) -> CarrierSettings:
    """The adapter's view of ``[carriers.<name>]`` with its secrets revealed."""
    return CarrierSettings(
        base_url=config.base_url,
        client_id=config.client_id.reveal(),
        client_secret=config.client_secret.reveal(),
        api_key=config.api_key.reveal(),
        timeout_s=config.timeout.total_seconds(),
        use_batch=config.use_batch,
        transaction_src=f"notifier/{__version__}",
    )


def http_client(config: CarrierConfig, *,
                transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The HTTP client one carrier's adapter uses for every call (token and tracking).

    The pool holds ``concurrency`` connections: that is how many calls the poller runs at once
    for the carrier, so a larger pool would only hold idle sockets. ``pool`` timeout bounds the
    wait for a free connection with the same budget as a read.
    """
    total = config.timeout.total_seconds()
    size = max(1, config.concurrency)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(total, connect=min(CONNECT_TIMEOUT_S, total)),
        limits=httpx.Limits(max_connections=size, max_keepalive_connections=size,
                            keepalive_expiry=KEEPALIVE_EXPIRY_S),
        headers={"User-Agent": f"notifier/{__version__}"},
        # Carrier APIs answer on fixed URLs; a redirect would mean a misconfigured base URL,
        # and following it could send the bearer token to another host.
        follow_redirects=False,
        transport=transport,
    )


class Carriers(dict[str, Carrier]):
    """Adapters by carrier name, plus the HTTP clients they share; close once with ``aclose``."""

    def __init__(self) -> None:
        super().__init__()
        self.clients: dict[str, httpx.AsyncClient] = {}

    async def aclose(self) -> None:
        """Close every adapter, then its HTTP client. Safe to call twice; never raises for one
        carrier's failure (the rest still get closed)."""
        for name in list(self):
            adapter = self.pop(name)
            try:
                await adapter.aclose()
            except Exception:  # closing must go on for the others
                logger.exception("closing the %s adapter failed", name)
        for name in list(self.clients):
            client = self.clients.pop(name)
            try:
                await client.aclose()
            except Exception:
                logger.exception("closing the %s HTTP client failed", name)


def build_carriers(settings: Settings, now: Callable[[], datetime], *,
                   names: Iterable[str] | None = None,
                   transport: httpx.AsyncBaseTransport | None = None) -> Carriers:
    """One adapter per enabled carrier in ``settings.carriers`` (only ``names`` when given,
    enabled or not: an explicit request wins). ``now`` is the application clock's ``now``.
    ``transport`` replaces the network (tests). KeyError names an unknown carrier."""
    wanted = list(carriers.NAMES) if names is None else list(names)
    built = Carriers()
    for name in wanted:
        config: CarrierConfig = getattr(settings.carriers, name, None) or _unknown(name)
        if names is None and not config.enabled:
            continue
        cls: Any = carriers.adapter_class(name)  # the Protocol does not declare __init__
        # A client that never sent a request holds no sockets, so one left behind by a later
        # carrier failing to build costs nothing; httpx opens connections lazily.
        client = http_client(config, transport=transport)
        built.clients[name] = client
        built[name] = cls(carrier_settings(config), client, now=now)
    return built


def _unknown(name: str) -> CarrierConfig:
    carriers.adapter_class(name)  # raises KeyError naming the known carriers
    raise KeyError(f"carrier {name!r} has no [carriers.{name}] configuration section")


@asynccontextmanager
async def open_carriers(settings: Settings, now: Callable[[], datetime], *,
                        names: Iterable[str] | None = None,
                        transport: httpx.AsyncBaseTransport | None = None
                        ) -> AsyncIterator[Carriers]:
    """``build_carriers`` as an async context manager that closes everything on exit."""
    built = build_carriers(settings, now, names=names, transport=transport)
    try:
        yield built
    finally:
        await built.aclose()
