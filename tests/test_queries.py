"""Every query operation of SPEC section 4, on real SQLite files and the real PostgreSQL."""

from __future__ import annotations

from tests.conftest import GraphQL


def ids(rows: list[dict[str, object]]) -> list[object]:
    return [row["id"] for row in rows]


def test_list_with_where_order_limit_offset(gql: GraphQL) -> None:
    data = gql("""{ posts(where: {published: {_eq: true}}, order_by: [{id: desc}], limit: 2, offset: 1)
                  { id title } }""")
    assert data["posts"] == [{"id": 3, "title": "Third"}, {"id": 1, "title": "Hello World"}]


def test_comparison_operators(gql: GraphQL) -> None:
    def where(exp: str) -> list[object]:
        return ids(gql(f"{{ users(where: {exp}, order_by: {{id: asc}}) {{ id }} }}")["users"])

    assert where("{id: {_eq: 2}}") == [2]
    assert where("{id: {_neq: 2}}") == [1, 3]
    assert where("{id: {_gt: 1}}") == [2, 3]
    assert where("{id: {_gte: 2}}") == [2, 3]
    assert where("{id: {_lt: 2}}") == [1]
    assert where("{id: {_lte: 2}}") == [1, 2]
    assert where("{score: {_gt: 8}}") == [1]
    assert where("{active: {_eq: false}}") == [2]
    assert where("{name: {_in: [\"Alice\", \"Carol\"]}}") == [1, 3]
    assert where("{name: {_nin: [\"Alice\"]}}") == [2, 3]
    assert where("{email: {_is_null: true}}") == [2]
    assert where("{email: {_is_null: false}}") == [1, 3]


def test_in_and_nin_with_an_empty_list(gql: GraphQL) -> None:
    assert gql("{ users(where: {id: {_in: []}}) { id } }")["users"] == []
    assert len(gql("{ users(where: {id: {_nin: []}}) { id } }")["users"]) == 3


def test_like_is_case_sensitive_and_ilike_is_not(gql: GraphQL) -> None:
    def titles(exp: str) -> list[object]:
        rows = gql(f"{{ posts(where: {{title: {exp}}}, order_by: {{id: asc}}) {{ title }} }}")
        return [r["title"] for r in rows["posts"]]

    assert titles('{_like: "hello%"}') == ["hello again"]
    assert titles('{_ilike: "hello%"}') == ["Hello World", "hello again"]
    assert titles('{_nlike: "hello%"}') == ["Hello World", "second post", "Third"]
    assert titles('{_nilike: "%HELLO%"}') == ["second post", "Third"]
    assert titles('{_like: "_hird"}') == ["Third"]
    assert titles('{_ilike: "%D"}') == ["Hello World", "Third"]


def test_like_escapes_wildcards_with_a_backslash(gql: GraphQL) -> None:
    rows = gql(r'{ posts(where: {body: {_like: "50\\% off\\_%"}}) { id } }')["posts"]
    assert ids(rows) == [3]
    assert gql(r'{ posts(where: {body: {_like: "50\\%x%"}}) { id } }')["posts"] == []


def test_and_or_not(gql: GraphQL) -> None:
    query = """{ posts(where: {_or: [{user_id: {_eq: 2}}, {_and: [{published: {_eq: true}},
                {_not: {title: {_ilike: "hello%"}}}]}]}, order_by: {id: asc}) { id } }"""
    assert ids(gql(query)["posts"]) == [3]
    assert ids(gql("{ posts(where: {_not: {published: {_eq: true}}}) { id } }")["posts"]) == [2]
    assert len(gql("{ posts(where: {_and: []}) { id } }")["posts"]) == 4


def test_nulls_sort_last_on_asc_and_first_on_desc(gql: GraphQL) -> None:
    def order(direction: str) -> list[object]:
        return ids(gql(f"{{ users(order_by: [{{score: {direction}}}]) {{ id }} }}")["users"])

    assert order("asc") == [3, 1, 2]
    assert order("desc") == [2, 1, 3]
    assert order("asc_nulls_first") == [2, 3, 1]
    assert order("desc_nulls_last") == [1, 3, 2]


def test_order_by_several_columns(gql: GraphQL) -> None:
    rows = gql("{ posts(order_by: [{user_id: desc}, {id: asc}]) { id } }")["posts"]
    assert ids(rows) == [4, 3, 1, 2]


def test_by_pk_and_composite_pk(gql: GraphQL) -> None:
    data = gql("""{ users_by_pk(id: 3) { name } missing: users_by_pk(id: 99) { name }
                  tags_by_pk(post_id: 1, name: "news") { weight post { title } } }""")
    assert data == {
        "users_by_pk": {"name": "Carol"},
        "missing": None,
        "tags_by_pk": {"weight": 2, "post": {"title": "Hello World"}},
    }


def test_aggregate_count(gql: GraphQL) -> None:
    data = gql("""{ all: posts_aggregate { aggregate { count } }
                  published: posts_aggregate(where: {published: {_eq: true}}) { aggregate { n: count } } }""")
    assert data == {"all": {"aggregate": {"count": 4}}, "published": {"aggregate": {"n": 3}}}


def test_object_and_array_relationships(gql: GraphQL) -> None:
    data = gql("""{ posts(order_by: {id: asc}, limit: 3) { id user { name } editor { name } }
                  users_by_pk(id: 1) {
                    posts_by_user_id(order_by: {id: asc}) { id }
                    posts_by_editor_id { id } } }""")
    assert data["posts"] == [
        {"id": 1, "user": {"name": "Alice"}, "editor": None},
        {"id": 2, "user": {"name": "Alice"}, "editor": {"name": "Bob"}},
        {"id": 3, "user": {"name": "Bob"}, "editor": {"name": "Alice"}},
    ]
    assert data["users_by_pk"] == {"posts_by_user_id": [{"id": 1}, {"id": 2}], "posts_by_editor_id": [{"id": 3}]}


