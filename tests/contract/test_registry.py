"""The shared contract every registered carrier meets, parametrized over ``carriers.REGISTRY``:
a fifth carrier gets these checks by being registered (and dropping its recorded payloads in
``tests/fixtures/<name>/``).

Checked per carrier: the adapter class has the ``Carrier`` protocol's shape and the common
constructor (and refuses a batch over ``max_batch`` before sending anything); its package
exports ``parse_payload`` and ``tracking_url``; every recorded payload normalises to
well-formed results (known statuses, UTC instants, events newest first); junk and damaged
payloads give a result or ``CarrierPayloadError``, never another exception; generated tracking
numbers are plausible for the carrier.

Fixture convention: ``tests/fixtures/<name>/*.json`` are 200 tracking bodies, except files named
``error*.json``, which are error bodies that the parser must refuse with ``CarrierPayloadError``
(error bodies may also live in ``errors/``, which these checks do not read).
"""

from __future__ import annotations

import importlib
import inspect
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import carriers
from carriers import detect, numbers
from carriers.base import CarrierSettings
from carriers.errors import CarrierPayloadError
from carriers.model import BatchResult, ExceptionReason, Status, TrackingResult

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NAMES = list(carriers.REGISTRY)
NOW = datetime(2025, 6, 12, 18, 0, tzinfo=UTC)


def package(name: str) -> ModuleType:
    return importlib.import_module(carriers.REGISTRY[name].partition(":")[0])


def parse(name: str) -> Callable[..., BatchResult]:
    fn: Callable[..., BatchResult] = package(name).parse_payload
    return fn


def fixtures(name: str) -> list[Path]:
    return sorted((FIXTURES / name).glob("*.json"))


def is_utc(value: datetime) -> bool:
    return value.tzinfo is not None and value.utcoffset() == timedelta(0)


def check_result(name: str, result: TrackingResult, *, coherent: bool = True) -> None:
    """The invariants of one normalised result, whatever the carrier. ``coherent``: the body
    was a real one, so its local and UTC times agree (a damaged body may contradict itself,
    and the parser cannot know which field is right)."""
    assert result.carrier == name
    assert isinstance(result.tracking_number, str) and result.tracking_number.strip()
    assert isinstance(result.status, Status)
    assert result.exception_reason is None or isinstance(result.exception_reason,
                                                         ExceptionReason)
    assert result.delivered_at is None or is_utc(result.delivered_at)
    if result.estimated_delivery is not None:
        assert result.estimated_delivery.start <= result.estimated_delivery.end
    ats = [e.at for e in result.events]
    assert ats == sorted(ats, reverse=True), "events must come newest first"
    for event in result.events:
        assert isinstance(event.status, Status) and is_utc(event.at)
        assert isinstance(event.code, str)
        if event.local_time is not None:
            assert event.local_time.tzinfo is not None
        if event.local_time is not None and coherent:
            # The same instant seen locally; carriers print local times to the minute while
            # the UTC field may carry seconds (USPS eventTimestamp vs GMTTimestamp).
            assert abs(event.local_time - event.at) < timedelta(minutes=1)
    if result.not_found:
        assert result.status is Status.pending
    for event in result.events:
        if event.status is Status.unknown and event.code and coherent:
            # an unknown code is kept (and counted by the poller), never dropped
            assert event.code in result.unknown_codes, (event.code, result.unknown_codes)


def check_batch(name: str, batch: BatchResult, *, coherent: bool = True) -> None:
    assert isinstance(batch, BatchResult)
    for result in batch.results:
        check_result(name, result, coherent=coherent)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in batch.problems.items())


# --------------------------------------------------------------------------------- the class


