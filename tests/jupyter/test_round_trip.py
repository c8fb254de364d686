"""Notebooks survive the shared model: opened and saved with no edit, a notebook's JSON is what
it was (key order aside); with one cell edited, only that cell changed. On a corpus of real
notebooks (tests/support/corpus.py: widget state, attachments, raw cells, every output type,
unusual metadata, nbformat 4.0 to 4.5), through the supernode (documents) and through the REST
contents API (GET, then PUT the same model back). Jupyter's own GET-then-PUT is measured beside
it: where Jupyter itself changes a notebook on writing it (it adds nothing the shared model
could keep), the file must be what Jupyter writes. The same again through the collaboration room,
as JupyterLab opens, edits and saves a notebook."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from pycrdt import Array
from rtc_client import DatastoreClient

from jupyter_sync.jupyter import JupyterClient
from tests.support.corpus import corpus, features, representative
from tests.support.notebooks import disk_notebook
from tests.support.rooms import RoomClient
from tests.support.supernode import (
    RunningSupernode,
    accounts,
    create,
    end_sessions,
    record,
    update,
)
from tests.support.waiting import aeventually

pytest_plugins = ["tests.support.liveserver", "tests.support.jupyter"]
pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 60.0


def differences(expected: dict, actual: dict | None, where: str = "") -> list[str]:
    """Where two JSON values differ (key order aside), as readable paths."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = []
        for key in sorted(set(expected) | set(actual)):
            if key not in actual:
                found.append(f"{where}/{key}: missing")
            elif key not in expected:
                found.append(f"{where}/{key}: added {json.dumps(actual[key])[:80]}")
            else:
                found += differences(expected[key], actual[key], f"{where}/{key}")
        return found
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [
            d
            for i, pair in enumerate(zip(expected, actual, strict=True))
            for d in differences(*pair, f"{where}/{i}")
        ]
    if expected != actual or type(expected) is not type(actual):
        return [f"{where}: {json.dumps(expected)[:80]} != {json.dumps(actual)[:80]}"]
    return []


def first_code_cell(content: dict) -> int | None:
    return next((i for i, cell in enumerate(content["cells"]) if cell["cell_type"] == "code"), None)


async def jupyters_own_round_trip(jupyter: JupyterClient, path: str) -> None:
    model = await jupyter.get_contents(path)
    await jupyter.save_contents(path, {"type": "notebook", "content": model["content"]})


