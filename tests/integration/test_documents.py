"""Notebook and file datastores accept what jupyter_ydoc writes, and refuse other shapes."""

from __future__ import annotations

import pytest
from jupyter_ydoc import YNotebook, YUnicode
from pycrdt import Array, Doc, Map, Text

from tables import service
from tables.service import Proposal, Status

pytestmark = pytest.mark.django_db(transaction=True)

NOTEBOOK = {
    "nbformat": 4,
    "nbformat_minor": 5,
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    "cells": [
        {"id": "md", "cell_type": "markdown", "metadata": {}, "source": "# Title"},
        {
            "id": "code",
            "cell_type": "code",
            "metadata": {},
            "source": "print('hi')",
            "execution_count": 1,
            "outputs": [{"output_type": "stream", "name": "stdout", "text": "hi\n"}],
        },
    ],
}


def test_a_notebook_written_by_jupyter_ydoc_is_accepted_and_read_back():
    datastore = service.create_datastore("nb", "notebook")
    ynotebook = YNotebook(Doc())
    ynotebook.set(NOTEBOOK)
    outcome = service.write_one(datastore, Proposal(ynotebook.ydoc.get_update()))
    assert outcome.status is Status.STORED
    state, _ = service.live_python(datastore)
    assert state == ynotebook.get()
    assert [c["source"] for c in state["cells"]] == ["# Title", "print('hi')"]


def edit(datastore, mutate) -> service.Outcome:
    state, _ = service.live_state(datastore)
    doc = Doc()
    doc.apply_update(state)
    before = doc.get_state()
    with doc.transaction():
        mutate(doc)
    return service.write_one(datastore, Proposal(doc.get_update(before)))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.get("cells", type=Array).append(Map({"cell_type": "poem"})), "cell_type"),
        (lambda d: d.get("cells", type=Array).append("not a cell"), "a cell must be a map"),
        (
            lambda d: d.get("cells", type=Array).append(
                Map({"cell_type": "code", "source": "plain str"})
            ),
            "source: expected a shared text",
        ),
        (lambda d: d.get("extra", type=Map).__setitem__("x", 1), "unknown root 'extra'"),
    ],
)
def test_notebook_shape_violations_are_refused(mutate, message):
    datastore = service.create_datastore("nb", "notebook")
    outcome = edit(datastore, mutate)
    assert outcome.status is Status.REJECTED and message in outcome.error
    assert service.live_python(datastore)[0]["cells"] == []


def test_a_file_written_by_jupyter_ydoc():
    datastore = service.create_datastore("f", "file")
    yfile = YUnicode(Doc())
    yfile.set("line one\n")
    assert service.write_one(datastore, Proposal(yfile.ydoc.get_update())).status is Status.STORED
    edit(datastore, lambda d: d.get("source", type=Text).insert(9, "line two\n"))
    assert service.live_python(datastore)[0]["source"] == "line one\nline two\n"
    refused = edit(datastore, lambda d: d.get("other", type=Text).insert(0, "x"))
    assert refused.status is Status.REJECTED and "unknown root 'other'" in refused.error


def test_freeform_accepts_any_yjs_document():
    datastore = service.create_datastore("free", "freeform")
    assert edit(datastore, lambda d: d.get("anything", type=Text).insert(0, "hi")).ok
    assert edit(datastore, lambda d: d.get("else", type=Array).append(1)).ok
    datastore.refresh_from_db()
    assert datastore.last_serial == 2


def test_a_loaded_notebook_keeps_nothing_of_an_applied_update():
    """The write path reads the update's events and effective bytes, then lets go of them: a
    notebook's opening update holds every cell, and its events a Python wrapper of each, which
    kept until the next write cost the loaded document several times its size."""
    from tables.loaded import doc_cache

    datastore = service.create_datastore("nb", "notebook")
    ynotebook = YNotebook(Doc())
    ynotebook.set(NOTEBOOK)
    assert service.write_one(datastore, Proposal(ynotebook.ydoc.get_update())).status is (
        Status.STORED
    )
    loaded = doc_cache.peek(datastore.pk)
    assert loaded is not None
    assert loaded._events == {} and loaded._updates == []
