"""The six mutations of SPEC section 4, their transactions and their errors."""

from __future__ import annotations

from tests.conftest import GraphQL


def test_insert_returns_affected_rows_and_nested_returning(gql: GraphQL) -> None:
    data = gql("""mutation { insert_posts(objects: [
                    {title: "a", user_id: 2, published: true},
                    {title: "b", user_id: 3, body: "bb"}]) {
                  affected_rows returning { id title body published user { name } } } }""")
    result = data["insert_posts"]
    assert result["affected_rows"] == 2
    assert sorted(result["returning"], key=lambda r: r["title"]) == [
        {"id": 5, "title": "a", "body": None, "published": True, "user": {"name": "Bob"}},
        {"id": 6, "title": "b", "body": "bb", "published": False, "user": {"name": "Carol"}},
    ]
    assert gql("{ posts_aggregate { aggregate { count } } }")["posts_aggregate"]["aggregate"]["count"] == 6


def test_insert_one_with_variables(gql: GraphQL) -> None:
    data = gql(
        "mutation($o: users_insert_input!) { insert_users_one(object: $o) { id name profile score } }",
        {"o": {"name": "Dan", "profile": {"a": [1, None, True]}, "score": 1.25}},
    )
    assert data["insert_users_one"] == {
        "id": 4, "name": "Dan", "profile": {"a": [1, None, True]}, "score": 1.25,
    }


def test_dates_and_times_travel_as_iso_strings(gql: GraphQL) -> None:
    data = gql("""mutation { insert_users_one(object: {name: "Eve", born: "1990-05-17",
                  created_at: "2024-01-02T03:04:05"}) { id born created_at } }""")
    assert data["insert_users_one"]["born"] == "1990-05-17"
    assert data["insert_users_one"]["created_at"] == "2024-01-02T03:04:05"
    rows = gql('{ users(where: {created_at: {_gte: "2024-01-01T00:00:00"}}) { name } }')["users"]
    assert rows == [{"name": "Eve"}]
    data = gql("""mutation { update_posts_by_pk(pk_columns: {id: 1},
                  _set: {published_at: "2024-01-02T03:04:05+00:00"}) { published_at } }""")
    assert data["update_posts_by_pk"]["published_at"] == "2024-01-02T03:04:05+00:00"


def test_update_with_set(gql: GraphQL) -> None:
    data = gql("""mutation { update_posts(where: {user_id: {_eq: 1}}, _set: {published: true, body: "new"}) {
                  affected_rows returning { id published body } } }""")
    assert data["update_posts"]["affected_rows"] == 2
    assert sorted(data["update_posts"]["returning"], key=lambda r: r["id"]) == [
        {"id": 1, "published": True, "body": "new"},
        {"id": 2, "published": True, "body": "new"},
    ]


def test_update_needs_set_and_empty_set_changes_nothing(gql: GraphQL) -> None:
    assert gql.error_codes('mutation { update_posts(where: {}) { affected_rows } }') == ["validation-failed"]
    data = gql("mutation { update_posts(where: {}, _set: {}) { affected_rows returning { id } } }")
    assert data["update_posts"] == {"affected_rows": 0, "returning": []}


def test_update_by_pk_including_a_composite_key(gql: GraphQL) -> None:
    data = gql("""mutation { update_users_by_pk(pk_columns: {id: 2}, _set: {name: "Robert"}) { id name }
                  update_tags_by_pk(pk_columns: {post_id: 1, name: "intro"}, _set: {weight: 5}) { weight }
                  missing: update_users_by_pk(pk_columns: {id: 99}, _set: {name: "x"}) { id } }""")
    assert data == {
        "update_users_by_pk": {"id": 2, "name": "Robert"},
        "update_tags_by_pk": {"weight": 5},
        "missing": None,
    }


def test_json_column_set_to_null_stores_sql_null(gql: GraphQL) -> None:
    gql('mutation { update_users_by_pk(pk_columns: {id: 1}, _set: {profile: null}) { id } }')
    rows = gql("{ users(where: {profile: {_is_null: true}}, order_by: {id: asc}) { id } }")["users"]
    assert rows == [{"id": 1}, {"id": 2}]


def test_delete_returns_the_deleted_rows_with_relationships(gql: GraphQL) -> None:
    data = gql("""mutation { delete_comments(where: {post_id: {_eq: 1}}) {
                  affected_rows returning { body post { title } } } }""")
    assert data["delete_comments"]["affected_rows"] == 2
    assert {r["body"] for r in data["delete_comments"]["returning"]} == {"nice", "great"}
    assert data["delete_comments"]["returning"][0]["post"] == {"title": "Hello World"}
    data = gql("""mutation { delete_tags_by_pk(post_id: 1, name: "news") { weight }
                  again: delete_tags_by_pk(post_id: 1, name: "news") { weight } }""")
    assert data == {"delete_tags_by_pk": {"weight": 2}, "again": None}


def test_delete_cascades_through_foreign_keys(gql: GraphQL) -> None:
    gql("mutation { delete_users_by_pk(id: 3) { id } }")
    assert gql("{ posts(where: {user_id: {_eq: 3}}) { id } }")["posts"] == []
    assert gql("{ comments(where: {post_id: {_eq: 4}}) { id } }")["comments"] == []


def test_constraint_violations(gql: GraphQL) -> None:
    duplicate = 'mutation { insert_users_one(object: {name: "X", email: "alice@example.com"}) { id } }'
    assert gql.error_codes(duplicate) == ["constraint-violation"]
    missing_user = 'mutation { insert_posts_one(object: {title: "t", user_id: 999}) { id } }'
    assert gql.error_codes(missing_user) == ["constraint-violation"]
    not_null = "mutation { insert_users_one(object: {email: \"z@example.com\"}) { id } }"
    assert gql.error_codes(not_null) == ["constraint-violation"]
    referenced = "mutation { delete_users(where: {id: {_eq: 2}}) { affected_rows } }"
    assert gql.error_codes(referenced) == ["constraint-violation"]  # posts.editor_id has no cascade


def test_a_failing_field_rolls_back_the_whole_request(gql: GraphQL) -> None:
    body = gql.raw("""mutation {
        first: insert_users_one(object: {name: "Kept?"}) { id }
        second: insert_users_one(object: {name: "Y", email: "alice@example.com"}) { id } }""")
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["constraint-violation"]
    assert gql('{ users(where: {name: {_eq: "Kept?"}}) { id } }')["users"] == []


def test_a_multi_row_insert_is_all_or_nothing(gql: GraphQL) -> None:
    codes = gql.error_codes("""mutation { insert_users(objects: [{name: "P"},
        {name: "Q", email: "alice@example.com"}]) { affected_rows } }""")
    assert codes == ["constraint-violation"]
    assert gql('{ users(where: {name: {_in: ["P", "Q"]}}) { id } }')["users"] == []


def test_invalid_values_are_validation_failed(gql: GraphQL) -> None:
    bad_date = 'mutation { insert_users_one(object: {name: "d", born: "not a date"}) { id } }'
    assert gql.error_codes(bad_date) == ["validation-failed"]
    assert gql('{ users_aggregate { aggregate { count } } }')["users_aggregate"]["aggregate"]["count"] == 3
    assert gql.error_codes('mutation { insert_users_one(object: {name: 5}) { id } }') == ["validation-failed"]
