"""``jupyter_sync.notebook_rows.insert_all`` writes the rows the projection writes for the same
document: what a notebook's first write could use instead of projecting cell by cell."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from jupyter_ydoc import YNotebook
from pycrdt import Array, Doc

from jupyter_sync import models as jmodels
from jupyter_sync.notebook_rows import insert_all
from jupyter_sync.projection import NotebookProjector
from tables import service
from tables.loaded import caught_up
from tables.service import Proposal, Status
from tests.support.projected import rows as projected_rows

pytestmark = pytest.mark.django_db(transaction=True)

CONTENT: dict[str, Any] = {
    "cells": [
        {
            "id": "a",
            "cell_type": "code",
            "execution_count": 3,
            "metadata": {"tags": ["x"], "collapsed": False, "scale": 1.5, "n": 2},
            "outputs": [
                {"output_type": "stream", "name": "stdout", "text": "one\ntwo\n"},
                {
                    "output_type": "execute_result",
                    "execution_count": 3,
                    "data": {"text/plain": "4", "image/png": "aGk="},
                    "metadata": {"width": 640},
                },
                {"output_type": "error", "ename": "E", "evalue": "v", "traceback": ["t"]},
            ],
            "source": ["print('one')\n", "print('two')"],
        },
        {"id": "b", "cell_type": "markdown", "metadata": {}, "source": "# Title ü €"},
        {"id": "c", "cell_type": "raw", "metadata": {"format": "text/x"}, "source": ""},
        {
            "id": "d",
            "cell_type": "code",
            "execution_count": None,
            "metadata": {},
            "outputs": [],
            "source": "x = 1",
        },
        {  # the same id again: its last cell wins, as in the projection
            "id": "a",
            "cell_type": "code",
            "execution_count": 9,
            "metadata": {},
            "outputs": [],
            "source": "again",
        },
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def rows(datastore) -> list[tuple]:
    """The projected cells in order (``tests.support.projected.rows``), each with its stored
    position: a first write's rows are numbered as the projector numbers them."""
    positions = jmodels.Cell.objects.filter(notebook__datastore=datastore).order_by("position")
    return list(
        zip(positions.values_list("position", flat=True), projected_rows(datastore), strict=True)
    )


def opened(name: str, content: dict[str, Any]):
    """A notebook datastore whose first write is ``content`` (projected by ``insert_all``, as
    the write path projects a notebook's first write)."""
    datastore = service.create_datastore(name, "notebook")
    doc = Doc()
    YNotebook(doc).set(content)
    outcome = service.write_one(datastore, Proposal(doc.get_update()))
    assert outcome.status is Status.STORED, outcome
    return datastore


def projected_whole(datastore) -> list[tuple]:
    """The rows the projector's general path (``_sync_all``) writes for the same document, from
    scratch: what ``insert_all`` must equal."""
    notebook = jmodels.Notebook.objects.get(datastore=datastore)
    jmodels.Cell.objects.filter(notebook=notebook).delete()
    with caught_up(datastore) as loaded:
        NotebookProjector()._sync_all(notebook, loaded.doc.get("cells", type=Array))
    return rows(datastore)


def test_the_rows_equal_the_projections_for_the_same_document():
    datastore = opened("rows", CONTENT)
    written = rows(datastore)
    assert [cell[1] for _, cell in written] == ["b", "c", "d", "a"]  # "a" at its last place
    assert len(written[-1][1][6]) == 0 and written[0][1][2] == "markdown"
    assert [row[0] for row in written] == sorted(row[0] for row in written)
    # A repeated id: the notebook is projected whole until it has none, as _sync_all marks it.
    assert jmodels.Notebook.objects.get(datastore=datastore).repeated_ids

    assert projected_whole(datastore) == written

    notebook = jmodels.Notebook.objects.get(datastore=datastore)
    jmodels.Cell.objects.filter(notebook=notebook).delete()
    with caught_up(datastore) as loaded:
        assert insert_all(notebook, loaded.doc.get("cells", type=Array)) == 4
    assert rows(datastore) == written


def test_outputs_are_written_under_their_cells_in_a_few_statements():
    content = {
        **CONTENT,
        "cells": [
            {
                "id": f"c{i}",
                "cell_type": "code",
                "execution_count": i,
                "metadata": {},
                "outputs": [
                    {"output_type": "stream", "name": "stdout", "text": f"{i}\n"},
                    {"output_type": "display_data", "data": {"text/plain": str(i)}, "metadata": {}},
                ],
                "source": f"print({i})",
            }
            for i in range(300)
        ],
    }
    datastore = opened("many", content)
    assert not jmodels.Notebook.objects.get(datastore=datastore).repeated_ids
    projected = projected_whole(datastore)
    notebook = jmodels.Notebook.objects.get(datastore=datastore)
    jmodels.Cell.objects.filter(notebook=notebook).delete()
    with caught_up(datastore) as loaded, CaptureQueriesContext(connection) as queries:
        insert_all(notebook, loaded.doc.get("cells", type=Array))
    assert rows(datastore) == projected
    assert len(projected) == 300 and all(len(cell[6]) == 2 for _, cell in projected)
    # The cells, their keys read back, the outputs: statements per table, not per row. (An
    # executemany is captured as one query.)
    assert len(queries.captured_queries) == 3, queries.captured_queries
