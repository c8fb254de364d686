"""The supernode's service account, datastore and lease."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jupyter_sync.models import SupernodeLease
from jupyter_sync.supernode.account import (
    acquire_lease,
    ensure_jupyter_datastore,
    ensure_service_account,
    release_lease,
    revoke_token,
)
from relay.tokens import token_for_key
from tables.permissions import access_for, grant
from tables.schema import Analysis

pytestmark = pytest.mark.django_db


def test_first_run_creates_the_account_token_and_datastore_once():
    token = ensure_service_account()
    standby = ensure_service_account()  # a second run's token does not replace the first's
    assert standby != token
    assert token_for_key(token).user == token_for_key(standby).user
    revoke_token(standby)  # as that run stops
    assert token_for_key(standby) is None and token_for_key(token) is not None
    datastore = ensure_jupyter_datastore()
    assert ensure_jupyter_datastore() == datastore
    user = User.objects.get(username="supernode")
    access = access_for(user, datastore)
    assert access.can_write and access.writes_server_state
    assert access.read_only_tables() == []


def test_one_lease_holder_at_a_time():
    assert acquire_lease("jupyter", "a", 30)
    assert not acquire_lease("jupyter", "b", 30)
    assert acquire_lease("jupyter", "a", 30)  # renewal
    SupernodeLease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert acquire_lease("jupyter", "b", 30)  # expired: taken over
    release_lease("jupyter", "a")  # not the holder: nothing happens
    assert SupernodeLease.objects.get().holder == "b"
    release_lease("jupyter", "b")
    assert acquire_lease("jupyter", "a", 30)


def test_the_server_state_permission_is_asked_only_when_a_write_touches_a_service_table():
    ensure_service_account()
    datastore = ensure_jupyter_datastore()
    editor = User.objects.create_user("ed")
    grant(datastore, editor, "editor")
    supernode = User.objects.get(username="supernode")
    service_change = Analysis(touched={("kernels", "k1")})
    client_change = Analysis(touched={("executions", "e1")})
    for user, may_write_service in ((editor, False), (supernode, True)):
        with CaptureQueriesContext(connection) as queries:
            access = access_for(user, datastore)
            authorize = access.authorizer()
            assert authorize(None, client_change) is None
        permission_queries = [q["sql"] for q in queries if "auth_permission" in q["sql"]]
        assert permission_queries == [], permission_queries
        refused = authorize(None, service_change)
        assert (refused is None) is may_write_service, refused
        if not may_write_service:
            assert refused == "only the supernode may write table(s) kernels"
