"""In-memory filtering (graph.rules.matcher) agrees with SQL filtering (graph.rules.to_sql).

Hypothesis generates rows and a few `t_bool_exp` filters; the rows go into a
real SQLite and a real PostgreSQL database, and for each filter the ids the
compiled WHERE clause keeps must be exactly the rows `matches()` calls True.
The run is bounded for `make test`; set FORGEGRAPH_HYPOTHESIS_EXAMPLES
(default 100) for a longer one, e.g.
`FORGEGRAPH_HYPOTHESIS_EXAMPLES=3000 .venv/bin/pytest tests/test_matching.py`.

Operands have the types GraphQL lets through for each column (32-bit Int,
finite Float), plus Float operands on the Int column and Int operands on the
Float column. Text is ASCII only: SQLite's LIKE folds case for ASCII letters
alone, while Python and PostgreSQL fold all of Unicode, so non-ASCII text
would differ for reasons that are the databases' own, not ours.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from graph.dialect.sqlite import configure_sqlite
from graph.errors import ValidationFailed
from graph.model import Column, Kind, Table
from graph.reflect import reflect
from graph.rules.matcher import Matcher, Truth, compile_matcher
from graph.rules.parse import parse_stream_where, parse_trusted
from graph.rules.to_sql import Filters
from graph.sql.tables import core_tables
from graph.sql.values import to_api

EXAMPLES = int(os.environ.get("FORGEGRAPH_HYPOTHESIS_EXAMPLES", "100"))


def check_filter(table: Table, exp: Any, where: str = "where") -> None:
    """Raise ValidationFailed unless `exp` is a bool_exp events can be filtered by on `table`."""
    parse_stream_where(table, exp, where)


def compile_filter(exp: dict[str, Any] | None) -> Matcher:
    """`exp` (checked, or built right by the test) as the event side's function of a row."""
    return compile_matcher(None if exp is None else parse_trusted(None, exp))


def matches(exp: dict[str, Any] | None, row: dict[str, Any]) -> Truth:
    return compile_filter(exp)(row)

Row = dict[str, Any]
Exp = dict[str, Any]

# The text column is compared in the "C" collation on PostgreSQL, byte order as
# in SQLite and Python; under a linguistic default collation (en_US.UTF-8)
# `_gt`/`_lt` on text would order differently from matching.py.
DDL = {
    "sqlite": "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, x REAL, s TEXT, b BOOLEAN)",
    "postgresql": (
        "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, x DOUBLE PRECISION,"
        ' s TEXT COLLATE "C", b BOOLEAN)'
    ),
}


class Database:
    """One database with table `t`, driven from sync code through one event loop."""

    def __init__(
        self, runner: asyncio.Runner, engine: AsyncEngine, table: Table, filters: Filters
    ) -> None:
        self.runner = runner
        self.engine = engine
        self.table = table
        self.filters = filters
        self.core = filters.tables["t"]

    def __repr__(self) -> str:  # hypothesis prints it with every failing example
        return f"Database({self.engine.dialect.name})"

    @classmethod
    async def open(cls, runner: asyncio.Runner, url: str) -> Database:
        engine = create_async_engine(url)
        if engine.dialect.name == "sqlite":
            # As the server's connections are: `_ilike` calls a function of ours there.
            sa.event.listen(engine.sync_engine, "connect", lambda conn, _record: configure_sqlite(conn))
        async with engine.begin() as conn:
            await conn.execute(sa.text(DDL[engine.dialect.name]))
        model = await reflect(engine)
        return cls(runner, engine, model.table("t"), Filters(model, core_tables(model)))

    def run(self, rows: list[Row], exps: list[Exp]) -> tuple[list[Row], list[list[int]]]:
        """Every row as the API reads it, and the ids each filter keeps in SQL."""
        return self.runner.run(self._run(rows, exps))

    async def _run(self, rows: list[Row], exps: list[Exp]) -> tuple[list[Row], list[list[int]]]:
        kinds = {c.name: c.kind for c in self.table.columns}
        async with self.engine.connect() as conn:
            try:
                if rows:
                    await conn.execute(sa.insert(self.core), rows)
                stored = await conn.execute(sa.select(self.core))
                api_rows = [{k: to_api(kinds[k], v) for k, v in r._mapping.items()} for r in stored]
                kept = []
                for exp in exps:
                    where = self.filters.compile("t", exp)
                    kept.append(sorted((await conn.execute(sa.select(self.core.c.id).where(where))).scalars()))
                return api_rows, kept
            finally:
                await conn.rollback()  # every example starts from an empty table


