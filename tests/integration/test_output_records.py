"""The jupyter schema's execution outputs through the write path: maps whose text grows, and
shared types anywhere else refused."""

import pytest
from pycrdt import Array, Doc, Map, Text

from jupyter_sync.supernode.outputs import NotebookOutputSink
from tables.service import Status, create_datastore
from tests.support.factories import Client


@pytest.mark.django_db
def test_execution_outputs_hold_maps_whose_text_is_shared():
    datastore = create_datastore("outputs", "jupyter")
    client = Client(datastore)

    def record(doc: Doc) -> Map:
        return doc.get("executions", type=Map)["e1"]

    def create(doc: Doc) -> None:
        doc.get("executions", type=Map)["e1"] = Map({"status": "requested", "outputs": Array()})

    assert client.send(create).status is Status.STORED
    sink = NotebookOutputSink()
    stream = {"msg_type": "stream", "content": {"name": "stdout", "text": "a"}}
    assert client.send(lambda doc: sink.apply(record(doc)["outputs"], stream)).status is (
        Status.STORED
    )
    grown = {"msg_type": "stream", "content": {"name": "stdout", "text": "b"}}
    assert client.send(lambda doc: sink.apply(record(doc)["outputs"], grown)).status is (
        Status.STORED
    )
    assert record(client.doc)["outputs"].to_py() == [
        {"output_type": "stream", "name": "stdout", "text": "ab"}
    ]
    # Shared types anywhere else in an item are refused, added or set later.
    bad = client.send(
        lambda doc: record(doc)["outputs"].append(Map({"data": Map({"text/plain": "x"})}))
    )
    assert bad.status is Status.REJECTED and "item key 'data'" in bad.error
    client = Client(datastore)  # a peer without the refused change
    bad = client.send(lambda doc: record(doc)["outputs"][0].__setitem__("name", Text("x")))
    assert bad.status is Status.REJECTED and "expected a JSON value" in bad.error
