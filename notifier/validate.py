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
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import carriers
from carriers import detect
from notifier.errors import InputError
from notifier.models import OmsStatus
from notifier.store.base import OrderInput, ShipmentInput

__all__ = ["Validated", "order_from_fields", "valid_email"]

_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
                    r"[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
_ORDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/#-]{0,63}$")
_LOCALE = re.compile(r"^([A-Za-z]{2,3})(?:[_-]([A-Za-z]{2}|[0-9]{3}))?$")
# Strict: date.fromisoformat also takes week dates ("2026-W45-1") and non-ASCII digits.
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

FIELDS = ("order", "email", "name", "locale", "tz", "promised", "carrier", "tracking", "status",
          "expected_ship", "channels")


@dataclass(frozen=True, slots=True, kw_only=True)
class Validated:
    order: OrderInput
    warnings: tuple[str, ...] = ()


def valid_email(value: str) -> bool:
    return len(value) <= 254 and bool(_EMAIL.match(value))


@functools.lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    # "localtime" is whatever the importing machine uses, "Factory" means "zone not set".
    return frozenset(available_timezones()) - {"localtime", "Factory"}


@functools.lru_cache(maxsize=1024)
def _zone_ok(name: str) -> bool:
    # ZoneInfo alone accepts any TZif file under the zoneinfo folder ("posixrules",
    # "right/UTC", "localtime"); only real IANA keys are customers' zones.
    if name not in _zone_names():
        return False
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
    lang, region = match.group(1).lower(), match.group(2)
    region = region.upper() if region else None
    if lang == "und":  # "undetermined": Babel maps it to en_US, which would hide the mistake
        return None
    try:
        parsed = Locale.parse(lang if region is None else f"{lang}_{region}")
    except (UnknownLocaleError, ValueError):
        return None
    # Babel quietly swaps an unknown region for the language's default (en_ZZ -> en_US).
    if region is not None and parsed.territory != region:
        return None
    # Deprecated codes come back under their current name (iw -> he).
    return parsed.language if region is None else f"{parsed.language}_{region}"


def _text(fields: Mapping[str, Any], key: str) -> str | None:
    value = fields.get(key)
    if type(value) is str:  # every CSV cell: the fast path (about 11 calls per import row)
        value = value.strip()
        return value or None
    if value is None:
        return None
    if type(value) is int:  # JSON Lines writers emit numeric order ids as numbers (exact)
        return str(value)
    if not isinstance(value, str):
        raise InputError(f"{key}: expected text, got {type(value).__name__}", field=key)
    value = value.strip()
    return value or None


def _date(fields: Mapping[str, Any], key: str) -> date | None:
    value = _text(fields, key)
    if value is None:
        return None
    try:
        return date.fromisoformat(value) if _DATE.match(value) else _bad_date(key, value)
    except ValueError:
        return _bad_date(key, value)


def _bad_date(key: str, value: str) -> date:
    raise InputError(f"{key}: {value!r} is not a date in YYYY-MM-DD form", field=key)


def shipment_from_fields(carrier: str | None, tracking: str | None, *, where: str = ""
                         ) -> tuple[ShipmentInput, list[str]]:
    """Check one (carrier, tracking) pair. The carrier may be omitted when detection is
    unambiguous. A bad check digit is a warning; a wrong shape is an error. ``where``
    (``shipments[1].``) prefixes the messages only: the error's ``field`` stays plain
    ("tracking", "carrier"), as notifier.api.schemas expects when it adds the path."""
    tracking_field, carrier_field = "tracking", "carrier"
    if not tracking:
        raise InputError(f"{where}tracking: required when carrier is given", field=tracking_field)
    number = detect.normalise(tracking)
    warnings: list[str] = []
    if carrier:
        carrier = carrier.strip().lower()
        if carrier not in carriers.NAMES:
            raise InputError(f"{where}carrier: unknown carrier {carrier!r} "
                             f"(known: {', '.join(carriers.NAMES)})", field=carrier_field)
        # One detect() pass gives both verdicts (detect.plausible + detect.check_digit_ok
        # would run every format's regex twice; this is the import's hottest path).
        checks = {c.check_digit_ok for c in detect.detect(number) if c.carrier == carrier}
        if not checks:
            raise InputError(f"{where}tracking: {number!r} is not a plausible {carrier} "
                             "tracking number (wrong length or characters)", field=tracking_field)
        if True not in checks and False in checks:
            warnings.append(f"{where}tracking: {number!r} fails the {carrier} check digit "
                            "(kept: carriers issue such numbers)")
        return ShipmentInput(carrier=carrier, tracking_number=number), warnings
    candidates = detect.detect(number)
    good = sorted({c.carrier for c in candidates if c.check_digit_ok is not False})
    if len(good) == 1:
        return ShipmentInput(carrier=good[0], tracking_number=number), warnings
    if not candidates:
        raise InputError(f"{where}tracking: {number!r} matches no known carrier format; "
                         "give the carrier explicitly", field=tracking_field)
    every = sorted({c.carrier for c in candidates})
    if not good and len(every) == 1:
        # Only one carrier's shapes fit and its check digit fails: that is not ambiguity, and
        # a failed check digit alone is a warning, as with an explicit carrier.
        warnings.append(f"{where}tracking: {number!r} fails the {every[0]} check digit "
                        "(kept: carriers issue such numbers)")
        return ShipmentInput(carrier=every[0], tracking_number=number), warnings
    names = ", ".join(every)
    raise InputError(f"{where}carrier: {number!r} could be {names}; give the carrier explicitly",
                     field=carrier_field)


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
        if not name.isascii():
            # A JSON "\udc80" escape decodes to a lone surrogate, which SQLite cannot store
            # (the whole batch would fail): replace it like any undecodable character.
            name = name.encode("utf-8", "replace").decode("utf-8")
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
    extras = fields.get("shipments")
    if extras is not None and not isinstance(extras, list | tuple):
        # A string or object would otherwise be iterated character by character or by key.
        raise InputError("shipments: expected a list of {carrier, tracking} objects",
                         field="shipments")
    for i, extra in enumerate(extras or ()):
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
