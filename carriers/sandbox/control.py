"""``/_sandbox/*`` control endpoints: register shipments, inspect full timelines, inject faults,
set quotas, read and reset statistics.

* ``POST /_sandbox/shipments`` ``{"number", "carrier", "scenario", "start"?, "quirks"?}``
  (``start`` ISO-8601, default now; ``quirks`` a list from ``scenarios.QUIRKS``, default
  hash-chosen) -> 201 and the timeline.
* ``GET /_sandbox/shipments/{number}?carrier=C`` -> scenario, start and the FULL timeline
  (future events included, each with ``visible``), EDD changes, the expected normalised status
  per event. An unregistered number is resolved (and remembered) as a carrier request would.
* ``POST /_sandbox/faults`` (see ``faults.py``), ``GET``/``DELETE /_sandbox/faults[?carrier=]``.
* ``POST /_sandbox/quotas`` ``{"carrier", "per_second"?, "per_10s"?, "per_hour"?,
  "per_day"?, "count_token_calls"?}`` (all limits null removes the quota), ``GET`` lists them.
* ``GET /_sandbox/stats``; ``POST /_sandbox/reset`` (``{"all": true}`` also forgets
  registrations and tokens).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from carriers.sandbox.faults import CARRIERS, FaultKind, parse_fault
from carriers.sandbox.payloads import expected_row
from carriers.sandbox.places import Place
from carriers.sandbox.quota import Quota
from carriers.sandbox.scenarios import QUIRKS, Scenario, Timeline
from carriers.sandbox.state import SandboxState

__all__ = ["CONTROL_ROUTES", "timeline_json"]


def _state(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


def _error(message: str, status: int = 400) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def _place(p: Place) -> dict[str, str]:
    return {"city": p.city, "state": p.state, "postal_code": p.postal, "country": p.country,
            "zone": p.zone}


def timeline_json(tl: Timeline, now: datetime, *, registered: bool) -> dict[str, Any]:
    """The full timeline as JSON, with what an adapter should report for each event."""
    events = []
    for e in tl.events:
        row = expected_row(tl.carrier, e, tl)
        events.append({"at": e.at.isoformat(), "local_time": e.local.isoformat(),
                       "kind": e.kind.value, "code": row.code, "description": row.text,
                       "status": row.status.value,
                       "exception_reason": row.reason.value if row.reason else None,
                       "location": _place(e.place), "visible": e.at <= now})
    edd = [{"at": c.at.isoformat(),
            "start": c.window.start.isoformat() if c.window else None,
            "end": c.window.end.isoformat() if c.window else None} for c in tl.edd]
    view = tl.view(now)
    delivered_at = next((ev["at"] for ev in events if ev["status"] == "delivered"), None)
    return {
        "number": tl.number, "carrier": tl.carrier, "scenario": tl.scenario.value,
        "start": tl.start.isoformat(), "registered": registered, "now": now.isoformat(),
        "quirks": sorted(tl.quirks),
        "route": {"origin": _place(tl.route.origin), "hub": _place(tl.route.hub),
                  "destination": _place(tl.route.destination)},
        "events": events, "edd_changes": edd,
        "found": view.found,
        "current_status": (expected_row(tl.carrier, view.events[0], tl).status.value
                           if view.found else "pending"),
        "delivered_at": delivered_at,
        "final_status": events[-1]["status"] if events else "pending",
    }


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _parse_start(value: Any, now: datetime) -> datetime:
    if value is None:
        return now
    if not isinstance(value, str):
        raise ValueError("start must be an ISO-8601 string")
    start = datetime.fromisoformat(value)
    return (start if start.tzinfo else start.replace(tzinfo=UTC)).astimezone(UTC)


async def register(request: Request) -> Response:
    st = _state(request)
    body = await _body(request)
    if not isinstance(body, dict):
        return _error("body must be a JSON object")
    number, carrier = body.get("number"), body.get("carrier")
    if not isinstance(number, str) or not number.strip():
        return _error("number is required")
    if carrier not in CARRIERS:
        return _error(f"carrier must be one of {', '.join(CARRIERS)}")
    try:
        scenario = Scenario(body.get("scenario", Scenario.normal.value))
    except ValueError:
        return _error(f"unknown scenario; known: {', '.join(s.value for s in Scenario)}")
    try:
        start = _parse_start(body.get("start"), st.now())
    except ValueError as exc:
        return _error(f"bad start: {exc}")
    quirks = body.get("quirks")
    if quirks is not None:
        if not isinstance(quirks, list) or not set(quirks) <= QUIRKS:
            return _error(f"quirks must be a list drawn from {sorted(QUIRKS)}")
        quirks = frozenset(quirks)
    st.register(carrier, number, scenario, start, quirks)
    return JSONResponse(timeline_json(st.timeline(carrier, number), st.now(), registered=True),
                        status_code=201)


async def show(request: Request) -> Response:
    st = _state(request)
    number = request.path_params["number"]
    carrier = request.query_params.get("carrier")
    if carrier is None:
        known = [c for (c, n) in st.registrations if n == number.replace(" ", "").upper()]
        if len(known) != 1:
            return _error("carrier query parameter required")
        carrier = known[0]
    if carrier not in CARRIERS:
        return _error(f"carrier must be one of {', '.join(CARRIERS)}")
    reg = st.resolve(carrier, number)
    return JSONResponse(timeline_json(st.timeline(carrier, number), st.now(),
                                      registered=reg.registered))


async def add_fault(request: Request) -> Response:
    st = _state(request)
    try:
        faults = parse_fault(await _body(request))
    except ValueError as exc:
        return _error(str(exc))
    revoked = 0
    for fault in faults:
        if fault.kind is FaultKind.token_expiry:
            revoked += st.revoke_tokens(fault.carrier)
        elif fault.kind is FaultKind.quota:
            st.faults.exhaust_quota(fault.carrier, st.now().astimezone(UTC).date())
        else:
            st.faults.add(fault)
    return JSONResponse({"added": len(faults), "tokens_revoked": revoked,
                         "faults": st.faults.describe()}, status_code=201)


async def list_faults(request: Request) -> Response:
    return JSONResponse(_state(request).faults.describe())


async def clear_faults(request: Request) -> Response:
    st = _state(request)
    st.faults.clear(request.query_params.get("carrier"))
    return JSONResponse(st.faults.describe())


_LIMITS = ("per_second", "per_10s", "per_hour", "per_day")


async def set_quota(request: Request) -> Response:
    st = _state(request)
    body = await _body(request)
    if not isinstance(body, dict) or body.get("carrier") not in CARRIERS:
        return _error(f"body must be an object with carrier in {', '.join(CARRIERS)}")
    limits = {k: body.get(k) for k in _LIMITS}
    if any(v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0)
           for v in limits.values()):
        return _error("limits must be non-negative integers or null")
    counts = body.get("count_token_calls")
    if counts is not None and not isinstance(counts, bool):
        return _error("count_token_calls must be a boolean or null")
    quota = (None if all(v is None for v in limits.values())
             else Quota(count_token_calls=counts, **limits))
    st.set_quota(body["carrier"], quota)
    return await list_quotas(request)


async def list_quotas(request: Request) -> Response:
    st = _state(request)
    return JSONResponse({c: {**{k: getattr(m.quota, k) for k in _LIMITS},
                             "count_token_calls": m.quota.counts_tokens(c), "used": m.usage()}
                         for c, m in st.quotas.items()})


async def stats(request: Request) -> Response:
    st = _state(request)
    return JSONResponse({"now": st.now().isoformat(), "carriers": st.stats_json()})


async def reset(request: Request) -> Response:
    st = _state(request)
    body = await _body(request)
    st.reset(everything=isinstance(body, dict) and body.get("all") is True)
    return JSONResponse({"now": st.now().isoformat(), "carriers": st.stats_json()})


CONTROL_ROUTES: list[Route] = [
    Route("/_sandbox/shipments", register, methods=["POST"]),
    Route("/_sandbox/shipments/{number}", show, methods=["GET"]),
    Route("/_sandbox/faults", add_fault, methods=["POST"]),
    Route("/_sandbox/faults", list_faults, methods=["GET"]),
    Route("/_sandbox/faults", clear_faults, methods=["DELETE"]),
    Route("/_sandbox/quotas", set_quota, methods=["POST"]),
    Route("/_sandbox/quotas", list_quotas, methods=["GET"]),
    Route("/_sandbox/stats", stats, methods=["GET"]),
    Route("/_sandbox/reset", reset, methods=["POST"]),
]
