"""Auth and row-level security end to end (SPEC section 7): real sockets, real databases.

One permissions file (the SPEC's example, adapted to tests/library.py, plus a
`drafter` role whose checks can fail) serves every test. Tokens are minted
here with PyJWT. Every transport is shown to apply the same rules: HTTP
queries and mutations, graphql-ws subscriptions, the raw protocol and SSE.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from websockets.exceptions import ConnectionClosed

from graph.app import create_app
from graph.rules.permissions import PermissionsError
from tests.conftest import LEGACY_WS, TRANSPORT_WS, GraphQLWS, LiveServer
from tests.test_forgebase import RawClient, ws_url
from tests.test_sse import EventReader, events

SECRET = "forgegraph-auth-tests-hs256-secret-0123456789"
ADMIN_SECRET = "forgegraph-auth-tests-admin-secret"

PERMISSIONS = """\
tables:
  posts:
    select:
      anonymous: {filter: {published: {_eq: true}}, columns: [id, title]}
      user: {filter: {_or: [{published: {_eq: true}}, {user_id: {_eq: X-User-Id}}]}, columns: "*"}
      # A drafter sees only its own drafts: publishing a post takes it out of sight.
      drafter: {filter: {_and: [{user_id: {_eq: X-User-Id}}, {published: {_eq: false}}]}, columns: "*"}
    insert:
      user: {check: {user_id: {_eq: X-User-Id}}, columns: [title, body, published], set: {user_id: X-User-Id}}
      # A check that can fail: drafters may only insert drafts.
      drafter: {check: {published: {_eq: false}}, columns: [title, body, published], set: {user_id: X-User-Id}}
    update:
      user: {filter: {user_id: {_eq: X-User-Id}}, columns: [title, body, published]}
      drafter: {filter: {user_id: {_eq: X-User-Id}}, columns: [title, published]}
    delete:
      user: {filter: {user_id: {_eq: X-User-Id}}}
  users:
    select:
      anonymous: {columns: [id, name]}
      user: {columns: [id, name, email]}
"""

POST_COLUMNS = ["id", "title", "body", "published", "user_id", "editor_id", "rating", "published_at"]
POST = " ".join(POST_COLUMNS)
CHANGES = """subscription($table: String!, $where: JSON, $since: String) {
  tableChanged(table: $table, where: $where, since: $since) { type table id record old_record cursor } }"""

ACCEPT = ("application/json", "application/graphql-response+json")
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])


def mint(
    sub: str | None,
    role: str | None = "user",
    *,
    key: str | None = SECRET,
    lifetime: float = 3600,
    algorithm: str = "HS256",
) -> str:
    claims: dict[str, Any] = {"exp": int(time.time() + lifetime)}
    if sub is not None:
        claims["sub"] = sub
    if role is not None:
        claims["role"] = role
    return jwt.encode(claims, key, algorithm=algorithm)


USER_1_TOKEN = mint("1")
USER_2_TOKEN = mint("2")
BAD_TOKENS = {
    "expired": mint("1", lifetime=-60),
    "wrong key": mint("1", key="not-the-server-secret-but-long-enough-too"),
    "alg none": mint("1", key=None, algorithm="none"),
    "not a jwt": "not-a-jwt",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


ANONYMOUS: dict[str, str] = {}
USER_1 = bearer(USER_1_TOKEN)
USER_2 = bearer(USER_2_TOKEN)
DRAFTER = bearer(mint("3", "drafter"))  # Carol, who owns post 4 (published)
ADMIN = {"X-Admin-Secret": ADMIN_SECRET}


@dataclass
class Site:
    """A server with the permissions file, and an HTTP client that speaks as anyone."""

    server: LiveServer
    http: httpx.AsyncClient

    async def post(self, query: str, who: dict[str, str]) -> httpx.Response:
        return await self.http.post("/graphql", json={"query": query}, headers=who)

    async def data(self, query: str, who: dict[str, str]) -> dict[str, Any]:
        """The `data` of a request that must succeed."""
        response = await self.post(query, who)
        body = response.json()
        assert response.status_code == 200 and "errors" not in body, body
        return body["data"]  # type: ignore[no-any-return]

    async def error(self, query: str, who: dict[str, str]) -> dict[str, Any]:
        """The one error of a request that must fail, with no data standing."""
        response = await self.post(query, who)
        body = response.json()
        assert response.status_code == 200 and body.get("data") is None, body
        (error,) = body["errors"]
        return error  # type: ignore[no-any-return]

    async def posts(self, who: dict[str, str], fields: str = "id") -> list[dict[str, Any]]:
        data = await self.data(f"{{ posts(order_by: {{id: asc}}) {{ {fields} }} }}", who)
        return data["posts"]  # type: ignore[no-any-return]

    async def insert(self, who: dict[str, str], values: str) -> int:
        data = await self.data(f"mutation {{ insert_posts_one(object: {values}) {{ id }} }}", who)
        return int(data["insert_posts_one"]["id"])

    async def update(self, who: dict[str, str], post_id: int, values: str) -> None:
        query = f"mutation {{ update_posts(where: {{id: {{_eq: {post_id}}}}}, _set: {values}) {{ affected_rows }} }}"
        assert (await self.data(query, who))["update_posts"]["affected_rows"] == 1

    async def delete(self, who: dict[str, str], post_id: int) -> None:
        query = f"mutation {{ delete_posts(where: {{id: {{_eq: {post_id}}}}}) {{ affected_rows }} }}"
        assert (await self.data(query, who))["delete_posts"]["affected_rows"] == 1


@pytest.fixture
def permissions_file(tmp_path: Path) -> Path:
    path = tmp_path / "permissions.yaml"
    path.write_text(PERMISSIONS)
    return path


@pytest.fixture
async def site(library_url: str, serve: Any, permissions_file: Path) -> AsyncIterator[Site]:
    server = serve(
        database=library_url,
        permissions=str(permissions_file),
        jwt_secret=SECRET,
        admin_secret=ADMIN_SECRET,
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as http:
        yield Site(server, http)


def by_id(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`returning` rows in id order (the database returns them in its own)."""
    return sorted(rows, key=lambda row: int(row["id"]))


