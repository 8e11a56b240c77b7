"""graph.migrate against real SQLite files and a scratch PostgreSQL database."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from graph.errors import StartupError
from graph.migrate import (
    DEMO_COMMENTS,
    DEMO_POSTS,
    DEMO_USERS,
    ensure_demo_database,
    head_revision,
    migrate,
    seed_demo_data,
)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TEST_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
DEMO_TABLES = {"users", "posts", "comments"}


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in DEMO_TABLES}


def foreign_keys(path: Path, table: str) -> set[tuple[str, str, str, str]]:
    # (from column, referenced table, referenced column, ON DELETE action)
    with sqlite3.connect(path) as conn:
        rows = conn.execute(f"PRAGMA foreign_key_list({table})").fetchall()
    return {(row[3], row[2], row[4], row[6]) for row in rows}


# -- SQLite ------------------------------------------------------------------


async def test_migrate_creates_the_demo_schema(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    revisions = await migrate(sqlite_url(db))

    assert revisions.before is None
    assert revisions.after == head_revision() == "0001"
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert tables == DEMO_TABLES | {"alembic_version"}
    assert {"ix_posts_user_id", "ix_posts_published", "ix_comments_post_id"} <= indexes
    assert foreign_keys(db, "users") == set()
    assert foreign_keys(db, "posts") == {("user_id", "users", "id", "CASCADE")}
    assert foreign_keys(db, "comments") == {
        ("post_id", "posts", "id", "CASCADE"),
        ("user_id", "users", "id", "SET NULL"),
    }


async def test_migrate_twice_changes_nothing(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "demo.db")
    await migrate(url)
    again = await migrate(url)
    assert (again.before, again.after, again.changed) == ("0001", "0001", False)


async def test_server_defaults_and_cascades_work_on_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    await migrate(sqlite_url(db))
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("INSERT INTO users (name) VALUES ('u')")
        conn.execute("INSERT INTO posts (title, user_id) VALUES ('t', 1)")
        conn.execute("INSERT INTO comments (post_id, user_id, body) VALUES (1, 1, 'c')")
        body, published, created_at = conn.execute(
            "SELECT body, published, created_at FROM posts"
        ).fetchone()
        assert (body, published) == ("", 0)
        assert created_at is not None
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO posts (title, user_id) VALUES ('orphan', 99)")
        conn.execute("DELETE FROM users WHERE id = 1")
        assert conn.execute("SELECT count(*) FROM posts").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM comments").fetchone()[0] == 0


async def test_ensure_demo_database_creates_and_seeds_once(tmp_path: Path) -> None:
    db = tmp_path / "forgegraph.db"
    url = sqlite_url(db)
    assert not db.exists()

    await ensure_demo_database(url)
    expected = {"users": len(DEMO_USERS), "posts": len(DEMO_POSTS), "comments": len(DEMO_COMMENTS)}
    assert counts(db) == expected

    await ensure_demo_database(url)
    assert counts(db) == expected
    assert await seed_demo_data(url) is False
    assert counts(db) == expected


async def test_demo_rows_are_consistent(tmp_path: Path) -> None:
    db = tmp_path / "forgegraph.db"
    await ensure_demo_database(sqlite_url(db))
    with sqlite3.connect(db) as conn:
        published = {r[0] for r in conn.execute("SELECT published FROM posts")}
        dangling = conn.execute("PRAGMA foreign_key_check").fetchall()
    assert published == {0, 1}  # some published, some drafts
    assert dangling == []


async def test_ensure_demo_database_seeds_an_empty_file(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    sqlite3.connect(db).close()
    await ensure_demo_database(sqlite_url(db))
    assert counts(db)["users"] == len(DEMO_USERS)


async def test_ensure_demo_database_leaves_other_databases_alone(tmp_path: Path) -> None:
    db = tmp_path / "mine.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE things (id INTEGER PRIMARY KEY)")
    await ensure_demo_database(sqlite_url(db))
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"things"}


async def test_migrate_accepts_a_plain_sqlite_url(tmp_path: Path) -> None:
    db = tmp_path / "plain.db"
    await migrate(f"sqlite:///{db}")
    assert counts(db) == dict.fromkeys(DEMO_TABLES, 0)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("nonsense://x", "database"),
        ("not a url", "database URL"),
        ("sqlite+aiosqlite:////nonexistent/dir/x.db", "cannot"),
        ("postgresql+asyncpg://postgres@127.0.0.1:1/test", "cannot connect to database"),
    ],
)
@pytest.mark.parametrize("operation", [migrate, ensure_demo_database])
async def test_user_errors_are_one_line(operation: Any, url: str, expected: str) -> None:
    with pytest.raises(StartupError) as caught:
        await operation(url)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


async def test_migrate_refuses_a_database_with_clashing_tables(tmp_path: Path) -> None:
    db = tmp_path / "clash.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    with pytest.raises(StartupError, match="cannot migrate database"):
        await migrate(sqlite_url(db))


def test_alembic_command_line_environment(tmp_path: Path) -> None:
    # The same env.py serves `alembic upgrade/downgrade` from a checkout,
    # opening its own (async) engine.
    db = tmp_path / "cli.db"
    config = Config(str(REPO / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", sqlite_url(db))
    config.attributes["configure_logger"] = False

    command.upgrade(config, "head")
    assert counts(db) == dict.fromkeys(DEMO_TABLES, 0)
    command.downgrade(config, "base")
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"alembic_version"}


# -- PostgreSQL --------------------------------------------------------------


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    admin_url = sa.make_url(os.environ.get("FORGEGRAPH_TEST_POSTGRES", DEFAULT_TEST_POSTGRES))
    admin = create_async_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    name = f"fg_migrate_{uuid.uuid4().hex[:12]}"
    try:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except (OSError, sa.exc.DBAPIError) as exc:
        await admin.dispose()
        reason = (
            f"PostgreSQL unreachable at {admin_url.render_as_string(hide_password=True)}: {exc}"
        )
        if os.environ.get("FORGEGRAPH_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def test_migrate_on_postgresql(postgres_url: str) -> None:
    revisions = await migrate(postgres_url)
    assert (revisions.before, revisions.after) == (None, "0001")

    engine = create_async_engine(postgres_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:

            def inspect(sync: sa.Connection) -> tuple[set[str], list[Any]]:
                inspector = sa.inspect(sync)
                return set(inspector.get_table_names()), inspector.get_foreign_keys("comments")

            tables, comment_fks = await conn.run_sync(inspect)
            assert tables == DEMO_TABLES | {"alembic_version"}
            assert {
                (fk["constrained_columns"][0], fk["referred_table"], fk["options"].get("ondelete"))
                for fk in comment_fks
            } == {("post_id", "posts", "CASCADE"), ("user_id", "users", "SET NULL")}

            # Server defaults as the DDL wrote them.
            await conn.execute(sa.text("INSERT INTO users (name) VALUES ('u')"))
            row = (
                await conn.execute(
                    sa.text(
                        "INSERT INTO posts (title, user_id) VALUES ('t', "
                        "(SELECT id FROM users)) RETURNING body, published, created_at"
                    )
                )
            ).one()
            assert (row.body, row.published) == ("", False)
            assert row.created_at is not None
            await conn.rollback()
    finally:
        await engine.dispose()

    assert (await migrate(postgres_url)).changed is False


async def test_seed_on_postgresql_leaves_sequences_usable(postgres_url: str) -> None:
    await ensure_demo_database(postgres_url)
    await ensure_demo_database(postgres_url)
    engine = create_async_engine(postgres_url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            users = (await conn.execute(sa.text("SELECT count(*) FROM users"))).scalar_one()
            assert users == len(DEMO_USERS)
            # The ids came from the sequence, so the next insert does not collide.
            new_id = (
                await conn.execute(sa.text("INSERT INTO users (name) VALUES ('n') RETURNING id"))
            ).scalar_one()
            assert new_id == len(DEMO_USERS) + 1
    finally:
        await engine.dispose()
