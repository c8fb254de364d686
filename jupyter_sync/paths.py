"""Paths under the Jupyter Server's root, checked in one place.

Every path a user gives (contents, documents, sessions, a kernel's working directory) names a
file or folder relative to Jupyter's root, and the supernode puts it into a Jupyter URL with its
own token. A ``..`` step (sent encoded, ``%2e%2e``, it arrives decoded) would make that URL name
another Jupyter endpoint, so such paths are refused here, before anything is written, and the
supernode's client refuses them again when it builds the URL (``jupyter_sync.jupyter.rest``).
"""

from __future__ import annotations

import posixpath
import unicodedata


class BadPath(ValueError):
    """A path that cannot name something under the Jupyter Server's root."""

    code = "bad-path"


def checked_path(path: str, *, root: bool = False) -> str:
    """``path`` relative to the root (outer slashes dropped), or ``BadPath``: no ``.``, ``..``
    or empty step, no backslash, no NUL, no lone surrogate (neither can be a file name there;
    other characters, newlines too, are Jupyter's to judge).
    ``root``: the root itself (``""``) is allowed (a folder listing), else refused."""
    if not isinstance(path, str):
        raise BadPath("a path is a string")
    if "\x00" in path or any(unicodedata.category(char) == "Cs" for char in path):
        raise BadPath("a path may not contain NUL characters or lone surrogates")
    if "\\" in path:
        raise BadPath("a path may not contain backslashes")
    stripped = path.strip("/")
    if not stripped:
        if root:
            return ""
        raise BadPath("a path names a file under the server's root, not the root itself")
    parts = stripped.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise BadPath(
            f"a path must stay inside the server's root: no '.', '..' or empty steps (got {path!r})"
        )
    return posixpath.join(*parts)
