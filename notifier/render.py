"""Customer notices: jinja2 templates in, :class:`RenderedMessage` out.

Pure apart from reading template files through jinja2's loaders (user folder first, then the
built-in ``templates/``) and time-zone data through zoneinfo; never reads the clock. Templates
only format: dates, times and delivery windows go through the Babel filters registered here,
in the customer's zone and locale. The layout is documented in ``templates/README.md``.
May import jinja2, babel, zoneinfo and ``notifier`` value modules only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from babel import Locale, UnknownLocaleError, dates
from jinja2 import Template, TemplateSyntaxError, pass_context, sandbox
from jinja2.runtime import Context

from carriers import links
from notifier import errors, models
from notifier.channels import base

__all__ = ["BUILTIN_TEMPLATES", "NoticeContext", "RenderError", "Renderer", "ShipmentView",
           "normalize_locale", "one_line", "sample_context"]


def _find_builtin() -> Path:
    # Source tree: templates/ sits next to notifier/. Installed wheel: the same folder is
    # shipped as package data at notifier/builtin_templates (see templates/README.md), or
    # notifier/templates should the folder ever move into the package.
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "templates", here / "builtin_templates", here / "templates"):
        if (candidate / "email").is_dir():
            return candidate
    return here.parent / "templates"


BUILTIN_TEMPLATES: Path = _find_builtin()

# Triggers whose notice is about one parcel: the context must carry ``shipment``.
SHIPMENT_TRIGGERS = frozenset({
    "shipped", "out_for_delivery", "delivered", "failed_attempt", "ready_for_pickup",
    "delayed", "exception", "returned", "dispute_received"})
URGENT_TRIGGERS = frozenset({
    "out_for_delivery", "delivered", "failed_attempt", "exception", "ready_for_pickup"})
# A newer push replaces an older one of the same family on the device. Problems get their own
# family so a later "delivered" for another parcel never hides an exception.
_FAMILY = {"shipped": "progress", "out_for_delivery": "progress", "delivered": "progress",
           "ready_for_pickup": "progress", "failed_attempt": "problem", "delayed": "problem",
           "exception": "problem", "returned": "problem", "backordered": "order",
           "payment_hold": "order", "cancelled": "order", "dispute_received": "dispute"}
_EMAIL_PARTS = ("subject.txt", "body.txt", "body.html")
_PUSH_BLOCKS = ("title", "body")
_URL_FIELDS = ("support_url", "unsubscribe_url", "order_status_url")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SPACES = re.compile(r"\s+")
_BLANKS = re.compile(r"\n{3,}")
_NAMED = frozenset({"short", "medium", "long", "full"})


class RenderError(errors.NotifierError):
    """A template is missing or failed; ``path`` names the file (and line when known)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True, slots=True, kw_only=True)
class ShipmentView:
    """The parcel as templates see it. Instants are aware UTC; dates are destination dates."""

    carrier: str
    carrier_name: str
    tracking_number: str
    tracking_url: str
    status: str
    edd_start: date | None
    edd_end: date | None
    delivered_at: datetime | None
    signed_by: str | None
    exception_reason: str | None
    status_detail: str
    last_event_text: str
    last_event_at: datetime | None
    last_event_location: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NoticeContext:
    """Everything a customer notice may show. ``shipment`` is required for SHIPMENT_TRIGGERS."""

    trigger: str
    order_id: str
    customer_name: str
    customer_email: str
    locale: str
    tz: str
    shop_name: str
    support_email: str
    support_url: str
    shipment: ShipmentView | None
    shipments_total: int
    new_edd_start: date | None
    old_edd_end: date | None
    expected_ship_date: date | None
    dispute_reason: str
    unsubscribe_url: str | None
    order_status_url: str | None


def normalize_locale(value: str, default: str = "en") -> str:
    """``fr-ca``, ``fr_CA.UTF-8`` -> ``fr_CA``; empty -> ``default``."""
    raw = value.split(".", 1)[0].split("@", 1)[0].strip()
    parts = [p for p in re.split(r"[-_]", raw) if p]
    if not parts or not parts[0].isalpha():
        return default
    out = [parts[0].lower()]
    for p in parts[1:]:
        out.append(p.title() if len(p) == 4 else p.upper())
    return "_".join(out)


def _chain(locale: str, default: str) -> tuple[str, ...]:
    parts = locale.split("_")
    chain = ["_".join(parts[:n]) for n in range(len(parts), 0, -1)] + [default]
    return tuple(dict.fromkeys(chain))


