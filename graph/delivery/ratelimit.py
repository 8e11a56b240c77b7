"""A token bucket: at most `rate` client messages per second on one connection.

The bucket holds one second's worth (`rate` tokens) and starts full, so a
client may send `rate` messages at once and then `rate` per second.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        """Tokens per second and the bucket's size; 0 lets everything through."""
        self._clock = clock
        self._tokens = float(rate)
        self._last = clock()

    def take(self, count: int = 1) -> bool:
        """Spend `count` tokens; False when the bucket holds fewer (the message is over the rate).

        A message that costs the server more than others counts as several;
        never as more than the bucket holds, so it can always be afforded alone.
        """
        if not self.rate:
            return True
        count = min(count, int(self.rate) or 1)
        now = self._clock()
        self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < count:
            return False
        self._tokens -= count
        return True
