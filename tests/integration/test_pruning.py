"""Pruning old history behind a checkpoint: what goes, what stays, and every read that follows."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from pycrdt import Map
from rest_framework.test import APIClient

from jupyter_sync.supernode.account import ensure_jupyter_datastore, ensure_service_account
from jupyter_sync.supernode.server_state import prune_server_state_history
from relay.models import ApiToken
from tables import history, pruning, records, service, undo
from tables.loaded import LoadedDoc, doc_cache
from tables.management.commands.prune_history import parse_age
from tables.models import Checkpoint, Datastore, TouchedRecord, Transaction
from tables.pruning import HistoryPruned, prune_history
from tests.support.factories import add_todo, edit_many
from tests.support.peers import JsonPeer, token_for

pytestmark = pytest.mark.django_db(transaction=True)

SOON = timedelta(seconds=1)


@pytest.fixture
def small_checkpoints(settings):
    settings.RTC = {
        **settings.RTC,
        "CHECKPOINT_EVERY": 5,
        "CHECKPOINT_BYTES": 10_000_000,
        "CHECKPOINTS_KEPT": 100,
    }


def serials(model, datastore: Datastore) -> list[int]:
    rows = model.objects.filter(datastore=datastore).order_by("serial")
    return list(rows.values_list("serial", flat=True))


def in_the_future() -> datetime:
    """A cutoff every checkpoint so far is older than."""
    return datetime.now(UTC) + SOON


def title(doc) -> str:
    return str(doc.get("items", type=Map)["a"]["title"])


def test_patches_behind_the_newest_old_checkpoint_are_deleted(small_checkpoints):
    datastore = service.create_datastore("d", "todo")
    edit_many(datastore, 23)
    before, _ = service.live_python(datastore)
    at_20 = title(history.doc_at(datastore, 20))

    pruned = prune_history(datastore, older_than=in_the_future(), keep=0)

    assert (pruned.history_start, pruned.transactions) == (20, 20)
    assert datastore.history_start == 20
    assert serials(Transaction, datastore) == [21, 22, 23]
    assert serials(Checkpoint, datastore) == [20]
    assert not TouchedRecord.objects.filter(transaction__serial__lte=20).exists()
    assert TouchedRecord.objects.filter(datastore=datastore).count() == 3
    kept_bytes = Transaction.objects.filter(datastore=datastore).aggregate(total=Sum("size"))
    assert datastore.size == kept_bytes["total"]
    assert pruned.bytes > 0
    # The document is unchanged, whether live or loaded again from the database.
    assert service.live_python(datastore)[0] == before
    doc_cache.clear()
    assert service.live_python(datastore)[0] == before
    # Time travel reaches back to the horizon and no further.
    assert title(history.doc_at(datastore, 20)) == at_20
    with pytest.raises(HistoryPruned, match="before serial 20"):
        history.doc_at(datastore, 19)
    with pytest.raises(HistoryPruned):
        history.replay(datastore, 23)


def test_the_newest_patches_and_recent_ones_are_kept(small_checkpoints):
    datastore = service.create_datastore("d", "todo")
    edit_many(datastore, 23)
    # --keep: the horizon stays at or below last_serial - keep.
    assert prune_history(datastore, older_than=in_the_future(), keep=6).history_start == 15
    assert serials(Transaction, datastore)[0] == 16
    # The age: checkpoints written after the cutoff are not candidates.
    cutoff = Checkpoint.objects.get(datastore=datastore, serial=15).created_at + SOON
    Checkpoint.objects.filter(datastore=datastore, serial=20).update(created_at=cutoff + SOON)
    again = prune_history(datastore, older_than=cutoff, keep=0)
    assert (again.history_start, again.transactions) == (15, 0)
    # With no checkpoint old enough nothing moves.
    fresh = service.create_datastore("fresh", "todo")
    edit_many(fresh, 4)  # no checkpoint yet
    assert prune_history(fresh, older_than=in_the_future(), keep=0).transactions == 0
    assert serials(Transaction, fresh) == [1, 2, 3, 4]


def test_an_interrupted_run_is_finished_by_the_next(small_checkpoints):
    datastore = service.create_datastore("d", "todo")
    edit_many(datastore, 12)
    # As if a run moved the horizon and stopped before deleting anything.
    Datastore.objects.filter(pk=datastore.pk).update(history_start=10)
    long_ago = datetime.now(UTC) - timedelta(days=1)
    pruned = prune_history(datastore, older_than=long_ago, keep=0)
    assert (pruned.history_start, pruned.transactions) == (10, 10)
    assert serials(Transaction, datastore) == [11, 12]


def test_deletion_goes_in_batches_without_loading_patches(small_checkpoints, monkeypatch):
    monkeypatch.setattr(pruning, "BATCH", 4)
    datastore = service.create_datastore("d", "todo")
    edit_many(datastore, 12)
    with CaptureQueriesContext(connection) as queries:
        pruned = prune_history(datastore, older_than=in_the_future(), keep=0)
    assert pruned.transactions == 10
    statements = [query["sql"] for query in queries]
    deletes = [sql for sql in statements if sql.startswith('DELETE FROM "tables_transaction"')]
    assert len(deletes) == 3  # 4 + 4 + 2
    # The patches' bytes are summed in the database, never fetched.
    assert not any('"tables_transaction"."update"' in sql for sql in statements)


def test_writes_go_on_after_pruning_even_from_a_doc_loaded_before_it(small_checkpoints):
    datastore = service.create_datastore("d", "todo")
    client = edit_many(datastore, 12)
    # A document another process loaded long ago, at serial 3.
    stale = LoadedDoc(datastore, history.snapshot(datastore, 3))
    prune_history(datastore, older_than=in_the_future(), keep=0)
    datastore.refresh_from_db()
    stale.catch_up(datastore)
    assert stale.serial == 12
    assert stale.to_python() == service.live_python(datastore)[0]
    outcome = client.send(lambda d: add_todo(d, "b", "after"))
    assert outcome.serial == 13
    assert serials(Transaction, datastore) == [11, 12, 13]


def test_undo_reaches_back_to_the_horizon_and_no_further(small_checkpoints):
    user = User.objects.create_user("ada")
    datastore = service.create_datastore("d", "todo", owner=user)
    edit_many(datastore, 12, author_id=user.pk)
    prune_history(datastore, older_than=in_the_future(), keep=0)
    datastore.refresh_from_db()
    with pytest.raises(undo.NothingToUndo, match="10 was pruned"):
        undo.undo(datastore, 10, author_id=user.pk)
    # The first kept transaction (11, the 10th "x") builds on the horizon's checkpoint.
    outcome = undo.undo(datastore, 11, author_id=user.pk)
    assert outcome.serial == 13
    datastore.refresh_from_db()
    assert title(history.doc_at(datastore, 12)) == "x" * 11
    assert title(history.doc_at(datastore, 13)) == "x" * 10


@database_sync_to_async
def pruned_datastore_of(username: str) -> User:
    user = User.objects.create_user(username)
    datastore = service.create_datastore("d", "todo", owner=user)
    edit_many(datastore, 12)
    prune_history(datastore, older_than=in_the_future(), keep=0)
    return user


async def test_a_resume_from_behind_the_horizon_gets_the_checkpoint(small_checkpoints):
    user = await pruned_datastore_of("ada")
    peer = await JsonPeer.open("d", await token_for(user))
    try:
        behind = (await peer.request("history-request", {"since": 3}))["content"]
        recent = (await peer.request("history-request", {"since": 11}))["content"]
        fetched = (await peer.request("transaction-request", {"serials": [9, 10, 11]}))["content"]
    finally:
        await peer.close()
    assert (behind["checkpointSerial"], behind["serial"]) == (10, 12)
    assert behind["state"] and [t["serial"] for t in behind["transactions"]] == [11, 12]
    assert recent["state"] is None and [t["serial"] for t in recent["transactions"]] == [12]
    assert [t["serial"] for t in fetched["transactions"]] == [11]
    assert fetched["historyStart"] == 10


def test_rest_and_admin_answer_gone_behind_the_horizon(small_checkpoints, admin_client):
    owner = User.objects.create_user("ada")
    datastore = service.create_datastore("d", "todo", owner=owner)
    edit_many(datastore, 12)
    prune_history(datastore, older_than=in_the_future(), keep=0)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.objects.create(user=owner).key}")

    assert api.get("/api/datastores/d/").json()["history_start"] == 10
    for path in ("/api/datastores/d/state/", "/api/datastores/d/state.bin"):
        response = api.get(path, {"serial": 9})
        assert response.status_code == 410, response.content
        assert response.json()["code"] == "history-pruned"
        assert api.get(path, {"serial": 10}).status_code == 200
    page = api.get("/api/datastores/d/history/").json()
    assert [item["serial"] for item in page["results"]] == [11, 12]

    state = reverse("admin:tables_datastore_state", args=[datastore.pk])
    response = admin_client.get(state, {"serial": 9})
    assert response.status_code == 410
    assert "was pruned" in response.content.decode()
    assert admin_client.get(state, {"serial": 10}).status_code == 200


def test_the_command_prunes_named_or_all_datastores(small_checkpoints):
    for name in ("one", "two"):
        edit_many(service.create_datastore(name, "todo"), 12)
    out = io.StringIO()
    call_command("prune_history", "one", "--older-than", "0", "--keep", "0", stdout=out)
    assert "one: pruned 10 patches" in out.getvalue()
    assert "history starts at serial 10" in out.getvalue()
    assert serials(Transaction, Datastore.objects.get(name="two"))[0] == 1
    out = io.StringIO()
    call_command("prune_history", "--all", "--older-than", "0s", "--keep", "0", stdout=out)
    assert "one: pruned 0 patches" in out.getvalue()
    assert "two: pruned 10 patches" in out.getvalue()
    # The default keeps the newest 1,000 patches.
    out = io.StringIO()
    call_command("prune_history", "--all", "--older-than", "0", stdout=out)
    assert "pruned 0 patches" in out.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "1d"], "name one or more datastores"),
        (["one", "--all", "--older-than", "1d"], "name one or more datastores"),
        (["nope", "--older-than", "1d"], "no datastore named 'nope'"),
        (["one", "--older-than", "a week"], "not an age"),
        (["one", "--older-than", "1d", "--keep", "-1"], "--keep must be >= 0"),
    ],
)
def test_the_command_refuses_bad_arguments(args, message):
    service.create_datastore("one", "todo")
    with pytest.raises(CommandError, match=message):
        call_command("prune_history", *args)


def test_ages_are_read_in_seconds_minutes_hours_or_days():
    assert [parse_age(raw).total_seconds() for raw in ("90", "90s", "15m", "12h", "30d")] == [
        90,
        90,
        900,
        43200,
        2592000,
    ]


@database_sync_to_async
def busy_jupyter_datastore() -> Datastore:
    """The jupyter datastore after a dozen kernel status changes, written two days ago."""
    ensure_service_account()
    datastore = ensure_jupyter_datastore()
    for n in range(12):
        kernel = {"name": "python3", "execution_state": "busy" if n % 2 else "idle"}
        records.set_fields(datastore, "kernels", "k-1", kernel)
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    Checkpoint.objects.filter(datastore=datastore).update(created_at=two_days_ago)
    datastore.refresh_from_db()
    return datastore


async def test_the_supernode_prunes_the_server_states_history(
    small_checkpoints, settings, monkeypatch
):
    datastore = await busy_jupyter_datastore()
    settings.RTC_JUPYTER = {**settings.RTC_JUPYTER, "SERVER_STATE_HISTORY": 0}
    assert await prune_server_state_history() is None
    settings.RTC_JUPYTER = {**settings.RTC_JUPYTER, "SERVER_STATE_HISTORY": 86400}
    # It keeps the newest 1,000 patches, as the command does by default.
    assert (await prune_server_state_history()).transactions == 0
    monkeypatch.setattr(pruning, "DEFAULT_KEEP", 0)
    pruned = await prune_server_state_history()
    assert (pruned.datastore, pruned.history_start) == ("jupyter", 10)
    assert await database_sync_to_async(serials)(Transaction, datastore) == [11, 12]
