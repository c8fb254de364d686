"""Fuzzing the REST API from its own OpenAPI schema (schemathesis) against a real server.

Each operation gets a bounded number of generated requests, valid and invalid, against one server
for the module, with a token of a user of its own who owns a datastore with data (and edits the
jupyter datastore, with no supernode running); whatever the input, the server must not answer
5xx, and its answers must be the ones the schema documents (status codes, content types, bodies).

The examples are derandomized, so that a run is repeatable; ``API_FUZZ_EXAMPLES=500
API_FUZZ_RANDOM=1`` explores further (and differently each time) when looking for trouble.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
import schemathesis
from django.contrib.auth.models import User
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from jupyter_sync.supernode import account
from relay.models import ApiToken
from tables import records, service
from tables.management.commands.export_openapi import openapi_schema
from tables.permissions import grant
from tests.support.factories import Client, add_todo
from tests.support.liveserver import ServerProcess

DATASTORE = "fuzz"
DOCUMENT = "fuzzdoc"
EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "25"))
RANDOM = os.environ.get("API_FUZZ_RANDOM", "") not in ("", "0")


@pytest.fixture(scope="module")
def api_server(django_db_setup) -> Iterator[ServerProcess]:
    """One server for the module, on the test database, with no supernode: Jupyter and
    document actions answer 503 (documented), reads answer from the model. No throttling:
    every generated request reaches the endpoint.

    The tests share the server and nothing else: each has a user, a datastore and a document of
    its own (``target``), and the database is emptied after each, as for any transactional
    test (a server process keeps what it loaded by primary key, and none is used again)."""
    server = ServerProcess(env={"RTC_API_RATE_USER": "", "RTC_API_RATE_ANON": ""}, name="fuzz")
    try:
        yield server  # started by the first test (a failed start fails that test only)
    finally:
        # Shown by pytest only when a test failed ("Captured stdout teardown").
        print(f"===== {server.name} ({server.url}) output =====\n{server.log}")
        server.close()


@pytest.fixture
def target(api_server, transactional_db) -> tuple[str, str, str]:
    """This test's own user (and token), editor of the jupyter datastore, owning a todo
    datastore with a few changes; and a document of the jupyter datastore: (token, datastore
    name, document id)."""
    if api_server.alive:  # answering (a start that timed out may be answering by now)
        api_server.wait_ready()
    else:
        api_server.start()
    suffix = str(next(_numbers))
    owner = User.objects.create_user(f"fuzzer-{suffix}")
    account.ensure_service_account()
    jupyter = account.ensure_jupyter_datastore()
    grant(jupyter, owner, "editor")
    datastore = service.create_datastore(f"{DATASTORE}-{suffix}", "todo", owner=owner)
    writer = Client(datastore, author_id=owner.pk)
    writer.send(lambda d: add_todo(d, "milk", "Buy milk"))
    writer.send(lambda d: add_todo(d, "eggs", "Eggs", done=True))
    document = f"{DOCUMENT}-{suffix}"
    records.set_fields(
        jupyter,
        "documents",
        document,
        {"path": f"fuzz/{suffix}.ipynb", "type": "notebook", "status": "closed"},
    )
    token = ApiToken.objects.create(user=owner).key
    return token, datastore.name, document


_numbers = itertools.count(1)


# The schema as the server serves it at /api/schema/, generated here at collection, so that
# pytest has one test per operation (schemathesis's from_fixture does not run on pytest 9).
schema = schemathesis.openapi.from_dict(
    openapi_schema(),
    config=schemathesis.Config.from_dict({"generation": {"mode": "all"}}),
)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=not RANDOM,
    # Bounded by the example count and each request's timeout; a per-example deadline would
    # make a slow moment on a loaded machine (hypothesis re-runs it, fast) a flaky failure.
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_makes_the_server_fail(case, api_server, target):
    server = api_server
    token, datastore, document = target
    # Aim at the datastore that exists (unknown names are tested in test_api_datastores).
    if "name" in case.path_parameters:
        case.path_parameters["name"] = datastore
    if "table" in case.path_parameters:
        case.path_parameters["table"] = "items"
    if "document_id" in case.path_parameters:
        case.path_parameters["document_id"] = document
    headers = {"Authorization": f"Token {token}"}
    response = case.call(base_url=server.url, headers=headers, timeout=10)
    case.validate_response(
        response,
        headers=headers,
        # Every check but these: schema-valid input the API rightly refuses, e.g. base64 that
        # is no Yjs update, or a filter on a field the table does not have; and 5xx, checked
        # below, because one is documented: 503 when no supernode runs.
        excluded_checks=[positive_data_acceptance, not_a_server_error],
    )
    if response.status_code >= 500:
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "supernode-unavailable", response.text
    server.check_alive()
