"""One outgoing text message, encoded at most once however many connections send it.

The hub makes one `Message` per event and distinct frame (one per stream
when subscribers share their framing), and every connection that sends it
writes the same bytes: UTF-8 for SSE and compressed WebSockets, a complete
WebSocket frame for the others.
"""

from __future__ import annotations

import struct

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
