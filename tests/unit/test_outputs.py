"""iopub messages into nbformat outputs: coalesced streams, ``\r`` and ``\b`` as Jupyter's front
end applies them, clear_output, display updates, the output limit."""

import pytest
from pycrdt import Array, Doc, Map, Text

from jupyter_sync.supernode.outputs import (
    Displays,
    NotebookOutputSink,
    coalesce_streams,
    overwrite,
    to_output,
)


def msg(kind: str, **content) -> dict:
    return {"msg_type": kind, "content": content}


class Sink:
    """A NotebookOutputSink on one Array."""

    def __init__(self, outputs: Array, limit: int = 0, **options):
        self.outputs = outputs
        self.sink = NotebookOutputSink(limit=limit, **options)

    def apply(self, message: dict) -> bool:
        return self.sink.apply(self.outputs, message)


def sink(limit: int = 0, **options) -> tuple[Doc, Sink]:
    doc = Doc()
    doc["outputs"] = outputs = Array()
    return doc, Sink(outputs, limit, **options)


def written(text: str) -> str:
    """``text`` written to an empty stream, as the front end keeps it."""
    return overwrite("", 0, text)[0]


def test_streams_of_the_same_name_are_coalesced():
    doc, out = sink()
    with doc.transaction():
        for i in range(1000):
            out.apply(msg("stream", name="stdout", text=f"{i}\n"))
        out.apply(msg("stream", name="stderr", text="oops\n"))
        out.apply(msg("stream", name="stdout", text="more\n"))
    outputs = out.outputs.to_py()
    assert [o["name"] for o in outputs] == ["stdout", "stderr", "stdout"]
    assert outputs[0]["text"].count("\n") == 1000


def test_results_errors_and_non_outputs():
    doc, out = sink()
    with doc.transaction():
        assert out.apply(
            msg("execute_result", data={"text/plain": "2"}, metadata={}, execution_count=1)
        )
        assert not out.apply(msg("status", execution_state="idle"))
        assert out.apply(msg("error", ename="ValueError", evalue="bad", traceback=["tb"]))
    assert [o["output_type"] for o in out.outputs.to_py()] == ["execute_result", "error"]
    assert to_output(msg("execute_input", code="1")) is None


def test_clear_output_now_and_with_wait():
    doc, out = sink()
    with doc.transaction():
        out.apply(msg("stream", name="stdout", text="a"))
        out.apply(msg("clear_output", wait=False))
        assert len(out.outputs) == 0
        out.apply(msg("stream", name="stdout", text="b"))
        out.apply(msg("clear_output", wait=True))
        assert len(out.outputs) == 1  # cleared only when the next output arrives
        out.apply(msg("stream", name="stdout", text="c"))
    assert out.outputs.to_py() == [{"output_type": "stream", "name": "stdout", "text": "c"}]


def test_update_display_data_replaces_by_display_id():
    doc, out = sink()
    shown = {"data": {"text/plain": "0%"}, "metadata": {}, "transient": {"display_id": "bar"}}
    with doc.transaction():
        out.apply(msg("display_data", **shown))
        out.apply(msg("stream", name="stdout", text="x"))
        out.apply(
            msg(
                "update_display_data",
                data={"text/plain": "100%"},
                metadata={},
                transient={"display_id": "bar"},
            )
        )
    outputs = out.outputs.to_py()
    assert outputs[0]["data"] == {"text/plain": "100%"} and len(outputs) == 2


def test_a_stream_grows_by_what_is_appended():
    doc, out = sink()
    with doc.transaction():
        out.apply(msg("stream", name="stdout", text="x" * 100_000))
    before = doc.get_state()
    with doc.transaction():
        out.apply(msg("stream", name="stdout", text="more\n"))
    assert len(doc.get_update(before)) < 100  # the chunk, not the text printed before it
    assert isinstance(out.outputs[0]["text"], Text) and len(out.outputs) == 1


