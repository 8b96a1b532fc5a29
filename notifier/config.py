"""Typed settings read from ``config.toml`` and validated completely at start.

Every section is a frozen dataclass; :func:`load` walks the TOML against those dataclasses and
collects *every* problem as one line ``FILE: KEY.PATH: problem`` before raising
:class:`~notifier.errors.ConfigError` (the CLI exits 78, EX_CONFIG). Durations are written
``"90s"``, ``"90m"``, ``"3h"``, ``"2d"``; time zones are IANA names; secrets are ``"${ENV_VAR}"``,
``"credential:NAME"`` (a file in ``$CREDENTIALS_DIRECTORY``, systemd ``LoadCredential=``) or a
literal (demo only). Relative paths resolve against the config file's folder.

Adding a setting is adding a field with a default here (and a commented line in config.toml).
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from notifier.errors import ConfigError

__all__ = [
    "DEFAULT_PATHS",
    "Secret",
    "Settings",
    "find_config",
    "load",
    "parse_duration",
]

DEFAULT_PATHS = (Path("config.toml"), Path("/etc/notifier/config.toml"))


class Secret(str):
    """A string that never shows itself in repr/logs."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"

    def reveal(self) -> str:
        return str.__str__(self)


class TimeZone(str):
    """An IANA time-zone name that was checked to exist."""

    __slots__ = ()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``"90m"`` -> 90 minutes. Raises ValueError with a readable message."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"bad duration {text!r} (use a number and a unit: 30s, 90m, 3h, 2d)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def format_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


# --------------------------------------------------------------------------------------------
# Sections


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonSettings:
    poll_tick: timedelta = timedelta(seconds=30)
    sweep_interval: timedelta = timedelta(minutes=1)
    outbox_interval: timedelta = timedelta(seconds=10)
    digest_check: timedelta = timedelta(minutes=1)
    housekeeping_interval: timedelta = timedelta(hours=1)
    # Real seconds of random delay added to each periodic job run.
    jitter: timedelta = timedelta(seconds=1)
    # How long SIGTERM waits for in-flight work (polls, sends) before giving up.
    drain_grace: timedelta = timedelta(seconds=20)
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockSettings:
    """``system`` in production; ``simulated`` for the demo and tests (days in seconds)."""

    mode: Literal["system", "simulated"] = "system"
    start: datetime | None = None
    speed: float = 1.0
    # Unix time at which the simulated clock stood at ``start``; shared with the sandbox.
    anchor: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseSettings:
    path: Path = Path("notifier.sqlite3")
    busy_timeout: timedelta = timedelta(seconds=5)


@dataclass(frozen=True, slots=True, kw_only=True)
class CarrierConfig:
    enabled: bool = True
    base_url: str = ""
    client_id: Secret = Secret("")
    client_secret: Secret = Secret("")
    api_key: Secret = Secret("")
    # Budget: never exceed either. 0 = unlimited for that window.
    requests_per_second: float = 1.0
    requests_per_day: int = 0
    requests_per_hour: int = 0
    concurrency: int = 4
    timeout: timedelta = timedelta(seconds=15)
    use_batch: bool = True


def _carrier(base_url: str, rps: float, per_day: int = 0, per_hour: int = 0) -> CarrierConfig:
    return CarrierConfig(base_url=base_url, requests_per_second=rps, requests_per_day=per_day,
                         requests_per_hour=per_hour)


@dataclass(frozen=True, slots=True, kw_only=True)
class CarriersSettings:
    # Defaults: production bases and the published quotas (reference/carriers.md section 1).
    ups: CarrierConfig = _carrier("https://onlinetools.ups.com", 5.0)
    fedex: CarrierConfig = _carrier("https://apis.fedex.com", 140.0, per_day=100_000)
    dhl: CarrierConfig = _carrier("https://api-eu.dhl.com", 1.0, per_day=250)
    usps: CarrierConfig = _carrier("https://apis.usps.com", 1.0, per_hour=60)


