"""A notebook's ``Cell`` and ``Output`` rows written whole, in a few statements.

The first write of a notebook (its open: every cell new) projects every cell. Done cell by cell
through pycrdt and the ORM, that was most of the projection's cost for a 1,000-cell notebook:
a pycrdt call per key of every cell, and Django building a 1,000-row INSERT. Here the cells are
read as one JSON text (one call into the CRDT) and written with ``executemany``, the outputs
after them, their cells' keys read back in one query.

For a notebook that has no rows yet (``NotebookProjector`` when it has just made the
``Notebook`` row, or rebuilds it): the rows are the ones ``NotebookProjector._sync_all`` writes
for the same document (``tests/integration/test_notebook_rows.py`` compares them), on both
databases.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import connection
from pycrdt import Array

from jupyter_sync import positions
from jupyter_sync.models import Cell, Notebook, Output
from tables.schema import jsonable
from tables.write_sql import columns


def read_cells(cells: Array) -> list[Any]:
    """The cells as plain JSON values, in one read of the document (numbers as ``jsonable``
    reads a document's: Yjs keeps doubles, and a whole one is an ``int``)."""
    return json.loads(str(cells), parse_float=lambda text: jsonable(float(text)))


def cell_columns(cell: Any) -> dict[str, Any]:
    """A cell's ``Cell`` columns but its id and position, from its shared ``Map`` or from the
    plain JSON of it (``read_cells``)."""
    source = cell.get("source")
    count = cell.get("execution_count")
    metadata = jsonable(cell.get("metadata")) or {}
    return {
        "cell_type": str(cell.get("cell_type") or ""),
        "source": str(source) if source is not None else "",
        "execution_count": int(count) if isinstance(count, (int, float)) else None,
        "metadata": metadata if isinstance(metadata, dict) else {},
    }


CELL_FIELDS = (
    "notebook",
    "cell_id",
    "position",
    "cell_type",
    "source",
    "execution_count",
    "metadata",
)
OUTPUT_FIELDS = ("cell", "index", "output_type", "content")


def insert_all(notebook: Notebook, cells: Array) -> int:
    """Rows for every cell that has an id (a repeated id: its last cell wins, and the notebook
    is marked ``repeated_ids``, as ``NotebookProjector._sync_all`` does) and its outputs, in a
    notebook that has none, numbered afresh (``positions.initial``); returns the number of cells
    written."""
    found: dict[str, tuple[int, dict[str, Any]]] = {}
    with_ids = 0
    for index, cell in enumerate(read_cells(cells)):
        cell_id = cell.get("id") if isinstance(cell, dict) else None
        if isinstance(cell_id, str):
            with_ids += 1
            found[cell_id] = (index, cell)
    repeated = len(found) < with_ids
    if repeated != notebook.repeated_ids:
        notebook.repeated_ids = repeated
        notebook.save(update_fields=["repeated_ids"])
    if not found:
        return 0
    # In document order of each id's last cell (a dict keeps the order of first insertion).
    ordered = sorted(found.values(), key=lambda entry: entry[0])
    wanted = [
        (label, cell)
        for label, (_, cell) in zip(positions.initial(len(ordered)), ordered, strict=True)
    ]
    quote = connection.ops.quote_name
    metadata_field = Cell._meta.get_field("metadata")
    content_field = Output._meta.get_field("content")
    rows = []
    outputs: dict[str, list[dict[str, Any]]] = {}
    for label, cell in wanted:
        values = cell_columns(cell)
        rows.append(
            (
                notebook.pk,
                cell["id"],
                label,
                values["cell_type"],
                values["source"],
                values["execution_count"],
                metadata_field.get_db_prep_save(values["metadata"], connection),
            )
        )
        found = cell.get("outputs")
        if isinstance(found, list) and found:
            kept = [output for output in found if isinstance(output, dict)]
            if kept:
                outputs[cell["id"]] = kept
    cell_table, output_table = quote(Cell._meta.db_table), quote(Output._meta.db_table)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {cell_table} ({columns(Cell, CELL_FIELDS)}) "
            f"VALUES ({', '.join(['%s'] * len(CELL_FIELDS))})",
            rows,
        )
        if outputs:
            cursor.execute(
                f"SELECT {columns(Cell, ('cell_id', 'id'))} FROM {cell_table} "
                f"WHERE {columns(Cell, ('notebook',))} = %s",
                [notebook.pk],
            )
            keys = dict(cursor.fetchall())
            cursor.executemany(
                f"INSERT INTO {output_table} ({columns(Output, OUTPUT_FIELDS)}) "
                f"VALUES ({', '.join(['%s'] * len(OUTPUT_FIELDS))})",
                [
                    (
                        keys[cell_id],
                        position,
                        str(output.get("output_type", "")),
                        content_field.get_db_prep_save(output, connection),
                    )
                    for cell_id, found in outputs.items()
                    for position, output in enumerate(found)
                ],
            )
    return len(rows)
