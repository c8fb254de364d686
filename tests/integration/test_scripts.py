"""The README's commands as a person runs them."""

import os
import socket
import subprocess

from tests.support import ROOT


def test_run_refuses_a_port_in_use_in_one_line_before_any_banner():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(ROOT / "scripts" / "run")],
            cwd=ROOT,
            # The embedded defaults, as in the README (the set-up migrates var/'s SQLite).
            env={
                **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
                "HOST": "127.0.0.1",
                "PORT": str(port),
            },
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 1, done
    assert "Jupyter RTC on" not in done.stdout, done.stdout
    last = done.stderr.strip().splitlines()[-1]
    assert f"cannot serve on 127.0.0.1:{port}" in last and "PORT=" in last, done.stderr
