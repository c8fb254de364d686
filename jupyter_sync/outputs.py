"""Kernel iopub messages into nbformat outputs, kept in a shared Array.

Consecutive stream outputs of the same name are merged into one (a cell printing 100,000 lines
keeps one output, not 100,000), ``clear_output`` is honoured (waiting for the next output when
``wait`` is set), and ``update_display_data`` replaces the outputs with the same display id.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Array

OUTPUT_TYPES = {"stream", "display_data", "execute_result", "error", "update_display_data"}


def to_output(message: dict[str, Any]) -> dict[str, Any] | None:
    """The nbformat output of an iopub message, or None when it is not an output."""
    kind = message.get("msg_type") or message.get("header", {}).get("msg_type")
    content = message.get("content", {})
    if kind == "stream":
        return {
            "output_type": "stream",
            "name": content.get("name", "stdout"),
            "text": content.get("text", ""),
        }
    if kind in ("display_data", "update_display_data"):
        output = {
            "output_type": "display_data",
            "data": content.get("data", {}),
            "metadata": content.get("metadata", {}),
        }
        display_id = (content.get("transient") or {}).get("display_id")
        if display_id:
            output["transient"] = {"display_id": display_id}
        return output
    if kind == "execute_result":
        return {
            "output_type": "execute_result",
            "data": content.get("data", {}),
            "metadata": content.get("metadata", {}),
            "execution_count": content.get("execution_count"),
        }
    if kind == "error":
        return {
            "output_type": "error",
            "ename": content.get("ename", ""),
            "evalue": content.get("evalue", ""),
            "traceback": content.get("traceback", []),
        }
    return None


class OutputSink:
    """Applies one execution's iopub messages to its outputs Array."""

    def __init__(self, outputs: Array):
        self.outputs = outputs
        self.clear_pending = False

    def apply(self, message: dict[str, Any]) -> bool:
        """Apply a message; True when the outputs changed."""
        kind = message.get("msg_type") or message.get("header", {}).get("msg_type")
        if kind == "clear_output":
            if message.get("content", {}).get("wait"):
                self.clear_pending = True
                return False
            return self._clear()
        output = to_output(message)
        if output is None:
            return False
        if kind == "update_display_data":
            return self._update_display(output)
        if self.clear_pending:
            self._clear()
        if output["output_type"] == "stream" and len(self.outputs):
            last = self.outputs[len(self.outputs) - 1]
            if (
                isinstance(last, dict)
                and last.get("output_type") == "stream"
                and (last.get("name") == output["name"])
            ):
                merged = {**last, "text": last.get("text", "") + output["text"]}
                index = len(self.outputs) - 1
                del self.outputs[index]
                self.outputs.insert(index, merged)
                return True
        self.outputs.append(output)
        return True

    def _clear(self) -> bool:
        self.clear_pending = False
        if not len(self.outputs):
            return False
        del self.outputs[0 : len(self.outputs)]
        return True

    def _update_display(self, output: dict[str, Any]) -> bool:
        display_id = output.get("transient", {}).get("display_id")
        changed = False
        for index in range(len(self.outputs)):
            existing = self.outputs[index]
            if (
                isinstance(existing, dict)
                and existing.get("transient", {}).get("display_id") == display_id
            ):
                del self.outputs[index]
                self.outputs.insert(index, output)
                changed = True
        return changed


def append_output(outputs: Array, message: dict[str, Any]) -> bool:
    """Apply one message to ``outputs`` (stateless: ``clear_output(wait=True)`` clears now)."""
    return OutputSink(outputs).apply(message)
