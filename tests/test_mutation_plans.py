"""Generated mutations answer as graphql-core's execution answered them (golden answers).

These cases once compared two servers over twin databases, one answering
mutations with the compiled plans and one with graphql-core's resolvers. The
resolvers' answers (data, errors, codes, paths, locations, HTTP status) and
the rows and change log they left behind were captured once, per database, in
`golden/mutation_plans.json`; the one path must give exactly those. On SQLite
and PostgreSQL, open and with permission rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
import time
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
from graph.compile.mutation import MutationPlans
from tests import library
from tests.conftest import LiveServer

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
      editor: {filter: {weight: {_gt: 1}}, columns: [post_id, name, weight]}
    insert:
      user: {check: {post: {user_id: {_eq: X-User-Id}}}, columns: "*"}
"""
POST = "id title body published user_id editor_id rating published_at"
USER = "id name email score active born created_at profile"
GOLDEN = Path(__file__).parent / "golden" / "mutation_plans.json"

Case = tuple[str, str, dict[str, Any] | None]
"""(who, document, variables)"""

OPEN_CASES: list[Case] = [
    ("admin", f"""mutation ($t: String!, $r: numeric) {{
        insert_posts_one(object: {{title: $t, user_id: 1, rating: $r, published: true}}) {{ {POST} __typename }} }}""",
     {"t": "planned", "r": "12.50"}),
    ("admin", f"""mutation {{ insert_users_one(object: {{name: "Dora", score: 2.5, active: false, born: "2001-02-03",
        created_at: "2024-05-06T07:08:09", profile: {{langs: ["de"], n: 1.5, big: 12345678901234}}}}) {{ {USER} }} }}""",
     None),
    # Objects naming different columns: the golden answers group them, and so must the answer's order.
    ("admin", """mutation { __typename insert_posts(objects: [{title: "a", user_id: 1}, {title: "b", user_id: 2, body: "z"},
        {title: "c", user_id: 3}]) { affected_rows returning { id title body user_id } __typename } }""", None),
    ("admin", """mutation ($objects: [posts_insert_input!]!) { insert_posts(objects: $objects) { affected_rows } }""",
     {"objects": []}),
    ("admin", """mutation { insert_tags_one(object: {post_id: 2, name: "fresh", weight: 7}) { post_id name weight } }""",
     None),
    ("admin", """mutation { update_tags_by_pk(pk_columns: {post_id: 1, name: "intro"}, _set: {weight: 5}) { post_id name weight } }""",
     None),
    ("admin", """mutation { update_posts(where: {title: {_like: "%o%"}}, _set: {body: "o!"}) {
        affected_rows returning { id title body } } }""", None),
    ("admin", """mutation ($ids: [Int!]) { update_posts(where: {id: {_in: $ids}}, _set: {published: false}) {
        returning { id published } affected_rows } }""", {"ids": [1, 2, 3]}),
    ("admin", """mutation { update_posts_by_pk(pk_columns: {id: 999}, _set: {title: "none"}) { id } }""", None),
    ("admin", """mutation { update_posts(where: {id: {_eq: 1}}, _set: {}) { affected_rows returning { id } } }""", None),
    ("admin", """mutation { update_users_by_pk(pk_columns: {id: 2}, _set: {profile: null, score: 3}) { id profile score } }""",
     None),
    ("admin", """mutation { delete_comments_by_pk(id: 1) { id body post_id } }""", None),
    # Cascades: the post's comments and tags go too, and the change log shows them.
    ("admin", """mutation { delete_posts(where: {id: {_eq: 4}}) { affected_rows returning { id title } } }""", None),
    ("admin", """mutation { delete_tags(where: {name: {_in: ["nothing"]}}) { affected_rows returning { name } } }""", None),
    # Aliases, fragments and several fields: one transaction, answered in document order.
    ("admin", """mutation Two { first: insert_comments_one(object: {post_id: 2, body: "x"}) { ...c }
        second: update_comments(where: {post_id: {_eq: 2}}, _set: {body: "y"}) { affected_rows returning { ...c } }
        first_again: delete_comments_by_pk(id: 999) { id } }
        fragment c on comments { id body ... on comments { post_id } }""", None),
    # Relationships in the answer, @include.
    ("admin", """mutation { insert_posts_one(object: {title: "rel", user_id: 1}) { id user { name } } }""", None),
    ("admin", """mutation ($yes: Boolean!) { insert_posts_one(object: {title: "dir", user_id: 1}) {
        id title @include(if: $yes) } }""", {"yes": False}),
    # -- failures: rolled back, answered with their errors --
    ("admin", """mutation { insert_users_one(object: {id: 1, name: "again"}) { id } }""", None),
    ("admin", """mutation { insert_users_one(object: {id: 50, name: "x", email: "alice@example.com"}) { id } }""",
     None),
    ("admin", """mutation { insert_posts_one(object: {id: 60, title: "x", user_id: 999}) { id } }""", None),
    ("admin", """mutation { insert_users_one(object: {id: 61, name: "x", born: "not a date"}) { id } }""", None),
    ("admin", """mutation { update_posts(where: {id: {_eq: 1}}) { affected_rows } }""", None),
    ("admin", """mutation ($t: String!) { insert_posts_one(object: {title: $t, user_id: 1}) { id } }""",
     {"t": None}),
    # The first field succeeds, the second fails: neither stands.
    ("admin", """mutation { ok: insert_users_one(object: {id: 70, name: "kept?"}) { id }
        bad: insert_users_one(object: {id: 1, name: "dup"}) { id } }""", None),
]

