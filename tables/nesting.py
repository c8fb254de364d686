"""How deep a Yjs update nests, read from its bytes without decoding it.

The CRDT library decodes a value nested in a value recursively, on the native stack: one update
nesting arrays a hundred thousand deep kills the process that decodes it (SIGSEGV), and a few
thousand levels make every browser fail to load the document for good. So every update from a
client is measured here, by a pure, iterative scan of the v1 encoding, before anything decodes
it, and refused past ``RTC_MAX_NESTING``. Measured: values (``ContentAny``, and the JSON in
``ContentJSON``, embeds and formats) and shared types nested in shared types (through the parent
or origin each item names, in the update or, given the document's ``Depths``, in the document).
One level is one array, map or shared type.
"""

from __future__ import annotations

import bisect
import re

from tables.conf import rtc_settings
from tables.ydoc import MalformedUpdate

# Item content refs (the low five bits of an item's info byte).
GC, DELETED, JSON, BINARY, STRING, EMBED, FORMAT, TYPE, ANY, DOC, SKIP = range(11)
XML_ELEMENT, XML_HOOK = 3, 5  # type refs followed by a name
KNOWN_TYPE_REFS = range(7)  # Array, Map, Text, XmlElement, XmlFragment, XmlHook, XmlText
HAS_ORIGIN, HAS_RIGHT_ORIGIN, HAS_PARENT_SUB = 0x80, 0x40, 0x20


class TooDeep(MalformedUpdate):
    """An update nesting values or shared types deeper than allowed."""

    code = "too-deep"


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise MalformedUpdate("truncated update")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def var_uint(self) -> int:
        # The hot path of the scan (ids are two per item): bytes read here, not through byte().
        data, pos = self.data, self.pos
        value = shift = 0
        while True:
            if pos >= len(data):
                raise MalformedUpdate("truncated update")
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                self.pos = pos
                return value
            shift += 7
            if shift > 63:
                raise MalformedUpdate("variable-length integer too long")

    def var_int(self) -> None:
        byte = self.byte()
        shift = 6
        while byte & 0x80:
            byte = self.byte()
            shift += 7
            if shift > 70:
                raise MalformedUpdate("variable-length integer too long")

    def skip(self, count: int) -> None:
        if count < 0 or self.pos + count > len(self.data):
            raise MalformedUpdate("truncated update")
        self.pos += count

    def var_bytes(self) -> bytes:
        length = self.var_uint()
        start = self.pos
        self.skip(length)
        return self.data[start : self.pos]

    def var_string(self) -> str:
        try:
            return self.var_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedUpdate("a string in the update is not UTF-8") from None


def _any_depth(reader: _Reader, budget: int) -> int:
    """The nesting of one lib0 ``Any`` value (0 for a scalar), read iteratively; TooDeep as soon
    as it passes ``budget`` (nothing deeper is ever held)."""
    deepest = 0
    # Each entry: values still to read at that level, and whether they are an object's (keyed).
    pending: list[list[int | bool]] = [[1, False]]
    while pending:
        level = pending[-1]
        if level[0] == 0:
            pending.pop()
            continue
        level[0] -= 1
        if level[1]:
            reader.var_bytes()  # the key
        tag = reader.byte()
        if tag in (127, 126, 121, 120):  # undefined, null, false, true
            continue
        if tag == 125:
            reader.var_int()
        elif tag == 124:
            reader.skip(4)
        elif tag in (123, 122):
            reader.skip(8)
        elif tag in (119, 116):  # string, bytes
            reader.var_bytes()
        elif tag in (118, 117):  # object, array
            count = reader.var_uint()
            deepest = max(deepest, len(pending))
            if deepest > budget:
                raise TooDeep(f"a value nests more than {budget} levels deep")
            if count > len(reader.data) - reader.pos:  # every value takes a byte at least
                raise MalformedUpdate("truncated update")
            pending.append([count, tag == 118])
        else:
            raise MalformedUpdate(f"unknown value tag {tag}")
    return deepest


