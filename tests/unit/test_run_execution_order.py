"""The order in which a run's first messages leave the supernode (``run_execution``): the
execute_request first; the edits that say the run has begun in the transaction of its first
output, or on their own once the start grace has passed without one.

The edits are transactions of a real pycrdt document whose sender is a task woken by the
document's observer, as ``rtc_client`` sends them; the kernel side is a stand-in connection
that notes when its request goes out and then hands its outputs over (the real kernel's timing
is what ``bench/supernode.py`` measures)."""

from __future__ import annotations

import asyncio
from typing import Any

from pycrdt import Doc, Map

from jupyter_sync.jupyter import ExecuteResult
from jupyter_sync.supernode.executing import run_execution
from jupyter_sync.supernode.live_records import LiveRecords


class Wire:
    """What left the process, in order."""

    def __init__(self) -> None:
        self.sent: list[str] = []


class Sender:
    """Sends the document's transactions from a task of its own, woken by the observer."""

    def __init__(self, doc: Doc, wire: Wire) -> None:
        self.wire = wire
        self.queued: list[bytes] = []
        self.wake = asyncio.Event()
        self._subscription = doc.observe(self._queue)
        self.task = asyncio.ensure_future(self._send())

    def _queue(self, event: Any) -> None:
        self.queued.append(event.update)
        self.wake.set()

    async def _send(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            for _update in self.queued:
                self.wire.sent.append("edit")
            self.queued.clear()


class Connection:
    """Says the request went out when its task first runs (unless ``confirm`` is off: a
    connection that never says so), waits for ``go`` if given (a kernel still working), then
    hands over a status and one output, then the reply."""

    kernel_id = "k1"

    def __init__(
        self,
        wire: Wire,
        records: LiveRecords,
        confirm: bool = True,
        go: asyncio.Event | None = None,
    ) -> None:
        self.wire = wire
        self.records = records
        self.confirm = confirm
        self.go = go
        self.status_at_output: str | None = None

    async def execute(self, code: str, *, on_output, on_sent=None, **_kw: Any) -> ExecuteResult:
        self.wire.sent.append("execute_request")
        if self.confirm and on_sent is not None:
            on_sent()
        await asyncio.sleep(0)  # the kernel answers on a later turn of the loop
        if self.go is not None:
            async with asyncio.timeout(10):
                await self.go.wait()
        on_output({"msg_type": "status", "content": {"execution_state": "busy"}})
        on_output({"msg_type": "stream", "content": {"name": "stdout", "text": "1\n"}})
        self.status_at_output = self.records.record("executions", "e1").get("status")
        return ExecuteResult("m1", {"status": "ok", "execution_count": 1})


async def run(
    confirm: bool, grace: float = 60.0, quiet: bool = False
) -> tuple[Wire, Connection, list[str]]:
    """One run of ``print(1)`` whose ``started`` sets the record running and whose outputs are
    written into the record; with ``quiet``, the kernel says nothing until the run has begun."""
    doc = Doc()
    records = LiveRecords(lambda: doc)
    records.edit(
        lambda: records.table("executions").__setitem__("e1", Map({"status": "requested"}))
    )
    wire = Wire()
    sender = Sender(doc, wire)  # from here on: the run's own edits
    go = asyncio.Event() if quiet else None
    connection = Connection(wire, records, confirm, go)
    calls: list[str] = []

    def started() -> None:
        calls.append("started")
        records.write("executions", "e1", {"status": "running"})
        if go is not None:
            go.set()

    def output(message: dict) -> None:
        calls.append(message["msg_type"])
        if message["msg_type"] == "stream":
            records.write("executions", "e1", {"text": message["content"]["text"]})

    try:
        end = await run_execution(
            connection,  # type: ignore[arg-type]
            "print(1)",
            records=records,
            execution_id="e1",
            interrupt=lambda: asyncio.sleep(0),
            on_output=output,
            started=started,
            transaction=doc.transaction,
            start_grace=grace,
        )
        async with asyncio.timeout(10):
            while sender.queued:  # the sender's turn: what is queued goes on the wire
                await asyncio.sleep(0)
    finally:
        sender.task.cancel()
    assert end.result.ok
    return wire, connection, calls


async def test_the_run_begins_in_its_first_output_s_transaction():
    wire, connection, calls = await run(confirm=True)
    assert calls == ["status", "started", "stream"]  # not before the kernel said something
    # The request first, then one transaction: the run begun and its output, together.
    assert wire.sent == ["execute_request", "edit"]
    assert connection.status_at_output == "running"


async def test_a_run_that_says_nothing_begins_when_the_grace_has_passed():
    wire, connection, calls = await run(confirm=True, grace=0.01, quiet=True)
    assert calls == ["started", "status", "stream"]
    assert wire.sent == ["execute_request", "edit", "edit"]  # the start, then the output
    assert connection.status_at_output == "running"


async def test_an_unconfirmed_request_begins_with_the_first_output_all_the_same():
    wire, connection, calls = await run(confirm=False)
    assert calls == ["status", "started", "stream"]  # once, with the first output
    assert wire.sent == ["execute_request", "edit"]
    assert connection.status_at_output == "running"
