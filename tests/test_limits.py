"""Query limits (depth, cost, rows per list, body size), their flags, and the README table.

Each limit is tested at its edge: exactly at the limit passes, one past it
fails with the documented answer. Connection limits are in
tests/test_connection_limits.py.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from graphql import build_schema, get_introspection_query, parse

from graph.cli import LIMIT_OPTIONS, UsageError, build_parser, resolve_settings
from graph.complexity import DEFAULT_LIST_SIZE
from graph.config import Limits, Settings
from graph.document_limits import limit_errors
from tests.conftest import GraphQL
from tests.test_cli import forgegraph, one_error_line

README = Path(__file__).resolve().parent.parent / "README.md"
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])


def client(serve: Any, library_url: str, **limits: Any) -> GraphQL:
    return GraphQL(serve(database=library_url, limits=Limits(**limits)))


def error_of(body: dict[str, Any]) -> dict[str, Any]:
    assert body.get("data") is None, body
    (error,) = body["errors"]
    return error  # type: ignore[no-any-return]


# -- query cost ----------------------------------------------------------------


@sqlite_only
def test_cost_at_the_maximum_passes_and_one_more_fails(serve: Any, library_url: str) -> None:
    gql = client(serve, library_url, max_complexity=7)
    assert len(gql("{ users(limit: 6) { id } }")["users"]) == 3  # 1 + 6 x 1 = 7
    assert gql("{ users(limit: 2) { id name } __typename }")["users"]  # 1 + 2 x 2 = 5, typename free
    error = error_of(gql.raw("{ users(limit: 7) { id } }"))  # 1 + 7 x 1 = 8
    assert error["extensions"]["code"] == "validation-failed"
    assert "the query cost 8 exceeds the maximum cost of 7" in error["message"]
    # A list without a limit counts as DEFAULT_LIST_SIZE rows: 1 + 10 x 1 = 11.
    assert "cost 11 " in error_of(gql.raw("{ users { id } }"))["message"]


@sqlite_only
def test_graphiql_introspection_passes_the_default_limits_and_counts_like_any_query(
    serve: Any, library_url: str
) -> None:
    gql = client(serve, library_url)
    assert gql(get_introspection_query())["__schema"]["queryType"]["name"] == "query_root"
    small = client(serve, library_url, max_complexity=100, max_depth=3)
    messages = [e["message"] for e in small.raw(get_introspection_query())["errors"]]
    assert any("the query cost 220 exceeds the maximum cost of 100" in m for m in messages), messages
    assert any("the query depth 6 exceeds the maximum depth of 3" in m for m in messages), messages


@sqlite_only
def test_default_limits_pass_a_three_level_nested_query(gql: GraphQL) -> None:
    # 1 + 10 x (1 + 1 + 10 x (1 + 1 + 10 x 1)) = 1221: well under the default 10,000.
    data = gql("{ users { name posts_by_user_id { title comments { body } } } }")
    assert data["users"]


SDL = """
type Query { users(limit: Int): [User!]!  user: User }
type User { id: Int  name: String  posts(limit: Int): [Post!]!  best: Post }
type Post { id: Int  title: String  tags: [String] }
"""


@pytest.mark.parametrize(
    ("document", "cost"),
    [
        ("{ user { id } }", 2),
        ("{ users { id } }", 1 + DEFAULT_LIST_SIZE),
        ("{ users(limit: 3) { id posts(limit: 2) { id } } }", 1 + 3 * (1 + 1 + 2 * 1)),
        ("{ users(limit: 0) { id posts { id } } }", 1),
        ("{ user { best { title tags } } }", 4),  # a list of scalars costs 1, like any field
        ("query($n: Int) { users(limit: $n) { id } }", 1 + DEFAULT_LIST_SIZE),  # unknown: as absent
        ("{ users(limit: 2) { ...F } } fragment F on User { id name }", 5),
        ("{ users(limit: 2) { ... on User { id name } } }", 5),
        # Introspection costs 1 a field; its lists (of the schema, not rows) do not multiply.
        ("{ __schema { types { fields { name } } } user { id } }", 4 + 2),
        ('{ __type(name: "User") { name fields { name type { ofType { name } } } } }', 7),
    ],
)
def test_cost_estimates(document: str, cost: int) -> None:
    schema = build_schema(SDL)
    assert cost_errors(schema, document, cost) == []
    if cost - 1 == 0:
        return  # a maximum of 0 turns the limit off
    (error,) = cost_errors(schema, document, cost - 1)
    assert f"the query cost {cost} exceeds the maximum cost of {cost - 1}" in error.message


def test_max_limit_caps_the_rows_a_cost_counts() -> None:
    schema = build_schema(SDL)
    assert cost_errors(schema, "{ users(limit: 1000) { id } }", 1 + 5, max_limit=5) == []
    assert cost_errors(schema, "{ users { id } }", 1 + 3, max_limit=3) == []


def cost_errors(schema: Any, document: str, max_complexity: int, max_limit: int = 0) -> list[Any]:
    """The cost limit alone, as the server checks it (graph.document_limits)."""
    limits = Limits(max_depth=0, max_aliases=0, max_complexity=max_complexity, max_limit=max_limit)
    return limit_errors(schema, parse(document), limits)


# -- depth -----------------------------------------------------------------------


def nested(depth: int) -> str:
    """posts { user { posts { user ... id: `depth` fields deep, one row per list."""
    names = ["posts(limit: 1)"] + ["user", "posts_by_user_id(limit: 1)"] * depth
    return "{ " + "".join(f"{n} {{ " for n in names[: depth - 1]) + "id" + " }" * (depth - 1) + " }"


@sqlite_only
def test_depth_at_the_maximum_passes_and_one_deeper_fails(serve: Any, library_url: str) -> None:
    gql = client(serve, library_url, max_depth=3)
    assert gql(nested(3))["posts"]
    error = error_of(gql.raw(nested(4)))
    assert error["extensions"]["code"] == "validation-failed"
    assert "the query depth 4 exceeds the maximum depth of 3" in error["message"]
    unlimited = client(serve, library_url, max_depth=0, max_complexity=0)
    assert unlimited(nested(20))["posts"]


# -- rows per list field (--max-limit) -------------------------------------------


def test_max_limit_clamps_lists_as_hasura_does(serve: Any, library_url: str) -> None:
    gql = client(serve, library_url, max_limit=1)
    ids = "{ users(order_by: {id: asc}%s) { id } }"
    assert [u["id"] for u in gql(ids % ", limit: 1")["users"]] == [1]  # at the cap
    assert [u["id"] for u in gql(ids % ", limit: 2")["users"]] == [1]  # past it: clamped
    assert [u["id"] for u in gql(ids % "")["users"]] == [1]  # no limit: the cap
    assert [u["id"] for u in gql(ids % ", limit: 0")["users"]] == []
    assert [u["id"] for u in gql(ids % ", offset: 2")["users"]] == [3]
    # Per parent row in relationships (Alice has posts 1 and 2); aggregates are not lists.
    query = "{ users_by_pk(id: 1) { posts_by_user_id(order_by: {id: desc}%s) { id } } }"
    assert gql(query % "")["users_by_pk"]["posts_by_user_id"] == [{"id": 2}]
    assert gql(query % ", limit: 5")["users_by_pk"]["posts_by_user_id"] == [{"id": 2}]
    count = gql("{ users_aggregate { aggregate { count } } }")["users_aggregate"]["aggregate"]["count"]
    assert count == 3
    assert error_of(gql.raw("{ users(limit: -1) { id } }"))["extensions"]["code"] == "validation-failed"


# -- request body ------------------------------------------------------------------


@sqlite_only
def test_body_at_the_maximum_passes_and_one_byte_more_is_413(serve: Any, library_url: str) -> None:
    gql = client(serve, library_url, max_body_bytes=300)

    def body(size: int) -> bytes:
        query = "{ users_by_pk(id: 1) { name } }"
        padded = orjson.dumps({"query": query + " " * (size - len(orjson.dumps({"query": query})))})
        assert len(padded) == size
        return padded

    headers = {"content-type": "application/json"}
    ok = gql.http.post("/graphql", content=body(300), headers=headers)
    assert ok.json() == {"data": {"users_by_pk": {"name": "Alice"}}}
    too_big = gql.http.post("/graphql", content=body(301), headers=headers)
    assert too_big.status_code == 413
    assert error_of(too_big.json())["extensions"]["code"] == "validation-failed"

    def chunks(data: bytes) -> Any:  # no content-length: the limit is counted while reading
        yield data[:100]
        yield data[100:]

    streamed = gql.http.post("/graphql", content=chunks(body(301)), headers=headers)
    assert streamed.status_code == 413


# -- flags, environment variables, README ------------------------------------------


FLAG_VALUES = {
    "--max-depth": ("3", 3),
    "--max-complexity": ("500", 500),
    "--max-limit": ("50", 50),
    "--max-aliases": ("5", 5),
    "--document-cache-bytes": ("4096", 4096),
    "--max-body-bytes": ("2048", 2048),
    "--max-message-bytes": ("4096", 4096),
    "--max-connections-per-ip": ("8", 8),
    "--max-subscriptions-per-connection": ("0", 0),
    "--max-messages-per-second": ("20", 20),
    "--send-queue-size": ("10", 10),
    "--connection-init-timeout": ("2.5", 2.5),
}


def test_every_limit_has_a_flag_and_a_variable() -> None:
    assert {o.dest for o in LIMIT_OPTIONS} == {f.name for f in dataclasses.fields(Limits)}
    assert set(FLAG_VALUES) == {o.flag for o in LIMIT_OPTIONS}
    argv = ["serve"] + [part for flag, (text, _) in FLAG_VALUES.items() for part in (flag, text)]
    settings = resolve_settings("serve", build_parser().parse_args(argv), {})
    for flag, (_, value) in FLAG_VALUES.items():
        assert getattr(settings.limits, flag.removeprefix("--").replace("-", "_")) == value, flag
    environ = {"FORGEGRAPH_MAX_COMPLEXITY": "9", "FORGEGRAPH_CONNECTION_INIT_TIMEOUT": "0"}
    namespace = build_parser().parse_args(["serve", "--max-depth", "4"])
    settings = resolve_settings("serve", namespace, environ)
    assert (settings.limits.max_complexity, settings.limits.connection_init_timeout) == (9, 0.0)
    assert settings.limits.max_depth == 4
    assert settings.limits.max_limit == Limits().max_limit  # untouched ones keep their default


@pytest.mark.parametrize(
    ("flag", "text"),
    [
        ("--max-depth", "-1"),
        ("--max-complexity", "lots"),
        ("--max-limit", "1.5"),
        ("--max-body-bytes", "0"),  # the memory bounds cannot be turned off
        ("--send-queue-size", "0"),
        ("--max-message-bytes", "-5"),
        ("--connection-init-timeout", "-1"),
        ("--connection-init-timeout", "nan"),
        ("--max-messages-per-second", ""),
    ],
)
def test_bad_limit_values_are_a_usage_error(flag: str, text: str) -> None:
    namespace = build_parser().parse_args(["serve", f"{flag}={text}"])
    with pytest.raises(UsageError, match=f"invalid value for {flag}"):
        resolve_settings("serve", namespace, {})


def test_a_bad_limit_stops_serve_with_one_line(tmp_path: Path) -> None:
    assert "--max-depth" in one_error_line(forgegraph("serve", "--max-depth", "-1", cwd=tmp_path))
    result = forgegraph("serve", cwd=tmp_path, FORGEGRAPH_MAX_MESSAGES_PER_SECOND="fast")
    assert "FORGEGRAPH_MAX_MESSAGES_PER_SECOND" in one_error_line(result)
    assert not (tmp_path / "forgegraph.db").exists()


def test_create_app_takes_limits_by_name() -> None:
    settings = Settings().with_overrides(max_depth=3, limits=Limits(max_limit=5))
    assert (settings.limits.max_depth, settings.limits.max_limit) == (3, 5)
    with pytest.raises(TypeError, match="max_deepness"):
        Settings().with_overrides(max_deepness=3)


def readme_limits_table() -> dict[str, list[str]]:
    """The rows of README's "Limits and security" table, keyed by their flag."""
    text = README.read_text()
    section = text.split("## Limits and security", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        flags = re.findall(r"`(--[a-z-]+)`", line)
        if line.startswith("|") and flags:
            rows[flags[0]] = cells
    return rows


def test_the_readme_documents_every_limit() -> None:
    rows = readme_limits_table()
    for option in LIMIT_OPTIONS:
        assert option.flag in rows, f"README's limits table has no row for {option.flag}"
        row = " | ".join(rows[option.flag])
        assert f"`{option.env}`" in row, f"{option.flag}: the row does not name {option.env}"
        default = getattr(Limits(), option.dest)
        shown = f"{default:,}" if isinstance(default, int) else f"{default:g}"
        assert re.search(rf"(?<![\d,.]){re.escape(shown)}(?![\d,])", rows[option.flag][1]), (
            f"{option.flag}: the default {shown} is not in {rows[option.flag][1]!r}"
        )
