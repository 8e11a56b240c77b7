"""Faults mid-stream: kill -9 a server, restart PostgreSQL, restart Redis (real processes).

In each, 500 mutations are made around the fault, each retried until it is
committed exactly once; a subscriber that loses its connection resumes with
`since: <the last cursor it received>`. Every committed insert must reach it
once, in commit order, with cursors strictly increasing across the fault.

These tests stop and start the PostgreSQL and Redis shared by the whole
suite (always starting them again); `-m "not faults"` skips them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from tests.conftest import free_port, unavailable
from tests.test_processes import (
    demo_postgres,
    demo_sqlite,
    start_redis,
    stop_redis,
    wait_for_health,
)

pytestmark = pytest.mark.faults

MUTATIONS = 500
RECOVERY_SECONDS = 30
SUBSCRIPTION = """subscription ($since: String) {
  tableChanged(table: "posts", since: $since) { type id cursor record }
}"""
INSERT = 'mutation ($title: String!) { insert_posts_one(object: {title: $title, user_id: 1}) { id } }'
FIND = 'query ($title: String!) { posts(where: {title: {_eq: $title}}) { id } }'
ALL_POSTS = "{ posts(order_by: {id: asc}) { id title } }"


class ServerProcess:
    """`forgegraph serve` as a child process on a fixed port, which can be killed and started again."""

    def __init__(self, database: str, broadcast: str, tmp_path: Path) -> None:
        self.args = [sys.executable, "-m", "graph", "serve", "--database", database,
                     "--port", str(free_port()), "--broadcast", broadcast]
        self.port = int(self.args[7])
        self.url = f"http://127.0.0.1:{self.port}"
        self.cwd = tmp_path
        self.log_path = tmp_path / f"serve-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FORGEGRAPH_")}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.args, cwd=self.cwd, env=env, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + RECOVERY_SECONDS
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start:\n{self.log()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no close frames, a transaction may be cut off mid-flight."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextlib.contextmanager
def serving(database: str, broadcast: str, tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(database, broadcast, tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()


class ResumingSubscriber:
    """A graphql-transport-ws client of `posts` events that resumes after a broken connection.

    It reconnects to `url` with `since` = the cursor of the last event it
    received, as a client should; every event it was ever sent is in `events`.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.events: list[dict[str, Any]] = []
        self.connections = 0
        self._up = time.monotonic()  # when it was last connected
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ResumingSubscriber:
        self._task = asyncio.create_task(self._run())
        waiter = asyncio.create_task(self._subscribed.wait())
        await asyncio.wait([self._task, waiter], timeout=10, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        self._check()
        assert self._subscribed.is_set(), "the subscriber did not subscribe within 10 s"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def _check(self) -> None:
        """Raise what ended the subscriber's task, if anything did."""
        if self._task is not None and self._task.done():
            self._task.result()
            raise AssertionError("the subscriber stopped")

    async def _run(self) -> None:
        while True:
            try:
                await self._connection()
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError):
                pass
            assert time.monotonic() - self._up < RECOVERY_SECONDS, "the subscriber could not reconnect"
            await asyncio.sleep(0.1)

    async def _connection(self) -> None:
        url = "ws" + self.url.removeprefix("http") + "/graphql"
        async with connect(url, subprotocols=[Subprotocol("graphql-transport-ws")],
                           proxy=None, open_timeout=5) as ws:
            await ws.send(json.dumps({"type": "connection_init"}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            # Without a cursor, what was committed while it was away would be lost.
            if self.connections:
                assert self.events, "the connection broke before the first event: cannot resume"
            since = self.events[-1]["cursor"] if self.events else None
            payload = {"query": SUBSCRIPTION, "variables": {"since": since}}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            await ws.send(json.dumps({"type": "ping"}))  # answered after the subscribe is handled
            self.connections += 1
            try:
                async for raw in ws:
                    message = json.loads(raw)
                    if message["type"] == "pong":
                        self._subscribed.set()
                        continue
                    assert message["type"] == "next", message
                    self.events.append(message["payload"]["data"]["tableChanged"])
            finally:
                self._up = time.monotonic()

    async def wait_for(self, count: int, timeout: float = 20, quiet: float = 0.7) -> list[dict[str, Any]]:
        """The events once `count` have arrived, after `quiet` seconds for any more (duplicates)."""
        deadline = time.monotonic() + timeout
        while len(self.events) < count:
            self._check()
            assert time.monotonic() < deadline, f"{len(self.events)} events of {count} arrived"
            await asyncio.sleep(0.02)
        await asyncio.sleep(quiet)
        self._check()
        return list(self.events)


class Writer:
    """Makes the mutations; each is retried through an outage until committed exactly once."""

    def __init__(self) -> None:
        self.http = httpx.AsyncClient(trust_env=False, timeout=10)
        self.failures = 0

    async def graphql(self, url: str, query: str, variables: dict[str, Any]) -> dict[str, Any] | None:
        """The data of a request that succeeded, None for one that did not (an outage)."""
        try:
            response = await self.http.post(url + "/graphql", json={"query": query, "variables": variables})
            body = response.json()
        except (httpx.HTTPError, ValueError):
            return None
        if response.status_code != 200 or body.get("errors"):
            return None
        return body["data"]  # type: ignore[no-any-return]

    async def insert(self, url: str, title: str) -> None:
        deadline = time.monotonic() + RECOVERY_SECONDS
        while await self.graphql(url, INSERT, {"title": title}) is None:
            self.failures += 1
            # It failed, but perhaps only after committing: look before trying again.
            while (found := await self.graphql(url, FIND, {"title": title})) is None:
                assert time.monotonic() < deadline, f"{title!r}: the server did not recover"
                await asyncio.sleep(0.05)
            if found["posts"]:
                return
            assert time.monotonic() < deadline, f"{title!r}: the server did not recover"

    async def committed(self, url: str) -> list[tuple[int, str]]:
        data = await self.graphql(url, ALL_POSTS, {})
        assert data is not None
        return [(p["id"], p["title"]) for p in data["posts"]]

    async def close(self) -> None:
        await self.http.aclose()


def check_stream(events: list[dict[str, Any]], committed: list[tuple[int, str]]) -> None:
    """Every committed insert arrived once, in commit order, and nothing else did."""
    assert [title for _, title in committed] == [f"t{i}" for i in range(MUTATIONS)]
    assert {e["type"] for e in events} == {"create"}
    assert [(e["id"], e["record"]["title"]) for e in events] == committed
    cursors = [int(e["cursor"]) for e in events]
    assert cursors == sorted(set(cursors)), "cursors not strictly increasing"


# -- kill -9 ------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def demo_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The demo schema with user 1, in a new SQLite file or PostgreSQL database."""
    if request.param == "sqlite":
        return demo_sqlite(tmp_path)
    return asyncio.run(demo_postgres(request.getfixturevalue("fresh_postgres"), tmp_path))


async def test_a_killed_server_restarts_and_its_subscriber_resumes(
    tmp_path: Path, demo_database: str
) -> None:
    database = demo_database
    writer = Writer()
    with serving(database, "memory://", tmp_path) as server:

        async def kill_and_restart() -> None:
            await asyncio.sleep(0.003)  # land in the middle of a mutation
            server.kill()
            await asyncio.to_thread(server.start)  # the same database and port

        try:
            async with ResumingSubscriber(server.url) as stream:
                fault = None
                for i in range(MUTATIONS):
                    if i == 150:
                        fault = asyncio.create_task(kill_and_restart())
                    await writer.insert(server.url, f"t{i}")
                assert fault is not None
                await fault
                committed = await writer.committed(server.url)
                events = await stream.wait_for(len(committed))
            assert stream.connections == 2, "the subscriber was not cut off by the kill"
            assert writer.failures > 0, "no mutation met the outage"
            check_stream(events, committed)
        except BaseException:
            print(server.log())
            raise
        finally:
            await writer.close()


# -- PostgreSQL restart -------------------------------------------------------


def postgres_cluster(action: str) -> None:
    """start, stop or restart the PostgreSQL here, as .ci/run starts it."""
    (version,) = os.listdir("/etc/postgresql")
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action],
                   check=True, capture_output=True, timeout=60)