@pytest.mark.parametrize("name", NAMES)
async def test_adapter_class_has_the_protocol_shape(name: str) -> None:
    cls: Any = carriers.adapter_class(name)
    assert cls.name == name
    assert isinstance(cls.max_batch, int) and cls.max_batch >= 1
    assert inspect.iscoroutinefunction(cls.track)
    assert inspect.iscoroutinefunction(cls.aclose)
    params = inspect.signature(cls).parameters
    assert "now" in params and params["now"].kind is inspect.Parameter.KEYWORD_ONLY
    # The common constructor: (settings, http, *, now); every other parameter has a default.
    positional = [p for p in params.values() if p.kind in (
        inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    assert len(positional) == 2
    assert all(p.default is not inspect.Parameter.empty for p in params.values()
               if p.name not in ("now", *(q.name for q in positional)))

    calls: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500)

    transport = httpx.MockTransport(refuse)
    async with httpx.AsyncClient(transport=transport) as http:
        adapter = cls(CarrierSettings(base_url="http://127.0.0.1:9", client_id="id",
                                      client_secret="secret", api_key="key"), http,
                      now=lambda: NOW)
        assert (await adapter.track([])).results == ()
        assert calls == []  # nothing to track, nothing sent
        with pytest.raises(ValueError):
            await adapter.track([f"N{i}" for i in range(cls.max_batch + 1)])
        await adapter.aclose()
        assert not http.is_closed  # the shared client belongs to the application


@pytest.mark.parametrize("name", NAMES)
def test_package_exports_parse_payload_and_tracking_url(name: str) -> None:
    pkg = package(name)
    assert "now" in inspect.signature(pkg.parse_payload).parameters
    number = numbers.generate(name, random.Random(name))
    url = pkg.tracking_url(number)
    parts = urlsplit(url)
    assert parts.scheme == "https" and parts.netloc and detect.normalise(number) in url


# ---------------------------------------------------------------------------- recorded bodies


@pytest.mark.parametrize("name", NAMES)
def test_has_recorded_payloads(name: str) -> None:
    bodies = [p for p in fixtures(name) if not p.name.startswith("error")]
    assert len(bodies) >= 3, f"record some {name} payloads in tests/fixtures/{name}/"


@pytest.mark.parametrize(("name", "path"), [(n, p) for n in NAMES for p in fixtures(n)],
                         ids=lambda v: v.name if isinstance(v, Path) else v)
def test_recorded_payload_normalises(name: str, path: Path) -> None:
    payload = json.loads(path.read_text(encoding="utf-8"))
    if path.name.startswith("error"):
        with pytest.raises(CarrierPayloadError):
            parse(name)(payload, now=NOW)
        return
    batch = parse(name)(payload, now=NOW)
    assert batch.results or batch.problems
    check_batch(name, batch)
    # Pure: the same body read twice gives the same answer.
    assert parse(name)(payload, now=NOW) == batch


# --------------------------------------------------------------------------------------- junk

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "0", "2025-06-12T10:00:00", "2025-06-12T10:00:00-05:00",
                       "20250612", "DELIVERED", "D", "TW0001", "-05:00", "US"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=20)


def damage(value: Any, rng: random.Random, junk: Any) -> Any:
    """``value`` with one randomly chosen node (walked from the root) replaced by ``junk``."""
    if not isinstance(value, dict | list) or not value or rng.random() < 0.15:
        return junk
    if isinstance(value, list):
        i = rng.randrange(len(value))
        return [damage(v, rng, junk) if j == i else v for j, v in enumerate(value)]
    key = rng.choice(list(value))
    return {k: damage(v, rng, junk) if k == key else v for k, v in value.items()}


def result_or_payload_error(name: str, payload: Any) -> None:
    try:
        batch = parse(name)(payload, now=NOW)
    except CarrierPayloadError:
        return
    check_batch(name, batch, coherent=False)


# Derandomized: the same examples on every run (CI must not flake); each carrier's own contract
# tests fuzz its parser further with random seeds.
FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(payload=JSON)
def test_junk_json_gives_a_result_or_payload_error(name: str, payload: Any) -> None:
    result_or_payload_error(name, payload)


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(junk=JSON, seed=st.integers(0, 2**32 - 1), which=st.integers(0, 1000))
def test_damaged_recorded_payloads_give_a_result_or_payload_error(
        name: str, junk: Any, seed: int, which: int) -> None:
    bodies = [p for p in fixtures(name) if not p.name.startswith("error")]
    original = json.loads(bodies[which % len(bodies)].read_text(encoding="utf-8"))
    result_or_payload_error(name, damage(original, random.Random(seed), junk))


# ------------------------------------------------------------------------------------ numbers


@pytest.mark.parametrize("name", NAMES)
def test_generated_numbers_are_plausible_for_their_carrier(name: str) -> None:
    rng = random.Random(f"registry-{name}")
    assert detect.formats_for(name), f"no tracking-number formats known for {name}"
    for _ in range(200):
        number = numbers.generate(name, rng)
        assert detect.plausible(name, number), number
        assert name in {c.carrier for c in detect.detect(number)}
    for fmt in detect.formats_for(name):
        assert detect.plausible(name, numbers.generate(name, rng, format=fmt)), fmt
