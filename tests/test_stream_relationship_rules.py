"""Stream filters through relationships (issue 16, part 1; SPEC section 5): real sockets, both databases.

A customer's rule on invoice lines goes through the line's invoice; a
client's `where` on posts goes through the post's user. Such parts are
decided per batch with one SQL statement per shape (graph.events.decide),
whatever the number of subscribers. "No event" is shown by a later marker
event arriving next.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import GraphQLWS, LiveServer
from tests.test_forgebase import RawClient, ws_url
from tests.test_sse import events

SECRET = "forgegraph-relationship-rules-hs256-secret-0123456789"
ADMIN_SECRET = "forgegraph-relationship-rules-admin-secret"
ADMIN = {"X-Admin-Secret": ADMIN_SECRET}

PERMISSIONS = """\
tables:
  invoice_lines:
    select:
      customer: {filter: {invoice: {customer_id: {_eq: X-User-Id}}}, columns: "*"}
  invoices:
    select:
      customer: {filter: {customer_id: {_eq: X-User-Id}}, columns: "*"}
  posts:
    select:
      customer: {columns: "*"}
  comments:
    select:
      # Two relationships deep, with a literal beside the session's value.
      customer: {filter: {post: {_and: [{published: {_eq: true}}, {user: {id: {_eq: X-User-Id}}}]}}, columns: "*"}
  users:
    select:
      customer: {columns: [id, name]}
