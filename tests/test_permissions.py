"""Permission rules: loading and checking the file, answering per role, session values (pure)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from graph.access import Access
from graph.auth import ADMIN_SESSION, Session
from graph.dialect.sqlite import configure_sqlite
from graph.errors import StartupError, ValidationFailed
from graph.model import Column, DatabaseModel, ForeignKey, Kind, Table
from graph.naming import name_model
from graph.rules.bool_exp import BoolExp, canonical
from graph.rules.matcher import compile_matcher
from graph.rules.parse import parse_trusted
from graph.rules.permissions import (
    ANONYMOUS,
    DeleteRule,
    InsertRule,
    Permissions,
    PermissionsError,
    SelectRule,
    UpdateRule,
    load_permissions,
    parse_permissions,
)
from graph.rules.session import (
    SESSION_ROLE,
    SESSION_USER_ID,
    SessionValues,
    resolve,
    resolve_presets,
)
from graph.rules.to_sql import Filters
from graph.sql.tables import core_tables


def _col(name: str, kind: Kind, nullable: bool = True, db_type: str = "") -> Column:
    return Column(name, kind, nullable, db_type=db_type)


MODEL = name_model(DatabaseModel("sqlite", {
    "users": Table("users", (
        _col("id", Kind.INTEGER, False), _col("name", Kind.STRING, False),
        _col("email", Kind.STRING), _col("created_at", Kind.DATETIME),
    ), ("id",)),
    "posts": Table("posts", (
        _col("id", Kind.INTEGER, False), _col("title", Kind.STRING, False),
        _col("body", Kind.STRING, False), _col("published", Kind.BOOLEAN, False),
        _col("user_id", Kind.INTEGER, False), _col("created_at", Kind.DATETIME),
    ), ("id",), (ForeignKey(("user_id",), "users", ("id",)),)),
    "comments": Table("comments", (
        _col("id", Kind.INTEGER, False), _col("post_id", Kind.INTEGER, False),
        _col("user_id", Kind.INTEGER), _col("body", Kind.STRING, False),
        _col("created_at", Kind.DATETIME),
    ), ("id",), (ForeignKey(("post_id",), "posts", ("id",)), ForeignKey(("user_id",), "users", ("id",)))),
    "readings": Table("readings", (
        _col("id", Kind.INTEGER, False), _col("score", Kind.FLOAT), _col("ok", Kind.BOOLEAN),
        _col("amount", Kind.NUMERIC), _col("day", Kind.DATE), _col("owner", Kind.STRING),
        _col("token", Kind.STRING, db_type="UUID"),
    ), ("id",)),
    "audit": Table("audit", (_col("at", Kind.DATETIME), _col("what", Kind.STRING)), ()),
}))
USERS, POSTS, COMMENTS = (MODEL.tables[n] for n in ("users", "posts", "comments"))
READINGS, AUDIT = MODEL.tables["readings"], MODEL.tables["audit"]

SPEC_EXAMPLE = """\
tables:
  posts:
    select:
      anonymous: {filter: {published: {_eq: true}}, columns: [id, title]}
      user: {filter: {_or: [{published: {_eq: true}}, {user_id: {_eq: X-User-Id}}]}, columns: "*"}
    insert:
      user: {check: {user_id: {_eq: X-User-Id}}, columns: [title, body, published], set: {user_id: X-User-Id}}
    update:
      user: {filter: {user_id: {_eq: X-User-Id}}, columns: [title, body, published]}
    delete:
      user: {filter: {user_id: {_eq: X-User-Id}}}
"""
OWN = {"user_id": {"_eq": "X-User-Id"}}


def write(tmp_path: Path, text: str, name: str = "permissions.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def load(tmp_path: Path, text: str, name: str = "permissions.yaml") -> Permissions:
    return load_permissions(write(tmp_path, text, name), MODEL)


def session(user_id: str | None = "7", role: str | None = "user") -> dict[str, str | None]:
    return {SESSION_USER_ID: user_id, SESSION_ROLE: role}


def resolve_session(exp: Any, table: Table, model: DatabaseModel, values: SessionValues) -> Any:
    """A rule as written (its strings may name session variables), with the session's values in."""
    if not isinstance(exp, Mapping):
        return exp
    return resolve(parse_trusted(table, exp, model, variables=True), table, model, values)


def has_relationships(exp: Any, table: Table) -> bool:
    return isinstance(exp, Mapping) and parse_trusted(table, exp).has_relationships


def matches(exp: BoolExp, row: dict[str, Any]) -> bool | None:
    return compile_matcher(exp)(row)


# -- loading and answering --------------------------------------------------------


def test_the_spec_example_gives_each_role_its_rules(tmp_path: Path) -> None:
    perms = load(tmp_path, SPEC_EXAMPLE)
    assert perms.source == str(tmp_path / "permissions.yaml")
    assert not perms.is_open
    assert perms.roles() == {"anonymous", "user"}
    assert perms.select(ANONYMOUS, POSTS) == SelectRule({"published": {"_eq": True}}, ("id", "title"))
    assert perms.select("user", POSTS) == SelectRule(
        {"_or": [{"published": {"_eq": True}}, OWN]},
        ("id", "title", "body", "published", "user_id", "created_at"),
    )
    assert perms.insert("user", POSTS) == InsertRule(
        OWN, ("title", "body", "published"), {"user_id": "X-User-Id"}
    )
    assert perms.update("user", POSTS) == UpdateRule(OWN, None, ("title", "body", "published"), {})
    assert perms.delete("user", POSTS) == DeleteRule(OWN)


def test_what_is_not_granted_is_denied(tmp_path: Path) -> None:
    perms = load(tmp_path, SPEC_EXAMPLE)
    for role in ("editor", "User", ""):
        assert perms.select(role, POSTS) is None
        assert perms.insert(role, POSTS) is None
        assert perms.update(role, POSTS) is None
        assert perms.delete(role, POSTS) is None
    assert perms.insert(ANONYMOUS, POSTS) is None
    assert perms.update(ANONYMOUS, POSTS) is None
    assert perms.delete(ANONYMOUS, POSTS) is None
    assert perms.select("user", USERS) is None  # a table the file does not name
    assert perms.delete("user", COMMENTS) is None


