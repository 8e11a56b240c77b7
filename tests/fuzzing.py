"""What the fuzz tests (tests/test_fuzz_*.py) share: the example budget, one
server per module, and the checks every answer must pass.

`make test` runs a bounded number of examples per fuzz test; set
FORGEGRAPH_FUZZ_EXAMPLES for a longer run, e.g.
`FORGEGRAPH_FUZZ_EXAMPLES=2000 .venv/bin/pytest tests/test_fuzz_http.py`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from graph.app import create_app
from tests import library
from tests.conftest import POSTGRES, LiveServer, _admin, unavailable

EXAMPLES = int(os.environ.get("FORGEGRAPH_FUZZ_EXAMPLES", "50"))

# One server serves every example of a module, so examples are cheap; the
# fixture is module-scoped on purpose, and shrinking may take a while.
settings.register_profile(
    "forgegraph-fuzz",
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
fuzz = settings.get_profile("forgegraph-fuzz")

SECRET = "forgegraph-fuzz-tests-hmac-secret-long-enough-for-hs512-0123456789"
ADMIN_SECRET = "forgegraph-fuzz-admin-secret"

# The codes of SPEC section 8. "unexpected" is deliberately absent: it means
# the server failed on input it should have refused.
CODES = {
    "validation-failed",
    "permission-denied",
    "constraint-violation",
    "invalid-jwt",
    "not-found",
    "invalid-cursor",
}
TRACEBACK = re.compile(r'Traceback \(most recent call last\)|File "[^"]+", line \d+')

TABLES = {
    "users": ["id", "name", "email", "score", "active", "born", "created_at", "profile"],
    "posts": ["id", "title", "body", "published", "user_id", "editor_id", "rating", "published_at"],
    "comments": ["id", "post_id", "body"],
    "tags": ["post_id", "name", "weight"],
    "audit_log": ["message", "level"],
}
RELATIONSHIPS = {
    "users": ["posts", "posts_by_editor_id"],
    "posts": ["user", "editor", "comments", "tags"],
    "comments": ["post"],
    "tags": ["post"],
    "audit_log": [],
}
OPERATORS = [
    "_eq", "_neq", "_gt", "_gte", "_lt", "_lte", "_in", "_nin", "_is_null",
    "_like", "_nlike", "_ilike", "_nilike",
]
DIRECTIONS = ["asc", "desc", "asc_nulls_first", "asc_nulls_last", "desc_nulls_first", "desc_nulls_last"]


class ServerErrors(logging.Handler):
    """Collects what the server logs at ERROR and above (an unexpected error, a
    traceback from uvicorn): every one is a bug the fuzz found."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def attach(self) -> None:
        # uvicorn's loggers do not propagate to the root, and every new uvicorn
        # Config (another test's server) replaces their handlers: attach again.
        for logger in (logging.getLogger(), logging.getLogger("uvicorn.error")):
            if self not in logger.handlers:
                logger.addHandler(self)

    def detach(self) -> None:
        for logger in (logging.getLogger(), logging.getLogger("uvicorn.error")):
            logger.removeHandler(self)

    def take(self) -> list[str]:
        """What was logged since the last call (and listen on)."""
        taken, self.records = self.records, []
        self.attach()
        return [f"{r.name}: {r.getMessage()}" for r in taken]


class Fuzzed:
    """The server under fuzz and what it logs as errors (short in hypothesis' reports)."""

    def __init__(self, live: LiveServer, errors: ServerErrors) -> None:
        self.live = live
        self.errors = errors

    def __repr__(self) -> str:
        return f"Fuzzed({self.live.url})"


