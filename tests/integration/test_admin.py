"""The admin as a table browser: real requests, real documents, edits through the write path."""

from __future__ import annotations

import base64
import html
import json
import re

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from pycrdt import Array, Map, Text

from jupyter_sync.models import Cell, Execution, ServerStatus
from tables import service
from tables.models import Checkpoint, Datastore, Origin, Transaction
from tables.records import set_fields
from tests.support.factories import Client, add_todo
from todo.models import TodoItem

pytestmark = pytest.mark.django_db(transaction=True)


def page(response) -> str:
    """The response body with HTML entities decoded, to assert on readable text."""
    return html.unescape(response.content.decode())


def document(response) -> dict:
    """The document JSON a Tables or State page shows."""
    match = re.search(r'<pre class="document">(.*?)</pre>', response.content.decode(), re.S)
    assert match, "no document on the page"
    return json.loads(html.unescape(match.group(1)))


def url(name: str, *args) -> str:
    return reverse(f"admin:{name}", args=args)


def latest(datastore: Datastore) -> Transaction:
    return Transaction.objects.filter(datastore=datastore).order_by("-serial").first()


@pytest.fixture
def todo(admin_user) -> Datastore:
    """Serial 1: item a 'milk'; 2: item b 'bread'; 3: a.title 'oat milk'; 4: a.done True."""
    datastore = service.create_datastore("groceries", "todo", owner=admin_user)
    client = Client(datastore, author_id=admin_user.pk)
    client.send(lambda d: add_todo(d, "a", "milk"))
    client.send(lambda d: add_todo(d, "b", "bread"))
    client.send(lambda d: d.get("items", type=Map)["a"]["title"].insert(0, "oat "))
    client.send(lambda d: d.get("items", type=Map)["a"].__setitem__("done", True))
    datastore.refresh_from_db()
    return datastore


@pytest.fixture
def jupyter() -> Datastore:
    datastore = service.create_datastore("server", "jupyter")

    def supernode(table: str, record_id: str, values: dict) -> None:
        outcome = set_fields(datastore, table, record_id, values, origin=Origin.SUPERNODE)
        assert outcome.ok, outcome.error

    supernode("status", "server", {"version": "2.14.0", "connected": True, "kernels": 1})
    supernode("kernelspecs", "python3", {"display_name": "Python 3 (ipykernel)"})
    supernode("kernels", "k-1", {"name": "python3", "execution_state": "idle"})
    supernode("sessions", "s-1", {"path": "analysis.ipynb", "kernel_id": "k-1"})
    supernode("contents", "analysis.ipynb", {"path": "analysis.ipynb", "type": "notebook"})
    supernode("terminals", "t-1", {"name": "t-1"})
    supernode("documents", "d-1", {"path": "notes.txt", "type": "file", "status": "open"})
    supernode("executions", "e-1", {"cell_id": "c-1", "code": "1 + 1", "status": "requested"})
    datastore.refresh_from_db()
    return datastore


@pytest.fixture
def notebook() -> Datastore:
    datastore = service.create_datastore("analysis", "notebook")
    cell = Map(
        {
            "id": "c-1",
            "cell_type": "code",
            "source": Text("print('hello')"),
            "metadata": Map(),
            "outputs": Array([{"output_type": "stream", "name": "stdout", "text": "hello\n"}]),
            "execution_count": 1,
        }
    )
    outcome = Client(datastore).send(lambda d: d.get("cells", type=Array).append(cell))
    assert outcome.ok, outcome.error
    return datastore


# --- Site and datastores ----------------------------------------------------------------------


def test_site_header(admin_client):
    response = admin_client.get(url("index"))
    assert response.status_code == 200
    assert "Jupyter RTC" in page(response)


def test_datastore_list_shows_counters_and_record_counts(admin_client, todo):
    response = admin_client.get(url("tables_datastore_changelist"))
    assert response.status_code == 200
    text = page(response)
    assert "groceries" in text and "todo" in text
    assert "items: 2, lists: 0" in text
    assert f">{todo.last_serial}<" in text


def test_datastore_change_page_shows_counts_and_links(admin_client, todo):
    response = admin_client.get(url("tables_datastore_change", todo.pk))
    assert response.status_code == 200
    text = page(response)
    assert "items: 2, lists: 0" in text
    assert url("tables_datastore_tables", todo.pk) in text
    assert url("tables_datastore_state", todo.pk) in text
    history = f"{url('tables_transaction_changelist')}?datastore__id__exact={todo.pk}"
    assert f'<a href="{history}">Transaction history</a>' in text


