"""The supernode when what it depends on goes away: the Jupyter Server restarted, the relay
restarted under it, a kernel dying mid-execution, the supernode itself restarted mid-execution.
Real processes throughout: a Jupyter Server with ipykernel, daphne, the supernode in this loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from pycrdt import Map

from jupyter_sync.jupyter import JupyterClient
from relay.client import Backoff, DatastoreClient
from tables.models import Datastore, Transaction
from tests.jupyter_fixtures import start_local_server
from tests.test_supernode import Running, accounts, records, request_execution

pytest_plugins = ["tests.liveserver", "tests.jupyter_fixtures"]
pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 60.0  # a Jupyter Server (re)starting on a loaded 2-core machine takes a while
QUICK = Backoff(initial=0.05, maximum=0.5)


def connected(client: DatastoreClient) -> bool | None:
    return records(client, "status").get("server", {}).get("connected")


def execution(client: DatastoreClient, execution_id: str) -> dict:
    return records(client, "executions").get(execution_id, {})


async def test_a_restarted_jupyter_server_is_noticed_and_the_tables_resynchronised(
    start_server, tmp_path: Path
):
    # A server of its own (not the session's): this test stops it.
    root = tmp_path / "root"
    root.mkdir()
    server = await asyncio.to_thread(start_local_server, root)
    try:
        service_token, editor_token = await accounts()
        relay = await asyncio.to_thread(start_server)
        async with (
            JupyterClient(server.url, server.token) as jupyter,
            DatastoreClient(relay.ws_url, "jupyter", token=editor_token) as watcher,
        ):
            running = Running(jupyter, relay.ws_url, service_token)
            try:
                old = (await jupyter.start_kernel("python3"))["id"]
                await watcher.wait_for(
                    lambda: connected(watcher) is True and old in records(watcher, "kernels"),
                    timeout=WAIT,
                )

                await asyncio.to_thread(server.stop)
                await watcher.wait_for(lambda: connected(watcher) is False, timeout=WAIT)
                # Its kernel connection closed with the server: the kernel is marked dead.
                await watcher.wait_for(
                    lambda: records(watcher, "kernels")[old].get("execution_state") == "dead",
                    timeout=WAIT,
                )

                await asyncio.to_thread(server.restart)  # same port, same token
                await watcher.wait_for(lambda: connected(watcher) is True, timeout=WAIT)
                await watcher.wait_for(lambda: old not in records(watcher, "kernels"), timeout=WAIT)
                new = (await jupyter.start_kernel("python3"))["id"]
                await watcher.wait_for(lambda: new in records(watcher, "kernels"), timeout=WAIT)

                # Requests work again, on the new server's kernel.
                request_execution(
                    watcher, "after", kernel_id=new, code="print(6 * 7)", status="requested"
                )
                await watcher.wait_for(
                    lambda: execution(watcher, "after").get("status") in ("completed", "error"),
                    timeout=WAIT,
                )
                done = execution(watcher, "after")
                assert done["status"] == "completed", done
                assert done["outputs"][0]["text"] == "42\n"
                await jupyter.shutdown_kernel(new)
            finally:
                await running.close()
    finally:
        await asyncio.to_thread(server.close)


@database_sync_to_async
def stored(datastore: str) -> dict[str, int]:
    """txid -> serial of every transaction stored for ``datastore``."""
    return dict(
        Transaction.objects.filter(datastore=Datastore.objects.get(name=datastore)).values_list(
            "txid", "serial"
        )
    )


async def test_the_relay_restarted_under_the_supernode_loses_nothing_and_repeats_nothing(
    start_server, jupyter_server
):
    service_token, editor_token = await accounts()
    relay = await asyncio.to_thread(start_server)
    async with (
        JupyterClient(jupyter_server.url, jupyter_server.token) as jupyter,
        DatastoreClient(relay.ws_url, "jupyter", token=editor_token, backoff=QUICK) as watcher,
    ):
        running = Running(jupyter, relay.ws_url, service_token)
        kernel = (await jupyter.start_kernel("python3"))["id"]
        late_kernel = None
        try:
            await watcher.wait_for(lambda: kernel in records(watcher, "kernels"), timeout=WAIT)
            request_execution(
                watcher, "before", kernel_id=kernel, code="print('before')", status="requested"
            )
            await watcher.wait_for(
                lambda: execution(watcher, "before").get("status") == "completed", timeout=WAIT
            )
            client = running.supernode.client
            await client.wait_acked(timeout=WAIT)
            acked_before = dict(client.acked)
            doc_before, serial_before = client.doc, client.serial
            connections_before = client.connections

            await asyncio.to_thread(relay.stop)
            # While the relay is down the supernode goes on: a kernel started meanwhile is put in
            # its table, to be sent once the relay is back.
            late_kernel = (await jupyter.start_kernel("python3"))["id"]
            await client.wait_for(
                lambda: late_kernel in client.doc.get("kernels", type=Map), timeout=WAIT
            )
            assert client.pending  # not acknowledged: nobody to acknowledge it
            await asyncio.to_thread(relay.restart)  # same port

            await client.wait_for(
                lambda: client.connected and client.connections > connections_before, WAIT
            )
            await watcher.wait_for(lambda: late_kernel in records(watcher, "kernels"), timeout=WAIT)
            # A request written after the restart is carried out.
            request_execution(
                watcher, "after", kernel_id=kernel, code="print('after')", status="requested"
            )
            await watcher.wait_for(
                lambda: execution(watcher, "after").get("status") == "completed", timeout=WAIT
            )
            assert execution(watcher, "after")["outputs"][0]["text"] == "after\n"
            # "before" ran once: its outputs are as they were, and "after" is the kernel's second.
            assert execution(watcher, "before")["outputs"][0]["text"] == "before\n"
            assert execution(watcher, "before")["execution_count"] == 1
            assert execution(watcher, "after")["execution_count"] == 2

            # It resumed: the same document, carried on from its serial, not rebuilt.
            await client.wait_acked(timeout=WAIT)
            assert client.doc is doc_before
            assert client.serial > serial_before
            assert not client.rejections
            rows = await stored("jupyter")
            # Everything acknowledged is stored, under the serial it was acknowledged with...
            for txid, serial in {**acked_before, **client.acked, **watcher.acked}.items():
                assert serial is None or rows[txid] == serial, txid
            # ...and once: serials without gaps, one per transaction id (unique per datastore).
            assert sorted(rows.values()) == list(range(1, len(rows) + 1))
            # Both peers converge.
            await watcher.wait_for(
                lambda: records(watcher, "kernels") == client.doc.get("kernels", type=Map).to_py(),
                timeout=WAIT,
            )
        finally:
            await running.close()
            for kernel_id in (kernel, late_kernel):
                if kernel_id:
                    await jupyter.shutdown_kernel(kernel_id)
