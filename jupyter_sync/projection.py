"""Projection of notebook documents onto Notebook, Cell and Output rows.

A commit costs what it changed, not the notebook's size: the list changes of the ``cells`` array
(its Yjs delta) say which positions were deleted, inserted or kept, so a structural change is one
DELETE of the deleted positions, one UPDATE that shifts the indices of every kept row whose
position moved (``index = index + d`` over ranges of positions), and the inserted rows; an edit
inside a cell updates that cell's row, and its outputs only when they changed. Only when the rows
and the document cannot be matched that way (a new notebook row, a cell id changed or repeated,
a row missing) is the whole notebook projected again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Case, F, Q, When
from pycrdt import Array, Doc, Map

from jupyter_sync.models import Cell, Notebook, Output
from tables.models import Datastore
from tables.projection import Projector
from tables.schema import Change, jsonable

# The Cell columns a key of a cell map maps onto (the rest of a cell is not projected).
_COLUMNS = ("cell_type", "source", "execution_count", "metadata")
_ALL = frozenset((*_COLUMNS, "outputs"))


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
                old += count
        reshape.tail = (old, new - old)
        return reshape

    def position(self, old: int) -> int | None:
        """Where a cell at ``old`` is after the change (None: deleted)."""
        if old >= self.tail[0]:
            return old + self.tail[1]
        for start, end in self.deleted:
            if start <= old < end:
                return None
        for start, end, shift in self.kept:
            if start <= old < end:
                return old + shift
        return old

    def shifts(self) -> list[tuple[int, int | None, int]]:
        runs: list[tuple[int, int | None, int]] = [(s, e, d) for s, e, d in self.kept if d]
        if self.tail[1]:
            runs.append((self.tail[0], None, self.tail[1]))
        return runs


@dataclass
class Pending:
    """Cells to project at the end of a batch, by their position in the document as it is."""

    columns: dict[int, set[str]] = field(default_factory=dict)
    new: set[int] = field(default_factory=set)  # positions of cells inserted in the batch

    def reshape(self, reshape: Reshape) -> None:
        columns: dict[int, set[str]] = {}
        for old, names in self.columns.items():
            moved = reshape.position(old)
            if moved is not None:
                columns.setdefault(moved, set()).update(names)
        new = {moved for old in self.new if (moved := reshape.position(old)) is not None}
        self.columns, self.new = columns, new
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
        if created or changes is None:
            self._sync_all(notebook, cells)
            return
        try:
            self._project_changes(notebook, cells, changes)
        except Unmatched:
            self._sync_all(notebook, cells)

    def rebuild(self, datastore: Datastore, doc: Doc) -> None:
        Notebook.objects.filter(datastore=datastore).delete()
        notebook, _ = self._notebook(datastore, doc, refresh_meta=True)
        self._sync_all(notebook, doc.get("cells", type=Array))

    def _notebook(
        self, datastore: Datastore, doc: Doc, *, refresh_meta: bool
    ) -> tuple[Notebook, bool]:
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
        """Follow each transaction's changes in commit order: the rows of cells that were there
        before the batch move with each structural change; cells inserted or edited are
        projected from the document at the end, where their positions then are."""
        pending = Pending()
        for transaction_changes in changes:
            # A transaction's paths are positions after it, so its structural change goes first.
            for change in transaction_changes:
                if change.root == "cells" and not change.path and change.kind == "list":
                    reshape = Reshape.of(change)
                    self._reshape_rows(notebook, reshape)
                    pending.reshape(reshape)
            for change in transaction_changes:
                if change.root == "cells" and change.path:
                    pending.touch(change)
        self._project_pending(notebook, cells, pending)

    def _reshape_rows(self, notebook: Notebook, reshape: Reshape) -> None:
        rows = Cell.objects.filter(notebook=notebook)
        if reshape.deleted:
            gone = Q()
            for start, end in reshape.deleted:
                gone |= Q(index__gte=start, index__lt=end)
            rows.filter(gone).delete()
        shifts = reshape.shifts()
        if not shifts:
            return
        if len(shifts) == 1:
            start, end, shift = shifts[0]
            moved = rows.filter(index__gte=start)
            if end is not None:
                moved = moved.filter(index__lt=end)
            moved.update(index=F("index") + shift)
            return
        whens = [
            When(Q(index__gte=start) & (Q() if end is None else Q(index__lt=end)), then=shift)
            for start, end, shift in shifts
        ]
        rows.filter(index__gte=min(start for start, _, _ in shifts)).update(
            index=F("index") + Case(*whens, default=0)
        )

    def _project_pending(self, notebook: Notebook, cells: Array, pending: Pending) -> None:
        length = len(cells)
        created: list[tuple[Cell, Map]] = []
        for index in sorted(pending.columns):
            if index >= length:
                raise Unmatched(f"a change at {index}, past the end")
            cell = cells[index]
            cell_id = cell.get("id") if isinstance(cell, Map) else None
            if not isinstance(cell_id, str):
                continue  # not projected (a cell without an id has no row)
            if index in pending.new:
                created.append(
                    (Cell(notebook=notebook, cell_id=cell_id, **_cell_values(cell, index)), cell)
                )
                continue
            self._update_cell(notebook, cell, cell_id, index, pending.columns[index])
        if not created:
            return
        ids = [row.cell_id for row, _ in created]
        if (
            len(set(ids)) < len(ids)
            or Cell.objects.filter(notebook=notebook, cell_id__in=ids).exists()
        ):
            raise Unmatched("an inserted cell's id is already in the notebook")
        Cell.objects.bulk_create([row for row, _ in created])
        outputs = [output for row, cell in created for output in _output_rows(row, cell)]
        if outputs:
            Output.objects.bulk_create(outputs)

    def _update_cell(
        self, notebook: Notebook, cell: Map, cell_id: str, index: int, names: set[str]
    ) -> None:
        """One UPDATE of the changed columns, matched by id and position (no match: the rows
        and the document disagree); the outputs rewritten only when they changed."""
        values = _cell_values(cell, index)
        row = Cell.objects.filter(notebook=notebook, cell_id=cell_id, index=index)
        columns = {name: values[name] for name in _COLUMNS if name in names}
        if "outputs" in names:
            pk = row.values_list("pk", flat=True).first()
            if pk is None:
                raise Unmatched(f"no row for cell {cell_id!r} at {index}")
            if columns:
                Cell.objects.filter(pk=pk).update(**columns)
            Output.objects.filter(cell_id=pk).delete()
            Output.objects.bulk_create(_output_rows(Cell(pk=pk), cell))
        elif row.update(**(columns or {"index": index})) != 1:
            raise Unmatched(f"no row for cell {cell_id!r} at {index}")

    def _sync_all(self, notebook: Notebook, cells: Array) -> None:
        """The whole notebook again, in a few statements: rows of cells no longer there deleted,
        changed rows updated in bulk, new ones created (a repeated id: its last cell wins)."""
        # Read in one transaction of the document's: each read outside one opens and commits
        # its own (a 1,000-cell notebook's reads are tens of thousands of them).
        wanted: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
        with cells.doc.transaction():
            for index, cell in enumerate(cells):
                cell_id = cell.get("id") if isinstance(cell, Map) else None
                if isinstance(cell_id, str):
                    wanted[cell_id] = (_cell_values(cell, index), _outputs(cell))
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
            Cell.objects.bulk_update(updated, ["index", *_COLUMNS], batch_size=500)
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