def test_datastore_name_and_schema_cannot_be_changed(admin_client, todo, admin_user):
    response = admin_client.post(
        url("tables_datastore_change", todo.pk),
        {"name": "renamed", "schema": "jupyter", "owner": ""},
    )
    assert response.status_code == 302
    stored = Datastore.objects.get(pk=todo.pk)
    assert (stored.name, stored.schema, stored.owner) == ("groceries", "todo", None)
    # The counters the write path maintains are left alone.
    assert stored.last_serial == 4


def test_add_datastore_goes_through_the_service(admin_client, admin_user):
    add_page = admin_client.get(url("tables_datastore_add"))
    assert add_page.status_code == 200
    assert '<option value="todo">' in add_page.content.decode()
    response = admin_client.post(
        url("tables_datastore_add"), {"name": "new-list", "schema": "todo", "owner": admin_user.pk}
    )
    assert response.status_code == 302
    created = service.get_datastore("new-list")
    assert (created.schema, created.owner, created.last_serial) == ("todo", admin_user, 0)
    assert service.live_python(created) == ({"items": {}, "lists": {}}, 0)
    # And it takes writes.
    assert Client(created).send(lambda d: add_todo(d, "x", "first")).serial == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "bad name!", "schema": "todo"}, "A datastore name is 1-100 characters"),
        ({"name": "fine", "schema": "nope"}, "Select a valid choice"),
        ({"name": "groceries", "schema": "todo"}, "already exists"),
    ],
    ids=["name", "schema", "duplicate"],
)
def test_add_datastore_with_bad_input_is_a_form_error(admin_client, todo, data, message):
    response = admin_client.post(url("tables_datastore_add"), data)
    assert response.status_code == 200
    assert message in page(response)
    assert Datastore.objects.count() == 1


def test_datastores_are_not_deleted_from_the_admin(admin_client, todo):
    response = admin_client.post(url("tables_datastore_delete", todo.pk), {"post": "yes"})
    assert response.status_code == 403
    assert Datastore.objects.filter(pk=todo.pk).exists()


# --- Tables and state views -------------------------------------------------------------------


def test_tables_view_shows_records_field_by_field(admin_client, todo):
    response = admin_client.get(url("tables_datastore_tables", todo.pk))
    assert response.status_code == 200
    text = page(response)
    assert "items (2 records)" in text and "lists (0 records)" in text
    # Text fields as text, registers as compact JSON.
    assert '<td class="cell">oat milk</td><td class="cell">true</td>' in text
    assert '<td class="cell">bread</td><td class="cell">false</td>' in text
    # Each record id links to its history.
    assert f"datastore__id__exact={todo.pk}&table=items&record_id=a" in text


def test_tables_view_shows_a_notebook_as_json(admin_client, notebook):
    response = admin_client.get(url("tables_datastore_tables", notebook.pk))
    assert response.status_code == 200
    cells = document(response)["cells"]
    assert [(c["cell_type"], c["source"]) for c in cells] == [("code", "print('hello')")]


def test_tables_view_of_an_unknown_datastore_is_404(admin_client):
    assert admin_client.get(url("tables_datastore_tables", 999)).status_code == 404


def test_state_at_an_old_serial_shows_the_old_value(admin_client, todo):
    state = url("tables_datastore_state", todo.pk)

    def items_at(serial=None):
        response = admin_client.get(state, {} if serial is None else {"serial": serial})
        assert response.status_code == 200
        return document(response)["items"]

    assert items_at(0) == {}
    assert items_at(1) == {"a": {"title": "milk", "done": False}}
    assert items_at(3)["a"] == {"title": "oat milk", "done": False}
    newest = {"a": {"title": "oat milk", "done": True}, "b": {"title": "bread", "done": False}}
    assert items_at(4) == newest
    assert items_at() == newest  # no serial: the newest


def test_state_links_to_the_transaction_at_that_serial(admin_client, todo):
    second = Transaction.objects.get(datastore=todo, serial=2)
    text = page(admin_client.get(url("tables_datastore_state", todo.pk), {"serial": 2}))
    assert url("tables_transaction_change", second.pk) in text
    assert "?serial=1" in text and "?serial=3" in text


