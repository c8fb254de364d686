"""Stage timing inside the server processes, for ``bench/big_open.py``.

A benchmark cannot see inside daphne or the supernode, so it starts them through this module:
named functions are wrapped, and each call's start and end (wall clock, comparable across the
processes of one machine) are appended as a JSON line to ``$BENCH_STAGES_FILE``, with the
datastore (or the path) it was about and the size of what it handled. Nothing else changes.

    daphne ... bench.stages:application                     # the ASGI application, timed
    python bench/stages.py manage run_supernode ...          # manage.py, timed
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# (module, attribute path, stage). The label of a call is the datastore (a Datastore, a
# LoadedDoc or a name) or the document's path among its arguments; its size, the length of the
# first bytes or str argument.
SERVER_STAGES = [
    ("relay.consumers", "RelayConsumer.receive", "server: message received, parsed, queued"),
    ("tables.service", "_write", "server: write (all)"),
    ("tables.service", "check_client_update", "server: size and nesting check"),
    ("tables.loaded", "LoadedDoc.apply", "server: apply and analyze"),
    ("tables.service", "_persist", "server: persist (rows, checkpoint, projection)"),
    ("jupyter_sync.projection", "NotebookProjector.project", "server: projection"),
    ("jupyter_sync.projection", "insert_all", "server: projection, first write's rows"),
    ("relay.consumers", "RelayConsumer.connect", "server: room handshake and checks"),
    ("relay.yjs_consumer", "YjsConsumer.answer_step1", "server: sync step 2 sent"),
    ("tables.service", "live_diff", "server: state for a joining client"),
]
SUPERNODE_STAGES = [
    ("jupyter_sync.supernode.documents.file_sync", "FileSync._open", "supernode: open (all)"),
    ("jupyter_sync.supernode.documents.file_sync", "FileSync._read_file", "supernode: read"),
    (
        "jupyter_sync.supernode.documents.file_sync",
        "ensure_document_datastore",
        "supernode: datastore made",
    ),
    ("rtc_client.client", "DatastoreClient.start", "supernode: client connected"),
    ("jupyter_sync.supernode.documents.document", "OpenDocument.load", "supernode: build doc"),
    (
        "jupyter_sync.supernode.documents.file_sync",
        "FileSync._content_stored",
        "supernode: wait for the commit",
    ),
]


def _describe(args: tuple[Any, ...]) -> tuple[str, int]:
    label, size = "", 0
    for value in args:
        if not label:
            name = getattr(value, "name", None) or getattr(value, "path", None)
            if isinstance(name, str):
                label = name
            elif isinstance(value, str) and not size:
                label = value if len(value) < 200 else ""
        if not size and isinstance(value, bytes | str) and len(value) >= 200:
            size = len(value)
    return label, size


def _record(stage: str, start: float, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    end = time.time()
    label, size = _describe(args + tuple(kwargs.values()))
    line = json.dumps(
        {"stage": stage, "start": start, "end": end, "label": label, "size": size},
    )
    with open(os.environ["BENCH_STAGES_FILE"], "a") as out:
        out.write(line + "\n")


def _timed(function: Any, stage: str) -> Any:
    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            start = time.time()
            try:
                return await function(*args, **kwargs)
            finally:
                _record(stage, start, args, kwargs)

        return timed_async

    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.time()
        try:
            return function(*args, **kwargs)
        finally:
            _record(stage, start, args, kwargs)

    return timed


def install(stages: list[tuple[str, str, str]]) -> None:
    """Wrap each named function where it is looked up (module globals, class attributes)."""
    for module_name, path, stage in stages:
        owner: Any = importlib.import_module(module_name)
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        setattr(owner, name, _timed(getattr(owner, name), stage))


def _application() -> Any:
    from rtc_project.asgi import application as app  # sets Django up

    install(SERVER_STAGES)
    return app


if __name__ == "__main__":
    if sys.argv[1:2] != ["manage"]:
        raise SystemExit("usage: python bench/stages.py manage <command> [args]")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rtc_project.settings")
    import django

    django.setup()
    install(SUPERNODE_STAGES)
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", *sys.argv[2:]])
else:
    application = _application() if os.environ.get("BENCH_STAGES_FILE") else None