@lru_cache(maxsize=64)
def _babel(chain: tuple[str, ...]) -> Locale:
    for name in chain:
        try:
            return Locale.parse(name)
        except (UnknownLocaleError, ValueError):
            continue
    return Locale.parse("en")


@lru_cache(maxsize=256)
def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC  # an unknown zone must not stop a notice; UTC is honest about the instant


@dataclass(frozen=True, slots=True)
class _State:
    """Per-render formatting state, reached by filters through the jinja context."""

    locale: Locale
    zone: tzinfo
    chain: tuple[str, ...]
    names: frozenset[str]


def _state(ctx: Context) -> _State:
    state = ctx.get("_state")
    if not isinstance(state, _State):
        raise RuntimeError("date filters need the render context (import macros 'with context')")
    return state


def _local(value: datetime, zone: tzinfo) -> datetime:
    # Naive instants are UTC by contract (models store aware UTC); never the server's zone.
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(zone)


@pass_context
def _f_date(ctx: Context, value: date | datetime | None, fmt: str = "long") -> str:
    """A day: named Babel format (short/medium/long/full) or a CLDR skeleton such as MMMEd."""
    if value is None:
        return ""
    st = _state(ctx)
    day = _local(value, st.zone).date() if isinstance(value, datetime) else value
    if fmt in _NAMED:
        return dates.format_date(day, fmt, locale=st.locale)
    return dates.format_skeleton(fmt, day, locale=st.locale)


@pass_context
def _f_datetime(ctx: Context, value: datetime | None, fmt: str = "MMMEd") -> str:
    """An instant in the customer's zone: a named Babel format, or a CLDR date skeleton for the
    day followed by the locale's short time ("Sun, Nov 3, 10:05 AM" by default)."""
    if value is None:
        return ""
    st = _state(ctx)
    local = _local(value, st.zone)
    if fmt in _NAMED:
        return dates.format_datetime(local, fmt, tzinfo=st.zone, locale=st.locale)
    day = dates.format_skeleton(fmt, local, tzinfo=st.zone, locale=st.locale)
    clock = dates.format_time(local, "short", tzinfo=st.zone, locale=st.locale)
    pattern = str(st.locale.datetime_formats.get("medium", "{1}, {0}"))
    return pattern.replace("{1}", day).replace("{0}", clock)


@pass_context
def _f_time(ctx: Context, value: datetime | None, fmt: str = "short") -> str:
    """A time of day in the customer's zone: a named Babel format or a skeleton (hm, Hm)."""
    if value is None:
        return ""
    st = _state(ctx)
    local = _local(value, st.zone)
    if fmt in _NAMED:
        return dates.format_time(local, fmt, tzinfo=st.zone, locale=st.locale)
    return dates.format_skeleton(fmt, local, tzinfo=st.zone, locale=st.locale)


@pass_context
def _f_edd(ctx: Context, start: date | None, end: date | None = None) -> str:
    """A delivery day ("Tue, December 3") or window ("Tue, Dec 3 – Thu, Dec 5"), localised."""
    if start is None:
        return ""
    st = _state(ctx)
    if end is None or end <= start:
        return dates.format_skeleton("MMMMEEEEd", start, locale=st.locale)
    skeleton = "MMMEd" if start.year == end.year else "yMMMEd"
    return str(dates.format_interval(start, end, skeleton, locale=st.locale))


@pass_context
def _g_localized(ctx: Context, pattern: str) -> list[str]:
    """``{% include localized("email/{locale}/_footer.html") %}``: the first that exists wins."""
    st = _state(ctx)
    names = [pattern.format(locale=loc) for loc in st.chain]
    found = [n for n in names if n in st.names]
    return found or names


