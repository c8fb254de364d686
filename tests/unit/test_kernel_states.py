"""Which of a kernel's status messages reach its record (``Kernels.status`` on a real pycrdt
document): a busy spell too short to be seen is not written, so it does not put two commits in
front of the execution's first output; anything longer, and every other state, is."""

from __future__ import annotations

import asyncio

from pycrdt import Doc, Map

from jupyter_sync.supernode.kernels import Kernels
from jupyter_sync.supernode.live_records import LiveRecords

LONG = 3600.0  # no busy spell in these tests lasts this long
SHORT = 0.01


class Kernel:
    """A kernels record in a document, and every execution_state written into it."""

    def __init__(self, busy_shown_after: float) -> None:
        self.doc = Doc()
        self.records = LiveRecords(lambda: self.doc)
        self.records.edit(
            lambda: self.records.table("kernels").__setitem__(
                "k1", Map({"name": "python3", "execution_state": "idle"})
            )
        )
        self.states: list[str] = []
        self.changed = asyncio.Event()
        self._subscription = self.records.record("kernels", "k1").observe(self._changed)
        self.kernels = Kernels(None, self.records, lambda: None, busy_shown_after=busy_shown_after)  # type: ignore[arg-type]

    def _changed(self, event) -> None:
        change = event.keys.get("execution_state")
        if change is not None:
            self.states.append(change["newValue"])
        self.changed.set()

    async def wait_state(self, state: str, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not self.states or self.states[-1] != state:
                self.changed.clear()
                await self.changed.wait()


async def test_a_busy_spell_ended_before_it_could_be_seen_writes_nothing():
    kernel = Kernel(busy_shown_after=LONG)
    kernel.kernels.status("k1", "busy")
    kernel.kernels.status("k1", "idle")
    assert kernel.states == []  # neither busy nor the idle the record already says
    assert kernel.kernels._busy_soon == {}  # and no busy left waiting


async def test_a_busy_spell_that_lasts_is_written_and_so_is_the_idle_that_ends_it():
    kernel = Kernel(busy_shown_after=SHORT)
    kernel.kernels.status("k1", "busy")
    assert kernel.states == []  # not yet: it may end before anyone could see it
    await kernel.wait_state("busy")
    kernel.kernels.status("k1", "idle")
    assert kernel.states == ["busy", "idle"]  # idle at once, in the same turn


async def test_other_states_are_written_at_once_and_cancel_a_waiting_busy():
    kernel = Kernel(busy_shown_after=LONG)
    kernel.kernels.status("k1", "starting")
    assert kernel.states == ["starting"]
    kernel.kernels.status("k1", "busy")
    kernel.kernels.status("k1", "restarting")
    assert kernel.states == ["starting", "restarting"]
    assert kernel.kernels._busy_soon == {}
