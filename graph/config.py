"""Settings shared by the CLI, the environment and `create_app`.

Every field is also a `forgegraph serve` flag (`--jwt-secret`) and an
environment variable (`FORGEGRAPH_JWT_SECRET`); the CLI owns that mapping.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import urlsplit

DEFAULT_DATABASE = "sqlite+aiosqlite:///./forgegraph.db"
DEFAULT_POOL_SIZE = 10
ENV_PREFIX = "FORGEGRAPH_"


@dataclass(frozen=True)
class Limits:
    """What one request or connection may cost; README "Limits and security" lists them.

    Each field is also a flag (`--max-depth`) and a variable (`FORGEGRAPH_MAX_DEPTH`).
    0 turns a limit off, except for the three that bound memory (body,
    message and send queue sizes), which must be at least 1.
    """

    max_depth: int = 12
    max_body_bytes: int = 1_048_576
    max_subscriptions_per_connection: int = 100
    send_queue_size: int = 1_000
    max_message_bytes: int = 65_536
    connection_init_timeout: float = 10.0
    """Seconds a graphql-ws client has to send connection_init."""
    max_complexity: int = 10_000
    """Estimated cost of a document (graph.complexity)."""
    max_limit: int = 0
    """Rows per list field: a larger or missing `limit` is clamped to it, as Hasura does."""
    max_connections_per_ip: int = 0
    """Concurrent WebSockets plus SSE streams from one client IP, per server process."""
    max_messages_per_second: int = 100
    """Client messages per WebSocket connection (a token bucket holding one second's worth)."""
    max_aliases: int = 100
    """Aliased fields in one operation, those of the fragments it spreads included."""
    document_cache_bytes: int = 33_554_432
    """Parsed documents kept for every role together, and query plans likewise (estimated bytes).

    0 keeps none; a document estimated at more than an eighth of it is not kept."""


@dataclass(frozen=True)
class Capture:
    """How the change log is read and kept (SPEC section 5: at least 24 h or 100,000 events)."""

    poll_interval: float = 0.2
    """Seconds between reads of the log when nothing wakes the reader (other writers)."""
    prune_interval: float = 300.0
    retention_hours: float = 24.0
    retention_events: int = 100_000


ANY_ORIGIN = "*"


def parse_origins(value: str | Iterable[str]) -> tuple[str, ...]:
    """`--cors-origins`: comma-separated origins (`https://app.example:8443`) or `*`.

    Origins are compared as browsers send them (scheme://host[:port], lower
    case, no path), so `HTTPS://App.example/` is kept as `https://app.example`.
    ValueError names the first one that is not an origin.
    """
    parts = value.split(",") if isinstance(value, str) else list(value)
    origins: list[str] = []
    for part in parts:
        text = part.strip()
        if not text:
            continue
        if text != ANY_ORIGIN:
            url = urlsplit(text)
            if not url.scheme or not url.netloc or url.path not in ("", "/") or url.query or url.fragment:
                raise ValueError(f"not an origin (scheme://host[:port]): {text!r}")
            text = f"{url.scheme}://{url.netloc}".lower()
        if text not in origins:
            origins.append(text)
    return tuple(origins)


@dataclass(frozen=True)
class Settings:
    database: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    broadcast: str = "memory://"
    permissions: str | None = None
    jwt_secret: str | None = None
    admin_secret: str | None = None
    websocket_port: int | None = None
    workers: int = 1
    pool_size: int = DEFAULT_POOL_SIZE
    """Connections each server process keeps to PostgreSQL, for everything (graph.dialect); not SQLite."""
    cors_origins: tuple[str, ...] = ()
    """Origins whose pages may call the API (CORS) and open WebSockets and SSE streams; `*`: any.

    Empty (the default): no cross-origin access over HTTP, and handshakes are
    not checked (graph.cors).
    """
    metadata: Any = None
    """Names users choose (graph.metadata): a metadata file's path (`--metadata`), or a `Metadata`."""
    extend: Any = None
    """The user's strawberry schema merged into the API (graph.extend): a strawberry.Schema, or
    `module:attribute` naming one (`--extend`)."""
    limits: Limits = field(default_factory=Limits)
    capture: Capture = field(default_factory=Capture)
    no_capture: bool = False
    """Serve with no triggers, no change log and SQLite's journal mode untouched (`--no-capture`):
    events only for the writes made through this process's API (graph.events.capture)."""
    schema_poll: float = 0.5
    """Seconds between checks of the database's schema for DDL (graph.schema_watch); 0: only on
    SIGHUP and `forgegraph reload`."""

    def __post_init__(self) -> None:
        # create_app(cors_origins="https://a.example,https://b.example") or a list, as the flag.
        object.__setattr__(self, "cors_origins", parse_origins(self.cors_origins))
        if self.pool_size < 1:
            raise ValueError(f"pool_size must be at least 1: {self.pool_size}")

    @property
    def database_url(self) -> str:
        return self.database or DEFAULT_DATABASE

    @property
    def uses_default_database(self) -> bool:
        return self.database is None

    def with_overrides(self, **overrides: Any) -> Settings:
        """These settings with some replaced; a `Limits` field may be given by its own name."""
        limit_names = {f.name for f in fields(Limits)}
        unknown = set(overrides) - {f.name for f in fields(self)} - limit_names
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        given = {k: v for k, v in overrides.items() if v is not None}
        limits = {k: given.pop(k) for k in list(given) if k in limit_names}
        settings = replace(self, **given)
        if limits:
            settings = replace(settings, limits=replace(settings.limits, **limits))
        return settings