@pytest.mark.parametrize(
    ("serial", "message"),
    [
        ("abc", "'abc' is not a serial"),
        ("1.5", "'1.5' is not a serial"),
        ("-1", "Serial -1 is negative"),
        ("5", "Serial 5 is after the newest transaction (serial 4)"),
        ("99999999999999999999", "is after the newest transaction"),
    ],
)
def test_state_with_a_bad_serial_is_a_clear_error(admin_client, todo, serial, message):
    response = admin_client.get(url("tables_datastore_state", todo.pk), {"serial": serial})
    assert response.status_code == 400
    assert message in page(response)


def test_state_of_a_notebook(admin_client, notebook):
    response = admin_client.get(url("tables_datastore_state", notebook.pk), {"serial": 1})
    assert response.status_code == 200
    assert document(response)["cells"][0]["source"] == "print('hello')"


# --- Transactions -----------------------------------------------------------------------------


def test_transaction_list_shows_readable_summaries(admin_client, todo):
    response = admin_client.get(url("tables_transaction_changelist"))
    assert response.status_code == 200
    text = page(response)
    assert "items: added 'a'" in text
    assert "items: added 'b'" in text
    assert "items['a'].title: inserted 'oat ' at 0" in text
    assert "items['a'].done: False → True" in text


def test_history_link_filters_by_datastore(admin_client, todo):
    other = service.create_datastore("other", "todo")
    Client(other).send(lambda d: add_todo(d, "z", "elsewhere"))
    response = admin_client.get(
        url("tables_transaction_changelist"), {"datastore__id__exact": todo.pk}
    )
    assert response.status_code == 200
    text = page(response)
    assert "items: added 'a'" in text and "items: added 'z'" not in text


def test_record_filter_shows_the_transactions_of_one_record(admin_client, todo):
    response = admin_client.get(
        url("tables_transaction_changelist"),
        {"datastore__id__exact": todo.pk, "table": "items", "record_id": "b"},
    )
    assert response.status_code == 200
    text = page(response)
    assert "items: added 'b'" in text
    assert "items: added 'a'" not in text and "done: False → True" not in text
    assert "items['b']" in text  # the active filter is shown
    with_counts = admin_client.get(
        url("tables_transaction_changelist"), {"table": "items", "record_id": "b", "_facets": "1"}
    )
    assert with_counts.status_code == 200 and "items: added 'a'" not in page(with_counts)


def test_origin_and_author_filters(admin_client, todo, admin_user):
    set_fields(todo, "items", "b", {"done": True}, origin=Origin.REST)
    changelist = url("tables_transaction_changelist")
    text = page(admin_client.get(changelist, {"origin__exact": "rest"}))
    assert "items['b'].done: False → True" in text and "items: added 'a'" not in text
    text = page(admin_client.get(changelist, {"author__id__exact": admin_user.pk}))
    assert "items: added 'a'" in text and "items['b'].done" not in text


def test_transaction_detail_shows_summary_and_size(admin_client, todo):
    tx = Transaction.objects.get(datastore=todo, serial=3)
    response = admin_client.get(url("tables_transaction_change", tx.pk))
    assert response.status_code == 200
    text = page(response)
    assert "<li>items['a'].title: inserted 'oat ' at 0</li>" in text
    assert f"({tx.size} bytes)" in text
    assert "items[a]" in text  # touched records, linked to their history
    assert f"{url('tables_datastore_state', todo.pk)}?serial=3" in text
    assert 'name="txid"' not in text  # read-only: no inputs


def test_transactions_cannot_be_added_changed_or_deleted(admin_client, todo):
    tx = latest(todo)
    assert admin_client.get(url("tables_transaction_add")).status_code == 403
    assert admin_client.post(url("tables_transaction_change", tx.pk), {}).status_code == 403
    assert admin_client.post(url("tables_transaction_delete", tx.pk), {}).status_code == 403
    assert Transaction.objects.filter(datastore=todo).count() == 4


def undo_action(client, *transactions: Transaction):
    return client.post(
        url("tables_transaction_changelist"),
        {
            "action": "undo_selected",
            "index": 0,
            "select_across": 0,
            "_selected_action": [tx.pk for tx in transactions],
        },
        follow=True,
    )


