"""One outgoing text message, encoded at most once however many connections send it.

A subscription's `Frame` (the hub's `Framing`) wraps its stream's payload
in a `Message`; the hub makes one per event and distinct frame (one per
stream when subscribers share their framing), and every connection that
sends it writes the same bytes: UTF-8 for SSE and compressed WebSockets, a
complete WebSocket frame for the others.
"""

from __future__ import annotations

import struct
from collections.abc import Hashable

TEXT_FIN = 0x81  # FIN bit + opcode 1 (text); server frames are never masked (RFC 6455 5.1)


def websocket_frame(data: bytes) -> bytes:
    """`data` as one unmasked, unfragmented, uncompressed WebSocket text frame."""
    size = len(data)
    if size < 126:
        header = bytes((TEXT_FIN, size))
    elif size < 1 << 16:
        header = struct.pack("!BBH", TEXT_FIN, 126, size)
    else:
        header = struct.pack("!BBQ", TEXT_FIN, 127, size)
    return header + data


class Message:
    __slots__ = ("_data", "_frame", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._data: bytes | None = None
        self._frame: bytes | None = None

    @property
    def data(self) -> bytes:
        """The text as UTF-8."""
        if self._data is None:
            self._data = self.text.encode()
        return self._data

    @property
    def frame(self) -> bytes:
        """The text as a complete WebSocket text frame, header included."""
        if self._frame is None:
            self._frame = websocket_frame(self.data)
        return self._frame

    def __repr__(self) -> str:
        return f"Message({self.text!r})"


class Frame:
    """One subscription's message around a payload: `prefix + payload + suffix`.

    Frames with equal `key`s wrap a payload alike, so the subscriptions that
    hold them share one `Message` per event.
    """

    __slots__ = ("key", "prefix", "suffix")

    def __init__(self, prefix: str = "", suffix: str = "") -> None:
        self.prefix = prefix
        self.suffix = suffix
        self.key: Hashable = (type(self), prefix, suffix)

    def __call__(self, payload: str, cursor: int) -> Message:
        return Message(self.prefix + payload + self.suffix)
