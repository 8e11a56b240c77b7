"""GET /metrics: the Prometheus figures, scraped and parsed while real clients are connected."""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed

from graph.config import Limits
from tests.conftest import LEGACY_WS, TRANSPORT_WS, GraphQLWS, LiveServer
from tests.test_forgebase import RawClient, ws_url
from tests.test_realtime import change, subscribe
from tests.test_sse import EventReader, events

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])
TRANSPORTS = (TRANSPORT_WS, LEGACY_WS, "forgebase", "sse")
INSERT = 'mutation($t: String!) { insert_posts_one(object: {title: $t, user_id: 1}) { id } }'

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(server: LiveServer) -> Samples:
    """Every sample of GET /metrics, keyed by (name, sorted labels)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def by_transport(samples: Samples, name: str) -> dict[str, float]:
    return {
        dict(labels)["transport"]: value
        for (sample, labels), value in samples.items()
        if sample == name
    }


def requests(samples: Samples, operation: str, status: str) -> float:
    key = ("forgegraph_http_request_duration_seconds_count", (("operation", operation), ("status", status)))
    return samples.get(key, 0.0)


async def post(server: LiveServer, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as http:
        return await http.post("/graphql", json=body)


@asynccontextmanager
async def one_of_each(server: LiveServer) -> AsyncIterator[tuple[list[GraphQLWS], RawClient, EventReader]]:
    """A `posts` subscriber on every transport, each joined before this yields."""
    async with AsyncExitStack() as stack:
        graphql = []
        for protocol in (TRANSPORT_WS, LEGACY_WS):
            ws = await stack.enter_async_context(GraphQLWS.open(server, protocol=protocol))
            await subscribe(ws, "1", "posts")
            graphql.append(ws)
        raw = await stack.enter_async_context(RawClient.open(ws_url(server)))
        await raw.subscribe("posts")
        # The SSE stream joins before its response headers go out.
        reader = await stack.enter_async_context(events(server, "posts"))
        yield graphql, raw, reader


@sqlite_only
async def test_connections_subscriptions_events_and_requests_are_counted(
    library_url: str, serve: Any
) -> None:
    server = serve(database=library_url)
    before = await scrape(server)
    assert by_transport(before, "forgegraph_connections") == dict.fromkeys(TRANSPORTS, 0)
    assert before[("forgegraph_events_captured_total", ())] == 0

    async with one_of_each(server) as (graphql, raw, reader):
        live = await scrape(server)
        assert by_transport(live, "forgegraph_connections") == dict.fromkeys(TRANSPORTS, 1)
        assert by_transport(live, "forgegraph_subscriptions") == dict.fromkeys(TRANSPORTS, 1)

        titles = ["a", "b", "c"]
        for title in titles:
            assert (await post(server, {"query": INSERT, "variables": {"t": title}})).status_code == 200
        for ws in graphql:
            assert [(await change(ws, "1"))["record"]["title"] for _ in titles] == titles
        assert [(await raw.receive())["record"]["title"] for _ in titles] == titles
        assert [(await reader.message())[1]["record"]["title"] for _ in titles] == titles

        await post(server, {"query": "{ posts(limit: 1) { id } }"})
        await post(server, {"query": "{ nope }"})  # invalid: never runs, so "other" (200 as JSON)
        await post(server, {"variables": {}})  # no query at all: a 400
        after = await scrape(server)

    assert after[("forgegraph_events_captured_total", ())] == len(titles)
    assert by_transport(after, "forgegraph_events_delivered_total") == dict.fromkeys(TRANSPORTS, len(titles))
    # memory:// reaches only this process, so there is nobody to publish a wake-up to.
    assert after[("forgegraph_events_published_total", ())] == 0
    assert by_transport(after, "forgegraph_send_queue_depth") == dict.fromkeys(TRANSPORTS, 0)
    assert by_transport(after, "forgegraph_slow_consumers_closed_total") == dict.fromkeys(TRANSPORTS, 0)
    assert requests(after, "mutation", "200") == len(titles)
    assert requests(after, "query", "200") == 1
    assert requests(after, "other", "200") == 1
    assert requests(after, "other", "400") == 1
    assert ("process_resident_memory_bytes", ()) in after

    # Connections and subscriptions are counted from the live ones: they go back to 0.
    for _ in range(100):
        gone = await scrape(server)
        if by_transport(gone, "forgegraph_connections") == dict.fromkeys(TRANSPORTS, 0):
            break
        await asyncio.sleep(0.05)
    assert by_transport(gone, "forgegraph_connections") == dict.fromkeys(TRANSPORTS, 0)
    assert by_transport(gone, "forgegraph_subscriptions") == dict.fromkeys(TRANSPORTS, 0)


@sqlite_only
async def test_protocol_messages_are_not_counted_as_events(library_url: str, serve: Any) -> None:
    server = serve(database=library_url)
    async with GraphQLWS.open(server) as ws:
        await subscribe(ws, "1", "posts")  # an ack, a pong: no event
        await ws.subscribe("2", "{ __typename }")  # a result over the socket: no event either
        assert (await ws.next("2"))["data"] == {"__typename": "query_root"}
        samples = await scrape(server)
    assert by_transport(samples, "forgegraph_events_delivered_total")[TRANSPORT_WS] == 0


@sqlite_only
async def test_each_app_counts_for_itself(library_url: str, serve: Any) -> None:
    one, two = serve(database=library_url), serve(database=library_url)
    await post(one, {"query": "{ posts(limit: 1) { id } }"})
    assert requests(await scrape(one), "query", "200") == 1
    assert requests(await scrape(two), "query", "200") == 0


@sqlite_only
async def test_a_wake_up_published_to_the_broker_is_counted(
    library_url: str, serve: Any, redis_url: str
) -> None:
    server = serve(database=library_url, broadcast=redis_url)
    async with GraphQLWS.open(server) as ws:
        await subscribe(ws, "1", "posts")
        await post(server, {"query": INSERT, "variables": {"t": "woken"}})
        assert (await change(ws, "1"))["record"]["title"] == "woken"
    for _ in range(100):  # published right after the event is dispatched
        samples = await scrape(server)
        if samples[("forgegraph_events_published_total", ())] >= 1:
            break
        await asyncio.sleep(0.05)
    assert samples[("forgegraph_events_published_total", ())] >= 1
    assert samples[("forgegraph_events_captured_total", ())] == 1


@sqlite_only
async def test_a_slow_consumer_closed_is_counted(library_url: str, serve: Any) -> None:
    # As tests/test_realtime.py provokes one: a client that stops reading big events.
    server = serve(database=library_url, limits=Limits(send_queue_size=20))
    stalled_sock = socket.socket()
    stalled_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled_sock.connect(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
    body = os.urandom(96 * 1024).hex()
    options = {"sock": stalled_sock, "compression": None, "max_queue": 1, "max_size": None}
    async with GraphQLWS.open(server, **options) as stalled:
        await subscribe(stalled, "1", "posts")
        for n in range(60):
            response = await post(server, {
                "query": "mutation($b: String!, $t: String!) { insert_posts_one(object: "
                         "{title: $t, body: $b, user_id: 1}) { id } }",
                "variables": {"b": body, "t": f"big-{n}"},
            })
            assert response.status_code == 200
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                async with asyncio.timeout(10):
                    await stalled.connection.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    samples = await scrape(server)
    slow = by_transport(samples, "forgegraph_slow_consumers_closed_total")
    assert slow == {**dict.fromkeys(TRANSPORTS, 0), TRANSPORT_WS: 1}
    delivered = by_transport(samples, "forgegraph_events_delivered_total")[TRANSPORT_WS]
    assert delivered < 60  # what reached the socket before it was closed, not what was dropped


@sqlite_only
async def test_send_queue_depth_counts_frames_a_stalled_client_has_not_taken(
    library_url: str, serve: Any
) -> None:
    """Two clients that stop reading: their frames wait in their send queues (big enough not to close)."""
    server = serve(database=library_url, limits=Limits(send_queue_size=1_000))
    body = os.urandom(96 * 1024).hex()
    sent = 60  # 11 MiB of frames: more than the socket buffers on both sides take
    async with AsyncExitStack() as stack:
        stalled = []
        for _ in range(2):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
            options = {"sock": sock, "compression": None, "max_queue": 1, "max_size": None}
            ws = await stack.enter_async_context(GraphQLWS.open(server, **options))
            await subscribe(ws, "1", "posts")
            stalled.append(ws)
        for n in range(sent):
            response = await post(server, {
                "query": "mutation($b: String!, $t: String!) { insert_posts_one(object: "
                         "{title: $t, body: $b, user_id: 1}) { id } }",
                "variables": {"b": body, "t": f"big-{n}"},
            })
            assert response.status_code == 200
        for _ in range(100):  # the events reach the queues right after their commit
            samples = await scrape(server)
            if 0 < by_transport(samples, "forgegraph_send_queue_depth_max")[TRANSPORT_WS] < by_transport(
                samples, "forgegraph_send_queue_depth"
            )[TRANSPORT_WS]:  # both queues hold frames
                break
            await asyncio.sleep(0.05)
        depth = by_transport(samples, "forgegraph_send_queue_depth")
        deepest = by_transport(samples, "forgegraph_send_queue_depth_max")
        delivered = by_transport(samples, "forgegraph_events_delivered_total")[TRANSPORT_WS]
        # Some went out before the sockets filled up, a batch is stuck in each write, the rest wait.
        assert deepest[TRANSPORT_WS] > 0 and delivered + depth[TRANSPORT_WS] < 2 * sent, (depth, delivered)
        # The sum over both connections, and the fullest one: at least half of it, less than all.
        assert depth[TRANSPORT_WS] / 2 <= deepest[TRANSPORT_WS] < depth[TRANSPORT_WS], (depth, deepest)
        others = dict.fromkeys(set(TRANSPORTS) - {TRANSPORT_WS}, 0)
        assert {k: depth[k] for k in others} == {k: deepest[k] for k in others} == others
        # Reading on empties the queues; the gauges fall back to 0.
        for ws in stalled:
            titles = [(await change(ws, "1"))["record"]["title"] for _ in range(sent)]
            assert titles == [f"big-{n}" for n in range(sent)]
        samples = await scrape(server)
        assert by_transport(samples, "forgegraph_send_queue_depth") == dict.fromkeys(TRANSPORTS, 0)
        assert by_transport(samples, "forgegraph_send_queue_depth_max") == dict.fromkeys(TRANSPORTS, 0)


@sqlite_only
async def test_every_metric_is_documented_in_the_readme(library_url: str, serve: Any) -> None:
    section = (Path(__file__).resolve().parent.parent / "README.md").read_text().split("\n## Metrics\n", 1)[1]
    table = section.split("\n## ", 1)[0]
    samples = await scrape(serve(database=library_url))
    names = {re.sub("_(count|sum|bucket|created)$", "", name) for name, _ in samples}  # a histogram's parts
    missing = sorted(
        name for name in names if name.startswith("forgegraph_") and f"`{name}`" not in table
    )
    assert missing == []
