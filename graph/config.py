"""Settings shared by the CLI, the environment and `create_app`.

Every field is also a `forgegraph serve` flag (`--jwt-secret`) and an
environment variable (`FORGEGRAPH_JWT_SECRET`); the CLI owns that mapping.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

DEFAULT_DATABASE = "sqlite+aiosqlite:///./forgegraph.db"
ENV_PREFIX = "FORGEGRAPH_"


@dataclass(frozen=True)
class Limits:
    max_depth: int = 12
    max_body_bytes: int = 1_048_576
    max_subscriptions_per_connection: int = 100
    send_queue_size: int = 1_000
    max_message_bytes: int = 65_536
    connection_init_timeout: float = 10.0


@dataclass(frozen=True)
class Capture:
    """How the change log is read and kept (SPEC section 5: at least 24 h or 100,000 events)."""

    poll_interval: float = 0.2
    """Seconds between reads of the log when nothing wakes the reader (other writers)."""
    prune_interval: float = 300.0
    retention_hours: float = 24.0
    retention_events: int = 100_000


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
    limits: Limits = field(default_factory=Limits)
    capture: Capture = field(default_factory=Capture)

    @property
    def database_url(self) -> str:
        return self.database or DEFAULT_DATABASE

    @property
    def uses_default_database(self) -> bool:
        return self.database is None

    def with_overrides(self, **overrides: Any) -> Settings:
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})
