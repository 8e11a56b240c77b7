"""Several `forgegraph serve` processes on one database, sharing events (real processes).

Each process reads the change log itself; the broker (Redis, or PostgreSQL's
NOTIFY) only wakes the others. A mutation on either process must reach the
subscribers of both, once and in cursor order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from collections.abc import Set as AbstractSet
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from graph.config import Capture
from tests.conftest import asyncpg_dsn, free_port

SUBSCRIPTION = 'subscription { tableChanged(table: "posts") { type id cursor } }'


@contextmanager
def serve_process(database: str, broadcast: str, tmp_path: Path, *extra: str) -> Iterator[str]:
    with serve_supervised(database, broadcast, tmp_path, *extra) as (url, _process):
        yield url


@contextmanager
def serve_supervised(
    database: str, broadcast: str, tmp_path: Path, *extra: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`forgegraph serve` in a process (and session) of its own, once healthy: its URL and process."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORGEGRAPH_")}
    log = tmp_path / f"serve-{port}.log"
    with log.open("wb") as output:
        # Output to a file, not a pipe: a server that never gets healthy must
        # not block the test on reading from a process that is still running.
        process = subprocess.Popen(
            [sys.executable, "-m", "graph", "serve", "--database", database, "--port", str(port),
             "--broadcast", broadcast, *extra],
            cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield url, process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@asynccontextmanager
async def subscriber(url: str) -> AsyncIterator[ClientConnection]:
    async with connect(url.replace("http", "ws", 1) + "/graphql", subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                       proxy=None) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}}))
        await ws.send(json.dumps({"type": "ping"}))  # answered after the subscribe is handled
        assert json.loads(await ws.recv())["type"] == "pong"
        yield ws


async def events(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    out = []
    async with asyncio.timeout(15):
        while len(out) < count:
            message = json.loads(await ws.recv())
            assert message["type"] == "next", message
            out.append(message["payload"]["data"]["tableChanged"])
    return out


async def insert(url: str, title: str) -> int:
    async with httpx.AsyncClient(trust_env=False) as http:
        body = {"query": f'mutation {{ insert_posts_one(object: {{title: "{title}", user_id: 1}}) {{ id }} }}'}
        response = await http.post(url + "/graphql", json=body)
        assert "errors" not in response.json(), response.text
        return int(response.json()["data"]["insert_posts_one"]["id"])


async def check_two_processes(first: str, second: str) -> None:
    async with subscriber(first) as one, subscriber(second) as two:
        for i in range(10):
            await insert(first if i % 2 == 0 else second, f"p{i}")
        got_one, got_two = await events(one, 10), await events(two, 10)
        assert got_one == got_two
        cursors = [int(e["cursor"]) for e in got_one]
        assert cursors == sorted(cursors) and len(set(cursors)) == 10
        assert {e["type"] for e in got_one} == {"create"}
        # Once each: a marker written after them is the very next event on both sockets,
        # so no duplicate of the ten came before it (events arrive in cursor order).
        marker = await insert(second, "marker")
        for ws in (one, two):
            (event,) = await events(ws, 1)
            assert (event["type"], int(event["id"])) == ("create", marker)


def demo_sqlite(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    subprocess.run([sys.executable, "-m", "graph", "migrate", "--database", url], check=True,
                   capture_output=True, cwd=tmp_path)
    import sqlite3

    with sqlite3.connect(tmp_path / "shared.db") as db:
        db.execute("INSERT INTO users (id, name) VALUES (1, 'u')")
    return url


async def demo_postgres(url: str, tmp_path: Path) -> str:
    """Migrate the empty database at `url` to the demo schema, with user 1."""
    subprocess.run([sys.executable, "-m", "graph", "migrate", "--database", url],
                   check=True, capture_output=True, cwd=tmp_path)
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("INSERT INTO users (name) VALUES ('u')")
        assert await conn.fetchval("SELECT min(id) FROM users") == 1
    finally:
        await conn.close()
    return url


async def test_two_processes_on_sqlite_share_events_through_redis(tmp_path: Path, redis_url: str) -> None:
    url = demo_sqlite(tmp_path)
    with serve_process(url, redis_url, tmp_path) as first, serve_process(url, redis_url, tmp_path) as second:
        await check_two_processes(first, second)


@pytest.mark.parametrize("broker", ["redis", "postgres"])
async def test_two_processes_on_postgres_share_events(
    tmp_path: Path, fresh_postgres: str, redis_url: str, broker: str
) -> None:
    await demo_postgres(fresh_postgres, tmp_path)
    broadcast = redis_url if broker == "redis" else fresh_postgres
    with (
        serve_process(fresh_postgres, broadcast, tmp_path) as first,
        serve_process(fresh_postgres, broadcast, tmp_path) as second,
    ):
        await check_two_processes(first, second)




async def test_the_broker_wakes_other_processes_at_once(
    tmp_path: Path, redis_url: str, serve: Any
) -> None:
    # With polling all but off, only the broker's wake-up can bring B the change A made.
    url = demo_sqlite(tmp_path)
    slow = Capture(poll_interval=30)
    first = serve(database=url, broadcast=redis_url, capture=slow)
    second = serve(database=url, broadcast=redis_url, capture=slow)
    async with subscriber(second.url) as ws:
        started = time.monotonic()
        await insert(first.url, "woken")
        (event,) = await events(ws, 1)
    assert event["type"] == "create"
    assert time.monotonic() - started < 10  # far below the 30 s poll


async def test_on_postgres_the_writing_process_wakes_the_others_and_other_programs_notify(
    tmp_path: Path, fresh_postgres: str, serve: Any
) -> None:
    """The capture trigger NOTIFYs for other programs' writes only: a write through forgegraph
    wakes the other processes by its process's publish (the cursor), not by the trigger (an
    empty payload). With polling all but off, only these wake-ups can bring the changes."""
    import asyncpg

    from graph.events.changelog import NOTIFY_CHANNEL

    url = await demo_postgres(fresh_postgres, tmp_path)
    dsn = asyncpg_dsn(url)
    slow = Capture(poll_interval=30)
    first = serve(database=url, broadcast=url, capture=slow)
    second = serve(database=url, broadcast=url, capture=slow)
    heard: list[str] = []
    listener, writer = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        await listener.add_listener(NOTIFY_CHANNEL, lambda *message: heard.append(message[3]))
        async with subscriber(second.url) as ws:
            started = time.monotonic()
            inserted = await insert(first.url, "through forgegraph")
            (event,) = await events(ws, 1)
            assert (event["type"], int(event["id"])) == ("create", inserted)
            assert time.monotonic() - started < 10  # far below the 30 s poll
            async with asyncio.timeout(10):
                while str(event["cursor"]) not in heard:  # the first process's publish
                    await asyncio.sleep(0.05)
            assert "" not in heard  # no NOTIFY from the trigger for forgegraph's own write

            outside = await writer.fetchval("INSERT INTO posts (title, user_id) VALUES ('outside', 1) RETURNING id")
            (event,) = await events(ws, 1)
            assert (event["type"], int(event["id"])) == ("create", outside)
            assert "" in heard  # another program's write: the trigger's NOTIFY woke the processes
    finally:
        await listener.close()
        await writer.close()


def stop_redis(url: str) -> None:
    import redis

    with contextlib.suppress(redis.ConnectionError):
        redis.Redis.from_url(url).shutdown(nosave=True)


def start_redis(url: str) -> None:
    """Start the Redis server again, as .ci/run starts it."""
    import redis

    subprocess.run(
        ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379",
         "--save", "", "--appendonly", "no"],
        check=True, capture_output=True,
    )
    deadline = time.monotonic() + 15
    while True:
        try:
            redis.Redis.from_url(url, socket_connect_timeout=1).ping()
            return
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "Redis did not come back"
            time.sleep(0.2)


async def wait_for_health(url: str, status: int) -> None:
    deadline = time.monotonic() + 20
    async with httpx.AsyncClient(trust_env=False) as http:
        while (await http.get(url + "/healthz")).status_code != status:
            assert time.monotonic() < deadline, f"/healthz never answered {status}"
            await asyncio.sleep(0.2)


async def test_workers_share_one_port_and_every_event(tmp_path: Path, redis_url: str) -> None:
    url = demo_sqlite(tmp_path)
    with serve_process(url, redis_url, tmp_path, "--workers", "2") as server:
        async with contextlib.AsyncExitStack() as stack:
            # The kernel spreads connections over both workers.
            sockets = [await stack.enter_async_context(subscriber(server)) for _ in range(8)]
            for i in range(20):
                await insert(server, f"w{i}")
            streams = [await events(ws, 20) for ws in sockets]
        assert all(stream == streams[0] for stream in streams)
        cursors = [int(e["cursor"]) for e in streams[0]]
        assert cursors == sorted(cursors) and len(set(cursors)) == 20


def children(pid: int) -> set[int]:
    """The live child processes of `pid`, as `ps --ppid` lists them (read from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
        state, ppid = stat.rpartition(")")[2].split()[:2]
        if int(ppid) == pid and state != "Z":
            found.add(int(entry.name))
    return found


def answering_process(server_port: int, client_port: int, candidates: set[int]) -> int | None:
    """Which of `candidates` holds the server end of the TCP connection from `client_port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for row in Path(table).read_text().splitlines()[1:]:
                fields = row.split()
                local, remote, inode = fields[1], fields[2], fields[9]
                if int(local.rsplit(":", 1)[1], 16) == server_port and int(remote.rsplit(":", 1)[1], 16) == client_port:
                    inodes.add(f"socket:[{inode}]")
    for pid in candidates:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return pid
    return None


def who_answers(url: str, workers: set[int]) -> int | None:
    """Ask /healthz on a new connection; the worker process that answered it (None: not one of `workers`)."""
    server_port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", server_port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.1 200"), "/healthz did not answer 200"
        # Still open (keep-alive): the worker that accepted it holds the server end.
        return answering_process(server_port, sock.getsockname()[1], workers)


def wait_for_workers(supervisor: int, count: int, without: AbstractSet[int] = frozenset()) -> set[int]:
    """The `count` children of `supervisor` once there are that many, none of them in `without`."""
    deadline = time.monotonic() + 20
    while True:
        found = children(supervisor)
        if len(found) == count and not found & without:
            return found
        assert time.monotonic() < deadline, f"workers {found}, expected {count} new ones besides {without}"
        time.sleep(0.1)


def answered_by_each(url: str, workers: set[int]) -> None:
    """New connections until every one of `workers` has answered one (the kernel picks who accepts)."""
    answered: set[int | None] = set()
    deadline = time.monotonic() + 20
    while not workers <= answered:
        assert time.monotonic() < deadline, f"only {answered} of workers {workers} answered"
        answered.add(who_answers(url, workers))
    assert None not in answered, "a connection was answered by a process that is not a worker"


def test_workers_start_n_processes_and_replace_a_dead_one(tmp_path: Path, redis_url: str) -> None:
    url = demo_sqlite(tmp_path)
    with serve_supervised(url, redis_url, tmp_path, "--workers", "2") as (server, process):
        workers = wait_for_workers(process.pid, 2)
        answered_by_each(server, workers)

        killed = min(workers)
        os.kill(killed, signal.SIGKILL)
        # The survivor answers while the supervisor replaces the dead worker.
        with httpx.Client(trust_env=False, timeout=5) as http:
            deadline = time.monotonic() + 20
            while True:
                assert http.get(server + "/healthz").status_code == 200
                now = children(process.pid)
                if len(now) == 2 and killed not in now:
                    break
                assert time.monotonic() < deadline, f"worker {killed} was not replaced: {now}"
                time.sleep(0.1)
        replaced = wait_for_workers(process.pid, 2, without={killed})
        assert len(replaced & workers) == 1  # one survivor, one new process
        answered_by_each(server, replaced)
        assert process.poll() is None
