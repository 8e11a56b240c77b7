"""Issue 15's day-one features under permission rules and as change events, on both databases.

What the feature files (test_update_operators, test_upsert, test_aggregates,
test_distinct_on, test_scalar_fidelity) leave out: every JSON operator under
a role's update rule and as an event; `_inc` on many rows; `update_t_many`
entries of several rows, of none, rolled back, and seen through a role;
upserts by `insert_t_one`, that do nothing, that rewrite equal values, by
a role, and seen through a subscriber's rules, as events; one request's
upsert, update_t_many and `_inc` events in the order they ran;
relationship aggregates and `distinct_on` under a role's rows and columns
(and none for a table the role may not select);
an `_ilike` row rule and subscription filter folding non-ASCII case; and
the bench's aggregate query (bench/run.py) being one statement.
Real servers on real sockets, over the library database (tests/library.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from graph.migrate import migrate, seed_demo_data
from tests.conftest import Api, GraphQL, GraphQLWS, Launch
from tests.test_realtime import change, cursors, subscribe

SECRET = "forgegraph-day-one-tests-secret-0123456789abcdef"
ADMIN_SECRET = "forgegraph-day-one-admin-secret"
ADMIN = {"X-Admin-Secret": ADMIN_SECRET}
RULES = """\
tables:
  users:
    select:
      editor: {filter: {}, columns: "*"}
      namer: {filter: {}, columns: "*"}
      reader: {filter: {}, columns: [id, name]}
      finder: {filter: {name: {_ilike: "%ANTÔNIO%"}}, columns: [id, name]}
    update:
      # Own row only, which must stay active; only the JSON column.
      editor: {filter: {id: {_eq: X-User-Id}}, check: {active: {_eq: true}}, columns: [profile]}
      namer: {filter: {}, columns: [name]}
  posts:
    select:
      editor: {filter: {}, columns: "*"}
      reader: {filter: {published: {_eq: true}}, columns: [id, title, user_id]}
    insert:
      editor: {check: {user_id: {_eq: X-User-Id}}, columns: [id, title, user_id]}
    update:
      editor: {filter: {user_id: {_eq: X-User-Id}}, columns: [title], set: {editor_id: X-User-Id}}
