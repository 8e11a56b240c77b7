"""A permissions file read into plain data (YAML, or JSON), refusing what would
be read ambiguously; `graph.rules.permissions` checks what it says."""

from __future__ import annotations

import json
from typing import Any

import yaml

from graph.errors import StartupError


class PermissionsError(StartupError):
    """A permissions file that cannot be read or holds an invalid rule."""


def read_permissions(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except UnicodeDecodeError as error:
        raise PermissionsError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise PermissionsError(f"{path}: cannot read the permissions file: {error.strerror or error}") from None
    return parse_text(text, path)


def parse_text(text: str, source: str) -> Any:
    is_json = source.lower().endswith(".json")
    if is_json or text.lstrip().startswith("{"):
        try:
            return json.loads(text, object_pairs_hook=_unique_keys)
        except (ValueError, RecursionError) as error:
            # ValueError: JSONDecodeError, a duplicate key, or an integer of over 4300 digits.
            if is_json:
                where = f"line {error.lineno}, column {error.colno}: {error.msg}" if isinstance(error, json.JSONDecodeError) else _unreadable(error)
                raise PermissionsError(one_line(f"{source}: {where}")) from None
            # Not JSON after all: a YAML flow mapping also starts with "{".
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        reason = error.problem or error.context or "invalid YAML"
        raise PermissionsError(one_line(f"{source}: {where}{reason}")) from None
    except yaml.YAMLError as error:
        raise PermissionsError(one_line(f"{source}: invalid YAML: {error}")) from None
    except (ValueError, TypeError, LookupError, RecursionError) as error:
        # PyYAML's constructors let these through: "!!int" alone (IndexError), "!!bool x"
        # (KeyError), "!!map [1]" (TypeError), an integer of over 4300 digits, deep nesting.
        raise PermissionsError(one_line(f"{source}: invalid YAML: {_unreadable(error)}")) from None


def _unreadable(error: Exception) -> str:
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return f"a value cannot be read ({type(error).__name__}: {error})"


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(f"duplicate key {key!r}")
        out[key] = value
    return out


class _Loader(yaml.SafeLoader):
    """`safe_load`, refusing duplicate keys (the last would silently win) and
    keeping timestamps as the text written, as GraphQL would send them."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool):
            continue  # construct_mapping reports keys that cannot be keys
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(
    "tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node)
)


def one_line(text: str) -> str:
    return " ".join(text.split())