def test_a_table_may_have_rules_for_some_actions_only(tmp_path: Path) -> None:
    perms = load(tmp_path, """\
tables:
  comments:
    update:
      user: {filter: {user_id: {_eq: X-User-Id}}, check: {body: {_neq: ""}}, columns: [body]}
  users:
    insert:
      user: {check: {id: {_eq: X-User-Id}}, columns: [name]}
""")
    assert perms.update("user", COMMENTS) == UpdateRule(OWN, {"body": {"_neq": ""}}, ("body",), {})
    assert perms.insert("user", USERS) == InsertRule({"id": {"_eq": "X-User-Id"}}, ("name",), {})
    for table in (COMMENTS, USERS):
        assert perms.select("user", table) is None
        assert perms.delete("user", table) is None
    assert perms.insert("user", COMMENTS) is None
    assert perms.update("user", USERS) is None


def test_patterns_are_text_whatever_the_columns_type_and_json_takes_any_value(tmp_path: Path) -> None:
    perms = load(tmp_path, """\
tables:
  readings:
    select:
      user: {filter: {day: {_like: "2024-%"}, amount: {_nilike: X-User-Id}}, columns: [id]}
""")
    rule = perms.select("user", READINGS)
    assert rule is not None and rule.filter == {"day": {"_like": "2024-%"}, "amount": {"_nilike": "X-User-Id"}}
    docs = load_permissions(write(tmp_path, "tables:\n  docs:\n    select:\n      user: {filter: {meta: {_eq: [1, {a: 2}]}}, columns: [id]}\n", "docs.yaml"), JSON_MODEL)
    rule = docs.select("user", JSON_MODEL.tables["docs"])
    assert rule is not None and rule.filter == {"meta": {"_eq": [1, {"a": 2}]}}


ADMIN_SECRET = None
"""The admin secret's session asks with no role (graph.auth.Session.rules_role)."""


def test_the_admin_secret_may_do_everything_with_a_file(tmp_path: Path) -> None:
    perms = load(tmp_path, SPEC_EXAMPLE)
    assert perms.select(ADMIN_SECRET, USERS) == SelectRule(None, USERS.column_names)
    assert perms.insert(ADMIN_SECRET, POSTS) == InsertRule(None, POSTS.column_names, {})
    assert perms.update(ADMIN_SECRET, POSTS) == UpdateRule(None, None, POSTS.column_names, {})
    assert perms.delete(ADMIN_SECRET, POSTS) == DeleteRule(None)


def test_a_role_named_admin_is_governed_by_the_file(tmp_path: Path) -> None:
    perms = load(tmp_path, SPEC_EXAMPLE)
    assert perms.select("admin", USERS) is None
    assert perms.insert("admin", POSTS) is None
    assert perms.update("admin", POSTS) is None
    assert perms.delete("admin", POSTS) is None
    granted = load(tmp_path, "tables:\n  posts:\n    select:\n      admin: {columns: [id]}\n")
    assert granted.roles() == {ANONYMOUS, "admin"}
    assert granted.select("admin", POSTS) == SelectRule(None, ("id",))
    assert granted.delete("admin", POSTS) is None


def test_open_permissions_let_every_role_do_everything() -> None:
    perms = Permissions.open()
    assert perms.is_open and perms.source is None
    assert perms.roles() == {ANONYMOUS}
    for role in (ANONYMOUS, "user", "admin", "anyone", ADMIN_SECRET):
        assert perms.select(role, COMMENTS) == SelectRule(None, COMMENTS.column_names)
        assert perms.insert(role, COMMENTS) == InsertRule(None, COMMENTS.column_names, {})
        assert perms.update(role, COMMENTS) == UpdateRule(None, None, COMMENTS.column_names, {})
        assert perms.delete(role, COMMENTS) == DeleteRule(None)


def test_tables_without_a_primary_key_are_read_only_even_for_admin(tmp_path: Path) -> None:
    perms = load(tmp_path, "tables:\n  audit:\n    select:\n      user: {columns: [what]}\n")
    assert perms.select("user", AUDIT) == SelectRule(None, ("what",))
    for p, role in ((perms, ADMIN_SECRET), (Permissions.open(), "user")):
        assert p.select(role, AUDIT) == SelectRule(None, ("at", "what"))
        assert p.insert(role, AUDIT) is None
        assert p.update(role, AUDIT) is None
        assert p.delete(role, AUDIT) is None


def test_json_files_give_the_same_rules(tmp_path: Path) -> None:
    as_json = json.dumps(yaml.safe_load(SPEC_EXAMPLE))
    from_yaml = load(tmp_path, SPEC_EXAMPLE)
    by_extension = load(tmp_path, as_json, "rules.json")
    by_content = load(tmp_path, as_json, "rules.conf")
    assert by_extension.tables == from_yaml.tables == by_content.tables


def test_rules_may_come_as_data_or_text() -> None:
    data = yaml.safe_load(SPEC_EXAMPLE)
    assert parse_permissions(data, MODEL, "<rules>").tables == parse_permissions(
        SPEC_EXAMPLE, MODEL, "<rules>"
    ).tables


def test_columns_come_in_table_order_and_presets_are_not_given_by_clients(tmp_path: Path) -> None:
    perms = load(tmp_path, """\
tables:
  posts:
    select:
      user: {columns: [title, id, title]}
    insert:
      user: {columns: "*", set: {user_id: X-User-Id, published: false}}
    update:
      user: {columns: [body, user_id], set: {user_id: X-User-Id}}
""")
    assert perms.select("user", POSTS) == SelectRule(None, ("id", "title"))
    insert = perms.insert("user", POSTS)
    assert insert == InsertRule(
        None, ("id", "title", "body", "created_at"), {"user_id": "X-User-Id", "published": False}
    )
    update = perms.update("user", POSTS)
    assert update is not None and update.columns == ("body",)


