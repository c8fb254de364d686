"""When an execution's outputs are written: the first at once, later ones at most one write per
interval, in the order they came (``OutputWriter`` on a real pycrdt document)."""

from __future__ import annotations

import asyncio
from typing import Any

from pycrdt import Doc, Map

from jupyter_sync.supernode.executing import OutputWriter

INTERVAL = 1.0  # long enough that two statements in a row always fall within it


def msg(kind: str, **content: Any) -> dict:
    return {"msg_type": kind, "content": content}


def out(text: str) -> dict:
    return msg("stream", name="stdout", text=text)


class Target:
    """A record with ``outputs``, and the transactions that changed it (each with its loop
    time), woken on each."""

    def __init__(self) -> None:
        self.doc = Doc()
        self.doc["record"] = self.record = Map()
        self.writes: list[float] = []
        self.changed = asyncio.Event()
        self.doc.observe(self._write)

    def _write(self, _event: Any) -> None:
        self.writes.append(asyncio.get_running_loop().time())
        self.changed.set()

    def texts(self) -> list[str]:
        outputs = self.record.get("outputs")
        if outputs is None:
            return []
        return [str(o.get("text", "")) or o.get("output_type", "") for o in outputs]

    async def wait_writes(self, count: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.writes) < count:
                self.changed.clear()
                await self.changed.wait()


async def test_the_first_output_is_written_at_once_and_the_next_ones_together_an_interval_later():
    target = Target()
    writer = OutputWriter(target.doc, lambda: target.record, interval=INTERVAL)
    writer.add(out("first\n"))
    # Written before add() returned: no timer stands between the kernel and the document.
    assert target.texts() == ["first\n"] and len(target.writes) == 1

    writer.add(out("second\n"))
    writer.add(msg("display_data", data={"text/plain": "d"}, metadata={}))
    writer.add(out("third\n"))
    assert target.texts() == ["first\n"]  # held: within the interval of the first write

    await target.wait_writes(2)
    assert target.texts() == ["first\nsecond\n", "display_data", "third\n"]
    assert len(target.writes) == 2  # the three held messages in one transaction
    assert target.writes[1] - target.writes[0] >= INTERVAL
    assert writer.handle is None


async def test_the_first_output_after_a_quiet_spell_is_written_at_once():
    target = Target()
    writer = OutputWriter(target.doc, lambda: target.record, interval=INTERVAL)
    writer.add(out("a\n"))
    assert writer.last_output is not None
    # The quiet spell is what this test is about: nothing is being waited for.
    loop = asyncio.get_running_loop()
    await asyncio.sleep(writer.last_output + INTERVAL - loop.time())

    writer.add(out("b\n"))
    assert target.texts() == ["a\nb\n"] and len(target.writes) == 2
    writer.add(out("c\n"))
    assert target.texts() == ["a\nb\n"]  # within the interval again: held
    writer.flush()  # the end of the execution writes what is held, at once
    assert target.texts() == ["a\nb\nc\n"] and len(target.writes) == 3
    assert writer.handle is None


async def test_the_count_waits_for_the_first_output_and_goes_with_it_in_order():
    target = Target()
    writer = OutputWriter(target.doc, lambda: target.record, interval=INTERVAL)
    writer.add(msg("execute_input", code="print(1)", execution_count=7))
    assert target.writes == [] and writer.handle is not None  # not a write of its own yet
    writer.add(out("1\n"))
    assert len(target.writes) == 1  # the count and the first output: one transaction
    assert target.record["execution_count"] == 7 and target.texts() == ["1\n"]
    assert writer.handle is None


async def test_a_count_without_output_is_written_after_an_interval():
    target = Target()
    writer = OutputWriter(target.doc, lambda: target.record, interval=0.1)
    writer.add(msg("execute_input", code="x = 1", execution_count=3))
    await target.wait_writes(1)
    assert target.record["execution_count"] == 3 and "outputs" in target.record
    assert len(target.record["outputs"]) == 0


async def test_a_cell_writer_drops_the_count_and_still_writes_the_first_output_at_once():
    target = Target()
    writer = OutputWriter(target.doc, lambda: target.record, interval=INTERVAL, write_count=False)
    writer.add(msg("execute_input", code="print(1)", execution_count=2))
    writer.add(out("1\n"))
    assert target.texts() == ["1\n"] and "execution_count" not in target.record
    assert writer.execution_count == 2  # for the caller, who writes it at the end
