"""The README's "Your own Python" example, run exactly as printed, on both databases."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from graph.migrate import migrate
from tests.conftest import GraphQLWS

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Your own Python"


def blocks(language: str) -> list[str]:
    """The section's fenced blocks in `language`, in order."""
    text = README.read_text()
    start = text.index(SECTION)
    section = text[start : text.index("\n## ", start + 1)]
    return re.findall(rf"```{language}\n(.*?)```", section, re.S)


@pytest.fixture
def demo_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database with the demo schema (migrations/), empty."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}" if backend == "sqlite" else request.getfixturevalue("fresh_postgres")
    asyncio.run(migrate(url))
    return url


async def test_the_readme_example_runs_as_printed(
    demo_url: str, serve: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [code] = blocks("python")
    name = code.splitlines()[0].removeprefix("# ").removesuffix(".py")
    (tmp_path / f"{name}.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    mutation, subscription = blocks("graphql")
    [answer] = blocks("json")
    [grants] = blocks("yaml")[-1:]
    server = serve(database=demo_url, extend=f"{name}:schema")
    async with httpx.AsyncClient(base_url=server.url, trust_env=False) as http:
        async with GraphQLWS.open(server) as ws:
            await ws.subscribe("c", subscription)
            await ws.send({"type": "ping"})
            assert await ws.receive() == {"type": "pong"}
            response = await http.post("/graphql", json={"query": mutation})
            assert response.json() == json.loads(answer)
            event = (await ws.next("c"))["data"]["tableChanged"]
        assert (event["type"], event["record"]["body"]) == ("create", "now live")
        assert (await http.post("/graphql", json={"query": "{ whoami }"})).json() == {
            "data": {"whoami": "anonymous None"}
        }
    # The permissions example is a valid file for this schema.
    rules = tmp_path / "rules.yaml"
    rules.write_text(grants)
    granted = serve(database=demo_url, extend=f"{name}:schema", permissions=str(rules))
    async with httpx.AsyncClient(base_url=granted.url, trust_env=False) as http:
        assert (await http.post("/graphql", json={"query": "{ whoami }"})).json() == {
            "data": {"whoami": "anonymous None"}
        }
        denied = (await http.post("/graphql", json={"query": 'mutation { publish(post_id: 1, note: "x") { id } }'})).json()
        assert denied["errors"][0]["extensions"]["code"] == "validation-failed"

