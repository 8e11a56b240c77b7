"""What the dependency seams share: the attributes a class's own code uses, a callable's parameters.

A seam (graph/delivery/_uvicorn_seam.py, graph/events/_broadcaster_seam.py)
is the one module that touches a dependency's private internals, and it
checks at import that they still have the shape it relies on. Methods can
be looked up; attributes that a constructor sets, and what the class calls
on them, are recorded nowhere but in the class's code, read here from its
bytecode. A reader that finds nothing (a Python whose bytecode it does not
know) makes the seams' checks fail, so they fall back rather than trust.
"""

from __future__ import annotations

import dis
import inspect
import types
from collections import defaultdict
from collections.abc import Iterator
from importlib import metadata
from typing import Any

ATTRIBUTE_OPS = frozenset({"LOAD_ATTR", "LOAD_METHOD", "STORE_ATTR", "DELETE_ATTR"})


def attribute_uses(cls: type) -> dict[str, set[str]]:
    """Each attribute of `self` that `cls`'s own functions use, with what they use on it in turn.

    `self.queue.put_nowait(...)` and `self.queue = ...` in any method give
    `{"queue": {"put_nowait"}}`. Inherited methods are not read: the caller
    asks about the class whose code it depends on.
    """
    uses: dict[str, set[str]] = defaultdict(set)
    for code in _codes(cls):
        instructions = list(dis.get_instructions(code))
        for index, instruction in enumerate(instructions[:-1]):
            # LOAD_DEREF: `self` in a function nested in a method.
            if not (instruction.opname.startswith(("LOAD_FAST", "LOAD_DEREF")) and instruction.argval == "self"):
                continue
            attribute = instructions[index + 1]
            if attribute.opname not in ATTRIBUTE_OPS:
                continue
            on_it = uses[attribute.argval]
            after = instructions[index + 2] if index + 2 < len(instructions) else None
            if attribute.opname == "LOAD_ATTR" and after is not None and after.opname in ATTRIBUTE_OPS:
                on_it.add(after.argval)
    return dict(uses)


def parameters(function: Any) -> list[str] | None:
    """The names of a callable's parameters (a class's: its constructor's); None if it has none to read."""
    try:
        return list(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return None


def version(distribution: str) -> str:
    """The installed version of `distribution`, for a seam's warning."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "(version unknown)"


def _codes(cls: type) -> Iterator[types.CodeType]:
    for value in vars(cls).values():
        function = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
        if callable(function):
            function = inspect.unwrap(function)  # the code under @asynccontextmanager and the like
        code = getattr(function, "__code__", None)
        if isinstance(code, types.CodeType):
            yield from _nested(code)


def _nested(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _nested(constant)
