"""Fuzzing GraphQL over HTTP: documents, variables, `where`/`order_by` JSON and raw bodies.

Every answer must be JSON with coded errors (SPEC section 8), never a 5xx
or a traceback, and the server must log no error while answering; after
each example it still serves an ordinary query. See tests/fuzzing.py for
the example budget (FORGEGRAPH_FUZZ_EXAMPLES).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.conftest import GraphQL
from tests.fuzzing import (
    TABLES,
    ServerErrors,
    bool_exps,
    check_response,
    dumps,
    fuzz,
    healthy,
    json_values,
    junk_text,
    library_server,
    order_bys,
    scalars,
)

# SQLAlchemy warns of rows without a key column; the database refuses them, as it should.
pytestmark = pytest.mark.filterwarnings("ignore:Column .* is marked as a member of the primary key")

DOCUMENTS = [
    "{ users { id name posts(where: {published: {_eq: true}}, order_by: [{id: desc}], limit: 2) { id title user { name } } } }",
    "query Q($w: posts_bool_exp, $o: [posts_order_by!], $l: Int, $f: Int) { posts(where: $w, order_by: $o, limit: $l, offset: $f) { id title rating published_at } posts_aggregate(where: $w) { aggregate { count } } }",
    'query($id: Int!) { users_by_pk(id: $id) { id profile born } tags_by_pk(post_id: 1, name: "a") { weight } }',
    "mutation($w: posts_bool_exp!, $s: posts_set_input) { update_posts(where: $w, _set: $s) { affected_rows returning { id } } }",
    "mutation($o: [comments_insert_input!]!) { insert_comments(objects: $o) { affected_rows } }",
    'mutation { delete_tags(where: {name: {_eq: "nope"}}) { affected_rows } }',
    "{ __schema { types { name } } }",
    "query A { users { ...F } } fragment F on users { id @include(if: true) name @skip(if: false) }",
    'subscription { tableChanged(table: "posts") { type } }',
]
TOKENS = [
    "{", "}", "(", ")", "[", "]", ":", "$", "!", "@", "...", '"', '"""', "#", "\n", ",", "=", "|",
    "&", "0", "-1", "1e9", "99999999999", "true", "null", '"x"', "users", "posts", "id", "where",
    "_eq", "order_by", "limit", "query", "mutation", "subscription", "fragment", "on", "$w",
    "__typename", "\\u0000", "\u00a0", "\ufeff",
]
CONTENT_TYPES = [
    "application/json", "application/json; charset=utf-8", "application/graphql-response+json",
    "", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "application/graphql", "APPLICATION/JSON", "application/json; charset=latin-1",
]
ACCEPTS = [
    None, "application/json", "application/graphql-response+json",
    "application/graphql-response+json, application/json", "*/*", "text/html",
]


class Server:
    def __init__(self, http: httpx.Client, errors: ServerErrors) -> None:
        self.http = http
        self.errors = errors

    def __repr__(self) -> str:
        return f"Server({self.http.base_url})"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Server]:
    with (
        library_server(tmp_path_factory.mktemp("fuzz-http"), request.param) as fuzzed,
        httpx.Client(base_url=fuzzed.live.url, timeout=30, trust_env=False) as http,
    ):
        yield Server(http, fuzzed.errors)


def finish(http: httpx.Client, errors: ServerErrors) -> None:
    """No error logged while answering, and the server still serves."""
    assert errors.take() == []
    healthy(http)


@st.composite
def mutated_documents(draw: st.DrawFn) -> str:
    """A valid document with a few random edits: deletions, insertions, duplications."""
    doc = draw(st.sampled_from(DOCUMENTS))
    for _ in range(draw(st.integers(0, 4))):
        start = draw(st.integers(0, len(doc)))
        end = draw(st.integers(start, min(len(doc), start + 12)))
        piece = draw(st.one_of(st.sampled_from(TOKENS), st.text(max_size=6)))
        edit = draw(st.sampled_from(["delete", "insert", "replace", "duplicate"]))
        if edit == "delete":
            doc = doc[:start] + doc[end:]
        elif edit == "insert":
            doc = doc[:start] + piece + doc[start:]
        elif edit == "replace":
            doc = doc[:start] + piece + doc[end:]
        else:
            doc = doc[:end] + doc[start:end] * draw(st.integers(1, 50)) + doc[end:]
    return doc


variables = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "w": st.one_of(bool_exps("posts", 2), json_values),
            "o": order_bys("posts"),
            "l": scalars,
            "f": scalars,
            "id": scalars,
            "s": st.one_of(st.dictionaries(st.one_of(st.sampled_from(TABLES["posts"]), junk_text), scalars, max_size=3), json_values),
            "o2": json_values,
        },
    ),
    json_values,
)


