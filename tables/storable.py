"""Text every database the write path uses can store.

PostgreSQL's ``text`` and ``jsonb`` hold no NUL character, and no database driver can encode a
lone surrogate as UTF-8. A transaction carrying one, in its id, store id or origin, or in what
it changes (a key, a record id, a value: the summary and the projections store those), would
make the whole group-commit database transaction fail, with every other writer's transaction
batched with it. So it is refused on its own, the same on every database, before anything is
stored: pure checks over values already decoded.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tables.schema import Analysis


class UnstorableText(ValueError):
    """A NUL character or a lone surrogate in something the write path would store."""

    code = "bad-text"


def _bad(text: str) -> str | None:
    if "\x00" in text:
        return "a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone surrogate"
    return None


def storable(text: str) -> bool:
    """Whether a database can store ``text`` (and so look it up)."""
    return _bad(text) is None


def _strings(value: Any) -> Iterable[str]:
    """Every string in a JSON-like value (keys too); iterative over lists and dicts."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)


def check_text(what: str, value: Any) -> None:
    """Raise ``UnstorableText`` naming ``what`` if any string in ``value`` cannot be stored."""
    for text in _strings(value):
        problem = _bad(text)
        if problem:
            raise UnstorableText(f"{what} contains {problem}, which cannot be stored")


def check_analysis(analysis: Analysis) -> None:
    """What a transaction changes, as its summary and the projections would store it: the
    tables and record ids it touched, and each change's place, key and new values (old values
    were stored before)."""
    check_text("a table or record id", sorted(analysis.touched))
    for change in analysis.changes:
        check_text("a key", [change.root, list(change.path), change.key])
        check_text("a value", [change.new, [value for _, value in change.inserted]])