"""
START = {"a": [1, 2], "b": 1}
# Each JSON operator, the value it starts from and the value it leaves (jsonb's semantics).
JSON_EDITS: list[tuple[str, Any, Any]] = [
    ("_append: {profile: {c: 3}}", START, {"a": [1, 2], "b": 1, "c": 3}),
    ("_prepend: {profile: {b: 0, d: 4}}", START, {"a": [1, 2], "b": 1, "d": 4}),  # the column's keys win
    ('_delete_key: {profile: "b"}', START, {"a": [1, 2]}),
    ("_delete_elem: {profile: 1}", [1, 2, 3], [1, 3]),
    ('_delete_at_path: {profile: ["a", "0"]}', START, {"a": [2], "b": 1}),
]
SET_PROFILE = "mutation($v: JSON) { update_users(where: {id: {_in: [1, 2, 3]}}, _set: {profile: $v}) { affected_rows } }"
PROFILES = "{ users(order_by: {id: asc}) { id profile } }"
POST = "id title body published user_id editor_id rating published_at"


def codes(answer: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in answer.get("errors", [])]


def bearer(role: str, user_id: int) -> dict[str, str]:
    claims = {"sub": str(user_id), "role": role, "exp": int(time.time()) + 3600}
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, 'HS256')}"}


Post = Callable[..., dict[str, Any]]


@pytest.fixture
def as_role(library_url: str, serve: Any, tmp_path: Path) -> Iterator[Callable[[str, int], Post]]:
    """as_role(role, user_id) -> post(query, variables=None): the whole answer; ("admin", 0) for the admin."""
    rules = tmp_path / "permissions.yaml"
    rules.write_text(RULES)
    server = serve(database=library_url, permissions=str(rules), jwt_secret=SECRET, admin_secret=ADMIN_SECRET)
    clients: list[httpx.Client] = []

    def client(role: str, user_id: int) -> Post:
        headers = ADMIN if role == "admin" else bearer(role, user_id)
        http = httpx.Client(base_url=server.url, timeout=30, trust_env=False, headers=headers)
        clients.append(http)

        def post(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
            response = http.post("/graphql", json={"query": query, "variables": variables})
            assert response.status_code == 200, response.text
            return response.json()  # type: ignore[no-any-return]

        return post

    yield client
    for http in clients:
        http.close()


@dataclass
class Site:
    """A server under RULES: an admin client for writes, and sockets for any role."""

    api: Api

    async def __call__(self, query: str, variables: dict[str, Any] | None = None, **headers: str) -> dict[str, Any]:
        """The whole answer, as the admin or with the given headers (which replace the admin's)."""
        response = await self.api.http.post("/graphql", json={"query": query, "variables": variables},
                                            headers=headers or ADMIN)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = await self(query, variables)
        assert "errors" not in body, body
        return body["data"]  # type: ignore[no-any-return]

    async def socket(self, role: str, user_id: int, stack: AsyncExitStack) -> GraphQLWS:
        ws: GraphQLWS = await stack.enter_async_context(self.api.ws(init=False))
        await ws.init({"headers": ADMIN if role == "admin" else bearer(role, user_id)})
        return ws


@pytest.fixture
async def site(launch: Launch, tmp_path: Path) -> Site:
    rules = tmp_path / "permissions.yaml"
    rules.write_text(RULES)
    api = await launch(permissions=str(rules), jwt_secret=SECRET, admin_secret=ADMIN_SECRET)
    return Site(api)


async def marker(site: Site, ws: GraphQLWS, op_id: str) -> None:
    """Nothing else was delivered on `op_id`: a later write's event arrives next."""
    await site.data('mutation { insert_posts_one(object: {id: 500, title: "marker", user_id: 1, published: true}) '
                    "{ id } }")
    event = await change(ws, op_id)
    assert (event["type"], event["record"]["title"]) == ("create", "marker"), event


# -- JSON operators ---------------------------------------------------------------------------------


def test_each_json_operator_follows_the_update_rule(as_role: Callable[[str, int], Post]) -> None:
    admin, own, inactive, namer = as_role("admin", 0), as_role("editor", 3), as_role("editor", 2), as_role("namer", 1)
    for operator, start, expected in JSON_EDITS:
        assert "errors" not in admin(SET_PROFILE, {"v": start})
        # The rule's filter: user 3's row only, whatever the request's `where`.
        done = own(f"mutation {{ update_users(where: {{}}, {operator}) {{ affected_rows returning {{ id profile }} }} }}")
        assert done == {"data": {"update_users": {"affected_rows": 1, "returning": [{"id": 3, "profile": expected}]}}}, operator
        by_pk = own(f"mutation {{ update_users_by_pk(pk_columns: {{id: 1}}, {operator}) {{ id }} }}")
        assert by_pk == {"data": {"update_users_by_pk": None}}, operator
        # The rule's check over the edited row: user 2 is not active; nothing is written.
        assert codes(inactive(f"mutation {{ update_users(where: {{}}, {operator}) {{ affected_rows }} }}")) == [
            "permission-denied"
        ], operator
        # A role that may not update the column has no such operator.
        assert codes(namer(f"mutation {{ update_users(where: {{}}, {operator}) {{ affected_rows }} }}")) == [
            "validation-failed"
        ], operator
        profiles = admin(PROFILES)["data"]["users"]
        assert profiles == [{"id": 1, "profile": start}, {"id": 2, "profile": start}, {"id": 3, "profile": expected}]


async def test_each_json_operator_arrives_as_an_update_event_with_the_new_value(api: Api) -> None:
    async with api.ws() as ws:
        await subscribe(ws, "1", "users", where={"id": {"_eq": 1}})
        for operator, start, expected in JSON_EDITS:
            await api('mutation($v: JSON) { update_users_by_pk(pk_columns: {id: 1}, _set: {profile: $v}) { id } }',
                      {"v": start})
            assert (await change(ws, "1"))["record"]["profile"] == start
            await api(f"mutation {{ update_users_by_pk(pk_columns: {{id: 1}}, {operator}) {{ id }} }}")
            event = await change(ws, "1")
            assert event["type"] == "update", operator
            assert (event["old_record"]["profile"], event["record"]["profile"]) == (start, expected), operator
            row = await api("{ users_by_pk(id: 1) { id name email score active born created_at profile } }")
            assert event["record"] == row["users_by_pk"]


# -- _inc -------------------------------------------------------------------------------------------


async def test_an_inc_of_many_rows_delivers_one_update_event_per_row(api: Api) -> None:
    async with api.ws() as ws:
        await subscribe(ws, "1", "tags")
        await api("mutation { update_tags(where: {}, _inc: {weight: 10}) { affected_rows } }")
        events = [await change(ws, "1") for _ in range(3)]
        await api('mutation { insert_tags_one(object: {post_id: 2, name: "marker"}) { name } }')
        assert (await change(ws, "1"))["record"]["name"] == "marker"
    cursors(events)
    assert {e["type"] for e in events} == {"update"}
    seen = sorted((e["record"]["name"], e["old_record"]["weight"], e["record"]["weight"]) for e in events)
    assert seen == [("intro", 1, 11), ("misc", None, None), ("news", 2, 12)]
    assert sorted(e["id"]["name"] for e in events) == ["intro", "misc", "news"]


# -- update_t_many ----------------------------------------------------------------------------------


async def test_update_many_delivers_each_changed_row_entry_by_entry(api: Api) -> None:
    async with api.ws() as ws:
        await subscribe(ws, "1", "posts")
        data = await api("""mutation { update_posts_many(updates: [
            {where: {user_id: {_eq: 1}}, _inc: {rating: 0.25}},
            {where: {id: {_eq: 99}}, _set: {title: "none"}},
            {where: {id: {_in: [1, 4]}}, _set: {title: "x"}},
            {where: {id: {_eq: 1}}, _set: {title: "y"}, _inc: {user_id: 2}}]) { affected_rows } }""")
        assert [a["affected_rows"] for a in data["update_posts_many"]] == [2, 0, 2, 1]
        events = [await change(ws, "1") for _ in range(5)]
        await api('mutation { insert_posts_one(object: {title: "marker", user_id: 1}) { id } }')
        assert (await change(ws, "1"))["record"]["title"] == "marker"
    cursors(events)
    assert {e["type"] for e in events} == {"update"}
    # Entries in order; the rows of one entry in any order.
    first, third, fourth = events[:2], events[2:4], events[4]
    assert sorted((e["record"]["id"], e["record"]["rating"]) for e in first) == [(1, "4.75"), (2, None)]
    assert sorted((e["record"]["id"], e["record"]["title"]) for e in third) == [(1, "x"), (4, "x")]
    assert [e["old_record"]["rating"] for e in third if e["record"]["id"] == 1] == ["4.75"]
    assert (fourth["record"]["id"], fourth["record"]["title"], fourth["record"]["user_id"]) == (1, "y", 3)
    assert (fourth["old_record"]["title"], fourth["old_record"]["user_id"]) == ("x", 1)


async def test_an_update_many_that_fails_delivers_nothing(api: Api) -> None:
    async with api.ws() as ws:
        await subscribe(ws, "1", "posts")
        body = await api.raw("""mutation { update_posts_many(updates: [
            {where: {}, _set: {title: "changed"}},
            {where: {id: {_eq: 2}}, _set: {user_id: 999}}]) { affected_rows } }""")
        assert codes(body) == ["constraint-violation"]
        await api('mutation { insert_posts_one(object: {title: "marker", user_id: 1}) { id } }')
        event = await change(ws, "1")
    assert (event["type"], event["record"]["title"]) == ("create", "marker")


async def test_update_many_events_follow_the_subscribers_rules(site: Site) -> None:
    async with AsyncExitStack() as stack:
        ws = await site.socket("reader", 1, stack)
        await subscribe(ws, "r", "posts")
        data = await site.data("""mutation { update_posts_many(updates: [
            {where: {id: {_eq: 2}}, _set: {title: "hidden"}},
            {where: {id: {_eq: 1}}, _set: {title: "seen"}, _inc: {rating: 1}},
            {where: {id: {_eq: 3}}, _set: {published: false}},
            {where: {id: {_eq: 2}}, _set: {published: true}}]) { affected_rows } }""")
        assert [a["affected_rows"] for a in data["update_posts_many"]] == [1, 1, 1, 1]
        # Post 2 is unpublished (not the reader's) until the last entry: it enters the view then.
        events = [await change(ws, "r") for _ in range(3)]
        await marker(site, ws, "r")
    assert [(e["type"], e["id"]) for e in events] == [("update", 1), ("delete", 3), ("create", 2)]
    assert events[0]["record"] == {"id": 1, "title": "seen", "user_id": 1}  # no rating: not the reader's column
    assert events[2]["record"] == {"id": 2, "title": "hidden", "user_id": 1}


# -- upserts ----------------------------------------------------------------------------------------


async def test_insert_one_upserts_arrive_as_update_create_or_nothing(api: Api) -> None:
    upsert = """mutation($o: users_insert_input!, $c: [users_update_column!]!, $w: users_bool_exp) {
        insert_users_one(object: $o, on_conflict: {constraint: users_email_key, update_columns: $c, where: $w}) { id } }"""
    async with api.ws() as ws:
        await subscribe(ws, "1", "users")
        await api(upsert, {"o": {"name": "Caroline", "email": "carol@example.com"}, "c": ["name"]})
        updated = await change(ws, "1")
        await api(upsert, {"o": {"name": "Eve", "email": "eve@example.com"}, "c": ["name"]})
        created = await change(ws, "1")
        # On conflict, nothing to update or a `where` the row fails: no write, no event.
        assert (await api(upsert, {"o": {"name": "No", "email": "alice@example.com"}, "c": []})) == {
            "insert_users_one": None
        }
        assert (await api(upsert, {"o": {"name": "No", "email": "alice@example.com"}, "c": ["name"],
                                   "w": {"active": {"_eq": False}}})) == {"insert_users_one": None}
        await api('mutation { insert_users_one(object: {name: "marker"}) { id } }')
        last = await change(ws, "1")
    assert (updated["type"], updated["id"]) == ("update", 3)
    assert (updated["old_record"]["name"], updated["record"]["name"]) == ("Carol", "Caroline")
    assert (created["type"], created["record"]["name"], created["old_record"]) == ("create", "Eve", None)
    assert (last["type"], last["record"]["name"]) == ("create", "marker")
    cursors([updated, created, last])


async def test_a_roles_upserts_arrive_as_its_rules_let_them_write(site: Site) -> None:
    upsert = """mutation {{ insert_posts_one(object: {{id: {id}, title: "{title}", user_id: {user}}},
        on_conflict: {{constraint: posts_pkey, update_columns: [title]}}) {{ id title editor_id }} }}"""
    editor = bearer("editor", 3)
    async with AsyncExitStack() as stack:
        ws = await site.socket("admin", 0, stack)
        await subscribe(ws, "1", "posts")
        # Its own post: updated, the update preset written too.
        assert await site(upsert.format(id=4, title="Mine", user=3), **editor) == {
            "data": {"insert_posts_one": {"id": 4, "title": "Mine", "editor_id": 3}}
        }
        updated = await change(ws, "1")
        # Someone else's post: the update filter leaves it alone; no event.
        assert await site(upsert.format(id=1, title="Stolen", user=3), **editor) == {"data": {"insert_posts_one": None}}
        # Refused requests write nothing: a column outside the role's update columns, a failing insert check.
        refused = await site("""mutation { insert_posts(objects: [{id: 4, title: "t", user_id: 3}],
            on_conflict: {constraint: posts_pkey, update_columns: [user_id]}) { affected_rows } }""", **editor)
        assert codes(refused) == ["validation-failed"]
        assert codes(await site(upsert.format(id=21, title="theirs", user=1), **editor)) == ["permission-denied"]
        # A new row is inserted.
        assert (await site(upsert.format(id=20, title="New", user=3), **editor))["data"]["insert_posts_one"]["id"] == 20
        created = await change(ws, "1")
        await marker(site, ws, "1")
    assert (updated["type"], updated["old_record"]["title"], updated["record"]["title"]) == ("update", "hello again", "Mine")
    assert updated["record"]["editor_id"] == 3
    assert (created["type"], created["record"]["id"], created["record"]["title"]) == ("create", 20, "New")


# -- aggregates and distinct_on under a role ----------------------------------------------------------


def test_relationship_aggregates_and_distinct_on_see_only_the_roles_rows_and_columns(
    as_role: Callable[[str, int], Post],
) -> None:
    reader = as_role("reader", 1)
    # Post 2 (user 1's) is unpublished: the reader does not count, sum, order or group it.
    seen = reader("""{ users(order_by: {id: asc}) {
        id
        posts_by_user_id_aggregate { aggregate { count max { id title } sum { id } } nodes { id } }
        distinct: posts_by_user_id_aggregate(distinct_on: [user_id]) { aggregate { count } }
        newest: posts_by_user_id(distinct_on: [user_id], order_by: [{user_id: asc}, {id: desc}]) { id } } }""")
    assert seen == {"data": {"users": [
        {"id": 1, "posts_by_user_id_aggregate": {"aggregate": {"count": 1, "max": {"id": 1, "title": "Hello World"},
                                                               "sum": {"id": 1}}, "nodes": [{"id": 1}]},
         "distinct": {"aggregate": {"count": 1}}, "newest": [{"id": 1}]},
        {"id": 2, "posts_by_user_id_aggregate": {"aggregate": {"count": 1, "max": {"id": 3, "title": "Third"},
                                                               "sum": {"id": 3}}, "nodes": [{"id": 3}]},
         "distinct": {"aggregate": {"count": 1}}, "newest": [{"id": 3}]},
        {"id": 3, "posts_by_user_id_aggregate": {"aggregate": {"count": 1, "max": {"id": 4, "title": "hello again"},
                                                               "sum": {"id": 4}}, "nodes": [{"id": 4}]},
         "distinct": {"aggregate": {"count": 1}}, "newest": [{"id": 4}]},
    ]}}
    ordered = reader("{ users(order_by: [{posts_by_user_id_aggregate: {max: {id: desc}}}]) { id } }")
    assert ordered == {"data": {"users": [{"id": 3}, {"id": 2}, {"id": 1}]}}
    # Columns the role may not select are in no aggregate, count, filter, order or distinct_on.
    for refused in (
        "{ users { posts_by_user_id_aggregate { aggregate { sum { rating } } } } }",
        "{ users { posts_by_user_id_aggregate { aggregate { count(columns: [rating]) } } } }",
        "{ users { posts_by_user_id_aggregate { aggregate { max { body } } } } }",
        "{ users { posts_by_user_id_aggregate { nodes { rating } } } }",
        "{ users { posts_by_user_id_aggregate(where: {rating: {_gt: 1}}) { aggregate { count } } } }",
        "{ users(order_by: {posts_by_user_id_aggregate: {max: {rating: asc}}}) { id } }",
        "{ users { posts_by_user_id(distinct_on: [published]) { id } } }",
        "{ users_aggregate { aggregate { max { email } } } }",
    ):
        assert codes(reader(refused)) == ["validation-failed"], refused


# -- _ilike ---------------------------------------------------------------------------------------------

NAMES = ["Santo Antônio", "SÃO PAULO", "ANTONIO", "santo antônio de jesus"]


def test_an_ilike_row_rule_folds_non_ascii_case(as_role: Callable[[str, int], Post]) -> None:
    admin, finder = as_role("admin", 0), as_role("finder", 1)
    objects = [{"id": 100 + i, "name": name} for i, name in enumerate(NAMES)]
    assert "errors" not in admin("mutation($o: [users_insert_input!]!) { insert_users(objects: $o) { affected_rows } }",
                                 {"o": objects})
    seen = finder("""{ users(order_by: {id: asc}) { id name }
        users_aggregate { aggregate { count } }
        santo: users(where: {name: {_ilike: "SANTO%"}}, order_by: {id: asc}) { id } }""")
    assert seen == {"data": {
        "users": [{"id": 100, "name": "Santo Antônio"}, {"id": 103, "name": "santo antônio de jesus"}],
        "users_aggregate": {"aggregate": {"count": 2}},
        "santo": [{"id": 100}, {"id": 103}],
    }}


async def test_ilike_in_a_subscription_and_a_row_rule_folds_non_ascii_case(site: Site) -> None:
    async with AsyncExitStack() as stack:
        admin = await site.socket("admin", 0, stack)
        await subscribe(admin, "w", "users", where={"name": {"_ilike": "%são%"}})
        finder = await site.socket("finder", 1, stack)
        await subscribe(finder, "f", "users")
        for i, name in enumerate(NAMES):
            await site.data(f'mutation {{ insert_users_one(object: {{id: {100 + i}, name: "{name}"}}) {{ id }} }}')
        # A rename makes a row leave the finder's view and another enter it.
        await site.data('mutation { a: update_users_by_pk(pk_columns: {id: 100}, _set: {name: "Santo"}) { id }'
                        ' b: update_users_by_pk(pk_columns: {id: 102}, _set: {name: "antônio"}) { id } }')
        await site.data('mutation { insert_users_one(object: {id: 110, name: "são marker"}) { id } }')
        await site.data('mutation { insert_users_one(object: {id: 111, name: "antÔnio marker"}) { id } }')
        watched = [await change(admin, "w") for _ in range(2)]
        found = [await change(finder, "f") for _ in range(5)]
    assert [(e["type"], e["record"]["name"]) for e in watched] == [("create", "SÃO PAULO"), ("create", "são marker")]
    assert [(e["type"], e["id"]) for e in found] == [
        ("create", 100), ("create", 103), ("delete", 100), ("create", 102), ("create", 111),
    ]
    assert found[0]["record"] == {"id": 100, "name": "Santo Antônio"}


# -- the bench's aggregate query -------------------------------------------------------------------------

# bench/run.py's QUERIES["aggregates"], on the demo schema `forgegraph migrate` makes.
BENCH_AGGREGATES = (
    "{ users(limit: 20, order_by: {id: asc}) { id name"
    " posts_aggregate { aggregate { count } }"
    " posts(order_by: {id: desc}, limit: 1) { id title } } }"
)


def test_the_benchs_aggregate_query_is_one_statement(backend: str, tmp_path: Path, serve: Any,
                                                     request: pytest.FixtureRequest) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}" if backend == "sqlite" else request.getfixturevalue("fresh_postgres")

    async def demo() -> None:
        await migrate(url)
        await seed_demo_data(url)

    asyncio.run(demo())
    gql = GraphQL(serve(database=url))
    try:
        expected = gql("""{ users(limit: 20, order_by: {id: asc}) { id posts(order_by: {id: desc}) { id title } } }""")
        gql.server.statements.clear()
        users = gql(BENCH_AGGREGATES)["users"]
        selects = [s for s in gql.server.statements
                   if s.lstrip().upper().startswith(("SELECT", "WITH")) and "_forgegraph" not in s]
    finally:
        gql.http.close()
    assert len(selects) == 1, selects
    assert users and len(users) == len(expected["users"])
    for user, full in zip(users, expected["users"], strict=True):
        assert user["posts_aggregate"]["aggregate"]["count"] == len(full["posts"])
        assert user["posts"] == full["posts"][:1]


