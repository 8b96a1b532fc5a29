"""Start-up checks beyond config syntax: everything that would otherwise fail at 3 a.m.

``check_all`` renders every template (built-in and user overrides) with sample data and checks
that referenced files exist. Returns ``FILE: problem`` lines; empty means fine.
"""

from __future__ import annotations

from pathlib import Path

from notifier.config import Settings

__all__ = ["check_all"]


def check_all(settings: Settings) -> list[str]:
    problems: list[str] = []
    for label, path in _files(settings):
        if not path.is_file():
            problems.append(f"{settings.path}: {label}: file {path} not found")
    user_dir = settings.templates.user_dir
    if user_dir is not None and not user_dir.is_dir():
        problems.append(f"{settings.path}: templates.user_dir: folder {user_dir} not found")
        return problems
    problems.extend(_template_problems(settings))
    return problems


def _files(settings: Settings) -> list[tuple[str, Path]]:
    push = settings.push
    out: list[tuple[str, Path | None]] = [("email.ca_file", settings.email.ca_file)]
    if push.fcm.enabled:
        out.append(("push.fcm.service_account_file", push.fcm.service_account_file))
    if push.apns.enabled:
        out.append(("push.apns.key_file", push.apns.key_file))
    if push.webpush.enabled:
        out.append(("push.webpush.vapid_private_key_file", push.webpush.vapid_private_key_file))
    return [(label, p) for label, p in out if p is not None]


def _template_problems(settings: Settings) -> list[str]:
    try:
        from notifier import render
    except ImportError:  # the renderer is optional until templates exist
        return []
    renderer = render.Renderer(render.BUILTIN_TEMPLATES, user_dir=settings.templates.user_dir,
                               default_locale=settings.templates.default_locale)
    return list(renderer.check())
