"""Incoming ordering: stored transactions applied in serial order, without gaps.

Transactions that arrive ahead of the highest serial applied are buffered until their
predecessors are in; the serials still missing are what the client asks the server for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


def missing_serials(applied: int, ahead: Iterable[int], upto: int = 0) -> list[int]:
    """The serials to fetch: after ``applied``, not buffered, up to the highest buffered one
    (or ``upto``, a serial the server is known to have reached, if higher)."""
    buffered = set(ahead)
    last = max(max(buffered, default=0), upto)
    return [s for s in range(applied + 1, last + 1) if s not in buffered]


@dataclass
class Buffered:
    """A transaction with a serial above the one applied, waiting for its predecessors."""

    patch: bytes
    applied: bool
    """Already in the document: one of our own, acknowledged with this serial."""


class IncomingOrder:
    """The highest serial applied (every serial up to it is), and the transactions ahead of it."""

    def __init__(self) -> None:
        self.serial = 0
        self.ahead: dict[int, Buffered] = {}

    def wants(self, serial: object) -> bool:
        """Whether a transaction with this serial is news: above ``serial``, not yet buffered."""
        return isinstance(serial, int) and serial > self.serial and serial not in self.ahead

    def buffer(self, serial: int, patch: bytes, applied: bool = False) -> None:
        self.ahead[serial] = Buffered(patch, applied)

    def advance(self, apply: Callable[[bytes], None]) -> None:
        """Apply, through ``apply``, the buffered transactions that follow ``serial``, in order."""
        for serial in [s for s in self.ahead if s <= self.serial]:
            del self.ahead[serial]
        while (entry := self.ahead.pop(self.serial + 1, None)) is not None:
            if not entry.applied:
                apply(entry.patch)
            self.serial += 1

    def missing(self, upto: int = 0) -> list[int]:
        """The serials of the gaps below what is buffered (or below ``upto``)."""
        return missing_serials(self.serial, self.ahead, upto)

    def restart(self) -> None:
        """Start again from an empty document: nothing buffered is in it any more."""
        self.serial = 0
        for entry in self.ahead.values():
            entry.applied = False
