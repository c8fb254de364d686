"""``KernelConnection``: one kernel's shell, iopub, stdin and control channels over its
websocket, requests matched to their replies by msg_id under a deadline; it follows the kernel
through a restart (see the class).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jupyter_client.session import Session
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from jupyter_sync.jupyter.errors import JupyterClientError, KernelConnectionClosed, KernelDied
from jupyter_sync.jupyter.frames import DEFAULT_TIMEOUT, Json, decode_frame, encode_frame

if TYPE_CHECKING:
    from jupyter_sync.jupyter.rest import JupyterClient

logger = logging.getLogger(__name__)

OutputCallback = Callable[[Json], Awaitable[None] | None]
InputCallback = Callable[[Json], Awaitable[str | None] | str | None]

# iopub states after which no reply to an earlier request will come: the server says
# "restarting" (it restarts a crashed kernel) or "dead" (it could not). A shutdown_reply on iopub
# means the same (a restart or a shutdown through the REST API). Not "starting": a restarted
# kernel's "starting" can arrive after the next request was sent to it.
KERNEL_GONE_STATES = frozenset({"dead", "restarting"})
# After a restart, how long the first kernel_info_request on a new websocket may wait for its
# reply before the websocket is opened again (each further try waits one step longer).
RESTART_PROBE_TIMEOUT = 2.0
# An execution whose reply came waits this long after its last iopub message for iopub's idle
# before it is taken as done: a lost idle must not leave it waiting forever.
IOPUB_IDLE_GRACE = 10.0
PROBE_INTERVAL = 0.25  # kernel_info_request sent again until its reply and iopub both came
# How Jupyter Server tells a websocket that it drops iopub messages past its rate limits.
RATE_LIMIT_NOTICES = ("IOPub message rate exceeded.", "IOPub data rate exceeded.")


@dataclass
class ExecuteResult:
    """What an execute_request came to: the execute_reply's content, and its msg_id."""

    msg_id: str
    reply: Json

    @property
    def status(self) -> str:
        """ "ok", "error" or "aborted" (an earlier error stopped the queue)."""
        return str(self.reply.get("status", ""))

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def execution_count(self) -> int | None:
        return self.reply.get("execution_count")

    @property
    def ename(self) -> str | None:
        return self.reply.get("ename")

    @property
    def evalue(self) -> str | None:
        return self.reply.get("evalue")

    @property
    def traceback(self) -> list[str]:
        return list(self.reply.get("traceback") or [])


@dataclass
class _Request:
    """A request waiting for its reply (and, for executions, for iopub idle too)."""

    msg_id: str
    future: asyncio.Future[Json]
    wait_idle: bool = False
    on_output: OutputCallback | None = None
    on_input: InputCallback | None = None
    reply: Json | None = None
    idle: bool = False
    idle_grace: float = IOPUB_IDLE_GRACE
    _idle_timer: asyncio.TimerHandle | None = None

    def maybe_finish(self) -> None:
        done = self.reply is not None and (self.idle or not self.wait_idle)
        if done and not self.future.done():
            self.future.set_result(self.reply)
        if self.future.done():
            self.cancel_timer()
        elif self.reply is not None:
            # Replied, but iopub's idle has not come. Should iopub go quiet for idle_grace,
            # it was lost (a subscription the server had not made yet): done without it.
            self.cancel_timer()
            self._idle_timer = asyncio.get_running_loop().call_later(
                self.idle_grace, self._idle_lost
            )

    def _idle_lost(self) -> None:
        if not self.future.done():
            logger.warning(
                "request %s: replied, but no iopub idle came within %ss; taken as done",
                self.msg_id,
                self.idle_grace,
            )
            self.idle = True
            self.maybe_finish()

    def cancel_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def fail(self, error: Exception) -> None:
        self.cancel_timer()
        if not self.future.done():
            self.future.set_exception(error)


_END = object()


