"""Alembic environment for the demo schema.

Usable two ways:

- `alembic upgrade head` (or `alembic -x url=URL upgrade head`): the URL comes
  from `-x url=`, else `sqlalchemy.url` in alembic.ini; async URLs
  (`sqlite+aiosqlite://`, `postgresql+asyncpg://`) and sync ones both work.
- programmatically (`graph.migrate`): the caller opens the connection itself
  and passes it as `config.attributes["connection"]` (a sync Connection, e.g.
  the one `AsyncConnection.run_sync` hands over), because `asyncio.run` cannot
  be called from inside the caller's running event loop.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import engine_from_config, pool
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import async_engine_from_config

config = context.config

# Only the alembic CLI has a config file with logging sections; programmatic
# callers keep their own logging.
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# The demo schema is written as explicit operations; there is no MetaData to
# autogenerate from.
target_metadata = None


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise RuntimeError("no database URL: pass -x url=URL or set sqlalchemy.url")
    return url


def do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=make_url(url).get_backend_name() == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations(url: str) -> None:
    section = config.get_section(config.config_ini_section, {})
    section["sqlalchemy.url"] = url
    engine = async_engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


def run_sync_migrations(url: str) -> None:
    section = config.get_section(config.config_ini_section, {})
    section["sqlalchemy.url"] = url
    engine = engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            do_run_migrations(connection)
            connection.commit()
    finally:
        engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
        return
    url = _url()
    if make_url(url).get_dialect().is_async:
        asyncio.run(run_async_migrations(url))
    else:
        run_sync_migrations(url)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
