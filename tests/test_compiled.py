"""Statements as the driver runs them (graph.sql.compiled): pure, nothing is executed."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.dialects.sqlite import aiosqlite
from sqlalchemy.engine import Dialect

from graph.sql.compiled import Statements

posts = sa.Table(
    "posts",
    sa.MetaData(),
    sa.Column("id", sa.types.NullType(), primary_key=True, server_default=sa.FetchedValue()),
    sa.Column("title", sa.types.NullType()),
    sa.Column("select", sa.types.NullType()),
)
DIALECTS = {"sqlite": aiosqlite.dialect(), "postgresql": asyncpg.dialect()}


def counting(dialect: Dialect) -> tuple[Dialect, list[object]]:
    """A copy of `dialect` whose statement compiler (SQLAlchemy's hook) records every compilation."""
    compiled: list[object] = []
    base = dialect.statement_compiler

    class Counting(base):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            compiled.append(self)
            super().__init__(*args, **kwargs)

    copy = type(dialect)()
    copy.statement_compiler = Counting
    return copy, compiled


@pytest.mark.parametrize("name", DIALECTS)
def test_a_shape_is_compiled_once_and_bound_with_each_requests_values(name: str) -> None:
    dialect, compiled = counting(DIALECTS[name])
    statements = Statements(dialect)
    first = statements.bind(sa.update(posts).where(posts.c.id == sa.literal(1)).values(title="a"))
    second = statements.bind(sa.update(posts).where(posts.c.id == sa.literal(2)).values(title="b"))
    assert first.sql == second.sql
    assert "?" in first.sql if name == "sqlite" else "$1" in first.sql
    assert (first.args, second.args) == (("a", 1), ("b", 2))
    assert len(compiled) == 1
    statements.bind(sa.update(posts).where(posts.c.id == sa.literal(3)).values(select="c"))
    assert len(compiled) == 2  # another shape (another column set) is compiled on its own


def test_the_least_recently_used_shape_is_compiled_again() -> None:
    dialect, compiled = counting(DIALECTS["sqlite"])
    statements = Statements(dialect, size=2)
    by_id = sa.select(posts.c.id).where(posts.c.id == sa.literal(1))
    by_title = sa.select(posts.c.id).where(posts.c.title == sa.literal("a"))
    by_select = sa.select(posts.c.id).where(posts.c.select == sa.literal("s"))
    for statement in (by_id, by_title, by_id, by_select):  # by_title is the oldest when by_select comes
        statements.bind(statement)
    assert len(compiled) == 3
    statements.bind(by_id)
    assert len(compiled) == 3  # still held
    statements.bind(by_title)
    assert len(compiled) == 4  # evicted, compiled again


@pytest.mark.parametrize("name", DIALECTS)
def test_in_lists_expand_per_request(name: str) -> None:
    statements = Statements(DIALECTS[name])
    two = statements.bind(sa.select(posts.c.id).where(posts.c.id.in_([1, 2])))
    three = statements.bind(sa.select(posts.c.id).where(posts.c.id.in_([3, 4, 5])))
    assert (two.args, three.args) == ((1, 2), (3, 4, 5))
    assert two.sql.count("?" if name == "sqlite" else "$") == 2
    assert three.sql.count("?" if name == "sqlite" else "$") == 3


def test_inserts_are_prepared_once_and_take_values_by_column() -> None:
    statements = Statements(DIALECTS["sqlite"])
    insert = statements.prepare(sa.insert(posts).returning(*posts.c), column_keys=("title", "select"))
    statement = insert.bind({"select": "s", "title": "t"})
    assert statement.sql == 'INSERT INTO posts (title, "select") VALUES (?, ?) RETURNING id, title, "select"'
    assert statement.args == ("t", "s")


def test_bound_values_go_through_the_dialects_processors() -> None:
    """A literal's type converts it as on SQLAlchemy's own path (SQLite stores datetimes as text)."""
    statements = Statements(DIALECTS["sqlite"])
    moment = dt.datetime(2024, 5, 6, 7, 8, 9)
    statement = statements.bind(sa.select(posts.c.id).where(posts.c.title == sa.literal(moment)))
    assert statement.args == ("2024-05-06 07:08:09.000000",)
