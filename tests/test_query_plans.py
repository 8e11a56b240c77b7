"""Query plans (graph.plans.query_plans) answer byte for byte what normal execution answers.

Every query of a corpus is sent twice to one server, once with the plans on
and once with them off, on SQLite and PostgreSQL; the two bodies and statuses
must be identical, and the plans must have answered the first (or, for
values they do not render, left it to normal execution). The corpus holds
the values JSON is easy to get wrong: booleans, floats (1.0, 1e300, -0.0,
subnormals, random doubles), integers at GraphQL's Int limits and beyond,
NULLs, control and astral characters, JSON columns, numerics, dates, bytes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import random
import sqlite3
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse
from sqlalchemy.ext.asyncio import create_async_engine

from graph.app import create_app
from graph.plans._query_postgres import base_type
from graph.plans._query_variables import bindable_variables
from tests import library
from tests.conftest import POSTGRES, LiveServer, _admin, other_database, unavailable

SECRET = "query-plans-test-secret-long-enough-for-hs256-0123456789"
metadata = sa.MetaData()
samples = sa.Table(
    "samples",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("flag", sa.Boolean),
    sa.Column("ratio", sa.Float),
    sa.Column("single", sa.REAL),
    sa.Column("amount", sa.Numeric(30, 10)),
    sa.Column("label", sa.Text),
    sa.Column("code", sa.String(20)),
    sa.Column("data", sa.JSON(none_as_null=True)),
    sa.Column("raw", sa.LargeBinary),
    sa.Column("day", sa.Date),
    sa.Column("at", sa.DateTime),
    sa.Column("at_tz", sa.DateTime(timezone=True)),
    sa.Column("clock", sa.Time),
    sa.Column("big", sa.BigInteger),
    sa.Column("parent_id", sa.ForeignKey("samples.id")),
)
floats = sa.Table("floats", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("x", sa.Float))
huge = sa.Table("huge", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("n", sa.BigInteger))

LABELS = ["", "plain", 'quote " and \\ backslash', "\n\t\r\x01\x1f\x7f", "é€😀\u2028\u2029\ufeff", "日本語", None]
FLOATS = [1.0, 1e300, -0.0, 0.0, 0.1, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
          123456789.125, 1e16, 1e-7, 2.5e-5, -3.75, 1 / 3, 2.0**53 + 2, None]
UTC_PLUS_5_30 = dt.timezone(dt.timedelta(hours=5, minutes=30))


def sample_rows() -> list[dict[str, Any]]:
    data = [{"a": [1, 2.5, "x", None, True]}, [], "a JSON string", 123, 1.5e300, "[1,2]",
            {"nested": {"deep": [[[]]]}}, None]
    amounts = [decimal.Decimal(v) for v in ("4.50", "0.0000001", "-12.5", "100", "123456789012.1234567891")]
    rows = []
    for i in range(1, 9):
        rows.append({
            "id": i,
            "flag": [True, False, None][i % 3],
            "ratio": FLOATS[i % len(FLOATS)],
            "single": [0.1, 1 / 3, 1e30, None][i % 4],
            "amount": [*amounts, None][i % 6],
            "label": LABELS[i % len(LABELS)],
            "code": f"c{i}" if i % 4 else None,
            "data": data[i % len(data)],
            "raw": [b"\x00\x01\xff", b"", b"hello", None][i % 4],
            "day": [dt.date(2024, 2, 29), dt.date(1, 1, 2), None][i % 3],
            "at": [dt.datetime(2024, 1, 1, 10), dt.datetime(1999, 12, 31, 23, 59, 59, 500000), None][i % 3],
            "at_tz": [dt.datetime(2024, 1, 1, 10, tzinfo=UTC_PLUS_5_30),
                      dt.datetime(2024, 6, 1, 0, 0, 0, 123456, tzinfo=dt.UTC), None][i % 3],
            "clock": [dt.time(10), dt.time(23, 59, 59, 500000), None][i % 3],
            "big": [2**31 - 1, -(2**31), 0, None][i % 4],
            "parent_id": None if i < 3 else i % 3 + 1,
        })
    return rows


def float_rows() -> list[dict[str, Any]]:
    chance = random.Random(8)
    values = list(FLOATS)
    while len(values) < 200:
        value = struct.unpack("d", struct.pack("Q", chance.getrandbits(64)))[0]
        if value == value and abs(value) != float("inf"):
            values.append(value)
    return [{"id": i, "x": x} for i, x in enumerate(values, 1)]


async def create(url: str) -> None:
    await library.create(url)
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(samples.insert(), sample_rows())
            await conn.execute(floats.insert(), float_rows())
            await conn.execute(huge.insert(), [{"id": 1, "n": 7}, {"id": 2, "n": 2**63 - 1}])
            if conn.dialect.name == "sqlite":
                # What SQLite keeps whatever a column says: the plans must leave these to
                # normal execution (or render them as it would).
                await conn.execute(sa.text(
                    "CREATE TABLE odd (id INTEGER PRIMARY KEY, n INTEGER, flag BOOLEAN, f FLOAT, t TEXT)"
                ))
                await conn.execute(sa.text(
                    "INSERT INTO odd VALUES (1, 'abc', 'yes', 'x', :nul), "
                    "(2, 3.5, 2, 7, 'ok'), (3, 4294967296, 0.0, 9e999, 'ok')"
                ), {"nul": "nul\x00inside"})
                await conn.execute(sa.text("CREATE TABLE loose (a TEXT, b INTEGER, PRIMARY KEY (a, b))"))
                await conn.execute(sa.text("INSERT INTO loose VALUES (NULL, 1), ('x', 2)"))
    finally:
        await engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('plans') / 'plans.db'}"
        asyncio.run(create(url))
        yield url
        return
    try:
        asyncio.run(_admin("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - any failure means "not here"
        unavailable("PostgreSQL", f"{POSTGRES}: {error}")
    name = f"fg_plans_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        url = sa.make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)
        asyncio.run(create(url))
        yield url
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class Both:
    """Sends each request with the plans on, then off; checks the answers are the same bytes."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.plans = server.app.state.runtime.query_plans
        self.http = httpx.Client(base_url=server.url, timeout=30, trust_env=False)

    def __call__(
        self, query: str, variables: dict[str, Any] | None = None, *, answered: bool = True, **headers: str
    ) -> bytes:
        body = {"query": query, "variables": variables}
        before = self.plans.answered
        self.plans.enabled = True
        fast = self.http.post("/graphql", json=body, headers=headers)
        self.plans.enabled = False
        try:
            slow = self.http.post("/graphql", json=body, headers=headers)
        finally:
            self.plans.enabled = True
        assert (fast.status_code, fast.content) == (slow.status_code, slow.content)
        assert self.plans.answered - before == int(answered), (query, fast.content[:300])
        return fast.content