PERMITTED_CASES: list[Case] = [
    ("user1", """mutation { insert_posts_one(object: {title: "mine", published: false}) { id title user_id published } }""",
     None),
    ("user1", """mutation { insert_posts(objects: [{title: "p1", published: true}, {title: "p2"}]) {
        affected_rows returning { id user_id } } }""", None),
    ("drafter2", """mutation { insert_posts_one(object: {title: "draft"}) { id title published user_id } }""", None),
    ("user2", """mutation { update_posts(where: {}, _set: {body: "two"}) { affected_rows returning { id body } } }""",
     None),
    # Rows the editor may update but not see afterwards: counted, not returned.
    ("editor", """mutation { update_posts(where: {id: {_in: [1, 3]}}, _set: {published: false}) {
        affected_rows returning { id title published } } }""", None),
    ("editor", """mutation { update_posts_by_pk(pk_columns: {id: 2}, _set: {title: "seen?"}) { id title } }""", None),
    ("editor", """mutation { update_posts(where: {id: {_in: [2, 4]}}, _set: {title: "mixed"}) {
        affected_rows returning { id title } } }""", None),
    # Deleted rows are shown as the session saw them before: only the published ones.
    ("editor", """mutation { delete_posts(where: {id: {_in: [1, 4]}}) { affected_rows returning { id title } } }""",
     None),
    ("user1", """mutation { delete_posts_by_pk(id: 2) { id title } }""", None),
    ("user1", """mutation { insert_tags_one(object: {post_id: 3, name: "nope"}) { name } }""", None),
    ("drafter2", """mutation { insert_posts_one(object: {title: "loud", published: true}) { id } }""", None),
    ("editor", """mutation { update_posts(where: {published: {_eq: true}}, _set: {title: "bad"}) { affected_rows } }""",
     None),
]

# Relationships in `returning` and in one-row fields: read in the same transaction,
# after the write (a deleted row's relationships as they are after the delete).
RELATED_CASES: list[Case] = [
    ("admin", """mutation { insert_posts_one(object: {title: "rel", user_id: 1}) { id user { name } } }""", None),
    ("admin", """mutation { insert_posts(objects: [
        {title: "a", user_id: 2, published: true}, {title: "b", user_id: 3, body: "bb"}]) {
        affected_rows returning { id title body published user { name } } } }""", None),
    ("admin", """mutation { delete_comments(where: {post_id: {_eq: 1}}) {
        affected_rows returning { body post { title } } } }""", None),
    ("admin", """mutation { update_users_by_pk(pk_columns: {id: 1}, _set: {score: 1.5}) {
        name posts_by_user_id(order_by: {id: desc}, limit: 1) { id title comments { body } } posts_by_editor_id { id } } }""", None),
    ("admin", """mutation ($n: Int!) { insert_users_one(object: {name: "Rel"}) { name posts_by_user_id(limit: $n) { id } } }""",
     {"n": 2}),
    ("admin", """mutation { update_users_by_pk(pk_columns: {id: 2}, _set: {score: 2}) { posts_by_user_id(limit: -1) { id } } }""",
     None),
    ("admin", """mutation { insert_comments_one(object: {post_id: 4, body: "f"}) { ...c } }
        fragment c on comments { id post { ... on posts { title user { name __typename } } } }""", None),
    ("admin", """mutation { insert_tags_one(object: {post_id: 4, name: "t"}) { name post { __typename id } } }""", None),
    ("admin", """mutation { update_posts(where: {id: {_in: [3, 4]}}, _set: {rating: "1.25"}) {
        returning { id rating user { score born profile posts_by_user_id(where: {id: {_gt: 2}}) { rating published_at } } } } }""",
     None),
    # Cascades: the post's comments and tags are gone when its relationships are read.
    ("admin", """mutation { delete_posts(where: {id: {_eq: 3}}) {
        returning { id user { name } comments { id } tags { name } } } }""", None),
    ("admin", """mutation { delete_users_by_pk(id: 3) { name posts_by_user_id { title } } }""", None),
]

