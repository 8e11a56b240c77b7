"""Dates and times answer and compare alike on SQLite and PostgreSQL (issue 15, scalar fidelity).

SQLite keeps dates and times as text, in whatever form a program wrote
them; PostgreSQL parses them. Both must answer ISO 8601 as Hasura does on
PostgreSQL ('T' separator, timestamptz in UTC as `+00:00`), compare and
order timestamps as instants (offsets taken into account), read back what
was inserted in that form, and carry the same form in events, whose
filters compare instants as SQL does. Every expected answer below is the
same literal for both databases.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.ext.asyncio import create_async_engine

from graph.app import create_app
from graph.dialect.sqlite import configure_sqlite
from graph.events.change import row_image
from graph.model import Column, Kind, Table
from graph.reflect import reflect
from graph.rules.matcher import compile_matcher
from graph.rules.parse import parse_stream_where
from graph.rules.to_sql import comparable
from graph.temporal import answer, answer_zoned, instant, instant_sql
from tests.conftest import Api, LiveServer, other_database
from tests.test_realtime import change, subscribe

# Another program's rows: texts that sort differently from their instants
# (' ' before 'T'; offsets), as SQLite's datetime() and other clients write them.
ROWS = [
    "(1, '2004-10-19 10:23:54', '2015-10-17 14:42:43Z', '2014-09-14', '10:23:54')",
    "(2, '2004-10-19 10:24:00', '2015-10-17T16:00:00+02:00', '2014-09-15', '23:59:59')",
    "(3, '2004-10-19T09:00:00.25', '2015-10-17T09:30:00-05:00', '2014-09-13', '00:00:01.5')",
]
FIELDS = "id ts tstz d tm"
ANSWERS = [
    {"id": 1, "ts": "2004-10-19T10:23:54", "tstz": "2015-10-17T14:42:43+00:00", "d": "2014-09-14", "tm": "10:23:54"},
    {"id": 2, "ts": "2004-10-19T10:24:00", "tstz": "2015-10-17T14:00:00+00:00", "d": "2014-09-15", "tm": "23:59:59"},
    {"id": 3, "ts": "2004-10-19T09:00:00.250000", "tstz": "2015-10-17T14:30:00+00:00", "d": "2014-09-13",
     "tm": "00:00:01.500000"},
]


async def _execute(url: str, *statements: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


@pytest.fixture
async def api(library_url: str, serve: Any) -> AsyncIterator[Api]:
    # PostgreSQL's timestamptz; SQLite takes the name as it is (graph.reflect reads it as a zoned timestamp).
    await _execute(
        library_url,
        "CREATE TABLE moments (id INTEGER PRIMARY KEY, ts TIMESTAMP, tstz TIMESTAMPTZ, d DATE, tm TIME)",
        f"INSERT INTO moments (id, ts, tstz, d, tm) VALUES {', '.join(ROWS)}",
    )
    server = serve(database=library_url)
    async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as http:
        yield Api(server, http)


async def ids(api: Api, arguments: str) -> list[int]:
    data = await api(f"{{ moments({arguments}) {{ id }} }}")
    return [row["id"] for row in data["moments"]]


async def test_values_any_program_wrote_are_answered_in_iso_8601(api: Api) -> None:
    data = await api(f"{{ moments(order_by: {{id: asc}}) {{ {FIELDS} }} m: moments_by_pk(id: 1) {{ tstz }} }}")
    assert data == {"moments": ANSWERS, "m": {"tstz": "2015-10-17T14:42:43+00:00"}}


async def test_timestamps_compare_as_instants_whatever_their_notation(api: Api) -> None:
    by_id = "order_by: {id: asc}"
    assert await ids(api, f'where: {{tstz: {{_gte: "2015-10-17T14:30:00+00:00"}}}}, {by_id}') == [1, 3]
    assert await ids(api, f'where: {{tstz: {{_eq: "2015-10-17T10:30:00-04:00"}}}}, {by_id}') == [3]
    assert await ids(api, f'where: {{tstz: {{_lt: "2015-10-17T16:30:00+02:00"}}}}, {by_id}') == [2]
    assert await ids(api, f'where: {{tstz: {{_neq: "2015-10-17 14:00:00Z"}}}}, {by_id}') == [1, 3]
    # Without an offset, a timestamptz operand is UTC (PostgreSQL's session zone).
    assert await ids(api, f'where: {{tstz: {{_lte: "2015-10-17T14:30:00"}}}}, {by_id}') == [2, 3]
    listed = '["2015-10-17T16:42:43+02:00", "2015-10-17 14:00:00Z"]'
    assert await ids(api, f"where: {{tstz: {{_in: {listed}}}}}, {by_id}") == [1, 2]
    assert await ids(api, f"where: {{tstz: {{_nin: {listed}}}}}, {by_id}") == [3]
    # Without offsets: '2004-10-19 10:23:54' is after 10:00 although its text sorts before it.
    assert await ids(api, f'where: {{ts: {{_gt: "2004-10-19T10:00:00"}}}}, {by_id}') == [1, 2]
    assert await ids(api, f'where: {{ts: {{_eq: "2004-10-19T10:23:54"}}}}, {by_id}') == [1]
    assert await ids(api, f'where: {{ts: {{_in: ["2004-10-19T10:24:00", "2004-10-19 09:00:00.25"]}}}}, {by_id}') == [2, 3]
    assert await ids(api, f'where: {{d: {{_lt: "2014-09-14"}}}}, {by_id}') == [3]
    assert await ids(api, f'where: {{tm: {{_gt: "10:00"}}}}, {by_id}') == [1, 2]
    # A variable's value is keyed as a literal is, whichever plan serves it.
    for value, expected in [("2015-10-17T10:35:00-04:00", [1]), ("2015-10-17 14:00:00Z", [1, 3]),
                            ("2015-10-17T14:42:43+00:00", [])]:
        variables = await api(
            "query($t: String) { moments(where: {tstz: {_gt: $t}}, order_by: {id: asc}) { id } }", {"t": value}
        )
        assert variables == {"moments": [{"id": i} for i in expected]}, value


async def test_order_by_and_aggregates_take_instants(api: Api) -> None:
    assert await ids(api, "order_by: {ts: asc}") == [3, 1, 2]
    assert await ids(api, "order_by: {tstz: desc}") == [1, 3, 2]
    assert await ids(api, "order_by: {tm: asc}") == [3, 1, 2]
    # Row 4: row 1's instant in another notation, as another program wrote it.
    await api('mutation { insert_moments_one(object: {id: 4, tstz: "2015-10-17T16:42:43+02:00"}) { id } }')
    data = await api("""{ moments_aggregate { aggregate {
        min { ts tstz } max { ts tstz } count(columns: tstz, distinct: true) } } }""")
    assert data["moments_aggregate"]["aggregate"] == {
        "min": {"ts": "2004-10-19T09:00:00.250000", "tstz": "2015-10-17T14:00:00+00:00"},
        "max": {"ts": "2004-10-19T10:24:00", "tstz": "2015-10-17T14:42:43+00:00"},
        "count": 3,
    }
    distinct = await api("{ moments(distinct_on: tstz, order_by: {tstz: asc}) { id } }")
    assert [row["id"] for row in distinct["moments"]] == [2, 3, 1]


async def test_inserted_and_updated_values_read_back_in_iso_8601(api: Api, library_url: str) -> None:
    inserted = await api(f"""mutation {{ insert_moments_one(object: {{id: 7, ts: "2004-10-19 11:00:00",
        tstz: "2015-10-18T10:00:00+02:00", d: "2014-09-20", tm: "10:00"}}) {{ {FIELDS} }} }}""")
    expected = {"id": 7, "ts": "2004-10-19T11:00:00", "tstz": "2015-10-18T08:00:00+00:00", "d": "2014-09-20",
                "tm": "10:00:00"}
    assert inserted == {"insert_moments_one": expected}
    assert await api(f"{{ moments_by_pk(id: 7) {{ {FIELDS} }} }}") == {"moments_by_pk": expected}
    updated = await api("""mutation { update_moments_by_pk(pk_columns: {id: 7},
        _set: {tstz: "2015-10-18 09:00:00", ts: "2004-10-19 12:00:00"}) { ts tstz } }""")
    # A timestamptz given no offset reads it as UTC (PostgreSQL's session zone).
    assert updated == {"update_moments_by_pk": {"ts": "2004-10-19T12:00:00", "tstz": "2015-10-18T09:00:00+00:00"}}
    codes = [e["extensions"]["code"] for e in (await api.raw(
        'mutation { insert_moments_one(object: {id: 8, tstz: "yesterday"}) { id } }'))["errors"]]
    assert codes == ["validation-failed"]
    url = sa.make_url(library_url)
    if url.get_backend_name() == "sqlite":
        # What SQLite stores: the text queries answer (README, Scalars).
        with sqlite3.connect(str(url.database)) as conn:
            stored = conn.execute("SELECT ts, tstz, d, tm FROM moments WHERE id = 7").fetchone()
        assert stored == ("2004-10-19T12:00:00", "2015-10-18T09:00:00+00:00", "2014-09-20", "10:00:00")


async def test_events_carry_iso_values_and_their_filters_compare_instants(api: Api, library_url: str) -> None:
    where = {"tstz": {"_gt": "2015-10-17T16:00:00+02:00"}}  # after 14:00 UTC
    async with api.ws() as ws:
        await subscribe(ws, "all", "moments")
        await subscribe(ws, "late", "moments", where=where)
        await api('mutation { insert_moments_one(object: {id: 10, tstz: "2015-10-17T15:00:00+02:00"}) { id } }')
        early = await change(ws, "all")
        assert early["record"]["tstz"] == "2015-10-17T13:00:00+00:00"
        inserted = await api(f"""mutation {{ insert_moments_one(object: {{id: 11, ts: "2004-10-19 11:00:00",
            tstz: "2015-10-17T10:00:00-05:00", d: "2014-09-20", tm: "10:00"}}) {{ {FIELDS} }} }}""")
        events = {message["id"]: message["payload"]["data"]["tableChanged"]
                  for message in [await ws.receive(), await ws.receive()]}
        assert events["all"]["record"] == events["late"]["record"] == inserted["insert_moments_one"]
        assert events["late"]["record"]["tstz"] == "2015-10-17T15:00:00+00:00"
        # Another program's texts, in an event as a query answers them; and matched by instant.
        # A timestamptz written without an offset is UTC (the other program's session zone here).
        utc = [] if sa.make_url(library_url).get_backend_name() == "sqlite" else ["SET TIME ZONE 'UTC'"]
        for key, tstz, expected_tstz in [(12, "2015-10-17 17:00:00+02:00", "2015-10-17T15:00:00+00:00"),
                                         (13, "2015-10-17 14:30:00", "2015-10-17T14:30:00+00:00")]:
            await _execute(library_url, *utc, f"INSERT INTO moments (id, ts, tstz) VALUES "
                                              f"({key}, '2004-10-19 10:23:54', '{tstz}')")
            events = {message["id"]: message["payload"]["data"]["tableChanged"]
                      for message in [await ws.receive(), await ws.receive()]}
            expected = {"id": key, "ts": "2004-10-19T10:23:54", "tstz": expected_tstz, "d": None, "tm": None}
            assert events["all"]["record"] == events["late"]["record"] == expected
            assert await api(f"{{ moments_by_pk(id: {key}) {{ {FIELDS} }} }}") == {"moments_by_pk": expected}


# -- the in-memory matcher and the SQL function, without a database -------------------------

MOMENTS = Table(
    "moments",
    (Column("id", Kind.INTEGER, False), Column("ts", Kind.DATETIME, True),
     Column("tstz", Kind.DATETIME, True, db_type="TIMESTAMP WITH TIME ZONE"),
     Column("d", Kind.DATE, True), Column("tm", Kind.TIME, True)),
    ("id",),
)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"tstz": {"_gte": "2015-10-17T14:30:00+00:00"}}, [1, 3]),
        ({"tstz": {"_eq": "2015-10-17T10:30:00-04:00"}}, [3]),
        ({"tstz": {"_lt": "2015-10-17T16:30:00+02:00"}}, [2]),
        ({"tstz": {"_neq": "2015-10-17 14:00:00Z"}}, [1, 3]),
        ({"tstz": {"_lte": "2015-10-17T14:30:00"}}, [2, 3]),
        ({"tstz": {"_in": ["2015-10-17T16:42:43+02:00", "2015-10-17 14:00:00Z"]}}, [1, 2]),
        ({"tstz": {"_nin": ["2015-10-17T16:42:43+02:00", "2015-10-17 14:00:00Z"]}}, [3]),
        ({"ts": {"_gt": "2004-10-19T10:00:00"}}, [1, 2]),
        ({"ts": {"_in": ["2004-10-19T10:24:00", "2004-10-19 09:00:00.25"]}}, [2, 3]),
        ({"tm": {"_gt": "10:00"}}, [1, 2]),
        ({"tstz": {"_like": "2015-10-17T14:%"}}, [1, 2, 3]),  # a pattern matches the answered text
        ({"_not": {"tstz": {"_gt": "2015-10-17T09:35:00-05:00"}}}, [2, 3]),
    ],
)
def test_the_event_matcher_compares_instants_as_sql_does(where: dict[str, Any], expected: list[int]) -> None:
    # The same filters as the SQL test above, on rows as events carry them (the answers).
    matcher = compile_matcher(parse_stream_where(MOMENTS, where), MOMENTS)
    assert [row["id"] for row in ANSWERS if matcher(row) is True] == expected


@pytest.mark.parametrize(
    ("kind", "text", "answered", "compared"),
    [
        (Kind.DATETIME, "2004-10-19 10:23:54", "2004-10-19T10:23:54", "2004-10-19T10:23:54.000000"),
        (Kind.DATETIME, "2015-10-17T14:42:43Z", "2015-10-17T14:42:43+00:00", "2015-10-17T14:42:43.000000"),
        (Kind.DATETIME, "2015-10-17T16:00:00.5+02:00", "2015-10-17T14:00:00.500000+00:00",
         "2015-10-17T14:00:00.500000"),
        (Kind.DATETIME, "2015-10-17", "2015-10-17T00:00:00", "2015-10-17T00:00:00.000000"),
        (Kind.DATE, "2014-09-14", "2014-09-14", "2014-09-14"),
        (Kind.TIME, "10:23", "10:23:00", "10:23:00.000000"),
        # timetz keeps its offset in answers (as PostgreSQL's) and compares as UTC.
        (Kind.TIME, "01:00:00+02:00", "01:00:00+02:00", "23:00:00.000000"),
        (Kind.DATETIME, "not a date", "not a date", "not a date"),
        (Kind.DATE, "2014-13-45", "2014-13-45", "2014-13-45"),
        # No date, of the answer's shape: keyed as SQL keys it without a parse.
        (Kind.DATETIME, "2024-13-01T00:00:00", "2024-13-01T00:00:00", "2024-13-01T00:00:00.000000"),
    ],
)
def test_answered_and_compared_forms(kind: Kind, text: str, answered: str, compared: str) -> None:
    assert answer(kind, text) == answered
    assert instant(kind, text) == compared
    assert instant_sql(text, kind.value) == compared


def test_the_sql_function_passes_what_is_no_date_through() -> None:
    assert instant_sql(None, "datetime") is None
    assert instant_sql(1234, "datetime") == 1234
    assert instant_sql(b"\x00", "datetime") == b"\x00"
    assert instant_sql("2015-10-17", "no such kind") == "2015-10-17"


RULES = """\
tables:
  moments:
    select:
      user: {filter: {tstz: {_lte: X-Hasura-User-Id}}, columns: [id, tstz]}
