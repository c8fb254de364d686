"""The jupyter datastore's records as the supernode holds them: its client's live pycrdt doc.

Every change made here is a transaction of that doc, which the client sends to the relay like
any client's edit. ``write`` is the supernode's ``RecordWriter`` (``jupyter_sync.records``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pycrdt import Doc, Map, Text


class Notifier:
    """Wakes every waiter at each ``notify()``; take ``waiter()`` before checking, then wait."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    def waiter(self) -> asyncio.Event:
        return self._event


class LiveRecords:
    """Read, edit and watch the records of the doc ``doc()`` returns (the client may rebuild
    it after a refusal, so it is looked up every time)."""

    def __init__(self, doc: Callable[[], Doc]):
        self._doc = doc
        self.changed = Notifier()
        """Notified at every change of the doc (once ``follow()`` was called for it)."""
        self._followed: Doc | None = None
        self._subscription: Any = None

    @property
    def doc(self) -> Doc:
        return self._doc()

    def follow(self) -> None:
        """Notify ``changed`` at every change of the current doc (again, after a rebuild)."""
        doc = self.doc
        if doc is self._followed:
            return
        self._followed = doc
        self._subscription = doc.observe(lambda _event: self.changed.notify())

    def table(self, name: str) -> Map:
        return self.doc.get(name, type=Map)

    def record(self, table: str, record_id: str) -> Map | None:
        record = self.table(table).get(record_id)
        return record if isinstance(record, Map) else None

    def edit(self, change: Callable[[], Any]) -> Any:
        """One document transaction: one patch for everything ``change`` does."""
        with self.doc.transaction():
            return change()

    def write(self, table: str, record_id: str, fields: dict[str, Any]) -> None:
        """Set fields of an existing record in one transaction, only those that differ (a
        record that is gone is left gone)."""
        record = self.record(table, record_id)
        if record is None:
            return

        def apply() -> None:
            for key, value in fields.items():
                if key == "code":  # a text field
                    current = record.get("code")
                    if isinstance(current, Text):
                        if str(current) != value:
                            current.clear()
                            current += value
                    else:
                        record["code"] = Text(value)
                elif record.get(key) != value or (value is not None and key not in record):
                    record[key] = value

        self.edit(apply)
