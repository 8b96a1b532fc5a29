"""The error hierarchy of the application.

Tree::

    NotifierError
     ├── ConfigError            (exit status 78, EX_CONFIG; carries every problem found)
     ├── StoreError
     │    └── NotFound          (an order, shipment or dispute that does not exist)
     ├── InputError             (a bad order row, API body or CLI value; names the item)
     └── DeliveryError(channel)
          ├── DeliveryTransient (TransientError: SMTP 4xx, disconnects, timeouts, push 429/5xx)
          ├── DeliveryRejected  (permanent for this recipient/token: SMTP 5xx, FCM UNREGISTERED...)
          └── ChannelMisconfigured (bad credentials: pause the channel and alert ops)

``TransientError`` is a marker class; retry policies key on ``TRANSIENT`` (ours plus the carrier
package's own marker, since ``carriers`` never imports ``notifier``). Pure module.
"""

from __future__ import annotations

from carriers.errors import TransientCarrierError

__all__ = [
    "TRANSIENT",
    "ChannelMisconfigured",
    "ConfigError",
    "DeliveryError",
    "DeliveryRejected",
    "DeliveryTransient",
    "InputError",
    "NotFound",
    "NotifierError",
    "StoreError",
    "TransientError",
]

EX_CONFIG = 78


class NotifierError(Exception):
    """Base of every error notifier raises on purpose."""


class TransientError(Exception):
    """Marker: trying again later may succeed."""


TRANSIENT: tuple[type[BaseException], ...] = (TransientError, TransientCarrierError)


class ConfigError(NotifierError):
    """The configuration is invalid. ``problems`` holds one ``FILE: KEY.PATH: problem`` each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class StoreError(NotifierError):
    """The database refused or failed an operation."""


class NotFound(StoreError):
    """The named item does not exist."""


class InputError(NotifierError):
    """Bad input; the message names the item (row, field, tracking number)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class DeliveryError(NotifierError):
    """A channel could not deliver a notification."""

    def __init__(self, channel: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{channel}: {message}")
        self.channel = channel
        self.message = message
        self.retry_after = retry_after


class DeliveryTransient(DeliveryError, TransientError):
    """Try again later (honour ``retry_after`` when set)."""


class DeliveryRejected(DeliveryError):
    """Permanent for this recipient; ``drop_token`` says whether the push token is dead."""

    def __init__(self, channel: str, message: str, *, drop_token: bool = False) -> None:
        super().__init__(channel, message)
        self.drop_token = drop_token


class ChannelMisconfigured(DeliveryError):
    """Our side is wrong (credentials, sender identity): pause the channel, alert ops."""
