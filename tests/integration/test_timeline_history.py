"""The timeline's forks on the history alone (``jupyter_sync.collaboration.timeline``): points
sampled from a long history, each shown exactly as ``history.doc_at`` has it, and restores of
notebooks and files as one transaction, whatever happened to the live document since."""

from __future__ import annotations

import itertools

import pytest
from django.contrib.auth.models import User
from jupyter_ydoc import YNotebook
from pycrdt import Array, Doc, Map, Text

from jupyter_sync.collaboration import timeline
from jupyter_sync.document_content import content
from jupyter_sync.models import TimelineFork
from tables import history, service
from tables.models import Transaction
from tables.permissions import grant
from tests.support.factories import Client
from tests.support.notebooks import code_cells

pytestmark = pytest.mark.django_db(transaction=True)


def new_notebook(datastore, author_id: int, *sources: str) -> None:
    """The notebook's first transaction, laid out by jupyter_ydoc."""
    doc = Doc()
    cells = code_cells(*sources, first=0)
    YNotebook(doc).set({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    proposal = service.Proposal(doc.get_update(), author_id=author_id)
    assert service.write_one(datastore, proposal).ok


@pytest.fixture
def owner():
    return User.objects.create_user("olga", first_name="Olga")


def test_a_long_history_is_sampled_evenly_and_every_point_shows_its_serial(owner):
    datastore = service.create_datastore("doc-long", "notebook", owner)
    new_notebook(datastore, owner.pk, "a = 1", "b = 2", "c = 3")
    client = Client(datastore, author_id=owner.pk)
    for number in range(56):
        if number % 9 == 4:
            assert client.send(lambda doc: doc.get("cells", type=Array).pop(0)).ok
        elif number % 9 == 8:
            cell = Map({"id": f"m{number}", "cell_type": "markdown", "source": Text("# m")})
            assert client.send(lambda doc, cell=cell: doc.get("cells", type=Array).append(cell)).ok
        else:
            assert client.send(
                lambda doc: doc.get("cells", type=Array)[-1]["source"].insert(0, "x")
            ).ok
    datastore.refresh_from_db()
    assert datastore.last_serial == 57

    fork = timeline.start_fork(datastore, "long", owner, max_points=10)
    points = timeline.points(fork)
    serials = [point.serial for point in points]
    assert len(points) == 10 and serials[0] == 1 and serials[-1] == 57
    assert serials == sorted(set(serials))
    assert all(5 <= later - earlier <= 7 for earlier, later in itertools.pairwise(serials))
    rows = Transaction.objects.filter(datastore=datastore, serial__in=serials)
    times = dict(rows.values_list("serial", "created_at"))
    assert [point.timestamp for point in points] == [times[s].timestamp() for s in serials]
    assert {point.author for point in points} == {"Olga"}

    for position in range(8, -1, -1):
        moved = timeline.move(fork.id, owner, "undo", 1)
        assert (moved.position, moved.serial) == (position, serials[position])
        view = timeline.view_doc(TimelineFork.objects.get(pk=fork.id))
        assert content(view, "notebook") == content(
            history.doc_at(datastore, moved.serial), "notebook"
        )
    assert timeline.move(fork.id, owner, "undo", 5).update is None  # at the oldest already
    moved = timeline.move(fork.id, owner, "redo", 100)
    assert (moved.position, moved.serial) == (9, 57)
    view = timeline.view_doc(TimelineFork.objects.get(pk=fork.id))
    assert content(view, "notebook") == content(history.doc_at(datastore), "notebook")


def test_a_file_is_restored_over_edits_made_since_the_timeline_opened(owner):
    datastore = service.create_datastore("doc-file", "file", owner)
    alice = Client(datastore, author_id=owner.pk)
    for text in ("hello", " world", "!"):
        assert alice.send(
            lambda doc, text=text: doc.get("source", type=Text).insert(
                len(doc.get("source", type=Text)), text
            )
        ).ok
    fork = timeline.start_fork(datastore, "file-id", owner)
    assert timeline.move(fork.id, owner, "undo", 2).serial == 1
    # The live document moves on after the timeline opened; the restore still brings serial 1.
    assert alice.send(lambda doc: doc.get("source", type=Text).insert(0, ">> ")).ok
    datastore.refresh_from_db()
    before = list(Transaction.objects.filter(datastore=datastore).values_list("serial", "update"))

    viewer = User.objects.create_user("vic")
    grant(datastore, viewer, "viewer")
    with pytest.raises(timeline.TimelineRefused) as refused:
        timeline.restore(fork.id, "text:file:file-id", viewer)
    assert refused.value.status == 404  # not theirs; their own fork would be refused 403
    viewer_fork = timeline.start_fork(datastore, "file-id", viewer)
    with pytest.raises(timeline.TimelineRefused) as refused:
        timeline.restore(viewer_fork.id, "text:file:file-id", viewer)
    assert (refused.value.status, refused.value.code) == (403, "permission-denied")

    restored = timeline.restore(fork.id, "text:file:file-id", owner)
    assert restored.outcome.status is service.Status.STORED and restored.serial == 1
    row = Transaction.objects.get(datastore=datastore, serial=restored.outcome.serial)
    assert (row.origin, row.author_id, row.serial) == ("restore", owner.pk, before[-1][0] + 1)
    datastore.refresh_from_db()
    assert str(history.doc_at(datastore, row.serial).get("source", type=Text)) == "hello"
    kept = Transaction.objects.filter(datastore=datastore, serial__lte=before[-1][0])
    assert list(kept.values_list("serial", "update")) == before
    assert not TimelineFork.objects.filter(pk=fork.id).exists()