@pytest.mark.timeout(240)  # about 30 notebooks, each written four ways on a 2-core machine
async def test_open_save_and_one_edit_keep_every_notebook_of_the_corpus(
    start_server, jupyter_server
):
    notebooks = await asyncio.to_thread(corpus)
    assert len(notebooks) >= 25, sorted(notebooks)
    root: Path = jupyter_server.root_dir / "corpus"
    for folder in ("model", "jupyter", "rest"):
        for name, content in notebooks.items():
            (root / folder).mkdir(parents=True, exist_ok=True)
            (root / folder / f"{name}.ipynb").write_text(json.dumps(content, indent=1))

    service_token, editor_token = await accounts()
    relay = await asyncio.to_thread(start_server)
    names = sorted(notebooks)
    async with (
        JupyterClient(jupyter_server.url, jupyter_server.token) as jupyter,
        httpx.AsyncClient(
            base_url=relay.url, headers={"Authorization": f"Token {editor_token}"}, timeout=WAIT
        ) as rest,
    ):
        for name in names:
            await jupyters_own_round_trip(jupyter, f"corpus/jupyter/{name}.ipynb")
        reference = {name: disk_notebook(root / "jupyter" / f"{name}.ipynb") for name in names}
        kept_as_is = [name for name in names if not differences(notebooks[name], reference[name])]
        # Jupyter rewrites some notebooks itself (e.g. adding what its validator fills in);
        # most it leaves as they are, and those must come back exactly as they were.
        assert len(kept_as_is) >= len(names) // 2, "Jupyter's own round trip changed most"

        async with (
            DatastoreClient(relay.ws_url, "jupyter", token=editor_token) as watcher,
            RunningSupernode(jupyter, relay.ws_url, service_token),
        ):
            # The REST contents API: GET, then PUT the same model back.
            problems: dict[str, list[str]] = {}
            for name in names:
                path = f"corpus/rest/{name}.ipynb"
                got = await rest.get(f"/api/contents/{path}")
                assert got.status_code == 200, (name, got.text)
                model = got.json()
                put = await rest.put(
                    f"/api/contents/{path}",
                    json={"type": "notebook", "format": "json", "content": model["content"]},
                )
                assert put.status_code == 200, (name, put.text)
                found = differences(reference[name], disk_notebook(root / "rest" / f"{name}.ipynb"))
                if found:
                    problems[f"rest {name}"] = found

            # The shared model: open, save with no edit.
            ids = {name: f"rt{index}" for index, name in enumerate(names)}
            for name in names:
                create(
                    watcher,
                    "documents",
                    ids[name],
                    path=f"corpus/model/{name}.ipynb",
                    request="open",
                )
            await watcher.wait_for(
                lambda: all(
                    record(watcher, "documents", ids[name]).get("status") in ("open", "error")
                    and not record(watcher, "documents", ids[name]).get("request")
                    for name in names
                ),
                timeout=WAIT * 2,
            )
            failed = {
                name: record(watcher, "documents", ids[name]).get("error")
                for name in names
                if record(watcher, "documents", ids[name]).get("status") == "error"
            }
            assert not failed, f"could not open: {failed}"
            for name in names:
                update(watcher, "documents", ids[name], request="save")
            await watcher.wait_for(
                lambda: all(
                    record(watcher, "documents", ids[name]).get("last_saved")
                    and not record(watcher, "documents", ids[name]).get("request")
                    for name in names
                ),
                timeout=WAIT * 2,
            )
            for name in names:
                found = differences(
                    reference[name], disk_notebook(root / "model" / f"{name}.ipynb")
                )
                if found:
                    problems[f"model {name}"] = found

            # One cell edited: only that cell's source changes.
            edited = [name for name in names if first_code_cell(notebooks[name]) is not None]
            for name in edited:
                index = first_code_cell(notebooks[name])
                async with DatastoreClient(
                    relay.ws_url, f"doc-{ids[name]}", token=editor_token
                ) as doc:
                    text = doc.doc.get("cells", type=Array)[index]["source"]
                    text += "\n# edited"
                    await doc.wait_acked(timeout=WAIT)
                update(watcher, "documents", ids[name], request="save")
            for name in edited:
                index = first_code_cell(notebooks[name])
                expected = copy.deepcopy(reference[name])
                source = expected["cells"][index]["source"]
                source = "".join(source) if isinstance(source, list) else source
                expected["cells"][index]["source"] = source + "\n# edited"
                path = root / "model" / f"{name}.ipynb"

                def saved(path=path, index=index) -> bool:
                    content = disk_notebook(path)
                    return bool(content) and "# edited" in "".join(
                        content["cells"][index]["source"]
                    )

                await aeventually(saved, WAIT, f"{name} saved with its edit", off_loop=True)
                actual = disk_notebook(path)
                cell = actual["cells"][index]
                if isinstance(cell["source"], list):
                    cell["source"] = "".join(cell["source"])
                found = differences(expected, actual)
                if found:
                    problems[f"edit {name}"] = found
        await end_sessions(jupyter, "corpus/")

    report = "\n".join(f"{key}:\n  " + "\n  ".join(found[:8]) for key, found in problems.items())
    assert not problems, f"{len(problems)} round trips changed a notebook:\n{report}"


