"""JSON decoding without a nesting limit, for client messages.

orjson refuses documents nested more than 1,024 levels deep, and Python's
`json` raises RecursionError sooner. A WebSocket message nested that deep is
still valid JSON: refusing to read it would close the connection (4400) for
one bad operation, where the operation should get its own coded error (the
`where` depth check in graph.nesting) and the connection live on. Such
messages are read here with an explicit stack instead; every other message
takes orjson's fast path. The message size limit bounds the work.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

# One JSON token: a string (escapes are decoded by orjson), a literal, a number, or punctuation.
_TOKEN = re.compile(
    r'\s*(?:("(?:[^"\\\x00-\x1f]|\\.)*")|(true|false|null)'
    r"|(-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)|([{}\[\]:,]))",
    re.DOTALL,
)
_TRAILING = re.compile(r"\s*")
_LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None}


def loads(data: str | bytes) -> Any:
    """Decode a JSON text; orjson.JSONDecodeError when it is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        if "depth limit" not in str(error):
            raise
    text = data.decode() if isinstance(data, bytes) else data
    try:
        return _parse(text)
    except ValueError as error:
        raise orjson.JSONDecodeError(str(error), text, 0) from None


def _parse(text: str) -> Any:
    """A JSON value with containers built on an explicit stack (no recursion)."""
    # Each open container: [the container, the pending object key or None, expecting a value].
    stack: list[list[Any]] = []
    position = 0
    result: Any = None
    done = False
    while True:
        match = _TOKEN.match(text, position)
        if match is None:
            if done and _TRAILING.fullmatch(text, position):
                return result
            raise ValueError(f"unexpected input at char {position}")
        if done:
            raise ValueError(f"unexpected input after the value at char {position}")
        position = match.end()
        string, literal, number, punct = match.groups()
        value: Any
        is_value = True
        if string is not None:
            value = orjson.loads(string)
        elif literal is not None:
            value = _LITERALS[literal]
        elif number is not None:
            value = orjson.loads(number)
        elif punct in "{[":
            stack.append([{} if punct == "{" else [], None, True])
            continue
        elif punct in "}]":
            if not stack:
                raise ValueError(f"unbalanced {punct!r} at char {position}")
            container, key, expecting = stack.pop()
            if isinstance(container, dict) != (punct == "}") or key is not None:
                raise ValueError(f"unexpected {punct!r} at char {position}")
            if expecting and container:  # a trailing comma
                raise ValueError(f"unexpected {punct!r} at char {position}")
            value = container
        else:  # "," or ":"
            if not stack:
                raise ValueError(f"unexpected {punct!r} at char {position}")
            top = stack[-1]
            if punct == "," and not top[2] and top[1] is None:
                top[2] = True
            elif not (punct == ":" and isinstance(top[0], dict) and top[1] is not None and not top[2]):
                raise ValueError(f"unexpected {punct!r} at char {position}")
            else:
                top[2] = True
            is_value = False
            value = None
        if not is_value:
            continue
        if not stack:
            result, done = value, True
            continue
        top = stack[-1]
        container, key, expecting = top
        if not expecting:
            raise ValueError(f"missing a comma at char {position}")
        if isinstance(container, list):
            container.append(value)
            top[2] = False
        elif key is None:  # an object's key
            if not isinstance(value, str) or string is None:
                raise ValueError(f"expected a string key at char {position}")
            top[1], top[2] = value, False
        else:
            container[key] = value
            top[1], top[2] = None, False
