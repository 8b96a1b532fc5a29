"""Validation of order input (import rows, ``orders add``, the HTTP API): one set of rules.

Pure. ``order_from_fields`` turns loosely typed fields into an :class:`OrderInput` or raises
:class:`InputError` naming the field; warnings (a failed check digit) come back separately,
because carriers do issue real numbers that fail their own check.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import carriers
from carriers import detect
from notifier.errors import InputError
from notifier.models import OmsStatus
from notifier.store.base import OrderInput, ShipmentInput

__all__ = ["Validated", "order_from_fields", "valid_email"]

_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
                    r"[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
_ORDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/#-]{0,63}$")
_LOCALE = re.compile(r"^([a-z]{2,3})(?:[_-]([A-Za-z]{2}|[0-9]{3}))?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

FIELDS = ("order", "email", "name", "locale", "tz", "promised", "carrier", "tracking", "status",
          "expected_ship", "channels")


@dataclass(frozen=True, slots=True, kw_only=True)
class Validated:
    order: OrderInput
    warnings: tuple[str, ...] = ()


def valid_email(value: str) -> bool:
    return len(value) <= 254 and bool(_EMAIL.match(value))


@functools.lru_cache(maxsize=1024)
def _zone_ok(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@functools.lru_cache(maxsize=1024)
def _normal_locale(value: str) -> str | None:
    from babel import Locale, UnknownLocaleError

    match = _LOCALE.match(value)
    if not match:
        return None
    lang, region = match.group(1), match.group(2)
    tag = lang if not region else f"{lang}_{region.upper()}"
    try:
        Locale.parse(tag)
    except (UnknownLocaleError, ValueError):
        return None
    return tag


def _text(fields: Mapping[str, Any], key: str) -> str | None:
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f"{key}: expected text, got {type(value).__name__}", field=key)
    value = value.strip()
    return value or None


def _date(fields: Mapping[str, Any], key: str) -> date | None:
    value = _text(fields, key)
    if value is None:
        return None
    try:
        return date.fromisoformat(value) if len(value) == 10 else _bad_date(key, value)
    except ValueError:
        return _bad_date(key, value)


def _bad_date(key: str, value: str) -> date:
    raise InputError(f"{key}: {value!r} is not a date in YYYY-MM-DD form", field=key)


def shipment_from_fields(carrier: str | None, tracking: str | None, *, where: str = ""
                         ) -> tuple[ShipmentInput, list[str]]:
    """Check one (carrier, tracking) pair. The carrier may be omitted when detection is
    unambiguous. A bad check digit is a warning; a wrong shape is an error."""
    if not tracking:
        raise InputError(f"{where}tracking: required when carrier is given", field="tracking")
    number = detect.normalise(tracking)
    warnings: list[str] = []
    if carrier:
        carrier = carrier.strip().lower()
        if carrier not in carriers.NAMES:
            raise InputError(f"{where}carrier: unknown carrier {carrier!r} "
                             f"(known: {', '.join(carriers.NAMES)})", field="carrier")
        if not detect.plausible(carrier, number):
            raise InputError(f"{where}tracking: {number!r} is not a plausible {carrier} "
                             "tracking number (wrong length or characters)", field="tracking")
        if detect.check_digit_ok(carrier, number) is False:
            warnings.append(f"{where}tracking: {number!r} fails the {carrier} check digit "
                            "(kept: carriers issue such numbers)")
        return ShipmentInput(carrier=carrier, tracking_number=number), warnings
    candidates = detect.detect(number)
    good = sorted({c.carrier for c in candidates if c.check_digit_ok is not False})
    if len(good) == 1:
        return ShipmentInput(carrier=good[0], tracking_number=number), warnings
    if not candidates:
        raise InputError(f"{where}tracking: {number!r} matches no known carrier format; "
                         "give the carrier explicitly", field="tracking")
    names = ", ".join(sorted({c.carrier for c in candidates}))
    raise InputError(f"{where}carrier: {number!r} could be {names}; give the carrier explicitly",
                     field="carrier")


def order_from_fields(fields: Mapping[str, Any]) -> Validated:
    """Validate one order row. Raises InputError naming the first bad field."""
    order_id = _text(fields, "order")
    if not order_id:
        raise InputError("order: required", field="order")
    if not _ORDER_ID.match(order_id):
        raise InputError(f"order: {order_id!r} is not a valid order id (letters, digits and "
                         "._:/#- up to 64 characters)", field="order")
    email = _text(fields, "email")
    if not email:
        raise InputError("email: required", field="email")
    if not valid_email(email):
        raise InputError(f"email: {email!r} is not an e-mail address", field="email")
    name = _text(fields, "name")
    if name is not None:
        name = _CONTROL.sub(" ", name)[:200]
    locale = _text(fields, "locale")
    if locale is not None:
        normal = _normal_locale(locale)
        if normal is None:
            raise InputError(f"locale: {locale!r} is not a known locale (e.g. en, fr, de_AT)",
                             field="locale")
        locale = normal
    tz = _text(fields, "tz")
    if tz is not None and not _zone_ok(tz):
        raise InputError(f"tz: {tz!r} is not an IANA time zone (e.g. Europe/Paris)", field="tz")
    status_text = _text(fields, "status")
    status = None
    if status_text is not None:
        try:
            status = OmsStatus(status_text.lower())
        except ValueError:
            raise InputError(f"status: {status_text!r} is not one of "
                             f"{', '.join(s.value for s in OmsStatus)}", field="status") from None
    channels_text = _text(fields, "channels")
    channels = None
    if channels_text is not None:
        channels = tuple(c.strip() for c in channels_text.split(",") if c.strip())
        bad = [c for c in channels if c not in ("email", "fcm", "apns", "webpush", "webhook")]
        if bad:
            raise InputError(f"channels: unknown channel {bad[0]!r}", field="channels")
    warnings: list[str] = []
    shipments: list[ShipmentInput] = []
    carrier, tracking = _text(fields, "carrier"), _text(fields, "tracking")
    if carrier or tracking:
        shipment, warn = shipment_from_fields(carrier, tracking)
        shipments.append(shipment)
        warnings.extend(warn)
    for i, extra in enumerate(fields.get("shipments") or ()):
        if not isinstance(extra, Mapping):
            raise InputError(f"shipments[{i}]: expected an object", field=f"shipments[{i}]")
        shipment, warn = shipment_from_fields(_text(extra, "carrier"), _text(extra, "tracking"),
                                              where=f"shipments[{i}].")
        shipments.append(shipment)
        warnings.extend(warn)
    order = OrderInput(
        id=order_id, email=email, name=name, locale=locale, tz=tz, channels=channels,
        oms_status=status, expected_ship_date=_date(fields, "expected_ship"),
        promised_date=_date(fields, "promised"), shipments=tuple(shipments))
    return Validated(order=order, warnings=tuple(warnings))