def json_depth(text: str) -> int:
    """The nesting of a JSON text (brackets outside strings), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


# A JSON string (skipped whole, however long) or one bracket: the only tokens nesting depends on.
_JSON_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')

# Levels a request adds around what it carries (a REST body's fields, a message's envelope), so
# a value the write path would accept is never refused for the body around it.
JSON_ENVELOPE_LEVELS = 16


def max_json_nesting() -> int:
    """The deepest JSON a request (a REST body, a JSON-protocol frame) may send:
    ``RTC_MAX_NESTING`` plus the levels of its own envelope."""
    return rtc_settings.MAX_NESTING + JSON_ENVELOPE_LEVELS


def json_nesting_exceeds(text: str | bytes, limit: int) -> bool:
    """Whether a JSON text nests deeper than ``limit`` (brackets outside strings), found without
    parsing it and stopping at the first level past the limit: Python's JSON parser recurses, so
    a body nested thousands deep must be measured before it is parsed."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if text.count("[") + text.count("{") <= limit:
        return False  # cannot nest deeper than it opens (counted in C: large frames are base64)
    depth = 0
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                return True
        elif token in "]}":
            depth -= 1
    return False


# What an item's container is named by (``_Item.ref``).
ROOT, PARENT, ORIGIN = range(3)
UNKNOWN = 0  # no depth: a GC range's, or an id the document does not have


class _Item:
    """One struct of an update, as far as depth goes."""

    __slots__ = ("alternative", "client", "clock", "inner", "length", "ref", "target", "type")

    def __init__(self, client: int, clock: int, length: int) -> None:
        self.client = client
        self.clock = clock
        self.length = length
        self.ref = ROOT
        self.target: tuple[int, int] | None = None  # the parent's or the left origin's id
        self.alternative: tuple[int, int] | None = None  # the right origin's id
        self.type = False  # a shared type: what it holds is one level deeper
        self.inner = 0  # how deep its values nest (0 for scalars)


class Measured:
    """An update's items and the depth of the type each sits in (``container``: 1 in a root
    type; a shared type's own depth is one more), for ``Depths.add`` once the update is in."""

    def __init__(self) -> None:
        self.spans: list[tuple[int, int, int, int]] = []  # (client, clock, end, container)
        self.deepest = 0


class Depths:
    """The depth of the type each item of one document sits in, by item id (client, clock).

    A Yjs update names the parent of each item it adds by the parent's id, or an item next to
    it; the id's depth is known here, so an update is measured against the document it would
    join before it is applied (``check_nesting(update, limit, within=depths)``), and no number of
    updates, each nesting one level into the last one's type, makes a document deeper than the
    limit. Built once from a document's whole state (``of_state``), then kept by ``add`` with
    each update the document takes in. Runs of clocks with the same container share one entry.
    """

    def __init__(self) -> None:
        self._starts: dict[int, list[int]] = {}
        self._runs: dict[int, list[list[int]]] = {}  # [end, container], sorted by start

    @classmethod
    def of_state(cls, state: bytes) -> Depths:
        """The depths of every item of a document whose whole state is ``state``."""
        depths = cls()
        depths.add(check_nesting(state, None))
        return depths

    def find(self, client: int, clock: int) -> int:
        """The container depth of item (client, clock); UNKNOWN when the document lacks it."""
        starts = self._starts.get(client)
        if not starts:
            return UNKNOWN
        index = bisect.bisect_right(starts, clock) - 1
        if index < 0:
            return UNKNOWN
        end, container = self._runs[client][index]
        return container if clock < end else UNKNOWN

    def add(self, measured: Measured) -> None:
        """Record the items of an update the document took in; ids it had already are kept as
        they were (an update may repeat what the document has)."""
        for client, clock, end, container in measured.spans:
            starts = self._starts.setdefault(client, [])
            runs = self._runs.setdefault(client, [])
            if not starts or clock >= runs[-1][0]:  # past everything known: the usual case
                if runs and clock == runs[-1][0] and container == runs[-1][1]:
                    runs[-1][0] = end
                else:
                    starts.append(clock)
                    runs.append([end, container])
                continue
            for low, high in self._uncovered(client, clock, end):
                index = bisect.bisect_left(starts, low)
                starts.insert(index, low)
                runs.insert(index, [high, container])

    def _uncovered(self, client: int, clock: int, end: int) -> list[tuple[int, int]]:
        """The parts of [clock, end) no run of ``client`` covers."""
        starts, runs = self._starts[client], self._runs[client]
        index = max(bisect.bisect_right(starts, clock) - 1, 0)
        gaps = []
        position = clock
        while position < end and index < len(starts):
            low, high = starts[index], runs[index][0]
            if high <= position:
                index += 1
                continue
            if low > position:
                gaps.append((position, min(low, end)))
            position = max(position, high)
            index += 1
        if position < end:
            gaps.append((position, end))
        return gaps


def check_nesting(update: bytes, limit: int | None, within: Depths | None = None) -> Measured:
    """Measure ``update``: raise ``TooDeep`` when it nests deeper than ``limit`` levels (None:
    no limit), MalformedUpdate when it is not a v1 update (structs, then a delete set, then
    nothing). ``within``: the depths of the document it is for, whose items it may name; without
    it, an item whose parent is outside the update counts as in a root type.

    Read in one pass, then each item's container is resolved through the parent or origin it
    names, in the update (in any order: clients are encoded one after the other, and an item may
    name one of a client encoded later) or in ``within``, iteratively, since chains of
    references are as long as the update is.
    """
    reader = _Reader(update)
    # Values nest inside a container at least one deep: read no deeper than that allows, so a
    # value nested past any stack is refused while being read.
    budget = limit - 1 if limit is not None else None
    items: list[_Item] = []
    for _ in range(reader.var_uint()):
        count = reader.var_uint()
        client = reader.var_uint()
        clock = reader.var_uint()
        for _ in range(count):
            info = reader.byte()
            ref = info & 0x1F
            if ref == SKIP:
                clock += reader.var_uint()
                continue
            if ref == GC:
                length = reader.var_uint()
                item = _Item(client, clock, length)
                item.ref = None  # a GC range: no parent
                items.append(item)
                clock += length
                continue
            item = _Item(client, clock, 1)
            if info & HAS_ORIGIN:
                item.ref = ORIGIN
                item.target = (reader.var_uint(), reader.var_uint())
            if info & HAS_RIGHT_ORIGIN:
                item.ref = ORIGIN
                item.alternative = (reader.var_uint(), reader.var_uint())
            if not info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN):
                if reader.var_uint() == 1:
                    reader.var_bytes()  # a root type's name
                else:
                    item.ref = PARENT
                    item.target = (reader.var_uint(), reader.var_uint())
                if info & HAS_PARENT_SUB:
                    reader.var_bytes()
            _read_content(reader, ref, item, budget, limit)
            items.append(item)
            clock += item.length
    for _ in range(reader.var_uint()):  # the delete set: client, ranges of (clock, length)
        reader.var_uint()
        for _ in range(reader.var_uint()):
            reader.var_uint()
            reader.var_uint()
    if reader.pos != len(update):
        raise MalformedUpdate("bytes after the end of the update")
    containers = _resolve(items, within)
    measured = Measured()
    for item, container in zip(items, containers, strict=True):
        if item.ref is not None:
            depth = container + 1 if item.type else container + item.inner
            measured.deepest = max(measured.deepest, depth)
            if limit is not None and depth > limit:
                raise TooDeep(f"the update nests {depth} levels deep; at most {limit} are accepted")
        if item.length > 0:
            measured.spans.append((item.client, item.clock, item.clock + item.length, container))
    return measured


def _value_depth(reader: _Reader, budget: int | None, limit: int | None) -> int:
    """``_any_depth`` within the update's budget, refused in the update's own words."""
    if budget is None:
        return _any_depth(reader, len(reader.data))
    try:
        return _any_depth(reader, budget)
    except TooDeep:
        raise TooDeep(f"the update nests more than {limit} levels deep") from None


def _read_content(
    reader: _Reader, ref: int, item: _Item, budget: int | None, limit: int | None
) -> None:
    if ref == STRING:  # most items of a document
        item.length = len(reader.var_string().encode("utf-16-le")) // 2
    elif ref == DELETED:
        item.length = reader.var_uint()
    elif ref == JSON:
        item.length = reader.var_uint()
        for _ in range(item.length):
            item.inner = max(item.inner, json_depth(reader.var_string()))
    elif ref == BINARY:
        reader.var_bytes()
    elif ref == EMBED:
        item.inner = json_depth(reader.var_string())
    elif ref == FORMAT:
        reader.var_bytes()
        item.inner = json_depth(reader.var_string())
    elif ref == TYPE:
        type_ref = reader.var_uint()
        if type_ref not in KNOWN_TYPE_REFS:
            raise MalformedUpdate(f"unknown shared type {type_ref}")
        if type_ref in (XML_ELEMENT, XML_HOOK):
            reader.var_bytes()
        item.type = True
    elif ref == ANY:
        item.length = reader.var_uint()
        for _ in range(item.length):
            item.inner = max(item.inner, _value_depth(reader, budget, limit))
    elif ref == DOC:
        reader.var_bytes()
        item.inner = _value_depth(reader, budget, limit)
    else:
        raise MalformedUpdate(f"unknown content {ref}")


class _Index:
    """The update's own items by id."""

    def __init__(self, items: list[_Item]) -> None:
        by_client: dict[int, list[tuple[int, int]]] = {}
        for index, item in enumerate(items):
            if item.length > 0:
                by_client.setdefault(item.client, []).append((item.clock, index))
        self.starts: dict[int, list[int]] = {}
        self.indices: dict[int, list[int]] = {}
        for client, entries in by_client.items():
            entries.sort()  # already sorted unless a client is listed twice
            self.starts[client] = [clock for clock, _ in entries]
            self.indices[client] = [index for _, index in entries]
        self.items = items

    def find(self, target: tuple[int, int]) -> int | None:
        client, clock = target
        starts = self.starts.get(client)
        if not starts:
            return None
        position = bisect.bisect_right(starts, clock) - 1
        if position < 0:
            return None
        index = self.indices[client][position]
        item = self.items[index]
        return index if clock < item.clock + item.length else None


def _resolve(items: list[_Item], within: Depths | None) -> list[int]:
    """Each item's container depth, following the parent or origin each names (UNKNOWN for a
    GC range). An item whose parent is in neither the update nor ``within``, or is a GC range,
    counts as in a root type: it cannot be integrated (the write path refuses it as
    missing-dependencies) or becomes a GC range itself."""
    index = _Index(items)
    containers = [UNKNOWN] * len(items)
    resolved = [item.ref is None for item in items]

    def through(item: _Item, base: int) -> int:
        """The container of ``item``, whose parent or origin sits at depth ``base``."""
        if base == UNKNOWN:
            return 1
        return base + 1 if item.ref == PARENT else base

    def dependency(item: _Item) -> tuple[int | None, int]:
        """(an item of the update it depends on, 0), or (None, its container)."""
        if item.ref == ROOT:
            return None, 1
        for target in (item.target, item.alternative):
            if target is None:
                continue
            found = index.find(target)
            if found is not None:
                return found, 0
            if within is not None and (base := within.find(*target)) != UNKNOWN:
                return None, through(item, base)
            if item.ref == PARENT:
                break
        return None, 1

    for start in range(len(items)):
        stack = [] if resolved[start] else [start]
        waiting = set(stack)
        while stack:
            current = stack[-1]
            found, container = dependency(items[current])
            if found is not None:
                if not resolved[found] and found not in waiting:
                    stack.append(found)
                    waiting.add(found)
                    continue
                # Resolved already, or a cycle (none of which integrates).
                container = through(items[current], containers[found]) if resolved[found] else 1
            containers[current] = container
            resolved[current] = True
            waiting.discard(current)
            stack.pop()
    return containers


__all__ = [
    "JSON_ENVELOPE_LEVELS",
    "Depths",
    "Measured",
    "TooDeep",
    "check_nesting",
    "json_depth",
    "json_nesting_exceeds",
    "max_json_nesting",
]
