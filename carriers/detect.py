"""Tracking-number detection: which carriers and formats a number can belong to, and whether its
check digit holds. Pure (standard library only, no I/O); facts come from reference/carriers.md §8,
which summarises repo jkeen/tracking_number_data (``couriers/*.json``, ``CHECKSUM_ALGORITHMS.md``).

Detection is a fallback: the carrier chosen at label time always wins, and a number is never
rejected on its check digit alone (real numbers that fail their check exist, §8.3). Ambiguity is
returned as several candidates, never resolved silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = [
    "FORMATS",
    "Candidate",
    "carrier_of",
    "check_digit_ok",
    "detect",
    "formats_for",
    "has_check_digit",
    "mod7",
    "mod10",
    "normalise",
    "plausible",
    "s10",
    "weighted_mod",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """One way to read a tracking number: the carrier, the format id (one of ``FORMATS``) and
    whether the format's check digit holds (``None`` when the format has no check digit)."""

    carrier: str
    format: str
    check_digit_ok: bool | None


# ---------------------------------------------------------------------------------------------
# The generic algorithms (§8.1). Callers pass only ASCII digits/letters (the matchers guarantee it).


def _value(char: str) -> int:
    # Letters map to (ASCII - 3) mod 10, so A-H -> 2-9, I-R -> 0-9, S-Z -> 0-7 (UPS 1Z serials).
    return int(char) if "0" <= char <= "9" else (ord(char) - 3) % 10


def mod10(serial: str, *, evens: int = 1, odds: int = 1, reverse: bool = False) -> int:
    """The data set's parameterised mod 10: 0-based even/odd positions weighted ``evens``/``odds``
    (after reversing if ``reverse``), products summed without digit-summing (this is not Luhn);
    the check digit is (10 - sum mod 10) mod 10."""
    chars = serial[::-1] if reverse else serial
    total = sum(_value(c) * (odds if i % 2 else evens) for i, c in enumerate(chars))
    return (10 - total % 10) % 10


def weighted_mod(
    serial: str, weights: tuple[int, ...], modulo1: int = 11, modulo2: int = 10
) -> int:
    """sum_product_with_weightings_and_modulo: (Σ digit·weight mod ``modulo1``) mod ``modulo2``."""
    return sum(int(d) * w for d, w in zip(serial, weights, strict=True)) % modulo1 % modulo2


def mod7(serial: str) -> int:
    """DHL Express: the serial read as one integer, mod 7."""
    return int(serial) % 7


def s10(serial: str) -> int:
    """UPU S10 on the 8 serial digits: weights 8,6,4,2,3,5,9,7; r = sum mod 11; 11 - r, except
    r = 0 gives 5 and r = 1 gives 0."""
    r = sum(int(d) * w for d, w in zip(serial, (8, 6, 4, 2, 3, 5, 9, 7), strict=True)) % 11
    return {0: 5, 1: 0}.get(r, 11 - r)


W317 = (3, 1, 7) * 4  # FedEx 12-digit and ASTRA serials (11 digits)
W173 = (1, 7, 3) * 5  # FedEx 34-digit serials (13 digits)

# ---------------------------------------------------------------------------------------------
# Format matchers. Each returns one entry per way the (normalised) number parses: the check
# result of that parse, or None when the format has no check digit. Empty list = no match.

Parses = list[bool | None]


def _rx(pattern: str) -> Callable[[str], re.Match[str] | None]:
    return re.compile(pattern, re.ASCII).fullmatch


_DIGITS = _rx(r"[0-9]+")


def _digit_check(pattern: str, check: Callable[[re.Match[str]], bool]) -> Callable[[str], Parses]:
    """A format whose regex has groups ``s`` (serial) and ``c`` (check digit)."""
    match = _rx(pattern)

    def matcher(n: str) -> Parses:
        m = match(n)
        return [check(m)] if m else []

    return matcher


def _shape(pattern: str) -> Callable[[str], Parses]:
    """A format with no check digit: shape only."""
    match = _rx(pattern)
    return lambda n: [None] if match(n) else []


