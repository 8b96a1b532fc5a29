"""Helpers for tests that talk SMTP to a real local :class:`~notifier.devtools.smtp_sink.SmtpSink`.

``TlsPair`` is a throw-away trustme CA with a server certificate for 127.0.0.1/localhost;
``email_settings`` points ``EmailSettings`` at a sink; ``open_channel`` yields an
``EmailChannel`` and always closes it (before the sink stops, so no socket is left behind).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import trustme

from notifier.channels.base import Recipient, RenderedMessage
from notifier.channels.email import EmailChannel
from notifier.config import EmailSettings, Secret
from notifier.devtools.smtp_sink import SmtpSink

__all__ = ["TlsPair", "email_settings", "make_tls_pair", "open_channel", "recipient", "rendered"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsPair:
    server: ssl.SSLContext  # for the sink
    client: ssl.SSLContext  # trusts the test CA, verifies host names


def make_tls_pair() -> TlsPair:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return TlsPair(server=server, client=client)


def email_settings(sink: SmtpSink, **overrides: Any) -> EmailSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": sink.port,
        "security": "plain",
        "from_address": "orders@shop.example.com",
        "from_name": "Example Shop",
        "timeout": timedelta(seconds=5),
        "pool_size": 2,
    }
    values.update(overrides)
    for key in ("username", "password"):
        if key in values and not isinstance(values[key], Secret):
            values[key] = Secret(values[key])
    return EmailSettings(**values)


@asynccontextmanager
async def open_channel(settings: EmailSettings, **kwargs: Any) -> AsyncIterator[EmailChannel]:
    channel = EmailChannel(settings, **kwargs)
    try:
        yield channel
    finally:
        await channel.aclose()


def rendered(notification_id: str = "ntf-1", **overrides: Any) -> RenderedMessage:
    values: dict[str, Any] = {
        "notification_id": notification_id,
        "trigger": "out_for_delivery",
        "subject": "Your order is out for delivery",
        "text": "Your parcel arrives today.\n",
        "html": "<p>Your parcel arrives <b>today</b>.</p>\n",
    }
    values.update(overrides)
    return RenderedMessage(**values)


def recipient(address: str = "jane@example.net", name: str = "Jane Doe") -> Recipient:
    return Recipient(address=address, name=name)
