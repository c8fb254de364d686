"""iopub messages into nbformat outputs: coalesced streams, clear_output, display updates, the
output limit."""

from pycrdt import Array, Doc, Text

from jupyter_sync.supernode.outputs import NotebookOutputSink, to_output


def msg(kind: str, **content) -> dict:
    return {"msg_type": kind, "content": content}


class Sink:
    """A NotebookOutputSink on one Array."""

    def __init__(self, outputs: Array, limit: int = 0):
        self.outputs = outputs
        self.sink = NotebookOutputSink(limit=limit)

    def apply(self, message: dict) -> bool:
        return self.sink.apply(self.outputs, message)


def sink(limit: int = 0) -> tuple[Doc, Sink]:
    doc = Doc()
    doc["outputs"] = outputs = Array()
    return doc, Sink(outputs, limit)


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
