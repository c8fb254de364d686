"""Fan-out: across processes (two daphne workers sharing PostgreSQL and Redis), and to a
reader that falls behind."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from relay.models import ApiToken
from tables import records, service
from tables.models import Transaction
from tables.permissions import grant
from tests.support.factories import owned_datastore
from tests.support.socket_peers import Peer, YjsPeer

pytest_plugins = ["tests.support.liveserver"]
pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def stored_serials() -> list[int]:
    return list(Transaction.objects.order_by("serial").values_list("serial", flat=True))


async def test_two_workers_with_redis_converge_with_gapless_serials(
    postgres, redis_url, start_server, opened
):
    url, prefix = redis_url
    env = {"REDIS_URL": url, "REDIS_PREFIX": prefix}
    first = await asyncio.to_thread(start_server, env=env, name="worker-1")
    second = await asyncio.to_thread(start_server, env=env, name="worker-2")
    token = await database_sync_to_async(owned_datastore)("shared")
    alice = await Peer.open(first, "shared", token)
    bob = await Peer.open(second, "shared", token)
    carol = await Peer.open(second, "shared", token)  # a second reader on the same worker
    opened.extend([alice, bob, carol])

    sent = [await alice.add(f"a{i}") for i in range(15)] + [
        await bob.add(f"b{i}") for i in range(15)
    ]
    everything = {f"{p}{i}" for p in "ab" for i in range(15)}
    for peer in (alice, bob, carol):
        await peer.until(lambda peer=peer: peer.items() == everything)
    # Others may see a transaction before its sender has its ack: wait for the acks too.
    for peer in (alice, bob):
        await peer.until(lambda peer=peer: len(peer.acked) == 15)
    assert set(alice.acked) | set(bob.acked) == set(sent)

    assert await stored_serials() == list(range(1, 31))
    for peer in (alice, bob, carol):
        # Every connection saw every serial exactly once (own ones through acks).
        assert sorted(peer.serials) == list(range(1, 31))

    # A broadcast a worker never heard (a write from a process without the channel layer)
    # is filled in from the database when the next one arrives.
    await database_sync_to_async(records.set_fields)(
        await database_sync_to_async(service.get_datastore)("shared"),
        "items",
        "quiet",
        {"title": "unannounced"},
    )
    await alice.add("loud")
    for peer in (alice, bob, carol):
        await peer.until(lambda peer=peer: {"quiet", "loud"} <= peer.items())
    assert sorted(carol.serials) == list(range(1, 33))


@database_sync_to_async
def freeform_with_tokens(name: str) -> tuple[str, str]:
    """A freeform datastore; an editor's and a viewer's API token for it."""
    datastore = service.create_datastore(name, "freeform")
    keys = []
    for username, role in (("writer", "editor"), ("reader", "viewer")):
        user = User.objects.create_user(username)
        grant(datastore, user, role)
        keys.append(ApiToken.objects.create(user=user).key)
    return keys[0], keys[1]


async def test_a_reader_that_falls_behind_gets_what_it_missed_merged_and_converges(
    live_server_process, opened
):
    """A reader that stops reading is not sent a growing queue of frames: once its socket has
    drained it gets one merged update for everything it missed, and ends with the document."""
    editor, viewer = await freeform_with_tokens("slow")
    writer = await YjsPeer.open(live_server_process, "slow", editor)
    live = await YjsPeer.open(live_server_process, "slow", viewer)
    slow = await YjsPeer.open(live_server_process, "slow", viewer, receive_buffer=4096)
    opened.extend([writer, live, slow])
    slow.pause()

    count, filler = 120, "x" * 64 * 1024  # ~7.7 MB: more than the sockets' buffers hold
    for number in range(count):
        await writer.insert(number, filler)
        # One update per commit, so that any frame holding several is a merge.
        await live.until(lambda number=number: number in live.received())
    assert all(len(markers) == 1 for markers in live.frames)

    slow.resume()
    await slow.until(lambda: slow.received() == set(range(count)))
    assert str(slow.text) == str(writer.text) == str(live.text)
    assert len(slow.frames) < count
    assert max(len(markers) for markers in slow.frames) > 1


async def test_a_reader_further_behind_than_the_room_keeps_catches_up_from_the_database(
    start_server, opened
):
    """Past ``RTC_CATCH_UP_BYTES`` the room keeps nothing for it: what it missed comes from the
    database, merged, all the same."""
    server = await asyncio.to_thread(start_server, env={"RTC_CATCH_UP_BYTES": "65536"})
    editor, viewer = await freeform_with_tokens("slower")
    writer = await YjsPeer.open(server, "slower", editor)
    live = await YjsPeer.open(server, "slower", viewer)
    slow = await YjsPeer.open(server, "slower", viewer, receive_buffer=4096)
    opened.extend([writer, live, slow])
    slow.pause()

    count, filler = 120, "y" * 64 * 1024
    for number in range(count):
        await writer.insert(number, filler)
        await live.until(lambda number=number: number in live.received())

    slow.resume()
    await slow.until(lambda: slow.received() == set(range(count)))
    assert str(slow.text) == str(writer.text)
    assert len(slow.frames) < count
    assert max(len(markers) for markers in slow.frames) > 1
