"""Hasura's streaming subscriptions, `t_stream` (graph.delivery.streams), end to end on both databases.

Real servers on real sockets over the library database (tests/library.py):
the catch-up in batches and in cursor order, new rows in commit order, the
role's rules and the subscriber's `where`, concurrent writers, and a random
sequence of writes checked against the documented semantics (README,
"Streaming subscriptions").
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

from graph.config import Limits
from tests.conftest import LEGACY_WS, TRANSPORT_WS, Api, GraphQLWS, Launch, asyncpg_dsn

SECRET = "forgegraph-stream-tests-secret-0123456789abcdef"
ADMIN_SECRET = "forgegraph-stream-admin-secret"
ADMIN = {"X-Admin-Secret": ADMIN_SECRET}
RULES = """\
tables:
  users:
    select:
      reader: {filter: {}, columns: [id, name]}
  posts:
    select:
      reader: {filter: {published: {_eq: true}}, columns: [id, title, user_id, published]}
      owner: {filter: {}, columns: [id, title, user_id]}
  comments:
    select:
      reader: {filter: {}, columns: [id, body, post_id]}
      # Through a relationship: the comments on one's own posts.
      owner: {filter: {post: {user_id: {_eq: X-User-Id}}}, columns: [id, body, post_id]}
"""
STREAM = """subscription($size: Int!, $from: Int!, $order: cursor_ordering, $where: posts_bool_exp) {
  posts_stream(batch_size: $size, cursor: [{initial_value: {id: $from}, ordering: $order}], where: $where) {
    id title user_id } }"""


def stream_vars(size: int, start: int, order: str = "ASC", where: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"size": size, "from": start, "order": order, "where": where}


class Reader:
    """One socket's messages, by operation id: a stream's batches come whenever they are ready."""

    def __init__(self, ws: GraphQLWS) -> None:
        self.ws = ws
        self.waiting: dict[str, list[dict[str, Any]]] = {}

    async def synced(self) -> None:
        """Return once the server has handled every message sent so far (streams joined)."""
        if self.ws.legacy:
            await self.ws.subscribe("sync", "{ __typename }")
            while (message := await self._receive())["id"] != "sync" or message["type"] != "complete":
                pass
        else:
            await self.ws.send({"type": "ping"})
            while (await self._receive()).get("type") != "pong":
                pass

    async def _receive(self, timeout: float = 5) -> dict[str, Any]:
        message = await self.ws.receive(timeout)
        op_id = message.get("id")
        if op_id is not None and op_id != "sync":
            self.waiting.setdefault(op_id, []).append(message)
        return message

    async def message(self, op_id: str, timeout: float = 5) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while not self.waiting.get(op_id):
            await self._receive(max(0.01, deadline - time.monotonic()))
        return self.waiting[op_id].pop(0)

    async def batch(self, op_id: str, key: str = "posts_stream", timeout: float = 5) -> list[dict[str, Any]]:
        message = await self.message(op_id, timeout)
        assert message["type"] == self.ws.next_type, message
        assert "errors" not in message["payload"], message
        rows: list[dict[str, Any]] = message["payload"]["data"][key]
        return rows

    async def rows(self, op_id: str, count: int, size: int, timeout: float = 10) -> list[dict[str, Any]]:
        """`count` rows, each batch at most `size` long and none empty."""
        out: list[dict[str, Any]] = []
        while len(out) < count:
            rows = await self.batch(op_id, timeout=timeout)
            assert 0 < len(rows) <= size, rows
            out.extend(rows)
        assert len(out) == count, out
        return out

    async def error(self, op_id: str) -> dict[str, Any]:
        message = await self.message(op_id)
        assert message["type"] == "error", message
        payload = message["payload"]
        return payload[0] if isinstance(payload, list) else payload  # type: ignore[no-any-return]


async def start(reader: Reader, op_id: str, variables: dict[str, Any], query: str = STREAM) -> None:
    await reader.ws.subscribe(op_id, query, variables)
    await reader.synced()


def bearer(role: str, user_id: int) -> dict[str, str]:
    claims = {"sub": str(user_id), "role": role, "exp": int(time.time()) + 3600}
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, 'HS256')}"}


async def ruled(launch: Launch, tmp_path: Path, **settings: Any) -> Api:
    rules = tmp_path / "permissions.yaml"
    rules.write_text(RULES)
    api = await launch(permissions=str(rules), jwt_secret=SECRET, admin_secret=ADMIN_SECRET, **settings)
    api.http.headers.update(ADMIN)
    return api


async def as_reader(api: Api, stack: AsyncExitStack, role: str = "reader", user_id: int = 1) -> Reader:
    ws: GraphQLWS = await stack.enter_async_context(api.ws(init=False))
    await ws.init({"headers": bearer(role, user_id)})
    return Reader(ws)


async def insert(api: Api, title: str, user_id: int = 1, *, published: bool = True, post_id: int | None = None) -> int:
    given = f", id: {post_id}" if post_id is not None else ""
    data = await api(f'mutation {{ insert_posts_one(object: {{title: "{title}", user_id: {user_id}, '
                     f"published: {str(published).lower()}{given}}}) {{ id }} }}")
    return int(data["insert_posts_one"]["id"])


# -- the catch-up and new rows ---------------------------------------------------------


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_existing_rows_come_in_batches_in_cursor_order_then_new_rows_as_inserted(api: Api, protocol: str) -> None:
    async with api.ws(protocol=protocol) as ws:
        reader = Reader(ws)
        await start(reader, "s", stream_vars(3, 0))
        assert [r["id"] for r in await reader.batch("s")] == [1, 2, 3]
        assert await reader.batch("s") == [{"id": 4, "title": "hello again", "user_id": 3}]
        new = await insert(api, "fresh", 2)
        assert await reader.batch("s") == [{"id": new, "title": "fresh", "user_id": 2}]
        many = await api('mutation { insert_posts(objects: [{title: "a", user_id: 1}, {title: "b", user_id: 1}, '
                         '{title: "c", user_id: 1}, {title: "d", user_id: 1}]) { returning { id } } }')
        ids = [r["id"] for r in many["insert_posts"]["returning"]]
        rows = await reader.rows("s", 4, 3)
        assert [r["id"] for r in rows] == ids
        # Updates and deletes send nothing: the next message is the next insert.
        await api(f'mutation {{ update_posts_by_pk(pk_columns: {{id: {new}}}, _set: {{title: "again"}}) {{ id }} }}')
        await api("mutation { delete_posts_by_pk(id: 1) { id } }")
        last = await insert(api, "last", 3)
        assert [r["id"] for r in await reader.batch("s")] == [last]
        await ws.complete("s")
        await insert(api, "after complete", 3)
        await reader.synced()
        assert not reader.waiting.get("s") or reader.waiting["s"] == [{"id": "s", "type": "complete"}]


async def test_descending_cursor_and_a_cursor_past_every_row(api: Api) -> None:
    async with api.ws() as ws:
        reader = Reader(ws)
        await start(reader, "down", stream_vars(2, 4, "DESC"))
        assert [r["id"] for r in await reader.batch("down")] == [3, 2]
        assert [r["id"] for r in await reader.batch("down")] == [1]
        await start(reader, "up", stream_vars(10, 4))
        new = await insert(api, "fresh")
        # A new row is after 4 but not before it: only the ascending stream sends it.
        assert [r["id"] for r in await reader.batch("up")] == [new]
        await reader.synced()
        assert not reader.waiting.get("down")


async def test_rows_with_equal_cursor_values_are_neither_skipped_nor_repeated_across_batches(api: Api) -> None:
    query = """subscription($size: Int!) { posts_stream(batch_size: $size,
      cursor: {initial_value: {user_id: 0}}) { id user_id } }"""
    for i in range(5):
        await insert(api, f"same user {i}", 2)
    expected = (await api("{ posts(order_by: [{user_id: asc}, {id: asc}]) { id user_id } }"))["posts"]
    async with api.ws() as ws:
        reader = Reader(ws)
        await start(reader, "s", {"size": 2}, query)
        assert await reader.rows("s", len(expected), 2) == expected


async def test_a_table_with_a_composite_key(api: Api) -> None:
    """Ties on the cursor broken by both key columns; new rows read back by both."""
    query = """subscription { tags_stream(batch_size: 1, cursor: {initial_value: {post_id: 0}})
      { post_id name weight } }"""
    async with api.ws() as ws:
        reader = Reader(ws)
        await start(reader, "s", {}, query)
        catch_up = [(await reader.batch("s", "tags_stream"))[0] for _ in range(3)]
        assert catch_up == (await api("{ tags(order_by: [{post_id: asc}, {name: asc}]) { post_id name weight } }"))["tags"]
        await api('mutation { insert_tags(objects: [{post_id: 1, name: "zz", weight: 5}, '
                  '{post_id: 4, name: "aa"}]) { affected_rows } }')
        assert await reader.batch("s", "tags_stream") == [{"post_id": 1, "name": "zz", "weight": 5}]
        assert await reader.batch("s", "tags_stream") == [{"post_id": 4, "name": "aa", "weight": None}]


async def test_relationships_in_the_selection_are_read_as_a_query_reads_them(api: Api) -> None:
    fields = "id title user { name } comments(order_by: {id: asc}, limit: $n) { body }"
    query = f"""subscription($n: Int, $size: Int!) {{ posts_stream(batch_size: $size,
      cursor: [{{initial_value: {{id: 2}}}}]) {{ ...F }} }} fragment F on posts {{ {fields} }}"""
    async with api.ws() as ws:
        reader = Reader(ws)
        await start(reader, "s", {"n": 1, "size": 10}, query)
        expected = await api(f"query($n: Int) {{ posts(where: {{id: {{_gt: 2}}}}) {{ {fields} }} }}", {"n": 1})
        assert await reader.batch("s") == expected["posts"]
        new = await insert(api, "with user", 3)
        assert await reader.batch("s") == [{"id": new, "title": "with user", "user": {"name": "Carol"}, "comments": []}]


async def test_the_readme_example(api: Api) -> None:
    query = """subscription { posts_stream(batch_size: 2, cursor: [{initial_value: {id: 2}, ordering: ASC}],
      where: {published: {_eq: true}}) { id title user { name } } }"""
    async with api.ws() as ws:
        reader = Reader(ws)
        await start(reader, "s", {}, query)
        assert await reader.batch("s") == [{"id": 3, "title": "Third", "user": {"name": "Bob"}},
                                           {"id": 4, "title": "hello again", "user": {"name": "Carol"}}]
        await api('mutation { insert_posts_one(object: {title: "new", user_id: 1, published: true}) { id } }')
        assert await reader.batch("s") == [{"id": 5, "title": "new", "user": {"name": "Alice"}}]


# -- rules and filters -------------------------------------------------------------------


async def test_where_and_the_roles_rules_filter_rows_and_columns(launch: Launch, tmp_path: Path) -> None:
    api = await ruled(launch, tmp_path)
    query = """subscription($where: posts_bool_exp) { posts_stream(batch_size: 5,
      cursor: [{initial_value: {id: 0}}], where: $where) { id title user { name } } }"""
    async with AsyncExitStack() as stack:
        reader = await as_reader(api, stack)
        await start(reader, "s", {"where": {"user_id": {"_in": [1, 2]}}}, query)
        # Posts 1 (user 1) and 3 (user 2) are published; 2 is not; 4 is user 3's.
        assert await reader.batch("s") == [{"id": 1, "title": "Hello World", "user": {"name": "Alice"}},
                                           {"id": 3, "title": "Third", "user": {"name": "Bob"}}]
        await insert(api, "hidden: not published", 1, published=False)
        await insert(api, "filtered out: user 3", 3)
        shown = await insert(api, "shown", 2)
        assert await reader.batch("s") == [{"id": shown, "title": "shown", "user": {"name": "Bob"}}]

        # A column the role may not select is not in its schema.
        await reader.ws.subscribe("body", "subscription { posts_stream(batch_size: 1, "
                                  "cursor: [{initial_value: {id: 0}}]) { id body } }")
        error = await reader.error("body")
        assert "body" in error["message"]
        await reader.ws.subscribe("cursor", "subscription { posts_stream(batch_size: 1, "
                                  "cursor: [{initial_value: {rating: 0}}]) { id } }")
        error = await reader.error("cursor")
        assert "rating" in error["message"]


async def test_a_row_rule_and_a_where_through_relationships(launch: Launch, tmp_path: Path) -> None:
    """Carol (user 3) sees the comments on her own posts only; her `where` goes through a relationship too."""
    api = await ruled(launch, tmp_path)
    query = """subscription($where: comments_bool_exp) { comments_stream(batch_size: 10,
      cursor: [{initial_value: {id: 0}}], where: $where) { id body } }"""
    async with AsyncExitStack() as stack:
        carol = await as_reader(api, stack, "owner", 3)
        alice = await as_reader(api, stack, "owner", 1)
        await start(carol, "all", {}, query)
        await start(carol, "titled", {"where": {"post": {"title": {"_ilike": "%again%"}}}}, query)
        await start(alice, "all", {}, query)
        assert await carol.batch("all", "comments_stream") == [{"id": 4, "body": "meh"}]
        assert await carol.batch("titled", "comments_stream") == [{"id": 4, "body": "meh"}]
        assert [c["id"] for c in await alice.batch("all", "comments_stream")] == [1, 2]
        other = await insert(api, "Carol's other post", 3)
        await api(f'mutation {{ insert_comments(objects: [{{post_id: 1, body: "to Alice"}}, '
                  f'{{post_id: {other}, body: "to Carol"}}]) {{ affected_rows }} }}')
        assert [c["body"] for c in await carol.batch("all", "comments_stream")] == ["to Carol"]
        assert [c["body"] for c in await alice.batch("all", "comments_stream")] == ["to Alice"]
        await api('mutation { insert_comments_one(object: {post_id: 4, body: "again"}) { id } }')
        assert [c["body"] for c in await carol.batch("titled", "comments_stream")] == ["again"]
        assert [c["body"] for c in await carol.batch("all", "comments_stream")] == ["again"]
        await alice.synced()
        assert not alice.waiting.get("all")


# -- concurrent writers -------------------------------------------------------------------------


async def test_a_row_whose_smaller_id_commits_later_is_still_sent(api: Api, library_url: str, backend: str) -> None:
    """Writer A draws an id and holds its transaction while B inserts a larger id and commits.

    A poll on `id > last id` would step past A's row for good; the stream reads commit order."""
    async with api.ws() as ws:
        reader = Reader(ws)
        await start(reader, "s", stream_vars(10, 4))
        if backend == "postgres":
            import asyncpg

            dsn = asyncpg_dsn(library_url)
            first, second = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
            try:
                holding = first.transaction()
                await holding.start()
                small = await first.fetchval("SELECT nextval(pg_get_serial_sequence('posts', 'id'))")
                large = await second.fetchval("INSERT INTO posts (title, user_id) VALUES ('B', 1) RETURNING id")
                assert [r["id"] for r in await reader.batch("s")] == [large]
                await first.execute("INSERT INTO posts (id, title, user_id) VALUES ($1, 'A', 1)", small)
                await holding.commit()
            finally:
                await first.close()
                await second.close()
        else:
            large = await insert(api, "B", post_id=50)
            assert [r["id"] for r in await reader.batch("s")] == [large]
            small = await insert(api, "A", post_id=20)
        assert small < large
        assert await reader.batch("s", timeout=10) == [{"id": small, "title": "A", "user_id": 1}]


