"""Migration 0010 turns each cell's index into a sparse position in the same order, and back."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from pycrdt import Array

from jupyter_sync import models as jmodels
from tables import service
from tests.support.factories import Client
from tests.support.projected import cell, document, rows

BEFORE = ("jupyter_sync", "0009_cell_position")
AFTER = ("jupyter_sync", "0010_cell_sparse_position")


def migrate(target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([target])


@pytest.mark.django_db(transaction=True)
def test_indices_become_positions_in_the_same_order_and_back():
    datastore = service.create_datastore("migrated", "notebook")
    client = Client(datastore)
    # Rows created out of document order, so that the primary keys do not give the order.
    client.send(lambda d: d.get("cells", type=Array).extend([cell("b"), cell("c")]))
    client.send(lambda d: d.get("cells", type=Array).insert(0, cell("a")))
    client.send(lambda d: d.get("cells", type=Array).insert(2, cell("m")))
    try:
        migrate(BEFORE)
        old = MigrationExecutor(connection).loader.project_state([BEFORE]).apps
        Cell = old.get_model("jupyter_sync", "Cell")
        assert list(Cell.objects.order_by("index").values_list("cell_id", "index")) == [
            ("a", 0),
            ("b", 1),
            ("m", 2),
            ("c", 3),
        ]
        migrate(AFTER)
    finally:
        migrate(("jupyter_sync", "0010_cell_sparse_position"))
    assert [r[1] for r in rows(datastore)] == ["a", "b", "m", "c"]
    notebook = jmodels.Notebook.objects.get(datastore=datastore)
    assert notebook.repeated_ids  # not known from the rows: the next commit projects it whole
    client.send(lambda d: d.get("cells", type=Array)[1]["source"].insert(0, "y"))
    assert not jmodels.Notebook.objects.get(datastore=datastore).repeated_ids
    assert rows(datastore) == document(datastore)