def _mod10(pattern: str, *, evens: int = 1, odds: int = 1) -> Callable[[str], Parses]:
    return _digit_check(pattern, lambda m: mod10(m["s"], evens=evens, odds=odds) == int(m["c"]))


def _weighted(pattern: str, weights: tuple[int, ...]) -> Callable[[str], Parses]:
    return _digit_check(pattern, lambda m: weighted_mod(m["s"], weights) == int(m["c"]))


def _routed(n: str) -> Iterator[str]:
    """The number itself and, when it starts with a ``420`` + ZIP5 or ZIP5+4 routing prefix,
    what follows it. Routing is never part of a USPS checksum (§8.4)."""
    yield n
    if n.startswith("420"):
        yield n[8:]
        yield n[12:]


def _usps_legacy(n: str) -> Parses:
    # Optional 420+ZIP, optional 91 + ServiceType(2) + MID(9) + package(8) + check; the checksum
    # runs over the serial with "91" prepended when it does not already start with 91.
    out: Parses = []
    if _DIGITS(n):
        for core in _routed(n):
            if len(core) == 20 or (len(core) == 22 and core.startswith("91")):
                serial = core[:-1] if core.startswith("91") else "91" + core[:-1]
                out.append(mod10(serial, evens=3) == int(core[-1]))
    return out


# AI 94, ServiceType(3), MID (9 digits starting 9, or 6 starting 0-8), package 15/14/11/10/7, check.
_IMPB_N = _rx(
    r"94[0-9]{3}(?:9[0-9]{8}|[0-8][0-9]{5})(?:[0-9]{15}|[0-9]{14}|[0-9]{11}|[0-9]{10}|[0-9]{7})[0-9]"
)
# AI 92 takes a 9-digit MID starting 9, AI 93 a 6-digit MID starting 0-8, AI 95 (retail) either;
# the package id (14/11/10/7) then brings the number to 22 or 26 digits (§8.4).
_IMPB_C = _rx(r"92[0-9]{3}9[0-9]+|93[0-9]{3}[0-8][0-9]+|95[0-9]+")


def _usps_impb_n(n: str) -> Parses:
    # Serial = AI to before the check; mod 10 on the reversed serial, evens x3 (GS1 style).
    if not _DIGITS(n):
        return []
    return [mod10(c[:-1], evens=3, reverse=True) == int(c[-1]) for c in _routed(n) if _IMPB_N(c)]


def _usps_impb_c(n: str) -> Parses:
    if not _DIGITS(n):
        return []
    return [
        mod10(c[:-1], evens=3) == int(c[-1])
        for c in _routed(n)
        if len(c) in (22, 26) and _IMPB_C(c)
    ]


def _impb_alias(n: str) -> Parses:
    # UPS SurePost / Mail Innovations and FedEx Ground Economy hand over USPS IMpb numbers (§8.6).
    return _usps_impb_n(n) + _usps_impb_c(n)


