"""The systemd notify protocol in a few lines (sd_notify(3)); no dependency needed.

``notify("READY=1", "STATUS=...")`` sends one datagram to ``$NOTIFY_SOCKET`` (a path, or an
abstract socket written ``@name``); without the variable it does nothing, so the daemon runs the
same outside systemd. ``watchdog_interval()`` is half of ``$WATCHDOG_USEC`` when the watchdog
is meant for this process.
"""

from __future__ import annotations

import logging
import os
import socket

__all__ = ["notify", "watchdog_interval"]

logger = logging.getLogger(__name__)


def notify(*assignments: str) -> bool:
    """Send ``KEY=VALUE`` lines as one datagram. Returns False when not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        logger.warning("NOTIFY_SOCKET %r: unsupported address family", address)
        return False
    payload = "\n".join(a.replace("\n", " ") for a in assignments).encode("utf-8")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(payload)
    except OSError as exc:
        logger.warning("sd_notify failed: %s", exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half the timeout), or None when not requested."""
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        return max(0.1, int(usec) / 1_000_000 / 2)
    except ValueError:
        return None