def postgres_ready() -> bool:
    return subprocess.run(["pg_isready", "-h", "127.0.0.1"], capture_output=True).returncode == 0


def ensure_postgres() -> None:
    """PostgreSQL is up again for the tests that follow, whatever happened."""
    if not postgres_ready():
        with contextlib.suppress(subprocess.SubprocessError):
            postgres_cluster("start")
    deadline = time.monotonic() + 30
    while not postgres_ready():
        assert time.monotonic() < deadline, "PostgreSQL did not come back"
        time.sleep(0.2)


async def watch_health(url: str, seen: set[int], until: asyncio.Task[Any]) -> None:
    async with httpx.AsyncClient(trust_env=False, timeout=2) as http:
        while not until.done():
            with contextlib.suppress(httpx.HTTPError):
                seen.add((await http.get(url + "/healthz")).status_code)
            await asyncio.sleep(0.02)


async def test_a_postgres_restart_loses_no_event(tmp_path: Path, fresh_postgres: str) -> None:
    if not os.path.isdir("/etc/postgresql") or not postgres_ready():
        unavailable("a local PostgreSQL cluster to restart", "no /etc/postgresql or it does not answer (pg_ctlcluster)")
    database = await demo_postgres(fresh_postgres, tmp_path)
    writer = Writer()
    # The broker is PostgreSQL too (LISTEN/NOTIFY): the restart takes it away as well.
    with serving(database, database, tmp_path) as server:
        try:
            async with ResumingSubscriber(server.url) as stream:
                health: set[int] = set()
                for i in range(MUTATIONS):
                    if i == 200:
                        restart = asyncio.create_task(asyncio.to_thread(postgres_cluster, "restart"))
                        watcher = asyncio.create_task(watch_health(server.url, health, restart))
                    if i == 350 and 503 not in health:
                        # The restart was too quick to see: take PostgreSQL away for longer.
                        await asyncio.to_thread(postgres_cluster, "stop")
                        await wait_for_health(server.url, 503)
                        health.add(503)
                        await asyncio.to_thread(postgres_cluster, "start")
                    await writer.insert(server.url, f"t{i}")
                await restart
                await watcher
                await wait_for_health(server.url, 200)
                committed = await writer.committed(server.url)
                events = await stream.wait_for(len(committed))
            assert 503 in health
            check_stream(events, committed)
        except BaseException:
            print(server.log())
            raise
        finally:
            await writer.close()
            await asyncio.to_thread(ensure_postgres)