def test_empty_filters_grant_every_row_and_empty_column_lists_no_column(tmp_path: Path) -> None:
    perms = load(tmp_path, """\
tables:
  posts:
    select: {user: {filter: {}, columns: []}}
    delete: {user: {}}
""")
    assert perms.select("user", POSTS) == SelectRule(None, ())
    assert perms.delete("user", POSTS) == DeleteRule(None)


def test_session_variables_take_any_case_and_hasura_spellings(tmp_path: Path) -> None:
    perms = load(tmp_path, """\
tables:
  posts:
    select:
      user: {filter: {_and: [{user_id: {_eq: X-Hasura-User-Id}}, {user_id: {_in: [x-user-id, 3]}}]}, columns: [id]}
  users:
    select:
      user: {filter: {name: {_eq: x-hasura-role}}, columns: [id]}
""")
    select = perms.select("user", POSTS)
    assert select is not None and select.filter == {
        "_and": [{"user_id": {"_eq": "X-User-Id"}}, {"user_id": {"_in": ["X-User-Id", 3]}}]
    }
    select = perms.select("user", USERS)
    assert select is not None and select.filter == {"name": {"_eq": "X-Role"}}


def test_yaml_dates_stay_the_text_written(tmp_path: Path) -> None:
    perms = load(tmp_path, "tables:\n  posts:\n    select:\n      user: {filter: {created_at: {_gt: 2024-01-02}}, columns: [id]}\n")
    select = perms.select("user", POSTS)
    assert select is not None and select.filter == {"created_at": {"_gt": "2024-01-02"}}


def test_filters_may_walk_relationships(tmp_path: Path) -> None:
    perms = load(tmp_path, """\
tables:
  comments:
    select:
      user: {filter: {post: {_or: [{published: {_eq: true}}, {user: {id: {_eq: X-User-Id}}}]}}, columns: "*"}
  users:
    select:
      user: {filter: {posts: {published: {_eq: true}}}, columns: [id, name]}
""")
    select = perms.select("user", COMMENTS)
    assert select is not None
    assert select.filter == {"post": {"_or": [{"published": {"_eq": True}}, {"user": {"id": {"_eq": "X-User-Id"}}}]}}


# -- one line naming the place for every mistake -----------------------------------

