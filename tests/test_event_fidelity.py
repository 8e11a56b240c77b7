"""An event's record is, byte for byte, what a query of that row answers at that moment (issue 12, item 3).

A property test over every column type, on SQLite and PostgreSQL: rows are
created, updated and deleted through the API and through another program's
connection (on PostgreSQL one whose session writes floats with 15 digits and
times in another zone), a graphql-transport-ws subscriber receives each
change, and the row is queried over HTTP around it. `record` must equal the
query after the change and `old_record` the query before it, value by value
as serialized JSON. FORGEGRAPH_PROPERTY_EXAMPLES sets the number of examples
(default 25).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import decimal
import os
import sqlite3
import threading
from collections.abc import Coroutine, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import orjson
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import TRANSPORT_WS, GraphQLWS, LiveServer, asyncpg_dsn

EXAMPLES = int(os.environ.get("FORGEGRAPH_PROPERTY_EXAMPLES", "25"))
T = TypeVar("T")

metadata = sa.MetaData()
fidelity = sa.Table(
    "fidelity",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("i", sa.Integer),
    sa.Column("big", sa.BigInteger),
    sa.Column("f", sa.Float),
    sa.Column("num", sa.Numeric),
    sa.Column("flag", sa.Boolean),
    sa.Column("d", sa.Date),
    sa.Column("ts", sa.DateTime),
    sa.Column("tstz", sa.DateTime(timezone=True)),
    sa.Column("tm", sa.Time),
    sa.Column("js", sa.JSON(none_as_null=True)),
    sa.Column("jsb", sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")),
    sa.Column("blob", sa.LargeBinary),
    sa.Column("txt", sa.Text),
)
COLUMNS = [c.name for c in fidelity.columns]
FIELDS = " ".join(COLUMNS)

# -- values -----------------------------------------------------------------------

texts = st.text(st.characters(exclude_characters="\x00", codec="utf-8"), max_size=20)
finite = st.floats(allow_nan=False, allow_infinity=False)
# JSON numbers: PostgreSQL's jsonb keeps them as numeric, and writes 1e20 back as a
# 21-digit integer, which no JSON encoder here carries; moderate magnitudes.
json_numbers = st.integers(-(2**53), 2**53) | st.floats(-1e15, 1e15, allow_nan=False)
json_values = st.recursive(
    st.booleans() | json_numbers | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)
offsets = st.integers(-14 * 4, 14 * 4).map(lambda q: dt.timezone(dt.timedelta(minutes=15 * q)))


def nullable(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


rows = st.fixed_dictionaries(
    {
        "i": nullable(st.integers(-(2**31), 2**31 - 1)),
        "big": nullable(st.integers(-(2**63), 2**63 - 1)),
        "f": nullable(finite),
        "num": nullable(st.decimals(-(10**12), 10**12, allow_nan=False, places=6)),
        "flag": nullable(st.booleans()),
        "d": nullable(st.dates()),
        "ts": nullable(st.datetimes()),
        "tstz": nullable(st.datetimes(timezones=offsets)),
        "tm": nullable(st.times()),
        "js": nullable(json_values),
        "jsb": nullable(json_values),
        "blob": nullable(st.binary(max_size=16)),
        "txt": nullable(texts),
    }
)
writers = st.sampled_from(["api", "other"])


def api_values(row: dict[str, Any]) -> dict[str, Any]:
    """A row as GraphQL variables (SPEC section 4's input forms)."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        if value is None:
            out[name] = None
        elif isinstance(value, decimal.Decimal):
            out[name] = str(value)
        elif isinstance(value, dt.date | dt.time):
            out[name] = value.isoformat()
        elif isinstance(value, bytes):
            out[name] = base64.b64encode(value).decode()
        elif name == "big":
            out[name] = str(value) if value % 2 else value  # bigint takes a number or a string
        else:
            out[name] = value
    return out


# -- the other program -----------------------------------------------------------


class OtherProgram:
    """Writes as another program would: its own driver, its own session settings."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = url.startswith("postgresql")
        self._conn: asyncpg.Connection | None = None

    def _holder(self, k: int, name: str = "") -> str:
        if not self.postgres:
            return "?"
        # asyncpg sends json as text: say which type it is.
        return f"${k + 1}" + {"js": "::json", "jsb": "::jsonb"}.get(name, "")

    def _value(self, name: str, value: Any) -> Any:
        if value is None:
            return None
        if name in ("js", "jsb"):
            return orjson.dumps(value).decode()
        if self.postgres:
            return value  # asyncpg binds Decimal, dates, times and bytes itself
        if isinstance(value, decimal.Decimal):
            return str(value)
        return value.isoformat() if isinstance(value, dt.date | dt.time) else value

    async def execute(self, sql: str, values: list[Any]) -> None:
        if not self.postgres:
            await asyncio.to_thread(self._sqlite_execute, sql, values)
            return
        if self._conn is None:
            dsn = asyncpg_dsn(self.url)
            self._conn = await asyncpg.connect(
                dsn, server_settings={"TimeZone": "Asia/Kolkata", "extra_float_digits": "0"}
            )
        await self._conn.execute(sql, *values)

    def _sqlite_execute(self, sql: str, values: list[Any]) -> None:
        conn = sqlite3.connect(self.url.split("///", 1)[1])
        try:
            conn.execute(sql, values)
            conn.commit()
        finally:
            conn.close()

    async def insert(self, row: dict[str, Any]) -> None:
        names = list(row)
        holders = ", ".join(self._holder(k, n) for k, n in enumerate(names))
        sql = f"INSERT INTO fidelity ({', '.join(names)}) VALUES ({holders})"
        await self.execute(sql, [self._value(n, row[n]) for n in names])

    async def update(self, pk: int, row: dict[str, Any]) -> None:
        names = list(row)
        sets = ", ".join(f"{n} = {self._holder(k, n)}" for k, n in enumerate(names))
        sql = f"UPDATE fidelity SET {sets} WHERE id = {self._holder(len(names))}"
        await self.execute(sql, [self._value(n, row[n]) for n in names] + [pk])

    async def delete(self, pk: int) -> None:
        await self.execute(f"DELETE FROM fidelity WHERE id = {self._holder(0)}", [pk])

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()


# -- the probe: one subscriber, HTTP queries ------------------------------------


class Probe:
    """A graphql-transport-ws subscriber and an HTTP client, on an event loop of their own."""

    def __init__(self, server: LiveServer, url: str) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.stack = AsyncExitStack()
        self.other = OtherProgram(url)
        self.run(self._open())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    async def _open(self) -> None:
        self.http = await self.stack.enter_async_context(
            httpx.AsyncClient(base_url=self.server.url, timeout=30, trust_env=False)
        )
        self.ws = await self.stack.enter_async_context(GraphQLWS.open(self.server, protocol=TRANSPORT_WS))
        await self.ws.subscribe(
            "s", 'subscription { tableChanged(table: "fidelity") { type record old_record cursor } }'
        )
        # Subscribed once a change arrives: write until one does, then forget them.
        for _ in range(50):
            pk = await self.api_insert({"txt": "warm-up"})
            try:
                async with asyncio.timeout(0.3):
                    await self.ws.connection.recv()
                break
            except TimeoutError:
                continue
        else:
            pytest.fail("the subscription never started")
        await asyncio.sleep(0.5)
        while True:
            try:
                async with asyncio.timeout(0.2):
                    await self.ws.connection.recv()
            except TimeoutError:
                break
        del pk

    async def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = await self.http.post("/graphql", json={"query": query, "variables": variables})
        body = response.json()
        assert response.status_code == 200 and "errors" not in body, body
        return body["data"]  # type: ignore[no-any-return]

    async def api_insert(self, row: dict[str, Any]) -> int:
        data = await self.graphql(
            "mutation($o: fidelity_insert_input!) { insert_fidelity_one(object: $o) { id } }",
            {"o": api_values(row)},
        )
        return int(data["insert_fidelity_one"]["id"])

    async def api_update(self, pk: int, row: dict[str, Any]) -> None:
        await self.graphql(
            "mutation($id: Int!, $s: fidelity_set_input!) { update_fidelity_by_pk(pk_columns: {id: $id}, _set: $s) { id } }",
            {"id": pk, "s": api_values(row)},
        )

    async def api_delete(self, pk: int) -> None:
        await self.graphql("mutation($id: Int!) { delete_fidelity_by_pk(id: $id) { id } }", {"id": pk})

    async def query(self, pk: int) -> dict[str, Any] | None:
        data = await self.graphql(f"query($id: Int!) {{ fidelity_by_pk(id: $id) {{ {FIELDS} }} }}", {"id": pk})
        return data["fidelity_by_pk"]  # type: ignore[no-any-return]

    async def event(self) -> dict[str, Any]:
        payload = await self.ws.next("s", timeout=10)
        assert "errors" not in payload, payload
        return payload["data"]["tableChanged"]  # type: ignore[no-any-return]

    async def example(self, first: dict[str, Any], second: dict[str, Any], how: tuple[str, str, str]) -> None:
        create, update, delete = how
        if create == "api":
            await self.api_insert(first)
        else:
            await self.other.insert(first)
        created = await self.event()
        pk = created["record"]["id"]
        before = await self.query(pk)
        same("create record", created["record"], before)

        if update == "api":
            await self.api_update(pk, second)
        else:
            await self.other.update(pk, second)
        updated = await self.event()
        after = await self.query(pk)
        same("update old_record", updated["old_record"], before)
        same("update record", updated["record"], after)

        if delete == "api":
            await self.api_delete(pk)
        else:
            await self.other.delete(pk)
        deleted = await self.event()
        assert deleted["type"] == "delete"
        same("delete old_record", deleted["old_record"], after)

    def close(self) -> None:
        async def shut() -> None:
            await self.other.close()
            await self.stack.aclose()

        self.run(shut())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def same(what: str, event_row: dict[str, Any] | None, query_row: dict[str, Any] | None) -> None:
    assert event_row is not None and query_row is not None, (what, event_row, query_row)
    for name in COLUMNS:
        event_json, query_json = orjson.dumps(event_row.get(name)), orjson.dumps(query_row.get(name))
        assert event_json == query_json, f"{what}: column {name}: event {event_json!r}, query {query_json!r}"


@pytest.fixture
def probe(backend: str, tmp_path: Path, serve: Any, request: pytest.FixtureRequest) -> Iterator[Probe]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fidelity.db'}" if backend == "sqlite" else request.getfixturevalue("fresh_postgres")

    async def create() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
        finally:
            await engine.dispose()

    asyncio.run(create())
    probe = Probe(serve(database=url), url)
    yield probe
    probe.close()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(first=rows, second=rows, how=st.tuples(writers, writers, writers))
def test_event_records_equal_query_answers(
    probe: Probe, first: dict[str, Any], second: dict[str, Any], how: tuple[str, str, str]
) -> None:
    probe.run(probe.example(first, second, how))


@pytest.mark.parametrize(
    "value",
    [0.1 + 0.2, 2.0**-1074, 1.7976931348623157e308, 123456789.12345679, -0.0, 1e-7],
)
def test_floats_keep_every_digit(probe: Probe, value: float) -> None:
    """SQLite's json_object keeps 15 digits: 0.1 + 0.2 arrived as 0.3. Every double now arrives exactly."""
    probe.run(probe.example({"f": value}, {"f": -value}, ("other", "api", "api")))


@pytest.mark.parametrize("value", [2**53 + 1, 2**63 - 1, -(2**63)])
def test_integers_beyond_32_bits_are_answered_and_carried_exactly(probe: Probe, value: int) -> None:
    """Int and bigint columns answer every 64-bit integer as a JSON number, in queries and events."""
    async def check() -> None:
        await probe.other.insert({"big": value, "i": value if not probe.other.postgres else None})
        created = await probe.event()
        answer = await probe.query(created["record"]["id"])
        assert answer is not None and answer["big"] == value
        if not probe.other.postgres:  # SQLite keeps 64 bits in any integer column
            assert answer["i"] == value
        same("create record", created["record"], answer)

    probe.run(check())


def test_the_extreme_dates_are_what_queries_answer(probe: Probe) -> None:
    """asyncpg stores 0001-01-01 and 9999-12-31 as -infinity and infinity, and reads them back:
    row_to_json wrote "-infinity" into events while queries answered 0001-01-01."""
    low = {"d": dt.date.min, "ts": dt.datetime.min}
    high = {"d": dt.date.max, "ts": dt.datetime.max}
    probe.run(probe.example(low, high, ("api", "other", "api")))
    probe.run(probe.example(high, low, ("other", "api", "other")))


def test_a_null_blob_is_null(probe: Probe) -> None:
    """hex(NULL) is '': a NULL blob arrived as "" in events."""
    probe.run(probe.example({"blob": None, "txt": "x"}, {"blob": b"\x00\xff"}, ("other", "other", "api")))


def test_bigint_columns_are_typed_bigint_and_take_numbers_or_strings(probe: Probe) -> None:
    """PostgreSQL bigint and SQLite columns declared BIGINT are Hasura's `bigint` (SPEC section 4)."""
    async def check() -> None:
        data = await probe.graphql('{ __type(name: "fidelity") { fields { name type { name } } } }', {})
        types = {f["name"]: f["type"]["name"] for f in data["__type"]["fields"]}
        assert (types["big"], types["i"], types["id"]) == ("bigint", "Int", None)  # id: Int!
        await probe.api_insert({"big": 2**53 + 1})
        await probe.event()
        for operand in (f'"{2**53 + 1}"', str(2**53 + 1)):
            found = await probe.graphql(f"{{ fidelity(where: {{big: {{_eq: {operand}}}}}) {{ big }} }}", {})
            assert found == {"fidelity": [{"big": 2**53 + 1}]}
        refused = await probe.http.post("/graphql", json={"query": '{ fidelity(where: {big: {_eq: "1.5"}}) { id } }'})
        assert refused.json()["errors"][0]["extensions"]["code"] == "validation-failed"

    probe.run(check())


def test_event_filters_compare_the_exact_value(probe: Probe) -> None:
    """A filter on 0.1 + 0.2 matches the row holding it (events carried 0.3 on SQLite)."""
    async def check() -> None:
        async with GraphQLWS.open(probe.server, protocol=TRANSPORT_WS) as client:
            await client.subscribe(
                "f",
                'subscription($v: Float) { tableChanged(table: "fidelity", where: {f: {_eq: $v}}) { record } }',
                {"v": 0.1 + 0.2},
            )
            await asyncio.sleep(0.3)
            await probe.other.insert({"f": 0.3})  # not it
            await probe.other.insert({"f": 0.1 + 0.2})
            payload = await client.next("f")
            assert payload["data"]["tableChanged"]["record"]["f"] == 0.1 + 0.2
        await probe.event()
        await probe.event()

    probe.run(check())
