"""Projections of the jupyter datastore and of notebook documents.

These rows are derived: the documents are the source of truth, and the write path keeps the rows
equal to them inside the same database transaction.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Coalesce, RowNumber

from tables.models import Datastore
from tables.projection import ProjectedRecord


class ServerStatus(ProjectedRecord):
    started = models.DateTimeField(null=True, blank=True)
    last_activity = models.DateTimeField(null=True, blank=True)
    connections = models.IntegerField(null=True, blank=True)
    kernels = models.IntegerField(null=True, blank=True)
    version = models.CharField(max_length=50, blank=True, default="")
    connected = models.BooleanField(null=True, blank=True)

    class Meta(ProjectedRecord.Meta):
        verbose_name_plural = "server status"


class Kernelspec(ProjectedRecord):
    name = models.CharField(max_length=200, blank=True, default="")
    display_name = models.CharField(max_length=200, blank=True, default="")
    language = models.CharField(max_length=100, blank=True, default="")
    spec = models.JSONField(null=True, blank=True)
    resources = models.JSONField(null=True, blank=True)

    class Meta(ProjectedRecord.Meta):
        pass


class Kernel(ProjectedRecord):
    name = models.CharField(max_length=200, blank=True, default="")
    last_activity = models.DateTimeField(null=True, blank=True)
    execution_state = models.CharField(max_length=50, blank=True, default="")
    connections = models.IntegerField(null=True, blank=True)
    reason = models.TextField(blank=True, default="")

    class Meta(ProjectedRecord.Meta):
        pass


class JupyterSession(ProjectedRecord):
    path = models.TextField(blank=True, default="")
    name = models.TextField(blank=True, default="")
    type = models.CharField(max_length=50, blank=True, default="")
    kernel_id = models.CharField(max_length=100, blank=True, default="")
    kernel_name = models.CharField(max_length=200, blank=True, default="")

    class Meta(ProjectedRecord.Meta):
        verbose_name = "session"


class Content(ProjectedRecord):
    name = models.TextField(blank=True, default="")
    path = models.TextField(blank=True, default="")
    type = models.CharField(max_length=20, blank=True, default="")
    created = models.DateTimeField(null=True, blank=True)
    last_modified = models.DateTimeField(null=True, blank=True)
    mimetype = models.CharField(max_length=200, blank=True, default="")
    format = models.CharField(max_length=20, blank=True, default="")
    size = models.BigIntegerField(null=True, blank=True)
    writable = models.BooleanField(null=True, blank=True)
    children = models.JSONField(null=True, blank=True)

    class Meta(ProjectedRecord.Meta):
        pass


class Terminal(ProjectedRecord):
    name = models.CharField(max_length=200, blank=True, default="")
    last_activity = models.DateTimeField(null=True, blank=True)

    class Meta(ProjectedRecord.Meta):
        pass


class Execution(ProjectedRecord):
    document_id = models.CharField(max_length=200, blank=True, default="")
    cell_id = models.CharField(max_length=200, blank=True, default="")
    kernel_id = models.CharField(max_length=100, blank=True, default="")
    session_id = models.CharField(max_length=100, blank=True, default="")
    code = models.TextField(blank=True, default="")
    source_hash = models.CharField(max_length=64, blank=True, default="")
    source_changed = models.BooleanField(null=True, blank=True)
    status = models.CharField(max_length=20, blank=True, default="")
    requested_by = models.CharField(max_length=150, blank=True, default="")
    outputs = models.JSONField(null=True, blank=True)
    execution_count = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    input_request = models.JSONField(null=True, blank=True)
    input_reply = models.TextField(blank=True, default="")
    cancel = models.BooleanField(null=True, blank=True)

    class Meta(ProjectedRecord.Meta):
        pass


class Request(ProjectedRecord):
    action = models.CharField(max_length=50, blank=True, default="")
    params = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=20, blank=True, default="")
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    requested_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta(ProjectedRecord.Meta):
        pass


class Document(ProjectedRecord):
    path = models.TextField(blank=True, default="")
    type = models.CharField(max_length=20, blank=True, default="")
    format = models.CharField(max_length=20, blank=True, default="")
    datastore_name = models.CharField(max_length=100, blank=True, default="")
    status = models.CharField(max_length=20, blank=True, default="")
    request = models.CharField(max_length=50, blank=True, default="")
    new_path = models.TextField(blank=True, default="")
    requested_by = models.CharField(max_length=150, blank=True, default="")
    last_saved = models.DateTimeField(null=True, blank=True)
    last_modified = models.DateTimeField(null=True, blank=True)
    conflict = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    error_status = models.IntegerField(null=True, blank=True)

    class Meta(ProjectedRecord.Meta):
        pass


# --- Notebook documents ---------------------------------------------------------------------


class Notebook(models.Model):
    datastore = models.OneToOneField(Datastore, on_delete=models.CASCADE, related_name="notebook")
    nbformat = models.IntegerField(null=True, blank=True)
    nbformat_minor = models.IntegerField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    repeated_ids = models.BooleanField(
        default=False,
        help_text=(
            "The document repeats a cell id (one row per id: its last cell), so its rows cannot "
            "follow a change cell by cell: each commit projects the whole notebook."
        ),
    )

    def __str__(self) -> str:
        return self.datastore.name


class CellQuerySet(models.QuerySet):
    def with_index(self) -> CellQuerySet:
        """Annotate ``index``, the cell's 0-based place in its notebook, counted from the
        positions (an indexed count per row: for showing a few cells, not for scanning many)."""
        before = (
            Cell.objects.filter(
                notebook=models.OuterRef("notebook"), position__lt=models.OuterRef("position")
            )
            .order_by()
            .values("notebook")
            .annotate(count=models.Count("pk"))
            .values("count")
        )
        return self.annotate(index=Coalesce(models.Subquery(before), models.Value(0)))

    def numbered(self) -> CellQuerySet:
        """Annotate ``index`` by numbering the selected rows of each notebook in position order:
        one pass, but right only where every cell of the notebook is selected (a notebook's own
        cells); 4 ms for 1,001 cells where ``with_index`` takes 50-170."""
        return self.annotate(
            index=models.Window(
                RowNumber(),
                partition_by=[models.F("notebook")],
                order_by=models.F("position").asc(),
            )
            - 1
        )


class Cell(models.Model):
    # No index of its own: (notebook, cell_id) and (notebook, position) both start with it, and
    # a third index would be one more B-tree written by every inserted or deleted cell.
    notebook = models.ForeignKey(
        Notebook, on_delete=models.CASCADE, related_name="cells", db_index=False
    )
    cell_id = models.CharField(max_length=200)
    position = models.BigIntegerField(
        help_text=(
            "Sorts the notebook's cells in document order. Sparse: a cell inserted between two "
            "others takes a number between theirs, so no other row changes (see "
            "jupyter_sync.projection); the 0-based index is derived (CellQuerySet.with_index)."
        )
    )
    cell_type = models.CharField(max_length=20)
    source = models.TextField(blank=True, default="")
    execution_count = models.IntegerField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    objects = CellQuerySet.as_manager()

    class Meta:
        ordering = ["notebook", "position"]
        constraints = [
            models.UniqueConstraint(fields=["notebook", "cell_id"], name="unique_cell_id")
        ]
        # Order and neighbourhoods are read without reading the (wide) rows: the cells between
        # two positions (a deletion), how many lie in a range of positions (renumbering).
        indexes = [models.Index(fields=["notebook", "position"], name="cell_order")]

    def __str__(self) -> str:
        return f"{self.cell_type} cell {self.cell_id}"


class Output(models.Model):
    cell = models.ForeignKey(Cell, on_delete=models.CASCADE, related_name="outputs")
    index = models.IntegerField()
    output_type = models.CharField(max_length=50)
    content = models.JSONField(default=dict)

    class Meta:
        ordering = ["cell", "index"]

    def __str__(self) -> str:
        return f"{self.output_type} #{self.index}"


class SupernodeLease(models.Model):
    """Which supernode may act: one holder at a time, renewed while it runs.

    A row in the database rather than a record in a document, because a lease must be decided
    by one authority; two supernodes writing claims into a CRDT would both believe they won.
    """

    name = models.CharField(max_length=100, unique=True)
    holder = models.CharField(max_length=100)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder} until {self.expires_at:%H:%M:%S}"


class TimelineFork(models.Model):
    """One person's view of a document's history (jupyter-collaboration's timeline fork room).

    A row rather than a room in memory, so that any worker can move it (the slider's requests and
    the room's WebSocket may reach different processes) and it survives a restart. The view is
    the document's state at ``base_serial`` plus ``ops``: the operations, made under
    ``client_id``, that turned it into the state at the slider's position. Its clients hold
    exactly that, so a restore can include it and their reconnecting adds nothing twice.
    """

    id = models.CharField(max_length=32, primary_key=True)
    datastore = models.ForeignKey(Datastore, on_delete=models.CASCADE, related_name="+")
    document_id = models.CharField(max_length=200, help_text="The documents record (fileId).")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    base_serial = models.BigIntegerField(help_text="The document's serial when it was opened.")
    first_serial = models.BigIntegerField(help_text="The serial of the slider's first point.")
    points = models.IntegerField(help_text="Points on the slider (the last is base_serial).")
    position = models.IntegerField(help_text="The slider's point shown now.")
    client_id = models.BigIntegerField(help_text="The Yjs client id of the view's operations.")
    ops = models.BinaryField(default=b"", help_text="A Yjs update: base state to the view.")
    version = models.IntegerField(default=0, help_text="Moves so far (orders the room's news).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    def __str__(self) -> str:
        return f"timeline {self.id} of {self.datastore_id} at point {self.position}"


class DocumentFork(models.Model):
    """A fork of an open document (jupyter-collaboration's ``api/collaboration/fork``): its
    datastore is a ``tables.forks`` fork of the document's, joined as the room ``<id>``.

    jupyter-collaboration keeps these in memory; a row here, so that every worker finds the fork
    and it outlives a restart. The fork's datastore carries the history; this row carries what
    the front end shows (title, description) and which document it came from.
    """

    id = models.CharField(max_length=32, primary_key=True, help_text="The fork's room id.")
    datastore = models.OneToOneField(
        Datastore, on_delete=models.CASCADE, related_name="document_fork"
    )
    root = models.ForeignKey(Datastore, on_delete=models.CASCADE, related_name="+")
    root_room = models.CharField(max_length=300, help_text="<format>:<type>:<fileId> forked.")
    title = models.TextField(blank=True, default="")
    description = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"fork {self.id} of {self.root_room}"
