"""The Python client is a package of its own (client/): it works against a server from a process
that has no Django, nor any of the server's modules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tables.models import Transaction
from tests.support import ROOT
from tests.support.factories import owned_datastore
from tests.support.liveserver import ServerProcess

pytest_plugins = ["tests.support.liveserver"]

CLIENT_DIR = ROOT / "client"
SERVER_PACKAGES = (
    "django",
    "channels",
    "rest_framework",
    "daphne",
    "tables",
    "relay",
    "jupyter_sync",
)

SCRIPT = """
import asyncio, importlib.abc, json, sys

SERVER_PACKAGES = set(sys.argv[4].split(","))


class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in SERVER_PACKAGES:
            raise ImportError(f"the client imported {name}")
        return None


sys.meta_path.insert(0, Refuse())
sys.path.insert(0, sys.argv[3])

from pycrdt import Map, Text
from rtc_client import DatastoreClient


async def main(url, token):
    async with DatastoreClient(url, "groceries", token=token) as client:
        client.doc.get("items", type=Map)["milk"] = Map({"title": Text("Milk"), "done": False})
        await client.wait_acked(timeout=10)
        return {
            "store_id": client.store_id,
            "acked": list(client.acked.values()),
            "rtc_client": sys.modules["rtc_client"].__file__,
            "server_modules": sorted(
                name for name in sys.modules if name.split(".")[0] in SERVER_PACKAGES
            ),
        }


print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))))
"""


@pytest.mark.django_db(transaction=True)
def test_the_client_package_works_without_django(live_server_process: ServerProcess):
    token = owned_datastore("groceries")
    # -I: no PYTHONPATH, no current directory on sys.path; the client's folder is added first.
    done = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            SCRIPT,
            live_server_process.ws_url,
            token,
            str(CLIENT_DIR),
            ",".join(SERVER_PACKAGES),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=CLIENT_DIR,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["server_modules"] == []
    assert Path(result["rtc_client"]).is_relative_to(CLIENT_DIR)
    assert result["acked"] == [1]
    assert list(Transaction.objects.values_list("serial", "store_id")) == [(1, result["store_id"])]
