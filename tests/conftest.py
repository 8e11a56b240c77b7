"""Shared fixtures: real databases (SQLite files, the PostgreSQL here) and real servers.

PostgreSQL is found at FORGEGRAPH_TEST_POSTGRES (default 127.0.0.1:5432, db
`test`), Redis at FORGEGRAPH_TEST_REDIS (default 127.0.0.1:6379); when one
does not answer, its tests skip with the reason, or fail under
FORGEGRAPH_REQUIRE_SERVICES=1 (as in CI).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import sqlalchemy as sa
import uvicorn
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from graph.app import create_app
from graph.delivery.wire import PROTOCOL
from tests import library

# `make mutate` runs the same property tests on every mutant: the same examples
# each time (so a mutant's verdict does not depend on luck) and no shrinking (a
# failure is all it needs, not the smallest one).
hypothesis.settings.register_profile(
    "mutate",
    derandomize=True,
    database=None,
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.reuse, hypothesis.Phase.generate],
)
if os.environ.get("FORGEGRAPH_HYPOTHESIS_PROFILE"):
    hypothesis.settings.load_profile(os.environ["FORGEGRAPH_HYPOTHESIS_PROFILE"])

POSTGRES = os.environ.get(
    "FORGEGRAPH_TEST_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS = os.environ.get("FORGEGRAPH_TEST_REDIS", "redis://127.0.0.1:6379")
REQUIRE_SERVICES = os.environ.get("FORGEGRAPH_REQUIRE_SERVICES") == "1"


def unavailable(service: str, reason: str) -> None:
    message = f"{service} is not available: {reason}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message} (FORGEGRAPH_REQUIRE_SERVICES=1)")
    pytest.skip(message)


# The only skips that stay skips under FORGEGRAPH_REQUIRE_SERVICES=1: a reason
# starting with one of these says the test does not apply here, not that
# something it needs is missing. Everything else that skips fails instead,
# so CI cannot go green over a test that never ran. Keep this list short.
ALLOWED_SKIPS = (
    "this parameter is for the other database",
)


def other_database(reason: str) -> None:
    """Skip a test parametrised over both databases whose point is only one of them."""
    pytest.skip(f"{ALLOWED_SKIPS[0]}: {reason}")


def _skip_reason(longrepr: object) -> str:
    # A skip's longrepr is (path, line, "Skipped: reason"); anything else is shown whole.
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _refuse_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    """Under FORGEGRAPH_REQUIRE_SERVICES=1, turn a skip whose reason is not allowed into a failure."""
    if not REQUIRE_SERVICES or not report.skipped or hasattr(report, "wasxfail"):
        return  # xfail is reported as skipped with `wasxfail`: an expectation, not a skip
    reason = _skip_reason(report.longrepr)
    if reason.startswith(ALLOWED_SKIPS):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"skipped without an allowed reason under FORGEGRAPH_REQUIRE_SERVICES=1: {reason}\n"
        f"(allowed reasons start with one of {ALLOWED_SKIPS}, see tests/conftest.py)"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Every phase: a skip in a fixture (setup), a skipif mark (setup) or the test body (call).
    report = yield
    _refuse_skip(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    # A module that skips as a whole (importorskip, allow_module_level=True).
    report = yield
    _refuse_skip(report)
    return report


async def _admin(sql: str) -> None:
    import asyncpg

    url = sa.make_url(POSTGRES)
    conn = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username or "postgres",
        password=url.password, database=url.database or "postgres", timeout=5,
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_available() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        asyncio.run(_admin("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - any failure means "not here"
        return f"{POSTGRES}: {type(error).__name__}: {error}"
    return None


@pytest.fixture
def fresh_postgres(postgres_available: str | None) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards."""
    if postgres_available:
        unavailable("PostgreSQL", postgres_available)
    name = f"fg_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def redis_url() -> str:
    """The URL of the Redis here (FORGEGRAPH_TEST_REDIS), skipping or failing as for PostgreSQL."""
    import redis

    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=2).ping()
    except Exception as error:  # noqa: BLE001 - any failure means "not here"
        unavailable("Redis", f"{REDIS}: {error}")
    return REDIS


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def library_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database holding tests/library.py's tables and rows, on the backend under test."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'library.db'}"
    else:
        url = request.getfixturevalue("fresh_postgres")
    asyncio.run(library.create(url))
    return url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])



