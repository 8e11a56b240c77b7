"""The user's strawberry schema merged into the API (SPEC section 9): real servers, both databases."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig

from graph import create_app
from graph.errors import StartupError
from graph.extend import table
from tests import library
from tests.conftest import LEGACY_WS, TRANSPORT_WS, Launch
from tests.test_cli import forgegraph, one_error_line
from tests.test_realtime import change, subscribe

SECRET = "extend-secret-of-at-least-32-bytes!"
AS_WRITTEN = StrawberryConfig(auto_camel_case=False)


@strawberry.type
class Whoami:
    role: str
    user_id: str | None
    claim: str | None


Post = table("posts")
Tag = table("tags")


@strawberry.type
class Query:
    @strawberry.field
    def posts_by_ids(self, ids: list[int]) -> list[Post]:
        return ids  # type: ignore[return-value] - keys: the API reads the rows

    @strawberry.field
    def first_tag(self) -> Tag | None:
        return {"post_id": 1, "name": "news"}  # type: ignore[return-value]

    @strawberry.field
    def whoami(self, info: strawberry.Info) -> Whoami:
        context = info.context
        return Whoami(role=context.role, user_id=context.user_id, claim=context.claims.get("team"))

    @strawberry.field
    async def comment_count(self, info: strawberry.Info, post_id: int) -> int:
        rows = await info.context.db.execute("SELECT count(*) FROM comments WHERE post_id = :p", {"p": post_id})
        return int(rows[0][0])

    @strawberry.field
    def echo(self, value: JSON) -> JSON:
        return value

    @strawberry.field
    def refused(self) -> int | None:
        raise GraphQLError("out of stock", extensions={"code": "out-of-stock"})

    @strawberry.field
    def broken(self) -> int | None:
        raise ValueError("a secret detail of the resolver")


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def publish(self, info: strawberry.Info, post_id: int) -> Post | None:
        await info.context.db.execute("UPDATE posts SET published = :yes WHERE id = :p", {"yes": True, "p": post_id})
        return post_id  # type: ignore[return-value]

    @strawberry.mutation
    async def add_comments(self, info: strawberry.Info, post_id: int, bodies: list[str]) -> list[int]:
        """Several writes, all in the request's transaction."""
        ids = []
        for body in bodies:
            rows = await info.context.db.execute(
                "INSERT INTO comments (post_id, body) VALUES (:p, :b) RETURNING id", {"p": post_id, "b": body}
            )
            ids.append(int(rows[0][0]))
        return ids


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def countdown(self, info: strawberry.Info, start: int) -> AsyncIterator[str]:
        for n in range(start, 0, -1):
            yield f"{n} for {info.context.role}"
            await asyncio.sleep(0)

    @strawberry.subscription
    async def forever(self) -> AsyncIterator[int]:
        n = 0
        while True:
            n += 1
            yield n
            await asyncio.sleep(0.01)

    @strawberry.subscription
    async def failing(self) -> AsyncIterator[int]:
        yield 1
        raise ValueError("a secret detail of the generator")


schema = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription, config=AS_WRITTEN)


@strawberry.type
class users:  # the name of a generated type, on purpose: a clash
    id: int


@strawberry.type
class TypeClash:
    @strawberry.field
    def someone(self) -> users:
        return users(id=1)

NOT_A_SCHEMA = 42

PERMISSIONS = """
tables:
  comments:
    select:
      user: {filter: {}, columns: "*"}
  posts:
    select:
      user: {filter: {published: {_eq: true}}, columns: [id, title]}
custom:
  whoami: [user]
  add_comments: [editor]
  posts_by_ids: [user, editor]
"""


def token(**claims: Any) -> dict[str, str]:
    claims = {"exp": int(time.time()) + 3600, **claims}
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, 'HS256')}"}


async def post(api: Any, query: str, headers: dict[str, str] | None = None, **variables: Any) -> dict[str, Any]:
    response = await api.http.post("/graphql", json={"query": query, "variables": variables}, headers=headers or {})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


