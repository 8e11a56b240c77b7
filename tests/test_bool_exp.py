"""One `t_bool_exp` AST (graph.rules): read from every source alike, compiled by both walkers (pure)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from graph.model import Column, DatabaseModel, ForeignKey, Kind, Table
from graph.naming import name_model
from graph.nesting import nesting_depth
from graph.rules.bool_exp import (
    NEVER,
    OPERATORS,
    And,
    BoolExp,
    ColumnExp,
    Compare,
    Not,
    Or,
    Related,
    SessionVariable,
    canonical,
    operators_for,
)
from graph.rules.matcher import compile_matcher
from graph.rules.parse import RuleParser, parse_stream_where, parse_trusted, parse_where
from graph.rules.session import resolve
from graph.rules.to_sql import Filters
from graph.sql.tables import core_tables

MODEL = name_model(DatabaseModel("sqlite", {
    "users": Table("users", (Column("id", Kind.INTEGER, False), Column("name", Kind.STRING, True)), ("id",)),
    "posts": Table("posts", (
        Column("id", Kind.INTEGER, False), Column("title", Kind.STRING, True),
        Column("user_id", Kind.INTEGER, True), Column("meta", Kind.JSON, True),
    ), ("id",), (ForeignKey(("user_id",), "users", ("id",)),)),
}))
POSTS, USERS = MODEL.tables["posts"], MODEL.tables["users"]

FILTER: dict[str, Any] = {
    "_or": [{"id": {"_gt": 1, "_in": [2, 3]}}, {"_not": {"title": {"_like": "a%"}}}],
    "_and": [],
    "title": {"_is_null": False},
}
AST = BoolExp((
    Or((
        BoolExp((ColumnExp("id", (Compare("_gt", 1), Compare("_in", (2, 3)))),)),
        BoolExp((Not(BoolExp((ColumnExp("title", (Compare("_like", "a%"),)),))),)),
    )),
    And(()),
    ColumnExp("title", (Compare("_is_null", False),)),
))


def test_every_source_reads_a_filter_into_the_same_nodes() -> None:
    assert parse_where(POSTS, FILTER, MODEL).fields == AST.fields
    stream = parse_stream_where(POSTS, FILTER)
    assert stream is not None and stream.fields == AST.fields
    assert RuleParser(MODEL).parse(POSTS, FILTER, "filter").fields == AST.fields
    assert parse_trusted(POSTS, FILTER).fields == AST.fields


def test_a_bool_exp_reads_back_as_the_mapping_it_came_from() -> None:
    assert AST == FILTER and FILTER == AST
    assert list(AST) == ["_or", "_and", "title"]
    assert AST.plain() == FILTER and type(AST.plain()["_or"][0]) is dict
    assert canonical(AST) == canonical(FILTER) == (
        '{"_and":[],"_or":[{"id":{"_gt":1,"_in":[2,3]}},{"_not":{"title":{"_like":"a%"}}}],'
        '"title":{"_is_null":false}}'
    )
    assert not BoolExp() and AST
    assert canonical(parse_trusted(None, {"n": {"_eq": 2**70}})) == '{"n":{"_eq":1180591620717411303424}}'


def test_null_operands_are_left_out_where_clients_write_them() -> None:
    exp = {"id": {"_eq": None, "_gt": 1}, "title": None, "_not": None}
    expected = (ColumnExp("id", (Compare("_gt", 1),)),)
    assert parse_where(POSTS, exp, MODEL).fields == expected
    stream = parse_stream_where(POSTS, exp)
    assert stream is not None and stream.fields == expected


def test_the_operator_table_gives_each_kind_its_operators() -> None:
    assert list(OPERATORS) == [
        "_eq", "_neq", "_gt", "_gte", "_lt", "_lte", "_in", "_nin", "_is_null",
        "_like", "_nlike", "_ilike", "_nilike",
    ]
    assert list(operators_for(Kind.STRING)) == list(OPERATORS)
    assert list(operators_for(Kind.DATETIME)) == list(OPERATORS)
    for kind in (Kind.INTEGER, Kind.BIGINT, Kind.FLOAT, Kind.BOOLEAN, Kind.JSON):
        assert list(operators_for(kind)) == list(OPERATORS)[:9]


def test_session_variables_are_operands_of_their_own_kind() -> None:
    rule = RuleParser(MODEL).parse(POSTS, {"user_id": {"_in": ["x-hasura-user-id", 3]}, "title": {"_eq": "X-Role"}}, "f")
    (user_id, title) = rule.fields
    assert isinstance(user_id, ColumnExp) and isinstance(title, ColumnExp)
    assert [type(v) for v in user_id.comparisons[0].operand] == [SessionVariable, int]
    assert user_id.comparisons[0].operand == ("X-User-Id", 3)
    assert type(title.comparisons[0].operand) is SessionVariable
    assert rule.reads_session
    # A client's filter holds literals only, whatever they spell.
    client = parse_where(POSTS, {"title": {"_eq": "X-User-Id"}}, MODEL)
    assert not client.reads_session
    assert type(client.fields[0].comparisons[0].operand) is str  # type: ignore[union-attr]
    assert compile_matcher(client)({"title": "X-User-Id"}) is True


def test_a_rule_is_compiled_only_once_its_variables_are_resolved() -> None:
    rule = RuleParser(MODEL).parse(POSTS, {"user_id": {"_eq": "X-User-Id"}}, "f")
    filters = Filters(MODEL, core_tables(MODEL))
    with pytest.raises(TypeError, match="not resolved"):
        filters.compile("posts", rule)
    with pytest.raises(TypeError, match="not resolved"):
        compile_matcher(rule)
    resolved = resolve(rule, POSTS, MODEL, {"X-User-Id": "7"})
    assert resolved == {"user_id": {"_eq": 7}} and not resolved.reads_session
    sql = filters.compile("posts", resolved).compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
    assert str(sql) == "posts.user_id = 7"
    assert compile_matcher(resolved)({"user_id": 7}) is True
    assert resolve(rule, POSTS, MODEL, {"X-User-Id": None}) == NEVER == {"_or": []}


def test_relationships_are_nodes_of_their_own() -> None:
    exp = parse_where(POSTS, {"_not": {"user": {"name": {"_eq": "a"}}}}, MODEL)
    assert exp.fields == (Not(BoolExp((Related("user", BoolExp((ColumnExp("name", (Compare("_eq", "a"),)),))),))),)
    assert exp.has_relationships and not parse_where(POSTS, FILTER, MODEL).has_relationships
    with pytest.raises(Exception, match="not supported on change streams"):
        parse_stream_where(POSTS, {"user": {}})


@pytest.mark.parametrize(
    "exp",
    [{}, FILTER, {"_or": []}, {"_and": [{}]}, {"_not": {"_not": {"id": {"_eq": 1}}}},
     {"meta": {"_eq": {"a": [1, {"b": []}]}}}, {"id": {"_in": []}}, {"user": {"_or": [{"id": {"_eq": 1}}]}}],
)
def test_depth_counts_the_levels_of_the_written_form(exp: dict[str, Any]) -> None:
    parsed = parse_where(POSTS, exp, MODEL) if exp else BoolExp()
    assert parsed.depth == nesting_depth(exp, 1000)


def test_sql_of_a_parsed_filter_is_the_sql_of_its_mapping() -> None:
    filters = Filters(MODEL, core_tables(MODEL))
    exp = {"_or": [{"id": {"_gt": 1}}, {"user": {"name": {"_ilike": "a%"}}}], "title": {"_nin": ["x"]}}

    def text(condition: sa.ColumnElement[bool]) -> str:
        return str(condition.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))

    assert text(filters.compile("posts", exp)) == text(filters.compile("posts", parse_where(POSTS, exp, MODEL)))


def test_a_where_nested_past_the_limit_is_refused_before_it_is_read() -> None:
    """Variables reach the parser without the document's depth limit: it checks its own."""
    from graph.errors import ValidationFailed
    from graph.nesting import MAX_FILTER_DEPTH

    exp: dict[str, Any] = {"id": {"_eq": 1}}
    for _ in range(MAX_FILTER_DEPTH + 1):
        exp = {"_not": exp}
    with pytest.raises(ValidationFailed, match=f"where: the filter is nested more than {MAX_FILTER_DEPTH} levels deep"):
        parse_where(POSTS, exp, MODEL)


def test_a_stream_filter_through_a_relationship_is_refused_naming_the_place() -> None:
    from graph.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as caught:
        parse_stream_where(POSTS, {"_or": [{"user": {"id": {"_eq": 1}}}]})
    assert caught.value.message == "where._or.user: filters through relationships are not supported on change streams"