@pytest.fixture
def database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Database]:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'matching.db'}"
    else:
        url = request.getfixturevalue("fresh_postgres")
    with asyncio.Runner() as runner:
        db = runner.run(Database.open(runner, url))
        try:
            yield db
        finally:
            runner.run(db.engine.dispose())


# -- strategies ---------------------------------------------------------------
#
# Values come from small pools (so that filters meet rows) and from the whole
# range. Operands are often values the rows hold, and LIKE patterns are often
# made from the rows' text, so that comparisons and patterns hit as often as
# they miss: filters are drawn with placeholders (`Seen`, `Pattern`) that are
# filled in from the rows, which keeps every strategy built once.

INTS = st.one_of(st.integers(-3, 3), st.integers(-(2**31), 2**31 - 1))
FLOATS = st.one_of(
    st.sampled_from([0.0, -0.0, 0.5, 1.0, -1.5, 2.0, 3.0]),
    st.floats(allow_nan=False, allow_infinity=False),
)
# `%`, `_` and `\` are LIKE's own; `*`, `?`, `[`, `]` are GLOB's (SQLite's `_like`).
TEXTS = st.text("aAbB%_\\*?[] \n", max_size=4)


def _or_null(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly `values`, sometimes null (a null operand is left out by SQL and matching alike)."""
    return st.integers(0, 4).flatmap(lambda i: st.none() if i == 0 else values)


ROWS = st.lists(
    st.fixed_dictionaries({
        "n": _or_null(INTS), "x": _or_null(FLOATS), "s": _or_null(TEXTS), "b": _or_null(st.booleans()),
    }),
    min_size=2,
    max_size=10,
).map(lambda rows: [{"id": i, **row} for i, row in enumerate(rows, start=1)])


@dataclass(frozen=True)
class Seen:
    """The `index`-th value some row holds in `column` (cyclically)."""

    column: str
    index: int

    def value(self, rows: list[Row]) -> Any:
        values = [row[self.column] for row in rows if row[self.column] is not None]
        if not values:
            return {"x": self.index + 0.5, "s": "aB"[: self.index]}.get(self.column, self.index)
        return values[self.index % len(values)]


@dataclass(frozen=True)
class Pattern:
    """A LIKE pattern made from a text: each character kept, case-flipped, wildcarded or escaped."""

    source: str | Seen
    edits: tuple[str, ...]
    prefix: str
    suffix: str

    def value(self, rows: list[Row]) -> str:
        text = self.source.value(rows) if isinstance(self.source, Seen) else self.source
        edited = (
            {"flip": ch.swapcase(), "_": "_", "%": "%", "escape": "\\" + ch}.get(how, ch)
            for ch, how in zip(text, self.edits + ("keep",) * len(text), strict=False)
        )
        # A pattern may end in a lone `\`: graph/sql/where.py reads it as a
        # literal backslash on every database, as matching.py does.
        return self.prefix + "".join(edited) + self.suffix


def _fill(node: Any, rows: list[Row]) -> Any:
    if isinstance(node, dict):
        return {key: _fill(value, rows) for key, value in node.items()}
    if isinstance(node, list):
        return [_fill(value, rows) for value in node]
    return node.value(rows) if isinstance(node, Seen | Pattern) else node


def _seen(column: str) -> st.SearchStrategy[Seen]:
    return st.builds(Seen, st.just(column), st.integers(0, 7))


PATTERNS = st.builds(
    Pattern,
    st.one_of(_seen("s"), TEXTS),
    st.lists(st.sampled_from(["keep", "keep", "flip", "_", "%", "escape"]), max_size=4).map(tuple),
    st.sampled_from(["", "%"]),
    st.sampled_from(["", "%", "_", "a"]),
)
# Each column's operand types. A list holds one type only: `n: {_in: [0, 2.5]}`
# binds as `IN ($1::INTEGER, $2::INTEGER)` on PostgreSQL, which truncates 2.5
# to 2; GraphQL coerces every item to the column's scalar, so that cannot
# arrive there.
OPERANDS: dict[str, tuple[st.SearchStrategy[Any], ...]] = {
    "id": (_seen("id") | INTS,),
    "n": (_seen("n") | INTS, FLOATS),
    "x": (_seen("x") | FLOATS, INTS),
    "s": (_seen("s") | TEXTS,),
    "b": (st.booleans(),),
}


def _operators(column: str) -> dict[str, st.SearchStrategy[Any]]:
    types = OPERANDS[column]
    value = _or_null(st.one_of(types))
    values = _or_null(st.one_of([st.lists(t, max_size=3) for t in types]))
    ops = {op: value for op in ("_eq", "_neq", "_gt", "_gte", "_lt", "_lte")}
    ops |= {"_in": values, "_nin": values, "_is_null": _or_null(st.booleans())}
    if column == "s":
        ops |= {op: _or_null(PATTERNS) for op in ("_like", "_nlike", "_ilike", "_nilike")}
    return ops


OPERATORS = {column: _operators(column) for column in OPERANDS}
# Drawn from lists (rather than one_of) so that the text column and its pattern
# operators, the most intricate, come up as often as the rest put together.
OPERATOR_NAMES = {
    column: [*(op for op in ops if op.endswith("like")), *ops] for column, ops in OPERATORS.items()
}


def _comparison(column: str) -> st.SearchStrategy[Exp]:
    ops = OPERATORS[column]
    pair = st.sampled_from(OPERATOR_NAMES[column]).flatmap(lambda op: st.tuples(st.just(op), ops[op]))
    return st.lists(pair, min_size=1, max_size=2).map(lambda pairs: {column: dict(pairs)})


LEAVES = [
    *(_comparison(column) for column in ("s", "n", "x", "s", "b", "id", "s")),
    # Left out, as Hasura does: an empty or null comparison, a null `_and`...
    st.sampled_from([{}, {"n": None}, {"s": {}}, {"_and": None}, {"_or": None}, {"_not": None}]),
]


def _nest(children: st.SearchStrategy[Exp]) -> st.SearchStrategy[Exp]:
    return st.one_of(
        st.lists(children, max_size=3).map(lambda items: {"_and": items}),
        st.lists(children, max_size=3).map(lambda items: {"_or": items}),
        children.map(lambda item: {"_not": item}),
        st.tuples(children, children).map(lambda pair: {**pair[0], **pair[1]}),  # implicitly and-ed
    )


FILTERS = st.recursive(
    st.sampled_from(LEAVES).flatmap(lambda leaf: leaf),
    _nest,
    max_leaves=6,
)


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[Row], list[Exp]]:
    """Rows, and a few filters whose placeholders are filled in from them."""
    rows = draw(ROWS)
    return rows, _fill(draw(st.lists(FILTERS, min_size=3, max_size=6)), rows)


# -- the property -------------------------------------------------------------

NULL_ROW = {"id": 1, "n": None, "x": None, "s": None, "b": None}
FULL_ROW = {"id": 2, "n": 2, "x": 2.5, "s": "50%", "b": True}
ROWS_2 = [NULL_ROW, FULL_ROW]


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    # The database is reused on purpose: each example rolls its rows back.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
@example(case=(ROWS_2, [{"_not": {"n": {"_eq": 2}}}, {"_not": {"_not": {"b": {"_eq": True}}}}]))
@example(case=(ROWS_2, [{"n": {"_nin": []}}, {"_not": {"n": {"_nin": []}}}]))
@example(case=(ROWS_2, [{"n": {"_in": []}}, {"_not": {"n": {"_in": []}}}]))
@example(case=(ROWS_2, [{"n": {"_in": [2, 3]}}, {"_not": {"x": {"_in": [2.5]}}}, {"_not": {"n": {"_nin": [2]}}}]))
@example(case=(ROWS_2, [{"s": {"_like": "50\\%"}}, {"s": {"_like": "5\\0\\%"}}, {"s": {"_nlike": "\\5%"}}]))
@example(case=(ROWS_2, [{"s": {"_ilike": "5_%", "_like": "%\\%"}}, {"s": {"_nilike": "50\\_"}}]))
@example(case=([{**NULL_ROW, "s": "Ab"}, {**FULL_ROW, "s": "aB*"}], [{"s": {"_like": "a%"}}, {"s": {"_ilike": "a%"}}, {"s": {"_like": "%*"}}, {"s": {"_nilike": "AB"}}]))
@example(case=(ROWS_2, [{"n": {"_gt": 1.5, "_lt": 2.5}}, {"n": {"_eq": 2.0}}, {"x": {"_gt": 2, "_lt": 3}}]))
@example(case=(ROWS_2, [{"b": {"_gt": False}}, {"b": {"_lte": False}}]))
@example(case=(ROWS_2, [{"_and": [], "_or": []}, {"_or": []}, {"_not": {"_or": []}}, {"_not": {}}]))
@example(case=(ROWS_2, [{"n": {"_eq": None}, "s": None}, {"_not": {"x": {"_is_null": True}}}]))
def test_matching_agrees_with_sql(database: Database, case: tuple[list[Row], list[Exp]]) -> None:
    rows, exps = case
    api_rows, kept = database.run(rows, exps)
    for exp, ids in zip(exps, kept, strict=True):
        check_filter(database.table, exp)
        expected = [row["id"] for row in api_rows if matches(exp, row) is True]
        assert ids == sorted(expected), {"exp": exp, "rows": api_rows}


# -- compiled filters -----------------------------------------------------------

POOL = [0, 1, -1, 2, 1.0, 0.0, -0.0, 2.5, True, False, 2**53 + 1, float(2**53), "1", "a", "A", "",
        {"a": 1}, {"a": 1.0}, [1], [], None]


@pytest.mark.parametrize("value", POOL, ids=repr)
def test_in_is_a_set_lookup_with_the_order_of_comparisons(value: Any) -> None:
    """`_in`/`_nin` (sets) keep exactly the rows `_eq` with any of the items keeps."""
    for size in (1, 3, len(POOL)):
        items = [v for v in POOL[:size] if v is not None]
        row = {"c": value}
        expected = any(matches({"c": {"_eq": item}}, row) for item in items)
        if value is None:
            assert compile_filter({"c": {"_in": items}})(row) is None
            continue
        assert compile_filter({"c": {"_in": items}})(row) is expected, (value, items)
        assert compile_filter({"c": {"_nin": items}})(row) is (not expected), (value, items)


# -- checking filters that arrive as JSON ------------------------------------------

KINDS = Table("k", (
    Column("i", Kind.INTEGER, True), Column("g", Kind.BIGINT, True), Column("f", Kind.FLOAT, True),
    Column("t", Kind.STRING, True), Column("o", Kind.BOOLEAN, True), Column("j", Kind.JSON, True),
), ("i",))


@pytest.mark.parametrize(
    "exp",
    [
        {"i": {"_eq": 1}}, {"i": {"_gt": 1.5}}, {"g": {"_eq": 2**40}}, {"g": {"_in": [1, 2.0]}},
        {"f": {"_lt": 1}}, {"f": {"_lt": 0.5}}, {"t": {"_eq": "1"}}, {"o": {"_eq": False}},
        {"j": {"_eq": {"a": [1]}}}, {"j": {"_eq": "x"}}, {"j": {"_in": [1, "x", None]}},
        {"i": {"_is_null": True}}, {"t": {"_is_null": False}}, {"i": {"_eq": None}},
    ],
    ids=repr,
)
def test_filters_with_the_operand_types_graphql_lets_through_are_accepted(exp: Exp) -> None:
    check_filter(KINDS, exp)


@pytest.mark.parametrize(
    ("exp", "reason"),
    [
        ({"i": {"_is_null": "yes"}}, "where.i._is_null: expected true or false"),
        ({"t": {"_is_null": 1}}, "where.t._is_null: expected true or false"),
        ({"i": {"_eq": "1"}}, "where.i._eq: '1' is not a valid integer value"),
        ({"i": {"_eq": True}}, "where.i._eq: True is not a valid integer value"),
        ({"g": {"_eq": "1"}}, "where.g._eq: '1' is not a valid bigint value"),
        ({"g": {"_in": [1, False]}}, "where.g._in: False is not a valid bigint value"),
        ({"f": {"_gt": "0.5"}}, "where.f._gt: '0.5' is not a valid float value"),
        ({"f": {"_gt": True}}, "where.f._gt: True is not a valid float value"),
        ({"o": {"_eq": 1}}, "where.o._eq: 1 is not a valid boolean value"),
        ({"t": {"_eq": 1}}, "where.t._eq: 1 is not a valid string value"),
        ({"i": {"_like": "1%"}}, "where.i._like: pattern operators apply to text columns only"),
        ({"j": {"_ilike": "%"}}, "where.j._ilike: pattern operators apply to text columns only"),
        ({"i": {"_in": 1}}, "where.i._in: expected a list"),
        ({"i": {"_near": 1}}, "where.i: unknown operator '_near'"),
        ({"_and": {"i": {"_eq": 1}}}, "where._and: expected a list"),
        ({"k": {"_eq": 1}}, "where: field 'k' not found in type: 'k_bool_exp'"),
    ],
)
def test_filters_with_other_operand_types_are_refused_with_the_place(exp: Exp, reason: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_filter(KINDS, exp)
    assert caught.value.message == reason


def test_a_stream_filter_nested_past_the_limit_is_refused_before_it_is_read() -> None:
    from graph.nesting import MAX_FILTER_DEPTH

    exp: Exp = {"i": {"_eq": 1}}
    for _ in range(MAX_FILTER_DEPTH + 1):
        exp = {"_not": exp}
    with pytest.raises(ValidationFailed) as caught:
        check_filter(KINDS, exp, "variables.where")
    assert caught.value.message == f"variables.where: the filter is nested more than {MAX_FILTER_DEPTH} levels deep"


def test_a_null_field_leaves_out_only_itself() -> None:
    """Hasura drops a field whose value is null; the fields after it still filter."""
    exp = {"t": None, "i": {"_eq": 1}, "o": None, "f": {"_gt": 0}}
    check_filter(KINDS, exp)
    keep = compile_filter(exp)
    assert keep({"i": 1, "f": 1.0}) is True
    assert keep({"i": 2, "f": 1.0}) is False
    assert keep({"i": 1, "f": -1.0}) is False


# -- values of different storage classes, as SQLite orders them -------------------

MIXED = [0, 1, 2.5, -1.5, "", "1", "a", "a'", "b", "a\n", 'a"', "\\"]
ORDERS = {"_eq": "=", "_neq": "<>", "_gt": ">", "_gte": ">=", "_lt": "<", "_lte": "<="}


def test_comparisons_across_storage_classes_follow_sqlite() -> None:
    """Numbers before text, text by code point: a row that holds what its column's type
    does not (a text in an INTEGER column, delivered as stored) compares as SQLite does."""
    database = sqlite3.connect(":memory:")
    wrong = []
    for value, operand, (op, sql) in itertools.product(MIXED, MIXED, ORDERS.items()):
        (expected,) = database.execute(f"SELECT ? {sql} ?", (value, operand)).fetchone()
        if compile_filter({"c": {op: operand}})({"c": value}) is not bool(expected):
            wrong.append((value, op, operand))
    database.close()
    assert not wrong, wrong


@pytest.mark.parametrize(("value", "pattern"), [(12, "1%"), (12, "_2"), (-3, "-%"), (2.5, "2._")])
def test_patterns_match_the_text_of_a_number_as_sqlite_does(value: float, pattern: str) -> None:
    database = sqlite3.connect(":memory:")
    (expected,) = database.execute("SELECT ? LIKE ?", (value, pattern)).fetchone()
    database.close()
    assert expected == 1
    assert compile_filter({"c": {"_like": pattern}})({"c": value}) is True
    assert compile_filter({"c": {"_nlike": pattern}})({"c": value}) is False
    assert compile_filter({"c": {"_like": "x%"}})({"c": value}) is False
