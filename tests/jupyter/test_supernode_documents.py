"""Documents and cells run by id, through the supernode, against a real Jupyter Server and a real
relay process. The supernode runs in the test's event loop; clients are DatastoreClients with an
editor's token; what only the database shows (projections, history) is awaited with deadlines.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from jupyter_ydoc import YNotebook
from pycrdt import Array, Doc, Map, Text
from rtc_client import DatastoreClient

from jupyter_sync.jupyter import JupyterClient
from jupyter_sync.models import Cell, Execution, Output
from jupyter_sync.schema import EXECUTION_DONE, source_hash, timestamp
from jupyter_sync.supernode import account
from jupyter_sync.supernode.executing import START_GRACE
from jupyter_sync.supernode.outputs import NotebookOutputSink
from tables.history import replay, updates_between
from tables.models import Datastore, TouchedRecord, Transaction
from tables.service import live_python
from tests.support.notebooks import code, disk_notebook, disk_source, notebook, write_json
from tests.support.supernode import (
    RunningSupernode,
    accounts,
    create,
    end_sessions,
    finished,
    record,
    update,
)
from tests.support.waiting import aeventually

pytest_plugins = ["tests.support.liveserver", "tests.support.jupyter"]
pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 30.0


def cells(client: DatastoreClient) -> Array:
    return client.doc.get("cells", type=Array)


def cell(client: DatastoreClient, cell_id: str) -> Map:
    return next(c for c in cells(client) if c.get("id") == cell_id)


def source(client: DatastoreClient, cell_id: str) -> str:
    return str(cell(client, cell_id)["source"])


async def open_document(watcher: DatastoreClient, document_id: str, path: str) -> None:
    create(watcher, "documents", document_id, path=path, request="open", requested_by="ed")
    await watcher.wait_for(
        lambda: (
            record(watcher, "documents", document_id).get("status") == "open"
            and not record(watcher, "documents", document_id).get("request")
        ),
        timeout=WAIT,
    )


async def run_cell(watcher: DatastoreClient, execution_id: str, document_id: str, cell_id: str):
    create(
        watcher,
        "executions",
        execution_id,
        document_id=document_id,
        cell_id=cell_id,
        status="requested",
        requested_by="ed",
        created_at=timestamp(),
    )


# --- Documents -------------------------------------------------------------------------------


async def test_documents_open_save_follow_the_disk_conflict_rename_delete(
    start_server, jupyter_server
):
    service_token, editor_token = await accounts()
    relay = await asyncio.to_thread(start_server)
    root: Path = jupyter_server.root_dir
    nb_path = root / "docs1" / "a.ipynb"
    write_json(nb_path, notebook(code("c1", "x = 1"), code("c2", "print(x)")))
    (root / "docs1" / "notes.txt").write_text("one\ntwo\n")

    async with (
        JupyterClient(jupyter_server.url, jupyter_server.token) as jupyter,
        DatastoreClient(relay.ws_url, "jupyter", token=editor_token) as watcher,
    ):
        # Asked for while no supernode runs: a record, so it is carried out when one starts.
        create(watcher, "documents", "d1", path="docs1/a.ipynb", request="open")
        await watcher.wait_acked(timeout=WAIT)
        running = RunningSupernode(jupyter, relay.ws_url, service_token, quick_documents=True)
        try:
            # Open, then the request cleared: two transactions, seen apart or together.
            await watcher.wait_for(
                lambda: (
                    record(watcher, "documents", "d1").get("status") == "open"
                    and not record(watcher, "documents", "d1").get("request")
                ),
                timeout=WAIT,
            )
            opened = record(watcher, "documents", "d1")
            assert opened["datastore_name"] == "doc-d1"
            assert opened["type"] == "notebook"
            assert opened["last_modified"]

            async with DatastoreClient(relay.ws_url, "doc-d1", token=editor_token) as doc:
                assert [c.get("id") for c in cells(doc)] == ["c1", "c2"]
                assert source(doc, "c1") == "x = 1"

                # An edit is saved once the document is quiet.
                text = cell(doc, "c1")["source"]
                text += "0"
                await aeventually(
                    lambda: disk_source(nb_path, 0) == "x = 10",
                    WAIT,
                    "the edit saved",
                    off_loop=True,
                )
                await watcher.wait_for(
                    lambda: record(watcher, "documents", "d1").get("last_saved"), timeout=WAIT
                )
                await doc.wait_for(
                    lambda: doc.doc.get("state", type=Map).get("dirty") is False, timeout=WAIT
                )

                # Someone else changes the file; the document has nothing unsaved: it follows,
                # and its cells keep their identity.
                on_disk = disk_notebook(nb_path)
                on_disk["cells"][1]["source"] = "print(x * 2)"
                write_json(nb_path, on_disk)
                await doc.wait_for(lambda: source(doc, "c2") == "print(x * 2)", timeout=WAIT)
                assert source(doc, "c1") == "x = 10"
                assert [c.get("id") for c in cells(doc)] == ["c1", "c2"]

                # Both change: the document keeps its edit, the file keeps its own, and the
                # conflict is recorded.
                running.documents.save_delay = 60.0
                text = cell(doc, "c1")["source"]
                text += "0"  # x = 100
                await doc.wait_for(
                    lambda: doc.doc.get("state", type=Map).get("dirty") is True, timeout=WAIT
                )
                on_disk = disk_notebook(nb_path)
                on_disk["cells"][0]["source"] = "x = 'disk'"
                write_json(nb_path, on_disk)
                await watcher.wait_for(
                    lambda: record(watcher, "documents", "d1").get("conflict"), timeout=WAIT
                )
                conflict = record(watcher, "documents", "d1")["conflict"]
                assert set(conflict) == {"detected_at", "disk_last_modified", "message"}
                assert source(doc, "c1") == "x = 100"
                assert disk_source(nb_path, 0) == "x = 'disk'"
                assert running.documents.open["d1"].conflict_with  # automatic saves paused

                # Resolved by a save: the document wins, the conflict is cleared.
                running.documents.save_delay = 0.3
                update(watcher, "documents", "d1", request="save")
                await watcher.wait_for(
                    lambda: (
                        not record(watcher, "documents", "d1").get("conflict")
                        and not record(watcher, "documents", "d1").get("request")
                    ),
                    timeout=WAIT,
                )
                assert disk_source(nb_path, 0) == "x = 100"

                # Rename: same datastore, the file moves, later saves go to the new path.
                update(watcher, "documents", "d1", request="rename", new_path="docs1/b.ipynb")
                await watcher.wait_for(
                    lambda: (
                        record(watcher, "documents", "d1").get("path") == "docs1/b.ipynb"
                        and not record(watcher, "documents", "d1").get("request")
                    ),
                    timeout=WAIT,
                )
                renamed = root / "docs1" / "b.ipynb"
                assert renamed.exists() and not nb_path.exists()
                assert not record(watcher, "documents", "d1").get("new_path")
                await doc.wait_for(
                    lambda: doc.doc.get("state", type=Map).get("path") == "docs1/b.ipynb", WAIT
                )
                text = cell(doc, "c2")["source"]
                text += "  # renamed"
                await aeventually(
                    lambda: disk_source(renamed, 1) == "print(x * 2)  # renamed",
                    WAIT,
                    "the save after the rename",
                    off_loop=True,
                )

                # Delete: the file goes, the document is closed.
                update(watcher, "documents", "d1", request="delete")
                await watcher.wait_for(
                    lambda: record(watcher, "documents", "d1").get("status") == "closed",
                    timeout=WAIT,
                )
                assert not renamed.exists()
                assert "d1" not in running.documents.open

            # A text file: the `file` layout, saved as text.
            await open_document(watcher, "t1", "docs1/notes.txt")
            assert record(watcher, "documents", "t1")["type"] == "file"
            async with DatastoreClient(relay.ws_url, "doc-t1", token=editor_token) as doc:
                text = doc.doc.get("source", type=Text)
                assert str(text) == "one\ntwo\n"
                text += "three\n"
                notes = root / "docs1" / "notes.txt"
                await aeventually(
                    lambda: notes.read_text() == "one\ntwo\nthree\n",
                    WAIT,
                    "the text file saved",
                    off_loop=True,
                )

            # Errors: a missing file.
            create(watcher, "documents", "gone", path="docs1/nothing.ipynb", request="open")
            await watcher.wait_for(
                lambda: record(watcher, "documents", "gone").get("status") == "error",
                timeout=WAIT,
            )
            assert "no such file" in record(watcher, "documents", "gone")["error"]
            assert record(watcher, "documents", "gone")["error_status"] == 404
        finally:
            await running.close()


async def test_the_state_holds_jupyters_hash_of_the_file_after_each_load_and_save(
    start_server, jupyter_server
):
    """JupyterLab keeps the document's ``state.hash`` as the file's hash and, on Ctrl+S,
    compares it with what ``GET /api/contents/<path>?hash=1`` says: a stale one is its "File
    Changed" dialog. So after opening, after every save (automatic or asked for) and after a
    change on disk is loaded, the state holds exactly Jupyter's hash of the file."""
    service_token, editor_token = await accounts()
    relay = await asyncio.to_thread(start_server)
    root: Path = jupyter_server.root_dir
    nb_path = root / "hash1" / "a.ipynb"
    write_json(nb_path, notebook(code("c1", "x = 1")))
    (root / "hash1" / "t.txt").write_text("one\n")

    async with (
        JupyterClient(jupyter_server.url, jupyter_server.token) as jupyter,
        DatastoreClient(relay.ws_url, "jupyter", token=editor_token) as watcher,
        RunningSupernode(jupyter, relay.ws_url, service_token, quick_documents=True) as running,
    ):

        async def jupyters_hash(path: str) -> str:
            model = await jupyter.get_contents(path, content=False, hash=True)
            assert model["hash"], model  # Jupyter Server >= 2.11 gives it when asked
            return model["hash"]

        await open_document(watcher, "h1", "hash1/a.ipynb")
        await open_document(watcher, "h2", "hash1/t.txt")
        async with (
            DatastoreClient(relay.ws_url, "doc-h1", token=editor_token) as doc,
            DatastoreClient(relay.ws_url, "doc-h2", token=editor_token) as text_doc,
        ):

            def state(client: DatastoreClient = doc) -> dict:
                return client.doc.get("state", type=Map).to_py()

            async def agrees(client: DatastoreClient, path: str, previous: str | None) -> str:
                """Until the state's hash is new and is Jupyter's hash of the file now."""
                found = await aeventually(
                    lambda: (
                        state(client).get("hash") not in (None, previous)
                        and state(client).get("hash")
                    ),
                    WAIT,
                    f"a new hash of {path} in the state",
                )
                assert found == await jupyters_hash(path)
                return found

            # Opened: the hash of the file as read.
            loaded = await agrees(doc, "hash1/a.ipynb", None)
            assert state()["dirty"] is False and state()["path"] == "hash1/a.ipynb"
            await agrees(text_doc, "hash1/t.txt", None)

            # An edit, saved automatically: the hash of what was written.
            c1_source = cell(doc, "c1")["source"]
            c1_source += "0"
            saved = await agrees(doc, "hash1/a.ipynb", loaded)
            assert disk_source(nb_path, 0) == "x = 10"
            await doc.wait_for(lambda: state()["dirty"] is False, timeout=WAIT)

            # A save asked for (JupyterLab's Ctrl+S), no automatic one coming.
            running.documents.save_delay = 60.0
            c1_source += "0"
            await doc.wait_for(lambda: state()["dirty"] is True, timeout=WAIT)
            update(watcher, "documents", "h1", request="save")
            asked = await agrees(doc, "hash1/a.ipynb", saved)
            assert disk_source(nb_path, 0) == "x = 100"
            await watcher.wait_for(
                lambda: not record(watcher, "documents", "h1").get("request"), timeout=WAIT
            )
            assert state()["hash"] == await jupyters_hash("hash1/a.ipynb")

            # Someone else writes the file: once loaded, the hash is that file's.
            on_disk = disk_notebook(nb_path)
            on_disk["cells"][0]["source"] = "x = 'disk'"
            write_json(nb_path, on_disk)
            await agrees(doc, "hash1/a.ipynb", asked)
            assert source(doc, "c1") == "x = 'disk'"

            # A text file the same way.
            running.documents.save_delay = 0.3
            text = text_doc.doc.get("source", type=Text)
            before = state(text_doc)["hash"]
            text += "two\n"
            await agrees(text_doc, "hash1/t.txt", before)
            assert (root / "hash1" / "t.txt").read_text() == "one\ntwo\n"


