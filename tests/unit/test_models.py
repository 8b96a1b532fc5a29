"""Order status derivation (DESIGN.md): cancelled / OMS status / least advanced shipment."""

from __future__ import annotations

import pytest

from carriers.model import Status
from notifier.models import OmsStatus, Shipment, derive_order_status


def ships(*statuses: Status) -> list[Shipment]:
    return [Shipment(carrier="ups", tracking_number=f"1Z{i}", status=s)
            for i, s in enumerate(statuses)]


@pytest.mark.parametrize(("oms", "shipments", "expected"), [
    pytest.param(OmsStatus.cancelled, ships(Status.in_transit), "cancelled", id="cancelled-wins"),
    pytest.param(OmsStatus.processing, [], "processing", id="oms-until-shipment"),
    pytest.param(OmsStatus.backordered, [], "backordered", id="backordered"),
    pytest.param(OmsStatus.processing, ships(Status.in_transit), "in_transit", id="one-shipment"),
    pytest.param(OmsStatus.processing, ships(Status.out_for_delivery, Status.in_transit),
                 "in_transit", id="least-advanced"),
    pytest.param(OmsStatus.processing, ships(Status.delivered, Status.in_transit),
                 "partially_delivered", id="partial"),
    pytest.param(OmsStatus.processing, ships(Status.delivered, Status.delivered), "delivered",
                 id="all-delivered"),
    pytest.param(OmsStatus.processing, ships(Status.in_transit, Status.exception), "exception",
                 id="exception-before-equal-progress"),
    pytest.param(OmsStatus.processing, ships(Status.info_received, Status.out_for_delivery),
                 "info_received", id="label-only-is-least"),
])
def test_derive_order_status(oms: OmsStatus, shipments: list[Shipment], expected: str) -> None:
    assert derive_order_status(oms, shipments) == expected
