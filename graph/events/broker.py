"""The broadcast connection between server processes, picked by URL scheme.

Redis gets a backend of our own (graph/events/_broadcaster_seam.py says
why), when the installed broadcaster fits it; other schemes use
broadcaster's backends, through its public API.
"""

from __future__ import annotations

from broadcaster import Broadcast

from graph.events._broadcaster_seam import backend_for


def make_broadcast(url: str) -> Broadcast:
    """A Broadcast for `url` (memory://, redis://, rediss://, postgres://); ValueError if unknown."""
    backend = backend_for(url)
    return Broadcast(url) if backend is None else Broadcast(backend=backend)
