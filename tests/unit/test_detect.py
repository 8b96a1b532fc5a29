"""Table-driven tests for tracking-number detection and tracking links.

Valid numbers are the examples of reference/carriers.md §8 (its worked sums are re-done here by
hand) plus jkeen/tracking_number_data test numbers quoted there; invalid ones change a check digit.
"""

from __future__ import annotations

import pytest

import carriers
from carriers import detect, links
from carriers.detect import Candidate

# ---------------------------------------------------------------------------------------------
# The algorithms against the reference's worked examples (§8.2-§8.5), computed by hand.


def test_mod10_ups_worked_example() -> None:
    # 999AA1012345678: A=2; weights 1,2,1,2...; products sum 96 -> (10 - 6) mod 10 = 4.
    assert detect.mod10("999AA1012345678", evens=1, odds=2) == 4


def test_letter_values() -> None:
    # (ASCII - 3) mod 10: A -> 2, I -> 0, S -> 0, Z -> 7; a lone value v gives check (10 - v) % 10.
    assert [detect.mod10(c) for c in "AISZ"] == [8, 0, 0, 3]


def test_fedex_12_worked_example() -> None:
    # 1..9,0,1 x 3,1,7,... = 178; 178 mod 11 = 2; 2 mod 10 = 2.
    assert detect.weighted_mod("12345678901", detect.W317[:11]) == 2


def test_usps_impb_worked_example() -> None:
    # Reversed serial of 9400111206206406260787, weights 3,1,3,1 from the right: sum 123 -> 7.
    assert detect.mod10("940011120620640626078", evens=3, reverse=True) == 7


def test_s10_worked_example_and_special_remainders() -> None:
    # 1*8+2*6+3*4+4*2+5*3+6*5+7*9+8*7 = 204; 204 mod 11 = 6; 11 - 6 = 5.
    assert detect.s10("12345678") == 5
    # Special remainders: r = 0 gives 5, r = 1 gives 0; otherwise 11 - r.
    assert detect.s10("00000000") == 5  # sum 0
    assert detect.s10("20000001") == 0  # 2*8 + 1*7 = 23, 23 mod 11 = 1
    assert detect.s10("00000003") == 1  # 3*7 = 21, 21 mod 11 = 10
    assert detect.s10("00000010") == 2  # 1*9 = 9


def test_mod7_worked_examples() -> None:
    assert detect.mod7("826471554") == 6
    assert detect.mod7("777777777") == 0


# ---------------------------------------------------------------------------------------------
# Known-valid numbers: (number, carrier, format), all from reference §8.

VALID = [
    ("1Z999AA10123456784", "ups", "ups_1z"),
    ("1ZA123450312345678", "ups", "ups_1z"),
    ("1ZCIETST0111111114", "ups", "ups_1z"),
    ("1ZCIETST0422222228", "ups", "ups_1z"),
    ("1Z1442YY7229014688", "ups", "ups_1z"),
    ("K1234567895", "ups", "ups_waybill"),
    ("123456789012", "fedex", "fedex_12"),
    ("128667043726", "fedex", "fedex_12"),
    ("776094337676", "fedex", "fedex_12"),
    ("400123456785", "fedex", "fedex_12"),
    ("012345678901231", "fedex", "fedex_15"),
    ("612999956693529", "fedex", "fedex_15"),
    ("9611020123456776543218", "fedex", "fedex_22"),
    ("1001921334250001000300123456789012", "fedex", "fedex_34"),
    ("9400111206206406260787", "usps", "usps_impb_n"),
    ("9400191234567812345679", "usps", "usps_impb_n"),
    ("420100019400191234567812345679", "usps", "usps_impb_n"),
    ("92612912345678000000000016", "usps", "usps_impb_c"),
    ("9361289673090019555035", "usps", "usps_impb_c"),
    ("420117419361289691090029427113", "usps", "usps_impb_c"),
    ("92419900000033499522966220", "usps", "usps_impb_c"),
    ("03071790000523483741", "usps", "usps_20"),
    ("EA123456785US", "usps", "usps_s10"),
    ("RR201506173US", "usps", "usps_s10"),
    ("LZ000000014US", "usps", "usps_s10"),
    ("7777777770", "dhl", "dhl_express"),
    ("8264715546", "dhl", "dhl_express"),
    ("1234567891", "dhl", "dhl_express"),
    ("12345678903", "dhl", "dhl_express"),
]

# Formats without a check digit: shape only (check_digit_ok None).
SHAPE_ONLY = [
    ("GM2951173225174494", "dhl", "dhl_ecommerce"),
    ("60120172242323", "dhl", "dhl_ecommerce_14"),
    ("JJD0099999999", "dhl", "dhl_express_piece"),
    ("JVGL0999999990", "dhl", "dhl_express_piece"),
    ("00340434292135100186", "dhl", "dhl_paket_20"),
    ("1R12345678901234", "ups", "ups_roadie"),
]