def test_output_beyond_the_limit_is_dropped_with_a_notice():
    doc, out = sink(limit=1000)
    with doc.transaction():
        for i in range(10_000):
            out.apply(msg("stream", name="stdout", text=f"{i}\n"))
        assert not out.apply(msg("display_data", data={"text/plain": "late"}, metadata={}))
    outputs = out.outputs.to_py()
    assert len(outputs) == 1
    text = outputs[0]["text"]
    assert text.startswith("0\n1\n") and "[output truncated: more than 1,000 characters" in text
    assert len(text) < 1100
    # A display that does not fit ends the output too; clearing starts afresh.
    doc, out = sink(limit=100)
    with doc.transaction():
        out.apply(msg("display_data", data={"text/plain": "y" * 200}, metadata={}))
        assert "truncated" in out.outputs.to_py()[0]["text"]
        out.apply(msg("clear_output", wait=False))
        assert out.apply(msg("stream", name="stdout", text="fresh"))
    assert out.outputs.to_py() == [{"output_type": "stream", "name": "stdout", "text": "fresh"}]


# --- \r and \b, as JupyterLab's output area applies them ----------------------------------------

FRONT_END_CASES = [
    ("plain\ntext", "plain\ntext"),
    ("progress:\n" + "".join(f"\r{i}%" for i in range(200)) + "\nfinished\n", None),
    ("".join(f"{i}%\r" for i in range(100)) + "done\n", "done\n"),
    # \r moves to the line's start and what follows overwrites: a shorter line leaves the end of
    # the longer one (nbclient's coalescing would keep only "9").
    ("\r10\r9", "90"),
    ("abcdef\rXY", "XYcdef"),
    # A \r just before a newline leaves the line as it is (nbclient keeps the "\r").
    ("99%\r\n", "99%\n"),
    ("a\r\r\rb", "b"),
    # \b removes the character before the cursor, never going back past a newline.
    ("abc\b\bXY\n", "aXY\n"),
    ("loading...\b\b\b!!!\n", "loading!!!\n"),
    ("ab\n\b\bc", "ab\nc"),
    ("\b\bx", "x"),
    # ... and, with the cursor inside the line, the one under it too, as JupyterLab does.
    ("abcdef\rab\bX", "aXef"),
    # A newline ends the whole line, wherever the cursor is.
    ("abcdef\rX\nnext", "Xbcdef\nnext"),
    ("héllo wörld\r😀", "😀éllo wörld"),
]


@pytest.mark.parametrize(("text", "expected"), FRONT_END_CASES)
def test_carriage_returns_and_backspaces_as_the_front_end_applies_them(text, expected):
    if expected is None:
        expected = "progress:\n199%\nfinished\n"
    assert written(text) == expected


@pytest.mark.parametrize(("text", "expected"), [c for c in FRONT_END_CASES if c[1]])
def test_a_stream_split_anywhere_ends_the_same(text, expected):
    """The kernel cuts a stream into messages wherever it flushes: every cut gives the same."""
    for cut in range(len(text) + 1):
        _tail, line, cursor = overwrite("", 0, text[:cut])
        done = written(text[:cut])[: len(written(text[:cut])) - len(line)]
        tail, _line, _cursor = overwrite(line, cursor, text[cut:])
        assert done + tail == expected, cut


@pytest.mark.parametrize(("text", "expected"), [c for c in FRONT_END_CASES if c[1]])
def test_the_sink_keeps_in_the_shared_text_what_the_front_end_keeps(text, expected):
    # One message per character: every rewrite of the last line goes through the shared Text,
    # whose indices are UTF-8 bytes.
    doc, out = sink()
    for char in text:
        with doc.transaction():
            out.apply(msg("stream", name="stdout", text=char))
    assert out.outputs.to_py() == [{"output_type": "stream", "name": "stdout", "text": expected}]