PERMITTED_RELATED_CASES: list[Case] = [
    ("user1", """mutation { update_posts(where: {id: {_eq: 1}}, _set: {body: "b"}) {
        returning { id tags { name post { title } } } } }""", None),
    ("user1", """mutation { insert_posts_one(object: {title: "fresh"}) { id tags { name } } }""", None),
    # Related rows under the session's select rules: the editor sees tags heavier than 1 only.
    ("editor", """mutation { update_posts(where: {id: {_in: [1, 2]}}, _set: {title: "tagged"}) {
        affected_rows returning { id tags { name weight } } } }""", None),
    ("user2", """mutation { delete_posts_by_pk(id: 3) { id tags { name } } }""", None),
    # A failed check in the middle: every field still runs, and nothing stands.
    ("user1", """mutation { ok: insert_posts_one(object: {title: "fine"}) { id }
        bad: insert_tags_one(object: {post_id: 4, name: "nope"}) { name }
        after: update_posts(where: {id: {_eq: 1}}, _set: {body: "after"}) { affected_rows } }""", None),
]

# @skip and @include, read with each request's variables.
DIRECTIVE_CASES: list[Case] = [
    ("admin", """mutation ($yes: Boolean!) { insert_posts_one(object: {title: "dir", user_id: 1}) {
        id title @include(if: $yes) } }""", {"yes": False}),
    ("admin", """mutation ($yes: Boolean!) { insert_posts_one(object: {title: "dir", user_id: 1}) {
        id title @include(if: $yes) } }""", {"yes": True}),
    ("admin", """mutation ($skip: Boolean!) { a: insert_users_one(object: {name: "A"}) @skip(if: $skip) { id }
        b: insert_users_one(object: {name: "B"}) { id name @skip(if: $skip) } }""", {"skip": True}),
    ("admin", """mutation ($skip: Boolean!) { a: insert_users_one(object: {name: "A"}) @skip(if: $skip) { id }
        b: insert_users_one(object: {name: "B"}) { id name @skip(if: $skip) } }""", {"skip": False}),
    ("admin", """mutation ($r: Boolean!) { update_posts(where: {id: {_eq: 1}}, _set: {body: "d"}) {
        affected_rows ...R @include(if: $r) } }
        fragment R on posts_mutation_response { returning { id body } }""", {"r": True}),
    ("admin", """mutation ($r: Boolean!) { update_posts(where: {id: {_eq: 1}}, _set: {body: "e"}) {
        affected_rows ...R @include(if: $r) } }
        fragment R on posts_mutation_response { returning { id body } }""", {"r": False}),
    ("admin", """mutation { update_posts_by_pk(pk_columns: {id: 2}, _set: {body: "f"}) {
        id body @include(if: false) title @skip(if: true) published @include(if: true) } }""", None),
]

