"""Mapping between SQLite rows and domain dataclasses. Pure apart from the row type."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from carriers.model import DeliveryWindow, ExceptionReason, Location, Status, TrackingEvent
from notifier import models
from notifier.timefmt import date_from_db, from_db


def chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _window(start: str | None, end: str | None) -> DeliveryWindow | None:
    if start is None:
        return None
    s = date.fromisoformat(start)
    return DeliveryWindow(start=s, end=date.fromisoformat(end) if end else s)


def shipment_from_row(row: sqlite3.Row) -> models.Shipment:
    return models.Shipment(
        id=row["id"], order_id=row["order_id"], carrier=row["carrier"],
        tracking_number=row["tracking_number"], status=Status(row["status"]),
        status_detail=row["status_detail"],
        exception_reason=ExceptionReason(row["exception_reason"]) if row["exception_reason"]
        else None,
        first_edd=_window(row["first_edd_start"], row["first_edd_end"]),
        current_edd=_window(row["current_edd_start"], row["current_edd_end"]),
        delivered_at=from_db(row["delivered_at"]), signed_by=row["signed_by"],
        service=row["service"], last_event_at=from_db(row["last_event_at"]),
        created_at=from_db(row["created_at"]), next_poll_at=from_db(row["next_poll_at"]),
        last_poll_at=from_db(row["last_poll_at"]), last_success_at=from_db(row["last_success_at"]),
        last_change_at=from_db(row["last_change_at"]), polls=row["polls"],
        unchanged_polls=row["unchanged_polls"], consecutive_failures=row["consecutive_failures"],
        blind_seconds=row["blind_seconds"],
    )


def order_from_row(row: sqlite3.Row, shipments: Sequence[models.Shipment]) -> models.Order:
    channels = tuple(models.Channel(c) for c in row["channels"].split(",") if c)
    return models.Order(
        id=row["id"],
        customer=models.Customer(email=row["email"], name=row["name"], locale=row["locale"],
                                 tz=row["tz"], channels=channels),
        oms_status=models.OmsStatus(row["oms_status"]),
        expected_ship_date=date_from_db(row["expected_ship_date"]),
        promised_date=date_from_db(row["promised_date"]),
        placed_at=from_db(row["placed_at"]), updated_at=from_db(row["updated_at"]),
        shipments=tuple(shipments),
    )


def event_from_row(row: sqlite3.Row) -> TrackingEvent:
    return TrackingEvent(
        at=from_db(row["at"]),  # type: ignore[arg-type]
        status=Status(row["status"]), code=row["code"], description=row["description"],
        location=Location(city=row["city"], state=row["state"], postal_code=row["postal_code"],
                          country=row["country"]),
        local_time=datetime.fromisoformat(row["local_time"]) if row["local_time"] else None,
        offset_assumed=bool(row["offset_assumed"]),
        exception_reason=ExceptionReason(row["exception_reason"]) if row["exception_reason"]
        else None,
    )


def anomaly_from_row(row: sqlite3.Row) -> models.Anomaly:
    return models.Anomaly(
        id=row["id"], kind=models.AnomalyKind(row["kind"]), order_id=row["order_id"],
        shipment_id=row["shipment_id"], detail=row["detail"], opened_at=from_db(row["opened_at"]),
        last_seen_at=from_db(row["last_seen_at"]), resolved_at=from_db(row["resolved_at"]),
        resolution=row["resolution"], carrier=row["carrier"])


def notification_from_row(row: sqlite3.Row) -> models.Notification:
    return models.Notification(
        id=row["id"], dedup_key=row["dedup_key"], order_id=row["order_id"] or "",
        shipment_id=row["shipment_id"], trigger=row["trigger"],
        channel=models.Channel(row["channel"]), recipient=row["recipient"],
        status=models.NotificationStatus(row["status"]), payload=json.loads(row["payload"]),
        created_at=from_db(row["created_at"]), next_attempt_at=from_db(row["next_attempt_at"]),
        attempts=row["attempts"], last_error=row["last_error"], sent_at=from_db(row["sent_at"]))


def dispute_from_row(row: sqlite3.Row) -> models.Dispute:
    return models.Dispute(
        id=row["id"], order_id=row["order_id"], shipment_id=row["shipment_id"],
        reason=row["reason"], opened_at=from_db(row["opened_at"]),
        resolved_at=from_db(row["resolved_at"]),
        resolution=models.DisputeResolution(row["resolution"]) if row["resolution"] else None,
        note=row["note"])


def health_from_row(row: sqlite3.Row) -> models.CarrierHealth:
    return models.CarrierHealth(
        carrier=row["carrier"], last_success_at=from_db(row["last_success_at"]),
        last_failure_at=from_db(row["last_failure_at"]), last_error=row["last_error"],
        consecutive_failures=row["consecutive_failures"], successes=row["successes"],
        failures=row["failures"], rate_limited=row["rate_limited"],
        circuit_state=row["circuit_state"], circuit_opened_at=from_db(row["circuit_opened_at"]),
        blocked_until=from_db(row["blocked_until"]), paused_reason=row["paused_reason"],
        window_day=row["window_day"], day_requests=row["day_requests"],
        window_hour=row["window_hour"], hour_requests=row["hour_requests"])
