"""The e-mail channel: multipart text + HTML mail over a small pool of reused SMTP connections.

:func:`build_message` is pure: it turns a :class:`RenderedMessage` into an ``EmailMessage`` with
a deterministic ``Message-ID`` (``<{notification id}@{domain}>``, so every retry of one
notification carries the same id), RFC 8058 one-click ``List-Unsubscribe`` headers, and header
values scrubbed of control characters (no CR/LF from data can ever start a new header).

:class:`EmailChannel` sends with aiosmtplib over ``settings.pool_size`` connections, each reused for
many messages and reopened when the server dropped it. It makes one attempt per ``send`` (the
outbox owns retries) and maps every failure to ``DeliveryTransient`` (4xx incl. 421,
disconnects, timeouts), ``DeliveryRejected`` (5xx for this recipient or message) or
``ChannelMisconfigured`` (auth, TLS certificate, sender/policy 5.7.x: an operator must act).
Addresses are masked in logs and error texts (``j***@example.com``); secrets are never logged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import email.policy
import email.utils
import hashlib
import logging
import re
import ssl
from datetime import datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import Parser
from functools import lru_cache
from typing import ClassVar
from urllib.parse import quote, urlsplit

import aiosmtplib

from notifier.channels.base import Receipt, Recipient, RenderedMessage
from notifier.clock import Clock, SystemClock
from notifier.config import EmailSettings
from notifier.errors import ChannelMisconfigured, DeliveryError, DeliveryRejected, DeliveryTransient

__all__ = ["EmailChannel", "build_message", "build_mime", "classify_smtp_error",
           "clean_header_text", "make_message_id", "mask_address"]

log = logging.getLogger(__name__)

CHANNEL = "email"
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
# RFC 3463 enhanced status code at the start of the reply text (aiosmtplib does not parse it).
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")
_EMAIL_IN_TEXT = re.compile(r"[^\s<>\"'(),;:]+@[A-Za-z0-9.-]+")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
# Characters kept verbatim in a URI inside <...>: visible ASCII except the delimiters.
_URI_SAFE = "".join(chr(c) for c in range(33, 127) if chr(c) not in '<>"\\^`{|}')
_MAX_ID_LEFT = 64
_ID_KEPT = re.compile(r"[A-Za-z0-9_-]+")  # ids made only of what make_message_id keeps as is
_SPECIALS = set('"(),:;<>@[\\]')
# RFC 5322 atext; a dot-atom local part at a host name is the address form sent as is.
_ATEXT = "A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
_PLAIN_ADDRESS = re.compile("[" + _ATEXT + "]+(?:\\.[" + _ATEXT + "]+)*@" + _LABEL
                            + "(?:\\." + _LABEL + ")*")
_ATOMS = re.compile("[" + _ATEXT + "]+(?: [" + _ATEXT + "]+)*")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_NOT_7BIT = re.compile(rb"[^\t\n\x20-\x7e]")
_FOLD_AT = 78  # RFC 5322 2.1.1: lines SHOULD stay within 78 characters ...
_MAX_LINE = 998  # ... and MUST stay within 998
_WORD_BYTES = 39  # 52 base64 characters: a 64-character encoded word (RFC 2047 allows 75)
_MAX_ADDRESS = 254  # RFC 5321 4.5.3.1.3: a path is at most 256 octets with its brackets


# -- pure helpers ---------------------------------------------------------------------------


def clean_header_text(text: str) -> str:
    """``text`` fit for a header, on one line and literal.

    Control and line/paragraph-separator characters become spaces, whitespace runs collapse to
    one space, ends are trimmed, and ``=?`` can no longer start an RFC 2047 encoded word.
    ``str.split()`` splits on every character ``str.splitlines()`` breaks on (``\\v \\f
    \\x1c-\\x1e \\x85 \\u2028 \\u2029``), which is what the stdlib's header check trips on.
    """
    kept = text if _PRINTABLE.fullmatch(text) else "".join(
        " " if (ch < " " or "\x7f" <= ch <= "\x9f") else ch
        for ch in text
        if not "\ud800" <= ch <= "\udfff"  # lone surrogates cannot be encoded at all
    )
    # The stdlib's header parser decodes RFC 2047 encoded words ("=?utf-8?q?=0D=0A?=") even in
    # values we set, and the decoded text can hold CR/LF (found by the Hypothesis test). A word
    # joiner between "=" and "?" keeps the text looking the same but never forms an encoded word.
    return " ".join(kept.split()).replace("=?", "=\u2060?")


def mask_address(address: str) -> str:
    """``john@example.com`` -> ``j***@example.com`` (for logs and error texts)."""
    local, at, domain = address.rpartition("@")
    if not at or not local:
        return "***"
    return f"{local[0]}***@{domain}"


def _mask_text(text: str) -> str:
    return _EMAIL_IN_TEXT.sub(lambda m: mask_address(m.group(0)), text)


@lru_cache(maxsize=64)
def _check_domain(domain: str) -> str:
    try:
        ascii_domain = domain.strip().rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise ValueError(f"bad Message-ID domain {domain!r}") from exc
    if not _DOMAIN.match(ascii_domain):
        raise ValueError(f"bad Message-ID domain {domain!r}")
    return ascii_domain


def make_message_id(notification_id: str, domain: str) -> str:
    """``<left@domain>`` valid per RFC 5322 (dot-atom-text on both sides), same for the same input.

    The left side keeps ASCII letters, digits, ``-`` and ``_``; every other character (``.``,
    ``:``, ``=`` included) becomes ``=XX`` per UTF-8 byte, so distinct ids stay distinct. Ids
    longer than 64 characters once encoded become ``sha256.<32 hex>`` (no encoded id contains a
    dot, so the two forms cannot collide).
    """
    if not notification_id:
        raise ValueError("empty notification id")
    left = notification_id if _ID_KEPT.fullmatch(notification_id) else "".join(
        ch if (ch.isascii() and (ch.isalnum() or ch in "-_"))
        else "".join(f"={b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
        for ch in notification_id
    )
    if len(left) > _MAX_ID_LEFT:
        digest = hashlib.sha256(notification_id.encode("utf-8", "surrogatepass")).hexdigest()
        left = f"sha256.{digest[:32]}"
    return f"<{left}@{_check_domain(domain)}>"


def _address(display_name: str, address: str) -> Address:
    addr = address.strip()
    if not addr or any(ch.isspace() or ch < " " or ch == "\x7f" for ch in addr):
        raise ValueError(f"invalid e-mail address {mask_address(addr)!r}")
    name = clean_header_text(display_name)
    try:
        return Address(display_name=name, addr_spec=addr)
    except (ValueError, HeaderParseError, IndexError) as exc:  # IndexError: "john@" (stdlib)
        # The addr-spec parser refuses non-ASCII local parts (RFC 6531 SMTPUTF8 addresses),
        # which aiosmtplib can send when the server offers SMTPUTF8: check those by hand.
        local, _, domain = addr.rpartition("@")
        if addr.isascii() or not local or any(ch in _SPECIALS for ch in local):
            raise ValueError(f"invalid e-mail address {mask_address(addr)!r}") from exc
        _check_domain(domain)
        return Address(display_name=name, username=local, domain=domain)


def _uri(value: str) -> str:
    return quote(value.strip(), safe=_URI_SAFE)


def _unsubscribe(message: RenderedMessage) -> tuple[list[str], bool] | None:
    """The ``List-Unsubscribe`` entries and whether one-click POST applies (RFC 8058 needs https;
    plain http is accepted for loopback hosts so the local demo shows the real headers)."""
    entries: list[str] = []
    one_click = False
    if message.list_unsubscribe_url:
        url = _uri(message.list_unsubscribe_url)
        parts = urlsplit(url)
        if parts.scheme.lower() in ("https", "http"):
            entries.append(f"<{url}>")
            one_click = parts.scheme.lower() == "https" or (parts.hostname or "") in _LOOPBACK
    if message.list_unsubscribe_mailto:
        mailto = message.list_unsubscribe_mailto.strip()
        if not mailto.lower().startswith("mailto:"):
            mailto = "mailto:" + mailto
        entries.append(f"<{_uri(mailto)}>")
    return (entries, one_click) if entries else None


# -- the wire form ----------------------------------------------------------------------------
# The message is written straight to bytes: the stdlib's header objects parse every value we set
# and refold it again when flattening, which cost ~1.3 ms a message - most of the sender's time.
# Every data-derived header value is either printable ASCII that cannot form an encoded word
# (emitted as is, folded only at its own spaces) or RFC 2047 base64 encoded words, whose
# alphabet holds no CR, LF, quote or bracket; addresses are validated first.


def _encoded_words(text: str) -> list[str]:
    """``text`` as ``=?utf-8?b?...?=`` words of at most 64 characters, split between code
    points (RFC 2047 section 5: each word holds whole characters), after a space when the
    chunk has one: decoders that wrongly keep the folding space between two words (the
    stdlib's address parser does) then show a doubled space rather than a split word."""
    data = text.encode("utf-8")
    words = []
    start, end_all = 0, len(data)
    while start < end_all:
        end = min(start + _WORD_BYTES, end_all)
        if end < end_all:
            space = data.rfind(b" ", start + 1, end)
            if space > 0:
                end = space + 1
        while end < end_all and data[end] & 0xC0 == 0x80:  # not inside a UTF-8 sequence
            end -= 1
        words.append(f"=?utf-8?b?{binascii.b2a_base64(data[start:end], newline=False).decode()}?=")
        start = end
    return words


def _fold_words(name: str, words: list[str]) -> str:
    """``Name:`` then ``words`` joined by spaces, with a CRLF before a word that would pass
    column 78 (folding only inserts CRLF before an existing space: the value is unchanged)."""
    lines: list[str] = []
    line = f"{name}:"
    for word in words:
        if len(line) + 1 + len(word) > _FOLD_AT and (lines or line != f"{name}:"):
            lines.append(line)
            line = " " + word
        else:
            line = f"{line} {word}"
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def _unstructured_line(name: str, text: str) -> str:
    """``Name: text`` for already-cleaned ``text``: raw when printable ASCII fitting lines of
    998 octets at most, else encoded words."""
    if _PRINTABLE.fullmatch(text) and "=?" not in text:
        folded = _fold_words(name, text.split(" ")) if text else f"{name}: \r\n"
        if all(len(line) <= _MAX_LINE for line in folded.split("\r\n")):
            return folded
    return _fold_words(name, _encoded_words(text))


@lru_cache(maxsize=4096)
def _address_line(name: str, display_name: str, address: str) -> tuple[str, bool]:
    """``Name: display <addr>`` and whether it needs SMTPUTF8 (a non-ASCII address). Raises
    ``ValueError`` for an invalid address. Cached: From and Reply-To repeat for every message."""
    addr = address.strip()
    if not _PLAIN_ADDRESS.fullmatch(addr) or len(addr) > _MAX_ADDRESS:
        if len(addr) > _MAX_ADDRESS:
            raise ValueError(f"invalid e-mail address {mask_address(addr)!r} (too long)")
        # Quoted local parts, domain literals, SMTPUTF8: the stdlib's parser decides.
        addr = _address("", addr).addr_spec
    phrase = clean_header_text(display_name)
    if not phrase:
        return f"{name}: {addr}\r\n", not addr.isascii()
    if _ATOMS.fullmatch(phrase) and "=?" not in phrase:
        words = phrase.split(" ")
    elif _PRINTABLE.fullmatch(phrase) and "=?" not in phrase and len(phrase) < _FOLD_AT - 20:
        words = ['"' + phrase.replace("\\", "\\\\").replace('"', '\\"') + '"']
    else:
        words = _encoded_words(phrase)
    line = _fold_words(name, [*words, f"<{addr}>"])
    if any(len(part) > _MAX_LINE for part in line.split("\r\n")):
        line = _fold_words(name, [*_encoded_words(phrase), f"<{addr}>"])
    return line, not addr.isascii()


def _body(text: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, body with CRLF line ends): 7bit for short printable ASCII
    lines, else the shorter of quoted-printable and base64 (the stdlib's choice too)."""
    lines = text.encode("utf-8").splitlines()  # bytes: splits on CR, LF and CRLF only
    raw = b"\n".join(lines) + b"\n"
    if not _NOT_7BIT.search(raw) and max(map(len, lines), default=0) <= _MAX_LINE:
        return "7bit", raw.replace(b"\n", b"\r\n")
    qp = binascii.b2a_qp(raw, istext=True)
    # base64's length is known without encoding it (76 characters + LF per 57 bytes).
    full, rest = divmod(len(raw), 57)
    if full * 77 + ((rest + 2) // 3 * 4 + 1 if rest else 0) < len(qp):
        return "base64", base64.encodebytes(raw).replace(b"\n", b"\r\n")
    return "quoted-printable", qp.replace(b"\n", b"\r\n")


def _part(subtype: str, text: str) -> bytes:
    cte, body = _body(text)
    return (f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
            f"Content-Transfer-Encoding: {cte}\r\n\r\n").encode("ascii") + body


def build_mime(
    message: RenderedMessage,
    recipient: Recipient,
    *,
    from_address: str,
    from_name: str,
    reply_to: str = "",
    message_id_domain: str,
    now: datetime | None = None,
) -> bytes:
    """The message for one recipient as sent: bytes with CRLF line ends, 7-bit clean unless an
    address needs SMTPUTF8. Pure; the same inputs give the same bytes, MIME boundary included.

    Headers: From, To, [Reply-To], Subject, [Date], Message-ID (``<{notification id}@{domain}>``
    via :func:`make_message_id`), [List-Unsubscribe, List-Unsubscribe-Post], MIME-Version and
    Content-Type; the body is multipart/alternative (text, then HTML) or text/plain alone.
    ``now`` (timezone-aware) becomes ``Date``; without it ``Date`` is omitted (the channel always
    passes its clock's time). Raises ``ValueError`` for an invalid address, an empty
    notification id, a bad domain or text that cannot be encoded (lone surrogates in a body).
    """
    head = [_address_line("From", from_name, from_address)[0],
            _address_line("To", recipient.name, recipient.address)[0]]
    if reply_to:
        head.append(_address_line("Reply-To", "", reply_to)[0])
    head.append(_unstructured_line("Subject", clean_header_text(message.subject)))
    if now is not None:
        head.append(f"Date: {email.utils.format_datetime(now)}\r\n")
    head.append(f"Message-ID: {make_message_id(message.notification_id, message_id_domain)}\r\n")
    unsubscribe = _unsubscribe(message)
    if unsubscribe is not None:
        entries, one_click = unsubscribe
        # One entry per line: a URI has no space to fold at, and must never be RFC 2047-encoded.
        head.append("List-Unsubscribe: " + ",\r\n ".join(entries) + "\r\n")
        if one_click:
            head.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
    head.append("MIME-Version: 1.0\r\n")
    text = _part("plain", message.text or "")
    if not message.html:
        return "".join(head).encode("utf-8") + text
    # A boundary derived from the content instead of a random one keeps this function
    # deterministic; a body cannot contain the hash of itself, so it cannot collide.
    digest = hashlib.sha256(
        "\0".join((message.notification_id, message.text, message.html)).encode(
            "utf-8", "surrogatepass")).hexdigest()
    boundary = f"notifier-alt-{digest[:32]}"
    head.append(f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n')
    delimiter = f"\r\n--{boundary}\r\n".encode("ascii")
    return b"".join((
        "".join(head).encode("utf-8"), delimiter[2:], text, delimiter, _part("html", message.html),
        f"\r\n--{boundary}--\r\n".encode("ascii")))


def build_message(
    message: RenderedMessage,
    recipient: Recipient,
    *,
    from_address: str,
    from_name: str,
    reply_to: str = "",
    message_id_domain: str,
    now: datetime | None = None,
) -> EmailMessage:
    """:func:`build_mime`'s bytes parsed back into an ``EmailMessage`` (same arguments, same
    errors): for inspecting a message. Send the bytes; re-flattening this object may refold
    headers differently."""
    data = build_mime(message, recipient, from_address=from_address, from_name=from_name,
                      reply_to=reply_to, message_id_domain=message_id_domain, now=now)
    parser = Parser(EmailMessage, policy=email.policy.SMTP if data.isascii()
                    else email.policy.SMTPUTF8)
    return parser.parsestr(data.decode("utf-8"))


def _by_code(code: int, text: str, stage: str) -> DeliveryError:
    reply = f"{stage} answered {code} {_mask_text(text)}".strip()
    enhanced = _ENHANCED.match(text)
    if 400 <= code < 500:
        return DeliveryTransient(CHANNEL, reply)
    if code in (530, 534, 535, 538) or (enhanced and enhanced.group(1, 2) == ("5", "7")):
        # Authentication or security/policy (X.7.x): relay denied, sender not allowed, our
        # reputation; no retry will fix it without an operator.
        return ChannelMisconfigured(CHANNEL, reply)
    if 500 <= code < 600:
        if stage in ("RCPT", "DATA") and code not in (500, 501, 502, 503, 504):
            return DeliveryRejected(CHANNEL, reply)
        # Refused greeting/EHLO/MAIL, or a syntax/sequence error: our side or our server choice.
        return ChannelMisconfigured(CHANNEL, reply)
    # -1 (unparseable reply) or an unexpected 2xx/3xx: the session is out of step; reconnect.
    return DeliveryTransient(CHANNEL, reply)


def classify_smtp_error(exc: BaseException, *, stage: str = "SMTP") -> DeliveryError | None:
    """Map an aiosmtplib/ssl/OS error to our delivery errors; ``None`` for anything unexpected
    (a bug, left to propagate). ``stage`` names where it happened (``CONNECT`` for connect/
    STARTTLS/AUTH) and is used when the exception itself does not say."""
    # aiosmtplib wraps TLS failures during connect in SMTPConnectError; STARTTLS raises them raw.
    tls_error = next(
        (e for e in (exc, exc.__cause__) if isinstance(e, ssl.SSLError)), None
    )
    if isinstance(tls_error, ssl.SSLCertVerificationError):
        # Chosen over DeliveryTransient: a wrong CA, host name or expired certificate - or an
        # interception - needs an operator; retrying silently would hide it.
        return ChannelMisconfigured(
            CHANNEL, f"TLS certificate of the SMTP server failed verification "
            f"({tls_error.verify_message}); check email.host and email.ca_file"
        )
    if tls_error is not None and tls_error.reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST"):
        # Implicit TLS spoken to a plaintext (STARTTLS) port, or similar.
        return ChannelMisconfigured(
            CHANNEL, f"TLS handshake failed ({tls_error.reason}); "
            "check email.security and email.port"
        )
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refusals = exc.recipients or []
        if not refusals:
            return DeliveryTransient(CHANNEL, "all recipients refused")
        # One recipient per send; with several, the most hopeful (lowest) code decides.
        first = min(refusals, key=lambda r: r.code)
        return _by_code(first.code, first.message, "RCPT")
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        if 400 <= exc.code < 500:
            return DeliveryTransient(CHANNEL, f"AUTH answered {exc.code} {exc.message}")
        return ChannelMisconfigured(
            CHANNEL, f"AUTH answered {exc.code} {exc.message}; check email.username/password"
        )
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return _by_code(exc.code, exc.message, "MAIL")
    if isinstance(exc, aiosmtplib.SMTPDataError):
        return _by_code(exc.code, exc.message, "DATA")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _by_code(exc.code, exc.message, stage)
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        if "SMTPUTF8" in exc.message:
            return DeliveryRejected(CHANNEL, f"server cannot take this address: {exc.message}")
        return ChannelMisconfigured(CHANNEL, exc.message)
    if isinstance(exc, (aiosmtplib.SMTPTimeoutError, TimeoutError)):
        return DeliveryTransient(CHANNEL, f"timed out: {exc}")
    if isinstance(exc, (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError)):
        return DeliveryTransient(CHANNEL, _mask_text(str(exc)))
    if isinstance(exc, OSError):  # other socket / TLS-transport failures
        return DeliveryTransient(CHANNEL, f"{type(exc).__name__}: {exc}")
    if isinstance(exc, aiosmtplib.SMTPException):
        # Bare SMTPException: e.g. "STARTTLS extension not supported", no usable AUTH method.
        if stage == "CONNECT":
            return ChannelMisconfigured(CHANNEL, exc.message)
        return DeliveryTransient(CHANNEL, _mask_text(exc.message))
    if isinstance(exc, ValueError):  # aiosmtplib refuses control characters in addresses
        return DeliveryRejected(CHANNEL, f"invalid message or address: {_mask_text(str(exc))}")
    return None


def _needs_reconnect(exc: BaseException) -> bool:
    if isinstance(exc, (ValueError, aiosmtplib.SMTPNotSupported)):
        return False  # refused before anything was sent
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return any(r.code == 421 for r in exc.recipients or [])
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code == 421 or exc.code < 0
    # Timeouts, disconnects, unknown errors: the reply stream may be out of step.
    return True


async def _transaction(client: aiosmtplib.SMTP, sender: str, to: str, data: bytes, *,
                       utf8: bool) -> str:
    """MAIL, RCPT, DATA for one message; the DATA reply text. What ``client.sendmail`` does for
    one recipient (SIZE, SMTPUTF8, RSET after a refusal, the same exceptions), minus a second
    parse of both addresses and a line-ending pass over the message, which ``build_mime``
    already wrote with CRLF. ``send_message`` is not used: it would parse and refold every
    header of the bytes again. The bytes are 7-bit clean except for an SMTPUTF8 address."""
    options = [f"SIZE={len(data)}"] if client.supports_extension("size") else []
    if utf8:
        if not client.supports_extension("smtputf8"):
            raise aiosmtplib.SMTPNotSupported("SMTPUTF8 is not supported by this server")
        options.append("SMTPUTF8")
        if client.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")
    encoding = "utf-8" if utf8 else "ascii"
    try:
        await client.mail(sender, options=options, encoding=encoding)
        try:
            await client.rcpt(to, encoding=encoding)
        except aiosmtplib.SMTPRecipientRefused as exc:
            raise aiosmtplib.SMTPRecipientsRefused([exc]) from exc
        return (await client.data(data)).message
    except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
        # Reset the envelope so the connection can carry the next message.
        with contextlib.suppress(ConnectionError, aiosmtplib.SMTPResponseException):
            await client.rset()
        raise


# -- the channel ----------------------------------------------------------------------------


class EmailChannel:
    """Sends over up to ``settings.pool_size`` SMTP connections, opened lazily and reused.

    ``tls_context`` overrides certificate trust (else ``settings.ca_file``, else the system
    store); verification is always on. A pooled connection idle for more than
    ``probe_after_idle`` seconds is checked with NOOP before use and reopened once if dead.
    """

    name: ClassVar[str] = CHANNEL

    def __init__(
        self,
        settings: EmailSettings,
        *,
        tls_context: ssl.SSLContext | None = None,
        message_id_domain: str | None = None,
        clock: Clock | None = None,
        probe_after_idle: float = 2.0,
    ) -> None:
        self._settings = settings
        self._clock: Clock = clock or SystemClock()
        domain = message_id_domain or settings.from_address.rpartition("@")[2]
        try:
            self._domain = _check_domain(domain)
            _address_line("From", settings.from_name, settings.from_address)
        except ValueError as exc:
            raise ChannelMisconfigured(CHANNEL, f"email.from_address: {exc}") from exc
        if tls_context is None and settings.ca_file is not None:
            tls_context = ssl.create_default_context(cafile=str(settings.ca_file))
        self._tls_context = tls_context
        self._probe_after_idle = probe_after_idle
        self._pool_size = max(1, settings.pool_size)
        self._slots = asyncio.Semaphore(self._pool_size)
        self._idle: list[aiosmtplib.SMTP] = []  # LIFO: keeps the warm connections busy
        self._clients: list[aiosmtplib.SMTP] = []
        self._last_used: dict[int, float] = {}
        self._closed = False
        self.connections_opened = 0

    def _new_client(self) -> aiosmtplib.SMTP:
        s = self._settings
        username = s.username.reveal() or None
        client = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            timeout=s.timeout.total_seconds(),
            use_tls=s.security == "tls",
            start_tls=s.security == "starttls",  # True: fail rather than silently stay plain
            tls_context=self._tls_context,
            username=username,
            password=s.password.reveal() if username else None,
        )
        self._clients.append(client)
        return client

    async def _open(self, client: aiosmtplib.SMTP) -> None:
        try:
            await client.connect()
            if client.is_ehlo_or_helo_needed:
                # A plain connection has not greeted yet (STARTTLS and AUTH greet while
                # connecting); the extensions must be known before MAIL.
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    if not client.is_connected:
                        raise
                    await client.helo()
        except BaseException as exc:
            client.close()
            error = classify_smtp_error(exc, stage="CONNECT")
            if error is None:
                raise
            log.warning("SMTP connect to %s:%s failed: %s", self._settings.host,
                        self._settings.port, error.message)
            raise error from exc
        self.connections_opened += 1
        log.info("SMTP connection %d opened to %s:%s (%s)", self.connections_opened,
                 self._settings.host, self._settings.port, self._settings.security)

    async def _ready(self, client: aiosmtplib.SMTP) -> None:
        """Make ``client`` usable: open it, or probe it after a long idle and reopen if dead."""
        if client.is_connected:
            idle = asyncio.get_running_loop().time() - self._last_used.get(id(client), 0.0)
            if idle < self._probe_after_idle:
                return
            try:
                await client.noop()
                return
            except (aiosmtplib.SMTPException, OSError):
                log.info("pooled SMTP connection was dead after %.0f s idle; reopening", idle)
                client.close()
        await self._open(client)

    async def send(self, message: RenderedMessage, recipient: Recipient) -> Receipt:
        """Send one message to one recipient; one attempt. Raises ``DeliveryTransient``,
        ``DeliveryRejected`` or ``ChannelMisconfigured`` (see the module docstring)."""
        if self._closed:
            raise DeliveryTransient(CHANNEL, "channel is closed")
        s = self._settings
        if (message.list_unsubscribe_url and not message.list_unsubscribe_mailto
                and s.unsubscribe_mailto):
            message = dataclasses.replace(message, list_unsubscribe_mailto=s.unsubscribe_mailto)
        masked = mask_address(recipient.address)
        sender, to = s.from_address.strip(), recipient.address.strip()
        try:
            data = build_mime(
                message, recipient, from_address=s.from_address, from_name=s.from_name,
                reply_to=s.reply_to, message_id_domain=self._domain, now=self._clock.now(),
            )
            message_id = make_message_id(message.notification_id, self._domain)
        except ValueError as exc:
            raise DeliveryRejected(CHANNEL, f"cannot build message for {masked}: {exc}") from exc
        utf8 = not (sender + to).isascii()
        async with self._slots:
            client = self._idle.pop() if self._idle else self._new_client()
            try:
                await self._ready(client)
                try:
                    reply = await _transaction(client, sender, to, data, utf8=utf8)
                except BaseException as exc:
                    if _needs_reconnect(exc):
                        client.close()
                    error = classify_smtp_error(exc, stage="SEND")
                    if error is None:
                        raise
                    log.warning("e-mail %s to %s failed: %s", message_id, masked, error.message)
                    raise error from exc
            finally:
                self._last_used[id(client)] = asyncio.get_running_loop().time()
                self._idle.append(client)
        log.debug("e-mail %s accepted for %s: %s", message_id, masked, reply)
        return Receipt(channel=CHANNEL, provider_id=message_id, detail=_mask_text(reply))

    async def aclose(self) -> None:
        """QUIT every open connection (close it if QUIT fails). Call after in-flight sends."""
        self._closed = True
        for client in self._clients:
            if client.is_connected:
                try:
                    await client.quit(timeout=min(5.0, self._settings.timeout.total_seconds()))
                except (aiosmtplib.SMTPException, OSError):
                    client.close()
        self._clients.clear()
        self._idle.clear()
