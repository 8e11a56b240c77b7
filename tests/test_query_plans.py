"""Query plans (graph.compile.query_plans) answer every query, byte for byte as recorded.

Every query of a corpus is sent to one server, on SQLite and PostgreSQL; its
status and body must be the golden ones (`tests/golden/query_plans.json`),
recorded from graphql-core's per-field resolvers while that path still
existed; /metrics must count every one as the compiled path's. The corpus holds the values
JSON is easy to get wrong: booleans, floats (1.0, 1e300, -0.0, subnormals,
random doubles, NaN), integers at GraphQL's Int limits and beyond, NULLs,
control and astral characters, JSON columns, numerics, dates (infinite ones
too), bytes, PostgreSQL types no scalar names; and what graphql-core
completes: introspection and `changeCursor` beside generated fields,
variables that do not coerce, arguments refused, values the database refuses,
values GraphQL refuses (with their paths), objects of more than 50 fields.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import hashlib
import json
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
from graph.compile._query_postgres import base_type
from graph.compile._query_variables import bindable_variables
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
            else:
                # What PostgreSQL keeps that JSON cannot say, and types no scalar names.
                await conn.execute(sa.text(
                    "CREATE TABLE specials (id INTEGER PRIMARY KEY, x DOUBLE PRECISION, r REAL, "
                    "d DATE, t TIMESTAMP, tz TIMESTAMPTZ)"
                ))
                await conn.execute(sa.text(
                    "INSERT INTO specials VALUES (1, 'NaN', 'Infinity', 'infinity', 'infinity', 'infinity'), "
                    "(2, '-Infinity', 'NaN', '-infinity', '-infinity', '-infinity'), (3, 1.5, 2.5, '2024-01-01', "
                    "'2024-01-01 10:00', '2024-01-01 10:00+02')"
                ))
                await conn.execute(sa.text("CREATE TYPE mood AS ENUM ('happy', 'sad')"))
                await conn.execute(sa.text(
                    "CREATE TABLE exotic (id INTEGER PRIMARY KEY, span INTERVAL, addr INET, net CIDR, "
                    "code CHAR(5), nums INTEGER[], words TEXT[], feeling mood, m MONEY, bits BIT(4), "
                    "mac MACADDR, tt TIME WITH TIME ZONE)"
                ))
                await conn.execute(sa.text(
                    "INSERT INTO exotic VALUES (1, '1 day 02:03:04', '10.0.0.1', '10.0.0.0/8', 'ab', "
                    "'{1,2,NULL}', '{a,\"b c\",NULL}', 'happy', 12.5, B'1010', '08:00:2b:01:02:03', "
                    "'10:00:00+02'), (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
                ))
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


GOLDEN = json.loads((Path(__file__).parent / "golden" / "query_plans.json").read_text())


def golden_key(*parts: Any) -> str:
    """A request's key in the golden file: its JSON, or the JSON's digest when long."""
    text = json.dumps(parts, ensure_ascii=False)
    return text if len(text) <= 400 else "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class Both:
    """Sends each request; checks it is answered with the recorded status and body."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.plans = server.app.state.runtime.query_plans
        self.http = httpx.Client(base_url=server.url, timeout=30, trust_env=False)
        self.golden = GOLDEN[server.app.state.runtime.model.dialect]

    def __call__(self, query: str, variables: dict[str, Any] | None = None, **headers: str) -> bytes:
        body = {"query": query, "variables": variables}
        response = self.http.post("/graphql", json=body, headers=headers)
        expected = self.golden[golden_key(query, variables, headers)]
        assert (response.status_code, response.content.decode()) == (expected["status"], expected["body"])
        return response.content


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
def test_what_graphql_core_completes_is_answered_as_before(both: Both, query: str) -> None:
    both(query)


def test_integers_beyond_32_bits_are_answered_exactly(both: Both) -> None:
    # A bigint column (PostgreSQL bigint, SQLite declared BIGINT) and the
    # 64-bit integers SQLite keeps in any integer column: JSON numbers, never refused.
    answer = both("{ huge(order_by: {id: asc}) { id n } }")
    assert answer == b'{"data":{"huge":[{"id":1,"n":7},{"id":2,"n":9223372036854775807}]}}'


