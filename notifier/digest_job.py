"""The ``digest_check`` job: immediate ops alerts, then the scheduled ops digest when one is due.

Runs every ``daemon.digest_check`` (a minute) of the daemon's clock, so a simulated clock
drives it too. Each run (1) evaluates the alert rules (:mod:`notifier.alerts`) and e-mails
pending alerts at once, then (2) asks :func:`notifier.digest.due_period` whether a cron fire
time of ``digest.cron`` in ``digest.tz`` is due (APScheduler's ``CronTrigger`` is used only as a
calculator, against ``app.clock.now()``). A due period is claimed by inserting its ``digests``
row first (PRIMARY KEY: one digest per period across restarts and processes), then the digest
is gathered, rendered (``templates/digest/``) and sent to each recipient and the optional
webhook, recording who was served after each delivery so a retry (a ``failed`` row, or a
``pending`` row left by a crash) never serves anyone twice; finally the row is marked ``sent``.
The rendered HTML/text are also written to ``digest.out_dir`` when set. I/O module.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import jinja2
from apscheduler.triggers.cron import CronTrigger

from notifier import alerts, metrics
from notifier import digest as dg
from notifier.channels import webhook
from notifier.channels.base import Channel, Recipient, RenderedMessage
from notifier.channels.email import EmailChannel, mask_address
from notifier.config import EmailSettings, Settings
from notifier.errors import DeliveryError, DeliveryRejected, DeliveryTransient
from notifier.render import BUILTIN_TEMPLATES

if TYPE_CHECKING:
    from notifier.app import App

__all__ = ["DigestJob", "DigestOutcome", "DigestRenderer", "RenderedDigest",
           "channel_paused_hook", "fire_calculator", "install"]

logger = logging.getLogger(__name__)

MANUAL_PREFIX = "manual:"
WEBHOOK_TARGET = "webhook"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def fire_calculator(cron: str, tz: tzinfo) -> dg.FireCalculator:
    """``CronTrigger.get_next_fire_time`` for a crontab line in ``tz`` (no scheduler runs)."""
    trigger = CronTrigger.from_crontab(cron, timezone=tz)

    def next_fire(previous: datetime | None, now: datetime) -> datetime | None:
        fire: datetime | None = trigger.get_next_fire_time(previous, now)
        return fire

    return next_fire


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderedDigest:
    subject: str
    text: str
    html: str


class DigestRenderer:
    """``templates/digest/digest.{html,txt}`` (a ``digest/`` folder in ``templates.user_dir``
    overrides them). HTML is autoescaped: carrier texts and order ids are data, not markup."""

    def __init__(self, user_dir: Path | None = None) -> None:
        folders = [str(user_dir / "digest")] if user_dir and (user_dir / "digest").is_dir() else []
        folders.append(str(BUILTIN_TEMPLATES / "digest"))
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(folders), undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
            keep_trailing_newline=True)

    def render(self, digest: dg.Digest) -> RenderedDigest:
        html = self._env.get_template("digest.html").render(d=digest)
        text = self._env.get_template("digest.txt").render(d=digest)
        return RenderedDigest(subject=digest.subject, text=re.sub(r"\n{3,}", "\n\n", text),
                              html=html)


@dataclass(frozen=True, slots=True, kw_only=True)
class DigestOutcome:
    period_key: str
    status: str  # "sent" or "failed"
    digest: dg.Digest
    rendered: RenderedDigest
    delivered: tuple[str, ...]
    errors: tuple[str, ...]


class DigestJob:
    """The digest and alert work of one :class:`~notifier.app.App` (settings read live, so a
    SIGHUP reload applies). ``channel`` (e-mail) and ``http`` (webhook) are made on first use
    and closed by :meth:`aclose` unless given by the caller."""

    def __init__(self, app: App, *, channel: Channel | None = None,
                 http: httpx.AsyncClient | None = None,
                 retry_pending_after: timedelta = timedelta(minutes=10)) -> None:
        self.app = app
        self.retry_pending_after = retry_pending_after
        self._channel = channel
        self._own_channel = channel is None
        self._channel_settings: EmailSettings | None = None
        self._retired: list[Channel] = []
        self._http = http
        self._own_http = http is None
        self._calc: tuple[tuple[str, str], dg.FireCalculator] | None = None
        self._renderer: tuple[Path | None, DigestRenderer] | None = None

    @property
    def settings(self) -> Settings:
        return self.app.settings

    # ------------------------------------------------------------------ the job

    async def check(self) -> None:
        """The ``digest_check`` job: alerts first (they are urgent), then the digest."""
        now = self.app.clock.now()
        try:
            await self.check_alerts(now)
        except Exception:  # alerts failing must not stop the digest (and vice versa)
            logger.exception("ops alert check failed")
        if self.settings.digest.enabled:
            await self.run_scheduled(now)

    async def check_alerts(self, now: datetime) -> int:
        """Evaluate the alert rules, record them, send the pending ones; returns how many."""
        store, a = self.app.store, self.settings.alerts
        inputs = alerts.AlertInputs(
            health=await store.carrier_health_all(),
            dead_recent=await store.dead_count_since(now - alerts.DEAD_WINDOW),
            stale_opened=await store.stale_opened_by_carrier(now - alerts.STALE_SPIKE_WINDOW))
        for alert in alerts.evaluate(inputs, now=now, settings=a):
            await alerts.raise_alert(store, alert.key, alert.detail, now, cooldown=a.cooldown)
        return await alerts.deliver_pending(store, self._send_alert, now=now)

    async def run_scheduled(self, now: datetime) -> DigestOutcome | None:
        """Send the due period's digest (or retry an unfinished one); None when nothing to do."""
        rows = await self.app.store.digest_rows(scheduled_only=True)
        scheduled = [r for r in rows if r.fire_time is not None]
        last = max(scheduled, key=lambda r: r.fire_time or now, default=None)
        due = dg.due_period(self._calculator(), now=now,
                            last_fire=None if last is None else last.fire_time)
        if due is not None:
            key, fallback = due.key, due.previous_fire
            skipped = {"skipped": due.skipped, "skipped_first": due.skipped_first}
        elif last is not None and last.status != "sent":
            key, fallback, skipped = last.period_key, None, {}  # retry; keeps its summary
        else:
            return None
        claim = await self.app.store.digest_claim(
            key, now=now, stale_before=now - self.retry_pending_after)
        if claim is None:
            return None
        summary = {**claim.summary, **skipped}
        fire = dg.parse_period_key(key)
        since = _previous_sent(scheduled, before=fire) or fallback or now - timedelta(days=1)
        return await self._produce(key, summary, now=now, since=since)

    async def send_now(self) -> DigestOutcome:
        """An on-demand digest (``notifier digest --send``), recorded as ``manual:<now>``."""
        now = self.app.clock.now()
        key = MANUAL_PREFIX + now.isoformat()
        claim = await self.app.store.digest_claim(key, now=now, stale_before=now)
        summary = {} if claim is None else dict(claim.summary)
        return await self._produce(key, summary, now=now, since=await self._since_now(now))

    async def preview(self) -> tuple[dg.Digest, RenderedDigest]:
        """The digest as of now, rendered, without sending or recording anything."""
        now = self.app.clock.now()
        digest = await self.build(now=now, since=await self._since_now(now), key="preview")
        return digest, self.renderer().render(digest)

    async def build(self, *, now: datetime, since: datetime, key: str,
                    summary: dict[str, Any] | None = None) -> dg.Digest:
        store, s = self.app.store, self.settings.digest
        dead_total, dead_latest = await store.dead_notifications(limit=5)
        data = dg.DigestData(anomalies=await store.digest_anomalies(since),
                             disputes=await store.digest_disputes(), dead_total=dead_total,
                             dead_latest=dead_latest, health=await store.carrier_health_all())
        summary = summary or {}
        return dg.build_digest(data, now=now, since=since, period_key=key, tz=s.tz.zone,
                               max_rows_per_group=s.max_rows_per_group,
                               skipped_periods=int(summary.get("skipped") or 0),
                               skipped_first=summary.get("skipped_first"))

    def renderer(self) -> DigestRenderer:
        user_dir = self.settings.templates.user_dir
        if self._renderer is None or self._renderer[0] != user_dir:
            self._renderer = (user_dir, DigestRenderer(user_dir))
        return self._renderer[1]

    async def aclose(self) -> None:
        while self._retired:
            await self._retired.pop().aclose()
        if self._own_channel and self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.aclose()
        if self._own_http and self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    # ------------------------------------------------------------------ internals

    def _calculator(self) -> dg.FireCalculator:
        s = self.settings.digest
        spec = (s.cron, str(s.tz))
        if self._calc is None or self._calc[0] != spec:
            self._calc = (spec, fire_calculator(s.cron, s.tz.zone))
        return self._calc[1]

    async def _since_now(self, now: datetime) -> datetime:
        rows = await self.app.store.digest_rows(scheduled_only=True)
        return _previous_sent([r for r in rows if r.fire_time is not None],
                              before=None) or now - timedelta(days=1)

    async def _produce(self, key: str, summary: dict[str, Any], *, now: datetime,
                       since: datetime) -> DigestOutcome:
        store = self.app.store
        try:
            digest = await self.build(now=now, since=since, key=key, summary=summary)
            rendered = self.renderer().render(digest)
            self._write_out(key, rendered)
            summary.update(open=digest.open_total, opened=digest.opened_total,
                           closed=digest.closed_total, disputes=digest.disputes_total,
                           dead=digest.dead_total, since=since.isoformat())
            done: list[str] = list(summary.get("delivered") or [])
            errors: list[str] = []
            for target in self._targets():
                if target in done:
                    continue  # served by an earlier attempt of this period
                error = await self._deliver(target, key, digest, rendered)
                if error is None or error[1]:  # sent, or refused for good: do not retry
                    done.append(target)
                if error is not None:
                    errors.append(error[0])
                summary.update(delivered=done, errors=errors)
                await store.digest_update(key, status="pending", summary=summary)
            ok = all(t in done for t in self._targets())
            status = "sent" if ok else "failed"
            await store.digest_update(key, status=status, summary=summary,
                                      sent_at=now if ok else None)
        except BaseException:
            with contextlib.suppress(Exception):
                await store.digest_update(key, status="failed", summary=summary)
            raise
        if ok:
            metrics.digest_last_sent.set(now.timestamp())
            logger.info("ops digest %s sent: %d open anomalies, %d new, %d resolved, %d dead",
                        key, digest.open_total, digest.opened_total, digest.closed_total,
                        digest.dead_total, extra={"action": "digest"})
        else:
            logger.warning("ops digest %s not fully sent (retried next run): %s", key,
                           "; ".join(errors), extra={"action": "digest"})
        return DigestOutcome(period_key=key, status=status, digest=digest, rendered=rendered,
                             delivered=tuple(done), errors=tuple(errors))

    def _targets(self) -> list[str]:
        s = self.settings
        targets = list(s.digest.recipients or s.email.ops_recipients) if s.email.enabled else []
        if s.digest.webhook_url:
            targets.append(WEBHOOK_TARGET)
        return targets

    async def _deliver(self, target: str, key: str, digest: dg.Digest,
                       rendered: RenderedDigest) -> tuple[str, bool] | None:
        """None when delivered, else (error text, permanent?)."""
        message_id = "digest-" + key
        try:
            if target == WEBHOOK_TARGET:
                await self._post_webhook(RenderedMessage(
                    notification_id=message_id, trigger="ops_digest", title=digest.subject,
                    body=rendered.text, data=dg.digest_json(digest)))
            else:
                await self._email().send(RenderedMessage(
                    notification_id=message_id, trigger="ops_digest", subject=rendered.subject,
                    text=rendered.text, html=rendered.html), Recipient(address=target))
        except DeliveryError as exc:
            text = str(exc) if target == WEBHOOK_TARGET else f"{mask_address(target)}: {exc}"
            return text, isinstance(exc, DeliveryRejected)
        return None

    def _email(self) -> Channel:
        settings = self.settings.email
        if self._channel is None or (self._own_channel and self._channel_settings != settings):
            if self._channel is not None:
                logger.info("e-mail settings changed: new SMTP connections for ops mail")
                self._retired.append(self._channel)  # closed by aclose()
            self._channel = EmailChannel(settings, clock=self.app.clock)
            self._channel_settings = settings
        return self._channel

    async def _post_webhook(self, message: RenderedMessage) -> None:
        """Signed like the webhook channel when ``push.webhook.secret`` is set; else unsigned."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=15.0)
        url = self.settings.digest.webhook_url
        hook = self.settings.push.webhook
        if hook.secret:
            await webhook.WebhookChannel(hook, self._http).send(message, Recipient(address=url))
            return
        now = self.app.clock.now().timestamp()
        body = json.dumps(webhook.build_payload(message, now=now), ensure_ascii=False)
        try:
            response = await self._http.post(url, content=body.encode(),
                                             headers={"content-type": "application/json"})
        except httpx.HTTPError as exc:
            raise DeliveryTransient("webhook", f"digest webhook: {exc!r}") from exc
        error = webhook.classify(response.status_code, response.text[:200],
                                 response.headers.get("Retry-After"), now=now)
        if error is not None:
            raise error

    async def _send_alert(self, message: RenderedMessage) -> bool:
        s = self.settings
        recipients = s.alerts.recipients or s.email.ops_recipients
        logger.warning("OPS ALERT %s", message.subject, extra={"action": "ops_alert"})
        if not (recipients and s.email.enabled):
            return True  # the log line above is the only delivery there is
        sent = False
        for address in recipients:
            try:
                await self._email().send(message, Recipient(address=address))
                sent = True
            except DeliveryError as exc:
                logger.error("ops alert to %s failed: %s", mask_address(address), exc)
        return sent

    def _write_out(self, key: str, rendered: RenderedDigest) -> None:
        out_dir = self.settings.digest.out_dir
        if out_dir is None:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = "digest-" + _UNSAFE.sub("-", key).strip("-")
        for suffix, content in ((".html", rendered.html), (".txt", rendered.text)):
            path = out_dir / (stem + suffix)
            tmp = path.with_suffix(suffix + ".tmp")
            tmp.write_text(content, encoding="utf-8")
            os.replace(tmp, path)


def _previous_sent(rows: list[dg.DigestRecord], *, before: datetime | None) -> datetime | None:
    """When the latest sent scheduled digest before ``before`` gathered its data."""
    sent = [r for r in rows if r.status == "sent" and r.fire_time is not None
            and (before is None or r.fire_time < before)]
    return max((r.created_at for r in sent), default=None)


def channel_paused_hook(app: App) -> Callable[[str, str], Awaitable[None]]:
    """For ``outbox.install(app, on_channel_paused=...)``: the outbox has already upserted the
    ``channel_paused:<channel>`` row (a new row is pending and goes out on the next
    ``digest_check``); this makes a known one pending again when its cooldown is over."""

    async def hook(channel: str, reason: str) -> None:
        await app.store.ops_alert_raise(f"channel_paused:{channel}", reason[:500],
                                        now=app.clock.now(),
                                        cooldown=app.settings.alerts.cooldown, count=False)

    return hook


def install(app: App) -> None:
    """Set ``app.jobs["digest_check"]`` (alerts + digest, each minute) and register closing."""
    job = DigestJob(app)
    app.jobs["digest_check"] = job.check
    app.closers.append(job.aclose)
