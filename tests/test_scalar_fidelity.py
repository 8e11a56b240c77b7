"""Scalar fidelity (SPEC section 4) on SQLite and PostgreSQL alike.

`_ilike` / `_nilike` fold the case of non-ASCII letters on SQLite too (its
own LIKE folds ASCII only), as PostgreSQL's ILIKE does in a UTF-8 locale;
`_like` stays case-sensitive.
"""

from __future__ import annotations

import pytest

from graph.like import LikePattern, ilike
from tests.conftest import GraphQL

NAMES = ["Santo Antônio", "SÃO PAULO", "Zürich", "Ægir", "plain"]


def _names(gql: GraphQL, condition: str) -> list[str]:
    data = gql(f"""{{ users(where: {{_and: [{{id: {{_gte: 100}}}}, {{name: {condition}}}]}},
                          order_by: {{id: asc}}) {{ name }} }}""")
    return [row["name"] for row in data["users"]]


def test_ilike_folds_non_ascii_case_and_like_does_not(gql: GraphQL) -> None:
    objects = ", ".join(f'{{id: {100 + i}, name: "{name}"}}' for i, name in enumerate(NAMES))
    gql(f"mutation {{ insert_users(objects: [{objects}]) {{ affected_rows }} }}")
    assert _names(gql, '{_ilike: "%ANTÔNIO%"}') == ["Santo Antônio"]
    assert _names(gql, '{_ilike: "são%"}') == ["SÃO PAULO"]
    assert _names(gql, '{_ilike: "%zÜrich"}') == ["Zürich"]
    assert _names(gql, '{_ilike: "æ_ir"}') == ["Ægir"]
    assert _names(gql, '{_nilike: "%Ü%"}') == ["Santo Antônio", "SÃO PAULO", "Ægir", "plain"]
    assert _names(gql, '{_like: "%ANTÔNIO%"}') == []
    assert _names(gql, '{_like: "%Antônio%"}') == ["Santo Antônio"]
    assert _names(gql, '{_nlike: "%Antônio%"}') == ["SÃO PAULO", "Zürich", "Ægir", "plain"]


@pytest.mark.parametrize(
    ("pattern", "text"),
    [("%ANTÔNIO%", "Santo Antônio"), ("são%", "SÃO PAULO"), ("%zÜrich", "Zürich"), ("a\\%", "A%"),
     ("a\\%", "Ab"), ("_", "É"), ("x\\", "X\\")],
)
def test_sqlite_function_agrees_with_the_event_matcher(pattern: str, text: str) -> None:
    # The event-stream matcher (graph/rules/matcher.py) decides with LikePattern.
    assert ilike(text, pattern) == int(LikePattern(pattern, insensitive=True).matches(text))


def test_sqlite_function_is_null_on_null() -> None:
    assert ilike(None, "%") is None
    assert ilike("a", None) is None


def test_numeric_takes_numbers_and_strings_and_answers_strings(gql: GraphQL) -> None:
    # posts.rating, numeric(10, 2): 4.50 (post 1) and 3.25 (post 4).
    def ids(where: str, variables: dict[str, object] | None = None) -> list[int]:
        declared = "($w: posts_bool_exp)" if variables else ""
        data = gql(f"query {declared} {{ posts(where: {where}, order_by: {{id: asc}}) {{ id }} }}", variables)
        return [row["id"] for row in data["posts"]]

    assert ids("{rating: {_gt: 3.5}}") == ids('{rating: {_gt: "3.5"}}') == [1]
    assert ids("{rating: {_gt: 3}}") == [1, 4]
    assert ids('{rating: {_in: [3.25, "4.5"]}}') == [1, 4]
    assert ids("$w", {"w": {"rating": {"_lte": 3.25}}}) == [4]
    data = gql("""mutation ($r: numeric) {
        a: insert_posts_one(object: {id: 50, title: "a", user_id: 1, rating: 12.75}) { rating }
        b: insert_posts_one(object: {id: 51, title: "b", user_id: 1, rating: $r}) { rating }
        c: update_posts_by_pk(pk_columns: {id: 4}, _set: {rating: "0.25"}) { rating }
    }""", {"r": 1.25})
    # Values of exactly the column's scale: SQLite keeps no trailing zeros ('4.5' for 4.50).
    assert data == {"a": {"rating": "12.75"}, "b": {"rating": "1.25"}, "c": {"rating": "0.25"}}


@pytest.mark.parametrize("value", ['"abc"', '"1.2.3"', '""', "true"])
def test_a_value_that_is_no_number_is_refused_for_a_numeric_column(gql: GraphQL, value: str) -> None:
    codes = gql.error_codes(f"mutation {{ insert_posts_one(object: {{id: 60, title: \"x\", user_id: 1, rating: {value}}}) {{ id }} }}")
    assert codes == ["validation-failed"]
    assert gql("{ posts_by_pk(id: 60) { id } }") == {"posts_by_pk": None}
