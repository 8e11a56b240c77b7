"""Compiling t_bool_exp to SQL (statements compiled, not run), and what PostgreSQL alone needs of it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import create_async_engine

from graph.errors import ValidationFailed
from graph.model import Column, DatabaseModel, Kind, Table
from graph.rules.to_sql import Filters, like_to_glob

TABLE = Table(
    name="posts",
    columns=(Column("id", Kind.INTEGER, False), Column("title", Kind.STRING, True),
             Column("at", Kind.DATETIME, True)),
    primary_key=("id",),
)
CORE = sa.Table("posts", sa.MetaData(), sa.Column("id"), sa.Column("title"), sa.Column("at"))


def sql(exp: object, dialect: str = "sqlite") -> str:
    filters = Filters(DatabaseModel(dialect, {"posts": TABLE}), {"posts": CORE})
    target = sqlite.dialect() if dialect == "sqlite" else postgresql.dialect()
    clause = filters.compile("posts", exp)  # type: ignore[arg-type]
    return str(clause.compile(dialect=target, compile_kwargs={"literal_binds": True}))


@pytest.mark.parametrize(
    ("like", "glob"),
    [("a%", "a*"), ("_b", "?b"), ("50\\%", "50%"), ("x\\_y", "x_y"), ("a*?[", "a[*][?][[]"), ("\\\\", "\\")],
)
def test_like_patterns_become_glob_patterns(like: str, glob: str) -> None:
    assert like_to_glob(like) == glob


def test_like_uses_glob_and_ilike_a_function_on_sqlite_and_like_on_postgresql() -> None:
    assert "GLOB 'a*'" in sql({"title": {"_like": "a%"}})
    # SQLite's LIKE folds ASCII only: a function of ours folds every letter.
    assert "fg_ilike(posts.title, 'a%') = 1" in sql({"title": {"_ilike": "a%"}})
    assert "title LIKE 'a%%'" in sql({"title": {"_like": "a%"}}, "postgresql")
    assert "ILIKE 'a%%'" in sql({"title": {"_ilike": "a%"}}, "postgresql")


def test_null_operands_are_left_out_as_hasura_does() -> None:
    assert sql({"title": {"_eq": None}}) == sql({})
    assert sql({"title": None, "_and": None}) == sql({})


def test_empty_or_matches_nothing_and_empty_and_everything() -> None:
    assert sql({"_or": []}) == "0"
    assert sql({"_and": []}) == "1"
    assert sql({"_or": []}, "postgresql") == "false"


def test_unknown_columns_and_operators_are_validation_failed() -> None:
    with pytest.raises(ValidationFailed, match="nope"):
        sql({"nope": {"_eq": 1}})
    with pytest.raises(ValidationFailed, match="_ne"):
        sql({"id": {"_ne": 1}})
    with pytest.raises(ValidationFailed):
        sql({"at": {"_eq": "yesterday"}})


def test_patterns_on_a_postgresql_uuid_match_its_text(fresh_postgres: str, serve: Any) -> None:
    """PostgreSQL has no LIKE for uuid (`uuid ~~ unknown`), which the API types String: its text is matched."""
    asyncio.run(_uuid_table(fresh_postgres))
    server = serve(database=fresh_postgres)
    with httpx.Client(base_url=server.url, timeout=30, trust_env=False) as http:
        for op, pattern, names in (
            ("_like", "0000%", ["a"]), ("_ilike", "%ABC%", ["b"]), ("_nlike", "0000%", ["b"]), ("_nilike", "%abc%", ["a"]),
        ):
            query = f'{{ things(where: {{id: {{{op}: "{pattern}"}}}}, order_by: {{name: asc}}) {{ name }} }}'
            body = http.post("/graphql", json={"query": query}).json()
            assert body == {"data": {"things": [{"name": n} for n in names]}}, (op, body)


async def _uuid_table(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE things (id UUID PRIMARY KEY, name TEXT)"))
            await conn.execute(sa.text(
                "INSERT INTO things VALUES ('00000000-0000-0000-0000-000000000001', 'a'), "
                "('11111111-abcd-0000-0000-000000000002', 'b')"
            ))
    finally:
        await engine.dispose()
