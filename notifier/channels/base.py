"""The channel seam: what a channel is given, what it returns, and how it fails.

``send`` returns a :class:`Receipt` or raises one of ``DeliveryTransient`` (retry later),
``DeliveryRejected`` (permanent for this recipient; ``drop_token`` when a push token is dead) or
``ChannelMisconfigured`` (our credentials or identity are wrong: pause the channel, alert ops).
It never returns a bool. Pure module (no I/O imports).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

__all__ = ["Channel", "Receipt", "Recipient", "RenderedMessage"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderedMessage:
    """A notification rendered for one channel.

    E-mail uses subject/text/html and the header fields; push uses title/body/data. ``collapse_key``
    makes a retried or newer push replace an older one on the device (per order and trigger
    family); ``ttl_s`` lets stale alerts expire; ``urgent`` maps to high push priority.
    """

    notification_id: str
    trigger: str
    subject: str = ""
    text: str = ""
    html: str | None = None
    title: str = ""
    body: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    collapse_key: str | None = None
    ttl_s: int = 86_400
    urgent: bool = False
    locale: str = "en"
    list_unsubscribe_url: str | None = None
    list_unsubscribe_mailto: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Recipient:
    """Who receives it: an e-mail address, a push token, a Web Push subscription (JSON text)
    or a webhook URL, depending on the channel."""

    address: str
    name: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt:
    channel: str
    provider_id: str | None = None
    detail: str = ""


class Channel(Protocol):
    name: ClassVar[str]

    async def send(self, message: RenderedMessage, recipient: Recipient) -> Receipt: ...

    async def aclose(self) -> None: ...