class MessageStream:
    """Every iopub message from its creation on, in order; it ends when the connection closes.

    The queue is unbounded: iterate it, or ``close()`` it when no longer interested.
    """

    def __init__(self, connection: KernelConnection):
        self._connection = connection
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        if connection.closed:
            self._queue.put_nowait(_END)
        else:
            connection._streams.add(self)

    def _put(self, item: Any) -> None:
        self._queue.put_nowait(item)

    def close(self) -> None:
        if self in self._connection._streams:
            self._connection._streams.discard(self)
            self._queue.put_nowait(_END)

    def __aiter__(self) -> MessageStream:
        return self

    async def __anext__(self) -> Json:
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)  # stays ended
            raise StopAsyncIteration
        return item

    def __enter__(self) -> MessageStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


async def _call(callback: Callable[[Json], Any], message: Json) -> Any:
    """Run a sync or async callback; its failure is logged, it does not stop the reader."""
    try:
        result = callback(message)
        if inspect.isawaitable(result):
            result = await result
        return result
    except Exception:
        logger.exception("kernel message callback %r failed", callback)
        return None


class KernelConnection:
    """One kernel's channels over a websocket; made by ``JupyterClient.connect_kernel``.

    A reader task owned by the connection dispatches every message: replies to the request with
    that msg_id, iopub messages to the callbacks of the request they answer and to every
    ``messages()`` stream. Callbacks run in that task, in message order: keep them short (an
    ``on_input`` that waits for a person returns None and calls ``send_input`` later).

    ``execution_state`` is the last iopub status of any request (busy, idle, starting, ...).

    A kernel that crashed and was brought back by the server's restarter may listen on new
    ports, which the server's side of an open websocket never follows. So on "restarting" the
    connection opens a new websocket (same session) and sends nothing until the new kernel has
    answered a kernel_info_request on it; requests made meanwhile wait for that.
    """

    def __init__(
        self,
        client: JupyterClient,
        kernel_id: str,
        websocket: ClientConnection,
        session: Session,
    ):
        self._client = client
        self.kernel_id = kernel_id
        self.session = session
        self._ws = websocket
        self._pending: dict[str, _Request] = {}
        self._streams: set[MessageStream] = set()
        self._failure: JupyterClientError | None = None  # set once reading stopped, says why
        self._kernel_gone: KernelDied | None = None  # shut down for good: stop reading
        self._closing = False
        self._restarted = False  # the server restarted the kernel: reconnect
        self._ready = asyncio.Event()  # clear while reconnecting after a restart
        self._ready.set()
        self.execution_state = "unknown"
        self._reader = asyncio.create_task(self._read(), name=f"kernel-reader-{kernel_id}")

    @property
    def session_id(self) -> str:
        return self.session.session

    @property
    def closed(self) -> bool:
        """No more requests: closed here, the websocket closed, or the kernel was shut down."""
        return self._failure is not None

    async def __aenter__(self) -> KernelConnection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- Reading ---------------------------------------------------------------------------

    async def _read(self) -> None:
        failure: JupyterClientError | None = None
        try:
            while True:
                async for frame in self._ws:
                    message = self._decode(frame)
                    if message is not None:
                        await self._dispatch(message)
                    if self._kernel_gone is not None or self._restarted:
                        break
                if not self._restarted or self._kernel_gone is not None or self._closing:
                    break
                self._restarted = False
                await self._reconnect()
        except ConnectionClosed:
            pass
        except JupyterClientError as error:  # reconnecting after a restart failed
            failure = error
        except Exception as error:  # a bug here must not leave requests waiting forever
            logger.exception("kernel %s: reader failed", self.kernel_id)
            failure = KernelDied(f"kernel {self.kernel_id}: the reader failed: {error!r}")
        finally:
            if failure is None:
                if self._kernel_gone is not None:
                    failure = self._kernel_gone
                elif self._closing:
                    failure = KernelConnectionClosed(f"kernel {self.kernel_id}: closed")
                else:
                    code, reason = self._ws.close_code, self._ws.close_reason
                    failure = KernelDied(
                        f"kernel {self.kernel_id}: the websocket closed ({code} {reason}); "
                        "the kernel or the server is gone"
                    )
            self._failure = failure
            self._ready.set()  # wake senders waiting for a reconnection: they raise now
            self._fail_pending(failure)
            for stream in list(self._streams):
                stream.close()
        if self._kernel_gone is not None:
            # The server keeps the websocket of a shut-down kernel open; nothing will come.
            await self._ws.close()

    def _decode(self, frame: str | bytes) -> Json | None:
        try:
            return decode_frame(frame)
        except (ValueError, struct.error) as error:
            logger.warning("kernel %s: undecodable frame (%s)", self.kernel_id, error)
            return None

    async def _reconnect(self) -> None:
        """After a restart: a new websocket on which the new kernel has answered kernel_info.

        The restarter tells the server's connections before the new process has its ports, so a
        websocket opened too soon is bound to the old ones: no reply comes, and it is opened
        again. Messages read meanwhile are dispatched as usual. Raises KernelDied (or the
        server's error) when no answering kernel comes within the client's timeout.
        """
        self._ready.clear()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(self._client.timeout, 1.0)
        attempt = 0
        last_error: JupyterClientError | None = None
        while True:
            await self._ws.close()
            remaining = deadline - loop.time()
            if self._closing:
                raise KernelConnectionClosed(f"kernel {self.kernel_id}: closed")
            if remaining <= 0:
                detail = f" ({last_error})" if last_error is not None else ""
                raise KernelDied(
                    f"kernel {self.kernel_id}: did not come back after a restart{detail}"
                )
            if attempt:  # a retry: give the restart time to get on
                await asyncio.sleep(min(RESTART_PROBE_TIMEOUT * attempt / 4, remaining))
            attempt += 1
            try:
                # The server may briefly not know the kernel while it restarts it (404).
                websocket = await self._client.open_kernel_websocket(
                    self.kernel_id, self.session_id, timeout=max(deadline - loop.time(), 0.1)
                )
            except JupyterClientError as error:
                last_error = error
                continue
            self._ws = websocket
            probe = min(RESTART_PROBE_TIMEOUT * attempt, max(deadline - loop.time(), 0.1))
            if await self._answers_kernel_info(probe):
                logger.info("kernel %s: reconnected after a restart", self.kernel_id)
                self._ready.set()
                return

    async def _answers_kernel_info(self, timeout: float) -> bool:
        """True once a kernel_info_request on the current websocket has its shell reply and an
        iopub message: both channels reach the new kernel.

        The server subscribes the websocket's iopub when it opens and does not wait for that
        subscription when the kernel is busy, so a reply can come before iopub does; a request
        sent then would lose its iopub messages (outputs, idle). The request is sent again
        every ``PROBE_INTERVAL`` until both came, as the server's own nudge does.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        probes: set[str] = set()
        replied = subscribed = False
        try:
            while True:
                message = self.session.msg("kernel_info_request", {})
                probes.add(message["header"]["msg_id"])
                await self._ws.send(encode_frame(message, "shell"))
                resend_at = min(loop.time() + PROBE_INTERVAL, deadline)
                while (wait := resend_at - loop.time()) > 0:
                    try:
                        async with asyncio.timeout(wait):
                            received = self._decode(await self._ws.recv())
                    except TimeoutError:
                        break
                    if received is None:
                        continue
                    if (received.get("parent_header") or {}).get("msg_id") in probes:
                        # The probes' own messages go to nobody.
                        channel = received.get("channel")
                        replied = replied or channel == "shell"
                        subscribed = subscribed or channel == "iopub"
                        if replied and subscribed:
                            return True
                        continue
                    await self._dispatch(received)
                    if self._kernel_gone is not None:
                        raise self._kernel_gone
                if loop.time() >= deadline:
                    return False
        except ConnectionClosed:
            return False

    async def _dispatch(self, message: Json) -> None:
        channel = message.get("channel")
        header = message.get("header") or {}
        msg_type = header.get("msg_type") or message.get("msg_type")
        parent_id = (message.get("parent_header") or {}).get("msg_id")
        request = self._pending.get(parent_id) if parent_id else None
        content = message.get("content") or {}

        if channel == "iopub":
            state = content.get("execution_state") if msg_type == "status" else None
            if state:
                self.execution_state = state
            for stream in list(self._streams):
                stream._put(message)
            if msg_type == "stream" and str(content.get("text", "")).startswith(RATE_LIMIT_NOTICES):
                logger.warning(
                    "kernel %s: the Jupyter Server drops outputs past its iopub rate limit, so "
                    "they are not saved; start it with "
                    "--ZMQChannelsWebsocketConnection.limit_rate=False",
                    self.kernel_id,
                )
            if request is not None:
                if request.on_output is not None:
                    await _call(request.on_output, message)
                if state == "idle":
                    request.idle = True
                request.maybe_finish()  # after a reply, each iopub message restarts the grace
            # No reply to an earlier request will come: the kernel crashed (the server
            # restarts it: "restarting", or could not: "dead"), or it was asked to shut down
            # (for a restart, or for good).
            if msg_type == "shutdown_reply":
                state = "shut down to restart" if content.get("restart") else "shut down"
            if state in KERNEL_GONE_STATES or msg_type == "shutdown_reply":
                self._fail_pending(KernelDied(f"kernel {self.kernel_id}: {state}"))
            if state in ("dead", "shut down"):
                self._kernel_gone = KernelDied(f"kernel {self.kernel_id}: {state}")
            elif state == "restarting":
                self._restarted = True
        elif channel == "stdin":
            if request is not None and msg_type == "input_request":
                if request.on_input is None:
                    logger.warning("kernel %s: input_request with no on_input", self.kernel_id)
                    return
                value = await _call(request.on_input, message)
                if isinstance(value, str):
                    try:
                        await self.send_input(value, message)
                    except JupyterClientError as error:
                        logger.warning("kernel %s: input_reply not sent: %s", self.kernel_id, error)
        elif request is not None:  # shell or control
            request.reply = message
            request.maybe_finish()

    def _fail_pending(self, error: JupyterClientError) -> None:
        for request in list(self._pending.values()):
            request.fail(error)

    # --- Sending -------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._failure is not None:
            raise type(self._failure)(str(self._failure))
        if self._closing:
            raise KernelConnectionClosed(f"kernel {self.kernel_id}: closed")

    async def send(self, message: Json, channel: str = "shell") -> None:
        """Send a message built with ``self.session.msg(...)`` on ``channel``."""
        self._check_open()
        if not self._ready.is_set():  # reconnecting after a restart; bounded by _reconnect
            await self._ready.wait()
            self._check_open()
        try:
            await self._ws.send(encode_frame(message, channel))
        except ConnectionClosed as error:
            if self._closing:
                raise KernelConnectionClosed(f"kernel {self.kernel_id}: closed") from error
            raise KernelDied(f"kernel {self.kernel_id}: the websocket closed ({error})") from error

    async def _roundtrip(
        self,
        message: Json,
        channel: str,
        request: _Request,
        timeout: float | None,
        on_sent: Callable[[], Any] | None = None,
    ) -> Json:
        self._check_open()
        self._pending[request.msg_id] = request
        try:
            await self.send(message, channel)
            if on_sent is not None:
                on_sent()
            try:
                async with asyncio.timeout(timeout):
                    return await request.future
            except TimeoutError:
                raise TimeoutError(
                    f"kernel {self.kernel_id}: no {message['msg_type']} reply within {timeout}s"
                ) from None
        finally:
            request.cancel_timer()
            self._pending.pop(request.msg_id, None)

    async def request(
        self,
        msg_type: str,
        content: Json | None = None,
        *,
        channel: str = "shell",
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> Json:
        """Send a request (kernel_info, complete, inspect, ...) and return its whole reply."""
        message = self.session.msg(msg_type, content or {})
        request = _Request(message["header"]["msg_id"], asyncio.get_running_loop().create_future())
        return await self._roundtrip(message, channel, request, timeout)

    async def kernel_info(self, *, timeout: float | None = DEFAULT_TIMEOUT) -> Json:
        """The kernel_info_reply's content (language_info, implementation, ...)."""
        reply = await self.request("kernel_info_request", timeout=timeout)
        return reply["content"]

    async def execute(
        self,
        code: str,
        *,
        on_output: OutputCallback | None = None,
        on_input: InputCallback | None = None,
        allow_stdin: bool = False,
        stop_on_error: bool = True,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: Json | None = None,
        timeout: float | None = None,
        on_sent: Callable[[], Any] | None = None,
    ) -> ExecuteResult:
        """Run ``code``; return when its execute_reply and its iopub idle have both come.

        Every iopub message of this execution (status, execute_input, stream, display_data,
        execute_result, error, ...) goes to ``on_output`` as it arrives. With ``allow_stdin``,
        each input_request goes to ``on_input``: a str it returns is sent as the input_reply.
        ``timeout`` (None: none) gives up waiting, raising TimeoutError; the kernel carries on.
        ``on_sent`` is called once the execute_request is written to the socket.
        """
        if allow_stdin and on_input is None:
            raise ValueError("allow_stdin needs on_input")
        content = {
            "code": code,
            "silent": silent,
            "store_history": store_history,
            "user_expressions": user_expressions or {},
            "allow_stdin": allow_stdin,
            "stop_on_error": stop_on_error,
        }
        message = self.session.msg("execute_request", content)
        request = _Request(
            message["header"]["msg_id"],
            asyncio.get_running_loop().create_future(),
            wait_idle=True,
            on_output=on_output,
            on_input=on_input,
        )
        reply = await self._roundtrip(message, "shell", request, timeout, on_sent)
        return ExecuteResult(request.msg_id, reply.get("content") or {})

    async def send_input(self, value: str, parent: Json) -> None:
        """Answer the input_request ``parent`` with ``value``."""
        reply = self.session.msg("input_reply", {"value": value}, parent=parent["header"])
        await self.send(reply, "stdin")

    async def interrupt(self) -> None:
        """Interrupt the kernel (through the REST API, which knows its interrupt mode)."""
        await self._client.interrupt_kernel(self.kernel_id)

    async def end(self, error: KernelDied) -> None:
        """The kernel is gone though nothing said so on this websocket: requests waiting for a
        reply fail with ``error``, as when a shutdown is seen. The server says nothing when a
        kernel goes while a websocket is being opened (its iopub is not forwarded yet), nor for
        a kernel killed before its last messages went out; its websocket stays open. Idempotent.
        """
        if self._kernel_gone is None:
            self._kernel_gone = error
        await self.close()

    def messages(self) -> MessageStream:
        """A stream of every iopub message from now on (``async for``; ``close()`` it)."""
        return MessageStream(self)

    async def close(self) -> None:
        """Close the websocket and stop the reader; waiting requests get KernelConnectionClosed.

        Idempotent.
        """
        self._closing = True
        self._client._connections.discard(self)
        if not self._reader.done():
            if self._ready.is_set():
                await self._ws.close()  # the reader sees it closed and ends
            else:  # reconnecting after a restart: nothing worth waiting for
                self._reader.cancel()
            done, _ = await asyncio.wait([self._reader], timeout=self._client.timeout)
            if not done:
                self._reader.cancel()
                await asyncio.wait([self._reader])
        await self._ws.close()  # a websocket a cancelled reconnection had opened
