"""Making a document's content equal to another state's (``jupyter_sync.document_content``):
the result equals the target, cells both states have keep their Yjs identity, the ``state`` map
is left alone, and the operations, applied to a peer holding the starting state, bring it to the
target too (what the fork room and a restore rely on)."""

from __future__ import annotations

from jupyter_ydoc import YNotebook
from pycrdt import Array, Doc, Map, Text

from jupyter_sync.document_content import content, make_content_equal
from tests.support.notebooks import code


def notebook(*cells: tuple[str, str]) -> Doc:
    doc = Doc()
    YNotebook(doc).set(
        {
            "cells": [code(cell_id, source) for cell_id, source in cells],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )
    return doc


def copy_of(doc: Doc, client_id: int | None = None) -> Doc:
    copied = Doc() if client_id is None else Doc(client_id=client_id)
    copied.apply_update(doc.get_update())
    return copied


def test_a_notebook_goes_back_to_an_old_state_and_a_peer_follows_the_operations():
    now = notebook(("a", "x = 1"), ("b", "y = 2"), ("c", "z = 3"))
    old = copy_of(now)
    cells = now.get("cells", type=Array)
    kept = cells[0]
    with now.transaction():
        kept["source"].insert(5, "0")
        del cells[1]
        cells.append(Map({"id": "d", "cell_type": "markdown", "source": Text("# d")}))
        now.get("meta", type=Map)["metadata"]["kernelspec"]["name"] = "other"
        now.get("state", type=Map)["hash"] = "h1"
    peer = copy_of(now)
    peer_cell = peer.get("cells", type=Array)[0]  # the cell both states have, before

    view = copy_of(now, client_id=4242)
    before = view.get_state()
    make_content_equal(view, old, "notebook")
    assert content(view, "notebook") == content(old, "notebook")
    state = view.get("state", type=Map).to_py()
    assert state == now.get("state", type=Map).to_py() and state["hash"] == "h1"
    peer.apply_update(view.get_update(before))
    assert content(peer, "notebook") == content(old, "notebook")
    # The cell both states have is the same Yjs cell, its source edited, not replaced.
    assert str(peer_cell["source"]) == "x = 1"
    assert peer.get("cells", type=Array)[0]["source"].to_py() == "x = 1"


def test_moved_cells_and_a_file_text_with_other_scripts():
    now = notebook(("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"))
    target = notebook(("d", "4"), ("a", "1"), ("c", "three"), ("e", "5"))
    make_content_equal(now, target, "notebook")
    assert content(now, "notebook") == content(target, "notebook")

    text, wanted = Doc(), Doc()
    text.get("source", type=Text).insert(0, "héllo wörld\nzweite Zeile")
    wanted.get("source", type=Text).insert(0, "hello 🌍 world\nzweite Zeile!")
    make_content_equal(text, wanted, "file")
    assert str(text.get("source", type=Text)) == "hello 🌍 world\nzweite Zeile!"
