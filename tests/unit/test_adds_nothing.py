"""``tables.ydoc.adds_nothing``: whether a client's update would change a document, judged
without applying it (how a reader's sync step 2 is told from an edit)."""

from __future__ import annotations

import pytest
from pycrdt import Doc, Map, Text

from tables.ydoc import MalformedUpdate, adds_nothing


def server_with_history() -> Doc:
    doc = Doc()
    text = doc.get("t", type=Text)
    text += "hello world"
    del text[0:6]
    doc.get("m", type=Map)["k"] = 1
    return doc


def judged(server: Doc, update: bytes) -> bool:
    state_vector = server.get_state()
    return adds_nothing(update, state_vector, server.get_update(state_vector))


def copy(server: Doc) -> Doc:
    doc = Doc()
    doc.apply_update(server.get_update())
    return doc


def test_what_a_synced_reader_sends_adds_nothing():
    server = server_with_history()
    reader = copy(server)
    step2 = reader.get_update(server.get_state())
    assert step2 != b"\x00\x00"  # it carries the document's deletions
    assert judged(server, step2)
    assert judged(server, b"\x00\x00")
    assert judged(server, server.get_update())  # the whole document again


@pytest.mark.parametrize(
    "edit",
    [
        lambda doc: doc.get("t", type=Text).insert(0, "#"),
        lambda doc: doc.get("t", type=Text).__delitem__(slice(0, 1)),  # a deletion only
        lambda doc: doc.get("m", type=Map).__setitem__("k", 2),
        lambda doc: doc.get("other", type=Map).__setitem__("x", 1),
    ],
    ids=["insert", "delete", "overwrite", "new-root"],
)
def test_any_change_adds_something(edit):
    server = server_with_history()
    reader = copy(server)
    before = reader.get_state()
    edit(reader)
    assert not judged(server, reader.get_update(before))
    assert not judged(server, reader.get_update(server.get_state()))  # as a sync step 2


def test_what_the_server_lacks_adds_something():
    server = Doc()
    other = server_with_history()
    assert not judged(server, other.get_update())


def test_bytes_that_are_not_an_update_are_malformed():
    with pytest.raises(MalformedUpdate):
        judged(server_with_history(), b"\xff\xff\xff")