@dataclass(frozen=True, slots=True, kw_only=True)
class PollingSettings:
    """Adaptive schedule: base interval by status, backed off while nothing changes."""

    pending: timedelta = timedelta(hours=6)
    info_received: timedelta = timedelta(hours=6)
    in_transit: timedelta = timedelta(hours=3)
    out_for_delivery: timedelta = timedelta(minutes=30)
    at_or_past_edd: timedelta = timedelta(hours=1)
    exception: timedelta = timedelta(hours=1)
    failed_attempt: timedelta = timedelta(hours=2)
    available_for_pickup: timedelta = timedelta(hours=6)
    unknown: timedelta = timedelta(hours=3)
    # Each unchanged poll multiplies the interval by this, up to max_interval.
    backoff_factor: float = 1.5
    max_interval: timedelta = timedelta(hours=12)
    delivered_confirmations: int = 2
    delivered_confirmation_interval: timedelta = timedelta(hours=6)
    max_age: timedelta = timedelta(days=60)
    # Fraction of the interval added or removed at random so polls do not bunch.
    jitter: float = 0.1
    batch_limit: int = 2000
    circuit_failures: int = 5
    circuit_open_for: timedelta = timedelta(minutes=5)
    # Spare budget is spent polling where news is likely ahead of schedule, but never one
    # shipment more often than this (a good API citizen, also for carriers with no quota).
    min_interval: timedelta = timedelta(minutes=15)
    # Local hours at the destination (the customer's zone) in which parcels go out for
    # delivery and are delivered: from start_hour on the EDD day, shipments near delivery
    # are polled without back-off; outside these hours nothing is polled eagerly.
    delivery_hours_start: int = 6
    delivery_hours_end: int = 21


@dataclass(frozen=True, slots=True, kw_only=True)
class AnomalySettings:
    business_days: bool = True
    holidays: tuple[date, ...] = ()
    weekend: tuple[int, ...] = (5, 6)  # Monday = 0
    stale_processing_days: float = 2
    payment_hold_days: float = 3
    stale_pre_transit_days: float = 3
    stale_in_transit_days: float = 3
    # Per-carrier overrides, e.g. { usps = 4 }.
    stale_in_transit_days_by_carrier: dict[str, float] = field(default_factory=dict)
    not_found_grace: timedelta = timedelta(days=2)
    edd_slip_min_days: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationSettings:
    channels: tuple[str, ...] = ("email",)
    # Per trigger, the channels it may use; a trigger not listed uses ``channels``.
    triggers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    disabled_triggers: tuple[str, ...] = ()
    max_event_age: timedelta = timedelta(days=2)
    daily_cap: int = 6
    quiet_hours_start: int = 21
    quiet_hours_end: int = 8
    give_up_after: timedelta = timedelta(days=3)
    lease: timedelta = timedelta(minutes=5)
    batch_size: int = 200
    concurrency: int = 8
    retry_attempts: int = 3
    retry_max_wait: timedelta = timedelta(seconds=30)


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 587
    security: Literal["starttls", "tls", "plain"] = "starttls"
    username: Secret = Secret("")
    password: Secret = Secret("")
    from_address: str = "orders@example.com"
    from_name: str = "Example Shop"
    reply_to: str = ""
    ops_recipients: tuple[str, ...] = ()
    timeout: timedelta = timedelta(seconds=30)
    pool_size: int = 3
    ca_file: Path | None = None
    unsubscribe_mailto: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class FcmSettings:
    enabled: bool = False
    project_id: str = ""
    service_account_file: Path | None = None
    base_url: str = "https://fcm.googleapis.com"
    token_url: str = "https://oauth2.googleapis.com/token"


@dataclass(frozen=True, slots=True, kw_only=True)
class ApnsSettings:
    enabled: bool = False
    team_id: str = ""
    key_id: str = ""
    key_file: Path | None = None
    topic: str = ""
    base_url: str = "https://api.push.apple.com"
    ca_file: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WebPushSettings:
    enabled: bool = False
    vapid_private_key_file: Path | None = None
    vapid_subject: str = "mailto:ops@example.com"


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookSettings:
    enabled: bool = False
    # Where order events go when the customer has no webhook device of their own.
    url: str = ""
    secret: Secret = Secret("")


@dataclass(frozen=True, slots=True, kw_only=True)
class PushSettings:
    fcm: FcmSettings = FcmSettings()
    apns: ApnsSettings = ApnsSettings()
    webpush: WebPushSettings = WebPushSettings()
    webhook: WebhookSettings = WebhookSettings()


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplateSettings:
    user_dir: Path | None = None
    default_locale: str = "en"
    shop_name: str = "Example Shop"
    support_email: str = "support@example.com"
    support_url: str = "https://example.com/help"


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiSettings:
    enabled: bool = True
    listen: str = "127.0.0.1:8080"
    public_url: str = "http://127.0.0.1:8080"
    tokens: tuple[Secret, ...] = ()
    unsubscribe_secret: Secret = Secret("")
    max_body_bytes: int = 1_000_000
    track_rate_per_minute: int = 30


