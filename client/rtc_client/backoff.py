"""Delays between reconnection attempts."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delays between reconnection attempts: exponential, bounded, with random jitter.

    Jitter spreads the reconnections of many clients after a server restart.
    """

    initial: float = 0.1
    factor: float = 2.0
    maximum: float = 5.0
    jitter: float = 0.1
    """Each delay is stretched by a random fraction in [0, jitter)."""

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """An endless sequence of delays: initial, initial*factor, ... capped at maximum."""
        rng = rng or random.Random()
        delay = self.initial
        while True:
            yield min(delay, self.maximum) * (1 + self.jitter * rng.random())
            delay = min(delay * self.factor, self.maximum)
