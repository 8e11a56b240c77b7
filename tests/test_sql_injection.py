"""SQL injection, attempted through every place a client's text reaches SQL.

Column and operator names (as JSON keys of variables, where GraphQL's own
validation is the first line), filter values with `_eq`/`_like`/`_ilike`/
`_in`, ordering, table names (tableChanged, /realtime, SSE) and the `since`
cursor. Afterwards every table and a canary table the API never touches
hold exactly what they held, and no SQL statement the server ran contains
any of the client's text: values travel as bind parameters only. On SQLite
and PostgreSQL.

Where SQL is built as text in graph/ (all of it from reflected names):
graph/events/changelog.py (trigger DDL and log queries: table and column names
from reflection, quoted by `_quote`/`_literal`; values bound), graph/sql/*
(SQLAlchemy Core only, every value bound; names checked against the model
before they pick a column) and graph/dialect/sqlite.py (constant pragmas).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from graph.app import create_app
from tests.conftest import GraphQL, GraphQLWS, LiveServer
from tests.fuzzing import library_database
from tests.test_forgebase import RawClient, ws_url

DROP = "'; DROP TABLE canary; --"
PAYLOADS = [
    DROP,
    "\"; DROP TABLE canary; --",
    "x' OR '1'='1",
    "1; DELETE FROM posts",
    "%",
    "_",
    "\\",
    "\\%",
    "a\\",
    "'",
    "\"",
    "`",
    "]",
    "*",
    "?",
    ":p",
    "$1",
    "%s",
    "--",
    "/*",
    "\x00",
    "a\x00'; DROP TABLE canary; --",
]
# Text no legitimate statement of ours contains: seeing it in SQL means it was pasted in.
MARKERS = ("DROP TABLE", "; DELETE", "OR '1'='1", "canary")
TABLES = ("users", "posts", "comments", "tags", "audit_log")


class Site:
    def __init__(self, live: LiveServer, url: str) -> None:
        self.live = live
        self.url = url
        self.gql = GraphQL(live)

    def __repr__(self) -> str:
        return f"Site({self.url})"

    def counts(self) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            engine = create_async_engine(self.url)
            try:
                async with engine.connect() as conn:
                    out: dict[str, Any] = {
                        name: (await conn.execute(sa.text(f"SELECT count(*) FROM {name}"))).scalar()
                        for name in TABLES
                    }
                    out["canary"] = (await conn.execute(sa.text("SELECT id, secret FROM canary"))).all()
                    return out
            finally:
                await engine.dispose()

        return asyncio.run(read())


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def site(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Site]:
    directory: Path = tmp_path_factory.mktemp("injection")
    with library_database(directory, request.param) as url:

        async def plant_canary() -> None:
            engine = create_async_engine(url)
            try:
                async with engine.begin() as conn:
                    # No primary key: served read-only, with no triggers and no events.
                    await conn.execute(sa.text("CREATE TABLE canary (id INTEGER, secret TEXT)"))
                    await conn.execute(sa.text("INSERT INTO canary VALUES (1, 'tweety')"))
            finally:
                await engine.dispose()

        asyncio.run(plant_canary())
        live = LiveServer(create_app(database=url))
        live.start()
        site = Site(live, url)
        try:
            yield site
        finally:
            site.gql.http.close()
            live.stop()


@pytest.fixture
def intact(site: Site) -> Iterator[None]:
    """The test leaves every table as it found it, and no client text was pasted into SQL."""
    before = site.counts()
    assert before["canary"] == [(1, "tweety")]
    site.live.statements.clear()
    yield
    pasted = [s for s in site.live.statements if any(m.lower() in s.lower() for m in MARKERS)]
    assert pasted == []
    assert site.counts() == before


def codes(body: dict[str, Any]) -> list[str]:
    assert body.get("errors"), body
    return [e["extensions"]["code"] for e in body["errors"]]


# -- names: columns, operators, relationships ----------------------------------

NAMES = [
    "id\"; DROP TABLE canary; --",
    "title = title; DROP TABLE canary; --",
    "1=1) OR (1",
    "posts.id",
    "\"posts\".\"id\"",
    "id`",
    "id'",
    "id\x00",
    "_and\"",
    "user\"; DROP TABLE canary",
]


@pytest.mark.usefixtures("intact")
@pytest.mark.parametrize("name", NAMES)
def test_unknown_names_in_variables_are_refused(site: Site, name: str) -> None:
    gql = site.gql
    where_query = "query($w: posts_bool_exp) { posts(where: $w) { id } }"
    assert codes(gql.raw(where_query, {"w": {name: {"_eq": 1}}})) == ["validation-failed"]
    assert codes(gql.raw(where_query, {"w": {"id": {name: 1}}})) == ["validation-failed"]
    assert codes(gql.raw(where_query, {"w": {"_or": [{"user": {name: {"_eq": 1}}}]}})) == ["validation-failed"]
    order_query = "query($o: [posts_order_by!]) { posts(order_by: $o) { id } }"
    assert codes(gql.raw(order_query, {"o": [{name: "asc"}]})) == ["validation-failed"]
    assert codes(gql.raw(order_query, {"o": [{"user": {name: "asc"}}]})) == ["validation-failed"]
    set_query = "mutation($s: posts_set_input) { update_posts(where: {}, _set: $s) { affected_rows } }"
    assert codes(gql.raw(set_query, {"s": {name: "x"}})) == ["validation-failed"]
    insert_query = "mutation($o: [posts_insert_input!]!) { insert_posts(objects: $o) { affected_rows } }"
    assert codes(gql.raw(insert_query, {"o": [{"title": "t", "user_id": 1, name: "x"}]})) == ["validation-failed"]
    pk_query = "mutation($k: posts_pk_columns_input!) { update_posts_by_pk(pk_columns: $k, _set: {title: \"t\"}) { id } }"
    assert codes(gql.raw(pk_query, {"k": {"id": 1, name: 1}})) == ["validation-failed"]


@pytest.mark.usefixtures("intact")
@pytest.mark.parametrize("direction", ["asc; DROP TABLE canary", "ASC", "asc nulls first", "1", DROP])
def test_order_by_directions_are_an_enum(site: Site, direction: str) -> None:
    body = site.gql.raw("query($o: [posts_order_by!]) { posts(order_by: $o) { id } }", {"o": [{"title": direction}]})
    assert codes(body) == ["validation-failed"]


# -- values ---------------------------------------------------------------------


def titles(site: Site, where: dict[str, Any]) -> list[str]:
    body = site.gql.raw("query($w: posts_bool_exp) { posts(where: $w, order_by: {id: asc}) { title } }", {"w": where})
    if "errors" in body:
        # PostgreSQL text cannot hold NUL: refused as the client's error, nothing else.
        assert codes(body) == ["validation-failed"] and "\\u0000" in json.dumps(where), body
        return ["<refused>"]
    return [row["title"] for row in body["data"]["posts"]]


@pytest.mark.usefixtures("intact")
@pytest.mark.parametrize("payload", PAYLOADS)
def test_values_are_compared_as_values(site: Site, payload: str) -> None:
    nothing = [[], ["<refused>"]]
    assert titles(site, {"title": {"_eq": payload}}) in nothing
    assert titles(site, {"title": {"_in": [payload, payload]}}) in nothing
    assert titles(site, {"title": {"_gt": payload}, "id": {"_lt": 0}}) in nothing
    assert titles(site, {"body": {"_neq": payload}, "id": {"_eq": -1}}) in nothing
    for op in ("_like", "_ilike", "_nlike", "_nilike"):
        titles(site, {"title": {op: payload}})  # any answer but an error or a changed table
    assert titles(site, {"title": {"_nin": [payload]}, "id": {"_eq": 1}}) in (["Hello World"], ["<refused>"])


@pytest.mark.usefixtures("intact")
def test_patterns_are_patterns_and_escapes_are_literal(site: Site) -> None:
    assert titles(site, {"title": {"_like": "%"}}) == ["Hello World", "second post", "Third", "hello again"]
    assert titles(site, {"title": {"_like": "_"}}) == []
    assert titles(site, {"body": {"_like": "50\\% off\\_sale"}}) == ["Third"]
    assert titles(site, {"body": {"_like": "50\\%"}}) == []
    assert titles(site, {"title": {"_ilike": "HELLO%"}}) == ["Hello World", "hello again"]
    assert titles(site, {"title": {"_like": "%' OR '1'='1"}}) == []


@pytest.mark.usefixtures("intact")
@pytest.mark.parametrize("payload", [p for p in PAYLOADS if "\x00" not in p])
def test_payloads_are_stored_and_found_verbatim(site: Site, payload: str) -> None:
    gql = site.gql
    inserted = gql(
        "mutation($t: String!) { insert_posts_one(object: {title: $t, body: $t, user_id: 1}) { id title body } }",
        {"t": payload},
    )["insert_posts_one"]
    assert inserted["title"] == inserted["body"] == payload
    found = gql("query($t: String!) { posts(where: {title: {_eq: $t}}) { id } }", {"t": payload})["posts"]
    assert found == [{"id": inserted["id"]}]
    updated = gql(
        "mutation($t: String!) { update_posts(where: {title: {_eq: $t}}, _set: {body: $t}) { affected_rows } }",
        {"t": payload},
    )
    assert updated["update_posts"]["affected_rows"] == 1
    gql("mutation($id: Int!) { delete_posts_by_pk(id: $id) { id } }", {"id": inserted["id"]})


# -- table names and cursors, on every transport ------------------------------

TABLE_NAMES = ["posts; DROP TABLE canary; --", "posts\"", "canary\"; --", "posts' OR '1'='1", "\"canary\""]
CURSORS = ["1; DROP TABLE canary", "1 OR 1=1", "0x1", "1e3", "-1", "1'", "²", "9" * 30]
CHANGES = "subscription($t: String!, $s: String, $w: JSON) { tableChanged(table: $t, since: $s, where: $w) { type } }"


@pytest.mark.usefixtures("intact")
async def test_table_names_and_cursors_over_graphql_ws(site: Site) -> None:
    async with GraphQLWS.open(site.live) as ws:
        attempts: list[dict[str, Any]] = [{"t": name} for name in TABLE_NAMES]
        attempts += [{"t": "posts", "s": cursor} for cursor in CURSORS]
        attempts += [{"t": "posts", "w": {name: {"_eq": 1}}} for name in NAMES]
        attempts += [{"t": "posts", "w": {"id": {"_eq": DROP}}}]
        for n, variables in enumerate(attempts):
            await ws.subscribe(str(n), CHANGES, variables)
            message = await ws.receive()
            assert message["type"] == "error" and message["id"] == str(n), message
            assert message["payload"][0]["extensions"]["code"] in ("validation-failed", "invalid-cursor"), message


@pytest.mark.usefixtures("intact")
async def test_table_names_and_cursors_over_the_raw_protocol(site: Site) -> None:
    async with RawClient.open(ws_url(site.live)) as client:
        for name in [*TABLE_NAMES, "canary"]:
            assert "does not exist" in await client.error({"type": "subscribe", "table": name})
            assert "does not exist" in await client.error({"type": "unsubscribe", "table": name})
        for cursor in CURSORS:
            assert "cursor" in await client.error({"type": "subscribe", "table": "posts", "since": cursor})


@pytest.mark.usefixtures("intact")
def test_table_names_and_cursors_over_sse(site: Site) -> None:
    with httpx.Client(base_url=site.live.url, timeout=10, trust_env=False) as http:
        for name in TABLE_NAMES:
            response = http.get("/realtime/sse", params={"table": name})
            assert response.status_code == 400
            assert codes(response.json()) == ["validation-failed"]
        for cursor in CURSORS:
            response = http.get("/realtime/sse", params={"table": "posts", "since": cursor})
            assert response.status_code == 400, response.text
            assert codes(response.json()) == ["invalid-cursor"]
            if cursor.isascii():
                response = http.get("/realtime/sse", params={"table": "posts"}, headers={"last-event-id": cursor})
                assert codes(response.json()) == ["invalid-cursor"]
