"""The read path: checkpoints, reload, time travel, the document cache."""

from __future__ import annotations

import pytest
from pycrdt import Doc, Map

from tables import history, service
from tables.loaded import doc_cache
from tables.models import Checkpoint
from tests.support.factories import Client, add_todo, edit_many

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def small_checkpoints(settings):
    settings.RTC = {**settings.RTC, "CHECKPOINT_EVERY": 5, "CHECKPOINT_BYTES": 10_000_000}


def as_json(doc: Doc) -> dict:
    return {name: doc.get(name, type=Map).to_py() for name in ("items", "lists")}


def test_checkpoints_are_written_every_n_transactions(small_checkpoints):
    datastore = service.create_datastore("d", "todo")
    edit_many(datastore, 12)
    assert list(
        Checkpoint.objects.filter(datastore=datastore)
        .order_by("serial")
        .values_list("serial", flat=True)
    ) == [5, 10]
    datastore.refresh_from_db()
    assert datastore.checkpoint_serial == 10


def test_checkpoints_are_written_after_m_bytes(settings):
    settings.RTC = {**settings.RTC, "CHECKPOINT_EVERY": 1000, "CHECKPOINT_BYTES": 300}
    datastore = service.create_datastore("d", "todo")
    client = Client(datastore)
    client.send(lambda d: add_todo(d, "a", "y" * 200))
    assert not Checkpoint.objects.exists()
    client.send(lambda d: add_todo(d, "b", "z" * 200))
    assert Checkpoint.objects.filter(datastore=datastore, serial=2).exists()


def test_reload_from_checkpoint_plus_tail_equals_live_state(small_checkpoints):
    datastore = service.create_datastore("d", "todo")
    client = edit_many(datastore, 13)
    live, serial = service.live_python(datastore)
    doc_cache.clear()
    datastore.refresh_from_db()
    snap = history.snapshot(datastore)
    assert (snap.checkpoint_serial, [s for s, _ in snap.updates]) == (10, [11, 12, 13])
    reloaded, reloaded_serial = service.live_python(datastore)
    assert reloaded == live and reloaded_serial == serial == 13
    assert reloaded["items"] == client.table("items").to_py()


def test_state_at_serial_equals_a_replay(small_checkpoints):
    datastore = service.create_datastore("d", "todo")
    edit_many(datastore, 13)
    datastore.refresh_from_db()
    for serial in (1, 4, 5, 6, 11, 13):
        at = as_json(history.doc_at(datastore, serial))
        assert at == as_json(history.replay(datastore, serial))
        assert at["items"]["a"]["title"] == "x" * (serial - 1)


def test_time_travel_past_the_end_is_the_current_state(small_checkpoints):
    datastore = service.create_datastore("d", "todo")
    edit_many(datastore, 3)
    datastore.refresh_from_db()
    assert as_json(history.doc_at(datastore, 99)) == as_json(history.doc_at(datastore))


def test_updates_between(small_checkpoints):
    datastore = service.create_datastore("d", "todo")
    edit_many(datastore, 4)
    assert [s for s, _ in history.updates_between(datastore, 1, 3)] == [2, 3]


def test_another_process_write_is_caught_up(small_checkpoints):
    """A doc loaded here catches up with rows written elsewhere (simulated by evicting)."""
    datastore = service.create_datastore("d", "todo")
    client = edit_many(datastore, 3)
    stale = doc_cache.get(datastore)
    assert stale.serial == 3
    doc_cache.clear()  # another "process": writes go to a fresh doc from now on
    client.send(lambda d: add_todo(d, "b", "elsewhere"))
    # Put the stale doc back, as a second worker would still hold it.
    doc_cache._docs[datastore.pk] = stale
    state, serial = service.live_python(datastore)
    assert serial == 4 and state["items"]["b"]["title"] == "elsewhere"


def test_idle_documents_are_evicted(settings):
    datastore = service.create_datastore("d", "todo")
    Client(datastore).send(lambda d: add_todo(d, "a", "x"))
    assert len(doc_cache) == 1
    settings.RTC = {**settings.RTC, "IDLE_SECONDS": 0}
    doc_cache.evict_idle()
    assert len(doc_cache) == 0
    assert service.live_python(datastore)[0]["items"]["a"]["title"] == "x"


def test_cache_is_bounded(settings):
    settings.RTC = {**settings.RTC, "MAX_LOADED": 2}
    for name in "abc":
        service.live_state(service.create_datastore(name, "todo"))
    assert len(doc_cache) == 2


def test_old_checkpoints_are_thinned(settings):
    settings.RTC = {**settings.RTC, "CHECKPOINT_EVERY": 2, "CHECKPOINTS_KEPT": 3}
    datastore = service.create_datastore("d", "todo")
    edit_many(datastore, 60)
    serials = list(
        Checkpoint.objects.filter(datastore=datastore)
        .order_by("-serial")
        .values_list("serial", flat=True)
    )
    assert serials[:3] == [60, 58, 56]  # the newest are all there
    assert serials[3:] == [40, 20, 2]  # then the first of every 20 serials
    datastore.refresh_from_db()
    for serial in (1, 7, 33, 60):  # time travel still works everywhere
        assert as_json(history.doc_at(datastore, serial)) == as_json(
            history.replay(datastore, serial)
        )
