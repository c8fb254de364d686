"""Making a document's content equal to another state's, as new Yjs operations.

A Yjs document cannot go back to an earlier state: showing or restoring the document as it was at
some serial means new operations that turn what it holds now into what it held then. Here they
are computed against the old state itself (``history.doc_at``), not by replaying and undoing the
history since, so the cost is the size of the two states, whatever the history between them.

Only the content is made equal: a notebook's ``cells`` and ``meta``, a file's ``source``. The
``state`` map (dirty flag, the file's hash, ...) describes the document's relation to its file,
not its content, and is left as it is.

Cells are matched by id: a cell present in both keeps its shared types and gets granular changes
(its source text-diffed, other keys set only where they differ); cells that were added, removed
or moved since are deleted and inserted as copies of the old ones (yjs 13, which JupyterLab runs,
has no move). Copies keep the old layout exactly (which keys are shared maps, texts or arrays),
so the result passes the same schema checks the old state passed.
"""

from __future__ import annotations

import copy
import json
from difflib import SequenceMatcher
from typing import Any

from jupyter_ydoc.yunicode import _set_text
from pycrdt import Array, Doc, Map, Text

CONTENT_ROOTS: dict[str, dict[str, type]] = {
    "notebook": {"cells": Array, "meta": Map},
    "file": {"source": Text},
}
"""The content roots of each document type (``jupyter_sync.schema.DOCUMENT_FORMATS``' keys)."""

Shared = Map | Array | Text


def plain(value: Any) -> Any:
    """A value as JSON-like Python, shared types included."""
    if isinstance(value, Text):
        return str(value)
    if isinstance(value, Map | Array):
        return value.to_py()
    return value


def copied(value: Any) -> Any:
    """A new, unintegrated copy of ``value`` with the same layout of shared types."""
    if isinstance(value, Map):
        return Map({key: copied(item) for key, item in value.items()})
    if isinstance(value, Array):
        return Array([copied(item) for item in value])
    if isinstance(value, Text):
        return Text(str(value))
    return copy.deepcopy(value)


def _same(current: Any, target: Any) -> bool:
    """Equal content in the same layout (a shared map is not a plain dict of the same keys)."""
    return type(current) is type(target) and plain(current) == plain(target)


def make_map_equal(doc: Doc, current: Map, target: Map) -> None:
    """Keys removed, changed keys set, texts diffed and maps followed into."""
    wanted = dict(target.items())
    for key in [key for key in current if key not in wanted]:
        del current[key]
    for key, value in wanted.items():
        if key not in current:
            current[key] = copied(value)
            continue
        present = current[key]
        if isinstance(present, Text) and isinstance(value, Text):
            _set_text(doc, present, str(value))
        elif isinstance(present, Map) and isinstance(value, Map):
            make_map_equal(doc, present, value)
        elif not _same(present, value):
            current[key] = copied(value)


def _cell_keys(cells: list[Any], side: str) -> list[Any]:
    """Cell ids to match on; a cell without an id, or repeating one, matches nothing."""
    seen: set[str] = set()
    keys: list[Any] = []
    for index, cell in enumerate(cells):
        cell_id = cell.get("id") if isinstance(cell, dict) else None
        if isinstance(cell_id, str) and cell_id not in seen:
            seen.add(cell_id)
            keys.append(cell_id)
        else:
            keys.append((side, index))
    return keys


def make_cells_equal(doc: Doc, current: Array, target: Array) -> None:
    """The cells of ``target``, in its order, keeping the cells both have where they stay in
    order (the longest common run, found by ``difflib``). Both sides are read once, as JSON in
    one call (``to_py`` costs a transaction per item)."""
    targets = list(target)
    current_py, target_py = json.loads(str(current)), json.loads(str(target))
    matcher = SequenceMatcher(
        None, _cell_keys(current_py, "current"), _cell_keys(target_py, "target"), autojunk=False
    )
    # From the end, so that the indices of what is still to do do not move.
    for tag, i1, i2, j1, j2 in reversed(matcher.get_opcodes()):
        if tag == "equal":
            for offset in range(i2 - i1):
                if current_py[i1 + offset] == target_py[j1 + offset]:
                    continue
                present, wanted = current[i1 + offset], targets[j1 + offset]
                if isinstance(present, Map) and isinstance(wanted, Map):
                    make_map_equal(doc, present, wanted)
                else:
                    del current[i1 + offset]
                    current.insert(i1 + offset, copied(wanted))
            continue
        for index in range(i2 - 1, i1 - 1, -1):
            del current[index]
        for offset, wanted in enumerate(targets[j1:j2]):
            current.insert(i1 + offset, copied(wanted))


def make_content_equal(doc: Doc, target: Doc, document_type: str) -> None:
    """Change ``doc``'s content roots into ``target``'s, in one transaction of ``doc``."""
    roots = CONTENT_ROOTS[document_type]
    with doc.transaction(), target.transaction():
        for name, kind in roots.items():
            current, wanted = doc.get(name, type=kind), target.get(name, type=kind)
            if kind is Text:
                _set_text(doc, current, str(wanted))
            elif kind is Array:
                make_cells_equal(doc, current, wanted)
            else:
                make_map_equal(doc, current, wanted)


def content(doc: Doc, document_type: str) -> dict[str, Any]:
    """The content roots as plain Python (to compare two states)."""
    return {
        name: plain(doc.get(name, type=kind)) for name, kind in CONTENT_ROOTS[document_type].items()
    }
