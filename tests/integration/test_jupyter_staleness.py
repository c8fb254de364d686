"""When no supernode runs, the Jupyter tables are what Jupyter was when the last one stopped:
reads say so (``X-Jupyter-Stale``, since when; ``/api/status``'s ``stale_since``) and no kernel
is shown busy or idle as if live. The lease row is the real mechanism: a supernode holds it
while it runs and it lapses when it stops."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from jupyter_sync.models import SupernodeLease
from jupyter_sync.schema import JUPYTER_DATASTORE
from jupyter_sync.supernode import account
from tables import records
from tables.permissions import grant

pytestmark = pytest.mark.django_db(transaction=True)  # the Jupyter views wait in a thread


@pytest.fixture
def reader() -> APIClient:
    account.ensure_service_account()
    jupyter = account.ensure_jupyter_datastore()
    records.set_fields(
        jupyter, "kernels", "k1", {"name": "python3", "execution_state": "busy", "connections": 1}
    )
    user = User.objects.create_user("vi")
    grant(jupyter, user, "viewer")
    api = APIClient()
    api.force_authenticate(user)
    return api


def lease(expires_in: float) -> SupernodeLease:
    expires = timezone.now() + timedelta(seconds=expires_in)
    return SupernodeLease.objects.update_or_create(
        name=JUPYTER_DATASTORE, defaults={"holder": "node-1", "expires_at": expires}
    )[0]


def test_while_a_supernode_runs_reads_are_live(reader):
    lease(60)
    kernels = reader.get("/api/kernels")
    assert kernels.status_code == 200
    assert kernels.json()[0]["execution_state"] == "busy"
    assert "X-Jupyter-Stale" not in kernels
    status = reader.get("/api/status").json()
    assert status["supernode"] is True and status["stale_since"] is None


def test_after_it_stopped_reads_say_since_when_and_no_kernel_looks_live(reader):
    stopped = lease(-30)
    kernels = reader.get("/api/kernels")
    assert kernels.status_code == 200
    assert kernels["X-Jupyter-Stale"] == "true"
    assert kernels["X-Jupyter-Stale-Since"] == stopped.expires_at.isoformat()
    assert kernels.json() == [
        {
            "id": "k1",
            "name": "python3",
            "last_activity": None,
            "execution_state": "unknown",
            "connections": 1,
        }
    ]
    assert reader.get("/api/kernels/k1").json()["execution_state"] == "unknown"
    status = reader.get("/api/status")
    assert status.json()["supernode"] is False
    assert status.json()["stale_since"] == stopped.expires_at.isoformat()


def test_before_any_supernode_ran_reads_are_stale_with_no_date(reader):
    kernels = reader.get("/api/kernels")
    assert kernels["X-Jupyter-Stale"] == "true" and "X-Jupyter-Stale-Since" not in kernels
    assert reader.get("/api/status").json()["stale_since"] is None
