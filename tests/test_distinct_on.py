"""`distinct_on` (SPEC section 4, as Hasura defines it) on SQLite and PostgreSQL alike.

Real servers over the library database: the first row of each group in the
query's order, NULLs one group, limit and offset after distinct, array
relationships, `t_aggregate` counts, Hasura's rule that the columns lead
`order_by`, variables, and a role that sees only some columns.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import jwt

from tests.conftest import GraphQL

SECRET = "forgegraph-distinct-on-tests-secret-0123456789abcdef"
RULES = """\
tables:
  posts:
    select:
      reader: {filter: {published: {_eq: true}}, columns: [id, title, user_id]}
"""
NOT_LEADING = '"distinct_on" columns must match initial "order_by" columns'


def ids(rows: list[dict[str, Any]]) -> list[int]:
    return [r["id"] for r in rows]


def test_first_row_of_each_group_in_the_query_order(gql: GraphQL) -> None:
    # Posts by user: 1 and 2 are user 1's, 3 user 2's, 4 user 3's.
    data = gql("""{
        newest: posts(distinct_on: [user_id], order_by: [{user_id: asc}, {id: desc}]) { id user_id }
        oldest: posts(distinct_on: user_id, order_by: [{user_id: desc}, {id: asc}]) { id }
    }""")
    assert data["newest"] == [{"id": 2, "user_id": 1}, {"id": 3, "user_id": 2}, {"id": 4, "user_id": 3}]
    assert ids(data["oldest"]) == [4, 3, 1]


def test_one_statement_distinct_on_on_postgresql_a_window_on_sqlite(gql: GraphQL, backend: str) -> None:
    plans = gql.server.app.state.runtime.query_plans
    sent: list[str] = []
    plans.backend.observers.append(sent.append)
    data = gql("""{
        posts(distinct_on: [user_id], order_by: [{user_id: asc}, {id: desc}]) { id }
        users(order_by: {id: asc}) { posts_by_user_id(distinct_on: published) { id } }
        posts_aggregate(distinct_on: editor_id) { aggregate { count } }
    }""")
    plans.backend.observers.remove(sent.append)
    assert ids(data["posts"]) == [2, 3, 4]
    assert data["posts_aggregate"] == {"aggregate": {"count": 3}}
    # The change capture polls its log meanwhile; only the query's own statements count.
    selects = [s for s in sent if s.lstrip().upper().startswith("SELECT") and "_forgegraph" not in s]
    assert len(selects) == 1, selects
    if backend == "postgres":
        assert selects[0].count("DISTINCT ON") == 3
    else:
        assert selects[0].count("row_number() OVER (PARTITION BY") == 3


def test_nulls_are_one_group_placed_as_order_by_says(gql: GraphQL) -> None:
    # editor_id: post 1 NULL, post 2 -> 2, post 3 -> 1, post 4 NULL.
    data = gql("""{
        last: posts(distinct_on: [editor_id], order_by: [{editor_id: asc}, {id: desc}]) { id editor_id }
        first: posts(distinct_on: [editor_id], order_by: [{editor_id: asc_nulls_first}, {id: asc}]) { id }
        desc: posts(distinct_on: [editor_id], order_by: [{editor_id: desc}, {id: asc}]) { id }
    }""")
    assert data["last"] == [{"id": 3, "editor_id": 1}, {"id": 2, "editor_id": 2}, {"id": 4, "editor_id": None}]
    assert ids(data["first"]) == [1, 3, 2]
    assert ids(data["desc"]) == [1, 2, 3]  # plain desc puts NULLs first, as PostgreSQL does


def test_without_order_by_and_on_several_columns(gql: GraphQL) -> None:
    data = gql("""{
        posts(distinct_on: [published]) { published }
        pairs: posts(distinct_on: [published, user_id], order_by: [{user_id: asc}, {published: asc}, {id: desc}]) {
            id }
        users(distinct_on: [profile]) { id }
    }""")
    # Without order_by the groups come in the order of their values (which row is unspecified, as Hasura).
    assert data["posts"] == [{"published": False}, {"published": True}]
    # The distinct_on columns may lead order_by in any order.
    assert ids(data["pairs"]) == [2, 1, 3, 4]
    # JSON columns group too (by their text on PostgreSQL, whose json has no equality); NULL is a group.
    assert sorted(ids(data["users"])) == [1, 2, 3]


def test_limit_and_offset_apply_after_distinct(gql: GraphQL) -> None:
    data = gql("""{
        posts(distinct_on: [user_id], order_by: [{user_id: asc}, {id: desc}], limit: 2, offset: 1) { id }
        where: posts(where: {id: {_neq: 2}}, distinct_on: [user_id], order_by: [{user_id: asc}, {id: desc}],
                     limit: 1) { id }
    }""")
    assert ids(data["posts"]) == [3, 4]
    assert ids(data["where"]) == [1]  # the filter applies before distinct


def test_array_relationship_with_distinct_on(gql: GraphQL) -> None:
    data = gql("""{
        users(order_by: {id: asc}) {
            id
            posts: posts_by_user_id(distinct_on: [published], order_by: [{published: desc}, {id: desc}]) { id published }
            any: posts_by_user_id(distinct_on: published, limit: 1) { published }
        }
        comments_by_pk(id: 1) { post { user {
            posts_by_user_id(distinct_on: user_id, order_by: [{user_id: asc}, {id: desc}]) {
            id } } } }
    }""")
    assert data["users"] == [
        {"id": 1, "posts": [{"id": 1, "published": True}, {"id": 2, "published": False}],
         "any": [{"published": False}]},
        {"id": 2, "posts": [{"id": 3, "published": True}], "any": [{"published": True}]},
        {"id": 3, "posts": [{"id": 4, "published": True}], "any": [{"published": True}]},
    ]
    assert data["comments_by_pk"] == {"post": {"user": {"posts_by_user_id": [{"id": 2}]}}}


def test_distinct_on_deeper_than_one_sqlite_statement_nests(gql: GraphQL) -> None:
    # Past graph.compile._query_sqlite.MAX_NESTING levels, SQLite reads a relationship by a statement of its own.
    data = gql("""{ users(where: {id: {_eq: 1}}) {
        posts_by_user_id(order_by: {id: asc}, limit: 1) { comments(order_by: {id: asc}, limit: 1) { post { user {
            posts_by_user_id(distinct_on: [published], order_by: [{published: asc}, {id: asc}]) { id user {
                posts_by_user_id(distinct_on: user_id, order_by: [{user_id: asc}, {id: desc}]) { id } } } } } } } } }""")
    user = data["users"][0]["posts_by_user_id"][0]["comments"][0]["post"]["user"]
    assert user["posts_by_user_id"] == [
        {"id": 2, "user": {"posts_by_user_id": [{"id": 2}]}},
        {"id": 1, "user": {"posts_by_user_id": [{"id": 2}]}},
    ]


def test_aggregate_count_with_distinct_on(gql: GraphQL) -> None:
    data = gql("""{
        all: posts_aggregate { aggregate { count } }
        users: posts_aggregate(distinct_on: [user_id]) { aggregate { count } }
        editors: posts_aggregate(distinct_on: editor_id) { aggregate { count } }
        published: posts_aggregate(distinct_on: [user_id], where: {published: {_eq: false}}) { aggregate { n: count } }
        ordered: posts_aggregate(distinct_on: [published], order_by: [{published: asc}, {id: desc}]) {
            aggregate { count } }
        limited: posts_aggregate(distinct_on: [user_id], order_by: [{user_id: asc}], limit: 2, offset: 2) {
            aggregate { count } }
        plain_limit: posts_aggregate(limit: 3, offset: 2) { aggregate { count } }
    }""")
    counts = {key: value["aggregate"] for key, value in data.items()}
    assert counts == {
        "all": {"count": 4},
        "users": {"count": 3},
        "editors": {"count": 3},  # NULL, 1 and 2
        "published": {"n": 1},
        "ordered": {"count": 2},
        "limited": {"count": 1},
        "plain_limit": {"count": 2},
    }


def test_distinct_on_must_lead_order_by(gql: GraphQL) -> None:
    for query in (
        "{ posts(distinct_on: [user_id], order_by: [{id: asc}]) { id } }",
        "{ posts(distinct_on: [user_id], order_by: [{id: asc}, {user_id: asc}]) { id } }",
        "{ posts(distinct_on: [user_id, id], order_by: [{user_id: asc}]) { id } }",
        "{ posts(distinct_on: [user_id], order_by: [{user: {id: asc}}, {user_id: asc}]) { id } }",
        "{ users { posts_by_user_id(distinct_on: [user_id], order_by: {id: desc}) { id } } }",
        "{ posts_aggregate(distinct_on: [user_id], order_by: [{title: asc}]) { aggregate { count } } }",
    ):
        body = gql.raw(query)
        assert [e["extensions"]["code"] for e in body["errors"]] == ["validation-failed"], query
        assert body["errors"][0]["message"] == NOT_LEADING
    # An unknown column is not in the enum; an empty distinct_on is no distinct at all.
    assert gql.error_codes("{ posts(distinct_on: [nope]) { id } }") == ["validation-failed"]
    assert ids(gql("{ posts(distinct_on: [], order_by: {id: desc}) { id } }")["posts"]) == [4, 3, 2, 1]


def test_distinct_on_from_variables(gql: GraphQL) -> None:
    query = """query($on: [posts_select_column!], $order: [posts_order_by!]) {
        posts(distinct_on: $on, order_by: $order) { id } }"""
    newest = [{"user_id": "asc"}, {"id": "desc"}]
    assert ids(gql(query, {"on": ["user_id"], "order": newest})["posts"]) == [2, 3, 4]
    assert ids(gql(query, {"on": None, "order": newest})["posts"]) == [2, 1, 3, 4]
    assert ids(gql(query, {"on": "published", "order": [{"published": "asc"}, {"id": "asc"}]})["posts"]) == [2, 1]
    assert ids(gql(query, {"on": ["user_id"], "order": newest})["posts"]) == [2, 3, 4]
    assert gql.error_codes(query, {"on": ["user_id"], "order": [{"id": "asc"}]}) == ["validation-failed"]


def test_a_role_distinct_on_only_its_columns(library_url: str, serve: Any, tmp_path: Path) -> None:
    rules = tmp_path / "permissions.yaml"
    rules.write_text(RULES)
    server = serve(database=library_url, permissions=str(rules), jwt_secret=SECRET)
    token = jwt.encode({"sub": "1", "role": "reader", "exp": int(time.time()) + 3600}, SECRET, "HS256")
    with httpx.Client(base_url=server.url, timeout=30, trust_env=False,
                      headers={"Authorization": f"Bearer {token}"}) as http:

        def post(query: str) -> dict[str, Any]:
            response = http.post("/graphql", json={"query": query})
            assert response.status_code == 200, response.text
            return response.json()  # type: ignore[no-any-return]

        shape = post('{ __type(name: "posts_select_column") { enumValues { name } } }')
        assert shape["data"]["__type"]["enumValues"] == [{"name": "id"}, {"name": "title"}, {"name": "user_id"}]
        refused = post("{ posts(distinct_on: [published]) { id } }")
        assert [e["extensions"]["code"] for e in refused["errors"]] == ["validation-failed"]
        # The row rule picks the rows first (post 2 is unpublished): user 1's newest it may see is post 1.
        seen = post("{ posts(distinct_on: [user_id], order_by: [{user_id: asc}, {id: desc}]) { id } }")
        assert seen == {"data": {"posts": [{"id": 1}, {"id": 3}, {"id": 4}]}}
        counted = post("{ posts_aggregate(distinct_on: [user_id]) { aggregate { count } } }")
        assert counted == {"data": {"posts_aggregate": {"aggregate": {"count": 3}}}}