@dataclass(frozen=True, slots=True, kw_only=True)
class DigestSettings:
    enabled: bool = True
    cron: str = "0 8 * * mon-fri"
    tz: TimeZone = TimeZone("UTC")
    recipients: tuple[str, ...] = ()
    webhook_url: str = ""
    max_rows_per_group: int = 20
    out_dir: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertSettings:
    circuit_open_after: timedelta = timedelta(minutes=15)
    dead_threshold: int = 10
    stale_spike: int = 20
    cooldown: timedelta = timedelta(hours=1)
    recipients: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    path: Path = Path("config.toml")
    daemon: DaemonSettings = DaemonSettings()
    clock: ClockSettings = ClockSettings()
    database: DatabaseSettings = DatabaseSettings()
    carriers: CarriersSettings = CarriersSettings()
    polling: PollingSettings = PollingSettings()
    anomalies: AnomalySettings = AnomalySettings()
    notifications: NotificationSettings = NotificationSettings()
    email: EmailSettings = EmailSettings()
    push: PushSettings = PushSettings()
    templates: TemplateSettings = TemplateSettings()
    api: ApiSettings = ApiSettings()
    digest: DigestSettings = DigestSettings()
    alerts: AlertSettings = AlertSettings()

    def summary(self) -> str:
        carriers = [n for n in ("ups", "fedex", "dhl", "usps")
                    if getattr(self.carriers, n).enabled]
        return (f"{self.path}: ok (database {self.database.path}, carriers "
                f"{', '.join(carriers) or 'none'}, channels "
                f"{', '.join(self.notifications.channels) or 'none'}, clock {self.clock.mode})")


# --------------------------------------------------------------------------------------------
# Loading


def find_config(explicit: str | os.PathLike[str] | None) -> Path:
    """--config, else $NOTIFIER_CONFIG, else ./config.toml, else /etc/notifier/config.toml."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("NOTIFIER_CONFIG")
    if env:
        return Path(env)
    for candidate in DEFAULT_PATHS:
        if candidate.exists():
            return candidate
    return DEFAULT_PATHS[0]


def load(path: str | os.PathLike[str], *, environ: typing.Mapping[str, str] | None = None
         ) -> Settings:
    """Read and validate ``path``. Raises ConfigError listing every problem found."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: TOML syntax error: {exc}"]) from None
    return from_dict(raw, path=path, environ=environ)


def from_dict(raw: dict[str, Any], *, path: Path,
              environ: typing.Mapping[str, str] | None = None) -> Settings:
    reader = _Reader(path, os.environ if environ is None else environ)
    values = reader.section(Settings, raw, "", skip=frozenset({"path"}))
    # Cross-field checks run on what did convert (bad values fall back to defaults) so one
    # run reports every problem, not just the first class of them.
    settings = Settings(path=path, **values)
    problems = reader.problems + [f"{path}: {p}" for p in _check(settings)]
    if problems:
        raise ConfigError(problems)
    return settings


