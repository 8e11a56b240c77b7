"""SQL `LIKE` matched in memory in time linear in the text for a given pattern.

A pattern is split at its `%` wildcards into segments of fixed length (each
literal character and each `_` stands for exactly one character), and the
segments are found left to right: the first anchored at the start, the last
at the end, each one between at its leftmost place after the one before.
With fixed-length segments the leftmost place is always as good as any
later one, so nothing is ever retried: the work is at most the text's length
times the pattern's, with no exponential case (a regular expression with one
`.*` per `%` backtracks through every way of splitting the text between them).

The semantics are graph/rules/to_sql.py's: `\\` escapes the next character (a
lone `\\` at the end is a literal backslash), `_` matches one character,
`%` any run, and the case-insensitive form folds case as Python's `re` does.
"""

from __future__ import annotations

import functools
import re
from typing import Any

ILIKE_FUNCTION = "fg_ilike"
"""SQLite's name for `ilike`: its own LIKE folds ASCII letters only."""


class LikePattern:
    __slots__ = ("_first", "_last", "_last_length", "_middle", "_whole")

    def __init__(self, pattern: str, insensitive: bool) -> None:
        flags = re.DOTALL | (re.IGNORECASE if insensitive else 0)
        segments = [
            (re.compile("".join(tokens), flags), len(tokens)) for tokens in _segments(pattern)
        ]
        self._whole = segments[0][0] if len(segments) == 1 else None
        self._first = segments[0][0]
        self._last, self._last_length = segments[-1]
        # Empty segments (`%%`) match anywhere: they are left out.
        self._middle = tuple(regex for regex, length in segments[1:-1] if length)

    def matches(self, text: str) -> bool:
        if self._whole is not None:
            return self._whole.fullmatch(text) is not None
        start = self._first.match(text)
        if start is None:
            return False
        position = start.end()
        end = len(text) - self._last_length
        if end < position or self._last.fullmatch(text, end) is None:
            return False
        for segment in self._middle:
            found = segment.search(text, position, end)
            if found is None:
                return False
            position = found.end()
        return True


def _segments(pattern: str) -> list[list[str]]:
    """The pattern's `%`-separated segments, each a list of one-character regex tokens."""
    segments: list[list[str]] = [[]]
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            segments[-1].append(re.escape(next(chars, "\\")))
        elif ch == "%":
            segments.append([])
        elif ch == "_":
            segments[-1].append(".")
        else:
            segments[-1].append(re.escape(ch))
    return segments


@functools.lru_cache(maxsize=512)
def _insensitive(pattern: str) -> LikePattern:
    return LikePattern(pattern, insensitive=True)


def ilike(text: Any, pattern: Any) -> int | None:
    """`text ILIKE pattern` as SQLite calls it: NULL if either is NULL, as SQL's LIKE.

    Case folds as the event-stream matcher's (graph/rules/matcher.py) does,
    non-ASCII letters too (`%ANTÔNIO%` matches `Antônio`), as PostgreSQL's
    ILIKE in a UTF-8 locale. Never raises: an exception would fail the statement.
    """
    if text is None or pattern is None:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return int(_insensitive(str(pattern)).matches(str(text)))
