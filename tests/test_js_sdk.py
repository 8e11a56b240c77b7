"""clients/js, the TypeScript SDK: its node tests (`node --test clients/js/test/`) against live servers.

This starts what they run against, and fails when node fails: a server with
tests/test_auth.py's permissions, JWT secret and admin secret over the demo
database, another without permissions for the README example, and a demo
SQLite file for the test that runs `forgegraph serve` itself, SIGKILLs it and
starts it again. clients/js/node_modules comes from `make test` (npm ci when
clients/js/package-lock.json changes). The chromium test drives the browser
bundle, dist/forgegraph.browser.js, through tests/browser/sdk.mjs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from graph import create_app
from tests.conftest import LiveServer, unavailable
from tests.test_auth import ADMIN_SECRET, PERMISSIONS, SECRET
from tests.test_processes import demo_sqlite

ROOT = Path(__file__).resolve().parents[1]
SDK = ROOT / "clients" / "js"
BROWSER = ROOT / "tests" / "browser"
CHROMIUM = os.environ.get("FORGEGRAPH_CHROMIUM", "/usr/bin/chromium")


def node_or_skip() -> str:
    path = shutil.which("node")
    if path is None:
        unavailable("Node.js", "`node` is not on PATH")
    if not (SDK / "node_modules" / "graphql-ws").is_dir():
        unavailable("clients/js/node_modules", "run `make sdk-deps` (npm ci in clients/js)")
    return str(path)


def demo(tmp_path: Path, name: str) -> tuple[str, Path]:
    directory = tmp_path / name
    directory.mkdir()
    return demo_sqlite(directory), directory / "shared.db"


def test_the_node_tests_pass(serve: Any, tmp_path: Path) -> None:
    node = node_or_skip()
    permissions = tmp_path / "permissions.yaml"
    permissions.write_text(PERMISSIONS)
    guarded = serve(
        database=demo(tmp_path, "guarded")[0], permissions=str(permissions),
        jwt_secret=SECRET, admin_secret=ADMIN_SECRET,
    )
    open_server = serve(database=demo(tmp_path, "open")[0])
    _, restart_file = demo(tmp_path, "restart")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORGEGRAPH_SDK_")} | {
        "FORGEGRAPH_SDK_URL": guarded.url,
        "FORGEGRAPH_SDK_OPEN_URL": open_server.url,
        "FORGEGRAPH_SDK_JWT_SECRET": SECRET,
        "FORGEGRAPH_SDK_ADMIN_SECRET": ADMIN_SECRET,
        "FORGEGRAPH_SDK_PYTHON": sys.executable,
        "FORGEGRAPH_SDK_ROOT": str(ROOT),
        "FORGEGRAPH_SDK_RESTART_DB": str(restart_file),
    }
    result = subprocess.run(
        [node, "--test", "--test-concurrency=1", *sorted(str(p.relative_to(SDK)) for p in SDK.glob("test/*.test.js"))],
        cwd=SDK, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"node --test failed:\n{result.stdout}\n{result.stderr}"
    assert "# fail 0" in result.stdout and "# pass 0" not in result.stdout, result.stdout


def test_the_committed_dist_is_built_from_src() -> None:
    """dist/ is what users run: it must be the build of src/ as committed (`npm run build`)."""
    node_or_skip()
    build = SDK / "node_modules" / ".bin"
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"forgegraph-sdk-dist-{os.getpid()}"
    shutil.rmtree(out, ignore_errors=True)
    try:
        subprocess.run([str(build / "tsc"), "-p", "tsconfig.json", "--outDir", str(out)], cwd=SDK, check=True)
        subprocess.run(
            [str(build / "esbuild"), "src/index.ts", "--bundle", "--format=esm", "--platform=browser",
             "--target=es2020", f"--outfile={out / 'forgegraph.browser.js'}", "--log-level=warning"],
            cwd=SDK, check=True,
        )
        built = sorted(p.name for p in out.iterdir())
        assert built == sorted(p.name for p in (SDK / "dist").iterdir())
        for name in built:
            assert (out / name).read_text() == (SDK / "dist" / name).read_text(), f"dist/{name} is stale: npm run build"
    finally:
        shutil.rmtree(out, ignore_errors=True)


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>forgegraph SDK</title></head><body>
<script type="module">
import { createClient } from "./forgegraph.browser.js";
const db = createClient(location.origin, { adminSecret: ADMIN_SECRET });
window.events = [];
window.errors = [];
const unsubscribe = db.table("posts").subscribe((event) => window.events.push(event), {
  where: { title: { _eq: "from the browser test" } },
  onError: (error) => window.errors.push(error.code + ": " + error.message),
});
window.db = db;
await unsubscribe.ready;
window.ready = true;
</script></body></html>
"""


def test_the_browser_bundle_subscribes_in_chromium(tmp_path: Path) -> None:
    if shutil.which("node") is None:
        unavailable("node", "not on PATH")
    if not Path(CHROMIUM).exists():
        unavailable("chromium", f"{CHROMIUM} is missing (`apt-get install chromium`)")
    if not (BROWSER / "node_modules" / "playwright-core").is_dir():
        unavailable("tests/browser/node_modules", "run `make browser-deps`")
    permissions = tmp_path / "permissions.yaml"
    permissions.write_text(PERMISSIONS)
    app = create_app(
        database=demo(tmp_path, "browser")[0], permissions=str(permissions),
        jwt_secret=SECRET, admin_secret=ADMIN_SECRET,
    )
    # The page and the bundle, served from the server's own origin by a route of this test only.
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(SDK / "dist" / "forgegraph.browser.js", site)
    (site / "index.html").write_text(PAGE.replace("ADMIN_SECRET", json.dumps(ADMIN_SECRET)))
    app.router.routes.insert(0, Mount("/sdk-test", StaticFiles(directory=site, html=True)))
    server = LiveServer(app)
    server.start()
    try:
        result = subprocess.run(
            ["node", "sdk.mjs", json.dumps({"url": server.url})],
            cwd=BROWSER, capture_output=True, text=True, timeout=180,
        )
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert "error" not in seen, seen
    assert seen["blocked"] == [], seen
    assert seen["console"] == [], seen
    (event,) = seen["events"]
    assert event["type"] == "create" and event["table"] == "posts"
    assert event["record"]["title"] == "from the browser test" and event["cursor"].isdigit()
    # The row as the page's client selects it back: the event's id is its primary key.
    assert seen["selected"] == [{"id": event["id"], "title": "from the browser test"}]
