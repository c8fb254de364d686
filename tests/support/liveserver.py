"""Real server processes for end-to-end tests: ``daphne rtc_project.asgi:application``.

A ``ServerProcess`` runs daphne on 127.0.0.1 and a free port, against the current test database
(``database_url()``), with this process's settings module and DATA_DIR. Several can run at once
(several workers on one database), and one can be killed with any signal and started again on the
same port (reliability tests).

Fixtures (the test needs the database with transactions:
``@pytest.mark.django_db(transaction=True)``; they request ``transactional_db`` themselves, so a
test's servers stop before the database is flushed):

- ``start_server``: a factory, ``start_server(**ServerProcess kwargs) -> ServerProcess``, started
  and answering. The first call without arguments gives the module's shared server: one daphne
  with the default settings for the whole test module, since starting one costs seconds and a
  server keeps nothing a later test could see (the database is emptied after each test, and what
  a server process keeps in memory is keyed by primary keys, which are never used again). A test
  that stops or kills it gets it back in the next test, started again. Every other call starts
  a server of its own (other settings, a second worker), stopped at teardown.
- ``live_server_process``: the module's shared server.
- ``live_server_url``: its URL, ``http://127.0.0.1:<port>``.

A server that died without being told to fails the test at teardown, with its output.

Registered as a plugin (``pytest_plugins``) and imported by tests and other modules alike, so
pytest must not try to rewrite its asserts once it is already imported: PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from jupyter_sync.jupyter.launcher import free_port
from tables.conf import rtc_settings
from tests.support import ROOT

APPLICATION = "rtc_project.asgi:application"
READY_PATH = "/admin/login/"


def database_url() -> str:
    """A DATABASE_URL for another process that points at this process's (test) database."""
    conf = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{conf['NAME']}"
    user = conf.get("USER") or ""
    password = f":{conf['PASSWORD']}" if conf.get("PASSWORD") else ""
    host = conf.get("HOST") or "127.0.0.1"
    port = f":{conf['PORT']}" if conf.get("PORT") else ""
    return f"postgres://{user}{password}@{host}{port}/{conf['NAME']}"


def daphne_command(env: Mapping[str, str] | None = None) -> list[str]:
    """daphne as scripts/run starts it: WebSocket messages up to this server's own limit
    (``RTC_MAX_MESSAGE_BYTES`` of its environment ``env`` if set there, else this process's;
    daphne's default is 1 MiB)."""
    sibling = Path(sys.executable).with_name("daphne")
    command = [str(sibling)] if sibling.exists() else [sys.executable, "-m", "daphne"]
    limit = (env or {}).get("RTC_MAX_MESSAGE_BYTES") or str(rtc_settings.MAX_MESSAGE_BYTES)
    return [*command, "--websocket-max-message-size", limit, "--websocket-max-frame-size", limit]


class ServerError(AssertionError):
    """The server did not come up, or died."""


