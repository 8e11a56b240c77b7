"""The dependency seams: checked at import against what is installed, falling back with one warning.

A seam that does not fit is shown by importing the seam module again (under
another name, so the one the server uses stays as it is) while its check
sees a changed dependency; the fallback it picks then serves a real
subscription on a real server.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import httpx
import pytest
import uvicorn.protocols.websockets as uvicorn_websockets
from broadcaster import Broadcast
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from graph import _seams
from graph.delivery import _uvicorn_seam
from graph.delivery.socket import EventSocket
from graph.events import _broadcaster_seam, broker
from tests.conftest import GraphQLWS, LiveServer

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])
SUBSCRIPTION = 'subscription { tableChanged(table: "posts") { type record } }'


def import_again(module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """`module` imported afresh, as a process whose dependencies look as now patched would."""
    name = f"{module.__name__}_again"
    spec = importlib.util.spec_from_file_location(name, module.__file__)
    assert spec is not None and spec.loader is not None
    fresh = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, fresh)
    spec.loader.exec_module(fresh)
    return fresh


def seen_uses(monkeypatch: pytest.MonkeyPatch, change: Callable[[type, dict[str, set[str]]], None]) -> None:
    """Make the seams read a dependency's code as if `change` had been made to it."""
    real = _seams.attribute_uses

    def attribute_uses(cls: type) -> dict[str, set[str]]:
        uses = real(cls)
        change(cls, uses)
        return uses

    monkeypatch.setattr(_seams, "attribute_uses", attribute_uses)


def uvicorn_calls_qsize(cls: type, uses: dict[str, set[str]]) -> None:
    """A uvicorn whose protocol asks its receive queue for qsize(), which our Inbox has not."""
    if cls is WebSocketsSansIOProtocol:
        uses["queue"] = uses["queue"] | {"qsize"}


async def insert(server: LiveServer, body: str) -> None:
    mutation = 'mutation($b: String!) { insert_posts_one(object: {title: "s", body: $b, user_id: 1}) { id } }'
    async with httpx.AsyncClient(base_url=server.url, trust_env=False) as http:
        reply = await http.post("/graphql", json={"query": mutation, "variables": {"b": body}})
    assert reply.status_code == 200 and "errors" not in reply.json(), reply.text


def seam_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "does not fit" in r.getMessage()]


# -- reading a class's code --------------------------------------------------------


class Sample:
    def __init__(self) -> None:
        self.queue: list[int] = []
        self.flag = False

    def put(self, item: int) -> None:
        self.queue.append(item)

    async def later(self) -> None:
        def inner() -> int:
            return len(self.queue) + self.queue.count(0)

        self.flag = bool(inner())


def test_attribute_uses_reads_every_method_and_what_each_attribute_is_used_for() -> None:
    assert _seams.attribute_uses(Sample) == {"queue": {"append", "count"}, "flag": set()}


# -- uvicorn -----------------------------------------------------------------------


def test_the_installed_uvicorn_fits_the_seam() -> None:
    """Else every test would pass on the slow path, and serve would warn."""
    assert _uvicorn_seam.MISMATCH is None
    assert _uvicorn_seam.PROTOCOL is _uvicorn_seam.WireProtocol


def handle_connect_takes_more(monkeypatch: pytest.MonkeyPatch) -> None:
    def handle_connect(self: Any, event: Any, upgrade: Any) -> None: ...

    monkeypatch.setattr(WebSocketsSansIOProtocol, "handle_connect", handle_connect)


def conn_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    seen_uses(monkeypatch, lambda cls, uses: uses.pop("conn", None))


def calls_qsize(monkeypatch: pytest.MonkeyPatch) -> None:
    seen_uses(monkeypatch, uvicorn_calls_qsize)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (handle_connect_takes_more, "handle_connect(self, event)"),
        (conn_is_gone, "'conn'"),
        (calls_qsize, "queue.qsize"),
    ],
)
def test_a_change_to_what_the_seam_uses_is_named(
    monkeypatch: pytest.MonkeyPatch, change: Callable[[pytest.MonkeyPatch], None], named: str
) -> None:
    change(monkeypatch)
    reason = _uvicorn_seam.mismatch()
    assert reason is not None and named in reason


