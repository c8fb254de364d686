"""A fresh data folder is private whatever the umask: the database (with its -wal and -shm
files) and the generated secret key are 0600, the folder 0700."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support import ROOT

SCRIPT = """
import json, os, stat
os.umask(0o022)  # the usual default, which makes files readable by everyone
import django
django.setup()
from django.conf import settings
from django.core.management import call_command
from django.db import connection
call_command("migrate", verbosity=0)
with connection.cursor() as cursor:  # the connection stays open: -wal and -shm exist
    cursor.execute("SELECT count(*) FROM django_migrations")
    data = settings.DATA_DIR
    names = ["", "secret_key", "db.sqlite3", "db.sqlite3-wal", "db.sqlite3-shm"]
    print(json.dumps({name: oct(stat.S_IMODE(os.stat(data / name).st_mode)) for name in names}))
"""


def test_a_fresh_data_dir_is_private_under_umask_022(tmp_path):
    data_dir = tmp_path / "deployment" / "var"  # neither exists yet
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "SECRET_KEY", "PYTEST_CURRENT_TEST"}
    }
    env.update(DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="rtc_project.settings")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    modes = json.loads(done.stdout.splitlines()[-1])
    assert modes == {
        "": "0o700",
        "secret_key": "0o600",
        "db.sqlite3": "0o600",
        "db.sqlite3-wal": "0o600",
        "db.sqlite3-shm": "0o600",
    }
