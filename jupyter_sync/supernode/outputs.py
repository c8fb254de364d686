"""Kernel iopub messages into nbformat outputs, kept in a shared Array, as Jupyter's front end
keeps them (and so saves them).

Consecutive stream outputs of the same name are merged into one (a cell printing 100,000 lines
keeps one output, not 100,000), and a stream's ``\r`` and ``\b`` are applied as JupyterLab's
output area applies them (`overwrite`): a progress bar redrawn with ``\r`` keeps its last state,
not every state it went through. ``clear_output`` is honoured (waiting for the next output when
``wait`` is set); ``update_display_data``, and a display of a display id already shown, replace
the data of the outputs with that display id.

``NotebookOutputSink`` keeps them as a notebook cell holds them in jupyter_ydoc's layout (each
output a ``Map``, a stream's text a ``Text`` that grows, so each write costs what it appends, or
for a ``\r``, what it rewrites of the last line); console executions keep their outputs the same
way. Output beyond a limit is not kept.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
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
        output = {
            "output_type": "execute_result",
            "data": content.get("data", {}),
            "metadata": content.get("metadata", {}),
            "execution_count": content.get("execution_count"),
        }
        display_id = (content.get("transient") or {}).get("display_id")
        if display_id:
            output["transient"] = {"display_id": display_id}
        return output
    if kind == "error":
        return {
            "output_type": "error",
            "ename": content.get("ename", ""),
            "evalue": content.get("evalue", ""),
            "traceback": content.get("traceback", []),
        }
    return None


_CONTROL = re.compile(r"[\r\n\b]")


def overwrite(line: str, cursor: int, chunk: str) -> tuple[str, str, int]:
    """``chunk`` of a stream written onto its last line, as Jupyter's front end writes it.

    ``line`` is the stream's text after its last newline and ``cursor`` where the next character
    goes in it (the end, unless a ``\r`` or ``\b`` moved it). Text overwrites what is under
    the cursor and extends the line; ``\r`` moves the cursor to the line's start; ``\b``
    removes the character before the cursor (and the one under it, as JupyterLab's output area
    does), never going back past a newline; ``\n`` ends the line whole, wherever the cursor is.

    Returns ``(tail, line, cursor)``: ``tail`` replaces the old ``line`` at the end of the
    stream's text (the lines ``chunk`` ended, then the new last line), and ``line`` and
    ``cursor`` are the new last line and cursor. Only the last line can change, so writing a
    chunk costs what the chunk and that line hold, however long the stream already is.
    """
    if cursor == len(line) and not _CONTROL.search(chunk):
        line += chunk
        return line, line, len(line)
    ended: list[str] = []
    start = 0
    while True:
        found = _CONTROL.search(chunk, start)
        end = found.start() if found else len(chunk)
        if end > start:
            piece = chunk[start:end]
            line = line[:cursor] + piece + line[cursor + len(piece) :]
            cursor += len(piece)
        if found is None:
            break
        control = found.group()
        if control == "\n":
            ended.append(line + "\n")
            line, cursor = "", 0
        elif control == "\r":
            cursor = 0
        elif cursor > 0:  # "\b"
            line = line[: cursor - 1] + line[cursor + 1 :]
            cursor -= 1
        start = end + 1
    return "".join(ended) + line, line, cursor


def coalesce_streams(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` with each run of consecutive stream messages of one name joined into one.

    Writing the joined chunk gives what writing each in turn gives (``overwrite`` reads a chunk
    character by character), in one edit: a progress bar redrawn 200 times between two writes
    of the outputs changes the document once.
    """
    joined: list[dict[str, Any]] = []
    for message in messages:
        previous = joined[-1] if joined else None
        if (
            previous is not None
            and _kind(message) == "stream"
            and _kind(previous) == "stream"
            and _stream_name(message) == _stream_name(previous)
        ):
            content = previous["content"]
            text = str(content.get("text", "")) + str(message.get("content", {}).get("text", ""))
            joined[-1] = {**previous, "content": {**content, "text": text}}
        else:
            joined.append(message)
    return joined


def _kind(message: dict[str, Any]) -> str | None:
    return message.get("msg_type") or message.get("header", {}).get("msg_type")


def _stream_name(message: dict[str, Any]) -> str:
    return message.get("content", {}).get("name", "stdout")


def _utf8(text: str) -> int:
    """The length of ``text`` as pycrdt counts a ``Text``'s indices: UTF-8 bytes."""
    return len(text.encode("utf-8", "surrogatepass"))


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    low, high = 0, n  # a[:low] == b[:low], a[:high] != b[:high]
    while high - low > 1:
        middle = (low + high) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle
    return low


def to_youtput(output: dict[str, Any]) -> Map:
    """An nbformat output as a shared Map laid out as jupyter_ydoc's ``YNotebook`` does.

    A stream's ``text`` is a ``Text`` (so appending to it is cheap, and ``@jupyter/ydoc``'s
    ``appendStreamOutput`` works on it); ``transient`` is runtime state, never stored.
    """
    fields = {key: value for key, value in output.items() if key != "transient"}
    if fields.get("output_type") == "stream":
        fields["text"] = Text(str(fields.get("text", "")))
    return Map(fields)


class Displays:
    """The outputs shown with each display id, by the cell (or console execution) that shows
    them.

    One per notebook, shared by the executions of its cells: a display handle updated in a later
    cell updates the output of the cell that showed it, as in Jupyter's front end and nbclient
    (the kernel sends the update under the later cell's request). Kept here, not in the
    document: nbformat has no place for display ids.
    """

    def __init__(self) -> None:
        self._shown: dict[str, dict[str, list[Map]]] = {}

    def add(self, display_id: str, owner: str, output: Map) -> None:
        self._shown.setdefault(display_id, {}).setdefault(owner, []).append(output)

    def forget(self, owner: str) -> None:
        """``owner``'s outputs were cleared: its displays are gone."""
        for display_id in list(self._shown):
            by_owner = self._shown[display_id]
            by_owner.pop(owner, None)
            if not by_owner:
                del self._shown[display_id]

    def shown(self, display_id: str) -> list[Map]:
        return [
            output for outputs in self._shown.get(display_id, {}).values() for output in outputs
        ]