async def test_concurrent_writers_and_a_subscriber_joining_meanwhile_see_every_row_once(
    api: Api, library_url: str, backend: str
) -> None:
    written: list[int] = []

    async def writer_pg(name: str, count: int) -> None:
        import asyncpg

        conn = await asyncpg.connect(asyncpg_dsn(library_url))
        try:
            for i in range(count):
                async with conn.transaction():
                    # The id first, the row a moment later: transactions interleave.
                    post_id = await conn.fetchval("SELECT nextval(pg_get_serial_sequence('posts', 'id'))")
                    await asyncio.sleep(random.random() * 0.005)
                    await conn.execute("INSERT INTO posts (id, title, user_id) VALUES ($1, $2, 1)", post_id, f"{name}{i}")
                written.append(post_id)
        finally:
            await conn.close()

    async def writer_http(name: str, count: int, ids: list[int]) -> None:
        for i in range(count):
            written.append(await insert(api, f"{name}{i}", post_id=ids[i]))
            await asyncio.sleep(random.random() * 0.005)

    random.seed(7)
    count = 60
    if backend == "postgres":
        writers = [writer_pg("a", count), writer_pg("b", count)]
    else:
        ids = list(range(2000, 2000 + 2 * count))  # after the rows before: read by catch-up pages too
        random.shuffle(ids)  # ids not in commit order
        writers = [writer_http("a", count, ids[:count]), writer_http("b", count, ids[count:])]
    # A long catch-up (many pages) for the writers to commit during.
    objects = ", ".join(f'{{id: {1000 + i}, title: "before {i}", user_id: 2}}' for i in range(150))
    before = [1000 + i for i in range(150)]
    await api(f"mutation {{ insert_posts(objects: [{objects}]) {{ affected_rows }} }}")
    async with api.ws() as ws:
        reader = Reader(ws)
        tasks = [asyncio.create_task(w) for w in writers]
        await asyncio.sleep(0.05)  # some rows before the subscriber, some during its catch-up, most after
        await start(reader, "s", stream_vars(2, 0))
        await asyncio.gather(*tasks)
        rows = await reader.rows("s", 4 + len(before) + 2 * count, 2, timeout=15)
        await reader.synced()
        assert not reader.waiting.get("s")
    ids_seen = [r["id"] for r in rows]
    assert sorted(ids_seen) == sorted([1, 2, 3, 4, *before, *written])


