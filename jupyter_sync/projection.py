"""Projection of notebook documents onto Notebook, Cell and Output rows.

A commit costs what it changed, not the notebook's size. Rows are ordered by a sparse
``Cell.position`` (``jupyter_sync.positions``), so a structural change writes only the cells it
concerns: the list changes of the ``cells`` array (its Yjs deltas) say which positions were
deleted and inserted; cells that stay keep their rows and positions untouched (a list CRDT never
reorders the items it keeps; JupyterLab moves a cell by deleting it and inserting a copy). A
deletion is one DELETE of the rows between the two kept cells around it, found by their ids; an
inserted cell takes a position between its neighbours'; an edit inside a cell updates that
cell's row, found by id, and its outputs only when they changed. Only when the rows and the
document cannot be matched that way (a new notebook row, a cell id changed or repeated, a row
missing) is the whole notebook projected again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q
from pycrdt import Array, Doc, Map

from jupyter_sync import positions
from jupyter_sync.models import Cell, Notebook, Output
from jupyter_sync.notebook_rows import (
    COLUMNS,
    cell_columns,
    find_notebook,
    insert_all,
    update_cell,
)
from tables.models import Datastore
from tables.projection import Projector
from tables.schema import Change, jsonable

# The Cell columns a key of a cell map maps onto (COLUMNS; the rest of a cell is not projected).
_ALL = frozenset((*COLUMNS, "outputs"))


def _outputs(cell: Map) -> list[dict[str, Any]]:
    outputs = cell.get("outputs")
    if not isinstance(outputs, Array):
        return []
    return [o for o in (jsonable(item) for item in outputs) if isinstance(o, dict)]


def _output_rows(row: Cell, cell: Map) -> list[Output]:
    return _rows_of(row, _outputs(cell))


def _rows_of(row: Cell, outputs: list[dict[str, Any]]) -> list[Output]:
    return [
        Output(cell=row, index=i, output_type=str(o.get("output_type", "")), content=o)
        for i, o in enumerate(outputs)
    ]


class Unmatched(Exception):
    """The rows cannot follow the change incrementally: project the whole notebook."""


@dataclass
class Reshape:
    """A list change of ``cells`` in positions before it (old) and after it (new)."""

    kept: list[tuple[int, int, int]] = field(default_factory=list)  # old start, old end, shift
    deleted: list[tuple[int, int]] = field(default_factory=list)  # old start, old end
    inserted: list[int] = field(default_factory=list)  # new positions
    gaps: list[int] = field(default_factory=list)  # new position of the cell before a deletion
    tail: tuple[int, int] = (0, 0)  # old positions from here on shift by this much

    @classmethod
    def of(cls, change: Change) -> Reshape:
        """Replay the delta: deletions and insertions in document order (a deletion at the same
        position as an insertion came first, since an insertion moves the position on)."""
        ops = sorted(
            [(index, 0, count) for index, count in change.deleted]
            + [(index, 1, len(items)) for index, items in change.inserted]
        )
        reshape = cls()
        old = new = 0
        for index, is_insert, count in ops:
            if index > new:
                reshape.kept.append((old, old + index - new, new - old))
                old, new = old + index - new, index
            if is_insert:
                reshape.inserted.extend(range(new, new + count))
                new += count
            else:
                reshape.deleted.append((old, old + count))
                reshape.gaps.append(new - 1)
                old += count
        reshape.tail = (old, new - old)
        return reshape

    def position(self, old: int) -> int | None:
        """Where a cell at ``old`` is after the change (None: deleted; -1, the start, stays)."""
        if old < 0:
            return old
        if old >= self.tail[0]:
            return old + self.tail[1]
        for start, end in self.deleted:
            if start <= old < end:
                return None
        for start, end, shift in self.kept:
            if start <= old < end:
                return old + shift
        return old


@dataclass
class Pending:
    """What a batch changed, by positions in the document as it is after each transaction."""

    columns: dict[int, set[str]] = field(default_factory=dict)
    new: set[int] = field(default_factory=set)  # positions of cells inserted in the batch
    # Positions of cells followed by a deletion (-1: the start). The rows deleted in the batch
    # are those between the kept cells around these places; a marked cell deleted later needs
    # no mark, since its deletion marks a place before it with no kept cell in between.
    gaps: set[int] = field(default_factory=set)

    def reshape(self, reshape: Reshape) -> None:
        columns: dict[int, set[str]] = {}
        for old, names in self.columns.items():
            moved = reshape.position(old)
            if moved is not None:
                columns.setdefault(moved, set()).update(names)
        new = {moved for old in self.new if (moved := reshape.position(old)) is not None}
        gaps = {moved for old in self.gaps if (moved := reshape.position(old)) is not None}
        self.columns, self.new, self.gaps = columns, new, gaps | set(reshape.gaps)
        for index in reshape.inserted:
            self.columns[index] = set(_ALL)
            self.new.add(index)

    def touch(self, change: Change) -> None:
        index = change.path[0]
        if not isinstance(index, int):
            raise Unmatched(f"a cell change at {change.path!r}")
        name = change.path[1] if len(change.path) > 1 else change.key
        if name == "id":
            raise Unmatched("a cell's id changed")
        if name in _ALL:
            self.columns.setdefault(index, set()).add(str(name))


class _Cells:
    """The document's cells as the batch left them, read lazily (one cell's id costs a read)."""

    def __init__(self, cells: Array, new: set[int]):
        self.cells = cells
        self.length = len(cells)
        self.new = new
        self._ids: dict[int, str | None] = {}

    def id(self, index: int) -> str | None:
        if index not in self._ids:
            cell = self.cells[index]
            cell_id = cell.get("id") if isinstance(cell, Map) else None
            self._ids[index] = cell_id if isinstance(cell_id, str) else None
        return self._ids[index]

    def kept_before(self, index: int) -> int | None:
        """The nearest kept cell with an id (so with a row) at ``index`` or before it."""
        while index >= 0 and (index in self.new or self.id(index) is None):
            index -= 1
        return index if index >= 0 else None

    def kept_after(self, index: int) -> int | None:
        """The nearest kept cell with an id at ``index`` or after it."""
        while index < self.length and (index in self.new or self.id(index) is None):
            index += 1
        return index if index < self.length else None

    def row_before(self, index: int) -> int | None:
        """The nearest cell with an id before ``index``, kept or inserted (inserted cells are
        created left to right, so one before ``index`` already has its row)."""
        index -= 1
        while index >= 0 and self.id(index) is None:
            index -= 1
        return index if index >= 0 else None


def _runs(indices: set[int]) -> list[list[int]]:
    """Consecutive runs of ``indices``, in order."""
    runs: list[list[int]] = []
    for index in sorted(indices):
        if runs and runs[-1][-1] == index - 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs


class NotebookProjector(Projector):
    """Keeps a notebook datastore's Notebook, Cell and Output rows equal to its document."""

    def project(
        self,
        datastore: Datastore,
        doc: Doc,
        touched: set[tuple[str, str]],
        changes: Sequence[Sequence[Change]] | None = None,
    ) -> None:
        notebook, created = self._notebook(datastore, doc, refresh_meta=("meta", "") in touched)
        cells = doc.get("cells", type=Array)
        if created:
            insert_all(notebook, cells)
            return
        if changes is None or notebook.repeated_ids:
            self._sync_all(notebook, cells)
            return
        try:
            self._project_changes(notebook, cells, changes)
        except Unmatched:
            self._sync_all(notebook, cells)

    def rebuild(self, datastore: Datastore, doc: Doc) -> None:
        Notebook.objects.filter(datastore=datastore).delete()
        notebook, _ = self._notebook(datastore, doc, refresh_meta=True)
        insert_all(notebook, doc.get("cells", type=Array))

    def _notebook(
        self, datastore: Datastore, doc: Doc, *, refresh_meta: bool
    ) -> tuple[Notebook, bool]:
        found = None if refresh_meta else find_notebook(datastore.pk)
        if found is not None:
            return found, False
        notebook, created = Notebook.objects.get_or_create(datastore=datastore)
        if created or refresh_meta:
            meta = jsonable(doc.get("meta", type=Map)) or {}
            metadata = meta.get("metadata")
            notebook.nbformat = meta.get("nbformat")
            notebook.nbformat_minor = meta.get("nbformat_minor")
            notebook.metadata = metadata if isinstance(metadata, dict) else {}
            notebook.save()
        return notebook, created

    def _project_changes(
        self, notebook: Notebook, cells: Array, changes: Sequence[Sequence[Change]]
    ) -> None:
        """Follow each transaction's changes in commit order to where the batch left each
        inserted, edited or deleted cell; then write those rows, from the document as it is."""
        pending = Pending()
        for transaction_changes in changes:
            # A transaction's paths are positions after it, so its structural change goes first.
            for change in transaction_changes:
                if change.root == "cells" and not change.path and change.kind == "list":
                    pending.reshape(Reshape.of(change))
            for change in transaction_changes:
                if change.root == "cells" and change.path:
                    pending.touch(change)
        self._project_pending(notebook, _Cells(cells, pending.new), pending)

    def _project_pending(self, notebook: Notebook, cells: _Cells, pending: Pending) -> None:
        if any(index >= cells.length for index in pending.columns):
            raise Unmatched("a change past the end")
        gaps = [(cells.kept_before(g), cells.kept_after(g + 1)) for g in sorted(pending.gaps)]
        runs = [
            run for run in _runs(pending.new) if any(cells.id(index) for index in run)
        ]  # a run of cells without ids has no rows
        inserted = [cell_id for run in runs for index in run if (cell_id := cells.id(index))]
        if len(set(inserted)) < len(inserted):
            raise Unmatched("an inserted cell's id is repeated")
        neighbours = {i for pair in gaps for i in pair if i is not None}
        for run in runs:
            neighbours.update(
                i
                for i in (cells.row_before(run[0]), cells.kept_after(run[-1] + 1))
                if i is not None and i not in cells.new
            )
        wanted = {cells.id(i) for i in neighbours} | set(inserted)
        found: dict[str, tuple[int, int]] = {}  # cell id: pk, position
        if wanted:
            found = {
                cell_id: (pk, position)
                # Unordered: ordered by position, SQLite would walk the notebook's rows in
                # position order rather than look the ids up in (notebook, cell_id).
                for cell_id, pk, position in Cell.objects.filter(
                    notebook=notebook, cell_id__in=wanted
                )
                .order_by()
                .values_list("cell_id", "pk", "position")
            }
        if any(cells.id(i) not in found for i in neighbours):
            raise Unmatched("a kept cell has no row")

        def position(index: int | None) -> int | None:
            return None if index is None else found[cells.id(index)][1]  # type: ignore[index]

        ranges = [(position(left), position(right)) for left, right in gaps]
        for cell_id in inserted:
            # A row with an inserted cell's id must be one this batch deleted (a move).
            if cell_id in found and not any(
                (low is None or low < found[cell_id][1])
                and (high is None or found[cell_id][1] < high)
                for low, high in ranges
            ):
                raise Unmatched("an inserted cell's id is already in the notebook")
        if ranges:
            gone = Q()
            for low, high in ranges:
                gone |= Q(
                    *([] if low is None else [Q(position__gt=low)]),
                    *([] if high is None else [Q(position__lt=high)]),
                )
            Cell.objects.filter(notebook=notebook).filter(gone).delete()
        for cell_id in inserted:
            found.pop(cell_id, None)  # deleted just now
        for index in sorted(pending.columns):
            if index not in cells.new and (cell_id := cells.id(index)) is not None:
                self._update_cell(notebook, cells.cells[index], cell_id, pending.columns[index])
        if runs:
            self._insert(notebook, cells, runs, found)

    def _insert(
        self,
        notebook: Notebook,
        cells: _Cells,
        runs: list[list[int]],
        found: dict[str, tuple[int, int]],
    ) -> None:
        """Create the rows of inserted cells, each run between its neighbours' positions
        (renumbering a neighbourhood where they have no room left)."""
        created: list[tuple[Cell, Map]] = []

        def flush() -> None:
            if not created:
                return
            Cell.objects.bulk_create([row for row, _ in created])
            for row, _ in created:
                found[row.cell_id] = (row.pk, row.position)
            outputs = [output for row, cell in created for output in _output_rows(row, cell)]
            if outputs:
                Output.objects.bulk_create(outputs)
            created.clear()

        unsaved: dict[str, Cell] = {}  # rows of this call not created yet, by id

        def at(cell_id: str | None) -> int | None:
            if cell_id is None:
                return None
            row = unsaved.get(cell_id)
            return row.position if row is not None else found[cell_id][1]

        for run in runs:
            members = [(index, cell_id) for index in run if (cell_id := cells.id(index))]
            left = cells.row_before(run[0])
            right = cells.kept_after(run[-1] + 1)
            left_id = None if left is None else cells.id(left)
            right_id = None if right is None else cells.id(right)
            labels = positions.between(len(members), at(left_id), at(right_id))
            if labels is None:
                flush()  # renumbering must see every row
                unsaved.clear()
                labels = self._renumber(notebook, found, at(left_id), at(right_id), len(members))
            for (index, cell_id), label in zip(members, labels, strict=True):
                cell = cells.cells[index]
                row = Cell(notebook=notebook, cell_id=cell_id, position=label, **cell_columns(cell))
                created.append((row, cell))
                unsaved[cell_id] = row
        flush()

    def _renumber(
        self,
        notebook: Notebook,
        found: dict[str, tuple[int, int]],
        left: int | None,
        right: int | None,
        count: int,
    ) -> list[int]:
        """Spread the cells of the smallest sparse enough range around the place (see
        ``jupyter_sync.positions``), leaving room for ``count`` cells after ``left`` (or before
        ``right``); write the moved rows and return the new cells' positions."""
        anchor, after = (left, True) if left is not None else (right, False)
        if anchor is None:  # no neighbours: an empty notebook always has room
            raise Unmatched("no room in an empty notebook")
        level = positions.first_level(count)
        while level <= positions.BITS:
            top = min(level + 8, positions.BITS)
            low = anchor >> top << top
            rows = list(
                Cell.objects.filter(
                    notebook=notebook, position__gte=low, position__lt=low + (1 << top)
                )
                .order_by("position")
                .values_list("pk", "position")
            )
            held = [position for _, position in rows]
            fitting = next(
                (n for n in range(level, top + 1) if positions.fits(held, anchor, n, count)), None
            )
            if fitting is None:
                level = top + 1
                continue
            level = fitting
            start = anchor >> level << level
            inside = [(pk, p) for pk, p in rows if start <= p < start + (1 << level)]
            moved, labels = positions.renumbered(
                [p for _, p in inside], anchor, level, count, after=after
            )
            changed = [
                Cell(pk=pk, position=new)
                for (pk, old), new in zip(inside, moved, strict=True)
                if new != old
            ]
            Cell.objects.bulk_update(changed, ["position"], batch_size=500)
            renamed = {row.pk: row.position for row in changed}
            for cell_id, (pk, position) in found.items():
                found[cell_id] = (pk, renamed.get(pk, position))
            return labels
        raise Unmatched("no sparse enough range of positions")

    def _update_cell(self, notebook: Notebook, cell: Map, cell_id: str, names: set[str]) -> None:
        """The changed columns, matched by id (no match: the rows and the document disagree);
        the outputs rewritten only when they changed."""
        values = cell_columns(cell, [name for name in COLUMNS if name in names])
        outputs = _outputs(cell) if "outputs" in names else None
        if not update_cell(notebook.pk, cell_id, values, outputs):
            raise Unmatched(f"no row for cell {cell_id!r}")

    def _sync_all(self, notebook: Notebook, cells: Array) -> None:
        """The whole notebook again, in a few statements: rows of cells no longer there deleted,
        changed rows updated in bulk, new ones created, positions numbered afresh (a repeated
        id: its last cell wins, and the notebook is marked to be projected whole until it has
        none)."""
        # Read in one transaction of the document's: each read outside one opens and commits
        # its own (a 1,000-cell notebook's reads are tens of thousands of them).
        found: dict[str, tuple[int, dict[str, Any], list[dict[str, Any]]]] = {}
        with_ids = 0
        with cells.doc.transaction():
            for index, cell in enumerate(cells):
                cell_id = cell.get("id") if isinstance(cell, Map) else None
                if isinstance(cell_id, str):
                    with_ids += 1
                    found[cell_id] = (index, cell_columns(cell), _outputs(cell))
        repeated = len(found) < with_ids
        if repeated != notebook.repeated_ids:
            notebook.repeated_ids = repeated
            notebook.save(update_fields=["repeated_ids"])
        order = sorted(found, key=lambda cell_id: found[cell_id][0])
        wanted = {
            cell_id: ({"position": label, **found[cell_id][1]}, found[cell_id][2])
            for cell_id, label in zip(order, positions.initial(len(order)), strict=True)
        }
        Cell.objects.filter(notebook=notebook).exclude(cell_id__in=list(wanted)).delete()
        existing = {row.cell_id: row for row in Cell.objects.filter(notebook=notebook)}
        created: list[Cell] = []
        updated: list[Cell] = []
        for cell_id, (values, _) in wanted.items():
            row = existing.get(cell_id)
            if row is None:
                created.append(Cell(notebook=notebook, cell_id=cell_id, **values))
                continue
            if any(getattr(row, name) != value for name, value in values.items()):
                for name, value in values.items():
                    setattr(row, name, value)
                updated.append(row)
        if updated:
            Cell.objects.bulk_update(updated, ["position", *COLUMNS], batch_size=500)
        if created:
            Cell.objects.bulk_create(created)
        rows = {**existing, **{row.cell_id: row for row in created}}
        Output.objects.filter(cell__notebook=notebook).delete()
        outputs = [
            output
            for cell_id, (_, cell_outputs) in wanted.items()
            for output in _rows_of(rows[cell_id], cell_outputs)
        ]
        if outputs:
            Output.objects.bulk_create(outputs)
