"""A 64-bit integer a query answers can be sent back as an Int input (SPEC section 4).

SQLite integers are 64-bit whatever a column's declared type, and Int
answers them exactly; the same value must then find its row by key, in a
`where` (literal and variable), in updates and deletes by key, and in a
subscription's `where`. Beyond 64 bits, and for non-integers, Int inputs
are refused with validation-failed. A value *written* into an Int column
stays 32-bit, as in Hasura (the conformance case insert_integer_overflow). A
PostgreSQL `integer` column is 32-bit in the database itself: a wider key
finds no row there, or its driver refuses it; never a crash.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import httpx
import pytest

from tests.conftest import TRANSPORT_WS, GraphQLWS, LiveServer
from tests.test_realtime import CHANGES, change, subscribed

BIG = 2**53 + 1  # not a double: a client that rounds it would find another row
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])
postgres_only = pytest.mark.parametrize("backend", ["postgres"])


async def graphql(server: LiveServer, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as http:
        response = await http.post("/graphql", json={"query": query, "variables": variables})
        body: dict[str, Any] = response.json()
        return body


async def data(server: LiveServer, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = await graphql(server, query, variables)
    assert "errors" not in body, body
    answer: dict[str, Any] = body["data"]
    return answer


def codes(body: dict[str, Any]) -> list[str]:
    assert body.get("errors"), body
    return [e["extensions"]["code"] for e in body["errors"]]


def fill(document: str, operand: object) -> str:
    """`document` with its `@@` written as `operand`."""
    return document.replace("@@", str(operand))


def insert_from_another_program(url: str, post_id: int) -> None:
    """A post with `post_id` written by another connection, as another program would."""
    path = url.split("///", 1)[1]
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO posts (id, title, user_id, published) VALUES (?, 'big', 1, 1)", (post_id,))


BY_PK_LITERAL = "{ posts_by_pk(id: @@) { id title } }"
BY_PK_VARIABLE = "query($id: Int!) { posts_by_pk(id: $id) { id title } }"
WHERE_LITERAL = "{ posts(where: {id: {_eq: @@}}) { id title } }"
WHERE_VARIABLE = "query($id: Int) { posts(where: {id: {_eq: $id}}) { id title } }"
WHERE_IN_VARIABLE = "query($ids: [Int!]) { posts(where: {id: {_in: $ids}}, order_by: {id: asc}) { id } }"


@sqlite_only
async def test_a_64_bit_key_a_query_answers_finds_its_row_again(serve: Any, library_url: str) -> None:
    server = serve(database=library_url)
    insert_from_another_program(library_url, BIG)
    listed = await data(server, "{ posts(order_by: {id: desc}, limit: 1) { id } }")
    assert listed["posts"] == [{"id": BIG}]  # answered exactly
    # Each read twice, and after a small key, so that a cached or bound plan serves it too.
    for _ in range(2):
        assert (await data(server, fill(BY_PK_LITERAL, 1)))["posts_by_pk"]["id"] == 1
        assert await data(server, fill(BY_PK_LITERAL, BIG)) == {"posts_by_pk": {"id": BIG, "title": "big"}}
        assert (await data(server, BY_PK_VARIABLE, {"id": 1}))["posts_by_pk"]["id"] == 1
        assert await data(server, BY_PK_VARIABLE, {"id": BIG}) == {"posts_by_pk": {"id": BIG, "title": "big"}}
        assert await data(server, fill(WHERE_LITERAL, BIG)) == {"posts": [{"id": BIG, "title": "big"}]}
        assert (await data(server, WHERE_VARIABLE, {"id": 2}))["posts"] == [{"id": 2, "title": "second post"}]
        assert await data(server, WHERE_VARIABLE, {"id": BIG}) == {"posts": [{"id": BIG, "title": "big"}]}
        assert await data(server, WHERE_IN_VARIABLE, {"ids": [1, BIG]}) == {"posts": [{"id": 1}, {"id": BIG}]}
        # The neighbours a double would round to are other keys.
        assert await data(server, WHERE_VARIABLE, {"id": BIG - 1}) == {"posts": []}
    assert await data(server, fill("{ posts(where: {id: {_gt: @@}}) { id } }", 2**53)) == {"posts": [{"id": BIG}]}


@sqlite_only
async def test_a_64_bit_key_is_updated_deleted_and_watched(serve: Any, library_url: str) -> None:
    server = serve(database=library_url)
    async with GraphQLWS.open(server, protocol=TRANSPORT_WS) as ws:
        await ws.subscribe("big", CHANGES, {"table": "posts", "where": {"id": {"_eq": BIG}}})
        literal = fill("""subscription($table: String!) { tableChanged(table: $table, where: {id: {_eq: @@}}) {
          type table id record old_record cursor } }""", BIG)
        await ws.subscribe("literal", literal, {"table": "posts"})
        await subscribed(ws)
        insert_from_another_program(library_url, BIG)
        created = await both(ws)
        assert (created["type"], created["record"]["id"]) == ("create", BIG)
        await data(server, 'mutation { update_posts_by_pk(pk_columns: {id: 1}, _set: {title: "not it"}) { id } }')
        updated = await data(
            server,
            "mutation($id: Int!) { update_posts_by_pk(pk_columns: {id: $id}, _set: {title: \"renamed\"}) { id title } }",
            {"id": BIG},
        )
        assert updated == {"update_posts_by_pk": {"id": BIG, "title": "renamed"}}
        event = await both(ws)
        assert (event["type"], event["record"]["id"], event["record"]["title"]) == ("update", BIG, "renamed")
        renamed = await data(
            server, fill('mutation { update_posts(where: {id: {_eq: @@}}, _set: {title: "again"}) { affected_rows } }', BIG)
        )
        assert renamed == {"update_posts": {"affected_rows": 1}}
        assert (await both(ws))["record"]["title"] == "again"
        deleted = await data(server, fill("mutation { delete_posts_by_pk(id: @@) { id title } }", BIG))
        assert deleted == {"delete_posts_by_pk": {"id": BIG, "title": "again"}}
        gone = await both(ws)
        assert (gone["type"], gone["old_record"]["id"]) == ("delete", BIG)
    assert await data(server, BY_PK_VARIABLE, {"id": BIG}) == {"posts_by_pk": None}
    # Written into an Int column, a value stays GraphQL's 32 bits, as in Hasura
    # (conformance: insert/insert_integer_overflow); a bigint column takes 64.
    for document, variables in [
        ('mutation { insert_posts_one(object: {id: @@, title: "api", user_id: 1}) { id } }', None),
        ('mutation($id: Int!) { insert_posts_one(object: {id: $id, title: "api", user_id: 1}) { id } }', {"id": 2**31}),
        ('mutation($v: Int!) { update_posts_by_pk(pk_columns: {id: 1}, _set: {user_id: $v}) { id } }', {"v": BIG}),
        ("mutation { update_posts(where: {id: {_eq: @@}}, _set: {user_id: @@}) { affected_rows } }", None),
    ]:
        for _ in range(2):  # and again, from a cached plan
            body = await graphql(server, fill(document, BIG), variables)
            assert codes(body) == ["validation-failed"], body
            assert "32-bit" in body["errors"][0]["message"], body
    listed = await data(server, "{ posts(order_by: {id: asc}) { id user_id } }")
    assert [p["id"] for p in listed["posts"]] == [1, 2, 3, 4]  # nothing written
    assert {p["user_id"] for p in listed["posts"]} <= {1, 2, 3}


async def both(ws: GraphQLWS) -> dict[str, Any]:
    """The one event both subscriptions (`big`: a variable, `literal`) get, checked to be the same."""
    events = {}
    for _ in range(2):
        message = await ws.receive()
        assert message["type"] == "next", message
        events[message["id"]] = message["payload"]["data"]["tableChanged"]
    assert events.keys() == {"big", "literal"} and events["big"] == events["literal"], events
    return events["big"]


@pytest.mark.parametrize(
    ("operand", "as_variable"),
    [
        (2**63, True), (2**63, False), (-(2**63) - 1, True), (-(2**63) - 1, False), (10**30, False),
        (1.5, True), (1.5, False), ("1", True), ('"1"', False), (True, True), ("true", False),
    ],
)  # fmt: skip
@sqlite_only
async def test_int_inputs_beyond_64_bits_or_not_integers_are_refused(
    serve: Any, library_url: str, operand: Any, as_variable: bool
) -> None:
    server = serve(database=library_url)
    if as_variable:
        body = await graphql(server, WHERE_VARIABLE, {"id": operand})
        by_pk = await graphql(server, BY_PK_VARIABLE, {"id": operand})
    else:
        body = await graphql(server, fill("{ posts(where: {id: {_eq: @@}}) { id } }", operand))
        by_pk = await graphql(server, fill("{ posts_by_pk(id: @@) { id } }", operand))
    assert codes(body) == ["validation-failed"], body
    assert codes(by_pk) == ["validation-failed"], by_pk
    if isinstance(operand, int) and not isinstance(operand, bool):
        assert "64-bit" in body["errors"][0]["message"], body
    # An integral float is an integer, as GraphQL takes it.
    assert await data(server, WHERE_VARIABLE, {"id": 1.0}) == {"posts": [{"id": 1, "title": "Hello World"}]}


@postgres_only
async def test_a_64_bit_input_for_a_32_bit_postgres_column_finds_nothing_or_is_refused(
    serve: Any, library_url: str
) -> None:
    """PostgreSQL compares an `integer` column with a wider number (no row has that key)
    or its driver refuses the parameter; a wider value written into an Int column is
    refused before the database, as on SQLite: validation-failed, never a crash."""
    server = serve(database=library_url)
    lookups = [
        (fill(BY_PK_LITERAL, BIG), None, {"posts_by_pk": None}),
        (BY_PK_VARIABLE, {"id": BIG}, {"posts_by_pk": None}),
        (fill(WHERE_LITERAL, BIG), None, {"posts": []}),
        (WHERE_VARIABLE, {"id": BIG}, {"posts": []}),
        (WHERE_IN_VARIABLE, {"ids": [1, BIG]}, {"posts": [{"id": 1}]}),
        (fill("mutation { delete_posts_by_pk(id: @@) { id } }", BIG), None, {"delete_posts_by_pk": None}),
        ('mutation($id: Int!) { update_posts_by_pk(pk_columns: {id: $id}, _set: {title: "x"}) { id } }',
         {"id": BIG}, {"update_posts_by_pk": None}),
    ]
    stores = [
        (fill('mutation { insert_posts_one(object: {id: @@, title: "x", user_id: 1}) { id } }', BIG), None),
        ("mutation($id: Int!) { insert_posts_one(object: {id: $id, title: \"x\", user_id: 1}) { id } }", {"id": BIG}),
        ("mutation($u: Int!) { update_posts_by_pk(pk_columns: {id: 1}, _set: {user_id: $u}) { id } }", {"u": BIG}),
        ("mutation($u: Int!) { update_posts_by_pk(pk_columns: {id: 1}, _set: {user_id: $u}) { id } }", {"u": 2**31}),
    ]
    for _ in range(2):  # and again, from a cached or bound plan
        for query, variables, expected in lookups:
            # No row has that key; or the driver refuses to send it as the column's type.
            body = await graphql(server, query, variables)
            assert body == {"data": expected} or codes(body) == ["validation-failed"], (query, body)
        for query, variables in stores:
            body = await graphql(server, query, variables)
            assert codes(body) == ["validation-failed"], (query, body)
            assert "32-bit" in body["errors"][0]["message"], body
    # The server carries on: 32-bit keys work, and a subscription with the wide key is served.
    assert (await data(server, BY_PK_VARIABLE, {"id": 1}))["posts_by_pk"]["id"] == 1
    async with GraphQLWS.open(server, protocol=TRANSPORT_WS) as ws:
        where = {"_or": [{"id": {"_eq": BIG}}, {"id": {"_eq": 2}}]}
        await ws.subscribe("big", CHANGES, {"table": "posts", "where": where})
        await subscribed(ws)
        await data(server, 'mutation { update_posts_by_pk(pk_columns: {id: 2}, _set: {title: "two"}) { id } }')
        assert (await change(ws, "big"))["record"]["id"] == 2