# ISO 3166-1 alpha-2. The data set accepts only countries with a known UPU postal operator (a
# subset); we accept every ISO country so a small operator is never missed (detection, not proof).
_ISO_3166 = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO
    DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU
    GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW
    KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU
    MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW
    PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF
    TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA
    ZM ZW"""
_COUNTRIES = frozenset(_ISO_3166.split())
_S10 = _rx(r"[A-Z]{2}(?P<s>[0-9]{8})(?P<c>[0-9])(?P<cc>[A-Z]{2})")


def _usps_s10(n: str) -> Parses:
    m = _S10(n)
    if not m or m["cc"] not in _COUNTRIES:
        return []
    return [s10(m["s"]) == int(m["c"])]


_DHL_EXPRESS = _rx(r"(?P<s>[0-9]{9,10})(?P<c>[0-9])")
_DHL_ECOMMERCE = _rx(r"(?:GM|LX|RX|UV|CN|SG|TH|IN|HK|MY)(?P<rest>[0-9A-Z]{10,39})")


def _dhl_express(n: str) -> Parses:
    m = _DHL_EXPRESS(n)
    return [mod7(m["s"]) == int(m["c"])] if m else []


def _dhl_ecommerce(n: str) -> Parses:
    m = _DHL_ECOMMERCE(n)
    return [None] if m and any(c.isdigit() for c in m["rest"]) else []


@dataclass(frozen=True, slots=True)
class _Spec:
    format: str
    carrier: str
    has_check: bool
    match: Callable[[str], Parses]


# Order = tie-break priority (see ``detect``): the carrier's own, confirmed formats first; formats
# the reference marks unconfirmed, and IMpb numbers seen through a consolidator, last.
_SPECS: tuple[_Spec, ...] = (
    # UPS 1Z: 1Z + ShipperId(6) + ServiceType(2) + PackageId(7), all alnum, + check digit.
    _Spec("ups_1z", "ups", True, _mod10(r"1Z(?P<s>[0-9A-Z]{15})(?P<c>[0-9])", odds=2)),
    _Spec("ups_waybill", "ups", True, _mod10(r"[AHJKTV](?P<s>[0-9]{9})(?P<c>[0-9])", odds=2)),
    _Spec("fedex_12", "fedex", True, _weighted(r"(?P<s>[0-9]{11})(?P<c>[0-9])", W317[:11])),
    _Spec("fedex_15", "fedex", True, _mod10(r"(?P<s>[0-9]{14})(?P<c>[0-9])", odds=3)),
    # SSCC-18: container type 00 carton, 01 pallet, 02 larger, 04 internal; checksum over the 15.
    _Spec("fedex_18", "fedex", True, _mod10(r"0[0124](?P<s>[0-9]{15})(?P<c>[0-9])", evens=3)),
    # Ground 96: 96 + SCNC(2) + ServiceType(3) + ShipperId(7) + PackageId(7) + check.
    _Spec("fedex_22", "fedex", True, _mod10(r"96[0-9]{5}(?P<s>[0-9]{14})(?P<c>[0-9])", odds=3)),
    # Express 34: first digit 0-8 + 14 + DestinationZip(5) + serial(13) + check.
    _Spec(
        "fedex_34",
        "fedex",
        True,
        _weighted(r"[0-8][0-9]{19}(?P<s>[0-9]{13})(?P<c>[0-9])", W173[:13]),
    ),
    # Ground GSN: 96 + SCNC(2) + 5 + GSN(10) + 1 + serial(13) + check.
    _Spec(
        "fedex_34_gsn",
        "fedex",
        True,
        _weighted(r"96[0-9]{18}(?P<s>[0-9]{13})(?P<c>[0-9])", W173[:13]),
    ),
    # ASTRA: 3 + 5 + 3 + 7 + serial(11) + check + 4.
    _Spec(
        "fedex_32_astra",
        "fedex",
        True,
        _weighted(r"3[0-9]{15}(?P<s>[0-9]{11})(?P<c>[0-9])[0-9]{4}", W317[:11]),
    ),
    _Spec("usps_impb_n", "usps", True, _usps_impb_n),
    _Spec("usps_impb_c", "usps", True, _usps_impb_c),
    _Spec("usps_legacy", "usps", True, _usps_legacy),
    # USPS 20: ServiceType(2) + MID(9) + package(8) + check, without the 91 AI.
    _Spec("usps_20", "usps", True, _mod10(r"(?P<s>[0-9]{19})(?P<c>[0-9])", evens=3)),
    # International items are tracked by USPS under their UPU S10 number whatever the issuing post.
    _Spec("usps_s10", "usps", True, _usps_s10),
    _Spec("dhl_express", "dhl", True, _dhl_express),
    _Spec("dhl_express_piece", "dhl", False, _shape(r"J[A-Z]{2,3}[0-9]{9,10}")),
    _Spec("dhl_ecommerce", "dhl", False, _dhl_ecommerce),
    _Spec("dhl_ecommerce_14", "dhl", False, _shape(r"[0-9]{14}")),
    # [unconfirmed] §8.3: a "20-digit FedEx number" may be the SSCC-18 printed with its 00 AI.
    _Spec(
        "fedex_20_sscc", "fedex", True, _mod10(r"000[0124](?P<s>[0-9]{15})(?P<c>[0-9])", evens=3)
    ),
    # [unconfirmed] SmartPost/Ground Economy printed without its 92 AI: ServiceType(3) + MID(9) +
    # package(7) + check, checksum over "92" + serial (jkeen fedex.json before v2, "SmartPost").
    _Spec(
        "fedex_ground_economy_20",
        "fedex",
        True,
        _digit_check(
            r"(?P<s>[0-9]{19})(?P<c>[0-9])", lambda m: mod10("92" + m["s"], evens=3) == int(m["c"])
        ),
    ),
    # [unconfirmed format rules] DHL Paket 20-digit SSCC-style numbers (00340434292135100186).
    _Spec("dhl_paket_20", "dhl", False, _shape(r"00[0-9]{18}")),
    # Roadie numbers accepted by UPS Track Alert: 1R + 14 or 26 alnum, no known checksum.
    _Spec("ups_roadie", "ups", False, _shape(r"1R(?:[0-9A-Z]{14}|[0-9A-Z]{26})")),
    _Spec("fedex_ground_economy", "fedex", True, _impb_alias),
    _Spec("ups_mail_innovations", "ups", True, _impb_alias),
)
_BY_FORMAT = {spec.format: spec for spec in _SPECS}

FORMATS: tuple[str, ...] = tuple(spec.format for spec in _SPECS)
"""Every format id, in tie-break priority order."""

# Longest real format is 4 + 34 digits (420 + ZIP+4 + 22); anything much longer is not a number.
_MAX_LEN = 64


def normalise(number: str) -> str:
    """``number`` without any whitespace (the data set's regexes allow spaces anywhere) and in
    upper case. Dashes are kept: the reference allows only spaces inside a number."""
    return "".join(number.split()).upper()


def carrier_of(format: str) -> str:
    """The carrier a format id belongs to (KeyError for an unknown id)."""
    return _BY_FORMAT[format].carrier


def formats_for(carrier: str) -> tuple[str, ...]:
    """The format ids of ``carrier`` in priority order (empty for an unknown carrier)."""
    return tuple(spec.format for spec in _SPECS if spec.carrier == carrier)


def has_check_digit(format: str) -> bool:
    """Whether a format carries a check digit (KeyError for an unknown id)."""
    return _BY_FORMAT[format].has_check


_CHECK_RANK = {True: 0, None: 1, False: 2}


def detect(number: str) -> list[Candidate]:
    """Every (carrier, format) the number matches after ``normalise``, best first; ``[]`` if none.

    Ranking: a candidate whose check digit passes comes first (a random string passes a mod-10
    check only one time in ten, so a pass is real evidence); then candidates of formats with no
    check digit (a shape match, neutral evidence); then candidates whose check digit fails (the
    shape fits but the check speaks against it; kept because real numbers sometimes fail, §8.3).
    Ties keep the order of ``FORMATS``: confirmed native formats before unconfirmed ones and
    before consolidator readings of a USPS IMpb (UPS Mail Innovations, FedEx Ground Economy).
    When a format parses several ways (USPS routing prefixes) one passing parse is enough.
    Never raises on any string.
    """
    n = normalise(number)
    if not n or len(n) > _MAX_LEN:
        return []
    found: list[Candidate] = []
    for spec in _SPECS:
        parses = spec.match(n)
        if not parses:
            continue
        # A format's parses are all None (no check digit) or all bools; one pass is enough.
        check = True if True in parses else parses[0]
        found.append(Candidate(carrier=spec.carrier, format=spec.format, check_digit_ok=check))
    # sorted() is stable, so equal ranks keep FORMATS order.
    return sorted(found, key=lambda c: _CHECK_RANK[c.check_digit_ok])


def plausible(carrier: str, number: str) -> bool:
    """Whether ``number`` has the length and characters of ANY format of ``carrier``. The check
    digit is not required: an explicitly named carrier is never rejected on checksum alone.
    False for an unknown carrier."""
    return any(c.carrier == carrier for c in detect(number))


def check_digit_ok(carrier: str, number: str) -> bool | None:
    """The check-digit verdict for ``carrier``'s formats that ``number`` matches: True if any of
    them passes, False if some check digit applies and none passes, None if no format with a
    check digit matches (including no match at all)."""
    checks = {c.check_digit_ok for c in detect(number) if c.carrier == carrier}
    if True in checks:
        return True
    return False if False in checks else None