def test_undo_action_reverts_as_a_new_transaction(admin_client, todo, admin_user):
    target = Transaction.objects.get(datastore=todo, serial=3)  # 'milk' -> 'oat milk'
    response = undo_action(admin_client, target)
    assert response.status_code == 200
    assert "Undid groceries#3 with a new transaction, serial 5." in page(response)
    undone = latest(todo)
    assert (undone.serial, undone.origin, undone.reverts, undone.author) == (
        5,
        Origin.UNDO,
        target,
        admin_user,
    )
    state, _ = service.live_python(todo)
    assert state["items"]["a"] == {"title": "milk", "done": True}
    assert TodoItem.objects.get(datastore=todo, record_id="a").title == "milk"


def test_undo_action_warns_when_there_is_nothing_to_undo(admin_client, todo):
    target = Transaction.objects.get(datastore=todo, serial=4)
    undo_action(admin_client, target)
    response = undo_action(admin_client, target)
    text = page(response)
    assert 'class="warning"' in text
    assert "Could not undo groceries#4: transaction 4 has nothing left to revert" in text
    assert Transaction.objects.filter(datastore=todo).count() == 5


def test_undo_action_warns_when_undo_is_unsupported(admin_client):
    freeform = service.create_datastore("loose", "freeform")
    Client(freeform).send(lambda d: d.get("anything", type=Map).__setitem__("k", 1))
    response = undo_action(admin_client, latest(freeform))
    assert 'class="warning"' in page(response)
    assert "Could not undo loose#1: undo needs a schema with declared roots" in page(response)
    assert Transaction.objects.filter(datastore=freeform).count() == 1


def test_undo_action_needs_its_own_permission(client, todo):
    viewer = User.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_transaction", content_type__app_label="tables")
    )
    client.force_login(viewer)
    changelist = client.get(url("tables_transaction_changelist"))
    assert changelist.status_code == 200
    assert "undo_selected" not in changelist.content.decode()
    undo_action(client, latest(todo))
    assert Transaction.objects.filter(datastore=todo).count() == 4


# --- Checkpoints ------------------------------------------------------------------------------


def test_checkpoints_are_listed_without_their_state(admin_client, settings):
    settings.RTC = {**settings.RTC, "CHECKPOINT_EVERY": 2}
    datastore = service.create_datastore("checkpointed", "todo")
    client = Client(datastore)
    client.send(lambda d: add_todo(d, "a", "one"))
    client.send(lambda d: add_todo(d, "b", "two"))
    checkpoint = Checkpoint.objects.get(datastore=datastore)
    assert checkpoint.serial == 2
    listing = admin_client.get(url("tables_checkpoint_changelist"))
    assert listing.status_code == 200
    assert "checkpointed" in page(listing)
    detail = admin_client.get(url("tables_checkpoint_change", checkpoint.pk))
    assert detail.status_code == 200
    assert "field-serial" in detail.content.decode()
    assert "field-state" not in detail.content.decode()
    assert admin_client.get(url("tables_checkpoint_add")).status_code == 403


# --- Projected records ------------------------------------------------------------------------


def test_projection_pages_render_with_data(admin_client, todo, jupyter, notebook):
    set_fields(todo, "lists", "weekly", {"title": "Weekly shop", "items": ["a", "b"]})
    expectations = {
        "todo_todoitem": "oat milk",
        "todo_todolist": "Weekly shop",
        "jupyter_sync_serverstatus": "2.14.0",
        "jupyter_sync_kernelspec": "Python 3 (ipykernel)",
        "jupyter_sync_kernel": "idle",
        "jupyter_sync_jupytersession": "analysis.ipynb",
        "jupyter_sync_content": "analysis.ipynb",
        "jupyter_sync_terminal": "t-1",
        "jupyter_sync_execution": "c-1",
        "jupyter_sync_document": "notes.txt",
        "jupyter_sync_notebook": "analysis",
        "jupyter_sync_cell": "print('hello')",
        "jupyter_sync_output": "stream",
    }
    for name, expected in expectations.items():
        response = admin_client.get(url(f"{name}_changelist"))
        assert response.status_code == 200, name
        assert expected in page(response), name


