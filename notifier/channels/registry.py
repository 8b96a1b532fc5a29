"""Build the enabled notification channels from settings, with their HTTP clients; close them.

One ``httpx.AsyncClient`` per push provider (explicit ``Timeout`` and ``Limits``), created here
and closed by :meth:`ChannelSet.aclose` after the channels. APNs is the exception: it needs an
HTTP/2-only client that it must be able to replace on ``Shutdown`` / ``IdleTimeout`` answers,
so ``ApnsChannel`` owns (and closes) its own. A channel whose construction raises
``ChannelMisconfigured`` (missing key file, empty secret...) is left out and listed in
``broken`` with the reason, so the daemon still starts and the sender raises an ops alert.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

import httpx

from notifier.channels.base import Channel
from notifier.errors import ChannelMisconfigured

if TYPE_CHECKING:
    from notifier.clock import Clock
    from notifier.config import Settings

__all__ = ["ALL_CHANNELS", "ChannelSet", "build_channels", "enabled_channels"]

logger = logging.getLogger(__name__)

ALL_CHANNELS = ("email", "fcm", "apns", "webpush", "webhook")
PUSH_TIMEOUT = timedelta(seconds=15)


@dataclass
class ChannelSet:
    """The channels that could be built, the ones that could not (name -> reason), and the
    HTTP clients to close after them."""

    channels: dict[str, Channel] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    async def aclose(self) -> None:
        """Close every channel, then every HTTP client; errors are logged, closing goes on."""
        for name, channel in list(self.channels.items()):
            try:
                await channel.aclose()
            except Exception:
                logger.exception("error while closing channel %s", name)
        for client in self.clients:
            await client.aclose()
        self.clients.clear()


def enabled_channels(settings: Settings) -> list[str]:
    """Channels some trigger may use (``notifications.channels`` and the per-trigger lists)
    whose own section is enabled."""
    n = settings.notifications
    wanted = dict.fromkeys([*n.channels, *(c for cs in n.triggers.values() for c in cs)])
    on = {"email": settings.email.enabled, "fcm": settings.push.fcm.enabled,
          "apns": settings.push.apns.enabled, "webpush": settings.push.webpush.enabled,
          "webhook": settings.push.webhook.enabled}
    return [c for c in ALL_CHANNELS if c in wanted and on[c]]


def _http_client(timeout: timedelta) -> httpx.AsyncClient:
    seconds = timeout.total_seconds()
    return httpx.AsyncClient(
        timeout=httpx.Timeout(seconds, connect=min(seconds, 5.0)),
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=16,
                            keepalive_expiry=60.0),
        follow_redirects=False)


def build_channels(settings: Settings, *, clock: Clock | None = None,
                   names: Iterable[str] | None = None) -> ChannelSet:
    """Build ``names`` (default: :func:`enabled_channels`). Push channels judge token ages by
    the real clock (providers check JWTs against real time); e-mail dates its messages with
    ``clock`` (the simulated time in the demo)."""
    result = ChannelSet()
    for name in (enabled_channels(settings) if names is None else names):
        try:
            result.channels[name] = _build(name, settings, clock, result)
        except ChannelMisconfigured as exc:
            logger.error("channel %s not available: %s", name, exc.message)
            result.broken[name] = exc.message
    return result


def _build(name: str, settings: Settings, clock: Clock | None, into: ChannelSet) -> Channel:
    timeout_s = PUSH_TIMEOUT.total_seconds()
    if name == "email":
        from notifier.channels.email import EmailChannel

        return EmailChannel(settings.email, clock=clock)
    if name == "apns":
        from notifier.channels.apns import ApnsChannel

        return ApnsChannel(settings.push.apns, None, timeout_s=timeout_s)
    if name not in ("fcm", "webpush", "webhook"):
        raise ChannelMisconfigured(name, "unknown channel")
    client = _http_client(PUSH_TIMEOUT)
    # Owned by the set from now on, even if the channel refuses its settings: aclose() closes it.
    into.clients.append(client)
    if name == "fcm":
        from notifier.channels.fcm import FcmChannel

        return FcmChannel(settings.push.fcm, client, timeout_s=timeout_s)
    if name == "webpush":
        from notifier.channels.webpush import WebPushChannel

        return WebPushChannel(settings.push.webpush, client, timeout_s=timeout_s)
    from notifier.channels.webhook import WebhookChannel

    return WebhookChannel(settings.push.webhook, client, timeout_s=timeout_s)
