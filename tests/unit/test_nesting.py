"""``tables.nesting``: how deep an update nests, read from its bytes; real updates from pycrdt
(the same v1 encoding as Yjs) pass and are measured right, hand-made ones past any decoder's
stack are refused without being decoded."""

from __future__ import annotations

import random

import pytest
from jupyter_ydoc import YNotebook
from pycrdt import Array, Doc, Map, Text

from tables.nesting import TooDeep, check_nesting, json_depth
from tables.ydoc import MalformedUpdate
from tests.support.crafted import any_update, nested_arrays


def change(doc: Doc, mutate) -> bytes:
    updates: list[bytes] = []
    subscription = doc.observe(lambda event: updates.append(event.update))
    with doc.transaction():
        mutate(doc)
    doc.unobserve(subscription)
    return updates[0]


def test_values_are_measured_in_arrays_and_maps():
    doc = Doc()
    value = {"a": [1, {"b": [[None]]}]}  # dict, list, dict, list, list: 5 levels
    update = change(doc, lambda d: d.get("m", type=Map).__setitem__("k", value))
    check_nesting(update, 6)  # the root map is one more
    with pytest.raises(TooDeep, match="more than 5 levels"):
        check_nesting(update, 5)


def test_shared_types_in_shared_types_are_measured_through_parents_and_origins():
    doc = Doc()

    def nest(d: Doc) -> None:
        inner = d.get("m", type=Map)
        for _ in range(30):
            inner["k"] = Map()
            inner = inner["k"]
        inner["t"] = Text("hello")
        inner["t"] += " world"  # an item whose origin is in the update

    update = change(doc, nest)
    check_nesting(update, 32)
    with pytest.raises(TooDeep):
        check_nesting(update, 31)


def test_values_past_any_decoders_stack_are_refused_without_decoding():
    for depth in (100, 100_000, 10_000_000):
        with pytest.raises(TooDeep, match="more than 100 levels"):
            check_nesting(any_update(nested_arrays(depth)), 100)
    check_nesting(any_update(nested_arrays(99)), 100)
    deep_json = "[" * 50_000 + "]" * 50_000
    assert json_depth(deep_json) == 50_000
    assert json_depth('{"a": "[[[[", "b": [1, {"c": "\\"]"}]}') == 3


def test_real_documents_pass_and_every_struct_is_read():
    """Random edits of a notebook (text with accents and emoji, cells, outputs, metadata,
    deletions), each its own transaction: every update reads through to its delete set."""
    rng = random.Random(7)
    doc = Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    YNotebook(doc).set(
        {
            "cells": [
                {"cell_type": "code", "source": "x = 1", "metadata": {}, "outputs": [], "id": "c1"}
            ],
            "metadata": {"kernelspec": {"name": "python3"}, "widgets": {"state": {"a": [1]}}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )
    cells = doc.get("cells", type=Array)
    for step in range(200):
        cell = cells[rng.randrange(len(cells))]
        source = cell["source"]
        with doc.transaction():
            kind = rng.randrange(5)
            if kind == 0:
                source.insert(rng.randint(0, len(source)), rng.choice(["a", "é", "😀", "\n"]))
            elif kind == 1 and len(source) > 1:
                start = rng.randrange(len(source) - 1)
                del source[start : start + 1]
            elif kind == 2:
                cell["outputs"].append({"output_type": "stream", "name": "stdout", "text": "x"})
            elif kind == 3:
                cell["execution_count"] = step
            else:
                new = Map({"source": Text("y"), "outputs": Array(), "id": f"n{step}"})
                cells.insert(rng.randint(0, len(cells)), new)
    assert len(updates) > 150
    for update in [*updates, doc.get_update()]:
        check_nesting(update, 10)


@pytest.mark.parametrize(
    "update",
    [b"", b"\x01", b"\x01\x01\x01\x00\xff", any_update(b"\x75\x05\x7e"), any_update(b"\x10")],
)
def test_bytes_that_are_not_an_update_are_malformed(update):
    with pytest.raises(MalformedUpdate):
        check_nesting(update, 100)