async def test_a_restarted_supernode_reopens_documents_and_keeps_what_changed_meanwhile(
    start_server, jupyter_server
):
    """Edits made while no supernode ran are saved; a file changed meanwhile is loaded; both
    changed is a conflict."""
    service_token, editor_token = await accounts()
    relay = await asyncio.to_thread(start_server)
    root: Path = jupyter_server.root_dir
    paths = {name: root / "docs4" / f"{name}.ipynb" for name in ("edited", "ondisk", "both")}
    for path in paths.values():
        write_json(path, notebook(code("c1", "a = 1")))

    async with (
        JupyterClient(jupyter_server.url, jupyter_server.token) as jupyter,
        DatastoreClient(relay.ws_url, "jupyter", token=editor_token) as watcher,
    ):
        running = RunningSupernode(jupyter, relay.ws_url, service_token, quick_documents=True)
        try:
            for name in paths:
                await open_document(watcher, name, f"docs4/{name}.ipynb")
        finally:
            await running.close()
        assert {record(watcher, "documents", name)["status"] for name in paths} == {"open"}

        # No supernode now. A client edits two documents; someone changes two files.
        for name in ("edited", "both"):
            async with DatastoreClient(relay.ws_url, f"doc-{name}", token=editor_token) as doc:
                text = cell(doc, "c1")["source"]
                text += "0"
                await doc.wait_acked(timeout=WAIT)
        for name in ("ondisk", "both"):
            write_json(paths[name], notebook(code("c1", "a = 'disk'")))

        running = RunningSupernode(jupyter, relay.ws_url, service_token, quick_documents=True)
        try:
            await aeventually(
                lambda: disk_source(paths["edited"], 0) == "a = 10",
                WAIT,
                "the edit saved",
                off_loop=True,
            )
            await watcher.wait_for(
                lambda: record(watcher, "documents", "both").get("conflict"), timeout=WAIT
            )
            async with DatastoreClient(relay.ws_url, "doc-ondisk", token=editor_token) as doc:
                await doc.wait_for(lambda: source(doc, "c1") == "a = 'disk'", timeout=WAIT)
            async with DatastoreClient(relay.ws_url, "doc-both", token=editor_token) as doc:
                assert source(doc, "c1") == "a = 10"
            assert disk_source(paths["both"], 0) == "a = 'disk'"

            # Resolved by a reload: the file wins.
            update(watcher, "documents", "both", request="reload")
            await watcher.wait_for(
                lambda: (
                    not record(watcher, "documents", "both").get("conflict")
                    and not record(watcher, "documents", "both").get("request")
                ),
                timeout=WAIT,
            )
            async with DatastoreClient(relay.ws_url, "doc-both", token=editor_token) as doc:
                assert source(doc, "c1") == "a = 'disk'"
        finally:
            await running.close()


