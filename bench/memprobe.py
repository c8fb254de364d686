"""A server process's memory, read from inside it on request: what ``/proc`` alone cannot say.

RSS seen from outside includes freed memory the allocator keeps and garbage not yet collected;
a probe inside the process collects garbage first and reads tracemalloc's count of live Python
allocations, so a figure that does not return to its baseline is memory still referenced.

The benchmark runs daphne through ``run_daphne`` (``PYTHONTRACEMALLOC`` set to trace); sending
the process SIGUSR1 makes it write, after ``gc.collect()``, a JSON line of figures to the probe
file and, when ``MEMPROBE_SNAPSHOTS`` is set, a tracemalloc snapshot beside it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench.common import trim_malloc

PROBE_ENV = "MEMPROBE_FILE"
SNAPSHOT_ENV = "MEMPROBE_SNAPSHOTS"


def rss_bytes(pid: int | str = "self") -> int:
    """VmRSS of process ``pid`` (this one by default), read from ``/proc``."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _dump(path: Path, server: Any) -> None:
    """Collect garbage, then write the figures (and a snapshot) where the parent waits: with
    daphne's open connections and the relay's rooms and members, so the parent can wait
    until the connections it closed are gone."""
    gc.collect()
    figures: dict[str, Any] = {"rss": rss_bytes(), "objects": len(gc.get_objects())}
    figures["connections"] = len(server.connections) if server is not None else -1
    figures["rss_trimmed"] = _trimmed_rss()
    figures.update(_relay_state())
    if tracemalloc.is_tracing():
        figures["traced"] = tracemalloc.get_traced_memory()[0]
        if os.environ.get(SNAPSHOT_ENV):
            snapshot = path.with_name(f"{path.name}.{time.monotonic_ns()}.snapshot")
            tracemalloc.take_snapshot().dump(str(snapshot))
            figures["snapshot"] = str(snapshot)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(figures))
    partial.rename(path)


def _trimmed_rss() -> int:
    """RSS once glibc has handed its free heap pages back (``malloc_trim``): what RSS keeps
    beyond this is memory in use or held by Python's own allocator, not freed-and-kept."""
    return rss_bytes() if trim_malloc() else -1


def run_daphne(daphne_args: list[str]) -> None:
    """Child process: daphne in this process, answering SIGUSR1 with ``_dump``."""
    from daphne.cli import CommandLineInterface

    path = Path(os.environ[PROBE_ENV])
    cli = CommandLineInterface()
    signal.signal(signal.SIGUSR1, lambda *_: _dump(path, getattr(cli, "server", None)))
    cli.run(daphne_args)


def _relay_state() -> dict[str, int]:
    """Rooms and members of every hub in this process, and what a room keeps per member."""
    from relay import hub

    hubs = list(hub._hubs.values())
    rooms = [room for h in hubs for room in h.rooms.values()]
    return {
        "rooms": len(rooms),
        "members": sum(len(room.members) for room in rooms),
        "reported": sum(len(room.reported) for room in rooms),
        "room_locks": sum(len(h._room_locks) for h in hubs),
    }


async def probe_until(
    pid: int, path: Path, connections: int, timeout: float = 60.0
) -> dict[str, Any]:
    """Probe until daphne holds at most ``connections`` connections (it forgets a closed one
    within a second or so, more on a loaded machine), or until ``timeout``; the last figures."""
    deadline = time.monotonic() + timeout
    while True:
        figures = await probe(pid, path)
        if figures["connections"] <= connections or time.monotonic() > deadline:
            return figures
        await asyncio.sleep(0.25)


async def probe(pid: int, path: Path, timeout: float = 30.0) -> dict[str, Any]:
    """Ask the process ``pid`` (run by ``run_daphne`` with ``MEMPROBE_FILE=path``) for its
    figures, and wait for them until ``timeout``."""
    path.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no memory probe from {pid} within {timeout} s")
        await asyncio.sleep(0.05)
    return json.loads(path.read_text())