OTHER_PROGRAM_WAIT_MS = 20_000


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as asyncpg.connect takes it (a program writing beside the server)."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def by_another_program(url: str, sql: str) -> None:
    """Run `sql` with the database's own command-line client, as another program would."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        # With a busy timeout, as a migration tool has (Python's sqlite3 waits 5 s): the bare
        # CLI gives up at once while the server writes, which no real migration does.
        command = ["sqlite3", "-cmd", f".timeout {OTHER_PROGRAM_WAIT_MS}", str(parsed.database), sql]
        env = None
    else:
        command = ["psql", "-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432),
                   "-U", parsed.username or "postgres", "-d", str(parsed.database),
                   "-v", "ON_ERROR_STOP=1", "-c", sql]
        env = {**os.environ, "PGPASSWORD": parsed.password or ""}
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, (sql, out, err)


@dataclass
class LiveServer:
    """uvicorn serving an app on a real socket, in a thread of this process."""

    app: Starlette
    ws: Any = PROTOCOL
    """What uvicorn runs for WebSockets: the wire, as `forgegraph serve` does."""
    url: str = ""
    statements: list[str] = field(default_factory=list)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    def start(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        limits = self.app.state.runtime.settings.limits
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="on", ws=self.ws,
            ws_max_size=limits.max_message_bytes,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        runtime = self.app.state.runtime
        sa.event.listen(runtime.engine.sync_engine, "before_cursor_execute", self._count)
        runtime.query_plans.backend.observers.append(self.statements.append)  # queries' connections
        runtime.driver.observers.append(self.statements.append)  # mutations' connections

    def _count(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.statements.append(statement)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=30)


@pytest.fixture
def serve() -> Iterator[Any]:
    """serve(database=..., **settings) -> LiveServer, stopped at the end of the test.

    `ws`: what uvicorn runs for WebSockets, when not the wire.
    """
    servers: list[LiveServer] = []

    def start(*, ws: Any = PROTOCOL, **settings: Any) -> LiveServer:
        server = LiveServer(create_app(**settings), ws)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


class GraphQL:
    """A small client for tests: POSTs documents, returns the decoded body."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=30, trust_env=False)

    def __call__(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The `data` of a request that must succeed."""
        body = self.raw(query, variables)
        assert "errors" not in body, body
        return body["data"]  # type: ignore[no-any-return]

    def raw(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.http.post("/graphql", json={"query": query, "variables": variables})
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def error_codes(self, query: str, variables: dict[str, Any] | None = None) -> list[str]:
        body = self.raw(query, variables)
        assert body.get("errors"), body
        return [e["extensions"]["code"] for e in body["errors"]]


@pytest.fixture
def gql(library_url: str, serve: Any) -> Iterator[GraphQL]:
    client = GraphQL(serve(database=library_url))
    yield client
    client.http.close()


TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"


class GraphQLWS:
    """A test client for GraphQL over WebSocket in either subprotocol, on the `websockets` library.

    Messages are plain dicts; `receive` fails the test instead of hanging when
    nothing arrives in time. The legacy protocol's keep-alives (`ka`) are skipped.
    """

    def __init__(self, connection: ClientConnection, protocol: str) -> None:
        self.connection = connection
        self.protocol = protocol
        self.legacy = protocol == LEGACY_WS
        self.next_type = "data" if self.legacy else "next"

    @classmethod
    @asynccontextmanager
    async def open(
        cls, server: LiveServer, *, protocol: str = TRANSPORT_WS, init: bool = True, **options: Any
    ) -> AsyncIterator[GraphQLWS]:
        """Connect to `server`'s /graphql (and acknowledge, unless `init=False`)."""
        url = "ws" + server.url.removeprefix("http") + "/graphql"
        options.setdefault("open_timeout", 10)
        options.setdefault("proxy", None)
        async with connect(url, subprotocols=[Subprotocol(protocol)], **options) as connection:
            client = cls(connection, protocol)
            if init:
                await client.init()
            yield client

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.connection.send(message if isinstance(message, str) else json.dumps(message))

    async def receive(self, timeout: float = 5) -> dict[str, Any]:
        while True:
            try:
                async with asyncio.timeout(timeout):
                    message: dict[str, Any] = json.loads(await self.connection.recv())
            except TimeoutError:
                pytest.fail(f"no message within {timeout} s")
            if message.get("type") != "ka":
                return message

    async def init(self, payload: dict[str, Any] | None = None) -> None:
        await self.send({"type": "connection_init", "payload": payload or {}})
        assert (await self.receive())["type"] == "connection_ack"

    async def subscribe(self, op_id: str, query: str, variables: dict[str, Any] | None = None) -> None:
        payload = {"query": query, "variables": variables or {}}
        await self.send({"type": "start" if self.legacy else "subscribe", "id": op_id, "payload": payload})

    async def complete(self, op_id: str) -> None:
        await self.send({"type": "stop" if self.legacy else "complete", "id": op_id})

    async def next(self, op_id: str | None = None, timeout: float = 5) -> dict[str, Any]:
        """The payload of the next message, which must be a result (of `op_id`, when given)."""
        message = await self.receive(timeout)
        assert message["type"] == self.next_type, message
        if op_id is not None:
            assert message["id"] == op_id, message
        return message["payload"]

    async def close_code(self, timeout: float = 5) -> int | None:
        """Read (and drop) messages until the server closes; the close code it sent."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self.connection.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None
        except TimeoutError:
            pytest.fail(f"the server did not close the connection within {timeout} s")


# -- one live server with an HTTP client (realtime tests) -------------------------


@dataclass
class Api:
    """One live server, with an HTTP client for writes and a way to open sockets."""

    server: LiveServer
    http: httpx.AsyncClient

    async def raw(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.http.post("/graphql", json={"query": query, "variables": variables})
        return response.json()

    async def __call__(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The `data` of a request that must succeed."""
        body = await self.raw(query, variables)
        assert "errors" not in body, body
        return body["data"]

    def ws(self, **options: Any) -> AbstractAsyncContextManager[GraphQLWS]:
        return GraphQLWS.open(self.server, **options)


Launch = Callable[..., Awaitable[Api]]


@pytest.fixture
async def launch(library_url: str, serve: Any) -> AsyncIterator[Launch]:
    """launch(**settings) -> Api on a server over the library database."""
    clients: list[httpx.AsyncClient] = []

    async def start(**settings: Any) -> Api:
        server = serve(database=library_url, **settings)
        http = httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False)
        clients.append(http)
        return Api(server, http)

    yield start
    for http in clients:
        await http.aclose()


@pytest.fixture
async def api(launch: Launch) -> Api:
    return await launch()