def test_notebook_and_cell_pages_are_read_only(admin_client, notebook):
    cell = Cell.objects.get(cell_id="c-1")
    response = admin_client.get(url("jupyter_sync_notebook_change", cell.notebook_id))
    assert response.status_code == 200 and "print('hello')" in page(response)
    assert admin_client.get(url("jupyter_sync_cell_change", cell.pk)).status_code == 200
    for name in ("jupyter_sync_notebook", "jupyter_sync_cell", "jupyter_sync_output"):
        assert admin_client.get(url(f"{name}_add")).status_code == 403


def test_cells_show_their_index_derived_from_their_positions(admin_client, notebook):
    """The rows store sparse positions; the pages show each cell's 0-based index."""

    def code(cell_id: str) -> Map:
        return Map({"id": cell_id, "cell_type": "code", "source": Text(f"# {cell_id}")})

    client = Client(notebook)
    client.send(lambda d: d.get("cells", type=Array).insert(0, code("c-0")))
    client.send(lambda d: d.get("cells", type=Array).insert(1, code("c-half")))
    cells = {c.cell_id: c for c in Cell.objects.filter(notebook__datastore=notebook)}
    text = page(admin_client.get(url("jupyter_sync_notebook_change", cells["c-1"].notebook_id)))
    shown = re.findall(
        r'field-index">\s*<p>(\d+)</p>.*?field-cell_id">\s*<p>([^<]*)</p>', text, re.S
    )
    assert shown == [("0", "c-0"), ("1", "c-half"), ("2", "c-1")]
    listed = page(admin_client.get(url("jupyter_sync_cell_changelist"), {"q": "c-half"}))
    assert re.search(r'field-index">1</td>', listed), listed
    change = page(admin_client.get(url("jupyter_sync_cell_change", cells["c-1"].pk)))
    assert re.search(r'<label>index:</label>\s*<div class="readonly">2</div>', change, re.I)


def test_editing_a_todo_item_writes_through_the_write_path(admin_client, todo, admin_user):
    item = TodoItem.objects.get(datastore=todo, record_id="b")
    change = url("todo_todoitem_change", item.pk)
    form = admin_client.get(change)
    assert form.status_code == 200
    assert "transactions that touched this record" in page(form)
    response = admin_client.post(change, {"title": "rye bread", "done": "on"})
    assert response.status_code == 302
    tx = latest(todo)
    assert (tx.serial, tx.origin, tx.author) == (5, Origin.ADMIN, admin_user)
    assert {line["key"] for line in tx.summary if line["kind"] == "map"} == {"done"}
    item.refresh_from_db()
    assert (item.title, item.done) == ("rye bread", True)
    state, _ = service.live_python(todo)
    assert state["items"]["b"] == {"title": "rye bread", "done": True}


def test_saving_an_unchanged_item_stores_nothing(admin_client, todo):
    item = TodoItem.objects.get(datastore=todo, record_id="b")
    response = admin_client.post(url("todo_todoitem_change", item.pk), {"title": "bread"})
    assert response.status_code == 302
    assert latest(todo).serial == 4


def test_adding_a_todo_item_creates_the_record(admin_client, todo):
    response = admin_client.post(
        url("todo_todoitem_add"), {"datastore": todo.pk, "record_id": "c", "title": "eggs"}
    )
    assert response.status_code == 302
    state, _ = service.live_python(todo)
    assert state["items"]["c"] == {"title": "eggs", "done": False}
    row = TodoItem.objects.get(datastore=todo, record_id="c")
    assert response.url == url("todo_todoitem_changelist")
    assert row.title == "eggs" and latest(todo).origin == Origin.ADMIN


def test_adding_an_existing_record_id_is_refused(admin_client, todo):
    response = admin_client.post(
        url("todo_todoitem_add"), {"datastore": todo.pk, "record_id": "a", "title": "again"}
    )
    assert response.status_code == 200
    assert "already exists" in page(response)
    assert latest(todo).serial == 4


def test_deleting_a_todo_item_removes_the_record(admin_client, todo, admin_user):
    item = TodoItem.objects.get(datastore=todo, record_id="a")
    response = admin_client.post(url("todo_todoitem_delete", item.pk), {"post": "yes"})
    assert response.status_code == 302
    state, _ = service.live_python(todo)
    assert list(state["items"]) == ["b"]
    assert not TodoItem.objects.filter(pk=item.pk).exists()
    tx = latest(todo)
    assert (tx.origin, tx.author) == (Origin.ADMIN, admin_user)
    assert [(c["key"], c["action"]) for c in tx.summary] == [("a", "delete")]


