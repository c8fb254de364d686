"""``manage.py run_supernode`` as a process of its own, peer of a relay process (a
``ServerProcess``) and client of a Jupyter Server, as it runs in production.

Imported by test modules that also load plugins: PYTEST_DONT_REWRITE."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from django.utils import timezone

from jupyter_sync.models import SupernodeLease
from tests.support import ROOT
from tests.support.liveserver import ServerProcess
from tests.support.waiting import eventually


class SupernodeProcess:
    """``manage.py run_supernode`` against a Jupyter Server, peer of a relay process."""

    def __init__(
        self, relay: ServerProcess, jupyter_url: str, jupyter_token: str, *, wait: float = 60.0
    ):
        self.wait = wait
        fd, log_path = tempfile.mkstemp(prefix="rtc-supernode-", suffix=".log")
        os.close(fd)
        self.log_path = Path(log_path)
        command = [sys.executable, "manage.py", "run_supernode", "--refresh", "0.5"]
        command += ["--jupyter-url", jupyter_url, "--jupyter-token", jupyter_token]
        command += ["--server-url", relay.ws_url]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=relay.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_connected(self) -> None:
        eventually(
            lambda: (
                self.process.poll() is not None
                or SupernodeLease.objects.filter(expires_at__gt=timezone.now()).exists()
            ),
            self.wait,
            "the supernode taking its lease",
        )
        if self.process.poll() is not None:
            raise AssertionError(f"the supernode exited:\n{self.log}")

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        print(f"===== supernode output =====\n{self.log}")
        self.log_path.unlink(missing_ok=True)
