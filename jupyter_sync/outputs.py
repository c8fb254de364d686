"""Kernel iopub messages into nbformat outputs, kept in a shared Array.

Consecutive stream outputs of the same name are merged into one (a cell printing 100,000 lines
keeps one output, not 100,000), ``clear_output`` is honoured (waiting for the next output when
``wait`` is set), and ``update_display_data`` replaces the outputs with the same display id.

``OutputSink`` keeps plain nbformat dicts (an execution record's ``outputs``);
``NotebookOutputSink`` keeps them as a notebook cell holds them in jupyter_ydoc's layout.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Array, Map, Text

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


# --- The notebook variant ---------------------------------------------------------------------


def to_youtput(output: dict[str, Any]) -> Map:
    """An nbformat output as a shared Map laid out as jupyter_ydoc's ``YNotebook`` does.

    A stream's ``text`` is a ``Text`` (so appending to it is cheap, and ``@jupyter/ydoc``'s
    ``appendStreamOutput`` works on it); ``transient`` is runtime state, never stored.
    """
    fields = {key: value for key, value in output.items() if key != "transient"}
    if fields.get("output_type") == "stream":
        fields["text"] = Text(str(fields.get("text", "")))
    return Map(fields)


class NotebookOutputSink:
    """Applies one cell execution's iopub messages to the cell's ``outputs`` Array.

    Same rules as ``OutputSink``, on a notebook cell: each output is a ``Map``, consecutive
    streams of one name grow the last output's ``Text``, ``clear_output`` (with ``wait``) is
    honoured, and ``update_display_data`` replaces, in place, the outputs this execution
    displayed with that display id (the display ids are kept here, not in the document: nbformat
    has no place for them). The Array is passed to each call, because the cell may have been
    looked up afresh.
    """

    def __init__(self) -> None:
        self.clear_pending = False
        self.displays: dict[str, list[Map]] = {}

    def apply(self, outputs: Array, message: dict[str, Any]) -> bool:
        """Apply a message; True when the outputs changed."""
        kind = message.get("msg_type") or message.get("header", {}).get("msg_type")
        if kind == "clear_output":
            if message.get("content", {}).get("wait"):
                self.clear_pending = True
                return False
            return self._clear(outputs)
        output = to_output(message)
        if output is None:
            return False
        display_id = output.get("transient", {}).get("display_id")
        if kind == "update_display_data":
            return self._update_display(display_id, output)
        if self.clear_pending:
            self._clear(outputs)
        if output["output_type"] == "stream" and len(outputs):
            last = outputs[len(outputs) - 1]
            if (
                isinstance(last, Map)
                and last.get("output_type") == "stream"
                and last.get("name") == output["name"]
            ):
                text = last.get("text")
                if isinstance(text, Text):
                    text += output["text"]
                else:  # written by a client as a plain string
                    last["text"] = Text(str(text or "") + output["text"])
                return True
        outputs.append(to_youtput(output))
        if display_id:
            self.displays.setdefault(display_id, []).append(outputs[len(outputs) - 1])
        return True

    def _clear(self, outputs: Array) -> bool:
        self.clear_pending = False
        self.displays.clear()
        if not len(outputs):
            return False
        del outputs[0 : len(outputs)]
        return True

    def _update_display(self, display_id: str | None, output: dict[str, Any]) -> bool:
        changed = False
        for shown in self.displays.get(display_id or "", []):
            try:
                shown["data"] = output["data"]
                shown["metadata"] = output["metadata"]
                changed = True
            except Exception:  # deleted meanwhile (a client cleared the outputs)
                continue
        return changed