RULE = "tables:\n  posts:\n    select:\n      user: "
ERRORS: list[tuple[str, str, str]] = [
    ("- tables", "", "expected a mapping with a 'tables' key"),
    ("", "", "expected a mapping with a 'tables' key"),
    ("tables: {}\nroles: []\n", "roles", "unknown key 'roles'; the file holds only 'tables' and 'custom'"),
    ("tables: [posts]\n", "tables", "expected a mapping of table names to their rules"),
    ("tables:\n  postz: {}\n", "tables.postz", "unknown table 'postz'; did you mean 'posts'?"),
    ("tables:\n  posts: [select]\n", "tables.posts", "expected a mapping of actions (select, insert, update, delete)"),
    ("tables:\n  posts:\n    read: {}\n", "tables.posts.read", "unknown action 'read' (expected select, insert, update or delete)"),
    ("tables:\n  posts:\n    select: [user]\n", "tables.posts.select", "expected a mapping of role names to rules"),
    ("tables:\n  posts:\n    select:\n      1: {columns: []}\n", "tables.posts.select", "role names are non-empty strings, got 1"),
    ("tables:\n  posts:\n    select:\n      '': {columns: []}\n", "tables.posts.select", "role names are non-empty strings, got ''"),
    (RULE + "[id]\n", "tables.posts.select.user", "expected a mapping with filter, columns"),
    (RULE + "{columns: [id], check: {}}\n", "tables.posts.select.user.check", "unknown key 'check': select rules take filter, columns"),
    ("tables:\n  posts:\n    delete:\n      user: {columns: [id]}\n", "tables.posts.delete.user.columns", "unknown key 'columns': delete rules take filter"),
    (RULE + "{filter: {}}\n", "tables.posts.select.user", "missing 'columns' (a list of column names, or \"*\" for all)"),
    (RULE + "{columns: all}\n", "tables.posts.select.user.columns", 'expected "*" or a list of column names'),
    (RULE + "{columns: [id, titel]}\n", "tables.posts.select.user.columns", "unknown column 'titel'; did you mean 'title'?"),
    (RULE + "{columns: [id], filter: [published]}\n", "tables.posts.select.user.filter", "expected a mapping (a posts_bool_exp)"),
    (RULE + "{columns: [id], filter: {publish: {_eq: true}}}\n", "tables.posts.select.user.filter",
     "unknown column or relationship 'publish' of table 'posts'; did you mean 'published'?"),
    (RULE + "{columns: [id], filter: {published: {_equals: true}}}\n", "tables.posts.select.user.filter.published", "unknown operator '_equals'; did you mean '_eq'?"),
    (RULE + "{columns: [id], filter: {published: true}}\n", "tables.posts.select.user.filter.published",
     "expected a mapping of comparison operators, e.g. {_eq: ...}"),
    (RULE + "{columns: [id], filter: {_or: {published: {_eq: true}}}}\n", "tables.posts.select.user.filter._or", "expected a list of conditions"),
    (RULE + "{columns: [id], filter: {_not: [{published: {_eq: true}}]}}\n", "tables.posts.select.user.filter._not", "expected a mapping (a posts_bool_exp)"),
    (RULE + "{columns: [id], filter: {_and: [{}, {id: {_gt: 1}, bad: {}}]}}\n", "tables.posts.select.user.filter._and[1]",
     "unknown column or relationship 'bad' of table 'posts'"),
    (RULE + "{columns: [id], filter: {user_id: {_eq: null}}}\n", "tables.posts.select.user.filter.user_id._eq",
     "null is not allowed here (it would drop the condition and grant every row); use _is_null"),
    (RULE + "{columns: [id], filter: {_or: null}}\n", "tables.posts.select.user.filter._or", "null is not allowed here (it would drop the condition and grant every row); use _is_null"),
    (RULE + "{columns: [id], filter: {title: {_is_null: yes please}}}\n", "tables.posts.select.user.filter.title._is_null", "expected true or false, got 'yes please'"),
    (RULE + "{columns: [id], filter: {id: {_in: 3}}}\n", "tables.posts.select.user.filter.id._in", "expected a list"),
    (RULE + "{columns: [id], filter: {id: {_in: [1, two]}}}\n", "tables.posts.select.user.filter.id._in[1]", "expected an integer for column 'id', got 'two'"),
    (RULE + "{columns: [id], filter: {published: {_eq: 'yes'}}}\n", "tables.posts.select.user.filter.published._eq",
     "expected true or false for column 'published', got 'yes'"),
    (RULE + "{columns: [id], filter: {title: {_like: 5}}}\n", "tables.posts.select.user.filter.title._like", "expected a pattern string, got 5"),
    (RULE + "{columns: [id], filter: {created_at: {_gt: yesterday}}}\n", "tables.posts.select.user.filter.created_at._gt",
     "invalid value 'yesterday' for column 'created_at' of type datetime"),
    (RULE + "{columns: [id], filter: {user_id: {_eq: X-Hasura-Org-Id}}}\n", "tables.posts.select.user.filter.user_id._eq",
     "unknown session variable 'X-Hasura-Org-Id' (known: X-User-Id, X-Role)"),
    (RULE + "{columns: [id], filter: {user: {nme: {_eq: x}}}}\n", "tables.posts.select.user.filter.user",
     "unknown column or relationship 'nme' of table 'users'; did you mean 'name'?"),
    ("tables:\n  posts:\n    insert:\n      user: {columns: [title], set: {owner: X-User-Id}}\n", "tables.posts.insert.user.set", "unknown column 'owner'"),
    ("tables:\n  posts:\n    insert:\n      user: {columns: [title], set: {user_ids: X-User-Id}}\n", "tables.posts.insert.user.set", "unknown column 'user_ids'; did you mean 'user_id'?"),
    ("tables:\n  posts:\n    selct: {}\n", "tables.posts.selct",
     "unknown action 'selct' (expected select, insert, update or delete); did you mean 'select'?"),
    (RULE + "{columns: [id], filter: {id: {_in: 5}}}\n", "tables.posts.select.user.filter.id._in", "expected a list"),
    (RULE + "{columns: [id], filter: {id: {_eq: true}}}\n", "tables.posts.select.user.filter.id._eq",
     "expected an integer for column 'id', got True"),
    ("tables:\n  readings:\n    select:\n      user: {columns: [id], filter: {day: {_eq: {a: 1}}}}\n",
     "tables.readings.select.user.filter.day._eq", "expected a single value for column 'day', got {'a': 1}"),
    (RULE + "{columns: [id], filter: {title: {_like: X-Hasura-Org-Id}}}\n", "tables.posts.select.user.filter.title._like",
     "unknown session variable 'X-Hasura-Org-Id' (known: X-User-Id, X-Role)"),
    ("tables:\n  posts:\n    insert:\n      user: {columns: [title], set: {user_id: null}}\n", "tables.posts.insert.user.set.user_id", "column 'user_id' is not nullable"),
    ("tables:\n  posts:\n    insert:\n      user: {columns: [title], set: {user_id: me}}\n", "tables.posts.insert.user.set.user_id", "expected an integer for column 'user_id', got 'me'"),
    ("tables:\n  posts:\n    update:\n      user: {columns: [title], set: [user_id]}\n", "tables.posts.update.user.set", "expected a mapping of column names to values"),
    ("tables:\n  posts:\n    update:\n      user: {columns: [title], check: {user_id: {_gte: 1.5}}}\n", "tables.posts.update.user.check.user_id._gte",
     "expected an integer for column 'user_id', got 1.5"),
    ("tables:\n  audit:\n    insert:\n      user: {columns: [what]}\n", "tables.audit.insert",
     "table 'audit' has no primary key, so it is read-only: only select rules apply"),
    ("tables:\n  audit:\n    delete:\n      user: {}\n", "tables.audit.delete", "table 'audit' has no primary key, so it is read-only: only select rules apply"),
    ("tables:\n  readings:\n    select:\n      user: {columns: [id], filter: {token: {_eq: not-a-uuid}}}\n", "tables.readings.select.user.filter.token._eq",
     "invalid value 'not-a-uuid' for column 'token' of type string"),
    ("tables:\n  readings:\n    select:\n      user: {columns: [id], filter: {amount: {_gt: lots}}}\n", "tables.readings.select.user.filter.amount._gt",
     "invalid value 'lots' for column 'amount' of type numeric"),
]


@pytest.mark.parametrize(("text", "where", "reason"), ERRORS, ids=[f"{w or 'top'}-{r[:30]}" for _, w, r in ERRORS])
def test_each_mistake_is_one_line_naming_file_and_place(tmp_path: Path, text: str, where: str, reason: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PermissionsError) as caught:
        load_permissions(path, MODEL)
    message = str(caught.value)
    assert "\n" not in message
    assert message == (f"{path}: {where}: {reason}" if where else f"{path}: {reason}")
    assert isinstance(caught.value, StartupError)


def test_the_documented_example_message(tmp_path: Path) -> None:
    path = write(tmp_path, SPEC_EXAMPLE.replace("[id, title]", "[id, titel]"))
    with pytest.raises(PermissionsError) as caught:
        load_permissions(path, MODEL)
    assert str(caught.value) == (
        f"{path}: tables.posts.select.anonymous.columns: unknown column 'titel'; did you mean 'title'?"
    )