@pytest.fixture(scope="module")
def both(database: str) -> Iterator[Both]:
    server = LiveServer(create_app(database=database))
    server.start()
    client = Both(server)
    try:
        yield client
    finally:
        client.http.close()
        server.stop()


CORPUS = [
    "{ samples(order_by: {id: asc}) { id flag ratio single amount label code data raw day at at_tz clock big parent_id } }",
    "{ floats(order_by: {id: asc}) { id x } }",
    "{ samples(order_by: {id: desc}) { __typename id parent { id parent { id } } samples(order_by: {id: asc}) { id label } } }",
    "{ samples(where: {flag: {_eq: true}}, order_by: [{ratio: desc_nulls_last}, {id: asc}]) { id ratio } }",
    "{ samples(order_by: [{day: asc}, {id: desc}], limit: 3, offset: 2) { id day } }",
    "{ samples(order_by: {parent: {label: asc_nulls_first}}) { id } }",
    "{ a: samples_by_pk(id: 3) { id label } b: samples_by_pk(id: 404) { id } __typename }",
    "{ samples_aggregate(where: {label: {_is_null: false}}) { aggregate { count n: count __typename } t: __typename } }",
    "{ posts(order_by: {id: asc}) { id title body published user_id editor_id rating published_at } }",
    "{ users(order_by: {id: asc}) { id name email score active born created_at profile } }",
    "{ users(order_by: {id: asc}) { name posts_by_user_id(order_by: {id: asc}) { title comments(order_by: {id: asc}) { body } } } }",
    "{ users(order_by: {id: asc}) { id latest: posts_by_user_id(order_by: {id: desc}, limit: 1) { id } rest: posts_by_user_id(order_by: {id: desc}, offset: 1) { id } } }",
    "{ posts(where: {_or: [{title: {_ilike: \"%HELLO%\"}}, {body: {_like: \"50\\\\%%\"}}]}, order_by: {id: asc}) { id } }",
    "{ posts(where: {user: {name: {_in: [\"Alice\", \"Bob\"]}}}, order_by: {user: {name: desc}, id: asc}) { id user { name } } }",
    "{ tags(order_by: [{post_id: asc}, {name: desc}]) { post_id name weight post { id } } audit_log { message level } }",
    "query Named { ...F } fragment F on query_root { users_by_pk(id: 1) { ... on users { id n: name } name } }",
    "query($s: Boolean = true) { users(order_by: {id: asc}) { id name @include(if: $s) email @skip(if: $s) } }",
    "{ tags_by_pk(post_id: 1, name: \"news\") { weight post { title editor { name } user { name } } } }",
    "{ posts(order_by: {id: asc}) { user { name } editor { name } posts_by_editor_id: tags { name } } }",
]


