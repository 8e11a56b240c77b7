"""Hostile or careless clients cannot take the service from others (issue 12, items 7-10, 12).

Each attack runs against a real server over real sockets while a watcher
asks `/healthz` every 50 ms: the server must answer it in under a second
throughout (a CPU-bound handler on the event loop would hold it up).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest

from graph.config import Limits
from graph.nesting import MAX_FILTER_DEPTH
from tests.conftest import LEGACY_WS, TRANSPORT_WS, GraphQLWS, LiveServer
from tests.test_realtime import CHANGES, change, error_codes, subscribed

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])
HEALTHY_SECONDS = 1.0


@asynccontextmanager
async def healthz_watch(server: LiveServer) -> AsyncIterator[list[float]]:
    """Ask /healthz every 50 ms while the block runs; the answer times, in seconds."""
    latencies: list[float] = []
    stop = asyncio.Event()

    async def watch() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=60, trust_env=False) as http:
            while not stop.is_set():
                started = time.monotonic()
                response = await http.get("/healthz")
                latencies.append(time.monotonic() - started)
                assert response.status_code == 200, response.text
                await asyncio.sleep(0.05)

    task = asyncio.create_task(watch())
    try:
        yield latencies
    finally:
        stop.set()
        await task


def assert_healthy(latencies: list[float]) -> None:
    assert len(latencies) >= 3, latencies
    assert max(latencies) < HEALTHY_SECONDS, f"/healthz took {max(latencies):.2f} s"


async def post(server: LiveServer, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, timeout=60, trust_env=False) as http:
        response = await http.post("/graphql", json={"query": query, "variables": variables})
        body: dict[str, Any] = response.json()
        return body


INSERT_POST = """mutation($title: String!) {
  insert_posts_one(object: {title: $title, user_id: 1}) { id } }"""


# -- item 7: LIKE patterns cannot backtrack ---------------------------------------


@sqlite_only
@pytest.mark.parametrize("op", ["_like", "_ilike", "_nlike"])
@pytest.mark.parametrize("wildcards", [8, 24])
async def test_a_pathological_like_pattern_does_not_stall_the_server(
    serve: Any, library_url: str, op: str, wildcards: int
) -> None:
    server = serve(database=library_url)
    pattern = "%" * wildcards + "!"
    async with GraphQLWS.open(server) as ws:
        await ws.subscribe("like", CHANGES, {"table": "posts", "where": {"title": {op: pattern}}})
        await subscribed(ws)
        async with healthz_watch(server) as latencies:
            await post(server, INSERT_POST, {"title": "a" * 64})  # matched against the pattern
            await post(server, INSERT_POST, {"title": "b" * 63 + "!"})
            event = await change(ws, "like", timeout=10)
            await asyncio.sleep(0.5)
        assert_healthy(latencies)
        wanted = "a" * 64 if op == "_nlike" else "b" * 63 + "!"
        assert event["record"]["title"] == wanted


# -- item 8: `_in` with thousands of values is a hash lookup ------------------------


@sqlite_only
async def test_subscriptions_with_huge_in_lists_do_not_stall_the_server(
    serve: Any, library_url: str
) -> None:
    server = serve(database=library_url, limits=Limits(max_message_bytes=1 << 20))
    sockets = 6
    async with AsyncExitStackOf(server, sockets) as clients:
        for index, ws in enumerate(clients):
            # Ids far from the inserted ones, as numbers of both kinds, plus one title.
            ids: list[Any] = [10_000_000 + index * 20_000 + i for i in range(10_000)]
            ids[::2] = [float(i) for i in ids[::2]]
            where = {"_or": [{"id": {"_in": ids}}, {"title": {"_in": [f"wanted {index}"]}}]}
            await ws.subscribe("in", CHANGES, {"table": "posts", "where": where})
            await subscribed(ws)
        rows = [{"title": f"bulk {i}", "user_id": 1} for i in range(300)]
        bulk = "mutation($rows: [posts_insert_input!]!) { insert_posts(objects: $rows) { affected_rows } }"
        async with healthz_watch(server) as latencies:
            for _ in range(2):
                assert "errors" not in await post(server, bulk, {"rows": rows})
            await post(server, INSERT_POST, {"title": "wanted 3"})
            event = await change(clients[3], "in", timeout=20)
            await asyncio.sleep(0.3)
        assert_healthy(latencies)
        assert event["record"]["title"] == "wanted 3"
        created = await post(server, INSERT_POST, {"title": "x"})
        new_id = created["data"]["insert_posts_one"]["id"]
    # 1 == 1.0 == True across kinds, as SQL compares them: a float in the list finds an int id.
    async with GraphQLWS.open(server) as ws:
        await ws.subscribe("in", CHANGES, {"table": "posts", "where": {"id": {"_in": [float(new_id + 1)]}}})
        await subscribed(ws)
        await post(server, INSERT_POST, {"title": "found by a float"})
        assert (await change(ws, "in"))["record"]["id"] == new_id + 1


@asynccontextmanager
async def AsyncExitStackOf(server: LiveServer, count: int) -> AsyncIterator[list[GraphQLWS]]:
    """`count` acknowledged sockets to `server`."""
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(GraphQLWS.open(server, max_size=1 << 20))
            for _ in range(count)
        ]


# -- item 12: a deeply nested `where` is an error for that operation only ------------


def nested(depth: int, key: str) -> dict[str, Any]:
    """`depth` `_not`s (an even number keeps the filter) or `_and`s around `id > 0`."""
    where: dict[str, Any] = {"id": {"_gt": 0}}
    for _ in range(depth):
        where = {"_not": where} if key == "_not" else {"_and": [where]}
    return where


def nested_text(depth: int, key: str) -> str:
    """`nested(depth, key)` as JSON text (the json module cannot encode it that deep)."""
    if key == "_not":
        return '{"_not":' * depth + '{"id":{"_gt":0}}' + "}" * depth
    return '{"_and":[' * depth + '{"id":{"_gt":0}}' + "]}" * depth


async def subscribe_text(ws: GraphQLWS, op_id: str, where: str) -> None:
    """Subscribe to posts with a `where` given as JSON text."""
    kind = "start" if ws.legacy else "subscribe"
    head = orjson.dumps({"type": kind, "id": op_id}).decode()[:-1]
    query = orjson.dumps(CHANGES).decode()
    await ws.send(f'{head},"payload":{{"query":{query},"variables":{{"table":"posts","where":{where}}}}}}}')


@sqlite_only
@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
@pytest.mark.parametrize("depth", [300, 5000])
@pytest.mark.parametrize("key", ["_not", "_and"])
async def test_a_deeply_nested_where_gets_an_error_and_the_socket_lives(
    serve: Any, library_url: str, protocol: str, depth: int, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = serve(database=library_url)
    async with GraphQLWS.open(server, protocol=protocol) as ws:
        with caplog.at_level(logging.ERROR):
            await subscribe_text(ws, "deep", nested_text(depth, key))
            message = await ws.receive()
        assert error_codes(message) == ["validation-failed"], message
        assert message["id"] == "deep"
        assert f"more than {MAX_FILTER_DEPTH} levels" in str(message["payload"])
        # The same socket subscribes (and the same id may be used again) and gets events.
        await ws.subscribe("deep", CHANGES, {"table": "posts", "where": nested(10, key)})
        await subscribed(ws)
        await post(server, INSERT_POST, {"title": "after the deep one"})
        assert (await change(ws, "deep"))["record"]["title"] == "after the deep one"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


# A message nested deeper than orjson reads (1,024 levels) is read the slow way; it
# counts as one message per 16 KB started beyond the first towards the rate limit.
SLOW_BYTES_PER_TOKEN = 16_384


@sqlite_only
@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_deep_messages_as_fast_as_allowed_do_not_hold_the_event_loop(
    serve: Any, library_url: str, protocol: str
) -> None:
    server = serve(database=library_url)
    rate = Limits().max_messages_per_second
    where = nested_text(6_500, "_not")  # ~60 KB, 6,500 levels
    async with GraphQLWS.open(server, protocol=protocol) as ws:
        sent: list[str] = []
        # The client's own token bucket, as the server counts: full at the start.
        tokens, last = float(rate), time.monotonic()
        async with healthz_watch(server) as latencies:
            started = time.monotonic()
            while time.monotonic() - started < 3:
                op_id = f"deep-{len(sent)}"
                head = orjson.dumps({"type": "start" if ws.legacy else "subscribe", "id": op_id}).decode()[:-1]
                text = (f'{head},"payload":{{"query":{orjson.dumps(CHANGES).decode()},'
                        f'"variables":{{"table":"posts","where":{where}}}}}}}')
                cost = 1 + len(text.encode()) // SLOW_BYTES_PER_TOKEN
                now = time.monotonic()
                tokens, last = min(rate, tokens + (now - last) * rate), now
                if tokens < cost + 1:  # a token to spare for timer jitter
                    await asyncio.sleep((cost + 1 - tokens) / rate)
                    continue
                tokens -= cost
                await ws.send(text)
                sent.append(op_id)
            # Every operation gets its coded error, in order, on the same connection.
            for op_id in sent:
                message = await ws.receive(timeout=30)
                assert message["id"] == op_id, message
                assert error_codes(message) == ["validation-failed"], message
        assert_healthy(latencies)
        assert len(sent) >= 3 * rate // (1 + 60_000 // SLOW_BYTES_PER_TOKEN) * 0.8, len(sent)
        await ws.subscribe("after", CHANGES, {"table": "posts", "where": nested(10, "_not")})
        await subscribed(ws)
        await post(server, INSERT_POST, {"title": "after the deep flood"})
        assert (await change(ws, "after"))["record"]["title"] == "after the deep flood"


@sqlite_only
async def test_a_where_at_the_depth_limit_is_served_and_one_deeper_is_refused(
    serve: Any, library_url: str
) -> None:
    server = serve(database=library_url)
    # `{"id": {"_eq": 1}}` is two levels; an even number of `_not`s keeps the filter.
    at_limit = {"id": {"_eq": 1}}
    for _ in range(MAX_FILTER_DEPTH - 2):
        at_limit = {"_not": at_limit}
    too_deep = {"_not": {"_not": at_limit}}
    async with GraphQLWS.open(server) as ws:
        await ws.subscribe("edge", CHANGES, {"table": "posts", "where": too_deep})
        assert error_codes(await ws.receive()) == ["validation-failed"]
        await ws.subscribe("edge", CHANGES, {"table": "posts", "where": at_limit})
        await subscribed(ws)
        await post(server, "mutation { update_posts(where: {id: {_eq: 1}}, _set: {title: \"t\"}) { affected_rows } }")
        event = await change(ws, "edge")
        assert event["record"]["id"] == 1
    # The same rule for a query's `where` over HTTP.
    query = "query($w: posts_bool_exp) { posts(where: $w) { id } }"
    refused = await post(server, query, {"w": too_deep})
    assert refused["errors"][0]["extensions"]["code"] == "validation-failed", refused
    assert f"more than {MAX_FILTER_DEPTH} levels" in refused["errors"][0]["message"]


@sqlite_only
async def test_an_integer_beyond_64_bits_in_a_where_does_not_drop_the_socket(
    serve: Any, library_url: str
) -> None:
    server = serve(database=library_url)
    big = 10**30
    async with GraphQLWS.open(server) as ws:
        document = 'subscription { tableChanged(table: "posts", where: {id: {_lt: %d}}) { record } }'
        await ws.subscribe("big", document % big)
        await subscribed(ws)
        await post(server, INSERT_POST, {"title": "under a big bound"})
        assert (await change(ws, "big"))["record"]["title"] == "under a big bound"


# -- item 9: introspection counts, aliases are limited --------------------------------


def schema_aliases(count: int, salt: str = "") -> str:
    """`count` aliases of one `__schema` fragment: 2,000 make 49 KB."""
    fields = " ".join(f"{salt}a{i}: __schema {{ ...S }}" for i in range(count))
    return f"query {{ {fields} }} fragment S on __Schema {{ types {{ name kind fields {{ name }} }} }}"


@sqlite_only
async def test_thousands_of_introspection_aliases_are_refused_quickly(serve: Any, library_url: str) -> None:
    server = serve(database=library_url)
    async with healthz_watch(server) as latencies:
        started = time.monotonic()
        # Distinct documents, so that none is answered from the document cache.
        bodies = await asyncio.gather(*(post(server, schema_aliases(2000, f"x{n}")) for n in range(6)))
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.3)
    assert_healthy(latencies)
    assert elapsed < 5, elapsed
    for body in bodies:
        assert body.get("data") is None, str(body)[:300]
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "validation-failed"
        assert "the operation has 2000 aliases, more than the maximum of 100" in error["message"]


@sqlite_only
async def test_aliases_at_the_limit_pass_and_one_more_is_refused(serve: Any, library_url: str) -> None:
    server = serve(database=library_url, limits=Limits(max_aliases=10))
    ok = await post(server, "{ " + " ".join(f"u{i}: users_by_pk(id: 1) {{ name }}" for i in range(10)) + " }")
    assert ok["data"]["u9"] == {"name": "Alice"}, ok
    refused = await post(server, "{ " + " ".join(f"u{i}: users_by_pk(id: 1) {{ n: name }}" for i in range(6)) + " }")
    assert "the operation has 12 aliases, more than the maximum of 10" in refused["errors"][0]["message"]
    # A fragment's aliases count once for each place it is spread.
    fragment = " fragment F on users { x: id y: name z: email w: score }"
    at_limit = await post(server, "{ a: users { ...F } b: users { ...F } }" + fragment)  # 2 + 2 x 4
    assert "errors" not in at_limit, at_limit
    refused = await post(server, "{ a: users { ...F } b: users { ...F } c: users { id } }" + fragment)
    assert "the operation has 11 aliases, more than the maximum of 10" in refused["errors"][0]["message"]
    assert refused["errors"][0]["extensions"]["code"] == "validation-failed"


@sqlite_only
async def test_introspection_counts_towards_cost_and_depth(serve: Any, library_url: str) -> None:
    from graphql import get_introspection_query

    server = serve(database=library_url)
    standard = await post(server, get_introspection_query())
    assert "errors" not in standard and standard["data"]["__schema"]["queryType"]["name"] == "query_root"
    # 45 aliases of the whole introspection query cost 45 x 220 = 9,900; 46 are over 10,000.
    body = get_introspection_query().split("query IntrospectionQuery {", 1)[1]
    operation, fragments = body.split("\nfragment", 1)
    inner = operation.strip().removesuffix("}").strip().removeprefix("__schema")

    def aliased(count: int) -> str:
        fields = " ".join(f"s{i}: __schema {inner}" for i in range(count))
        return "query { " + fields + " }\nfragment" + fragments

    assert "errors" not in await post(server, aliased(45))
    refused = await post(server, aliased(46))
    assert "the query cost 10120 exceeds the maximum cost of 10000" in refused["errors"][0]["message"]


# -- item 10: the document caches are bounded in bytes ---------------------------------


@sqlite_only
async def test_the_document_caches_stay_within_their_bytes(serve: Any, library_url: str) -> None:
    bound = 2 * 1024 * 1024
    server = serve(database=library_url, limits=Limits(document_cache_bytes=bound))
    runtime = server.app.state.runtime
    documents = runtime.schemas.documents
    plans = runtime.query_plans._documents
    small = "{ users_by_pk(id: 1) { name } }"
    for n in range(40):
        # Valid, distinct, large queries (about 140 KB each as estimated): a comment and a filter.
        branches = ", ".join(f"{{id: {{_eq: {i}}}}}" for i in range(40))
        query = f"{{ users(where: {{_or: [{branches}]}}) {{ id n{n}: name }} }}\n# {'x' * 30_000}"
        body = await post(server, query)
        assert "errors" not in body, str(body)[:300]
        assert (await post(server, small))["data"]["users_by_pk"] == {"name": "Alice"}
        assert documents.bytes <= bound, documents.bytes
        assert plans.bytes <= bound, plans.bytes
    assert len(documents) >= 3  # some are kept: the bound is on bytes, not a refusal to cache
    assert (runtime.executor_for(anonymous()), small) in documents  # the one asked for again and again
    # A document estimated at more than an eighth of the bound is not kept at all.
    huge = "{ users(where: {id: {_in: [" + ", ".join(str(i) for i in range(3000)) + "]}}) { id } }"
    assert "errors" not in await post(server, huge)
    assert (runtime.executor_for(anonymous()), huge) not in documents
    assert documents.bytes <= bound


def anonymous() -> Any:
    from graph.auth import Session

    return Session(role="anonymous")
