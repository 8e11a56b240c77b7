"""Nested inserts through object and array relationships (SPEC section 4, as Hasura defines them).

Real servers over the library database, on SQLite and PostgreSQL alike: a
post with its new author (object relationship), a user with new posts
(array relationship), trees two levels deep, `on_conflict` inside nested
data, `returning` across the tree, permission rules for every row written
(checks, columns, presets) with the whole mutation undone when one fails,
and the change events (one per row, in commit order).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.conftest import Api, GraphQL, Launch
from tests.test_realtime import changes, cursors, subscribe

SECRET = "forgegraph-nested-insert-tests-secret-0123456789"
RULES = """\
tables:
  users:
    select:
      writer: {filter: {}, columns: "*"}
    insert:
      writer: {check: {active: {_eq: true}}, columns: [id, name, email, active]}
    update:
      writer: {filter: {}, columns: [name]}
  posts:
    select:
      writer: {filter: {}, columns: "*"}
    insert:
      # No user_id: a writer's posts get theirs through the relationship they are inserted by.
      writer: {check: {title: {_neq: bad}}, columns: [id, title, body], set: {editor_id: X-User-Id}}
  comments:
    select:
      writer: {filter: {}, columns: "*"}
"""
Post = Callable[[str], dict[str, Any]]


def codes(answer: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in answer.get("errors", [])]


def counts(gql: GraphQL) -> tuple[int, int, int]:
    data = gql("""{ users_aggregate { aggregate { count } } posts_aggregate { aggregate { count } }
                    comments_aggregate { aggregate { count } } }""")
    return (
        data["users_aggregate"]["aggregate"]["count"],
        data["posts_aggregate"]["aggregate"]["count"],
        data["comments_aggregate"]["aggregate"]["count"],
    )


def test_an_object_relationship_inserts_the_parent_first(gql: GraphQL) -> None:
    data = gql("""mutation {
        insert_posts(objects: [{id: 50, title: "A", user: {data: {id: 20, name: "Dan"}}},
                               {id: 51, title: "B", user: {data: {id: 21, name: "Eve"}}}]) {
            affected_rows returning { id title user_id user { id name } } } }""")
    assert data["insert_posts"] == {
        "affected_rows": 4,
        "returning": [
            {"id": 50, "title": "A", "user_id": 20, "user": {"id": 20, "name": "Dan"}},
            {"id": 51, "title": "B", "user_id": 21, "user": {"id": 21, "name": "Eve"}},
        ],
    }
    one = gql("""mutation { insert_posts_one(object: {title: "C", user: {data: {name: "Fay"}}}) {
        title user { name posts_by_user_id { title } } } }""")
    assert one["insert_posts_one"] == {"title": "C", "user": {"name": "Fay", "posts_by_user_id": [{"title": "C"}]}}


def test_an_array_relationship_inserts_the_children_after(gql: GraphQL) -> None:
    data = gql("""mutation {
        insert_users(objects: [{id: 30, name: "Dan", posts_by_user_id: {data: [{title: "one"}, {title: "two"}]}},
                               {id: 31, name: "Eve", posts_by_user_id: {data: []}},
                               {id: 32, name: "Fay", posts_by_user_id: null}]) {
            affected_rows
            returning { id name posts_by_user_id(order_by: {title: asc}) { title user_id }
                        posts_by_user_id_aggregate { aggregate { count } } } } }""")
    assert data["insert_users"]["affected_rows"] == 5
    assert data["insert_users"]["returning"] == [
        {"id": 30, "name": "Dan", "posts_by_user_id": [{"title": "one", "user_id": 30}, {"title": "two", "user_id": 30}],
         "posts_by_user_id_aggregate": {"aggregate": {"count": 2}}},
        {"id": 31, "name": "Eve", "posts_by_user_id": [], "posts_by_user_id_aggregate": {"aggregate": {"count": 0}}},
        {"id": 32, "name": "Fay", "posts_by_user_id": [], "posts_by_user_id_aggregate": {"aggregate": {"count": 0}}},
    ]


def test_trees_two_levels_deep(gql: GraphQL) -> None:
    # Array, then array: a user, their post, its comments.
    data = gql("""mutation { insert_users_one(object: {name: "Dan", posts_by_user_id: {data: [
            {title: "deep", comments: {data: [{body: "c1"}, {body: "c2"}]}}]}}) {
        name posts_by_user_id { title comments(order_by: {body: asc}) { body } } } }""")
    assert data["insert_users_one"] == {
        "name": "Dan", "posts_by_user_id": [{"title": "deep", "comments": [{"body": "c1"}, {"body": "c2"}]}]
    }
    # Object, then object: a comment on a new post by a new user.
    data = gql("""mutation { insert_comments(objects: [{body: "hi",
            post: {data: {title: "by Eve", user: {data: {name: "Eve"}}}}}]) {
        affected_rows returning { body post { title user { name } } } } }""")
    assert data["insert_comments"] == {
        "affected_rows": 3, "returning": [{"body": "hi", "post": {"title": "by Eve", "user": {"name": "Eve"}}}]
    }
    # Object, then array: the new author brings another post of their own.
    data = gql("""mutation { insert_posts(objects: [{title: "outer",
            user: {data: {name: "Fay", posts_by_user_id: {data: [{title: "inner"}]}}}}]) {
        affected_rows returning { title user { name posts_by_user_id(order_by: {title: asc}) { title } } } } }""")
    assert data["insert_posts"] == {
        "affected_rows": 3,
        "returning": [{"title": "outer", "user": {"name": "Fay", "posts_by_user_id": [{"title": "inner"}, {"title": "outer"}]}}],
    }


def test_on_conflict_inside_nested_data(gql: GraphQL) -> None:
    # An object relationship's upsert: the existing user 1 is updated and the new post points at it.
    data = gql("""mutation { insert_posts_one(object: {title: "mine",
            user: {data: {id: 1, name: "Alicia"}, on_conflict: {constraint: users_pkey, update_columns: [name]}}}) {
        user_id user { name } } }""")
    assert data["insert_posts_one"] == {"user_id": 1, "user": {"name": "Alicia"}}
    # Upserts at two levels: post 1 is updated, its tag (1, intro) too, and tag (1, new) inserted under it.
    data = gql("""mutation { insert_posts(objects: [{id: 1, title: "Hello again", user_id: 1,
            tags: {data: [{name: "intro", weight: 9}, {name: "new", weight: 1}],
                   on_conflict: {constraint: tags_pkey, update_columns: [weight]}}}],
            on_conflict: {constraint: posts_pkey, update_columns: [title]}) {
        affected_rows returning { title tags(order_by: {name: asc}) { name weight } } } }""")
    assert data["insert_posts"] == {
        "affected_rows": 3,
        "returning": [{"title": "Hello again", "tags": [
            {"name": "intro", "weight": 9}, {"name": "new", "weight": 1}, {"name": "news", "weight": 2}]}],
    }
    # The conflicting author ignored (update_columns []): no row for the post to point at, nothing written.
    before = counts(gql)
    answer = gql.raw("""mutation { insert_posts_one(object: {title: "orphan",
            user: {data: {id: 1, name: "x"}, on_conflict: {constraint: users_pkey, update_columns: []}}}) { id } }""")
    assert answer["data"] is None and codes(answer) == ["validation-failed"]
    assert counts(gql) == before


def test_an_upsert_of_nested_children(gql: GraphQL) -> None:
    data = gql("""mutation { insert_users_one(object: {id: 40, name: "Dan", posts_by_user_id: {
            data: [{id: 1, title: "taken over"}, {id: 70, title: "new"}],
            on_conflict: {constraint: posts_pkey, update_columns: [title]}}}) {
        posts_by_user_id { id title } } }""")
    # Post 1 conflicts: only its title changes (it stays user 1's), post 70 is the new user's.
    assert data["insert_users_one"] == {"posts_by_user_id": [{"id": 70, "title": "new"}]}
    post = gql("{ posts_by_pk(id: 1) { title user_id } }")["posts_by_pk"]
    assert post == {"title": "taken over", "user_id": 1}


def test_a_column_the_relationship_sets_may_not_be_given(gql: GraphQL) -> None:
    before = counts(gql)
    array = gql.raw("""mutation { insert_users(objects: [{name: "Dan",
        posts_by_user_id: {data: [{title: "x", user_id: 1}]}}]) { affected_rows } }""")
    obj = gql.raw("""mutation { insert_posts(objects: [{title: "x", user_id: 1,
        user: {data: {name: "Dan"}}}]) { affected_rows } }""")
    assert codes(array) == ["validation-failed"] and codes(obj) == ["validation-failed"]
    assert counts(gql) == before


def test_a_failing_nested_row_undoes_the_whole_mutation(gql: GraphQL) -> None:
    before = counts(gql)
    answer = gql.raw("""mutation { insert_users(objects: [{name: "Dan",
        posts_by_user_id: {data: [{title: "ok"}, {id: 1, title: "duplicate"}]}}]) { affected_rows } }""")
    assert answer["data"] is None and codes(answer) == ["constraint-violation"]
    assert counts(gql) == before
    assert gql('{ users(where: {name: {_eq: "Dan"}}) { id } }')["users"] == []


def test_the_input_types_are_hasuras(gql: GraphQL) -> None:
    data = gql("""{
        obj: __type(name: "users_obj_rel_insert_input") { inputFields { name type { kind ofType { name } } } }
        arr: __type(name: "posts_arr_rel_insert_input") { inputFields { name type { kind } } }
        input: __type(name: "posts_insert_input") { inputFields { name type { name } } } }""")
    assert data["obj"]["inputFields"] == [
        {"name": "data", "type": {"kind": "NON_NULL", "ofType": {"name": "users_insert_input"}}},
        {"name": "on_conflict", "type": {"kind": "INPUT_OBJECT", "ofType": None}},
    ]
    assert [f["name"] for f in data["arr"]["inputFields"]] == ["data", "on_conflict"]
    fields = {f["name"]: f["type"]["name"] for f in data["input"]["inputFields"]}
    assert fields["user"] == fields["editor"] == "users_obj_rel_insert_input"
    assert fields["comments"] == "comments_arr_rel_insert_input"
    assert fields["tags"] == "tags_arr_rel_insert_input"


# -- permissions ----------------------------------------------------------------


def _token(role: str, user_id: int) -> dict[str, str]:
    claims = {"sub": str(user_id), "role": role, "exp": int(time.time()) + 3600}
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, 'HS256')}"}


@pytest.fixture
def as_role(library_url: str, serve: Any, tmp_path: Path) -> Iterator[Callable[[str, int], Post]]:
    rules = tmp_path / "permissions.yaml"
    rules.write_text(RULES)
    server = serve(database=library_url, permissions=str(rules), jwt_secret=SECRET)
    clients: list[httpx.Client] = []

    def client(role: str, user_id: int) -> Post:
        http = httpx.Client(base_url=server.url, timeout=30, trust_env=False, headers=_token(role, user_id))
        clients.append(http)

        def post(query: str) -> dict[str, Any]:
            response = http.post("/graphql", json={"query": query})
            assert response.status_code == 200, response.text
            return response.json()  # type: ignore[no-any-return]

        return post

    yield client
    for http in clients:
        http.close()


def _counts(post: Post) -> tuple[int, int]:
    data = post("{ users_aggregate { aggregate { count } } posts_aggregate { aggregate { count } } }")["data"]
    return data["users_aggregate"]["aggregate"]["count"], data["posts_aggregate"]["aggregate"]["count"]


def test_each_nested_row_follows_its_tables_insert_rule(as_role: Callable[[str, int], Post]) -> None:
    post = as_role("writer", 3)
    # Its key from the relationship (user_id is no insert column of the role), editor_id from the preset.
    done = post("""mutation { insert_users_one(object: {id: 40, name: "Dan",
        posts_by_user_id: {data: [{id: 80, title: "fine"}]}}) {
        id posts_by_user_id { id title user_id editor_id } } }""")
    assert done == {"data": {"insert_users_one": {
        "id": 40, "posts_by_user_id": [{"id": 80, "title": "fine", "user_id": 40, "editor_id": 3}]}}}
    before = _counts(post)
    # A nested row failing its table's check: nothing of the mutation is written.
    refused = post("""mutation { insert_users(objects: [{name: "Eve",
        posts_by_user_id: {data: [{title: "fine"}, {title: "bad"}]}}]) { affected_rows } }""")
    assert codes(refused) == ["permission-denied"]
    # The parent failing its check, reached through an object relationship.
    refused = post("""mutation { insert_posts(objects: [{title: "x",
        user: {data: {name: "Fay", active: false}}}]) { affected_rows } }""")
    assert codes(refused) == ["permission-denied"]
    assert _counts(post) == before
    # A column the role may not insert, in a nested row; a relationship to a table it may not insert into.
    column = post("""mutation { insert_users(objects: [{name: "Gus",
        posts_by_user_id: {data: [{title: "x", rating: "1.5"}]}}]) { affected_rows } }""")
    table = post("""mutation { insert_posts(objects: [{title: "x",
        user: {data: {name: "Hal"}}, comments: {data: [{body: "c"}]}}]) { affected_rows } }""")
    assert codes(column) == ["validation-failed"] and codes(table) == ["validation-failed"]
    assert _counts(post) == before


# -- events ---------------------------------------------------------------------


async def test_one_event_per_row_in_commit_order(api: Api) -> None:
    async with api.ws() as ws:
        await subscribe(ws, "users", "users")
        await subscribe(ws, "posts", "posts")
        await api("""mutation { insert_posts(objects: [{id: 90, title: "outer", user: {data: {id: 50, name: "Dan",
            posts_by_user_id: {data: [{id: 91, title: "inner"}]}}}}]) { affected_rows } }""")
        # Object by object, each with its tree, as Hasura writes them.
        await api("""mutation { insert_users(objects: [
            {id: 51, name: "Eve", posts_by_user_id: {data: [{id: 93, title: "e1"}, {id: 94, title: "e2"}]}},
            {id: 52, name: "Fay", posts_by_user_id: {data: [{id: 95, title: "f1"}]}}]) { affected_rows } }""")
        events = await changes(ws, 8)
    ordered = sorted(events, key=lambda e: int(e["cursor"]))
    cursors(ordered)
    assert [(e["type"], e["table"], e["record"]["id"]) for e in ordered] == [
        ("create", "users", 50), ("create", "posts", 91), ("create", "posts", 90),
        ("create", "users", 51), ("create", "posts", 93), ("create", "posts", 94),
        ("create", "users", 52), ("create", "posts", 95),
    ]
    assert ordered[2]["record"]["user_id"] == 50 and ordered[7]["record"]["user_id"] == 52


async def test_a_nested_upsert_arrives_as_an_update_and_a_failure_as_nothing(api: Api) -> None:
    async with api.ws() as ws:
        await subscribe(ws, "users", "users")
        await subscribe(ws, "posts", "posts")
        failed = await api.raw("""mutation { insert_users(objects: [{id: 60, name: "Dan",
            posts_by_user_id: {data: [{id: 1, title: "duplicate"}]}}]) { affected_rows } }""")
        assert failed["data"] is None and failed["errors"]
        await api("""mutation { insert_posts_one(object: {id: 92, title: "mine", user: {
            data: {id: 1, name: "Alicia"}, on_conflict: {constraint: users_pkey, update_columns: [name]}}}) { id } }""")
        events = await changes(ws, 2)
    ordered = sorted(events, key=lambda e: int(e["cursor"]))
    assert [(e["type"], e["table"], e["record"]["id"]) for e in ordered] == [
        ("update", "users", 1), ("create", "posts", 92)
    ]
    assert (ordered[0]["old_record"]["name"], ordered[0]["record"]["name"]) == ("Alice", "Alicia")


async def test_a_nested_row_refused_by_its_check_sends_no_event(launch: Launch, tmp_path: Path) -> None:
    rules = tmp_path / "permissions.yaml"
    rules.write_text(RULES)
    api = await launch(permissions=str(rules), jwt_secret=SECRET)
    writer = _token("writer", 3)

    async def post(query: str) -> dict[str, Any]:
        response = await api.http.post("/graphql", json={"query": query}, headers=writer)
        return response.json()  # type: ignore[no-any-return]

    async with api.ws(init=False) as ws:
        await ws.init({"headers": writer})
        await subscribe(ws, "users", "users")
        await subscribe(ws, "posts", "posts")
        refused = await post("""mutation { insert_users(objects: [{id: 70, name: "Eve",
            posts_by_user_id: {data: [{id: 96, title: "fine"}, {id: 97, title: "bad"}]}}]) { affected_rows } }""")
        assert codes(refused) == ["permission-denied"]
        done = await post("""mutation { insert_users_one(object: {id: 71, name: "Fay",
            posts_by_user_id: {data: [{id: 98, title: "fine"}]}}) { id } }""")
        assert done == {"data": {"insert_users_one": {"id": 71}}}
        events = await changes(ws, 2)
    ordered = sorted(events, key=lambda e: int(e["cursor"]))
    assert [(e["type"], e["table"], e["record"]["id"]) for e in ordered] == [("create", "users", 71), ("create", "posts", 98)]
    assert ordered[1]["record"]["editor_id"] == 3
