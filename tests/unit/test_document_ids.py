"""Document ids in both forms a client sends them: bare, or jupyter-collaboration's room id."""

from __future__ import annotations

import pytest

from jupyter_sync.document_ids import (
    BadDocumentId,
    DocumentId,
    NotANotebook,
    WrongType,
    notebook_only,
    parse_document_id,
    parse_room_id,
    room_id,
)


def test_a_bare_id_and_a_room_id_name_the_same_record():
    assert parse_document_id("4f1c") == DocumentId("4f1c")
    assert parse_document_id("json:notebook:4f1c") == DocumentId("4f1c", "json", "notebook")
    assert parse_document_id("text:file:4f1c") == DocumentId("4f1c", "text", "file")
    # The id after the type is taken whole: any record id can be named as a room id.
    assert parse_document_id("json:notebook:a:b").id == "a:b"
    assert parse_document_id(room_id("notebook", "x")) == DocumentId("x", "json", "notebook")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "json:notebook",  # no id
        "json:notebook:",
        "a:b",
        "JupyterLab:globalAwareness",
        "text:notebook:4f1c",  # a notebook is json
        "json:file:4f1c",
        "blob:file:4f1c",
        "notebook:json:4f1c",
    ],
)
def test_anything_else_is_a_bad_document_id(value):
    with pytest.raises(BadDocumentId) as refused:
        parse_document_id(value)
    assert refused.value.code == "bad-document-id"
    assert "<format>:<type>:<id>" in str(refused.value) or "supported" in str(refused.value)


def test_a_room_must_be_in_room_form():
    assert parse_room_id("json:notebook:f").id == "f"
    with pytest.raises(BadDocumentId):
        parse_room_id("f")


def test_a_room_id_must_match_the_records_type_and_cells_run_in_notebooks_only():
    notebook = parse_document_id("json:notebook:n")
    notebook.check_type("notebook")
    notebook.check_type(None)  # not opened yet: the supernode judges it once it knows
    parse_document_id("n").check_type("file")  # a bare id says nothing of the type
    with pytest.raises(WrongType) as refused:
        notebook.check_type("file")
    assert refused.value.code == "wrong-type" and "text:file" in str(refused.value)
    notebook_only("notebook", "n")
    notebook_only(None, "n")
    with pytest.raises(NotANotebook) as refused:
        notebook_only("file", "t")
    assert refused.value.code == "not-a-notebook"
