"""jupyter_sync.waiting: waiting for a record, woken by commits, with a polling fallback."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys

import httpx
import pytest
from channels.db import database_sync_to_async
from django.test import override_settings

from jupyter_sync.waiting import WaitTimeout, wait_for_record
from relay.hub import get_hub
from tables import records, service
from tables.models import Datastore
from tests.support import ROOT
from tests.support.factories import Client, add_todo, owned_datastore
from tests.support.liveserver import database_url

pytest_plugins = ["tests.support.liveserver"]
pytestmark = pytest.mark.django_db(transaction=True)

NEVER = 3600.0  # a poll interval no test lives to see: only a commit can wake the waiter
WAIT = 30.0


def done_item(item_id: str):
    return lambda record: record is not None and record.get("done") is True


@database_sync_to_async
def new_datastore(name: str = "waits") -> Datastore:
    datastore = service.create_datastore(name, "todo")
    records.set_fields(datastore, "items", "milk", {"title": "Milk", "done": False})
    return datastore


async def test_a_commit_in_this_process_wakes_the_waiter():
    datastore = await new_datastore()
    waiting = asyncio.create_task(
        wait_for_record("waits", "items", "milk", done_item("milk"), WAIT, poll_interval=NEVER)
    )
    await asyncio.sleep(0)  # let it start: it must catch the commit whether or not it joined yet
    await database_sync_to_async(records.set_fields)(datastore, "items", "milk", {"done": True})
    record = await asyncio.wait_for(waiting, WAIT)
    assert record == {"title": "Milk", "done": True}
    # The waiter left the room it joined: nothing stays subscribed.
    assert datastore.pk not in get_hub().rooms


async def test_a_record_already_done_answers_at_once_and_absent_records_are_none():
    datastore = await new_datastore()
    await database_sync_to_async(records.set_fields)(datastore, "items", "milk", {"done": True})
    assert (await wait_for_record("waits", "items", "milk", done_item("milk"), 0.0))["done"]
    seen = await wait_for_record("waits", "items", "nope", lambda record: record is None, 0.0)
    assert seen is None


async def test_the_deadline_raises_with_the_last_record_read():
    await new_datastore()
    with pytest.raises(WaitTimeout) as caught:
        await wait_for_record("waits", "items", "milk", done_item("milk"), 0.2, poll_interval=0.05)
    assert caught.value.record == {"title": "Milk", "done": False}
    with pytest.raises(Datastore.DoesNotExist):
        await wait_for_record("missing", "items", "milk", done_item("milk"), 0.2)


async def test_commits_nobody_announces_are_found_by_the_periodic_re_read():
    # Another OS process writes with an in-process channel layer: no broadcast reaches us.
    await new_datastore()
    waiting = asyncio.create_task(
        wait_for_record(
            "waits", "items", "other0", lambda r: r is not None, WAIT, poll_interval=0.1
        )
    )
    writer = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.writer_process",
        database_url(),
        "waits",
        "other",
        "1",
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    assert await asyncio.wait_for(writer.wait(), WAIT) == 0
    record = await asyncio.wait_for(waiting, WAIT)
    assert record["title"] == "other"


@pytest.mark.redis
async def test_a_commit_on_another_worker_wakes_the_waiter_through_the_channel_layer(
    redis_url, start_server
):
    url, prefix = redis_url
    layers = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [url], "prefix": prefix},
        }
    }
    token = await database_sync_to_async(owned_datastore)("shared")
    worker = await asyncio.to_thread(
        start_server, env={"REDIS_URL": url, "REDIS_PREFIX": prefix}, name="worker"
    )
    datastore = await database_sync_to_async(Datastore.objects.get)(name="shared")
    patch = await database_sync_to_async(
        lambda: Client(datastore).change(lambda d: add_todo(d, "milk", "Milk", done=True))
    )()
    with override_settings(CHANNEL_LAYERS=layers):
        waiting = asyncio.create_task(
            wait_for_record("shared", "items", "milk", done_item("milk"), WAIT, poll_interval=NEVER)
        )
        # Subscribed once the room exists; the write comes after.
        await _until(lambda: datastore.pk in get_hub().rooms)
        async with httpx.AsyncClient(base_url=worker.url) as http:
            response = await http.post(
                "/api/datastores/shared/transactions/",
                json={"patch": base64.b64encode(patch).decode()},
                headers={"Authorization": f"Token {token}"},
            )
            assert response.status_code == 201, response.text
        record = await asyncio.wait_for(waiting, WAIT)
        assert record["done"] is True
        await get_hub().close()


async def _until(predicate, timeout: float = WAIT) -> None:
    """Yield to the event loop until ``predicate()`` holds (state changed by this loop's tasks)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)
