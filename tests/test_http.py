"""GraphQL over HTTP: methods, media types, status codes, and bad input that must not hurt."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from graph import execute
from tests.conftest import GraphQL


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def nested(depth: int) -> str:
    """A valid document `depth` fields deep: posts { user { posts_by_user_id { user { ... id

    Its lists ask for one row each, so only the depth limit, not the cost limit, applies.
    """
    names = ["posts(limit: 1)"] + ["user", "posts_by_user_id(limit: 1)"] * depth
    return "{ " + "".join(f"{n} {{ " for n in names[: depth - 1]) + "id" + " }" * (depth - 1) + " }"


def codes(response: httpx.Response) -> list[str]:
    return [e["extensions"]["code"] for e in response.json()["errors"]]


def test_get_serves_queries_and_refuses_mutations(gql: GraphQL) -> None:
    response = gql.http.get("/graphql", params={"query": "query($id: Int!) { users_by_pk(id: $id) { name } }",
                                                "variables": json.dumps({"id": 1})})
    assert response.status_code == 200
    assert response.json() == {"data": {"users_by_pk": {"name": "Alice"}}}
    response = gql.http.get("/graphql", params={"query": 'mutation { delete_users(where: {}) { affected_rows } }'})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert codes(response) == ["validation-failed"]
    assert gql("{ users_aggregate { aggregate { count } } }")["users_aggregate"]["aggregate"]["count"] == 3


def test_graphql_response_media_type_uses_4xx_for_request_errors(gql: GraphQL) -> None:
    accept = {"accept": "application/graphql-response+json"}
    bad = gql.http.post("/graphql", json={"query": "{ nope }"}, headers=accept)
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith("application/graphql-response+json")
    good = gql.http.post("/graphql", json={"query": "{ users { id } }"}, headers=accept)
    assert good.status_code == 200
    legacy = gql.http.post("/graphql", json={"query": "{ nope }"})
    assert legacy.status_code == 200
    assert legacy.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"{not json", {"content-type": "application/json"}, 400),
        (b"[1, 2]", {"content-type": "application/json"}, 400),
        (b'{"query": 5}', {"content-type": "application/json"}, 400),
        (b'{"query": ""}', {"content-type": "application/json"}, 400),
        (b'{"query": "{ users { id } }", "variables": [1]}', {"content-type": "application/json"}, 400),
        (b"query=x", {"content-type": "application/x-www-form-urlencoded"}, 415),
    ],
)
def test_malformed_requests_get_a_coded_error(
    gql: GraphQL, body: bytes, headers: dict[str, str], status: int
) -> None:
    response = gql.http.post("/graphql", content=body, headers=headers)
    assert response.status_code == status
    assert codes(response) == ["validation-failed"]


def test_a_body_over_the_limit_is_refused(gql: GraphQL) -> None:
    query = "{ users { id } }" + " " * 1_100_000
    response = gql.http.post("/graphql", json={"query": query})
    assert response.status_code == 413
    assert codes(response) == ["validation-failed"]


@pytest.mark.parametrize(
    "query",
    [
        "{ users { id",  # syntax error
        "{ users { nope } }",  # unknown field
        '{ users(limit: "ten") { id } }',  # wrong argument type
        "{ users(where: {id: {_ne: 1}}) { id } }",  # unknown operator
        "{ users(limit: 99999999999) { id } }",  # huge limit: outside Int
        "{ users { id @unknown } }",  # unknown directive
        "query { users { ...a } } fragment a on users { ...b } fragment b on users { ...a }",  # cycle
        nested(13),  # deeper than the default maximum of 12
    ],
)
def test_bad_documents_are_validation_failed(gql: GraphQL, query: str) -> None:
    assert set(gql.error_codes(query)) == {"validation-failed"}


def test_variables_of_the_wrong_type_are_validation_failed(gql: GraphQL) -> None:
    codes_ = gql.error_codes("query($n: Int) { users(limit: $n) { id } }", {"n": "many"})
    assert codes_ == ["validation-failed"]


def test_depth_at_the_limit_passes_and_introspection_fits_the_default_depth(gql: GraphQL) -> None:
    assert "posts" in gql(nested(12))
    introspection = gql.http.post("/graphql", json={"query": INTROSPECTION})
    assert "errors" not in introspection.json()


def test_the_server_stays_up_after_bad_input(gql: GraphQL) -> None:
    for body in (b"\xff\xfe", b"{", b'{"query": null}', b"null"):
        gql.http.post("/graphql", content=body, headers={"content-type": "application/json"})
    assert gql.http.get("/healthz").json() == {"status": "ok"}
    assert gql("{ users_by_pk(id: 1) { name } }") == {"users_by_pk": {"name": "Alice"}}


def test_healthz_says_503_when_the_database_is_gone(serve, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from tests import library

    path = tmp_path / "gone.db"
    asyncio.run(library.create(f"sqlite+aiosqlite:///{path}"))
    server = serve(database=f"sqlite+aiosqlite:///{path}")
    with httpx.Client(base_url=server.url, trust_env=False) as client:
        assert client.get("/healthz").status_code == 200
        path.rename(tmp_path / "moved.db")
        (tmp_path / "gone.db").mkdir()  # the path now cannot be opened as a database
        server.app.state.runtime.engine.sync_engine.pool.dispose()
        assert client.get("/healthz").status_code == 503
        response = client.post("/graphql", json={"query": "{ users { id } }"})
        assert response.status_code == 200
        (error,) = response.json()["errors"]
        assert error["extensions"]["code"] == "unexpected"
        assert "database is unreachable" in error["message"]
        assert "Traceback" not in response.text


INTROSPECTION = """
query IntrospectionQuery { __schema { queryType { name } mutationType { name }
  types { ...FullType } directives { name locations args { ...InputValue } } } }
fragment FullType on __Type { kind name fields(includeDeprecated: true) { name args { ...InputValue }
  type { ...TypeRef } } inputFields { ...InputValue } enumValues(includeDeprecated: true) { name } }
fragment InputValue on __InputValue { name type { ...TypeRef } defaultValue }
fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }
"""


@pytest.mark.parametrize("cors", [None, "*"], ids=["direct", "through-middleware"])
def test_a_crash_answering_a_post_is_a_500_and_the_server_goes_on(
    library_url: str, serve: Any, monkeypatch: pytest.MonkeyPatch, cors: str | None
) -> None:
    # Without cross-origin settings a POST skips Starlette's layers (graph.app.ForgegraphApp):
    # a crash must still be answered as ServerErrorMiddleware answers it.
    server = serve(database=library_url, **({"cors_origins": cors} if cors else {}))
    real = execute.answer
    crash = {"on": True}

    async def answer(*args: Any, **kwargs: Any) -> Any:
        if crash["on"]:
            raise RuntimeError("a bug")
        return await real(*args, **kwargs)

    monkeypatch.setattr(execute, "answer", answer)
    with httpx.Client(base_url=server.url, timeout=30, trust_env=False) as http:
        response = http.post("/graphql", json={"query": "{ users { id } }"})
        assert (response.status_code, response.text) == (500, "Internal Server Error")
    crash["on"] = False
    # uvicorn closes a connection whose app raised, as after ServerErrorMiddleware: a new one.
    with httpx.Client(base_url=server.url, timeout=30, trust_env=False) as http:
        response = http.post("/graphql", json={"query": "{ users(order_by: {id: asc}) { id } }"})
        assert response.status_code == 200
        assert response.json() == {"data": {"users": [{"id": 1}, {"id": 2}, {"id": 3}]}}