def test_bulk_delete_goes_through_the_write_path(admin_client, todo):
    pks = list(TodoItem.objects.filter(datastore=todo).values_list("pk", flat=True))
    response = admin_client.post(
        url("todo_todoitem_changelist"),
        {"action": "delete_selected", "post": "yes", "_selected_action": pks},
    )
    assert response.status_code == 302
    state, _ = service.live_python(todo)
    assert state["items"] == {}
    assert Transaction.objects.filter(datastore=todo, origin=Origin.ADMIN).count() == 2


def test_a_refused_delete_is_reported_and_nothing_changes(admin_client, todo, settings):
    settings.RTC = {**settings.RTC, "MAX_UPDATE_BYTES": 1}
    item = TodoItem.objects.get(datastore=todo, record_id="a")
    response = admin_client.post(url("todo_todoitem_delete", item.pk), {"post": "yes"}, follow=True)
    text = page(response)
    assert "Deleting 'a' was refused (too-large)" in text
    assert "deleted successfully" not in text
    assert "a" in service.live_python(todo)[0]["items"]
    assert TodoItem.objects.filter(pk=item.pk).exists()


def test_an_edit_the_write_path_refuses_is_a_form_error(admin_client, todo, settings):
    settings.RTC = {**settings.RTC, "MAX_UPDATE_BYTES": 40}
    item = TodoItem.objects.get(datastore=todo, record_id="b")
    response = admin_client.post(
        url("todo_todoitem_change", item.pk), {"title": "x" * 200, "done": "on"}
    )
    assert response.status_code == 200
    assert "The change was refused (too-large)" in page(response)
    assert latest(todo).serial == 4
    item.refresh_from_db()
    assert (item.title, item.done) == ("bread", False)
    assert service.live_python(todo)[0]["items"]["b"] == {"title": "bread", "done": False}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"status": "bogus"}, "must be one of ['requested', 'queued'"),
        ({"outputs": '{"not": "a list"}'}, "expected a list, got a plain JSON object"),
        ({"input_request": "[1, 2]"}, "expected object, got a plain JSON list"),
    ],
    ids=["choices", "list", "register-type"],
)
def test_an_edit_the_schema_refuses_stores_nothing(admin_client, jupyter, data, message):
    execution = Execution.objects.get(datastore=jupyter, record_id="e-1")
    change = url("jupyter_sync_execution_change", execution.pk)
    fields = {"code": "1 + 1", "status": "requested", "outputs": "null", "input_request": "null"}
    response = admin_client.post(change, {**fields, **data})
    assert response.status_code == 200
    assert message in page(response)
    assert latest(jupyter).serial == jupyter.last_serial
    execution.refresh_from_db()
    assert execution.status == "requested"


def test_executions_are_editable(admin_client, jupyter, admin_user):
    execution = Execution.objects.get(datastore=jupyter, record_id="e-1")
    response = admin_client.post(
        url("jupyter_sync_execution_change", execution.pk),
        {"code": "2 + 2", "status": "cancelled", "outputs": "null", "input_request": "null"},
    )
    assert response.status_code == 302
    execution.refresh_from_db()
    assert (execution.code, execution.status) == ("2 + 2", "cancelled")
    assert (latest(jupyter).origin, latest(jupyter).author) == (Origin.ADMIN, admin_user)


def test_the_execution_pages_show_who_ran_which_source_on_which_kernel(admin_client, jupyter):
    provenance = {
        "document_id": "nb-1",
        "requested_by": "ada",
        "kernel_id": "k-1",
        "session_id": "s-1",
        "code": "x = 2",
        "source_hash": "a" * 64,
        "source_changed": True,
        "status": "completed",
        "started_at": "2026-01-01T10:00:01+00:00",
    }
    assert set_fields(jupyter, "executions", "e-2", provenance).ok
    changelist = url("jupyter_sync_execution_changelist")
    text = page(admin_client.get(changelist, {"source_changed__exact": "1"}))
    assert "e-2" in text and "e-1" not in text
    assert "nb-1" in text and "ada" in text and "k-1" in text
    assert "e-2" not in page(admin_client.get(changelist, {"source_changed__exact": "0"}))
    assert "e-2" in page(admin_client.get(changelist, {"q": "s-1"}))
    execution = Execution.objects.get(datastore=jupyter, record_id="e-2")
    detail = page(admin_client.get(url("jupyter_sync_execution_change", execution.pk)))
    assert "a" * 64 in detail and "s-1" in detail and "x = 2" in detail