# -- a random sequence of writes ---------------------------------------------------------------


async def test_200_random_writes_stream_what_the_semantics_say(launch: Launch, tmp_path: Path) -> None:
    """Inserts, updates and deletes, some before the subscriber joins and most during and after.

    As documented: each row at most once; a row sent matched `where` and the
    role's rule in some committed state, with that state's values; a row that
    matched from its insert on and was never changed is sent, with the values
    a fresh query returns.
    """
    api = await ruled(launch, tmp_path)
    rng = random.Random(16)
    where = {"user_id": {"_in": [1, 2]}}
    query = """subscription($where: posts_bool_exp) { posts_stream(batch_size: 4,
      cursor: [{initial_value: {id: 2}}], where: $where) { id title user_id published } }"""
    history: dict[int, list[dict[str, Any] | None]] = {}
    for row in (await api("{ posts { id title user_id published } }"))["posts"]:
        history[row["id"]] = [row]

    def matches(state: dict[str, Any] | None) -> bool:
        return state is not None and state["id"] > 2 and state["published"] and state["user_id"] in (1, 2)

    async def write(steps: int) -> None:
        for _ in range(steps):
            alive = [k for k, states in history.items() if states[-1] is not None]
            op = rng.random()
            if op < 0.5 or not alive:
                user, published = rng.choice([1, 2, 3]), rng.random() < 0.7
                fields = "id title user_id published"
                data = await api(f'mutation {{ insert_posts_one(object: {{title: "t{rng.randrange(1000)}", '
                                 f"user_id: {user}, published: {str(published).lower()}}}) {{ {fields} }} }}")
                row = data["insert_posts_one"]
                history[row["id"]] = [row]
            elif op < 0.8:
                post_id = rng.choice(alive)
                change = rng.choice(['title: "u{n}"', "user_id: {u}", "published: {p}"]).format(
                    n=rng.randrange(1000), u=rng.choice([1, 2, 3]), p=str(rng.random() < 0.5).lower())
                data = await api(f"mutation {{ update_posts_by_pk(pk_columns: {{id: {post_id}}}, _set: {{{change}}}) "
                                 "{ id title user_id published } }")
                history[post_id].append(data["update_posts_by_pk"])
            else:
                post_id = rng.choice(alive)
                await api(f"mutation {{ delete_posts_by_pk(id: {post_id}) {{ id }} }}")
                history[post_id].append(None)

    await write(40)
    async with AsyncExitStack() as stack:
        reader = await as_reader(api, stack)
        writing = asyncio.create_task(write(160))
        await start(reader, "s", {"where": where}, query)
        await writing
        marker = await insert(api, "marker", 1)
        sent: list[dict[str, Any]] = []
        while not sent or sent[-1]["id"] != marker:
            batch = await reader.batch("s", timeout=10)
            assert 0 < len(batch) <= 4
            sent.extend(batch)
    sent.pop()
    ids = [row["id"] for row in sent]
    assert len(ids) == len(set(ids)), "a row was sent twice"
    for row in sent:
        assert row in [s for s in history[row["id"]] if matches(s)], (row, history[row["id"]])
    stable = {k for k, states in history.items() if len(states) == 1 and matches(states[0])}
    fresh = (await api("{ posts(where: {_and: [{id: {_gt: 2}}, {published: {_eq: true}}, "
                       "{user_id: {_in: [1, 2]}}]}) { id title user_id published } }"))["posts"]
    assert sorted((r for r in sent if r["id"] in stable), key=lambda r: r["id"]) == sorted(
        (r for r in fresh if r["id"] in stable and r["id"] != marker), key=lambda r: r["id"]
    )
    always = {k for k, states in history.items() if all(matches(s) for s in states)}
    assert always <= set(ids)
    assert len(stable) > 10 and len(set(ids) - stable) > 5  # the sequence exercised both kinds


