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
