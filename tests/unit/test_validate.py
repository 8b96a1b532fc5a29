"""Order validation rules (import rows, ``orders add``): each field's accept/reject cases,
tracking-number plausibility per carrier, check-digit warnings, carrier detection."""

from __future__ import annotations

import random
from datetime import date
from typing import Any

import pytest

from carriers import detect, numbers
from notifier.errors import InputError
from notifier.models import OmsStatus
from notifier.validate import FIELDS, order_from_fields, shipment_from_fields, valid_email

CARRIERS = ("ups", "fedex", "dhl", "usps")


def row(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"order": "1001", "email": "ann@example.com"}
    base.update(kw)
    return base


def failing(carrier: str, rng: random.Random) -> str:
    """A number shaped like ``carrier``'s whose check digit fails (corrupt may also break the
    shape, e.g. the 1 of 1Z; such numbers are retried)."""
    while True:
        bad = numbers.corrupt(numbers.generate(carrier, rng), rng)
        if detect.plausible(carrier, bad) and detect.check_digit_ok(carrier, bad) is False:
            return bad


def unique_to(carrier: str, rng: random.Random, *, fail: bool = False) -> str:
    """A number that only ``carrier``'s formats match (detection is unambiguous)."""
    while True:
        n = failing(carrier, rng) if fail else numbers.generate(carrier, rng)
        if {c.carrier for c in detect.detect(n)} == {carrier}:
            return n


def reject(fields: dict[str, Any], field: str, *words: str) -> InputError:
    with pytest.raises(InputError) as info:
        order_from_fields(fields)
    assert info.value.field == field, str(info.value)
    assert str(info.value).startswith(f"{field}:")
    for word in words:
        assert word in str(info.value)
    return info.value


def test_minimal_row_keeps_unknowns_none() -> None:
    v = order_from_fields(row())
    assert v.order.id == "1001" and v.order.email == "ann@example.com"
    assert (v.order.name, v.order.locale, v.order.tz, v.order.oms_status) == (None,) * 4
    assert v.order.shipments == () and v.warnings == ()


def test_full_row() -> None:
    v = order_from_fields(row(name="  Ann  Lee ", locale="fr-ca", tz="America/Toronto",
                              promised="2026-11-10", status="Backordered",
                              expected_ship="2026-11-04", channels="email, webpush"))
    o = v.order
    assert (o.name, o.locale, o.tz) == ("Ann  Lee", "fr_CA", "America/Toronto")
    assert o.promised_date == date(2026, 11, 10)
    assert o.expected_ship_date == date(2026, 11, 4)
    assert o.oms_status is OmsStatus.backordered
    assert o.channels == ("email", "webpush")


def test_blank_cells_are_absent() -> None:
    v = order_from_fields(row(name=" ", locale="", tz="", promised="", carrier="", tracking=""))
    assert v.order.locale is None and v.order.promised_date is None and v.order.shipments == ()


@pytest.mark.parametrize("bad", ["", "no-at-sign", "a@b", "a b@example.com", "a@-x.com",
                                 "a@example..com", "x" * 250 + "@example.com"])
def test_invalid_emails(bad: str) -> None:
    assert not valid_email(bad)
    if bad:
        reject(row(email=bad), "email", "not an e-mail address")
    else:
        reject(row(email=bad), "email", "required")


@pytest.mark.parametrize("good", ["a@b.co", "first.last+tag@mail.example.org", "o'neil@x.ie"])
def test_valid_emails(good: str) -> None:
    assert valid_email(good)


@pytest.mark.parametrize("bad", ["", "-starts-with-dash", "has space", "x" * 65, "ü1"])
def test_invalid_order_ids(bad: str) -> None:
    reject(row(order=bad), "order")


def test_numeric_order_id_from_json_is_text() -> None:
    assert order_from_fields(row(order=1001)).order.id == "1001"
    reject(row(order=True), "order", "expected text")
    reject(row(order=10.5), "order", "expected text")


@pytest.mark.parametrize("bad", ["2026-13-01", "2026-02-30", "11/10/2026", "2026-1-1",
                                 "2026-W45-1", "20261110", "2026-11-10T00:00"])
def test_invalid_dates(bad: str) -> None:
    reject(row(promised=bad), "promised", repr(bad), "YYYY-MM-DD")
    reject(row(expected_ship=bad), "expected_ship", "YYYY-MM-DD")


@pytest.mark.parametrize("bad", ["Mars/Olympus", "europe/paris", "posixrules", "localtime",
                                 "right/UTC", "../etc/passwd", "+02:00"])
def test_invalid_time_zones(bad: str) -> None:
    reject(row(tz=bad), "tz", repr(bad), "IANA")


@pytest.mark.parametrize("good", ["UTC", "Europe/Paris", "America/Argentina/Buenos_Aires",
                                  "Etc/GMT+5"])
def test_valid_time_zones(good: str) -> None:
    assert order_from_fields(row(tz=good)).order.tz == good


@pytest.mark.parametrize(("given", "stored"), [("en", "en"), ("EN", "en"), ("de_AT", "de_AT"),
                                               ("pt-br", "pt_BR"), ("es_419", "es_419"),
                                               ("iw", "he")])
def test_locales_normalised(given: str, stored: str) -> None:
    assert order_from_fields(row(locale=given)).order.locale == stored


@pytest.mark.parametrize("bad", ["xx", "en_ZZ", "und", "english", "en_US_POSIX", "e"])
def test_invalid_locales(bad: str) -> None:
    reject(row(locale=bad), "locale", repr(bad))


