"""The `forgegraph` command as users run it: a real process, real sockets."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TIMEOUT = 60


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORGEGRAPH_")}
    return {**env, **extra}


def forgegraph(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graph", *args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("forgegraph: error: "), lines[0]
    return lines[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_serve_rejects_an_invalid_database_url(tmp_path: Path) -> None:
    result = forgegraph("serve", "--database", "nonsense://x", "--port", "0", cwd=tmp_path)
    assert "nonsense" in one_error_line(result)


def test_serve_rejects_an_unreachable_sqlite_file(tmp_path: Path) -> None:
    url = "sqlite+aiosqlite:////nonexistent/dir/x.db"
    result = forgegraph("serve", "--database", url, "--port", "0", cwd=tmp_path)
    assert "/nonexistent/dir/x.db" in one_error_line(result)


@pytest.mark.parametrize(
    "url",
    ["sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:", "sqlite+aiosqlite:///file:m?mode=memory&cache=shared&uri=true"],
)
def test_serve_refuses_an_in_memory_sqlite_database(tmp_path: Path, url: str) -> None:
    """Each connection to one would be a database of its own: the reads would not see the writes."""
    result = forgegraph("serve", "--database", url, "--port", "0", cwd=tmp_path)
    line = one_error_line(result)
    assert "in-memory SQLite database" in line
    assert "use a file, e.g. sqlite+aiosqlite:///forgegraph.db" in line


def test_serve_names_a_port_in_use(tmp_path: Path, busy_port: int) -> None:
    result = forgegraph("serve", "--port", str(busy_port), cwd=tmp_path)
    line = one_error_line(result)
    assert f"port {busy_port}" in line
    assert "in use" in line
    assert not (tmp_path / "forgegraph.db").exists()  # failed before touching the database


def test_serve_rejects_a_missing_permissions_file(tmp_path: Path) -> None:
    result = forgegraph("serve", "--permissions", "/nonexistent.yaml", cwd=tmp_path)
    assert "/nonexistent.yaml" in one_error_line(result)


def test_flags_fall_back_to_environment_variables(tmp_path: Path) -> None:
    result = forgegraph("serve", cwd=tmp_path, FORGEGRAPH_PERMISSIONS="/nonexistent.yaml")
    assert "/nonexistent.yaml" in one_error_line(result)
    result = forgegraph("serve", cwd=tmp_path, FORGEGRAPH_PORT="not-a-port")
    assert "FORGEGRAPH_PORT" in one_error_line(result)


def test_bad_flag_values_are_one_line(tmp_path: Path) -> None:
    assert "--port" in one_error_line(forgegraph("serve", "--port", "x", cwd=tmp_path))
    assert "--workers" in one_error_line(forgegraph("serve", "--workers", "0", cwd=tmp_path))


def test_migrate_creates_the_demo_schema(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    first = forgegraph("migrate", "--database", f"sqlite+aiosqlite:///{db}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert len(first.stdout.strip().splitlines()) == 1
    assert "0001" in first.stdout
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"users", "posts", "comments"} <= tables

    again = forgegraph("migrate", "--database", f"sqlite+aiosqlite:///{db}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "already" in again.stdout


def test_migrate_reports_an_unreachable_database(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:1/test"
    assert "cannot connect" in one_error_line(
        forgegraph("migrate", "--database", url, cwd=tmp_path)
    )


def test_serve_the_demo_and_stop_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "graph", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the server prints its URLs once it listens
        assert first.strip() == f"http://127.0.0.1:{port}/graphql", first
        urls = [first.strip()] + [proc.stdout.readline().strip() for _ in range(4)]
        assert f"ws://127.0.0.1:{port}/realtime" in urls
        assert f"http://127.0.0.1:{port}/healthz" in urls

        body = wait_for_json(f"http://127.0.0.1:{port}/healthz")
        assert body == {"status": "ok"}
        assert (tmp_path / "forgegraph.db").exists()

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert proc.stderr is not None
        stderr = proc.stderr.read()
        assert "the API is open to every role" in stderr
        assert "Traceback" not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_for_json(url: str) -> object:
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# -- pure units of graph.cli ---------------------------------------------------


def test_a_flag_wins_over_its_environment_variable() -> None:
    from graph.cli import build_parser, resolve_settings

    namespace = build_parser().parse_args(["serve", "--port", "9001"])
    env = {"FORGEGRAPH_PORT": "9002", "FORGEGRAPH_JWT_SECRET": "s", "FORGEGRAPH_HOST": ""}
    settings = resolve_settings("serve", namespace, env)
    assert (settings.port, settings.jwt_secret, settings.host) == (9001, "s", "127.0.0.1")
    assert settings.uses_default_database


def test_endpoint_urls_bracket_ipv6_hosts() -> None:
    from graph.cli import endpoint_url

    assert endpoint_url("ws", "::1", 8000, "/graphql") == "ws://[::1]:8000/graphql"
    assert endpoint_url("http", "0.0.0.0", 80, "/healthz") == "http://0.0.0.0:80/healthz"


async def test_websocket_port_routes_root_to_realtime() -> None:
    from graph.cli import websocket_port_app

    seen: list[tuple[str, bytes]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["path"], scope["query_string"]))

    async def connect(path: str, port: int) -> None:
        scope = {"type": "websocket", "path": path, "query_string": b"token=t"}
        await dispatch({**scope, "server": ("127.0.0.1", port)}, receive, send)

    receive: Any = None
    send: Any = None
    dispatch = websocket_port_app(app, 9100)
    await connect("/", 9100)
    await connect("/", 8000)
    await connect("/graphql", 9100)
    assert seen == [("/realtime", b"token=t"), ("/", b"token=t"), ("/graphql", b"token=t")]
