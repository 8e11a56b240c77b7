"""Mutation plans (graph.plans.mutation) answer exactly as graphql-core's execution does.

Two servers over twin databases take the same mutations in the same order:
one with the plans, one forced down the normal path (`mutations.enabled =
False`). Every answer must be equal (data, errors, codes, paths), and so must
the rows left behind and the change log the triggers wrote. Each mutation is
also marked with what the plan server must have done with it: answered it
itself ("plan"), handed it to the normal path after rolling back ("hand
over": every error), or never planned it ("normal": documents the plans do
not read). On SQLite and PostgreSQL, open and with permission rules.

On PostgreSQL a request handed over has drawn serial values twice (its
rolled-back attempt and the normal path's), so the mutations that fail come
last in each list, after every insert whose answer shows a generated id.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from graph.app import create_app
from graph.plans.mutation import MutationPlans
from tests import library
from tests.conftest import POSTGRES, LiveServer, _admin, unavailable

SECRET = "forgegraph-mutation-plan-tests-secret-0123456789"
PERMISSIONS = """\
tables:
  posts:
    select:
      user: {filter: {_or: [{published: {_eq: true}}, {user_id: {_eq: X-User-Id}}]}, columns: "*"}
      drafter: {filter: {_and: [{user_id: {_eq: X-User-Id}}, {published: {_eq: false}}]}, columns: [id, title, published, user_id]}
      editor: {filter: {published: {_eq: true}}, columns: [id, title, published]}
    insert:
      user: {check: {user_id: {_eq: X-User-Id}}, columns: [title, body, published], set: {user_id: X-User-Id}}
      drafter: {check: {published: {_eq: false}}, columns: [title, body, published], set: {user_id: X-User-Id}}
    update:
      user: {filter: {user_id: {_eq: X-User-Id}}, columns: [title, body, published]}
      editor: {filter: {}, check: {title: {_neq: bad}}, columns: [title, published]}
    delete:
      user: {filter: {user_id: {_eq: X-User-Id}}}
      editor: {filter: {}}
  tags:
    select:
      user: {filter: {post: {user_id: {_eq: X-User-Id}}}, columns: "*"}
    insert:
      user: {check: {post: {user_id: {_eq: X-User-Id}}}, columns: "*"}
