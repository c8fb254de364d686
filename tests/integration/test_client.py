"""The asyncio datastore client (client/rtc_client/): pure helpers, then against a real server.

The end-to-end tests run daphne in its own process (tests/support/liveserver.py) on the test
database, so a server can be frozen, killed and started again on the same port.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from pycrdt import Doc, Map
from rtc_client import Backoff, DatastoreClient, RejectedTransaction, RTCError
from rtc_client.connection import datastore_url
from rtc_client.ordering import missing_serials
from rtc_client.outgoing import batches
from rtc_client.wire.json_protocol import decode_patch, encode_patch, make_message, parse_message
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from relay.models import ApiToken
from tables import service
from tables.models import Transaction
from tables.permissions import grant
from tables.pruning import prune_history
from tables.service import Proposal
from tests.support.factories import add_todo
from tests.support.liveserver import ServerProcess

pytest_plugins = ["tests.support.liveserver"]

live = pytest.mark.django_db(transaction=True)
db = database_sync_to_async
WAIT = 10.0  # seconds: the deadline of every wait in these tests
HISTORY_AND_FETCH = {"history-request", "transaction-request"}


# --- Pure parts --------------------------------------------------------------------------------


def test_backoff_grows_exponentially_up_to_its_bound():
    delays = Backoff(initial=0.5, factor=2, maximum=3, jitter=0).delays()
    assert [next(delays) for _ in range(6)] == [0.5, 1, 2, 3, 3, 3]


def test_backoff_jitter_only_stretches_within_its_fraction():
    backoff = Backoff(initial=1, factor=1, maximum=1, jitter=0.25)
    delays = backoff.delays(random.Random(7))
    samples = [next(delays) for _ in range(200)]
    assert all(1 <= d < 1.25 for d in samples)
    assert len(set(samples)) > 100  # clients restarting together spread out


def test_messages_round_trip_and_junk_is_not_a_message():
    frame = make_message("c-1", "history-request", {"since": 3})
    assert parse_message(frame) == {
        "msgId": "c-1",
        "msgType": "history-request",
        "content": {"since": 3},
    }
    assert parse_message('{"msgType": "serial-reply"}')["content"] == {}
    for junk in ("not json", "[1, 2]", '{"content": {}}', '{"msgType": 3}'):
        assert parse_message(junk) is None
    assert decode_patch(encode_patch(b"\x00\x01\xff")) == b"\x00\x01\xff"


def test_datastore_url_quotes_the_token():
    assert datastore_url("ws://h:1/", "todo") == "ws://h:1/ws/datastores/todo/"
    assert (
        datastore_url("ws://h:1", "a.b", "k+/=") == "ws://h:1/ws/datastores/a.b/?token=k%2B%2F%3D"
    )


def test_batches_bound_count_and_size_but_never_split_a_transaction():
    txs = [{"id": str(i), "patch": "x" * 50} for i in range(7)]
    assert [len(b) for b in batches(txs, max_count=3, max_bytes=10_000)] == [3, 3, 1]
    assert [len(b) for b in batches(txs, max_count=100, max_bytes=300)] == [2, 2, 2, 1]
    huge = [{"id": "h", "patch": "x" * 5000}, {"id": "s", "patch": "x"}]
    assert [[t["id"] for t in b] for b in batches(huge, 10, 1000)] == [["h"], ["s"]]


def test_missing_serials_are_the_holes_below_what_is_known():
    assert missing_serials(3, []) == []
    assert missing_serials(3, [6, 8]) == [4, 5, 7]
    assert missing_serials(3, [], upto=5) == [4, 5]
    assert missing_serials(3, [4], upto=6) == [5, 6]


# --- Fixtures and helpers for the live server --------------------------------------------------


@pytest.fixture
def world(transactional_db) -> dict[str, Any]:
    """A ``todo`` datastore with an owner, an editor and a viewer, and their tokens."""
    users = {name: User.objects.create_user(name) for name in ("owner", "ed", "vi", "x")}
    datastore = service.create_datastore("todo", "todo", owner=users["owner"])
    grant(datastore, users["ed"], "editor")
    grant(datastore, users["vi"], "viewer")
    tokens = {name: ApiToken.objects.create(user=user).key for name, user in users.items()}
    return {"datastore": datastore, "users": users, "tokens": tokens}


@db
def stored(datastore) -> list[tuple[int, str, str]]:
    """(serial, transaction id, store id) of every stored transaction, in serial order."""
    return list(
        Transaction.objects.filter(datastore=datastore)
        .order_by("serial")
        .values_list("serial", "txid", "store_id")
    )


def items(client: DatastoreClient) -> dict[str, Any]:
    return client.doc.get("items", type=Map).to_py()


def client_for(server: ServerProcess, token: str, **kwargs: Any) -> DatastoreClient:
    kwargs.setdefault("backoff", Backoff(initial=0.05, maximum=0.5))
    return DatastoreClient(server.ws_url, "todo", token=token, **kwargs)


class Proxy:
    """A WebSocket relay between a client and the server that can drop the server's pushes.

    ``drop(message)`` decides for each server-to-client message; what the client sent is kept
    in ``from_client``.
    """

    def __init__(self, upstream: str, drop: Callable[[dict[str, Any]], bool]):
        self.upstream = upstream
        self.drop = drop
        self.dropped: list[dict[str, Any]] = []
        self.from_client: list[dict[str, Any]] = []

    async def __aenter__(self) -> Proxy:
        self.server = await serve(self._relay, "127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _relay(self, downstream: ServerConnection) -> None:
        async with connect(self.upstream + downstream.request.path, proxy=None) as upstream:

            async def up() -> None:
                async for frame in downstream:
                    self.from_client.append(json.loads(frame))
                    await upstream.send(frame)

            async def down() -> None:
                async for frame in upstream:
                    message = json.loads(frame)
                    if self.drop(message):
                        self.dropped.append(message)
                    else:
                        await downstream.send(frame)

            tasks = [asyncio.create_task(up()), asyncio.create_task(down())]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                for outcome in await asyncio.gather(*tasks, return_exceptions=True):
                    if isinstance(outcome, Exception) and not isinstance(outcome, ConnectionClosed):
                        raise outcome


# --- Against the live server -------------------------------------------------------------------


@live
async def test_two_clients_converge_and_edits_are_stored_with_their_ids(world, live_server_process):
    tokens = world["tokens"]
    async with (
        client_for(live_server_process, tokens["owner"], store_id="alice") as alice,
        client_for(live_server_process, tokens["ed"], store_id="bob") as bob,
    ):
        assert alice.synced and alice.serial == 0
        add_todo(alice.doc, "a", "milk")
        add_todo(bob.doc, "b", "bread")
        with alice.doc.transaction():  # one transaction, however many edits
            record = alice.doc.get("items", type=Map)["a"]
            record["title"].insert(4, " (2l)")
            record["done"] = True
        await alice.wait_acked(WAIT)
        await bob.wait_acked(WAIT)
        await alice.wait_for_serial(3, WAIT)
        await bob.wait_for_serial(3, WAIT)

        expected = {
            "a": {"title": "milk (2l)", "done": True},
            "b": {"title": "bread", "done": False},
        }
        assert items(alice) == items(bob) == expected
        rows = await stored(world["datastore"])
        assert [serial for serial, _, _ in rows] == [1, 2, 3]
        assert {(txid, store) for _, txid, store in rows} == {
            ("alice-1", "alice"),
            ("alice-2", "alice"),
            ("bob-1", "bob"),
        }
        assert alice.acked == {txid: serial for serial, txid, store in rows if store == "alice"}
        assert alice.rejections == bob.rejections == []
        assert await alice.server_serial() == 3


@live
async def test_a_late_joiner_gets_state_and_local_content_is_merged(world, live_server_process):
    tokens = world["tokens"]
    async with client_for(live_server_process, tokens["owner"]) as alice:
        for key in "abc":
            add_todo(alice.doc, key, key)
        await alice.wait_acked(WAIT)

    offline = Doc()  # edited before it ever connected
    add_todo(offline, "z", "offline")
    async with client_for(live_server_process, tokens["ed"], doc=offline) as bob:
        assert bob.doc is offline
        assert set(items(bob)) == {"a", "b", "c", "z"}
        assert bob.serial == 3
        await bob.wait_acked(WAIT)
        assert bob.serial == 4
    assert [txid for _, txid, _ in await stored(world["datastore"])][-1] == f"{bob.store_id}-1"


@live
async def test_resume_after_a_server_crash_resends_unacknowledged_changes_once(
    world, live_server_process
):
    server = live_server_process
    datastore = world["datastore"]
    async with client_for(server, world["tokens"]["owner"], store_id="alice") as alice:
        add_todo(alice.doc, "a", "acked before the crash")
        await alice.wait_acked(WAIT)

        # Frozen: the next two changes are sent into the socket but never answered.
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
        add_todo(alice.doc, "b", "sent, stored, ack lost")
        add_todo(alice.doc, "c", "sent, never received")
        await alice.wait_for(lambda: alice.in_flight == {"alice-2", "alice-3"}, WAIT)
        server.kill(signal.SIGKILL)
        await alice.wait_for(lambda: not alice.connected, WAIT)
        add_todo(alice.doc, "d", "made while disconnected")
        assert list(alice.pending) == ["alice-2", "alice-3", "alice-4"]

        # While it is down: "b" turns out to have been committed before the crash (its ack was
        # lost), and another writer adds "e".
        @db
        def meanwhile() -> None:
            patch = decode_patch(alice.pending["alice-2"]["patch"])
            service.write_one(datastore, Proposal(patch, txid="alice-2", store_id="alice"))
            other = Doc()
            other.apply_update(service.live_state(datastore)[0])
            before = other.get_state()
            add_todo(other, "e", "written by someone else")
            service.write_one(datastore, Proposal(other.get_update(before), txid="other-1"))

        await meanwhile()
        await asyncio.to_thread(server.start)

        await alice.wait_synced(WAIT)
        await alice.wait_acked(WAIT)
        await alice.wait_for_serial(5, WAIT)
        assert alice.connections == 2
        assert set(items(alice)) == set("abcde")
        rows = await stored(datastore)
        assert [serial for serial, _, _ in rows] == [1, 2, 3, 4, 5]
        txids = [txid for _, txid, _ in rows]
        assert sorted(txids) == ["alice-1", "alice-2", "alice-3", "alice-4", "other-1"]
        assert txids[:3] == ["alice-1", "alice-2", "other-1"]
        assert alice.acked["alice-2"] == 2  # acknowledged again with its original serial
        assert alice.serial == 5


@live
async def test_a_gap_in_the_pushed_serials_is_filled_by_transaction_request(
    world, live_server_process
):
    tokens = world["tokens"]

    def drop_serial_2(message: dict[str, Any]) -> bool:
        return message["msgType"] == "transaction-broadcast" and any(
            tx.get("serial") == 2 for tx in message["content"]["transactions"]
        )

    async with (
        Proxy(live_server_process.ws_url, drop_serial_2) as proxy,
        client_for(live_server_process, tokens["owner"]) as alice,
        DatastoreClient(proxy.url, "todo", token=tokens["ed"]) as bob,
    ):
        for key in "abc":
            add_todo(alice.doc, key, key)
            await alice.wait_acked(WAIT)
        await bob.wait_for_serial(3, WAIT)
        assert items(bob) == items(alice)
        assert len(proxy.dropped) == 1
        requests = [m for m in proxy.from_client if m["msgType"] == "transaction-request"]
        assert [m["content"] for m in requests] == [{"serials": [2]}]


@live
async def test_a_gap_behind_the_pruned_history_is_filled_from_the_checkpoint(
    world, live_server_process, settings
):
    settings.RTC = {**settings.RTC, "CHECKPOINT_EVERY": 5, "CHECKPOINTS_KEPT": 100}
    datastore, tokens = world["datastore"], world["tokens"]
    async with (
        Proxy(live_server_process.ws_url, lambda message: False) as proxy,
        DatastoreClient(proxy.url, "todo", token=tokens["owner"]) as alice,
        client_for(live_server_process, tokens["ed"]) as bob,
    ):
        add_todo(alice.doc, "a", "a")
        await alice.wait_acked(WAIT)

        # Writes the server does not hear of (this process has no shared channel layer), then
        # their history is pruned: serials 2-10 are gone, 11 and 12 remain.
        @db
        def behind_the_servers_back() -> int:
            writer = Doc()
            for key in "bcdefghijkl":
                writer.apply_update(service.live_state(datastore)[0])
                before = writer.get_state()
                add_todo(writer, key, key)
                service.write_one(datastore, Proposal(writer.get_update(before)))
            cutoff = datetime.now(UTC) + timedelta(seconds=1)
            return prune_history(datastore, older_than=cutoff, keep=0).history_start

        assert await behind_the_servers_back() == 10
        # Bob's change reaches alice as serial 13: she asks for 2-12, learns that 2-10 were
        # pruned, and resumes from the checkpoint instead of asking for ever.
        add_todo(bob.doc, "m", "m")
        await bob.wait_acked(WAIT)
        await alice.wait_for_serial(13, WAIT)
        assert set(items(alice)) == set("abcdefghijklm")
        sent = [m for m in proxy.from_client if m["msgType"] in HISTORY_AND_FETCH]
        # (The server's room fills what it can itself, so she may ask for fewer than 2-12.)
        assert [(m["msgType"], m["content"].get("since")) for m in sent] == [
            ("history-request", None),
            ("transaction-request", None),
            ("history-request", 1),
        ]
        assert sent[1]["content"]["serials"][0] == 2
    assert [serial for serial, _, _ in await stored(datastore)] == [11, 12, 13]


@live
async def test_a_refused_change_rebuilds_the_doc_from_the_server(world, live_server_process):
    tokens = world["tokens"]
    rejected: list[tuple[RejectedTransaction, Doc]] = []
    async with (
        client_for(
            live_server_process,
            tokens["owner"],
            on_rejected=lambda r: rejected.append((r, alice.doc)),
        ) as alice,
        client_for(live_server_process, tokens["ed"]) as bob,
    ):
        add_todo(alice.doc, "a", "milk")
        await alice.wait_acked(WAIT)
        first_doc = alice.doc

        alice.doc.get("items", type=Map)["a"]["done"] = "yes"  # the schema wants a boolean
        await alice.wait_acked(WAIT)

        [(rejection, doc_then)] = rejected
        assert rejection.transaction_id == f"{alice.store_id}-2"
        assert rejection.code == "schema-violation"
        assert "done" in rejection.reason
        assert alice.doc is doc_then is not first_doc
        assert items(alice) == {"a": {"title": "milk", "done": False}}
        assert alice.synced and alice.serial == 1
        assert [e.code for e in alice.errors] == ["schema-violation"]

        # The rebuilt doc works as before, for both sides.
        alice.doc.get("items", type=Map)["a"]["done"] = True
        await alice.wait_acked(WAIT)
        await bob.wait_for_serial(2, WAIT)
        assert items(bob) == items(alice) == {"a": {"title": "milk", "done": True}}
        assert [txid for _, txid, _ in await stored(world["datastore"])] == [
            f"{alice.store_id}-1",
            f"{alice.store_id}-3",
        ]


@live
async def test_a_viewers_changes_are_refused_and_undone_locally(world, live_server_process):
    calls: list[RejectedTransaction] = []
    called = asyncio.Event()

    async def failing_callback(rejection: RejectedTransaction) -> None:
        calls.append(rejection)
        called.set()
        raise RuntimeError("a bug in the application's callback")

    token = world["tokens"]["vi"]
    async with client_for(live_server_process, token, on_rejected=failing_callback) as viewer:
        assert (await viewer.permissions())["write"] is False
        add_todo(viewer.doc, "v", "nope")
        await viewer.wait_acked(WAIT)
        assert [r.code for r in viewer.rejections] == ["permission-denied"]
        assert items(viewer) == {}
        async with asyncio.timeout(WAIT):
            await called.wait()
        assert calls == viewer.rejections
        assert await viewer.server_serial() == 0  # the callback's failure did not stop the client
    assert await stored(world["datastore"]) == []


@live
async def test_undo_and_redo_through_the_client(world, live_server_process):
    tokens = world["tokens"]
    async with (
        client_for(live_server_process, tokens["owner"]) as alice,
        client_for(live_server_process, tokens["ed"]) as bob,
    ):
        add_todo(alice.doc, "a", "milk")
        await alice.wait_acked(WAIT)
        alice.doc.get("items", type=Map)["a"]["done"] = True
        await alice.wait_acked(WAIT)

        assert await alice.undo() == {"serial": 3, "reverts": 2}
        assert items(alice) == {"a": {"title": "milk", "done": False}}  # applied on return
        await bob.wait_for_serial(3, WAIT)
        assert items(bob) == items(alice)

        assert await alice.redo() == {"serial": 4, "reverts": 3}
        assert items(alice)["a"]["done"] is True
        assert await alice.undo(serial=1) == {"serial": 5, "reverts": 1}
        assert items(alice) == {}
        with pytest.raises(RTCError) as refused:
            await bob.undo()  # bob changed nothing
        assert refused.value.code == "nothing-to-undo"


@live
async def test_requests_match_their_replies(world, live_server_process):
    tokens = world["tokens"]
    async with (
        client_for(live_server_process, tokens["owner"], store_id="alice") as alice,
        client_for(live_server_process, tokens["ed"]) as bob,
    ):
        add_todo(alice.doc, "a", "x")
        add_todo(alice.doc, "b", "y")
        await alice.wait_acked(WAIT)
        await bob.wait_for_serial(2, WAIT)

        perms, serial, by_id, by_serial = await asyncio.gather(
            alice.permissions(),
            alice.server_serial(),
            alice.fetch_transactions(ids=["alice-2", "missing"]),
            alice.fetch_transactions(serials=[1]),
        )
        assert perms == {"read": True, "write": True, "role": "owner", "readOnlyTables": []}
        assert serial == 2
        assert [(t["id"], t["serial"]) for t in by_id] == [("alice-2", 2)]
        assert [t["id"] for t in by_serial] == ["alice-1"]

        assert await alice.report_serial() == 0  # bob has not reported yet
        assert await bob.report_serial() == 2
        await alice.wait_for(lambda: alice.stable_serial == 2, WAIT)

        with pytest.raises(RTCError) as error:
            await alice.request("no-such-request", {})
        assert error.value.code == "unknown-message-type"


@live
async def test_awareness_is_shared_and_removed_when_a_client_leaves(world, live_server_process):
    tokens = world["tokens"]
    async with client_for(live_server_process, tokens["owner"]) as alice:
        alice.awareness.set_local_state({"user": "alice"})
        async with client_for(live_server_process, tokens["ed"]) as bob:
            alice_id = alice.awareness.client_id
            await bob.wait_for(
                lambda: bob.awareness.states.get(alice_id) == {"user": "alice"}, WAIT
            )
            bob.awareness.set_local_state_field("cursor", 3)
            bob_id = bob.awareness.client_id
            await alice.wait_for(
                lambda: alice.awareness.states.get(bob_id, {}).get("cursor") == 3, WAIT
            )
        await alice.wait_for(lambda: bob_id not in alice.awareness.states, WAIT)


@live
@pytest.mark.parametrize(
    ("who", "datastore", "code"),
    [
        ("nobody", "todo", "unauthenticated"),
        ("x", "todo", "forbidden"),
        ("owner", "missing", "unknown-datastore"),
    ],
)
async def test_a_refused_connection_raises_without_retrying(
    world, live_server_process, who, datastore, code
):
    token = world["tokens"].get(who, "not-a-token")
    client = DatastoreClient(live_server_process.ws_url, datastore, token=token)
    with pytest.raises(RTCError) as refused:
        await client.start(timeout=WAIT)
    assert refused.value.code == code
    assert client.connections == 1
    await client.aclose()  # idempotent


@live
async def test_a_client_reconnects_after_losing_its_socket(world, live_server_process):
    tokens = world["tokens"]
    async with (
        client_for(live_server_process, tokens["owner"]) as alice,
        client_for(live_server_process, tokens["ed"]) as bob,
    ):
        add_todo(alice.doc, "a", "x")
        await alice.wait_acked(WAIT)
        await bob.reconnect()
        add_todo(alice.doc, "b", "y")  # broadcast while bob may be away
        add_todo(bob.doc, "c", "z")
        await alice.wait_acked(WAIT)
        await bob.wait_acked(WAIT)
        await bob.wait_for(lambda: bob.connections == 2, WAIT)
        await bob.wait_for_serial(3, WAIT)
        await alice.wait_for_serial(3, WAIT)
        assert items(alice) == items(bob)
        assert set(items(bob)) == {"a", "b", "c"}


async def test_start_gives_up_at_its_deadline_when_no_server_answers():
    client = DatastoreClient("ws://127.0.0.1:9", "todo", backoff=Backoff(initial=0.01))
    with pytest.raises(TimeoutError):
        await client.start(timeout=0.3)
    assert not client.connected


async def test_a_client_started_without_waiting_says_why_it_cannot_connect():
    client = DatastoreClient("ws://127.0.0.1:9", "todo", backoff=Backoff(initial=0.01))
    await client.start(wait=False)  # returns at once; it keeps trying until closed
    try:
        await client.wait_for(lambda: client.last_error is not None, timeout=10)
        assert isinstance(client.last_error, OSError), repr(client.last_error)
        assert not client.connected
    finally:
        await client.aclose()


@live
async def test_no_task_outlives_the_client(world, live_server_process):
    before = asyncio.all_tasks()
    async with client_for(live_server_process, world["tokens"]["owner"]) as alice:
        add_todo(alice.doc, "a", "x")
        await alice.wait_acked(WAIT)
        assert len(asyncio.all_tasks() - before) > 1  # the client's own tasks
    assert asyncio.all_tasks() == before


@live
async def test_closing_does_not_hang_on_a_server_that_stopped_answering(world, live_server_process):
    client = client_for(live_server_process, world["tokens"]["owner"])
    await client.start()
    assert live_server_process.process is not None
    live_server_process.process.send_signal(signal.SIGSTOP)
    try:
        async with asyncio.timeout(5):
            await client.aclose()
    finally:
        live_server_process.kill(signal.SIGKILL)
    assert not client.connected


@live
async def test_rate_limited_changes_are_sent_again_and_stored_once(world, start_server):
    server = start_server(env={"RTC_RATE_LIMIT": "5", "RTC_RATE_BURST": "8"})
    client = client_for(server, world["tokens"]["owner"], max_batch=1, rate_limit_pause=0.2)
    async with client:
        for number in range(30):  # thirty messages at once: far over the burst
            add_todo(client.doc, f"k{number}", str(number))
        await client.wait_acked(60)
        assert len(items(client)) == 30
        assert client.rejections == []  # "missing-dependencies" after a drop is not a refusal
    limited = [e for e in client.errors if e.code == "rate-limited"]
    assert limited or client.connections > 1  # dropped messages, or closed with 4429
    rows = await stored(world["datastore"])
    assert [serial for serial, _, _ in rows] == list(range(1, 31))
    assert len({txid for _, txid, _ in rows}) == 30