"""
SECRET = "forgegraph-datetime-tests-0123456789abcdef"


async def test_a_timestamptz_without_an_offset_is_utc(api: Api, library_url: str) -> None:
    """As PostgreSQL reads one in the session's UTC: SQLite's CURRENT_TIMESTAMP writes '2024-01-02 03:04:05'."""
    utc = [] if sa.make_url(library_url).get_backend_name() == "sqlite" else ["SET TIME ZONE 'UTC'"]
    await _execute(library_url, *utc, "INSERT INTO moments (id, tstz) VALUES (20, '2015-10-17 14:10:00'), "
                                      "(21, '2015-10-17T14:20:00.5')")
    data = await api("""{ moments(where: {id: {_gte: 20}}, order_by: {id: asc}) { tstz }
        between: moments(where: {tstz: {_gt: "2015-10-17T16:05:00+02:00", _lt: "2015-10-17T14:25:00Z"}},
                         order_by: {tstz: asc}) { id }
        moments_aggregate(where: {id: {_gte: 20}}) { aggregate { max { tstz } } } }""")
    assert data == {
        "moments": [{"tstz": "2015-10-17T14:10:00+00:00"}, {"tstz": "2015-10-17T14:20:00.500000+00:00"}],
        "between": [{"id": 20}, {"id": 21}],
        "moments_aggregate": {"aggregate": {"max": {"tstz": "2015-10-17T14:20:00.500000+00:00"}}},
    }


STORED = ["2024-01-02 03:04:05", "2024-01-02T03:04:05", "2024-01-02T03:04:05+00:00", "2024-01-02 03:04:05.5",
          "2024-01-02T05:04:05+02:00", "2024-02-30 10:00:00", "2024-02-29 10:00:00", "2024-01-01 24:00:00",
          "0000-01-01 10:00:00", "2024-13-01T00:00:00", "2024-01-02", "10:00", "garbage", 1700000000,
          "2024-01-02T03:04:60", "2O24-01-02T03:04:05+00:00", "2024-1x-02", "10:61:00", "٢٠٢٤-01-02T03:04:05",
          "0001-01-01T00:00:00+01:00", "9999-12-31 23:59:59-01:00", "00:30:00+01:00"]


async def test_sqlite_answers_in_sql_what_python_answers(api: Api, library_url: str, backend: str) -> None:
    """The query path renders the usual forms in SQL (graph.compile._query_sqlite), the rest in Python
    (graph.temporal), which events use for all: both must give the same text for any stored value."""
    if backend != "sqlite":
        other_database("SQLite keeps date/time columns as any text")
    path = sa.make_url(library_url).database
    with sqlite3.connect(str(path)) as conn:
        conn.executemany("INSERT INTO moments (id, ts, tstz, d, tm) VALUES (?, ?, ?, ?, ?)",
                         [(100 + i, v, v, v, v) for i, v in enumerate(STORED)])
    data = await api(f"{{ moments(where: {{id: {{_gte: 100}}}}, order_by: {{id: asc}}) {{ {FIELDS} }} }}")
    for row, stored in zip(data["moments"], STORED, strict=True):
        if isinstance(stored, int):  # SQLite's integer (NUMERIC affinity): its digits, as before
            expected = {"id": row["id"], "ts": str(stored), "tstz": str(stored), "d": str(stored), "tm": str(stored)}
        else:
            expected = {"id": row["id"], "ts": answer(Kind.DATETIME, stored), "tstz": answer_zoned(stored),
                        "d": answer(Kind.DATE, stored), "tm": answer(Kind.TIME, stored)}
        assert row == expected, stored
        event_row, bad = row_image(MOMENTS, orjson.dumps({"id": row["id"], "ts": stored, "tstz": stored,
                                                          "d": stored, "tm": stored}))
        assert event_row == expected, stored
        assert bad == []


@pytest.mark.parametrize("kind", [Kind.DATETIME, Kind.DATE, Kind.TIME])
def test_sqlite_compares_by_the_key_the_event_matcher_uses(kind: Kind) -> None:
    """The SQL key (shapes in SQL, the rest by fg_instant) is graph.temporal.instant, for any stored value."""
    column = sa.table("v", sa.column("x")).c.x
    key = comparable(column, kind, "sqlite").compile(dialect=sqlite_dialect(), compile_kwargs={"literal_binds": True})
    conn = sqlite3.connect(":memory:")
    configure_sqlite(conn)  # registers fg_instant, as on every connection of ours
    conn.execute("CREATE TABLE v (x TIMESTAMP)")
    conn.executemany("INSERT INTO v VALUES (?)", [(v,) for v in STORED])
    keys = [row[0] for row in conn.execute(f"SELECT {key} FROM v ORDER BY rowid")]
    conn.close()
    assert keys == [instant(kind, v) for v in STORED]
    # The event matcher keys rows as answered, which name the same instants as the stored texts.
    answered = [answer(kind, v) if isinstance(v, str) else v for v in STORED]
    assert [instant(kind, v) for v in answered] == keys
    if kind is Kind.DATETIME:
        assert [instant(kind, answer_zoned(v)) if isinstance(v, str) else v for v in STORED] == keys


def test_sqlite_reads_postgresql_zoned_type_names(tmp_path: Path) -> None:
    """By SQLite's affinity rules SQLAlchemy read `timestamptz` as NUMERIC, which refused dates."""
    path = tmp_path / "zoned.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE z (id INTEGER PRIMARY KEY, a timestamptz, b TIMESTAMP WITH TIME ZONE, "
                     "c timetz, d time with time zone, e TIMESTAMP, f datetime)")
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    try:
        model = asyncio.run(reflect(engine))
    finally:
        asyncio.run(engine.dispose())
    columns = {c.name: (c.kind, c.db_type) for c in model.table("z").columns}
    assert columns == {
        "id": (Kind.INTEGER, "INTEGER"),
        "a": (Kind.DATETIME, "TIMESTAMP WITH TIME ZONE"),
        "b": (Kind.DATETIME, "TIMESTAMP WITH TIME ZONE"),
        "c": (Kind.TIME, "TIME WITH TIME ZONE"),
        "d": (Kind.TIME, "TIME WITH TIME ZONE"),
        "e": (Kind.DATETIME, "TIMESTAMP"),
        "f": (Kind.DATETIME, "DATETIME"),
    }


