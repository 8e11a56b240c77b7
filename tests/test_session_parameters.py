"""Session variables are statement parameters: one compiled plan serves every user of a role.

A role's rules that read `X-User-Id` compile once for the role (issue 14,
Hasura's `QueryParametersInfo`); each request binds its session's values. On
SQLite and PostgreSQL, over a real server: every user gets their own rows
from the same plan and the same SQL text, a session value that does not
convert admits what it admitted when rules were resolved per user (an
UNKNOWN comparison), and two roles never share a plan.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from graph.app import create_app
from tests import library
from tests.conftest import LiveServer

SECRET = "forgegraph-session-parameter-tests-0123456789"
PERMISSIONS = """\
tables:
  posts:
    select:
      user: {filter: {user_id: {_eq: X-Hasura-User-Id}}, columns: [id, title, user_id]}
      twin: {filter: {user_id: {_eq: X-Hasura-User-Id}}, columns: [id, title, user_id]}
      reader: {filter: {_or: [{published: {_eq: true}}, {user_id: {_eq: X-User-Id}}]}, columns: [id, title, user_id]}
      outsider: {filter: {_not: {user_id: {_eq: X-User-Id}}}, columns: [id, title, user_id]}
    update:
      user: {filter: {user_id: {_eq: X-User-Id}}, check: {user_id: {_eq: X-User-Id}}, columns: [title]}
  users:
    select:
      user: {filter: {id: {_eq: X-User-Id}}, columns: [id, name]}
      twin: {filter: {id: {_eq: X-User-Id}}, columns: [id, name]}
      reader: {columns: [id, name]}
      outsider: {columns: [id, name]}