# --- Cells run by id ---------------------------------------------------------------------------


async def test_cells_run_by_id_outputs_errors_stdin_order_and_cancel(start_server, jupyter_server):
    service_token, editor_token = await accounts()
    relay = await asyncio.to_thread(start_server)
    root: Path = jupyter_server.root_dir
    write_json(
        root / "docs2" / "run.ipynb",
        notebook(
            code("hello", "print('old')"),
            code("fails", "1/0"),
            code("asks", "name = input('Name? ')\nprint('hi', name)"),
            code("first", "order = [1]"),
            code("second", "order.append(2)\norder"),
            code("sleeps", "import time\ntime.sleep(60)"),
            code("dies", "import os\nos._exit(1)"),
        ),
    )
    async with (
        JupyterClient(jupyter_server.url, jupyter_server.token) as jupyter,
        DatastoreClient(relay.ws_url, "jupyter", token=editor_token) as watcher,
    ):
        running = RunningSupernode(jupyter, relay.ws_url, service_token, quick_documents=True)
        try:
            await open_document(watcher, "n2", "docs2/run.ipynb")
            async with DatastoreClient(relay.ws_url, "doc-n2", token=editor_token) as doc:
                # The cell's current source runs, not the file's.
                hello = cell(doc, "hello")["source"]
                with doc.doc.transaction():
                    hello.clear()
                    hello += "print('hello')\n21 * 2"
                await doc.wait_acked(timeout=WAIT)
                await run_cell(watcher, "x1", "n2", "hello")
                done = await finished(watcher, "x1")
                assert done["status"] == "completed", done
                assert done["execution_count"] == 1
                assert done["code"] == "print('hello')\n21 * 2"
                # Written over the WebSocket without a source hash: the supernode notes the
                # cell's when it takes the request, and the run ran that source.
                assert done["source_hash"] == source_hash("print('hello')\n21 * 2")
                assert done["source_changed"] is False and done["session_id"]
                await doc.wait_for(
                    lambda: (
                        cell(doc, "hello").get("execution_count") == 1
                        and cell(doc, "hello").get("execution_state") == "idle"
                    ),
                    WAIT,
                )
                outputs = cell(doc, "hello")["outputs"]
                # The layout of jupyter_ydoc: Maps, a stream's text a Text.
                assert isinstance(outputs[0], Map) and isinstance(outputs[0]["text"], Text)
                assert outputs.to_py() == [
                    {"output_type": "stream", "name": "stdout", "text": "hello\n"},
                    {
                        "output_type": "execute_result",
                        "data": {"text/plain": "42"},
                        "metadata": {},
                        "execution_count": 1,
                    },
                ]
                assert cell(doc, "hello").get("execution_state") == "idle"

                # An error: the record says so, the traceback is in the cell's outputs.
                await run_cell(watcher, "x2", "n2", "fails")
                done = await finished(watcher, "x2")
                assert done["status"] == "error"
                assert done["error"].startswith("ZeroDivisionError")
                await doc.wait_for(lambda: len(cell(doc, "fails")["outputs"]) == 1, WAIT)
                error = cell(doc, "fails")["outputs"].to_py()[0]
                assert error["output_type"] == "error" and error["ename"] == "ZeroDivisionError"
                assert error["traceback"]

                # stdin: the request appears in the record, an editor answers.
                await run_cell(watcher, "x3", "n2", "asks")
                await watcher.wait_for(
                    lambda: record(watcher, "executions", "x3").get("input_request"), WAIT
                )
                assert record(watcher, "executions", "x3")["input_request"] == {
                    "prompt": "Name? ",
                    "password": False,
                }
                update(watcher, "executions", "x3", input_reply="Ada")
                done = await finished(watcher, "x3")
                assert done["status"] == "completed", done
                assert not done.get("input_request") and not done.get("input_reply")
                await doc.wait_for(
                    lambda: (
                        [o.get("text") for o in cell(doc, "asks")["outputs"].to_py()]
                        == ["hi Ada\n"]
                    ),
                    WAIT,
                )

                # Requested together: run in created_at order, one at a time.
                with watcher.doc.transaction():
                    for execution_id, cell_id, created_at in (
                        ("x5", "second", "2030-01-01T00:00:02"),
                        ("x4", "first", "2030-01-01T00:00:01"),
                    ):
                        watcher.doc.get("executions", type=Map)[execution_id] = Map(
                            {
                                "document_id": "n2",
                                "cell_id": cell_id,
                                "status": "requested",
                                "created_at": created_at,
                            }
                        )
                assert (await finished(watcher, "x4"))["status"] == "completed"
                assert (await finished(watcher, "x5"))["status"] == "completed"
                await doc.wait_for(lambda: len(cell(doc, "second")["outputs"]) == 1, WAIT)
                assert cell(doc, "second")["outputs"].to_py()[0]["data"]["text/plain"] == "[1, 2]"

                # Cancel: the running cell is interrupted.
                await run_cell(watcher, "x6", "n2", "sleeps")
                await watcher.wait_for(
                    lambda: record(watcher, "executions", "x6").get("status") == "running", WAIT
                )
                # Queued behind it, then cancelled: never runs.
                await run_cell(watcher, "x6b", "n2", "hello")
                await watcher.wait_for(
                    lambda: record(watcher, "executions", "x6b").get("status") == "queued", WAIT
                )
                update(watcher, "executions", "x6b", cancel=True)
                done = await finished(watcher, "x6b")
                assert done["status"] == "cancelled" and not done.get("started_at")
                assert record(watcher, "executions", "x6")["status"] == "running"
                update(watcher, "executions", "x6", cancel=True)
                done = await finished(watcher, "x6")
                assert done["status"] == "cancelled", done
                assert "KeyboardInterrupt" in done["error"]

                # The kernel dies under a cell: an error; the next cell gets it back restarted.
                await run_cell(watcher, "x8", "n2", "dies")
                done = await finished(watcher, "x8")
                assert done["status"] == "error" and "kernel" in done["error"], done
                await doc.wait_for(lambda: cell(doc, "dies").get("execution_state") == "idle", WAIT)
                await run_cell(watcher, "x9", "n2", "hello")
                assert (await finished(watcher, "x9"))["status"] == "completed"

                # A cell that is not there.
                await run_cell(watcher, "x7", "n2", "no-such-cell")
                done = await finished(watcher, "x7")
                assert done["status"] == "error" and "no cell" in done["error"]
        finally:
            await end_sessions(jupyter, "docs2/")
            await running.close()


