"""Projection of notebook documents onto Notebook, Cell and Output rows."""

from __future__ import annotations

from typing import Any

from pycrdt import Array, Doc, Map

from jupyter_sync.models import Cell, Notebook, Output
from tables.layouts import STRUCTURE
from tables.models import Datastore
from tables.projection import Projector
from tables.schema import jsonable


def _cell_values(cell: Map, index: int) -> dict[str, Any]:
    source = cell.get("source")
    count = cell.get("execution_count")
    metadata = jsonable(cell.get("metadata")) or {}
    return {
        "index": index,
        "cell_type": str(cell.get("cell_type") or ""),
        "source": str(source) if source is not None else "",
        "execution_count": int(count) if isinstance(count, (int, float)) else None,
        "metadata": metadata if isinstance(metadata, dict) else {},
    }


def _outputs(cell: Map) -> list[dict[str, Any]]:
    outputs = cell.get("outputs")
    if not isinstance(outputs, Array):
        return []
    return [o for o in (jsonable(item) for item in outputs) if isinstance(o, dict)]


class NotebookProjector(Projector):
    def project(self, datastore: Datastore, doc: Doc, touched: set[tuple[str, str]]) -> None:
        notebook = self._notebook(datastore, doc, refresh_meta=("meta", "") in touched)
        cells = doc.get("cells", type=Array)
        wanted = {cell_id for table, cell_id in touched if table == "cells"}
        if STRUCTURE in wanted:
            self._sync_all(notebook, cells)
            return
        for index, cell in enumerate(cells):
            if isinstance(cell, Map) and cell.get("id") in wanted:
                self._sync_cell(notebook, cell, index)

    def rebuild(self, datastore: Datastore, doc: Doc) -> None:
        Notebook.objects.filter(datastore=datastore).delete()
        notebook = self._notebook(datastore, doc, refresh_meta=True)
        self._sync_all(notebook, doc.get("cells", type=Array))

    def _notebook(self, datastore: Datastore, doc: Doc, *, refresh_meta: bool) -> Notebook:
        notebook, created = Notebook.objects.get_or_create(datastore=datastore)
        if created or refresh_meta:
            meta = jsonable(doc.get("meta", type=Map)) or {}
            metadata = meta.get("metadata")
            notebook.nbformat = meta.get("nbformat")
            notebook.nbformat_minor = meta.get("nbformat_minor")
            notebook.metadata = metadata if isinstance(metadata, dict) else {}
            notebook.save()
        return notebook

    def _sync_all(self, notebook: Notebook, cells: Array) -> None:
        seen = []
        for index, cell in enumerate(cells):
            if isinstance(cell, Map) and isinstance(cell.get("id"), str):
                self._sync_cell(notebook, cell, index)
                seen.append(cell.get("id"))
        notebook.cells.exclude(cell_id__in=seen).delete()

    def _sync_cell(self, notebook: Notebook, cell: Map, index: int) -> None:
        row, _ = Cell.objects.update_or_create(
            notebook=notebook, cell_id=cell.get("id"), defaults=_cell_values(cell, index)
        )
        row.outputs.all().delete()
        Output.objects.bulk_create(
            Output(cell=row, index=i, output_type=str(o.get("output_type", "")), content=o)
            for i, o in enumerate(_outputs(cell))
        )
