"""Signed unsubscribe tokens: round trip, tampering, other secrets, empty secret, URL shape."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier.config import Secret
from notifier.unsubscribe import UNSUBSCRIBE_PATH, make_token, unsubscribe_url, verify_token

SECRET = Secret("s3cret-for-tests")


@pytest.mark.parametrize("channel", ["email", "fcm", "apns", "webpush", "webhook"])
def test_round_trip_per_channel(channel: str) -> None:
    token = make_token(" Ann@Example.com ", channel, SECRET)
    assert verify_token(token, SECRET) == ("ann@example.com", channel)


def test_tokens_differ_per_channel_and_address() -> None:
    tokens = {make_token(a, c, SECRET) for a in ("a@x.org", "b@x.org") for c in ("email", "fcm")}
    assert len(tokens) == 4


def test_another_secret_or_an_empty_one_does_not_verify() -> None:
    token = make_token("a@x.org", "email", SECRET)
    assert verify_token(token, Secret("other")) is None
    assert verify_token(token, Secret("")) is None
    with pytest.raises(ValueError, match="unsubscribe_secret is empty"):
        make_token("a@x.org", "email", Secret(""))
    with pytest.raises(ValueError, match="empty"):
        unsubscribe_url("https://shop.example", "a@x.org", "email", Secret(""))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_changed_payload_with_the_old_mac_is_refused() -> None:
    token = make_token("a@x.org", "email", SECRET)
    _, mac = token.split(".")
    forged = f"{_b64(b'victim@x.org' + bytes([0]) + b'email')}.{mac}"
    assert verify_token(forged, SECRET) is None
    other_channel = f"{_b64(b'a@x.org' + bytes([0]) + b'fcm')}.{mac}"
    assert verify_token(other_channel, SECRET) is None


@pytest.mark.parametrize("bad", ["", ".", "abc", "a.b.c", "!!!.???", "x" * 5000,
                                 "YQ.YQ", "YUB4Lm9yZw.AAAA"])
def test_malformed_tokens_are_refused(bad: str) -> None:
    assert verify_token(bad, SECRET) is None


def test_unknown_channel_is_refused_when_making() -> None:
    with pytest.raises(ValueError, match="unknown channel"):
        make_token("a@x.org", "sms", SECRET)


@given(st.text(min_size=1, max_size=300))
def test_arbitrary_text_never_verifies_or_crashes(text: str) -> None:
    assert verify_token(text, SECRET) is None


@given(st.emails())
def test_any_address_round_trips(address: str) -> None:
    assert verify_token(make_token(address, "email", SECRET), SECRET) == (
        address.strip().lower(), "email")


def test_url_carries_the_token_under_the_public_url() -> None:
    url = unsubscribe_url("https://shop.example/base/", "a@x.org", "email", SECRET)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "shop.example",
                                                        f"/base{UNSUBSCRIBE_PATH}")
    (token,) = parse_qs(parts.query)["t"]
    assert verify_token(token, SECRET) == ("a@x.org", "email")
