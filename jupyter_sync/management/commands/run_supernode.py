"""manage.py run_supernode: keep the jupyter tables in sync with a Jupyter Server."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from jupyter_sync.jupyter import JupyterClient
from jupyter_sync.jupyter.launcher import JupyterLaunchError, LocalJupyterServer
from jupyter_sync.supernode import account
from jupyter_sync.supernode.node import Supernode

logger = logging.getLogger("jupyter_sync.supernode.node")


class Command(BaseCommand):
    help = (
        "Run the supernode: sync the jupyter tables with a Jupyter Server (launched locally "
        "unless --jupyter-url or JUPYTER_URL is given) and carry out requested actions."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--jupyter-url", default=settings.JUPYTER_URL)
        parser.add_argument("--jupyter-token", default=settings.JUPYTER_TOKEN)
        parser.add_argument(
            "--launch",
            action="store_true",
            help="Launch a local Jupyter Server (the default when no Jupyter URL is configured).",
        )
        parser.add_argument(
            "--root-dir",
            default=str(settings.DATA_DIR / "notebooks"),
            help="Folder a launched Jupyter Server serves.",
        )
        parser.add_argument(
            "--server-url",
            default=settings.SUPERNODE_SERVER_URL,
            help="This project's WebSocket base URL (ws://host:port).",
        )
        parser.add_argument("--refresh", type=float, default=5.0, help="Seconds between refreshes.")

    def handle(self, *args, **options) -> None:
        token = account.ensure_service_account()
        account.ensure_jupyter_datastore()
        launch = options["launch"] or not options["jupyter_url"]
        try:
            asyncio.run(self.main(token, launch, options))
        except JupyterLaunchError as error:
            raise CommandError(f"could not launch a Jupyter Server: {error}") from None

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