# -- Redis restart ------------------------------------------------------------


async def test_a_redis_restart_across_two_processes_loses_no_event(
    tmp_path: Path, redis_url: str
) -> None:
    database = demo_sqlite(tmp_path)
    writer = Writer()
    with serving(database, redis_url, tmp_path) as first, serving(database, redis_url, tmp_path) as second:
        try:
            async with (
                ResumingSubscriber(first.url) as one,
                ResumingSubscriber(second.url) as two,
            ):
                try:
                    for i in range(MUTATIONS):
                        if i == 150:
                            stop_redis(redis_url)
                            # While Redis is down both say so, and writes go on.
                            await wait_for_health(first.url, 503)
                            await wait_for_health(second.url, 503)
                        if i == 300:
                            # Meanwhile each process found the other's writes by polling.
                            await one.wait_for(300, quiet=0)
                            await two.wait_for(300, quiet=0)
                            start_redis(redis_url)
                        await writer.insert((first if i % 2 else second).url, f"t{i}")
                finally:
                    start_redis(redis_url)
                committed = await writer.committed(first.url)
                got_one, got_two = await one.wait_for(len(committed)), await two.wait_for(len(committed))
            # A broker outage costs latency, never a connection or an event.
            assert (one.connections, two.connections) == (1, 1)
            assert writer.failures == 0
            check_stream(got_one, committed)
            assert got_two == got_one
            await wait_for_health(first.url, 200)
            await wait_for_health(second.url, 200)
        except BaseException:
            print(first.log(), second.log())
            raise
        finally:
            await writer.close()
