"""Upserts: `on_conflict` on `insert_t` and `insert_t_one` (SPEC section 4, as Hasura defines them).

Real servers over the library database, on SQLite and PostgreSQL alike:
rows inserted and updated by one request, `update_columns: []` (do
nothing), `where` on the existing row, the constraint enums, permission
rules (insert and update, filters, checks, presets) and change events.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from graph.model import UniqueConstraint
from graph.reflect import reflect
from tests.conftest import Api, GraphQL
from tests.test_realtime import change, subscribe

SECRET = "forgegraph-upsert-tests-secret-0123456789abcdef"
RULES = """\
tables:
  posts:
    select:
      author: {filter: {}, columns: "*"}
      inserter: {filter: {}, columns: "*"}
    insert:
      author: {check: {user_id: {_eq: X-User-Id}}, columns: [id, title, body, user_id]}
      inserter: {columns: [id, title, user_id]}
    update:
      # Own posts only; a title may not become "bad"; whoever updates is the editor.
      author: {filter: {user_id: {_eq: X-User-Id}}, check: {title: {_neq: bad}}, columns: [title, body],
               set: {editor_id: X-User-Id}}
"""
Post = Callable[[str], dict[str, Any]]


def codes(answer: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in answer.get("errors", [])]


def test_an_upsert_inserts_new_rows_and_updates_conflicting_ones(gql: GraphQL) -> None:
    data = gql("""mutation {
        insert_users(objects: [{id: 1, name: "Alicia", email: "x@example.com"}, {id: 10, name: "Dan"}],
                     on_conflict: {constraint: users_pkey, update_columns: [name]}) {
            affected_rows returning { id name email } } }""")
    assert data["insert_users"] == {
        "affected_rows": 2,
        # Only update_columns change on conflict: the email given is not written to user 1.
        "returning": [{"id": 1, "name": "Alicia", "email": "alice@example.com"}, {"id": 10, "name": "Dan", "email": None}],
    }
    assert gql("{ users_aggregate { aggregate { count } } }")["users_aggregate"]["aggregate"]["count"] == 4


def test_insert_one_upserts_on_a_unique_constraint(gql: GraphQL) -> None:
    data = gql("""mutation {
        insert_users_one(object: {name: "Caroline", email: "carol@example.com"},
                         on_conflict: {constraint: users_email_key, update_columns: [name, score]}) {
            id name score } }""")
    # `score` is not in the object: excluded.score is its default, NULL, as in Hasura.
    assert data["insert_users_one"] == {"id": 3, "name": "Caroline", "score": None}
    data = gql("""mutation($object: users_insert_input!, $oc: users_on_conflict) {
        insert_users_one(object: $object, on_conflict: $oc) { id name } }""",
               {"object": {"name": "Eve", "email": "eve@example.com"},
                "oc": {"constraint": "users_email_key", "update_columns": ["name"]}})
    assert data["insert_users_one"]["name"] == "Eve" and data["insert_users_one"]["id"] > 3


def test_empty_update_columns_do_nothing_and_return_nothing(gql: GraphQL) -> None:
    data = gql("""mutation {
        one: insert_users_one(object: {id: 1, name: "Alicia"}, on_conflict: {constraint: users_pkey}) { id }
        many: insert_users(objects: [{id: 2, name: "Robert"}, {id: 11, name: "New"}],
                           on_conflict: {constraint: users_pkey, update_columns: []}) {
            affected_rows returning { id name } } }""")
    assert data == {"one": None, "many": {"affected_rows": 1, "returning": [{"id": 11, "name": "New"}]}}
    users = gql("{ users(order_by: {id: asc}) { id name } }")["users"]
    assert [u["name"] for u in users] == ["Alice", "Bob", "Carol", "New"]


def test_where_tests_the_existing_row(gql: GraphQL) -> None:
    data = gql("""mutation {
        insert_users(objects: [{id: 1, name: "A2"}, {id: 2, name: "B2"}],
                     on_conflict: {constraint: users_pkey, update_columns: [name], where: {active: {_eq: true}}}) {
            affected_rows returning { id name } } }""")
    assert data["insert_users"] == {"affected_rows": 1, "returning": [{"id": 1, "name": "A2"}]}
    # A relationship in `where`: the post's author must be active.
    data = gql("""mutation {
        insert_tags(objects: [{post_id: 1, name: "intro", weight: 7}, {post_id: 3, name: "misc", weight: 7}],
                    on_conflict: {constraint: tags_pkey, update_columns: [weight],
                                  where: {post: {user: {active: {_eq: true}}}}}) {
            returning { post_id name weight } } }""")
    assert data["insert_tags"]["returning"] == [{"post_id": 1, "name": "intro", "weight": 7}]


def test_the_enums_name_constraints_and_update_columns(gql: GraphQL) -> None:
    data = gql("""{
        users: __type(name: "users_constraint") { enumValues { name } }
        tags: __type(name: "tags_constraint") { enumValues { name } }
        columns: __type(name: "tags_update_column") { enumValues { name } }
        oc: __type(name: "users_on_conflict") { inputFields { name defaultValue type { kind } } } }""")
    assert [v["name"] for v in data["users"]["enumValues"]] == ["users_email_key", "users_pkey"]
    assert [v["name"] for v in data["tags"]["enumValues"]] == ["tags_pkey"]
    assert [v["name"] for v in data["columns"]["enumValues"]] == ["name", "post_id", "weight"]
    assert data["oc"]["inputFields"] == [
        {"name": "constraint", "defaultValue": None, "type": {"kind": "NON_NULL"}},
        {"name": "update_columns", "defaultValue": "[]", "type": {"kind": "NON_NULL"}},
        {"name": "where", "defaultValue": None, "type": {"kind": "INPUT_OBJECT"}},
    ]


def test_a_failing_object_undoes_the_upsert(gql: GraphQL) -> None:
    answer = gql.raw("""mutation {
        insert_users(objects: [{id: 1, name: "Changed"}, {id: 12, name: "Twin", email: "carol@example.com"}],
                     on_conflict: {constraint: users_pkey, update_columns: [name]}) { affected_rows } }""")
    assert codes(answer) == ["constraint-violation"]
    assert gql("{ users_by_pk(id: 1) { name } }")["users_by_pk"] == {"name": "Alice"}


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
            return response.json()

        return post

    yield client
    for http in clients:
        http.close()


UPSERT_POST = """mutation {{ insert_posts_one(object: {{id: {id}, title: "{title}", user_id: {user}}},
    on_conflict: {{constraint: posts_pkey, update_columns: [title]}}) {{ id title user_id editor_id }} }}"""


def test_an_upsert_follows_the_update_rule(as_role: Callable[[str, int], Post]) -> None:
    post = as_role("author", 3)
    enum = post('{ __type(name: "posts_update_column") { enumValues { name } } }')
    assert [v["name"] for v in enum["data"]["__type"]["enumValues"]] == ["body", "title"]
    refused = post("""mutation { insert_posts(objects: [{id: 4, title: "t", user_id: 3}],
        on_conflict: {constraint: posts_pkey, update_columns: [user_id]}) { affected_rows } }""")
    assert codes(refused) == ["validation-failed"]

    # Its own post: updated, with the update preset (editor_id) written too.
    done = post(UPSERT_POST.format(id=4, title="Mine", user=3))
    assert done == {"data": {"insert_posts_one": {"id": 4, "title": "Mine", "user_id": 3, "editor_id": 3}}}
    # Someone else's post: the update filter leaves it alone (nothing returned, no error), as Hasura.
    assert post(UPSERT_POST.format(id=1, title="Stolen", user=3)) == {"data": {"insert_posts_one": None}}
    # The update check holds over the updated row.
    assert codes(post(UPSERT_POST.format(id=4, title="bad", user=3))) == ["permission-denied"]
    # An inserted row passes the insert check, not the update check: "bad" is a fine title for a new post.
    done = post(UPSERT_POST.format(id=20, title="bad", user=3))
    assert done == {"data": {"insert_posts_one": {"id": 20, "title": "bad", "user_id": 3, "editor_id": None}}}
    assert codes(post(UPSERT_POST.format(id=21, title="theirs", user=1))) == ["permission-denied"]

    check = as_role("author", 1)("{ posts(where: {id: {_in: [1, 4, 21]}}, order_by: {id: asc}) { id title } }")
    assert check["data"]["posts"] == [{"id": 1, "title": "Hello World"}, {"id": 4, "title": "Mine"}]


def test_without_update_permission_an_upsert_may_only_do_nothing(as_role: Callable[[str, int], Post]) -> None:
    post = as_role("inserter", 3)
    enum = post('{ __type(name: "posts_update_column") { enumValues { name } } }')
    assert enum["data"]["__type"]["enumValues"] == [{"name": "_PLACEHOLDER"}]
    refused = post("""mutation { insert_posts(objects: [{id: 4, title: "t", user_id: 3}],
        on_conflict: {constraint: posts_pkey, update_columns: [_PLACEHOLDER]}) { affected_rows } }""")
    assert codes(refused) == ["validation-failed"]
    done = post("""mutation { insert_posts(objects: [{id: 4, title: "t", user_id: 3}, {id: 30, title: "n", user_id: 3}],
        on_conflict: {constraint: posts_pkey, update_columns: []}) { affected_rows returning { id title } } }""")
    assert done == {"data": {"insert_posts": {"affected_rows": 1, "returning": [{"id": 30, "title": "n"}]}}}


async def test_an_upsert_arrives_as_an_update_or_an_insert(api: Api) -> None:
    async with api.ws() as ws:
        await subscribe(ws, "1", "users")
        await api("""mutation { insert_users(objects: [{id: 1, name: "Alicia"}, {id: 10, name: "Dan"}],
            on_conflict: {constraint: users_pkey, update_columns: [name]}) { affected_rows } }""")
        updated = await change(ws, "1")
        inserted = await change(ws, "1")
    assert updated["type"] == "update"
    assert (updated["old_record"]["name"], updated["record"]["name"]) == ("Alice", "Alicia")
    assert inserted["type"] == "create"
    assert inserted["record"]["name"] == "Dan"


async def test_constraints_are_named_as_the_database_or_postgresql_names_them(library_url: str) -> None:
    engine = create_async_engine(library_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text(
                "CREATE TABLE seats (id INTEGER PRIMARY KEY, code TEXT UNIQUE, room INTEGER, num INTEGER,"
                " badge TEXT, UNIQUE (room, num), CONSTRAINT seats_badge_unique UNIQUE (badge))"
            ))
        model = await reflect(engine)
    finally:
        await engine.dispose()
    assert model.table("seats").constraints == (
        UniqueConstraint("seats_pkey", ("id",)),
        UniqueConstraint("seats_badge_unique", ("badge",)),
        UniqueConstraint("seats_code_key", ("code",)),
        UniqueConstraint("seats_room_num_key", ("room", "num")),
    )
