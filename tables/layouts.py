"""Document layouts: notebooks and text files as jupyter_ydoc lays them out.

The roots and cell shapes are those of ``jupyter_ydoc`` (``YNotebook``, ``YUnicode``), which are
also those of ``@jupyter/ydoc`` in the browser, so either side binds to the same structure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jupyter_ydoc import YNotebook, YUnicode
from pycrdt import Array, Doc, Map, Text
from pycrdt._base import BaseType

from tables.schema import Analysis, Schema, changes_from_events, describe_value, register_schema

CELL_TYPES = ("code", "markdown", "raw")
# The touched "record" that stands for a change in the order or number of cells.
STRUCTURE = "*"


def _check_cell(cell: Any, where: str) -> list[str]:
    if not isinstance(cell, Map):
        return [f"{where}: a cell must be a map, got {describe_value(cell)}"]
    errors = []
    cell_type = cell.get("cell_type")
    if cell_type not in CELL_TYPES:
        errors.append(f"{where}.cell_type: must be one of {list(CELL_TYPES)}, got {cell_type!r}")
    cell_id = cell.get("id")
    if cell_id is not None and not isinstance(cell_id, str):
        errors.append(f"{where}.id: expected string, got {describe_value(cell_id)}")
    expected = {"source": Text, "outputs": Array}
    for key, kind in expected.items():
        if key in cell and not isinstance(cell.get(key), kind):
            errors.append(
                f"{where}.{key}: expected a shared {kind.__name__.lower()}, "
                f"got {describe_value(cell.get(key))}"
            )
    count = cell.get("execution_count")
    if count is not None and (
        isinstance(count, bool) or not isinstance(count, (int, float)) or count != int(count)
    ):
        errors.append(f"{where}.execution_count: expected integer or null, got {count!r}")
    return errors


class NotebookSchema(Schema):
    name = "notebook"
    doc = "A Jupyter notebook in the YNotebook layout (cells, meta, state)."

    def root_types(self) -> dict[str, type[BaseType]]:
        return {"cells": Array, "meta": Map, "state": Map}

    def analyze(self, doc: Doc, events: Mapping[str, list[Any]], new_roots: set[str]) -> Analysis:
        analysis = Analysis()
        for root in sorted(new_roots):
            analysis.errors.append(f"unknown root {root!r} in a notebook")
        cells = doc.get("cells", type=Array)
        touched_indices: set[int] = set()
        for root, root_events in events.items():
            for change in changes_from_events(root, root_events):
                analysis.changes.append(change)
                if root != "cells":
                    analysis.touched.add((root, ""))
                elif not change.path:
                    analysis.touched.add(("cells", STRUCTURE))
                    for index, items in change.inserted:
                        touched_indices.update(range(index, index + len(items)))
                else:
                    touched_indices.add(int(change.path[0]))
        length = len(cells)
        for index in sorted(touched_indices):
            if index >= length:
                continue
            cell = cells[index]
            analysis.errors.extend(_check_cell(cell, f"cells[{index}]"))
            cell_id = cell.get("id") if isinstance(cell, Map) else None
            analysis.touched.add(("cells", cell_id if isinstance(cell_id, str) else str(index)))
        return analysis

    def to_python(self, doc: Doc) -> dict[str, Any]:
        # YNotebook attaches an undo manager to the doc it wraps: give it a throwaway copy.
        return YNotebook(_copy(doc)).get()


class FileSchema(Schema):
    name = "file"
    doc = "A text file in the YUnicode layout (source, state)."

    def root_types(self) -> dict[str, type[BaseType]]:
        return {"source": Text, "state": Map}

    def analyze(self, doc: Doc, events: Mapping[str, list[Any]], new_roots: set[str]) -> Analysis:
        analysis = Analysis()
        for root in sorted(new_roots):
            analysis.errors.append(f"unknown root {root!r} in a file")
        for root, root_events in events.items():
            analysis.changes.extend(changes_from_events(root, root_events))
            analysis.touched.add((root, ""))
        return analysis

    def to_python(self, doc: Doc) -> dict[str, Any]:
        copy = _copy(doc)
        return {"source": YUnicode(copy).get(), "state": copy.get("state", type=Map).to_py()}


def _copy(doc: Doc) -> Doc:
    copy = Doc()
    copy.apply_update(doc.get_update())
    return copy


NOTEBOOK = register_schema(NotebookSchema())
FILE = register_schema(FileSchema())
