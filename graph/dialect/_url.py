"""Database URLs as we accept them (each backend defaults to its async driver), and their engines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from graph.errors import StartupError

ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def normalise_url(url: str) -> sa.URL:
    """Parse `url`, defaulting each backend to its async driver; StartupError when unusable."""
    try:
        parsed = sa.make_url(url.replace("postgres://", "postgresql://", 1))
    except exc.ArgumentError:
        raise StartupError(f"invalid database URL {url!r}") from None
    backend = parsed.get_backend_name()
    if backend not in ASYNC_DRIVERS:
        raise StartupError(
            f"unsupported database {backend!r} in {url!r}: use sqlite+aiosqlite:// or postgresql+asyncpg://"
        )
    if parsed.drivername == backend:
        parsed = parsed.set(drivername=ASYNC_DRIVERS[backend])
    return parsed


def sqlite_path(url: sa.URL) -> Path | None:
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def display_url(url: str | sa.URL) -> str:
    """The URL as users may see it: in messages, with any password hidden."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return str(url)


def async_engine(url: str, parsed: sa.URL, **options: Any) -> AsyncEngine:
    """SQLAlchemy's engine for `parsed`; StartupError when its driver cannot be used."""
    try:
        return create_async_engine(parsed, **options)
    except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as error:
        raise StartupError(f"cannot use database URL {url!r}: {error}") from None
