"""The real carrier adapters (``carriers.adapter_class``) against the running sandbox over real
HTTP, all four carriers: token refresh (expiry and 401), rate limits with and without
Retry-After, 5xx, malformed and HTML bodies, timeouts, and every scenario normalised end to end
as the simulated clock moves. Only the base URL differs from production.

The expected statuses come from the sandbox's own timeline endpoint (its reading of the
reference tables), so a failure here means the adapter and the sandbox read the reference
differently.
"""

from __future__ import annotations

import email.utils
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from carriers import adapter_class, errors, numbers
from carriers.base import DEFAULT_RETRY_AFTER, CarrierSettings
from carriers.model import DeliveryWindow, Status, TrackingResult
from carriers.sandbox import Quota, SandboxThread, Scenario
from carriers.sandbox.state import DEFAULT_TOKEN_LIFETIMES

T0 = datetime(2025, 6, 9, 14, 0, tzinfo=UTC)
CARRIERS = ["ups", "fedex", "dhl", "usps"]
NUMBER = {"ups": "1Z999AA10123456784", "fedex": "123456789012", "dhl": "7777777770",
          "usps": "9400111206206406260787"}
OAUTH = ["ups", "fedex", "usps"]


class FakeClock:
    def __init__(self) -> None:
        self.t = T0

    def now(self) -> datetime:
        return self.t


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 5000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class World:
    sandbox: SandboxThread
    control: httpx.Client
    http: httpx.AsyncClient
    clock: FakeClock
    mono: FakeMonotonic

    def adapter(self, carrier: str, *, secret: str = "sandbox-secret", timeout: float = 5.0,
                use_batch: bool = True) -> Any:
        settings = CarrierSettings(base_url=self.sandbox.base_url, client_id="sandbox-client",
                                   client_secret=secret,
                                   api_key="sandbox-key" if secret == "sandbox-secret" else secret,
                                   timeout_s=timeout, use_batch=use_batch)
        cls: Any = adapter_class(carrier)  # the Protocol does not declare the constructor
        return cls(settings, self.http, now=self.clock.now, monotonic=self.mono)

    def register(self, carrier: str, number: str, scenario: str = "normal") -> dict[str, Any]:
        resp = self.control.post("/_sandbox/shipments", json={
            "number": number, "carrier": carrier, "scenario": scenario,
            "start": T0.isoformat(), "quirks": []})
        assert resp.status_code == 201, resp.text
        timeline: dict[str, Any] = resp.json()
        return timeline

    def fault(self, **body: Any) -> None:
        assert self.control.post("/_sandbox/faults", json=body).status_code == 201

    def stats(self, carrier: str) -> dict[str, int]:
        result: dict[str, int] = self.control.get("/_sandbox/stats").json()["carriers"][carrier]
        return result


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[SandboxThread, httpx.Client, FakeClock, FakeMonotonic]]:
    """One server for the module (starting and stopping uvicorn costs ~0.2 s each)."""
    clock, mono = FakeClock(), FakeMonotonic()
    with SandboxThread(now=clock.now, monotonic=mono) as sandbox, \
            httpx.Client(base_url=sandbox.base_url, timeout=5.0) as control:
        yield sandbox, control, clock, mono


@pytest.fixture
async def world(shared: tuple[SandboxThread, httpx.Client, FakeClock, FakeMonotonic],
                ) -> AsyncIterator[World]:
    """The shared sandbox reset to a freshly created state, clocks at their start, and a new
    httpx client (the adapters' shared client) for this test's event loop."""
    sandbox, control, clock, mono = shared
    state = sandbox.state
    state.reset(everything=True)
    state.quotas.clear()
    state.token_lifetimes = dict(DEFAULT_TOKEN_LIFETIMES)
    clock.t, mono.t = T0, 5000.0
    async with httpx.AsyncClient() as http:
        yield World(sandbox, control, http, clock, mono)


async def _one(adapter: Any, number: str) -> TrackingResult:
    batch = await adapter.track([number])
    assert not batch.problems, batch.problems
    result: TrackingResult = batch.results[0]
    assert len(batch.results) == 1 and result.tracking_number == number
    return result


def _number(carrier: str, rng: random.Random) -> str:
    """A generated number within the 34 characters the carrier APIs accept. (USPS numbers with
    a 420+ZIP routing prefix run to 38; see test_usps_routing_prefix_is_not_sent below.)"""
    while len(number := numbers.generate(carrier, rng)) > 34:
        pass
    return number


def _expected_at(timeline: dict[str, Any], at: datetime) -> tuple[str, date | None]:
    """(status, EDD day) the sandbox says is visible at ``at``."""
    visible = [e for e in timeline["events"] if datetime.fromisoformat(e["at"]) <= at]
    edds = [c for c in timeline["edd_changes"] if datetime.fromisoformat(c["at"]) <= at]
    edd = date.fromisoformat(edds[-1]["end"]) if edds and edds[-1]["end"] else None
    return (visible[-1]["status"] if visible else "pending"), edd


