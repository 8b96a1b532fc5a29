"""The small HTML pages of the unsubscribe flow (RFC 8058 one-click plus a browser page).

A mail client's one-click POST needs no page; a person who opens the link sees a page with
one button that POSTs the same URL, because a GET must never unsubscribe (link scanners and
prefetchers follow GETs). Pages carry no script and a strict Content-Security-Policy. Pure.
"""

from __future__ import annotations

from html import escape

from notifier.logs import mask_email

__all__ = ["HEADERS", "confirm_page", "done_page", "invalid_page"]

# The token sits in the URL: never send it onwards as a referrer, never cache the page.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}

_STYLE = ("body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:32rem;"
          "margin:3rem auto;padding:0 1rem;color:#222;line-height:1.5}"
          "button{font-size:1rem;padding:.6rem 1.2rem;border:0;border-radius:.3rem;"
          "background:#1a5fb4;color:#fff;cursor:pointer}")

_CHANNEL_NAMES = {"email": "e-mails", "fcm": "app notifications", "apns": "app notifications",
                  "webpush": "browser notifications", "webhook": "webhook messages",
                  "*": "notifications"}


def _page(title: str, body: str) -> str:
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
            f"<body><h1>{escape(title)}</h1>{body}</body></html>\n")


def confirm_page(*, action: str, email: str, channel: str, shop: str) -> str:
    what = _CHANNEL_NAMES.get(channel, "notifications")
    return _page(
        "Unsubscribe",
        f"<p>Stop order {escape(what)} from {escape(shop)} to "
        f"<strong>{escape(mask_email(email))}</strong>?</p>"
        f'<form method="post" action="{escape(action, quote=True)}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        "<button type=\"submit\">Unsubscribe</button></form>")


def done_page(*, email: str, channel: str, shop: str) -> str:
    what = _CHANNEL_NAMES.get(channel, "notifications")
    return _page("You are unsubscribed",
                 f"<p>{escape(shop)} will send no more order {escape(what)} to "
                 f"<strong>{escape(mask_email(email))}</strong>.</p>")


def invalid_page() -> str:
    return _page("Link not valid",
                 "<p>This unsubscribe link is not valid. Please use the link from the most "
                 "recent message, or contact the shop.</p>")
