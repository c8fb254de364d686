"""Kernel iopub messages into nbformat outputs, kept in a shared Array.

Consecutive stream outputs of the same name are merged into one (a cell printing 100,000 lines
keeps one output, not 100,000), ``clear_output`` is honoured (waiting for the next output when
``wait`` is set), and ``update_display_data`` replaces the outputs with the same display id.

``NotebookOutputSink`` keeps them as a notebook cell holds them in jupyter_ydoc's layout (each
output a ``Map``, a stream's text a ``Text`` that grows, so each write costs what it appends);
console executions keep their outputs the same way. Output beyond a limit is not kept.
"""

from __future__ import annotations

import json
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

    def __init__(self, limit: int = 0) -> None:
        self.clear_pending = False
        self.displays: dict[str, list[Map]] = {}
        self.limit = limit  # characters of output kept (0: no limit), see `_within_limit`
        self.used = 0
        self.truncated = False

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
        output = self._within_limit(output)
        if output is None:
            return False
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

    def _within_limit(self, output: dict[str, Any]) -> dict[str, Any] | None:
        """The output as far as the limit allows, or None once the limit was reached.

        The limit counts stream text and the JSON of other outputs. What goes past it is not
        kept; the last stream says so. Keeping the head rather than the tail is deliberate:
        deleted content stays in a CRDT document (and its history), so dropping old text would
        not make the document smaller, while never writing the rest does.
        """
        if not self.limit:
            return output
        if self.truncated:
            return None
        stream = output["output_type"] == "stream"
        size = len(output["text"]) if stream else len(json.dumps(output, default=str))
        if self.used + size <= self.limit:
            self.used += size
            return output
        self.truncated = True
        notice = (
            f"\n[output truncated: more than {self.limit:,} characters; the rest is not kept]\n"
        )
        if stream:
            return {**output, "text": output["text"][: self.limit - self.used] + notice}
        return {"output_type": "stream", "name": "stderr", "text": notice}

    def _clear(self, outputs: Array) -> bool:
        self.clear_pending = False
        self.displays.clear()
        self.used = 0
        self.truncated = False
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