def without_suggestion(message: str) -> str:
    # graphql-core's "Did you mean ...?" depends on the name typed, not on what exists beyond the schema.
    return re.sub(r" Did you mean .*\?$", "", message)


async def same_error(site: Site, who: dict[str, str], template: str, denied: str) -> str:
    """The error for the denied name `denied` in `template`, checked to read as for a name that does not exist."""
    unknown = "nonexistent"
    refused = await site.error(template.replace("NAME", denied), who)
    missing = await site.error(template.replace("NAME", unknown), who)
    assert refused["extensions"] == missing["extensions"] == {"code": "validation-failed"}
    shape = without_suggestion(refused["message"]).replace(denied, "NAME")
    assert shape == without_suggestion(missing["message"]).replace(unknown, "NAME")
    return str(refused["message"])


# -- HTTP: reading ----------------------------------------------------------------


async def test_each_role_sees_its_rows_and_columns(site: Site) -> None:
    draft = await site.insert(USER_2, '{title: "Bob draft", body: "hidden"}')
    assert await site.posts(ANONYMOUS, "id title") == [
        {"id": 1, "title": "Hello World"}, {"id": 3, "title": "Third"}, {"id": 4, "title": "hello again"}
    ]
    everything = await site.posts(ADMIN, POST)
    assert [p["id"] for p in everything] == [1, 2, 3, 4, draft]
    as_admin = {p["id"]: p for p in everything}
    # Published posts and one's own drafts, every column as the admin sees it.
    assert await site.posts(USER_1, POST) == [as_admin[i] for i in (1, 2, 3, 4)]
    assert await site.posts(USER_2, POST) == [as_admin[i] for i in (1, 3, 4, draft)]
    assert as_admin[2] == {"id": 2, "title": "second post", "body": None, "published": False,
                           "user_id": 1, "editor_id": 2, "rating": None, "published_at": None}
    # A token without a role claim is a `user`.
    assert await site.posts(bearer(mint("2", role=None))) == [{"id": i} for i in (1, 3, 4, draft)]

    one = "{ posts_by_pk(id: 2) { id title } }"
    assert (await site.data(one, ANONYMOUS))["posts_by_pk"] is None
    assert (await site.data(one, USER_2))["posts_by_pk"] is None
    assert (await site.data(one, USER_1))["posts_by_pk"] == {"id": 2, "title": "second post"}

    count = "{ posts_aggregate { aggregate { count } } }"
    counts = [(await site.data(count, who))["posts_aggregate"]["aggregate"]["count"]
              for who in (ANONYMOUS, USER_1, USER_2, ADMIN)]
    assert counts == [3, 4, 4, 5]
    # A client's own `where` narrows the rule; it never widens it.
    hidden = '{ posts(where: {title: {_eq: "second post"}}) { id } }'
    assert (await site.data(hidden, ANONYMOUS))["posts"] == []
    assert (await site.data(hidden, USER_1))["posts"] == [{"id": 2}]
    assert (await site.data("{ comments_aggregate { aggregate { count } } }", ADMIN)) == {
        "comments_aggregate": {"aggregate": {"count": 4}}
    }


async def test_relationships_and_aggregates_follow_the_rules(site: Site) -> None:
    query = """{ users(order_by: {id: asc}) { name
      posts_by_user_id(order_by: {id: asc}) { id }
      posts_by_editor_id(order_by: {id: asc}) { id } } }"""
    shown = {
        who: [(u["name"], [p["id"] for p in u["posts_by_user_id"]], [p["id"] for p in u["posts_by_editor_id"]])
              for u in (await site.data(query, headers))["users"]]
        for who, headers in (("anonymous", ANONYMOUS), ("user 1", USER_1), ("user 2", USER_2))
    }
    # Post 2 (Alice's draft, edited by Bob) shows only to Alice.
    assert shown == {
        "anonymous": [("Alice", [1], [3]), ("Bob", [3], []), ("Carol", [4], [])],
        "user 1": [("Alice", [1, 2], [3]), ("Bob", [3], [2]), ("Carol", [4], [])],
        "user 2": [("Alice", [1], [3]), ("Bob", [3], []), ("Carol", [4], [])],
    }
    # Object relationships and filters through them see only what the role may select.
    editors = "{ posts(order_by: {id: asc}) { id editor { name } } }"
    assert (await site.data(editors, ANONYMOUS))["posts"] == [
        {"id": 1, "editor": None}, {"id": 3, "editor": {"name": "Alice"}}, {"id": 4, "editor": None}
    ]
    alice = '{ posts_aggregate(where: {user: {name: {_eq: "Alice"}}}) { aggregate { count } } }'
    assert (await site.data(alice, ANONYMOUS))["posts_aggregate"]["aggregate"]["count"] == 1
    assert (await site.data(alice, USER_1))["posts_aggregate"]["aggregate"]["count"] == 2


@sqlite_only
async def test_filters_through_relationships_see_only_rows_the_role_may_select(site: Site) -> None:
    # Post 2 is Alice's draft, edited by Bob: neither anonymous nor user 2 may see it.
    for who in (ANONYMOUS, USER_2):
        probe = '{ users(where: {posts_by_user_id: {title: {_eq: "second post"}}}) { name } }'
        assert (await site.data(probe, who))["users"] == []
        probe = "{ users_aggregate(where: {posts_by_editor_id: {id: {_eq: 2}}}) { aggregate { count } } }"
        assert (await site.data(probe, who))["users_aggregate"]["aggregate"]["count"] == 0


