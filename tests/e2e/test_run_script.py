"""``scripts/run``, the README's first command, as a person runs it: one URL to open, JupyterLab
on this server behind it, and everything gone after Ctrl-C (SIGINT) or SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import urllib.request
from pathlib import Path

import pytest

from jupyter_sync.jupyter.launcher import free_port
from tests.support import ROOT
from tests.support.waiting import eventually

URL_LINE = re.compile(r"Open JupyterLab: (http://127\.0\.0\.1:(\d+)/lab\?token=([0-9a-f]+))")


def request(method: str, url: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    sent = urllib.request.Request(url, data=data, method=method)
    sent.add_header("Authorization", f"token {token}")
    sent.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(sent, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, {"error": error.read().decode(errors="replace")}


def command_lines(session: int) -> list[bytes]:
    """The command lines of the processes in ``session``, as ``ps`` shows them to anyone."""
    lines = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            if int(fields[3]) == session:  # state, ppid, pgrp, session
                lines.append((entry / "cmdline").read_bytes())
        except (OSError, ValueError, IndexError):  # gone meanwhile
            continue
    return lines


def listening(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_run_gives_one_url_to_jupyterlab_on_this_server_and_stops_clean(tmp_path: Path, how):
    port, lab_port = free_port(), free_port()
    out = tmp_path / "out.log"
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
        "DATA_DIR": str(tmp_path / "data"),
        "PORT": str(port),
        "LAB_PORT": str(lab_port),
    }
    with out.open("w") as log:
        run = subprocess.Popen(
            [str(ROOT / "scripts" / "run")],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl-C reaches the whole group
            umask=0o022,  # the usual default, which makes new files readable by everyone
        )
    try:
        found = eventually(
            lambda: URL_LINE.search(out.read_text(errors="replace")),
            timeout=240,
            what="scripts/run printing the URL to open",
            explain=lambda: out.read_text(errors="replace")[-3000:],
        )
        url, shown_port, token = found.groups()
        assert int(shown_port) == lab_port
        # No token on any command line (JupyterLab's, the bridge's, the supernode's).
        lines = command_lines(run.pid)
        assert any(b"daphne" in line for line in lines)
        assert any(b"run_supernode" in line for line in lines)
        assert any(b"jupyter" in line and b"lab" in line for line in lines)
        for line in lines:
            assert token.encode() not in line and b"token" not in line.lower(), line
        # The data folder and the database are private, whatever the umask.
        assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
        assert stat.S_IMODE((tmp_path / "data" / "db.sqlite3").stat().st_mode) == 0o600
        (tmp_path / "data" / "notebooks" / "n.ipynb").write_text(
            json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
        )
        lab = f"http://127.0.0.1:{lab_port}"
        with urllib.request.urlopen(url, timeout=30) as page:
            html = page.read().decode()
        assert page.status == 200
        assert f":{port}" not in html  # the RTC server's address never reaches the browser
        # The collaboration route JupyterLab calls, answered by this server through the bridge
        # (the supernode opens the file: it runs against this same JupyterLab).
        status, session = request(
            "PUT",
            f"{lab}/api/collaboration/session/n.ipynb",
            token,
            {"format": "json", "type": "notebook"},
        )
        assert status == 201 and session["fileId"], session
    finally:
        if how == signal.SIGINT:
            os.killpg(run.pid, how)
        else:
            run.send_signal(how)
        code = run.wait(timeout=60)
    log = out.read_text(errors="replace")
    assert code in (130, 143), log[-3000:]
    assert "Traceback" not in log, log[-5000:]
    eventually(
        lambda: not listening(port) and not listening(lab_port),
        timeout=30,
        what="every server stopping with scripts/run",
    )
