"""Jupyter's file contents manager, kept inside its root.

Jupyter Server checks that an API path stays under ``root_dir`` by its spelling only: a symlink
inside the root that points outside it is followed, for reads and for writes. Anyone who may
write files (a terminal, an upload of a symlink in an archive, a kernel) could then make every
user of the contents API, and the supernode with its token, read or overwrite files outside the
root. This manager resolves each path and refuses (404, as Jupyter answers for a path outside
its root) one that ends outside. Select it with
``--ServerApp.contents_manager_class=jupyter_rtc_bridge.contents.InsideRootContentsManager``.
"""

from __future__ import annotations

import os

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado.web import HTTPError

CONTENTS_MANAGER = "jupyter_rtc_bridge.contents.InsideRootContentsManager"


def inside(os_path: str, root: str) -> bool:
    """Whether ``os_path``, every symlink resolved, is ``root`` or under it."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(os_path)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


class InsideRootContentsManager(AsyncLargeFileManager):
    """``AsyncLargeFileManager`` (Jupyter's default) that follows no symlink out of the root."""

    def _get_os_path(self, path: str) -> str:
        os_path = super()._get_os_path(path)
        if not inside(os_path, self.root_dir):
            raise HTTPError(404, f"{path} is outside the root contents directory")
        return os_path