# --- end to end ----------------------------------------------------------------------------


@pytest.mark.parametrize("carrier", CARRIERS)
async def test_normal_delivery_normalised_as_the_clock_moves(world: World, carrier: str) -> None:
    number = NUMBER[carrier]
    timeline = world.register(carrier, number)
    adapter = world.adapter(carrier)
    world.clock.t = T0 - timedelta(hours=1)
    before = await _one(adapter, number)
    assert before.not_found and before.status is Status.pending
    seen: list[Status] = []
    for i, event in enumerate(timeline["events"]):
        world.clock.t = datetime.fromisoformat(event["at"]) + timedelta(minutes=1)
        result = await _one(adapter, number)
        status, edd = _expected_at(timeline, world.clock.t)
        assert result.status.value == status, (i, event["kind"], result)
        assert len(result.events) == i + 1
        if result.status is not Status.delivered:
            assert result.estimated_delivery == (DeliveryWindow.day(edd) if edd else None)
        seen.append(result.status)
    assert seen[0] is Status.info_received and seen[-1] is Status.delivered
    assert Status.out_for_delivery in seen
    delivered_at = datetime.fromisoformat(timeline["delivered_at"])
    final = await _one(adapter, number)
    newest = max(final.events, key=lambda e: e.at)
    if not newest.offset_assumed:
        assert final.delivered_at == delivered_at
        assert [e.at for e in final.events] == sorted(
            (datetime.fromisoformat(e["at"]) for e in timeline["events"]), reverse=True)
    assert final.signed_by


@pytest.mark.parametrize("scenario", [s for s in Scenario if s is not Scenario.normal])
@pytest.mark.parametrize("carrier", CARRIERS)
async def test_every_scenario_step_by_step(world: World, carrier: str,
                                           scenario: Scenario) -> None:
    number = _number(carrier, random.Random(f"{carrier}{scenario}"))
    timeline = world.register(carrier, number, scenario.value)
    adapter = world.adapter(carrier)
    world.clock.t = T0 + timedelta(minutes=1)
    checkpoints = [datetime.fromisoformat(e["at"]) + timedelta(minutes=1)
                   for e in timeline["events"]] or [T0 + timedelta(days=3)]
    for at in checkpoints:
        world.clock.t = max(at, T0 + timedelta(minutes=1))
        result = await _one(adapter, number)
        status, edd = _expected_at(timeline, world.clock.t)
        assert result.status.value == status, (at, result)
        if status not in ("delivered", "pending"):
            assert result.estimated_delivery == (DeliveryWindow.day(edd) if edd else None)
    if scenario is Scenario.not_found:
        assert result.not_found


# --- tokens ------------------------------------------------------------------------------


@pytest.mark.parametrize("carrier", OAUTH)
async def test_revoked_token_gets_401_then_one_refresh(world: World, carrier: str) -> None:
    adapter = world.adapter(carrier)
    await adapter.track([NUMBER[carrier]])
    await adapter.track([NUMBER[carrier]])
    assert world.stats(carrier)["tokens_issued"] == 1  # cached between calls
    world.fault(carrier=carrier, kind="token_expiry")
    await adapter.track([NUMBER[carrier]])
    stats = world.stats(carrier)
    assert (stats["tokens_issued"], stats["401"], stats["requests"]) == (2, 1, 4)


@pytest.mark.parametrize("carrier", OAUTH)
async def test_token_refreshed_before_its_lifetime_ends(world: World, carrier: str) -> None:
    world.sandbox.state.token_lifetimes[carrier] = 100
    adapter = world.adapter(carrier)
    await adapter.track([NUMBER[carrier]])
    world.mono.t += 95  # inside the adapter's safety margin, still valid at the sandbox
    await adapter.track([NUMBER[carrier]])
    stats = world.stats(carrier)
    assert (stats["tokens_issued"], stats["401"]) == (2, 0)


@pytest.mark.parametrize("carrier", CARRIERS)
async def test_wrong_credentials_raise_auth_error(world: World, carrier: str) -> None:
    with pytest.raises(errors.CarrierAuthError):
        await world.adapter(carrier, secret="wrong").track([NUMBER[carrier]])


# --- failures ----------------------------------------------------------------------------