def test_sqlite_values_of_another_type_than_declared(both: Both) -> None:
    if both.server.app.state.runtime.model.dialect != "sqlite":
        other_database("only SQLite keeps values of another type than the column's")
    both("{ odd_by_pk(id: 2) { id flag f t } }")  # 2 and 7 answered as executed
    both("{ odd_by_pk(id: 2) { n } }")  # 3.5 in an integer column
    # 'abc' in an integer column, 'x' and 9e999 in a float one: GraphQL's errors, at their paths.
    for field in ("t", "n", "flag", "f"):
        both(f"{{ odd(order_by: {{id: asc}}) {{ id {field} }} }}")
        both(f"{{ a: odd_by_pk(id: 2) {{ id }} b: odd_by_pk(id: 3) {{ {field} }} c: odd_by_pk(id: 1) {{ {field} }} }}")
    both("{ odd(where: {id: {_eq: 1}}) { t } }")  # NUL inside text
    # NULL in a key column: GraphQL's non-null error, the null propagated.
    both("{ loose(order_by: {b: asc}) { a b } }")
    both('{ loose_by_pk(a: "x", b: 2) { a b } x: loose(order_by: {b: asc}) { b } }')
    both("{ loose(order_by: {b: asc}) { b } y: loose(order_by: {b: asc}) { a } }")


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
        check("{ no_queries_available }")  # anonymous may read nothing
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
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60, trust_env=False) as http:
            for _ in range(2):  # the first run is cut short in the loop; the next goes straight to a thread
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
                assert took > 1, f"the statement took {took:.2f} s: too short to tell anything"
                # Answered promptly, and again and again: a statement in the loop would hold the first.
                assert len(waits) >= 3 and max(waits) < 1, (waits, took)
    finally:
        server.stop()