async def test_a_rule_compares_a_session_value_as_an_instant(library_url: str, tmp_path: Path) -> None:
    """A rule's session variable is a statement parameter (graph.rules.to_sql): compared by instant too."""
    await _execute(
        library_url,
        "CREATE TABLE moments (id INTEGER PRIMARY KEY, ts TIMESTAMP, tstz TIMESTAMP WITH TIME ZONE, d DATE, tm TIME)",
        f"INSERT INTO moments (id, ts, tstz, d, tm) VALUES {', '.join(ROWS)}",
    )
    rules = tmp_path / "permissions.yaml"
    rules.write_text(RULES)
    server = LiveServer(create_app(database=library_url, permissions=str(rules), jwt_secret=SECRET))
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as http:
            for until, expected in [("2015-10-17T10:30:00-04:00", [2, 3]), ("2015-10-17 14:00:00Z", [2]),
                                    ("2015-10-17T16:42:43+02:00", [1, 2, 3])]:
                claims = {"role": "user", "sub": until, "exp": int(time.time()) + 3600}
                headers = {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}
                response = await http.post("/graphql", headers=headers,
                                           json={"query": "{ moments(order_by: {id: asc}) { id } }"})
                assert response.json() == {"data": {"moments": [{"id": i} for i in expected]}}, until
    finally:
        server.stop()