"""

CHANGES = """subscription($table: String!, $where: JSON, $since: String) {
  tableChanged(table: $table, where: $where, since: $since) { type id cursor } }"""

CUSTOMERS = 6


def token(customer: int) -> str:
    claims = {"sub": str(customer), "role": "customer", "exp": int(time.time() + 3600)}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def headers(customer: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(customer)}"}


@pytest.fixture
def invoices_url(library_url: str) -> str:
    """The library database with invoices (invoice n belongs to customer n) and their lines."""

    async def create() -> None:
        metadata = sa.MetaData()
        invoices = sa.Table(
            "invoices", metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("customer_id", sa.Integer, nullable=False),
        )
        sa.Table(
            "invoice_lines", metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("invoice_id", sa.ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False),
            sa.Column("amount", sa.Integer, nullable=False),
        )
        engine = create_async_engine(library_url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
                await conn.execute(invoices.insert(), [{"id": n, "customer_id": n} for n in range(1, CUSTOMERS + 1)])
        finally:
            await engine.dispose()

    asyncio.run(create())
    return library_url


@dataclass
class Shop:
    server: LiveServer
    http: httpx.AsyncClient

    async def admin(self, query: str) -> dict[str, Any]:
        response = await self.http.post("/graphql", json={"query": query}, headers=ADMIN)
        body = response.json()
        assert response.status_code == 200 and "errors" not in body, body
        return body["data"]  # type: ignore[no-any-return]

    async def add_line(self, line: int, invoice: int, amount: int = 1) -> None:
        await self.admin(f"mutation {{ insert_invoice_lines_one(object: {{id: {line}, invoice_id: {invoice}, "
                         f"amount: {amount}}}) {{ id }} }}")

    async def update_line(self, line: int, values: str) -> None:
        await self.admin(f"mutation {{ update_invoice_lines_by_pk(pk_columns: {{id: {line}}}, _set: {values}) {{ id }} }}")

    async def customer_ws(self, stack: AsyncExitStack, customer: int) -> GraphQLWS:
        ws = await stack.enter_async_context(GraphQLWS.open(self.server, init=False))
        await ws.init({"headers": headers(customer)})
        return ws


@pytest.fixture
def pool_size() -> int:
    return 10


@pytest.fixture
async def shop(invoices_url: str, serve: Any, tmp_path: Path, pool_size: int) -> AsyncIterator[Shop]:
    permissions = tmp_path / "permissions.yaml"
    permissions.write_text(PERMISSIONS)
    server = serve(
        database=invoices_url, permissions=str(permissions), jwt_secret=SECRET, admin_secret=ADMIN_SECRET,
        pool_size=pool_size,
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as http:
        yield Shop(server, http)


async def sync(ws: GraphQLWS) -> None:
    await ws.send({"type": "ping"})
    assert await ws.receive() == {"type": "pong"}


async def subscribe(ws: GraphQLWS, op_id: str, table: str, where: Any = None, since: str | None = None) -> None:
    await ws.subscribe(op_id, CHANGES, {"table": table, "where": where, "since": since})
    await sync(ws)


async def seen(ws: GraphQLWS, count: int) -> list[tuple[str, Any]]:
    """The next `count` events as (type, id)."""
    out = []
    for _ in range(count):
        payload = await ws.next()
        assert "errors" not in payload, payload
        event = payload["data"]["tableChanged"]
        out.append((event["type"], event["id"]))
    return out


# -- a permission rule through a relationship -------------------------------------------


async def test_a_customer_receives_the_lines_of_their_own_invoices_and_no_one_else_does(shop: Shop) -> None:
    async with AsyncExitStack() as stack:
        alice, bob, carol = [await shop.customer_ws(stack, n) for n in (1, 2, 3)]
        for ws in (alice, bob, carol):
            await subscribe(ws, "lines", "invoice_lines")
        await shop.add_line(10, invoice=1)
        await shop.add_line(11, invoice=2)
        await shop.update_line(10, "{invoice_id: 2}")  # out of Alice's view, into Bob's
        await shop.update_line(10, "{invoice_id: 3}")  # out of Bob's, into Carol's
        await shop.update_line(10, "{amount: 5}")
        await shop.admin("mutation { delete_invoice_lines_by_pk(id: 10) { id } }")
        for marker, invoice in ((91, 1), (92, 2), (93, 3)):
            await shop.add_line(marker, invoice=invoice)

        assert await seen(alice, 3) == [("create", 10), ("delete", 10), ("create", 91)]
        assert await seen(bob, 4) == [("create", 11), ("create", 10), ("delete", 10), ("create", 92)]
        assert await seen(carol, 4) == [("create", 10), ("update", 10), ("delete", 10), ("create", 93)]


@pytest.mark.parametrize(("backend", "pool_size"), [("postgres", 1)])
async def test_decisions_share_a_pool_of_one_connection(shop: Shop) -> None:
    """The statements run on the query connections: one connection serves writes, the log and them."""
    async with AsyncExitStack() as stack:
        alice = await shop.customer_ws(stack, 1)
        await subscribe(alice, "lines", "invoice_lines")
        again = await shop.customer_ws(stack, 1)
        await subscribe(again, "lines", "invoice_lines", since="0")
        for line in range(70, 75):
            await shop.add_line(line, invoice=1 + line % 2)
        expected = [("create", line) for line in range(70, 75) if line % 2 == 0]
        assert await seen(alice, len(expected)) == expected
        assert await seen(again, len(expected)) == expected


async def test_a_change_of_the_related_table_alone_is_no_event(shop: Shop) -> None:
    async with AsyncExitStack() as stack:
        alice, bob = await shop.customer_ws(stack, 1), await shop.customer_ws(stack, 2)
        for ws in (alice, bob):
            await subscribe(ws, "lines", "invoice_lines")
        await shop.add_line(20, invoice=1)  # Alice's
        # Decided (for Bob too: one statement decides a batch for every subscriber of a shape)
        # before the invoice changes hands, or it would be decided against the new owner.
        assert await seen(alice, 1) == [("create", 20)]
        # The invoice passes to Bob: his view of line 20 changes, but no line changed.
        await shop.admin("mutation { update_invoices_by_pk(pk_columns: {id: 1}, _set: {customer_id: 2}) { id } }")
        # The next change of the line is decided against the invoice as it is now.
        await shop.update_line(20, "{amount: 7}")
        await shop.add_line(92, invoice=2)
        assert await seen(bob, 2) == [("update", 20), ("create", 92)]


async def test_one_statement_per_batch_and_shape_for_many_subscribers(shop: Shop) -> None:
    async with AsyncExitStack() as stack:
        clients = {}
        for customer in range(1, CUSTOMERS + 1):
            for copy in range(2):
                ws = await shop.customer_ws(stack, customer)
                await subscribe(ws, "lines", "invoice_lines")
                clients[customer, copy] = ws
        shop.server.statements.clear()
        lines = ", ".join(f"{{id: {100 + n}, invoice_id: {n}, amount: {n}}}" for n in range(1, CUSTOMERS + 1))
        await shop.admin(f"mutation {{ insert_invoice_lines(objects: [{lines}]) {{ affected_rows }} }}")
        for (customer, _copy), ws in clients.items():
            assert await seen(ws, 1) == [("create", 100 + customer)]
        decisions = [s for s in shop.server.statements if "_fg_rows" in s]
        assert len(decisions) == 1, decisions


async def test_replay_with_since_gives_the_same_decisions(shop: Shop) -> None:
    async with AsyncExitStack() as stack:
        bob = await shop.customer_ws(stack, 2)
        await subscribe(bob, "lines", "invoice_lines")
        await shop.add_line(30, invoice=2)
        first = (await bob.next())["data"]["tableChanged"]
        await shop.add_line(31, invoice=1)
        await shop.update_line(30, "{invoice_id: 1}")
        await shop.update_line(31, "{invoice_id: 2}")
        await shop.add_line(32, invoice=2)
        live = await seen(bob, 3)
        assert live == [("delete", 30), ("create", 31), ("create", 32)]

        again = await shop.customer_ws(stack, 2)
        await again.subscribe("lines", CHANGES, {"table": "invoice_lines", "since": first["cursor"]})
        assert await seen(again, 3) == live


async def test_a_rule_two_relationships_deep(shop: Shop) -> None:
    async with AsyncExitStack() as stack:
        alice, bob = [await shop.customer_ws(stack, n) for n in (1, 2)]
        for ws in (alice, bob):
            await subscribe(ws, "comments", "comments")
        ids = []
        for post in (2, 1, 3):  # Alice's draft, Alice's published post, Bob's published post
            created = await shop.admin(f'mutation {{ insert_comments_one(object: {{post_id: {post}, body: "c"}}) {{ id }} }}')
            ids.append(created["insert_comments_one"]["id"])
        await shop.admin("mutation { update_posts_by_pk(pk_columns: {id: 2}, _set: {published: true}) { id } }")
        await shop.admin(f'mutation {{ update_comments_by_pk(pk_columns: {{id: {ids[0]}}}, _set: {{body: "d"}}) {{ id }} }}')
        assert await seen(alice, 2) == [("create", ids[1]), ("update", ids[0])]
        assert await seen(bob, 1) == [("create", ids[2])]


@pytest.mark.parametrize("max_parameters", [30_000, 20])
async def test_random_moves_reach_exactly_the_owners(
    shop: Shop, max_parameters: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Single and bulk writes in a random order; at 20 parameters every batch is split into statements."""
    import random

    from graph.events import decide

    monkeypatch.setattr(decide, "MAX_PARAMETERS", max_parameters)
    rng = random.Random(16)
    lines: dict[int, int] = {}  # line -> invoice (invoice n is customer n's)
    expected: dict[int, list[tuple[str, Any]]] = {c: [] for c in range(1, CUSTOMERS + 1)}

    def moved(line: int, before: int | None, after: int | None) -> None:
        for customer, owed in expected.items():
            was, now = before == customer, after == customer
            if was or now:
                owed.append(("update" if was and now else "create" if now else "delete", line))

    async with AsyncExitStack() as stack:
        clients = {c: await shop.customer_ws(stack, c) for c in range(1, CUSTOMERS + 1)}
        for ws in clients.values():
            await subscribe(ws, "lines", "invoice_lines")
        for step in range(40):
            choice = rng.random()
            if choice < 0.3 or not lines:
                line, invoice = 200 + step, rng.randint(1, CUSTOMERS)
                await shop.add_line(line, invoice)
                lines[line] = invoice
                moved(line, None, invoice)
            elif choice < 0.6:
                chosen = sorted(rng.sample(sorted(lines), min(len(lines), 4)))
                invoice = rng.randint(1, CUSTOMERS)
                await shop.admin(f"mutation {{ update_invoice_lines(where: {{id: {{_in: {chosen}}}}}, "
                                 f"_set: {{invoice_id: {invoice}}}) {{ affected_rows }} }}")
                for line in chosen:  # in one batch, in the order the database updated them
                    moved(line, lines[line], invoice)
                    lines[line] = invoice
            elif choice < 0.8:
                line = rng.choice(sorted(lines))
                await shop.update_line(line, f"{{amount: {step}}}")
                moved(line, lines[line], lines[line])
            else:
                line = rng.choice(sorted(lines))
                await shop.admin(f"mutation {{ delete_invoice_lines_by_pk(id: {line}) {{ id }} }}")
                moved(line, lines.pop(line), None)
        for customer, ws in clients.items():
            got = await seen(ws, len(expected[customer]))
            # A bulk update's rows arrive in the database's order: compare each line's own sequence.
            assert sorted(got, key=lambda e: e[1]) == sorted(expected[customer], key=lambda e: e[1]), customer
            await shop.add_line(900 + customer, customer)
            assert await seen(ws, 1) == [("create", 900 + customer)]


