"""What one REST request costs: latency, server CPU and database sessions, against Jupyter Server.

Every call JupyterLab makes through the bridge is a REST request to this server, so its fixed
cost (Django's request pipeline under ASGI, authentication, a query) is paid on each. One run,
side by side, rounds interleaved:

- **ours**: a daphne worker as deployed (``rtc_project.asgi``), ``GET /api/datastores/`` with an
  API token (authentication, one query, a JSON answer);
- **peer**: Jupyter Server (tornado), ``GET /api/status`` with its token.

Each request goes on one keep-alive HTTP/1.1 connection, one at a time (what a browser tab's
calls look like to the server). Per server: the median and p90 latency over all rounds, server
CPU per request (user + system time of its process, from ``/proc``), and on PostgreSQL the
database sessions it opened (``pg_stat_database.sessions``, read after the worker stops).

    .venv/bin/python bench/rest.py                        # SQLite, 5 rounds of 300 requests
    .venv/bin/python bench/rest.py --postgres --rounds 7
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ROOT,
    add_common_arguments,
    load_average,
    median,
    percentile,
    print_table,
    setup_django,
    vendor,
)


@dataclass
class Target:
    name: str
    port: int
    path: str
    authorization: str
    pid: int
    latencies: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    requests: int = 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def requests(target: Target, count: int) -> list[float]:
    """``count`` GETs on one keep-alive connection; the seconds each took."""
    reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
    request = (
        f"GET {target.path} HTTP/1.1\r\nHost: 127.0.0.1:{target.port}\r\n"
        f"Authorization: {target.authorization}\r\n\r\n"
    ).encode()
    took = []
    try:
        for _ in range(count):
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head.split(b" ", 2)[1]
            if status != b"200":
                raise SystemExit(f"{target.name}: {head.decode(errors='replace')}")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            took.append(time.perf_counter() - start)
    finally:
        writer.close()
    return took


def wait_ready(port: int, deadline: float) -> None:
    import http.client

    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/admin/login/")
            conn.getresponse().read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"the server on port {port} did not start") from None
            time.sleep(0.1)  # polling a process that tells us nothing


def start_daphne(env: dict[str, str], logs: Path, name: str) -> tuple[subprocess.Popen, int]:
    from jupyter_sync.jupyter.launcher import free_port

    port = free_port()
    daphne = str(Path(sys.executable).with_name("daphne"))
    with (logs / f"{name}.log").open("wb") as log:
        child = subprocess.Popen(
            [daphne, "-b", "127.0.0.1", "-p", str(port), "rtc_project.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )
    wait_ready(port, time.monotonic() + 60)
    return child, port


def sessions_opened() -> int | None:
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def wait_for_no_backends(application: str, deadline: float) -> None:
    """Until the workers' sessions have ended (a session's statistics are in by then)."""
    from django.db import connection

    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [application]
            )
            if cursor.fetchone()[0] == 0 or time.monotonic() > deadline:
                return
        time.sleep(0.1)  # polling the database's view of its sessions


def account() -> str:
    from django.contrib.auth.models import User

    from relay.models import ApiToken
    from tables import service

    user = User.objects.create_user("bench-rest")
    service.create_datastore("bench-rest", "todo", owner=user)
    return ApiToken.objects.create(user=user).key


async def run(targets: list[Target], rounds: int, count: int) -> None:
    for target in targets:
        await requests(target, 20)  # imports, caches, the first connections
    for _ in range(rounds):
        for target in targets:
            before = cpu_seconds(target.pid)
            target.latencies += await requests(target, count)
            target.cpu_seconds += cpu_seconds(target.pid) - before
            target.requests += count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=300, help="per round and server")
    args = parser.parse_args()
    url = setup_django(args)
    key = account()
    from django.db import connection

    postgres = connection.vendor == "postgresql"
    print(f"REST request cost on {vendor()}; {load_average()}")

    from jupyter_sync.jupyter.launcher import LocalJupyterServer

    logs = Path(tempfile.mkdtemp(prefix="rtc-bench-rest-"))
    # No rate limit: the requests are the benchmark's, as many as it asks for.
    env = dict(
        os.environ,
        DATABASE_URL=url,
        DATA_DIR=args.data_dir,
        PYTHONUNBUFFERED="1",
        RTC_API_RATE_USER="",
    )
    servers: list[tuple[str, dict[str, str]]] = [("ours", env)]
    if postgres:
        env["DATABASE_URL"] = f"{url}?application_name=rtc-bench-rest"
    children, targets = [], []
    jupyter = LocalJupyterServer(Path(tempfile.mkdtemp(prefix="rtc-bench-rest-root-")))
    sessions: dict[str, int | None] = {}
    try:
        for name, server_env in servers:
            child, port = start_daphne(server_env, logs, name.replace(", ", "-"))
            children.append(child)
            targets.append(Target(name, port, "/api/datastores/", f"Token {key}", child.pid))
        jupyter.start()
        targets.append(
            Target(
                "Jupyter Server",
                jupyter.port,
                "/api/status",
                f"token {jupyter.token}",
                jupyter.pid or 0,
            )
        )
        before = sessions_opened()
        asyncio.run(run(targets, args.rounds, args.requests))
    finally:
        for child in children:
            child.terminate()
            child.wait(10)
        jupyter.stop()
    if postgres:
        wait_for_no_backends("rtc-bench-rest", time.monotonic() + 30)
    after = sessions_opened()
    if before is not None and after is not None:
        sessions["ours"] = after - before
    rows = []
    for target in targets:
        rows.append(
            [
                target.name,
                target.path,
                f"{median(target.latencies) * 1000:.2f}",
                f"{percentile(target.latencies, 90) * 1000:.2f}",
                f"{target.cpu_seconds / target.requests * 1e6:.0f}",
                str(target.requests),
            ]
        )
    print_table(
        ["server", "request", "ms (median)", "p90", "CPU us / request", "requests"],
        rows,
        title=f"{args.rounds} rounds of {args.requests} requests a server, interleaved",
    )
    peer = targets[-1]
    ours = targets[0]
    print(
        f"ours / Jupyter Server: latency {median(ours.latencies) / median(peer.latencies):.2f}x, "
        f"CPU {ours.cpu_seconds / ours.requests / (peer.cpu_seconds / peer.requests):.2f}x"
    )
    if sessions:
        print(f"database sessions our worker opened during the rounds: {sessions['ours']}")
    print(f"finished; {load_average()}")


if __name__ == "__main__":
    main()
