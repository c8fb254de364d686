"""The order in which a run's first messages leave the supernode (``run_execution``): the
execute_request before the edits that say the run has begun, and those edits in the document
before the run's first output.

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
    connection that never says so), then hands over one output, then the reply."""

    kernel_id = "k1"

    def __init__(self, wire: Wire, records: LiveRecords, confirm: bool = True) -> None:
        self.wire = wire
        self.records = records
        self.confirm = confirm
        self.status_at_output: str | None = None

    async def execute(self, code: str, *, on_output, on_sent=None, **_kw: Any) -> ExecuteResult:
        self.wire.sent.append("execute_request")
        if self.confirm and on_sent is not None:
            on_sent()
        await asyncio.sleep(0)  # the kernel answers on a later turn of the loop
        on_output({"msg_type": "status", "content": {"execution_state": "busy"}})
        self.status_at_output = self.records.record("executions", "e1").get("status")
        on_output({"msg_type": "stream", "content": {"name": "stdout", "text": "1\n"}})
        return ExecuteResult("m1", {"status": "ok", "execution_count": 1})


async def run(confirm: bool) -> tuple[Wire, Connection, list[str]]:
    """One run of ``print(1)`` whose ``started`` sets the record running."""
    doc = Doc()
    records = LiveRecords(lambda: doc)
    records.edit(
        lambda: records.table("executions").__setitem__("e1", Map({"status": "requested"}))
    )
    wire = Wire()
    sender = Sender(doc, wire)  # from here on: the run's own edits
    # Already woken, as a client's sender is when the run's queued status was just written.
    sender.wake.set()
    connection = Connection(wire, records, confirm)
    calls: list[str] = []

    def started() -> None:
        calls.append("started")
        records.write("executions", "e1", {"status": "running"})

    try:
        end = await run_execution(
            connection,  # type: ignore[arg-type]
            "print(1)",
            records=records,
            execution_id="e1",
            interrupt=lambda: asyncio.sleep(0),
            on_output=lambda message: calls.append(message["msg_type"]),
            started=started,
        )
    finally:
        sender.task.cancel()
    assert end.result.ok
    return wire, connection, calls


async def test_the_request_goes_out_before_the_edits_that_announce_the_run():
    wire, connection, calls = await run(confirm=True)
    assert wire.sent[:2] == ["execute_request", "edit"]
    assert calls == ["started", "status", "stream"]
    assert connection.status_at_output == "running"  # the edit was in before the output


async def test_the_run_is_announced_before_its_first_message_even_unconfirmed():
    _wire, connection, calls = await run(confirm=False)
    assert calls == ["started", "status", "stream"]  # once, before the first message
    assert connection.status_at_output == "running"
