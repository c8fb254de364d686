"""A token bucket per connection: a steady rate with room for bursts."""

from __future__ import annotations

import time


class TokenBucket:
    __slots__ = ("capacity", "rate", "refused", "tokens", "updated")  # one per connection

    def __init__(self, rate: float, burst: float):
        self.rate = rate
        self.capacity = max(burst, 1.0)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.refused = 0  # consecutive refusals: a client that keeps flooding gets closed

    def allow(self) -> bool:
        if self.rate <= 0:
            return True  # no limit configured
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.refused = 0
            return True
        self.refused += 1
        return False