async def test_what_is_not_granted_answers_as_what_does_not_exist(site: Site) -> None:
    # A table: the role's schema has no such root field.
    message = await same_error(site, ANONYMOUS, "{ NAME { id } }", "comments")
    assert message == "Cannot query field 'comments' on type 'query_root'."
    await same_error(site, ANONYMOUS, "{ NAME(id: 1) { id } }", "comments_by_pk")
    # A column, in a selection, a filter and an ordering.
    message = await same_error(site, ANONYMOUS, "{ posts { id NAME } }", "body")
    assert message == "Cannot query field 'body' on type 'posts'."
    await same_error(site, ANONYMOUS, '{ posts(where: {NAME: {_eq: "x"}}) { id } }', "body")
    await same_error(site, ANONYMOUS, "{ posts(order_by: {NAME: asc}) { id } }", "body")
    await same_error(site, ANONYMOUS, "{ users { id NAME } }", "email")
    # A relationship to a table the role may not see.
    await same_error(site, ANONYMOUS, "{ posts { id NAME { id } } }", "comments")
    # Writes not granted, and columns a write may not set (user_id is preset).
    await same_error(site, ANONYMOUS, "mutation { NAME(id: 1) { id } }", "delete_posts_by_pk")
    await same_error(site, USER_1, 'mutation { insert_posts_one(object: {title: "t", NAME: 2}) { id } }', "user_id")
    await same_error(site, USER_1, "mutation { update_posts_by_pk(pk_columns: {id: 1}, _set: {NAME: 2}) { id } }", "user_id")
    await same_error(site, USER_1, 'mutation { NAME(object: {post_id: 1, body: "b"}) { id } }', "insert_comments_one")
    # Suggestions never name what the role may not see.
    typo = await site.error("{ comment { id } }", ANONYMOUS)
    assert "comments" not in typo["message"]
    # A role the file does not name has no tables at all.
    stranger = bearer(mint("1", "stranger"))
    await same_error(site, stranger, "{ NAME { id } }", "posts")


# -- HTTP: writing ----------------------------------------------------------------


async def test_inserts_take_the_presets(site: Site) -> None:
    one = await site.data('mutation { insert_posts_one(object: {title: "mine", body: "b"}) { id user_id published } }', USER_1)
    assert one["insert_posts_one"]["user_id"] == 1 and one["insert_posts_one"]["published"] is False
    many = await site.data("""mutation { insert_posts(objects: [{title: "x"}, {title: "y", published: true}]) {
        affected_rows returning { title user_id } } }""", USER_2)
    assert many["insert_posts"] == {"affected_rows": 2, "returning": [
        {"title": "x", "user_id": 2}, {"title": "y", "user_id": 2}]}
    rows = await site.posts(ADMIN, "id title user_id")
    assert [(p["title"], p["user_id"]) for p in rows[4:]] == [("mine", 1), ("x", 2), ("y", 2)]


async def test_a_failed_check_rolls_the_request_back_and_publishes_nothing(site: Site) -> None:
    async with GraphQLWS.open(site.server, init=False) as watcher:
        await watcher.init(ADMIN)
        await subscribe(watcher, "all", "posts")
        for mutation in (
            # Two fields of one request: the first passes its check, the second does not.
            """mutation { ok: insert_posts_one(object: {title: "draft"}) { id }
                          bad: insert_posts_one(object: {title: "live", published: true}) { id } }""",
            'mutation { insert_posts(objects: [{title: "d"}, {title: "l", published: true}]) { affected_rows } }',
        ):
            error = await site.error(mutation, DRAFTER)
            assert error["extensions"] == {"code": "permission-denied"}
            assert error["message"] == "check constraint of an insert permission has failed"
        assert [p["id"] for p in await site.posts(ADMIN)] == [1, 2, 3, 4]
        marker = await site.insert(DRAFTER, '{title: "a draft"}')
        # The next event is the marker: nothing was published for the rolled-back rows.
        event = await change(watcher, "all")
        assert (event["type"], event["id"], event["record"]["user_id"]) == ("create", marker, 3)


async def test_updates_and_deletes_touch_only_own_rows(site: Site) -> None:
    before = await site.posts(ADMIN, POST)
    for mutation, field, expected in (
        ('update_posts(where: {id: {_in: [1, 2]}}, _set: {title: "x"}) { affected_rows }', "update_posts",
         {"affected_rows": 0}),
        ('update_posts_by_pk(pk_columns: {id: 2}, _set: {title: "x"}) { id }', "update_posts_by_pk", None),
        ("delete_posts(where: {user_id: {_eq: 1}}) { affected_rows }", "delete_posts", {"affected_rows": 0}),
        ("delete_posts_by_pk(id: 1) { id }", "delete_posts_by_pk", None),
    ):
        assert (await site.data(f"mutation {{ {mutation} }}", USER_2))[field] == expected
    assert await site.posts(ADMIN, POST) == before

    # Alice's bulk update with no condition of her own reaches her rows alone.
    edited = await site.data("""mutation { update_posts(where: {}, _set: {body: "edited"}) {
        affected_rows returning { id body } } }""", USER_1)
    assert edited["update_posts"]["affected_rows"] == 2
    assert by_id(edited["update_posts"]["returning"]) == [{"id": 1, "body": "edited"}, {"id": 2, "body": "edited"}]
    gone = await site.data("mutation { delete_posts(where: {}) { affected_rows returning { id title } } }", USER_1)
    assert gone["delete_posts"]["affected_rows"] == 2
    assert by_id(gone["delete_posts"]["returning"]) == [
        {"id": 1, "title": "Hello World"}, {"id": 2, "title": "second post"}]
    assert [(p["id"], p["body"]) for p in await site.posts(ADMIN, POST)] == [(3, "50% off_sale"), (4, "x")]


