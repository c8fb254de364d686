"""Presence in one room: awareness states, each owned by the connection that announced it.

y-protocols lets any peer change any client's state (a higher clock wins) or remove it (a
removal with the same clock), because its peers trust each other. The relay's connections do
not: a connection owns the client ids it announced first, and may change or remove those only.
An entry for another connection's id is dropped; so is one past the caps per connection
(``RTC_MAX_PRESENCE_CLIENTS`` ids, ``RTC_MAX_PRESENCE_BYTES`` per state), which bound the
memory a connection can hold (one connection once made 400,000 entries).

Stock y-websocket providers send back every awareness update they receive (their update handler
ignores the origin), and a removal when another client's state times out on their side. Such an
echo changes nothing (its clock is not above the one known) and is dropped in silence; only an
entry that would have changed another connection's state is reported as refused.

Owners are local member ids, or ``<worker>:<member>`` for a connection on another worker (the
worker says which of its connections announced what, and relays only what it accepted). When a
connection leaves, its states are removed (relayed with the clock after the last one, as
y-protocols removes a state) and its entries become tombstones with no owner and the last clock,
so that an echo still in flight cannot claim the id again while the same client, reconnected,
can with its next renewal; every record (state, ownership, tombstone) is forgotten once not
renewed for ``TIMEOUT`` seconds, as y-protocols forgets a state.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from rtc_client.wire import yjs_protocol
from rtc_client.wire.yjs_protocol import AwarenessEntry

TIMEOUT = 30.0  # seconds, as y-protocols: clients renew their state every 15 s

NOT_YOURS = "presence-not-yours"
TOO_MANY_CLIENTS = "presence-too-many-clients"
TOO_LARGE = "presence-too-large"


@dataclass
class _Record:
    clock: int
    state: Any  # None: removed (by its owner, or its owner left)
    owner: str  # "" once its owner left (a tombstone)
    seen: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Refusal:
    """Entries of one awareness update dropped for one reason."""

    code: str
    client_ids: tuple[int, ...]
    reason: str


@dataclass(frozen=True)
class Recorded:
    """What an awareness update changed: ``update`` holds the accepted entries, to relay (None:
    nothing changed); ``refusals`` says what was dropped and why."""

    update: bytes | None
    refusals: tuple[Refusal, ...]


def state_size(state: Any) -> int:
    """Bytes of a state as it is relayed (compact JSON, UTF-8)."""
    return len(json.dumps(state, separators=(",", ":")).encode())


class Presence:
    """The awareness records of one room."""

    def __init__(self) -> None:
        self.records: dict[int, _Record] = {}

    def expire(self, now: float | None = None) -> None:
        deadline = (time.monotonic() if now is None else now) - TIMEOUT
        for client_id in [c for c, r in self.records.items() if r.seen < deadline]:
            del self.records[client_id]

    def owned_by(self, owner: str) -> list[int]:
        return [c for c, r in self.records.items() if r.owner == owner]

    def record(
        self, update: bytes, owner: str, *, max_clients: int = 0, max_bytes: int = 0
    ) -> Recorded:
        """Apply an awareness update from ``owner`` (raises yjs_protocol.ProtocolError).

        ``max_clients``, ``max_bytes``: the caps per connection (0: none)."""
        entries = yjs_protocol.decode_awareness(update)
        now = time.monotonic()
        self.expire(now)
        owned = len(self.owned_by(owner))
        accepted: list[AwarenessEntry] = []
        refused: dict[str, list[int]] = {}
        sizes: list[int] = []
        for entry in entries:
            known = self.records.get(entry.client_id)
            if known is not None and known.owner != owner:
                # Another connection's (or a tombstone): an echo is dropped in silence.
                if entry.clock > known.clock and known.owner:
                    refused.setdefault(NOT_YOURS, []).append(entry.client_id)
                    continue
                if entry.clock <= known.clock or entry.removed:
                    continue
                known = None  # a tombstone's id announced again, with a newer clock
            if known is not None and not (
                entry.clock > known.clock
                or (entry.clock == known.clock and entry.removed and known.state is not None)
            ):
                continue  # not newer than what its owner said before
            if known is None and entry.removed:
                continue  # nothing to remove; a removal claims nothing
            if not entry.removed and max_bytes:
                size = state_size(entry.state)
                if size > max_bytes:
                    refused.setdefault(TOO_LARGE, []).append(entry.client_id)
                    sizes.append(size)
                    continue
            if known is None:
                if max_clients and owned >= max_clients:
                    refused.setdefault(TOO_MANY_CLIENTS, []).append(entry.client_id)
                    continue
                owned += 1
            self.records[entry.client_id] = _Record(entry.clock, entry.state, owner, now)
            accepted.append(entry)
        refusals = tuple(
            Refusal(code, tuple(ids), _reason(code, ids, max_clients, max_bytes, sizes))
            for code, ids in refused.items()
        )
        return Recorded(yjs_protocol.encode_awareness(accepted) if accepted else None, refusals)

    def snapshot(self) -> bytes | None:
        """Every live state as one awareness update (None: nobody is present)."""
        self.expire()
        entries = [
            AwarenessEntry(client_id, record.clock, record.state)
            for client_id, record in self.records.items()
            if record.state is not None
        ]
        return yjs_protocol.encode_awareness(entries) if entries else None

    def departures(self, owner: str) -> bytes | None:
        """Forget what ``owner`` announced; the awareness update removing its states (None: it
        had none) for the others."""
        now = time.monotonic()
        gone = []
        for client_id in self.owned_by(owner):
            record = self.records[client_id]
            if record.state is not None:
                gone.append(AwarenessEntry(client_id, record.clock + 1, None))
            self.records[client_id] = _Record(record.clock, None, "", now)
        return yjs_protocol.encode_awareness(gone) if gone else None


def _reason(code: str, ids: list[int], max_clients: int, max_bytes: int, sizes: list[int]) -> str:
    shown = ", ".join(str(c) for c in ids[:5])
    if len(ids) > 5:
        shown += f" and {len(ids) - 5} more"
    if code == NOT_YOURS:
        return f"client id {shown} was announced by another connection; dropped"
    if code == TOO_MANY_CLIENTS:
        return f"a connection may announce at most {max_clients} client ids; {shown} dropped"
    largest = max(sizes)
    return f"a state may have at most {max_bytes} bytes (had {largest}); client id {shown} dropped"