@dataclass
class _Stream:
    """Where the sink left the stream output it wrote last: its place, name, the length of its
    text (UTF-8 bytes, as pycrdt counts), its last line and the cursor in it."""

    index: int
    name: str
    end: int
    line: str
    cursor: int


class NotebookOutputSink:
    """Applies one cell execution's iopub messages to the cell's ``outputs`` Array.

    Each output is a ``Map``; consecutive streams of one name grow the last output's ``Text``,
    with ``\r`` and ``\b`` applied (`overwrite`: only the last line is ever rewritten);
    ``clear_output`` (with ``wait``) is honoured; ``update_display_data`` replaces the data and
    metadata of the outputs shown with that display id (in ``displays``: this execution's own,
    or the notebook's when given, ``owner`` naming the cell), and so does a new display of an id
    already shown, which is then added too (as nbclient and Jupyter's front end do). The Array is
    passed to each call, because the cell may have been looked up afresh.
    """

    def __init__(self, limit: int = 0, displays: Displays | None = None, owner: str = "") -> None:
        self.clear_pending = False
        self.displays = displays if displays is not None else Displays()
        self.owner = owner
        self.limit = limit  # characters of output kept (0: no limit), see `_within_limit`
        self.used = 0
        self.truncated = False
        self._stream: _Stream | None = None

    def apply(self, outputs: Array, message: dict[str, Any]) -> bool:
        """Apply a message; True when the outputs changed."""
        kind = _kind(message)
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
        if output["output_type"] == "stream":
            return self._write_stream(outputs, output["name"], str(output["text"]))
        output = self._within_limit(output)
        if output is None:
            return False
        display_id = output.get("transient", {}).get("display_id")  # none on a notice
        if display_id:
            self._update_display(display_id, output)
        outputs.append(to_youtput(output))
        if display_id:
            self.displays.add(display_id, self.owner, outputs[len(outputs) - 1])
        return True

    def _write_stream(self, outputs: Array, name: str, chunk: str) -> bool:
        """Write a stream's chunk: onto the last output when it is a stream of that name, else
        as a new output; only what changes at the end of its text is rewritten."""
        if self.truncated:
            return False
        last = outputs[len(outputs) - 1] if len(outputs) else None
        merge = (
            isinstance(last, Map)
            and last.get("output_type") == "stream"
            and last.get("name") == name
        )
        if merge:
            text = last.get("text")
            if not isinstance(text, Text):  # written by a client as a plain string
                last["text"] = text = Text(str(text or ""))
            state = self._stream
            end = len(text)
            if (
                state is None
                or state.index != len(outputs) - 1
                or state.name != name
                or state.end != end
            ):  # not where this sink left it: read the last line from the text
                whole = str(text)
                line = whole[whole.rfind("\n") + 1 :]
                state = _Stream(len(outputs) - 1, name, end, line, len(line))
            old = state.line
            tail, line, cursor = overwrite(old, state.cursor, chunk)
        else:
            old, end = "", 0
            tail, line, cursor = overwrite("", 0, chunk)
        kept = _common_prefix(old, tail)
        added = tail[kept:]
        if self.limit and self.used + len(added) > self.limit:
            self.truncated = True
            added = added[: self.limit - self.used] + _notice(self.limit)
        self.used += len(added)
        if merge:
            at = end - _utf8(old[kept:])
            if at < end:
                del text[at:end]
            if added:
                text.insert(at, added)
            changed = at < end or bool(added)
        else:
            outputs.append(to_youtput({"output_type": "stream", "name": name, "text": added}))
            changed = True
        if self.truncated:
            self._stream = None
        else:
            self._stream = _Stream(
                len(outputs) - 1, name, end - _utf8(old[kept:]) + _utf8(added), line, cursor
            )
        return changed

    def _within_limit(self, output: dict[str, Any]) -> dict[str, Any] | None:
        """The output (not a stream), or a notice that the limit was reached, or None once it
        had been.

        The limit counts the characters written into stream texts (what a ``\r`` rewrites,
        too) and the JSON of other outputs. What goes past it is not kept; the last stream says
        so. Keeping the head rather than the tail is deliberate: deleted content stays in a CRDT
        document (and its history), so dropping old text would not make the document smaller,
        while never writing the rest does.
        """
        if not self.limit:
            return output
        if self.truncated:
            return None
        size = len(json.dumps(output, default=str))
        if self.used + size <= self.limit:
            self.used += size
            return output
        self.truncated = True
        self._stream = None
        return {"output_type": "stream", "name": "stderr", "text": _notice(self.limit)}

    def _clear(self, outputs: Array) -> bool:
        self.clear_pending = False
        self.displays.forget(self.owner)
        self.used = 0
        self.truncated = False
        self._stream = None
        if not len(outputs):
            return False
        del outputs[0 : len(outputs)]
        return True

    def _update_display(self, display_id: str | None, output: dict[str, Any]) -> bool:
        changed = False
        for shown in self.displays.shown(display_id or ""):
            try:
                shown["data"] = output["data"]
                shown["metadata"] = output["metadata"]
                changed = True
            except Exception:  # deleted meanwhile (a client cleared the outputs)
                continue
        return changed


def _notice(limit: int) -> str:
    return f"\n[output truncated: more than {limit:,} characters; the rest is not kept]\n"
