"""Cells ordered by a sparse position instead of a 0-based index.

An index has to be shifted in every row after a cell inserted, moved or deleted; a position with
gaps lets such an edit write only the cells it concerns (``jupyter_sync.positions``). Existing
rows are numbered afresh in their index order, ``2**32`` apart and centred in ``[0, 2**62)`` as
``positions.initial`` numbers them (repeated here: a migration must not change with the code).
Every existing notebook is marked ``repeated_ids``, since its rows cannot tell whether its
document repeats a cell id; its next commit projects it whole, which clears the mark.
"""

import django.db.models.deletion
from django.db import migrations, models

LIMIT = 1 << 62
STEP = 1 << 32


def number_cells(apps, schema_editor):
    Cell = apps.get_model("jupyter_sync", "Cell")
    Notebook = apps.get_model("jupyter_sync", "Notebook")
    Notebook.objects.update(repeated_ids=True)
    for notebook_id in Notebook.objects.values_list("pk", flat=True):
        rows = list(Cell.objects.filter(notebook_id=notebook_id).order_by("index", "pk"))
        step = min(STEP, LIMIT // (len(rows) + 1))
        start = (LIMIT - step * (len(rows) - 1)) // 2
        for i, row in enumerate(rows):
            row.position = start + step * i
        Cell.objects.bulk_update(rows, ["position"], batch_size=500)


def index_cells(apps, schema_editor):
    Cell = apps.get_model("jupyter_sync", "Cell")
    Notebook = apps.get_model("jupyter_sync", "Notebook")
    for notebook_id in Notebook.objects.values_list("pk", flat=True):
        rows = list(Cell.objects.filter(notebook_id=notebook_id).order_by("position", "pk"))
        for i, row in enumerate(rows):
            row.index = i
        Cell.objects.bulk_update(rows, ["index"], batch_size=500)


class Migration(migrations.Migration):
    dependencies = [
        ("jupyter_sync", "0009_cell_position"),
    ]

    operations = [
        migrations.AddField(
            model_name="notebook",
            name="repeated_ids",
            field=models.BooleanField(
                default=False,
                help_text=(
                    "The document repeats a cell id (one row per id: its last cell), so its rows "
                    "cannot follow a change cell by cell: each commit projects the whole notebook."
                ),
            ),
        ),
        migrations.RemoveIndex(model_name="cell", name="cell_position"),
        migrations.AddField(
            model_name="cell",
            name="position",
            field=models.BigIntegerField(
                default=0,
                help_text=(
                    "Sorts the notebook's cells in document order. Sparse: a cell inserted "
                    "between two others takes a number between theirs, so no other row changes "
                    "(see jupyter_sync.projection); the 0-based index is derived "
                    "(CellQuerySet.with_index)."
                ),
            ),
            preserve_default=False,
        ),
        migrations.RunPython(number_cells, index_cells),
        # A default, so that going back can add the column to rows that have it (filled then
        # from the positions).
        migrations.AlterField(
            model_name="cell", name="index", field=models.IntegerField(default=0)
        ),
        migrations.RemoveField(model_name="cell", name="index"),
        migrations.AlterModelOptions(name="cell", options={"ordering": ["notebook", "position"]}),
        migrations.AddIndex(
            model_name="cell",
            index=models.Index(fields=["notebook", "position"], name="cell_order"),
        ),
        migrations.AlterField(
            model_name="cell",
            name="notebook",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="cells",
                to="jupyter_sync.notebook",
            ),
        ),
    ]
