"""``/``: a page that says what this server is and links what runs here (the admin's "View
site" leads to it)."""

import pytest
from django.test import override_settings

from jupyter_sync.models import SupernodeLease
from jupyter_sync.schema import JUPYTER_DATASTORE
from tables.models import Datastore

pytestmark = pytest.mark.django_db


def test_front_page_links_what_runs_here(client):
    response = client.get("/")
    assert response.status_code == 200
    page = response.content.decode()
    for link in ('href="/api/docs/"', 'href="/api/schema/"', 'href="/admin/"', 'href="/todo/"'):
        assert link in page
    assert "no supernode has run yet" in page
    assert "JUPYTERLAB_URL" in page  # says how to link JupyterLab, which is not configured


@override_settings(JUPYTERLAB_URL="http://lab.example.org/lab?token=secret#x")
def test_front_page_links_jupyterlab_without_its_token(client):
    page = client.get("/").content.decode()
    assert 'href="http://lab.example.org/lab"' in page
    assert "secret" not in page


def test_front_page_says_whether_the_supernode_is_there(client):
    Datastore.objects.create(name=JUPYTER_DATASTORE)
    assert "no supernode is connected" in client.get("/").content.decode()
    assert not SupernodeLease.objects.exists()


def test_admin_view_site_leads_to_the_front_page(admin_client):
    page = admin_client.get("/admin/").content.decode()
    assert 'href="/"' in page
    assert admin_client.get("/").status_code == 200