"""
USERS = range(1, 9)
"""Users 1 to 3 of tests/library.py and five more; user 8 has no post."""
QUERY = "{ posts(order_by: {id: asc}) { id user_id user { id name } } }"


def _token(role: str, sub: str | None) -> dict[str, str]:
    claims: dict[str, Any] = {"role": role, "exp": int(time.time()) + 3600}
    if sub is not None:
        claims["sub"] = sub
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


async def _more_users(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(library.users.insert(), [{"id": n, "name": f"user {n}"} for n in range(4, 9)])
            await conn.execute(
                library.posts.insert(),
                [{"id": 10 + n, "title": f"by {n}", "user_id": n, "published": n % 2 == 0} for n in range(4, 8)],
            )
    finally:
        await engine.dispose()


async def _posts(url: str) -> list[tuple[int, int, bool, str]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            posts = library.posts.c
            query = sa.select(posts.id, posts.user_id, posts.published, posts.title).order_by(posts.id)
            return [tuple(row) for row in (await conn.execute(query)).all()]  # type: ignore[misc]
    finally:
        await engine.dispose()


class Server:
    def __init__(self, url: str, server: LiveServer) -> None:
        self.url = url
        self.server = server
        self.runtime = server.app.state.runtime
        self.http = httpx.Client(base_url=server.url, timeout=30, trust_env=False)

    def post(self, query: str, headers: dict[str, str]) -> dict[str, Any]:
        response = self.http.post("/graphql", json={"query": query}, headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def selects(self) -> list[str]:
        return [
            s for s in self.server.statements
            if s.lstrip().upper().startswith("SELECT") and "_forgegraph" not in s
        ]


@pytest.fixture
def served(library_url: str, tmp_path: Path) -> Iterator[Server]:
    asyncio.run(_more_users(library_url))
    rules = tmp_path / "permissions.yaml"
    rules.write_text(PERMISSIONS)
    server = LiveServer(create_app(database=library_url, permissions=str(rules), jwt_secret=SECRET))
    server.start()
    client = Server(library_url, server)
    try:
        yield client
    finally:
        client.http.close()
        server.stop()


def _expected(rows: list[tuple[int, int, bool, str]], admitted: Any) -> list[dict[str, Any]]:
    names = {1: "Alice", 2: "Bob", 3: "Carol"}
    return [
        {"id": post, "user_id": user, "user": {"id": user, "name": names.get(user, f"user {user}")}}
        for post, user, published, _title in rows
        if admitted(user, published)
    ]


def test_one_plan_serves_every_user_of_a_role(served: Server) -> None:
    plans = served.runtime.query_plans
    rows = asyncio.run(_posts(served.url))
    served.server.statements.clear()
    before = plans.compiled
    for user in USERS:
        answer = served.post(QUERY, _token("user", str(user)))
        # The rule applies at both levels: each user's own posts, and their own user row.
        assert answer == {"data": {"posts": _expected(rows, lambda owner, _p, u=user: owner == u)}}, user
    assert plans.compiled - before == 1
    # One statement text for all of them: the user is a parameter, never in the SQL.
    selects = served.selects()
    assert len(selects) == len(USERS)
    assert len(set(selects)) == 1, set(selects)


def test_a_value_that_does_not_convert_admits_what_it_did_when_resolved_per_user(served: Server) -> None:
    """A missing or non-integer X-User-Id compared with an integer column is UNKNOWN:
    its comparison admits no row, and neither does its negation; so is one beyond
    64 bits, which no integer column holds. A value beyond 32 bits is an integer
    all the same, which no row holds."""
    plans = served.runtime.query_plans
    rows = asyncio.run(_posts(served.url))
    before = plans.compiled
    published = _expected(rows, lambda _owner, p: p)
    every = _expected(rows, lambda _owner, _p: True)
    for sub in (None, "abc", "7.0", " ", "99999999999999999999", "-9223372036854775809"):
        assert served.post(QUERY, _token("reader", sub)) == {"data": {"posts": published}}, sub
        assert served.post(QUERY, _token("outsider", sub)) == {"data": {"posts": []}}, sub
        assert served.post(QUERY, _token("user", sub)) == {"data": {"posts": []}}, sub
    big = "99999999999"
    assert served.post(QUERY, _token("reader", big)) == {"data": {"posts": published}}
    assert served.post(QUERY, _token("outsider", big)) == {"data": {"posts": every}}
    assert served.post(QUERY, _token("user", big)) == {"data": {"posts": []}}
    # And a value that converts, by the same plans.
    mine = _expected(rows, lambda owner, p: p or owner == 1)
    assert served.post(QUERY, _token("reader", " 1 ")) == {"data": {"posts": mine}}
    assert served.post(QUERY, _token("outsider", "1")) == {"data": {"posts": _expected(rows, lambda o, _p: o != 1)}}
    assert plans.compiled - before == 3  # one per role


def test_two_roles_never_share_a_plan(served: Server) -> None:
    plans = served.runtime.query_plans
    before = plans.compiled
    answers = {
        role: served.post(QUERY, _token(role, "2")) for role in ("user", "twin", "reader", "outsider", "user")
    }
    # `twin`'s rules are `user`'s, word for word: its own plan all the same.
    assert plans.compiled - before == 4
    assert answers["user"] == answers["twin"]
    assert len({str(a) for a in answers.values()}) == 3
    assert served.post(QUERY, _token("twin", "3")) != served.post(QUERY, _token("user", "2"))
    assert plans.compiled - before == 4


def test_one_update_statement_serves_every_user_of_a_role(served: Server) -> None:
    rows = asyncio.run(_posts(served.url))
    served.server.statements.clear()
    mutation = 'mutation { update_posts(where: {}, _set: {title: "mine"}) { affected_rows returning { id } } }'
    for user in USERS:
        answer = served.post(mutation, _token("user", str(user)))
        own = [{"id": post} for post, owner, _published, _title in rows if owner == user]
        assert answer == {"data": {"update_posts": {"affected_rows": len(own), "returning": own}}}, user
    # A value that does not convert: the rule's filter admits no row, as before.
    for sub in (None, "abc"):
        answer = served.post(mutation, _token("user", sub))
        assert answer == {"data": {"update_posts": {"affected_rows": 0, "returning": []}}}, sub
    assert [title for *_rest, title in asyncio.run(_posts(served.url))] == ["mine"] * len(rows)
    # One UPDATE text for every user: the user is a parameter.
    updates = [s for s in served.server.statements if s.lstrip().upper().startswith("UPDATE")]
    assert len(updates) == len(USERS) + 2
    assert len(set(updates)) == 1, set(updates)
