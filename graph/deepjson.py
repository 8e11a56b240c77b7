"""JSON decoding of client messages nested deeper than orjson reads, cheaply.

orjson refuses documents nested more than 1,024 levels deep. A WebSocket
message nested that deep may still be valid JSON, and refusing to read it
would close the connection (4400) for one bad operation, where the
operation should get its own coded error and the connection live on.

No such message can be served: nothing a client sends may nest that deep
(a `where` stops at graph.nesting.MAX_FILTER_DEPTH; HTTP refuses such a
body outright). So the message is not built in full, which in pure Python
cost 20-55 ms of event loop per 64 KB, a price an attacker could make the
server pay 100 times a second. Only its top level is read (`type`, `id`,
...): each top-level member whose value nests too deep is skipped and
stands as `TOO_DEEP`, found by counting the brackets outside strings with
bytes operations and running sums that run at C speed; what is left is
shallow and orjson reads it. Python steps once per top-level member and
per string holding a bracket: ~1 ms per 64 KB message, ~5 ms for the worst
layout, and `slow_cost` lets the caller charge it to the connection's rate
limit (one message per 16 KB).
"""

from __future__ import annotations

import bisect
import itertools
import operator
import re
from typing import Any, Final

import orjson

JSON_DEPTH_LIMIT: Final = 1024
"""orjson's nesting limit: deeper messages take the slow path here."""

SKIPPED_DEPTH: Final = 256
"""A top-level member nested deeper than this (absolute levels) is skipped as `TOO_DEEP`."""

SLOW_BYTES_PER_MESSAGE: Final = 16_384
"""A message read here counts as one message per this many bytes towards the rate limit."""


class _TooDeep:
    """The value of a top-level member nested too deep to be read."""

    _instance: _TooDeep | None = None

    def __new__(cls) -> _TooDeep:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "TOO_DEEP"


TOO_DEEP: Final = _TooDeep()

_NOT_BRACKET = bytes(c for c in range(256) if c not in b"[]{}")
_STRING_WITH_BRACKET = re.compile(rb'(?:[^"]++|"[^"\[\]{}]*+")*+("[^"]*+")')
_PARENS = bytes.maketrans(b"[]{}", b"()()")
_BRACKET_IN_STRING = bytes.maketrans(b"[]{}", b"____")
# A placeholder for a skipped member's value while orjson reads the rest; a
# string cannot be confused with the container it replaces, and the NUL in it
# is nothing a client sends by accident.
_PLACEHOLDER = b'"\\u0000forgegraph: too deep"'
_PLACEHOLDER_VALUE = "\x00forgegraph: too deep"


