"""Forks: a datastore branched from another one at a serial, edited like any datastore, then merged
back into its root as one transaction, or dropped.

A fork is a ``Datastore`` row with ``fork_of`` (its root) and ``fork_serial`` (where it branched).
It holds no copy of the root's history: its serials continue the root's, the ones up to
``fork_serial`` are read from the root's rows and checkpoints (``tables.history``), and the
root's pruning never moves past a fork's branch point (``tables.pruning``). Creating one writes one
row, whatever the history's size.

Merging sends the fork's own changes, the Yjs updates of its own rows merged into one
(``pycrdt.merge_updates``), through the root's write path as one transaction (origin ``merge``).
Those updates build on the root's state at the branch, which the root still has, so the CRDT
integrates them next to whatever the root received meanwhile: nobody's concurrent edit is lost.

Forks of forks are refused: a fork's root is a datastore with its own history.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction as db_transaction
from pycrdt import merge_updates

from tables.loaded import doc_cache
from tables.models import Datastore, Origin, Transaction
from tables.pruning import check_available
from tables.service import Authorizer, Outcome, Proposal, Status, write_one


class ForkOfFork(ValueError):
    code = "fork-of-fork"


class ForkGone(LookupError):
    """The fork was merged or discarded meanwhile (by another request)."""

    code = "unknown-fork"


def check_forkable(root: Datastore) -> None:
    """Raises ``ForkOfFork`` for a fork (only datastores with a history of their own fork)."""
    if root.fork_of_id is not None:
        raise ForkOfFork(f"{root.name!r} is a fork; fork its root instead")


def do_create_fork(
    root: Datastore, name: str, owner: Any = None, serial: int | None = None
) -> Datastore:
    """A fork of ``root`` at ``serial`` (default: now), owned by ``owner``; one row, no history
    copied. Its roles follow the root's (``roles_from``), and its owner may edit it.

    Raises ``ForkOfFork``, or ``HistoryPruned`` for a serial behind the root's pruned history.
    """
    check_forkable(root)
    with db_transaction.atomic():
        # Under the root's row lock: pruning moves the horizon under it too, never past a fork.
        locked = Datastore.objects.select_for_update().get(pk=root.pk)
        branch = locked.last_serial if serial is None else max(0, min(serial, locked.last_serial))
        check_available(locked, branch)
        return Datastore.objects.create(
            name=name,
            schema=locked.schema,
            owner=owner if owner is not None and owner.is_authenticated else None,
            roles_from_id=locked.roles_from_id or locked.pk,
            fork_of=locked,
            fork_serial=branch,
            last_serial=branch,
            checkpoint_serial=branch,  # the first checkpoint of its own CHECKPOINT_EVERY later
        )


def own_changes(fork: Datastore) -> bytes | None:
    """The fork's own changes since the branch as one Yjs update (None: it has none)."""
    updates = [
        bytes(update)
        for update in Transaction.objects.filter(datastore=fork)
        .order_by("serial")
        .values_list("update", flat=True)
    ]
    if not updates:
        return None
    return updates[0] if len(updates) == 1 else merge_updates(*updates)


def do_merge_fork(
    fork: Datastore, *, author_id: int | None, authorize: Authorizer | None = None
) -> Outcome:
    """Write the fork's own changes on its root as one transaction (origin ``merge``, by
    ``author_id``) and remove the fork; a refused write leaves both as they were.

    The fork's row is locked meanwhile, so no write to the fork lands between the read of its
    changes and its removal (the write path takes the same lock). Raises ``ForkGone``.
    """
    with db_transaction.atomic():
        locked = _lock(fork)
        update = own_changes(locked)
        root = Datastore.objects.get(pk=locked.fork_of_id)
        if update is None:
            outcome = Outcome("", Status.NOOP, serial=root.last_serial)
        else:
            proposal = Proposal(update, author_id=author_id, origin=Origin.MERGE)
            outcome = write_one(root, proposal, authorize)
        if outcome.ok:
            _remove(locked)
    return outcome


def do_discard_fork(fork: Datastore) -> None:
    """Remove the fork and its own history; the root is untouched. Raises ``ForkGone``."""
    with db_transaction.atomic():
        _remove(_lock(fork))


def _lock(fork: Datastore) -> Datastore:
    """The fork's row, locked; ``ForkGone`` when another request removed it first."""
    locked = Datastore.objects.select_for_update().filter(pk=fork.pk).first()
    if locked is None or locked.fork_of_id is None:
        raise ForkGone(f"fork {fork.name!r} was merged or discarded already")
    return locked


def _remove(fork: Datastore) -> None:
    pk = fork.pk
    fork.delete()
    db_transaction.on_commit(lambda: doc_cache.discard(pk))
