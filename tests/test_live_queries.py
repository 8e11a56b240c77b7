"""Live queries end to end (SPEC section 5): a query field in a subscription, on both databases.

Every test reads the first answer before it writes, so the subscription is
joined. "No message" after a commit is shown by the next message being the
answer to a later commit that does change the result.
"""

from __future__ import annotations

import asyncio
import random
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import jwt
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from graph.compile._query_batch import ROW, batched, row_of
from graph.delivery.live import live_queries
from tests.conftest import LEGACY_WS, TRANSPORT_WS, Api, GraphQLWS, Launch

SECRET = "live-query-secret-0123456789abcdef"
ADMIN = "live-admin"
FEED = """subscription { posts(where: {published: {_eq: true}}, order_by: {id: asc}) {
  id title user { name } } }"""
FEED_QUERY = FEED.replace("subscription", "query", 1)

RULES = """
tables:
  posts:
    select:
      user: {filter: {user_id: {_eq: X-User-Id}}, columns: [id, title, user_id, published]}
  users:
    select:
      user: {filter: {}, columns: [id, name]}
"""

FEED_RULES = """
tables:
  posts:
    select:
      user: {filter: {_or: [{published: {_eq: true}}, {user_id: {_eq: X-User-Id}}]},
             columns: [id, title, user_id, published]}
  users:
    select:
      user: {filter: {}, columns: [id, name]}
"""


def token(user: int, role: str = "user") -> str:
    return jwt.encode({"sub": str(user), "role": role, "exp": int(time.time()) + 3600}, SECRET, "HS256")


