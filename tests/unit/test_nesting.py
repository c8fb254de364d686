"""``tables.nesting``: how deep an update nests, read from its bytes; real updates from pycrdt
(the same v1 encoding as Yjs) pass and are measured right, hand-made ones past any decoder's
stack are refused without being decoded; with a document's ``Depths``, an update is measured
where it lands in that document."""

from __future__ import annotations

import random

import pytest
from jupyter_ydoc import YNotebook
from pycrdt import Array, Doc, Map, Text

from tables.nesting import (
    UNKNOWN,
    Depths,
    TooDeep,
    check_nesting,
    json_depth,
    json_nesting_exceeds,
)
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


class Peers:
    """Docs of different clients kept in sync, and a server's (deleted content kept)."""

    def __init__(self, count: int):
        self.docs = [Doc(client_id=client) for client in range(1, count + 1)]
        self.server = Doc(skip_gc=True)

    def edit(self, which: int, mutate) -> bytes:
        update = change(self.docs[which], mutate)
        for doc in [*self.docs, self.server]:
            doc.apply_update(update)
        return update


def innermost(doc: Doc) -> Map:
    inner = doc.get("m", type=Map)
    while "k" in inner:
        inner = inner["k"]
    return inner


def nest_one_more(doc: Doc) -> None:
    innermost(doc)["k"] = Map()


def test_types_nested_by_several_clients_are_measured_in_any_order():
    """Structs are encoded client after client, so an item may name a parent encoded after it:
    two clients nesting maps in turn, merged into one update 301 levels deep."""
    peers = Peers(2)
    for step in range(300):
        peers.edit(step % 2, nest_one_more)
    state = peers.docs[0].get_update()
    assert check_nesting(state, 301).deepest == 301
    with pytest.raises(TooDeep, match="levels deep; at most 100 are accepted"):
        check_nesting(state, 100)


def test_an_update_is_measured_where_it_lands_in_the_document():
    peers = Peers(2)
    for step in range(30):
        peers.edit(step % 2, nest_one_more)
    depths = Depths.of_state(peers.docs[0].get_update())
    copy = Doc(client_id=3)
    copy.apply_update(peers.docs[0].get_update())
    one_more = change(copy, nest_one_more)
    assert check_nesting(one_more, 100).deepest == 2  # by itself: a map in a root type
    assert check_nesting(one_more, 100, within=depths).deepest == 32
    check_nesting(one_more, 32, within=depths)
    with pytest.raises(TooDeep, match="32 levels deep; at most 31"):
        check_nesting(one_more, 31, within=depths)
    # A value set in the innermost map nests from there.
    depths.add(check_nesting(one_more, 100, within=depths))
    value = change(copy, lambda d: innermost(d).__setitem__("v", [[1]]))
    assert check_nesting(value, 100, within=depths).deepest == 34
    # An id the document lacks: counted as in a root type (the write path refuses it as
    # missing-dependencies, since it cannot be integrated).
    assert check_nesting(one_more, 100, within=Depths()).deepest == 2


def test_depths_kept_update_by_update_are_the_depths_of_the_whole_state():
    """Random edits by three clients (maps in maps, arrays, text, values, deletions), each
    update added to the depths as the write path adds them: every id then has the depth the
    whole state gives it."""
    rng = random.Random(11)
    peers = Peers(3)
    kept = Depths()

    def mutate(doc: Doc) -> None:
        target = doc.get("m", type=Map)
        while rng.random() < 0.9:
            values = target.values() if isinstance(target, Map) else list(target)
            children = [value for value in values if isinstance(value, (Map, Array))]
            if not children:
                break
            target = rng.choice(children)
        kind = rng.randrange(5)
        if isinstance(target, Array):
            if kind == 0 and len(target):
                del target[rng.randrange(len(target))]
            else:
                new = rng.choice([Map(), Array(), Text("ab"), {"x": [1]}, 5])
                target.insert(rng.randint(0, len(target)), new)
            return
        key = rng.choice("abcd")
        if kind == 0 and key in target:
            del target[key]
        elif kind == 1 and isinstance(target.get(key), Text):
            target[key].insert(0, "xy")
        else:
            target[key] = rng.choice([Map(), Array(), Text("t"), {"y": {"z": 1}}, "s"])

    for _ in range(400):
        update = peers.edit(rng.randrange(3), mutate)
        kept.add(check_nesting(update, None, within=kept))
    state = peers.server.get_update()
    whole = Depths.of_state(state)
    measured = check_nesting(state, None)
    assert measured.deepest > 4
    ids = 0
    for client, clock, end, container in measured.spans:
        for tick in range(clock, end):
            assert kept.find(client, tick) == whole.find(client, tick) == container
            ids += 1
    assert ids > 400
    assert kept.find(1, 10**6) == UNKNOWN


@pytest.mark.parametrize(
    "update",
    [b"", b"\x01", b"\x01\x01\x01\x00\xff", any_update(b"\x75\x05\x7e"), any_update(b"\x10")],
)
def test_bytes_that_are_not_an_update_are_malformed(update):
    with pytest.raises(MalformedUpdate):
        check_nesting(update, 100)


def test_json_nesting_is_measured_without_parsing_and_stops_past_the_limit():
    text = '{"a": "[[[[{{", "b": [1, {"c": "\\"]\\\\"}]}'  # brackets in strings do not count
    assert not json_nesting_exceeds(text, 3)
    assert json_nesting_exceeds(text, 2)
    assert json_nesting_exceeds(b"[" * 1_000_000, 100)  # bytes too; no closing needed
    assert not json_nesting_exceeds("[]" * 100_000, 1)
    assert not json_nesting_exceeds("[[1]]", 2) and json_nesting_exceeds("[[1]]", 1)
    assert json_depth(text) == 3