def one_line(text: str, limit: int) -> str:
    """Header-safe: no CR/LF or other control characters, single spaces, at most ``limit``."""
    flat = _SPACES.sub(" ", _CONTROL.sub(" ", text)).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _tidy_text(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip() + "\n"


def _safe_url(url: str | None) -> str | None:
    # Carrier and shop links are shown as clickable links: anything but http(s) is dropped.
    if url and url.strip().lower().startswith(("https://", "http://")):
        return url.strip()
    return None if url is None else ""


def _locate(exc: BaseException, fallback: str) -> str:
    if isinstance(exc, TemplateSyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    where = fallback
    tb = exc.__traceback__
    while tb is not None:  # innermost template frame (jinja rewrites frames to template lines)
        name = tb.tb_frame.f_code.co_filename
        if name.endswith((".html", ".txt")):
            where = f"{name}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where


class Renderer:
    """Loads templates once and renders notices; build a new one to pick up changed files."""

    def __init__(self, builtin_dir: Path = BUILTIN_TEMPLATES, *, user_dir: Path | None = None,
                 default_locale: str = "en", max_subject: int = 200, max_push_title: int = 100,
                 max_push_body: int = 600, ttl_short_s: int = 4 * 3600,
                 ttl_long_s: int = 48 * 3600) -> None:
        self._builtin = builtin_dir
        self._user = user_dir
        self.default_locale = normalize_locale(default_locale)
        self._limits = (max_subject, max_push_title, max_push_body)
        self._ttl = (ttl_short_s, ttl_long_s)
        dirs = [d for d in (user_dir, builtin_dir) if d is not None]
        loaders = [jinja2.FileSystemLoader(str(d)) for d in dirs]
        self._env = sandbox.SandboxedEnvironment(
            loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False,
                                         default_for_string=False),
            trim_blocks=True, lstrip_blocks=True, auto_reload=False, cache_size=2000)
        self._env.filters.update(date=_f_date, datetime=_f_datetime, time=_f_time, edd=_f_edd)
        self._env.globals["localized"] = _g_localized
        self._names = frozenset(self._env.list_templates(extensions=("txt", "html")))
        self._user_names = frozenset(jinja2.FileSystemLoader(str(user_dir)).list_templates()
                                     if user_dir is not None and user_dir.is_dir() else ())
        found = {n.split("/")[1] for n in self._names
                 if n.count("/") >= 2 and n.split("/")[0] in ("email", "push")}
        others = sorted(loc for loc in found if loc != self.default_locale)
        self.locales: tuple[str, ...] = (self.default_locale, *others)

    def _resolve(self, pattern: str, chain: tuple[str, ...]) -> tuple[str, Template, str]:
        for loc in chain:
            name = pattern.format(locale=loc)
            if name in self._names:
                try:
                    return name, self._env.get_template(name), loc
                except TemplateSyntaxError as exc:
                    raise RenderError(_locate(exc, name), f"TemplateSyntaxError: {exc}") from exc
        tried = ", ".join(pattern.format(locale=loc) for loc in chain)
        path = self._builtin / pattern.format(locale=self.default_locale)
        raise RenderError(str(path), f"template not found (tried {tried})")

    def _render(self, tmpl: Template, variables: dict[str, Any],
                blocks: tuple[str, ...] = ()) -> list[str]:
        origin = tmpl.filename or tmpl.name or "?"
        try:
            try:
                if not blocks:
                    return [tmpl.render(variables)]
                missing = [b for b in blocks if b not in tmpl.blocks]
                if missing:
                    raise RenderError(origin, f"missing block(s): {', '.join(missing)}")
                ctx = tmpl.new_context(variables)
                return ["".join(tmpl.blocks[b](ctx)) for b in blocks]
            except RenderError:
                raise
            except Exception:
                self._env.handle_exception()  # re-raises with template file/line frames
        except RenderError:
            raise
        except Exception as exc:
            raise RenderError(_locate(exc, origin), f"{type(exc).__name__}: {exc}") from exc

    def render(self, notification_id: str, ctx: NoticeContext, *,
               channel: str) -> base.RenderedMessage:
        """Render ``ctx`` for ``channel`` ("email", else a push channel). Raises RenderError."""
        if ctx.trigger in SHIPMENT_TRIGGERS and ctx.shipment is None:
            raise RenderError(ctx.trigger, "this trigger needs a shipment in the context")
        chain = _chain(normalize_locale(ctx.locale, self.default_locale), self.default_locale)
        variables = self._variables(ctx, chain)
        short, long_ = self._ttl
        common: dict[str, Any] = {
            "notification_id": notification_id, "trigger": ctx.trigger,
            "collapse_key": _collapse_key(ctx),
            "ttl_s": short if ctx.trigger == "out_for_delivery" else long_,
            "urgent": ctx.trigger in URGENT_TRIGGERS,
            "list_unsubscribe_url": variables["unsubscribe_url"] or None}
        max_subject, max_title, max_body = self._limits
        if channel == "email":
            folder = "email/{locale}/" + ctx.trigger + "/"
            _, tmpl, _ = self._resolve(folder + "subject.txt", chain)
            subject = one_line(self._render(tmpl, variables)[0], max_subject)
            variables["subject"] = subject
            _, tmpl, _ = self._resolve(folder + "body.txt", chain)
            text = _tidy_text(self._render(tmpl, variables)[0])
            _, tmpl, lang = self._resolve(folder + "body.html", chain)
            variables["html_lang"] = lang.replace("_", "-")
            html = self._render(tmpl, variables)[0].strip() + "\n"
            return base.RenderedMessage(subject=subject, text=text, html=html, locale=lang,
                                        **common)
        _, tmpl, lang = self._resolve("push/{locale}/" + ctx.trigger + ".txt", chain)
        title, body = self._render(tmpl, variables, _PUSH_BLOCKS)
        return base.RenderedMessage(
            title=one_line(title, max_title), body=one_line(body, max_body), locale=lang,
            data=_push_data(notification_id, ctx, variables), **common)

    def _variables(self, ctx: NoticeContext, chain: tuple[str, ...]) -> dict[str, Any]:
        values = {f.name: getattr(ctx, f.name) for f in fields(ctx)}
        for key in _URL_FIELDS:
            values[key] = _safe_url(values[key])
        if ctx.shipment is not None:
            values["shipment"] = replace(
                ctx.shipment, tracking_url=_safe_url(ctx.shipment.tracking_url) or "")
        values["locale"] = chain[0]
        values["_state"] = _State(_babel(chain), _zone(ctx.tz), chain, self._names)
        return values

    def check(self, sample_contexts: Iterable[NoticeContext] | None = None, *,
              now: datetime | None = None) -> list[str]:
        """Render every trigger x locale x {email, push} with sample data (or the contexts
        given); return one "TEMPLATE_PATH: problem" line per distinct problem found."""
        problems: dict[str, str] = {}  # problem -> the first case that showed it
        now = now or _SAMPLE_NOW
        contexts: Iterable[tuple[str, NoticeContext]] = (
            (("custom", c) for c in sample_contexts) if sample_contexts is not None else
            ((label, c) for trigger in models.Trigger for loc in self.locales
             for label, c in _variants(trigger.value, loc, now)))
        for label, ctx in contexts:
            for kind in ("email", "push"):
                where = f"({ctx.trigger}, {ctx.locale}, {kind}, {label})"
                try:
                    msg = self.render("check", ctx, channel=kind)
                except RenderError as exc:
                    problems.setdefault(str(exc), where)
                    continue
                for name, problem in _content_problems(msg, ctx, kind):
                    path = self._env.get_template(name).filename if name in self._names else name
                    problems.setdefault(f"{path}: {problem}", where)
        if self._user is not None and not self._user.is_dir():
            problems[f"{self._user}: user template folder does not exist"] = ""
        for name in sorted(self._user_names):
            if _unknown_name(name):
                problems[f"{self._user}/{name}: not a known template name (file ignored)"] = ""
        return [f"{problem} {where}".rstrip() for problem, where in problems.items()]


def _content_problems(msg: base.RenderedMessage, ctx: NoticeContext,
                      kind: str) -> list[tuple[str, str]]:
    """(template name, problem) for output that rendered but is unusable."""
    if kind == "email":
        folder = f"email/{msg.locale}/{ctx.trigger}"
        out = [] if msg.subject else [(f"{folder}/subject.txt", "renders an empty subject")]
        if ctx.unsubscribe_url and ctx.unsubscribe_url not in (msg.html or ""):
            out.append((f"{folder}/body.html", "does not show the unsubscribe link"))
        return out
    if msg.title and msg.body:
        return []
    return [(f"push/{msg.locale}/{ctx.trigger}.txt", "renders an empty title or body")]


def _unknown_name(name: str) -> bool:
    parts = name.split("/")
    triggers = {t.value for t in models.Trigger}
    if parts[0] == "email" and len(parts) == 4:
        return parts[2] not in triggers or parts[3] not in _EMAIL_PARTS
    if parts[0] == "push" and len(parts) == 3 and not parts[2].startswith("_"):
        return parts[2].removesuffix(".txt") not in triggers
    return False


def _collapse_key(ctx: NoticeContext) -> str:
    key = f"{ctx.order_id}:{_FAMILY.get(ctx.trigger, ctx.trigger)}"
    # APNs caps apns-collapse-id at 64 bytes; long order ids are hashed, stably.
    if len(key.encode()) > 64:
        key = "h:" + hashlib.sha256(key.encode()).hexdigest()[:40]
    return key


def _push_data(notification_id: str, ctx: NoticeContext,
               variables: dict[str, Any]) -> dict[str, Any]:
    shipment = variables.get("shipment")
    data = {"notification_id": notification_id, "order_id": ctx.order_id,
            "trigger": ctx.trigger,
            "url": variables["order_status_url"] or (shipment.tracking_url if shipment else "")}
    if isinstance(shipment, ShipmentView):
        data |= {"carrier": shipment.carrier, "tracking_number": shipment.tracking_number,
                 "status": shipment.status}
    # FCM data values must be strings; empty ones are left out.
    return {k: str(v) for k, v in data.items() if v}


# Sample data: check() and send-test. A fixed instant keeps check() deterministic.
_SAMPLE_NOW = datetime(2024, 11, 29, 15, 30, tzinfo=UTC)
_PEOPLE = {"en": ("Sam Taylor", "America/New_York", "The box was not at my door."),
           "fr": ("Camille Martin", "Europe/Paris", "Le colis n'était pas dans ma boîte."),
           "de": ("Lena Fischer", "Europe/Berlin", "Das Paket lag nicht vor meiner Tür.")}
_PICKUP = {"en": "UPS Access Point, 120 Main St, Springfield",
           "fr": "Relais Pickup, 14 rue de la République, Lyon",
           "de": "DHL Packstation 118, Berlin"}
_STATUS = {"shipped": "in_transit", "delayed": "in_transit", "dispute_received": "delivered",
           "ready_for_pickup": "available_for_pickup"}


def sample_context(trigger: str, locale: str = "en", *, now: datetime,
                   shop_name: str = "Example Shop", support_email: str = "support@example.com",
                   support_url: str = "https://example.com/help") -> NoticeContext:
    """Realistic data for ``trigger`` in ``locale`` around ``now`` (aware UTC)."""
    lang = normalize_locale(locale).split("_")[0]
    name, tz, complaint = _PEOPLE.get(lang, _PEOPLE["en"])
    today = now.date()
    status = _STATUS.get(trigger, trigger if trigger in SHIPMENT_TRIGGERS else "in_transit")
    delivered = status == "delivered"
    number = "1Z999AA10123456784"
    shipment = ShipmentView(
        carrier="ups", carrier_name="UPS", tracking_number=number,
        tracking_url=links.tracking_url("ups", number), status=status,
        edd_start=None if delivered else today + timedelta(days=2),
        edd_end=None if delivered else today + timedelta(days=4),
        delivered_at=now - timedelta(hours=3) if delivered else None,
        signed_by="S. TAYLOR" if trigger == "delivered" else None,
        exception_reason="address" if trigger == "exception" else None,
        status_detail={"failed_attempt": "Receiver not available",
                       "exception": "Address incomplete"}.get(trigger, ""),
        last_event_text="Arrived at facility", last_event_at=now - timedelta(hours=3),
        last_event_location=_PICKUP.get(lang, _PICKUP["en"])
        if trigger == "ready_for_pickup" else "Springfield, IL, US")
    return NoticeContext(
        trigger=trigger, order_id="1042", customer_name=name, customer_email="sam@example.com",
        locale=locale, tz=tz, shop_name=shop_name, support_email=support_email,
        support_url=support_url,
        shipment=shipment if trigger in SHIPMENT_TRIGGERS else None, shipments_total=1,
        new_edd_start=today + timedelta(days=2) if trigger == "delayed" else None,
        old_edd_end=today - timedelta(days=1) if trigger == "delayed" else None,
        expected_ship_date=today + timedelta(days=10) if trigger == "backordered" else None,
        dispute_reason=complaint if trigger == "dispute_received" else "",
        unsubscribe_url="https://example.com/unsubscribe?t=sample",
        order_status_url="https://example.com/orders/1042")


def _variants(trigger: str, locale: str, now: datetime) -> Iterator[tuple[str, NoticeContext]]:
    """The sample plus the optional-data corners templates must survive."""
    ctx = sample_context(trigger, locale, now=now)
    yield "sample", ctx
    yield "bare", replace(ctx, customer_name="", unsubscribe_url=None, order_status_url=None,
                          expected_ship_date=None, new_edd_start=None, old_edd_end=None,
                          dispute_reason="", shipments_total=2)
    shipment = ctx.shipment
    if shipment is not None:
        def bare(**kw: Any) -> ShipmentView:
            return replace(shipment, edd_start=None, edd_end=None, delivered_at=None,
                           signed_by=None, status_detail="", last_event_at=None,
                           last_event_location="", **kw)
        yield "no shipment details", replace(ctx, shipment=bare(), new_edd_start=None)
        if trigger == "exception":
            for reason in ("damaged", "customs", "weather", "refused", "held", "lost",
                           "other", None):
                yield f"reason {reason}", replace(ctx, shipment=bare(exception_reason=reason))
