"""The hub's tasks outlive whoever started them: a REST request (which runs in a thread-sensitive
context naming its kept thread, ``rtc_project/request_threads.py``) or a connection."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from asgiref.sync import ThreadSensitiveContext
from channels.db import database_sync_to_async

from relay.hub import get_hub
from tables.models import Datastore

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_task_started_during_a_request_reads_the_database_after_it():
    later = asyncio.Event()

    async def after_the_request() -> int:
        await later.wait()
        return await database_sync_to_async(Datastore.objects.count)()

    executor = ThreadPoolExecutor(1)
    try:
        async with ThreadSensitiveContext(executor=executor):  # as a request runs
            hub = get_hub()
            hub._spawn(after_the_request())
            [task] = [task for task in hub._tasks if not task.done()]
        later.set()  # the request is over
        assert await asyncio.wait_for(task, 10) == 0
    finally:
        executor.shutdown()
        await hub.close()
