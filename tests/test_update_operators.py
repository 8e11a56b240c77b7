"""Update operators beside `_set` (SPEC section 4, as Hasura defines them): `_inc`.

Real servers over the library database, on SQLite and PostgreSQL alike:
numeric columns of each kind, `_inc` with `_set`, by primary key, permission
rules (columns, presets, checks), change events, and sums a column cannot hold.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import Api, GraphQL
from tests.test_realtime import change, subscribe

SECRET = "forgegraph-update-operator-tests-secret-0123456789"
RULES = """\
tables:
  posts:
    select:
      rater: {filter: {}, columns: "*"}
    update:
      # rating may be changed, editor_id is the rule's own; the sum must stay below 10.
      rater: {filter: {user_id: {_eq: X-User-Id}}, check: {rating: {_lt: 10}}, columns: [rating],
              set: {editor_id: X-User-Id}}
  tags:
    select:
      rater: {filter: {}, columns: "*"}
    update:
      rater: {filter: {}, columns: [weight]}
  users:
    select:
      rater: {filter: {}, columns: "*"}
    update:
      rater: {filter: {id: {_eq: X-User-Id}}, columns: [profile]}
"""
INT_MAX = 2**31 - 1
BIGINT_MAX = 2**63 - 1


def ordered(rows: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: tuple(r[k] for k in keys))


def test_inc_adds_to_int_float_and_numeric_columns_and_null_stays_null(gql: GraphQL) -> None:
    data = gql("""mutation {
        update_tags(where: {}, _inc: {weight: 10}) { affected_rows returning { post_id name weight } }
        update_users(where: {}, _inc: {score: 0.5}) { returning { id score } }
        a: update_posts(where: {id: {_in: [1, 2]}}, _inc: {rating: "1.25"}) { returning { id rating } }
        b: update_posts_by_pk(pk_columns: {id: 4}, _inc: {rating: -0.5}) { rating } }""")
    assert data["update_tags"]["affected_rows"] == 3
    assert ordered(data["update_tags"]["returning"], "post_id", "name") == [
        {"post_id": 1, "name": "intro", "weight": 11},
        {"post_id": 1, "name": "news", "weight": 12},
        {"post_id": 3, "name": "misc", "weight": None},  # NULL + 10 is NULL, as in SQL and Hasura
    ]
    assert ordered(data["update_users"]["returning"], "id") == [
        {"id": 1, "score": 10.0}, {"id": 2, "score": None}, {"id": 3, "score": 7.5},
    ]
    assert ordered(data["a"]["returning"], "id") == [{"id": 1, "rating": "5.75"}, {"id": 2, "rating": None}]
    assert data["b"] == {"rating": "2.75"}
    # What was written is what a query reads.
    assert gql("{ posts_by_pk(id: 1) { rating } tags_by_pk(post_id: 1, name: \"news\") { weight } }") == {
        "posts_by_pk": {"rating": "5.75"}, "tags_by_pk": {"weight": 12},
    }


def test_inc_takes_variables_and_a_key_column(gql: GraphQL) -> None:
    data = gql(
        "mutation($inc: comments_inc_input, $id: Int!) {"
        " update_comments_by_pk(pk_columns: {id: $id}, _inc: $inc) { id post_id body } }",
        {"inc": {"id": 100}, "id": 4},
    )
    assert data["update_comments_by_pk"] == {"id": 104, "post_id": 4, "body": "meh"}
    assert gql("{ comments_by_pk(id: 4) { id } }")["comments_by_pk"] is None


def test_inc_with_set_on_other_columns(gql: GraphQL) -> None:
    data = gql("""mutation { update_posts_by_pk(pk_columns: {id: 1}, _set: {title: "renamed", published: false},
                    _inc: {rating: 0.25, editor_id: 1}) { title published rating editor_id } }""")
    # editor_id was NULL: it stays NULL.
    assert data["update_posts_by_pk"] == {"title": "renamed", "published": False, "rating": "4.75",
                                          "editor_id": None}
    data = gql("""mutation { update_posts(where: {id: {_eq: 2}}, _set: {body: "b"}, _inc: {editor_id: 1}) {
                    affected_rows returning { body editor_id } } }""")
    assert data["update_posts"] == {"affected_rows": 1, "returning": [{"body": "b", "editor_id": 3}]}


def test_operator_errors(gql: GraphQL) -> None:
    body = gql.raw('mutation { update_posts(where: {}) { affected_rows } }')
    assert body["errors"][0]["extensions"]["code"] == "validation-failed"
    assert "(_set, _inc)" in body["errors"][0]["message"]
    # A column in two operators: refused, nothing written.
    body = gql.raw("""mutation { update_posts(where: {}, _set: {rating: "1", title: "t"}, _inc: {rating: 1}) {
                        affected_rows } }""")
    assert [e["extensions"]["code"] for e in body["errors"]] == ["validation-failed"]
    assert '"rating"' in body["errors"][0]["message"]
    assert gql('{ posts(where: {title: {_eq: "t"}}) { id } }')["posts"] == []
    # Only numeric columns are in `_inc`; a number for a numeric column, never a word.
    assert gql.error_codes('mutation { update_posts(where: {}, _inc: {title: 1}) { affected_rows } }') == [
        "validation-failed"
    ]
    assert gql.error_codes('mutation { update_posts(where: {}, _inc: {rating: "abc"}) { affected_rows } }') == [
        "validation-failed"
    ]
    assert gql.error_codes('mutation { update_users(where: {}, _inc: {score: "1"}) { affected_rows } }') == [
        "validation-failed"
    ]
    # An empty `_inc` is an operator that changes nothing, as an empty `_set` is.
    data = gql("mutation { update_posts(where: {}, _inc: {}) { affected_rows } }")
    assert data["update_posts"] == {"affected_rows": 0}


def test_sums_an_integer_column_cannot_hold_are_refused(gql: GraphQL) -> None:
    gql(f'mutation {{ update_tags_by_pk(pk_columns: {{post_id: 1, name: "intro"}}, _set: {{weight: {INT_MAX}}}) '
        "{ weight } }")
    # In one request with another write: the whole request is rolled back.
    body = gql.raw("""mutation {
        update_users_by_pk(pk_columns: {id: 1}, _set: {name: "kept?"}) { id }
        update_tags(where: {}, _inc: {weight: 1}) { affected_rows } }""")
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["validation-failed"]
    assert gql("{ users_by_pk(id: 1) { name } }")["users_by_pk"] == {"name": "Alice"}
    rows = gql("{ tags(order_by: {name: asc}) { name weight } }")["tags"]
    assert rows == [{"name": "intro", "weight": INT_MAX}, {"name": "misc", "weight": None},
                    {"name": "news", "weight": 2}]
    # Downwards too; and an increment that is itself beyond 32 bits.
    gql(f'mutation {{ update_tags_by_pk(pk_columns: {{post_id: 1, name: "intro"}}, _set: {{weight: {-INT_MAX}}}) '
        "{ weight } }")
    assert gql.error_codes(
        'mutation { update_tags_by_pk(pk_columns: {post_id: 1, name: "intro"}, _inc: {weight: -2}) { weight } }'
    ) == ["validation-failed"]
    assert gql.error_codes(
        f'mutation {{ update_tags_by_pk(pk_columns: {{post_id: 1, name: "news"}}, _inc: {{weight: {2**32}}}) '
        "{ weight } }"
    ) == ["validation-failed"]


def test_sums_a_bigint_column_cannot_hold_are_refused(library_url: str, serve: Any) -> None:
    async def add_counters() -> None:
        engine = create_async_engine(library_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(sa.text("CREATE TABLE counters (id INTEGER PRIMARY KEY, n BIGINT)"))
                await conn.execute(sa.text(f"INSERT INTO counters (id, n) VALUES (1, {BIGINT_MAX - 1})"))
        finally:
            await engine.dispose()

    asyncio.run(add_counters())
    gql = GraphQL(serve(database=library_url))
    try:
        data = gql("mutation { update_counters_by_pk(pk_columns: {id: 1}, _inc: {n: 1}) { n } }")
        assert data["update_counters_by_pk"] == {"n": BIGINT_MAX}
        # SQLite would turn the sum into a REAL; PostgreSQL refuses it: both refuse.
        assert gql.error_codes('mutation { update_counters_by_pk(pk_columns: {id: 1}, _inc: {n: "1"}) { n } }') == [
            "validation-failed"
        ]
        assert gql("{ counters_by_pk(id: 1) { n } }")["counters_by_pk"] == {"n": BIGINT_MAX}
    finally:
        gql.http.close()


def _rater(user_id: int) -> dict[str, str]:
    token = jwt.encode({"sub": str(user_id), "role": "rater", "exp": int(time.time()) + 3600}, SECRET, "HS256")
    return {"Authorization": f"Bearer {token}"}


def test_inc_follows_the_update_rule(library_url: str, serve: Any, tmp_path: Path) -> None:
    rules = tmp_path / "permissions.yaml"
    rules.write_text(RULES)
    server = serve(database=library_url, permissions=str(rules), jwt_secret=SECRET)
    with httpx.Client(base_url=server.url, timeout=30, trust_env=False, headers=_rater(3)) as http:

        def post(query: str) -> dict[str, Any]:
            response = http.post("/graphql", json={"query": query})
            assert response.status_code == 200, response.text
            return response.json()  # type: ignore[no-any-return]

        # The role's input type has only its update columns: the others do not exist for it.
        shape = post('{ __type(name: "posts_inc_input") { inputFields { name type { name } } } }')
        assert shape["data"]["__type"]["inputFields"] == [{"name": "rating", "type": {"name": "numeric"}}]
        refused = post("mutation { update_posts(where: {}, _inc: {user_id: 1}) { affected_rows } }")
        assert [e["extensions"]["code"] for e in refused["errors"]] == ["validation-failed"]
        assert "user_id" in refused["errors"][0]["message"]
        refused = post('mutation { update_tags(where: {}, _inc: {post_id: 1}) { affected_rows } }')
        assert [e["extensions"]["code"] for e in refused["errors"]] == ["validation-failed"]

        # The rule's filter picks the rows (user 3 owns post 4 only) and its preset is written too.
        done = post("mutation { update_posts(where: {}, _inc: {rating: 1}) { returning { id rating editor_id } } }")
        assert done == {"data": {"update_posts": {"returning": [{"id": 4, "rating": "4.25", "editor_id": 3}]}}}
        # The rule's check holds over the sums: 4.25 + 6 is not below 10.
        denied = post("mutation { update_posts_by_pk(pk_columns: {id: 4}, _inc: {rating: 6}) { rating } }")
        assert [e["extensions"]["code"] for e in denied["errors"]] == ["permission-denied"]
        assert post("{ posts_by_pk(id: 4) { rating } }")["data"] == {"posts_by_pk": {"rating": "4.25"}}
        done = post('mutation { update_tags(where: {name: {_eq: "news"}}, _inc: {weight: 3}) { returning { weight } } }')
        assert done == {"data": {"update_tags": {"returning": [{"weight": 5}]}}}


async def test_an_inc_arrives_as_an_update_event_with_the_new_values(api: Api) -> None:
    async with api.ws() as ws:
        await subscribe(ws, "1", "posts")
        await api("mutation { update_posts_by_pk(pk_columns: {id: 4}, _inc: {rating: 1, user_id: -1}) { id } }")
        event = await change(ws, "1")
    assert event["type"] == "update"
    assert (event["old_record"]["rating"], event["old_record"]["user_id"]) == ("3.25", 3)
    assert (event["record"]["rating"], event["record"]["user_id"]) == ("4.25", 2)
    assert event["record"] == (await api(
        "{ posts_by_pk(id: 4) { id title body published user_id editor_id rating published_at } }"
    ))["posts_by_pk"]


@pytest.mark.parametrize("value", ["0.1", 0.1])
def test_numeric_increments_keep_their_digits(gql: GraphQL, value: Any) -> None:
    data = gql("mutation($v: numeric) { update_posts_by_pk(pk_columns: {id: 4}, _inc: {rating: $v}) { rating } }",
               {"v": value})
    assert data["update_posts_by_pk"] == {"rating": "3.35"}


# -- JSON columns: _append, _prepend, _delete_key, _delete_elem, _delete_at_path ------------------


def _profile(gql: GraphQL, mutation: str, variables: dict[str, Any] | None = None) -> Any:
    declared = "($v: JSON)" if "$v" in mutation else ""
    data = gql(f"mutation{declared} {{ update_users_by_pk(pk_columns: {{id: 1}}, {mutation}) {{ profile }} }}",
               variables)
    stored = gql("{ users_by_pk(id: 1) { profile } }")["users_by_pk"]["profile"]
    assert data["update_users_by_pk"]["profile"] == stored
    return stored


def test_append_and_prepend_are_jsonb_concatenation(gql: GraphQL) -> None:
    # Objects merge shallowly, the appended keys winning; a null value is kept (not RFC 7386's merge).
    value = {"langs": ["de"], "bio": None, "deep": {"a": {"b": 1}}, "ok": True, "n": 1.5}
    assert _profile(gql, "_append: {profile: $v}", {"v": value}) == value
    assert _profile(gql, "_append: {profile: $v}", {"v": {"deep": {"c": 2}}}) == {
        "langs": ["de"], "bio": None, "deep": {"c": 2}, "ok": True, "n": 1.5,
    }
    gql('mutation { update_users_by_pk(pk_columns: {id: 1}, _set: {profile: [1, "two"]}) { id } }')
    # An array gains the elements of an array, or the value itself; `_prepend` puts them first.
    assert _profile(gql, "_append: {profile: $v}", {"v": [{"x": [False]}, None]}) == [
        1, "two", {"x": [False]}, None
    ]
    assert _profile(gql, "_prepend: {profile: $v}", {"v": "zero"}) == ["zero", 1, "two", {"x": [False]}, None]
    assert _profile(gql, '_prepend: {profile: {k: "v"}}') == [{"k": "v"}, "zero", 1, "two", {"x": [False]}, None]
    # Two values that are not both objects make an array (jsonb: `'1' || '{}'` is `[1, {}]`).
    gql('mutation { update_users_by_pk(pk_columns: {id: 1}, _set: {profile: 1}) { id } }')
    assert _profile(gql, "_append: {profile: $v}", {"v": {"a": 1}}) == [1, {"a": 1}]
    # Every matching row, each from its own value; a NULL column stays NULL, as jsonb's `||` on NULL.
    data = gql('mutation { update_users(where: {id: {_in: [2, 3]}}, _append: {profile: {langs: ["x"]}}) {'
               " affected_rows returning { id profile } } }")
    assert ordered(data["update_users"]["returning"], "id") == [
        {"id": 2, "profile": None}, {"id": 3, "profile": {"langs": ["x"]}},
    ]


def test_deletes_by_key_index_and_path(gql: GraphQL) -> None:
    gql('mutation($v: JSON) { update_users_by_pk(pk_columns: {id: 1}, _set: {profile: $v}) { id } }',
        {"v": {"a": {"b": [10, 20, {"c": 1, "d": 2}]}, "e": "f", "we\'ird key": 1}})
    assert _profile(gql, '_delete_key: {profile: "e"}') == {"a": {"b": [10, 20, {"c": 1, "d": 2}]}, "we'ird key": 1}
    assert _profile(gql, "_delete_key: {profile: \"we'ird key\"}") == {"a": {"b": [10, 20, {"c": 1, "d": 2}]}}
    # A key that is not there changes nothing.
    assert _profile(gql, '_delete_key: {profile: "zzz"}') == {"a": {"b": [10, 20, {"c": 1, "d": 2}]}}
    # Through an array by index (negative from the end), and a path that is not there.
    assert _profile(gql, '_delete_at_path: {profile: ["a", "b", "-1", "c"]}') == {"a": {"b": [10, 20, {"d": 2}]}}
    assert _profile(gql, '_delete_at_path: {profile: ["a", "b", "0"]}') == {"a": {"b": [20, {"d": 2}]}}
    assert _profile(gql, '_delete_at_path: {profile: ["a", "x", "1"]}') == {"a": {"b": [20, {"d": 2}]}}
    gql('mutation { update_users_by_pk(pk_columns: {id: 1}, _set: {profile: ["a", "b", "a", 1, "1"]}) { id } }')
    # On an array, `_delete_key` removes the strings equal to it (jsonb `- text`).
    assert _profile(gql, '_delete_key: {profile: "a"}') == ["b", 1, "1"]
    assert _profile(gql, "_delete_elem: {profile: -1}") == ["b", 1]
    assert _profile(gql, "_delete_elem: {profile: 0}") == [1]
    assert _profile(gql, "_delete_elem: {profile: 5}") == [1]


def test_json_operators_exist_only_for_json_columns(gql: GraphQL) -> None:
    shape = gql('{ __type(name: "users_delete_at_path_input") { inputFields { name type { kind ofType {'
                " kind ofType { name } } } } } }")
    assert shape["__type"]["inputFields"] == [
        {"name": "profile", "type": {"kind": "LIST", "ofType": {"kind": "NON_NULL", "ofType": {"name": "String"}}}}
    ]
    for name in ("append", "prepend", "delete_key", "delete_elem"):
        fields = gql(f'{{ __type(name: "users_{name}_input") {{ inputFields {{ name }} }} }}')["__type"]
        assert fields == {"inputFields": [{"name": "profile"}]}
        assert gql(f'{{ __type(name: "posts_{name}_input") {{ name }} }}')["__type"] is None
    assert gql.error_codes('mutation { update_posts(where: {}, _append: {title: "x"}) { affected_rows } }') == [
        "validation-failed"
    ]
    body = gql.raw("mutation { update_users(where: {}) { affected_rows } }")
    assert "(_set, _inc, _append, _prepend, _delete_key, _delete_elem, _delete_at_path)" in body["errors"][0]["message"]
    body = gql.raw('mutation { update_users(where: {}, _set: {profile: 1}, _delete_key: {profile: "a"}) { '
                   "affected_rows } }")
    assert [e["extensions"]["code"] for e in body["errors"]] == ["validation-failed"]
    assert '"profile"' in body["errors"][0]["message"]


async def test_a_json_edit_arrives_as_an_update_event_with_the_new_value(api: Api) -> None:
    async with api.ws() as ws:
        await subscribe(ws, "1", "users")
        await api('mutation { update_users_by_pk(pk_columns: {id: 1}, _append: {profile: {langs: ["de"], x: 1}}) '
                  "{ id } }")
        event = await change(ws, "1")
    assert event["type"] == "update"
    assert event["old_record"]["profile"] == {"langs": ["en", "fr"]}
    assert event["record"]["profile"] == {"langs": ["de"], "x": 1}


# -- update_t_many ---------------------------------------------------------------------------------


def test_update_many_runs_its_entries_in_order_each_seeing_the_ones_before(gql: GraphQL) -> None:
    data = gql("""mutation($updates: [posts_updates!]!) { update_posts_many(updates: $updates) {
                    affected_rows returning { id title rating } } }""", {"updates": [
        {"where": {"id": {"_in": [1, 4]}}, "_set": {"title": "first", "rating": "1.25"}, "_inc": {"editor_id": 1}},
        {"where": {"title": {"_eq": "first"}}, "_inc": {"rating": 1}},
        {"where": {"id": {"_eq": 99}}, "_set": {"title": "none"}},
    ]})
    answers = data["update_posts_many"]
    assert [a["affected_rows"] for a in answers] == [2, 2, 0]
    assert ordered(answers[0]["returning"], "id") == [
        {"id": 1, "title": "first", "rating": "1.25"}, {"id": 4, "title": "first", "rating": "1.25"},
    ]
    assert ordered(answers[1]["returning"], "id") == [
        {"id": 1, "title": "first", "rating": "2.25"}, {"id": 4, "title": "first", "rating": "2.25"},
    ]
    assert answers[2]["returning"] == []
    # The JSON operators too, and an entry without any operator is refused as update_t refuses it.
    data = gql('mutation { update_users_many(updates: [{where: {id: {_eq: 1}}, _append: {profile: {a: 1}}},'
               ' {where: {id: {_eq: 1}}, _delete_key: {profile: "langs"}}]) { returning { profile } } }')
    assert data["update_users_many"] == [
        {"returning": [{"profile": {"langs": ["en", "fr"], "a": 1}}]}, {"returning": [{"profile": {"a": 1}}]},
    ]
    assert gql.error_codes("mutation { update_posts_many(updates: [{where: {}}]) { affected_rows } }") == [
        "validation-failed"
    ]
    assert gql("mutation { update_posts_many(updates: []) { affected_rows } }") == {"update_posts_many": []}


def test_update_many_is_rolled_back_whole_when_an_entry_fails(gql: GraphQL) -> None:
    body = gql.raw("""mutation { update_posts_many(updates: [
        {where: {id: {_eq: 1}}, _set: {title: "changed"}},
        {where: {id: {_eq: 2}}, _set: {user_id: 999}}]) { affected_rows } }""")
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["constraint-violation"]
    assert gql("{ posts_by_pk(id: 1) { title } }")["posts_by_pk"] == {"title": "Hello World"}


def test_update_many_follows_the_update_rule(library_url: str, serve: Any, tmp_path: Path) -> None:
    rules = tmp_path / "permissions.yaml"
    rules.write_text(RULES)
    server = serve(database=library_url, permissions=str(rules), jwt_secret=SECRET)
    with httpx.Client(base_url=server.url, timeout=30, trust_env=False, headers=_rater(3)) as http:

        def post(query: str) -> dict[str, Any]:
            response = http.post("/graphql", json={"query": query})
            assert response.status_code == 200, response.text
            return response.json()  # type: ignore[no-any-return]

        # Each entry under the rule's filter and preset; a column the role may not update is no field.
        done = post("mutation { update_posts_many(updates: [{where: {}, _inc: {rating: 1}},"
                    " {where: {id: {_eq: 1}}, _set: {rating: \"0\"}}]) { affected_rows returning { id rating editor_id } } }")
        assert done == {"data": {"update_posts_many": [
            {"affected_rows": 1, "returning": [{"id": 4, "rating": "4.25", "editor_id": 3}]},
            {"affected_rows": 0, "returning": []},
        ]}}
        refused = post('mutation { update_posts_many(updates: [{where: {}, _set: {title: "x"}}]) { affected_rows } }')
        assert [e["extensions"]["code"] for e in refused["errors"]] == ["validation-failed"]
        # The check over the second entry's rows fails: the first entry's change is undone too.
        denied = post("mutation { update_posts_many(updates: [{where: {}, _inc: {rating: 1}},"
                      " {where: {}, _inc: {rating: 5}}]) { affected_rows } }")
        assert [e["extensions"]["code"] for e in denied["errors"]] == ["permission-denied"]
        assert post("{ posts_by_pk(id: 4) { rating } }")["data"] == {"posts_by_pk": {"rating": "4.25"}}


async def test_update_many_delivers_one_event_per_row_write_in_commit_order(api: Api) -> None:
    async with api.ws() as ws:
        await subscribe(ws, "1", "posts")
        await api("""mutation { update_posts_many(updates: [
            {where: {id: {_eq: 4}}, _set: {title: "a"}},
            {where: {id: {_eq: 1}}, _set: {title: "b"}},
            {where: {id: {_eq: 4}}, _set: {title: "c"}}]) { affected_rows } }""")
        events = [await change(ws, "1") for _ in range(3)]
    assert [(e["type"], e["record"]["id"], e["record"]["title"]) for e in events] == [
        ("update", 4, "a"), ("update", 1, "b"), ("update", 4, "c"),
    ]
    assert events[2]["old_record"]["title"] == "a"


def test_json_operators_on_a_jsonb_column_and_odd_keys(library_url: str, serve: Any, backend: str) -> None:
    kind = "JSONB" if backend == "postgres" else "JSON"

    async def add_docs() -> None:
        engine = create_async_engine(library_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(sa.text(f"CREATE TABLE docs (id INTEGER PRIMARY KEY, body {kind})"))
                await conn.execute(sa.text(
                    """INSERT INTO docs (id, body) VALUES (1, '{"a": {"x": 1, "y": [1, 2]}, "1": true, "k.k": 0}')"""
                ))
        finally:
            await engine.dispose()

    asyncio.run(add_docs())
    gql = GraphQL(serve(database=library_url))
    try:
        def edit(operator: str) -> Any:
            data = gql(f"mutation {{ update_docs_by_pk(pk_columns: {{id: 1}}, {operator}) {{ body }} }}")
            return data["update_docs_by_pk"]["body"]

        assert edit('_append: {body: {a: {z: null}, b: [false]}}') == {
            "a": {"z": None}, "b": [False], "1": True, "k.k": 0,
        }
        # A path step that looks like an index is a key where the value is an object.
        assert edit('_delete_at_path: {body: ["1"]}') == {"a": {"z": None}, "b": [False], "k.k": 0}
        assert edit('_delete_at_path: {body: ["k.k"]}') == {"a": {"z": None}, "b": [False]}
        assert edit('_delete_at_path: {body: ["b", "0"]}') == {"a": {"z": None}, "b": []}
        assert edit('_prepend: {body: [0]}') == [0, {"a": {"z": None}, "b": []}]
        assert edit("_delete_elem: {body: -1}") == [0]
    finally:
        gql.http.close()


def test_what_jsonb_refuses_is_refused_on_both_databases(gql: GraphQL) -> None:
    gql('mutation { update_users_by_pk(pk_columns: {id: 1}, _set: {profile: 5}) { id } }')
    for operator in ('_delete_key: {profile: "a"}', "_delete_elem: {profile: 0}", '_delete_at_path: {profile: ["a"]}'):
        body = gql.raw(f"mutation {{ update_users_by_pk(pk_columns: {{id: 1}}, {operator}) {{ profile }} }}")
        assert [e["extensions"]["code"] for e in body["errors"]] == ["validation-failed"], operator
        assert "cannot delete" in body["errors"][0]["message"]
    assert gql("{ users_by_pk(id: 1) { profile } }")["users_by_pk"] == {"profile": 5}
    gql('mutation { update_users_by_pk(pk_columns: {id: 1}, _set: {profile: {a: 1}}) { id } }')
    assert gql.error_codes("mutation { update_users_by_pk(pk_columns: {id: 1}, _delete_elem: {profile: 0}) { id } }") == [
        "validation-failed"
    ]
    # An empty path deletes nothing; NULL stays NULL whichever side it is on.
    assert _profile(gql, "_delete_at_path: {profile: []}") == {"a": 1}
    data = gql('mutation { update_users_by_pk(pk_columns: {id: 2}, _prepend: {profile: [1]}) { profile } }')
    assert data["update_users_by_pk"] == {"profile": None}
    data = gql('mutation { update_users_by_pk(pk_columns: {id: 2}, _delete_key: {profile: "a"}) { profile } }')
    assert data["update_users_by_pk"] == {"profile": None}


def test_text_that_is_not_json_in_a_json_column_is_a_clear_error(
    library_url: str, serve: Any, backend: str
) -> None:
    """SQLite keeps any text another program writes in a JSON column; editing it is the client's
    error, named, and the other rows of the update are left as they were (PostgreSQL never stores such text)."""
    if backend != "sqlite":
        pytest.skip("this parameter is for the other database: PostgreSQL refuses such text when it is written")

    async def add_docs() -> None:
        engine = create_async_engine(library_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(sa.text("CREATE TABLE docs (id INTEGER PRIMARY KEY, body JSON)"))
                await conn.execute(sa.text("""INSERT INTO docs (id, body) VALUES (1, '{not json'), (2, '{"a": 1}')"""))
        finally:
            await engine.dispose()

    asyncio.run(add_docs())
    gql = GraphQL(serve(database=library_url))
    try:
        for mutation in (
            "update_docs(where: {}, _append: {body: {b: 2}}) { affected_rows }",
            'update_docs_by_pk(pk_columns: {id: 1}, _delete_key: {body: "a"}) { id }',
        ):
            body = gql.raw(f"mutation {{ {mutation} }}")
            assert body["data"] is None, body
            [error] = body["errors"]
            assert error["extensions"]["code"] == "validation-failed", error
            assert "not JSON" in error["message"] and "malformed JSON" in error["message"], error
        # Nothing was written; the row whose text is JSON is edited as ever.
        assert gql("{ docs(order_by: {id: asc}) { body } }")["docs"] == [{"body": "{not json"}, {"body": {"a": 1}}]
        data = gql("mutation { update_docs_by_pk(pk_columns: {id: 2}, _append: {body: {b: 2}}) { body } }")
        assert data["update_docs_by_pk"] == {"body": {"a": 1, "b": 2}}
    finally:
        gql.http.close()


def test_json_operators_follow_the_update_rule(library_url: str, serve: Any, tmp_path: Path) -> None:
    rules = tmp_path / "permissions.yaml"
    rules.write_text(RULES)
    server = serve(database=library_url, permissions=str(rules), jwt_secret=SECRET)
    with httpx.Client(base_url=server.url, timeout=30, trust_env=False, headers=_rater(3)) as http:

        def post(query: str) -> dict[str, Any]:
            response = http.post("/graphql", json={"query": query})
            assert response.status_code == 200, response.text
            return response.json()  # type: ignore[no-any-return]

        shape = post('{ a: __type(name: "users_append_input") { inputFields { name } }'
                     ' i: __type(name: "users_inc_input") { name } p: __type(name: "posts_append_input") { name } }')
        assert shape["data"] == {"a": {"inputFields": [{"name": "profile"}]}, "i": None, "p": None}
        # The rule's filter: user 3's row only, in update_t and in each entry of update_t_many.
        done = post('mutation { update_users(where: {}, _append: {profile: {x: 1}}) { returning { id profile } }'
                    ' update_users_many(updates: [{where: {}, _delete_key: {profile: "langs"}}]) {'
                    " returning { id profile } } }")
        assert done == {"data": {
            "update_users": {"returning": [{"id": 3, "profile": {"langs": [], "x": 1}}]},
            "update_users_many": [{"returning": [{"id": 3, "profile": {"x": 1}}]}],
        }}
        assert post("{ users_by_pk(id: 1) { profile } }")["data"] == {"users_by_pk": {"profile": {"langs": ["en", "fr"]}}}
