"""The README's Apollo Client and urql examples, run in Node against a live server.

Each example is taken from README.md (the fences ```js apollo and ```js urql),
given only this server's URL in place of 127.0.0.1:8000, and started with
`node` inside tests/clients, whose node_modules `make node-deps` installs.
The examples print JSON lines; the tests assert them exactly. The server has
tests/test_auth.py's permissions and secret, so the token the example sends
over HTTP and in `connectionParams` decides what it sees.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from tests.conftest import LiveServer, unavailable
from tests.test_auth import PERMISSIONS, SECRET, USER_1_TOKEN, USER_2_TOKEN

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = ROOT / "tests" / "clients"
README_ORIGIN = "127.0.0.1:8000"
CLIENT_NAMES = ["apollo", "urql"]
POST = "id title body published user_id editor_id rating published_at"

# Some fields of tests/library.py's posts: user 1 wrote 1 and 2 (a draft), 3 and 4 are published.
USER_1_SEES = [(1, "Hello World"), (2, "second post"), (3, "Third"), (4, "hello again")]

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])


def readme_snippet(client: str) -> str:
    """The one fenced block in README.md whose info string is `js <client>`."""
    blocks = re.findall(rf"^```js {client}\n(.*?)^```$", (ROOT / "README.md").read_text(), re.M | re.S)
    assert len(blocks) == 1, f"README.md should hold exactly one ```js {client} block"
    return str(blocks[0])


@pytest.fixture(scope="session")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        unavailable("Node.js", "`node` is not on PATH")
    if not (CLIENTS / "node_modules").is_dir():
        unavailable("tests/clients/node_modules", "run `make node-deps` (npm ci in tests/clients)")
    return str(path)


class Snippet:
    """A README example running in node: its stdout, one JSON value per line, as it arrives."""

    def __init__(self, process: subprocess.Popen[str], stderr: Path) -> None:
        self.process = process
        self.stderr = stderr
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(process.stdout,), daemon=True).start()

    def _read(self, stdout: IO[str] | None) -> None:
        assert stdout is not None
        for line in stdout:
            self._lines.put(line)
        self._lines.put(None)  # end of output: the process is ending

    def next(self, timeout: float = 15) -> Any:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"the example printed no (further) line within {timeout} s; stderr:\n{self.stderr.read_text()}")
        if line is None:
            self.process.wait(timeout=10)
            pytest.fail(f"the example exited ({self.process.returncode}); stderr:\n{self.stderr.read_text()}")
        return json.loads(line)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextmanager
def running(
    node: str, client: str, server: LiveServer, tmp_path: Path, **env: str
) -> Iterator[Snippet]:
    """Run README's `client` example against `server`, with `env` (TOKEN, SINCE) set."""
    text = readme_snippet(client)
    for scheme in ("http", "ws"):
        origin = f"{scheme}://{README_ORIGIN}/graphql"
        assert origin in text, f"the {client} example should use {origin}"
        text = text.replace(origin, scheme + server.url.removeprefix("http") + "/graphql")
    # Inside tests/clients, so that `import "graphql-ws"` finds its node_modules.
    script = CLIENTS / f".snippet-{client}-{uuid.uuid4().hex[:8]}.mjs"
    script.write_text(text)
    stderr = tmp_path / f"{script.stem}.stderr"
    environment = {k: v for k, v in os.environ.items() if k not in ("TOKEN", "SINCE")} | env
    try:
        with stderr.open("w") as err:
            process = subprocess.Popen(
                [node, script.name], cwd=CLIENTS, env=environment,
                stdout=subprocess.PIPE, stderr=err, text=True,
            )
        snippet = Snippet(process, stderr)
        try:
            yield snippet
        finally:
            snippet.stop()
    finally:
        script.unlink(missing_ok=True)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except RuntimeError:
            pass  # the server's thread changed the hub while we counted; count again
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.02)


def subscriptions(server: LiveServer) -> int:
    return int(server.app.state.runtime.realtime.hub.subscriptions)


def subscribed(server: LiveServer, snippet: Snippet) -> None:
    """Wait until the example's subscription has joined, so that no change races it."""
    wait_for(lambda: snippet.process.poll() is not None or subscriptions(server) == 1, "the example subscribed")
    assert snippet.process.poll() is None, snippet.stderr.read_text()