@pytest.mark.parametrize("carrier", CARRIERS)
async def test_429_with_retry_after_seconds_and_date(world: World, carrier: str) -> None:
    adapter = world.adapter(carrier)
    world.fault(carrier=carrier, kind="429", retry_after="7")
    with pytest.raises(errors.CarrierRateLimited) as seconds:
        await adapter.track([NUMBER[carrier]])
    assert seconds.value.retry_after == 7.0 and seconds.value.header_sent
    when = email.utils.format_datetime(world.clock.now() + timedelta(seconds=30), usegmt=True)
    world.fault(carrier=carrier, kind="429", retry_after=when)
    with pytest.raises(errors.CarrierRateLimited) as dated:
        await adapter.track([NUMBER[carrier]])
    assert dated.value.retry_after == 30.0  # measured on the injected (simulated) clock
    await adapter.track([NUMBER[carrier]])  # the burst is over


@pytest.mark.parametrize("carrier", CARRIERS)
async def test_429_without_retry_after_uses_the_carrier_default(world: World,
                                                                carrier: str) -> None:
    world.fault(carrier=carrier, kind="429", retry_after=None)
    with pytest.raises(errors.CarrierRateLimited) as info:
        await world.adapter(carrier).track([NUMBER[carrier]])
    assert not info.value.header_sent
    assert info.value.retry_after == DEFAULT_RETRY_AFTER[carrier]


@pytest.mark.parametrize("carrier", CARRIERS)
async def test_configured_quota_refuses_as_the_carrier_documents(world: World,
                                                                 carrier: str) -> None:
    world.sandbox.state.set_quota(carrier, Quota(per_second=1, count_token_calls=False))
    adapter = world.adapter(carrier)
    await adapter.track([NUMBER[carrier]])
    with pytest.raises(errors.CarrierRateLimited) as info:
        await adapter.track([NUMBER[carrier]])
    assert info.value.header_sent is (carrier == "usps")  # only USPS sends Retry-After
    assert world.stats(carrier)["overruns"] == 1
    world.mono.t += 1.0
    await adapter.track([NUMBER[carrier]])


@pytest.mark.parametrize("carrier", CARRIERS)
async def test_5xx_is_unavailable(world: World, carrier: str) -> None:
    world.fault(carrier=carrier, kind="5xx", status=503)
    with pytest.raises(errors.CarrierUnavailable) as info:
        await world.adapter(carrier).track([NUMBER[carrier]])
    assert not isinstance(info.value, errors.CarrierRateLimited)


@pytest.mark.parametrize("kind", ["malformed", "html"])
@pytest.mark.parametrize("carrier", CARRIERS)
async def test_bad_bodies_are_payload_errors(world: World, carrier: str, kind: str) -> None:
    world.register(carrier, NUMBER[carrier])
    world.clock.t = T0 + timedelta(days=1)
    world.fault(carrier=carrier, kind=kind)
    with pytest.raises(errors.CarrierPayloadError):
        await world.adapter(carrier).track([NUMBER[carrier]])


@pytest.mark.parametrize("carrier", CARRIERS)
async def test_slow_response_times_out_as_unavailable(world: World, carrier: str) -> None:
    adapter = world.adapter(carrier, timeout=0.1)
    await adapter.track([NUMBER[carrier]])  # token fetched outside the slow window
    world.fault(carrier=carrier, kind="slow", delay=0.5)
    with pytest.raises(errors.CarrierUnavailable):
        await adapter.track([NUMBER[carrier]])


# --- batches -----------------------------------------------------------------------------


@pytest.mark.parametrize("carrier", ["fedex", "usps"])
async def test_batch_with_found_and_missing_numbers(world: World, carrier: str) -> None:
    rng = random.Random(carrier)
    found = [_number(carrier, rng) for _ in range(3)]
    missing = _number(carrier, rng)
    for n in found:
        world.register(carrier, n)
    world.register(carrier, missing, "not_found")
    world.clock.t = T0 + timedelta(days=1)
    adapter = world.adapter(carrier)
    batch = await adapter.track([*found, missing])
    by_number = {r.tracking_number: r for r in batch.results}
    assert not batch.problems and set(by_number) == {*found, missing}
    assert by_number[missing].not_found
    assert all(by_number[n].status is Status.in_transit for n in found)
    assert world.stats(carrier)["requests"] == 1


async def test_usps_single_number_mode_uses_v3(world: World) -> None:
    number = NUMBER["usps"]
    world.register("usps", number)
    world.clock.t = T0 + timedelta(days=1)
    adapter = world.adapter("usps", use_batch=False)
    result = await _one(adapter, number)
    assert result.status is Status.in_transit
    assert world.stats("usps")["requests"] == 1


async def test_usps_routing_prefix_is_not_sent(world: World) -> None:
    long_number = "420" + "100019999" + "92612912345678000000000016"  # 420+ZIP+4+IMpb: 38
    world.register("usps", "92612912345678000000000016")
    world.clock.t = T0 + timedelta(days=1)
    batch = await world.adapter("usps").track([long_number, NUMBER["usps"]])
    assert len(batch.results) == 2
    # Reported under the number we were given, routing prefix included.
    assert {r.tracking_number for r in batch.results} == {long_number, NUMBER["usps"]}
