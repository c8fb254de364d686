"""The README's commands as a person runs them."""

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support import ROOT
from tests.support.waiting import eventually


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


def children_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return [int(child) for child in listing.read().split()]


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(b"GET /api/ HTTP/1.0\r\nHost: localhost\r\n\r\n")
            return conn.recv(12).startswith(b"HTTP/1.")
    except OSError:
        return False


@contextmanager
def serving(tmp_path: Path, **settings: str | None) -> Iterator[tuple[subprocess.Popen, int, Path]]:
    """``manage.py serve`` on a free port with the environment's settings changed (None: unset),
    its output in a log; killed at the end if it has not stopped."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DATA_DIR"] = str(tmp_path)
    for name, value in settings.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        serve = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "python"), "manage.py", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield serve, port, log
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()


def test_serve_runs_the_workers_on_one_port_and_stops_them_all(redis_url, tmp_path):
    url, prefix = redis_url
    settings = {"REDIS_URL": url, "REDIS_PREFIX": prefix, "RTC_WORKERS": "2"}
    with serving(tmp_path, **settings) as (serve, port, log):
        workers = eventually(
            lambda: len(children_of(serve.pid)) == 2 and children_of(serve.pid),
            timeout=60,
            what="two workers",
        )
        eventually(lambda: answers(port), timeout=60, what=f"an answer on port {port}")
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) == 0, log.read_text()
        for worker in workers:
            assert not os.path.exists(f"/proc/{worker}")  # stopped and reaped


def test_serve_without_redis_runs_exactly_one_worker_and_says_why(tmp_path):
    """What scripts/run starts with the embedded defaults: the in-memory channel layer cannot
    carry a commit to another process, so one worker whatever the cores."""
    with serving(tmp_path, REDIS_URL=None, RTC_WORKERS="0") as (serve, port, log):
        eventually(lambda: answers(port), timeout=60, what=f"an answer on port {port}")
        assert len(children_of(serve.pid)) == 1
        assert "one worker: the in-memory channel layer" in log.read_text()
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) == 0, log.read_text()