def test_array_relationship_arguments_apply_per_parent(gql: GraphQL) -> None:
    data = gql("""{ users(order_by: {id: asc}) { id
                    latest: posts_by_user_id(order_by: {id: desc}, limit: 1) { id }
                    rest: posts_by_user_id(order_by: {id: desc}, offset: 1) { id }
                    published: posts_by_user_id(where: {published: {_eq: true}}) { id } } }""")
    assert data["users"] == [
        {"id": 1, "latest": [{"id": 2}], "rest": [{"id": 1}], "published": [{"id": 1}]},
        {"id": 2, "latest": [{"id": 3}], "rest": [], "published": [{"id": 3}]},
        {"id": 3, "latest": [{"id": 4}], "rest": [], "published": [{"id": 4}]},
    ]


def test_nested_relationships_take_one_statement(gql: GraphQL) -> None:
    gql.server.statements.clear()
    plans = gql.server.app.state.runtime.query_plans
    sent: list[str] = []
    plans.backend.observers.append(sent.append)
    data = gql("""{ users(order_by: {id: asc}) { name
                    posts_by_user_id(order_by: {id: asc}) { title
                      comments(order_by: {id: asc}) { body } } } }""")
    plans.backend.observers.remove(sent.append)
    # The change capture polls its log meanwhile; only the query's own statements count.
    selects = [s for s in sent if s.lstrip().upper().startswith("SELECT") and "_forgegraph" not in s]
    assert len(selects) == 1, selects
    assert data["users"][0] == {
        "name": "Alice",
        "posts_by_user_id": [
            {"title": "Hello World", "comments": [{"body": "nice"}, {"body": "great"}]},
            {"title": "second post", "comments": []},
        ],
    }


def test_aliases_fragments_and_directives(gql: GraphQL) -> None:
    query = """query($skip: Boolean!) { first: users_by_pk(id: 1) { ...who } second: users_by_pk(id: 2) {
                 ... on users { id } name @skip(if: $skip) } }
               fragment who on users { id who: name }"""
    assert gql(query, {"skip": True}) == {
        "first": {"id": 1, "who": "Alice"},
        "second": {"id": 2},
    }


def test_table_without_primary_key_is_read_only(gql: GraphQL) -> None:
    rows = gql("{ audit_log(order_by: {message: asc}) { message level } }")["audit_log"]
    assert rows == [{"message": "created", "level": 1}, {"message": "updated", "level": None}]
    fields = gql("{ __schema { mutationType { fields { name } } queryType { fields { name } } } }")
    mutations = {f["name"] for f in fields["__schema"]["mutationType"]["fields"]}
    queries = {f["name"] for f in fields["__schema"]["queryType"]["fields"]}
    assert "insert_users" in mutations
    assert not {m for m in mutations if "audit_log" in m}
    assert "audit_log_by_pk" not in queries and "audit_log_aggregate" in queries


def test_scalar_types_come_back_typed(gql: GraphQL) -> None:
    data = gql("""{ users_by_pk(id: 1) { id score active profile }
                  posts_by_pk(id: 1) { rating published } }""")
    assert data["users_by_pk"] == {"id": 1, "score": 9.5, "active": True, "profile": {"langs": ["en", "fr"]}}
    assert data["posts_by_pk"]["published"] is True
    assert data["posts_by_pk"]["rating"] in ("4.50", "4.5")


def test_negative_limit_or_offset_is_validation_failed(gql: GraphQL) -> None:
    assert gql.error_codes("{ users(limit: -1) { id } }") == ["validation-failed"]
    assert gql.error_codes("{ users(offset: -2) { id } }") == ["validation-failed"]
    assert gql.error_codes("{ users { posts_by_user_id(limit: -1) { id } } }") == ["validation-failed"]


def test_filters_follow_relationships(gql: GraphQL) -> None:
    # object relationship: posts whose author is active
    rows = gql("{ posts(where: {user: {active: {_eq: true}}}, order_by: {id: asc}) { id } }")["posts"]
    assert ids(rows) == [1, 2, 4]
    # array relationship: users with at least one unpublished post
    rows = gql("""{ users(where: {posts_by_user_id: {published: {_eq: false}}}) { id } }""")["users"]
    assert ids(rows) == [1]
    # two levels, negated: users none of whose posts has a comment "ok"
    rows = gql("""{ users(where: {_not: {posts_by_user_id: {comments: {body: {_eq: "ok"}}}}},
                  order_by: {id: asc}) { id } }""")["users"]
    assert ids(rows) == [1, 3]
    # the same filters work in aggregates and in mutations' where
    data = gql("{ posts_aggregate(where: {editor: {name: {_eq: \"Bob\"}}}) { aggregate { count } } }")
    assert data["posts_aggregate"]["aggregate"]["count"] == 1


def test_order_by_an_object_relationship(gql: GraphQL) -> None:
    rows = gql("{ posts(order_by: [{user: {name: desc}}, {id: asc}]) { id } }")["posts"]
    assert ids(rows) == [4, 3, 1, 2]
    rows = gql("{ posts(order_by: [{editor: {name: asc}}, {id: desc}]) { id } }")["posts"]
    assert ids(rows) == [3, 2, 4, 1]  # Alice, Bob, then no editor (NULLs last)