@pytest.mark.parametrize("query", CORPUS)
def test_plans_answer_what_execution_answers(both: Both, query: str) -> None:
    both(query)


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("query($id: Int!) { samples_by_pk(id: $id) { id label } }", {"id": 4}),
        ("query($id: Int!) { samples_by_pk(id: $id) { id label } }", {"id": 5}),
        ("query($l: String, $n: Int) { samples(where: {label: {_eq: $l}}, limit: $n) { id } }", {"l": "plain", "n": 1}),
        ("query($l: String, $n: Int) { samples(where: {label: {_eq: $l}}, limit: $n) { id } }", {"l": None}),
        ("query($p: String!) { posts(where: {title: {_like: $p}}, order_by: {id: asc}) { id } }", {"p": "%o%"}),
        ("query($x: Float) { floats(where: {x: {_gt: $x}}, order_by: {id: asc}, limit: 5) { x } }", {"x": 1}),
        ("query($ids: [Int!]) { samples(where: {id: {_in: $ids}}, order_by: {id: asc}) { id } }", {"ids": [1, 3]}),
    ],
)
def test_plans_answer_with_variables(both: Both, query: str, variables: dict[str, Any]) -> None:
    both(query, variables)


@pytest.mark.parametrize(
    "query",
    [
        "{ samples(limit: -1) { id } }",
        "{ __schema { queryType { name } } }",
        "query($id: Int!) { samples_by_pk(id: $id) { id } }",  # a variable missing
    ],
)
def test_what_plans_leave_to_execution_is_answered_the_same(both: Both, query: str) -> None:
    both(query, answered=False)


def test_integers_beyond_32_bits_are_answered_exactly(both: Both) -> None:
    # A bigint column (PostgreSQL bigint, SQLite declared BIGINT) and the
    # 64-bit integers SQLite keeps in any integer column: JSON numbers, never refused.
    answer = both("{ huge(order_by: {id: asc}) { id n } }")
    assert answer == b'{"data":{"huge":[{"id":1,"n":7},{"id":2,"n":9223372036854775807}]}}'


def test_sqlite_values_of_another_type_than_declared(both: Both) -> None:
    if both.server.app.state.runtime.model.dialect != "sqlite":
        other_database("only SQLite keeps values of another type than the column's")
    both("{ odd_by_pk(id: 2) { id flag f t } }")  # 2 and 7 answered as executed
    both("{ odd_by_pk(id: 2) { n } }", answered=False)  # 3.5 in an integer column
    for field in ("n", "flag", "f"):
        both(f"{{ odd(order_by: {{id: asc}}) {{ id {field} }} }}", answered=False)
    both("{ odd(where: {id: {_eq: 1}}) { t } }")  # NUL inside text
    both("{ loose(order_by: {b: asc}) { a b } }", answered=False)  # NULL in a key column


def test_a_document_is_compiled_once(both: Both) -> None:
    plans = both.plans
    query = "query($id: Int!) { samples_by_pk(id: $id) { id label parent { id } } }"
    before = plans.compiled
    answers = {both(query, {"id": n}) for n in (1, 2, 3, 4, 1)}
    assert plans.compiled - before == 1
    assert len(answers) == 4


def test_nested_relationships_take_one_statement(both: Both) -> None:
    both.server.statements.clear()
    both.http.post("/graphql", json={"query": CORPUS[10]})
    selects = [
        s for s in both.server.statements
        if s.lstrip().upper().startswith("SELECT") and "_forgegraph" not in s
    ]
    assert len(selects) == 1, selects


PERMISSIONS = """
tables:
  posts:
    select:
      user: {filter: {_or: [{published: {_eq: true}}, {user_id: {_eq: X-User-Id}}]}, columns: [id, title, user_id]}
  users:
    select:
      user: {filter: {id: {_eq: X-User-Id}}, columns: [id, name]}
"""