@pytest.mark.timeout(240)  # about 15 notebooks, each opened, saved and edited through a room
async def test_through_the_collaboration_room_open_save_and_one_edit_keep_the_corpus(
    start_server, jupyter_server
):
    """The routes JupyterLab uses: ``PUT /api/collaboration/session/<path>``, then a y-websocket
    client in the room. Joined with no edit and saved (Ctrl+S), a notebook's file is what
    Jupyter's own round trip writes; with one cell's source edited through the room, only that
    cell changed. What differs from the test above is the way in (the session, the room, a
    client's sync), not how a notebook is kept, and each notebook costs seconds on a loaded
    machine: the notebooks that between them hold everything the corpus holds (every nbformat
    minor, cell, output and MIME type, attachments, and metadata key) stand for it."""
    everything = await asyncio.to_thread(corpus)
    assert len(everything) >= 25, sorted(everything)
    notebooks = representative(everything)
    covered = set().union(*(features(content) for content in notebooks.values()))
    assert covered == set().union(*(features(content) for content in everything.values()))
    root: Path = jupyter_server.root_dir / "corpus-room"
    for folder in ("jupyter", "room"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name, content in notebooks.items():
            (root / folder / f"{name}.ipynb").write_text(json.dumps(content, indent=1))

    service_token, editor_token = await accounts()
    relay = await asyncio.to_thread(start_server, env={"RTC_API_ACTION_TIMEOUT": str(WAIT)})
    names = sorted(notebooks)
    problems: dict[str, list[str]] = {}
    async with (
        JupyterClient(jupyter_server.url, jupyter_server.token) as jupyter,
        httpx.AsyncClient(
            base_url=relay.url, headers={"Authorization": f"Token {editor_token}"}, timeout=WAIT
        ) as rest,
    ):
        for name in names:
            await jupyters_own_round_trip(jupyter, f"corpus-room/jupyter/{name}.ipynb")
        reference = {name: disk_notebook(root / "jupyter" / f"{name}.ipynb") for name in names}
        few_at_a_time = asyncio.Semaphore(4)

        async def round_trip(name: str) -> None:
            path = root / "room" / f"{name}.ipynb"
            session_url = "/api/collaboration/session/" + quote(
                f"corpus-room/room/{name}.ipynb", safe=""
            )
            async with few_at_a_time:
                session = await rest.put(
                    session_url,
                    json={"format": "json", "type": "notebook"},
                )
                assert session.status_code == 201, (name, session.text)
                opened = session.json()
                room = (
                    f"{relay.ws_url}/api/collaboration/room/json:notebook:{opened['fileId']}"
                    f"?sessionId={opened['sessionId']}&token={editor_token}"
                )
                lab = await RoomClient.join(room, WAIT)
                try:
                    assert await lab.save(1, WAIT) == "success", name
                    found = differences(reference[name], disk_notebook(path))
                    if found:
                        problems[f"save {name}"] = found
                    index = first_code_cell(notebooks[name])
                    if index is None:
                        return
                    text = lab.doc.get("cells", type=Array)[index]["source"]
                    text += "\n# edited"
                    await lab.flush()

                    def saved() -> bool:
                        content = disk_notebook(path)
                        return bool(content) and "# edited" in "".join(
                            content["cells"][index]["source"]
                        )

                    await aeventually(saved, WAIT, f"{name} saved with its edit", off_loop=True)
                finally:
                    await lab.close()
            expected = copy.deepcopy(reference[name])
            source = expected["cells"][index]["source"]
            source = "".join(source) if isinstance(source, list) else source
            expected["cells"][index]["source"] = source + "\n# edited"
            actual = disk_notebook(path)
            cell = actual["cells"][index]
            if isinstance(cell["source"], list):
                cell["source"] = "".join(cell["source"])
            found = differences(expected, actual)
            if found:
                problems[f"edit {name}"] = found

        async with RunningSupernode(jupyter, relay.ws_url, service_token) as running:
            running.documents.save_delay = 0.3  # an edit saved soon after it is made
            await asyncio.gather(*(round_trip(name) for name in names))
        await end_sessions(jupyter, "corpus-room/")

    report = "\n".join(f"{key}:\n  " + "\n  ".join(found[:8]) for key, found in problems.items())
    assert not problems, f"{len(problems)} round trips changed a notebook:\n{report}"