def loads(data: str | bytes) -> Any:
    """Decode a JSON text; orjson.JSONDecodeError when it is not JSON.

    A text nested deeper than orjson reads comes back with its too-deep
    top-level members as `TOO_DEEP` (see the module's docstring).
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        if "depth limit" not in str(error):
            raise
    raw = data.encode() if isinstance(data, str) else data
    try:
        return _top_level(raw)
    except ValueError as error:
        raise orjson.JSONDecodeError(str(error), raw.decode(errors="replace"), 0) from None


def slow_cost(text: str | bytes) -> int:
    """How many messages a text read by the slow path counts as (at least 1)."""
    return 1 + len(text) // SLOW_BYTES_PER_MESSAGE


def _top_level(raw: bytes) -> Any:
    skeleton = _neutralise_strings(raw)
    brackets = skeleton.translate(None, _NOT_BRACKET)  # the structure, outside strings
    if not brackets.startswith(b"{"):
        raise ValueError("a message nested this deep must be an object")
    cuts = _deep_members(brackets)
    if not cuts:
        raise ValueError("unbalanced brackets")  # orjson saw a depth this count does not
    locate = _BracketIndex(skeleton)
    pieces: list[bytes] = []
    offset = 0
    for first, last in cuts:
        begin, stop = locate(first), locate(last) + 1
        pieces += (raw[offset:begin], _PLACEHOLDER)
        offset = stop
    pieces.append(raw[offset:])
    value = orjson.loads(b"".join(pieces))
    if not isinstance(value, dict):
        raise ValueError("a message nested this deep must be an object")
    return {key: TOO_DEEP if item == _PLACEHOLDER_VALUE else item for key, item in value.items()}


def _deep_members(brackets: bytes) -> list[tuple[int, int]]:
    """The top-level members nested deeper than SKIPPED_DEPTH, as (first, last) bracket indices.

    `brackets` is a message's brackets alone, starting with the top-level
    `{`. Runs of opening and of closing brackets alternate; the depth after
    each run is a running sum, computed at C speed, as are the deepest
    levels between the points where the depth is back to 1 (the top level).
    Python steps once per top-level member.
    """
    # Split between runs with bytes operations (a regex would cost a match object per run).
    runs = brackets.translate(_PARENS).replace(b"()", b"(,)").replace(b")(", b"),(").split(b",")
    lengths = list(map(len, runs))
    steps = lengths.copy()
    steps[1::2] = map(operator.neg, steps[1::2])  # closing runs, as the first run opens
    after = list(itertools.accumulate(steps))  # the depth after each run
    if min(after) < 0 or after[-1] != 0 or after.index(0) != len(after) - 1:
        raise ValueError("unbalanced brackets")
    starts = list(itertools.accumulate(lengths, initial=0))  # each run's first bracket
    cuts: list[tuple[int, int]] = []
    # A member's value opens in an opening run that starts at depth <= 1 and
    # closes in the closing run that ends at depth 1 (or 0, at the very end).
    opening, before = 0, 0
    while opening < len(after) - 1:
        try:
            closing = after.index(1, opening + 1)
        except ValueError:
            closing = len(after) - 1
        # (after[opening] == 1: the top-level `{` opened alone, no member in it.)
        if after[opening] > 1 and max(after[opening:closing]) > SKIPPED_DEPTH:
            first = starts[opening] + 1 - before
            last = starts[closing] + after[closing - 1] - 2
            cuts.append((first, last))
        opening, before = closing + 1, 1
    return cuts


_BRACKET = re.compile(rb"[\[\]{}]")
_CHUNK = 256


class _BracketIndex:
    """The byte offset of the n-th bracket of a skeleton: brackets counted per chunk at C speed."""

    def __init__(self, skeleton: bytes) -> None:
        self.skeleton = skeleton
        counts = (len(skeleton[i : i + _CHUNK].translate(None, _NOT_BRACKET)) for i in range(0, len(skeleton), _CHUNK))
        self.before = [0, *itertools.accumulate(counts)]
        """Brackets before each chunk."""

    def __call__(self, index: int) -> int:
        chunk = bisect.bisect_right(self.before, index) - 1
        start = chunk * _CHUNK
        offsets = [m.start() for m in _BRACKET.finditer(self.skeleton, start, start + _CHUNK)]
        return offsets[index - self.before[chunk]]


def _neutralise_strings(raw: bytes) -> bytes:
    """`raw`, same length, with escapes blanked and every bracket inside a string replaced."""
    # An escape is a backslash and one character: blank `\\\\` first, then `\\"`,
    # so that each remaining quote opens or closes a string.
    masked = raw.replace(b"\\\\", b"__").replace(b'\\"', b"__")
    if masked.count(b'"') % 2:
        raise ValueError("an unterminated string")
    # One step per string that holds a bracket (a GraphQL query does): the
    # regex skips the others itself, possessively, so it never backtracks.
    pieces: list[bytes] = []
    offset = 0
    # match(), not finditer(): a search would retry from inside a string.
    while (match := _STRING_WITH_BRACKET.match(masked, offset)) is not None:
        begin, end = match.span(1)
        pieces += (masked[offset:begin], masked[begin:end].translate(_BRACKET_IN_STRING))
        offset = end
    pieces.append(masked[offset:])
    return b"".join(pieces)
