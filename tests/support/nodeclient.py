"""Drive real Node Yjs clients (y-websocket's WebsocketProvider) from the tests.

Each ``NodeYClient`` is one ``node tests/node/yclient.mjs`` process, controlled by JSON lines on
its stdin; it answers each command by id and pushes events (status, synced, permission-denied,
update, awareness, close; with ``notebook=True`` also cell-change, notebook-change, set-idle and
error, from a YNotebook of @jupyter/ydoc) on its stdout. A reader thread puts every line in
order into the client's state under one condition variable, so every wait below is a wait on a
condition with a deadline.

The ``node_client`` fixture yields a factory and kills every client it made at teardown. It skips
(a failure under ``CI=true``) when ``node`` or ``tests/node/node_modules`` is missing: install them
with ``npm ci --prefix tests/node``.

Registered as a plugin (``pytest_plugins``) and imported by tests and other modules alike, so
pytest must not try to rewrite its asserts once it is already imported: PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest

from tests.support import ROOT

NODE_DIR = ROOT / "tests" / "node"
SCRIPT = NODE_DIR / "yclient.mjs"
INSTALL_HINT = "run `npm ci --prefix tests/node` to install the Node test clients"

Path_ = str | Sequence[str | int]
Event = dict[str, Any]


class NodeClientError(AssertionError):
    """A command failed, the process died, or a wait ran out of time."""


def node_missing() -> str | None:
    """Why Node clients cannot run here, or None when they can."""
    if shutil.which("node") is None:
        return f"`node` is not on PATH (Node 18+ is needed); then {INSTALL_HINT}"
    for package in ("yjs", "y-websocket", "ws", "y-protocols", "@jupyter/ydoc"):
        if not (NODE_DIR / "node_modules" / package / "package.json").exists():
            return f"tests/node/node_modules/{package} is missing: {INSTALL_HINT}"
    return None


class NodeYClient:
    """One Node process holding a ``Y.Doc``, optionally connected by a ``WebsocketProvider``."""

    def __init__(
        self,
        url: str | None = None,
        room: str | None = None,
        token: str | None = None,
        *,
        name: str = "node",
        timeout: float = 10.0,
        notebook: bool = False,
    ):
        """``notebook``: the document is a ``YNotebook`` of @jupyter/ydoc, watched as JupyterLab
        uses it (``cell-change``, ``notebook-change`` and ``error`` events: ``yclient.mjs``)."""
        self.name = name
        self.timeout = timeout
        self.events: list[Event] = []
        self._replies: dict[int, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._stderr: list[str] = []
        self._changed = threading.Condition()
        self._eof = False
        self.process = subprocess.Popen(
            ["node", str(SCRIPT), *(["--notebook"] if notebook else [])],
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        self._threads = [
            threading.Thread(target=self._read_stdout, name=f"{name}-stdout", daemon=True),
            threading.Thread(target=self._read_stderr, name=f"{name}-stderr", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        try:
            self.client_id: int = self.wait_event("ready")["clientId"]
            if url is not None:
                self.connect(url, room, token)
        except BaseException:
            self.close()
            raise

    # --- Process plumbing -------------------------------------------------------------------

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except ValueError:
                message = {"event": "garbage", "line": line}
            with self._changed:
                if "id" in message and "event" not in message:
                    self._replies[message["id"]] = message
                else:
                    self.events.append(message)
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def _died(self) -> NodeClientError:
        code = self.process.poll()
        return NodeClientError(
            f"{self.name}: the Node client exited (code {code}); stderr:\n{self.stderr}"
        )

    def _wait(self, ready: Callable[[], Any], timeout: float, what: str) -> Any:
        """Wait until ``ready()`` returns something truthy (checked under the lock)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                result = ready()
                if result:
                    return result
                if self._eof:
                    raise self._died()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise NodeClientError(
                        f"{self.name}: {what} did not happen within {timeout}s; "
                        f"events: {self.events[-20:]}; stderr:\n{self.stderr}"
                    )
                self._changed.wait(remaining)

    # --- Commands ---------------------------------------------------------------------------

    def request(
        self, cmd: str, *, timeout: float | None = None, check: bool = True, **args: Any
    ) -> dict[str, Any]:
        """Send a command and return its reply (raise NodeClientError if it failed)."""
        if self.process.poll() is not None:
            raise self._died()
        request_id = next(self._ids)
        line = json.dumps({"id": request_id, "cmd": cmd, **args}) + "\n"
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(line)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._died() from None
        reply = self._wait(
            lambda: self._replies.pop(request_id, None),
            self.timeout if timeout is None else timeout,
            f"a reply to {cmd!r}",
        )
        if check and not reply.get("ok"):
            raise NodeClientError(f"{self.name}: {cmd} failed: {reply.get('error')}")
        return reply

    def connect(
        self,
        url: str,
        room: str | None,
        token: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Attach a WebsocketProvider for ``url``/``room`` (``?token=`` when given)."""
        return self.request("connect", url=url, room=room, token=token, params=dict(params or {}))

    def switch_room(
        self,
        url: str,
        room: str,
        token: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Destroy the provider and attach a new one on ``room``, keeping the Y document (as
        JupyterLab's timeline joins a fork room and, after a restore, the document again)."""
        return self.request(
            "switch-room", url=url, room=room, token=token, params=dict(params or {})
        )

    def wait_synced(self, timeout: float | None = None) -> dict[str, Any]:
        timeout = self.timeout if timeout is None else timeout
        return self.request("wait-synced", timeout=timeout + 5, timeoutMs=int(timeout * 1000))

    def status(self) -> dict[str, Any]:
        """``{"clientId", "connected", "synced"}``."""
        reply = self.request("status")
        return {key: reply[key] for key in ("clientId", "connected", "synced")}

    def insert_text(
        self, path: Path_, index: int | None, text: str, *, root_type: str | None = None
    ) -> None:
        """Insert into the Y.Text at ``path`` (a root name, or [root map, key, ..., key])."""
        self.request("insert-text", path=path, index=index, text=text, rootType=root_type)

    def delete_text(
        self, path: Path_, index: int, length: int, *, root_type: str | None = None
    ) -> None:
        self.request("delete-text", path=path, index=index, length=length, rootType=root_type)

    def set(self, path: Path_, key: str, value: Any, *, root_type: str | None = None) -> None:
        """``map.set(key, value)`` on the Y.Map at ``path``.

        ``value`` is a JSON value, or ``{"$text": s}``, ``{"$map": {...}}``, ``{"$array": [...]}``
        for new shared types (nested freely).
        """
        self.request("set", path=path, key=key, value=value, rootType=root_type)

    def delete_key(self, path: Path_, key: str, *, root_type: str | None = None) -> None:
        self.request("delete-key", path=path, key=key, rootType=root_type)

    def array_insert(
        self, path: Path_, index: int | None, values: list[Any], *, root_type: str | None = None
    ) -> None:
        self.request("array-insert", path=path, index=index, values=values, rootType=root_type)

    def array_delete(
        self, path: Path_, index: int, length: int = 1, *, root_type: str | None = None
    ) -> None:
        self.request("array-delete", path=path, index=index, length=length, rootType=root_type)

    def batch(self, ops: list[dict[str, Any]]) -> None:
        """Several operations in one Yjs transaction (one update): ``[{"op": "set", ...}]``."""
        self.request("batch", ops=ops)

    def get(self, roots: Mapping[str, str] | Sequence[str]) -> dict[str, Any]:
        """The JSON of the given roots: ``{"items": "map", "source": "text"}`` (a list: maps)."""
        return self.request("get", roots=roots if isinstance(roots, Sequence) else dict(roots))[
            "doc"
        ]

    def encode_state(self) -> bytes:
        """The whole document as one Yjs update (``Y.encodeStateAsUpdate``)."""
        return base64.b64decode(self.request("encode-state")["update"])

    def state_vector(self) -> bytes:
        """The document's state vector (``Y.encodeStateVector``)."""
        return base64.b64decode(self.request("state-vector")["stateVector"])

    def send_save(self, save_id: int) -> None:
        """jupyter-collaboration's ``save`` raw message; the answer arrives as a ``raw`` event."""
        self.request("send-save", saveId=save_id)

    def set_awareness(self, state: dict[str, Any] | None) -> None:
        self.request("set-awareness", state=state)

    def send_awareness(self, entries: Sequence[tuple[int, int, Any]]) -> None:
        """Send one awareness message of ``(client id, clock, state)`` entries (state None: a
        removal) as written, whoever's the ids are: what a peer other than a stock one may do."""
        self.request(
            "send-awareness",
            entries=[{"clientId": c, "clock": clock, "state": s} for c, clock, s in entries],
        )

    def get_awareness(self) -> dict[int, Any]:
        """Every known awareness state, by client id (this client's own included)."""
        states = self.request("get-awareness")["states"]
        return {int(client): state for client, state in states.items()}

    def disconnect(self) -> None:
        self.request("disconnect")

    # --- Waiting ----------------------------------------------------------------------------

    def wait_for(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        roots: Mapping[str, str] | Sequence[str],
        timeout: float | None = None,
        *,
        poll: float = 0.05,
    ) -> dict[str, Any]:
        """Wait until ``predicate(self.get(roots))`` holds; return that state."""
        return self._wait_state(lambda: self.get(roots), predicate, timeout, poll, "the document")

    def wait_awareness(
        self, predicate: Callable[[dict[int, Any]], bool], timeout: float | None = None
    ) -> dict[int, Any]:
        """Wait until ``predicate(self.get_awareness())`` holds; return those states."""
        return self._wait_state(self.get_awareness, predicate, timeout, 0.05, "awareness")

    def _wait_state(
        self,
        read: Callable[[], Any],
        predicate: Callable[[Any], bool],
        timeout: float | None,
        poll: float,
        what: str,
    ) -> Any:
        """Wait until ``predicate(read())`` holds; return what was read.

        ``read`` asks the process, so it runs outside the lock: the state is read again whenever
        the client reports an event (a remote update, a status change), and at least every
        ``poll`` seconds, until the deadline.
        """
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            seen = len(self.events)
            state = read()
            if predicate(state):
                return state
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NodeClientError(
                    f"{self.name}: {what} never satisfied the condition within {timeout}s; "
                    f"last state: {state}; events: {self.events[-20:]}"
                )
            with self._changed:
                if len(self.events) == seen and not self._eof:
                    self._changed.wait(min(poll, remaining))

    def wait_event(
        self,
        event: str,
        predicate: Callable[[Event], bool] | None = None,
        timeout: float | None = None,
        *,
        since: int = 0,
    ) -> Event:
        """The first event named ``event`` (from index ``since`` on) matching ``predicate``."""

        def find() -> Event | None:
            for item in self.events[since:]:
                if item.get("event") == event and (predicate is None or predicate(item)):
                    return item
            return None

        return self._wait(find, self.timeout if timeout is None else timeout, f"event {event!r}")

    def events_named(self, event: str) -> list[Event]:
        with self._changed:
            return [item for item in self.events if item.get("event") == event]

    # --- Ending -----------------------------------------------------------------------------

    def close(self) -> None:
        """Ask the process to exit, and kill it if it does not at once. Always safe to call."""
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()  # yclient.mjs exits when its stdin closes
        except OSError:
            pass
        try:
            self.process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        for thread in self._threads:
            thread.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> NodeYClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@pytest.fixture
def node_client() -> Iterator[Callable[..., NodeYClient]]:
    """A factory of ``NodeYClient`` (same arguments); every client is closed at teardown."""
    reason = node_missing()
    if reason:
        pytest.skip(reason)
    clients: list[NodeYClient] = []

    def make(*args: Any, **kwargs: Any) -> NodeYClient:
        kwargs.setdefault("name", f"node{len(clients) + 1}")
        client = NodeYClient(*args, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
