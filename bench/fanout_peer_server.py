"""The peer for ``bench/fanout.py``: pycrdt-websocket's ``ASGIServer(WebsocketServer())``.

Run under Hypercorn as in pycrdt-websocket's documentation; the room name is the URL path. It runs
with a separate virtualenv that has pycrdt-websocket and hypercorn, never the project's (neither is
a project requirement)::

    python3 -m venv /tmp/peer-venv
    /tmp/peer-venv/bin/pip install pycrdt-websocket hypercorn
    /tmp/peer-venv/bin/python bench/fanout_peer_server.py --port 8765

Defaults everywhere (no store, rooms removed when their last client leaves), as the documentation
shows it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from hypercorn import Config
from hypercorn.asyncio import serve
from pycrdt.websocket import ASGIServer, WebsocketServer


async def main(host: str, port: int) -> None:
    websocket_server = WebsocketServer()
    app = ASGIServer(websocket_server)
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.websocket_max_message_size = 64 * 1024 * 1024
    async with websocket_server:
        await serve(app, config, mode="asgi")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(options.host, options.port))
