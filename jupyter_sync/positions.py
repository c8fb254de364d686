"""Sparse positions that order a notebook's ``Cell`` rows.

A cell's position is an integer in ``[0, LIMIT)``; the rows sort by it in document order. Cells
are numbered ``STEP`` apart, so a cell inserted between two others takes a number between theirs
and no other row is written. When the numbers between two neighbours run out (about 32 cells
inserted at one place, each halving the gap), a neighbourhood is renumbered: the smallest aligned
range of positions around the place (``2**level`` numbers starting at a multiple of
``2**level``) that holds at most ``capacity(level)`` cells, spread evenly over that range. The
capacity shrinks relative to the range as it grows (``(4/3)**level`` cells in ``2**level``
numbers), so a renumbered range is left with room that grows with its size: this is the classic
order-maintenance scheme, whose renumbering costs O(log n) rows per insertion amortised, and in
practice a few rows every few dozen insertions at one place.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence

BITS = 62  # positions fit a signed 64-bit column (SQLite INTEGER, PostgreSQL bigint) with room
LIMIT = 1 << BITS
STEP = 1 << 32  # between neighbours, as numbered afresh or appended


def capacity(level: int) -> int:
    """How many cells the aligned range of ``2**level`` positions may hold after renumbering."""
    return int((4 / 3) ** level)


def initial(count: int) -> list[int]:
    """Positions for ``count`` cells numbered afresh: ``STEP`` apart, centred in the range so
    that cells can be added before the first as well as after the last."""
    if count <= 0:
        return []
    step = min(STEP, LIMIT // (count + 1))
    start = (LIMIT - step * (count - 1)) // 2
    return [start + step * i for i in range(count)]


def spread(count: int, low: int, high: int) -> list[int] | None:
    """``count`` increasing positions strictly between ``low`` and ``high``, evenly apart; None
    when there are fewer than ``count`` numbers between them."""
    if high - low - 1 < count:
        return None
    return [low + (high - low) * j // (count + 1) for j in range(1, count + 1)]


def between(count: int, left: int | None, right: int | None) -> list[int] | None:
    """Positions for ``count`` cells inserted between the cells at ``left`` and ``right`` (None:
    no cell on that side); None when there is no room (the caller renumbers). Appending and
    prepending step by ``STEP`` so that a notebook written top to bottom never runs out."""
    low = -1 if left is None else left
    high = LIMIT if right is None else right
    if right is None and low + STEP * count < LIMIT:
        return [low + STEP * j for j in range(1, count + 1)]
    if left is None and high - STEP * count >= 0:
        return [high - STEP * (count + 1 - j) for j in range(1, count + 1)]
    return spread(count, low, high)


def first_level(count: int) -> int:
    """The smallest level whose range could hold ``count`` new cells besides a neighbour."""
    level = 1
    while capacity(level) < count + 1:
        level += 1
    return level


def fits(positions: Sequence[int], anchor: int, level: int, count: int) -> bool:
    """Whether the aligned range of ``level`` around ``anchor`` can take ``count`` more cells,
    given the sorted ``positions`` (which must cover that range)."""
    low = anchor >> level << level
    held = bisect_left(positions, low + (1 << level)) - bisect_left(positions, low)
    return held + count <= capacity(level)


def renumbered(
    positions: Sequence[int], anchor: int, level: int, count: int, *, after: bool
) -> tuple[list[int], list[int]]:
    """Spread the cells in the aligned range of ``level`` around ``anchor`` and ``count`` new
    ones, placed right after the cell at ``anchor`` (``after``) or right before it, evenly over
    that range. ``positions``: the sorted positions of the range's cells. Returns the range's
    cells' new positions (in order) and the new cells' positions."""
    low = anchor >> level << level
    size = 1 << level
    total = len(positions) + count
    if total > size:
        raise ValueError("no room in the range")
    labels = [low + ((2 * j + 1) * size) // (2 * total) for j in range(total)]
    split = bisect_right(positions, anchor) if after else bisect_left(positions, anchor)
    return labels[:split] + labels[split + count :], labels[split : split + count]