# -- invalid arguments, limits ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cursor", "size", "message"),
    [
        ("[{initial_value: {id: 0}}]", 0, "batch_size must be at least 1"),
        ("[{initial_value: {nope: 0}}]", 1, "nope"),
        ("[{initial_value: {id: 0}}, {initial_value: {title: \"a\"}}]", 1, "exactly one cursor"),
        ("[]", 1, "exactly one cursor"),
        ("[{initial_value: {id: 0, title: \"a\"}}]", 1, "exactly one column"),
        ("[{initial_value: {}}]", 1, "exactly one column"),
        ("[{initial_value: {id: null}}]", 1, "must not be null"),
    ],
)
async def test_invalid_arguments_are_clear_errors(api: Api, cursor: str, size: int, message: str) -> None:
    async with api.ws() as ws:
        reader = Reader(ws)
        await ws.subscribe("bad", f"subscription {{ posts_stream(batch_size: {size}, cursor: {cursor}) {{ id }} }}")
        error = await reader.error("bad")
        assert message in error["message"], error
        await start(reader, "bad", stream_vars(10, 3))  # the id is free again, the socket usable
        assert [r["id"] for r in await reader.batch("bad")] == [4]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_streams_count_against_the_subscription_limit(launch: Launch) -> None:
    api = await launch(limits=Limits(max_subscriptions_per_connection=1))
    async with api.ws() as ws:
        reader = Reader(ws)
        await start(reader, "1", stream_vars(10, 3))
        assert [r["id"] for r in await reader.batch("1")] == [4]
        await ws.subscribe("2", STREAM, stream_vars(10, 0))
        assert "at most 1 subscriptions" in (await reader.error("2"))["message"]
        await ws.complete("1")
        await start(reader, "2", stream_vars(10, 3))
        assert [r["id"] for r in await reader.batch("2")] == [4]