class Api:
    """GraphQL over HTTP as one user (a bearer token), for the changes the examples watch."""

    def __init__(self, server: LiveServer) -> None:
        self.http = httpx.Client(base_url=server.url, timeout=30, trust_env=False)

    def __call__(self, token: str, query: str) -> dict[str, Any]:
        response = self.http.post(
            "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"}
        )
        body = response.json()
        assert response.status_code == 200 and "errors" not in body, body
        return body["data"]  # type: ignore[no-any-return]

    def insert(self, token: str, values: str) -> dict[str, Any]:
        return self(token, f"mutation {{ insert_posts_one(object: {values}) {{ {POST} }} }}")["insert_posts_one"]  # type: ignore[no-any-return]

    def update(self, token: str, post_id: int, values: str) -> dict[str, Any]:
        query = f"mutation {{ update_posts_by_pk(pk_columns: {{id: {post_id}}}, _set: {values}) {{ {POST} }} }}"
        return self(token, query)["update_posts_by_pk"]  # type: ignore[no-any-return]

    def delete(self, token: str, post_id: int) -> None:
        assert self(token, f"mutation {{ delete_posts_by_pk(id: {post_id}) {{ id }} }}")["delete_posts_by_pk"]


@pytest.fixture
def server(library_url: str, serve: Any, tmp_path: Path) -> LiveServer:
    permissions = tmp_path / "permissions.yaml"
    permissions.write_text(PERMISSIONS)
    return serve(database=library_url, permissions=str(permissions), jwt_secret=SECRET)  # type: ignore[no-any-return]


@pytest.fixture
def api(server: LiveServer) -> Iterator[Api]:
    client = Api(server)
    yield client
    client.http.close()


def typed(client: str, typename: str, value: dict[str, Any]) -> dict[str, Any]:
    """`value` as `client` prints it: Apollo adds `__typename` to every selection."""
    return {**value, "__typename": typename} if client == "apollo" else value


def posts_line(client: str, posts: list[tuple[int, str]]) -> dict[str, Any]:
    return {"posts": [typed(client, "posts", {"id": i, "title": t}) for i, t in posts]}


def check_events(client: str, lines: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """`lines` are `expected` (type, table, id, record) in order, with increasing cursors."""
    cursors = [line.pop("cursor") for line in lines]
    assert lines == [typed(client, "TableChange", {"table": "posts", **e}) for e in expected]
    assert all(re.fullmatch(r"[0-9]+", c) for c in cursors), cursors
    assert [int(c) for c in cursors] == sorted({int(c) for c in cursors}), cursors


@sqlite_only
@pytest.mark.parametrize("client", CLIENT_NAMES)
def test_the_example_prints_each_change_the_token_may_see(
    client: str, node: str, server: LiveServer, api: Api, tmp_path: Path
) -> None:
    with running(node, client, server, tmp_path, TOKEN=USER_1_TOKEN) as snippet:
        # The query went over HTTP with the token: user 1's draft is there (anonymous sees 1, 3, 4).
        assert snippet.next() == posts_line(client, USER_1_SEES)
        subscribed(server, snippet)

        created = api.insert(USER_1_TOKEN, '{title: "From the client test", body: "b"}')
        api.insert(USER_2_TOKEN, '{title: "Bob draft"}')  # not visible to user 1: no event
        updated = api.update(USER_1_TOKEN, created["id"], '{title: "Renamed", published: true}')
        api.delete(USER_1_TOKEN, created["id"])

        lines = [snippet.next() for _ in range(3)]
    # Whole records and a draft's events: the WebSocket carried the token too.
    check_events(client, lines, [
        {"type": "create", "id": created["id"], "record": created},
        {"type": "update", "id": created["id"], "record": updated},
        {"type": "delete", "id": created["id"], "record": None},
    ])


@sqlite_only
@pytest.mark.parametrize("client", CLIENT_NAMES)
def test_since_replays_what_the_example_missed(
    client: str, node: str, server: LiveServer, api: Api, tmp_path: Path
) -> None:
    with running(node, client, server, tmp_path, TOKEN=USER_1_TOKEN) as snippet:
        snippet.next()
        subscribed(server, snippet)
        created = api.insert(USER_1_TOKEN, '{title: "Before the restart"}')
        first = snippet.next()
    wait_for(lambda: subscriptions(server) == 0, "the stopped example's subscription ended")

    updated = api.update(USER_1_TOKEN, created["id"], '{body: "while away"}')
    api.delete(USER_1_TOKEN, created["id"])

    with running(node, client, server, tmp_path, TOKEN=USER_1_TOKEN, SINCE=first["cursor"]) as snippet:
        assert snippet.next() == posts_line(client, USER_1_SEES)
        missed = [snippet.next(), snippet.next()]
        subscribed(server, snippet)
        live = api.insert(USER_1_TOKEN, '{title: "After the restart"}')
        now = snippet.next()
    check_events(client, [first, *missed, now], [
        {"type": "create", "id": created["id"], "record": created},
        {"type": "update", "id": created["id"], "record": updated},
        {"type": "delete", "id": created["id"], "record": None},
        {"type": "create", "id": live["id"], "record": live},
    ])