async def test_returning_shows_only_rows_the_role_may_select(site: Site) -> None:
    draft = await site.data('mutation { insert_posts_one(object: {title: "d"}) { id title } }', DRAFTER)
    draft_id = draft["insert_posts_one"]["id"]
    # Carol's post 4 is published: she may update it but not see it.
    renamed = await site.data("""mutation { update_posts(where: {}, _set: {title: "renamed"}) {
        affected_rows returning { id title } } }""", DRAFTER)
    assert renamed["update_posts"] == {"affected_rows": 2, "returning": [{"id": draft_id, "title": "renamed"}]}
    # Publishing her draft takes it out of her sight: updated, but not returned.
    published = await site.data(
        f"mutation {{ update_posts_by_pk(pk_columns: {{id: {draft_id}}}, _set: {{published: true}}) {{ id }} }}",
        DRAFTER,
    )
    assert published["update_posts_by_pk"] is None
    rows = {p["id"]: p for p in await site.posts(ADMIN, "id title published")}
    assert rows[4] == {"id": 4, "title": "renamed", "published": True}
    assert rows[draft_id] == {"id": draft_id, "title": "renamed", "published": True}
    assert await site.posts(DRAFTER) == []


# -- HTTP: credentials ------------------------------------------------------------


async def test_bad_credentials_are_401_invalid_jwt(site: Site) -> None:
    tried = {name: bearer(token) for name, token in BAD_TOKENS.items()}
    tried["not bearer"] = {"Authorization": f"Basic {USER_1_TOKEN}"}
    tried["wrong admin secret"] = {"X-Admin-Secret": "not-the-admin-secret"}
    query = "{ posts { id } }"
    for (name, credentials), accept in itertools.product(tried.items(), ACCEPT):
        headers = {**credentials, "Accept": accept}
        for response in (
            await site.http.post("/graphql", json={"query": query}, headers=headers),
            await site.http.get("/graphql", params={"query": query}, headers=headers),
        ):
            assert response.status_code == 401, (name, accept, response.text)
            body = response.json()
            assert list(body) == ["errors"], (name, body)
            assert body["errors"][0]["extensions"] == {"code": "invalid-jwt"}, (name, body)
    expired = (await site.post("{ posts { id } }", bearer(BAD_TOKENS["expired"]))).json()
    assert expired["errors"][0]["message"] == "the token has expired"


# -- realtime: one script of writes, seen by each role ------------------------------


@dataclass
class Script:
    draft: int
    """Alice's draft, published by the admin, then deleted by the admin."""
    public: int
    """Alice's published post: renamed, unpublished, then deleted while hidden."""
    marker: int
    """A published post the admin inserts last: every viewer's last event."""


async def play(site: Site) -> Script:
    draft = await site.insert(USER_1, '{title: "draft", body: "secret"}')
    public = await site.insert(USER_1, '{title: "public", body: "text", published: true}')
    await site.update(USER_1, public, '{title: "renamed"}')
    await site.update(USER_1, public, "{published: false}")
    await site.update(ADMIN, draft, "{published: true}")
    await site.delete(ADMIN, draft)
    await site.delete(USER_1, public)
    marker = await site.insert(ADMIN, '{title: "marker", user_id: 2, published: true}')
    return Script(draft, public, marker)


def seen_by_anonymous(s: Script) -> list[tuple[str, int, Any, Any]]:
    """(type, id, record, old_record): only published rows, only id and title."""
    return [
        ("create", s.public, {"id": s.public, "title": "public"}, None),
        ("update", s.public, {"id": s.public, "title": "renamed"}, {"id": s.public, "title": "public"}),
        ("delete", s.public, None, {"id": s.public, "title": "renamed"}),  # unpublished: out of view
        ("create", s.draft, {"id": s.draft, "title": "draft"}, None),  # published: into view
        ("delete", s.draft, None, {"id": s.draft, "title": "draft"}),
        ("create", s.marker, {"id": s.marker, "title": "marker"}, None),
    ]


def seen_by_user_2(s: Script) -> list[tuple[str, int]]:
    return [(t, i) for t, i, _, _ in seen_by_anonymous(s)]


def seen_by_owner(s: Script) -> list[tuple[str, int]]:
    return [("create", s.draft), ("create", s.public), ("update", s.public), ("update", s.public),
            ("update", s.draft), ("delete", s.draft), ("delete", s.public), ("create", s.marker)]


async def sync(ws: GraphQLWS) -> None:
    """Return once the server has handled every message sent so far (see tests/test_realtime.py)."""
    await ws.send({"type": "ping"})
    assert await ws.receive() == {"type": "pong"}


async def subscribe(ws: GraphQLWS, op_id: str, table: str, where: dict[str, Any] | None = None) -> None:
    await ws.subscribe(op_id, CHANGES, {"table": table, "where": where})
    await sync(ws)


async def change(ws: GraphQLWS, op_id: str) -> dict[str, Any]:
    payload = await ws.next(op_id)
    assert "errors" not in payload, payload
    return payload["data"]["tableChanged"]  # type: ignore[no-any-return]


async def test_graphql_ws_events_follow_each_subscribers_view(site: Site) -> None:
    async with (
        GraphQLWS.open(site.server) as anonymous,
        GraphQLWS.open(site.server, init=False) as owner,
        GraphQLWS.open(site.server, init=False) as other,
        GraphQLWS.open(site.server, init=False) as admin,
    ):
        # Both payload forms of SPEC section 7.
        await owner.init({"headers": {"Authorization": f"Bearer {USER_1_TOKEN}"}})
        await other.init({"Authorization": f"Bearer {USER_2_TOKEN}"})
        await admin.init({"headers": ADMIN})
        for ws in (anonymous, owner, other, admin):
            await subscribe(ws, "posts", "posts")
        script = await play(site)
        got = {
            name: [await change(ws, "posts") for _ in range(count)]
            for name, ws, count in (("anonymous", anonymous, 6), ("owner", owner, 8),
                                    ("other", other, 6), ("admin", admin, 8))
        }
    assert [(e["type"], e["id"], e["record"], e["old_record"]) for e in got["anonymous"]] == seen_by_anonymous(script)
    assert [(e["type"], e["id"]) for e in got["other"]] == seen_by_user_2(script)
    assert [(e["type"], e["id"]) for e in got["owner"]] == seen_by_owner(script)
    assert [(e["type"], e["id"]) for e in got["admin"]] == seen_by_owner(script)
    # Users see every column; the owner sees the unpublishing as an update.
    unpublished = got["owner"][3]
    assert list(unpublished["record"]) == POST_COLUMNS and unpublished["record"]["published"] is False
    assert unpublished["old_record"]["published"] is True
    assert all(list(e["record"]) == POST_COLUMNS for e in got["other"] if e["record"] is not None)


