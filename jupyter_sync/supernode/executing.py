"""One execution on a kernel, steered by its ``executions`` record.

Cell executions (``documents/cell_queue.py``) and console executions (``console.py``) both
run through ``run_execution``, so a record's ``cancel`` (interrupt the kernel),
``input_request`` and ``input_reply`` (the kernel's stdin) mean the same for both;
``OutputWriter`` writes the outputs into the cell or the record: the first at once, later ones
a batch of messages per transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from pycrdt import Array, Doc, Map

from jupyter_sync.conf import jupyter_settings
from jupyter_sync.jupyter import ExecuteResult, JupyterClientError, KernelConnection
from jupyter_sync.jupyter.frames import msg_type
from jupyter_sync.records import do_ask_input, do_clear_input
from jupyter_sync.supernode.live_records import LiveRecords
from jupyter_sync.supernode.outputs import Displays, NotebookOutputSink, coalesce_streams
from jupyter_sync.trace import mark

logger = logging.getLogger(__name__)

OUTPUT_MESSAGES = {
    "stream",
    "display_data",
    "update_display_data",
    "execute_result",
    "error",
    "clear_output",
}
OUTPUT_INTERVAL = 0.05  # seconds: at most one output transaction per interval
START_GRACE = 0.02  # seconds a run may take to say something before it is shown as running


def outputs_of(target: Map) -> Array:
    """The ``outputs`` Array of a cell or an execution record, made if it has none (a shared
    type, so that outputs grow in place)."""
    outputs = target.get("outputs")
    if not isinstance(outputs, Array):
        target["outputs"] = Array()
        outputs = target["outputs"]
    return outputs


class OutputWriter:
    """Writes one execution's iopub messages into ``target()["outputs"]``, and
    ``execution_count`` as execute_input tells it (with ``write_count``; otherwise the count is
    only kept in ``execution_count`` for the caller to write).

    An output that comes after ``interval`` without one (the first of an execution, or the
    first after a quiet spell) is written at once: someone waiting for a cell to say something
    should not wait for a timer. Outputs that follow within ``interval`` of that write are
    held and written together when it has passed, so writes are at most one per ``interval``:
    writing each message as its own transaction would cost a stored patch per line printed,
    and consecutive stream messages of one name are written as one chunk (a progress bar
    redrawn many times in an interval is one edit of its line). Messages are written in the
    order they came. ``target`` is looked up at each write: a cell may have moved, or gone.
    """

    def __init__(
        self,
        doc: Doc,
        target: Callable[[], Map | None],
        interval: float = OUTPUT_INTERVAL,
        *,
        write_count: bool = True,
        displays: Displays | None = None,
        owner: str = "",
    ):
        self.doc = doc
        self.target = target
        self.interval = interval
        self.write_count = write_count
        self.sink = NotebookOutputSink(
            limit=jupyter_settings.OUTPUT_MAX_CHARS, displays=displays, owner=owner
        )
        self.pending: list[dict[str, Any]] = []
        self.handle: asyncio.TimerHandle | None = None
        self.execution_count: int | None = None
        self.last_output: float | None = None
        """Event loop time of the last write that held an output (None: none yet)."""

    def add(self, message: dict[str, Any]) -> None:
        kind = msg_type(message)
        if kind == "execute_input":
            count = message.get("content", {}).get("execution_count")
            self.execution_count = count if isinstance(count, int) else self.execution_count
        elif kind not in OUTPUT_MESSAGES:
            return
        self.pending.append(message)
        loop = asyncio.get_running_loop()
        now, last = loop.time(), self.last_output
        if kind != "execute_input" and (last is None or now - last >= self.interval):
            self.flush()  # with what is held before it (an execute_input), in order
        elif self.handle is None:
            # An execute_input alone waits, at most an interval, for an output to go with.
            due = now + self.interval if last is None else max(now, last + self.interval)
            self.handle = loop.call_at(due, self.flush)

    def flush(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        messages, self.pending = self.pending, []
        if not self.write_count:
            messages = [message for message in messages if msg_type(message) != "execute_input"]
        target = self.target()
        if not messages or target is None:
            return
        if any(msg_type(message) != "execute_input" for message in messages):
            self.last_output = asyncio.get_running_loop().time()
        with self.doc.transaction():
            outputs = outputs_of(target)
            for message in coalesce_streams(messages):
                if msg_type(message) == "execute_input":
                    target["execution_count"] = self.execution_count
                else:
                    self.sink.apply(outputs, message)


@dataclass(frozen=True)
class ExecutionEnd:
    result: ExecuteResult
    interrupted: bool  # the record asked to cancel and the kernel was interrupted


async def run_execution(
    connection: KernelConnection,
    code: str,
    *,
    records: LiveRecords,
    execution_id: str,
    interrupt: Callable[[], Awaitable[Any]],
    on_output: Callable[[dict[str, Any]], Any],
    started: Callable[[], Any] | None = None,
    transaction: Callable[[], AbstractContextManager[Any]] = nullcontext,
    start_grace: float = START_GRACE,
) -> ExecutionEnd:
    """Run ``code`` while following the ``executions`` record: ``cancel`` interrupts the kernel
    once, an ``input_request`` is set while the kernel waits for input, and an ``input_reply``
    is sent to it (both then cleared).

    ``started`` makes the edits that say the run has begun (the record running, a cell's
    outputs cleared), once: with the run's first output, in one ``transaction`` with it (the
    document the outputs go to), or ``start_grace`` seconds after the execute_request went out,
    or when the kernel asks for input, or at the run's end, whichever comes first. Made as the
    request went out, they were sent and committed while the kernel ran, on the same two
    cores, and a short run's first output then waited behind their commit: sent with it, they
    cost one commit, after the kernel's work; a run that says nothing for ``start_grace`` shows
    that it runs then."""
    inputs: list[dict[str, Any]] = []
    notifier = records.changed
    begun: list[bool] = []
    loop = asyncio.get_running_loop()
    grace: list[asyncio.TimerHandle] = []

    def begin() -> None:
        if not begun:
            begun.append(True)
            for handle in grace:
                handle.cancel()
            if started is not None:
                started()

    def sent() -> None:
        if not begun:
            grace.append(loop.call_later(start_grace, begin))

    def on_input(message: dict[str, Any]) -> None:
        begin()
        content = message.get("content") or {}
        inputs.append(message)
        do_ask_input(
            records, execution_id, content.get("prompt", ""), bool(content.get("password"))
        )

    first: list[bool] = []

    def output(message: dict[str, Any]) -> None:
        traced = not first and msg_type(message) in OUTPUT_MESSAGES
        if traced:
            first.append(True)
            mark(execution_id, "iopub")
        if begun or msg_type(message) not in OUTPUT_MESSAGES:
            on_output(message)
        else:
            with transaction():  # the start edits and the first output: one patch
                begin()
                on_output(message)
        if traced:  # the first output is written at once (OutputWriter)
            mark(execution_id, "written")

    mark(execution_id, "request")
    run = asyncio.ensure_future(
        connection.execute(
            code, on_output=output, on_input=on_input, allow_stdin=True, on_sent=sent
        )
    )
    run.add_done_callback(lambda _task: notifier.notify())
    interrupted = False
    try:
        while True:
            waiter = notifier.waiter()
            if run.done():
                break
            current = records.record("executions", execution_id)
            if current is not None and current.get("cancel") and not interrupted:
                interrupted = True
                try:
                    await interrupt()
                except JupyterClientError as error:
                    logger.warning("interrupting kernel %s: %s", connection.kernel_id, error)
            reply = current.get("input_reply") if current is not None else None
            if isinstance(reply, str) and inputs:
                await connection.send_input(reply, inputs.pop(0))
                do_clear_input(records, execution_id)
            if not run.done():
                await waiter.wait()
        return ExecutionEnd(run.result(), interrupted)
    finally:
        if not run.done():
            run.cancel()
        begin()  # a run that ended before its first output (or its request) began all the same


def final_status(result: ExecuteResult, cancelled: bool) -> tuple[str, str | None]:
    """The record's ``status`` and ``error`` for what an execution came to."""
    if result.ok:
        return "completed", None
    if cancelled:
        return "cancelled", f"{result.ename or 'interrupted'}: {result.evalue or ''}"
    if result.status == "aborted":
        return "error", "aborted: an earlier execution failed"
    return "error", f"{result.ename}: {result.evalue}"


__all__ = ["ExecutionEnd", "OutputWriter", "final_status", "outputs_of", "run_execution"]
