"""A local SMTP server that keeps what it receives: for tests, the demo and benches.

:class:`SmtpSink` runs an aiosmtpd ``Controller`` (its own event loop in a daemon thread) on a
loopback port it picks itself (aiosmtpd cannot start on port 0: its readiness probe connects to
the stored port). Every accepted message is parsed into :class:`ReceivedMessage` (an
``EmailMessage`` that also carries the SMTP envelope) and, when ``out_dir`` is given, written to
``<n>-<message-id>.eml``. Optional STARTTLS (or implicit TLS) and AUTH make it stand in for a
submission server; :meth:`SmtpSink.fail_next` scripts error replies and :meth:`SmtpSink.down` /
:meth:`SmtpSink.up` make the port unreachable and reachable again.

Usage::

    with SmtpSink(tmp_path) as sink:
        ...  # point the e-mail channel at 127.0.0.1:sink.port
        assert sink.messages[0]["Subject"] == "Hi"

Handler hooks run on the server thread; the shared state here is guarded by one lock.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import threading
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser, Parser
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = ["ReceivedMessage", "SmtpSink", "Stage"]

Stage = Literal["MAIL", "RCPT", "DATA"]

_REPLY = re.compile(r"^[2-5]\d\d[ -]")
_FILE_UNSAFE = re.compile(r"[^A-Za-z0-9._@=+-]")


class ReceivedMessage(EmailMessage):
    """A message the sink accepted: the parsed content plus what the SMTP session said."""

    envelope_from: str = ""
    envelope_to: tuple[str, ...] = ()
    tls: bool = False
    auth_user: str | None = None


@dataclass(slots=True, kw_only=True)
class _Fault:
    line: str
    stage: Stage
    recipient: str | None
    remaining: int


class _SinkSMTP(SMTP):
    """aiosmtpd's protocol, plus: live-connection tracking (so ``down`` can close them) and
    hanging up after a 421 reply, as real servers do (RFC 5321 §3.8: 421 closes the channel)."""

    def __init__(self, sink: SmtpSink, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.sink_counted = False
        self._sink = sink

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None  # STARTTLS calls this again with the TLS transport
        super().connection_made(transport)
        if first:
            self._sink._track(self, add=True)

    def connection_lost(self, error: Exception | None) -> None:
        self._sink._track(self, add=False)
        super().connection_lost(error)

    async def push(self, status: Any) -> None:
        await super().push(status)
        text = status.decode() if isinstance(status, bytes) else str(status)
        if text.startswith("421") and self.transport is not None:
            # Same sequence aiosmtpd's own QUIT uses to end the session from inside it.
            if self._handler_coroutine is not None:
                self._handler_coroutine.cancel()
            self.transport.close()


class _Controller(Controller):
    def __init__(self, sink: SmtpSink, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._sink = sink

    def factory(self) -> SMTP:
        return _SinkSMTP(self._sink, self.handler, **self.SMTP_kwargs)


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
        responses: list[str],
    ) -> list[str]:
        self._sink._count_session(server)
        session.host_name = hostname
        return responses

    async def handle_HELO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str
    ) -> str:
        self._sink._count_session(server)
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        mail_options: list[str],
    ) -> str:
        if self._sink._auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        fault = self._sink._take_fault("MAIL", [address])
        if fault is not None:
            return fault
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        fault = self._sink._take_fault("RCPT", [address])
        if fault is not None:
            return fault
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        fault = self._sink._take_fault("DATA", list(envelope.rcpt_tos))
        if fault is not None:
            return fault
        content = envelope.content
        raw = content if isinstance(content, bytes) else (content or "").encode()
        number = self._sink._store(raw, envelope, session, server)
        return f"250 OK queued as {number}"


class SmtpSink:
    """A local SMTP server on ``host`` (loopback by default) that records accepted mail.

    ``tls_context`` (a server context) enables STARTTLS, or implicit TLS from the first byte with
    ``implicit_tls=True``; ``require_starttls`` refuses mail before STARTTLS. ``auth`` maps user
    names to passwords (PLAIN/LOGIN); when set, MAIL is refused with 530 until authenticated.
    """

    def __init__(
        self,
        out_dir: Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        implicit_tls: bool = False,
        auth: dict[str, str] | None = None,
        server_hostname: str = "sink.localhost",
    ) -> None:
        self.out_dir = out_dir
        self.host = host
        self.port = port
        self._tls_context = tls_context
        self._require_starttls = require_starttls
        self._implicit_tls = implicit_tls
        self._auth = dict(auth) if auth is not None else None
        self._server_hostname = server_hostname
        self._lock = threading.Lock()
        self._messages: list[ReceivedMessage] = []
        self._faults: list[_Fault] = []
        self._connections = 0
        self._stored = 0
        self._live: set[_SinkSMTP] = set()
        self._controller: _Controller | None = None
        if implicit_tls and tls_context is None:
            raise ValueError("implicit_tls needs a tls_context")

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start listening (picking a free port first when ``port`` is 0)."""
        if self.port == 0:
            self.port = _free_port(self.host)
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self._start_controller()

    def stop(self) -> None:
        """Close every session and stop listening. Safe to call twice."""
        self.down()

    def down(self) -> None:
        """Become unreachable: drop every open session and close the listening socket."""
        controller = self._controller
        if controller is None:
            return
        self._controller = None
        # Drop sessions on the server's own loop and wait for connection_lost, so no socket
        # outlives the loop (an unclosed transport would surface as a ResourceWarning).
        future = asyncio.run_coroutine_threadsafe(self._close_sessions(), controller.loop)
        future.result(timeout=5)
        controller.stop()

    def up(self) -> None:
        """Listen again on the same port after :meth:`down`."""
        if self._controller is None:
            self._start_controller()

    @property
    def running(self) -> bool:
        return self._controller is not None

    # -- what was received -----------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMessage]:
        """A snapshot of the accepted messages, oldest first."""
        with self._lock:
            return list(self._messages)

    @property
    def connections(self) -> int:
        """How many SMTP sessions clients opened (a session = a connection that said EHLO/HELO;
        the controller's own readiness probe is not counted)."""
        with self._lock:
            return self._connections

    def clear(self) -> None:
        """Forget received messages and pending faults (counters keep running)."""
        with self._lock:
            self._messages.clear()
            self._faults.clear()

    # -- fault injection -------------------------------------------------------------------

    def fail_next(
        self, code_line: str, count: int = 1, stage: Stage = "RCPT", recipient: str | None = None
    ) -> None:
        """Answer the next ``count`` ``stage`` commands with ``code_line`` (e.g.
        ``"451 4.3.0 try later"``). With ``recipient``, only commands concerning that address
        are affected: its RCPT, a DATA whose envelope includes it, or (for MAIL, where no
        recipient is known yet) a MAIL FROM that address. A 421 line also closes the session,
        like a real server."""
        if not _REPLY.match(code_line) or code_line[0] not in "45":
            raise ValueError(f"not an SMTP error reply line: {code_line!r}")
        if stage not in ("MAIL", "RCPT", "DATA"):
            raise ValueError(f"unknown stage {stage!r}")
        with self._lock:
            self._faults.append(
                _Fault(line=code_line, stage=stage, recipient=recipient, remaining=count)
            )

    # -- internals (server thread) -----------------------------------------------------------

    def _start_controller(self) -> None:
        kwargs: dict[str, Any] = {"hostname": self.host, "port": self.port,
                                  "server_hostname": self._server_hostname}
        if self._tls_context is not None:
            if self._implicit_tls:
                kwargs["ssl_context"] = self._tls_context
            else:
                kwargs["tls_context"] = self._tls_context
                kwargs["require_starttls"] = self._require_starttls
        if self._auth is not None:
            kwargs["authenticator"] = self._authenticate
            # AUTH over plaintext is allowed only when the sink has no TLS at all (the demo);
            # enforcement is ours (530 at MAIL), because aiosmtpd warns on auth_required
            # without TLS and warnings are errors in our test runs.
            kwargs["auth_require_tls"] = self._tls_context is not None
        controller = _Controller(self, _Handler(self), **kwargs)
        controller.start()
        self._controller = controller

    async def _close_sessions(self) -> None:
        with self._lock:
            live = list(self._live)
        for server in live:
            if server.transport is not None:
                # abort, not close: a TLS close waits for the client's close_notify, and the
                # client's loop may be the very thread blocked in down().
                server.transport.abort()  # type: ignore[attr-defined]
        for _ in range(50):
            with self._lock:
                if not self._live:
                    return
            await asyncio.sleep(0.01)

    def _track(self, server: _SinkSMTP, *, add: bool) -> None:
        with self._lock:
            if add:
                self._live.add(server)
            else:
                self._live.discard(server)

    def _count_session(self, server: SMTP) -> None:
        if isinstance(server, _SinkSMTP) and not server.sink_counted:
            server.sink_counted = True
            with self._lock:
                self._connections += 1

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword) or self._auth is None:
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        ok = user in self._auth and self._auth[user] == password
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)

    def _take_fault(self, stage: Stage, addresses: list[str]) -> str | None:
        wanted = {a.lower() for a in addresses}
        with self._lock:
            for fault in self._faults:
                if fault.stage != stage:
                    continue
                if fault.recipient is not None and fault.recipient.lower() not in wanted:
                    continue
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault.line
        return None

    def _store(self, raw: bytes, envelope: Envelope, session: Session, server: SMTP) -> int:
        message = BytesParser(ReceivedMessage, policy=policy.default).parsebytes(raw)
        _decode_utf8_headers(message, raw)
        assert isinstance(message, ReceivedMessage)
        message.envelope_from = envelope.mail_from or ""
        message.envelope_to = tuple(envelope.rcpt_tos)
        # session.ssl is only set by STARTTLS; implicit TLS shows on the transport.
        transport = server.transport
        message.tls = session.ssl is not None or (
            transport is not None and transport.get_extra_info("ssl_object") is not None
        )
        auth = session.auth_data
        message.auth_user = auth if isinstance(auth, str) else None
        with self._lock:
            self._stored += 1
            number = self._stored
            self._messages.append(message)
        if self.out_dir is not None:
            mid = str(message.get("Message-ID", "") or "no-id").strip().strip("<>")
            name = f"{number}-{_FILE_UNSAFE.sub('_', mid)[:120]}.eml"
            (self.out_dir / name).write_bytes(raw)
        return number


def _decode_utf8_headers(message: EmailMessage, raw: bytes) -> None:
    """SMTPUTF8 mail carries raw UTF-8 in headers, which the bytes parser keeps as surrogate
    escapes; re-read such top-level headers as UTF-8 text."""
    head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
    if head.isascii():
        return
    text_headers = Parser(policy=policy.default).parsestr(
        head.decode("utf-8", "replace") + "\r\n\r\n", headersonly=True
    )
    for name, value in text_headers.raw_items():
        if not str(value).isascii():
            message.replace_header(name, str(text_headers[name]))


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
