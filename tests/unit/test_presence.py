"""``relay.presence`` on its own: what only time shows (records forgotten after the timeout)."""

from __future__ import annotations

import time

from rtc_client.wire import yjs_protocol
from rtc_client.wire.yjs_protocol import AwarenessEntry

from relay.presence import NOT_YOURS, TIMEOUT, Presence


def update(*entries: tuple[int, int, object]) -> bytes:
    return yjs_protocol.encode_awareness([AwarenessEntry(*entry) for entry in entries])


def test_ownership_and_tombstones_are_forgotten_after_the_timeout():
    presence = Presence()
    assert presence.record(update((1, 1, {"u": "a"})), "a").update is not None
    refused = presence.record(update((1, 5, {"u": "b"})), "b")
    assert refused.update is None and [r.code for r in refused.refusals] == [NOT_YOURS]

    # An owner that stops renewing (a worker gone without a word) loses the id.
    presence.expire(now=time.monotonic() + TIMEOUT + 1)
    assert presence.records == {} and presence.snapshot() is None
    assert presence.record(update((1, 5, {"u": "b"})), "b").refusals == ()
    assert presence.owned_by("b") == [1]

    # A departure leaves a tombstone with the last clock, forgotten in turn.
    assert yjs_protocol.decode_awareness(presence.departures("b")) == [AwarenessEntry(1, 6, None)]
    assert presence.record(update((1, 5, {"u": "b"})), "c").update is None  # an echo
    assert presence.owned_by("c") == []
    presence.expire(now=time.monotonic() + TIMEOUT + 1)
    assert presence.records == {}


def test_a_removal_claims_nothing_and_caps_count_what_is_owned():
    presence = Presence()
    assert presence.record(update((9, 3, None)), "a").update is None
    assert presence.records == {}
    recorded = presence.record(
        update((1, 1, {}), (2, 1, {}), (3, 1, {})), "a", max_clients=2, max_bytes=10
    )
    assert [e.client_id for e in yjs_protocol.decode_awareness(recorded.update)] == [1, 2]
    assert [(r.code, r.client_ids) for r in recorded.refusals] == [
        ("presence-too-many-clients", (3,))
    ]
    # Removing its own state keeps the id its own (and counted).
    assert presence.record(update((2, 2, None)), "a", max_clients=2).update is not None
    assert presence.record(update((4, 1, {})), "a", max_clients=2).update is None
    assert presence.record(update((2, 3, {"x": 1})), "a", max_clients=2).update is not None
    too_big = presence.record(update((1, 2, {"x": "y" * 20})), "a", max_bytes=10)
    assert [r.code for r in too_big.refusals] == ["presence-too-large"]
    assert "had 28" in too_big.refusals[0].reason
