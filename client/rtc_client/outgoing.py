"""The outgoing queue: local transactions kept until the server answers them.

Each local change becomes a transaction with the id ``<store id>-<n>``. It stays pending until
acknowledged or refused, and after a dropped connection it is sent again with the same id: the
server stores a transaction id once, so re-sending is idempotent.
"""

from __future__ import annotations

import itertools
from collections.abc import Container, Iterable, Iterator
from typing import Any

from rtc_client.wire.json_protocol import transaction_json


def batches(
    transactions: Iterable[dict[str, Any]], max_count: int, max_bytes: int
) -> Iterator[list[dict[str, Any]]]:
    """Group transactions into messages of at most ``max_count`` items and about ``max_bytes``.

    A single transaction larger than ``max_bytes`` still goes out, alone.
    """
    batch: list[dict[str, Any]] = []
    size = 0
    for transaction in transactions:
        cost = len(transaction["patch"]) + 100
        if batch and (len(batch) >= max_count or size + cost > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(transaction)
        size += cost
    if batch:
        yield batch


class OutgoingQueue:
    def __init__(self, store_id: str) -> None:
        self.store_id = store_id
        self.pending: dict[str, dict[str, Any]] = {}
        """Local transactions not yet answered, by id, in the order they were made."""
        self.acked: dict[str, int | None] = {}
        """Serial of each local transaction the server acknowledged (None: it changed nothing)."""
        self._counter = itertools.count(1)

    def add(self, update: bytes) -> str:
        """Queue a local change; returns its transaction id."""
        tid = f"{self.store_id}-{next(self._counter)}"
        self.pending[tid] = transaction_json(tid, self.store_id, update)
        return tid

    def acknowledge(self, tid: str, serial: int | None) -> dict[str, Any] | None:
        """The transaction the server stored (or found changed nothing), if it was pending."""
        transaction = self.pending.pop(tid, None)
        if transaction is not None:
            self.acked[tid] = serial
        return transaction

    def refuse(self, tid: str) -> dict[str, Any] | None:
        """The transaction the server refused, if it was pending."""
        return self.pending.pop(tid, None)

    def has_earlier(self, tid: str) -> bool:
        """Whether a transaction made before this pending one is still unanswered."""
        return tid in self.pending and next(iter(self.pending)) != tid

    def unsent(self, *excluded: Container[str]) -> list[dict[str, Any]]:
        """Pending transactions whose ids are in none of ``excluded``, in order."""
        return [
            transaction
            for tid, transaction in self.pending.items()
            if not any(tid in ids for ids in excluded)
        ]
