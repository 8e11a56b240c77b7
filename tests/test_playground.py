"""`GET /playground`: the built page, its freshness, and a real browser using it.

The browser tests run tests/browser/playground.mjs (playwright-core driving
Debian's chromium; `make test` installs both) against a live server, with every
request off this machine blocked and recorded.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

import graph.playground
from tests import library
from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "playground"
DIST = ROOT / "graph" / "playground_dist"
BROWSER = ROOT / "tests" / "browser"
CHROMIUM = os.environ.get("FORGEGRAPH_CHROMIUM", "/usr/bin/chromium")
# Screenshots of the page, kept for a person to look at (test-artifacts/ is ignored by git).
SCREENSHOT = Path(os.environ.get("FORGEGRAPH_PLAYGROUND_SCREENSHOT", ROOT / "test-artifacts" / "playground.png"))
REFUSED_SCREENSHOT = SCREENSHOT.with_name(f"{SCREENSHOT.stem}-refused-token{SCREENSHOT.suffix}")
SECRET = "playground-test-secret-of-32-bytes!!"

SUBSCRIPTION = """subscription PostsChanged {
  tableChanged(table: "posts") { type table id record cursor }
}"""
INSERT = {
    "query": "mutation ($o: posts_insert_input!) { insert_posts_one(object: $o) { id } }",
    "variables": {"o": {"title": "MARKER", "user_id": 1, "published": True}},
}


def sources_digest() -> str:
    """The sha256 that playground/vite.config.js writes into stamp.json (same recipe)."""
    names = ["index.html", "package.json", "package-lock.json", "vite.config.js"]
    trees = [SOURCES / "src", ROOT / "clients" / "js" / "src"]  # the live panel builds the SDK in

    def name(path: Path) -> str:
        return Path(os.path.relpath(path, SOURCES)).as_posix()

    paths = sorted(
        [SOURCES / name for name in names] + [p for tree in trees for p in tree.rglob("*") if p.is_file()],
        key=name,
    )
    whole = hashlib.sha256()
    for path in paths:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        whole.update(f"{name(path)}\0{digest}\n".encode())
    return whole.hexdigest()


def test_the_built_playground_matches_its_sources() -> None:
    stamp = DIST / "stamp.json"
    assert stamp.is_file(), "graph/playground_dist/ is not built: run `make playground`"
    assert json.loads(stamp.read_text())["sha256"] == sources_digest(), (
        "graph/playground_dist/ was built from other sources than playground/ holds now: "
        "run `make playground` and commit graph/playground_dist/"
    )


@pytest.fixture
def library_db(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'library.db'}"
    asyncio.run(library.create(url))
    return url


def client(serve: Any, database: str) -> httpx.Client:
    server = serve(database=database)
    return httpx.Client(base_url=server.url, timeout=30, trust_env=False)


def test_the_page_and_its_assets_are_served_locally(serve: Any, library_db: str) -> None:
    http = client(serve, library_db)
    for path in ("/playground", "/playground/"):
        page = http.get(path)
        assert page.status_code == 200 and page.headers["cache-control"] == "no-cache"
        assert "<title>forgegraph playground</title>" in page.text
    html = http.get("/playground").text
    assets = [part.split('"')[0] for part in html.split('="/playground/assets/')[1:]]
    assert assets, html
    assert "http://" not in html and "https://" not in html
    for name in assets:
        asset = http.get(f"/playground/assets/{name}")
        assert asset.status_code == 200, name
        assert "immutable" in asset.headers["cache-control"]
    assert http.get("/playground/assets/missing.js").status_code == 404


def test_an_unbuilt_playground_answers_503_with_the_fix(
    serve: Any, library_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(graph.playground, "DIST", tmp_path / "nothing")
    http = client(serve, library_db)
    page = http.get("/playground")
    assert page.status_code == 503
    assert "make playground" in page.text
    assert http.get("/playground/assets/index.js").status_code == 404


# -- in a browser ---------------------------------------------------------------


@pytest.fixture
def browser() -> None:
    """Skip (or fail, under FORGEGRAPH_REQUIRE_SERVICES=1) without node, chromium or npm ci."""
    if shutil.which("node") is None:
        unavailable("node", "not on PATH")
    if not os.access(CHROMIUM, os.X_OK):
        unavailable("chromium", f"{CHROMIUM} is missing (`apt-get install chromium`)")
    if not (BROWSER / "node_modules" / "playwright-core").is_dir():
        unavailable("playwright-core", "run `make browser-deps` (npm ci in tests/browser)")


def drive(server_url: str, **config: Any) -> dict[str, Any]:
    """Run playground.mjs and return what it saw in the page."""
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    config = {"url": server_url, "table": "posts", "query": SUBSCRIPTION, "insert": INSERT, **config}
    result = subprocess.run(
        ["node", "playground.mjs", json.dumps(config)],
        cwd=BROWSER, capture_output=True, text=True, timeout=180, check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    seen: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["blocked"] == [], f"the page asked for hosts off this machine: {seen['blocked']}"
    assert seen["local"] > 0
    return seen


@pytest.mark.usefixtures("browser")
def test_a_subscription_in_graphiql_and_the_live_panel_see_a_mutation(serve: Any, library_db: str) -> None:
    server = serve(database=library_db)
    seen = drive(server.url, screenshot=str(SCREENSHOT))
    assert seen.get("matched"), seen
    assert '"type": "create"' in seen["matched"]["pane"]
    assert "create" in seen["matched"]["rows"][0]
    assert seen["identity"] == "acting as anonymous"
    assert SCREENSHOT.stat().st_size > 0


# Only the token's role may see posts: an anonymous subscription would fail.
USERS_ONLY = """
tables:
  posts:
    select:
      user: {filter: {user_id: {_eq: X-User-Id}}, columns: "*"}
    insert:
      user: {check: {user_id: {_eq: X-User-Id}}, columns: "*"}
