"""A real Jupyter Server for tests: ``jupyter_server``, one per test session.

Use it with ``pytest_plugins = ["tests.support.jupyter"]`` at the top of a test module. The
server (``jupyter_sync.jupyter.launcher.LocalJupyterServer``) serves a temporary root directory
(``jupyter_server.root_dir``) on 127.0.0.1 with a token, and is stopped at the end of the
session. Without jupyter_server or ipykernel, or when the server does not come up, the tests that
use it are skipped (which fails them under ``CI=true``, see conftest.py).

Tests share the server: each shuts down the kernels and sessions it starts, and works under a
directory of its own in the root.

Registered as a plugin and imported: PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Sequence

import pytest

from jupyter_sync.jupyter.launcher import JupyterLaunchError, LocalJupyterServer


def missing_requirements() -> list[str]:
    return [
        name for name in ("jupyter_server", "ipykernel") if importlib.util.find_spec(name) is None
    ]


def start_local_server(
    root_dir: str | os.PathLike[str], timeout: float = 60.0, args: Sequence[str] = ()
) -> LocalJupyterServer:
    """A started ``LocalJupyterServer`` on ``root_dir`` (``args``: extra server options), or a
    skip saying why there is none."""
    missing = missing_requirements()
    if missing:
        pytest.skip(f"needs {' and '.join(missing)} to run a Jupyter Server")
    server = LocalJupyterServer(root_dir, args=args)
    try:
        server.start(timeout)
    except JupyterLaunchError as error:
        server.close()
        pytest.skip(f"the Jupyter Server did not start: {error}")
    return server


@pytest.fixture(scope="session")
def jupyter_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalJupyterServer]:
    """A started Jupyter Server shared by the session; its root is a temporary directory."""
    server = start_local_server(tmp_path_factory.mktemp("jupyter-root"))
    try:
        yield server
    finally:
        # Shown by pytest only when a test failed ("Captured stdout teardown").
        print(f"===== jupyter server ({server.url}) log =====\n{server.log}")
        server.close()
