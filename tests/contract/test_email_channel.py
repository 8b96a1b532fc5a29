"""Contract tests: the e-mail channel against a real aiosmtpd sink on loopback.

Covers message shape (multipart, headers, deterministic Message-ID, one-click unsubscribe),
connection reuse, outcome classification from scripted server replies, outages, STARTTLS with a
private CA, AUTH, header injection (examples plus Hypothesis properties on build_message and on
the wire bytes of build_mime), body transfer encodings and header folding.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.channels.email import (
    EmailChannel,
    build_message,
    build_mime,
    clean_header_text,
    make_message_id,
    mask_address,
)
from notifier.clock import SimulatedClock
from notifier.devtools.smtp_sink import SmtpSink
from notifier.errors import ChannelMisconfigured, DeliveryRejected, DeliveryTransient
from tests.support.smtp import (
    TlsPair,
    email_settings,
    make_tls_pair,
    open_channel,
    recipient,
    rendered,
)

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
# RFC 5322 msg-id with dot-atom-text on both sides (no colons, spaces or brackets inside).
ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
MSG_ID = re.compile(rf"^<{ATEXT}(?:\.{ATEXT})*@{ATEXT}(?:\.{ATEXT})*>$")


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SmtpSink]:
    with SmtpSink(tmp_path / "mail") as running:
        yield running


@pytest.fixture(scope="module")
def tls() -> TlsPair:
    return make_tls_pair()


def _build(subject: str = "Hi", name: str = "Jane", nid: str = "ntf-1", **kw: Any) -> EmailMessage:
    return build_message(
        rendered(nid, subject=subject, **kw),
        recipient(name=name),
        from_address="orders@shop.example.com",
        from_name="Example Shop",
        message_id_domain="shop.example.com",
        now=NOW,
    )


# -- message shape ----------------------------------------------------------------------------


async def test_multipart_text_and_html_with_utf8_subject(sink: SmtpSink) -> None:
    subject = "Ihre Bestellung 1234 – unterwegs 🚚 (Zustellung heute)"
    message = rendered("ntf-utf8", subject=subject, text="Grüße aus Köln\n", html="<p>Grüße</p>\n")
    async with open_channel(email_settings(sink)) as channel:
        receipt = await channel.send(message, recipient("jürgen@example.net", "Jürgen Groß"))

    [got] = sink.messages
    assert got.envelope_from == "orders@shop.example.com"
    assert got.envelope_to == ("jürgen@example.net",)
    assert got["Subject"] == subject
    assert got["From"].addresses[0].display_name == "Example Shop"
    assert got["To"].addresses[0].display_name == "Jürgen Groß"
    assert got["Date"].datetime.tzinfo is not None
    assert got.get_content_type() == "multipart/alternative"
    parts = list(got.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    # CRLF is the wire form of the line break.
    assert parts[0].get_content().replace("\r\n", "\n") == "Grüße aus Köln\n"
    assert parts[1].get_content().replace("\r\n", "\n") == "<p>Grüße</p>\n"
    assert receipt.channel == "email"
    assert receipt.provider_id == got["Message-ID"]


def test_message_id_is_deterministic_and_valid() -> None:
    first = _build(nid="order:77/delivered")
    later = build_message(
        rendered("order:77/delivered", subject="Other subject"),
        recipient(),
        from_address="orders@shop.example.com",
        from_name="Example Shop",
        message_id_domain="shop.example.com",
        now=datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert first["Message-ID"] == later["Message-ID"]
    assert MSG_ID.match(first["Message-ID"]), first["Message-ID"]
    assert first["Message-ID"].endswith("@shop.example.com>")
    # Distinct ids stay distinct, also when they differ only in characters that get escaped.
    ids = {make_message_id(n, "shop.example.com") for n in ("a:b", "a-b", "a=3Ab", "a.b", "a_b")}
    assert len(ids) == 5
    assert all(MSG_ID.match(i) for i in ids)
    long_id = make_message_id("x" * 500, "shop.example.com")
    assert MSG_ID.match(long_id) and len(long_id) < 100
    # The whole message is reproducible, MIME boundary included.
    assert _build(nid="n-9").as_bytes() == _build(nid="n-9").as_bytes()


async def test_list_unsubscribe_one_click_headers(sink: SmtpSink) -> None:
    url = "https://shop.example.com/u/" + "t0k3n" * 30  # longer than one 78-column line
    settings = email_settings(sink, unsubscribe_mailto="unsubscribe@shop.example.com")
    async with open_channel(settings) as channel:
        await channel.send(rendered("ntf-u1", list_unsubscribe_url=url), recipient())
        await channel.send(rendered("ntf-u2"), recipient())

    with_link, without = sink.messages
    assert with_link["List-Unsubscribe"] == (
        f"<{url}>, <mailto:unsubscribe@shop.example.com>"
    )
    assert with_link["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "List-Unsubscribe" not in without
    assert "List-Unsubscribe-Post" not in without


def test_plain_http_unsubscribe_gets_no_one_click_outside_loopback() -> None:
    remote = _build(list_unsubscribe_url="http://shop.example.com/u/abc")
    assert remote["List-Unsubscribe"] == "<http://shop.example.com/u/abc>"
    assert "List-Unsubscribe-Post" not in remote
    local = _build(list_unsubscribe_url="http://127.0.0.1:8080/u/abc")
    assert local["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


async def test_accepted_mail_is_written_as_eml(sink: SmtpSink, tmp_path: Path) -> None:
    async with open_channel(email_settings(sink)) as channel:
        receipt = await channel.send(rendered("ntf-file"), recipient())
    [path] = sorted((tmp_path / "mail").glob("*.eml"))
    assert path.name == "1-ntf-file@shop.example.com.eml"
    parsed = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert parsed["Message-ID"] == receipt.provider_id


# -- connections --------------------------------------------------------------------------------


async def test_connections_are_reused(sink: SmtpSink) -> None:
    async with open_channel(email_settings(sink, pool_size=3)) as channel:
        for i in range(10):
            await channel.send(rendered(f"seq-{i}"), recipient())
        assert channel.connections_opened == 1  # sequential sends share one connection
        await asyncio.gather(*(channel.send(rendered(f"par-{i}"), recipient()) for i in range(30)))
        assert 1 <= channel.connections_opened <= 3
        assert sink.connections == channel.connections_opened
    assert len(sink.messages) == 40
    assert {m["Message-ID"] for m in sink.messages} == (
        {f"<seq-{i}@shop.example.com>" for i in range(10)}
        | {f"<par-{i}@shop.example.com>" for i in range(30)}
    )


async def test_421_is_transient_and_next_send_reconnects(sink: SmtpSink) -> None:
    async with open_channel(email_settings(sink)) as channel:
        await channel.send(rendered("before"), recipient())
        sink.fail_next("421 4.7.0 closing", stage="RCPT")
        with pytest.raises(DeliveryTransient, match="421"):
            await channel.send(rendered("during"), recipient())
        await channel.send(rendered("after"), recipient())
        assert channel.connections_opened == 2
        assert sink.connections == 2
    assert [m["Message-ID"] for m in sink.messages] == [
        "<before@shop.example.com>", "<after@shop.example.com>"
    ]


@pytest.mark.parametrize(
    ("stage", "line", "expected"),
    [
        ("RCPT", "451 4.3.0 try later", DeliveryTransient),
        ("DATA", "451 4.3.0 try later", DeliveryTransient),
        ("MAIL", "452 4.3.1 insufficient storage", DeliveryTransient),
        ("RCPT", "550 5.1.1 no such user", DeliveryRejected),
        ("DATA", "552 5.3.4 message too big", DeliveryRejected),
        ("MAIL", "553 5.7.1 sender not allowed", ChannelMisconfigured),
        ("RCPT", "554 5.7.1 relay access denied", ChannelMisconfigured),
        ("DATA", "550 5.7.1 rejected by policy", ChannelMisconfigured),
    ],
)
async def test_reply_codes_are_classified(
    sink: SmtpSink, stage: str, line: str, expected: type[Exception]
) -> None:
    async with open_channel(email_settings(sink)) as channel:
        sink.fail_next(line, stage=stage)  # type: ignore[arg-type]
        with pytest.raises(expected) as info:
            await channel.send(rendered("refused"), recipient())
        assert type(info.value) is expected
        assert line.split()[0] in str(info.value)
        # The connection survives a non-421 refusal (aiosmtplib sent RSET) and is reused.
        await channel.send(rendered("next"), recipient())
        assert channel.connections_opened == 1
    assert [m["Message-ID"] for m in sink.messages] == ["<next@shop.example.com>"]


async def test_550_for_one_recipient_does_not_affect_others(sink: SmtpSink) -> None:
    bad = "ghost.user@example.net"
    sink.fail_next("550 5.1.1 <ghost.user@example.net>: no such user", recipient=bad)
    async with open_channel(email_settings(sink)) as channel:
        await channel.send(rendered("n-a"), recipient("ann@example.net"))
        with pytest.raises(DeliveryRejected) as info:
            await channel.send(rendered("n-b"), recipient(bad))
        await channel.send(rendered("n-c"), recipient("carl@example.net"))
    assert "ghost.user@" not in str(info.value)  # addresses are masked in error texts
    assert "g***@example.net" in str(info.value)
    assert [m.envelope_to for m in sink.messages] == [("ann@example.net",), ("carl@example.net",)]


async def test_server_down_is_transient_and_channel_recovers(sink: SmtpSink) -> None:
    async with open_channel(email_settings(sink)) as channel:
        await channel.send(rendered("n-1"), recipient())
        sink.down()
        with pytest.raises(DeliveryTransient):
            await channel.send(rendered("n-2"), recipient())
        with pytest.raises(DeliveryTransient, match=r"(?i)connect"):
            await channel.send(rendered("n-2"), recipient())
        sink.up()
        await channel.send(rendered("n-2"), recipient())
        assert channel.connections_opened == 2
    assert [m["Message-ID"] for m in sink.messages] == [
        "<n-1@shop.example.com>", "<n-2@shop.example.com>"
    ]


async def test_stale_pooled_connection_is_reopened_transparently(sink: SmtpSink) -> None:
    async with open_channel(email_settings(sink), probe_after_idle=0.0) as channel:
        await channel.send(rendered("n-1"), recipient())
        sink.down()  # the server drops the idle connection (restart)
        sink.up()
        await channel.send(rendered("n-2"), recipient())
        assert channel.connections_opened == 2
    assert len(sink.messages) == 2


async def test_bad_recipient_address_is_rejected_without_connecting(sink: SmtpSink) -> None:
    async with open_channel(email_settings(sink)) as channel:
        for address in ("not-an-address", "a@example.net\r\nBcc: x@evil.example"):
            with pytest.raises(DeliveryRejected):
                await channel.send(rendered("n-x"), recipient(address))
        assert channel.connections_opened == 0
    assert sink.connections == 0


# -- TLS and AUTH -------------------------------------------------------------------------------


async def test_starttls_with_private_ca(tls: TlsPair) -> None:
    with SmtpSink(tls_context=tls.server, require_starttls=True) as sink:
        settings = email_settings(sink, security="starttls")
        async with open_channel(settings, tls_context=tls.client) as channel:
            await channel.send(rendered("tls-1"), recipient())
        # Without the CA the certificate cannot verify: ChannelMisconfigured, because only an
        # operator can fix trust (email.ca_file) - and it may be an interception.
        async with open_channel(settings) as untrusting:
            with pytest.raises(ChannelMisconfigured, match="certificate"):
                await untrusting.send(rendered("tls-2"), recipient())
        # A channel that does not upgrade is refused by the server before MAIL.
        async with open_channel(email_settings(sink)) as plain:
            with pytest.raises(ChannelMisconfigured, match="530"):
                await plain.send(rendered("tls-3"), recipient())
        [got] = sink.messages
        assert got.tls is True
        assert got["Message-ID"] == "<tls-1@shop.example.com>"


async def test_ca_file_setting_is_used(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    authority = trustme.CA()  # its own CA: the module fixture holds only SSL contexts
    authority.cert_pem.write_to_path(str(ca))
    server_cert = authority.issue_cert("127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(server_ctx)
    with SmtpSink(tls_context=server_ctx, require_starttls=True) as sink:
        async with open_channel(email_settings(sink, security="starttls", ca_file=ca)) as channel:
            await channel.send(rendered("ca-1"), recipient())
        assert len(sink.messages) == 1


async def test_implicit_tls(tls: TlsPair) -> None:
    with SmtpSink(tls_context=tls.server, implicit_tls=True) as sink:
        async with open_channel(email_settings(sink, security="tls"), tls_context=tls.client) as ch:
            await ch.send(rendered("tls-implicit"), recipient())
        assert [m.tls for m in sink.messages] == [True]


async def test_tls_mismatches_are_misconfiguration(tls: TlsPair) -> None:
    with SmtpSink(tls_context=tls.server, implicit_tls=True) as sink:
        async with open_channel(email_settings(sink, security="tls")) as channel:
            with pytest.raises(ChannelMisconfigured, match="certificate"):
                await channel.send(rendered("m-1"), recipient())
    with SmtpSink() as sink:  # plaintext only, no STARTTLS offered
        implicit = email_settings(sink, security="tls")
        async with open_channel(implicit, tls_context=tls.client) as channel:
            with pytest.raises(ChannelMisconfigured, match="WRONG_VERSION_NUMBER"):
                await channel.send(rendered("m-2"), recipient())
        upgrade = email_settings(sink, security="starttls")
        async with open_channel(upgrade, tls_context=tls.client) as channel:
            # start_tls=True: no silent fall-back to plaintext when STARTTLS is missing.
            with pytest.raises(ChannelMisconfigured, match="STARTTLS"):
                await channel.send(rendered("m-3"), recipient())
        assert sink.messages == []


async def test_auth_over_starttls(tls: TlsPair) -> None:
    with SmtpSink(tls_context=tls.server, require_starttls=True,
                  auth={"mailer": "correct horse"}) as sink:
        good = email_settings(sink, security="starttls", username="mailer",
                              password="correct horse")
        async with open_channel(good, tls_context=tls.client) as channel:
            await channel.send(rendered("auth-1"), recipient())
        bad = email_settings(sink, security="starttls", username="mailer", password="wrong pw")
        async with open_channel(bad, tls_context=tls.client) as channel:
            with pytest.raises(ChannelMisconfigured, match="535") as info:
                await channel.send(rendered("auth-2"), recipient())
        assert "wrong pw" not in str(info.value)
        anonymous = email_settings(sink, security="starttls")
        async with open_channel(anonymous, tls_context=tls.client) as channel:
            with pytest.raises(ChannelMisconfigured, match="530"):
                await channel.send(rendered("auth-3"), recipient())
        assert [(m["Message-ID"], m.auth_user) for m in sink.messages] == [
            ("<auth-1@shop.example.com>", "mailer")
        ]


# -- header injection ---------------------------------------------------------------------------


async def test_crlf_in_subject_and_name_cannot_add_headers(sink: SmtpSink) -> None:
    evil = "Hello\r\nBcc: x@evil.example\r\n\r\nbody"
    async with open_channel(email_settings(sink, from_name="Shop\nBcc: y@evil.example")) as ch:
        victim = recipient(name="Jane\r\nBcc: z@evil.example")
        await ch.send(rendered("inj-1", subject=evil), victim)
    [got] = sink.messages
    assert got.envelope_to == ("jane@example.net",)
    assert "Bcc" not in got
    assert sorted(set(got.keys())) == sorted(
        {"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"}
    )
    assert got["Subject"] == "Hello Bcc: x@evil.example body"
    assert got["To"].addresses[0].display_name == "Jane Bcc: z@evil.example"


async def test_encoded_words_cannot_smuggle_line_breaks(sink: SmtpSink) -> None:
    # The stdlib decodes RFC 2047 words in values it is given; a decoded CR/LF must not count.
    subject = "=?utf-8?q?Hi=0D=0ABcc:_x@evil.example?="
    name = "=?utf-8?q?Jane=0D=0ABcc:_y@evil.example?="
    async with open_channel(email_settings(sink)) as channel:
        await channel.send(rendered("inj-2", subject=subject), recipient(name=name))
    [got] = sink.messages
    assert "Bcc" not in got
    assert got.envelope_to == ("jane@example.net",)
    assert "\n" not in got["Subject"] and "\r" not in got["Subject"]
    assert got["Subject"].replace("\u2060", "") == subject  # shown as written, not decoded


HEADERS = {"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"}


# Arbitrary text, salted with the fragments an injection attempt would use.
header_text = st.lists(
    st.one_of(
        st.text(max_size=30),
        st.sampled_from(["\r\n", "\n", "\r", "\r\n\r\n", "Bcc: x@evil.example", "\u2028",
                         "\x85", "\x0b", "\x00", "=?utf-8?q?=0D=0A?=", '"', "<", ">", ","]),
    ),
    max_size=8,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(subject=header_text, name=header_text, from_name=header_text)
def test_build_message_never_lets_line_breaks_into_headers(
    subject: str, name: str, from_name: str
) -> None:
    msg = build_message(
        rendered("prop-1", subject=subject),
        recipient(name=name),
        from_address="orders@shop.example.com",
        from_name=from_name,
        message_id_domain="shop.example.com",
        now=NOW,
    )
    raw = msg.as_bytes()
    head = raw.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        assert b"\r" not in line and b"\n" not in line
        # Each physical line is either "Name: ..." or a folded continuation.
        assert line[:1] in (b" ", b"\t") or re.match(rb"^[A-Za-z-]+:( |$)", line), line
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert set(parsed.keys()) == HEADERS
    assert len(parsed.keys()) == len(HEADERS)
    for key in HEADERS:
        assert not re.search(r"[\r\n]", str(parsed[key]))
    # The text survives, up to whitespace: the stdlib may fold between two encoded words, and
    # RFC 2047 decoding drops the space there (a display quirk, not an injection).
    assert str(parsed["Subject"]).split() == clean_header_text(subject).split() or (
        "".join(str(parsed["Subject"]).split()) == "".join(clean_header_text(subject).split())
    )


def test_mask_address() -> None:
    assert mask_address("john@example.com") == "j***@example.com"
    assert mask_address("nobody") == "***"
    assert mask_address("@example.com") == "***"


def test_construction_rejects_bad_sender_domain(sink: SmtpSink) -> None:
    with pytest.raises(ChannelMisconfigured):
        EmailChannel(email_settings(sink, from_address="orders@bad domain"))


# -- the wire form (build_mime) -----------------------------------------------------------------


def _mime(subject: str = "Hi", name: str = "Jane", nid: str = "ntf-1", from_name: str = "Shop",
          address: str = "jane@example.net", **kw: Any) -> bytes:
    return build_mime(
        rendered(nid, subject=subject, **kw),
        recipient(address, name),
        from_address="orders@shop.example.com",
        from_name=from_name,
        message_id_domain="shop.example.com",
        now=NOW,
    )


def _head_lines(raw: bytes) -> list[bytes]:
    head = raw.split(b"\r\n\r\n", 1)[0]
    return head.split(b"\r\n")


def _parse(raw: bytes) -> EmailMessage:
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)
    return parsed


body_text = st.lists(
    st.one_of(st.text(max_size=40), st.sampled_from(["\r\n", "\n", "\r", ".", "\n.\n", "=",
                                                     " \n", "x" * 1200, "é" * 100, "漢字" * 50])),
    max_size=8,
).map("".join)


@settings(max_examples=200, deadline=None)
@given(subject=header_text, name=header_text, from_name=header_text, text=body_text,
       html=body_text)
def test_build_mime_is_well_formed_and_round_trips(
    subject: str, name: str, from_name: str, text: str, html: str
) -> None:
    raw = _mime(subject, name, from_name=from_name, text=text, html=html or None)
    assert raw.isascii()  # 7-bit clean: no 8BITMIME needed for ASCII addresses
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    for line in raw.split(b"\r\n"):
        assert len(line) <= 998
    for line in _head_lines(raw):
        assert line[:1] in (b" ", b"\t") or re.match(rb"^[A-Za-z-]+:( |$)", line), line
    parsed = _parse(raw)
    expected_headers = HEADERS if html else HEADERS | {"Content-Transfer-Encoding"}
    assert set(parsed.keys()) == expected_headers
    assert len(parsed.keys()) == len(expected_headers)
    # Exactly the cleaned text comes back: folding only ever happens at an existing space,
    # and encoded words are never mixed with raw words in one header.
    assert str(parsed["Subject"]) == clean_header_text(subject)
    assert parsed["To"].addresses[0].addr_spec == "jane@example.net"
    for shown, given_name in ((parsed["To"], name), (parsed["From"], from_name)):
        # The stdlib's address parser keeps the folding space between two encoded words of a
        # long name, which RFC 2047 (6.2) says to drop: compare without spaces then.
        display = shown.addresses[0].display_name
        assert display == clean_header_text(given_name) or (
            "".join(display.split()) == "".join(clean_header_text(given_name).split())
            and len(clean_header_text(given_name).encode()) > 39)
    parts = list(parsed.iter_parts()) if html else [parsed]
    wanted = [text] + ([html] if html else [])
    for part, source in zip(parts, wanted, strict=True):
        lines = source.encode("utf-8").splitlines()
        expected = b"\n".join(lines).decode("utf-8") + "\n"
        assert part.get_content().replace("\r\n", "\n") == expected


def test_build_mime_is_what_build_message_shows_and_is_deterministic() -> None:
    raw = _mime(nid="n-9", text="Hello\n", html="<p>Hello</p>\n")
    assert raw == _mime(nid="n-9", text="Hello\n", html="<p>Hello</p>\n")
    msg = _build(nid="n-9", name="Jane", text="Hello\n", html="<p>Hello</p>\n")
    parsed = _parse(raw)
    for key in HEADERS - {"From"}:
        assert str(msg[key]) == str(parsed[key])


@pytest.mark.parametrize(
    ("text", "cte"),
    [
        ("Your parcel arrives today.\n", "7bit"),
        ("x" * 500 + "\n", "7bit"),  # long but legal (RFC 5322: 998 octets)
        ("x" * 1200 + "\n", "quoted-printable"),
        ("Ihr Paket kommt heute. Grüße!\n", "quoted-printable"),
        ("NUL \x00 and DEL \x7f\n", "quoted-printable"),
        ("您的包裹今天到达。" * 20 + "\n", "base64"),
    ],
)
def test_body_transfer_encoding_is_chosen_by_content(text: str, cte: str) -> None:
    parsed = _parse(_mime(text=text, html=None))
    assert parsed.get_content_type() == "text/plain"
    assert parsed["Content-Transfer-Encoding"] == cte
    assert parsed.get_content_charset() == "utf-8"
    assert parsed.get_content().replace("\r\n", "\n") == text


def test_long_headers_fold_within_78_columns() -> None:
    subject = " ".join(["Bestellung"] * 30)
    raw = _mime(subject=subject, name="Ms " + "Jane " * 20 + "Doe")
    assert all(len(line) <= 78 for line in _head_lines(raw))
    parsed = _parse(raw)
    assert parsed["Subject"] == subject
    utf8 = "Ihre Bestellung – unterwegs 🚚 " * 6
    raw = _mime(subject=utf8, name="Jürgen Groß " * 8)
    assert all(len(line) <= 78 for line in _head_lines(raw))
    parsed = _parse(raw)
    assert parsed["Subject"] == clean_header_text(utf8)
    # Split after spaces: even the stdlib's address parser, which keeps the folding space
    # between encoded words (RFC 2047 says drop it), shows whole words.
    shown = parsed["To"].addresses[0].display_name
    assert shown.split() == clean_header_text("Jürgen Groß " * 8).split()


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("Jane Doe", b"To: Jane Doe <jane@example.net>"),
        ("Doe, Jane", b'To: "Doe, Jane" <jane@example.net>'),
        ('Jane "JD" Doe', b'To: "Jane \\"JD\\" Doe" <jane@example.net>'),
        ("", b"To: jane@example.net"),
    ],
)
def test_display_names_are_atoms_quoted_or_absent(name: str, shown: bytes) -> None:
    lines = _head_lines(_mime(name=name))
    assert shown in lines


def test_unusual_but_valid_addresses_go_through_the_stdlib_parser() -> None:
    parsed = _parse(_mime(address="jane@[192.0.2.1]"))  # a domain literal
    assert parsed["To"].addresses[0].addr_spec == "jane@[192.0.2.1]"
    for bad in ("john@", "@example.net", "a b@example.net", "x" * 250 + "@example.net"):
        with pytest.raises(ValueError):
            _mime(address=bad)


async def test_the_wire_bytes_are_build_mime_output(sink: SmtpSink, tmp_path: Path) -> None:
    clock = SimulatedClock(NOW, speed=0)
    message = rendered("ntf-wire", subject="Grüße", text="Hallo\n", html="<p>Hallo</p>\n",
                       list_unsubscribe_url="https://shop.example.com/u/abc")
    async with open_channel(email_settings(sink), clock=clock) as channel:
        await channel.send(message, recipient(name="Jane"))
    [path] = sorted((tmp_path / "mail").glob("*.eml"))
    expected = build_mime(message, recipient(name="Jane"),
                          from_address="orders@shop.example.com", from_name="Example Shop",
                          message_id_domain="shop.example.com", now=NOW)
    assert path.read_bytes() == expected  # byte for byte: nothing re-encoded on the way
