"""A least-recently-used cache bounded by the bytes its entries hold, not by their number.

A cache bounded by entries lets a client fill it with large ones: 1,024
parsed one-megabyte documents are gigabytes. Here every entry carries an
estimate of its size; the oldest entries go once the total passes the
bound, and an entry larger than `max_bytes // ENTRY_SHARE` is not kept at all
(it would push out many small ones that are asked for again and again).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

from graphql import DocumentNode, Node

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

ENTRY_SHARE = 8
"""An entry may take at most this fraction of the cache."""
NODE_BYTES = 400
"""Memory of one parsed AST node with its location and tokens (measured on graphql-core 3.3:
300 to 550 bytes a node, across documents of fields, aliases, arguments and lists)."""


class ByteBoundedCache(Generic[K, V]):
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        """The estimated size of what the cache holds now."""
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: K) -> bool:
        return key in self._entries

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V, size: int) -> None:
        """Keep `value` (estimated at `size` bytes), or, when too large, forget `key`."""
        self.discard(key)
        if size > self.max_bytes // ENTRY_SHARE:
            return
        self._entries[key] = (value, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _key, (_value, evicted) = self._entries.popitem(last=False)
            self.bytes -= evicted

    def discard(self, key: K) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry[1]


def document_bytes(text: str, document: DocumentNode | None) -> int:
    """An estimate of the memory a query's text and its parsed document hold."""
    nodes = 0
    stack: list[object] = [document] if document is not None else []
    while stack:
        item = stack.pop()
        if isinstance(item, Node):
            nodes += 1
            for key in item.keys:
                value = getattr(item, key, None)
                if isinstance(value, Node | tuple | list):
                    stack.append(value)
        elif isinstance(item, tuple | list):
            stack.extend(item)
    return len(text) + nodes * NODE_BYTES + 100