async def test_upserts_seen_through_a_subscribers_rules(site: Site) -> None:
    async with AsyncExitStack() as stack:
        ws = await site.socket("reader", 1, stack)
        await subscribe(ws, "r", "posts")
        # One request: post 1 leaves the reader's view, post 2 enters it, post 30 is new but unpublished, 31 is new.
        data = await site.data("""mutation { insert_posts(objects: [
            {id: 1, title: "Hello World", user_id: 1, published: false},
            {id: 2, title: "now public", user_id: 1, published: true},
            {id: 30, title: "draft", user_id: 1, published: false},
            {id: 31, title: "public", user_id: 1, published: true}],
            on_conflict: {constraint: posts_pkey, update_columns: [title, published]}) { affected_rows } }""")
        assert data["insert_posts"]["affected_rows"] == 4
        events = [await change(ws, "r") for _ in range(3)]
        await marker(site, ws, "r")
    assert [(e["type"], e["id"]) for e in events] == [("delete", 1), ("create", 2), ("create", 31)]
    assert events[1]["record"] == {"id": 2, "title": "now public", "user_id": 1}


async def test_an_upsert_that_rewrites_the_same_values_is_still_an_update(api: Api) -> None:
    async with api.ws() as ws:
        await subscribe(ws, "1", "users")
        await api("""mutation { insert_users_one(object: {id: 1, name: "Alice"},
            on_conflict: {constraint: users_pkey, update_columns: [name]}) { id } }""")
        event = await change(ws, "1")
    assert (event["type"], event["id"], event["record"]["name"], event["old_record"]["name"]) == (
        "update", 1, "Alice", "Alice"
    )