# --- The closed browser ------------------------------------------------------------------------


@database_sync_to_async
def project_state(name: str, cell_id: str) -> dict:
    """What the database holds for a document's cell: live doc, projection, history."""
    live, serial = live_python(name)
    datastore = Datastore.objects.get(name=name)
    row = Cell.objects.get(notebook__datastore=datastore, cell_id=cell_id)
    history = replay(datastore, serial)
    return {
        "live": next(c for c in live["cells"] if c.get("id") == cell_id),
        "cell_row": {"execution_count": row.execution_count},
        "output_rows": [o.content for o in Output.objects.filter(cell=row).order_by("index")],
        "replayed": next(c for c in YNotebook(history).get()["cells"] if c.get("id") == cell_id),
        "writes": TouchedRecord.objects.filter(
            datastore=datastore, table="cells", record_id=cell_id
        ).count(),
        "by_supernode": Transaction.objects.filter(
            datastore=datastore, author__username=account.SERVICE_USERNAME
        ).count(),
    }


async def test_outputs_land_in_the_notebook_with_every_browser_closed(start_server, jupyter_server):
    service_token, editor_token = await accounts()
    relay = await asyncio.to_thread(start_server)
    root: Path = jupyter_server.root_dir
    nb_path = root / "docs3" / "long.ipynb"
    lines = 15
    write_json(
        nb_path,
        notebook(
            code(
                "long",
                f"import time\nfor i in range({lines}):\n"
                "    print(f'line {i}', flush=True)\n    time.sleep(0.2)\n'done'",
            )
        ),
    )
    async with JupyterClient(jupyter_server.url, jupyter_server.token) as jupyter:
        running = RunningSupernode(jupyter, relay.ws_url, service_token, quick_documents=True)
        try:
            async with DatastoreClient(relay.ws_url, "jupyter", token=editor_token) as watcher:
                await open_document(watcher, "n3", "docs3/long.ipynb")
                await run_cell(watcher, "long", "n3", "long")
                await watcher.wait_for(
                    lambda: record(watcher, "executions", "long").get("status") == "running",
                    WAIT,
                )
                async with DatastoreClient(relay.ws_url, "doc-n3", token=editor_token) as doc:
                    await doc.wait_for(lambda: len(cell(doc, "long")["outputs"]) > 0, WAIT)
            # Every client is gone; the supernode carries on.

            await aeventually(
                lambda: Execution.objects.filter(record_id="long", status="completed").exists(),
                WAIT,
                "the execution completed",
                off_loop=True,
            )
            execution = await database_sync_to_async(Execution.objects.get)(record_id="long")
            assert execution.execution_count == 1
            expected = "".join(f"line {i}\n" for i in range(lines))

            def saved() -> bool:
                nb = disk_notebook(nb_path)
                if nb is None:
                    return False
                outputs = nb["cells"][0]["outputs"]
                return (
                    nb["cells"][0]["execution_count"] == 1
                    and len(outputs) == 2
                    and "".join(outputs[0]["text"]) == expected
                )

            await aeventually(saved, WAIT, "the outputs saved to the .ipynb", off_loop=True)
            outputs = disk_notebook(nb_path)["cells"][0]["outputs"]
            assert "".join(outputs[1]["data"]["text/plain"]) == "'done'"  # nbformat: str or lines

            state = await project_state("doc-n3", "long")
            for cell_now in (state["live"], state["replayed"]):
                assert cell_now["execution_count"] == 1
                assert cell_now["outputs"][0]["text"] == expected
                assert cell_now["outputs"][1]["data"]["text/plain"] == "'done'"
            assert state["cell_row"] == {"execution_count": 1}
            assert [o["output_type"] for o in state["output_rows"]] == ["stream", "execute_result"]
            assert state["output_rows"][0]["text"] == expected
            # Streamed as they came: many writes to the cell, not one at the end.
            assert state["writes"] >= 5, state["writes"]
            assert state["by_supernode"] >= 5
        finally:
            await end_sessions(jupyter, "docs3/")
            await running.close()