async def test_a_stream_whose_read_fails_ends_with_an_error_and_the_others_carry_on(api: Api) -> None:
    runtime = api.server.app.state.runtime
    plans = runtime.query_plans
    async with api.ws() as ws:
        reader = Reader(ws)
        await start(reader, "failing", stream_vars(10, 3))
        assert [r["id"] for r in await reader.batch("failing")] == [4]
        await ws.subscribe("changes", "subscription { tableChanged(table: \"posts\") { type id } }")
        await reader.synced()

        async def unreachable(*_args: Any, **_kwargs: Any) -> Any:
            raise OSError("the database went away")

        plans.answer = unreachable  # the stream's next read fails (its reads go through the compiler)
        try:
            new = await insert(api, "lost")
            error = await reader.error("failing")
        finally:
            del plans.answer
        assert "unreachable" in error["message"], error
        # The socket and its other subscription carry on; the failed stream sends nothing more.
        assert (await reader.message("changes"))["payload"]["data"]["tableChanged"] == {"type": "create", "id": new}
        await insert(api, "later")
        assert (await reader.message("changes"))["payload"]["data"]["tableChanged"]["type"] == "create"
        await start(reader, "failing", stream_vars(10, new))  # its id is free again
        assert [r["title"] for r in await reader.batch("failing")] == ["later"]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_max_limit_bounds_each_read_but_no_row_is_lost(launch: Launch) -> None:
    """With --max-limit 2 every statement returns at most 2 rows: the stream reads (and sends) 2 at a time."""
    api = await launch(limits=Limits(max_limit=2))
    async with api.ws() as ws:
        reader = Reader(ws)
        await start(reader, "s", stream_vars(10, 0))
        assert [r["id"] for r in await reader.batch("s")] == [1, 2]
        assert [r["id"] for r in await reader.batch("s")] == [3, 4]
        many = await api('mutation { insert_posts(objects: [{title: "a", user_id: 1}, {title: "b", user_id: 1}, '
                         '{title: "c", user_id: 1}]) { affected_rows } }')
        assert many["insert_posts"]["affected_rows"] == 3
        assert [r["title"] for r in await reader.rows("s", 3, 2)] == ["a", "b", "c"]
