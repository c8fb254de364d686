"""Console executions: an ``executions`` record with ``kernel_id`` and ``code`` (no document)
runs that code on that kernel; its outputs go into the record, as a notebook cell holds them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from jupyter_sync.jupyter import JupyterClient, JupyterClientError, KernelConnection
from jupyter_sync.records import (
    do_drop_execution,
    do_end_execution,
    do_fail_execution,
    do_start_execution,
)
from jupyter_sync.supernode.executing import (
    OutputWriter,
    final_status,
    outputs_of,
    run_execution,
)
from jupyter_sync.supernode.live_records import LiveRecords


class ConsoleExecutions:
    def __init__(
        self,
        jupyter: JupyterClient,
        records: LiveRecords,
        kernel: Callable[[str], Awaitable[KernelConnection]],
    ):
        self.jupyter = jupyter
        self.records = records
        self.kernel = kernel

    async def execute(self, execution_id: str) -> None:
        """Run the record's ``code`` on its ``kernel_id`` (started by the supernode's loop)."""
        try:
            record = self.records.record("executions", execution_id)
            if record is None:
                return
            if record.get("cancel"):
                do_drop_execution(self.records, execution_id)
                return
            code = record.get("code")
            kernel_id = record.get("kernel_id")
            if not kernel_id or code is None:
                raise ValueError("an execution needs kernel_id and code")

            def start() -> None:
                do_start_execution(self.records, execution_id)
                outputs_of(record)

            self.records.edit(start)
            connection = await self.kernel(kernel_id)
            # As a notebook cell holds them: a stream grows its text, so a write costs what it
            # appends, not what was printed before it.
            writer = OutputWriter(
                self.records.doc, lambda: self.records.record("executions", execution_id)
            )
            try:
                end = await run_execution(
                    connection,
                    str(code),
                    records=self.records,
                    execution_id=execution_id,
                    interrupt=lambda: self.jupyter.interrupt_kernel(kernel_id),
                    on_output=writer.add,
                )
            finally:
                writer.flush()
            result = end.result
            current = self.records.record("executions", execution_id)
            cancelled = end.interrupted or bool(current is not None and current.get("cancel"))
            status, error = final_status(result, cancelled)
            count = result.execution_count
            count = count if count is not None else writer.execution_count
            do_end_execution(self.records, execution_id, status, error, count)
        except (JupyterClientError, TimeoutError, ValueError) as error:
            do_fail_execution(self.records, execution_id, str(error) or type(error).__name__)


__all__ = ["ConsoleExecutions"]
