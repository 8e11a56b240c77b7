"""Naming of relationships and what GraphQL cannot name (pure, no I/O)."""

from __future__ import annotations

from graph.model import Column, DatabaseModel, ForeignKey, Kind, Table
from graph.naming import name_model


def table(name: str, *columns: str, pk: tuple[str, ...] = ("id",), fks: tuple[ForeignKey, ...] = ()) -> Table:
    cols = tuple(Column(c, Kind.INTEGER, nullable=c not in pk) for c in ("id", *columns) if c)
    return Table(name=name, columns=cols, primary_key=pk, foreign_keys=fks)


def relationships(model: DatabaseModel, name: str) -> dict[str, tuple[bool, str]]:
    return {r.name: (r.is_array, r.remote_table) for r in model.tables[name].relationships}


def test_object_and_array_names_follow_the_foreign_key() -> None:
    model = name_model(DatabaseModel("sqlite", {
        "users": table("users"),
        "posts": table("posts", "user_id", fks=(ForeignKey(("user_id",), "users", ("id",)),)),
    }))
    assert relationships(model, "posts") == {"user": (False, "users")}
    assert relationships(model, "users") == {"posts": (True, "posts")}


def test_several_foreign_keys_to_one_table_name_arrays_by_column() -> None:
    model = name_model(DatabaseModel("sqlite", {
        "users": table("users"),
        "posts": table("posts", "user_id", "editor_id", fks=(
            ForeignKey(("user_id",), "users", ("id",)),
            ForeignKey(("editor_id",), "users", ("id",)),
        )),
    }))
    assert relationships(model, "posts") == {"user": (False, "users"), "editor": (False, "users")}
    assert relationships(model, "users") == {
        "posts_by_user_id": (True, "posts"),
        "posts_by_editor_id": (True, "posts"),
    }


def test_self_reference_and_names_without_id_suffix() -> None:
    model = name_model(DatabaseModel("sqlite", {
        "message": table("message", "parent_id", fks=(ForeignKey(("parent_id",), "message", ("id",)),)),
        "track": table("track", "album", fks=(ForeignKey(("album",), "albums", ("id",)),)),
        "albums": table("albums"),
    }))
    assert relationships(model, "message") == {"parent": (False, "message"), "message": (True, "message")}
    # The column `album` already has the name: the relationship takes the column as suffix.
    assert relationships(model, "track") == {"albums": (False, "albums")}
    assert relationships(model, "albums") == {"track": (True, "track")}


def test_a_relationship_whose_name_is_a_column_is_renamed() -> None:
    model = name_model(DatabaseModel("sqlite", {
        "users": table("users", "posts"),
        "posts": table("posts", "user_id", fks=(ForeignKey(("user_id",), "users", ("id",)),)),
    }))
    assert relationships(model, "users") == {"posts_by_user_id": (True, "posts")}


def test_names_graphql_cannot_carry_are_served_under_a_safe_form() -> None:
    model = name_model(DatabaseModel("sqlite", {
        "good": table("good", "bad-column"),
        "bad table": table("bad table"),
        "__reserved": table("__reserved"),
    }))
    assert set(model.tables) == {"good", "bad_table", "reserved"}
    assert model.tables["bad_table"].sql_name == "bad table"
    assert [(c.name, c.sql_name) for c in model.tables["good"].columns] == [("id", "id"), ("bad_column", "bad-column")]
    assert model.skipped == ()


def test_names_that_still_cannot_be_served_are_reported_not_fatal() -> None:
    model = name_model(DatabaseModel("sqlite", {
        "good": table("good", "a b", "a_b"),
        "a b": table("a b"),
        "a_b": table("a_b"),
        "€": table("€"),
    }))
    assert set(model.tables) == {"good", "a_b"}
    assert model.tables["a_b"].sql_name == "a_b"  # the name as the database has it wins
    assert model.tables["good"].column_names == ("id", "a_b")
    assert {(p.table, p.column) for p in model.problems} == {("good", "a b"), ("a b", None), ("€", None)}
    assert len(model.skipped) == 3