COUNT = "{ comments_aggregate { aggregate { count } } }"


async def comment_total(api: Any) -> int:
    return int((await api(COUNT))["comments_aggregate"]["aggregate"]["count"])


async def test_a_custom_query_reads_the_session(launch: Launch) -> None:
    api = await launch(extend=schema, jwt_secret=SECRET)
    body = await post(api, "{ whoami { role user_id claim } }", token(sub="7", role="user", team="blue"))
    assert body == {"data": {"whoami": {"role": "user", "user_id": "7", "claim": "blue"}}}
    assert (await api("{ whoami { role user_id } }")) == {"whoami": {"role": "anonymous", "user_id": None}}


async def test_strawberry_s_json_is_the_generated_json(launch: Launch) -> None:
    api = await launch(extend=schema)
    data = await api('query($v: JSON!) { echo(value: $v) users_by_pk(id: 1) { profile } }', {"v": {"a": [1, "b"]}})
    assert data == {"echo": {"a": [1, "b"]}, "users_by_pk": {"profile": {"langs": ["en", "fr"]}}}


async def test_a_mixed_document_answers_every_field_with_errors_per_field(launch: Launch) -> None:
    api = await launch(extend=schema)
    body = await post(
        api, "query($p: Int!) { posts(where: {id: {_eq: $p}}) { id } n: comment_count(post_id: $p) broken }", p=1
    )
    expected = (await api("{ comments_aggregate(where: {post_id: {_eq: 1}}) { aggregate { count } } }"))
    count = expected["comments_aggregate"]["aggregate"]["count"]
    assert body["data"] == {"posts": [{"id": 1}], "n": count, "broken": None}
    [error] = body["errors"]
    assert error["path"] == ["broken"]
    assert error["extensions"] == {"code": "unexpected"}
    assert "secret" not in json.dumps(body)
    # A GraphQLError raised to tell the client why keeps its code.
    refused = await post(api, "{ refused }")
    assert refused["errors"][0]["message"] == "out of stock"
    assert refused["errors"][0]["extensions"] == {"code": "out-of-stock"}


async def test_a_custom_mutation_writes_in_the_request_transaction(launch: Launch) -> None:
    api = await launch(extend=schema)
    before = await comment_total(api)
    data = await api('mutation { add_comments(post_id: 1, bodies: ["a", "b"]) }')
    assert len(data["add_comments"]) == 2
    assert await comment_total(api) == before + 2
    # With a generated mutation in the same request: both commit together.
    data = await api(
        'mutation { add_comments(post_id: 1, bodies: ["c"]) '
        'insert_comments_one(object: {post_id: 1, body: "d"}) { id } }'
    )
    assert data["insert_comments_one"]["id"] > data["add_comments"][0]
    assert await comment_total(api) == before + 4


async def test_a_custom_mutation_rolls_back_with_a_failing_generated_one(launch: Launch) -> None:
    api = await launch(extend=schema)
    before = await comment_total(api)
    body = await post(
        api,
        'mutation { add_comments(post_id: 1, bodies: ["kept?"]) '
        'insert_comments_one(object: {post_id: 999999, body: "no such post"}) { id } }',
    )
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["constraint-violation"]
    assert await comment_total(api) == before
    # And a custom one failing rolls the generated one back.
    body = await post(
        api,
        'mutation { insert_comments_one(object: {post_id: 1, body: "kept?"}) { id } '
        'add_comments(post_id: 999999, bodies: ["no such post"]) }',
    )
    assert body["data"] is None
    assert body["errors"][0]["path"] == ["add_comments"]
    assert await comment_total(api) == before


async def test_a_custom_mutation_s_writes_are_events(launch: Launch) -> None:
    api = await launch(extend=schema)
    async with api.ws() as ws:
        await subscribe(ws, "c", "comments")
        data = await api('mutation { add_comments(post_id: 2, bodies: ["seen"]) }')
        event = await change(ws, "c")
    assert event["type"] == "create", event
    assert event["record"]["body"] == "seen"
    assert event["record"]["id"] == data["add_comments"][0]