def test_without_the_sansio_protocol_uvicorn_picks_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    name = "uvicorn.protocols.websockets.websockets_sansio_impl"
    monkeypatch.setitem(sys.modules, name, None)  # an import of it fails
    monkeypatch.delattr(uvicorn_websockets, "websockets_sansio_impl")
    assert _uvicorn_seam.mismatch() == f"cannot import {name}"
    assert _uvicorn_seam.stock_protocol() == "auto"


@sqlite_only
async def test_a_uvicorn_that_does_not_fit_runs_its_stock_protocol_after_one_warning(
    library_url: str, serve: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="forgegraph.delivery")
    seen_uses(monkeypatch, uvicorn_calls_qsize)
    seam = import_again(_uvicorn_seam, monkeypatch)
    assert seam.MISMATCH is not None and "queue.qsize" in seam.MISMATCH
    assert seam.PROTOCOL is WebSocketsSansIOProtocol and not hasattr(seam, "WireProtocol")

    server = serve(database=library_url, ws=seam.PROTOCOL)
    async with GraphQLWS.open(server) as first, GraphQLWS.open(server) as second:
        for ws in (first, second):
            await ws.subscribe("1", SUBSCRIPTION)
            await ws.send({"type": "ping"})
            assert (await ws.receive())["type"] == "pong"  # messages are handled in order: joined
        sockets = [c for c in server.app.state.runtime.connections if isinstance(c, EventSocket)]
        assert len(sockets) == 2 and all(s.wire is None for s in sockets)  # sent through ASGI
        for body in ("a", "b" * 70_000):
            await insert(server, body)
        for ws in (first, second):
            for body in ("a", "b" * 70_000):
                change = (await ws.next("1"))["data"]["tableChanged"]
                assert change["type"] == "create" and change["record"]["body"] == body
    assert len(seam_warnings(caplog)) == 1
    assert "queue.qsize" in seam_warnings(caplog)[0]


# -- broadcaster -------------------------------------------------------------------


def test_the_installed_broadcaster_fits_the_seam() -> None:
    assert _broadcaster_seam.MISMATCH is None
    assert isinstance(_broadcaster_seam.backend_for("redis://127.0.0.1:6379"), _broadcaster_seam.RedisBackend)
    assert _broadcaster_seam.backend_for("memory://") is None


def broadcast_calls_more(cls: type, uses: dict[str, set[str]]) -> None:
    """A broadcaster whose Broadcast asks its backend for something RedisBackend has not."""
    if cls is Broadcast:
        uses["_backend"] = uses["_backend"] | {"next_batch"}


def takes_no_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    def __init__(self: Any, url: str) -> None: ...

    monkeypatch.setattr(Broadcast, "__init__", __init__)


def calls_more(monkeypatch: pytest.MonkeyPatch) -> None:
    seen_uses(monkeypatch, broadcast_calls_more)


def reads_events_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    seen_uses(monkeypatch, lambda cls, uses: uses.get("_backend", set()).discard("next_published"))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (takes_no_backend, "backend="),
        (calls_more, "next_batch"),
        (reads_events_otherwise, "next_published"),
    ],
)
def test_a_change_to_what_the_broadcaster_seam_uses_is_named(
    monkeypatch: pytest.MonkeyPatch, change: Callable[[pytest.MonkeyPatch], None], named: str
) -> None:
    change(monkeypatch)
    reason = _broadcaster_seam.mismatch()
    assert reason is not None and named in reason


@sqlite_only
async def test_a_broadcaster_that_does_not_fit_leaves_redis_to_its_own_backend_after_one_warning(
    library_url: str,
    serve: Any,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="forgegraph.realtime")
    seen_uses(monkeypatch, broadcast_calls_more)
    seam = import_again(_broadcaster_seam, monkeypatch)
    assert seam.MISMATCH is not None and "next_batch" in seam.MISMATCH
    assert not hasattr(seam, "RedisBackend") and seam.backend_for(redis_url) is None
    monkeypatch.setattr(broker, "backend_for", seam.backend_for)  # what a process importing it would use

    server = serve(database=library_url, broadcast=redis_url)
    async with GraphQLWS.open(server) as ws:
        await ws.subscribe("1", SUBSCRIPTION)
        await ws.send({"type": "ping"})
        assert (await ws.receive())["type"] == "pong"
        await insert(server, "through broadcaster's own backend")
        change = (await ws.next("1"))["data"]["tableChanged"]
        assert change["record"]["body"] == "through broadcaster's own backend"
    assert len(seam_warnings(caplog)) == 1
    assert "next_batch" in seam_warnings(caplog)[0]
