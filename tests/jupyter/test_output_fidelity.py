"""The outputs the supernode saves are the ones Jupyter itself would save.

One notebook, with a cell for each way a kernel's outputs are combined, is run twice: by
nbclient, the reference executor, in this process on a kernel of its own; and cell by cell
through the supernode on a real Jupyter Server, its outputs then read from the ``.ipynb`` the
supernode saved. The two files are compared cell by cell, field by field, with nothing ignored:
each run starts a fresh kernel and runs every cell once, in order, so execution counts (and the
``Cell In[n]`` lines of tracebacks) are the same.

Where nbclient does not do what Jupyter's front end does, the front end (JupyterLab's output
area, which is what saves a notebook run interactively) is the reference, and the test says so:

- ``coalesce_streams`` (without it nbclient keeps every iopub message as an output) merges all
  the streams of one name in a cell, adjacent or not, and moves stdout before stderr. The front
  end merges only adjacent streams of one name, keeping the order they came in; the interleaved
  cell is compared with nbclient's uncoalesced run, in which each flushed write is one output,
  as in the front end when no two adjacent writes share a stream.
- nbclient's coalescing drops each line's text before a ``\\r`` with a regular expression; the
  front end moves a cursor to the line's start and overwrites. They agree when what follows the
  ``\\r`` is at least as long as what it replaces (the progress bars here); the cases where they
  differ are unit tests (tests/unit/test_outputs.py), against the front end.
- nbclient leaves backspaces in the text; the front end applies them. The backspace cell is
  compared with what the front end keeps.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
from pathlib import Path

import nbformat
import pytest
from jupyter_ydoc import YNotebook
from nbclient import NotebookClient
from pycrdt import Doc
from rtc_client import DatastoreClient

from jupyter_sync.jupyter import JupyterClient
from jupyter_sync.schema import timestamp
from tests.support.notebooks import code, notebook, write_json
from tests.support.supernode import RunningSupernode, accounts, create, end_sessions, record
from tests.support.waiting import aeventually

pytest_plugins = ["tests.support.liveserver", "tests.support.jupyter"]
pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 60.0

# A 1x1 PNG.
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d4944415478da63f8cfc0f01f0005000201a5f5fe8a0000000049454e44ae426082"
    )
).decode()

CELLS = {
    "many": "for i in range(2000):\n    print(f'line {i}')",
    "interleaved": (
        "import sys\n"
        "for i in range(3):\n"
        "    sys.stdout.write(f'out {i}\\n')\n"
        "    sys.stdout.flush()\n"
        "    sys.stderr.write(f'err {i}\\n')\n"
        "    sys.stderr.flush()"
    ),
    "progress": (
        "print('progress:')\n"
        "for i in range(200):\n"
        "    print(f'\\r{i}%', end='')\n"
        "print()\n"
        "print('finished')"
    ),
    "progress_end_r": ("for i in range(100):\n    print(f'{i}%', end='\\r')\nprint('done')"),
    "backspace": (
        "print('loading...', end='')\n"
        "for _ in range(3):\n"
        "    print('\\b', end='', flush=True)\n"
        "print('!!!')\n"
        "print('abc\\b\\bXY')"
    ),
    "cleared": (
        "from IPython.display import clear_output\n"
        "print('gone')\n"
        "for i in range(5):\n"
        "    clear_output(wait=True)\n"
        "    print(f'step {i}')"
    ),
    "updated": (
        "from IPython.display import display\n"
        "handle = display('first', display_id=True)\n"
        "print('between')\n"
        "handle.update('second')\n"
        "other = display('kept', display_id=True)\n"
        "handle.display('again')"
    ),
    "updated_later": "handle.update('from a later cell')\nprint('updated')",
    "error": ("def fail(x):\n    raise ValueError(f'bad value {x}')\nprint('before')\nfail(3)"),
    "result": "{'a': 1, 'b': [1, 2.5, None], 'c': 'text'}",
    "rich": (
        "import base64\n"
        "from IPython.display import HTML, Image, display\n"
        f"display(Image(data=base64.b64decode('{PNG}')))\n"
        "display(HTML('<b>bold</b>'))\n"
        "display({'application/json': {'x': [1, 2]}, 'text/plain': 'json'}, raw=True)\n"
        "HTML('<i>last</i>')"
    ),
}

# What the front end keeps where nbclient keeps something else (see the module's docstring).
FRONT_END = {
    "backspace": [{"output_type": "stream", "name": "stdout", "text": "loading!!!\naXY\n"}],
}


def the_notebook() -> dict:
    return notebook(*(code(cell_id, source) for cell_id, source in CELLS.items()))


async def run_nbclient(content: dict, directory: Path, *, coalesce: bool) -> dict:
    """The notebook as nbclient saves it, read back as Jupyter reads a file."""
    nb = nbformat.from_dict(copy.deepcopy(content))
    client = NotebookClient(
        nb,
        timeout=int(WAIT),
        kernel_name="python3",
        allow_errors=True,
        coalesce_streams=coalesce,
        resources={"metadata": {"path": str(directory)}},
    )
    await client.async_execute()
    path = directory / f"nbclient-{'coalesced' if coalesce else 'raw'}.ipynb"
    nbformat.write(nb, path)
    return nbformat.read(path, as_version=4)


def live(client: DatastoreClient) -> dict | None:
    """The document as the supernode saves it (once every cell has run), read as Jupyter reads
    a file."""
    copied = Doc()
    copied.apply_update(client.doc.get_update())
    content = YNotebook(copied).get()
    if [cell.get("execution_count") for cell in content["cells"]] != list(range(1, len(CELLS) + 1)):
        return None
    return nbformat.reads(json.dumps(content), as_version=4)


def outputs_of(nb: dict) -> list:
    return [(cell.get("execution_count"), cell.get("outputs")) for cell in nb["cells"]]


def by_id(nb: dict) -> dict[str, dict]:
    return {cell["id"]: cell for cell in nb["cells"]}


async def test_saved_outputs_match_what_nbclient_saves(start_server, jupyter_server, tmp_path):
    content = the_notebook()
    reference = by_id(await run_nbclient(content, tmp_path, coalesce=True))
    raw = by_id(await run_nbclient(content, tmp_path, coalesce=False))

    service_token, editor_token = await accounts()
    relay = await asyncio.to_thread(start_server)
    root: Path = jupyter_server.root_dir
    nb_path = root / "fidelity" / "all.ipynb"
    write_json(nb_path, content)
    async with JupyterClient(jupyter_server.url, jupyter_server.token) as jupyter:
        running = RunningSupernode(jupyter, relay.ws_url, service_token, quick_documents=True)
        try:
            async with DatastoreClient(relay.ws_url, "jupyter", token=editor_token) as watcher:
                create(
                    watcher,
                    "documents",
                    "fid",
                    path="fidelity/all.ipynb",
                    request="open",
                    requested_by="ed",
                )
                await watcher.wait_for(
                    lambda: record(watcher, "documents", "fid").get("status") == "open", WAIT
                )
                for n, cell_id in enumerate(CELLS):
                    create(
                        watcher,
                        "executions",
                        f"fid-{n}",
                        document_id="fid",
                        cell_id=cell_id,
                        status="requested",
                        requested_by="ed",
                        created_at=timestamp(),
                    )
                await watcher.wait_for(
                    lambda: all(
                        record(watcher, "executions", f"fid-{n}").get("status")
                        in ("completed", "error")
                        for n in range(len(CELLS))
                    ),
                    WAIT,
                )
                statuses = [
                    record(watcher, "executions", f"fid-{n}")["status"] for n in range(len(CELLS))
                ]
                assert statuses == [
                    "error" if cell_id == "error" else "completed" for cell_id in CELLS
                ]

                async with DatastoreClient(relay.ws_url, "doc-fid", token=editor_token) as doc:
                    await doc.wait_for(lambda: live(doc) is not None, WAIT)
                    document = live(doc)

            def saved() -> dict | None:
                """The file, once it holds what the document holds (the last save)."""
                try:
                    nb = nbformat.read(nb_path, as_version=4)
                except Exception:  # not there, or being written
                    return None
                return nb if outputs_of(nb) == outputs_of(document) else None

            nb = await aeventually(saved, WAIT, "the outputs saved to the file", off_loop=True)
        finally:
            await end_sessions(jupyter, "fidelity/")
            await running.close()

    nbformat.validate(nb)  # raises on anything nbformat's schema forbids (``transient``, say)
    ours = by_id(nb)
    differences = {}
    for cell_id in CELLS:
        expected = raw[cell_id] if cell_id == "interleaved" else reference[cell_id]
        wanted = (expected["execution_count"], FRONT_END.get(cell_id, expected["outputs"]))
        got = (ours[cell_id]["execution_count"], ours[cell_id]["outputs"])
        if got != wanted:
            differences[cell_id] = {"saved": got, "expected": wanted}
    assert not differences, json.dumps(differences, indent=1)[:20_000]

    # What the comparison covers, so that it cannot pass by both sides losing an output.
    outputs = {cell_id: ours[cell_id]["outputs"] for cell_id in CELLS}
    assert outputs["many"][0]["text"].count("\n") == 2000 and len(outputs["many"]) == 1
    assert [o["name"] for o in outputs["interleaved"]] == ["stdout", "stderr"] * 3
    assert outputs["progress"] == [
        {"output_type": "stream", "name": "stdout", "text": "progress:\n199%\nfinished\n"}
    ]
    assert outputs["progress_end_r"][0]["text"] == "done\n"
    assert outputs["cleared"] == [{"output_type": "stream", "name": "stdout", "text": "step 4\n"}]
    updated = [o.get("data", {}).get("text/plain", o.get("text")) for o in outputs["updated"]]
    assert updated == ["'from a later cell'", "between\n", "'kept'", "'from a later cell'"]
    assert outputs["updated_later"] == [
        {"output_type": "stream", "name": "stdout", "text": "updated\n"}
    ]
    error = outputs["error"][-1]
    assert error["output_type"] == "error" and error["ename"] == "ValueError"
    assert any("bad value 3" in line for line in error["traceback"])
    assert outputs["result"][0]["output_type"] == "execute_result"
    rich = outputs["rich"]
    assert rich[0]["data"]["image/png"].strip() == PNG
    assert rich[1]["data"]["text/html"] == "<b>bold</b>"
    assert rich[2]["data"]["application/json"] == {"x": [1, 2]}
    assert rich[3]["output_type"] == "execute_result"