def test_row_rules_and_max_limit_apply_per_session(database: str, tmp_path: Path) -> None:
    rules = tmp_path / "permissions.yaml"
    rules.write_text(PERMISSIONS)
    server = LiveServer(create_app(database=database, permissions=str(rules), jwt_secret=SECRET, max_limit=2))
    server.start()
    check = Both(server)
    try:
        query = "{ posts(order_by: {id: asc}) { id title user { id name posts_by_user_id { id } } } }"
        answers = [
            check(query, Authorization=f"Bearer {jwt.encode({'sub': str(user)}, SECRET)}")
            for user in (1, 2, 1)
        ]
        assert answers[0] != answers[1]
        assert answers[0] == answers[2]
        check("{ posts_aggregate { aggregate { count } } }", Authorization="Bearer " + jwt.encode({"sub": "2"}, SECRET))
        check("{ no_queries_available }", answered=False)  # anonymous may read nothing
    finally:
        check.http.close()
        server.stop()


async def test_a_long_sqlite_statement_runs_in_a_thread_and_the_server_answers_meanwhile(
    tmp_path: Path,
) -> None:
    """A statement over the loop's budget leaves the event loop: /healthz answers while it runs.

    200,000 rows of 400 characters, each matched against 150 `_like` patterns
    (none matches): some seconds of SQLite C code, which a thread runs without the GIL.
    """
    path = tmp_path / "long.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE texts (id INTEGER PRIMARY KEY, t TEXT NOT NULL)")
        db.execute(
            "INSERT INTO texts (t) SELECT hex(randomblob(200)) FROM "
            "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) SELECT i FROM n)"
        )
    patterns = ", ".join(f'{{t: {{_like: "%z{i:03d}%"}}}}' for i in range(150))
    query = f"{{ texts(where: {{_or: [{patterns}]}}, order_by: {{id: asc}}) {{ id }} }}"
    server = LiveServer(create_app(database=f"sqlite+aiosqlite:///{path}"))
    server.start()
    plans = server.app.state.runtime.query_plans
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60, trust_env=False) as http:
            for _ in range(2):  # the first run is cut short in the loop; the next goes straight to a thread
                before = plans.answered
                started = time.monotonic()
                long = asyncio.create_task(http.post("/graphql", json={"query": query}))
                await asyncio.sleep(0.3)  # the statement is running by now
                waits = []
                while not long.done():
                    asked = time.monotonic()
                    assert (await http.get("/healthz")).status_code == 200
                    waits.append(time.monotonic() - asked)
                    await asyncio.sleep(0.1)
                response = await long
                took = time.monotonic() - started
                assert response.json() == {"data": {"texts": []}}
                assert plans.answered == before + 1  # the plans' path ran it, not normal execution
                assert took > 1, f"the statement took {took:.2f} s: too short to tell anything"
                # Answered promptly, and again and again: a statement in the loop would hold the first.
                assert len(waits) >= 3 and max(waits) < 1, (waits, took)
    finally:
        server.stop()


def test_get_requests_and_the_graphql_response_media_type(both: Both) -> None:
    query = "query($id: Int!) { samples_by_pk(id: $id) { id flag } }"
    params = {"query": query, "variables": '{"id": 2}'}
    for accept in ("application/json", "application/graphql-response+json"):
        before = both.plans.answered
        fast = both.http.get("/graphql", params=params, headers={"Accept": accept})
        both.plans.enabled = False
        try:
            slow = both.http.get("/graphql", params=params, headers={"Accept": accept})
        finally:
            both.plans.enabled = True
        assert both.plans.answered == before + 1
        assert (fast.status_code, fast.headers["content-type"], fast.content) == (
            slow.status_code, slow.headers["content-type"], slow.content,
        )


# -- pure units ----------------------------------------------------------------


def test_which_variables_are_bound_per_request() -> None:
    document = parse(
        """query($id: Int!, $t: String, $n: Int, $show: Boolean!, $ids: [Int!], $f: Float) {
             a: samples_by_pk(id: $id) { id label @include(if: $show) }
             samples(where: {label: {_eq: $t}, id: {_in: $ids}, ratio: {_gt: $f}}, limit: $n) { ...F }
           }
           fragment F on samples { samples(where: {label: {_neq: $t}}) { id } }"""
    )
    operation = document.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    fragment = document.definitions[1]
    assert isinstance(fragment, FragmentDefinitionNode)
    fragments = {"F": fragment}
    # $n is written into the SQL (limit), $show picks fields, $ids is a list.
    assert bindable_variables(operation, fragments) == {"id": 1, "t": 2, "f": 1}


def test_postgres_type_names_are_read_without_their_modifiers() -> None:
    assert base_type("NUMERIC(10, 2)") == "NUMERIC"
    assert base_type("TIMESTAMP WITH TIME ZONE") == "TIMESTAMP"
    assert base_type("varchar(20)") == "VARCHAR"