"""
POST = "id title body published user_id editor_id rating published_at"
USER = "id name email score active born created_at profile"

Case = tuple[str, str, dict[str, Any] | None, str]
"""(who, document, variables, what the plan server does: plan | hand over | normal)"""

OPEN_CASES: list[Case] = [
    ("admin", f"""mutation ($t: String!, $r: String) {{
        insert_posts_one(object: {{title: $t, user_id: 1, rating: $r, published: true}}) {{ {POST} __typename }} }}""",
     {"t": "planned", "r": "12.50"}, "plan"),
    ("admin", f"""mutation {{ insert_users_one(object: {{name: "Dora", score: 2.5, active: false, born: "2001-02-03",
        created_at: "2024-05-06T07:08:09", profile: {{langs: ["de"], n: 1.5, big: 12345678901234}}}}) {{ {USER} }} }}""",
     None, "plan"),
    # Objects naming different columns: the normal path groups them, and so must the answer's order.
    ("admin", """mutation { __typename insert_posts(objects: [{title: "a", user_id: 1}, {title: "b", user_id: 2, body: "z"},
        {title: "c", user_id: 3}]) { affected_rows returning { id title body user_id } __typename } }""", None, "plan"),
    ("admin", """mutation ($objects: [posts_insert_input!]!) { insert_posts(objects: $objects) { affected_rows } }""",
     {"objects": []}, "plan"),
    ("admin", """mutation { insert_tags_one(object: {post_id: 2, name: "fresh", weight: 7}) { post_id name weight } }""",
     None, "plan"),
    ("admin", """mutation { update_tags_by_pk(pk_columns: {post_id: 1, name: "intro"}, _set: {weight: 5}) { post_id name weight } }""",
     None, "plan"),
    ("admin", """mutation { update_posts(where: {title: {_like: "%o%"}}, _set: {body: "o!"}) {
        affected_rows returning { id title body } } }""", None, "plan"),
    ("admin", """mutation ($ids: [Int!]) { update_posts(where: {id: {_in: $ids}}, _set: {published: false}) {
        returning { id published } affected_rows } }""", {"ids": [1, 2, 3]}, "plan"),
    ("admin", """mutation { update_posts_by_pk(pk_columns: {id: 999}, _set: {title: "none"}) { id } }""", None, "plan"),
    ("admin", """mutation { update_posts(where: {id: {_eq: 1}}, _set: {}) { affected_rows returning { id } } }""", None, "plan"),
    ("admin", """mutation { update_users_by_pk(pk_columns: {id: 2}, _set: {profile: null, score: 3}) { id profile score } }""",
     None, "plan"),
    ("admin", """mutation { delete_comments_by_pk(id: 1) { id body post_id } }""", None, "plan"),
    # Cascades: the post's comments and tags go too, and the change log shows them.
    ("admin", """mutation { delete_posts(where: {id: {_eq: 4}}) { affected_rows returning { id title } } }""", None, "plan"),
    ("admin", """mutation { delete_tags(where: {name: {_in: ["nothing"]}}) { affected_rows returning { name } } }""", None, "plan"),
    # Aliases, fragments and several fields: one transaction, answered in document order.
    ("admin", """mutation Two { first: insert_comments_one(object: {post_id: 2, body: "x"}) { ...c }
        second: update_comments(where: {post_id: {_eq: 2}}, _set: {body: "y"}) { affected_rows returning { ...c } }
        first_again: delete_comments_by_pk(id: 999) { id } }
        fragment c on comments { id body ... on comments { post_id } }""", None, "plan"),
    # What the plans do not read: relationships in the answer, @include.
    ("admin", """mutation { insert_posts_one(object: {title: "rel", user_id: 1}) { id user { name } } }""", None, "normal"),
    ("admin", """mutation ($yes: Boolean!) { insert_posts_one(object: {title: "dir", user_id: 1}) {
        id title @include(if: $yes) } }""", {"yes": False}, "normal"),
    # -- failures: rolled back, answered by the normal path --
    ("admin", """mutation { insert_users_one(object: {id: 1, name: "again"}) { id } }""", None, "hand over"),
    ("admin", """mutation { insert_users_one(object: {id: 50, name: "x", email: "alice@example.com"}) { id } }""",
     None, "hand over"),
    ("admin", """mutation { insert_posts_one(object: {id: 60, title: "x", user_id: 999}) { id } }""", None, "hand over"),
    ("admin", """mutation { insert_users_one(object: {id: 61, name: "x", born: "not a date"}) { id } }""", None, "hand over"),
    ("admin", """mutation { update_posts(where: {id: {_eq: 1}}) { affected_rows } }""", None, "hand over"),
    ("admin", """mutation ($t: String!) { insert_posts_one(object: {title: $t, user_id: 1}) { id } }""",
     {"t": None}, "hand over"),
    # The first field succeeds, the second fails: neither stands.
    ("admin", """mutation { ok: insert_users_one(object: {id: 70, name: "kept?"}) { id }
        bad: insert_users_one(object: {id: 1, name: "dup"}) { id } }""", None, "hand over"),
]

PERMITTED_CASES: list[Case] = [
    ("user1", """mutation { insert_posts_one(object: {title: "mine", published: false}) { id title user_id published } }""",
     None, "plan"),
    ("user1", """mutation { insert_posts(objects: [{title: "p1", published: true}, {title: "p2"}]) {
        affected_rows returning { id user_id } } }""", None, "plan"),
    ("drafter2", """mutation { insert_posts_one(object: {title: "draft"}) { id title published user_id } }""", None, "plan"),
    ("user2", """mutation { update_posts(where: {}, _set: {body: "two"}) { affected_rows returning { id body } } }""",
     None, "plan"),
    # Rows the editor may update but not see afterwards: counted, not returned.
    ("editor", """mutation { update_posts(where: {id: {_in: [1, 3]}}, _set: {published: false}) {
        affected_rows returning { id title published } } }""", None, "plan"),
    ("editor", """mutation { update_posts_by_pk(pk_columns: {id: 2}, _set: {title: "seen?"}) { id title } }""", None, "plan"),
    ("editor", """mutation { update_posts(where: {id: {_in: [2, 4]}}, _set: {title: "mixed"}) {
        affected_rows returning { id title } } }""", None, "plan"),
    # Deleted rows are shown as the session saw them before: only the published ones.
    ("editor", """mutation { delete_posts(where: {id: {_in: [1, 4]}}) { affected_rows returning { id title } } }""",
     None, "plan"),
    ("user1", """mutation { delete_posts_by_pk(id: 2) { id title } }""", None, "plan"),
    ("user1", """mutation { insert_tags_one(object: {post_id: 3, name: "nope"}) { name } }""", None, "hand over"),
    ("drafter2", """mutation { insert_posts_one(object: {title: "loud", published: true}) { id } }""", None, "hand over"),
    ("editor", """mutation { update_posts(where: {published: {_eq: true}}, _set: {title: "bad"}) { affected_rows } }""",
     None, "hand over"),
]


def _mint(sub: str, role: str) -> str:
    return jwt.encode({"sub": sub, "role": role, "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256")


HEADERS = {
    "admin": {},
    "user1": {"Authorization": f"Bearer {_mint('1', 'user')}"},
    "user2": {"Authorization": f"Bearer {_mint('2', 'user')}"},
    "drafter2": {"Authorization": f"Bearer {_mint('2', 'drafter')}"},
    "editor": {"Authorization": f"Bearer {_mint('3', 'editor')}"},
}


@dataclass
class Twins:
    """The same database twice, served with and without the mutation plans."""

    urls: tuple[str, str]
    servers: tuple[LiveServer, LiveServer]

    @property
    def plans(self) -> MutationPlans:
        plans: MutationPlans = self.servers[0].app.state.runtime.mutations
        return plans

    def post(
        self, who: str, query: str, variables: dict[str, Any] | None, operation: str | None = None
    ) -> dict[str, Any]:
        """The answer both servers give, which must be the same."""
        answers = []
        for server in self.servers:
            response = httpx.post(
                server.url + "/graphql",
                json={"query": query, "variables": variables, "operationName": operation},
                headers=HEADERS[who],
                timeout=30,
                trust_env=False,
            )
            answers.append((response.status_code, response.json()))
        assert answers[0] == answers[1], query
        return answers[0][1]  # type: ignore[no-any-return]

    def run(self, cases: list[Case]) -> None:
        for who, query, variables, expected in cases:
            before = (self.plans.answered, self.plans.handed_over)
            body = self.post(who, query, variables)
            moved = (self.plans.answered - before[0], self.plans.handed_over - before[1])
            done = {(1, 0): "plan", (0, 1): "hand over", (0, 0): "normal"}.get(moved)
            assert done == expected, (query, body)
            assert ("errors" in body) == (expected == "hand over"), (query, body)

    def databases(self) -> list[dict[str, Any]]:
        return [asyncio.run(_contents(url)) for url in self.urls]


async def _contents(url: str) -> dict[str, Any]:
    """Every table's rows, and the change log without its cursors and times."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            out: dict[str, Any] = {}
            for table in library.metadata.sorted_tables:
                order = list(table.primary_key.columns) or [c for c in table.c if not isinstance(c.type, sa.JSON)]
                rows = (await conn.execute(sa.select(table).order_by(*order))).all()
                out[table.name] = [tuple(row) for row in rows]
            log = "SELECT table_name, op, old, new FROM _forgegraph_changes ORDER BY cursor"
            out["log"] = [tuple(row) for row in (await conn.execute(sa.text(log))).all()]
            return out
    finally:
        await engine.dispose()