async def admin(api: Api, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await api.http.post(
        "/graphql", json={"query": query, "variables": variables}, headers={"X-Admin-Secret": ADMIN}
    )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


async def as_user(api: Api, user: int, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await api.http.post(
        "/graphql", json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token(user)}"},
    )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


async def data(ws: GraphQLWS, op_id: str | None = None, timeout: float = 5) -> dict[str, Any]:
    payload = await ws.next(op_id, timeout)
    assert "errors" not in payload, payload
    return payload["data"]  # type: ignore[no-any-return]


async def live(ws: GraphQLWS, op_id: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """Subscribe and return the first answer."""
    await ws.subscribe(op_id, query, variables)
    return await data(ws, op_id)


async def secured(launch: Launch, tmp_path: Path, rules: str = RULES, **settings: Any) -> Api:
    path = tmp_path / "permissions.yaml"
    path.write_text(rules)
    return await launch(permissions=str(path), jwt_secret=SECRET, admin_secret=ADMIN, **settings)


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_live_query_answers_at_once_and_after_each_change(api: Api, protocol: str) -> None:
    async with api.ws(protocol=protocol) as ws:
        first = await live(ws, "feed", FEED)
        assert first == await api(FEED_QUERY)
        assert [p["id"] for p in first["posts"]] == [1, 3, 4]
        # Refreshed by changes to the tables it reads, only.
        (group,) = live_queries(api.server.app.state.runtime).groups.values()
        assert group.tables == {"posts", "users"}

        await api('mutation { insert_posts_one(object: {id: 10, title: "new", published: true, user_id: 2}) { id } }')
        after_insert = await data(ws, "feed")
        assert after_insert == await api(FEED_QUERY)
        assert after_insert["posts"][-1] == {"id": 10, "title": "new", "user": {"name": "Bob"}}

        # Outside the filter: no message; the next one answers the change after it.
        await api('mutation { update_posts_by_pk(pk_columns: {id: 2}, _set: {title: "still hidden"}) { id } }')
        await api('mutation { update_posts_by_pk(pk_columns: {id: 1}, _set: {title: "renamed"}) { id } }')
        after_update = await data(ws, "feed")
        assert after_update["posts"][0] == {"id": 1, "title": "renamed", "user": {"name": "Alice"}}

        # A change of a related row changes the answer too.
        await api('mutation { update_users_by_pk(pk_columns: {id: 1}, _set: {name: "Alicia"}) { id } }')
        after_user = await data(ws, "feed")
        assert after_user["posts"][0]["user"] == {"name": "Alicia"}

        await api("mutation { delete_posts_by_pk(id: 10) { id } }")
        after_delete = await data(ws, "feed")
        assert [p["id"] for p in after_delete["posts"]] == [1, 3, 4]
        assert after_delete == await api(FEED_QUERY)

        await ws.complete("feed")
        await api('mutation { update_posts_by_pk(pk_columns: {id: 1}, _set: {title: "after"}) { id } }')
        if ws.legacy:
            assert await ws.receive() == {"id": "feed", "type": "complete"}
        await ws.subscribe("sync", "{ posts_by_pk(id: 1) { title } }")
        assert await data(ws, "sync") == {"posts_by_pk": {"title": "after"}}


async def test_by_pk_and_aggregate_with_variables(api: Api) -> None:
    by_pk = "subscription($id: Int!) { posts_by_pk(id: $id) { id title } }"
    count = """subscription($uid: Int!) { posts_aggregate(where: {user_id: {_eq: $uid}}) {
      aggregate { count max { id } } } }"""
    async with api.ws() as ws:
        assert await live(ws, "pk", by_pk, {"id": 3}) == {"posts_by_pk": {"id": 3, "title": "Third"}}
        assert await live(ws, "n", count, {"uid": 3}) == {
            "posts_aggregate": {"aggregate": {"count": 1, "max": {"id": 4}}}
        }
        await api('mutation { insert_posts_one(object: {id: 20, title: "x", user_id: 3}) { id } }')
        assert await data(ws, "n") == {"posts_aggregate": {"aggregate": {"count": 2, "max": {"id": 20}}}}
        await api('mutation { update_posts_by_pk(pk_columns: {id: 3}, _set: {title: "3rd"}) { id } }')
        assert await data(ws, "pk") == {"posts_by_pk": {"id": 3, "title": "3rd"}}
        await api("mutation { delete_posts_by_pk(id: 3) { id } }")
        assert await data(ws, "pk") == {"posts_by_pk": None}


async def test_subscribers_share_one_execution_per_refresh(api: Api) -> None:
    query = "subscription($uid: Int!) { posts(where: {user_id: {_eq: $uid}}, order_by: {id: asc}) { id } }"
    runtime = api.server.app.state.runtime
    async with api.ws() as one, api.ws() as two, api.ws() as three:
        assert await live(one, "a", query, {"uid": 1}) == {"posts": [{"id": 1}, {"id": 2}]}
        assert await live(two, "a", query, {"uid": 1}) == {"posts": [{"id": 1}, {"id": 2}]}
        assert await live(three, "a", query, {"uid": 3}) == {"posts": [{"id": 4}]}
        queries = live_queries(runtime)
        assert len(queries.groups) == 2
        before = queries.refreshes
        await api('mutation { insert_posts_one(object: {id: 30, title: "x", user_id: 1}) { id } }')
        expected = {"posts": [{"id": 1}, {"id": 2}, {"id": 30}]}
        assert await data(one, "a") == expected
        assert await data(two, "a") == expected
        await api('mutation { insert_posts_one(object: {id: 31, title: "y", user_id: 3}) { id } }')
        assert await data(three, "a") == {"posts": [{"id": 4}, {"id": 31}]}
        # Both groups read posts: refreshed together, by one statement for both variable sets.
        assert queries.refreshes - before <= 4
        assert any(ROW in statement for statement in api.server.statements)
    assert not live_queries(runtime).groups  # the sockets closed: their groups are gone


async def test_a_role_sees_only_its_rows_and_each_user_their_own(launch: Launch, tmp_path: Path) -> None:
    api = await secured(launch, tmp_path)
    query = "subscription { posts(order_by: {id: asc}) { id title user { name } } }"
    async with api.ws(init=False) as alice, api.ws(init=False) as bob:
        await alice.init({"Authorization": f"Bearer {token(1)}"})
        await bob.init({"headers": {"Authorization": f"Bearer {token(2)}"}})
        assert [p["id"] for p in (await live(alice, "q", query))["posts"]] == [1, 2]
        assert [p["id"] for p in (await live(bob, "q", query))["posts"]] == [3]
        await admin(api, 'mutation { insert_posts_one(object: {id: 40, title: "bob", user_id: 2}) { id } }')
        assert [p["id"] for p in (await data(bob, "q"))["posts"]] == [3, 40]
        await admin(api, 'mutation { insert_posts_one(object: {id: 41, title: "alice", user_id: 1}) { id } }')
        # Bob's post was no change to Alice's answer: her next message is this one.
        assert [p["id"] for p in (await data(alice, "q"))["posts"]] == [1, 2, 41]
        # Users of one role share an answer unless its rules read their session values.
        queries = live_queries(api.server.app.state.runtime)
        assert len(queries.groups) == 2
        names = "subscription { users(order_by: {id: asc}) { name } }"
        assert await live(alice, "u", names) == await live(bob, "u", names)
        assert len(queries.groups) == 3
        # A column the role may not select is refused at subscribe time.
        await alice.subscribe("body", "subscription { posts { id body } }")
        message = await alice.receive()
        assert message["type"] == "error" and message["id"] == "body", message


async def test_a_limit_over_max_limit_is_clamped(launch: Launch) -> None:
    from graph.config import Limits

    api = await launch(limits=Limits(max_limit=2))
    async with api.ws() as ws:
        assert await live(ws, "q", "subscription { posts(order_by: {id: desc}, limit: 10) { id } }") == {
            "posts": [{"id": 4}, {"id": 3}]
        }
        await api('mutation { insert_posts_one(object: {id: 50, title: "x", user_id: 1}) { id } }')
        assert await data(ws, "q") == {"posts": [{"id": 50}, {"id": 4}]}


async def test_live_queries_count_against_the_subscriptions_per_connection(launch: Launch) -> None:
    from graph.config import Limits

    api = await launch(limits=Limits(max_subscriptions_per_connection=2))
    async with api.ws() as ws:
        await live(ws, "1", "subscription { posts_by_pk(id: 1) { id } }")
        await ws.subscribe("2", "subscription { tableChanged(table: \"users\") { type } }")
        await ws.subscribe("3", "subscription { users_by_pk(id: 1) { id } }")
        message = await ws.receive()
        assert message["id"] == "3" and message["type"] == "error", message
        assert message["payload"][0]["message"] == "at most 2 subscriptions per connection"
        await ws.complete("1")
        assert await live(ws, "4", "subscription { users_by_pk(id: 1) { id } }") == {"users_by_pk": {"id": 1}}


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_refused_live_query_is_an_error_at_subscribe_time(api: Api, protocol: str) -> None:
    async with api.ws(protocol=protocol) as ws:
        await ws.subscribe("bad", "subscription { posts(limit: -1) { id } }")
        message = await ws.receive()
        assert message["type"] == "error" and message["id"] == "bad", message
        errors = message["payload"] if isinstance(message["payload"], list) else [message["payload"]]
        assert [e["extensions"]["code"] for e in errors] == ["validation-failed"]
        await ws.subscribe("vars", "subscription($id: Int!) { posts_by_pk(id: $id) { id } }", {"id": "x"})
        message = await ws.receive()
        assert message["type"] == "error" and message["id"] == "vars", message
        assert await live(ws, "good", "subscription { posts_by_pk(id: 1) { id } }") == {"posts_by_pk": {"id": 1}}
        assert not [g for g in live_queries(api.server.app.state.runtime).groups.values() if not g.members]


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_failed_refresh_ends_that_live_query_only(api: Api, library_url: str, protocol: str) -> None:
    tagged = "subscription { tags(where: {post: {id: {_gt: 0}}}, order_by: {name: asc}) { name } }"
    async with api.ws(protocol=protocol) as ws:
        assert await live(ws, "tags", tagged) == {"tags": [{"name": "intro"}, {"name": "misc"}, {"name": "news"}]}
        # A filter through a relationship reads its table too.
        (group,) = live_queries(api.server.app.state.runtime).groups.values()
        assert group.tables == {"tags", "posts"}
        assert await live(ws, "posts", "subscription { posts_aggregate { aggregate { count } } }") == {
            "posts_aggregate": {"aggregate": {"count": 4}}
        }
        engine = create_async_engine(library_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(sa.text("DROP TABLE tags"))
        finally:
            await engine.dispose()
        # A post changes both answers: the one on tags fails, the other carries on.
        await api('mutation { insert_posts_one(object: {id: 60, title: "x", user_id: 1}) { id } }')
        seen: dict[str, list[dict[str, Any]]] = {"tags": [], "posts": []}
        while len(seen["tags"]) < 2 or not seen["posts"]:
            message = await ws.receive()
            seen[message["id"]].append(message)
        failed, complete = seen["tags"]
        assert failed["type"] == ws.next_type and failed["payload"]["errors"], failed
        assert complete == {"id": "tags", "type": "complete"}
        assert seen["posts"][0]["payload"] == {"data": {"posts_aggregate": {"aggregate": {"count": 5}}}}
        await api('mutation { insert_posts_one(object: {id: 61, title: "y", user_id: 1}) { id } }')
        assert await data(ws, "posts") == {"posts_aggregate": {"aggregate": {"count": 6}}}


async def test_random_changes_every_answer_equals_a_fresh_query(launch: Launch, tmp_path: Path) -> None:
    """200 random writes: after each, the last answer each user received is what a query of theirs answers.

    Three users of one role (whose rule reads X-User-Id) and several variable
    values: their answers are refreshed together, batched in one statement.
    """
    api = await secured(launch, tmp_path, FEED_RULES)
    feed = """subscription { posts(where: {title: {_like: "%a%"}}, order_by: [{title: asc}, {id: asc}], limit: 5) {
      id title published user { name } } }"""
    count = "subscription { posts_aggregate { aggregate { count } } }"
    by_user = """subscription($uid: Int!, $t: String!) {
      posts(where: {user_id: {_eq: $uid}, title: {_gte: $t}}, order_by: {id: desc}) { id title } }"""
    rng = random.Random(16)
    subscriptions = {
        (user, name): (query, variables)
        for user in (1, 2, 3)
        for name, query, variables in (
            ("feed", feed, None),
            ("count", count, None),
            ("mine", by_user, {"uid": user, "t": "a"}),
            ("other", by_user, {"uid": rng.randint(1, 3), "t": rng.choice(["a", "b", "c"])}),
        )
    }
    ids = [1, 2, 3, 4]
    next_id = 100
    async with AsyncExitStack() as stack:
        sockets: dict[int, GraphQLWS] = {}
        for user in (1, 2, 3):
            ws = sockets[user] = await stack.enter_async_context(api.ws(init=False))
            await ws.init({"Authorization": f"Bearer {token(user)}"})
        last: dict[tuple[int, str], dict[str, Any]] = {}
        for (user, name), (query, variables) in subscriptions.items():
            last[(user, name)] = await live(sockets[user], name, query, variables)

        async def settle() -> None:
            for (user, name), (query, variables) in subscriptions.items():
                expected = await as_user(api, user, query.replace("subscription", "query", 1), variables)
                ws = sockets[user]
                while last[(user, name)] != expected:
                    message = await ws.receive()
                    assert message["type"] == "next", message
                    key = (user, message["id"])
                    assert message["payload"]["data"] != last[key]  # only changes are sent
                    last[key] = message["payload"]["data"]

        await settle()
        for _ in range(200):
            action = rng.choice(["insert", "insert", "update", "delete", "user"])
            title = "".join(rng.choice("abc") for _ in range(rng.randint(1, 3)))
            if action == "insert" or not ids:
                await admin(api, "mutation($o: posts_insert_input!) { insert_posts_one(object: $o) { id } }", {
                    "o": {"id": next_id, "title": title, "published": rng.random() < 0.5,
                          "user_id": rng.randint(1, 3)}})
                ids.append(next_id)
                next_id += 1
            elif action == "update":
                changes = rng.choice([{"title": title}, {"published": rng.random() < 0.5},
                                      {"user_id": rng.randint(1, 3)}])
                await admin(api, "mutation($id: Int!, $s: posts_set_input) { update_posts_by_pk("
                                 "pk_columns: {id: $id}, _set: $s) { id } }", {"id": rng.choice(ids), "s": changes})
            elif action == "delete":
                victim = rng.choice(ids)
                ids.remove(victim)
                await admin(api, "mutation($id: Int!) { delete_posts_by_pk(id: $id) { id } }", {"id": victim})
            else:
                await admin(api, "mutation($id: Int!, $n: String!) { update_users_by_pk("
                                 "pk_columns: {id: $id}, _set: {name: $n}) { id } }",
                            {"id": rng.randint(1, 3), "n": title})
            await settle()
        # Quiescence: nothing more arrives once every answer is current.
        await asyncio.sleep(0.5)
        for ws in sockets.values():
            await ws.send({"type": "ping"})
            assert await ws.receive() == {"type": "pong"}
    # The users' answers were refreshed together: one statement for many of them.
    assert any(ROW in statement for statement in api.server.statements)


def test_batched_statements_rewrite_only_placeholders() -> None:
    sqlite = batched("sqlite", "SELECT json_object('a?', x) FROM t WHERE \"c?\" = ? AND b = ? LIMIT ?", (1, 2, 3), {1})
    assert sqlite is not None
    assert sqlite.constants == (1, 3) and sqlite.varying == (1,)
    assert "'a?'" in sqlite.sql and '"c?"' in sqlite.sql
    assert f"b = json_extract({ROW}.value, '$[0]') LIMIT ?" in sqlite.sql
    assert sqlite.sql.endswith(f"FROM json_each(?) AS {ROW}")
    postgres = batched("postgresql", "SELECT '$1' FROM t WHERE a = $1::INTEGER AND b = $2::VARCHAR", (1, "x"), {0})
    assert postgres is not None
    assert postgres.constants == ("x",)
    assert f"a = ({ROW}.v ->> 0)::INTEGER AND b = $1::VARCHAR" in postgres.sql
    assert "SELECT '$1'" in postgres.sql and "json_array_elements($2::json)" in postgres.sql
    # A placeholder without its cast would compare text with the column: not batched.
    assert batched("postgresql", "SELECT 1 WHERE a = $1", (1,), {0}) is None
    assert row_of([1, "x", None, True, 1.5], [0, 1, 2, 3, 4]) == [1, "x", None, True, 1.5]
    assert row_of([2**70], [0]) is None
    assert row_of([b"blob"], [0]) is None
    assert row_of([float("nan")], [0]) is None


async def test_a_batch_that_fails_answers_each_alone(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    import graph.compile.query_plans as query_plans
    from graph.compile._query_batch import Batched

    def broken(_dialect: str, _sql: str, params: Any, varying: set[int]) -> Batched:
        return Batched("SELECT no_such_function(?)", (), tuple(sorted(varying)))

    monkeypatch.setattr(query_plans, "batched", broken)
    query = "subscription($uid: Int!) { posts_aggregate(where: {user_id: {_eq: $uid}}) { aggregate { count } } }"
    async with api.ws() as ws:
        assert await live(ws, "1", query, {"uid": 1}) == {"posts_aggregate": {"aggregate": {"count": 2}}}
        assert await live(ws, "3", query, {"uid": 3}) == {"posts_aggregate": {"aggregate": {"count": 1}}}
        await api('mutation { insert_posts(objects: [{title: "a", user_id: 1}, {title: "b", user_id: 3}]) '
                  "{ affected_rows } }")
        answers = {message["id"]: message["payload"] for message in [await ws.receive(), await ws.receive()]}
        assert answers == {
            "1": {"data": {"posts_aggregate": {"aggregate": {"count": 3}}}},
            "3": {"data": {"posts_aggregate": {"aggregate": {"count": 2}}}},
        }
    plans = api.server.app.state.runtime.query_plans
    assert list(plans._batches.values()) == [None]  # not tried again


async def test_a_burst_of_commits_is_coalesced_and_ends_on_the_last(api: Api) -> None:
    query = "subscription { posts_aggregate { aggregate { count max { id } } } }"
    async with api.ws() as ws:
        assert await live(ws, "n", query) == {"posts_aggregate": {"aggregate": {"count": 4, "max": {"id": 4}}}}
        await asyncio.gather(*(
            api(f'mutation {{ insert_posts_one(object: {{id: {100 + n}, title: "x", user_id: 1}}) {{ id }} }}')
            for n in range(30)
        ))
        expected = {"posts_aggregate": {"aggregate": {"count": 34, "max": {"id": 129}}}}
        received = [await data(ws, "n")]
        while received[-1] != expected:
            received.append(await data(ws, "n"))
        assert len(received) <= 30
        assert len({str(answer) for answer in received}) == len(received)  # never the same answer twice


async def test_metrics_count_live_queries_and_streams_as_subscriptions(api: Api) -> None:
    from tests.test_metrics import by_transport, scrape

    stream = "subscription { posts_stream(batch_size: 10, cursor: [{initial_value: {id: 0}, ordering: ASC}]) { id } }"
    gauge = "forgegraph_subscriptions"
    async with api.ws() as ws, api.ws(protocol=LEGACY_WS) as legacy:
        # A connection's messages are handled in order: the live query's answer
        # comes after the others were joined.
        await ws.subscribe("t", 'subscription { tableChanged(table: "users") { type } }')
        await ws.subscribe("s", stream)
        assert [row["id"] for row in (await data(ws, "s"))["posts_stream"]] == [1, 2, 3, 4]
        assert await live(ws, "q", "subscription { posts_by_pk(id: 1) { id } }") == {"posts_by_pk": {"id": 1}}
        assert await live(legacy, "q", "subscription($id: Int!) { posts_by_pk(id: $id) { id } }", {"id": 2}) == {
            "posts_by_pk": {"id": 2}
        }
        samples = await scrape(api.server)
        assert by_transport(samples, gauge)[TRANSPORT_WS] == 3
        assert by_transport(samples, gauge)[LEGACY_WS] == 1
        refreshes = samples[("forgegraph_live_query_refreshes_total", ())]
        assert refreshes >= 2  # the first answers

        # A commit to posts refreshes both (each selects `id` only: no message).
        await api('mutation { update_posts_by_pk(pk_columns: {id: 1}, _set: {title: "x"}) { id } }')
        await ws.complete("q")
        for _ in range(100):
            samples = await scrape(api.server)
            after = samples[("forgegraph_live_query_refreshes_total", ())]
            if by_transport(samples, gauge)[TRANSPORT_WS] == 2 and after > refreshes:
                break
            await asyncio.sleep(0.05)
        assert by_transport(samples, gauge)[TRANSPORT_WS] == 2
        assert after > refreshes
        assert samples[("forgegraph_live_query_answers_total", ())] >= after


RULE_ON_PUBLISHED = """
tables:
  posts:
    select:
      user: {filter: {_and: [{user_id: {_eq: X-User-Id}}, {published: {_eq: true}}]}, columns: [id, title]}
  users:
    select:
      user: {filter: {}, columns: [id, name]}
"""


async def test_a_rule_that_no_longer_compiles_ends_its_live_queries_only(
    launch: Launch, tmp_path: Path, library_url: str
) -> None:
    """The column a rule reads is renamed under the server: the SQL it compiled to fails.

    Two users of one document are one family, answered by one batched
    statement: that fails, then each group alone, and each ends with its
    errors and `complete`. A live query the rule does not touch carries on.
    (Rules are read at start-up, so a change under the server is how a rule
    stops compiling; the dropped-table case is test_a_failed_refresh_ends_that_live_query_only.)
    The schema watch is off: its rebuild would end them first when a busy machine delays the
    refresh, with an `error` message of its own (test_schema_changes).
    """
    api = await secured(launch, tmp_path, RULE_ON_PUBLISHED, schema_poll=0)
    mine = "subscription { posts(order_by: {id: asc}) { id title } }"
    async with api.ws(init=False) as alice, api.ws(init=False) as bob:
        await alice.init({"Authorization": f"Bearer {token(1)}"})
        await bob.init({"Authorization": f"Bearer {token(2)}"})
        assert await live(alice, "mine", mine) == {"posts": [{"id": 1, "title": "Hello World"}]}
        assert await live(bob, "mine", mine) == {"posts": [{"id": 3, "title": "Third"}]}
        names = "subscription { users(order_by: {id: asc}) { id name } }"
        first = await live(alice, "users", names)
        families = live_queries(api.server.app.state.runtime).families
        assert sorted(len(f.groups) for f in families.values()) == [1, 2]

        engine = create_async_engine(library_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(sa.text("ALTER TABLE posts RENAME COLUMN published TO was_published"))
            # Written beside the server (its own insert names the old column too).
            async with engine.begin() as conn:
                await conn.execute(sa.text(
                    "INSERT INTO posts (id, title, user_id, was_published) VALUES (70, 'z', 2, true)"
                ))
        finally:
            await engine.dispose()
        for ws in (alice, bob):
            failed = await ws.receive()
            assert failed["id"] == "mine" and failed["type"] == ws.next_type, failed
            assert failed["payload"]["errors"], failed
            assert await ws.receive() == {"id": "mine", "type": "complete"}
        await admin(api, 'mutation { update_users_by_pk(pk_columns: {id: 1}, _set: {name: "Alicia"}) { id } }')
        renamed = await data(alice, "users")
        assert renamed["users"][0] == {"id": 1, "name": "Alicia"}
        assert renamed["users"][1:] == first["users"][1:]
        assert [len(f.groups) for f in families.values()] == [1]


async def test_a_refresh_does_not_coerce_or_plan_again(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each variable set's plan and coerced values are kept from its first answer: a refresh
    of many groups only binds and runs (they were three quarters of its CPU, `make bench`)."""
    from graph.compile.query_plans import Document

    query = "subscription($uid: Int!) { posts(where: {user_id: {_eq: $uid}}, order_by: {id: asc}) { id } }"
    async with api.ws() as ws:
        for uid in (1, 2, 3):
            await live(ws, str(uid), query, {"uid": uid})
        coerced: list[Any] = []
        original = Document.coerce
        monkeypatch.setattr(Document, "coerce", lambda self, raw: coerced.append(raw) or original(self, raw))
        await api('mutation { insert_posts_one(object: {id: 30, title: "x", user_id: 2}) { id } }')
        assert await data(ws, "2") == {"posts": [{"id": 3}, {"id": 30}]}
        await api('mutation { insert_posts_one(object: {id: 31, title: "y", user_id: 1}) { id } }')
        assert await data(ws, "1") == {"posts": [{"id": 1}, {"id": 2}, {"id": 31}]}
        assert coerced == []