def send(
    http: httpx.Client,
    method: str,
    params: dict[str, Any],
    content_type: str = "application/json",
    accept: str | None = None,
) -> httpx.Response:
    headers = {"accept": accept} if accept else {}
    if method == "GET":
        query = {k: v if isinstance(v, str) else dumps(v) for k, v in params.items()}
        return http.get("/graphql", params=query, headers=headers)
    headers["content-type"] = content_type
    return http.post("/graphql", content=dumps(params).encode(), headers=headers)


@fuzz
@given(
    query=st.one_of(mutated_documents(), st.text(max_size=200)),
    variables=variables,
    operation=st.one_of(st.none(), st.sampled_from(["Q", "A", ""]), scalars),
    method=st.sampled_from(["POST", "GET"]),
    accept=st.sampled_from(ACCEPTS),
)
@example(query="{" * 5000 + "}" * 5000, variables=None, operation=None, method="POST", accept=None)
@example(query="{ users { " + "posts { user { " * 200 + "id" + " } }" * 200 + " } }", variables=None, operation=None, method="POST", accept=None)
@example(query=DOCUMENTS[1], variables={"l": 2**31}, operation=None, method="GET", accept=None)
@example(query=DOCUMENTS[1], variables={"l": -1, "f": -1}, operation="Q", method="POST", accept=None)
@example(query=DOCUMENTS[3], variables={"w": {}}, operation=None, method="GET", accept=None)
def test_random_documents_and_variables(
    server: Server,
    query: str,
    variables: Any,
    operation: Any,
    method: str,
    accept: str | None,
) -> None:
    http, errors = server.http, server.errors
    params: dict[str, Any] = {"query": query}
    if variables is not None:
        params["variables"] = variables
    if operation is not None:
        params["operationName"] = operation
    check_response(send(http, method, params, accept=accept))
    finish(http, errors)


def filter_query(table: str) -> str:
    columns = " ".join(TABLES[table])
    return (
        f"query($w: {table}_bool_exp, $o: [{table}_order_by!]) {{"
        f" {table}(where: $w, order_by: $o, limit: 3) {{ {columns} }}"
        f" {table}_aggregate(where: $w) {{ aggregate {{ count }} }} }}"
    )


@fuzz
@given(
    data=st.data(),
    table=st.sampled_from(sorted(TABLES)),
    method=st.sampled_from(["POST", "GET"]),
)
def test_bool_exp_and_order_by_json(
    server: Server, data: Any, table: str, method: str
) -> None:
    """`where` and `order_by` as variables: JSON built from column names, operators and junk."""
    http, errors = server.http, server.errors
    where = data.draw(bool_exps(table), label="where")
    order = data.draw(order_bys(table), label="order_by")
    params = {"query": filter_query(table), "variables": {"w": where, "o": order}}
    check_response(send(http, method, params))
    finish(http, errors)


def test_every_operator_with_awkward_operands(server: Server) -> None:
    http, errors = server.http, server.errors
    where = {
        "_and": [
            {"title": {op: "%_\\'" for op in ("_like", "_nlike", "_ilike", "_nilike")}},
            {"id": {"_in": [], "_nin": [1, 2], "_gt": 2**31 - 1, "_is_null": False}},
        ]
    }
    order = [{"user": {"name": "desc_nulls_first"}}, {"rating": "asc"}]
    params = {"query": filter_query("posts"), "variables": {"w": where, "o": order}}
    assert "data" in check_response(send(http, "POST", params))
    finish(http, errors)


@fuzz
@given(
    table=st.sampled_from(["posts", "comments", "tags", "users"]),
    data=st.data(),
)
def test_mutation_inputs(server: Server, table: str, data: Any) -> None:
    """Insert objects and `_set` with junk keys and values of every type, as variables."""
    http, errors = server.http, server.errors
    columns = st.one_of(st.sampled_from(TABLES[table]), junk_text)
    obj = st.dictionaries(columns, st.one_of(scalars, json_values), max_size=4)
    where = data.draw(st.one_of(bool_exps(table, 1), st.just({"_and": [{}, {"_not": {}}]})), label="where")
    query = (
        f"mutation($objects: [{table}_insert_input!]!, $w: {table}_bool_exp!, $s: {table}_set_input) {{"
        f" insert_{table}(objects: $objects) {{ affected_rows }}"
        f" update_{table}(where: {{_and: [$w, {{_not: {{}}}}]}}, _set: $s) {{ affected_rows }} }}"
    )
    variables = {
        "objects": data.draw(st.one_of(st.lists(obj, max_size=3), json_values), label="objects"),
        "w": where,
        "s": data.draw(st.one_of(obj, json_values), label="_set"),
    }
    check_response(send(http, "POST", {"query": query, "variables": variables}))
    finish(http, errors)