def test_a_progress_bar_rewrites_only_the_last_line():
    doc, out = sink()
    with doc.transaction():
        out.apply(msg("stream", name="stdout", text="".join(f"line {i}\n" for i in range(20_000))))
        out.apply(msg("stream", name="stdout", text="\r0%"))
    before = doc.get_state()
    with doc.transaction():
        out.apply(msg("stream", name="stdout", text="\r1%"))
    assert len(doc.get_update(before)) < 100  # the line's change, not the text before it
    with doc.transaction():
        for i in range(2, 101):
            out.apply(msg("stream", name="stdout", text=f"\r{i}%"))
        out.apply(msg("stream", name="stdout", text="\n"))
    text = out.outputs.to_py()[0]["text"]
    assert text.endswith("line 19999\n100%\n") and text.count("\n") == 20_001


def test_text_added_by_someone_else_is_read_back_before_writing():
    doc, out = sink()
    with doc.transaction():
        out.apply(msg("stream", name="stdout", text="a\nfirst"))
    with doc.transaction():
        text = out.outputs[0]["text"]
        text += " more"  # not the sink's write: its last line is read again from the text
    with doc.transaction():
        out.apply(msg("stream", name="stdout", text="\rX"))
    assert out.outputs.to_py()[0]["text"] == "a\nXirst more"


def test_consecutive_stream_messages_of_one_name_are_joined():
    messages = [
        msg("stream", name="stdout", text="\r1"),
        msg("stream", name="stdout", text="\r2"),
        msg("stream", name="stderr", text="e"),
        msg("stream", name="stdout", text="\r3"),
        msg("display_data", data={}, metadata={}),
        msg("stream", name="stdout", text="\r4"),
        msg("stream", name="stdout", text="\r5"),
    ]
    joined = coalesce_streams(messages)
    assert [(m["msg_type"], m["content"].get("text")) for m in joined] == [
        ("stream", "\r1\r2"),
        ("stream", "e"),
        ("stream", "\r3"),
        ("display_data", None),
        ("stream", "\r4\r5"),
    ]
    assert messages[0]["content"]["text"] == "\r1"  # the messages are left as they were


def test_the_limit_counts_what_is_written():
    doc, out = sink(limit=50)
    with doc.transaction():
        for i in range(100):
            out.apply(msg("stream", name="stdout", text=f"\r{i:02}"))
    # Each redraw writes the characters that changed: 50 run out long before the 100th.
    text = out.outputs.to_py()[0]["text"]
    head, notice = text.split("\n", 1)
    assert head in {"4", "40", "41", "42", "43", "44", "45", "46", "47", "48", "49"}, text
    assert notice.startswith("[output truncated: more than 50 characters")


# --- Display ids ------------------------------------------------------------------------------


def shown(value: str, display_id: str, kind: str = "display_data") -> dict:
    return msg(kind, data={"text/plain": value}, metadata={}, transient={"display_id": display_id})


def test_a_display_of_an_id_already_shown_updates_the_earlier_outputs_too():
    doc, out = sink()
    with doc.transaction():
        out.apply(shown("first", "d"))
        out.apply(shown("other", "e"))
        out.apply(shown("again", "d"))
    values = [o["data"]["text/plain"] for o in out.outputs.to_py()]
    assert values == ["again", "other", "again"]
    assert all("transient" not in o for o in out.outputs.to_py())  # nbformat forbids it


def test_display_ids_are_shared_by_the_cells_of_a_notebook():
    doc = Doc()
    doc["a"], doc["b"] = Array(), Array()
    displays = Displays()
    first = Sink(doc["a"], displays=displays, owner="a")
    second = Sink(doc["b"], displays=displays, owner="b")
    with doc.transaction():
        first.apply(shown("0%", "bar"))
        first.apply(msg("execute_result", data={"text/plain": "r"}, metadata={}, execution_count=1))
        second.apply(shown("100%", "bar", kind="update_display_data"))
    assert doc["a"].to_py()[0]["data"] == {"text/plain": "100%"}
    assert doc["b"].to_py() == []
    # Cleared (the cell ran again), its displays are no longer updated.
    with doc.transaction():
        first.apply(msg("clear_output", wait=False))
        first.apply(msg("stream", name="stdout", text="x"))
        assert not second.apply(shown("late", "bar", kind="update_display_data"))
    assert isinstance(doc["a"][0], Map) and doc["a"].to_py()[0]["text"] == "x"
