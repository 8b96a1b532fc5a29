"""Synthetic tracking numbers for the sandbox, the demo and tests: ``generate`` builds a number of a
given carrier/format with a correct check digit, ``corrupt`` breaks one digit so the check fails.
Pure: standard library plus ``carriers.detect``; randomness comes only from the ``rng`` passed in,
so a seeded ``random.Random`` gives reproducible numbers. Structures: reference/carriers.md §8.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

from carriers import detect

__all__ = ["corrupt", "generate"]

_ALNUM = string.digits + string.ascii_uppercase
_UPS_SERVICES = ("01", "02", "03", "12", "13", "15", "42", "66", "72", "YW")
_DHL_ECOMMERCE_PREFIXES = ("GM", "LX", "RX", "UV", "CN", "SG", "TH", "IN", "HK", "MY")
# Picked only on request: formats the reference marks unconfirmed, and USPS IMpb numbers read as
# another carrier's (a "UPS number" from the sandbox should look like one).
_NOT_BY_DEFAULT = frozenset(
    {"fedex_20_sscc", "fedex_ground_economy_20", "fedex_ground_economy", "ups_mail_innovations"}
)


def _digits(rng: random.Random, k: int) -> str:
    return "".join(rng.choices(string.digits, k=k))


def _alnum(rng: random.Random, k: int) -> str:
    return "".join(rng.choices(_ALNUM, k=k))


def _letters(rng: random.Random, k: int) -> str:
    return "".join(rng.choices(string.ascii_uppercase, k=k))


def _routing(rng: random.Random) -> str:
    # Optional 420 + ZIP5 or ZIP5+4 routing prefix (never part of the checksum).
    return rng.choice(("", "420" + _digits(rng, 5), "420" + _digits(rng, 9)))


def _ups_1z(rng: random.Random) -> str:
    serial = _alnum(rng, 6) + rng.choice(_UPS_SERVICES) + _alnum(rng, 7)
    return f"1Z{serial}{detect.mod10(serial, odds=2)}"


def _ups_waybill(rng: random.Random) -> str:
    serial = _digits(rng, 9)
    return f"{rng.choice('AHJKTV')}{serial}{detect.mod10(serial, odds=2)}"


def _ups_roadie(rng: random.Random) -> str:
    return "1R" + _alnum(rng, rng.choice((14, 26)))


def _fedex_12(rng: random.Random) -> str:
    serial = _digits(rng, 11)
    return f"{serial}{detect.weighted_mod(serial, detect.W317[:11])}"


def _fedex_15(rng: random.Random) -> str:
    serial = _digits(rng, 14)
    return f"{serial}{detect.mod10(serial, odds=3)}"


def _fedex_18(rng: random.Random) -> str:
    serial = _digits(rng, 15)
    return f"{rng.choice(('00', '01', '02', '04'))}{serial}{detect.mod10(serial, evens=3)}"


def _fedex_20_sscc(rng: random.Random) -> str:
    return "00" + _fedex_18(rng)


def _fedex_22(rng: random.Random) -> str:
    serial = _digits(rng, 14)  # ShipperId(7) + PackageId(7)
    return f"96{_digits(rng, 5)}{serial}{detect.mod10(serial, odds=3)}"


def _fedex_34(rng: random.Random) -> str:
    serial = _digits(rng, 13)
    head = str(rng.randint(0, 8)) + _digits(rng, 19)
    return f"{head}{serial}{detect.weighted_mod(serial, detect.W173[:13])}"


def _fedex_34_gsn(rng: random.Random) -> str:
    serial = _digits(rng, 13)
    return f"96{_digits(rng, 18)}{serial}{detect.weighted_mod(serial, detect.W173[:13])}"


def _fedex_32_astra(rng: random.Random) -> str:
    serial = _digits(rng, 11)
    check = detect.weighted_mod(serial, detect.W317[:11])
    return f"3{_digits(rng, 15)}{serial}{check}{_digits(rng, 4)}"


def _fedex_ground_economy_20(rng: random.Random) -> str:
    serial = _digits(rng, 19)
    return f"{serial}{detect.mod10('92' + serial, evens=3)}"


def _usps_20(rng: random.Random) -> str:
    serial = _digits(rng, 19)
    return f"{serial}{detect.mod10(serial, evens=3)}"


def _usps_legacy(rng: random.Random) -> str:
    core = rng.choice(("", "91")) + _digits(rng, 19)
    serial = core if core.startswith("91") else "91" + core
    return f"{_routing(rng)}{core}{detect.mod10(serial, evens=3)}"


def _mid(rng: random.Random, nine: bool) -> str:
    # A 9-digit Mailer ID starts with 9; a 6-digit one with 0-8.
    return "9" + _digits(rng, 8) if nine else str(rng.randint(0, 8)) + _digits(rng, 5)


def _usps_impb_n(rng: random.Random) -> str:
    serial = "94" + _digits(rng, 3) + _mid(rng, rng.random() < 0.5)
    serial += _digits(rng, rng.choice((15, 14, 11, 10, 7)))
    return f"{_routing(rng)}{serial}{detect.mod10(serial, evens=3, reverse=True)}"


def _usps_impb_c(rng: random.Random) -> str:
    ai = rng.choice(("92", "93", "95"))
    nine = ai == "92" or (ai == "95" and rng.random() < 0.5)
    serial = ai + _digits(rng, 3) + _mid(rng, nine)
    serial += _digits(rng, rng.choice((21, 25)) - len(serial))  # 22 or 26 with the check digit
    return f"{_routing(rng)}{serial}{detect.mod10(serial, evens=3)}"


def _usps_impb(rng: random.Random) -> str:
    return rng.choice((_usps_impb_n, _usps_impb_c))(rng)


def _usps_s10(rng: random.Random) -> str:
    serial = _digits(rng, 8)
    country = rng.choice(("US", "US", "CN", "GB", "DE", "CA"))
    return f"{rng.choice('ERLCHUVM')}{_letters(rng, 1)}{serial}{detect.s10(serial)}{country}"


def _dhl_express(rng: random.Random) -> str:
    serial = str(rng.randint(1, 9)) + _digits(rng, rng.choice((8, 9)))
    return f"{serial}{detect.mod7(serial)}"


def _dhl_express_piece(rng: random.Random) -> str:
    return "J" + _letters(rng, rng.choice((2, 3))) + _digits(rng, rng.choice((9, 10)))


def _dhl_ecommerce(rng: random.Random) -> str:
    rest = _alnum(rng, rng.randint(9, 38))
    return rng.choice(_DHL_ECOMMERCE_PREFIXES) + rng.choice(string.digits) + rest


_GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "ups_1z": _ups_1z,
    "ups_waybill": _ups_waybill,
    "ups_roadie": _ups_roadie,
    "ups_mail_innovations": _usps_impb,
    "fedex_12": _fedex_12,
    "fedex_15": _fedex_15,
    "fedex_18": _fedex_18,
    "fedex_20_sscc": _fedex_20_sscc,
    "fedex_22": _fedex_22,
    "fedex_34": _fedex_34,
    "fedex_34_gsn": _fedex_34_gsn,
    "fedex_32_astra": _fedex_32_astra,
    "fedex_ground_economy_20": _fedex_ground_economy_20,
    "fedex_ground_economy": _usps_impb,
    "usps_impb_n": _usps_impb_n,
    "usps_impb_c": _usps_impb_c,
    "usps_legacy": _usps_legacy,
    "usps_20": _usps_20,
    "usps_s10": _usps_s10,
    "dhl_express": _dhl_express,
    "dhl_express_piece": _dhl_express_piece,
    "dhl_ecommerce": _dhl_ecommerce,
    "dhl_ecommerce_14": lambda rng: _digits(rng, 14),
    "dhl_paket_20": lambda rng: "00" + _digits(rng, 18),
}


def generate(carrier: str, rng: random.Random, *, format: str | None = None) -> str:
    """A synthetic number of ``carrier`` (in ``format`` if given, one of ``detect.FORMATS``) with a
    correct check digit; ``detect`` reports it for that carrier and format with
    ``check_digit_ok`` True (None for the few formats that have no check digit). Without
    ``format`` one of the carrier's confirmed formats with a check digit is picked at random
    (never an unconfirmed one nor an IMpb read as UPS/FedEx). ValueError for an unknown
    carrier or a format of another carrier."""
    if format is None:
        choices = [
            f
            for f in detect.formats_for(carrier)
            if detect.has_check_digit(f) and f not in _NOT_BY_DEFAULT
        ]
        if not choices:
            raise ValueError(f"no tracking-number format known for carrier {carrier!r}")
        format = rng.choice(choices)
    elif format not in _GENERATORS or detect.carrier_of(format) != carrier:
        raise ValueError(f"format {format!r} is not a {carrier!r} format")
    return _GENERATORS[format](rng)


def corrupt(number: str, rng: random.Random) -> str:
    """``number`` with exactly one ASCII digit replaced so that every (carrier, format) whose check
    digit passed before no longer passes (it fails or no longer matches). Some single-digit
    changes slip through a check (UPS weight 2 with a change of 5, mod 7 with a change of 7,
    mod 11 landing on 0 or 10), so positions and digits are tried in random order until one
    breaks them all. ValueError if the number has no passing check digit to break."""
    passing = {(c.carrier, c.format) for c in detect.detect(number) if c.check_digit_ok}
    if not passing:
        raise ValueError("number has no passing check digit to break")
    positions = [i for i, ch in enumerate(number) if "0" <= ch <= "9"]
    rng.shuffle(positions)
    for i in positions:
        replacements = [d for d in string.digits if d != number[i]]
        rng.shuffle(replacements)
        for d in replacements:
            changed = number[:i] + d + number[i + 1 :]
            still = {(c.carrier, c.format) for c in detect.detect(changed) if c.check_digit_ok}
            if not passing & still:
                return changed
    # Unreachable for real formats: changing the check digit itself always breaks its format.
    raise ValueError("no single-digit change breaks the check digit")  # pragma: no cover
