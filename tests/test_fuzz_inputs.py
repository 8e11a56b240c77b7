"""Fuzzing the other inputs: permissions files, SSE query strings and JWTs.

- A permissions file of any shape loads, or fails with the one-line
  PermissionsError (a StartupError) naming the file; never another exception.
- `GET /realtime/sse` with any query string and headers answers an event
  stream or a coded JSON error, never a 5xx.
- Any token that is not an HS256 JWT signed with the server's secret, with
  well-typed claims and unexpired, is 401 `invalid-jwt` over HTTP and SSE and
  closes a WebSocket with 4403, on every transport.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from graph.auth import Authenticator
from graph.dialect import open_database
from graph.errors import InvalidJWT
from graph.model import DatabaseModel
from graph.naming import name_model
from graph.reflect import reflect
from graph.rules.permissions import Permissions, PermissionsError, load_permissions
from tests import library
from tests.fuzzing import (
    OPERATORS,
    SECRET,
    TABLES,
    Fuzzed,
    check_response,
    fuzz,
    healthy,
    json_values,
    junk_text,
    library_server,
    scalars,
)

# Short and wrong keys are the point of some examples.
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


# -- the permissions file -------------------------------------------------------


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> DatabaseModel:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('fuzz-model') / 'library.db'}"

    async def reflected() -> DatabaseModel:
        await library.create(url)
        database = open_database(url)
        engine = database.engine
        try:
            return name_model(await reflect(engine))
        finally:
            await database.close()

    return asyncio.run(reflected())


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-rules")


session_values = st.sampled_from(["X-User-Id", "x-hasura-user-id", "X-Role", "x-hasura-nope", "X-User-Id "])
operands = st.one_of(scalars, session_values, st.lists(st.one_of(scalars, session_values), max_size=3), json_values)


def rule_filters(table: str, depth: int = 2) -> st.SearchStrategy[Any]:
    columns = st.one_of(st.sampled_from(TABLES[table]), junk_text, st.sampled_from(["user", "posts", "post"]))
    comparison = st.one_of(st.dictionaries(st.one_of(st.sampled_from(OPERATORS), junk_text), operands, max_size=2), scalars)
    leaf = st.dictionaries(columns, comparison, max_size=2)
    if depth <= 0:
        return leaf
    inner = rule_filters(table, depth - 1)
    return st.one_of(
        leaf,
        st.fixed_dictionaries({"_and": st.one_of(st.lists(inner, max_size=2), inner)}),
        st.fixed_dictionaries({"_or": st.lists(inner, max_size=2)}),
        st.fixed_dictionaries({"_not": inner}),
        json_values,
    )


def rules(table: str) -> st.SearchStrategy[Any]:
    columns = st.one_of(
        st.just("*"),
        st.lists(st.one_of(st.sampled_from(TABLES[table]), junk_text), max_size=3),
        scalars,
    )
    return st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                "filter": rule_filters(table),
                "check": rule_filters(table),
                "columns": columns,
                "set": st.one_of(st.dictionaries(st.sampled_from(TABLES[table]), operands, max_size=2), json_values),
                "junk": json_values,
            },
        ),
        json_values,
    )


def tables_section() -> st.SearchStrategy[Any]:
    roles = st.one_of(st.sampled_from(["user", "anonymous", "admin", "", " "]), junk_text)
    actions = st.one_of(st.sampled_from(["select", "insert", "update", "delete"]), junk_text)
    per_table = {
        name: st.dictionaries(actions, st.one_of(st.dictionaries(roles, rules(name), max_size=2), json_values), max_size=3)
        for name in TABLES
    }
    return st.one_of(
        st.fixed_dictionaries({}, optional=per_table),
        st.dictionaries(st.one_of(junk_text, st.sampled_from(list(TABLES))), json_values, max_size=2),
        json_values,
    )


documents = st.one_of(
    st.fixed_dictionaries({"tables": tables_section()}, optional={"version": json_values}),
    json_values,
)


def encode(data: Any, form: str) -> str:
    if form == "json":
        return json.dumps(data)
    return yaml.safe_dump(data, allow_unicode=True)


def check_load(path: Path, model: DatabaseModel) -> None:
    try:
        loaded = load_permissions(str(path), model)
    except PermissionsError as error:
        message = str(error)
        assert "\n" not in message and "\r" not in message, message
        assert message.startswith(f"{path}: "), message
    else:
        assert isinstance(loaded, Permissions)


@fuzz
@given(data=documents, form=st.sampled_from(["yaml", "json"]))
def test_permissions_files_of_any_structure(
    model: DatabaseModel, rules_dir: Path, data: Any, form: str
) -> None:
    path = rules_dir / f"rules.{form}"
    path.write_text(encode(data, form), encoding="utf-8", errors="surrogatepass")
    check_load(path, model)


YAML_PIECES = [
    "tables:", "\n", "  ", "posts:", "select:", "user:", "{", "}", "[", "]", ":", "-", "&a", "*a", "<<:",
    "!!binary", "!!set", "!!python/object:os.system", "!!str", "!!int", "!!float", "!!bool",
    "!!map", "!!seq", "!!omap", "!!timestamp", "~", "'", '"', "#", "? ",
    "---", "...", "%YAML 1.2", "\t", "\x00", "\ufeff", "filter:", "_eq:", "X-User-Id", "columns: '*'",
]


@fuzz
@given(
    text=st.one_of(
        st.text(max_size=200),
        st.lists(st.one_of(st.sampled_from(YAML_PIECES), st.text(max_size=4)), max_size=30).map("".join),
    ),
    suffix=st.sampled_from(["yaml", "yml", "json", "txt"]),
)
@example(text='{"tables": ' + "1" * 5000 + "}", suffix="json")
@example(text="tables: " + "1" * 5000, suffix="yaml")
@example(text="[" * 100_000 + "]" * 100_000, suffix="json")
@example(text="[" * 100_000 + "]" * 100_000, suffix="yaml")
@example(text="{" * 100_000, suffix="yaml")
@example(text="tables: {posts: {select: {user: {columns: '*', filter: &f {_and: [*f]}}}}}", suffix="yaml")
@example(text="tables: {posts: {select: {user: {columns: '*', filter: {_and: &l [*l]}}}}}", suffix="yaml")
@example(text="tables: {<<: 5}", suffix="yaml")
@example(text="!!int", suffix="yaml")  # PyYAML: IndexError
@example(text="tables: !!bool x", suffix="yaml")  # PyYAML: KeyError
@example(text="!!map [1]", suffix="yml")  # PyYAML: TypeError
@example(text="{!!int : 1}", suffix="txt")
def test_permissions_files_of_any_text(model: DatabaseModel, rules_dir: Path, text: str, suffix: str) -> None:
    path = rules_dir / f"text.{suffix}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    check_load(path, model)


def test_rules_nested_deeper_than_python_recurses_are_one_line(model: DatabaseModel, rules_dir: Path) -> None:
    path = rules_dir / "deep.json"
    # json.dumps would recurse too deeply itself: write the text by hand.
    filter_text = '{"_not": ' * 5000 + '{"id": {"_eq": 1}}' + "}" * 5000
    path.write_text('{"tables": {"posts": {"select": {"user": {"columns": "*", "filter": ' + filter_text + "}}}}}")
    with pytest.raises(PermissionsError) as raised:
        load_permissions(str(path), model)
    assert "\n" not in str(raised.value)


# -- a server for SSE and tokens -------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    with library_server(tmp_path_factory.mktemp("fuzz-inputs")) as fuzzed:
        yield fuzzed


def after(server: Fuzzed) -> None:
    with httpx.Client(base_url=server.live.url, timeout=30, trust_env=False) as http:
        healthy(http)
    assert server.errors.take() == []


def sse(server: Fuzzed, params: Any, headers: dict[str, Any]) -> tuple[int, str, dict[str, Any] | None]:
    """(status, content type, JSON body unless it is an event stream); the stream is left at once."""
    with (
        httpx.Client(base_url=server.live.url, timeout=10, trust_env=False) as http,
        http.stream("GET", "/realtime/sse", params=params, headers=headers) as response,
    ):
        kind = response.headers.get("content-type", "")
        if response.status_code == 200 and kind.startswith("text/event-stream"):
            return response.status_code, kind, None
        response.read()
        return response.status_code, kind, check_response(response)


# -- SSE query strings ----------------------------------------------------------

# What h11 lets a client send as a header value: visible latin-1, no edge spaces.
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), max_size=30)
ascii_header = header_text.filter(lambda t: t == t.strip())
sse_values = st.one_of(
    st.sampled_from([*TABLES, "_forgegraph_changes", "sqlite_master", "", "0", "²", "٣", "1" * 19, "9" * 30]),
    junk_text,
)


@fuzz
@given(
    params=st.lists(st.tuples(st.sampled_from(["table", "since", "token", "x", "Table"]), sse_values), max_size=6),
    last_event_id=st.one_of(st.none(), ascii_header, st.sampled_from(["0", "1", "-1", "7 7", "1" * 25, "²"])),
    authorization=st.one_of(st.none(), ascii_header, ascii_header.map(lambda t: f"Bearer {t}".strip())),
)
@example(params=[("table", "posts"), ("since", "²")], last_event_id=None, authorization=None)
@example(params=[("table", "posts")], last_event_id="²", authorization=None)
@example(params=[("table", "posts"), ("table", "posts"), ("table", "nope")], last_event_id=None, authorization=None)
@example(params=[("table", "posts"), ("token", "a.b.c")], last_event_id=None, authorization=None)
@example(params=[("table", "audit_log")], last_event_id=None, authorization="Bearer")
def test_sse_query_strings(
    server: Fuzzed, params: list[tuple[str, str]], last_event_id: str | None, authorization: str | None
) -> None:
    headers: dict[str, bytes] = {}
    if last_event_id is not None:
        headers["last-event-id"] = last_event_id.encode("latin-1")
    if authorization is not None:
        headers["authorization"] = authorization.encode("latin-1")
    status, _kind, body = sse(server, params, headers)
    if body is not None:
        assert status in (400, 401, 403, 404, 422, 429), (status, body)
    after(server)


# -- tokens ---------------------------------------------------------------------

# Fixed once: strategies must draw alike every time hypothesis replays an example.
NOW = int(time.time())
REGISTERED = {"exp", "nbf", "iat", "sub", "role", "aud", "iss", "jti"}
other_claims = st.dictionaries(junk_text.filter(lambda k: k not in REGISTERED), json_values, max_size=3)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: Any, claims: Any, signature: bytes = b"") -> str:
    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(signature)])


def good_claims() -> st.SearchStrategy[dict[str, Any]]:
    # `exp` an hour or more ahead of NOW: no example expires while it runs.
    return st.fixed_dictionaries(
        {"exp": st.integers(NOW + 3600, 2**40)},
        optional={"sub": junk_text, "role": junk_text.filter(bool)},
    ).flatmap(lambda claims: other_claims.map(lambda extra: {**extra, **claims}))


@st.composite
def bad_tokens(draw: st.DrawFn) -> str:
    """Tokens the server must refuse, each for a reason of its own."""
    claims = draw(good_claims())
    kind = draw(st.sampled_from(
        ["none", "other-hmac", "asymmetric", "wrong-key", "bad-claim", "expired", "tampered", "garbage", "header"]
    ))
    if kind == "none":
        return unsigned({"alg": draw(st.sampled_from(["none", "None", "NONE", ""])), "typ": "JWT"}, claims)
    if kind == "other-hmac":
        return jwt.encode(claims, SECRET, algorithm=draw(st.sampled_from(["HS384", "HS512"])))
    if kind == "asymmetric":
        alg = draw(st.sampled_from(["RS256", "RS512", "ES256", "PS256", "EdDSA"]))
        return unsigned({"alg": alg, "typ": "JWT"}, claims, draw(st.binary(min_size=1, max_size=64)))
    if kind == "wrong-key":
        key = draw(st.text(min_size=1, max_size=40).filter(lambda k: k != SECRET))
        return jwt.encode(claims, key, algorithm="HS256")
    if kind == "bad-claim":
        claim, value = draw(st.one_of(
            st.tuples(st.just("sub"), st.one_of(st.integers(), st.lists(junk_text, max_size=2), st.booleans(), st.floats(allow_nan=False), st.dictionaries(junk_text, junk_text, max_size=1))),
            st.tuples(st.just("role"), st.one_of(st.just(""), st.integers(), st.booleans(), st.lists(junk_text, max_size=2), st.none())),
            st.tuples(st.just("exp"), st.one_of(junk_text, st.lists(st.integers(), max_size=1), st.integers(max_value=NOW - 60))),
            st.tuples(st.just("nbf"), st.one_of(junk_text, st.integers(NOW + 3600, 2**40))),
            st.tuples(st.just("iat"), st.one_of(junk_text, st.just([1]))),
        ))
        return jwt.encode({**claims, claim: value}, SECRET, algorithm="HS256")
    if kind == "expired":
        return jwt.encode({**claims, "exp": NOW - draw(st.integers(60, 10**9))}, SECRET, algorithm="HS256")
    if kind == "tampered":
        header, _payload, signature = jwt.encode(claims, SECRET, algorithm="HS256").split(".")
        forged = {**claims, "role": "admin", "sub": draw(junk_text)}
        return f"{header}.{b64(json.dumps(forged).encode())}.{signature}"
    if kind == "header":
        header = draw(st.one_of(json_values, st.fixed_dictionaries({"alg": json_values})))
        return unsigned(header, claims, draw(st.binary(max_size=32)))
    return draw(st.one_of(
        st.text(min_size=1, max_size=60).filter(lambda t: t.strip() != ""),
        st.lists(st.text(st.characters(codec="ascii"), max_size=20), min_size=2, max_size=4).map(".".join).filter(bool),
    ))


@fuzz
@given(token=st.one_of(bad_tokens(), st.text(max_size=60), good_claims().map(lambda c: jwt.encode(c, SECRET, algorithm="HS256"))))
@example(token=jwt.encode({"exp": 10**400}, SECRET, algorithm="HS256"))
@example(token=jwt.encode({"exp": 1e300}, SECRET, algorithm="HS256"))
@example(token=jwt.encode({"exp": float("inf")}, SECRET, algorithm="HS256"))
def test_a_token_is_a_session_or_invalid_jwt(token: str) -> None:
    """Unit level: only InvalidJWT ever escapes, whatever the token."""
    authenticator = Authenticator(SECRET, None)
    try:
        authenticator.from_token(token)
    except InvalidJWT:
        pass


async def closes_with_4403(url: str, protocol: str | None, first: dict[str, Any] | None) -> None:
    protocols = [Subprotocol(protocol)] if protocol else None
    async with connect(url, subprotocols=protocols, open_timeout=10, proxy=None) as connection:
        try:
            if first is not None:
                await connection.send(json.dumps(first))
            async with asyncio.timeout(10):
                while True:
                    await connection.recv()
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 4403, closed
        except TimeoutError:
            pytest.fail("the socket was not closed within 10 s")


@fuzz
@given(token=bad_tokens())
@example(token=unsigned({"alg": "none"}, {"sub": "1", "role": "admin"}))
@example(token=jwt.encode({"sub": 7}, SECRET, algorithm="HS256"))
@example(token=jwt.encode({"sub": ["1"]}, SECRET, algorithm="HS256"))
@example(token=jwt.encode({"role": 5}, SECRET, algorithm="HS256"))
@example(token=jwt.encode({"exp": "tomorrow"}, SECRET, algorithm="HS256"))
@example(token=jwt.encode({"exp": "99999999999"}, SECRET, algorithm="HS256"))
@example(token=jwt.encode({"sub": "1"}, SECRET, algorithm="HS512"))
@example(token=unsigned({"alg": "RS256"}, {"sub": "1"}, b"sig"))
@example(token=jwt.encode({"sub": "1"}, "not-the-secret-" * 5, algorithm="HS256"))
def test_bad_tokens_are_invalid_jwt_on_every_transport(server: Fuzzed, token: str) -> None:
    live = server.live
    with httpx.Client(base_url=live.url, timeout=10, trust_env=False) as http:
        if token.isascii() and token.isprintable():
            response = http.post("/graphql", json={"query": "{ __typename }"}, headers={"authorization": f"Bearer {token}"})
            assert response.status_code == 401, response.text
            assert [e["extensions"]["code"] for e in check_response(response)["errors"]] == ["invalid-jwt"]
    status, _kind, body = sse(server, {"table": "posts", "token": token}, {})
    assert status == 401 and body is not None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["invalid-jwt"]

    ws = "ws" + live.url.removeprefix("http")
    init = {"type": "connection_init", "payload": {"headers": {"Authorization": f"Bearer {token}"}}}

    async def every_socket() -> None:
        await closes_with_4403(f"{ws}/graphql", "graphql-transport-ws", init)
        await closes_with_4403(f"{ws}/graphql", "graphql-ws", {**init, "payload": {"Authorization": f"Bearer {token}"}})
        await closes_with_4403(f"{ws}/realtime?token={quote(token)}", None, None)
        await closes_with_4403(f"{ws}/realtime", None, {"type": "auth", "token": token})

    asyncio.run(every_socket())
    after(server)


@fuzz
@given(claims=good_claims())
def test_good_tokens_are_accepted(server: Fuzzed, claims: dict[str, Any]) -> None:
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    with httpx.Client(base_url=server.live.url, timeout=10, trust_env=False) as http:
        response = http.post("/graphql", json={"query": "{ __typename }"}, headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert check_response(response)["data"] == {"__typename": "query_root"}
    after(server)
