"""What a cell run asked for over REST costs before its record exists: the queries of
``POST /api/executions`` (authenticate, permissions, validate, check the cell, write the record),
and the record edit made on the live document rather than on a copy of it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pycrdt import Map
from rest_framework.test import APIRequestFactory

from jupyter_sync.api.executions import ExecutionListView
from jupyter_sync.models import SupernodeLease
from jupyter_sync.schema import JUPYTER_DATASTORE
from relay.models import ApiToken
from tables import records, service
from tables.loaded import doc_cache
from tables.models import Datastore
from tables.permissions import access_for, grant
from tables.service import Status
from tests.support.queries import statements_run
from tests.support.rooms import DOCUMENT, open_document

pytestmark = pytest.mark.django_db(transaction=True)

# The statements of one REST cell run, by what asks for them:
# authentication: the token, its user (2: each a statement of tables.read_sql, cheaper to run
# than the ORM's join is to build); permissions: the jupyter datastore's row and the caller's
# role (2; the user's and groups' permissions only when a write touches a service table, which
# a cell run does not); the cell check: the documents record, read from the live doc caught up
# to that row (0), its Document row, the notebook's datastore, the role on it, the notebook's
# row, the cell's source (5, each a statement of tables.read_sql where the ORM joined the
# notebook and the cell); a supernode holds the lease (1), and the status record says it
# reaches Jupyter (0: the same caught-up doc); the write: the row locked, the transaction, its
# touched record, the execution's projection (looked up, inserted), the row's serial (6).
# BEGIN and COMMIT are not counted (SQLite logs them, PostgreSQL does not).
REST_CELL_RUN_QUERIES = 16


def run_cell(token: str) -> tuple[int, list[str]]:
    """``POST /api/executions`` for the notebook's cell through the view's whole pipeline, up
    to the record written (the wait for the supernode comes after, outside the database)."""
    request = APIRequestFactory().post(
        "/api/executions",
        {"document_id": DOCUMENT, "cell_id": "c1"},
        format="json",
        HTTP_AUTHORIZATION=f"Token {token}",
    )
    view = ExecutionListView()
    with CaptureQueriesContext(connection) as queries:
        view.setup(request)
        response = view.dispatch(request)
    return response.status_code, statements_run(queries)


def test_a_cell_run_over_rest_reads_each_row_once_before_writing_its_record():
    open_document()
    jupyter = Datastore.objects.get(name=JUPYTER_DATASTORE)
    editor = User.objects.create_user("ed")
    grant(jupyter, editor, "editor")
    token = ApiToken.objects.create(user=editor).key
    expires = timezone.now() + timedelta(hours=1)
    SupernodeLease.objects.create(name=JUPYTER_DATASTORE, holder="test", expires_at=expires)

    for _ in range(2):  # the first loads the jupyter doc; the second finds it loaded
        code, sql = run_cell(token)
        assert code == 202
        assert len(sql) == REST_CELL_RUN_QUERIES, "\n".join(sql)
        by_name = f'WHERE "tables_datastore"."name" = \'{JUPYTER_DATASTORE}\''
        by_pk = re.compile(
            rf'FROM "tables_datastore" WHERE ("tables_datastore"\.)?"id" = {jupyter.pk}(?!\d)'
        )
        jupyter_rows = [
            query
            for query in sql
            if query.startswith("SELECT") and (by_name in query or by_pk.search(query))
        ]
        # The permission check's read and the write's lock: no catch-up reads in between.
        assert len(jupyter_rows) == 1 + 1, "\n".join(sql)
        # The transaction id is the write path's own: nothing to look up.
        assert not [query for query in sql if 'FROM "tables_transaction"' in query]

    state, _ = service.live_python(jupyter)
    runs = [run for run in state["executions"].values() if run.get("cell_id") == "c1"]
    assert len(runs) == 2 and all(run["status"] == "requested" for run in runs)


def test_a_record_edit_is_made_on_the_live_doc_in_one_transaction():
    jupyter = service.create_datastore(JUPYTER_DATASTORE, "jupyter")
    assert records.set_fields(jupyter, "kernels", "k0", {"name": "python3"}).ok
    live = doc_cache.get(jupyter).doc
    with CaptureQueriesContext(connection) as queries:
        outcome = records.set_fields(jupyter, "kernels", "k1", {"name": "python3"})
    assert outcome.status is Status.STORED
    # No catch-up of a copy before the write: the row the write locks is the only one read.
    datastore_reads = [q for q in statements_run(queries) if 'FROM "tables_datastore"' in q]
    assert len(datastore_reads) == 1, datastore_reads
    assert doc_cache.get(jupyter).doc is live  # the same document, changed in place
    assert set(live.get("kernels", type=Map).keys()) == {"k0", "k1"}
    # The update stored is the edit's own, not the state.
    assert len(outcome.update) < 200


def test_a_refused_record_edit_leaves_the_live_doc_as_it_was():
    jupyter = service.create_datastore(JUPYTER_DATASTORE, "jupyter")
    viewer = User.objects.create_user("vi")
    grant(jupyter, viewer, "viewer")
    as_viewer = access_for(viewer, jupyter).authorizer()
    fields = {"action": "refresh", "status": "requested"}

    refused = records.set_fields(jupyter, "requests", "r1", fields, authorize=as_viewer)
    assert refused.error_code == "permission-denied"
    state, serial = service.live_python(jupyter)
    assert state["requests"] == {} and serial == 0
    # Nor can the schema's refusal leave anything behind; a later edit is stored as usual.
    with pytest.raises(Exception, match="unknown field"):
        records.set_fields(jupyter, "requests", "r2", {"nope": 1})
    assert records.set_fields(jupyter, "requests", "r3", fields).status is Status.STORED
    state, serial = service.live_python(jupyter)
    assert set(state["requests"]) == {"r3"} and serial == 1
