"""The one frozen settings object, built from the environment at start-up.

Nothing else in tidings reads the environment: the CLI calls `Settings.from_env()` once and passes
the result down. Every limit is a number here, documented in docs/configuration.md.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import math
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["ConfigError", "Settings"]

PREFIX = "TIDINGS_"

# Names the host app reads from the same `.env` (every guide uses them): tidings accepts and ignores
# them, so one file serves both. Any other unknown TIDINGS_* name is still refused, which catches a
# misspelled setting. The server's own key list is TIDINGS_PUBLISHER_KEYS (plural).
# tests/test_integration_env.py reads every integration's names and keeps this list complete.
APP_SIDE = frozenset({"TIDINGS_URL", "TIDINGS_PUBLISHER_KEY", "TIDINGS_TOKEN_TTL"})
# `eval "$(scripts/services up)"` exports the test servers' URLs under this prefix; `tidings serve`
# in the same shell must still start: no setting is ever named TIDINGS_TEST_*, and tidings skips it.
HARNESS_PREFIX = "TIDINGS_TEST_"


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = "sqlite:///tidings.db"
    bus_url: str = "local://"
    # Per-user routing: seconds a user's bus subscription outlives the last stream on a node.
    bus_linger: float = 5.0
    secret: str = ""
    publisher_keys: tuple[str, ...] = ()
    heartbeat: float = 15.0
    retention_days: float = 90.0
    cors_origins: tuple[str, ...] = ()
    allow_query_token: bool = False
    # Limits on what a publisher may send.
    max_message_bytes: int = 4096
    max_link_bytes: int = 2048
    max_kind_bytes: int = 64
    max_data_bytes: int = 16384
    max_category_bytes: int = 64
    max_group_bytes: int = 128
    max_actor_name_bytes: int = 256
    max_action_label_bytes: int = 64
    max_muted_categories: int = 100
    max_user_ids: int = 10000
    max_body_bytes: int = 4 * 1024 * 1024
    max_token_ttl: int = 7 * 24 * 3600
    # Limits on every stream.
    max_streams_per_user: int = 20
    stream_queue: int = 1000
    stream_queue_bytes: int = 1024 * 1024
    replay_max: int = 1000
    retry_ms: int = 3000
    drain_retry_max_ms: int = 5000
    # The drain's spread is sized so its streams come back at about this many per second (0: always
    # the whole 500 ms..drain_retry_max_ms).
    drain_reconnects_per_s: int = 5000
    # The store: how much work may wait on it, and how durable a SQLite commit is.
    store_max_concurrency: int = 64
    store_queue_timeout: float = 1.0
    store_catch_up_queue: int = 10_000
    sqlite_synchronous: str = "FULL"
    sqlite_commit_window_ms: float = 0.0
    # Scheduled notifications (deliver_at) and the expiry sweep (tidings.scheduler).
    max_schedule_days: float = 30.0
    scheduler_interval: float = 1.0
    scheduler_lease: float = 5.0
    scheduler_batch: int = 100
    # How often a node re-announces recently delivered scheduled rows to its own streams (what a
    # node that died before announcing them left unannounced).
    scheduler_sweep: float = 2.0
    # Housekeeping.
    prune_interval: float = 3600.0
    prune_batch: int = 1000
    demo: bool = False
    # The edge: bounded request heads (tidings.heads) and the log format (tidings.logs).
    max_head_bytes: int = 64 * 1024
    head_timeout: float = 10.0
    # Connections the kernel holds for the server before it accepts them (listen backlog). Linux
    # caps it at net.core.somaxconn without a word, so the default asks for the most and the
    # operator's sysctl decides (docs/deploy.md, Sizing).
    backlog: int = 65535
    log_format: str = "plain"
    log_level: str = "info"
    log_repeat_window: float = 10.0
    # A debugging aid (tidings.stalls): log collector pauses of at least this many ms; < 0: off.
    debug_stalls: float = -1.0
    # The email digest (tidings.channels.email): off without an SMTP URL, or with EMAIL_AFTER = 0.
    smtp_url: str = ""
    email_from: str = ""
    email_after: float = 15.0
    public_url: str = ""
    email_interval: float = 2.0
    email_lease: float = 120.0
    smtp_timeout: float = 20.0
    email_retry: float = 30.0
    email_retry_max: float = 3600.0
    email_batch: int = 100
    email_max_items: int = 20
    max_email_bytes: int = 254
    # Web Push (tidings.channels.push): off while no private key is set.
    vapid_private_key: str = ""
    vapid_subject: str = ""
    push_grace: float = 10.0
    push_interval: float = 1.0
    push_presence_interval: float = 1.0
    push_lease: float = 60.0
    push_timeout: float = 10.0
    push_ttl: int = 24 * 3600
    push_retry_max: float = 3600.0
    push_batch: int = 100
    push_concurrency: int = 16
    max_push_subscriptions: int = 10
    max_push_endpoint_bytes: int = 2048
    # Push services are https; plain http only for a local stand-in (tests, development).
    push_allow_http: bool = False
    # Endpoints on loopback, private or other non-global addresses: only for a local stand-in.
    push_allow_private: bool = False
    # How long a push endpoint's name may take to resolve (at registration and before each send).
    push_dns_timeout: float = 5.0

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], *, demo: bool = False, require_secret: bool = True
    ) -> Settings:
        """Build settings from `TIDINGS_*` variables; unknown `TIDINGS_*` names are an error.

        `require_secret=False` is for commands that sign nothing (`tidings send`): a missing
        secret is then left empty, while a configured one is still checked.
        """
        known = {f.name for f in dataclasses.fields(cls)} - {"demo"}
        values: dict[str, object] = {"demo": demo}
        for key, raw in environ.items():
            if not key.startswith(PREFIX) or key in APP_SIDE or key.startswith(HARNESS_PREFIX):
                continue
            name = key[len(PREFIX) :].lower()
            if name not in known:
                raise ConfigError(f"{key} is not a tidings setting (see docs/configuration.md)")
            values[name] = _parse(cls, name, key, raw)
        settings = cls(**values)  # type: ignore[arg-type]
        if not settings.secret:
            if demo:
                settings = dataclasses.replace(settings, secret=secrets.token_urlsafe(32))
            elif require_secret:
                raise ConfigError("TIDINGS_SECRET is required (any long random string)")
        if demo and not settings.publisher_keys:
            settings = dataclasses.replace(
                settings, publisher_keys=(f"demo-{secrets.token_urlsafe(16)}",)
            )
        settings.validate(require_secret=require_secret)
        return settings

    def validate(self, *, require_secret: bool = True) -> None:
        if (require_secret or self.secret) and len(self.secret) < 32:
            raise ConfigError(
                "TIDINGS_SECRET must be at least 32 characters (HS256 wants a 256-bit key)"
            )
        if self.heartbeat <= 0:
            raise ConfigError("TIDINGS_HEARTBEAT must be a positive number of seconds")
        if self.bus_linger < 0:
            raise ConfigError("TIDINGS_BUS_LINGER must be zero or a positive number of seconds")
        if self.retention_days <= 0:
            raise ConfigError("TIDINGS_RETENTION_DAYS must be positive")
        if self.prune_interval <= 0:
            raise ConfigError("TIDINGS_PRUNE_INTERVAL must be a positive number of seconds")
        names = ("max_schedule_days", "scheduler_interval", "scheduler_lease", "scheduler_sweep")
        require_positive(self, names, "a positive number")
        positive = (
            "max_message_bytes",
            "max_link_bytes",
            "max_kind_bytes",
            "max_data_bytes",
            "max_category_bytes",
            "max_group_bytes",
            "max_actor_name_bytes",
            "max_action_label_bytes",
            "max_muted_categories",
            "max_user_ids",
            "max_body_bytes",
            "max_token_ttl",
            "max_streams_per_user",
            "stream_queue",
            "stream_queue_bytes",
            "replay_max",
            "retry_ms",
            "drain_retry_max_ms",
            "prune_batch",
            "store_max_concurrency",
            "store_catch_up_queue",
            "scheduler_batch",
        )
        require_positive(self, positive, "positive")
        if not 0 <= self.store_queue_timeout <= 60:
            raise ConfigError("TIDINGS_STORE_QUEUE_TIMEOUT must be between 0 and 60 seconds")
        if self.sqlite_synchronous.upper() not in ("NORMAL", "FULL"):
            raise ConfigError("TIDINGS_SQLITE_SYNCHRONOUS must be NORMAL or FULL")
        if not 0 <= self.sqlite_commit_window_ms <= 50:
            raise ConfigError("TIDINGS_SQLITE_COMMIT_WINDOW_MS must be between 0 and 50")
        self._validate_edge()
        # Each channel for users who are away checks its own settings (tidings.channels).
        from tidings.channels.registry import CHANNELS

        for channel in CHANNELS:
            channel.check(self)
        for origin in self.cors_origins:
            if not origin.startswith(("http://", "https://")) or origin.endswith("/"):
                raise ConfigError(
                    f"TIDINGS_CORS_ORIGINS: {origin!r} is not an origin like https://app.example"
                )

    def _validate_edge(self) -> None:
        # A URL urlsplit cannot parse would otherwise fail deep in a factory, with a traceback.
        named = [("TIDINGS_DATABASE_URL", self.database_url)]
        # A bus URL may list several servers (comma-separated; after the first, host:port will do).
        named += [
            ("TIDINGS_BUS_URL", part if "://" in part else f"bus://{part}")
            for part in self.bus_url.split(",")
        ]
        named += [("TIDINGS_CORS_ORIGINS", origin) for origin in self.cors_origins]
        for variable, url in named:
            if not _parses(url):
                raise ConfigError(
                    f"{variable} is not a valid URL: an unbalanced [ or ], a host that NFKC "
                    "normalisation changes, or a port that is not a number up to 65535"
                )
        if self.max_head_bytes < 1024:
            raise ConfigError("TIDINGS_MAX_HEAD_BYTES must be at least 1024")
        if self.head_timeout <= 0:
            raise ConfigError("TIDINGS_HEAD_TIMEOUT must be a positive number of seconds")
        if self.drain_reconnects_per_s < 0:
            raise ConfigError("TIDINGS_DRAIN_RECONNECTS_PER_S must be 0 (off) or a positive number")
        if not 1 <= self.backlog <= 65535:
            raise ConfigError("TIDINGS_BACKLOG must be between 1 and 65535")
        if self.log_repeat_window <= 0:
            raise ConfigError("TIDINGS_LOG_REPEAT_WINDOW must be a positive number of seconds")
        if self.log_format.lower() not in LOG_FORMATS:
            raise ConfigError(f"TIDINGS_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}")
        if self.log_level.lower() not in LOG_LEVELS:
            raise ConfigError(f"TIDINGS_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")

    @property
    def email_enabled(self) -> bool:
        return bool(self.smtp_url) and self.email_after > 0

    @property
    def push_enabled(self) -> bool:
        return bool(self.vapid_private_key)


def require_positive(settings: Settings, names: Iterable[str], what: str) -> None:
    """A ConfigError for the first of the settings `names` that is not above zero: "TIDINGS_X
    must be `what`" (the core's checks and each channel's)."""
    for name in names:
        if getattr(settings, name) <= 0:
            raise ConfigError(f"TIDINGS_{name.upper()} must be {what}")


def b64url_bytes(text: str) -> bytes | None:
    """The bytes of unpadded (or padded) base64url text; None when it is not that."""
    try:
        padded = text + "=" * (-len(text) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True)
    except (ValueError, binascii.Error):
        return None


def _parses(url: str) -> bool:
    try:
        urlsplit(url).port  # noqa: B018  (reading the port is what checks it)
    except ValueError:
        return False
    return True


LOG_FORMATS = ("plain", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
_KINDS = {bool: "a boolean (1/0, true/false)", int: "a whole number", float: "a number"}


def _parse(cls: type[Settings], name: str, key: str, raw: str) -> object:
    default = next(f for f in dataclasses.fields(cls) if f.name == name).default
    raw = raw.strip()
    try:
        if isinstance(default, bool):
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            number = float(raw)
            if math.isfinite(number):
                return number
        if isinstance(default, tuple):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError:
        kind = _KINDS.get(type(default), type(default).__name__)
        raise ConfigError(f"{key}={raw!r} is not {kind}") from None
    if isinstance(default, float):
        raise ConfigError(f"{key}={raw!r} is not a finite number")
    return raw
