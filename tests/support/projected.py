"""Notebook projection as tests read it: cells as a client's shared types, and the projected
rows beside the live document, in one comparable shape."""

from __future__ import annotations

from pycrdt import Array, Map, Text

from jupyter_sync import models as jmodels
from tables.loaded import caught_up


def cell(cell_id: str, source: str = "", outputs: tuple[dict, ...] = ()) -> Map:
    return Map(
        {
            "id": cell_id,
            "cell_type": "code",
            "source": Text(source),
            "metadata": Map(),
            "outputs": Array([Map(o) for o in outputs]),
            "execution_count": None,
        }
    )


def rows(datastore) -> list[tuple]:
    """The projected cells in order, with their outputs."""
    result = []
    cells = jmodels.Cell.objects.filter(notebook__datastore=datastore)
    for row in cells.with_index().order_by("position"):
        outputs = [o.content for o in row.outputs.order_by("index")]
        result.append(
            (
                row.index,
                row.cell_id,
                row.cell_type,
                row.source,
                row.execution_count,
                row.metadata,
                outputs,
            )
        )
    return result


def document(datastore) -> list[tuple]:
    """The same, from the server's live document (read as it is: repeated ids and all)."""
    with caught_up(datastore) as loaded:
        cells = loaded.doc.get("cells", type=Array).to_py()
    return [
        (
            index,
            c["id"],
            c["cell_type"],
            c["source"],
            None if c.get("execution_count") is None else int(c["execution_count"]),
            c.get("metadata") or {},
            c.get("outputs") or [],
        )
        for index, c in enumerate(cells)
    ]