# Right shape, wrong check digit.
BAD_CHECK = [
    ("1Z999AA10123456785", "ups", "ups_1z"),
    ("K1234567894", "ups", "ups_waybill"),
    ("794644790138", "fedex", "fedex_12"),  # §8.3: a third-party "example" that fails
    ("012345678901232", "fedex", "fedex_15"),
    ("9611020123456776543217", "fedex", "fedex_22"),
    ("9400111206206406260788", "usps", "usps_impb_n"),
    ("9361289673090019555036", "usps", "usps_impb_c"),
    ("03071790000523483742", "usps", "usps_20"),
    ("EA123456784US", "usps", "usps_s10"),
    ("1234567890", "dhl", "dhl_express"),  # §8.5: "note 1234567890 fails"
]

NO_MATCH = [
    "",
    "   ",
    "hello world",
    "1Z999AA1012345678",  # 17 characters
    "2Z999AA10123456784",
    "RB123456785XX",  # S10 shape, unknown country (the data set rejects it for that)
    "92055124161170148800000274",  # AI 92 with a MID not starting 9 (§8.4 caution)
    "XJD0099999998",
    "123",
    "1Z999AA1012345678X",  # check digit must be a digit
    "GMABCDEFGHIJKL",  # DHL eCommerce needs at least one digit
]


def _ids(rows: list[tuple[str, str, str]]) -> list[str]:
    return [f"{fmt}:{n}" for n, _, fmt in rows]


@pytest.mark.parametrize(("number", "carrier", "fmt"), VALID, ids=_ids(VALID))
def test_valid_number_detected_with_passing_check(number: str, carrier: str, fmt: str) -> None:
    found = detect.detect(number)
    expected = Candidate(carrier=carrier, format=fmt, check_digit_ok=True)
    assert expected in found
    assert found[0].check_digit_ok is True
    assert detect.check_digit_ok(carrier, number) is True
    assert detect.plausible(carrier, number)


@pytest.mark.parametrize(("number", "carrier", "fmt"), SHAPE_ONLY, ids=_ids(SHAPE_ONLY))
def test_shape_only_formats(number: str, carrier: str, fmt: str) -> None:
    assert Candidate(carrier=carrier, format=fmt, check_digit_ok=None) in detect.detect(number)
    assert detect.plausible(carrier, number)
    assert not detect.has_check_digit(fmt)


@pytest.mark.parametrize(("number", "carrier", "fmt"), BAD_CHECK, ids=_ids(BAD_CHECK))
def test_failing_check_digit_is_still_a_candidate(number: str, carrier: str, fmt: str) -> None:
    found = detect.detect(number)
    assert Candidate(carrier=carrier, format=fmt, check_digit_ok=False) in found
    # An explicit carrier is never rejected on checksum alone.
    assert detect.plausible(carrier, number)
    assert detect.check_digit_ok(carrier, number) is False


@pytest.mark.parametrize("number", NO_MATCH)
def test_no_format_matches(number: str) -> None:
    assert detect.detect(number) == []
    for carrier in carriers.NAMES:
        assert not detect.plausible(carrier, number)
        assert detect.check_digit_ok(carrier, number) is None


# ---------------------------------------------------------------------------------------------
# Whitespace and case.


@pytest.mark.parametrize(
    "spelling",
    [
        "1Z 999 AA1 01 2345 6784",
        " 1z999aa10123456784 ",
        "1Z999AA1\t0123\n456784",
        "1Z\u00a0999AA10123456784",  # no-break space from a copied web page
        "\u20031 Z 9 9 9 A A 1 0 1 2 3 4 5 6 7 8 4\u2003",
    ],
)
def test_whitespace_and_case_are_ignored(spelling: str) -> None:
    assert detect.normalise(spelling) == "1Z999AA10123456784"
    assert detect.detect(spelling) == detect.detect("1Z999AA10123456784")


def test_data_set_spaced_numbers() -> None:
    # jkeen test numbers written with spaces everywhere.
    assert detect.detect(" 0 3 0 7   1 7 9 0   0 0 0 5   2 3 4 8   3 7 4 1 ")[0].format == "usps_20"
    assert detect.detect("GM 2 9 5 117 32 25 1 7 44 9 4")[0].format == "dhl_ecommerce"


def test_dashes_are_not_stripped() -> None:
    # The reference allows only spaces inside a number.
    assert detect.normalise("1234-5678-9012") == "1234-5678-9012"
    assert detect.detect("1234-5678-9012") == []


# ---------------------------------------------------------------------------------------------
# Ambiguity is reported, ranked, never resolved silently.


def _pairs(number: str) -> list[tuple[str, str, bool | None]]:
    return [(c.carrier, c.format, c.check_digit_ok) for c in detect.detect(number)]


