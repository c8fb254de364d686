"""Run a Jupyter Server of our own as a child process: for tests, development and a local supernode.

``LocalJupyterServer`` starts ``python -m jupyter_server`` (this interpreter, so this virtualenv's
kernels and extensions) on 127.0.0.1, a free port and a random token (given in its environment,
``JUPYTER_TOKEN``: a command line is visible to everyone). Its Jupyter config, data,
runtime, IPython and temporary directories live in a private work directory, so it neither reads
nor writes the user's ``~/.jupyter`` or ``~/.ipython``: no config files are read at all
(``JUPYTER_NO_CONFIG``), and the only server extension enabled is ``jupyter_server_terminals``
(the terminals API), when it is installed.

Starting and stopping block (they wait for a process); an asyncio caller runs them in a thread.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

READY_PATH = "/api/status"
TERMINALS_EXTENSION = "jupyter_server_terminals"
LIMIT_RATE = "ZMQChannelsWebsocketConnection.limit_rate"  # iopub rate limits: off unless asked

# Jupyter's file contents manager that follows no symlink out of the root (in the bridge
# package, which every install has): the launched server's files stay under its root.
CONTENTS_MANAGER = "jupyter_rtc_bridge.contents.InsideRootContentsManager"
# Kernel sockets that send each message at once (TCP_NODELAY): with tornado's default, each of a
# kernel's back-to-back messages waits ~40 ms for the previous one's delayed acknowledgement.
CONNECTION_CLASS = "ServerApp.kernel_websocket_connection_class"
NO_DELAY_CONNECTION = "jupyter_rtc_bridge.kernel_sockets.NoDelayZMQChannelsWebsocketConnection"


class JupyterLaunchError(RuntimeError):
    """The server did not come up (its log is in the message), or is not running."""


def free_port() -> int:
    """A TCP port nobody listens on right now (someone may take it before we do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def terminals_available() -> bool:
    """Whether the terminals API can exist: it needs the extension and terminado."""
    return all(
        importlib.util.find_spec(name) is not None for name in (TERMINALS_EXTENSION, "terminado")
    )


class LocalJupyterServer:
    """One ``jupyter server`` child process on ``http://127.0.0.1:<port>``, token-protected.

    ``root_dir`` is what the contents API serves (a private directory when not given). ``env``
    adds to or overrides the child's environment, ``args`` are extra command-line options.
    """

    def __init__(
        self,
        root_dir: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        token: str | None = None,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
    ):
        self._work_dir = Path(tempfile.mkdtemp(prefix="jupyter-local-"))
        if root_dir is None:
            root_dir = self._work_dir / "root"
            root_dir.mkdir()
        self._root_dir = Path(root_dir).resolve()
        self._port = port or free_port()
        self._fixed_port = port is not None
        self._token = token or secrets.token_hex(24)
        self._extra_env = dict(env or {})
        self._args = tuple(args)
        self._log_path = self._work_dir / "server.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._spawn_offset = 0  # where this run's output starts in the log
        self._closed = False

    # --- Addresses and state -----------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash: ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def token(self) -> str:
        return self._token

    @property
    def root_dir(self) -> Path:
        return self._root_dir

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (None before start and after stop)."""
        return self._process.pid if self.alive and self._process is not None else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def runtime_dir(self) -> Path:
        """Where the server writes its kernels' connection files (``kernel-<id>.json``)."""
        return self._work_dir / "runtime"

    @property
    def log_path(self) -> Path:
        return self._log_path

    @property
    def log(self) -> str:
        """Everything the server wrote so far, over every start."""
        try:
            return self._log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # --- Running -------------------------------------------------------------------------------

    def command(self) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            "--ServerApp.open_browser=False",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self._port}",
            "--ServerApp.port_retries=0",  # our port or nothing: the URL is known in advance
            f"--ServerApp.root_dir={self._root_dir}",
            # Symlinks inside the root that point out of it are not followed (the bridge's).
            f"--ServerApp.contents_manager_class={CONTENTS_MANAGER}",
        ]
        if not any(arg.startswith(f"--{LIMIT_RATE}=") for arg in self._args):
            # The server drops iopub messages past a rate (to spare browsers); the supernode
            # saves outputs, so it must get every one. Browsers get them through the relay.
            command.append(f"--{LIMIT_RATE}=False")
        if not any(arg.startswith(f"--{CONNECTION_CLASS}=") for arg in self._args):
            command.append(f"--{CONNECTION_CLASS}={NO_DELAY_CONNECTION}")
        if terminals_available():
            # No config file is read (JUPYTER_NO_CONFIG), so nothing enables it but this.
            command.append(f"--ServerApp.jpserver_extensions={TERMINALS_EXTENSION}=True")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")
        return [*command, *self._args]

    def environment(self) -> dict[str, str]:
        """This process's environment, with every Jupyter and IPython directory made private.

        TMPDIR is private too (kernels inherit it: their temporary files go when we close).
        """
        dirs = {
            "JUPYTER_CONFIG_DIR": "config",
            "JUPYTER_DATA_DIR": "data",
            "JUPYTER_RUNTIME_DIR": "runtime",
            "IPYTHONDIR": "ipython",
            # JUPYTER_NO_CONFIG makes a blank config directory with mkdtemp: keep it in here.
            "TMPDIR": "tmp",
        }
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("JUPYTER_", "JPY_")) and key != "IPYTHONDIR"
        }
        for key, name in dirs.items():
            path = self._work_dir / name
            path.mkdir(exist_ok=True)
            env[key] = str(path)
        env.update(JUPYTER_NO_CONFIG="1", PYTHONUNBUFFERED="1")
        env.update(self._extra_env)
        # The token by environment, which Jupyter Server reads (IdentityProvider.token's
        # default), never on the command line, which every user of the machine sees (ps).
        env["JUPYTER_TOKEN"] = self._token
        return env

    def start(self, timeout: float = 60.0) -> LocalJupyterServer:
        """Start the server (again, on the same port, after a stop); wait until it answers.

        When the port was picked here and someone took it meanwhile, another one is picked.
        """
        if self._closed:
            raise JupyterLaunchError("this server was closed")
        for _attempt in range(3):
            self._spawn()
            try:
                self.wait_ready(timeout)
                return self
            except JupyterLaunchError:
                in_use = "is already in use" in self.log[self._spawn_offset :]
                if self._fixed_port or self.alive or not in_use:
                    self.stop()
                    raise
                self._port = free_port()
        raise JupyterLaunchError(f"no free port found; log:\n{self.log}")

    def _spawn(self) -> None:
        if self.alive:
            raise JupyterLaunchError(f"the server is already running (pid {self.pid})")
        command = self.command()
        self._spawn_offset = len(self.log)
        with self._log_path.open("ab") as log:
            log.write(f"--- {' '.join(command)}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                command,
                cwd=self._root_dir,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until GET /api/status, with the token, answers 200."""
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            if not self.alive:
                code = self._process.returncode if self._process is not None else None
                raise JupyterLaunchError(f"jupyter server exited ({code}); log:\n{self.log}")
            try:
                status, _body = self.get(READY_PATH, timeout=2)
                if status == 200:
                    return
                last = f"HTTP {status}"
            except OSError as error:
                last = error
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise JupyterLaunchError(
                    f"jupyter server did not answer on {self.url} within {timeout}s ({last}); "
                    f"log:\n{self.log}"
                )
            with contextlib.suppress(subprocess.TimeoutExpired):
                assert self._process is not None
                self._process.wait(timeout=min(0.05, remaining))  # the pause between polls

    def get(self, path: str, *, timeout: float = 10.0) -> tuple[int, bytes]:
        """One authenticated HTTP GET: (status, body). For readiness checks and tests."""
        conn = http.client.HTTPConnection("127.0.0.1", self._port, timeout=timeout)
        try:
            conn.request("GET", path, headers={"Authorization": f"token {self._token}"})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (the server shuts its kernels down), then SIGKILL after ``timeout`` seconds.

        Safe to call at any time, any number of times. Kernels of a SIGKILLed server notice
        their parent is gone and exit on their own (ipykernel's parent poller).
        """
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self._process = None

    def restart(self, timeout: float = 60.0) -> LocalJupyterServer:
        """Stop (if running) and start again on the same port, with the same token."""
        self.stop()
        self._fixed_port = True
        return self.start(timeout)

    def close(self) -> None:
        """Stop the server and delete its private directories (and the log)."""
        self.stop()
        self._closed = True
        shutil.rmtree(self._work_dir, ignore_errors=True)

    def __enter__(self) -> LocalJupyterServer:
        if not self.alive:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.alive else "stopped"
        return f"<LocalJupyterServer {self.url} {state} root={self._root_dir}>"