def test_invalid_status_and_channel() -> None:
    reject(row(status="shipped"), "status", "received")
    reject(row(channels="email,sms"), "channels", "'sms'")


def test_name_control_characters_and_length() -> None:
    v = order_from_fields(row(name="Ann\x00Lee\n" + "x" * 300))
    assert v.order.name is not None
    assert "\x00" not in v.order.name and "\n" not in v.order.name
    assert len(v.order.name) == 200


def test_lone_surrogate_in_name_is_replaced() -> None:
    name = order_from_fields(row(name="A\udc80z")).order.name
    assert name is not None
    name.encode("utf-8")  # storable


@pytest.mark.parametrize("carrier", CARRIERS)
def test_valid_number_with_explicit_carrier(carrier: str) -> None:
    rng = random.Random(f"ok-{carrier}")
    for _ in range(20):
        n = numbers.generate(carrier, rng)
        v = order_from_fields(row(carrier=carrier.upper(), tracking=n.lower()))
        assert v.warnings == ()
        assert [(s.carrier, s.tracking_number) for s in v.order.shipments] == [(carrier, n)]


@pytest.mark.parametrize("carrier", CARRIERS)
def test_failed_check_digit_is_a_warning(carrier: str) -> None:
    rng = random.Random(f"bad-{carrier}")
    for _ in range(10):
        n = failing(carrier, rng)
        v = order_from_fields(row(carrier=carrier, tracking=n))
        assert v.order.shipments[0].tracking_number == n
        assert len(v.warnings) == 1
        assert "check digit" in v.warnings[0] and n in v.warnings[0]


@pytest.mark.parametrize(("carrier", "number"), [
    ("ups", "1Z12345"),             # too short
    ("ups", "1Z999AA1012345678!"),  # bad character
    ("fedex", "12345"),
    ("dhl", "ABCDEFGHIJ"),
    ("usps", "9400"),
])
def test_implausible_number_rejects(carrier: str, number: str) -> None:
    reject(row(carrier=carrier, tracking=number), "tracking", "not a plausible", carrier)


def test_number_of_another_carrier_is_implausible() -> None:
    rng = random.Random(3)
    n = unique_to("ups", rng)
    reject(row(carrier="dhl", tracking=n), "tracking", "not a plausible dhl")


def test_unknown_carrier() -> None:
    reject(row(carrier="acme", tracking="1Z999AA10123456784"), "carrier", "'acme'", "ups")


def test_carrier_without_number() -> None:
    reject(row(carrier="ups"), "tracking", "required")


@pytest.mark.parametrize("carrier", CARRIERS)
def test_detects_carrier_when_unambiguous(carrier: str) -> None:
    rng = random.Random(f"detect-{carrier}")
    n = unique_to(carrier, rng)
    s, warnings = shipment_from_fields(None, n)
    assert (s.carrier, s.tracking_number, warnings) == (carrier, n, [])


def test_detection_with_failed_check_digit_of_one_carrier_warns() -> None:
    rng = random.Random(11)
    n = unique_to("ups", rng, fail=True)
    s, warnings = shipment_from_fields(None, n)
    assert s.carrier == "ups"
    assert len(warnings) == 1 and "check digit" in warnings[0]


def test_ambiguous_number_asks_for_the_carrier() -> None:
    # A 20-digit number starting 00 reads as DHL Paket (no check digit) and as USPS 20-digit.
    rng = random.Random(5)
    while True:
        n = "00" + "".join(rng.choices("0123456789", k=18))
        carriers = {c.carrier for c in detect.detect(n) if c.check_digit_ok is not False}
        if len(carriers) > 1:
            break
    err = reject(row(tracking=n), "carrier", "could be", "give the carrier explicitly")
    for carrier in carriers:
        assert carrier in str(err)
    # The explicit carrier wins.
    assert order_from_fields(row(carrier="dhl", tracking=n)).order.shipments[0].carrier == "dhl"


def test_no_format_matches() -> None:
    reject(row(tracking="HELLO"), "tracking", "matches no known carrier")


def test_extra_shipments_from_json() -> None:
    rng = random.Random(9)
    a, b = numbers.generate("fedex", rng), numbers.generate("usps", rng)
    v = order_from_fields(row(carrier="fedex", tracking=a,
                              shipments=[{"carrier": "usps", "tracking": b}]))
    assert [(s.carrier, s.tracking_number) for s in v.order.shipments] == [("fedex", a),
                                                                          ("usps", b)]
    with pytest.raises(InputError, match=r"^shipments\[0\]\.tracking: '12' is not a plaus"):
        order_from_fields(row(shipments=[{"carrier": "usps", "tracking": "12"}]))
    with pytest.raises(InputError, match=r"^shipments\[0\]\.carrier: unknown carrier"):
        order_from_fields(row(shipments=[{"carrier": "acme", "tracking": b}]))
    with pytest.raises(InputError, match=r"shipments\[1\]: expected an object"):
        order_from_fields(row(shipments=[{"carrier": "usps", "tracking": b}, "x"]))
    for not_a_list in ("abc", {"carrier": "usps", "tracking": b}):
        with pytest.raises(InputError, match="shipments: expected a list"):
            order_from_fields(row(shipments=not_a_list))


def test_fields_are_the_documented_columns() -> None:
    for column in ("order", "email", "name", "locale", "tz", "promised", "carrier",
                   "tracking", "status"):
        assert column in FIELDS