async def test_subscribing_to_what_is_not_granted_answers_as_what_does_not_exist(site: Site) -> None:
    async with GraphQLWS.open(site.server) as ws:
        answers = []
        for op_id, table, where in (
            ("1", "comments", None), ("2", "nonexistent", None),
            ("3", "posts", {"body": {"_eq": "x"}}), ("4", "posts", {"nonexistent": {"_eq": "x"}}),
        ):
            await ws.subscribe(op_id, CHANGES, {"table": table, "where": where})
            message = await ws.receive()
            assert message["type"] == "error" and message["id"] == op_id, message
            (error,) = message["payload"]
            assert error["extensions"] == {"code": "validation-failed"}
            answers.append(error["message"])
        await sync(ws)  # the connection stays usable
    assert answers[0] == "table 'comments' does not exist or is not available to this role"
    assert answers[0].replace("comments", "NAME") == answers[1].replace("nonexistent", "NAME")
    assert answers[2].replace("body", "NAME") == answers[3].replace("nonexistent", "NAME")


async def test_bad_credentials_at_connection_init_close_with_4403(site: Site) -> None:
    payloads: list[dict[str, Any]] = [{"headers": bearer(token)} for token in BAD_TOKENS.values()]
    payloads += [bearer(BAD_TOKENS["wrong key"]), {"X-Admin-Secret": "not-the-admin-secret"}]
    for payload in payloads:
        async with GraphQLWS.open(site.server, init=False) as ws:
            await ws.send({"type": "connection_init", "payload": payload})
            assert await ws.close_code() == 4403, payload
    # The legacy protocol says why first, then closes alike.
    async with GraphQLWS.open(site.server, protocol=LEGACY_WS, init=False) as ws:
        await ws.send({"type": "connection_init", "payload": bearer(BAD_TOKENS["expired"])})
        assert await ws.receive() == {"type": "connection_error",
                                      "payload": {"message": "Forbidden: the token has expired"}}
        assert await ws.close_code() == 4403


async def test_a_token_that_expires_ends_every_transport_at_expiry(site: Site) -> None:
    token = mint("1", lifetime=2)
    sse_url = f"/realtime/sse?table=posts&token={token}"
    async with (
        GraphQLWS.open(site.server, init=False) as graphql_ws,
        RawClient.open(ws_url(site.server) + f"?token={token}") as raw,
        site.http.stream("GET", sse_url) as sse,
    ):
        assert sse.status_code == 200
        await graphql_ws.init({"Authorization": f"Bearer {token}"})
        await subscribe(graphql_ws, "posts", "posts")
        await raw.subscribe("posts")
        reader = EventReader(sse)
        # Live until the token expires: a draft of user 1 reaches all three.
        draft = await site.insert(USER_1, '{title: "before expiry"}')
        assert (await change(graphql_ws, "posts"))["id"] == draft
        assert (await raw.receive())["record"]["id"] == draft
        assert json.loads((await reader.event())["data"])["record"]["id"] == draft

        async def sse_ends() -> None:
            async for chunk in reader.chunks:
                assert chunk.startswith(":"), chunk  # at most a heartbeat, then the end

        async def raw_close_code() -> int | None:
            with pytest.raises(ConnectionClosed) as closed:
                await raw.connection.recv()
            return closed.value.rcvd.code if closed.value.rcvd is not None else None

        codes = await asyncio.wait_for(
            asyncio.gather(graphql_ws.close_code(), raw_close_code(), sse_ends()), 6
        )
        assert list(codes[:2]) == [4403, 4403]
        # Closed at the token's `exp`: not before it, and promptly after.
        expires = jwt.decode(token, options={"verify_signature": False})["exp"]
        assert expires - 0.5 <= time.time() < expires + 1.5


@sqlite_only
async def test_replays_apply_the_rules_too(site: Site) -> None:
    async with GraphQLWS.open(site.server, init=False) as admin:
        await admin.init(ADMIN)
        await subscribe(admin, "posts", "posts")
        await site.update(ADMIN, 3, '{title: "before"}')
        since = (await admin.next("posts"))["data"]["tableChanged"]
    script = await play(site)
    async with GraphQLWS.open(site.server) as anonymous:
        await anonymous.subscribe("posts", CHANGES, {"table": "posts", "since": since["cursor"]})
        got = [await change(anonymous, "posts") for _ in range(6)]
    assert [(e["type"], e["id"], e["record"], e["old_record"]) for e in got] == seen_by_anonymous(script)
    async with events(site.server, "posts", headers={"Last-Event-ID": since["cursor"]}) as reader:
        messages = [(await reader.message())[1] for _ in range(6)]
    assert raw_view(messages) == raw_anonymous(script)


# -- the raw protocol and SSE -------------------------------------------------------


