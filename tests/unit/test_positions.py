"""Sparse cell positions: inserting keeps order, and renumbering stays local and rare however
the insertions fall (the database side is in tests/integration/test_notebook_projection.py)."""

from __future__ import annotations

import random
from bisect import bisect_left
from itertools import pairwise

import pytest

from jupyter_sync import positions


class Ordered:
    """A notebook's positions in memory, renumbered as the projector renumbers its rows."""

    def __init__(self, count: int):
        self.labels = positions.initial(count)
        self.rewritten = 0  # existing positions changed by renumbering
        self.renumberings = 0

    def insert(self, at: int, count: int = 1) -> list[int]:
        """``count`` cells inserted before the cell at ``at`` (its index)."""
        left = self.labels[at - 1] if at > 0 else None
        right = self.labels[at] if at < len(self.labels) else None
        new = positions.between(count, left, right)
        if new is None:
            new = self.renumber(left, right, count)
            # The existing cells kept their order and indices, under new positions.
            left = self.labels[at - 1] if at > 0 else None
            right = self.labels[at] if at < len(self.labels) else None
        assert all(a < b for a, b in pairwise(new))
        assert left is None or left < new[0]
        assert right is None or new[-1] < right
        self.labels[at:at] = new
        return new

    def renumber(self, left: int | None, right: int | None, count: int) -> list[int]:
        anchor, after = (left, True) if left is not None else (right, False)
        assert anchor is not None
        level = next(
            n
            for n in range(positions.first_level(count), positions.BITS + 1)
            if positions.fits(self.labels, anchor, n, count)
        )
        low = anchor >> level << level
        start, end = bisect_left(self.labels, low), bisect_left(self.labels, low + (1 << level))
        moved, new = positions.renumbered(self.labels[start:end], anchor, level, count, after=after)
        self.rewritten += sum(a != b for a, b in zip(self.labels[start:end], moved, strict=True))
        self.renumberings += 1
        self.labels[start:end] = moved
        return new

    def check(self) -> None:
        assert all(0 <= a < b < positions.LIMIT for a, b in pairwise(self.labels))


def test_numbered_afresh_centred_and_step_apart():
    labels = positions.initial(1001)
    assert labels[1] - labels[0] == positions.STEP
    assert labels[0] - 0 == pytest.approx(positions.LIMIT - labels[-1], abs=positions.STEP)
    huge = positions.initial(10_000_000)
    assert huge[0] >= 0 and huge[-1] < positions.LIMIT
    assert all(a < b for a, b in pairwise(huge))


def test_between_leaves_room_and_says_when_there_is_none():
    assert positions.between(3, 10, 14) == [11, 12, 13]
    assert positions.between(4, 10, 14) is None
    assert positions.between(1, 100, None) == [100 + positions.STEP]
    assert positions.between(2, None, 3 * positions.STEP) == [positions.STEP, 2 * positions.STEP]


@pytest.mark.parametrize("where", ["after the last inserted", "before the last inserted"])
def test_many_inserts_at_one_place_renumber_a_few_cells_now_and_then(where):
    """Each insertion halves the gap it falls in, so a place runs out after about 32 of them;
    what renumbering rewrites stays a small constant per insertion, amortised."""
    notebook = Ordered(1001)
    inserts = 5000
    for i in range(inserts):
        notebook.insert(500 + i if where.startswith("after") else 500)
    notebook.check()
    assert len(notebook.labels) == 1001 + inserts
    assert notebook.renumberings > 0  # the gap did run out
    assert notebook.rewritten / inserts < 10, notebook.rewritten


def test_random_inserts_stay_ordered_and_rarely_renumber():
    rng = random.Random(7)
    notebook = Ordered(11)
    for _ in range(20_000):
        notebook.insert(rng.randint(0, len(notebook.labels)), rng.choice([1, 1, 1, 3]))
    notebook.check()
    assert notebook.rewritten / 20_000 < 1


def test_appending_and_prepending_never_renumber():
    notebook = Ordered(3)
    for _ in range(2000):
        notebook.insert(len(notebook.labels))
        notebook.insert(0)
    notebook.check()
    assert notebook.renumberings == 0