async def test_a_cells_first_output_reaches_an_open_notebook_while_it_still_runs(
    start_server, jupyter_server
):
    service_token, editor_token = await accounts()
    relay = await asyncio.to_thread(start_server)
    root: Path = jupyter_server.root_dir
    write_json(
        root / "docs5" / "first.ipynb",
        notebook(
            code(
                "c",
                "print('first', flush=True)\nprint('second', flush=True)\n"
                "import time\ntime.sleep(3)",
            )
        ),
    )
    async with (
        JupyterClient(jupyter_server.url, jupyter_server.token) as jupyter,
        DatastoreClient(relay.ws_url, "jupyter", token=editor_token) as watcher,
    ):
        running = RunningSupernode(jupyter, relay.ws_url, service_token)
        # An interval longer than the cell: an output that waited for it would only come with
        # the end of the run, so the first one can be there early only if written at once.
        running.documents.cells.output_interval = 60.0
        try:
            await open_document(watcher, "n5", "docs5/first.ipynb")
            async with DatastoreClient(relay.ws_url, "doc-n5", token=editor_token) as doc:
                await run_cell(watcher, "f1", "n5", "c")

                def text() -> str:
                    outputs = cell(doc, "c")["outputs"]
                    return str(outputs[0]["text"]) if len(outputs) else ""

                await doc.wait_for(lambda: "first" in text(), WAIT)
                # Seen in the same document as the cell's state: the run had not ended.
                assert cell(doc, "c")["execution_state"] == "running"
                assert cell(doc, "c").get("execution_count") is None
                assert text() == "first\n"  # the next one is held for the interval
                assert record(watcher, "executions", "f1").get("status") not in EXECUTION_DONE

                done = await finished(watcher, "f1")
                assert done["status"] == "completed", done
                # The end waited for every output: whoever sees it completed reads them all.
                await doc.wait_for(lambda: cell(doc, "c")["execution_state"] == "idle", WAIT)
                assert text() == "first\nsecond\n"
                assert cell(doc, "c")["execution_count"] == done["execution_count"]
        finally:
            await end_sessions(jupyter, "docs5/")
            await running.close()