class ServerProcess:
    """One daphne process serving the project on ``127.0.0.1:<port>``."""

    def __init__(
        self,
        *,
        database: str | None = None,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = (),
        name: str = "server",
    ):
        self.database = database or database_url()
        self.port = port or free_port()
        self._fixed_port = port is not None
        self.extra_env = dict(env or {})
        self.args = args
        self.name = name
        self.process: subprocess.Popen[bytes] | None = None
        self._expect_exit = False
        fd, log_path = tempfile.mkstemp(prefix=f"rtc-{name}-", suffix=".log")
        os.close(fd)
        self.log_path = Path(log_path)

    # --- Addresses --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def yjs_url(self) -> str:
        """The y-websocket server URL (a WebsocketProvider adds ``/<datastore>``)."""
        return f"{self.ws_url}/ws/yjs"

    def datastore_ws_url(self, datastore: str) -> str:
        """The JSON datastore protocol's URL for ``datastore``."""
        return f"{self.ws_url}/ws/datastores/{datastore}/"

    # --- Running ----------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.database,
            DJANGO_SETTINGS_MODULE=os.environ.get(
                "DJANGO_SETTINGS_MODULE", settings.SETTINGS_MODULE
            ),
            DATA_DIR=str(settings.DATA_DIR),
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def start(self, *, wait: bool = True, timeout: float = 30.0) -> ServerProcess:
        """Start daphne (again, on the same port, after a stop or kill); wait until it answers.

        When the port was picked here and someone else took it meanwhile, a new one is picked.
        """
        for _attempt in range(3):
            self._spawn()
            if not wait:
                return self
            try:
                self.wait_ready(timeout)
                return self
            except ServerError:
                if self._fixed_port or self.alive or "Address already in use" not in self.log:
                    raise
                self.port = free_port()
        raise ServerError(f"{self.name}: no free port found; output:\n{self.log}")

    def _spawn(self) -> None:
        if self.alive:
            raise ServerError(f"{self.name} is already running")
        command = [
            *daphne_command(self.extra_env),
            *("-b", "127.0.0.1", "-p", str(self.port)),
            *self.args,
        ]
        with self.log_path.open("ab") as log:
            log.write(f"--- {' '.join(command)} {APPLICATION}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [*command, APPLICATION],
                cwd=ROOT,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._expect_exit = False

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until an HTTP GET of /admin/login/ gets an answer (any status).

        A request the server accepted is waited for until the deadline: the first one loads
        the URLconf and renders a template, seconds of work on a loaded machine, and giving up
        on it to ask again only queued more work behind it (the server answers in order), so
        it never answered in time. Only a refused connection (not listening yet) is retried.
        """
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while True:
            self.check_alive()
            try:
                self.get(READY_PATH, timeout=max(deadline - time.monotonic(), 0.1))
                return
            except OSError as error:
                last_error = error
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServerError(
                    f"{self.name} did not answer on {self.url} within {timeout}s "
                    f"({last_error}); output:\n{self.log}"
                )
            try:  # waits for either the process to exit or the next poll
                assert self.process is not None
                self.process.wait(timeout=min(0.05, remaining))
            except subprocess.TimeoutExpired:
                pass

    def get(self, path: str, *, timeout: float = 10.0) -> tuple[int, bytes]:
        """One HTTP GET against the server: (status, body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_alive(self) -> None:
        """Raise ServerError, with the server's output, if it died without being told to."""
        if self.process is None:
            raise ServerError(f"{self.name} was never started")
        code = self.process.poll()
        if code is not None and not self._expect_exit:
            raise ServerError(f"{self.name} exited with code {code}; output:\n{self.log}")

    @property
    def log(self) -> str:
        """Everything the server wrote to stdout and stderr so far (every run)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def kill(self, sig: int = signal.SIGKILL, *, timeout: float = 10.0) -> int:
        """Send ``sig`` (SIGKILL: a crash) and wait for the process to end; its exit code."""
        if self.process is None:
            raise ServerError(f"{self.name} was never started")
        self._expect_exit = True
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not ended within ``timeout`` seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        self._expect_exit = True
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self, *, timeout: float = 30.0) -> ServerProcess:
        """Stop (if running) and start again on the same port."""
        self.stop()
        self._fixed_port = True
        return self.start(timeout=timeout)

    def close(self) -> None:
        """Stop the server and remove its log file. Raise if it had died unexpectedly."""
        try:
            if self.process is not None:
                self.check_alive()
        finally:
            self.stop()
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@pytest.fixture(scope="module")
def _module_server(django_db_setup: None) -> Iterator[ServerProcess]:
    """The module's shared server (started on first use), stopped after its last test."""
    server = ServerProcess(name="module-server")
    try:
        yield server
    finally:
        server.stop()
        server.log_path.unlink(missing_ok=True)


@pytest.fixture
def start_server(
    transactional_db: None, _module_server: ServerProcess
) -> Iterator[Callable[..., ServerProcess]]:
    """A factory of started, answering ``ServerProcess``; all stopped at teardown, but for the
    module's shared one, which the first call without arguments gives."""
    servers: list[ServerProcess] = []
    shared: list[int] = []  # where the shared server's log stood when this test took it

    def start(**kwargs: Any) -> ServerProcess:
        if not kwargs and not shared:
            if _module_server.alive:  # answering (a start that timed out may be by now)
                _module_server.wait_ready()
            else:  # never started, or a test before stopped it
                _module_server.start()
            shared.append(len(_module_server.log))
            return _module_server
        kwargs.setdefault("name", f"server{len(servers) + 1}")
        server = ServerProcess(**kwargs)
        servers.append(server)
        return server.start()

    yield start
    errors: list[str] = []
    if shared:
        server = _module_server
        # Shown by pytest only when the test failed ("Captured stdout teardown").
        print(f"===== {server.name} ({server.url}) output =====\n{server.log[shared[0] :]}")
        try:
            server.check_alive()
        except ServerError as error:
            server.stop()
            errors.append(str(error))
    for server in servers:
        print(f"===== {server.name} ({server.url}) output =====\n{server.log}")
        try:
            server.close()
        except ServerError as error:
            errors.append(str(error))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def live_server_process(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    """The module's shared server, with the default settings."""
    return start_server()


@pytest.fixture
def live_server_url(live_server_process: ServerProcess) -> str:
    """``http://127.0.0.1:<port>`` of a real daphne process on the test database."""
    return live_server_process.url
