"""Reading a socket option of another process's TCP connection, as the kernel sees it.

Some properties of a server cannot be observed from its answers without timing them (Nagle's
algorithm only delays). Linux lets a process with ptrace rights over another (its parent, or
root) take a duplicate of one of its file descriptors (``pidfd_getfd``, Linux 5.6): the option is
then read off the very socket the server writes to.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import time
import uuid
from pathlib import Path

from websockets.sync.client import ClientConnection, connect

from jupyter_sync.jupyter.launcher import LocalJupyterServer

SYS_PIDFD_GETFD = 438  # the same number on x86_64 and aarch64 (the generic syscall table)


def _socket_inodes(pid: int, local_port: int, remote_port: int) -> set[str]:
    """Inodes of ``pid``'s TCP sockets from ``local_port`` to ``remote_port`` (IPv4 and IPv6)."""
    found: set[str] = set()
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if int(local.rsplit(":", 1)[1], 16) == local_port and (
                int(remote.rsplit(":", 1)[1], 16) == remote_port
            ):
                found.add(inode)
    return found


def _descriptor(pid: int, inodes: set[str]) -> int | None:
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(entry)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return int(entry.name)
    return None


def _duplicate(pid: int, fd: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        duplicate = libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
        if duplicate < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"pidfd_getfd({pid}, {fd}): {os.strerror(errno)}")
        return duplicate
    finally:
        os.close(pidfd)


def peer_tcp_nodelay(pid: int, local_port: int, remote_port: int) -> bool:
    """Whether process ``pid``'s connection ``local_port`` -> ``remote_port`` has TCP_NODELAY."""
    inodes = _socket_inodes(pid, local_port, remote_port)
    fd = _descriptor(pid, inodes) if inodes else None
    if fd is None:
        raise LookupError(f"process {pid} has no TCP connection {local_port} -> {remote_port}")
    with socket.socket(fileno=_duplicate(pid, fd)) as duplicate:
        # Closing the duplicate closes this descriptor only; the server's socket stays open.
        return bool(duplicate.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


def _kernel_info(websocket: ClientConnection, deadline: float) -> None:
    """Ask for kernel_info on an open kernel WebSocket and wait for the reply: the server has
    then run its connection's ``connect()`` for this socket."""
    msg_id = uuid.uuid4().hex
    header = {
        "msg_id": msg_id,
        "msg_type": "kernel_info_request",
        "username": "test",
        "session": uuid.uuid4().hex,
        "date": "",
        "version": "5.3",
    }
    websocket.send(
        json.dumps(
            {
                "header": header,
                "parent_header": {},
                "metadata": {},
                "content": {},
                "channel": "shell",
                "buffers": [],
            }
        )
    )
    while True:
        message = json.loads(websocket.recv(timeout=max(0.1, deadline - time.monotonic())))
        if message.get("parent_header", {}).get("msg_id") == msg_id and (
            message["header"]["msg_type"] == "kernel_info_reply"
        ):
            return


def kernel_socket_nodelay(server: LocalJupyterServer, kernel_id: str) -> bool:
    """Whether ``server`` sends on a new WebSocket to kernel ``kernel_id`` with TCP_NODELAY."""
    with connect(
        f"ws://127.0.0.1:{server.port}/api/kernels/{kernel_id}/channels",
        additional_headers={"Authorization": f"token {server.token}"},
        open_timeout=30,
    ) as websocket:
        _kernel_info(websocket, time.monotonic() + 60)
        assert server.pid is not None
        return peer_tcp_nodelay(server.pid, server.port, websocket.socket.getsockname()[1])