def cell_states(name: str, after: int, cell_id: str) -> list[tuple[Any, list[str]]]:
    """The cell's ``execution_state`` and output texts after each patch stored past ``after``."""
    datastore = Datastore.objects.get(name=name)
    doc = replay(datastore, after)
    states = []
    for _serial, patch in updates_between(datastore, after, datastore.last_serial):
        doc.apply_update(patch)
        found = next(c for c in doc.get("cells", type=Array) if c.get("id") == cell_id)
        texts = [str(output.get("text")) for output in found.get("outputs") or []]
        states.append((found.get("execution_state"), texts))
    return states


async def test_a_runs_start_edits_go_with_its_first_output_and_a_quiet_run_shows_running(
    start_server, jupyter_server
):
    """The edits that say a cell runs (its outputs cleared, its state running) are stored in
    the patch of its first output, not committed while the kernel works; a run that says
    nothing for the start grace is shown running, outputs cleared, while it runs."""
    service_token, editor_token = await accounts()
    relay = await asyncio.to_thread(start_server)
    old = {"output_type": "stream", "name": "stdout", "text": "old\n"}
    write_json(
        jupyter_server.root_dir / "docs8" / "start.ipynb",
        notebook(
            {**code("q", "print('new')"), "outputs": [old], "execution_count": 4},
            {**code("s", "import time\ntime.sleep(3)"), "outputs": [old]},
        ),
    )
    async with (
        JupyterClient(jupyter_server.url, jupyter_server.token) as jupyter,
        DatastoreClient(relay.ws_url, "jupyter", token=editor_token) as watcher,
    ):
        running = RunningSupernode(jupyter, relay.ws_url, service_token)
        try:
            await open_document(watcher, "n8", "docs8/start.ipynb")
            stored = await database_sync_to_async(Datastore.objects.get)(name="doc-n8")
            # A grace longer than any run: the first output always comes before it.
            running.documents.cells.start_grace = 60.0
            await run_cell(watcher, "q1", "n8", "q")
            assert (await finished(watcher, "q1"))["status"] == "completed"
            states = await database_sync_to_async(cell_states)("doc-n8", stored.last_serial, "q")
            shown_running = [texts for state, texts in states if state == "running"]
            assert shown_running, states
            assert shown_running[0] == ["new\n"], states  # never running with the old outputs
            assert all(texts for _state, texts in states), states  # nor with none

            running.documents.cells.start_grace = START_GRACE
            async with DatastoreClient(relay.ws_url, "doc-n8", token=editor_token) as doc:
                await run_cell(watcher, "s1", "n8", "s")
                await doc.wait_for(lambda: cell(doc, "s")["execution_state"] == "running", WAIT)
                assert len(cell(doc, "s")["outputs"]) == 0
                assert record(watcher, "executions", "s1").get("status") not in EXECUTION_DONE
                assert (await finished(watcher, "s1"))["status"] == "completed"
        finally:
            await end_sessions(jupyter, "docs8/")
            await running.close()