class _Reader:
    def __init__(self, path: Path, environ: typing.Mapping[str, str]) -> None:
        self.path = path
        self.base = path.parent
        self.environ = environ
        self.problems: list[str] = []

    def problem(self, key: str, text: str) -> None:
        self.problems.append(f"{self.path}: {key or '(top level)'}: {text}")

    def section(self, cls: type[Any], raw: Any, prefix: str, skip: frozenset[str] = frozenset()
                ) -> dict[str, Any]:
        if not isinstance(raw, dict):
            self.problem(prefix, f"expected a table, got {_kind(raw)}")
            return {}
        hints = typing.get_type_hints(cls)
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        fields = set(defaults) - skip
        out: dict[str, Any] = {}
        for key, value in raw.items():
            dotted = f"{prefix}.{key}" if prefix else key
            if key not in fields:
                close = _closest(key, fields)
                hint = f" (did you mean {close!r}?)" if close else ""
                self.problem(dotted, f"unknown key{hint}")
                continue
            converted = self.value(hints[key], value, dotted, defaults[key])
            if converted is not _INVALID:
                out[key] = converted
        return out

    def value(self, tp: Any, raw: Any, key: str, default: Any = None) -> Any:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):
            inner = [a for a in args if a is not type(None)]
            return self.value(inner[0], raw, key)
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            values = self.section(tp, raw, key)
            try:
                # Keep the defaults of this particular instance (e.g. each carrier's own
                # production base URL and quota) for keys the file does not set.
                if dataclasses.is_dataclass(default) and not isinstance(default, type):
                    return dataclasses.replace(default, **values)
                return tp(**values)
            except TypeError as exc:
                self.problem(key, str(exc))
                return _INVALID
        if origin is Literal:
            if raw not in args:
                self.problem(key, f"must be one of {', '.join(map(repr, args))}, got {raw!r}")
                return _INVALID
            return raw
        if origin is tuple:
            if not isinstance(raw, list):
                self.problem(key, f"expected a list, got {_kind(raw)}")
                return _INVALID
            items = [self.value(args[0], item, f"{key}[{i}]") for i, item in enumerate(raw)]
            return _INVALID if _INVALID in items else tuple(items)
        if origin is dict:
            if not isinstance(raw, dict):
                self.problem(key, f"expected a table, got {_kind(raw)}")
                return _INVALID
            table = {k: self.value(args[1], v, f"{key}.{k}") for k, v in raw.items()}
            return _INVALID if _INVALID in table.values() else table
        return self.scalar(tp, raw, key)

    def scalar(self, tp: Any, raw: Any, key: str) -> Any:
        try:
            if tp is bool:
                if not isinstance(raw, bool):
                    raise TypeError("expected true or false")
                return raw
            if tp is int:
                if isinstance(raw, bool) or not isinstance(raw, int):
                    raise TypeError(f"expected an integer, got {_kind(raw)}")
                if raw < 0:
                    raise ValueError("must not be negative")
                return raw
            if tp is float:
                if isinstance(raw, bool) or not isinstance(raw, int | float):
                    raise TypeError(f"expected a number, got {_kind(raw)}")
                if raw < 0:
                    raise ValueError("must not be negative")
                return float(raw)
            if tp is timedelta:
                if not isinstance(raw, str):
                    raise TypeError(f'expected a duration string like "90m", got {_kind(raw)}')
                return parse_duration(raw)
            if tp is Secret:
                if not isinstance(raw, str):
                    raise TypeError(f"expected a string, got {_kind(raw)}")
                return self.secret(raw)
            if tp is TimeZone:
                if not isinstance(raw, str):
                    raise TypeError(f"expected a time-zone name, got {_kind(raw)}")
                try:
                    ZoneInfo(raw)
                except (ZoneInfoNotFoundError, ValueError):
                    raise ValueError(f"unknown time zone {raw!r}") from None
                return TimeZone(raw)
            if tp is Path:
                if not isinstance(raw, str):
                    raise TypeError(f"expected a path string, got {_kind(raw)}")
                p = Path(raw).expanduser()
                return p if p.is_absolute() else (self.base / p)
            if tp is datetime:
                if isinstance(raw, datetime):
                    value = raw
                elif isinstance(raw, str):
                    value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
                else:
                    raise TypeError(f"expected a date-time, got {_kind(raw)}")
                if value.tzinfo is None:
                    raise ValueError("date-time needs an offset, e.g. 2026-11-02T08:00:00Z")
                return value
            if tp is date:
                if isinstance(raw, date) and not isinstance(raw, datetime):
                    return raw
                if isinstance(raw, str):
                    return date.fromisoformat(raw)
                raise TypeError(f"expected a date YYYY-MM-DD, got {_kind(raw)}")
            if tp is str:
                if not isinstance(raw, str):
                    raise TypeError(f"expected a string, got {_kind(raw)}")
                return raw
        except (TypeError, ValueError) as exc:
            self.problem(key, str(exc))
            return _INVALID
        raise AssertionError(f"config type {tp!r} not handled for {key}")

    def secret(self, raw: str) -> Secret:
        env = re.fullmatch(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", raw)
        if env:
            name = env.group(1)
            if name not in self.environ:
                raise ValueError(f"environment variable {name} is not set")
            return Secret(self.environ[name])
        if raw.startswith("credential:"):
            name = raw.removeprefix("credential:")
            directory = self.environ.get("CREDENTIALS_DIRECTORY")
            if not directory:
                raise ValueError(f"credential {name!r} asked for but $CREDENTIALS_DIRECTORY "
                                 "is not set (systemd LoadCredential=)")
            try:
                return Secret((Path(directory) / name).read_text(encoding="utf-8").strip())
            except OSError:
                raise ValueError(f"credential {name!r} not found in $CREDENTIALS_DIRECTORY"
                                 ) from None
        return Secret(raw)


_INVALID: Any = object()


def _kind(value: Any) -> str:
    return {dict: "a table", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


def _closest(key: str, options: set[str]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(key, sorted(options), n=1, cutoff=0.75)
    return matches[0] if matches else None


_TRIGGERS = {"shipped", "out_for_delivery", "delivered", "failed_attempt", "ready_for_pickup",
             "delayed", "exception", "returned", "backordered", "payment_hold", "cancelled",
             "dispute_received"}
_CHANNELS = {"email", "fcm", "apns", "webpush", "webhook"}


def _check(s: Settings) -> list[str]:
    """Rules that span fields: required values and cross-references."""
    problems: list[str] = []
    if s.clock.mode == "simulated" and s.clock.start is None:
        problems.append("clock.start: required when clock.mode is \"simulated\"")
    for name in ("ups", "fedex", "dhl", "usps"):
        carrier: CarrierConfig = getattr(s.carriers, name)
        if not carrier.enabled:
            continue
        if not carrier.base_url:
            problems.append(f"carriers.{name}.base_url: required")
        elif not re.match(r"^https?://", carrier.base_url):
            problems.append(f"carriers.{name}.base_url: must start with http:// or https://")
        if name == "dhl":
            if not carrier.api_key:
                problems.append("carriers.dhl.api_key: required when DHL is enabled")
        elif not (carrier.client_id and carrier.client_secret):
            missing = "client_id" if not carrier.client_id else "client_secret"
            problems.append(f"carriers.{name}.{missing}: required when {name} is enabled")
        if carrier.concurrency < 1:
            problems.append(f"carriers.{name}.concurrency: must be at least 1")
    for ch in s.notifications.channels:
        if ch not in _CHANNELS:
            problems.append(f"notifications.channels: unknown channel {ch!r}")
    for trig, chans in s.notifications.triggers.items():
        if trig not in _TRIGGERS:
            problems.append(f"notifications.triggers.{trig}: unknown trigger")
        problems.extend(f"notifications.triggers.{trig}: unknown channel {ch!r}"
                        for ch in chans if ch not in _CHANNELS)
    problems.extend(f"notifications.disabled_triggers: unknown trigger {t!r}"
                    for t in s.notifications.disabled_triggers if t not in _TRIGGERS)
    for hour_key in ("quiet_hours_start", "quiet_hours_end"):
        if getattr(s.notifications, hour_key) > 23:
            problems.append(f"notifications.{hour_key}: must be an hour 0-23")
    if s.email.enabled and "email" in s.notifications.channels and not s.email.from_address:
        problems.append("email.from_address: required when e-mail is enabled")
    if s.email.security == "plain" and s.email.host not in ("127.0.0.1", "::1", "localhost"):
        problems.append("email.security: \"plain\" is only allowed to a loopback host")
    if not re.fullmatch(r"[^:\s]+:\d{1,5}|\[[0-9a-fA-F:]+\]:\d{1,5}", s.api.listen):
        problems.append(f"api.listen: expected HOST:PORT, got {s.api.listen!r}")
    if s.digest.enabled:
        from apscheduler.triggers.cron import CronTrigger  # validation only

        try:
            CronTrigger.from_crontab(s.digest.cron, timezone=s.digest.tz.zone)
        except ValueError as exc:
            problems.append(f"digest.cron: {exc}")
    hours = (s.polling.delivery_hours_start, s.polling.delivery_hours_end)
    if not 0 <= hours[0] < hours[1] <= 24:
        problems.append(f"polling.delivery_hours_end: delivery hours {hours[0]}-{hours[1]} must "
                        "be 0 <= start < end <= 24")
    if s.anomalies.weekend and any(d > 6 for d in s.anomalies.weekend):
        problems.append("anomalies.weekend: days are 0 (Monday) to 6 (Sunday)")
    return problems