@pytest.mark.parametrize(
    ("text", "name", "reason"),
    [
        ("tables:\n  posts:\n    select: {user: {columns: [id]\n", "permissions.yaml", "line 4, column 1: expected ',' or '}'"),
        ("tables:\n  posts: {}\n  posts: {}\n", "permissions.yaml", "line 3, column 3: duplicate key 'posts'"),
        ("tables:\n  posts:\n  select: x: y\n", "permissions.yaml", "line 3, column 12: mapping values are not allowed here"),
        ("tables:\n  ? [a, b]\n  : {}\n", "permissions.yaml", "line 2, column 5: found unhashable key"),
        ('{"tables": {"posts": {}},\n}', "permissions.json", "line 2, column 1: Expecting property name"),
        ('{"tables": {}, "tables": {}}', "permissions.json", "duplicate key 'tables'"),
    ],
)
def test_syntax_errors_name_the_line(tmp_path: Path, text: str, name: str, reason: str) -> None:
    path = write(tmp_path, text, name)
    with pytest.raises(PermissionsError) as caught:
        load_permissions(path, MODEL)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ") and reason in message, message


def test_an_unreadable_file_names_the_reason(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(PermissionsError, match=r"nope\.yaml: cannot read the permissions file: No such file"):
        load_permissions(missing, MODEL)
    with pytest.raises(PermissionsError, match="cannot read the permissions file: Is a directory"):
        load_permissions(str(tmp_path), MODEL)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"tables: {\xff}")
    with pytest.raises(PermissionsError, match=r"binary.yaml: not UTF-8 text \(byte 9\)"):
        load_permissions(str(binary), MODEL)


# -- session values ------------------------------------------------------------


def test_session_values_take_the_compared_columns_type() -> None:
    exp = {"user_id": {"_eq": "X-User-Id"}, "title": {"_neq": "X-User-Id"}}
    assert resolve_session(exp, POSTS, MODEL, session("7")) == {"user_id": {"_eq": 7}, "title": {"_neq": "7"}}
    assert resolve_session({"user_id": {"_eq": "X-Hasura-User-Id"}}, POSTS, MODEL, session(" -3 ")) == {"user_id": {"_eq": -3}}
    assert resolve_session({"score": {"_gt": "X-User-Id"}}, READINGS, MODEL, session("2.5")) == {"score": {"_gt": 2.5}}
    for raw, value in (("true", True), ("FALSE", False), ("1", True), ("0", False)):
        assert resolve_session({"ok": {"_eq": "X-User-Id"}}, READINGS, MODEL, session(raw)) == {"ok": {"_eq": value}}
    assert resolve_session({"owner": {"_eq": "x-role"}}, READINGS, MODEL, session(role="editor")) == {"owner": {"_eq": "editor"}}
    assert resolve_session({"day": {"_eq": "X-User-Id"}}, READINGS, MODEL, session("2024-05-06")) == {"day": {"_eq": "2024-05-06"}}
    assert resolve_session({"owner": {"_like": "X-User-Id"}}, READINGS, MODEL, session("a%")) == {"owner": {"_like": "a%"}}


def test_literals_are_left_alone_and_the_rule_is_not_changed() -> None:
    exp = {"_and": [{"user_id": {"_in": ["X-User-Id", 3]}}, {"published": {"_eq": True}}]}
    before = json.dumps(exp)
    assert resolve_session(exp, POSTS, MODEL, session("7")) == {
        "_and": [{"user_id": {"_in": [7, 3]}}, {"published": {"_eq": True}}]
    }
    assert json.dumps(exp) == before
    assert resolve_session(None, POSTS, MODEL, session()) is None


NEVER: dict[str, Any] = {"_or": []}


@pytest.mark.parametrize(
    ("raw", "column", "table"),
    [(None, "user_id", POSTS), ("abc", "user_id", POSTS), ("7.0", "user_id", POSTS), ("1_000", "user_id", POSTS),
     ("yes", "ok", READINGS), ("nan", "score", READINGS), ("x", "score", READINGS), ("May 5", "day", READINGS),
     ("1e", "amount", READINGS), ("not-a-uuid", "token", READINGS), (None, "owner", READINGS)],
)
def test_a_missing_or_unconvertible_value_matches_no_row(raw: str | None, column: str, table: Table) -> None:
    exp = {column: {"_eq": "X-User-Id"}, "id": {"_gt": 0}}
    assert resolve_session(exp, table, MODEL, session(raw)) == NEVER


def test_missing_values_are_unknown_under_and_or_and_not() -> None:
    own = {"user_id": {"_eq": "X-User-Id"}}
    published = {"published": {"_eq": True}}
    anonymous = session(None)
    assert resolve_session({"_or": [published, own]}, POSTS, MODEL, anonymous) == {"_or": [published, NEVER]}
    assert resolve_session({"_and": [published, own]}, POSTS, MODEL, anonymous) == {"_and": [published, NEVER]}
    # Negated, the comparison drops out (counts as true) so that NOT never grants more.
    assert resolve_session({"_not": own}, POSTS, MODEL, anonymous) == {"_not": {"user_id": {}}}
    assert resolve_session({"_not": {"_or": [published, own]}}, POSTS, MODEL, anonymous) == {
        "_not": {"_or": [published, {"user_id": {}}]}
    }
    assert resolve_session({"_not": {"_not": own}}, POSTS, MODEL, anonymous) == {"_not": {"_not": NEVER}}


def test_list_operators_convert_each_element() -> None:
    exp = {"user_id": {"_in": ["X-User-Id", 3]}}
    assert resolve_session(exp, POSTS, MODEL, session("7")) == {"user_id": {"_in": [7, 3]}}
    # x IN (NULL, 3) holds only for 3; x NOT IN (NULL, 3) never holds.
    assert resolve_session(exp, POSTS, MODEL, session(None)) == {"user_id": {"_in": [3]}}
    assert resolve_session({"_not": exp}, POSTS, MODEL, session(None)) == {"_not": {"user_id": {}}}
    nin = {"user_id": {"_nin": ["X-User-Id", 3]}}
    assert resolve_session(nin, POSTS, MODEL, session("x")) == NEVER
    assert resolve_session({"_not": nin}, POSTS, MODEL, session("x")) == {"_not": {"user_id": {"_nin": [3]}}}


