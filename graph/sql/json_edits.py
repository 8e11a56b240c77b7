"""Hasura's JSON update operators as SQL, with PostgreSQL's jsonb meaning on both databases.

`_append` and `_prepend` are jsonb's `||`: two objects merge their keys
(shallowly, the right one winning), anything else is concatenated as arrays,
a value that is not an array counting as an array of itself. `_delete_key` is
`- text` (a key of an object, or the string elements of an array),
`_delete_elem` is `- integer` (an array index, negative from the end) and
`_delete_at_path` is `#- text[]` (keys, or indexes where the value there is an
array).

On PostgreSQL these are the jsonb operators themselves; a `json` column is
cast to jsonb and back. On SQLite they are built from JSON1: not with
`json_patch`, which merges deeply and deletes the keys whose value is null
(RFC 7386), where `||` does neither; the objects and arrays are rebuilt from
`json_each` instead.

The column's name comes quoted by the caller; every value is a bound parameter.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

INDEX = re.compile(r"-?[0-9]+")

# json_each hands booleans and null out as SQL values (1, 0, NULL), objects and
# arrays as text: each is made JSON again where the aggregate reads it.
_ELEMENT = (
    "CASE type WHEN 'true' THEN json('true') WHEN 'false' THEN json('false') WHEN 'null' THEN json('null')"
    " WHEN 'object' THEN json(value) WHEN 'array' THEN json(value) ELSE value END"
)


# What PostgreSQL's jsonb operators refuse, SQLite's JSON1 lets through unchanged: the
# expression writes this text instead, and `refusal` finds it in the returned rows, so
# that the write is refused (and rolled back) with PostgreSQL's words.
REFUSED = "forgegraph refused: "  # no JSON text starts so
SCALAR = "cannot delete from scalar"


def refusal(stored: Any) -> str | None:
    """PostgreSQL's reason where a SQLite JSON edit wrote a refusal, else None."""
    if isinstance(stored, str) and stored.startswith(REFUSED):
        return stored.removeprefix(REFUSED)
    return None


def _refused(reason: str) -> str:
    return "'" + (REFUSED + reason).replace("'", "''") + "'"


def _param(value: Any, type_: Any = None) -> sa.BindParameter[Any]:
    return sa.bindparam("v", value, type_=type_, unique=True)


def postgresql(column: str, db_type: str, operator: str, value: Any) -> sa.TextClause:
    binary = db_type.upper().startswith("JSONB")
    target = column if binary else f"{column}::jsonb"
    if operator in ("_append", "_prepend"):
        given = "CAST(CAST(:v AS text) AS jsonb)"
        sql = f"{target} || {given}" if operator == "_append" else f"{given} || {target}"
        param = _param(orjson.dumps(value).decode())
    elif operator == "_delete_key":
        sql, param = f"{target} - CAST(:v AS text)", _param(value)
    elif operator == "_delete_elem":
        sql, param = f"{target} - CAST(:v AS integer)", _param(value)
    else:
        sql, param = f"{target} #- CAST(:v AS text[])", _param(list(value), pg.ARRAY(sa.Text))
    if not binary:
        sql = f"({sql})::json"
    return sa.text(sql).bindparams(param)


def sqlite(column: str, operator: str, value: Any) -> sa.TextClause:
    # JSON1's results carry the JSON subtype, and a trigger reading NEW sees it: the
    # capture trigger's json_object() would nest the value as an object instead of
    # writing its text. A concatenation makes it plain text again.
    # A NULL column stays NULL, as jsonb's operators are strict.
    sql, params = _sqlite(column, operator, value)
    return sa.text(f"CASE WHEN {column} IS NULL THEN NULL ELSE ('' || {sql}) END").bindparams(*params)


def _sqlite(column: str, operator: str, value: Any) -> tuple[str, list[sa.BindParameter[Any]]]:
    if operator in ("_append", "_prepend"):
        left, right = (column, ":v") if operator == "_append" else (":v", column)
        return _concatenation(left, right), [_param(orjson.dumps(value).decode())]
    if operator == "_delete_key":
        sql = (
            f"CASE json_type({column})"
            f" WHEN 'object' THEN (SELECT json_group_object(key, {_ELEMENT}) FROM json_each({column})"
            " WHERE key <> :v)"
            f" WHEN 'array' THEN (SELECT json_group_array({_ELEMENT}) FROM json_each({column})"
            " WHERE NOT (type = 'text' AND value = :v))"
            f" ELSE {_refused(SCALAR)} END"
        )
        return sql, [_param(value)]
    if operator == "_delete_elem":
        sql = (
            f"CASE json_type({column}) WHEN 'array' THEN json_remove({column}, :v)"
            f" WHEN 'object' THEN {_refused('cannot delete from object using integer index')}"
            f" ELSE {_refused(SCALAR)} END"
        )
        return sql, [_param(_index_path(int(value)))]
    if not value:
        return column, []  # `#- '{}'` changes nothing
    # `#-`: each step an array index where the value reached is an array, else an object key.
    path = "'$'"
    params: list[sa.BindParameter[Any]] = []
    for n, step in enumerate(value):
        key = f'."{step}"'
        if INDEX.fullmatch(step):
            params += [sa.bindparam(f"i{n}", _index_path(int(step))[1:], unique=True),
                       sa.bindparam(f"k{n}", key, unique=True)]
            path = f"({path} || CASE json_type({column}, {path}) WHEN 'array' THEN :i{n} ELSE :k{n} END)"
        else:
            params.append(sa.bindparam(f"k{n}", key, unique=True))
            path = f"({path} || :k{n})"
    sql = (
        f"CASE WHEN json_type({column}) IN ('object', 'array') THEN json_remove({column}, {path})"
        f" ELSE {_refused('cannot delete path in scalar')} END"
    )
    return sql, params


def _index_path(index: int) -> str:
    return f"$[{index}]" if index >= 0 else f"$[#{index}]"


def _concatenation(left: str, right: str) -> str:
    """jsonb's `left || right` over JSON texts."""

    def as_array(value: str) -> str:
        return f"CASE json_type({value}) WHEN 'array' THEN {value} ELSE json_array(json({value})) END"

    merged = (
        f"(SELECT json_group_object(key, {_ELEMENT}) FROM ("
        f"SELECT key, value, type FROM json_each({left}) WHERE key NOT IN (SELECT key FROM json_each({right}))"
        f" UNION ALL SELECT key, value, type FROM json_each({right})))"
    )
    concatenated = (
        f"(SELECT json_group_array({_ELEMENT}) FROM ("
        f"SELECT 0 AS side, key AS position, value, type FROM json_each({as_array(left)})"
        f" UNION ALL SELECT 1, key, value, type FROM json_each({as_array(right)})"
        " ORDER BY side, position))"
    )
    return (
        f"CASE WHEN {left} IS NULL THEN NULL"
        f" WHEN json_type({left}) = 'object' AND json_type({right}) = 'object' THEN {merged}"
        f" ELSE {concatenated} END"
    )