def test_get_requests_and_the_graphql_response_media_type(both: Both) -> None:
    query = "query($id: Int!) { samples_by_pk(id: $id) { id flag } }"
    params = {"query": query, "variables": '{"id": 2}'}
    for accept in ("application/json", "application/graphql-response+json"):
        response = both.http.get("/graphql", params=params, headers={"Accept": accept})
        expected = both.golden[golden_key("GET", accept, query, params["variables"])]
        assert (response.status_code, response.headers["content-type"], response.content.decode()) == (
            expected["status"], expected["content_type"], expected["body"],
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


DEEP = "{ samples(where: " + "{_not: " * 97 + "{id: {_eq: 1}}" + "}" * 97 + ") { id } }"
TOO_DEEP = "{ samples(where: " + "{_not: " * 101 + "{id: {_eq: 1}}" + "}" * 101 + ") { id } }"
DEEP_AND = "{ samples(where: " + "{_and: [" * 48 + "{id: {_eq: 1}}" + "]}" * 48 + ") { id parent { id } } }"
WIDE = "{ samples_by_pk(id: 1) { " + " ".join(f"a{i}: id" for i in range(60)) + " } }"
WIDE_ROOT = "{ " + " ".join(f"r{i}: samples_by_pk(id: {i % 9}) {{ id }}" for i in range(60)) + " }"
LONG = "{ samples_by_pk(id: 1) { id } }\n# " + "x" * 70_000
NESTED = (
    "{ samples_by_pk(id: 8) { id parent { id samples(order_by: {id: asc}) { id label parent { id "
    "samples(order_by: {id: desc}, limit: 2) { id parent { id samples(order_by: {id: asc}, offset: 1) { id "
    "parent { id parent { day } } } } } } } } } }"
)
MIXED = [
    ("{ changeCursor samples_by_pk(id: 1) { id } }", None),
    ("{ __typename a: samples_by_pk(id: 2) { id label } __schema { queryType { name } } b: samples_aggregate { aggregate { count } } }", None),
    ('{ __type(name: "samples") { name } samples(limit: 1, order_by: {id: asc}) { id parent { id } } }', None),
    ("query { ...Q } fragment Q on query_root { __schema { queryType { name } } samples_by_pk(id: 1) { id } }", None),
    ("{ a: samples_by_pk(id: 1) { id } __schema { queryType { name } } a: samples_by_pk(id: 1) { label } }", None),
    ("{ x: samples_by_pk(id: 3) { id samples(order_by: {id: asc}) { id } } y: changeCursor z: samples_by_pk(id: 1) { id } }", None),
    ("query($id: Int!, $s: Boolean!) { changeCursor @skip(if: $s) samples_by_pk(id: $id) { id } }", {"id": 4, "s": True}),
    ("query($id: Int!, $s: Boolean!) { changeCursor @skip(if: $s) samples_by_pk(id: $id) { id } }", {"id": 4, "s": False}),
]
ERRORS = [
    (NESTED, None),  # deeper than one SQLite statement holds: read in parts
    ("{ a: samples(order_by: {id: asc}) { parent { parent { parent { parent { parent { id odd: samples { id } } } } } } } }", None),
    ("query($id: Int!) { samples_by_pk(id: $id) { id } }", {"id": "x"}),
    ("query($id: Int!) { samples_by_pk(id: $id) { id } }", {"id": 1.5}),
    ("query($n: bigint) { huge(where: {n: {_eq: $n}}) { id } }", {"n": "99999999999999999999"}),
    ("query($n: bigint) { huge(where: {n: {_eq: $n}}) { id } }", {"n": "9223372036854775807"}),
    ("{ samples(offset: -2) { id } }", None),
    ("{ samples { samples(limit: -1) { id } } }", None),
    ("{ a: samples_by_pk(id: 1) { id } b: samples(limit: -1) { id } }", None),
    ("{ a: samples_by_pk(id: 1) { id } b: samples_by_pk(id: 3) { samples(limit: -1) { id } } }", None),
    ("{ a: samples_by_pk(id: 1) { id } b: samples_by_pk(id: 3) { samples(limit: -1) { id } } __schema { queryType { name } } }", None),
    ("query($n: Int) { samples(limit: $n) { id } }", {"n": -3}),
    ("{ samples(where: {id: {_eq: 9007199254740993}}) { id } }", None),
    ("query($v: Int) { samples(where: {id: {_eq: $v}}) { id } }", {"v": 9007199254740993}),
    ("query($v: Int) { samples(where: {id: {_gt: $v}}) { id } samples_by_pk(id: 1) { id } }", {"v": 2147483648}),
    ("query($v: Int!) { samples_by_pk(id: $v) { id } }", {"v": 2147483648}),
    ("query($v: Int!) { a: samples_by_pk(id: 1) { id } b: samples_by_pk(id: $v) { id } }", {"v": -2147483649}),
    (DEEP, None),
    (DEEP_AND, None),
    (TOO_DEEP, None),
    ('{ samples(where: {label: {_eq: "a\\u0000b"}}) { id } }', None),
    ("query($l: String) { samples(where: {label: {_eq: $l}}) { id } }", {"l": "a\x00b"}),
    ("query($l: String) { a: samples_by_pk(id: 1) { id } b: samples(where: {label: {_eq: $l}}) { id } }", {"l": "a\x00b"}),
    ("query($l: [String!]) { samples(where: {label: {_in: $l}}) { id } }", {"l": ["\x00"]}),
    ("query($ids: [Int!]) { samples(where: {id: {_in: $ids}}) { id } }", {"ids": list(range(40_000))}),
    ('{ samples_by_pk(id: 1) { day } }', None),
    ("{ samples_aggregate { __typename } }", None),
    ("{ samples_aggregate { aggregate { __typename } t: __typename } }", None),
    ("{ samples_aggregate { aggregate { count } } changeCursor }", None),
    (WIDE, None),
    (WIDE_ROOT, None),
    (LONG, None),
]
POSTGRES_ONLY = [
    ("{ specials(order_by: {id: asc}) { id x } }", None),
    ("{ specials(order_by: {id: asc}) { id r } }", None),
    ("{ specials(order_by: {id: asc}) { id d t tz } }", None),
    ("{ specials_by_pk(id: 3) { id x r d t tz } }", None),
    ("{ a: specials_by_pk(id: 3) { id } b: specials_by_pk(id: 1) { x } c: specials_by_pk(id: 2) { d } }", None),
    ("{ exotic(order_by: {id: asc}) { id span addr net code nums words feeling m bits mac tt } }", None),
]


@pytest.mark.parametrize(("query", "variables"), MIXED)
def test_generated_fields_beside_graphql_cores_own(both: Both, query: str, variables: dict[str, Any] | None) -> None:
    both(query, variables)


@pytest.mark.parametrize(("query", "variables"), ERRORS)
def test_errors_are_told_at_their_fields(both: Both, query: str, variables: dict[str, Any] | None) -> None:
    both(query, variables)


@pytest.mark.parametrize(("query", "variables"), POSTGRES_ONLY)
def test_postgres_values_json_cannot_say_and_types_no_scalar_names(
    both: Both, query: str, variables: dict[str, Any] | None
) -> None:
    if both.server.app.state.runtime.model.dialect == "sqlite":
        other_database("PostgreSQL values")
    both(query, variables)


def test_every_query_is_counted_as_compiled(database: str) -> None:
    """Whatever a query holds, /metrics counts it on the one path, `compiled`."""
    server = LiveServer(create_app(database=database))
    server.start()
    check = Both(server)
    cases = [(q, None) for q in CORPUS] + MIXED + ERRORS
    if server.app.state.runtime.model.dialect == "postgresql":
        cases += POSTGRES_ONLY
    try:
        for query, variables in cases:
            check(query, variables)
        metrics = check.http.get("/metrics").text
    finally:
        check.http.close()
        server.stop()
    counted = {
        line.split("{", 1)[1].split("}", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("forgegraph_operations_total{") and 'operation="query"' in line
    }
    answered = {labels: value for labels, value in counted.items() if value}
    assert answered == {'operation="query",path="compiled",transport="http"': len(cases)}, counted