def _twin_urls(backend: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if backend == "sqlite":
        urls = (f"sqlite+aiosqlite:///{tmp_path / 'plans.db'}", f"sqlite+aiosqlite:///{tmp_path / 'normal.db'}")
        for url in urls:
            asyncio.run(library.create(url))
        yield urls
        return
    names = [f"fg_plans_{uuid.uuid4().hex[:10]}", f"fg_normal_{uuid.uuid4().hex[:10]}"]
    for name in names:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        url = sa.make_url(POSTGRES)
        pair = tuple(url.set(database=n).render_as_string(hide_password=False) for n in names)
        for one in pair:
            asyncio.run(library.create(one))
        yield pair[0], pair[1]
    finally:
        for name in names:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def twin_urls(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    if backend == "postgres" and (reason := request.getfixturevalue("postgres_available")):
        unavailable("PostgreSQL", reason)
    yield from _twin_urls(backend, tmp_path)


@contextlib.contextmanager
def _serve(urls: tuple[str, str], **settings: Any) -> Iterator[Twins]:
    servers = tuple(LiveServer(create_app(database=url, **settings)) for url in urls)
    try:
        for server in servers:
            server.start()
        servers[1].app.state.runtime.mutations.enabled = False
        yield Twins(urls, servers)  # type: ignore[arg-type]
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def twins(twin_urls: tuple[str, str]) -> Iterator[Twins]:
    with _serve(twin_urls) as both:
        yield both


@pytest.fixture
def permitted_twins(twin_urls: tuple[str, str], tmp_path: Path) -> Iterator[Twins]:
    rules = tmp_path / "permissions.yaml"
    rules.write_text(PERMISSIONS)
    with _serve(twin_urls, permissions=str(rules), jwt_secret=SECRET) as both:
        yield both


def test_open_mutations_answer_as_the_normal_path(twins: Twins) -> None:
    twins.run(OPEN_CASES)
    planned, normal = twins.databases()
    assert planned == normal
    assert {(table, op) for table, op, *_ in planned["log"]} >= {("comments", "delete"), ("posts", "delete")}


def test_rules_apply_alike_on_both_paths(permitted_twins: Twins) -> None:
    permitted_twins.run(PERMITTED_CASES)
    planned, normal = permitted_twins.databases()
    assert planned == normal


def test_a_document_is_read_once_per_role(twins: Twins) -> None:
    query = 'mutation ($t: String!) { insert_posts_one(object: {title: $t, user_id: 1}) { id title } }'
    reads = twins.plans.reads
    for n in range(3):
        assert twins.post("admin", query, {"t": f"t{n}"})["data"]["insert_posts_one"]["title"] == f"t{n}"
    assert twins.plans.reads == reads + 1
    assert twins.plans.answered == 3


def test_the_named_operation_is_the_one_planned(twins: Twins) -> None:
    query = """mutation A { a: insert_users_one(object: {name: "A"}) { id } }
        mutation B { b: insert_users_one(object: {name: "B"}) { name } }"""
    assert twins.post("admin", query, None, "B") == {"data": {"b": {"name": "B"}}}
    assert twins.post("admin", query, None, "A") == {"data": {"a": {"id": 5}}}
    assert twins.plans.answered == 2


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_write_waits_for_another_writers_lock(twins: Twins) -> None:
    """The event loop never waits for SQLite's lock: the write goes to the driver's thread, which does."""
    blocker = sqlite3.connect(sa.make_url(twins.urls[0]).database or "", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    answers: list[dict[str, Any]] = []
    query = 'mutation { insert_users_one(object: {name: "late"}) { id name } }'
    writer = threading.Thread(target=lambda: answers.append(twins.post("admin", query, None)))
    writer.start()
    time.sleep(0.5)
    assert not answers  # waiting, not failed
    # The server still answers meanwhile.
    health = httpx.get(twins.servers[0].url + "/healthz", timeout=5, trust_env=False)
    assert health.status_code == 200
    blocker.execute("COMMIT")
    blocker.close()
    writer.join(timeout=30)
    assert answers == [{"data": {"insert_users_one": {"id": 4, "name": "late"}}}]
    assert twins.plans.answered == 1


ODD_TABLE = (
    'CREATE TABLE "Odd" (id INTEGER PRIMARY KEY, "select" TEXT, "Order" INTEGER, '
    '"group by" TEXT DEFAULT \'hidden\', "from" BOOLEAN)'
)


def test_names_that_need_quoting(twin_urls: tuple[str, str]) -> None:
    """SQL keywords, upper case, and a column GraphQL cannot name (left out of RETURNING's answer)."""

    async def create(url: str) -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(sa.text(ODD_TABLE))
        finally:
            await engine.dispose()

    for url in twin_urls:
        asyncio.run(create(url))
    with _serve(twin_urls) as twins:
        twins.run([
            ("admin", """mutation { insert_Odd(objects: [{id: 1, select: "s", Order: 2, from: true}, {id: 2}]) {
                returning { id select Order from } } }""", None, "plan"),
            ("admin", """mutation { update_Odd_by_pk(pk_columns: {id: 2}, _set: {select: "t", from: false}) {
                select from } }""", None, "plan"),
            ("admin", """mutation { delete_Odd(where: {Order: {_eq: 2}}) { returning { id select } } }""", None, "plan"),
        ])
        planned, normal = twins.databases()
        assert planned == normal


def test_a_value_the_answer_cannot_hold_rolls_back_and_is_the_normal_paths_error(
    twin_urls: tuple[str, str],
) -> None:
    """An infinite float in `returning` (GraphQL's Float has none): an error, and the update does not stand."""

    async def plant(url: str) -> None:
        engine = create_async_engine(url)
        infinity = "'Infinity'" if url.startswith("postgresql") else "9e999"
        try:
            async with engine.begin() as conn:
                await conn.execute(sa.text("CREATE TABLE big (id BIGINT PRIMARY KEY, name TEXT, x REAL)"))
                await conn.execute(sa.text(f"INSERT INTO big (id, name, x) VALUES (3000000000, 'big', {infinity})"))
        finally:
            await engine.dispose()

    for url in twin_urls:
        asyncio.run(plant(url))
    with _serve(twin_urls) as twins:
        query = """mutation { update_big(where: {name: {_eq: "big"}}, _set: {name: "bigger"}) {
            affected_rows returning { id name x } } }"""
        twins.run([("admin", query, None, "hand over")])
        assert twins.post("admin", "{ big { name } }", None) == {"data": {"big": [{"name": "big"}]}}
        planned, normal = twins.databases()
        assert planned == normal
