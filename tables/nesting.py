"""How deep a Yjs update nests, read from its bytes without decoding it.

The CRDT library decodes a value nested in a value recursively, on the native stack: one update
nesting arrays a hundred thousand deep kills the process that decodes it (SIGSEGV), and a few
thousand levels make every browser fail to load the document for good. So every update from a
client is measured here, by a pure, iterative scan of the v1 encoding, before anything decodes
it, and refused past ``RTC_MAX_NESTING``. Measured: values (``ContentAny``, and the JSON in
``ContentJSON``, embeds and formats) and shared types nested in shared types within the update
(through the parent or origin each item names). One level is one array, map or shared type.
"""

from __future__ import annotations

import bisect

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
        value = shift = 0
        while True:
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
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


class _Spans:
    """Per client, the clock ranges of the update's items and the depth of the type each sits
    in (and, for a shared type, its own depth), to follow parents and origins."""

    def __init__(self) -> None:
        self.starts: dict[int, list[int]] = {}
        self.entries: dict[int, list[tuple[int, int, int]]] = {}  # (end, container, own)

    def add(self, client: int, clock: int, length: int, container: int, own: int) -> None:
        self.starts.setdefault(client, []).append(clock)
        self.entries.setdefault(client, []).append((clock + length, container, own))

    def find(self, client: int, clock: int) -> tuple[int, int] | None:
        starts = self.starts.get(client)
        if not starts:
            return None
        index = bisect.bisect_right(starts, clock) - 1
        if index < 0 or clock >= self.entries[client][index][0]:
            return None
        _end, container, own = self.entries[client][index]
        return container, own


def check_nesting(update: bytes, limit: int) -> None:
    """Raise ``TooDeep`` when ``update`` nests deeper than ``limit`` levels, MalformedUpdate
    when it is not a v1 update (structs, then a delete set, then nothing)."""
    reader = _Reader(update)
    spans = _Spans()

    def refuse(depth: int) -> None:
        raise TooDeep(f"the update nests {depth} levels deep; at most {limit} are accepted")

    def any_depth(container: int) -> int:
        try:
            return _any_depth(reader, limit - container)
        except TooDeep:
            raise TooDeep(f"the update nests more than {limit} levels deep") from None

    for _ in range(reader.var_uint()):
        count = reader.var_uint()
        client = reader.var_uint()
        clock = reader.var_uint()
        for _ in range(count):
            info = reader.byte()
            ref = info & 0x1F
            if ref in (GC, SKIP):
                clock += reader.var_uint()
                continue
            container = 1  # a root type's items, or a parent outside this update
            found = None
            if info & HAS_ORIGIN:
                found = spans.find(reader.var_uint(), reader.var_uint())
            if info & HAS_RIGHT_ORIGIN:
                right = spans.find(reader.var_uint(), reader.var_uint())
                found = found or right
            if found is not None:
                container = found[0]
            if not info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN):
                if reader.var_uint() == 1:
                    reader.var_bytes()  # a root type's name
                else:
                    parent = spans.find(reader.var_uint(), reader.var_uint())
                    if parent is not None and parent[1]:
                        container = parent[1]
                if info & HAS_PARENT_SUB:
                    reader.var_bytes()
            length, own, inner = 1, 0, 0
            if ref == DELETED:
                length = reader.var_uint()
            elif ref == JSON:
                length = reader.var_uint()
                for _ in range(length):
                    inner = max(inner, json_depth(reader.var_string()))
            elif ref == BINARY:
                reader.var_bytes()
            elif ref == STRING:
                length = len(reader.var_string().encode("utf-16-le")) // 2
            elif ref == EMBED:
                inner = json_depth(reader.var_string())
            elif ref == FORMAT:
                reader.var_bytes()
                inner = json_depth(reader.var_string())
            elif ref == TYPE:
                type_ref = reader.var_uint()
                if type_ref not in KNOWN_TYPE_REFS:
                    raise MalformedUpdate(f"unknown shared type {type_ref}")
                if type_ref in (XML_ELEMENT, XML_HOOK):
                    reader.var_bytes()
                own = container + 1
            elif ref == ANY:
                length = reader.var_uint()
                for _ in range(length):
                    inner = max(inner, any_depth(container))
            elif ref == DOC:
                reader.var_bytes()
                inner = any_depth(container)
            else:
                raise MalformedUpdate(f"unknown content {ref}")
            if max(own, container + inner) > limit:
                refuse(max(own, container + inner))
            if length > 0:
                spans.add(client, clock, length, container, own)
            clock += length
    for _ in range(reader.var_uint()):  # the delete set: client, ranges of (clock, length)
        reader.var_uint()
        for _ in range(reader.var_uint()):
            reader.var_uint()
            reader.var_uint()
    if reader.pos != len(update):
        raise MalformedUpdate("bytes after the end of the update")


__all__ = ["TooDeep", "check_nesting", "json_depth"]
