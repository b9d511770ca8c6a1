"""The server's rate limit: one token bucket per key."""

from __future__ import annotations

import time


class _TokenBucket:
    """The server's rate limit: a bucket holding up to ``per_minute`` requests, full at
    first, refilled continuously at ``per_minute`` a minute; a request takes one."""

    def __init__(self, per_minute: float) -> None:
        self.per_minute = per_minute
        self.tokens = per_minute
        self.last = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        refill = (now - self.last) / 60 * self.per_minute
        self.tokens = min(self.per_minute, self.tokens + refill)
        self.last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