@contextmanager
def library_database(directory: Path, backend: str = "sqlite") -> Iterator[str]:
    """The URL of a fresh database holding tests/library.py, on SQLite or PostgreSQL."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{directory / 'library.db'}"
        asyncio.run(library.create(url))
        yield url
        return
    try:
        asyncio.run(_admin("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - any failure means "not here"
        unavailable("PostgreSQL", f"{POSTGRES}: {type(error).__name__}: {error}")
    name = f"fg_fuzz_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        url = sa.make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)
        asyncio.run(library.create(url))
        yield url
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def library_server(directory: Path, backend: str = "sqlite", **options: Any) -> Iterator[Fuzzed]:
    """A server on a fresh copy of tests/library.py, and what it logs as errors."""
    with library_database(directory, backend) as url:
        errors = ServerErrors()
        server = LiveServer(create_app(database=url, jwt_secret=SECRET, admin_secret=ADMIN_SECRET, **options))
        server.start()
        errors.attach()
        try:
            yield Fuzzed(server, errors)
        finally:
            server.stop()
            errors.detach()


def dumps(value: Any) -> str:
    """JSON text as a client might send it: integers of any size, lone surrogates escaped."""
    return json.dumps(value)


def check_errors(errors: Any) -> None:
    """Each GraphQL error has a message and one of the documented codes."""
    assert isinstance(errors, list) and errors, errors
    for error in errors:
        assert isinstance(error, dict) and isinstance(error.get("message"), str), error
        code = (error.get("extensions") or {}).get("code")
        assert code in CODES, error


def check_body(text: str) -> None:
    assert not TRACEBACK.search(text), text


def check_response(response: httpx.Response) -> dict[str, Any]:
    """A GraphQL-over-HTTP answer: never 5xx, JSON, errors coded, no traceback."""
    assert response.status_code < 500, (response.status_code, response.text)
    check_body(response.text)
    body = orjson.loads(response.content)
    assert isinstance(body, dict), body
    if "errors" in body:
        check_errors(body["errors"])
    else:
        assert "data" in body, body
    if response.status_code >= 400:
        assert "errors" in body, body
    return body


def healthy(http: httpx.Client) -> None:
    """The server still answers an ordinary query."""
    response = http.post("/graphql", json={"query": "{ users_aggregate { aggregate { count } } }"})
    assert response.status_code == 200, response.text
    assert "errors" not in response.json(), response.text


# -- strategies shared by the modules -------------------------------------------

junk_text = st.one_of(
    st.text(max_size=20),
    st.sampled_from([
        "", " ", "'", '"', "'; DROP TABLE posts; --", "%", "_", "\\", "\\\\", "\x00", "a\x00b",
        "\u202e", "😀", "\ud7ff", "Robert'); DROP TABLE users;--", "1 OR 1=1", "$1", ":name", "?",
        "*", "[", "]", "NaN", "Infinity", "-0", "1e999", "9" * 40, "__typename", "__schema",
    ]),
)
numbers = st.one_of(
    st.integers(min_value=-(2**31), max_value=2**31 - 1),
    st.integers(),
    st.sampled_from([2**31, -(2**31) - 1, 2**53 + 1, 2**63, 2**64, -(2**63) - 1, 10**30]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324, 0.1]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, junk_text)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(junk_text, inner, max_size=4),
    ),
    max_leaves=12,
)


def bool_exps(table: str, depth: int = 3) -> st.SearchStrategy[Any]:
    """`t_bool_exp`-shaped JSON: mostly real column names and operators, with junk mixed in."""
    columns = TABLES[table]
    column_names = st.one_of(st.sampled_from(columns), junk_text)
    operator_names = st.one_of(st.sampled_from(OPERATORS), junk_text)
    operand = st.one_of(scalars, st.lists(scalars, max_size=4), json_values)
    comparison = st.one_of(
        st.dictionaries(operator_names, operand, max_size=3),
        scalars,
    )
    leaf = st.dictionaries(column_names, comparison, max_size=3)
    if depth <= 0:
        return leaf
    inner = bool_exps(table, depth - 1)
    related = [
        st.fixed_dictionaries({name: bool_exps(_remote(table, name), depth - 1)})
        for name in RELATIONSHIPS[table]
    ]
    return st.one_of(
        leaf,
        st.fixed_dictionaries({"_and": st.lists(inner, max_size=3)}),
        st.fixed_dictionaries({"_or": st.lists(inner, max_size=3)}),
        st.fixed_dictionaries({"_not": inner}),
        *related,
        json_values,
    )


def order_bys(table: str) -> st.SearchStrategy[Any]:
    columns = TABLES[table]
    direction = st.one_of(st.sampled_from(DIRECTIONS), junk_text, scalars)
    item = st.dictionaries(st.one_of(st.sampled_from(columns), junk_text), direction, max_size=3)
    objects = [
        st.fixed_dictionaries({name: st.dictionaries(st.sampled_from(TABLES[_remote(table, name)]), direction, max_size=2)})
        for name in RELATIONSHIPS[table]
        if not _is_array(table, name)
    ]
    return st.one_of(st.lists(st.one_of(item, *objects), max_size=3), item, json_values)


def _remote(table: str, relationship: str) -> str:
    return {
        "posts": "posts", "posts_by_editor_id": "posts", "user": "users", "editor": "users",
        "comments": "comments", "tags": "tags", "post": "posts",
    }[relationship]


def _is_array(table: str, relationship: str) -> bool:
    return relationship in ("posts", "posts_by_editor_id", "comments", "tags")