def raw_view(messages: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """(type, record) for create/update, (type, id) for delete; each message checked for its shape."""
    out: list[tuple[str, Any]] = []
    for message in messages:
        assert message["table"] == "posts" and message["cursor"].isdigit(), message
        if message["type"] == "delete":
            assert list(message) == ["type", "table", "id", "cursor"], message
            out.append(("delete", message["id"]))
        else:
            assert list(message) == ["type", "table", "record", "cursor"], message
            out.append((message["type"], message["record"]))
    return out


def raw_anonymous(s: Script) -> list[tuple[str, Any]]:
    return [("delete", i) if t == "delete" else (t, record) for t, i, record, _ in seen_by_anonymous(s)]


def ids(view: list[tuple[str, Any]]) -> list[tuple[str, int]]:
    return [(t, x if t == "delete" else x["id"]) for t, x in view]


async def test_raw_protocol_applies_the_same_rules(site: Site) -> None:
    url = ws_url(site.server)
    async with (
        RawClient.open(url) as anonymous,
        RawClient.open(url + f"?token={USER_1_TOKEN}") as owner,
        RawClient.open(url) as other,
    ):
        await other.send({"type": "auth", "token": USER_2_TOKEN})
        for client in (anonymous, owner, other):
            await client.subscribe("posts")
        refused = await anonymous.error({"type": "subscribe", "table": "comments"})
        missing = await anonymous.error({"type": "subscribe", "table": "nonexistent"})
        assert refused.replace("comments", "NAME") == missing.replace("nonexistent", "NAME")
        script = await play(site)
        got = {
            name: raw_view([await client.receive() for _ in range(count)])
            for name, client, count in (("anonymous", anonymous, 6), ("owner", owner, 8), ("other", other, 6))
        }
    assert got["anonymous"] == raw_anonymous(script)
    assert ids(got["other"]) == seen_by_user_2(script)
    assert ids(got["owner"]) == seen_by_owner(script)
    assert all(list(x) == POST_COLUMNS for t, x in got["owner"] if t != "delete")


async def test_sse_applies_the_same_rules(site: Site) -> None:
    async with (
        events(site.server, "posts") as anonymous,
        events(site.server, "posts", params={"token": USER_1_TOKEN}) as owner,
        events(site.server, "posts", headers=USER_2) as other,
    ):
        script = await play(site)
        got = {
            name: raw_view([(await reader.message())[1] for _ in range(count)])
            for name, reader, count in (("anonymous", anonymous, 6), ("owner", owner, 8), ("other", other, 6))
        }
    assert got["anonymous"] == raw_anonymous(script)
    assert ids(got["other"]) == seen_by_user_2(script)
    assert ids(got["owner"]) == seen_by_owner(script)


@sqlite_only
async def test_bad_credentials_close_the_raw_protocol_and_refuse_sse(site: Site) -> None:
    for name, token in BAD_TOKENS.items():
        for url, auth in ((ws_url(site.server) + f"?token={token}", None), (ws_url(site.server), token)):
            async with RawClient.open(url) as client:
                if auth is not None:
                    await client.send({"type": "auth", "token": auth})
                message = await client.receive()
                assert message["type"] == "error" and message["message"], (name, message)
                with pytest.raises(ConnectionClosed) as closed:
                    await client.receive()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403, name
        for params, headers in (({"table": "posts", "token": token}, {}),
                                ({"table": "posts"}, bearer(token))):
            response = await site.http.get("/realtime/sse", params=params, headers=headers)
            assert response.status_code == 401, (name, response.text)
            assert response.json()["errors"][0]["extensions"] == {"code": "invalid-jwt"}, name
    response = await site.http.get("/realtime/sse", params={"table": "posts"}, headers={"X-Admin-Secret": "wrong"})
    assert response.status_code == 401 and response.json()["errors"][0]["extensions"] == {"code": "invalid-jwt"}
    refused = (await site.http.get("/realtime/sse", params={"table": "comments"})).json()
    missing = (await site.http.get("/realtime/sse", params={"table": "nonexistent"})).json()
    assert refused["errors"][0]["message"].replace("comments", "NAME") == (
        missing["errors"][0]["message"].replace("nonexistent", "NAME")
    )


# -- grouping ---------------------------------------------------------------------


@sqlite_only
async def test_sessions_that_see_alike_share_a_stream(site: Site) -> None:
    hub = site.server.app.state.runtime.realtime.hub
    url = ws_url(site.server)
    async with (
        GraphQLWS.open(site.server) as anonymous_1,
        GraphQLWS.open(site.server) as anonymous_2,
        GraphQLWS.open(site.server, init=False) as tab_1,
        GraphQLWS.open(site.server, init=False) as tab_2,
        GraphQLWS.open(site.server, init=False) as other,
        RawClient.open(url) as raw_anonymous_1,
        RawClient.open(url) as raw_anonymous_2,
        RawClient.open(url + f"?token={USER_1_TOKEN}") as raw_owner,
        RawClient.open(url + f"?token={USER_2_TOKEN}") as raw_other,
    ):
        await tab_1.init({"Authorization": f"Bearer {USER_1_TOKEN}"})
        await tab_2.init({"Authorization": f"Bearer {USER_1_TOKEN}"})
        await other.init({"Authorization": f"Bearer {USER_2_TOKEN}"})
        for ws in (anonymous_1, anonymous_2):
            await subscribe(ws, "posts", "posts")
        assert (len(hub.streams), hub.subscriptions) == (1, 2)  # two anonymous subscribers, one stream
        for ws in (tab_1, tab_2):
            await subscribe(ws, "posts", "posts")
        assert (len(hub.streams), hub.subscriptions) == (2, 4)  # one user's two tabs share one
        await subscribe(other, "posts", "posts")
        assert (len(hub.streams), hub.subscriptions) == (3, 5)  # another user: another stream
        for client in (raw_anonymous_1, raw_anonymous_2):
            await client.subscribe("posts")
        assert (len(hub.streams), hub.subscriptions) == (4, 7)
        await raw_owner.subscribe("posts")
        await raw_other.subscribe("posts")
        assert (len(hub.streams), hub.subscriptions) == (6, 9)
        # Shared streams still deliver each session its own view.
        draft = await site.insert(USER_1, '{title: "draft"}')
        marker = await site.insert(ADMIN, '{title: "marker", user_id: 2, published: true}')
        for ws in (anonymous_1, anonymous_2, other):
            assert (await change(ws, "posts"))["id"] == marker
        for ws in (tab_1, tab_2):
            assert [(await change(ws, "posts"))["id"] for _ in range(2)] == [draft, marker]


# -- one session per connection, and only the admin secret is admin ------------------


@sqlite_only
@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_second_connection_init_closes_with_4429(site: Site, protocol: str) -> None:
    # Re-init would keep the first token's subscriptions (and view) past its expiry.
    hub = site.server.app.state.runtime.realtime.hub
    async with GraphQLWS.open(site.server, protocol=protocol, init=False) as ws:
        await ws.init({"Authorization": f"Bearer {mint('1', lifetime=30)}"})
        await ws.subscribe("posts", CHANGES, {"table": "posts"})
        await ws.send({"type": "connection_init", "payload": bearer(mint("2", lifetime=3600))})
        assert await ws.close_code() == 4429
    deadline = time.monotonic() + 5
    while hub.subscriptions and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert hub.subscriptions == 0


ADMIN_BY_TOKEN = bearer(mint("1", "admin"))
"""A token claiming role `admin`: an ordinary role, which PERMISSIONS grants nothing."""


async def test_a_token_with_role_admin_is_an_ordinary_role(site: Site) -> None:
    # The admin secret first, so any cache it fills would be the one a token reuses.
    query = "{ posts(order_by: {id: asc}) { id body } }"
    insert = 'mutation { insert_posts_one(object: {title: "by token", user_id: 1}) { id } }'
    assert len((await site.data(query, ADMIN))["posts"]) == 4
    created = (await site.data(insert, ADMIN))["insert_posts_one"]["id"]
    # A role the file does not name has no tables: the same answer as for any unknown name.
    for who in (ADMIN_BY_TOKEN, bearer(mint("1", "stranger"))):
        await same_error(site, who, "{ NAME { id } }", "posts")
        await same_error(site, who, "{ NAME { id } }", "users")
        await same_error(site, who, 'mutation { NAME(object: {title: "t", user_id: 1}) { id } }', "insert_posts_one")
        for document in (query, insert, f"mutation {{ delete_posts_by_pk(id: {created}) {{ id }} }}"):
            error = await site.error(document, who)
            assert error["extensions"] == {"code": "validation-failed"}, error
    # Nothing was written; the admin secret still sees and does everything, after the token.
    assert [p["id"] for p in await site.posts(ADMIN)] == [1, 2, 3, 4, created]
    assert len((await site.data(query, ADMIN))["posts"]) == 5


@sqlite_only
async def test_a_token_with_role_admin_subscribes_to_nothing(site: Site) -> None:
    not_available = "table 'posts' does not exist or is not available to this role"
    for protocol in (TRANSPORT_WS, LEGACY_WS):
        async with (
            GraphQLWS.open(site.server, protocol=protocol, init=False) as secret,
            GraphQLWS.open(site.server, protocol=protocol, init=False) as token,
        ):
            await secret.init({"headers": ADMIN})
            await token.init({"headers": ADMIN_BY_TOKEN})
            await secret.subscribe("posts", CHANGES, {"table": "posts"})
            await token.subscribe("posts", CHANGES, {"table": "posts"})
            message = await token.receive()
            assert message["type"] == "error" and message["id"] == "posts", message
            errors = message["payload"] if isinstance(message["payload"], list) else [message["payload"]]
            assert [e["message"] for e in errors] == [not_available]
            # Queries and mutations over the socket go by the same rules.
            await token.subscribe("q", "{ posts { id } }")
            message = await token.receive()
            assert message["type"] == "error" and message["id"] == "q", message
            await token.subscribe("m", 'mutation { insert_posts_one(object: {title: "ws", user_id: 1}) { id } }')
            message = await token.receive()
            assert message["type"] == "error" and message["id"] == "m", message
            # The admin secret's subscription is live and sees what the token may not.
            marker = await site.insert(ADMIN, '{title: "secret only", user_id: 2}')
            assert (await change(secret, "posts"))["id"] == marker
    token_text = ADMIN_BY_TOKEN["Authorization"].removeprefix("Bearer ")
    async with RawClient.open(ws_url(site.server) + f"?token={token_text}") as raw:
        assert await raw.error({"type": "subscribe", "table": "posts"}) == not_available
    response = await site.http.get("/realtime/sse", params={"table": "posts"}, headers=ADMIN_BY_TOKEN)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["message"] == not_available
    assert [p["title"] for p in await site.posts(ADMIN, "title")][-1] == "secret only"


@sqlite_only
async def test_a_file_may_grant_the_role_named_admin(library_url: str, serve: Any, tmp_path: Path) -> None:
    path = tmp_path / "admin-role.yaml"
    path.write_text(PERMISSIONS.replace(
        "      anonymous: {columns: [id, name]}\n",
        "      anonymous: {columns: [id, name]}\n      admin: {filter: {id: {_eq: X-User-Id}}, columns: [id, name]}\n",
    ))
    server = serve(database=library_url, permissions=str(path), jwt_secret=SECRET)  # no --admin-secret
    async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as http:
        site = Site(server, http)
        assert await site.data("{ users { id name } }", ADMIN_BY_TOKEN) == {"users": [{"id": 1, "name": "Alice"}]}
        await same_error(site, ADMIN_BY_TOKEN, "{ users { id NAME } }", "email")
        await same_error(site, ADMIN_BY_TOKEN, "{ NAME { id } }", "posts")
        # Without --admin-secret there is no admin at all.
        response = await site.post("{ users { id } }", {"X-Admin-Secret": "anything"})
        assert response.status_code == 401


# -- an event's key is shown only to who may select it ---------------------------------

SECRET_KEYS = """\
tables:
  accounts:
    select:
      anonymous: {columns: [display]}
      user: {columns: "*"}
  memberships:
    select:
      anonymous: {columns: [org, note]}
      user: {columns: "*"}
"""
EMAIL = "bob@corp.example"


async def add_secret_keyed_tables(url: str) -> None:
    """`accounts` keyed by an email, `memberships` by (org, member): keys anonymous may not select."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE accounts (email TEXT PRIMARY KEY, display TEXT)"))
            await conn.execute(sa.text(
                "CREATE TABLE memberships (org TEXT, member TEXT, note TEXT, PRIMARY KEY (org, member))"
            ))
    finally:
        await engine.dispose()


async def write_secret_keyed_rows(site: Site) -> None:
    for mutation in (
        f'insert_accounts_one(object: {{email: "{EMAIL}", display: "Bob"}}) {{ email }}',
        f'update_accounts_by_pk(pk_columns: {{email: "{EMAIL}"}}, _set: {{display: "Robert"}}) {{ email }}',
        f'delete_accounts_by_pk(email: "{EMAIL}") {{ email }}',
        'insert_memberships_one(object: {org: "corp", member: "bob", note: "n"}) { org }',
        'delete_memberships_by_pk(org: "corp", member: "bob") { org }',
    ):
        await site.data(f"mutation {{ {mutation} }}", ADMIN)


async def test_event_ids_show_only_keys_the_subscriber_may_select(
    library_url: str, serve: Any, tmp_path: Path
) -> None:
    await add_secret_keyed_tables(library_url)
    path = tmp_path / "keys.yaml"
    path.write_text(SECRET_KEYS)
    server = serve(database=library_url, permissions=str(path), jwt_secret=SECRET, admin_secret=ADMIN_SECRET)
    url = ws_url(server)
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as http,
        GraphQLWS.open(server) as anonymous,
        GraphQLWS.open(server, init=False) as user,
        RawClient.open(url) as raw_anonymous,
        RawClient.open(url + f"?token={USER_1_TOKEN}") as raw_user,
        events(server, "accounts", "memberships") as sse_anonymous,
        events(server, "accounts", "memberships", headers=USER_1) as sse_user,
    ):
        site = Site(server, http)
        await user.init({"headers": USER_1})
        for ws in (anonymous, user):
            await subscribe(ws, "accounts", "accounts")
            await subscribe(ws, "memberships", "memberships")
        for raw in (raw_anonymous, raw_user):
            await raw.subscribe("accounts")
            await raw.subscribe("memberships")
        await write_secret_keyed_rows(site)

        async def graphql_events(ws: GraphQLWS) -> list[dict[str, Any]]:
            got = [await change(ws, "accounts") for _ in range(3)]
            return got + [await change(ws, "memberships") for _ in range(2)]

        seen = {"anonymous": await graphql_events(anonymous), "user": await graphql_events(user)}
        raw_seen = {"anonymous": [await raw_anonymous.receive() for _ in range(5)],
                    "user": [await raw_user.receive() for _ in range(5)]}
        sse_seen = {"anonymous": [(await sse_anonymous.message())[1] for _ in range(5)],
                    "user": [(await sse_user.message())[1] for _ in range(5)]}
    membership = {"org": "corp", "member": "bob"}
    # graphql-ws: `id` is null unless every key column is selectable; records keep their columns.
    assert [(e["type"], e["id"], e["record"], e["old_record"]) for e in seen["anonymous"]] == [
        ("create", None, {"display": "Bob"}, None),
        ("update", None, {"display": "Robert"}, {"display": "Bob"}),
        ("delete", None, None, {"display": "Robert"}),
        ("create", None, {"org": "corp", "note": "n"}, None),
        ("delete", None, None, {"org": "corp", "note": "n"}),
    ]
    assert [e["id"] for e in seen["user"]] == [EMAIL, EMAIL, EMAIL, membership, membership]
    # The raw protocol and SSE leave the key out of a delete; creates and updates carry records only.
    for messages in (raw_seen["anonymous"], sse_seen["anonymous"]):
        assert [(m["type"], m.get("record")) for m in messages] == [
            ("create", {"display": "Bob"}), ("update", {"display": "Robert"}), ("delete", None),
            ("create", {"org": "corp", "note": "n"}), ("delete", None),
        ]
        assert [list(m) for m in messages if m["type"] == "delete"] == [["type", "table", "cursor"]] * 2
    for messages in (raw_seen["user"], sse_seen["user"]):
        assert [m["id"] for m in messages if m["type"] == "delete"] == [EMAIL, membership]
    # Nothing anonymous received names the key.
    assert EMAIL not in json.dumps([seen["anonymous"], raw_seen["anonymous"], sse_seen["anonymous"]])


# -- start-up -----------------------------------------------------------------------

BAD_RULE = PERMISSIONS.replace("filter: {published: {_eq: true}}", "filter: {publishd: {_eq: true}}")
BAD_RULE_MESSAGE = (
    "tables.posts.select.anonymous.filter: unknown column or relationship 'publishd' "
    "of table 'posts'; did you mean 'published'?"
)


@sqlite_only
async def test_an_invalid_rule_stops_the_start(library_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_RULE)
    app = create_app(database=library_url, permissions=str(bad), jwt_secret=SECRET)
    with pytest.raises(PermissionsError) as error:
        await app.state.runtime.start()
    assert str(error.value) == f"{bad}: {BAD_RULE_MESSAGE}"
    assert not app.state.runtime.started

    result = subprocess.run(
        [sys.executable, "-m", "graph", "serve", "--permissions", str(bad), "--database", library_url,
         "--port", "0"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("FORGEGRAPH_")},
    )
    assert result.returncode == 2, result
    assert result.stderr.splitlines() == [f"forgegraph: error: {bad}: {BAD_RULE_MESSAGE}"]