def test_relationships_convert_with_the_remote_tables_columns() -> None:
    exp = {"post": {"_and": [{"user_id": {"_eq": "X-User-Id"}}, {"user": {"name": {"_eq": "X-User-Id"}}}]}}
    assert resolve_session(exp, COMMENTS, MODEL, session("7")) == {
        "post": {"_and": [{"user_id": {"_eq": 7}}, {"user": {"name": {"_eq": "7"}}}]}
    }
    assert resolve_session({"posts": {"user_id": {"_eq": "X-User-Id"}}}, USERS, MODEL, session("x")) == {"posts": NEVER}


def test_negated_relationships_convert_with_the_remote_tables_columns() -> None:
    exp = {"_not": {"post": {"user_id": {"_eq": "X-User-Id"}}}}
    assert resolve_session(exp, COMMENTS, MODEL, session("7")) == {"_not": {"post": {"user_id": {"_eq": 7}}}}
    # Missing under _not: the comparison drops out rather than admitting every row.
    assert resolve_session(exp, COMMENTS, MODEL, session(None)) == {"_not": {"post": {"user_id": {}}}}


def test_relationships_under_or_convert_with_the_remote_tables_columns() -> None:
    exp = {"_or": [{"post": {"user_id": {"_eq": "X-User-Id"}}}, {"body": {"_eq": "X-User-Id"}}]}
    assert resolve_session(exp, COMMENTS, MODEL, session("7")) == {
        "_or": [{"post": {"user_id": {"_eq": 7}}}, {"body": {"_eq": "7"}}]
    }


def test_a_negated_missing_value_drops_only_its_own_comparison() -> None:
    exp = {"_not": {"user_id": {"_eq": "X-User-Id", "_gt": 5}}}
    assert resolve_session(exp, POSTS, MODEL, session(None)) == {"_not": {"user_id": {"_gt": 5}}}


def test_nin_with_every_value_present_keeps_its_list() -> None:
    nin = {"user_id": {"_nin": ["X-User-Id", 3]}}
    assert resolve_session(nin, POSTS, MODEL, session("7")) == {"user_id": {"_nin": [7, 3]}}
    assert resolve_session({"_not": nin}, POSTS, MODEL, session("7")) == {"_not": {"user_id": {"_nin": [7, 3]}}}


def test_a_pattern_from_the_session_is_text_whatever_the_columns_type() -> None:
    """`_like` compares text: the session value is the pattern as given, even on a date column."""
    assert resolve_session({"day": {"_like": "X-User-Id"}}, READINGS, MODEL, session("2024-%")) == {
        "day": {"_like": "2024-%"}
    }
    assert resolve_session({"amount": {"_nilike": "x-user-id"}}, READINGS, MODEL, session("1._%")) == {
        "amount": {"_nilike": "1._%"}
    }
    assert resolve_session({"day": {"_like": "X-User-Id"}}, READINGS, MODEL, session(None)) == NEVER


JSON_MODEL = name_model(DatabaseModel("sqlite", {
    "docs": Table("docs", (_col("id", Kind.INTEGER, False), _col("meta", Kind.JSON)), ("id",)),
}))


def test_a_json_literal_is_never_read_as_session_variables() -> None:
    docs = JSON_MODEL.tables["docs"]
    exp = {"meta": {"_eq": ["X-User-Id", {"k": "X-Role"}]}, "id": {"_in": ["X-User-Id"]}}
    assert resolve_session(exp, docs, JSON_MODEL, session("7")) == {
        "meta": {"_eq": ["X-User-Id", {"k": "X-Role"}]}, "id": {"_in": [7]}
    }


ROWS = [
    {"id": 1, "title": "a", "body": "", "published": True, "user_id": 7, "created_at": None},
    {"id": 2, "title": "b", "body": "", "published": False, "user_id": 7, "created_at": None},
    {"id": 3, "title": "c", "body": "", "published": True, "user_id": 8, "created_at": None},
    {"id": 4, "title": "d", "body": "", "published": False, "user_id": 8, "created_at": None},
]


AGREEMENT: list[tuple[dict[str, Any], str | None, set[int]]] = [
    ({"_or": [{"published": {"_eq": True}}, {"user_id": {"_eq": "X-User-Id"}}]}, "7", {1, 2, 3}),
    ({"_or": [{"published": {"_eq": True}}, {"user_id": {"_eq": "X-User-Id"}}]}, None, {1, 3}),
    ({"_not": {"user_id": {"_eq": "X-User-Id"}}}, "8", {1, 2}),
    ({"_not": {"user_id": {"_eq": "X-User-Id"}}}, None, set()),
    ({"_not": {"user_id": {"_eq": "X-User-Id"}}}, "abc", set()),
    ({"_not": {"_or": [{"published": {"_eq": False}}, {"user_id": {"_eq": "X-User-Id"}}]}}, None, set()),
    ({"_not": {"_and": [{"published": {"_eq": False}}, {"user_id": {"_eq": "X-User-Id"}}]}}, None, {1, 3}),
    ({"user_id": {"_in": ["X-User-Id", 8]}}, None, {3, 4}),
    ({"_not": {"user_id": {"_in": ["X-User-Id", 8]}}}, None, set()),
    ({"_not": {"user_id": {"_nin": ["X-User-Id", 8]}}}, None, {3, 4}),
    ({"user_id": {"_neq": "X-User-Id"}}, None, set()),
    # Beyond 32 bits: a value of the column's type all the same, matching no row.
    ({"user_id": {"_neq": "X-User-Id"}}, "99999999999", {1, 2, 3, 4}),
    ({"_not": {"user_id": {"_eq": "X-User-Id"}}}, "99999999999", {1, 2, 3, 4}),
    # Patterns take the session's text whatever the column's type; a missing one is UNKNOWN.
    ({"title": {"_like": "X-User-Id"}}, "%c%", {3}),
    ({"title": {"_nlike": "X-User-Id"}}, "%c%", {1, 2, 4}),
    ({"title": {"_ilike": "X-User-Id"}}, "C", {3}),
    ({"title": {"_nlike": "X-User-Id"}}, None, set()),
    ({"_not": {"title": {"_like": "X-User-Id"}}}, None, set()),
]


