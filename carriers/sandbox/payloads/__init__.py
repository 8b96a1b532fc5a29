"""Per-carrier response bodies built from scenario views (pure; one module per carrier).

``expected_row`` gives, for a simulated event, the raw code the sandbox sends and the
normalised status/reason the reference implies, so the timeline endpoint can tell benchmarks
what an adapter should report.
"""

from __future__ import annotations

from carriers.sandbox.payloads import dhl, fedex, ups, usps
from carriers.sandbox.payloads.common import Row
from carriers.sandbox.scenarios import SimEvent, Timeline

__all__ = ["Row", "dhl", "expected_row", "fedex", "ups", "usps"]


def expected_row(carrier: str, event: SimEvent, timeline: Timeline) -> Row:
    """The code row used for ``event`` in ``carrier``'s payloads."""
    if carrier == "usps":
        return usps.expected(event, timeline.route.hub.code)
    table = {"ups": ups.CODES, "fedex": fedex.CODES, "dhl": dhl.CODES}[carrier]
    return table[event.kind]