# Several root fields and failures: what each database reports (on PostgreSQL a
# failed statement aborts the transaction, and the fields after it say nothing).
FAILURE_CASES: list[Case] = [
    ("admin", """mutation { a: insert_users_one(object: {id: 1, name: "dup"}) { id }
        b: insert_posts_one(object: {title: "x", user_id: 999}) { id } }""", None),
    ("admin", """mutation { a: insert_users_one(object: {id: 1, name: "dup"}) { id }
        b: update_posts(where: {id: {_eq: 1}}) { affected_rows } }""", None),
    ("admin", """mutation { a: update_posts(where: {id: {_eq: 1}}) { affected_rows }
        b: insert_users_one(object: {id: 80, name: "fine"}) { id }
        c: insert_users_one(object: {id: 1, name: "dup"}) { id } }""", None),
    ("admin", """mutation { __typename a: insert_users_one(object: {id: 1, name: "dup"}) { id } }""", None),
    ("admin", """mutation ($n: String!, $m: Int!) { insert_users_one(object: {name: $n, id: $m}) { id } }""",
     {"n": None, "m": "x"}),
    ("admin", """mutation { a: insert_users_one(object: {id: 81, name: "ok"}) { id }
        b: delete_users_by_pk(id: 1) { id } }""", None),
    # A NUL character: PostgreSQL's text refuses it, SQLite keeps it.
    ("admin", """mutation { insert_users_one(object: {name: "nul\\u0000"}) { name } }""", None),
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


def _goldens() -> dict[str, Any]:
    found: dict[str, Any] = json.loads(GOLDEN.read_text())
    return found


def _plain(value: Any) -> Any:
    """Rows and logs as JSON holds them (tuples as lists, dates and decimals as text)."""
    return json.loads(json.dumps(value, default=str))


@dataclass
class Served:
    """One server over the test database, answering as the golden answers say."""

    url: str
    server: LiveServer
    golden: str
    """Where this test's answers are kept: `<backend>/<test>`."""

    @property
    def plans(self) -> MutationPlans:
        plans: MutationPlans = self.server.app.state.runtime.mutations
        return plans

    def post(
        self, who: str, query: str, variables: dict[str, Any] | None, operation: str | None = None
    ) -> dict[str, Any]:
        response = httpx.post(
            self.server.url + "/graphql",
            json={"query": query, "variables": variables, "operationName": operation},
            headers=HEADERS[who],
            timeout=30,
            trust_env=False,
        )
        body: dict[str, Any] = response.json()
        return body

    def answered(self) -> float:
        """Mutations counted on /metrics over HTTP (`path` is always `compiled`)."""
        text = httpx.get(self.server.url + "/metrics", timeout=30, trust_env=False).text
        wanted = 'forgegraph_operations_total{operation="mutation",path="compiled",transport="http"} '
        return sum(float(line.removeprefix(wanted)) for line in text.splitlines() if line.startswith(wanted))

    def run(self, cases: list[Case]) -> None:
        """Each case's answer, then the rows left behind, as captured."""
        answers = []
        for who, query, variables in cases:
            response = httpx.post(
                self.server.url + "/graphql",
                json={"query": query, "variables": variables},
                headers=HEADERS[who],
                timeout=30,
                trust_env=False,
            )
            answers.append([response.status_code, response.json()])
        contents = _plain(asyncio.run(_contents(self.url)))
        expected = _goldens()[self.golden]
        for (who, query, variables), answer, golden in zip(cases, answers, expected["answers"], strict=True):
            # As text: the order of keys is the answer's too.
            assert json.dumps(answer) == json.dumps(golden), (who, query, variables)
        assert contents == expected["contents"]


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


@contextlib.contextmanager
def _serve(url: str, golden: str, **settings: Any) -> Iterator[Served]:
    server = LiveServer(create_app(database=url, **settings))
    try:
        server.start()
        yield Served(url, server, golden)
    finally:
        server.stop()


def _golden_name(request: pytest.FixtureRequest, backend: str) -> str:
    return f"{backend}/{request.node.originalname}"


@pytest.fixture
def served(library_url: str, backend: str, request: pytest.FixtureRequest) -> Iterator[Served]:
    with _serve(library_url, _golden_name(request, backend)) as one:
        yield one


@pytest.fixture
def permitted(
    library_url: str, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Served]:
    rules = tmp_path / "permissions.yaml"
    rules.write_text(PERMISSIONS)
    with _serve(library_url, _golden_name(request, backend), permissions=str(rules), jwt_secret=SECRET) as one:
        yield one


def test_open_mutations(served: Served) -> None:
    served.run(OPEN_CASES)
    log = _plain(asyncio.run(_contents(served.url)))["log"]
    assert {(table, op) for table, op, *_ in log} >= {("comments", "delete"), ("posts", "delete")}


def test_rules_apply(permitted: Served) -> None:
    permitted.run(PERMITTED_CASES)


def test_relationships_in_the_answer(served: Served) -> None:
    served.run(RELATED_CASES)


def test_relationships_under_rules(permitted: Served) -> None:
    permitted.run(PERMITTED_RELATED_CASES)


def test_directives(served: Served) -> None:
    served.run(DIRECTIVE_CASES)


def test_several_fields_and_failures(served: Served) -> None:
    served.run(FAILURE_CASES)


def test_a_document_is_read_once_per_role(served: Served) -> None:
    query = 'mutation ($t: String!) { insert_posts_one(object: {title: $t, user_id: 1}) { id title } }'
    reads = served.plans.reads
    for n in range(3):
        assert served.post("admin", query, {"t": f"t{n}"})["data"]["insert_posts_one"]["title"] == f"t{n}"
    assert served.plans.reads == reads + 1
    assert served.answered() == 3


def test_the_named_operation_is_the_one_planned(served: Served) -> None:
    query = """mutation A { a: insert_users_one(object: {name: "A"}) { id } }
        mutation B { b: insert_users_one(object: {name: "B"}) { name } }"""
    assert served.post("admin", query, None, "B") == {"data": {"b": {"name": "B"}}}
    assert served.post("admin", query, None, "A") == {"data": {"a": {"id": 5}}}
    assert served.answered() == 2


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_write_waits_for_another_writers_lock(served: Served) -> None:
    """The event loop never waits for SQLite's lock: the write goes to the driver's thread, which does."""
    blocker = sqlite3.connect(sa.make_url(served.url).database or "", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    answers: list[dict[str, Any]] = []
    query = 'mutation { insert_users_one(object: {name: "late"}) { id name } }'
    writer = threading.Thread(target=lambda: answers.append(served.post("admin", query, None)))
    writer.start()
    time.sleep(0.5)
    assert not answers  # waiting, not failed
    # The server still answers meanwhile.
    health = httpx.get(served.server.url + "/healthz", timeout=5, trust_env=False)
    assert health.status_code == 200
    blocker.execute("COMMIT")
    blocker.close()
    writer.join(timeout=30)
    assert answers == [{"data": {"insert_users_one": {"id": 4, "name": "late"}}}]
    assert served.answered() == 1


ODD_TABLE = (
    'CREATE TABLE "Odd" (id INTEGER PRIMARY KEY, "select" TEXT, "Order" INTEGER, '
    '"group by" TEXT DEFAULT \'hidden\', "from" BOOLEAN)'
)


async def _run_sql(url: str, *statements: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


def test_names_that_need_quoting(library_url: str, backend: str, request: pytest.FixtureRequest) -> None:
    """SQL keywords, upper case, and a column GraphQL cannot name as it is (served as `group_by`)."""
    asyncio.run(_run_sql(library_url, ODD_TABLE))
    with _serve(library_url, _golden_name(request, backend)) as served:
        served.run([
            ("admin", """mutation { insert_Odd(objects: [{id: 1, select: "s", Order: 2, from: true}, {id: 2}]) {
                returning { id select Order from } } }""", None),
            ("admin", """mutation { update_Odd_by_pk(pk_columns: {id: 2}, _set: {select: "t", from: false}) {
                select from } }""", None),
            ("admin", """mutation { delete_Odd(where: {Order: {_eq: 2}}) { returning { id select } } }""", None),
        ])


def test_a_value_the_answer_cannot_hold_is_an_error_and_rolls_back(
    library_url: str, backend: str, request: pytest.FixtureRequest
) -> None:
    """An infinite float in `returning` (GraphQL's Float has none): an error, and the update does not stand."""
    infinity = "'Infinity'" if backend == "postgres" else "9e999"
    asyncio.run(_run_sql(
        library_url,
        "CREATE TABLE big (id BIGINT PRIMARY KEY, name TEXT, x REAL)",
        f"INSERT INTO big (id, name, x) VALUES (3000000000, 'big', {infinity})",
    ))
    with _serve(library_url, _golden_name(request, backend)) as served:
        query = """mutation { update_big(where: {name: {_eq: "big"}}, _set: {name: "bigger"}) {
            affected_rows returning { id name x } } }"""
        served.run([("admin", query, None), ("admin", "{ big { name } }", None)])