@pytest.mark.parametrize(("exp", "user", "expected"), AGREEMENT)
def test_sql_and_memory_agree_on_resolved_rules(exp: dict[str, Any], user: str | None, expected: set[int]) -> None:
    """The same resolved rule admits the same rows in SQLite and in the event matcher,
    and a missing value admits what SQL would with NULL in its place."""
    resolved = resolve_session(exp, POSTS, MODEL, session(user))
    in_memory = {row["id"] for row in ROWS if matches(resolved, row) is True}
    tables = core_tables(MODEL)
    engine = sa.create_engine("sqlite://")
    # As the server's connections are: `_ilike` calls a function of ours there.
    sa.event.listen(engine, "connect", lambda conn, _record: configure_sqlite(conn))
    with engine.begin() as conn:
        conn.execute(sa.text(
            "CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT, body TEXT, published BOOLEAN, user_id INTEGER, created_at TEXT)"
        ))
        conn.execute(tables["posts"].insert(), ROWS)
        condition = Filters(MODEL, tables).compile("posts", resolved)
        in_sql = set(conn.execute(sa.select(tables["posts"].c.id).where(condition)).scalars())
    engine.dispose()
    assert in_memory == in_sql == expected


@pytest.mark.parametrize(("exp", "user", "expected"), AGREEMENT)
def test_a_roles_condition_bound_with_the_sessions_values_admits_what_the_resolved_rule_does(
    exp: dict[str, Any], user: str | None, expected: set[int]
) -> None:
    """One condition per role, its session variables parameters: NULL where a value
    is missing or does not convert admits the rows the resolved rule's constants do."""
    perms = parse_permissions({"tables": {"posts": {"select": {"user": {"filter": exp, "columns": "*"}}}}}, MODEL, "t")
    access = Access(MODEL, perms, Filters(MODEL, TABLES))
    condition = access.for_role("user").select_filter("posts")
    assert condition is not None
    assert access.for_role("user").select_filter("posts") is condition  # compiled once for the role
    engine = sa.create_engine("sqlite://")
    # As the server's connections are: `_ilike` calls a function of ours there.
    sa.event.listen(engine, "connect", lambda conn, _record: configure_sqlite(conn))
    with engine.begin() as conn:
        conn.execute(sa.text(
            "CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT, body TEXT, published BOOLEAN, user_id INTEGER, created_at TEXT)"
        ))
        conn.execute(TABLES["posts"].insert(), ROWS)
        statement = sa.select(TABLES["posts"].c.id).where(condition)
        parameters = dict(access.parameters(Session("user", user_id=user)))
        in_sql = set(conn.execute(statement, parameters).scalars())
    engine.dispose()
    assert in_sql == expected


def test_session_parameters_are_keyed_per_variable_and_conversion(tmp_path: Path) -> None:
    perms = load(tmp_path, """\
tables:
  posts:
    select:
      user: {filter: {_or: [{user_id: {_eq: X-User-Id}}, {title: {_like: X-User-Id}}, {title: {_eq: X-Role}}]}, columns: "*"}
      other: {filter: {user_id: {_in: [X-Hasura-User-Id, 3]}}, columns: "*"}
""")
    access = Access(MODEL, perms, Filters(MODEL, TABLES))
    for role in ("user", "other"):
        access.for_role(role).select_filter("posts")
    values = access.parameters(Session("user", user_id="7"))
    # The integer column's conversion is one parameter for every role; the pattern's another.
    assert dict(values) == {"session__x_user_id": 7, "session__x_user_id__2": "7", "session__x_role": "user"}
    assert dict(access.parameters(Session("user", user_id="abc"))) == {
        "session__x_user_id": None, "session__x_user_id__2": "abc", "session__x_role": "user"
    }


# -- one session's rules as SQL (graph.access) ---------------------------------------

EVERY_ACTION = """\
tables:
  posts:
    select:
      user: {filter: {published: {_eq: true}}, columns: "*"}
    insert:
      user: {check: {user_id: {_eq: X-User-Id}}, columns: [title], set: {user_id: X-User-Id}}
    update:
      user: {filter: {user_id: {_eq: X-User-Id}}, check: {published: {_eq: false}}, columns: [title], set: {title: X-Role}}
    delete:
      user: {filter: {title: {_eq: d}}}
"""


TABLES = core_tables(MODEL)


def _ids_where(make: Any, aliased: bool = False, parameters: Any = None) -> list[int] | None:
    """The ids of ROWS (in order) that the condition `make(target)` keeps, on posts or an alias of it.

    `parameters`: the session's values of the session parameters the condition binds.
    """
    target = TABLES["posts"].alias("p") if aliased else TABLES["posts"]
    condition = make(target)
    if condition is None:
        return None
    engine = sa.create_engine("sqlite://")
    # As the server's connections are: `_ilike` calls a function of ours there.
    sa.event.listen(engine, "connect", lambda conn, _record: configure_sqlite(conn))
    with engine.begin() as conn:
        conn.execute(sa.text(
            "CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT, body TEXT, published BOOLEAN, user_id INTEGER, created_at TEXT)"
        ))
        conn.execute(TABLES["posts"].insert(), ROWS)
        conn.execute(sa.text("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT, created_at TEXT)"))
        conn.execute(sa.text("INSERT INTO users (id, name) VALUES (7, 'a'), (8, 'b')"))
        statement = sa.select(target.c.id).where(condition).order_by(target.c.id)
        ids = list(conn.execute(statement, dict(parameters or {})).scalars())
    engine.dispose()
    return ids