"""


@pytest.mark.usefixtures("browser")
def test_the_token_field_authenticates_the_subscription(
    serve: Any, library_db: str, tmp_path: Path
) -> None:
    permissions = tmp_path / "permissions.yaml"
    permissions.write_text(USERS_ONLY)
    server = serve(database=library_db, jwt_secret=SECRET, permissions=str(permissions))
    token = jwt.encode({"sub": "1", "role": "user"}, SECRET, algorithm="HS256")
    seen = drive(server.url, token=token, headers={"Authorization": f"Bearer {token}"})
    assert seen.get("matched"), seen
    assert seen["identity"] == "acting as role user, sub 1"


@pytest.mark.usefixtures("browser")
def test_a_refused_token_is_reported_readably(serve: Any, library_db: str) -> None:
    server = serve(database=library_db, jwt_secret=SECRET)
    forged = jwt.encode({"sub": "1", "role": "user"}, "some other secret, 32 bytes long", algorithm="HS256")
    seen = drive(server.url, token=forged, expectError=True, screenshot=str(REFUSED_SCREENSHOT))
    panel = " ".join(seen["panelErrors"])
    assert "invalid-jwt" in panel, panel
    assert "4403" in seen["response"] and "Forbidden" in seen["response"], seen["response"]


# -- live queries and streams in the result pane --------------------------------

LIVE_QUERY = "subscription Latest { posts(order_by: {id: desc}, limit: 3) { id title } }"
STREAM = (
    "subscription NewPosts {"
    " posts_stream(batch_size: 2, cursor: [{initial_value: {id: 0}, ordering: ASC}]) { id title } }"
)


def insert_post(title: str) -> dict[str, Any]:
    return {
        "query": "mutation ($t: String!) { insert_posts_one(object: {title: $t, user_id: 1}) { id } }",
        "variables": {"t": title},
    }


def shown(pane: str) -> Any:
    """The result pane's text as JSON (every result here fits the pane's height)."""
    return json.loads(pane)


@pytest.mark.usefixtures("browser")
def test_a_live_query_shows_its_result_then_each_new_one(serve: Any, library_db: str) -> None:
    server = serve(database=library_db)
    rename = {
        "query": 'mutation { update_posts_by_pk(pk_columns: {id: 4}, _set: {title: "renamed live"}) { id } }',
    }
    seen = drive(
        # Run the moment it is typed: the page must go by the text, not by
        # what GraphiQL last read of it (the default `TableChanged` operation).
        server.url, query=LIVE_QUERY, docs=True, complete="subscription { posts_s", runAtOnce=True,
        steps=[
            {"until": ['"posts"', '"hello again"']},
            {"mutation": insert_post("live row"), "until": ['"live row"']},
            {"mutation": rename, "until": ['"renamed live"']},
        ],
    )
    # The docs and autocomplete come from introspection: every new field is there.
    fields = set(seen["subscriptionFields"])
    assert {"tableChanged", "posts", "posts_by_pk", "posts_aggregate", "posts_stream"} <= fields, fields
    assert "posts_stream" in seen["suggestions"], seen["suggestions"]
    first, inserted, renamed = (shown(pane)["data"]["posts"] for pane in seen["panes"])
    assert first == [{"id": 4, "title": "hello again"}, {"id": 3, "title": "Third"},
                     {"id": 2, "title": "second post"}]
    assert inserted == [{"id": 5, "title": "live row"}, {"id": 4, "title": "hello again"},
                        {"id": 3, "title": "Third"}]
    assert renamed == [{"id": 5, "title": "live row"}, {"id": 4, "title": "renamed live"},
                       {"id": 3, "title": "Third"}]
    # Nothing else was shown on the way: each pane is a whole result of the query.
    assert all(set(shown(pane)["data"]) == {"posts"} for pane in seen["history"]), seen["history"]


@pytest.mark.usefixtures("browser")
def test_a_stream_shows_each_batch_and_then_a_new_row(serve: Any, library_db: str) -> None:
    server = serve(database=library_db)
    seen = drive(
        server.url, query=STREAM, runAtOnce=True,
        steps=[
            # The catch-up ends on posts 3 and 4 (batches of two after id 0).
            {"until": ['"posts_stream"', '"hello again"']},
            {"mutation": insert_post("streamed row"), "until": ['"streamed row"']},
        ],
    )
    caught_up, new = (shown(pane)["data"]["posts_stream"] for pane in seen["panes"])
    assert caught_up == [{"id": 3, "title": "Third"}, {"id": 4, "title": "hello again"}]
    assert new == [{"id": 5, "title": "streamed row"}]
    # Each `next` replaces the pane; those it showed came in cursor order, two at most.
    batches = [shown(pane)["data"]["posts_stream"] for pane in seen["history"]]
    ids = [row["id"] for batch in batches for row in batch]
    assert ids == sorted(set(ids)) and all(1 <= len(batch) <= 2 for batch in batches), batches
