"""Property tests for tracking-number generation and detection.

Every generated number is detected as its carrier/format with a passing check digit; corrupting
one digit breaks that check; changing a check digit, or any digit a GS1-style mod 10 covers, is
always caught; ``detect`` never raises and always returns a well-formed ranking.
"""

from __future__ import annotations

import random
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import carriers
from carriers import detect, links, numbers
from carriers.detect import Candidate

SETTINGS = settings(max_examples=200, deadline=None)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
all_formats = st.sampled_from(detect.FORMATS)
checked_formats = st.sampled_from([f for f in detect.FORMATS if detect.has_check_digit(f)])

# Where the check digit sits, counted from the end, when it is not the last character.
CHECK_FROM_END = {"usps_s10": 3, "fedex_32_astra": 5}


def _make(fmt: str, seed: int) -> str:
    return numbers.generate(detect.carrier_of(fmt), random.Random(seed), format=fmt)


@SETTINGS
@given(fmt=all_formats, seed=seeds)
def test_generated_number_is_detected_as_its_format(fmt: str, seed: int) -> None:
    carrier = detect.carrier_of(fmt)
    number = _make(fmt, seed)
    expected = True if detect.has_check_digit(fmt) else None
    found = detect.detect(number)
    assert Candidate(carrier=carrier, format=fmt, check_digit_ok=expected) in found
    assert detect.plausible(carrier, number)
    assert detect.check_digit_ok(carrier, number) in ({True} if expected else {True, None})
    assert number == detect.normalise(number)


@SETTINGS
@given(carrier=st.sampled_from(carriers.NAMES), seed=seeds)
def test_generate_without_format_passes_the_check(carrier: str, seed: int) -> None:
    number = numbers.generate(carrier, random.Random(seed))
    assert detect.check_digit_ok(carrier, number) is True
    assert links.tracking_url(carrier, number).startswith("https://")


@SETTINGS
@given(fmt=all_formats, seed=seeds, data=st.data())
def test_spaces_anywhere_do_not_change_detection(fmt: str, seed: int, data: st.DataObject) -> None:
    number = _make(fmt, seed)
    size = len(number) + 1
    gap = st.sampled_from(["", " ", "  ", "\t", "\n", "\u00a0"])
    gaps = data.draw(st.lists(gap, min_size=size, max_size=size))
    spaced = "".join(g + ch for g, ch in zip(gaps[:-1], number, strict=True)) + gaps[-1]
    assert detect.detect(spaced.lower()) == detect.detect(number)


@SETTINGS
@given(fmt=checked_formats, seed=seeds)
def test_corrupt_changes_one_digit_and_breaks_the_check(fmt: str, seed: int) -> None:
    carrier = detect.carrier_of(fmt)
    number = _make(fmt, seed)
    bad = numbers.corrupt(number, random.Random(seed))
    diffs = [i for i, (a, b) in enumerate(zip(number, bad, strict=True)) if a != b]
    assert len(diffs) == 1
    assert number[diffs[0]] in string.digits and bad[diffs[0]] in string.digits
    assert Candidate(carrier=carrier, format=fmt, check_digit_ok=True) not in detect.detect(bad)


@SETTINGS
@given(fmt=checked_formats, seed=seeds, digit=st.sampled_from(string.digits))
def test_any_other_check_digit_fails(fmt: str, seed: int, digit: str) -> None:
    # Independent of ``corrupt``: every format's check digit is a function of the rest.
    number = _make(fmt, seed)
    pos = len(number) - CHECK_FROM_END.get(fmt, 1)
    if number[pos] == digit:
        return
    changed = number[:pos] + digit + number[pos + 1 :]
    carrier = detect.carrier_of(fmt)
    assert Candidate(carrier=carrier, format=fmt, check_digit_ok=False) in detect.detect(changed)


# Fixed-layout formats whose mod 10 weights (1 and 3) are coprime to 10, so any single-digit
# change in the span the checksum covers (serial and check digit) must be caught.
GS1_SPANS = {"usps_20": (0, 20), "fedex_15": (0, 15), "fedex_18": (2, 18), "fedex_22": (7, 22)}


@SETTINGS
@given(fmt=st.sampled_from(sorted(GS1_SPANS)), seed=seeds, data=st.data())
def test_single_digit_errors_caught_by_mod10(fmt: str, seed: int, data: st.DataObject) -> None:
    number = _make(fmt, seed)
    start, end = GS1_SPANS[fmt]
    pos = data.draw(st.integers(min_value=start, max_value=end - 1))
    digit = data.draw(st.sampled_from([d for d in string.digits if d != number[pos]]))
    changed = number[:pos] + digit + number[pos + 1 :]
    assert Candidate(carrier=detect.carrier_of(fmt), format=fmt, check_digit_ok=False) in (
        detect.detect(changed)
    )


_RANK = {True: 0, None: 1, False: 2}


def _assert_well_formed(found: list[Candidate]) -> None:
    assert all(c.format in detect.FORMATS for c in found)
    assert all(c.carrier == detect.carrier_of(c.format) for c in found)
    assert len({c.format for c in found}) == len(found)
    ranks = [(_RANK[c.check_digit_ok], detect.FORMATS.index(c.format)) for c in found]
    assert ranks == sorted(ranks)
    assert all(c.check_digit_ok is None for c in found if not detect.has_check_digit(c.format))


@SETTINGS
@given(text=st.text(max_size=80))
def test_detect_never_raises_on_any_text(text: str) -> None:
    found = detect.detect(text)
    _assert_well_formed(found)
    assert found == detect.detect(detect.normalise(text))
    for carrier in carriers.NAMES:
        assert detect.plausible(carrier, text) == any(c.carrier == carrier for c in found)


@SETTINGS
@given(text=st.text(alphabet=string.digits + "JZRUSGMLXIN ", min_size=8, max_size=40))
def test_detect_well_formed_on_number_like_text(text: str) -> None:
    # Digit-heavy strings hit many formats at once; the ranking must still be consistent.
    _assert_well_formed(detect.detect(text))


def test_generate_rejects_unknown_carrier_and_foreign_format() -> None:
    rng = random.Random(1)
    with pytest.raises(ValueError):
        numbers.generate("royalmail", rng)
    with pytest.raises(ValueError):
        numbers.generate("ups", rng, format="fedex_12")
    with pytest.raises(ValueError):
        numbers.generate("ups", rng, format="no_such_format")


def test_generate_is_reproducible_and_default_formats_are_native() -> None:
    for carrier in carriers.NAMES:
        first = [numbers.generate(carrier, random.Random(s)) for s in range(50)]
        assert first == [numbers.generate(carrier, random.Random(s)) for s in range(50)]
        for number in first:
            top = detect.detect(number)[0]
            # A default number reads as its own carrier first, never via a consolidator.
            assert top.carrier == carrier and top.check_digit_ok is True


def test_corrupt_refuses_numbers_without_a_check() -> None:
    with pytest.raises(ValueError):
        numbers.corrupt("GM2951173225174494", random.Random(0))
    with pytest.raises(ValueError):
        numbers.corrupt("hello", random.Random(0))