class CountingSessions:
    """A JupyterClient that counts its listings of the server's sessions."""

    def __init__(self, jupyter: JupyterClient):
        self.jupyter = jupyter
        self.listed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.jupyter, name)

    async def sessions(self) -> Any:
        self.listed += 1
        return await self.jupyter.sessions()


async def test_a_notebook_runs_again_on_its_session_without_asking_the_server_for_it(
    start_server, jupyter_server
):
    """The session found for a run is kept: the next run sends its execute_request without
    listing the server's sessions first. When the session goes (deleted, its kernel shut
    down), the next run finds that out and gets a new one."""
    service_token, editor_token = await accounts()
    relay = await asyncio.to_thread(start_server)
    root: Path = jupyter_server.root_dir
    write_json(root / "docs6" / "again.ipynb", notebook(code("c", "print('again')")))
    async with (
        JupyterClient(jupyter_server.url, jupyter_server.token) as jupyter,
        DatastoreClient(relay.ws_url, "jupyter", token=editor_token) as watcher,
    ):
        running = RunningSupernode(jupyter, relay.ws_url, service_token)
        # What runs cells reaches the server through the node's client (the server-state
        # refresh keeps its own, and lists sessions on its own schedule): count its listings.
        counting = CountingSessions(jupyter)
        running.supernode.jupyter = counting  # type: ignore[assignment]
        try:
            await open_document(watcher, "n6", "docs6/again.ipynb")
            await run_cell(watcher, "a1", "n6", "c")
            first = await finished(watcher, "a1")
            assert first["status"] == "completed", first
            before = counting.listed
            await run_cell(watcher, "a2", "n6", "c")
            second = await finished(watcher, "a2")
            assert second["status"] == "completed", second
            assert counting.listed == before  # no request for the session before this run
            assert (second["session_id"], second["kernel_id"]) == (
                first["session_id"],
                first["kernel_id"],
            )

            # The session is deleted (its kernel shut down): the next run gets a new one.
            await jupyter.delete_session(first["session_id"])
            await aeventually(
                lambda: not running.supernode.kernel_open(first["kernel_id"]), timeout=WAIT
            )
            await run_cell(watcher, "a3", "n6", "c")
            third = await finished(watcher, "a3")
            assert third["status"] == "completed", third
            assert third["session_id"] != first["session_id"]
            assert third["kernel_id"] != first["kernel_id"]
        finally:
            await end_sessions(jupyter, "docs6/")
            await running.close()


