"""`LikePattern` (graph.like) against a plain backtracking regex, over every small case.

The regex is the obvious translation (`%` -> `.*`, `_` -> `.`, `\\x` -> x, a
lone trailing `\\` -> itself), slow in the worst case but plainly right; the
linear matcher must agree with it on every pattern and text up to a few
characters over an alphabet that has each kind of token.
"""

from __future__ import annotations

import itertools
import re

import pytest

from graph.like import LikePattern


def reference(pattern: str, text: str, insensitive: bool) -> bool:
    out: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    flags = re.DOTALL | (re.IGNORECASE if insensitive else 0)
    return re.fullmatch("".join(out), text, flags) is not None


def strings(alphabet: str, longest: int) -> list[str]:
    return ["".join(p) for n in range(longest + 1) for p in itertools.product(alphabet, repeat=n)]


PATTERNS = strings("a%_\\B", 4)
TEXTS = strings("ab\\\n", 4)


@pytest.mark.parametrize("insensitive", [False, True], ids=["like", "ilike"])
def test_every_small_pattern_matches_as_the_backtracking_regex_does(insensitive: bool) -> None:
    wrong = []
    for pattern in PATTERNS:
        compiled = LikePattern(pattern, insensitive=insensitive)
        for text in TEXTS:
            if compiled.matches(text) != reference(pattern, text, insensitive):
                wrong.append((pattern, text))
    assert not wrong, wrong[:10]


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("a%b%c%d", "abcd", True),
        ("a%b%c%d", "acd", False),  # the first of two middle segments is missing
        ("a%b%c%d", "abd", False),  # the last of two middle segments is missing
        ("a%b%", "ac", False),
        ("a%b", "ab", True),  # the last segment starts right where the first ends
        ("a%ba", "aba", True),
        ("a%ba", "ab", False),  # first and last segments would overlap
        ("a\\", "a\\", True),  # a lone trailing backslash is a literal one
        ("%\\%%", "50%", True),
        ("_%_", "a", False),
        ("A%", "ab", False),
    ],
)
def test_segments_are_found_in_order_without_overlap(pattern: str, text: str, expected: bool) -> None:
    assert LikePattern(pattern, insensitive=False).matches(text) is expected
    assert reference(pattern, text, insensitive=False) is expected


def test_ilike_folds_case_and_like_does_not() -> None:
    assert LikePattern("A%b", insensitive=True).matches("aXB")
    assert not LikePattern("A%b", insensitive=False).matches("aXB")
    assert LikePattern("A%b", insensitive=False).matches("AXb")
