"""``manage.py serve``: this machine's worker processes, one command, one setting.

``RTC_WORKERS`` (or ``--workers``) daphne processes share one listening port: this command binds
one socket per worker with ``SO_REUSEPORT`` (the kernel spreads new connections over them) and
hands each to a ``daphne --fd`` child. Several workers need the Redis channel layer
(``REDIS_URL``): the in-memory one cannot carry a commit from one process to another, so without
it the default is one worker and more are refused.

The command stays in the foreground: SIGINT or SIGTERM stops every worker; a worker that exits
stops the others, and the command exits with its status (a supervisor restarts the whole).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tables.conf import rtc_settings


def default_workers() -> int:
    """One per core with the Redis channel layer, else one (see the module's docstring)."""
    return (os.cpu_count() or 1) if settings.REDIS_URL else 1


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def daphne_command(fd: int, extra: list[str]) -> list[str]:
    """daphne on an inherited socket, with WebSocket messages up to the server's own limit."""
    sibling = Path(sys.executable).with_name("daphne")
    daphne = [str(sibling)] if sibling.exists() else [sys.executable, "-m", "daphne"]
    limit = str(rtc_settings.MAX_MESSAGE_BYTES)
    return [
        *daphne,
        "--fd",
        str(fd),
        "--websocket-max-message-size",
        limit,
        "--websocket-max-frame-size",
        limit,
        *extra,
        "rtc_project.asgi:application",
    ]


class Command(BaseCommand):
    help = "Run this machine's daphne workers on one port (RTC_WORKERS, default one per core)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help="worker processes (default: RTC_WORKERS, else one per core with REDIS_URL, "
            "else 1)",
        )
        parser.add_argument(
            "daphne_args", nargs="*", help="passed to each daphne (after --), e.g. --proxy-headers"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        workers = options["workers"] or rtc_settings.WORKERS or default_workers()
        if workers > 1 and not settings.REDIS_URL:
            raise CommandError(
                f"{workers} workers need REDIS_URL (the in-memory channel layer does not cross "
                "processes); set it, or run one worker"
            )
        if not settings.REDIS_URL:
            self.stderr.write(
                "one worker: the in-memory channel layer does not cross processes "
                "(set REDIS_URL for one per core)"
            )
        sockets = [listening_socket(options["host"], options["port"]) for _ in range(workers)]
        children = [
            subprocess.Popen(
                daphne_command(sock.fileno(), options["daphne_args"]),
                pass_fds=(sock.fileno(),),
            )
            for sock in sockets
        ]
        for sock in sockets:
            sock.close()  # the children hold them
        self.stderr.write(
            f"{workers} worker(s) on {options['host']}:{options['port']}: "
            + " ".join(str(child.pid) for child in children)
        )
        stopping = False

        def stop(signum: int, _frame: Any) -> None:
            nonlocal stopping
            stopping = True
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        status = 0
        try:
            pid, wait_status = os.wait()  # the first worker to end ends them all
            if not stopping:
                status = os.waitstatus_to_exitcode(wait_status) or 1
                self.stderr.write(f"worker {pid} exited ({status}); stopping the others")
            stop(signal.SIGTERM, None)
        finally:
            for child in children:
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
        if status:
            sys.exit(status)