# --- The notebook output sink ------------------------------------------------------------------


def msg(kind: str, **content: Any) -> dict:
    return {"msg_type": kind, "content": content}


def test_notebook_outputs_are_maps_streams_grow_a_text_and_displays_update_in_place():
    doc = Doc()
    YNotebook(doc).set(notebook(code("c", "print(1)")))
    outputs = doc.get("cells", type=Array)[0]["outputs"]
    sink = NotebookOutputSink()
    with doc.transaction():
        for i in range(3):
            sink.apply(outputs, msg("stream", name="stdout", text=f"{i}\n"))
    assert isinstance(outputs[0], Map) and isinstance(outputs[0]["text"], Text)
    sink.apply(outputs, msg("stream", name="stdout", text="3\n"))
    sink.apply(outputs, msg("stream", name="stderr", text="oops\n"))
    shown = {"data": {"text/plain": "10%"}, "metadata": {}, "transient": {"display_id": "bar"}}
    sink.apply(outputs, msg("display_data", **shown))
    updated = {**shown, "data": {"text/plain": "100%"}}
    assert sink.apply(outputs, msg("update_display_data", **updated))
    # What jupyter_ydoc reads back (and saves): nbformat outputs, no transient.
    assert YNotebook(doc).get()["cells"][0]["outputs"] == [
        {"output_type": "stream", "name": "stdout", "text": "0\n1\n2\n3\n"},
        {"output_type": "stream", "name": "stderr", "text": "oops\n"},
        {"output_type": "display_data", "data": {"text/plain": "100%"}, "metadata": {}},
    ]
    # clear_output(wait=True) clears when the next output comes.
    assert not sink.apply(outputs, msg("clear_output", wait=True))
    assert len(outputs) == 3
    result = {"data": {"text/plain": "1"}, "metadata": {}, "execution_count": 2}
    sink.apply(outputs, msg("execute_result", **result))
    assert outputs.to_py() == [{"output_type": "execute_result", **result}]
    assert sink.apply(outputs, msg("clear_output"))
    assert len(outputs) == 0
