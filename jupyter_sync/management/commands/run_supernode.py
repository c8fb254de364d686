"""manage.py run_supernode: keep the jupyter tables in sync with a Jupyter Server."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from jupyter_sync.jupyter import JupyterClient
from jupyter_sync.jupyter.launcher import JupyterLaunchError, LocalJupyterServer
from jupyter_sync.supernode import account
from jupyter_sync.supernode.node import Supernode

logger = logging.getLogger("jupyter_sync.supernode.node")

WEBSOCKET_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}


def _shown(url: str) -> str:
    """A URL as it may be printed: scheme, host and path, never a query (a token may be there)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _base_url(value: str, schemes: dict[str, str], example: str, variable: str) -> str:
    """``value`` as a base URL with one of ``schemes`` (mapped to the one used), a host and a
    valid port, and nothing after the path; one clear line otherwise, that prints no token."""
    parts = urlsplit(value.strip())
    scheme = schemes.get(parts.scheme.lower())
    try:
        parts.port  # noqa: B018 (raises on a port that is not a number in range)
        valid_port = True
    except ValueError:
        valid_port = False
    if scheme is None or not parts.hostname or not valid_port:
        raise argparse.ArgumentTypeError(
            f"expected a URL like {example}, not {_shown(value)!r} (the option, or {variable})"
        )
    if parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(
            f"{_shown(value)!r}: give the URL without a query (tokens have options of their own)"
        )
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def relay_url(value: str) -> str:
    """This server's WebSocket base URL; ``http(s)://`` means ``ws(s)://``."""
    return _base_url(value, WEBSOCKET_SCHEMES, "ws://127.0.0.1:8000", "SUPERNODE_SERVER_URL")


def jupyter_url(value: str) -> str:
    """A Jupyter Server's base URL (http or https); empty: none (launch one)."""
    if not value.strip():
        return ""
    schemes = {"http": "http", "https": "https"}
    return _base_url(value, schemes, "http://127.0.0.1:8888", "JUPYTER_URL")


class Command(BaseCommand):
    help = (
        "Run the supernode: sync the jupyter tables with a Jupyter Server (launched locally "
        "unless --jupyter-url or JUPYTER_URL is given) and carry out requested actions."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--jupyter-url",
            type=jupyter_url,
            default=settings.JUPYTER_URL,
            help="The Jupyter Server to keep in sync (http(s)://host:port/base); default: "
            "JUPYTER_URL, and when that is unset a Jupyter Server is launched.",
        )
        parser.add_argument(
            "--jupyter-token",
            default=settings.JUPYTER_TOKEN,
            help="That server's token; default: JUPYTER_TOKEN (never printed). A command-line "
            "option is visible to every user of the machine (ps): prefer JUPYTER_TOKEN or "
            "--jupyter-token-file.",
        )
        parser.add_argument(
            "--jupyter-token-file",
            type=Path,
            help="A file holding that server's token (read once at start; wins over "
            "--jupyter-token and JUPYTER_TOKEN).",
        )
        parser.add_argument(
            "--launch",
            action="store_true",
            help="Launch a local Jupyter Server (the default when no Jupyter URL is given).",
        )
        parser.add_argument(
            "--root-dir",
            default=str(settings.DATA_DIR / "notebooks"),
            help="Folder a launched Jupyter Server serves (default: %(default)s).",
        )
        parser.add_argument(
            "--server-url",
            type=relay_url,
            default=settings.SUPERNODE_SERVER_URL,
            help="This server's base URL, ws(s):// or http(s):// (default: SUPERNODE_SERVER_URL, "
            "now %(default)s).",
        )
        parser.add_argument(
            "--refresh",
            type=float,
            default=5.0,
            help="Seconds between refreshes of the Jupyter tables (default: %(default)s).",
        )

    def handle(self, *args, **options) -> None:
        token_file = options["jupyter_token_file"]
        if token_file is not None:
            try:
                options["jupyter_token"] = token_file.read_text().strip()
            except OSError as error:
                raise CommandError(
                    f"cannot read --jupyter-token-file {str(token_file)!r}: {error.strerror}"
                ) from None
        token = account.ensure_service_account()
        account.ensure_jupyter_datastore()
        launch = options["launch"] or not options["jupyter_url"]
        try:
            asyncio.run(self.main(token, launch, options))
        except JupyterLaunchError as error:
            raise CommandError(f"could not launch a Jupyter Server: {error}") from None
        finally:
            account.revoke_token(token)

    async def main(self, token: str, launch: bool, options: dict) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        server = None
        url, jupyter_token = options["jupyter_url"], options["jupyter_token"]
        if launch:
            root = Path(options["root_dir"])
            root.mkdir(parents=True, exist_ok=True)
            server = LocalJupyterServer(root)
            await asyncio.to_thread(server.start)
            url, jupyter_token = server.url, server.token
            logger.info("launched a Jupyter Server on %s serving %s", url, root)
        try:
            async with JupyterClient(url, jupyter_token) as jupyter:
                supernode = Supernode(
                    jupyter=jupyter,
                    server_url=options["server_url"],
                    token=token,
                    refresh_interval=options["refresh"],
                )
                await supernode.run(stop)
        finally:
            if server is not None:
                await asyncio.to_thread(server.close)
                logger.info("stopped the launched Jupyter Server")
