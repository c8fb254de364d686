"""When a run says it has begun (``run_execution``'s ``started``): after its execute_request
has gone out, with its first output (in the document before it), or a while after the request
when it shows nothing, and at its end at the latest; once.

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
        self.emptied = asyncio.Event()
        self._subscription = doc.observe(self._queue)
        self.task = asyncio.ensure_future(self._send())

        self.emptied = asyncio.Event()

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
            self.emptied.set()

    async def drained(self) -> None:
        """Until every edit made so far has been sent."""
        async with asyncio.timeout(10):
            while self.queued:
                self.emptied.clear()
                await self.emptied.wait()


class Connection:
    """Says its request went out when its task first runs; then, a turn of the loop later (as
    a kernel answers), hands over ``messages``; then, if ``until_running``, waits until the
    record says running before its reply (a kernel still at work, showing nothing)."""

    kernel_id = "k1"

    def __init__(
        self, wire: Wire, records: LiveRecords, messages: list[dict], until_running: bool
    ) -> None:
        self.wire = wire
        self.records = records
        self.messages = messages
        self.until_running = until_running

    async def execute(self, code: str, *, on_output, on_sent=None, **_kw: Any) -> ExecuteResult:
        self.wire.sent.append("execute_request")
        if on_sent is not None:
            on_sent()
        await asyncio.sleep(0)  # the kernel answers on a later turn of the loop
        for message in self.messages:
            on_output(message)
        async with asyncio.timeout(10):
            while self.until_running and status(self.records) != "running":
                waiter = self.records.changed.waiter()
                await waiter.wait()
        return ExecuteResult("m1", {"status": "ok", "execution_count": 1})


def status(records: LiveRecords) -> str:
    return records.record("executions", "e1").get("status")


BUSY = {"msg_type": "status", "content": {"execution_state": "busy"}}
STREAM = {"msg_type": "stream", "content": {"name": "stdout", "text": "1\n"}}


async def run(
    messages: list[dict], *, until_running: bool = False, started_after: float = 3600.0
) -> tuple[Wire, list[tuple[str, str]]]:
    """One run whose ``started`` sets the record running; what happened, each with the
    record's status then."""
    doc = Doc()
    records = LiveRecords(lambda: doc)
    records.edit(
        lambda: records.table("executions").__setitem__("e1", Map({"status": "requested"}))
    )
    records.follow()
    wire = Wire()
    sender = Sender(doc, wire)  # from here on: the run's own edits
    # Already woken, as a client's sender is when the run's queued status was just written.
    sender.wake.set()
    connection = Connection(wire, records, messages, until_running)
    calls: list[tuple[str, str]] = []

    def started() -> None:
        calls.append(("started", status(records)))
        records.write("executions", "e1", {"status": "running"})

    try:
        end = await run_execution(
            connection,  # type: ignore[arg-type]
            "print(1)",
            records=records,
            execution_id="e1",
            interrupt=lambda: asyncio.sleep(0),
            on_output=lambda message: calls.append((message["msg_type"], status(records))),
            started=started,
            started_after=started_after,
        )
        await sender.drained()
    finally:
        sender.task.cancel()
    assert end.result.ok
    return wire, calls


async def test_a_run_begins_with_its_first_output_after_its_request_went_out():
    wire, calls = await run([BUSY, STREAM])
    assert calls == [("status", "requested"), ("started", "requested"), ("stream", "running")]
    assert wire.sent == ["execute_request", "edit"]  # the edit after the request, once


async def test_a_run_that_shows_nothing_says_it_has_begun_while_it_runs():
    _wire, calls = await run([BUSY], until_running=True, started_after=0.01)
    # The kernel replied only once the record said running: no output was needed for that.
    assert calls == [("status", "requested"), ("started", "requested")]


async def test_a_run_that_ended_showing_nothing_has_begun_at_its_end():
    wire, calls = await run([BUSY])
    assert calls == [("status", "requested"), ("started", "requested")]
    assert wire.sent[0] == "execute_request"