async def test_one_requests_upsert_update_many_and_inc_arrive_in_the_order_they_ran(api: Api) -> None:
    async with api.ws() as ws:
        await subscribe(ws, "1", "posts")
        await api("""mutation {
            a: insert_posts_one(object: {id: 4, title: "upserted", user_id: 3},
                                on_conflict: {constraint: posts_pkey, update_columns: [title]}) { id }
            b: update_posts_many(updates: [{where: {id: {_eq: 1}}, _set: {title: "many"}},
                                           {where: {id: {_eq: 4}}, _inc: {rating: 1}}]) { affected_rows }
            c: insert_posts_one(object: {id: 40, title: "new", user_id: 2},
                                on_conflict: {constraint: posts_pkey, update_columns: [title]}) { id }
            d: update_posts_by_pk(pk_columns: {id: 1}, _inc: {user_id: 1}) { id } }""")
        events = [await change(ws, "1") for _ in range(5)]
    cursors(events)
    assert [(e["type"], e["id"]) for e in events] == [
        ("update", 4), ("update", 1), ("update", 4), ("create", 40), ("update", 1),
    ]
    assert [events[0]["record"]["title"], events[2]["record"]["rating"], events[4]["record"]["user_id"]] == [
        "upserted", "4.25", 2,
    ]
    assert events[4]["old_record"]["title"] == "many"


def test_a_role_that_may_not_select_a_table_has_no_aggregate_of_it(as_role: Callable[[str, int], Post]) -> None:
    namer = as_role("namer", 1)  # selects users, not posts
    assert namer("{ users(where: {id: {_eq: 1}}) { name } }") == {"data": {"users": [{"name": "Alice"}]}}
    for refused in (
        "{ users { posts_by_user_id_aggregate { aggregate { count } } } }",
        "{ users(order_by: {posts_by_user_id_aggregate: {count: desc}}) { id } }",
        "{ users(where: {posts_by_user_id: {id: {_eq: 1}}}) { id } }",
        "{ posts_aggregate { aggregate { count } } }",
        "{ posts(distinct_on: [user_id]) { id } }",
    ):
        assert codes(namer(refused)) == ["validation-failed"], refused
