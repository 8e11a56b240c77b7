"""Shared fixtures: real databases (SQLite files, the PostgreSQL here) and real servers.

PostgreSQL is found at FORGEGRAPH_TEST_POSTGRES (default 127.0.0.1:5432, db
`test`); when it does not answer, its tests skip with the reason, or fail
under FORGEGRAPH_REQUIRE_SERVICES=1 (as in CI).
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from starlette.applications import Starlette

from graph.app import create_app
from tests import library

POSTGRES = os.environ.get(
    "FORGEGRAPH_TEST_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REQUIRE_SERVICES = os.environ.get("FORGEGRAPH_REQUIRE_SERVICES") == "1"


def unavailable(service: str, reason: str) -> None:
    message = f"{service} is not available: {reason}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message} (FORGEGRAPH_REQUIRE_SERVICES=1)")
    pytest.skip(message)


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


@dataclass
class LiveServer:
    """uvicorn serving an app on a real socket, in a thread of this process."""

    app: Starlette
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
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on")
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
        engine = self.app.state.runtime.engine.sync_engine
        sa.event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.statements.append(statement)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=30)


@pytest.fixture
def serve() -> Iterator[Any]:
    """serve(database=..., **settings) -> LiveServer, stopped at the end of the test."""
    servers: list[LiveServer] = []

    def start(**settings: Any) -> LiveServer:
        server = LiveServer(create_app(**settings))
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
