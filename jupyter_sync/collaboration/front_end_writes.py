"""What JupyterLab writes into a notebook by itself, so a reader's window sends it too.

When a kernel connects to a notebook, JupyterLab sets the notebook's ``kernelspec`` and
``language_info`` metadata to the kernel's (``@jupyter/ydoc`` skips a value equal to the one in
the document). A viewer's window does it on opening, before the viewer has done anything.
Refusing it would close the viewer's room at once (JupyterLab's reload dialog, again after every
reload); storing it would let a viewer write. So it is dropped: not stored, not answered. The
viewer's own window keeps its values for those two keys until it reloads; any other change by a
reader is refused with 4403 (``jupyter_sync.collaboration.room``).
"""

from __future__ import annotations

from typing import Any

AUTOMATIC_METADATA = frozenset({"kernelspec", "language_info"})


def _without_automatic(notebook: dict[str, Any]) -> dict[str, Any]:
    metadata = notebook.get("metadata")
    if not isinstance(metadata, dict):
        return notebook
    kept = {key: value for key, value in metadata.items() if key not in AUTOMATIC_METADATA}
    return {**notebook, "metadata": kept}


def only_automatic_changes(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether a notebook (as nbformat JSON) differs from ``before`` at most in the metadata
    JupyterLab sets on its own."""
    return _without_automatic(before) == _without_automatic(after)