async def test_permissions_grant_custom_fields_per_role(launch: Launch, tmp_path: Path) -> None:
    rules = tmp_path / "permissions.yaml"
    rules.write_text(PERMISSIONS)
    api = await launch(extend=schema, jwt_secret=SECRET, permissions=str(rules))
    user, editor = token(sub="1", role="user"), token(sub="2", role="editor")
    assert (await post(api, "{ whoami { role } }", user))["data"] == {"whoami": {"role": "user"}}
    denied = await post(api, "{ whoami { role } }", editor)
    unknown = await post(api, "{ no_such_field { role } }", editor)
    assert [e["extensions"]["code"] for e in denied["errors"]] == ["validation-failed"]
    assert denied["errors"][0]["message"] == unknown["errors"][0]["message"].replace("no_such_field", "whoami")
    anonymous = await post(api, "{ whoami { role } }")
    assert "errors" in anonymous
    # A role without custom fields does not see their types either.
    assert await post(api, '{ __type(name: "Whoami") { name } }') == {"data": {"__type": None}}
    granted = await post(api, 'mutation { add_comments(post_id: 1, bodies: ["e"]) }', editor)
    assert "errors" not in granted, granted
    assert "errors" in await post(api, 'mutation { add_comments(post_id: 1, bodies: ["u"]) }', user)


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_custom_subscription_runs_beside_table_changed(launch: Launch, protocol: str) -> None:
    api = await launch(extend=schema)
    async with api.ws(protocol=protocol) as ws:
        await subscribe(ws, "c", "comments")
        await ws.subscribe("n", "subscription { countdown(start: 2) }")
        assert await ws.next("n") == {"data": {"countdown": "2 for anonymous"}}
        assert await ws.next("n") == {"data": {"countdown": "1 for anonymous"}}
        assert await ws.receive() == {"id": "n", "type": "complete"}
        # Stopped by the client; then the socket's table events still arrive.
        await ws.subscribe("f", "subscription { forever }")
        assert await ws.next("f") == {"data": {"forever": 1}}
        await ws.complete("f")
        await ws.subscribe("x", "subscription { failing }")
        seen = []
        while not seen or seen[-1]["type"] != "error":
            if (message := await ws.receive())["id"] == "x":
                seen.append(message)
        assert [m["type"] for m in seen] == [ws.next_type, "error"], seen
        assert seen[0]["payload"] == {"data": {"failing": 1}}
        assert "secret" not in json.dumps(message)
        await api('mutation { add_comments(post_id: 2, bodies: ["after"]) }')
        while (message := await ws.receive()).get("id") == "f":
            pass
        assert message["payload"]["data"]["tableChanged"]["record"]["body"] == "after", message


async def test_custom_fields_return_generated_table_types(launch: Launch) -> None:
    api = await launch(extend=schema)
    data = await api("{ posts_by_ids(ids: [3, 1, 99]) { id title author: user { name } } first_tag { name weight } }")
    assert data == {
        "posts_by_ids": [
            {"id": 3, "title": "Third", "author": {"name": "Bob"}},
            {"id": 1, "title": "Hello World", "author": {"name": "Alice"}},
        ],
        "first_tag": {"name": "news", "weight": 2},
    }
    # A mutation's answer is read in its transaction: it sees what the mutation wrote.
    data = await api("mutation { publish(post_id: 2) { id published } update_posts_by_pk(pk_columns: {id: 2}, _set: {title: \"2\"}) { title } }")
    assert data == {"publish": {"id": 2, "published": True}, "update_posts_by_pk": {"title": "2"}}