def test_server_state_tables_are_read_only(admin_client, jupyter):
    status = ServerStatus.objects.get(datastore=jupyter, record_id="server")
    assert admin_client.get(url("jupyter_sync_serverstatus_add")).status_code == 403
    view = admin_client.get(url("jupyter_sync_serverstatus_change", status.pk))
    assert view.status_code == 200 and "2.14.0" in page(view)
    assert 'name="version"' not in view.content.decode()
    response = admin_client.post(
        url("jupyter_sync_serverstatus_change", status.pk), {"version": "9"}
    )
    assert response.status_code == 403
    delete = admin_client.post(url("jupyter_sync_serverstatus_delete", status.pk), {"post": "yes"})
    assert delete.status_code == 403
    for name in ("kernelspec", "kernel", "jupytersession", "content", "terminal"):
        assert admin_client.get(url(f"jupyter_sync_{name}_add")).status_code == 403, name
    assert latest(jupyter).serial == jupyter.last_serial
    assert service.live_python(jupyter)[0]["status"]["server"]["version"] == "2.14.0"


def test_notebooks_are_listed_by_their_file_and_outputs_are_rendered_safely(admin_client):
    jupyter = service.create_datastore("jupyter", "jupyter")
    datastore = service.create_datastore("doc-n1", "notebook")
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n not really an image").decode()
    outputs = [
        {"output_type": "stream", "name": "stdout", "text": "<b>not bold</b>\n"},
        {"output_type": "display_data", "data": {"image/png": png}, "metadata": {}},
        {
            "output_type": "execute_result",
            "data": {"text/html": "<script>alert(1)</script><i>hi</i>", "text/plain": "hi"},
            "metadata": {},
            "execution_count": 1,
        },
        {"output_type": "error", "ename": "E", "evalue": "v", "traceback": ["\x1b[31mE: v\x1b[0m"]},
    ]
    cell = Map(
        {
            "id": "c-1",
            "cell_type": "code",
            "source": Text("show()"),
            "metadata": Map(),
            "outputs": Array(outputs),
            "execution_count": 1,
        }
    )
    assert Client(datastore).send(lambda d: d.get("cells", type=Array).append(cell)).ok
    set_fields(jupyter, "documents", "n1", {"path": "work/plots.ipynb", "datastore_name": "doc-n1"})
    set_fields(jupyter, "documents", "x", {"path": "fake.ipynb", "datastore_name": "doc-n1"})

    listing = page(admin_client.get(url("jupyter_sync_notebook_changelist")))
    assert "work/plots.ipynb" in listing and "fake.ipynb" not in listing
    assert 'href="/api/contents/work/plots.ipynb"' in listing
    # The datastore's own page and row link the same file, from the same record.
    change = page(admin_client.get(url("tables_datastore_change", datastore.pk)))
    assert '<a href="/api/contents/work/plots.ipynb">File: work/plots.ipynb</a>' in change
    assert "fake.ipynb" not in change
    rows = page(admin_client.get(url("tables_datastore_changelist")))
    assert '<a href="/api/contents/work/plots.ipynb">File: work/plots.ipynb</a>' in rows
    tables_page = page(admin_client.get(url("tables_datastore_tables", datastore.pk)))
    assert '<a href="/api/contents/work/plots.ipynb">File: work/plots.ipynb</a>' in tables_page
    # A datastore no document opened links no file.
    assert "File:" not in page(admin_client.get(url("tables_datastore_change", jupyter.pk)))
    found = page(admin_client.get(url("jupyter_sync_notebook_changelist") + "?q=plots"))
    assert "work/plots.ipynb" in found

    cell = Cell.objects.get(cell_id="c-1")
    body = admin_client.get(url("jupyter_sync_cell_change", cell.pk)).content.decode()
    assert "&lt;b&gt;not bold&lt;/b&gt;" in body  # text is text
    assert f'src="data:image/png;base64,{png}"' in body
    assert '<iframe class="output" sandbox=""' in body and "<script>alert(1)" not in body
    assert "E: v" in html.unescape(body) and "\x1b[31m" not in body
    assert '"output_type"' not in body  # not raw JSON