async def test_a_failed_decision_costs_only_the_streams_that_needed_it(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    from graph.events.decide import Decider

    async def failing(*_args: Any) -> Any:
        raise ConnectionError("the database went away")

    async with AsyncExitStack() as stack:
        alice = await shop.customer_ws(stack, 1)
        admin = await stack.enter_async_context(GraphQLWS.open(shop.server, init=False))
        await admin.init({"headers": ADMIN})
        for ws in (alice, admin):
            await subscribe(ws, "lines", "invoice_lines")
        with monkeypatch.context() as patched:
            patched.setattr(Decider, "decide", failing)
            await shop.add_line(60, invoice=1)
            assert await seen(admin, 1) == [("create", 60)]
        await shop.add_line(61, invoice=1)
        assert await seen(alice, 1) == [("create", 61)]
        assert await seen(admin, 1) == [("create", 61)]
        metrics = (await shop.http.get("/metrics")).text
        assert "forgegraph_events_failed_total 1" in metrics


async def test_lines_deleted_with_their_invoice_reach_its_owner(shop: Shop) -> None:
    """ON DELETE CASCADE: the invoice is gone when the batch is decided; its old image in the batch decides."""
    async with AsyncExitStack() as stack:
        alice, bob = [await shop.customer_ws(stack, n) for n in (1, 2)]
        for ws in (alice, bob):
            await subscribe(ws, "lines", "invoice_lines")
        await shop.add_line(60, invoice=1)
        first = (await alice.next())["data"]["tableChanged"]
        await shop.add_line(61, invoice=1)
        await shop.add_line(62, invoice=2)
        # Decided while invoice 1 is still Alice's: a batch decided later reads the invoice as it is then.
        created = await seen(alice, 1)
        await shop.admin("mutation { delete_invoices_by_pk(id: 1) { id } }")  # lines 60 and 61 go with it
        # Invoice 1 again, now Carol's: a replay reads the live invoice as hers, the deleted one as Alice's.
        await shop.admin("mutation { insert_invoices(objects: [{id: 1, customer_id: 3}, {id: 7, customer_id: 1}]) "
                         "{ affected_rows } }")
        await shop.add_line(63, invoice=7)
        await shop.add_line(64, invoice=2)
        live = created + await seen(alice, 3)
        assert live[0] == ("create", 61) and sorted(live[1:3]) == [("delete", 60), ("delete", 61)]
        assert live[3] == ("create", 63)
        assert await seen(bob, 2) == [("create", 62), ("create", 64)]

        again = await shop.customer_ws(stack, 1)
        await again.subscribe("lines", CHANGES, {"table": "invoice_lines", "since": first["cursor"]})
        assert await seen(again, 4) == live


async def test_comments_deleted_with_their_post_reach_its_author(shop: Shop) -> None:
    """Two relationships deep: the deleted post's old image (published, user_id), then its user as it is."""
    async with AsyncExitStack() as stack:
        alice, bob = [await shop.customer_ws(stack, n) for n in (1, 2)]
        for ws in (alice, bob):
            await subscribe(ws, "comments", "comments")
        await shop.admin("mutation { delete_posts_by_pk(id: 1) { id } }")  # Alice's published post: comments 1, 2
        await shop.admin("mutation { update_posts_by_pk(pk_columns: {id: 2}, _set: {published: true}) { id } }")
        for post in (2, 3):
            await shop.admin(f'mutation {{ insert_comments_one(object: {{id: {10 + post}, post_id: {post}, '
                             f'body: "m"}}) {{ id }} }}')
        got = await seen(alice, 3)
        assert sorted(got[:2]) == [("delete", 1), ("delete", 2)] and got[2] == ("create", 12)
        assert await seen(bob, 1) == [("create", 13)]


async def test_a_stream_that_joins_while_its_batch_is_decided_gets_the_batch_once(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bob joins after the batch's statement ran without his values, before it is dispatched."""
    import threading

    from graph.events.decide import Decider, Shapes

    original = Decider.decide
    deciding, joined = threading.Event(), threading.Event()
    asked: list[set[Any]] = []

    async def paused(self: Decider, events: Any, shapes: Shapes) -> Any:
        decided = await original(self, events, shapes)
        asked.append({k for by_shape in shapes.by_table.values() for s in by_shape.values() for k in s.operands})
        if len(asked) == 1:
            deciding.set()
            while not joined.is_set():
                await asyncio.sleep(0.005)
        return decided

    async with AsyncExitStack() as stack:
        alice = await shop.customer_ws(stack, 1)
        await subscribe(alice, "lines", "invoice_lines")
        monkeypatch.setattr(Decider, "decide", paused)
        await shop.add_line(70, invoice=2)  # Bob's, committed; its batch is being decided for Alice only
        while not deciding.is_set():
            await asyncio.sleep(0.005)
        bob = await shop.customer_ws(stack, 2)
        await subscribe(bob, "lines", "invoice_lines")
        joined.set()
        await shop.add_line(71, invoice=2)
        await shop.add_line(72, invoice=1)
        assert await seen(bob, 2) == [("create", 70), ("create", 71)]
        assert await seen(alice, 1) == [("create", 72)]
        # One more statement, for Bob's values only.
        assert asked[:2] == [{(1,)}, {(2,)}]


async def test_more_subscribers_values_than_one_statement_takes(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    """20,000 sets of values with two parameters each: 40,000 parameters, over either database's limit."""
    import dataclasses

    from graph.events.decide import Decider, Shapes

    original = Decider.decide
    answered: list[Any] = []

    async def crowded(self: Decider, events: Any, shapes: Shapes) -> Any:
        more = Shapes()
        for by_shape in shapes.by_table.values():
            for shape in by_shape.values():
                more.add(dataclasses.replace(shape.part, values=(value,)) for value in range(1000, 21_000))
                real = [values for values, _count in shape.operands.values()]
                more.add(dataclasses.replace(shape.part, values=values) for values in [(2,), *real])
        decided = await original(self, events, more)
        answered.append(decided)
        return decided

    async with AsyncExitStack() as stack:
        alice = await shop.customer_ws(stack, 1)
        await subscribe(alice, "lines", "invoice_lines")
        monkeypatch.setattr(Decider, "decide", crowded)
        shop.server.statements.clear()
        await shop.admin("mutation { insert_invoice_lines(objects: [{id: 80, invoice_id: 2, amount: 1}, "
                         "{id: 81, invoice_id: 1, amount: 1}]) { affected_rows } }")
        assert await seen(alice, 1) == [("create", 81)]
        ((answers,),) = [list(decided.values()) for decided in answered]
        assert len(answers.asked) == 20_002
        assert answers.by_row == {(1,): frozenset({(1,)}), (2,): frozenset({(2,)})}
        decisions = [s for s in shop.server.statements if "_fg_rows" in s]
        assert len(decisions) == 5, len(decisions)  # 4,096 sets a statement


# -- a client's `where` through a relationship -------------------------------------------


async def test_a_client_where_through_a_relationship_filters(shop: Shop) -> None:
    async with AsyncExitStack() as stack:
        ws = await shop.customer_ws(stack, 1)
        await subscribe(ws, "alice", "posts", where={"user": {"name": {"_eq": "Alice"}}})
        created = await shop.admin('mutation { insert_posts_one(object: {title: "b", user_id: 2}) { id } }')
        bobs = created["insert_posts_one"]["id"]
        created = await shop.admin('mutation { insert_posts_one(object: {title: "a", user_id: 1}) { id } }')
        alices = created["insert_posts_one"]["id"]
        await shop.admin(f"mutation {{ update_posts_by_pk(pk_columns: {{id: {bobs}}}, _set: {{user_id: 1}}) {{ id }} }}")
        await shop.admin(f"mutation {{ update_posts_by_pk(pk_columns: {{id: {alices}}}, _set: {{user_id: 3}}) {{ id }} }}")
        assert await seen(ws, 3) == [("create", alices), ("create", bobs), ("delete", alices)]


async def test_a_where_through_a_relationship_sees_only_what_the_role_may_select(shop: Shop) -> None:
    async with AsyncExitStack() as stack:
        ws = await shop.customer_ws(stack, 1)
        answers = []
        for op_id, where in (("1", {"user": {"email": {"_eq": "x"}}}), ("2", {"user": {"nonexistent": {"_eq": "x"}}})):
            await ws.subscribe(op_id, CHANGES, {"table": "posts", "where": where})
            message = await ws.receive()
            assert message["type"] == "error", message
            answers.append(message["payload"][0]["message"])
        assert answers[0].replace("email", "NAME") == answers[1].replace("nonexistent", "NAME")
        # A relationship to a table the role may not select reads as one that does not exist.
        await ws.subscribe("3", CHANGES, {"table": "posts", "where": {"tags": {"name": {"_eq": "x"}}}})
        await ws.subscribe("4", CHANGES, {"table": "posts", "where": {"nonexistent": {"name": {"_eq": "x"}}}})
        refused, missing = [(await ws.receive())["payload"][0]["message"] for _ in range(2)]
        assert refused.replace("tags", "NAME") == missing.replace("nonexistent", "NAME")

        # Through a relationship, the related table's own row rule applies too.
        await subscribe(ws, "lines", "invoice_lines", where={"invoice": {"id": {"_in": [1, 2]}}})
        await shop.add_line(40, invoice=2)  # Bob's invoice: not Alice's to see
        await shop.add_line(41, invoice=1)
        assert await seen(ws, 1) == [("create", 41)]


# -- the raw protocol and SSE share the rules ----------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_raw_protocol_and_sse_apply_the_relationship_rule(shop: Shop) -> None:
    raw_url = ws_url(shop.server) + f"?token={token(2)}"
    async with (
        RawClient.open(raw_url) as raw,
        events(shop.server, "invoice_lines", headers=headers(1)) as sse,
    ):
        await raw.subscribe("invoice_lines")
        await shop.add_line(50, invoice=1)
        await shop.add_line(51, invoice=2)
        message = await raw.receive()
        assert (message["type"], message["record"]["id"]) == ("create", 51)
        event = await sse.event()
        assert '"id":50' in event["data"].replace(" ", "")


# -- shapes and the matcher's lookups (pure) ------------------------------------------------


def _posts_model() -> Any:
    from tests.test_permissions import MODEL

    return MODEL


def test_parts_that_differ_only_in_values_share_a_shape() -> None:
    from graph.rules.parse import parse_trusted
    from graph.rules.related import related_parts

    model = _posts_model()
    posts = model.table("posts")

    def parts(exp: dict[str, Any]) -> Any:
        return related_parts(parse_trusted(posts, exp, model), posts)

    (seven,) = parts({"user": {"id": {"_eq": 7}}})
    (eight,) = parts({"_and": [{"published": {"_eq": True}}, {"user": {"id": {"_eq": 8}}}]})
    assert seven.shape == eight.shape and (seven.values, eight.values) == ((7,), (8,))
    assert seven.local_columns == ("user_id",)
    # Lists, patterns and _is_null are part of the shape; so is every relationship and column.
    (listed,) = parts({"user": {"id": {"_in": [7]}}})
    (named,) = parts({"user": {"name": {"_eq": "x"}}})
    assert len({seven.shape, listed.shape, named.shape}) == 3 and listed.values == ()
    # Under _or and _not too; a relationship nested in another is the outer one's SQL.
    assert len(parts({"_or": [{"_not": {"user": {"id": {"_eq": 1}}}}, {"user": {"posts": {"id": {"_eq": 2}}}}]})) == 2


def test_the_matcher_reads_a_relationship_part_from_the_batchs_answers() -> None:
    from graph.rules.matcher import compile_matcher
    from graph.rules.parse import parse_trusted
    from graph.rules.related import Answers, Truths, related_parts

    model = _posts_model()
    posts = model.table("posts")
    exp = parse_trusted(posts, {"user": {"id": {"_eq": 7}}}, model)
    truths = Truths()
    matcher = compile_matcher(exp, posts, truths)
    (part,) = related_parts(exp, posts)
    assert matcher({"user_id": 7}) is None  # nothing decided: UNKNOWN, no event
    truths.decided = {part.shape: Answers(frozenset({(7,)}), {(7,): frozenset({(7,)})})}
    assert matcher({"user_id": 7}) is True
    assert matcher({"user_id": 8}) is False
    assert matcher({"user_id": None}) is False  # no related row
    assert compile_matcher(parse_trusted(posts, {"_not": exp.plain()}, model), posts, truths)({"user_id": 8}) is True
    other = compile_matcher(parse_trusted(posts, {"user": {"id": {"_eq": 9}}}, model), posts, truths)
    assert other({"user_id": 7}) is None  # operands not decided for this batch (joined meanwhile)


def test_the_index_reaches_exactly_the_streams_whose_part_holds() -> None:
    from graph.events.change import ChangeEvent
    from graph.events.hub import Hub, StreamKey
    from graph.rules.parse import parse_trusted
    from graph.rules.related import Answers
    from tests.test_stream_index import Raw, Sink

    model = _posts_model()
    posts = model.table("posts")
    hub = Hub()
    sinks = {}
    for user in range(5):
        wheres = ({"user": {"id": {"_eq": user}}}, {"_or": [{"user": {"id": {"_eq": user}}}, {"id": {"_eq": 99}}]})
        for kind, where in enumerate(wheres, 1):
            sink = sinks[user, kind] = Sink(f"{user}")
            label = f"{user} {where}"
            hub.join(StreamKey("t", "posts", label), posts, parse_trusted(posts, where, model), lambda e, c: c, sink, Raw())
    shapes = list(hub.shapes.by_table["posts"])
    # The part holds for user_id 1 with operands 1 and for user_id 2 with operands 2 (as SQL would say).
    answers = Answers(frozenset((u,) for u in range(5)), {(1,): frozenset({(1,)}), (2,): frozenset({(2,)})})
    decided = {shape: answers for shape in shapes}
    hub.dispatch([ChangeEvent(1, "posts", "update", {"id": 1, "user_id": 1}, {"id": 1, "user_id": 2})], decided)
    got = {key: sink.received for key, sink in sinks.items() if sink.received}
    assert got == {(1, 1): ["delete"], (2, 1): ["create"], (1, 2): ["delete"], (2, 2): ["create"]}
    # Undecided: no stream through the relationship is reached; the `_or`'s other branch still is.
    hub.dispatch([ChangeEvent(2, "posts", "create", None, {"id": 99, "user_id": 1})], None)
    assert [key for key, sink in sinks.items() if len(sink.received) > (1 if key in got else 0)] == [
        (u, 2) for u in range(5)
    ]