async def test_table_types_of_custom_fields_follow_the_role_s_rules(launch: Launch, tmp_path: Path) -> None:
    rules = tmp_path / "permissions.yaml"
    rules.write_text(PERMISSIONS)
    api = await launch(extend=schema, jwt_secret=SECRET, permissions=str(rules))
    user, editor = token(sub="1", role="user"), token(sub="2", role="editor")
    body = await post(api, "{ posts_by_ids(ids: [1, 2, 3]) { id title } }", user)
    assert body == {"data": {"posts_by_ids": [{"id": 1, "title": "Hello World"}, {"id": 3, "title": "Third"}]}}
    hidden = await post(api, "{ posts_by_ids(ids: [1]) { body } }", user)
    assert [e["extensions"]["code"] for e in hidden["errors"]] == ["validation-failed"]
    # Granted, but the role cannot see posts at all: no such field.
    assert "errors" in await post(api, "{ posts_by_ids(ids: [1]) { id } }", editor)


async def test_custom_subscriptions_obey_the_connection_s_limits_and_token(launch: Launch) -> None:
    api = await launch(extend=schema, jwt_secret=SECRET, max_subscriptions_per_connection=2)
    expiring = {"exp": int(time.time()) + 2, "sub": "1", "role": "user"}
    payload = {"headers": {"Authorization": f"Bearer {jwt.encode(expiring, SECRET, 'HS256')}"}}
    async with api.ws(init=False) as ws:
        await ws.init(payload)
        await ws.subscribe("a", "subscription { forever }")
        await ws.subscribe("b", "subscription { forever }")
        await ws.subscribe("c", "subscription { forever }")
        while (message := await ws.receive())["id"] != "c":
            pass
        assert message["type"] == "error", message
        assert "at most 2 subscriptions" in json.dumps(message)
        # The token's expiry closes the socket, its custom subscriptions with it.
        assert await ws.close_code(timeout=10) == 4403


def start_error(url: str, extend: Any, **settings: Any) -> str:
    app = create_app(database=url, extend=extend, **settings)

    async def start() -> None:
        await app.state.runtime.start(realtime=False)
        await app.state.runtime.stop()

    with pytest.raises(StartupError) as raised:
        asyncio.run(start())
    return str(raised.value)


def test_a_name_clash_is_a_startup_error_naming_both(library_url: str) -> None:
    @strawberry.type
    class Clashing:
        @strawberry.field
        def posts(self) -> int:
            return 1

    message = start_error(library_url, strawberry.Schema(query=Clashing, config=AS_WRITTEN))
    assert "query field 'posts'" in message and "query_root.posts" in message, message

    message = start_error(library_url, strawberry.Schema(query=TypeClash, config=AS_WRITTEN))
    assert "type 'users'" in message and "generated type 'users'" in message, message


def test_a_grant_of_an_unknown_custom_field_is_a_startup_error(library_url: str, tmp_path: Path) -> None:
    rules = tmp_path / "permissions.yaml"
    rules.write_text("custom:\n  chekout: [user]\n")
    message = start_error(library_url, schema, permissions=str(rules))
    assert "custom.chekout" in message, message


@pytest.mark.parametrize(
    ("extend", "cause"),
    [
        ("nope:x", "cannot import module 'nope'"),
        ("tests.test_extend:missing", "has no attribute 'missing'"),
        ("tests.test_extend:NOT_A_SCHEMA", "expected a strawberry.Schema, got int"),
        ("tests.test_extend", "expected MODULE:ATTRIBUTE"),
    ],
)
def test_a_bad_extend_exits_with_one_line(tmp_path: Path, extend: str, cause: str) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    line = one_error_line(forgegraph("serve", "--port", "0", "--database", database, "--extend", extend, cwd=Path.cwd()))
    assert cause in line, line
    assert "Traceback" not in line


def test_export_schema_includes_the_custom_fields(tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    asyncio.run(library.create(database))
    result = forgegraph("export-schema", "--database", database, cwd=Path.cwd(),
                        FORGEGRAPH_EXTEND="tests.test_extend:schema")
    assert result.returncode == 0, result.stderr
    assert "whoami: Whoami!" in result.stdout
    assert "add_comments(post_id: Int!, bodies: [String!]!): [Int!]!" in result.stdout
