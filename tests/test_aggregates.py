"""Aggregates (SPEC section 4, as Hasura defines them) on SQLite and PostgreSQL alike.

Real servers over the library database: `count(columns:, distinct:)`, sum,
avg, min, max and the statistics, typed per column as Hasura types them,
`nodes`, on the root and on array relationships, in one statement; a role
aggregating only its rows and columns.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.conftest import GraphQL

SECRET = "forgegraph-aggregates-tests-secret-0123456789abcdef"
RULES = """\
tables:
  posts:
    select:
      reader: {filter: {published: {_eq: true}}, columns: [id, title, user_id]}
"""


def test_functions_on_numbers_text_and_dates(gql: GraphQL) -> None:
    # users.score: 9.5, NULL, 7.0.
    data = gql("""{
        users_aggregate {
          aggregate {
            count
            scored: count(columns: [score])
            sum { score id }
            avg { score id }
            min { score name born }
            max { score name id }
            stddev_pop { score }
            var_pop { score }
            var_samp { score }
            variance { score }
            stddev { score }
            stddev_samp { score }
          }
        }
    }""")
    aggregate = data["users_aggregate"]["aggregate"]
    assert aggregate["count"] == 3
    assert aggregate["scored"] == 2
    assert aggregate["sum"] == {"score": 16.5, "id": 6}
    assert aggregate["avg"] == {"score": 8.25, "id": 2}
    assert aggregate["min"] == {"score": 7.0, "name": "Alice", "born": None}
    assert aggregate["max"] == {"score": 9.5, "name": "Carol", "id": 3}
    assert aggregate["stddev_pop"] == {"score": 1.25}
    assert aggregate["var_pop"] == {"score": 1.5625}
    assert aggregate["var_samp"] == aggregate["variance"] == {"score": 3.125}
    assert aggregate["stddev"] == aggregate["stddev_samp"]
    assert math.isclose(aggregate["stddev"]["score"], math.sqrt(3.125))


def test_numeric_sums_answer_strings_and_types_follow_hasura(gql: GraphQL) -> None:
    data = gql("""{
        posts_aggregate { aggregate { sum { rating } max { rating published_at } avg { rating } } }
        sum: __type(name: "posts_sum_fields") { fields { name type { name } } }
        avg: __type(name: "posts_avg_fields") { fields { name type { name } } }
        max: __type(name: "posts_max_fields") { fields { name } }
    }""")
    aggregate = data["posts_aggregate"]["aggregate"]
    assert float(aggregate["sum"]["rating"]) == 7.75
    assert float(aggregate["max"]["rating"]) == 4.5
    assert aggregate["max"]["published_at"] is None
    assert aggregate["avg"]["rating"] == 3.875
    types = {f["name"]: f["type"]["name"] for f in data["sum"]["fields"]}
    assert types["id"] == "Int" and types["user_id"] == "Int"
    assert "title" not in types and "published" not in types
    assert {f["type"]["name"] for f in data["avg"]["fields"]} == {"Float"}
    # min and max also on text and dates, never on booleans.
    assert {"title", "published_at", "id"} <= {f["name"] for f in data["max"]["fields"]}
    assert "published" not in {f["name"] for f in data["max"]["fields"]}


def test_count_columns_and_distinct(gql: GraphQL) -> None:
    # posts: user_id 1, 1, 2, 3; editor_id NULL, 2, 1, NULL.
    data = gql("""{
        posts_aggregate {
          aggregate {
            all: count
            users: count(columns: [user_id], distinct: true)
            edited: count(columns: [editor_id])
            editors: count(columns: editor_id, distinct: true)
            pairs: count(columns: [user_id, editor_id], distinct: true)
          }
        }
        users_aggregate { aggregate { profiles: count(columns: [profile], distinct: true) } }
    }""")
    assert data["posts_aggregate"]["aggregate"] == {"all": 4, "users": 3, "edited": 2, "editors": 2, "pairs": 2}
    # JSON values too (PostgreSQL's json has no equality of its own).
    assert data["users_aggregate"]["aggregate"] == {"profiles": 2}


def test_nodes_with_arguments_and_one_or_no_rows(gql: GraphQL) -> None:
    data = gql("""{
        page: posts_aggregate(order_by: {id: desc}, limit: 2, where: {published: {_eq: true}}) {
          aggregate { count sum { id } }
          nodes { id user { name } }
        }
        one: users_aggregate(where: {id: {_eq: 1}}) {
          aggregate { var_samp { score } var_pop { score } stddev { score } stddev_pop { score } }
        }
        none: users_aggregate(where: {id: {_gt: 10}}) {
          __typename
          aggregate { __typename count sum { __typename score } max { name } avg { score } }
          nodes { id }
        }
    }""")
    assert data["page"] == {
        "aggregate": {"count": 2, "sum": {"id": 7}},
        "nodes": [{"id": 4, "user": {"name": "Carol"}}, {"id": 3, "user": {"name": "Bob"}}],
    }
    assert data["one"]["aggregate"] == {
        "var_samp": {"score": None},
        "var_pop": {"score": 0},
        "stddev": {"score": None},
        "stddev_pop": {"score": 0},
    }
    assert data["none"] == {
        "__typename": "users_aggregate",
        "aggregate": {
            "__typename": "users_aggregate_fields",
            "count": 0,
            "sum": {"__typename": "users_sum_fields", "score": None},
            "max": {"name": None},
            "avg": {"score": None},
        },
        "nodes": [],
    }


def test_array_relationship_aggregates_in_one_statement(gql: GraphQL) -> None:
    plans = gql.server.app.state.runtime.query_plans
    sent: list[str] = []
    plans.backend.observers.append(sent.append)
    data = gql("""{
        users(order_by: {id: asc}) {
          id
          posts_by_user_id_aggregate(where: {published: {_eq: true}}) {
            aggregate { count max { id title } }
            nodes { id comments_aggregate { aggregate { count } } }
          }
          edits: posts_by_editor_id_aggregate { aggregate { count } }
        }
    }""")
    plans.backend.observers.remove(sent.append)
    assert data["users"] == [
        {
            "id": 1,
            "posts_by_user_id_aggregate": {
                "aggregate": {"count": 1, "max": {"id": 1, "title": "Hello World"}},
                "nodes": [{"id": 1, "comments_aggregate": {"aggregate": {"count": 2}}}],
            },
            "edits": {"aggregate": {"count": 1}},
        },
        {
            "id": 2,
            "posts_by_user_id_aggregate": {
                "aggregate": {"count": 1, "max": {"id": 3, "title": "Third"}},
                "nodes": [{"id": 3, "comments_aggregate": {"aggregate": {"count": 1}}}],
            },
            "edits": {"aggregate": {"count": 1}},
        },
        {
            "id": 3,
            "posts_by_user_id_aggregate": {
                "aggregate": {"count": 1, "max": {"id": 4, "title": "hello again"}},
                "nodes": [{"id": 4, "comments_aggregate": {"aggregate": {"count": 1}}}],
            },
            "edits": {"aggregate": {"count": 0}},
        },
    ]
    selects = [s for s in sent if s.lstrip().upper().startswith("SELECT") and "_forgegraph" not in s]
    assert len(selects) == 1, selects


def test_a_role_aggregates_only_its_rows_and_columns(library_url: str, serve: Any, tmp_path: Path) -> None:
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

        seen = post("{ posts_aggregate { aggregate { count sum { id } max { title } } nodes { id } } }")
        assert seen == {"data": {"posts_aggregate": {
            "aggregate": {"count": 3, "sum": {"id": 8}, "max": {"title": "hello again"}},
            "nodes": [{"id": 1}, {"id": 3}, {"id": 4}],
        }}}
        refused = post("{ posts_aggregate { aggregate { sum { rating } } } }")
        assert [e["extensions"]["code"] for e in refused["errors"]] == ["validation-failed"]


@pytest.mark.parametrize("function", ["sum", "avg", "stddev"])
def test_functions_refuse_text_columns(gql: GraphQL, function: str) -> None:
    query = f"{{ users_aggregate {{ aggregate {{ {function} {{ name }} }} }} }}"
    assert gql.error_codes(query) == ["validation-failed"]


def test_order_by_an_array_relationships_aggregate(gql: GraphQL) -> None:
    # Posts per user: 1 -> 2 (ids 1, 2), 2 -> 1 (id 3), 3 -> 1 (id 4); comments per post: 2, 0, 1, 1.
    data = gql("""{
        by_count: users(order_by: [{posts_by_user_id_aggregate: {count: desc}}, {id: desc}]) { id }
        by_max: users(order_by: {posts_by_user_id_aggregate: {max: {id: desc}}}) { id }
        by_sum: users(order_by: [{posts_by_user_id_aggregate: {sum: {id: desc}}}, {id: asc}]) { id }
        by_avg: users(order_by: {posts_by_editor_id_aggregate: {avg: {id: asc}}}) { id }
        by_body: users(order_by: {posts_by_user_id_aggregate: {max: {body: asc}}}) { id }
        posts(order_by: [{comments_aggregate: {count: asc}}, {id: asc}]) { id }
        nested: posts(order_by: [{user: {posts_by_user_id_aggregate: {count: asc}}}, {id: asc}]) { id }
    }""")
    assert [u["id"] for u in data["by_count"]] == [1, 3, 2]
    assert [u["id"] for u in data["by_max"]] == [3, 2, 1]
    assert [u["id"] for u in data["by_sum"]] == [3, 1, 2]  # sums 3, 3, 4
    # user 3 edited nothing: NULL, last in asc (as PostgreSQL).
    assert [u["id"] for u in data["by_avg"]] == [2, 1, 3]
    assert [u["id"] for u in data["by_body"]] == [2, 1, 3]  # "50% off_sale" < "first" < "x"
    assert [p["id"] for p in data["posts"]] == [2, 3, 4, 1]
    assert [p["id"] for p in data["nested"]] == [3, 4, 1, 2]


def test_order_by_aggregate_counts_only_rows_the_role_sees(library_url: str, serve: Any, tmp_path: Path) -> None:
    rules = tmp_path / "permissions.yaml"
    rules.write_text(RULES + "  users:\n    select:\n      reader: {columns: [id, name]}\n")
    server = serve(database=library_url, permissions=str(rules), jwt_secret=SECRET)
    token = jwt.encode({"sub": "1", "role": "reader", "exp": int(time.time()) + 3600}, SECRET, "HS256")
    with httpx.Client(base_url=server.url, timeout=30, trust_env=False,
                      headers={"Authorization": f"Bearer {token}"}) as http:
        # Post 2 (user 1's) is unpublished: every user has one post the reader sees.
        query = """{ users(order_by: [{posts_by_user_id_aggregate: {count: desc}}, {id: desc}]) {
            id posts_by_user_id_aggregate { aggregate { count } } } }"""
        response = http.post("/graphql", json={"query": query})
        users = response.json()["data"]["users"]
        assert [u["id"] for u in users] == [3, 2, 1]
        assert {u["posts_by_user_id_aggregate"]["aggregate"]["count"] for u in users} == {1}


def test_aggregates_deeper_than_one_sqlite_statement_nests(gql: GraphQL) -> None:
    data = gql("""{
        users(where: {id: {_eq: 1}}) {
          posts_by_user_id(order_by: {id: asc}, limit: 2) {
            user {
              posts_by_user_id(where: {id: {_eq: 1}}, limit: 1) {
                user {
                  posts_by_user_id_aggregate(limit: 5) {
                    aggregate { count max { id } }
                    nodes { id comments_aggregate { aggregate { count } } }
                  }
                }
              }
            }
          }
        }
    }""")
    deep = data["users"][0]["posts_by_user_id"][1]["user"]["posts_by_user_id"][0]["user"]
    assert deep["posts_by_user_id_aggregate"] == {
        "aggregate": {"count": 2, "max": {"id": 2}},
        "nodes": [
            {"id": 1, "comments_aggregate": {"aggregate": {"count": 2}}},
            {"id": 2, "comments_aggregate": {"aggregate": {"count": 0}}},
        ],
    }


def test_mutation_returning_reads_relationship_aggregates(gql: GraphQL) -> None:
    data = gql("""mutation {
        update_users(where: {id: {_in: [1, 3]}}, _set: {active: true}) {
          returning { id posts_by_user_id_aggregate { aggregate { count max { id } } nodes { id } } }
        }
        insert_posts_one(object: {id: 9, title: "new", user_id: 3}) {
          id user { posts_by_user_id_aggregate { aggregate { count } } }
        }
    }""")
    returning = sorted(data["update_users"]["returning"], key=lambda r: r["id"])
    assert returning == [
        {"id": 1, "posts_by_user_id_aggregate": {"aggregate": {"count": 2, "max": {"id": 2}},
                                                 "nodes": [{"id": 1}, {"id": 2}]}},
        {"id": 3, "posts_by_user_id_aggregate": {"aggregate": {"count": 1, "max": {"id": 4}},
                                                 "nodes": [{"id": 4}]}},
    ]
    assert data["insert_posts_one"] == {"id": 9, "user": {"posts_by_user_id_aggregate": {"aggregate": {"count": 2}}}}