def test_each_action_gets_its_own_rule_for_the_session(tmp_path: Path) -> None:
    access = Access(MODEL, load(tmp_path, EVERY_ACTION), Filters(MODEL, TABLES))
    user = access.for_session(Session("user", user_id="7"))
    rules, values = user.rules, user.parameters
    # Reads may name an alias (a relationship's subquery); the rule applies to it.
    assert _ids_where(lambda p: rules.select_filter("posts", p), aliased=True, parameters=values) == [1, 3]
    assert _ids_where(lambda _: rules.select_filter("posts"), parameters=values) == [1, 3]
    assert _ids_where(lambda _: rules.insert_check(POSTS), parameters=values) == [1, 2]
    assert _ids_where(lambda _: rules.update_filter(POSTS), parameters=values) == [1, 2]
    assert _ids_where(lambda _: rules.update_check(POSTS), parameters=values) == [2, 4]
    assert _ids_where(lambda _: rules.delete_filter(POSTS), parameters=values) == [4]
    assert user.insert_presets(POSTS) == {"user_id": 7}
    assert user.update_presets(POSTS) == {"title": "user"}
    # Another user's session: the same rules with its own values.
    other = access.for_session(Session("user", user_id="8"))
    assert _ids_where(lambda _: other.rules.update_filter(POSTS), parameters=other.parameters) == [3, 4]
    assert other.insert_presets(POSTS) == {"user_id": 8}
    # No rule limits the admin secret; a role the file does not name has no rule to apply.
    for session in (ADMIN_SESSION, Session("editor", user_id="7")):
        limited = access.for_session(session)
        assert limited.rules.select_filter("posts") is None
        for condition in (limited.rules.insert_check(POSTS), limited.rules.update_filter(POSTS),
                          limited.rules.update_check(POSTS), limited.rules.delete_filter(POSTS)):
            assert condition is None
        assert limited.insert_presets(POSTS) == limited.update_presets(POSTS) == {}


def test_rules_without_a_filter_or_check_limit_no_row(tmp_path: Path) -> None:
    perms = load(tmp_path, "tables:\n  posts:\n    select:\n      user: {columns: [id]}\n"
                 "    update:\n      user: {filter: {}, columns: [title]}\n")
    user = Access(MODEL, perms, Filters(MODEL, TABLES)).for_session(Session("user", user_id="7"))
    assert user.rules.select_filter("posts") is None
    assert user.rules.update_filter(POSTS) is None
    assert user.rules.update_check(POSTS) is None
    assert user.update_presets(POSTS) == {}


def test_write_rules_may_walk_relationships(tmp_path: Path) -> None:
    perms = load(tmp_path, "tables:\n  posts:\n    delete:\n      user: {filter: {user: {id: {_eq: X-User-Id}}}}\n")
    user = Access(MODEL, perms, Filters(MODEL, TABLES)).for_session(Session("user", user_id="8"))
    assert _ids_where(lambda _: user.rules.delete_filter(POSTS), parameters=user.parameters) == [3, 4]


def test_a_sessions_event_view_is_its_select_rule_with_its_own_values(tmp_path: Path) -> None:
    perms = load(tmp_path, """\
tables:
  posts:
    select:
      user: {filter: {user_id: {_eq: X-User-Id}}, columns: [id, title]}
      anonymous: {columns: [id]}
  comments:
    select:
      user: {filter: {post: {published: {_eq: true}}}, columns: [id]}
""")
    access = Access(MODEL, perms, Filters(MODEL, TABLES))
    for user_id in ("7", "8"):
        view = access.for_session(Session("user", user_id=user_id)).event_view("posts")
        assert view is not None
        assert view.filter == {"user_id": {"_eq": int(user_id)}} and view.columns == ("id", "title")
    anonymous = access.for_session(Session(ANONYMOUS)).event_view("posts")
    assert anonymous is not None and anonymous.filter is None and anonymous.columns == ("id",)
    assert access.for_session(Session("editor", user_id="7")).event_view("posts") is None
    # A rule through a relationship is kept as it is, decided per batch with SQL (graph.events.decide).
    through = access.for_session(Session("user", user_id="7")).event_view("comments")
    assert through is not None and through.filter == {"post": {"published": {"_eq": True}}}


# -- presets and helpers ----------------------------------------------------------


def test_presets_take_session_values_of_the_columns_type() -> None:
    presets = {"user_id": "X-User-Id", "published": False, "title": "x-hasura-role"}
    assert resolve_presets(presets, POSTS, session("7", "editor")) == {
        "user_id": 7, "published": False, "title": "editor"
    }
    assert resolve_presets({}, POSTS, session(None)) == {}


def test_presets_need_the_session_value() -> None:
    with pytest.raises(ValidationFailed, match=r"session variable X-User-Id is required to set column posts.user_id"):
        resolve_presets({"user_id": "X-User-Id"}, POSTS, session(None))
    with pytest.raises(ValidationFailed, match=r"session variable X-User-Id value 'abc' is not a valid integer for column posts.user_id"):
        resolve_presets({"user_id": "X-User-Id"}, POSTS, session("abc"))


def test_has_relationships_looks_through_and_or_not() -> None:
    assert not has_relationships(None, POSTS)
    assert not has_relationships({"_or": [{"published": {"_eq": True}}], "user_id": {"_eq": 1}}, POSTS)
    assert has_relationships({"user": {"id": {"_eq": 1}}}, POSTS)
    assert has_relationships({"_and": [{}, {"_not": {"user": {}}}]}, POSTS)
    assert has_relationships({"_or": [{"comments": {}}]}, POSTS)
    assert not has_relationships({"user": {}}, USERS)  # not a relationship of users


def test_canonical_ignores_key_order() -> None:
    a = {"b": {"_eq": 1}, "a": {"_in": [2, 1]}}
    b = {"a": {"_in": [2, 1]}, "b": {"_eq": 1}}
    assert canonical(a) == canonical(b) == '{"a":{"_in":[2,1]},"b":{"_eq":1}}'
    assert canonical(None) == "null"
