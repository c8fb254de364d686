"""Paths under the Jupyter Server's root (jupyter_sync.paths) and the contents URLs the
supernode's Jupyter client builds from them: nothing that leaves the root gets through either."""

from __future__ import annotations

import pytest

from jupyter_sync.jupyter import JupyterError
from jupyter_sync.jupyter.rest import JupyterClient, _step
from jupyter_sync.paths import BadPath, checked_path


@pytest.mark.parametrize(
    ("given", "expected"),
    [("a.ipynb", "a.ipynb"), ("/dir/a b.txt/", "dir/a b.txt"), ("..a/b..", "..a/b..")],
)
def test_paths_under_the_root_are_kept_without_outer_slashes(given, expected):
    assert checked_path(given) == expected


@pytest.mark.parametrize(
    "given", ["..", "a/..", "../x", "a/./b", "a//b", "a\\b", "a\x00", "\udc80", "", "/", 3]
)
def test_paths_leaving_the_root_or_naming_nothing_are_refused(given):
    with pytest.raises(BadPath) as raised:
        checked_path(given)
    assert raised.value.code == "bad-path"


def test_the_root_itself_only_where_a_folder_is_meant():
    assert checked_path("", root=True) == checked_path("/", root=True) == ""
    with pytest.raises(BadPath):
        checked_path("..", root=True)


def test_contents_urls_quote_each_step_and_refuse_dot_steps():
    url = JupyterClient._contents_path("/a dir/b?c#d%2e.txt")
    assert url == "/api/contents/a%20dir/b%3Fc%23d%252e.txt"
    assert JupyterClient._contents_path("") == "/api/contents/"
    for path in ("../api/status", "a/./b", "a//b"):
        with pytest.raises(JupyterError) as raised:
            JupyterClient._contents_path(path)
        assert raised.value.status == 400


def test_ids_in_jupyter_urls_are_one_quoted_step():
    """Kernel, session and terminal ids go into URLs through one function: quoted whole, and a
    dot step (DELETE /api/kernels/.. would be another endpoint) refused."""
    assert _step("k/1?x#") == "k%2F1%3Fx%23"
    for value in ("..", ".", "", None):
        with pytest.raises(JupyterError):
            _step(value)
