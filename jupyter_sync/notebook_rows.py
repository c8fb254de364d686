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
from collections.abc import Iterable
from typing import Any

from django.db import connection
from pycrdt import Array

from jupyter_sync import positions
from jupyter_sync.models import Cell, Notebook, Output
from tables.read_sql import fetch_values
from tables.schema import jsonable
from tables.write_sql import columns


def read_cells(cells: Array) -> list[Any]:
    """The cells as plain JSON values, in one read of the document (numbers as ``jsonable``
    reads a document's: Yjs keeps doubles, and a whole one is an ``int``)."""
    return json.loads(str(cells), parse_float=lambda text: jsonable(float(text)))


COLUMNS = ("cell_type", "source", "execution_count", "metadata")


def cell_columns(cell: Any, names: Iterable[str] = COLUMNS) -> dict[str, Any]:
    """A cell's ``Cell`` columns ``names`` (by default all but its id and position), from its
    shared ``Map`` or from the plain JSON of it (``read_cells``): each read only if asked for
    (a cell's source or metadata read from the document costs what it holds)."""
    values: dict[str, Any] = {}
    for name in names:
        if name == "cell_type":
            values[name] = str(cell.get("cell_type") or "")
        elif name == "source":
            source = cell.get("source")
            values[name] = str(source) if source is not None else ""
        elif name == "execution_count":
            count = cell.get("execution_count")
            values[name] = int(count) if isinstance(count, (int, float)) else None
        elif name == "metadata":
            metadata = jsonable(cell.get("metadata")) or {}
            values[name] = metadata if isinstance(metadata, dict) else {}
    return values


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


def find_notebook(datastore_pk: int) -> Notebook | None:
    """The datastore's ``Notebook`` row (its id and ``repeated_ids`` loaded, the rest deferred:
    its metadata may be large), in one statement of ``tables.read_sql``: every commit of a
    notebook looks it up, and the ORM's query building cost several times the lookup."""
    found = fetch_values(Notebook, ("id", "repeated_ids"), datastore=datastore_pk)
    if not found:
        return None
    pk, repeated = found[0]  # one at most: a datastore has one notebook row
    return Notebook.from_db(
        connection.alias, ["id", "datastore_id", "repeated_ids"], (pk, datastore_pk, repeated)
    )


def update_cell(
    notebook_pk: int, cell_id: str, values: dict[str, Any], outputs: list[dict[str, Any]] | None
) -> bool:
    """Set a cell row's columns ``values`` and, given ``outputs``, replace its output rows, in
    SQL made from the models (an edit's projection, per commit); False when the notebook has no
    row for ``cell_id`` (the rows and the document disagree)."""
    quote = connection.ops.quote_name
    cell_table, output_table = quote(Cell._meta.db_table), quote(Output._meta.db_table)
    match = f"{columns(Cell, ('notebook',))} = %s AND {columns(Cell, ('cell_id',))} = %s"
    names = tuple(values)
    prepared = [
        Cell._meta.get_field(name).get_db_prep_save(value, connection)
        for name, value in values.items()
    ]
    sets = ", ".join(f"{columns(Cell, (name,))} = %s" for name in names)
    with connection.cursor() as cursor:
        if outputs is None:
            if not names:
                return True
            cursor.execute(
                f"UPDATE {cell_table} SET {sets} WHERE {match}", [*prepared, notebook_pk, cell_id]
            )
            return cursor.rowcount == 1
        cursor.execute(
            f"SELECT {columns(Cell, ('id',))} FROM {cell_table} WHERE {match}",
            [notebook_pk, cell_id],
        )
        found = cursor.fetchone()
        if found is None:
            return False
        (pk,) = found
        if names:
            cursor.execute(
                f"UPDATE {cell_table} SET {sets} WHERE {columns(Cell, ('id',))} = %s",
                [*prepared, pk],
            )
        cursor.execute(f"DELETE FROM {output_table} WHERE {columns(Output, ('cell',))} = %s", [pk])
        if outputs:
            content_field = Output._meta.get_field("content")
            cursor.executemany(
                f"INSERT INTO {output_table} ({columns(Output, OUTPUT_FIELDS)}) "
                f"VALUES ({', '.join(['%s'] * len(OUTPUT_FIELDS))})",
                [
                    (
                        pk,
                        index,
                        str(output.get("output_type", "")),
                        content_field.get_db_prep_save(output, connection),
                    )
                    for index, output in enumerate(outputs)
                ],
            )
    return True
