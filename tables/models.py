"""Datastores and their patch history.

A datastore is one CRDT document. Every change to it is a ``Transaction`` row holding the Yjs
update, with a serial that is unique and gapless per datastore. ``Checkpoint`` rows hold the
encoded state at a serial so that loading costs O(state), not O(history).
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

DATASTORE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
validate_datastore_name = RegexValidator(
    DATASTORE_NAME_PATTERN,
    "A datastore name is 1-100 characters: letters, digits, '.', '_' or '-', "
    "starting with a letter or digit.",
)


class Datastore(models.Model):
    name = models.CharField(max_length=100, unique=True, validators=[validate_datastore_name])
    schema = models.CharField(max_length=100)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_datastores",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_serial = models.BigIntegerField(default=0, help_text="Serial of the newest transaction.")
    size = models.BigIntegerField(default=0, help_text="Bytes of patch history stored.")
    checkpoint_serial = models.BigIntegerField(
        default=0, help_text="Serial of the newest checkpoint (0: none yet)."
    )
    bytes_since_checkpoint = models.BigIntegerField(default=0)
    history_start = models.BigIntegerField(
        default=0,
        help_text="Patches up to this serial were pruned; the checkpoint at it is the oldest "
        "state kept (0: the whole history is kept).",
    )
    roles_from = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Users without a role of their own here have the role they have there (a "
        "document follows the jupyter datastore's roles).",
    )
    fork_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="forks",
        help_text="A fork's root: its history up to fork_serial is the root's (read from the "
        "root's rows, never copied); its own patches have the serials after it.",
    )
    fork_serial = models.BigIntegerField(
        default=0,
        help_text="The root's serial this fork branched at (0 for a datastore that is not a fork).",
    )

    class Meta:
        ordering = ["name"]
        permissions = [
            ("write_server_state", "Can write server-state tables (the supernode's account)"),
        ]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"


class DatastoreRole(models.Model):
    """A user's role on one datastore (the owner has the owner role without a row)."""

    datastore = models.ForeignKey(Datastore, on_delete=models.CASCADE, related_name="roles")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="datastore_roles"
    )
    role = models.CharField(max_length=10, choices=Role.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["datastore", "user"], name="one_role_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.datastore}"


class Origin(models.TextChoices):
    CLIENT = "client"
    REST = "rest"
    SUPERNODE = "supernode"
    ADMIN = "admin"
    UNDO = "undo"
    REDO = "redo"
    RESTORE = "restore"  # the document made equal to an earlier state (the timeline)
    MERGE = "merge"  # a fork's own changes, merged back into its root in one transaction


class Transaction(models.Model):
    """One accepted change: a Yjs update with its serial and a readable summary."""

    datastore = models.ForeignKey(Datastore, on_delete=models.CASCADE, related_name="transactions")
    serial = models.BigIntegerField()
    txid = models.CharField("transaction id", max_length=100)
    store_id = models.CharField("client/store id", max_length=100, blank=True, default="")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="rtc_transactions",
    )
    origin = models.CharField(max_length=20, choices=Origin.choices, default=Origin.CLIENT)
    update = models.BinaryField(help_text="The Yjs update (v1 encoding) this transaction applied.")
    summary = models.JSONField(default=list, help_text="What changed, path by path.")
    reverts = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reverted_by",
        help_text="For undo and redo: the transaction this one reverts.",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    size = models.IntegerField(default=0)

    class Meta:
        ordering = ["datastore", "serial"]
        constraints = [
            models.UniqueConstraint(fields=["datastore", "serial"], name="unique_serial"),
            models.UniqueConstraint(fields=["datastore", "txid"], name="unique_txid"),
        ]
        indexes = [models.Index(fields=["datastore", "author", "serial"])]

    def __str__(self) -> str:
        return f"{self.datastore_id}#{self.serial}"


class TouchedRecord(models.Model):
    """Which records a transaction touched: the index behind per-record history."""

    transaction = models.ForeignKey(Transaction, on_delete=models.CASCADE, related_name="touched")
    datastore = models.ForeignKey(Datastore, on_delete=models.CASCADE, related_name="+")
    table = models.CharField(max_length=100)
    record_id = models.CharField(max_length=200)

    class Meta:
        indexes = [models.Index(fields=["datastore", "table", "record_id"])]

    def __str__(self) -> str:
        return f"{self.table}[{self.record_id}]"


class Checkpoint(models.Model):
    datastore = models.ForeignKey(Datastore, on_delete=models.CASCADE, related_name="checkpoints")
    serial = models.BigIntegerField()
    state = models.BinaryField(help_text="The document encoded as one Yjs update at this serial.")
    created_at = models.DateTimeField(auto_now_add=True)
    size = models.IntegerField(default=0)

    class Meta:
        ordering = ["datastore", "-serial"]
        constraints = [
            models.UniqueConstraint(fields=["datastore", "serial"], name="unique_checkpoint")
        ]

    def __str__(self) -> str:
        return f"{self.datastore_id}@{self.serial}"