def test_impb_is_usps_first_then_consolidators() -> None:
    assert _pairs("9400111206206406260787") == [
        ("usps", "usps_impb_n", True),
        ("fedex", "fedex_ground_economy", True),
        ("ups", "ups_mail_innovations", True),
    ]
    for carrier in ("usps", "fedex", "ups"):
        assert detect.plausible(carrier, "9400111206206406260787")
    assert not detect.plausible("dhl", "9400111206206406260787")


def test_twenty_digits_check_digit_picks_the_reading() -> None:
    # usps_20, usps_legacy (91 prepended) and Ground Economy (92 prepended) share the shape; the
    # prepended AIs shift the sum by 28 and 29, so at most one check digit can pass.
    assert _pairs("03071790000523483741") == [
        ("usps", "usps_20", True),
        ("usps", "usps_legacy", False),
        ("fedex", "fedex_ground_economy_20", False),
    ]
    # jkeen's old FedEx SmartPost sample, an "invalid" USPS 91 number in the same data set.
    assert _pairs("61299998820821171811")[0] == ("fedex", "fedex_ground_economy_20", True)
    # jkeen's legacy sample without the 91 AI.
    assert _pairs("71969010756003077385")[0] == ("usps", "usps_legacy", True)


def test_ranking_pass_then_no_check_then_fail() -> None:
    # LX... is both an S10 and a DHL eCommerce shape.
    assert _pairs("LX123456785CN") == [
        ("usps", "usps_s10", True),
        ("dhl", "dhl_ecommerce", None),
    ]
    assert _pairs("LX123456784CN") == [
        ("dhl", "dhl_ecommerce", None),
        ("usps", "usps_s10", False),
    ]


def test_dhl_paket_sscc_is_ambiguous_with_usps_20() -> None:
    carriers_found = {c for c, _, _ in _pairs("00340434292135100186")}
    assert {"usps", "dhl"} <= carriers_found


def test_routed_impb_34_also_fits_fedex_express_34() -> None:
    found = _pairs("4201002334249200190132607600833457")
    assert found[0] == ("usps", "usps_impb_c", True)
    assert ("fedex", "fedex_34", False) in found
    assert found[-1][2] is False


def test_check_digit_ok_per_carrier() -> None:
    assert detect.check_digit_ok("usps", "9400111206206406260787") is True
    assert detect.check_digit_ok("dhl", "GM2951173225174494") is None
    assert detect.check_digit_ok("fedex", "1Z999AA10123456784") is None
    assert detect.check_digit_ok("usps", "61299998820821171811") is False
    assert detect.check_digit_ok("fedex", "61299998820821171811") is True


def test_unknown_carrier() -> None:
    assert not detect.plausible("royalmail", "123456789012")
    assert detect.check_digit_ok("royalmail", "123456789012") is None
    assert detect.formats_for("royalmail") == ()


# ---------------------------------------------------------------------------------------------
# Format table.


def test_formats_are_unique_and_belong_to_registered_carriers() -> None:
    assert len(set(detect.FORMATS)) == len(detect.FORMATS)
    assert {detect.carrier_of(f) for f in detect.FORMATS} == set(carriers.NAMES)
    for carrier in carriers.NAMES:
        assert all(detect.carrier_of(f) == carrier for f in detect.formats_for(carrier))
    assert sum(len(detect.formats_for(c)) for c in carriers.NAMES) == len(detect.FORMATS)


# ---------------------------------------------------------------------------------------------
# Tracking links (reference §3.7, §4.7, §5.7, §6.7).


@pytest.mark.parametrize(
    ("carrier", "number", "url"),
    [
        (
            "ups",
            "1Z999AA10123456784",
            "https://www.ups.com/track?loc=en_US&tracknum=1Z999AA10123456784",
        ),
        ("fedex", "123456789012", "https://www.fedex.com/fedextrack/?trknbr=123456789012"),
        (
            "dhl",
            "8264715546",
            "https://www.dhl.com/us-en/home/tracking/tracking-parcel.html?submit=1&tracking-id=8264715546",
        ),
        (
            "usps",
            "9400111206206406260787",
            "https://tools.usps.com/go/TrackConfirmAction?tLabels=9400111206206406260787",
        ),
    ],
)
def test_tracking_url(carrier: str, number: str, url: str) -> None:
    assert links.tracking_url(carrier, number) == url
    # Spaced and lower-case input gives the same link.
    assert links.tracking_url(carrier, " ".join(number.lower())) == url


def test_tracking_url_every_carrier_has_a_page() -> None:
    assert set(links.TEMPLATES) == set(carriers.NAMES)


def test_tracking_url_quotes_odd_input() -> None:
    url = links.tracking_url("fedex", "12/34&x=1#y")
    assert url == "https://www.fedex.com/fedextrack/?trknbr=12%2F34%26X%3D1%23Y"


@pytest.mark.parametrize(("carrier", "number"), [("royalmail", "123"), ("ups", "  \t ")])
def test_tracking_url_rejects(carrier: str, number: str) -> None:
    with pytest.raises(ValueError):
        links.tracking_url(carrier, number)
