"""Forks of datastores (``tables.forks``): the shared history, loading, time travel, merging back
as one transaction and discarding, on whichever database the tests run on."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from pycrdt import Doc, Map

from tables import forks, history, service
from tables.loaded import doc_cache
from tables.models import Checkpoint, Datastore, Origin, Transaction
from tables.pruning import prune_history
from tests.support.factories import Client, add_todo, edit_many

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def small_checkpoints(settings):
    settings.RTC = {**settings.RTC, "CHECKPOINT_EVERY": 5, "CHECKPOINT_BYTES": 10_000_000}


def items(doc: Doc) -> dict:
    return doc.get("items", type=Map).to_py()


def title(doc: Doc, item: str = "a") -> str:
    return str(doc.get("items", type=Map)[item]["title"])


def test_a_fork_shares_the_roots_history_without_copying_a_row(small_checkpoints):
    root = edit_many(service.create_datastore("root", "todo"), 12).datastore
    rows_before = Transaction.objects.count()
    checkpoints_before = Checkpoint.objects.count()

    fork = forks.do_create_fork(root, "root.fork")

    assert (fork.fork_of_id, fork.fork_serial, fork.last_serial) == (root.pk, 12, 12)
    assert Transaction.objects.count() == rows_before
    assert Checkpoint.objects.count() == checkpoints_before
    assert not Transaction.objects.filter(datastore=fork).exists()
    for serial in (0, 1, 4, 5, 9, 10, 11, 12):
        assert items(history.doc_at(fork, serial)) == items(history.doc_at(root, serial)), serial
    assert history.updates_between(fork, 3, 12) == history.updates_between(root, 3, 12)
    assert [t.serial for t in history.transactions_between(fork.pk, 8)] == [9, 10, 11, 12]
    # Loaded from the root's newest checkpoint plus its patches up to the branch.
    doc_cache.clear()
    assert service.live_python(fork) == service.live_python(root)


def test_a_forks_own_patches_follow_the_branch_and_the_root_moves_on_alone(small_checkpoints):
    root = service.create_datastore("root", "todo")
    on_root = edit_many(root, 7)
    fork = forks.do_create_fork(root, "root.fork", serial=4)
    on_fork = Client(fork)
    assert title(on_fork.doc) == "xxx"  # the state at serial 4, not the root's newest

    for _ in range(7):  # past a checkpoint of its own
        outcome = on_fork.send(lambda d: d.get("items", type=Map)["a"]["title"].insert(0, "f"))
        assert outcome.status is service.Status.STORED
    on_root.send(lambda d: add_todo(d, "b", "root only"))

    fork.refresh_from_db()
    own = list(Transaction.objects.filter(datastore=fork).values_list("serial", flat=True))
    assert own == list(range(5, 12)) and fork.last_serial == 11
    assert Checkpoint.objects.filter(datastore=fork).values_list("serial", flat=True).get() == 9
    assert title(history.doc_at(fork, 4)) == "xxx"
    assert title(history.doc_at(fork, 6)) == "ffxxx"
    assert title(history.doc_at(fork)) == "fffffffxxx"
    assert "b" not in items(history.doc_at(fork))
    assert title(history.replay(fork, 11)) == "fffffffxxx"
    doc_cache.clear()
    live, serial = service.live_python(fork)
    assert (live["items"]["a"]["title"], serial) == ("fffffffxxx", 11)
    assert title(history.doc_at(root)) == "xxxxxx"  # the root never sees the fork's edits


def test_merging_writes_the_forks_changes_as_one_transaction_next_to_concurrent_edits():
    merger = User.objects.create_user("merger")
    root = service.create_datastore("root", "todo")
    on_root = edit_many(root, 3)
    fork = forks.do_create_fork(root, "root.fork")
    on_fork = Client(fork)
    on_fork.send(lambda d: d.get("items", type=Map)["a"]["title"].insert(2, "FORK"))
    on_fork.send(lambda d: add_todo(d, "f", "from the fork"))
    on_root.send(lambda d: d.get("items", type=Map)["a"]["title"].insert(0, "ROOT"))
    rows_before = Transaction.objects.filter(datastore=root).count()

    outcome = forks.do_merge_fork(fork, author_id=merger.pk)

    assert outcome.status is service.Status.STORED
    merged = Transaction.objects.get(datastore=root, serial=outcome.serial)
    assert (merged.origin, merged.author_id) == (Origin.MERGE, merger.pk)
    assert Transaction.objects.filter(datastore=root).count() == rows_before + 1
    root.refresh_from_db()
    now = items(history.doc_at(root))
    assert now["a"]["title"] == "ROOTxxFORK"
    assert now["f"]["title"] == "from the fork"
    assert not Datastore.objects.filter(pk=fork.pk).exists()
    assert not Transaction.objects.filter(datastore_id=fork.pk).exists()


def test_a_fork_without_changes_merges_to_nothing_and_discarding_leaves_the_root_alone():
    root = service.create_datastore("root", "todo")
    edit_many(root, 2)
    empty = forks.do_create_fork(root, "root.empty")
    assert forks.do_merge_fork(empty, author_id=None).status is service.Status.NOOP
    assert not Datastore.objects.filter(pk=empty.pk).exists()

    dropped = forks.do_create_fork(root, "root.dropped")
    Client(dropped).send(lambda d: add_todo(d, "gone", "never merged"))
    before = service.live_python(root)
    forks.do_discard_fork(dropped)
    assert service.live_python(root) == before
    assert not Datastore.objects.filter(pk=dropped.pk).exists()


def test_a_merge_the_authorizer_refuses_keeps_the_fork():
    root = service.create_datastore("root", "todo")
    edit_many(root, 2)
    fork = forks.do_create_fork(root, "root.fork")
    Client(fork).send(lambda d: add_todo(d, "f", "kept"))
    outcome = forks.do_merge_fork(fork, author_id=None, authorize=lambda *_: "no")
    assert outcome.status is service.Status.REJECTED
    assert Datastore.objects.filter(pk=fork.pk).exists()
    root.refresh_from_db()
    assert "f" not in items(history.doc_at(root))


def test_forks_of_forks_are_refused():
    root = service.create_datastore("root", "todo")
    fork = forks.do_create_fork(root, "root.fork")
    with pytest.raises(forks.ForkOfFork):
        forks.do_create_fork(fork, "root.fork.fork")


def test_pruning_the_root_stops_at_a_forks_branch(small_checkpoints):
    root = service.create_datastore("root", "todo")
    on_root = edit_many(root, 12)
    fork = forks.do_create_fork(root, "root.fork", serial=7)
    for _ in range(10):
        on_root.send(lambda d: d.get("items", type=Map)["a"]["title"].insert(0, "y"))

    result = prune_history(root, older_than=timezone.now(), keep=0)

    assert result.history_start == 5  # the newest checkpoint at or before the branch
    fork.refresh_from_db()
    doc_cache.clear()
    assert title(history.doc_at(fork)) == "x" * 6
    assert title(history.doc_at(fork, 5)) == "x" * 4


def test_a_write_to_a_fork_merged_meanwhile_is_refused_not_raised():
    root = service.create_datastore("root", "todo")
    edit_many(root, 2)
    fork = forks.do_create_fork(root, "root.fork")
    late = Client(fork)  # joined before the merge
    assert forks.do_merge_fork(fork, author_id=None).status is service.Status.NOOP
    outcome = late.send(lambda d: add_todo(d, "late", "too late"))
    assert (outcome.status, outcome.error_code) == (service.Status.REJECTED, "unknown-datastore")
    with pytest.raises(forks.ForkGone):
        forks.do_discard_fork(fork)


def test_the_history_api_of_a_fork_lists_the_roots_transactions_up_to_the_branch_then_its_own():
    from rest_framework.test import APIClient

    from relay.models import ApiToken

    owner = User.objects.create_user("owner")
    root = service.create_datastore("root", "todo", owner=owner)
    on_root = edit_many(root, 3, author_id=owner.pk)
    fork = forks.do_create_fork(root, "root.fork", owner=owner)
    Client(fork, author_id=owner.pk).send(lambda d: add_todo(d, "f", "fork"))
    on_root.send(lambda d: add_todo(d, "r", "root"))  # serial 4 of the root, not the fork's
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.objects.create(user=owner).key}")

    def listed(name: str, query: str = "") -> list[tuple[int, str]]:
        answer = client.get(f"/api/datastores/{name}/history/{query}")
        assert answer.status_code == 200, answer.content
        return [(item["serial"], item["txid"]) for item in answer.json()["results"]]

    shared = listed("root")[:3]
    own = Transaction.objects.get(datastore=fork)
    assert listed("root.fork") == [*shared, (4, own.txid)]
    assert [serial for serial, _ in listed("root.fork", "?record=f")] == [4]
    assert [serial for serial, _ in listed("root.fork", "?record=a")] == [1, 2, 3]
    assert listed("root.fork", "?after_serial=2") == [shared[2], (4, own.txid)]