@fuzz
@given(
    body=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(str.encode),
        json_values.map(lambda v: dumps(v).encode()),
        st.fixed_dictionaries(
            {"query": st.one_of(scalars, json_values, st.sampled_from(DOCUMENTS))},
            optional={"variables": json_values, "operationName": json_values, "extensions": json_values},
        ).map(lambda v: dumps(v).encode()),
    ),
    content_type=st.sampled_from(CONTENT_TYPES),
    accept=st.sampled_from(ACCEPTS),
)
@example(body=b"\xff\xfe", content_type="application/json", accept=None)
@example(body=b'{"query": "{ users { id } }", "variables": []}', content_type="application/json", accept=None)
@example(body=b"[" * 3000 + b"]" * 3000, content_type="application/json", accept=None)
@example(body=b'{"query": "{ __typename }", "variables": {"x": ' + b"9" * 5000 + b"}}", content_type="", accept=None)
def test_garbage_bodies(
    server: Server, body: bytes, content_type: str, accept: str | None
) -> None:
    http, errors = server.http, server.errors
    headers = {"content-type": content_type}
    if accept:
        headers["accept"] = accept
    check_response(http.post("/graphql", content=body, headers=headers))
    finish(http, errors)


@fuzz
@given(
    params=st.lists(
        st.tuples(
            st.sampled_from(["query", "variables", "operationName", "extensions", "x"]),
            st.one_of(junk_text, st.sampled_from(DOCUMENTS), json_values.map(dumps)),
        ),
        max_size=5,
    ),
)
@example(params=[("query", DOCUMENTS[3])])  # a mutation over GET: 405
@example(params=[("query", "{ users { id } }"), ("variables", "{")])
def test_get_query_strings(server: Server, params: list[tuple[str, str]]) -> None:
    http, errors = server.http, server.errors
    check_response(http.get("/graphql", params=params))
    finish(http, errors)


# -- what the fuzz found, on every backend ---------------------------------------

QUERY_POSTS = "query($w: posts_bool_exp) { posts(where: $w) { id } }"
QUERY_USERS = "query($w: users_bool_exp) { users(where: $w) { id } }"


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        # PostgreSQL text cannot hold NUL: a data error, not a server error.
        (QUERY_POSTS, {"w": {"title": {"_eq": "a\x00b"}}}),
        (QUERY_POSTS, {"w": {"title": {"_in": ["\x00"]}}}),
        ("mutation($o: users_insert_input!) { insert_users_one(object: $o) { id } }", {"o": {"name": "a\x00"}}),
        ("mutation($o: users_insert_input!) { insert_users_one(object: $o) { id } }", {"o": {"name": "x", "profile": {"a": "\x00"}}}),
        # More bind parameters than the driver takes in one statement.
        (QUERY_POSTS, {"w": {"id": {"_in": list(range(40_000))}}}),
    ],
    ids=["nul-filter", "nul-in", "nul-insert", "nul-json", "too-many-parameters"],
)
def test_inputs_the_database_refuses_are_validation_failed(
    gql: GraphQL, query: str, variables: dict[str, Any]
) -> None:
    body = gql.raw(query, variables)
    if "errors" in body:  # SQLite takes all of these; PostgreSQL refuses them
        assert [e["extensions"]["code"] for e in body["errors"]] == ["validation-failed"], body
    assert gql("{ users_aggregate { aggregate { count } } }")["users_aggregate"]["aggregate"]["count"] >= 3


@pytest.mark.parametrize(
    "where",
    [
        {"profile": {"_eq": {"langs": []}}},
        {"profile": {"_neq": {"langs": []}}},
        {"profile": {"_in": [{"langs": []}, [1]], "_gt": "x"}},
    ],
)
def test_json_columns_compare_on_every_database(gql: GraphQL, where: dict[str, Any]) -> None:
    """PostgreSQL has no `json = text` operator: JSON columns compare as their JSON text."""
    assert "users" in gql(QUERY_USERS, {"w": where})


def test_fields_after_a_failed_mutation_add_no_errors_of_their_own(gql: GraphQL) -> None:
    """On PostgreSQL the transaction is aborted after the first failure; the rest is not news."""
    body = gql.raw(
        'mutation { insert_users_one(object: {email: "x"}) { id } update_users(where: {}, _set: {name: "y"}) { affected_rows } }'
    )
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["constraint-violation"], body
    assert {u["name"] for u in gql("{ users { name } }")["users"]} == {"Alice", "Bob", "Carol"}


def test_rows_missing_a_key_column_are_a_constraint_violation(gql: GraphQL) -> None:
    """SQLAlchemy's batched INSERT on PostgreSQL raised ZeroDivisionError for these."""
    for objects in ([{"name": "a"}, {"name": "b"}], [{"post_id": 1}, {"post_id": 1}]):
        body = gql.raw("mutation($o: [tags_insert_input!]!) { insert_tags(objects: $o) { affected_rows } }", {"o": objects})
        assert [e["extensions"]["code"] for e in body["errors"]] == ["constraint-violation"], body
