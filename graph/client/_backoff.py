"""How long to wait before reconnecting: exponential, capped, with jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    initial: float = 0.1
    """Seconds before the first retry."""
    maximum: float = 5.0
    """No wait is longer than this."""
    factor: float = 2.0
    jitter: float = 0.5
    """Each wait is cut by a random share up to this, so that many clients
    dropped at once (a server restart) do not come back in lock-step."""

    def delay(self, attempt: int) -> float:
        """The wait before retry number `attempt` (0 for the first)."""
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 32))
        return base * (1 - self.jitter * random.random())
